/* test_attention: the attention-probability (heatmap) kernel against the double reference,
 * pooled with ga_pool_bin from src/core/capture.h. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/capture.h"
#include "kernels.h"
#include "test_attention_ref.h"
#include "testutil.h"

/* The map is fp32 sums of fp32 probabilities recomputed from bf16 q, k and the lse. */
#define TA_MAP_ATOL 2e-5
#define TA_MAP_RTOL 2e-3
#define TA_ROWSUM_TOL 2e-3

/* Queries in pooling block b (positions i with ga_pool_bin(i) == b). */
static int block_count(int b, int T, int res) {
    int n = 0;
    for (int64_t i = ((int64_t)b * T) / res; i < T && ga_pool_bin(i, T, res) <= b; i++)
        n += ga_pool_bin(i, T, res) == b;
    return n;
}

/* Checks that every pooled row sums to 1 and that blocks above the diagonal are exactly 0. */
static void check_map_shape(const char *name, const float *map, int res) {
    double worst_sum = 0.0;
    int above = 0;
    for (int bi = 0; bi < res; bi++) {
        double s = 0.0;
        for (int bj = 0; bj < res; bj++) {
            s += map[(size_t)bi * res + bj];
            if (bj > bi && map[(size_t)bi * res + bj] != 0.0f) above++;
        }
        if (fabs(s - 1.0) > worst_sum) worst_sum = fabs(s - 1.0);
    }
    CHECK_MSG(worst_sum <= TA_ROWSUM_TOL, "%s: a pooled row sums to 1 %+.2e", name, worst_sum);
    CHECK_MSG(above == 0, "%s: %d blocks above the diagonal are not 0", name, above);
}

static void *upload(const void *h, size_t bytes) {
    void *d;
    TA_CUDA(cudaMalloc(&d, bytes));
    TA_CUDA(cudaMemcpy(d, h, bytes, cudaMemcpyHostToDevice));
    return d;
}

/* Runs the kernel (map and/or first share) and downloads the results. */
static void run_probs(const ga_attn_probs_args *base, int with_map, int with_first, float *map,
                      float *first) {
    ga_attn_probs_args a = *base;
    size_t mb = (size_t)a.res * a.res * sizeof(float);
    float *dmap = NULL, *dfirst = NULL;
    if (with_map) {
        TA_CUDA(cudaMalloc((void **)&dmap, mb));
        TA_CUDA(cudaMemset(dmap, 0, mb)); /* the contract: zeroed by the caller */
    }
    if (with_first) {
        TA_CUDA(cudaMalloc((void **)&dfirst, sizeof(float)));
        TA_CUDA(cudaMemset(dfirst, 0, sizeof(float)));
    }
    a.map = dmap;
    a.first_share = dfirst;
    ga_err err = {{0}};
    CHECK_OK(ga_attention_probs(&a, 0, &err), &err);
    TA_CUDA(cudaDeviceSynchronize());
    if (with_map) TA_CUDA(cudaMemcpy(map, dmap, mb, cudaMemcpyDeviceToHost));
    if (with_first) TA_CUDA(cudaMemcpy(first, dfirst, sizeof(float), cudaMemcpyDeviceToHost));
    if (dmap) cudaFree(dmap);
    if (dfirst) cudaFree(dfirst);
}

