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
 *    K/8 below a warp and past the unrolled stride, and scales that make code x scale an fp32
 *    subnormal.
 * The fast arithmetic (ga_f8_scales.math GA_FP8_MATH_FAST, --fp8-math fast) is not bitwise the
 * bf16 path, so it is checked against an fp64 product of the codes (the host's own e4m3
 * decoder, ga_e4m3_to_f32), the scales and x, within a bound on fp32 rounding (fast_bound);
 * its fused forms against that reference (rmsnorm: fp64 normalisation on the host, a bound
 * that adds xn's bf16 rounding), or bitwise against its own plain form where they share the
 * same accumulator (residual: x + acc + bias); and every row of a batch bitwise against the
 * same row decoded alone (batch invariance).
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
static int pdl_ok;         /* programmatic dependent launch: sm_90 and newer */
static int scale_exp = -4; /* block scales are 2^scale_exp .. 2^(scale_exp - 8), times 1-1.5 */

/* One stack: parts of rows[i] rows, K columns; host codes, host bf16 dequantised weights,
 * device codes, scales and row table. */
typedef struct stack {
    int N, K, b0, b1, kb;
    uint8_t *codes;  /* (N, K) */
    uint16_t *wbf16; /* (N, K) host dequantised */
    void *d_codes;   /* device (N, K) bytes */
    void *d_wbf16;   /* device (N, K) bf16 */
    void *d_scale;   /* device: scales then the row table */
    float *hscale;   /* host copy of the scales */
    int *hrow;       /* host copy of the row table */
    ga_f8_scales f8;
    ga_f8_scales f8fast; /* f8 with math GA_FP8_MATH_FAST */
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
        for (int j = 0; j < pr * s->kb; j++) /* by default weight_scale_inv's range */
            sc[j] = ldexpf(1.0f + 0.5f * (float)(ga_test_rand_u64(&rng) % 1000) / 1000.0f,
                           scale_exp - (int)(ga_test_rand_u64(&rng) % 9));
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
    s->f8fast = s->f8;
    s->f8fast.math = GA_FP8_MATH_FAST;
    s->hscale = hs;
    s->hrow = ht;
}

static void stack_free(stack *s) {
    cudaFree(s->d_codes), cudaFree(s->d_wbf16), cudaFree(s->d_scale);
    free(s->codes), free(s->wbf16), free(s->hscale);
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

/* The fast form's distance from the exact product: each output is a sum of fp32 roundings along
 * one path -- 8 in a chunk's dot product (one multiply, seven FMAs), one in the FMA that scales
 * it into the lane's sum, one per chunk of the lane's chain (K / 256 of them), five in the warp
 * butterfly -- so |y - exact| <= n u sum |c s x| with n < 16 + K / 256 and u = 2^-24; twice that
 * for slack. extra: a relative error of the inputs themselves (the host's rmsnorm). */
static double fast_bound(double sum_abs, int K, double extra) {
    return (2.0 * (16 + K / 256.0) * ldexp(1.0, -24) + extra) * sum_abs + 1e-30;
}

/* fp64 reference of row n of W . x for one input row xr (K values): the product and sum |.|. */
static double ref_dot(const stack *s, int n, const double *xr, double *sum_abs) {
    const int K = s->K;
    const float *sc = s->hscale + (size_t)s->hrow[n] * s->kb;
    double acc = 0, mag = 0;
    for (int k = 0; k < K; k++) {
        const double p =
            (double)ga_e4m3_to_f32(s->codes[(size_t)n * K + k]) * sc[k / s->b1] * xr[k];
        acc += p;
        mag += fabs(p);
    }
    *sum_abs = mag;
    return acc;
}

/* ga_gemv_f8 with fast math (fp32 output) and its fused rmsnorm and residual forms at batch M
 * against the fp64 reference; each row of the batch bitwise against that row alone. */
static void test_gemv_fast(const stack *s, int M) {
    const int N = s->N, K = s->K, b = s->b1;
    ga_err err = {{0}};
    const size_t nx = (size_t)M * K, ny = (size_t)M * N;
    uint16_t *hx = malloc(nx * 2);
    float *hxf = malloc(nx * 4), *hn = malloc((size_t)K * 4), *hr = malloc(ny * 4),
          *hb = malloc((size_t)N * 4), *hy = malloc(ny * 4), *hy1 = malloc((size_t)N * 4),
          *hz = malloc(ny * 4);
    double *xd = malloc((size_t)K * 8);
    for (size_t i = 0; i < nx; i++) {
        hxf[i] = ga_test_rand_normal(&rng);
        hx[i] = to_bf16(hxf[i]);
    }
    for (int i = 0; i < K; i++)
        hn[i] = 1.0f + 0.1f * ga_test_rand_normal(&rng);
    for (size_t i = 0; i < ny; i++)
        hr[i] = ga_test_rand_normal(&rng);
    for (int i = 0; i < N; i++)
        hb[i] = 0.1f * ga_test_rand_normal(&rng);
    void *dx = dup_to_dev(hx, nx * 2);
    float *dxf = dup_to_dev(hxf, nx * 4), *dn = dup_to_dev(hn, (size_t)K * 4),
          *dbias = dup_to_dev(hb, (size_t)N * 4);
    float *y = dmalloc(ny * 4), *y1 = dmalloc((size_t)N * 4);
    poison(y, ny * 4);
    CHECK_OK(ga_gemv_f8(dx, s->d_codes, &s->f8fast, y, true, M, N, K, 0, &err), &err);
    down(hy, y, ny * 4);
    int bad = 0;
    for (int m = 0; m < M && bad < 5; m++) {
        for (int k = 0; k < K; k++)
            xd[k] = ga_bf16_to_f32(hx[(size_t)m * K + k]);
        for (int n = 0; n < N && bad < 5; n++) {
            double mag;
            const double ref = ref_dot(s, n, xd, &mag), got = hy[(size_t)m * N + n];
            if (!(fabs(got - ref) <= fast_bound(mag, K, 0))) {
                CHECK_MSG(0,
                          "ga_gemv_f8 fast M %d N %d K %d block %d: y[%d][%d] %.9g, fp64 %.9g "
                          "(bound %.3g)",
                          M, N, K, b, m, n, got, ref, fast_bound(mag, K, 0));
                bad++;
            }
        }
    }
    /* batch invariance: row m at batch M is bitwise row m decoded alone */
    for (int m = 0; m < M; m++) {
        poison(y1, (size_t)N * 4);
        CHECK_OK(ga_gemv_f8((const uint16_t *)dx + (size_t)m * K, s->d_codes, &s->f8fast, y1, true,
                            1, N, K, 0, &err),
                 &err);
        down(hy1, y1, (size_t)N * 4);
        CHECK_MSG(ga_test_same_bits(hy1, hy + (size_t)m * N, N),
                  "ga_gemv_f8 fast M %d N %d K %d block %d: row %d differs from batch 1", M, N, K,
                  b, m);
    }
    if ((size_t)M * K * 2 <= GA_GEMV_STAGE_BYTES) {
        /* residual: the same accumulator as the plain form, added in norm.cu's order */
        float *dr = dup_to_dev(hr, ny * 4);
        CHECK_OK(
            ga_gemv_f8_residual(dx, s->d_codes, &s->f8fast, dbias, dr, M, N, K, pdl_ok, 0, &err),
            &err);
        down(hz, dr, ny * 4);
        for (size_t i = 0; i < ny; i++)
            hr[i] = (hr[i] + hy[i]) + hb[i % N];
        CHECK_MSG(ga_test_same_bits(hz, hr, ny),
                  "ga_gemv_f8_residual fast M %d N %d K %d block %d: not x + plain + bias", M, N, K,
                  b);
        cudaFree(dr);
        /* rmsnorm: xn = bf16(w * x / rms(x)) on the device; the host's fp64 xn differs by bf16
         * rounding (2^-9 relative) plus the fast-math rsqrt, so the bound adds 2^-7 */
        poison(y, ny * 4);
        CHECK_OK(ga_gemv_f8_rmsnorm(dxf, dn, 1e-6f, s->d_codes, &s->f8fast, y, true, M, N, K, false,
                                    0, &err),
                 &err);
        down(hy, y, ny * 4);
        bad = 0;
        for (int m = 0; m < M && bad < 5; m++) {
            double ss = 0;
            for (int k = 0; k < K; k++)
                ss += (double)hxf[(size_t)m * K + k] * hxf[(size_t)m * K + k];
            const double inv = 1.0 / sqrt(ss / K + 1e-6);
            for (int k = 0; k < K; k++)
                xd[k] = (double)hn[k] * hxf[(size_t)m * K + k] * inv;
            for (int n = 0; n < N && bad < 5; n++) {
                double mag;
                const double ref = ref_dot(s, n, xd, &mag), got = hy[(size_t)m * N + n];
                const double tol = fast_bound(mag, K, ldexp(1.0, -7));
                if (!(fabs(got - ref) <= tol)) {
                    CHECK_MSG(0,
                              "ga_gemv_f8_rmsnorm fast M %d N %d K %d block %d: y[%d][%d] %.9g, "
                              "fp64 %.9g (bound %.3g)",
                              M, N, K, b, m, n, got, ref, tol);
                    bad++;
                }
            }
        }
    }
    cudaFree(dx), cudaFree(dxf), cudaFree(dn), cudaFree(dbias), cudaFree(y), cudaFree(y1);
    free(hx), free(hxf), free(hn), free(hr), free(hb), free(hy), free(hy1), free(hz), free(xd);
}

static void test_case(const int *rows, int nparts, int K, int b0, int b1, const int *Ms, int nM) {
    stack s;
    stack_make(&s, rows, nparts, K, b0, b1);
    test_dequant(&s);
    for (int i = 0; i < nM; i++) {
        test_gemv(&s, Ms[i]);
        test_gemv_fast(&s, Ms[i]);
    }
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
    ga_f8_scales bad_math = f8;
    bad_math.math = 2; /* neither GA_FP8_MATH_EXACT nor GA_FP8_MATH_FAST */
    CHECK(!ga_gemv_f8_supported(d, d, &bad_math, 1, 128));
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
    /* scales near and below fp32's smallest normal (2^-126): code x scale is an fp32 subnormal,
     * rounded to a bf16 subnormal, which the exact form must keep as the host does */
    scale_exp = -124;
    test_case(qkv, 3, 200, 32, 32, few_m, 3);
    scale_exp = -4;
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
