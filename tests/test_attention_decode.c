/* test_attention: the decode (split-KV) kernel against the double reference. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "test_attention_ref.h"
#include "testutil.h"

typedef struct dc_case {
    int hd, G, n_kv, B;
    int lens[4], slots[4];
    int max_batch, max_kv_len, kv_stride;
    ga_gate_mode mode;
} dc_case;

static void decode_case(const dc_case *c, uint64_t seed) {
    const int hd = c->hd, n_kv = c->n_kv, B = c->B, n_heads = c->G * n_kv;
    const int gdim = c->mode == GA_GATE_HEADWISE      ? n_heads
                     : c->mode == GA_GATE_ELEMENTWISE ? n_heads * hd
                                                      : 0;
    const size_t ncache = (size_t)c->max_batch * n_kv * c->kv_stride * hd;
    const size_t nq = (size_t)B * n_heads * hd, ng = (size_t)B * gdim;
    uint64_t rng = seed;
    uint16_t *k = malloc(ncache * 2), *v = malloc(ncache * 2), *q = malloc(nq * 2);
    uint16_t *gate = malloc(ng * 2 + 2), *out = malloc(nq * 2);
    int maxlen = 1;
    for (int b = 0; b < B; b++)
        maxlen = c->lens[b] > maxlen ? c->lens[b] : maxlen;
    double *p = malloc((size_t)maxlen * sizeof(double));
    float ref[256], got[256];
    /* Everything past each row's length (and unused slots) is NaN. */
    ta_fill_u16(k, ncache, TA_BF16_NAN);
    ta_fill_u16(v, ncache, TA_BF16_NAN);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < n_kv; h++) {
            size_t off = (((size_t)c->slots[b] * n_kv + h) * c->kv_stride) * hd;
            ta_fill_bf16(k + off, (size_t)c->lens[b] * hd, 1.0f, &rng);
            ta_fill_bf16(v + off, (size_t)c->lens[b] * hd, 1.0f, &rng);
        }
    ta_fill_bf16(q, nq, 1.5f, &rng);
    ta_fill_bf16(gate, ng, 2.0f, &rng);

    const size_t wbytes = ga_attention_decode_workspace(B, n_heads, hd, c->max_kv_len);
    void *dq, *dk, *dv, *dg = NULL, *dout;
    int *dslots, *dlens;
    float *dwork;
    TA_CUDA(cudaMalloc(&dq, nq * 2));
    TA_CUDA(cudaMalloc(&dk, ncache * 2));
    TA_CUDA(cudaMalloc(&dv, ncache * 2));
    TA_CUDA(cudaMalloc(&dout, nq * 2));
    TA_CUDA(cudaMalloc((void **)&dslots, (size_t)B * sizeof(int)));
    TA_CUDA(cudaMalloc((void **)&dlens, (size_t)B * sizeof(int)));
    TA_CUDA(cudaMalloc((void **)&dwork, wbytes));
    if (ng) TA_CUDA(cudaMalloc(&dg, ng * 2));
    TA_CUDA(cudaMemcpy(dq, q, nq * 2, cudaMemcpyHostToDevice));
    TA_CUDA(cudaMemcpy(dk, k, ncache * 2, cudaMemcpyHostToDevice));
    TA_CUDA(cudaMemcpy(dv, v, ncache * 2, cudaMemcpyHostToDevice));
    TA_CUDA(cudaMemcpy(dslots, c->slots, (size_t)B * sizeof(int), cudaMemcpyHostToDevice));
    TA_CUDA(cudaMemcpy(dlens, c->lens, (size_t)B * sizeof(int), cudaMemcpyHostToDevice));
    if (ng) TA_CUDA(cudaMemcpy(dg, gate, ng * 2, cudaMemcpyHostToDevice));
    TA_CUDA(cudaMemset(dout, 0xFF, nq * 2));
    /* The workspace too: a split that was never written must never be read. */
    TA_CUDA(cudaMemset(dwork, 0xFF, wbytes));

    ga_attn_decode_args a = {.q = dq,
                             .k_cache = dk,
                             .v_cache = dv,
                             .slots = dslots,
                             .kv_lens = dlens,
                             .gate = dg,
                             .out = dout,
                             .work = dwork,
                             .B = B,
                             .n_heads = n_heads,
                             .n_kv_heads = n_kv,
                             .hd = hd,
                             .kv_stride = c->kv_stride,
                             .max_kv_len = c->max_kv_len,
                             .gate_mode = c->mode,
                             .scale = 1.0f / sqrtf((float)hd)};
    ga_err err = {{0}};
    CHECK_OK(ga_attention_decode(&a, 0, &err), &err);
    TA_CUDA(cudaDeviceSynchronize());
    TA_CUDA(cudaMemcpy(out, dout, nq * 2, cudaMemcpyDeviceToHost));

    char name[160];
    snprintf(name, sizeof name, "decode hd=%d G=%d n_kv=%d B=%d len0=%d max_kv_len=%d gate=%d", hd,
             c->G, n_kv, B, c->lens[0], c->max_kv_len, (int)c->mode);
    size_t bad = ta_count_nonfinite_bf16(out, nq);
    CHECK_MSG(bad == 0, "%s: %zu non-finite outputs", name, bad);
    double worst = 0.0;
    int worst_b = -1, worst_h = -1;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < n_heads; h++) {
            const int hk = h / c->G;
            const size_t off = (((size_t)c->slots[b] * n_kv + hk) * c->kv_stride) * hd;
            const uint16_t *g = c->mode == GA_GATE_HEADWISE ? gate + (size_t)b * gdim + h
                                : c->mode == GA_GATE_ELEMENTWISE
                                    ? gate + (size_t)b * gdim + (size_t)h * hd
                                    : NULL;
            ta_ref_attend(q + ((size_t)b * n_heads + h) * hd, k + off, v + off, c->lens[b], hd,
                          1.0 / sqrt(hd), g, c->mode, ref, NULL, p);
            for (int d = 0; d < hd; d++)
                got[d] = ta_bf2f(out[((size_t)b * n_heads + h) * hd + d]);
            double r = ga_test_tol_ratio(got, ref, (size_t)hd, TA_OUT_ATOL, TA_OUT_RTOL);
            if (r > worst) {
                worst = r;
                worst_b = b;
                worst_h = h;
            }
        }
    CHECK_MSG(worst <= 1.0, "%s: error ratio %.3f (row %d head %d)", name, worst, worst_b, worst_h);
    if (getenv("GA_TEST_VERBOSE")) printf("%s: worst ratio %.3f\n", name, worst);

    cudaFree(dq);
    cudaFree(dk);
    cudaFree(dv);
    cudaFree(dout);
    cudaFree(dslots);
    cudaFree(dlens);
    cudaFree(dwork);
    if (dg) cudaFree(dg);
    free(k);
    free(v);
    free(q);
    free(gate);
    free(out);
    free(p);
}

