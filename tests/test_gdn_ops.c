/*
 * The Gated DeltaNet kernels (kernels/gdn.cu) against the CPU reference ops of the hybrid models
 * (src/cpu/cpu_hybrid.h: ga_hyb_conv_step, ga_hyb_delta_step, ga_hyb_gated_rmsnorm,
 * ga_hyb_rmsnorm_zc), in the manner of test_backend_ops.c: fresh random inputs over a table of
 * shapes (the released models' and awkward ones), outputs poisoned (NaN bytes) before each
 * launch so an unwritten element fails, NaN/Inf fails, and the normalised error
 * ||gpu - cpu|| / ||cpu|| against a tolerance justified at the TOL_ definitions. One line per
 * case, then "N passed, M failed".
 *
 * Sections (no argument runs all):
 *   args   no GPU needed: every launcher refuses bad arguments with GA_ERR_ARG and a one-line
 *          message naming itself and the argument, before touching the device
 *   conv   conv1d + SiLU with state: prefills (T from 1 to 1000, T < K-1 included), decode
 *          batches through shuffled state slots, row strides wider than C, K 1..4, C up to
 *          10240; a prefill followed by decode steps; outputs and the state left behind
 *   delta  the recurrent gated delta rule: decode batches (slots shuffled) and prefills up to
 *          1000 tokens, dk 16..256, dv off the 32-column tile, Hv/Hk 1..3, slow and fast
 *          decay, softplus past its threshold; outputs and the final state
 *   chunk  the chunked prefill (ga_gdn_delta_chunked, versions 2 and 1 in turn) against T
 *          recurrent steps of the CPU op, T across chunk edges up to 1000 (4096 without
 *          GA_TEST_QUICK), then recurrent decodes from the state it left
 *   norm   gated RMSNorm per head (strided, in place) and zero-centred RMSNorm (bf16 and fp32
 *          input, hidden-size and head-size rows)
 * The delta rule's per-token preparation (l2 norms, 1/sqrt(dk), g, beta) is not a CPU op of its
 * own (it is inline in cpu_hybrid.c's gdn_token): prep() below writes it in double from the
 * transformers formulas and hands the result to the CPU op ga_hyb_delta_step; it shares no code
 * with the kernel. GA_TEST_QUICK=1 drops the largest shapes.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/tensor.h"
#include "cpu/cpu_hybrid.h"
#include "testutil.h"

#include <cuda_runtime.h>

#include "cuda_testutil.h"
#include "gdn.h"

/* ---------------------------------------------------------------- tolerances
 * Inputs are bf16 (the CPU op gets the same values widened), arithmetic fp32 on the GPU and
 * double-accumulated fp32 on the CPU.
 *  - bf16 outputs: one rounding, |err| <= 2^-9 |x|, normalised error <= 1.95e-3 (~1.1e-3 on
 *    random data); the fp32 arithmetic and --use_fast_math's exp/rsqrt add ~1e-6:
 *    TOL_BF16_OUT 2.5e-3 (the value test_backend_ops.c uses);
 *  - the conv state is a copy of inputs (bf16-exact) or of the old state: TOL_EXACT 0;
 *  - the delta rule's fp32 state differs by summation order (fp32 sums of dk products against
 *    double ones, ~sqrt(dk) 2^-24 relative a step) and the approximate exp of the decay,
 *    carried along for the memory of the state (1 / (1 - decay): ~100 steps with the slow
 *    decay below): ~1e-5 expected; TOL_STATE 1e-4. A dropped token, a wrong decay or a missed
 *    beta moves the state by O(1) relative (see the `args` section's sanity case). */
#define TOL_BF16_OUT 2.5e-3
#define TOL_STATE 1e-4
#define TOL_EXACT 0.0

static uint64_t rng = 0x9d17a5eedull;
static int quick;
static int chunk_impl; /* ga_gdn_delta_args.chunk_impl of the `chunk` section's launches */

static void report(const char *op, const char *shape, double err, double tol) {
    bool ok = isfinite(err) && err <= tol;
    printf("%-8s %-64s err %-10.3g tol %-8.2g %s\n", op, shape, err, tol, ok ? "PASS" : "FAIL");
    fflush(stdout);
    if (ok)
        ga_t_pass++;
    else
        ga_t_fail++;
}

static double nerr(const float *a, const float *b, size_t n) {
    return ga_test_rel_l2(a, b, n);
}

static void *xmalloc(size_t bytes) {
    void *p = calloc(1, bytes ? bytes : 16);
    if (!p) {
        fprintf(stderr, "test_gdn_ops: out of host memory (%zu bytes)\n", bytes);
        exit(1);
    }
    return p;
}

