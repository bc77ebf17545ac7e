/*
 * ga_moe_expert_gemm (kernels/moe.cu): the grouped expert product the hybrid CUDA backend's
 * decode steps use (the expert of every sorted row and the row counts read on the device, so
 * nothing returns to the host and the step can be captured in a graph). gpu label, exit 77
 * without a GPU. Against a double reference written here, on random bf16 inputs, every output
 * poisoned (NaN) before the launch so an unwritten element fails:
 *   - expert row counts with empty experts (first, last and between), one row, and more rows
 *     than a block takes at once (groups of 4: 9 rows = 4 + 4 + 1);
 *   - K a multiple of 8 (16-byte loads) and not (the scalar path), N not a multiple of the
 *     block's 16 columns, fp32 and bf16 outputs;
 *   - batch invariance: every row computed alone (a launch of one row, its expert's only one)
 *     is bitwise the row computed among the others;
 *   - bad arguments: GA_ERR_ARG, nothing launched;
 *   - FP8 experts (ga_moe_expert_gemm_f8, the hybrid backend's FP8 weights kept as FP8): random
 *     e4m3 codes with per-expert block scales (blocks of 8 to 128 columns, row blocks that do
 *     not divide the expert's rows), the product bitwise equal to ga_moe_expert_gemm's on the
 *     same weights dequantised by ga_f8_dequant (itself checked bitwise against the host's
 *     dequantisation by test_fp8_gemv), fp32 and bf16 outputs, poisoned outputs, bad arguments.
 * Tolerance: fp32 output within 1e-5 of sum_k |w x| (fp32 summation of K products in any
 * order); bf16 output within that plus 2^-8 of the value (one rounding).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/tensor.h"
#include "cuda_testutil.h"
#include "hybrid.h"
#include "kernels.h"
#include "testutil.h"

static uint64_t rng = 0x6d6f6567656d6dull;

static float urand(void) { /* uniform in [-1, 1) */
    return (float)((ga_test_rand_u64(&rng) >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
}

typedef struct gcase {
    int E, N, K;
    int counts[12]; /* rows per expert (E <= 12) */
} gcase;

static const gcase k_cases[] = {
    {8, 96, 256, {0, 1, 9, 0, 4, 2, 5, 0}},
    {6, 200, 72, {3, 0, 0, 8, 1, 0}},
    {5, 33, 37, {2, 0, 5, 1, 0}},
    {3, 16, 8, {0, 0, 1}},
};

static void run(const gcase *c, bool f32) {
    const int E = c->E, N = c->N, K = c->K;
    int off[13] = {0};
    for (int e = 0; e < E; e++)
        off[e + 1] = off[e] + c->counts[e];
    const int n = off[E];
    uint16_t *x = malloc((size_t)n * K * 2), *w = malloc((size_t)E * N * K * 2);
    for (size_t i = 0; i < (size_t)n * K; i++)
        x[i] = ga_f32_to_bf16(urand());
    for (size_t i = 0; i < (size_t)E * N * K; i++)
        w[i] = ga_f32_to_bf16(urand());
    const size_t ob = f32 ? 4 : 2, ybytes = (size_t)n * N * ob;
    void *d_x = dup_to_dev(x, (size_t)n * K * 2), *d_w = dup_to_dev(w, (size_t)E * N * K * 2);
    int *d_off = dup_to_dev(off, (size_t)(E + 1) * sizeof(int));
    void *d_y = dmalloc(ybytes);
    poison(d_y, ybytes);
    ga_err err = {{0}};
    CHECK_OK(ga_moe_expert_gemm(d_x, d_w, d_off, n, E, N, K, d_y, f32, 0, &err), &err);
    unsigned char *y = malloc(ybytes), *y1 = malloc(ybytes);
    down(y, d_y, ybytes);
    double worst = 0;
    for (int e = 0; e < E; e++)
        for (int p = off[e]; p < off[e + 1]; p++)
            for (int col = 0; col < N; col++) {
                double ref = 0, mag = 0;
                for (int k = 0; k < K; k++) {
                    const double t = (double)ga_bf16_to_f32(w[((size_t)e * N + col) * K + k]) *
                                     ga_bf16_to_f32(x[(size_t)p * K + k]);
                    ref += t;
                    mag += fabs(t);
                }
                const size_t at = (size_t)p * N + col;
                const double got =
                    f32 ? ((const float *)y)[at] : ga_bf16_to_f32(((const uint16_t *)y)[at]);
                const double tol = 1e-5 * mag + (f32 ? 0 : fabs(ref) / 256) + 1e-30;
                const double r = fabs(got - ref) / tol;
                if (!(r <= worst)) worst = isnan(r) ? INFINITY : r;
            }
    /* each row alone: offsets putting it as its expert's only row */
    int bad_inv = 0;
    for (int e = 0; e < E; e++)
        for (int p = off[e]; p < off[e + 1]; p++) {
            int o1[13];
            for (int j = 0; j <= E; j++)
                o1[j] = j <= e ? 0 : 1;
            up(d_off, o1, (size_t)(E + 1) * sizeof(int));
            poison(d_y, (size_t)N * ob);
            CHECK_OK(ga_moe_expert_gemm((const uint16_t *)d_x + (size_t)p * K, d_w, d_off, 1, E, N,
                                        K, d_y, f32, 0, &err),
                     &err);
            down(y1, d_y, (size_t)N * ob);
            bad_inv += memcmp(y1, y + (size_t)p * N * ob, (size_t)N * ob) != 0;
        }
    printf("  E %d N %3d K %3d n %2d %-4s worst %.3f of the tolerance, rows alone differing %d\n",
           E, N, K, n, f32 ? "fp32" : "bf16", worst, bad_inv);
    CHECK_MSG(worst <= 1.0, "E %d N %d K %d %s: worst %.3f of the tolerance", E, N, K,
              f32 ? "fp32" : "bf16", worst);
    CHECK_MSG(bad_inv == 0, "E %d N %d K %d: %d rows differ when computed alone", E, N, K, bad_inv);
    cudaFree(d_x), cudaFree(d_w), cudaFree(d_off), cudaFree(d_y);
    free(x), free(w), free(y), free(y1);
}

/* FP8 experts: E experts of (N, K) e4m3 codes, expert e's scales a (ceil(N / bh), kb) block of
 * the stacked scales, the row table mapping expert e's row n to e * ceil(N / bh) + n / bh (the
 * layout cuda_hybrid_weights.c uploads). */
typedef struct f8case {
    int E, N, K, bh, bw;
    int counts[8];
} f8case;

static const f8case k_f8_cases[] = {
    {8, 96, 256, 64, 128, {0, 1, 9, 0, 4, 2, 5, 0}}, /* 96 rows in blocks of 64: a partial one */
    {6, 200, 72, 32, 64, {3, 0, 0, 8, 1, 0}},        /* K 72 = one block of 64 + a partial */
    {3, 16, 8, 16, 8, {0, 0, 1}},
    {4, 40, 128, 16, 32, {2, 3, 0, 7}},
};

static void run_f8(const f8case *c, bool f32) {
    const int E = c->E, N = c->N, K = c->K, kb = (K + c->bw - 1) / c->bw;
    const int sr = (N + c->bh - 1) / c->bh; /* scale rows per expert */
    int off[9] = {0};
    for (int e = 0; e < E; e++)
        off[e + 1] = off[e] + c->counts[e];
    const int n = off[E];
    const size_t wn = (size_t)E * N * K;
    uint16_t *x = malloc((size_t)n * K * 2);
    uint8_t *w8 = malloc(wn);
    float *sc = malloc((size_t)E * sr * kb * sizeof *sc);
    int *srow = malloc((size_t)E * N * sizeof *srow);
    for (size_t i = 0; i < (size_t)n * K; i++)
        x[i] = ga_f32_to_bf16(urand());
    for (size_t i = 0; i < wn; i++) {
        uint8_t b = (uint8_t)(ga_test_rand_u64(&rng) >> 56);
        w8[i] = (b & 0x7f) == 0x7f ? (uint8_t)(b ^ 1) : b; /* no NaN codes */
    }
    for (int i = 0; i < E * sr * kb; i++) /* scales over several octaves */
        sc[i] = ldexpf(1.0f + 0.5f * urand(), (int)(ga_test_rand_u64(&rng) % 24) - 20);
    for (int e = 0; e < E; e++)
        for (int r = 0; r < N; r++)
            srow[e * N + r] = e * sr + r / c->bh;
    void *d_x = dup_to_dev(x, (size_t)n * K * 2), *d_w8 = dup_to_dev(w8, wn);
    float *d_sc = dup_to_dev(sc, (size_t)E * sr * kb * sizeof *sc);
    int *d_srow = dup_to_dev(srow, (size_t)E * N * sizeof *srow);
    int *d_off = dup_to_dev(off, (size_t)(E + 1) * sizeof(int));
    const ga_f8_scales f8 = {.scale = d_sc, .srow = d_srow, .block = c->bw, .kb = kb};
    void *d_wb = dmalloc(wn * 2);
    ga_err err = {{0}};
    CHECK_OK(ga_f8_dequant(d_w8, &f8, d_wb, E * N, K, 0, &err), &err);
    const size_t ob = f32 ? 4 : 2, ybytes = (size_t)n * N * ob;
    void *d_y = dmalloc(ybytes), *d_y8 = dmalloc(ybytes);
    poison(d_y, ybytes);
    poison(d_y8, ybytes);
    CHECK_OK(ga_moe_expert_gemm(d_x, d_wb, d_off, n, E, N, K, d_y, f32, 0, &err), &err);
    CHECK_OK(ga_moe_expert_gemm_f8(d_x, d_w8, &f8, d_off, n, E, N, K, d_y8, f32, 0, &err), &err);
    unsigned char *y = malloc(ybytes), *y8 = malloc(ybytes);
    down(y, d_y, ybytes);
    down(y8, d_y8, ybytes);
    int differ = 0, nonfinite = 0;
    for (size_t i = 0; i < (size_t)n * N; i++) {
        differ += memcmp(y + i * ob, y8 + i * ob, ob) != 0;
        const float v = f32 ? ((const float *)y8)[i] : ga_bf16_to_f32(((const uint16_t *)y8)[i]);
        nonfinite += !isfinite(v);
    }
    printf("  FP8 E %d N %3d K %3d blocks %dx%d n %2d %-4s: %d of %zu outputs differ from the "
           "dequantised bf16 product\n",
           E, N, K, c->bh, c->bw, n, f32 ? "fp32" : "bf16", differ, (size_t)n * N);
    CHECK_MSG(differ == 0 && nonfinite == 0, "FP8 E %d N %d K %d %s: %d differ, %d non-finite", E,
              N, K, f32 ? "fp32" : "bf16", differ, nonfinite);
    /* misuse: no scales, K not a multiple of 8, a block width that is not a power of two */
    ga_f8_scales bad = f8;
    bad.scale = NULL;
    CHECK(ga_moe_expert_gemm_f8(d_x, d_w8, &bad, d_off, n, E, N, K, d_y8, f32, 0, &err) ==
          GA_ERR_ARG);
    CHECK(strstr(err.msg, "ga_moe_expert_gemm_f8") != NULL);
    CHECK(ga_moe_expert_gemm_f8(d_x, d_w8, &f8, d_off, n, E, N, K - 1, d_y8, f32, 0, &err) ==
          GA_ERR_ARG);
    bad = f8;
    bad.block = 24;
    CHECK(ga_moe_expert_gemm_f8(d_x, d_w8, &bad, d_off, n, E, N, K, d_y8, f32, 0, &err) ==
          GA_ERR_ARG);
    CHECK(ga_moe_expert_gemm_f8(d_x, d_w8, NULL, d_off, n, E, N, K, d_y8, f32, 0, &err) ==
          GA_ERR_ARG);
    CU(cudaDeviceSynchronize());
    cudaFree(d_x), cudaFree(d_w8), cudaFree(d_sc), cudaFree(d_srow), cudaFree(d_off);
    cudaFree(d_wb), cudaFree(d_y), cudaFree(d_y8);
    free(x), free(w8), free(sc), free(srow), free(y), free(y8);
}

int main(void) {
    GA_REQUIRE_GPU();
    for (size_t i = 0; i < sizeof k_f8_cases / sizeof k_f8_cases[0]; i++) {
        run_f8(&k_f8_cases[i], true);
        run_f8(&k_f8_cases[i], false);
    }
    for (size_t i = 0; i < sizeof k_cases / sizeof k_cases[0]; i++) {
        run(&k_cases[i], true);
        run(&k_cases[i], false);
    }
    ga_err err = {{0}};
    int *d_off = dmalloc(16);
    void *d = dmalloc(64);
    CHECK(ga_moe_expert_gemm(NULL, d, d_off, 1, 2, 4, 8, d, true, 0, &err) == GA_ERR_ARG);
    CHECK(strstr(err.msg, "ga_moe_expert_gemm") != NULL);
    CHECK(ga_moe_expert_gemm(d, d, d_off, -1, 2, 4, 8, d, true, 0, &err) == GA_ERR_ARG);
    CHECK(ga_moe_expert_gemm(d, d, d_off, 1, 0, 4, 8, d, true, 0, &err) == GA_ERR_ARG);
    CHECK(ga_moe_expert_gemm(d, d, d_off, 1, 2, 4, 0, d, true, 0, &err) == GA_ERR_ARG);
    CHECK_OK(ga_moe_expert_gemm(d, d, d_off, 0, 2, 4, 8, d, true, 0, &err), &err);
    CU(cudaDeviceSynchronize());
    cudaFree(d_off), cudaFree(d);
    return ga_test_finish();
}
