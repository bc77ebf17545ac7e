/*
 * Tests of the attention kernels (kernels/attention_*.cu) against a naive double-precision
 * reference written here (test_attention_ref.c), on fresh random inputs:
 *   args          bad arguments are rejected with the right status (no GPU needed)
 *   prefill       T = 1, 7, 128, 257, 1000; hd 64/128/256; G 1/2/4; all gate modes; pos0 > 0
 *   prefill_long  T = 2100, 2500, 4096 (the long-prompt tile shape; a pos0 = 1000 case; hd 256)
 *   decode        kv_len 1 .. 32768, B up to 4, rows of different lengths, grids larger
 *                 than the rows (graph replay), all gate modes
 *   probs         unpooled maps (rows sum to 1, causal zeros) and pooled maps, first share
 *   probs_long    T = 32768 pooled, with the lse of the prefill kernel
 *   quick         a few small cases of each kernel, for compute-sanitizer
 * Outputs are poisoned with NaN before every call and checked for NaN/Inf everywhere; the
 * caches are NaN past each sequence's length, so a read past it shows. Tolerances are in
 * test_attention_ref.h.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "test_attention_ref.h"
#include "testutil.h"

/* ---------------------------------------------------------------- prefill */

void ta_prefill_case(const ta_pf_case *c, int impl, uint64_t seed) {
    const int hd = c->hd, T = c->T, pos0 = c->pos0, n_kv = c->n_kv;
    const int n_heads = c->G * n_kv, kv_len = pos0 + T, kv_stride = kv_len + 3;
    const int gdim = c->mode == GA_GATE_HEADWISE      ? n_heads
                     : c->mode == GA_GATE_ELEMENTWISE ? n_heads * hd
                                                      : 0;
    const size_t nq = (size_t)T * n_heads * hd, nkv = (size_t)n_kv * kv_stride * hd;
    const size_t ng = (size_t)T * gdim, nl = (size_t)n_heads * T;
    uint64_t rng = seed;
    uint16_t *q = malloc(nq * 2), *k = malloc(nkv * 2), *v = malloc(nkv * 2);
    uint16_t *gate = malloc(ng * 2 + 2), *out = malloc(nq * 2);
    float *lse = malloc(nl * 4), *ref = malloc((size_t)hd * 4);
    double *p = malloc((size_t)kv_len * sizeof(double));
    ta_fill_bf16(q, nq, 1.5f, &rng);
    /* Cache positions past kv_len hold NaN: reading them would poison the output. */
    ta_fill_u16(k, nkv, TA_BF16_NAN);
    ta_fill_u16(v, nkv, TA_BF16_NAN);
    for (int h = 0; h < n_kv; h++) {
        ta_fill_bf16(k + (size_t)h * kv_stride * hd, (size_t)kv_len * hd, 1.0f, &rng);
        ta_fill_bf16(v + (size_t)h * kv_stride * hd, (size_t)kv_len * hd, 1.0f, &rng);
    }
    ta_fill_bf16(gate, ng, 2.0f, &rng);

    void *dq, *dk, *dv, *dg = NULL, *dout;
    float *dlse;
    TA_CUDA(cudaMalloc(&dq, nq * 2));
    TA_CUDA(cudaMalloc(&dk, nkv * 2));
    TA_CUDA(cudaMalloc(&dv, nkv * 2));
    TA_CUDA(cudaMalloc(&dout, nq * 2));
    TA_CUDA(cudaMalloc((void **)&dlse, nl * 4));
    if (ng) TA_CUDA(cudaMalloc(&dg, ng * 2));
    TA_CUDA(cudaMemcpy(dq, q, nq * 2, cudaMemcpyHostToDevice));
    TA_CUDA(cudaMemcpy(dk, k, nkv * 2, cudaMemcpyHostToDevice));
    TA_CUDA(cudaMemcpy(dv, v, nkv * 2, cudaMemcpyHostToDevice));
    if (ng) TA_CUDA(cudaMemcpy(dg, gate, ng * 2, cudaMemcpyHostToDevice));
    TA_CUDA(cudaMemset(dout, 0xFF, nq * 2));
    TA_CUDA(cudaMemset(dlse, 0xFF, nl * 4));

    ga_attn_prefill_args a = {.q = dq,
                              .k = dk,
                              .v = dv,
                              .gate = dg,
                              .out = dout,
                              .lse = dlse,
                              .T = T,
                              .pos0 = pos0,
                              .n_heads = n_heads,
                              .n_kv_heads = n_kv,
                              .hd = hd,
                              .kv_stride = kv_stride,
                              .gate_mode = c->mode,
                              .scale = 1.0f / sqrtf((float)hd),
                              .impl = (ga_attn_impl)impl};
    ga_err err = {{0}};
    CHECK_OK(ga_attention_prefill(&a, 0, &err), &err);
    TA_CUDA(cudaDeviceSynchronize());
    TA_CUDA(cudaMemcpy(out, dout, nq * 2, cudaMemcpyDeviceToHost));
    TA_CUDA(cudaMemcpy(lse, dlse, nl * 4, cudaMemcpyDeviceToHost));

    char name[160];
    static const char *const impls[] = {"auto", "mma", "wgmma"};
    snprintf(name, sizeof name, "prefill[%s] hd=%d G=%d n_kv=%d T=%d pos0=%d gate=%d", impls[impl],
             hd, c->G, n_kv, T, pos0, (int)c->mode);
    size_t bad_out = ta_count_nonfinite_bf16(out, nq), bad_lse = ta_count_nonfinite_f32(lse, nl);
    CHECK_MSG(bad_out == 0 && bad_lse == 0, "%s: %zu non-finite outputs, %zu non-finite lse", name,
              bad_out, bad_lse);

    /* Long prompts: every third row plus the last 70 (the partial tiles), to bound the
     * reference's cost; the NaN check above still covers every element. */
    double worst = 0.0, worst_lse = 0.0;
    int worst_i = -1, worst_h = -1;
    float got[256];
    for (int i = 0; i < T; i++) {
        if (T > 2048 && i % 3 != 0 && i < T - 70) continue;
        for (int h = 0; h < n_heads; h++) {
            const int hk = h / c->G;
            const uint16_t *g = c->mode == GA_GATE_HEADWISE ? gate + (size_t)i * gdim + h
                                : c->mode == GA_GATE_ELEMENTWISE
                                    ? gate + (size_t)i * gdim + (size_t)h * hd
                                    : NULL;
            double lref;
            ta_ref_attend(q + ((size_t)i * n_heads + h) * hd, k + (size_t)hk * kv_stride * hd,
                          v + (size_t)hk * kv_stride * hd, pos0 + i + 1, hd, 1.0 / sqrt(hd), g,
                          c->mode, ref, &lref, p);
            for (int d = 0; d < hd; d++)
                got[d] = ta_bf2f(out[((size_t)i * n_heads + h) * hd + d]);
            double r = ga_test_tol_ratio(got, ref, (size_t)hd, TA_OUT_ATOL, TA_OUT_RTOL);
            float lg = lse[(size_t)h * T + i], lr = (float)lref;
            double rl = ga_test_tol_ratio(&lg, &lr, 1, TA_LSE_ATOL, TA_LSE_RTOL);
            if (r > worst) {
                worst = r;
                worst_i = i;
                worst_h = h;
            }
            if (rl > worst_lse) worst_lse = rl;
        }
    }
    CHECK_MSG(worst <= 1.0, "%s: output error ratio %.3f (row %d head %d)", name, worst, worst_i,
              worst_h);
    CHECK_MSG(worst_lse <= 1.0, "%s: lse error ratio %.3f", name, worst_lse);
    if (getenv("GA_TEST_VERBOSE"))
        printf("%s: worst out ratio %.3f lse ratio %.3f\n", name, worst, worst_lse);

    cudaFree(dq);
    cudaFree(dk);
    cudaFree(dv);
    cudaFree(dout);
    cudaFree(dlse);
    if (dg) cudaFree(dg);
    free(q);
    free(k);
    free(v);
    free(gate);
    free(out);
    free(lse);
    free(ref);
    free(p);
}