static float randn(float mean, float std) {
    return mean + std * ga_test_rand_normal(&rng);
}
/* n N(mean, std^2) values rounded to bf16, f gets them widened. */
static void fill_bf16(uint16_t *h, float *f, size_t n, float mean, float std) {
    for (size_t i = 0; i < n; i++) {
        h[i] = ga_f32_to_bf16(randn(mean, std));
        f[i] = ga_bf16_to_f32(h[i]);
    }
}
static void fill_f32(float *f, size_t n, float mean, float std) {
    for (size_t i = 0; i < n; i++)
        f[i] = randn(mean, std);
}
static void widen(const uint16_t *h, float *f, size_t n) {
    for (size_t i = 0; i < n; i++)
        f[i] = ga_bf16_to_f32(h[i]);
}
/* A permutation of 0..pool-1 whose first B entries are the slots of B sequences. */
static int *shuffled_slots(int B, int pool) {
    int *s = xmalloc((size_t)pool * sizeof *s);
    for (int i = 0; i < pool; i++)
        s[i] = i;
    for (int i = pool - 1; i > 0; i--) {
        int j = (int)(ga_test_rand_u64(&rng) % (uint64_t)(i + 1)), t = s[i];
        s[i] = s[j], s[j] = t;
    }
    (void)B;
    return s;
}

/* ---------------------------------------------------------------- args */

static void expect_arg(const char *what, ga_status st, const ga_err *e, const char *needle) {
    bool ok = st == GA_ERR_ARG && strstr(e->msg, needle) && !strchr(e->msg, '\n');
    CHECK_MSG(ok, "%s: status %s, message \"%s\" (wanted \"%s\")", what, ga_status_name(st), e->msg,
              needle);
}