void ta_section_decode(void) {
    const dc_case cases[] = {
        /* four rows of very different lengths in permuted slots */
        {128, 2, 2, 4, {1, 100, 4096, 32768}, {2, 0, 3, 1}, 4, 32768, 32771, GA_GATE_NONE},
        /* grid sized for 40000 keys while the rows are far shorter (graph replay) */
        {64, 4, 2, 3, {100, 1, 4096, 0}, {1, 2, 0, 0}, 3, 40000, 40000, GA_GATE_NONE},
        /* split boundaries: one past a chunk, exactly two chunks */
        {128, 1, 2, 2, {129, 256, 0, 0}, {0, 1, 0, 0}, 2, 300, 300, GA_GATE_NONE},
        {64, 2, 1, 1, {32768, 0, 0, 0}, {0, 0, 0, 0}, 1, 32768, 32768, GA_GATE_NONE},
        /* G = 8 (one head batch) and G = 16 (two) */
        {128, 8, 1, 2, {1000, 127, 0, 0}, {1, 0, 0, 0}, 2, 1000, 1024, GA_GATE_NONE},
        {128, 16, 1, 1, {300, 0, 0, 0}, {0, 0, 0, 0}, 1, 300, 300, GA_GATE_NONE},
    };
    uint64_t seed = 5000;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (int mode = 0; mode < 3; mode++) {
            dc_case c = cases[i];
            c.mode = (ga_gate_mode)mode;
            decode_case(&c, seed++);
        }
}

void ta_decode_quick(void) {
    const dc_case cases[] = {
        {128, 2, 2, 2, {1, 300, 0, 0}, {1, 0, 0, 0}, 2, 400, 400, GA_GATE_HEADWISE},
        {64, 16, 1, 1, {200, 0, 0, 0}, {0, 0, 0, 0}, 1, 200, 200, GA_GATE_ELEMENTWISE},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        decode_case(&cases[i], 900 + i);
}