/* A case through every kernel that can run it here: the portable one always, the Hopper one
 * where it is usable (sm_90 device, sm_90a build, head_dim 128). Same seed, same inputs.
 * hd 256 also goes through AUTO, the backend's choice: on an sm_90a build on an H200 it must
 * send hd 256 to the portable kernel, not to the Hopper one (which takes hd 128 only). */
static void ta_prefill_all(const ta_pf_case *c, uint64_t seed) {
    ta_prefill_case(c, GA_ATTN_IMPL_MMA, seed);
    if (ga_attention_prefill_sm90_usable(c->hd)) ta_prefill_case(c, GA_ATTN_IMPL_WGMMA, seed);
    if (c->hd == 256) ta_prefill_case(c, GA_ATTN_IMPL_AUTO, seed);
}

void ta_section_prefill(int long_cases) {
    uint64_t seed = 1000;
    if (!ga_attention_prefill_sm90_usable(128))
        printf("note: no Hopper attention kernel here (needs an sm_90 GPU and an sm_90a build); "
               "the portable kernel is tested alone\n");
    if (!long_cases) {
        static const int Ts[] = {1, 7, 128, 257, 1000};
        for (int hd = 64; hd <= 256; hd *= 2)
            for (int G = 1; G <= 4; G *= 2)
                for (size_t ti = 0; ti < sizeof Ts / sizeof Ts[0]; ti++)
                    for (int mode = 0; mode < 3; mode++) {
                        int T = Ts[ti];
                        /* about half the cases continue a sequence (pos0 > 0), at offsets
                         * that are not tile multiples */
                        int pos0 = (T + G + mode + hd / 64) % 2 ? 0 : 29 + T % 5;
                        ta_pf_case c = {hd, G, G == 4 ? 1 : 2, T, pos0, (ga_gate_mode)mode};
                        ta_prefill_all(&c, seed++);
                    }
        /* a short chunk far into a sequence */
        ta_pf_case c1 = {128, 2, 2, 7, 3000, GA_GATE_HEADWISE};
        ta_prefill_all(&c1, seed++);
        ta_pf_case c2 = {64, 1, 3, 65, 130, GA_GATE_ELEMENTWISE};
        ta_prefill_all(&c2, seed++);
        /* hd 256 (Qwen3.5 / Qwen3-Next): 32-key tiles; a continuation ending mid-tile, G 8 */
        ta_pf_case c3 = {256, 8, 2, 33, 95, GA_GATE_ELEMENTWISE};
        ta_prefill_all(&c3, seed++);
        return;
    }
    const ta_pf_case cases[] = {
        {128, 2, 1, 4096, 0, GA_GATE_HEADWISE},
        {64, 4, 1, 4096, 0, GA_GATE_ELEMENTWISE},
        {128, 1, 2, 4096, 1000, GA_GATE_NONE},
        {128, 4, 1, 4096, 0, GA_GATE_ELEMENTWISE},
        /* past the short-prompt threshold (2048) with partial last tiles */
        {128, 2, 2, 2100, 77, GA_GATE_HEADWISE},
        {64, 1, 2, 2500, 0, GA_GATE_ELEMENTWISE},
        /* the Hopper kernel's 128-key tiles with a continuation that is not tile-aligned */
        {128, 2, 2, 1500, 333, GA_GATE_ELEMENTWISE},
        /* hd 256: one tile shape at every length; past 2048, and a long continuation */
        {256, 4, 1, 4096, 0, GA_GATE_ELEMENTWISE},
        {256, 2, 2, 2100, 1000, GA_GATE_HEADWISE},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        ta_prefill_all(&cases[i], seed++);
}

/* ---------------------------------------------------------------- bad arguments */

void ta_section_args(void) {
    /* Never dereferenced: each call must fail its checks before touching memory. */
    void *p = (void *)(uintptr_t)0x10000;
    ga_err err = {{0}};
    ga_attn_prefill_args pa = {.q = p,
                               .k = p,
                               .v = p,
                               .out = p,
                               .T = 16,
                               .pos0 = 0,
                               .n_heads = 4,
                               .n_kv_heads = 2,
                               .hd = 96,
                               .kv_stride = 32,
                               .gate_mode = GA_GATE_NONE,
                               .scale = 0.1f};
    CHECK(ga_attention_prefill(&pa, 0, &err) == GA_ERR_UNSUPPORTED);
    pa.hd = 128;
    pa.T = 0;
    CHECK(ga_attention_prefill(&pa, 0, &err) == GA_ERR_ARG);
    pa.T = 16;
    pa.n_heads = 3;
    CHECK(ga_attention_prefill(&pa, 0, &err) == GA_ERR_ARG);
    pa.n_heads = 4;
    pa.gate_mode = GA_GATE_HEADWISE; /* gate missing */
    CHECK(ga_attention_prefill(&pa, 0, &err) == GA_ERR_ARG);
    pa.gate_mode = GA_GATE_NONE;
    pa.pos0 = 20; /* 20 + 16 > kv_stride 32 */
    CHECK(ga_attention_prefill(&pa, 0, &err) == GA_ERR_ARG);
    pa.pos0 = 0;
    pa.q = (char *)p + 2; /* misaligned */
    CHECK(ga_attention_prefill(&pa, 0, &err) == GA_ERR_ARG);
    CHECK(strstr(err.msg, "aligned") != NULL);
    CHECK(ga_attention_prefill(NULL, 0, &err) == GA_ERR_ARG);
    pa.q = p;
    pa.impl = (ga_attn_impl)7;
    CHECK(ga_attention_prefill(&pa, 0, &err) == GA_ERR_ARG);
    pa.impl = GA_ATTN_IMPL_WGMMA; /* head_dim 64: the Hopper kernel takes 128 only */
    pa.hd = 64;
    CHECK(ga_attention_prefill(&pa, 0, &err) == GA_ERR_UNSUPPORTED);
    pa.hd = 256; /* nor 256, which AUTO sends to the portable kernel */
    CHECK(ga_attention_prefill(&pa, 0, &err) == GA_ERR_UNSUPPORTED);
    CHECK(strstr(err.msg, "Hopper") != NULL);
    pa.impl = GA_ATTN_IMPL_AUTO;
    /* head_dim 256 is taken: a bad length is what is reported, not the head dim; other head
     * dims are refused by name */
    pa.pos0 = 20;
    CHECK(ga_attention_prefill(&pa, 0, &err) == GA_ERR_ARG);
    CHECK(strstr(err.msg, "exceeds the cache length") != NULL);
    pa.pos0 = 0;
    pa.hd = 192;
    CHECK(ga_attention_prefill(&pa, 0, &err) == GA_ERR_UNSUPPORTED);
    CHECK(strstr(err.msg, "head_dim 192") != NULL);
    pa.hd = 512;
    CHECK(ga_attention_prefill(&pa, 0, &err) == GA_ERR_UNSUPPORTED);
    pa.hd = 128;

    ga_attn_decode_args da = {.q = p,
                              .k_cache = p,
                              .v_cache = p,
                              .slots = p,
                              .kv_lens = p,
                              .out = p,
                              .work = p,
                              .counters = p,
                              .B = 1,
                              .n_heads = 4,
                              .n_kv_heads = 2,
                              .hd = 96,
                              .kv_stride = 100,
                              .max_kv_len = 100,
                              .gate_mode = GA_GATE_NONE,
                              .scale = 0.1f};
    CHECK(ga_attention_decode(&da, 0, &err) == GA_ERR_UNSUPPORTED);
    da.hd = 512;
    CHECK(ga_attention_decode(&da, 0, &err) == GA_ERR_UNSUPPORTED);
    CHECK(strstr(err.msg, "head_dim 512") != NULL);
    da.hd = 256; /* taken: the bad length (101 > kv_stride 100) is what is reported */
    da.max_kv_len = 101;
    CHECK(ga_attention_decode(&da, 0, &err) == GA_ERR_ARG);
    CHECK(strstr(err.msg, "exceeds the cache length") != NULL);
    da.max_kv_len = 100;
    da.hd = 64;
    da.B = 0;
    CHECK(ga_attention_decode(&da, 0, &err) == GA_ERR_ARG);
    da.B = 1;
    da.n_kv_heads = 3;
    CHECK(ga_attention_decode(&da, 0, &err) == GA_ERR_ARG);
    da.n_kv_heads = 2;
    da.max_kv_len = 101;
    CHECK(ga_attention_decode(&da, 0, &err) == GA_ERR_ARG);
    da.max_kv_len = 100;
    da.gate_mode = GA_GATE_ELEMENTWISE;
    CHECK(ga_attention_decode(&da, 0, &err) == GA_ERR_ARG);
    da.gate_mode = GA_GATE_NONE;
    da.waves = -1;
    CHECK(ga_attention_decode(&da, 0, &err) == GA_ERR_ARG);
    CHECK(strstr(err.msg, "waves") != NULL);
    da.waves = 65;
    CHECK(ga_attention_decode(&da, 0, &err) == GA_ERR_ARG);
    da.waves = 0;
    da.fixed_splits = -1;
    CHECK(ga_attention_decode(&da, 0, &err) == GA_ERR_ARG);
    CHECK(strstr(err.msg, "fixed_splits") != NULL);
    da.fixed_splits = 65536;
    CHECK(ga_attention_decode(&da, 0, &err) == GA_ERR_ARG);
    da.fixed_splits = 0;
    da.counters = NULL;
    CHECK(ga_attention_decode(&da, 0, &err) == GA_ERR_ARG);
    CHECK(strstr(err.msg, "counters") != NULL);
    CHECK(ga_attention_decode_workspace(2, 8, 128, 300) == (size_t)2 * 8 * 3 * 130 * 4);
    CHECK(ga_attention_decode_workspace(0, 8, 128, 300) == 0);
    /* hd 256 splits no finer (at most one split per 128 keys) */
    CHECK(ga_attention_decode_workspace(1, 16, 256, 300) == (size_t)16 * 3 * 258 * 4);
    /* batch-invariant decoding: the fixed split's partials, whatever the KV length */
    CHECK(ga_attention_decode_workspace_fixed(3, 8, 64, 32) == (size_t)3 * 8 * 32 * 66 * 4);
    CHECK(ga_attention_decode_workspace_fixed(3, 8, 64, 0) == 0);
    /* two counters per (row, KV head, slab of up to 8 query heads) */
    CHECK(ga_attention_decode_counters(3, 32, 8) == 3 * 8 * 2 * sizeof(unsigned));
    CHECK(ga_attention_decode_counters(2, 24, 2) == 2 * 2 * 2 * 2 * sizeof(unsigned));
    CHECK(ga_attention_decode_counters(1, 6, 4) == 0);

    float *f = (float *)p;
    ga_attn_probs_args ra = {.q = p,
                             .k = p,
                             .lse = f,
                             .map = f,
                             .T = 10,
                             .n_heads = 4,
                             .n_kv_heads = 2,
                             .hd = 96,
                             .kv_stride = 10,
                             .head = -1,
                             .res = 5,
                             .scale = 0.1f};
    CHECK(ga_attention_probs(&ra, 0, &err) == GA_ERR_UNSUPPORTED);
    ra.hd = 256; /* taken: the bad head is what is reported */
    ra.head = 4;
    CHECK(ga_attention_probs(&ra, 0, &err) == GA_ERR_ARG);
    CHECK(strstr(err.msg, "head 4") != NULL);
    ra.head = -1;
    ra.hd = 64;
    ra.res = 0;
    CHECK(ga_attention_probs(&ra, 0, &err) == GA_ERR_ARG);
    ra.res = 11;
    CHECK(ga_attention_probs(&ra, 0, &err) == GA_ERR_ARG);
    ra.res = 5;
    ra.head = 4;
    CHECK(ga_attention_probs(&ra, 0, &err) == GA_ERR_ARG);
    ra.head = -1;
    ra.T = 0;
    CHECK(ga_attention_probs(&ra, 0, &err) == GA_ERR_ARG);
    ra.T = 11; /* past kv_stride 10 */
    CHECK(ga_attention_probs(&ra, 0, &err) == GA_ERR_ARG);
}

/* ---------------------------------------------------------------- sanitizer pass */

void ta_section_quick(void) {
    const ta_pf_case pcs[] = {{128, 2, 2, 7, 0, GA_GATE_HEADWISE},
                              {64, 4, 1, 130, 37, GA_GATE_ELEMENTWISE},
                              {128, 1, 1, 300, 5, GA_GATE_NONE},
                              /* the long-prompt tile shape (T > 2048) */
                              {128, 2, 1, 2100, 3, GA_GATE_HEADWISE},
                              /* hd 256: 32-key tiles, crossing several with a continuation */
                              {256, 2, 1, 70, 40, GA_GATE_ELEMENTWISE}};
    for (size_t i = 0; i < sizeof pcs / sizeof pcs[0]; i++)
        ta_prefill_all(&pcs[i], 77 + i);
    ta_decode_quick();
    ta_probs_quick();
}

int main(int argc, char **argv) {
    const char *sec = argc > 1 ? argv[1] : "args";
    if (strcmp(sec, "args") == 0) {
        ta_section_args();
        return ga_test_finish();
    }
    GA_REQUIRE_GPU();
    if (strcmp(sec, "prefill") == 0)
        ta_section_prefill(0);
    else if (strcmp(sec, "prefill_long") == 0)
        ta_section_prefill(1);
    else if (strcmp(sec, "decode") == 0)
        ta_section_decode();
    else if (strcmp(sec, "probs") == 0)
        ta_section_probs(0);
    else if (strcmp(sec, "probs_long") == 0)
        ta_section_probs(1);
    else if (strcmp(sec, "quick") == 0)
        ta_section_quick();
    else {
        fprintf(stderr, "test_attention: unknown section '%s'\n", sec);
        return 2;
    }
    return ga_test_finish();
}