static void args_section(void) {
    ga_err e;
    /* fake device pointers: validation must refuse before any of them is touched */
    void *p = (void *)(uintptr_t)0x100000, *p2 = (void *)(uintptr_t)0x900000;
    float *fp = (float *)p2;
    ga_gdn_conv_args c = {.x = p,
                          .y = p2,
                          .state = fp,
                          .w = fp,
                          .B = 1,
                          .T = 4,
                          .C = 64,
                          .K = 4,
                          .x_stride = 64,
                          .y_stride = 64};
    ga_gdn_conv_args cb = c;
    expect_arg("conv NULL args", ga_gdn_conv(NULL, 0, &e), &e, "ga_gdn_conv: args");
    cb.x = NULL;
    expect_arg("conv x NULL", ga_gdn_conv(&cb, 0, &e), &e, "ga_gdn_conv: x");
    cb = c, cb.K = GA_GDN_MAX_CONV + 1;
    expect_arg("conv K", ga_gdn_conv(&cb, 0, &e), &e, "kernel width K");
    cb = c, cb.K = 0;
    expect_arg("conv K 0", ga_gdn_conv(&cb, 0, &e), &e, "kernel width K");
    cb = c, cb.T = 0;
    expect_arg("conv T", ga_gdn_conv(&cb, 0, &e), &e, "T 0");
    cb = c, cb.B = 70000;
    expect_arg("conv B", ga_gdn_conv(&cb, 0, &e), &e, "B 70000");
    cb = c, cb.x_stride = 63;
    expect_arg("conv x_stride", ga_gdn_conv(&cb, 0, &e), &e, "x_stride 63");
    cb = c, cb.y = (char *)p + 16;
    expect_arg("conv overlap", ga_gdn_conv(&cb, 0, &e), &e, "y overlaps x");

    ga_gdn_delta_args d = {.q = p,
                           .k = p,
                           .v = p,
                           .a = p,
                           .b = p,
                           .A_log = fp,
                           .dt_bias = fp,
                           .state = fp,
                           .o = p2,
                           .B = 1,
                           .T = 1,
                           .Hk = 2,
                           .Hv = 4,
                           .dk = 128,
                           .dv = 128,
                           .qkv_stride = 1024,
                           .ab_stride = 8,
                           .o_stride = 512};
    ga_gdn_delta_args db = d;
    expect_arg("delta NULL args", ga_gdn_delta(NULL, 0, &e), &e, "ga_gdn_delta: args");
    db.A_log = NULL;
    expect_arg("delta A_log NULL", ga_gdn_delta(&db, 0, &e), &e, "A_log");
    db = d, db.Hv = 5;
    expect_arg("delta Hv % Hk", ga_gdn_delta(&db, 0, &e), &e, "Hv 5 value heads");
    db = d, db.dk = 96;
    expect_arg("delta dk", ga_gdn_delta(&db, 0, &e), &e, "dk 96");
    db = d, db.dv = 0;
    expect_arg("delta dv", ga_gdn_delta(&db, 0, &e), &e, "dv 0");
    db = d, db.qkv_stride = 511;
    expect_arg("delta qkv_stride", ga_gdn_delta(&db, 0, &e), &e, "qkv_stride 511");
    db = d, db.o_stride = 100;
    expect_arg("delta o_stride", ga_gdn_delta(&db, 0, &e), &e, "o_stride 100");
    db = d, db.T = -1;
    expect_arg("delta T", ga_gdn_delta(&db, 0, &e), &e, "T -1");
    db = d, db.B = 2;
    expect_arg("chunked B", ga_gdn_delta_chunked(&db, fp, (size_t)1 << 40, 0, &e), &e,
               "ga_gdn_delta_chunked: B 2");
    size_t need = ga_gdn_chunk_workspace(d.T, d.Hk, d.Hv, d.dk, d.dv);
    CHECK(need > 0);
    expect_arg("chunked work", ga_gdn_delta_chunked(&d, fp, need - 1, 0, &e), &e, "needs");
    expect_arg("chunked work NULL", ga_gdn_delta_chunked(&d, NULL, need, 0, &e), &e, "needs");
    db = d, db.dk = 48;
    expect_arg("chunked dk", ga_gdn_delta_chunked(&db, fp, need, 0, &e), &e,
               "ga_gdn_delta_chunked: dk 48");

    ga_gdn_gated_norm_args g = {.o = p,
                                .z = p,
                                .w = fp,
                                .out = p,
                                .rows = 3,
                                .heads = 4,
                                .n = 128,
                                .o_stride = 512,
                                .z_stride = 1024,
                                .out_stride = 512,
                                .eps = 1e-6f};
    ga_gdn_gated_norm_args gb = g;
    expect_arg("gnorm NULL args", ga_gdn_gated_rmsnorm(NULL, 0, &e), &e,
               "ga_gdn_gated_rmsnorm: args");
    gb.z = NULL;
    expect_arg("gnorm z NULL", ga_gdn_gated_rmsnorm(&gb, 0, &e), &e, "o, z, w and out");
    gb = g, gb.n = 2048;
    expect_arg("gnorm n", ga_gdn_gated_rmsnorm(&gb, 0, &e), &e, "n 2048");
    gb = g, gb.z_stride = 500;
    expect_arg("gnorm z_stride", ga_gdn_gated_rmsnorm(&gb, 0, &e), &e, "z_stride 500");
    gb = g, gb.eps = NAN;
    expect_arg("gnorm eps", ga_gdn_gated_rmsnorm(&gb, 0, &e), &e, "eps nan");
    gb = g, gb.out = (char *)p + 2, gb.out_stride = 600;
    expect_arg("gnorm overlap", ga_gdn_gated_rmsnorm(&gb, 0, &e), &e, "out overlaps o");

    expect_arg("zc x NULL", ga_gdn_rmsnorm_zc(NULL, 0, fp, p2, 1, 64, 64, 64, 1e-6f, 0, &e), &e,
               "ga_gdn_rmsnorm_zc: x, w and out");
    expect_arg("zc n", ga_gdn_rmsnorm_zc(p, 0, fp, p2, 1, 0, 64, 64, 1e-6f, 0, &e), &e, "n 0");
    expect_arg("zc stride", ga_gdn_rmsnorm_zc(p, 0, fp, p2, 2, 64, 32, 64, 1e-6f, 0, &e), &e,
               "x_stride 32");
    expect_arg("zc rows", ga_gdn_rmsnorm_zc(p, 1, fp, p2, -1, 64, 64, 64, 1e-6f, 0, &e), &e,
               "rows -1");

    /* The state tolerance must see a wrong decay: the same delta step run with decay
     * exp(g) and exp(g * 1.01), over 100 tokens, on the CPU op. */
    const int dk = 64, dv = 64, T = 100;
    float *S1 = xmalloc((size_t)dk * dv * 4), *S2 = xmalloc((size_t)dk * dv * 4);
    float *q = xmalloc(dk * 4), *k = xmalloc(dk * 4), *v = xmalloc(dv * 4), *o = xmalloc(dv * 4);
    for (int t = 0; t < T; t++) {
        fill_f32(q, dk, 0, 0.125f), fill_f32(k, dk, 0, 0.125f), fill_f32(v, dv, 0, 1);
        ga_hyb_delta_step(S1, o, q, k, v, -0.02f, 0.5f, dk, dv);
        ga_hyb_delta_step(S2, o, q, k, v, -0.02f * 1.01f, 0.5f, dk, dv);
    }
    char shape[96];
    double ew = nerr(S2, S1, (size_t)dk * dv);
    snprintf(shape, sizeof shape, "a 1%% error in g moves the state by %.3g", ew);
    report("calib", shape, TOL_STATE / ew, 0.2); /* the tolerance must be 5x below it */
    free(S1), free(S2), free(q), free(k), free(v), free(o);
}

/* ---------------------------------------------------------------- conv */