static void probs_case(int hd, int G, int n_kv, int T, int res, int head, uint64_t seed) {
    const int n_heads = G * n_kv, kv_stride = T + 2;
    const size_t nq = (size_t)T * n_heads * hd, nk = (size_t)n_kv * kv_stride * hd;
    const double scale = 1.0 / sqrt(hd);
    uint64_t rng = seed;
    uint16_t *q = malloc(nq * 2), *k = malloc(nk * 2);
    float *lse = malloc((size_t)n_heads * T * sizeof(float));
    double *p = malloc((size_t)T * sizeof(double));
    double *mref = calloc((size_t)res * res, sizeof(double));
    float *mref_f = malloc((size_t)res * res * sizeof(float));
    float *map = malloc((size_t)res * res * sizeof(float));
    int *cnt = malloc((size_t)res * sizeof(int));
    ta_fill_bf16(q, nq, 1.5f, &rng);
    ta_fill_u16(k, nk, TA_BF16_NAN);
    for (int h = 0; h < n_kv; h++)
        ta_fill_bf16(k + (size_t)h * kv_stride * hd, (size_t)T * hd, 1.0f, &rng);
    for (int b = 0; b < res; b++)
        cnt[b] = block_count(b, T, res);

    /* Reference: full probability rows in double, pooled by ga_pool_bin. The lse handed to
     * the kernel is the reference's, so this test does not depend on the prefill kernel. */
    const int nmh = head < 0 ? n_heads : 1;
    double first_ref = 0.0;
    for (int h = 0; h < n_heads; h++)
        for (int i = 0; i < T; i++) {
            double l;
            ta_ref_attend(q + ((size_t)i * n_heads + h) * hd, k + (size_t)(h / G) * kv_stride * hd,
                          NULL, i + 1, hd, scale, NULL, GA_GATE_NONE, NULL, &l, p);
            lse[(size_t)h * T + i] = (float)l;
            if (i >= 1) first_ref += p[0];
            if (head >= 0 && h != head) continue;
            int bi = ga_pool_bin(i, T, res);
            for (int j = 0; j <= i; j++)
                mref[(size_t)bi * res + ga_pool_bin(j, T, res)] += p[j] / ((double)nmh * cnt[bi]);
        }
    for (size_t e = 0; e < (size_t)res * res; e++)
        mref_f[e] = (float)mref[e];

    void *dq = upload(q, nq * 2), *dk = upload(k, nk * 2);
    float *dlse = upload(lse, (size_t)n_heads * T * sizeof(float));
    ga_attn_probs_args a = {.q = dq,
                            .k = dk,
                            .lse = dlse,
                            .T = T,
                            .n_heads = n_heads,
                            .n_kv_heads = n_kv,
                            .hd = hd,
                            .kv_stride = kv_stride,
                            .head = head,
                            .res = res,
                            .scale = (float)scale};
    float first = NAN, first_only = NAN;
    run_probs(&a, 1, 1, map, &first);
    run_probs(&a, 0, 1, NULL, &first_only); /* the share alone takes a cheaper grid */

    char name[160];
    snprintf(name, sizeof name, "probs hd=%d G=%d n_kv=%d T=%d res=%d head=%d", hd, G, n_kv, T, res,
             head);
    size_t bad = ta_count_nonfinite_f32(map, (size_t)res * res);
    CHECK_MSG(bad == 0, "%s: %zu non-finite map entries", name, bad);
    double r = ga_test_tol_ratio(map, mref_f, (size_t)res * res, TA_MAP_ATOL, TA_MAP_RTOL);
    CHECK_MSG(r <= 1.0, "%s: map error ratio %.3f", name, r);
    check_map_shape(name, map, res);
    double tol = 1e-4 * (1.0 + first_ref);
    CHECK_MSG(fabs(first - first_ref) <= tol, "%s: first share %.6f, reference %.6f", name,
              (double)first, first_ref);
    CHECK_MSG(fabs(first_only - first_ref) <= tol, "%s: first share alone %.6f, reference %.6f",
              name, (double)first_only, first_ref);
    if (getenv("GA_TEST_VERBOSE"))
        printf("%s: map ratio %.3f first %.6f ref %.6f\n", name, r, (double)first, first_ref);

    cudaFree(dq);
    cudaFree(dk);
    cudaFree(dlse);
    free(q);
    free(k);
    free(lse);
    free(p);
    free(mref);
    free(mref_f);
    free(map);
    free(cnt);
}

/* T = 32768: the reference is too slow for the whole map, so: the prefill kernel's lse
 * (spot-checked against the reference), every pooled row summing to 1, zeros above the
 * diagonal, the first block row against the reference, and the first share against its
 * definition with that lse. */
