/*
 * The FP8 weight kernels (kernels/gemv.cu, issue 15 item 4) against the bf16 path they must
 * reproduce bit for bit. Random e4m3 codes (every finite code, both signs) and fp32 block
 * scales form a stack of parts, as the CUDA backend stacks q|k|v and gate|up (each part with
 * its own block rows, so a part's row count need not be a multiple of the block); the host's
 * FP8 reader (src/core/tensor.c, ga_tensor_read_bf16: code x scale in fp32, rounded to bf16)
 * gives the bf16 weights the bf16 upload holds. Checked, bitwise:
 *  - ga_f8_dequant (the prefill's dequantisation) against those host bf16 weights;
 *  - ga_gemv_f8 and the fused forms (rmsnorm, rmsnorm + SwiGLU, residual) against the bf16
 *    ga_gemv / fused forms run on the host-dequantised weights, for M = 1..8, fp32 and bf16
 *    outputs, block sizes 128, 64 and 32 (square, and 128 x 64), K not a multiple of the block,
 *    K/8 below a warp and past the unrolled stride.
 * Outputs are poisoned with NaN before each launch. Also: the arguments they cannot take are
 * refused (block width not a power of two, a scale column count that does not match K,
 * misaligned codes). GPU label; exit 77 without a GPU.
 */
#include <cuda_runtime.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/tensor.h"
#include "cuda_testutil.h"
#include "kernels.h"
#include "testutil.h"

static uint64_t rng;
static int pdl_ok; /* programmatic dependent launch: sm_90 and newer */

/* One stack: parts of rows[i] rows, K columns; host codes, host bf16 dequantised weights,
 * device codes, scales and row table. */
typedef struct stack {
    int N, K, b0, b1, kb;
    uint8_t *codes;  /* (N, K) */
    uint16_t *wbf16; /* (N, K) host dequantised */
    void *d_codes;   /* device (N, K) bytes */
    void *d_wbf16;   /* device (N, K) bf16 */
    void *d_scale;   /* device: scales then the row table */
    ga_f8_scales f8;
} stack;

static uint8_t rand_code(void) {
    for (;;) {
        uint8_t b = (uint8_t)ga_test_rand_u64(&rng);
        if ((b & 0x7f) != 0x7f) return b; /* S.1111.111 is NaN */
    }
}

static void stack_make(stack *s, const int *rows, int nparts, int K, int b0, int b1) {
    memset(s, 0, sizeof *s);
    for (int i = 0; i < nparts; i++)
        s->N += rows[i];
    s->K = K, s->b0 = b0, s->b1 = b1, s->kb = (K + b1 - 1) / b1;
    const size_t nw = (size_t)s->N * K;
    s->codes = malloc(nw);
    s->wbf16 = malloc(nw * 2);
    int srows = 0;
    for (int i = 0; i < nparts; i++)
        srows += (rows[i] + b0 - 1) / b0;
    const size_t sbytes = (size_t)srows * s->kb * 4, tbytes = (size_t)s->N * 4;
    float *hs = malloc(sbytes + tbytes);
    int *ht = (int *)((char *)hs + sbytes);
    int row = 0, srow = 0;
    for (int i = 0; i < nparts; i++) {
        const int r = rows[i], pr = (r + b0 - 1) / b0;
        uint8_t *c = s->codes + (size_t)row * K;
        for (size_t j = 0; j < (size_t)r * K; j++)
            c[j] = rand_code();
        float *sc = hs + (size_t)srow * s->kb;
        for (int j = 0; j < pr * s->kb; j++) /* about weight_scale_inv's range: 2^-12 .. 2^-4 */
            sc[j] = ldexpf(1.0f + 0.5f * (float)(ga_test_rand_u64(&rng) % 1000) / 1000.0f,
                           -4 - (int)(ga_test_rand_u64(&rng) % 9));
        ga_tensor st = {.name = "scale",
                        .dtype = GA_F32,
                        .ndim = 2,
                        .shape = {pr, s->kb},
                        .data = sc,
                        .nbytes = (uint64_t)pr * s->kb * 4};
        ga_tensor wt = {.name = "w",
                        .dtype = GA_F8_E4M3,
                        .ndim = 2,
                        .shape = {r, K},
                        .data = c,
                        .nbytes = (uint64_t)r * K,
                        .scale_inv = &st,
                        .block = {b0, b1}};
        ga_tensor_read_bf16(&wt, 0, (int64_t)r * K, s->wbf16 + (size_t)row * K);
        for (int j = 0; j < r; j++)
            ht[row + j] = srow + j / b0;
        row += r;
        srow += pr;
    }
    s->d_codes = dup_to_dev(s->codes, nw);
    s->d_wbf16 = dup_to_dev(s->wbf16, nw * 2);
    s->d_scale = dup_to_dev(hs, sbytes + tbytes);
    s->f8.scale = s->d_scale;
    s->f8.srow = (const int *)((const char *)s->d_scale + sbytes);
    s->f8.block = b1;
    s->f8.kb = s->kb;
    free(hs);
}