typedef struct conv_case {
    int B, T, C, K;
    int pad;   /* extra elements per row of x and y (a slice of a wider projection row) */
    int pool;  /* state slots; > B uses shuffled slots through the slots array */
    int steps; /* launches in a row on the same states (a prefill then decodes: T of the first,
                  then T = 1) */
} conv_case;

static void case_conv(conv_case cc) {
    const int B = cc.B, C = cc.C, K = cc.K, m = K - 1, xs = C + cc.pad;
    const int pool = cc.pool > B ? cc.pool : B;
    const size_t sn = (size_t)pool * C * (m > 0 ? m : 1);
    int Tmax = cc.T;
    float *w = xmalloc((size_t)C * K * 4), *st_cpu = xmalloc(sn * 4), *st_gpu = xmalloc(sn * 4);
    fill_f32(w, (size_t)C * K, 0, 0.5f);
    fill_f32(st_cpu, sn, 0, 1);
    int *slots = pool > B ? shuffled_slots(B, pool) : NULL;
    size_t xn = (size_t)B * Tmax * xs;
    uint16_t *xh = xmalloc(xn * 2), *yh = xmalloc(xn * 2);
    float *xf = xmalloc(xn * 4), *yf = xmalloc(xn * 4), *yref = xmalloc(xn * 4);
    float *d_w = dup_to_dev(w, (size_t)C * K * 4), *d_st = dup_to_dev(st_cpu, sn * 4);
    int *d_slots = slots ? dup_to_dev(slots, (size_t)B * sizeof *slots) : NULL;
    void *d_x = dmalloc(xn * 2), *d_y = dmalloc(xn * 2);
    double ey = 0.0;
    for (int step = 0; step < cc.steps; step++) {
        const int T = step == 0 ? cc.T : 1;
        const size_t n = (size_t)B * T * xs;
        fill_bf16(xh, xf, n, 0, 1);
        up(d_x, xh, n * 2);
        poison(d_y, n * 2);
        ga_gdn_conv_args a = {.x = d_x,
                              .y = d_y,
                              .state = d_st,
                              .slots = d_slots,
                              .w = d_w,
                              .B = B,
                              .T = T,
                              .C = C,
                              .K = K,
                              .x_stride = xs,
                              .y_stride = xs};
        ga_err e = {0};
        ga_status st = ga_gdn_conv(&a, 0, &e);
        CHECK_MSG(st == GA_OK, "ga_gdn_conv: %s", e.msg);
        down(yh, d_y, n * 2);
        widen(yh, yf, n);
        for (int b = 0; b < B; b++) {
            float *sb = st_cpu + (size_t)(slots ? slots[b] : b) * C * m;
            for (int t = 0; t < T; t++) {
                size_t r = ((size_t)b * T + t) * xs;
                ga_hyb_conv_step(yref + r, xf + r, sb, w, C, K);
            }
        }
        /* compare the C channels of each row (the padding is not the kernel's) */
        size_t k = 0;
        for (size_t r = 0; r < (size_t)B * T; r++)
            for (int c = 0; c < C; c++, k++) {
                xf[k] = yf[r * xs + c]; /* xf is free now: reuse as the packed GPU output */
                yf[k] = yref[r * xs + c];
            }
        double e1 = nerr(xf, yf, k);
        ey = e1 > ey || !isfinite(e1) ? e1 : ey;
    }
    down(st_gpu, d_st, sn * 4);
    char shape[96];
    snprintf(shape, sizeof shape, "B %d T %d C %d K %d pad %d pool %d steps %d: y", B, cc.T, C, K,
             cc.pad, pool, cc.steps);
    report("conv", shape, ey, TOL_BF16_OUT);
    snprintf(shape, sizeof shape, "B %d T %d C %d K %d pad %d pool %d steps %d: state", B, cc.T, C,
             K, cc.pad, pool, cc.steps);
    report("conv", shape, m > 0 ? nerr(st_gpu, st_cpu, sn) : 0.0, TOL_EXACT);
    CU(cudaFree(d_w));
    CU(cudaFree(d_st));
    CU(cudaFree(d_x));
    CU(cudaFree(d_y));
    if (d_slots) CU(cudaFree(d_slots));
    free(w), free(st_cpu), free(st_gpu), free(slots), free(xh), free(yh), free(xf), free(yf),
        free(yref);
}

/* ---------------------------------------------------------------- delta */

typedef struct delta_case {
    int B, T, Hk, Hv, dk, dv;
    int pool;       /* state slots (> B: shuffled) */
    int steps;      /* launches in a row: T tokens, then T = 1 */
    int slow_decay; /* A_log around -4: decay ~0.98, a long memory; else around 0 */
    int chunked;    /* the first launch through ga_gdn_delta_chunked (B 1), the rest recurrent */
} delta_case;