static void probs_long_case(void) {
    const int T = 32768, n_heads = 2, n_kv = 1, hd = 128, res = 64; /* G = 2 */
    const size_t nq = (size_t)T * n_heads * hd, nk = (size_t)T * hd;
    const double scale = 1.0 / sqrt(hd);
    uint64_t rng = 4242;
    uint16_t *q = malloc(nq * 2), *k = malloc(nk * 2), *v = malloc(nk * 2);
    float *lse = malloc((size_t)n_heads * T * sizeof(float));
    float *map = malloc((size_t)res * res * sizeof(float));
    double *p = malloc((size_t)T * sizeof(double));
    ta_fill_bf16(q, nq, 1.5f, &rng);
    ta_fill_bf16(k, nk, 1.0f, &rng);
    ta_fill_bf16(v, nk, 1.0f, &rng);
    void *dq = upload(q, nq * 2), *dk = upload(k, nk * 2), *dv = upload(v, nk * 2);
    void *dout;
    float *dlse;
    TA_CUDA(cudaMalloc(&dout, nq * 2));
    TA_CUDA(cudaMalloc((void **)&dlse, (size_t)n_heads * T * sizeof(float)));
    TA_CUDA(cudaMemset(dlse, 0xFF, (size_t)n_heads * T * sizeof(float)));
    ga_attn_prefill_args pa = {.q = dq,
                               .k = dk,
                               .v = dv,
                               .out = dout,
                               .lse = dlse,
                               .T = T,
                               .n_heads = n_heads,
                               .n_kv_heads = n_kv,
                               .hd = hd,
                               .kv_stride = T,
                               .gate_mode = GA_GATE_NONE,
                               .scale = (float)scale};
    ga_err err = {{0}};
    CHECK_OK(ga_attention_prefill(&pa, 0, &err), &err);
    TA_CUDA(cudaDeviceSynchronize());
    TA_CUDA(cudaMemcpy(lse, dlse, (size_t)n_heads * T * sizeof(float), cudaMemcpyDeviceToHost));
    CHECK(ta_count_nonfinite_f32(lse, (size_t)n_heads * T) == 0);

    ga_attn_probs_args a = {.q = dq,
                            .k = dk,
                            .lse = dlse,
                            .T = T,
                            .n_heads = n_heads,
                            .n_kv_heads = n_kv,
                            .hd = hd,
                            .kv_stride = T,
                            .head = -1,
                            .res = res,
                            .scale = (float)scale};
    float first = NAN;
    run_probs(&a, 1, 1, map, &first);
    const char *name = "probs T=32768 res=64";
    CHECK_MSG(ta_count_nonfinite_f32(map, (size_t)res * res) == 0, "%s: non-finite map", name);
    check_map_shape(name, map, res);

    /* lse spot check and the first block row (queries 0..511) from the reference */
    double worst_lse = 0.0, row0[64] = {0};
    const int bs = T / res;
    for (int h = 0; h < n_heads; h++)
        for (int i = 0; i < T; i++) {
            if (i >= bs && i % 4093 != 0 && i != T - 1) continue;
            double l;
            ta_ref_attend(q + ((size_t)i * n_heads + h) * hd, k, NULL, i + 1, hd, scale, NULL,
                          GA_GATE_NONE, NULL, &l, p);
            float lg = lse[(size_t)h * T + i], lr = (float)l;
            double rl = ga_test_tol_ratio(&lg, &lr, 1, TA_LSE_ATOL, TA_LSE_RTOL);
            if (rl > worst_lse) worst_lse = rl;
            if (i < bs)
                for (int j = 0; j <= i; j++)
                    row0[ga_pool_bin(j, T, res)] += p[j] / (2.0 * bs);
        }
    CHECK_MSG(worst_lse <= 1.0, "%s: prefill lse error ratio %.3f", name, worst_lse);
    float row0f[64];
    for (int j = 0; j < res; j++)
        row0f[j] = (float)row0[j];
    double r = ga_test_tol_ratio(map, row0f, (size_t)res, TA_MAP_ATOL, TA_MAP_RTOL);
    CHECK_MSG(r <= 1.0, "%s: first block row error ratio %.3f", name, r);

    double first_ref = 0.0;
    for (int h = 0; h < n_heads; h++)
        for (int i = 1; i < T; i++) {
            double s = 0.0;
            for (int d = 0; d < hd; d++)
                s += (double)ta_bf2f(q[((size_t)i * n_heads + h) * hd + d]) * ta_bf2f(k[d]);
            first_ref += exp(s * scale - lse[(size_t)h * T + i]);
        }
    CHECK_MSG(fabs(first - first_ref) <= 1e-3 * (1.0 + first_ref),
              "%s: first share %.6f, reference %.6f", name, (double)first, first_ref);
    if (getenv("GA_TEST_VERBOSE"))
        printf("%s: lse ratio %.3f row0 ratio %.3f first %.4f ref %.4f\n", name, worst_lse, r,
               (double)first, first_ref);

    cudaFree(dq);
    cudaFree(dk);
    cudaFree(dv);
    cudaFree(dout);
    cudaFree(dlse);
    free(q);
    free(k);
    free(v);
    free(lse);
    free(map);
    free(p);
}

void ta_section_probs(int long_cases) {
    if (long_cases) {
        probs_long_case();
        return;
    }
    probs_case(64, 2, 2, 7, 7, -1, 11);      /* unpooled, head mean */
    probs_case(128, 1, 2, 200, 200, 1, 12);  /* unpooled, one head (tile edges at 64, 128) */
    probs_case(128, 2, 1, 1000, 64, -1, 13); /* pooled, blocks of 15 and 16 */
    probs_case(64, 4, 1, 1, 1, -1, 14);      /* one token */
    probs_case(64, 2, 1, 4096, 100, 0, 15);  /* pooled, uneven blocks, head 0 */
    probs_case(256, 2, 2, 200, 200, -1, 16); /* hd 256: eight 32-dim slices a score */
    probs_case(256, 4, 1, 1000, 64, 3, 17);  /* hd 256 pooled, one head */
}

void ta_probs_quick(void) {
    probs_case(64, 2, 1, 70, 70, -1, 21);
    probs_case(128, 1, 1, 130, 9, 0, 22);
    probs_case(256, 2, 1, 70, 70, -1, 23);
}