static void stack_free(stack *s) {
    cudaFree(s->d_codes), cudaFree(s->d_wbf16), cudaFree(s->d_scale);
    free(s->codes), free(s->wbf16);
}

static uint16_t to_bf16(float f) { /* inputs are finite */
    uint32_t u;
    memcpy(&u, &f, 4);
    return (uint16_t)((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

/* Bitwise comparison of two device buffers of n bytes. */
static void same_bytes(const void *da, const void *db, size_t n, const char *what, int M, int N,
                       int K, int b) {
    unsigned char *a = malloc(n), *c = malloc(n);
    down(a, da, n);
    down(c, db, n);
    size_t i = 0;
    while (i < n && a[i] == c[i])
        i++;
    CHECK_MSG(i == n, "%s M %d N %d K %d block %d: byte %zu of %zu differs", what, M, N, K, b, i,
              n);
    free(a), free(c);
}

static void test_dequant(const stack *s) {
    const size_t n = (size_t)s->N * s->K * 2;
    void *d = dmalloc(n);
    poison(d, n);
    ga_err err = {{0}};
    CHECK_OK(ga_f8_dequant(s->d_codes, &s->f8, d, s->N, s->K, 0, &err), &err);
    same_bytes(d, s->d_wbf16, n, "ga_f8_dequant", 0, s->N, s->K, s->b1);
    cudaFree(d);
}

/* Every GEMV form at batch M on stack s (N rows; for SwiGLU the stack is gate | up, 2I rows). */
static void test_gemv(const stack *s, int M) {
    const int N = s->N, K = s->K, b = s->b1;
    ga_err err = {{0}};
    const size_t nx = (size_t)M * K;
    uint16_t *hx = malloc(nx * 2);
    float *hxf = malloc(nx * 4), *hn = malloc((size_t)K * 4), *hr = malloc((size_t)M * N * 4),
          *hb = malloc((size_t)N * 4);
    for (size_t i = 0; i < nx; i++) {
        hxf[i] = ga_test_rand_normal(&rng);
        hx[i] = to_bf16(hxf[i]);
    }
    for (int i = 0; i < K; i++)
        hn[i] = 1.0f + 0.1f * ga_test_rand_normal(&rng);
    for (size_t i = 0; i < (size_t)M * N; i++)
        hr[i] = ga_test_rand_normal(&rng);
    for (int i = 0; i < N; i++)
        hb[i] = 0.1f * ga_test_rand_normal(&rng);
    void *dx = dup_to_dev(hx, nx * 2);
    float *dxf = dup_to_dev(hxf, nx * 4), *dn = dup_to_dev(hn, (size_t)K * 4),
          *dbias = dup_to_dev(hb, (size_t)N * 4);
    const size_t ny = (size_t)M * N * 4;
    void *ya = dmalloc(ny), *yb = dmalloc(ny);
    for (int f32 = 0; f32 <= 1; f32++) {
        poison(ya, ny), poison(yb, ny);
        CHECK_OK(ga_gemv(dx, s->d_wbf16, ya, f32, M, N, K, 0, &err), &err);
        CHECK_OK(ga_gemv_f8(dx, s->d_codes, &s->f8, yb, f32, M, N, K, 0, &err), &err);
        same_bytes(ya, yb, (size_t)M * N * (f32 ? 4 : 2), "ga_gemv_f8", M, N, K, b);
    }
    if ((size_t)M * K * 2 <=
        GA_GEMV_STAGE_BYTES) { /* the fused forms stage the input in shared memory */
        for (int pdl = 0; pdl <= pdl_ok; pdl++) {
            poison(ya, ny), poison(yb, ny);
            CHECK_OK(ga_gemv_rmsnorm(dxf, dn, 1e-6f, s->d_wbf16, ya, true, M, N, K, pdl, 0, &err),
                     &err);
            CHECK_OK(ga_gemv_f8_rmsnorm(dxf, dn, 1e-6f, s->d_codes, &s->f8, yb, true, M, N, K, pdl,
                                        0, &err),
                     &err);
            same_bytes(ya, yb, (size_t)M * N * 4, "ga_gemv_f8_rmsnorm", M, N, K, b);
        }
        if (N % 2 == 0) {
            const int I = N / 2;
            poison(ya, ny), poison(yb, ny);
            CHECK_OK(
                ga_gemv_rmsnorm_swiglu(dxf, dn, 1e-6f, s->d_wbf16, ya, M, I, K, pdl_ok, 0, &err),
                &err);
            CHECK_OK(ga_gemv_f8_rmsnorm_swiglu(dxf, dn, 1e-6f, s->d_codes, &s->f8, yb, M, I, K,
                                               pdl_ok, 0, &err),
                     &err);
            same_bytes(ya, yb, (size_t)M * I * 2, "ga_gemv_f8_rmsnorm_swiglu", M, N, K, b);
        }
        /* residual: x (M, N) += A (M, K) . W^T + bias, from the same starting x */
        float *ra = dup_to_dev(hr, ny), *rb = dup_to_dev(hr, ny);
        CHECK_OK(ga_gemv_residual(dx, s->d_wbf16, dbias, ra, M, N, K, pdl_ok, 0, &err), &err);
        CHECK_OK(ga_gemv_f8_residual(dx, s->d_codes, &s->f8, dbias, rb, M, N, K, pdl_ok, 0, &err),
                 &err);
        same_bytes(ra, rb, ny, "ga_gemv_f8_residual", M, N, K, b);
        cudaFree(ra), cudaFree(rb);
    }
    cudaFree(dx), cudaFree(dxf), cudaFree(dn), cudaFree(dbias), cudaFree(ya), cudaFree(yb);
    free(hx), free(hxf), free(hn), free(hr), free(hb);
}

static void test_case(const int *rows, int nparts, int K, int b0, int b1, const int *Ms, int nM) {
    stack s;
    stack_make(&s, rows, nparts, K, b0, b1);
    test_dequant(&s);
    for (int i = 0; i < nM; i++)
        test_gemv(&s, Ms[i]);
    stack_free(&s);
}

static void test_refusals(void) {
    void *d = dmalloc(1 << 16);
    ga_err err = {{0}};
    ga_f8_scales f8 = {.scale = d, .srow = d, .block = 128, .kb = 1};
    CHECK(ga_gemv_f8_supported(d, d, &f8, 1, 128) && ga_gemv_f8_supported(d, d, &f8, 8, 64));
    CHECK(!ga_gemv_f8_supported(d, d, &f8, 1, 136));             /* kb 1 for K 136: should be 2 */
    CHECK(!ga_gemv_f8_supported(d, (char *)d + 4, &f8, 1, 128)); /* codes 8-byte aligned */
    CHECK(!ga_gemv_f8_supported(d, d, NULL, 1, 128));
    ga_f8_scales odd = f8;
    odd.block = 48;
    CHECK(!ga_gemv_f8_supported(d, d, &odd, 1, 48) && !ga_gemv_f8_supported(d, d, &odd, 1, 96));
    CHECK(ga_gemv_f8(d, d, &odd, d, true, 1, 4, 48, 0, &err) == GA_ERR_ARG);
    CHECK(strstr(err.msg, "ga_gemv_f8") != NULL);
    CHECK(ga_gemv_f8(d, d, &f8, d, true, GA_GEMV_MAX_M + 1, 4, 128, 0, &err) == GA_ERR_ARG);
    CHECK(ga_f8_dequant(d, &odd, d, 4, 48, 0, &err) == GA_ERR_ARG);
    CHECK(ga_f8_dequant(d, &f8, (char *)d + 8, 4, 128, 0, &err) == GA_ERR_ARG);
    CHECK(strstr(err.msg, "ga_f8_dequant") != NULL);
    const float *f = d;
    CHECK(ga_gemv_f8_rmsnorm(f, f + 1, 1e-6f, d, &f8, d, true, 1, 4, 128, false, 0, &err) ==
          GA_ERR_ARG);
    CHECK(ga_gemv_f8_rmsnorm_swiglu(f, f, 1e-6f, d, &odd, d, 1, 4, 48, false, 0, &err) ==
          GA_ERR_ARG);
    ga_f8_scales big = {.scale = d, .srow = d, .block = 128, .kb = 24};
    CHECK(ga_gemv_f8_residual(d, d, &big, NULL, d, 8, 4, 3072, false, 0, &err) == GA_ERR_ARG);
    CHECK(ga_gemv_f8_fused_supported(d, d, &big, 1, 3072));
    cudaFree(d);
}

/* The largest input the predicates admit must also launch: M 8 x K 3008 (47 KB staged, plus the
 * kernel's static reduction array) in the bf16 and FP8 forms, and 3016 is refused. Counting the
 * 48 KB for the staged input alone once admitted K 3072 and its launch failed. */
static void test_stage_limit(void) {
    const int M = GA_GEMV_MAX_M, K = GA_GEMV_STAGE_BYTES / (2 * M), N = 64;
    CHECK(K % 8 == 0);
    float *x = dmalloc((size_t)M * K * 4), *nw = dmalloc((size_t)K * 4),
          *y = dmalloc((size_t)M * N * 4);
    void *w = dmalloc((size_t)N * K * 2), *w8 = dmalloc((size_t)N * K);
    float *sc = dmalloc((size_t)N * (K / 8 + 1) * 4);
    int *srow = dmalloc((size_t)N * 4);
    cudaMemset(x, 0, (size_t)M * K * 4), cudaMemset(nw, 0, (size_t)K * 4);
    cudaMemset(w, 0, (size_t)N * K * 2), cudaMemset(w8, 0, (size_t)N * K);
    cudaMemset(sc, 0, (size_t)N * (K / 8 + 1) * 4), cudaMemset(srow, 0, (size_t)N * 4);
    ga_f8_scales f8 = {.scale = sc, .srow = srow, .block = 8, .kb = K / 8};
    ga_err err = {{0}};
    CHECK(ga_gemv_norm_supported(x, nw, w, M, K) && !ga_gemv_norm_supported(x, nw, w, M, K + 8));
    CHECK(ga_gemv_f8_fused_supported(x, w8, &f8, M, K));
    CHECK_OK(ga_gemv_rmsnorm(x, nw, 1e-6f, w, y, true, M, N, K, false, 0, &err), &err);
    CHECK_OK(ga_gemv_f8_rmsnorm(x, nw, 1e-6f, w8, &f8, y, true, M, N, K, false, 0, &err), &err);
    CHECK_OK(ga_gemv_residual(w, w, NULL, y, M, N, K, false, 0, &err), &err);
    CHECK_OK(cudaDeviceSynchronize() == cudaSuccess ? GA_OK : GA_ERR_CUDA, &err);
    cudaFree(x), cudaFree(nw), cudaFree(y), cudaFree(w), cudaFree(w8), cudaFree(sc), cudaFree(srow);
}

int main(void) {
    GA_REQUIRE_GPU();
    rng = (uint64_t)strtoull(ga_test_env("GA_TEST_SEED", "0"), NULL, 10);
    if (!rng) rng = (uint64_t)time(NULL);
    printf("seed %llu (GA_TEST_SEED repeats it)\n", (unsigned long long)rng);
    int dev = 0, major = 0;
    CU(cudaGetDevice(&dev));
    CU(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
    pdl_ok = major >= 9;
    const int all_m[] = {1, 2, 3, 4, 5, 6, 7, 8}, few_m[] = {1, 2, 8};
    /* q|k|v-like stack with odd part sizes, K not a multiple of the block */
    const int qkv[] = {40, 20, 20}, gu[] = {100, 100}, one[] = {33};
    test_case(qkv, 3, 200, 128, 128, all_m, 8);
    test_case(qkv, 3, 200, 64, 64, all_m, 8);
    test_case(qkv, 3, 200, 32, 32, all_m, 8);
    test_case(gu, 2, 1032, 128, 64, few_m, 3); /* K/8 = 129: the unrolled loop and the tail */
    test_case(gu, 2, 24, 32, 32, few_m, 3);    /* K/8 = 3 < 32 lanes, K < the block */
    test_case(one, 1, 8, 128, 128, few_m, 3);  /* one chunk a row */
    /* the 1.7B shape's decode projections at the released block size */
    const int big_qkv[] = {4096, 1024, 1024}, big_gu[] = {6144, 6144}, big_o[] = {2048},
              big_down[] = {2048};
    test_case(big_qkv, 3, 2048, 128, 128, few_m, 3);
    test_case(big_gu, 2, 2048, 128, 128, few_m, 3);
    test_case(big_o, 1, 4096, 128, 128, few_m, 3);
    test_case(big_down, 1, 6144, 128, 128, few_m, 3);
    test_refusals();
    test_stage_limit();
    return ga_test_finish();
}