/* The per-token preparation of transformers' torch_recurrent_gated_delta_rule (and
 * Qwen3NextGatedDeltaNet.forward before it), in double: q, k l2-normalised with
 * rsqrt(sum x^2 + 1e-6), q scaled by 1/sqrt(dk); g = -exp(A_log) softplus(a + dt_bias) with
 * torch's softplus (linear above 20); beta = sigmoid(b). */
static void prep(const float *qin, const float *kin, int dk, float *q, float *k) {
    double sq = 0, sk = 0;
    for (int i = 0; i < dk; i++)
        sq += (double)qin[i] * qin[i], sk += (double)kin[i] * kin[i];
    double rq = 1.0 / sqrt(sq + 1e-6), rk = 1.0 / sqrt(sk + 1e-6);
    float qscale = (float)(1.0 / sqrt((double)dk));
    for (int i = 0; i < dk; i++) {
        q[i] = (float)(qin[i] * rq) * qscale;
        k[i] = (float)(kin[i] * rk);
    }
}
static float gate_g(float a, float A_log, float dt_bias) {
    double x = (double)a + dt_bias, sp = x > 20.0 ? x : log1p(exp(x));
    return (float)(-exp((double)A_log) * sp);
}
static float sigm(float b) {
    return (float)(1.0 / (1.0 + exp(-(double)b)));
}

static void case_delta(delta_case dc) {
    const int B = dc.B, Hk = dc.Hk, Hv = dc.Hv, dk = dc.dk, dv = dc.dv, r = Hv / Hk;
    const int pool = dc.pool > B ? dc.pool : B;
    const int kd = Hk * dk, vd = Hv * dv, qs = 2 * kd + vd + 8, abs_ = 2 * Hv + 3;
    const size_t hs = (size_t)dk * dv, sn = (size_t)pool * Hv * hs;
    float *A_log = xmalloc((size_t)Hv * 4), *dtb = xmalloc((size_t)Hv * 4);
    fill_f32(A_log, Hv, dc.slow_decay ? -4.f : 0.f, 0.5f);
    fill_f32(dtb, Hv, 0, 0.5f);
    dtb[Hv - 1] = 25.f; /* softplus's linear branch: a + dt_bias > 20 */
    float *st_cpu = xmalloc(sn * 4), *st_gpu = xmalloc(sn * 4);
    fill_f32(st_cpu, sn, 0, 0.1f);
    int *slots = pool > B ? shuffled_slots(B, pool) : NULL;
    const size_t rows = (size_t)B * dc.T;
    uint16_t *qkvh = xmalloc(rows * qs * 2), *abh = xmalloc(rows * abs_ * 2);
    uint16_t *oh = xmalloc(rows * vd * 2);
    float *qkvf = xmalloc(rows * qs * 4), *abf = xmalloc(rows * abs_ * 4);
    float *of = xmalloc(rows * vd * 4), *oref = xmalloc(rows * vd * 4);
    float *qn = xmalloc((size_t)dk * 4), *kn = xmalloc((size_t)dk * 4);
    float *d_A = dup_to_dev(A_log, (size_t)Hv * 4), *d_dt = dup_to_dev(dtb, (size_t)Hv * 4);
    float *d_st = dup_to_dev(st_cpu, sn * 4);
    int *d_slots = slots ? dup_to_dev(slots, (size_t)B * sizeof *slots) : NULL;
    void *d_qkv = dmalloc(rows * qs * 2), *d_ab = dmalloc(rows * abs_ * 2);
    void *d_o = dmalloc(rows * vd * 2);
    size_t work_bytes = dc.chunked ? ga_gdn_chunk_workspace(dc.T, Hk, Hv, dk, dv) : 0;
    float *d_work = work_bytes ? dmalloc(work_bytes) : NULL;
    if (d_work) poison(d_work, work_bytes); /* the scratch must be written before it is read */
    double eo = 0.0;
    for (int step = 0; step < dc.steps; step++) {
        const int T = step == 0 ? dc.T : 1;
        const size_t n = (size_t)B * T;
        fill_bf16(qkvh, qkvf, n * qs, 0, 1);
        fill_bf16(abh, abf, n * abs_, 0, 1.5f);
        up(d_qkv, qkvh, n * qs * 2);
        up(d_ab, abh, n * abs_ * 2);
        poison(d_o, n * vd * 2);
        /* Qwen3-Next's [b | a] order in one row: b at 0, a at Hv */
        ga_gdn_delta_args a = {.q = d_qkv,
                               .k = (uint16_t *)d_qkv + kd,
                               .v = (uint16_t *)d_qkv + 2 * kd,
                               .a = (uint16_t *)d_ab + Hv,
                               .b = d_ab,
                               .A_log = d_A,
                               .dt_bias = d_dt,
                               .state = d_st,
                               .slots = d_slots,
                               .o = d_o,
                               .B = B,
                               .T = T,
                               .Hk = Hk,
                               .Hv = Hv,
                               .dk = dk,
                               .dv = dv,
                               .qkv_stride = qs,
                               .ab_stride = abs_,
                               .o_stride = vd,
                               .chunk_impl = chunk_impl};
        ga_err e = {0};
        ga_status st = step == 0 && dc.chunked ? ga_gdn_delta_chunked(&a, d_work, work_bytes, 0, &e)
                                               : ga_gdn_delta(&a, 0, &e);
        CHECK_MSG(st == GA_OK, "ga_gdn_delta%s: %s", step == 0 && dc.chunked ? "_chunked" : "",
                  e.msg);
        down(oh, d_o, n * vd * 2);
        widen(oh, of, n * vd);
        for (int b = 0; b < B; b++) {
            float *sb = st_cpu + (size_t)(slots ? slots[b] : b) * Hv * hs;
            for (int t = 0; t < T; t++) {
                size_t row = (size_t)b * T + t;
                const float *x = qkvf + row * qs, *ab = abf + row * abs_;
                for (int h = 0; h < Hv; h++) {
                    int hk = h / r;
                    prep(x + hk * dk, x + kd + hk * dk, dk, qn, kn);
                    ga_hyb_delta_step(sb + h * hs, oref + row * vd + (size_t)h * dv, qn, kn,
                                      x + 2 * kd + (size_t)h * dv,
                                      gate_g(ab[Hv + h], A_log[h], dtb[h]), sigm(ab[h]), dk, dv);
                }
            }
        }
        double e1 = nerr(of, oref, n * vd);
        eo = e1 > eo || !isfinite(e1) ? e1 : eo;
    }
    down(st_gpu, d_st, sn * 4);
    char shape[128];
    char impl[8] = "";
    if (dc.chunked) snprintf(impl, sizeof impl, "v%d ", chunk_impl);
    snprintf(shape, sizeof shape, "%sB %d T %d Hk %d Hv %d dk %d dv %d pool %d steps %d%s: o", impl,
             B, dc.T, Hk, Hv, dk, dv, pool, dc.steps, dc.slow_decay ? " slow" : "");
    report(dc.chunked ? "chunk" : "delta", shape, eo, TOL_BF16_OUT);
    snprintf(shape, sizeof shape, "%sB %d T %d Hk %d Hv %d dk %d dv %d pool %d steps %d%s: state",
             impl, B, dc.T, Hk, Hv, dk, dv, pool, dc.steps, dc.slow_decay ? " slow" : "");
    report(dc.chunked ? "chunk" : "delta", shape, nerr(st_gpu, st_cpu, sn), TOL_STATE);
    CU(cudaFree(d_A));
    CU(cudaFree(d_dt));
    CU(cudaFree(d_st));
    CU(cudaFree(d_qkv));
    CU(cudaFree(d_ab));
    CU(cudaFree(d_o));
    if (d_slots) CU(cudaFree(d_slots));
    if (d_work) CU(cudaFree(d_work));
    free(A_log), free(dtb), free(st_cpu), free(st_gpu), free(slots), free(qkvh), free(abh),
        free(oh), free(qkvf), free(abf), free(of), free(oref), free(qn), free(kn);
}

