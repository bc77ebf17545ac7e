/*
 * The decode GEMV (kernels/gemv.cu) against a float64 product computed here on the host from
 * the same bf16 values, on fresh random inputs (seed printed; GA_TEST_SEED repeats a run), over
 * the 1.7B shape's projections and awkward sizes (N not a multiple of the rows per CTA, K/8
 * smaller than a warp, K/8 not a multiple of the unrolled stride). The output is poisoned with
 * NaN before each launch, so an unwritten element fails. Also checked: a row's result is
 * bitwise the same alone (M = 1) and inside a batch, which the decode path relies on, and
 * arguments the kernel and its fused forms cannot take are refused (the fused forms' results:
 * test_backend_ops, section fused).
 */
#include <cuda_runtime.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels.h"
#include "cuda_testutil.h"
#include "testutil.h"

static uint64_t rng;

static uint16_t to_bf16(float f) { /* round to nearest even; inputs are finite */
    uint32_t u;
    memcpy(&u, &f, 4);
    return (uint16_t)((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}
static float from_bf16(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Runs one product on the GPU (fp32 or bf16 output) into host fp32 y (M x N). */
static void run(const void *dx, const void *dw, int M, int N, int K, bool f32, float *y) {
    size_t n = (size_t)M * N;
    void *dy = dmalloc(n * 4);
    poison(dy, n * 4);
    ga_err err = {{0}};
    CHECK_OK(ga_gemv(dx, dw, dy, f32, M, N, K, 0, &err), &err);
    CU(cudaDeviceSynchronize());
    if (f32) {
        CU(cudaMemcpy(y, dy, n * 4, cudaMemcpyDeviceToHost));
    } else {
        uint16_t *h = malloc(n * 2);
        CU(cudaMemcpy(h, dy, n * 2, cudaMemcpyDeviceToHost));
        for (size_t i = 0; i < n; i++)
            y[i] = from_bf16(h[i]);
        free(h);
    }
    cudaFree(dy);
}

static void test_shape(int M, int N, int K) {
    size_t nx = (size_t)M * K, nw = (size_t)N * K, ny = (size_t)M * N;
    uint16_t *x = malloc(nx * 2), *w = malloc(nw * 2);
    float *ref = malloc(ny * 4), *got = malloc(ny * 4), *one = malloc((size_t)N * 4);
    for (size_t i = 0; i < nx; i++)
        x[i] = to_bf16(ga_test_rand_normal(&rng));
    for (size_t i = 0; i < nw; i++)
        w[i] = to_bf16(0.05f * ga_test_rand_normal(&rng));
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            double s = 0;
            for (int k = 0; k < K; k++)
                s += (double)from_bf16(x[(size_t)m * K + k]) * from_bf16(w[(size_t)n * K + k]);
            ref[(size_t)m * N + n] = (float)s;
        }
    void *dx = dmalloc(nx * 2), *dw = dmalloc(nw * 2);
    CU(cudaMemcpy(dx, x, nx * 2, cudaMemcpyHostToDevice));
    CU(cudaMemcpy(dw, w, nw * 2, cudaMemcpyHostToDevice));

    /* fp32 output: only the fp32 accumulation order differs from the float64 sum, a relative
     * error of ~sqrt(K) * 2^-24 (~5e-6 at K = 6144); 2e-5 leaves headroom, while one wrong or
     * missing 16-byte chunk of K changes a row by ~sqrt(8/K) (> 3e-2). */
    run(dx, dw, M, N, K, true, got);
    double e32 = ga_test_rel_l2(got, ref, ny);
    /* bf16 output: the store rounds to 8 significant bits (relative 2^-9 at most, ~1.1e-3 rms). */
    run(dx, dw, M, N, K, false, got);
    double e16 = ga_test_rel_l2(got, ref, ny);
    printf("gemv M %d N %d K %d: rel L2 fp32 %.2e (tol 2e-5), bf16 %.2e (tol 4e-3)\n", M, N, K, e32,
           e16);
    CHECK_MSG(e32 <= 2e-5, "gemv M %d N %d K %d fp32: rel L2 %.3e", M, N, K, e32);
    CHECK_MSG(e16 <= 4e-3, "gemv M %d N %d K %d bf16: rel L2 %.3e", M, N, K, e16);

    /* Batch invariance: the last row computed alone is bitwise the batch's last row. */
    if (M > 1) {
        run(dx, dw, M, N, K, true, got);
        run((const uint16_t *)dx + (size_t)(M - 1) * K, dw, 1, N, K, true, one);
        CHECK_MSG(!memcmp(one, got + (size_t)(M - 1) * N, (size_t)N * 4),
                  "gemv M %d N %d K %d: row %d differs alone and in the batch", M, N, K, M - 1);
    }
    cudaFree(dx), cudaFree(dw);
    free(x), free(w), free(ref), free(got), free(one);
}

int main(void) {
    GA_REQUIRE_GPU();
    rng = (uint64_t)strtoull(ga_test_env("GA_TEST_SEED", "0"), NULL, 10);
    if (!rng) rng = (uint64_t)time(NULL);
    printf("seed %llu (GA_TEST_SEED repeats it)\n", (unsigned long long)rng);
    /* the 1.7B shape's decode projections: q|k|v, o, gate|up, down, the LM head */
    test_shape(1, 4096, 2048);
    test_shape(1, 2048, 2048);
    test_shape(8, 12288, 2048);
    test_shape(3, 2048, 6144);
    test_shape(1, 151936, 2048);
    /* awkward sizes */
    test_shape(5, 33, 24);     /* K/8 = 3 < 32 lanes; N not a multiple of 16 */
    test_shape(2, 17, 8);      /* one chunk per row */
    test_shape(7, 1000, 1032); /* K/8 = 129: the unrolled loop and the remainder */
    test_shape(4, 1, 4096);    /* one output row */

    /* refused: M outside 1..8, K not a multiple of 8, misaligned x */
    void *d = dmalloc(1 << 16);
    ga_err err = {{0}};
    CHECK(ga_gemv(d, d, d, true, 0, 4, 8, 0, &err) == GA_ERR_ARG);
    CHECK(ga_gemv(d, d, d, true, GA_GEMV_MAX_M + 1, 4, 8, 0, &err) == GA_ERR_ARG);
    CHECK(ga_gemv(d, d, d, true, 1, 4, 12, 0, &err) == GA_ERR_ARG);
    CHECK(ga_gemv((char *)d + 2, d, d, true, 1, 4, 8, 0, &err) == GA_ERR_ARG);
    CHECK(strstr(err.msg, "ga_gemv") != NULL);
    CHECK(!ga_gemv_supported(d, d, 1, 12) && ga_gemv_supported(d, d, 8, 16));

    /* the fused forms refuse the same, and the norm forms a staged input over 48 KB */
    const float *f = d;
    CHECK(ga_gemv_rmsnorm(f, f, 1e-6f, d, d, true, 0, 4, 8, false, 0, &err) == GA_ERR_ARG);
    CHECK(ga_gemv_rmsnorm(f, f, 1e-6f, d, d, true, 1, 4, 12, false, 0, &err) == GA_ERR_ARG);
    CHECK(ga_gemv_rmsnorm(f + 1, f, 1e-6f, d, d, true, 1, 4, 8, false, 0, &err) == GA_ERR_ARG);
    CHECK(ga_gemv_rmsnorm(f, f + 1, 1e-6f, d, d, true, 1, 4, 8, false, 0, &err) == GA_ERR_ARG);
    CHECK(strstr(err.msg, "ga_gemv_rmsnorm") != NULL);
    CHECK(ga_gemv_rmsnorm(f, f, 1e-6f, d, d, true, 8, 4, 4096, false, 0, &err) == GA_ERR_ARG);
    /* the staged input's limit is GA_GEMV_STAGE_BYTES (48 KB less red[]), exactly: the largest
     * K a multiple of 8 under it passes, the next one does not (M 8 x K 3072 once passed and
     * then failed its launch) */
    const int k8 = GA_GEMV_STAGE_BYTES / (8 * 2) / 8 * 8, k1 = GA_GEMV_STAGE_BYTES / 2 / 8 * 8;
    CHECK(ga_gemv_norm_supported(f, f, d, 1, 4096) && ga_gemv_norm_supported(f, f, d, 8, k8));
    CHECK(!ga_gemv_norm_supported(f, f, d, 8, k8 + 8) && !ga_gemv_norm_supported(f, f, d, 8, 3072));
    CHECK(ga_gemv_norm_supported(f, f, d, 1, k1) && !ga_gemv_norm_supported(f, f, d, 1, k1 + 8));
    CHECK(ga_gemv_rmsnorm_swiglu(f, f, 1e-6f, d, d, GA_GEMV_MAX_M + 1, 4, 8, false, 0, &err) ==
          GA_ERR_ARG);
    CHECK(ga_gemv_rmsnorm_swiglu(f, f, 1e-6f, d, d, 1, 0, 8, false, 0, &err) == GA_ERR_ARG);
    CHECK(strstr(err.msg, "ga_gemv_rmsnorm_swiglu") != NULL);
    CHECK(ga_gemv_residual(d, d, NULL, d, 1, 4, 12, false, 0, &err) == GA_ERR_ARG);
    CHECK(ga_gemv_residual((char *)d + 2, d, NULL, d, 1, 4, 8, false, 0, &err) == GA_ERR_ARG);
    CHECK(ga_gemv_residual(d, d, NULL, NULL, 1, 4, 8, false, 0, &err) == GA_ERR_ARG);
    CHECK(ga_gemv_residual(d, d, NULL, d, 8, 4, 4096, false, 0, &err) == GA_ERR_ARG);
    CHECK(strstr(err.msg, "ga_gemv_residual") != NULL);
    CHECK(ga_gemv_fused_supported(d, d, 2, 6144) && !ga_gemv_fused_supported(d, d, 8, 6144));
    cudaFree(d);
    return ga_test_finish();
}