/* ---------------------------------------------------------------- norms */

/* Gated norm over rows x heads of n; z sits in a row zpad wider than the heads (the z part of
 * a fused projection row); in_place writes out over o. */
static void case_gated_norm(int rows, int heads, int n, int zpad, bool in_place) {
    const int W = heads * n, zs = W + zpad;
    uint16_t *oh = xmalloc((size_t)rows * W * 2), *zh = xmalloc((size_t)rows * zs * 2);
    uint16_t *outh = xmalloc((size_t)rows * W * 2);
    float *of = xmalloc((size_t)rows * W * 4), *zf = xmalloc((size_t)rows * zs * 4);
    float *w = xmalloc((size_t)n * 4), *ref = xmalloc((size_t)rows * W * 4);
    float *got = xmalloc((size_t)rows * W * 4);
    fill_bf16(oh, of, (size_t)rows * W, 0, 1);
    fill_bf16(zh, zf, (size_t)rows * zs, 0, 2);
    fill_f32(w, n, 1, 0.2f);
    void *d_o = dup_to_dev(oh, (size_t)rows * W * 2), *d_z = dup_to_dev(zh, (size_t)rows * zs * 2);
    float *d_w = dup_to_dev(w, (size_t)n * 4);
    void *d_out = in_place ? d_o : dmalloc((size_t)rows * W * 2);
    if (!in_place) poison(d_out, (size_t)rows * W * 2);
    ga_gdn_gated_norm_args a = {.o = d_o,
                                .z = d_z,
                                .w = d_w,
                                .out = d_out,
                                .rows = rows,
                                .heads = heads,
                                .n = n,
                                .o_stride = W,
                                .z_stride = zs,
                                .out_stride = W,
                                .eps = 1e-6f};
    ga_err e = {0};
    ga_status st = ga_gdn_gated_rmsnorm(&a, 0, &e);
    CHECK_MSG(st == GA_OK, "ga_gdn_gated_rmsnorm: %s", e.msg);
    down(outh, d_out, (size_t)rows * W * 2);
    widen(outh, got, (size_t)rows * W);
    for (int r = 0; r < rows; r++)
        for (int h = 0; h < heads; h++)
            ga_hyb_gated_rmsnorm(ref + (size_t)r * W + h * n, of + (size_t)r * W + h * n,
                                 zf + (size_t)r * zs + h * n, w, n, 1e-6f);
    char shape[96];
    snprintf(shape, sizeof shape, "rows %d heads %d n %d zpad %d%s", rows, heads, n, zpad,
             in_place ? " in place" : "");
    report("gnorm", shape, nerr(got, ref, (size_t)rows * W), TOL_BF16_OUT);
    CU(cudaFree(d_o));
    CU(cudaFree(d_z));
    CU(cudaFree(d_w));
    if (!in_place) CU(cudaFree(d_out));
    free(oh), free(zh), free(outh), free(of), free(zf), free(w), free(ref), free(got);
}

static void case_rmsnorm_zc(int rows, int n, int xpad, bool x_f32) {
    const int xs = n + xpad;
    const size_t xn = (size_t)rows * xs, on = (size_t)rows * n;
    uint16_t *xh = xmalloc(xn * 2), *outh = xmalloc(on * 2);
    float *xf = xmalloc(xn * 4), *w = xmalloc((size_t)n * 4), *ref = xmalloc(on * 4),
          *got = xmalloc(on * 4);
    if (x_f32)
        fill_f32(xf, xn, 0.3f, 2); /* the residual stream: fp32, off-centre */
    else
        fill_bf16(xh, xf, xn, 0, 1);
    fill_f32(w, n, 0, 0.1f); /* zero-centred weights: the scale is 1 + w */
    void *d_x = x_f32 ? dup_to_dev(xf, xn * 4) : dup_to_dev(xh, xn * 2);
    float *d_w = dup_to_dev(w, (size_t)n * 4);
    void *d_out = dmalloc(on * 2);
    poison(d_out, on * 2);
    ga_err e = {0};
    ga_status st = ga_gdn_rmsnorm_zc(d_x, x_f32, d_w, d_out, rows, n, xs, n, 1e-6f, 0, &e);
    CHECK_MSG(st == GA_OK, "ga_gdn_rmsnorm_zc: %s", e.msg);
    down(outh, d_out, on * 2);
    widen(outh, got, on);
    for (int r = 0; r < rows; r++)
        ga_hyb_rmsnorm_zc(ref + (size_t)r * n, xf + (size_t)r * xs, w, n, 1e-6f);
    char shape[96];
    snprintf(shape, sizeof shape, "rows %d n %d xpad %d x %s", rows, n, xpad,
             x_f32 ? "fp32" : "bf16");
    report("zcnorm", shape, nerr(got, ref, on), TOL_BF16_OUT);
    CU(cudaFree(d_x));
    CU(cudaFree(d_w));
    CU(cudaFree(d_out));
    free(xh), free(outh), free(xf), free(w), free(ref), free(got);
}

/* ---------------------------------------------------------------- sections */

static void gpu_sections(int argc, char **argv) {
    if (ga_test_want(argc, argv, "conv")) {
        /* Qwen3-Next conv_dim 8192 (2*16*128 + 32*128); 10240 for the larger Qwen3.5 ones */
        const int Ts[] = {1, 2, 3, 5, 31, 32, 33, 100, 1000};
        for (size_t i = 0; i < sizeof Ts / sizeof *Ts; i++)
            case_conv((conv_case){1, Ts[i], 8192, 4, 0, 1, 1});
        case_conv((conv_case){1, 77, 10240, 4, 4096, 1, 1}); /* x inside a wider row */
        case_conv((conv_case){1, 1, 37, 4, 3, 1, 1});        /* odd C, T < K-1 */
        case_conv((conv_case){1, 2, 37, 4, 0, 1, 1});
        case_conv((conv_case){1, 9, 37, 2, 0, 1, 1});
        case_conv((conv_case){1, 9, 37, 1, 0, 1, 1}); /* no state */
        case_conv((conv_case){1, 9, 100, 8, 0, 1, 1});
        case_conv((conv_case){1, 300, 8192, 4, 0, 1, 4}); /* prefill, then 3 decode steps */
        case_conv((conv_case){1, 2, 8192, 4, 0, 1, 5});   /* short prefill, then decodes */
        /* decode batches through shuffled slots of a larger pool */
        case_conv((conv_case){5, 1, 8192, 4, 0, 9, 3});
        case_conv((conv_case){64, 1, 10240, 4, 128, 100, 2});
        case_conv((conv_case){3, 40, 300, 4, 0, 7, 2}); /* B > 1 and T > 1 together */
        if (!quick) case_conv((conv_case){1, 4096, 8192, 4, 0, 1, 1});
    }
    if (ga_test_want(argc, argv, "delta")) {
        const delta_case cases[] = {
            /* decode, Qwen3-Next's shape (Hk 16, Hv 32, 128 x 128) */
            {1, 1, 16, 32, 128, 128, 1, 3, 0, 0},
            {7, 1, 16, 32, 128, 128, 12, 3, 1, 0},
            {2, 1, 4, 4, 64, 64, 5, 2, 0, 0},  /* Hv = Hk */
            {3, 1, 2, 6, 16, 16, 3, 4, 0, 0},  /* r = 3, dv below one tile */
            {2, 1, 2, 4, 32, 100, 4, 2, 1, 0}, /* dv off the 32-column tile */
            {2, 1, 1, 2, 256, 48, 2, 2, 0, 0}, /* the largest dk */
            /* prefills, then decodes */
            {1, 64, 16, 32, 128, 128, 1, 2, 1, 0},
            {1, 33, 2, 4, 64, 64, 1, 3, 0, 0},
            {1, 300, 4, 8, 128, 128, 1, 2, 1, 0},
            {1, 1000, 2, 4, 128, 128, 1, 1, 1, 0},
            {1, 17, 1, 3, 16, 16, 1, 2, 0, 0},
            {3, 20, 2, 4, 64, 96, 5, 2, 1, 0}, /* B > 1 and T > 1 together */
        };
        for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
            case_delta(cases[i]);
        if (!quick) case_delta((delta_case){1, 4096, 16, 32, 128, 128, 1, 1, 1, 0});
    }
    if (ga_test_want(argc, argv, "chunk")) {
        /* the chunked prefill equals T recurrent steps (the CPU op); then recurrent decodes
         * continue from the state it leaves. Chunk edges: T 1, 63, 64, 65, 129. */
        const delta_case cases[] = {
            {1, 1, 2, 4, 64, 64, 1, 1, 0, 1},
            {1, 63, 2, 4, 64, 64, 1, 2, 1, 1},
            {1, 64, 16, 32, 128, 128, 1, 2, 1, 1},
            {1, 65, 16, 32, 128, 128, 3, 3, 0, 1}, /* the slot picked from a pool of 3 */
            {1, 129, 1, 3, 16, 16, 1, 2, 1, 1},
            {1, 200, 2, 4, 32, 100, 1, 2, 1, 1}, /* dv off the column tile */
            {1, 300, 1, 2, 256, 64, 1, 2, 1, 1},
            {1, 1000, 4, 8, 128, 128, 1, 3, 1, 1},
            {1, 1000, 4, 4, 128, 128, 1, 1, 0, 1},
        };
        /* version 2 (the default) and version 1 (kept for A/B) in the same run */
        for (chunk_impl = 2; chunk_impl >= 1; chunk_impl--) {
            for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
                case_delta(cases[i]);
            if (!quick) case_delta((delta_case){1, 4096, 16, 32, 128, 128, 1, 1, 1, 1});
        }
        chunk_impl = 0;
    }
    if (ga_test_want(argc, argv, "norm")) {
        case_gated_norm(1, 32, 128, 0, false);
        case_gated_norm(7, 32, 128, 4096, false);
        case_gated_norm(1000, 3, 64, 0, false);
        case_gated_norm(5, 4, 100, 7, false); /* n off the warp */
        case_gated_norm(9, 2, 16, 0, false);
        case_gated_norm(33, 32, 128, 0, true);
        case_rmsnorm_zc(1, 2048, 0, true);
        case_rmsnorm_zc(7, 4096, 0, true);
        case_rmsnorm_zc(300, 1024, 0, false);
        case_rmsnorm_zc(64 * 16, 256, 0, false); /* per-head q/k norms, head_dim 256 */
        case_rmsnorm_zc(9, 128, 128, false);     /* strided rows */
        case_rmsnorm_zc(5, 100, 3, true);        /* n off the warp */
        case_rmsnorm_zc(3, 1, 0, false);
    }
    CU(cudaDeviceSynchronize());
}

int main(int argc, char **argv) {
    quick = atoi(ga_test_env("GA_TEST_QUICK", "0"));
    if (ga_test_want(argc, argv, "args")) args_section();
    bool args_only = argc > 1 && !strcmp(argv[1], "args") && argc == 2;
    if (!args_only) {
        if (!ga_cuda_available()) {
            printf("no CUDA GPU: skipped\n");
            return ga_t_fail ? ga_test_finish() : 77;
        }
        gpu_sections(argc, argv);
    }
    return ga_test_finish();
}
