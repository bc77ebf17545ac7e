/*
 * Op-level test harness in the manner of llama.cpp's tests/test-backend-ops.cpp: every CUDA op
 * is run on fresh random inputs over a table of shapes and compared with the CPU backend's OWN
 * op (src/cpu/cpu_ops.h, cpu_attention.h; the host sampler's argmax) on the same inputs, never
 * with a copy of the math written here. Outputs are poisoned (NaN bytes) before each launch, so
 * an unwritten element fails; NaN/Inf in an output fails; the error is the normalised
 * ||gpu - cpu|| / ||cpu|| against a per-op tolerance justified by the precision (comments at
 * the TOL_ definitions). One line per case: op, shape, error, tolerance, PASS/FAIL; then the
 * summary "N passed, M failed".
 *
 * Sections (ctest runs each as its own entry; no argument runs all):
 *   cpu      no GPU needed: the harness's own logic (the error measure fails on poison and NaN)
 *            and the calibration of the decode tolerance (a dropped 64-key chunk or a dropped
 *            last key at 32k keys must exceed it many times over)
 *   norm qk attn decode probs act embed argmax gate gemm    the CUDA ops (label gpu, exit 77
 *            without a GPU)
 *   fused    the decode step's fused GEMVs (kernels/gemv.cu): rmsnorm -> GEMV, rmsnorm ->
 *            gate|up GEMV -> SwiGLU, GEMV -> residual add, each against the composition of the
 *            CPU backend's rmsnorm, matmul and swiglu (M 1 and 2, the 1.7B shapes, odd N, K not
 *            a multiple of 256, with and without o_bias); a row alone is bitwise the same as in
 *            a batch of 2; whether each equals the unfused GPU ops bitwise is printed (info);
 *            on sm_90, the chain of two layers' fused GEMVs with programmatic dependent launch
 *            (on a stream and captured in a graph) is bitwise the chain without it
 *   rows     a row's bits do not depend on the launch: the rmsnorm (+ residual) and SwiGLU
 *            over 1, 2, 7, 512 of 2048 rows against the 2048-row launch, bitwise, rows outside
 *            the window untouched; the norm and the SwiGLU bitwise against gemv.cu's fused
 *            norm and SwiGLU epilogue (the decode path)
 *   paged    the paged KV cache's ops: decode attention through block tables, the prefill's
 *            gather + prefill kernels, the qk_rope K/V write to table destinations (block
 *            sizes 16/32/64, shuffled block ids, lengths off the block size) vs the CPU
 *            backend's paged attention
 * GA_TEST_QUICK=1 drops the largest shapes.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/backend.h"
#include "core/gate_layout.h"
#include "core/tensor.h"
#include "cpu/cpu_attention.h"
#include "cpu/cpu_ops.h"
#include "engine/sampler.h"
#include "testutil.h"

#ifdef GA_HAVE_CUDA
#include <cuda_runtime.h>

#include "cuda/cuda_internal.h"
#include "cuda_testutil.h"
#include "kernels.h"
#endif

/* ---------------------------------------------------------------- tolerances
 * Normalised errors ||gpu - cpu|| / ||cpu||. The kernels read bf16 inputs exactly (the CPU op
 * gets the same bf16 values widened to fp32) and compute in fp32, so what separates them is:
 *  - one bf16 rounding of the output: |err| <= 2^-9 |x| per element, so the normalised error
 *    is at most 2^-9 = 1.95e-3 (about 1.1e-3 for random data): TOL_BF16_OUT 2.5e-3 leaves room
 *    for the fp32 arithmetic (~1e-6) and --use_fast_math's approximate exp/rcp (~1e-6);
 *  - attention adds a bf16 rounding of P before the PV product (prefill) on top of the
 *    output's: two roundings, ~1.6e-3 for random data, <= 3.9e-3 in the worst case:
 *    TOL_ATTN 5e-3. What a one-chunk error does to this measure is computed (not assumed) by
 *    the `cpu` section; see decode_calibration();
 *  - fp32 outputs (the residual stream, the fp32 GEMM, lse, probability maps) differ only in
 *    summation order and approximate exp2: TOL_F32 2e-5 (K = 1024 products give
 *    ~sqrt(K) * 2^-24 = 2e-6), TOL_MAP 1e-4 for maps recomputed from lse through ex2.approx
 *    (relative 2^-22 per probability times a score of up to ~50);
 *  - gathers (embedding) are exact: TOL_EXACT 0. */
#define TOL_BF16_OUT 2.5e-3
/* The fused decode GEMVs against the CPU ops composed with the GPU's bf16 roundings between them
 * (the normalised input, g and u): the reference xn can still land one bf16 step (2^-8
 * relative) from the kernel's where fp32 rsqrtf and the CPU's double 1/sqrt straddle a rounding
 * boundary (~1e-5 of the elements); one such element moves the product by at most
 * 2^-8 |xn_i| / ||xn||, under 5e-4 at K >= 64 but for an outlier. On top of the bf16 output's
 * rounding (<= 1.95e-3): TOL_FUSED 3e-3. A dropped 16-byte chunk of K moves a row by
 * sqrt(8 / K) (>= 3.6e-2 at K = 6144), a wrong norm (weight, eps, row) by O(1). */
#define TOL_FUSED 3e-3
#define TOL_ATTN 5e-3
#define TOL_F32 2e-5
#define TOL_MAP 1e-4
#define TOL_EXACT 0.0

static uint64_t rng = 0x0b5eed0f5ull;
static int quick;
static ga_pool *pool;

/* One line per case; non-finite errors (NaN or Inf in the output) always fail. */
static void report(const char *op, const char *shape, double err, double tol) {
    bool ok = isfinite(err) && err <= tol;
    printf("%-10s %-56s err %-10.3g tol %-8.2g %s\n", op, shape, err, tol, ok ? "PASS" : "FAIL");
    fflush(stdout);
    if (ok)
        ga_t_pass++;
    else
        ga_t_fail++;
}

/* The error measure: ||a - b|| / ||b||, INFINITY when a holds a NaN/Inf (so poison fails). */
static double nerr(const float *a, const float *b, size_t n) {
    return ga_test_rel_l2(a, b, n);
}

static void *xmalloc(size_t bytes) {
    void *p = malloc(bytes ? bytes : 16);
    if (!p) {
        fprintf(stderr, "test_backend_ops: out of host memory (%zu bytes)\n", bytes);
        exit(1);
    }
    return p;
}

/* n N(0, std^2) values rounded to bf16; f (optional) gets the same values widened. */
static void fill_bf16(uint16_t *h, float *f, size_t n, float std) {
    for (size_t i = 0; i < n; i++) {
        h[i] = ga_f32_to_bf16(std * ga_test_rand_normal(&rng));
        if (f) f[i] = ga_bf16_to_f32(h[i]);
    }
}
static void widen(const uint16_t *h, float *f, size_t n) {
    for (size_t i = 0; i < n; i++)
        f[i] = ga_bf16_to_f32(h[i]);
}

/* ---------------------------------------------------------------- decode inputs
 * One KV head's keys/values (len rows of hd) and the G queries reading them. Each query leans
 * on the head's last key (q = a k_last + 1.5 noise, a chosen so that the last key's score is
 * about (ln(len)/2 + 1) above the others' mean), so the newest key carries a visible
 * share of the probability, as a token's own key does in a real model; with independent keys
 * only, dropping the last key of 32k would change the output by ~1/sqrt(32k) and no sensible
 * tolerance could see it. The rest of the row keeps a spread of scores, so a dropped chunk in
 * the middle shows too (numbers in decode_calibration()). */
static void decode_inputs(uint16_t *k, uint16_t *v, uint16_t *q, int len, int hd, int G,
                          size_t q_pitch) {
    fill_bf16(k, NULL, (size_t)len * hd, 1.0f);
    fill_bf16(v, NULL, (size_t)len * hd, 1.0f);
    const uint16_t *kl = k + (size_t)(len - 1) * hd;
    const float a = (float)((0.5 * log((double)len) + 1.0) / sqrt((double)hd));
    for (int g = 0; g < G; g++)
        for (int e = 0; e < hd; e++)
            q[(size_t)g * q_pitch + e] =
                ga_f32_to_bf16(a * ga_bf16_to_f32(kl[e]) + 1.5f * ga_test_rand_normal(&rng));
}

/* ---------------------------------------------------------------- cpu: the harness itself */

/* Attention of query q over keys [0, len) with keys [drop0, drop1) left out (the bug a split
 * kernel makes when it loses a chunk), through the CPU op on a compacted copy. */
static void attend_dropping(const float *q, const float *K, const float *V, int len, int hd,
                            int drop0, int drop1, float *out) {
    int n = len - (drop1 - drop0);
    float *k2 = xmalloc((size_t)n * hd * 4), *v2 = xmalloc((size_t)n * hd * 4),
          *p = xmalloc((size_t)len * 4);
    size_t a = (size_t)drop0 * hd, b = (size_t)(len - drop1) * hd;
    memcpy(k2, K, a * 4), memcpy(k2 + a, K + (size_t)drop1 * hd, b * 4);
    memcpy(v2, V, a * 4), memcpy(v2 + a, V + (size_t)drop1 * hd, b * 4);
    ga_cpu_attend(q, k2, v2, n, hd, 1.0f / sqrtf((float)hd), NULL, GA_GATE_NONE, out, p);
    free(k2), free(v2), free(p);
}

/* The decode tolerance must see the bugs a split-KV decode kernel makes: one chunk (64 keys,
 * 32 at hd 256) lost, or the last key lost. With decode_inputs(), measured here over 8 heads
 * (2026-12, printed on every run):
 *   hd 64,  32768 keys: one chunk dropped 4.9e-2, last key dropped 0.13
 *   hd 128, 32768 keys: one chunk dropped 3.3e-2, last key dropped 0.73
 *   hd 256,  8192 keys: one chunk dropped 4.8e-2, last key dropped 0.64 (quick: 5.5e-2, 0.15)
 * against TOL_ATTN = 5e-3 (a correct kernel: ~1.6e-3), i.e. 6.5x to 146x the tolerance. The
 * old absolute tolerance (5e-3 per element) was ~40% of a typical output element at 32k keys
 * (|o| ~ 1/sqrt(keys)), so one chunk was borderline and the last key invisible. The case
 * fails unless each bug is at least 5x the tolerance. hd 256's 32-key chunk is half the keys:
 * at 16k-32k keys losing one moves this measure by only 1.2e-2 to 1.8e-2 (2.5x to 3.5x), so
 * its calibration holds up to 8192 keys; its longer decode cases below still fail on such a
 * loss, with less margin, and the shorter ones are where a lost chunk shows plainly. */
static void decode_calibration(void) {
    const int heads = 8;
    for (int hd = 64; hd <= 256; hd *= 2) {
        const int len = quick || hd == 256 ? 8192 : 32768;
        const int ch = hd == 256 ? 32 : 64; /* the decode kernel's chunk at this hd */
        uint16_t *k = xmalloc((size_t)len * hd * 2), *v = xmalloc((size_t)len * hd * 2),
                 *q = xmalloc((size_t)heads * hd * 2);
        float *kf = xmalloc((size_t)len * hd * 4), *vf = xmalloc((size_t)len * hd * 4),
              *qf = xmalloc((size_t)heads * hd * 4), *p = xmalloc((size_t)len * 4);
        float *ref = xmalloc((size_t)heads * hd * 4), *chunk = xmalloc((size_t)heads * hd * 4),
              *last = xmalloc((size_t)heads * hd * 4);
        decode_inputs(k, v, q, len, hd, heads, hd);
        widen(k, kf, (size_t)len * hd), widen(v, vf, (size_t)len * hd);
        widen(q, qf, (size_t)heads * hd);
        for (int h = 0; h < heads; h++) {
            float *o = ref + (size_t)h * hd;
            ga_cpu_attend(qf + (size_t)h * hd, kf, vf, len, hd, 1.0f / sqrtf((float)hd), NULL,
                          GA_GATE_NONE, o, p);
            /* a chunk in the middle of the row, and the last key */
            int c0 = (len / 2 / ch + h) * ch;
            attend_dropping(qf + (size_t)h * hd, kf, vf, len, hd, c0, c0 + ch,
                            chunk + (size_t)h * hd);
            attend_dropping(qf + (size_t)h * hd, kf, vf, len, hd, len - 1, len,
                            last + (size_t)h * hd);
        }
        char shape[96];
        double ec = nerr(chunk, ref, (size_t)heads * hd), el = nerr(last, ref, (size_t)heads * hd);
        snprintf(shape, sizeof shape, "keys %d hd %d: one %d-key chunk dropped %.3g, last key %.3g",
                 len, hd, ch, ec, el);
        /* reported as "error of the tolerance over the bug": must be <= 1/5 */
        report("calib", shape, TOL_ATTN / (ec < el ? ec : el), 0.2);
        free(k), free(v), free(q), free(kf), free(vf), free(qf), free(p), free(ref), free(chunk),
            free(last);
    }
}

static void harness_selftest(void) {
    float ref[5] = {1.01f, -2.03f, 3.07f, 0.51f, 0.1f}, a[5];
    memcpy(a, ref, sizeof a);
    report("self", "identical arrays: error 0", nerr(a, ref, 5), TOL_EXACT);
    a[4] = NAN; /* an element left poisoned */
    double e = nerr(a, ref, 5);
    report("self", "poisoned element must give a non-finite error", isfinite(e) ? 1.0 : 0.0, 0.0);
    a[4] = INFINITY;
    e = nerr(a, ref, 5);
    report("self", "Inf element must give a non-finite error", isfinite(e) ? 1.0 : 0.0, 0.0);
    for (int i = 0; i < 5; i++) /* one bf16 rounding is within TOL_BF16_OUT */
        a[i] = ga_bf16_to_f32(ga_f32_to_bf16(ref[i]));
    report("self", "one bf16 rounding", nerr(a, ref, 5), TOL_BF16_OUT);
}

#ifdef GA_HAVE_CUDA
/* ---------------------------------------------------------------- device helpers */
/* A launcher's failure is a failed case with its message. */
static bool launched(ga_status st, const ga_err *err, const char *op, const char *shape) {
    if (st == GA_OK) return true;
    printf("%-10s %-56s launch failed: %s: %s FAIL\n", op, shape, ga_status_name(st), err->msg);
    ga_t_fail++;
    return false;
}

/* ---------------------------------------------------------------- rmsnorm (+ residual) */
static void case_rmsnorm(int rows, int dim, bool delta, bool bias) {
    char shape[96];
    snprintf(shape, sizeof shape, "rows %d dim %d delta %d bias %d", rows, dim, delta, bias);
    size_t n = (size_t)rows * dim;
    float *x = xmalloc(n * 4), *d = xmalloc(n * 4), *b = xmalloc(dim * 4), *w = xmalloc(dim * 4);
    float *xref = xmalloc(n * 4), *oref = xmalloc(n * 4), *xg = xmalloc(n * 4),
          *og = xmalloc(n * 4);
    uint16_t *oh = xmalloc(n * 2);
    for (size_t i = 0; i < n; i++)
        x[i] = 3.f * ga_test_rand_normal(&rng), d[i] = ga_test_rand_normal(&rng);
    for (int i = 0; i < dim; i++)
        b[i] = 0.5f * ga_test_rand_normal(&rng), w[i] = 1.f + 0.3f * ga_test_rand_normal(&rng);
    const float eps = 1e-6f;
    /* CPU: the backend's residual add (x += o_proj(...) + bias folded in the GEMM), then its
     * rmsnorm */
    for (size_t i = 0; i < n; i++)
        xref[i] = delta ? x[i] + (d[i] + (bias ? b[i % dim] : 0.f)) : x[i];
    for (int r = 0; r < rows; r++)
        ga_cpu_rmsnorm(oref + (size_t)r * dim, xref + (size_t)r * dim, w, dim, eps);
    float *dx = dup_to_dev(x, n * 4), *dd = dup_to_dev(d, n * 4), *db = dup_to_dev(b, dim * 4),
          *dw = dup_to_dev(w, dim * 4);
    void *dout = dmalloc(n * 2);
    poison(dout, n * 2);
    ga_err err = {{0}};
    if (launched(ga_rmsnorm_residual(dx, delta ? dd : NULL, bias ? db : NULL, dw, dout, rows, dim,
                                     eps, 0, &err),
                 &err, "rmsnorm", shape)) {
        down(xg, dx, n * 4);
        down(oh, dout, n * 2);
        widen(oh, og, n);
        if (delta) report("residual", shape, nerr(xg, xref, n), TOL_F32);
        report("rmsnorm", shape, nerr(og, oref, n), TOL_BF16_OUT);
    }
    cudaFree(dx), cudaFree(dd), cudaFree(db), cudaFree(dw), cudaFree(dout);
    free(x), free(d), free(b), free(w), free(xref), free(oref), free(xg), free(og), free(oh);
}

/* A random permutation of 0..n-1 (paged cases: shuffled block ids). */
static void shuffle_ids(int *ids, int n) {
    for (int i = 0; i < n; i++)
        ids[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int j = (int)(ga_test_rand_u64(&rng) % (uint64_t)(i + 1)), t = ids[i];
        ids[i] = ids[j], ids[j] = t;
    }
}

/* ---------------------------------------------------------------- qk-norm / RoPE / gate split /
 * KV write */
typedef struct qk_case {
    int T, hd, G, n_kv;
    ga_gate_mode mode;
    bool bias, qknorm, decode; /* decode: per-row positions and slots from device arrays */
    int pos0;
    int bs; /* > 0 (decode only): paged, each row's K/V to the cache row dest[t] (kernels.h) of
               blocks of bs rows, its logical (slot, position) block mapped to a shuffled id */
} qk_case;

/* One qk_rope launch's outputs on the host: q, the raw gate and the whole K/V caches. */
typedef struct qk_out {
    uint16_t *q, *g, *k, *v;
    size_t nq, ng, ncache; /* elements */
} qk_out;

static qk_out qk_out_alloc(size_t nq, size_t ng, size_t ncache) {
    return (qk_out){
        xmalloc(nq * 2), xmalloc(ng * 2), xmalloc(ncache * 2), xmalloc(ncache * 2), nq, ng, ncache};
}
static void qk_out_free(qk_out *o) {
    free(o->q), free(o->g), free(o->k), free(o->v);
}

/* Poisons the outputs, launches a (through a->impl), brings the outputs down into o. */
static bool qk_run(const ga_qk_rope_args *a, qk_out *o, const char *what, const char *shape) {
    poison(a->q_out, o->nq * 2), poison(a->k_cache, o->ncache * 2);
    poison(a->v_cache, o->ncache * 2);
    if (o->ng) poison(a->gate_out, o->ng * 2);
    ga_err err = {{0}};
    if (!launched(ga_qk_norm_rope(a, 0, &err), &err, what, shape)) return false;
    down(o->q, a->q_out, o->nq * 2), down(o->k, a->k_cache, o->ncache * 2);
    down(o->v, a->v_cache, o->ncache * 2);
    if (o->ng) down(o->g, a->gate_out, o->ng * 2);
    return true;
}

static void qk_same(const char *what, const char *shape, const void *a, const void *b,
                    size_t bytes) {
    const bool same = !memcmp(a, b, bytes);
    printf("%-10s %-56s %s %s\n", what, shape, same ? "bitwise equal" : "DIFFERENT",
           same ? "PASS" : "FAIL");
    if (same)
        ga_t_pass++;
    else
        ga_t_fail++;
}

static void case_qk(qk_case k) {
    char shape[96];
    snprintf(shape, sizeof shape, "T %d hd %d G %d kv %d %s bias %d qkn %d %s pos0 %d", k.T, k.hd,
             k.G, k.n_kv, ga_gate_mode_name(k.mode), k.bias, k.qknorm, k.decode ? "dec" : "pf",
             k.pos0);
    const int T = k.T, hd = k.hd, nkv = k.n_kv, nh = k.G * nkv, half = hd / 2, max_batch = 3;
    const ga_gate_layout L = ga_gate_layout_make(nh, nkv, hd, k.mode);
    const int q_rows = ga_gate_layout_q_rows(&L), gd = ga_gate_layout_gate_dim(&L);
    const int kvd = nkv * hd, qkv_dim = q_rows + 2 * kvd;
    const int stride = k.bs ? 3 * k.bs : k.decode ? 50 : k.pos0 + T + 3;
    const float eps = 1e-6f;
    size_t nq = (size_t)T * qkv_dim, ncache = (size_t)max_batch * nkv * stride * hd;
    uint16_t *hqkv = xmalloc(nq * 2);
    float *fqkv = xmalloc(nq * 4), *bias = xmalloc(qkv_dim * 4), *qn = xmalloc(hd * 4),
          *kn = xmalloc(hd * 4), *cs, *sn;
    fill_bf16(hqkv, fqkv, nq, 2.f);
    for (int i = 0; i < qkv_dim; i++)
        bias[i] = 0.3f * ga_test_rand_normal(&rng);
    for (int i = 0; i < hd; i++)
        qn[i] = 1.f + 0.2f * ga_test_rand_normal(&rng),
        kn[i] = 1.f + 0.2f * ga_test_rand_normal(&rng);
    if (ga_cpu_rope_table(&cs, &sn, stride, hd, 1e6)) exit(1); /* the CPU backend's table */
    int *pos = xmalloc(T * sizeof(int)), *slot = xmalloc(T * sizeof(int));
    int *dst = xmalloc(T * sizeof(int)), ids[9 * 3];
    for (int t = 0; t < T; t++) {
        /* decode rows: distinct (slot, position) pairs so no two rows write one cache row */
        pos[t] = k.decode ? (t * 7 + 3) % stride : k.pos0 + t;
        slot[t] = k.decode ? (t / stride) % max_batch : 1;
    }
    if (k.bs) { /* max_batch * stride / bs = 9 blocks, shuffled */
        shuffle_ids(ids, max_batch * stride / k.bs);
        for (int t = 0; t < T; t++) {
            const int lrow = slot[t] * stride + pos[t];
            dst[t] = ids[lrow / k.bs] * k.bs + lrow % k.bs;
        }
    }
    /* CPU: the backend's attention-input pass, row by row, on the bias-added fp32 row */
    float *qref = xmalloc((size_t)T * nh * hd * 4), *gref = xmalloc((size_t)T * gd * 4 + 4);
    float *kref = xmalloc((size_t)T * kvd * 4), *vref = xmalloc((size_t)T * kvd * 4);
    float *row = xmalloc(qkv_dim * 4);
    for (int t = 0; t < T; t++) {
        for (int i = 0; i < qkv_dim; i++)
            row[i] = fqkv[(size_t)t * qkv_dim + i] + (k.bias ? bias[i] : 0.f);
        ga_cpu_qk_args a = {.layout = &L,
                            .qg = row,
                            .k = row + q_rows,
                            .v = row + q_rows + kvd,
                            .q_norm = k.qknorm ? qn : NULL,
                            .k_norm = k.qknorm ? kn : NULL,
                            .cos_row = cs + (size_t)pos[t] * half,
                            .sin_row = sn + (size_t)pos[t] * half,
                            .eps = eps,
                            .q_out = qref + (size_t)t * nh * hd,
                            .gate_out = gd ? gref + (size_t)t * gd : NULL,
                            .k_out = kref + (size_t)t * kvd,
                            .v_out = vref + (size_t)t * kvd,
                            .kv_pitch = (size_t)hd};
        ga_cpu_qk_prep(&a);
    }
    void *dqkv = dup_to_dev(hqkv, nq * 2), *dq = dmalloc((size_t)T * nh * hd * 2),
         *dg = dmalloc((size_t)T * gd * 2), *dk = dmalloc(ncache * 2), *dv = dmalloc(ncache * 2);
    float *dbias = dup_to_dev(bias, qkv_dim * 4), *dqn = dup_to_dev(qn, hd * 4),
          *dkn = dup_to_dev(kn, hd * 4), *dcs = dup_to_dev(cs, (size_t)stride * half * 4),
          *dsn = dup_to_dev(sn, (size_t)stride * half * 4);
    int *dpos = dup_to_dev(pos, T * sizeof(int)), *dslot = dup_to_dev(slot, T * sizeof(int)),
        *ddst = dup_to_dev(dst, T * sizeof(int));
    ga_qk_rope_args a = {.qkv = dqkv,
                         .bias = k.bias ? dbias : NULL,
                         .q_norm = k.qknorm ? dqn : NULL,
                         .k_norm = k.qknorm ? dkn : NULL,
                         .rope_cos = dcs,
                         .rope_sin = dsn,
                         .q_out = dq,
                         .gate_out = gd ? dg : NULL,
                         .k_cache = dk,
                         .v_cache = dv,
                         .positions = k.decode ? dpos : NULL,
                         .slots = k.decode && !k.bs ? dslot : NULL,
                         .dest = k.bs ? ddst : NULL,
                         .pos0 = k.pos0,
                         .slot = 1,
                         .T = T,
                         .n_heads = nh,
                         .n_kv_heads = nkv,
                         .hd = hd,
                         .kv_stride = k.bs ? k.bs : stride,
                         .rope_rows = stride,
                         .gate_mode = k.mode,
                         .eps = eps};
    const size_t nqo = (size_t)T * nh * hd, row_q = (size_t)nh * hd;
    qk_out o = qk_out_alloc(nqo, (size_t)T * gd, ncache);
    /* The cache element of (token t, KV head j, e) */
#define QK_CI(t, j, e)                                                                             \
    (k.bs ? (((size_t)(dst[t] / k.bs) * nkv + (j)) * k.bs + dst[t] % k.bs) * hd + (e)              \
          : (((size_t)slot[t] * nkv + (j)) * stride + pos[t]) * hd + (e))
    if (qk_run(&a, &o, "qk_rope", shape)) {
        float *fq = xmalloc(nqo * 4), *fg = xmalloc((size_t)T * gd * 4),
              *fk = xmalloc((size_t)T * kvd * 4), *fv = xmalloc((size_t)T * kvd * 4);
        widen(o.q, fq, nqo);
        widen(o.g, fg, (size_t)T * gd);
        for (int t = 0; t < T; t++)
            for (int j = 0; j < nkv; j++)
                for (int e = 0; e < hd; e++) {
                    fk[((size_t)t * nkv + j) * hd + e] = ga_bf16_to_f32(o.k[QK_CI(t, j, e)]);
                    fv[((size_t)t * nkv + j) * hd + e] = ga_bf16_to_f32(o.v[QK_CI(t, j, e)]);
                }
        /* Everything outside the written rows must still be poison (no stray writes). */
        size_t written = 0;
        for (size_t i = 0; i < ncache; i++)
            written += o.k[i] != 0xffff;
        report("qk_rope.q", shape, nerr(fq, qref, nqo), TOL_BF16_OUT);
        if (gd) report("qk_rope.g", shape, nerr(fg, gref, (size_t)T * gd), TOL_BF16_OUT);
        report("qk_rope.k", shape, nerr(fk, kref, (size_t)T * kvd), TOL_BF16_OUT);
        report("qk_rope.v", shape, nerr(fv, vref, (size_t)T * kvd), TOL_BF16_OUT);
        report("qk_rope.w", shape, written > (size_t)T * kvd ? INFINITY : 0.0, TOL_EXACT);
        free(fq), free(fg), free(fk), free(fv);

        /* The other kernel (hd 64/128/256 have two): the same bits everywhere, poison
         * included, as its pinned arithmetic promises (kernels/qk_rope.cu). */
        if (hd == 64 || hd == 128 || hd == 256) {
            qk_out o2 = qk_out_alloc(nqo, (size_t)T * gd, ncache);
            ga_qk_rope_args a2 = a;
            a2.impl = GA_QK_IMPL_GENERIC;
            if (qk_run(&a2, &o2, "qk_rope.generic", shape)) {
                qk_same("qk_rope.=q", shape, o.q, o2.q, nqo * 2);
                if (gd) qk_same("qk_rope.=g", shape, o.g, o2.g, (size_t)T * gd * 2);
                qk_same("qk_rope.=k", shape, o.k, o2.k, ncache * 2);
                qk_same("qk_rope.=v", shape, o.v, o2.v, ncache * 2);
            }
            qk_out_free(&o2);
        }
        /* The last row launched alone (T = 1) gives the bits it had among T rows: decode and
         * recompute, batched and single, rely on a row not depending on its launch. */
        if (T > 1) {
            const int t = T - 1;
            qk_out o1 = qk_out_alloc(row_q, (size_t)gd, ncache);
            ga_qk_rope_args a1 = a;
            a1.T = 1;
            a1.qkv = (const uint16_t *)dqkv + (size_t)t * qkv_dim;
            a1.positions = a.positions ? a.positions + t : NULL;
            a1.slots = a.slots ? a.slots + t : NULL;
            a1.dest = a.dest ? a.dest + t : NULL;
            a1.pos0 = k.pos0 + t;
            if (qk_run(&a1, &o1, "qk_rope.1", shape)) {
                uint16_t *kb = xmalloc((size_t)kvd * 2 * 2), *k1 = xmalloc((size_t)kvd * 2 * 2);
                for (int j = 0; j < nkv; j++)
                    for (int e = 0; e < hd; e++) {
                        kb[j * hd + e] = o.k[QK_CI(t, j, e)], k1[j * hd + e] = o1.k[QK_CI(t, j, e)];
                        kb[kvd + j * hd + e] = o.v[QK_CI(t, j, e)];
                        k1[kvd + j * hd + e] = o1.v[QK_CI(t, j, e)];
                    }
                qk_same("qk_rope.1q", shape, o.q + (size_t)t * row_q, o1.q, row_q * 2);
                if (gd) qk_same("qk_rope.1g", shape, o.g + (size_t)t * gd, o1.g, (size_t)gd * 2);
                qk_same("qk_rope.1kv", shape, kb, k1, (size_t)kvd * 2 * 2);
                free(kb), free(k1);
            }
            qk_out_free(&o1);
        }
    }
#undef QK_CI
    qk_out_free(&o);
    /* The warp kernel exists for hd 64/128/256 only; asked for another, the launcher says so. */
    if (hd != 64 && hd != 128 && hd != 256) {
        ga_qk_rope_args aw = a;
        aw.impl = GA_QK_IMPL_WARP;
        ga_err err = {{0}};
        const bool refused = ga_qk_norm_rope(&aw, 0, &err) == GA_ERR_ARG && strstr(err.msg, "impl");
        printf("%-10s %-56s warp impl refused: %s %s\n", "qk_rope", shape, err.msg,
               refused ? "PASS" : "FAIL");
        if (refused)
            ga_t_pass++;
        else
            ga_t_fail++;
    }
    void *dfree[] = {dqkv, dq, dg, dk, dv, dbias, dqn, dkn, dcs, dsn, dpos, dslot, ddst};
    for (size_t i = 0; i < sizeof dfree / sizeof *dfree; i++)
        cudaFree(dfree[i]);
    void *hfree[] = {hqkv, fqkv, bias, qn, kn, cs, sn, pos, slot, dst, qref, gref, kref, vref, row};
    for (size_t i = 0; i < sizeof hfree / sizeof *hfree; i++)
        free(hfree[i]);
}

/* Time per launch of each qk_rope kernel at the paper's 1.7B shape (16 q / 8 KV heads, hd
 * 128, q/k norm, no bias): 20 launches captured in a graph and replayed, so what is timed is
 * the kernels and the graph's gaps, not the host's launch rate, as in the decode graphs. The
 * inputs stay in L2 between launches (4 MB at T 512), as they do after the QKV GEMM. Printed
 * only: performance is measured, never asserted in a test (bench/RESULTS.md has the profile). */
static double qk_time(ga_qk_rope_args a) {
    cudaStream_t st;
    cudaGraph_t g;
    cudaGraphExec_t ge;
    cudaEvent_t e0, e1;
    ga_err err = {{0}};
    CU(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
    CU(cudaEventCreate(&e0));
    CU(cudaEventCreate(&e1));
    if (ga_qk_norm_rope(&a, st, &err)) { /* a bad argument: say so once, time nothing */
        printf("qk_rope    timing launch failed: %s\n", err.msg);
        ga_t_fail++;
        CU(cudaEventDestroy(e0));
        CU(cudaEventDestroy(e1));
        CU(cudaStreamDestroy(st));
        return INFINITY;
    }
    CU(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal));
    for (int i = 0; i < 20; i++)
        if (ga_qk_norm_rope(&a, st, &err)) break;
    CU(cudaStreamEndCapture(st, &g));
    CU(cudaGraphInstantiate(&ge, g, 0));
    CU(cudaGraphLaunch(ge, st));
    CU(cudaEventRecord(e0, st));
    for (int r = 0; r < 10; r++)
        CU(cudaGraphLaunch(ge, st));
    CU(cudaEventRecord(e1, st));
    CU(cudaStreamSynchronize(st));
    float ms = 0.f;
    CU(cudaEventElapsedTime(&ms, e0, e1));
    CU(cudaGraphExecDestroy(ge));
    CU(cudaGraphDestroy(g));
    CU(cudaEventDestroy(e0));
    CU(cudaEventDestroy(e1));
    CU(cudaStreamDestroy(st));
    return ms * 1e3 / 200.0;
}

static void qk_timing(void) {
    const int nkv = 8, G = 2, hd = 128, nh = G * nkv, maxT = 2048;
    const int Ts[] = {1, 8, 64, 512, 2048};
    const ga_gate_mode modes[] = {GA_GATE_NONE, GA_GATE_HEADWISE, GA_GATE_ELEMENTWISE};
    for (int m = 0; m < 3; m++) {
        const ga_gate_layout L = ga_gate_layout_make(nh, nkv, hd, modes[m]);
        const int q_rows = ga_gate_layout_q_rows(&L), gd = ga_gate_layout_gate_dim(&L);
        const int qkv_dim = q_rows + 2 * nkv * hd;
        uint16_t *hqkv = xmalloc((size_t)maxT * qkv_dim * 2);
        fill_bf16(hqkv, NULL, (size_t)maxT * qkv_dim, 2.f);
        float *cs, *sn, *w = xmalloc(hd * 4);
        for (int i = 0; i < hd; i++)
            w[i] = 1.f + 0.2f * ga_test_rand_normal(&rng);
        if (ga_cpu_rope_table(&cs, &sn, maxT, hd, 1e6)) exit(1);
        int *pos = xmalloc(maxT * sizeof(int)), *slot = xmalloc(maxT * sizeof(int));
        for (int t = 0; t < maxT; t++) /* decode form: T sequences, one row each */
            pos[t] = (t * 37) % maxT, slot[t] = t;
        void *dqkv = dup_to_dev(hqkv, (size_t)maxT * qkv_dim * 2);
        void *dq = dmalloc((size_t)maxT * nh * hd * 2), *dg = dmalloc((size_t)maxT * gd * 2 + 2);
        /* (max_batch = maxT, n_kv, kv_stride = maxT, hd): 8 GB is too much; prefill rows use
         * slot 0, decode rows slots 0..63 */
        const size_t ncache = (size_t)64 * nkv * maxT * hd;
        void *dk = dmalloc(ncache * 2), *dv = dmalloc(ncache * 2);
        float *dw = dup_to_dev(w, hd * 4), *dcs = dup_to_dev(cs, (size_t)maxT * hd / 2 * 4),
              *dsn = dup_to_dev(sn, (size_t)maxT * hd / 2 * 4);
        int *dpos = dup_to_dev(pos, maxT * sizeof(int)), *dslot = dup_to_dev(slot, maxT * 4);
        for (int ti = 0; ti < 5; ti++) {
            const int T = Ts[ti];
            const bool dec = T <= 64;
            ga_qk_rope_args a = {.qkv = dqkv,
                                 .q_norm = dw,
                                 .k_norm = dw,
                                 .rope_cos = dcs,
                                 .rope_sin = dsn,
                                 .q_out = dq,
                                 .gate_out = gd ? dg : NULL,
                                 .k_cache = dk,
                                 .v_cache = dv,
                                 .positions = dec ? dpos : NULL,
                                 .slots = dec ? dslot : NULL,
                                 .T = T,
                                 .n_heads = nh,
                                 .n_kv_heads = nkv,
                                 .hd = hd,
                                 .kv_stride = maxT,
                                 .rope_rows = maxT,
                                 .gate_mode = modes[m],
                                 .eps = 1e-6f};
            a.impl = GA_QK_IMPL_GENERIC;
            const double tg = qk_time(a);
            a.impl = GA_QK_IMPL_WARP;
            const double tw = qk_time(a);
            /* bytes: the qkv rows in, q + gate + K + V out */
            const double mb = (double)T * 2 * (qkv_dim + nh * hd + gd + 2 * nkv * hd) / 1e6;
            printf("qk_rope    time 1.7B %-10s T %-4d %s: generic %7.2f us, warp %7.2f us "
                   "(%.2f MB, %.0f GB/s)\n",
                   ga_gate_mode_name(modes[m]), T, dec ? "dec" : "pf ", tg, tw, mb, mb * 1e3 / tw);
        }
        void *dfree[] = {dqkv, dq, dg, dk, dv, dw, dcs, dsn, dpos, dslot};
        for (size_t i = 0; i < sizeof dfree / sizeof *dfree; i++)
            cudaFree(dfree[i]);
        free(hqkv), free(w), free(cs), free(sn), free(pos), free(slot);
    }
}

/* ---------------------------------------------------------------- prefill attention */
typedef struct attn_case {
    int hd, G, n_kv, T, pos0;
    ga_gate_mode mode;
} attn_case;

static void case_prefill(attn_case c, int impl) {
    static const char *const impls[] = {"auto", "mma", "wgmma"};
    char shape[96];
    snprintf(shape, sizeof shape, "%s hd %d G %d kv %d T %d pos0 %d %s", impls[impl], c.hd, c.G,
             c.n_kv, c.T, c.pos0, ga_gate_mode_name(c.mode));
    const int hd = c.hd, T = c.T, nkv = c.n_kv, nh = c.G * nkv, kv_len = c.pos0 + T;
    const int stride = kv_len + 3;
    const ga_gate_layout L = ga_gate_layout_make(nh, nkv, hd, c.mode);
    const int gd = ga_gate_layout_gate_dim(&L);
    const size_t nq = (size_t)T * nh * hd, nc = (size_t)nkv * stride * hd, ng = (size_t)T * gd;
    uint16_t *q = xmalloc(nq * 2), *k = xmalloc(nc * 2), *v = xmalloc(nc * 2), *g = xmalloc(ng * 2),
             *out = xmalloc(nq * 2);
    float *qf = xmalloc(nq * 4), *kf = xmalloc(nc * 4), *vf = xmalloc(nc * 4),
          *gf = xmalloc(ng * 4);
    float *ref = xmalloc(nq * 4), *got = xmalloc(nq * 4), *lref = xmalloc((size_t)nh * T * 4),
          *lse = xmalloc((size_t)nh * T * 4);
    /* cache rows past kv_len are NaN: a read past the sequence poisons the output */
    for (size_t i = 0; i < nc; i++)
        k[i] = v[i] = 0xffff;
    for (int j = 0; j < nkv; j++) {
        fill_bf16(k + (size_t)j * stride * hd, NULL, (size_t)kv_len * hd, 1.0f);
        fill_bf16(v + (size_t)j * stride * hd, NULL, (size_t)kv_len * hd, 1.0f);
    }
    fill_bf16(q, qf, nq, 1.5f);
    fill_bf16(g, gf, ng, 2.0f);
    widen(k, kf, nc), widen(v, vf, nc);
    ga_cpu_attn_args ca = {.q = qf,
                           .k = kf,
                           .v = vf,
                           .gate = gd ? gf : NULL,
                           .out = ref,
                           .T = T,
                           .pos0 = c.pos0,
                           .n_heads = nh,
                           .n_kv_heads = nkv,
                           .hd = hd,
                           .kv_stride = stride,
                           .gate_dim = gd,
                           .gate_mode = c.mode,
                           .scale = 1.0f / sqrtf((float)hd),
                           .lse = lref};
    if (ga_cpu_attention(pool, &ca)) exit(1);
    void *dq = dup_to_dev(q, nq * 2), *dk = dup_to_dev(k, nc * 2), *dv = dup_to_dev(v, nc * 2),
         *dg = gd ? dup_to_dev(g, ng * 2) : NULL, *dout = dmalloc(nq * 2);
    float *dlse = dmalloc((size_t)nh * T * 4);
    poison(dout, nq * 2), poison(dlse, (size_t)nh * T * 4);
    ga_attn_prefill_args a = {.q = dq,
                              .k = dk,
                              .v = dv,
                              .gate = dg,
                              .out = dout,
                              .lse = dlse,
                              .T = T,
                              .pos0 = c.pos0,
                              .n_heads = nh,
                              .n_kv_heads = nkv,
                              .hd = hd,
                              .kv_stride = stride,
                              .gate_mode = c.mode,
                              .scale = 1.0f / sqrtf((float)hd),
                              .impl = (ga_attn_impl)impl};
    ga_err err = {{0}};
    if (launched(ga_attention_prefill(&a, 0, &err), &err, "prefill", shape)) {
        down(out, dout, nq * 2);
        down(lse, dlse, (size_t)nh * T * 4);
        widen(out, got, nq);
        report("prefill", shape, nerr(got, ref, nq), TOL_ATTN);
        report("prefill.lse", shape, nerr(lse, lref, (size_t)nh * T), TOL_F32);
    }
    cudaFree(dq), cudaFree(dk), cudaFree(dv), cudaFree(dg), cudaFree(dout), cudaFree(dlse);
    free(q), free(k), free(v), free(g), free(out), free(qf), free(kf), free(vf), free(gf);
    free(ref), free(got), free(lref), free(lse);
}

/* Both kernels where they run: the portable one always, the Hopper one on sm_90a at hd 128.
 * hd 256 also through AUTO: the dispatch must route it to the portable kernel on sm_90 too. */
static void case_prefill_all(attn_case c) {
    case_prefill(c, GA_ATTN_IMPL_MMA);
    if (ga_attention_prefill_sm90_usable(c.hd))
        case_prefill(c, GA_ATTN_IMPL_WGMMA);
    else if (c.hd == 256)
        case_prefill(c, GA_ATTN_IMPL_AUTO);
    else
        printf("%-10s hd %d: no Hopper kernel here (needs sm_90 and an sm_90a build)\n", "prefill",
               c.hd);
}

/* ---------------------------------------------------------------- decode attention */
#define DC_MAX_B 6
typedef struct dc_case {
    int hd, G, n_kv, B;
    int lens[DC_MAX_B];
    int max_kv_len;
    ga_gate_mode mode;
} dc_case;

static void case_decode(dc_case c) {
    char shape[96];
    snprintf(shape, sizeof shape, "hd %d G %d kv %d B %d len0 %d max %d %s", c.hd, c.G, c.n_kv, c.B,
             c.lens[0], c.max_kv_len, ga_gate_mode_name(c.mode));
    const int hd = c.hd, nkv = c.n_kv, B = c.B, nh = c.G * nkv, stride = c.max_kv_len + 3;
    const ga_gate_layout L = ga_gate_layout_make(nh, nkv, hd, c.mode);
    const int gd = ga_gate_layout_gate_dim(&L);
    const size_t nc = (size_t)B * nkv * stride * hd, nq = (size_t)B * nh * hd, ng = (size_t)B * gd;
    uint16_t *k = xmalloc(nc * 2), *v = xmalloc(nc * 2), *q = xmalloc(nq * 2), *g = xmalloc(ng * 2),
             *out = xmalloc(nq * 2);
    float *kf = xmalloc(nc * 4), *vf = xmalloc(nc * 4), *qf = xmalloc(nq * 4),
          *gf = xmalloc(ng * 4);
    float *ref = xmalloc(nq * 4), *got = xmalloc(nq * 4);
    int slots[DC_MAX_B];
    for (int b = 0; b < B; b++)
        slots[b] = (b * 5 + 2) % B; /* a permutation of the rows over the slots */
    for (size_t i = 0; i < nc; i++)
        k[i] = v[i] = 0xffff; /* NaN past every row's length */
    for (int b = 0; b < B; b++)
        for (int j = 0; j < nkv; j++) {
            size_t off = (((size_t)slots[b] * nkv + j) * stride) * hd;
            decode_inputs(k + off, v + off, q + ((size_t)b * nh + (size_t)j * c.G) * hd, c.lens[b],
                          hd, c.G, hd);
        }
    fill_bf16(g, gf, ng, 2.0f);
    widen(k, kf, nc), widen(v, vf, nc), widen(q, qf, nq);
    /* CPU: the backend's attention of one new token per row at position len-1 */
    for (int b = 0; b < B; b++) {
        ga_cpu_attn_args ca = {.q = qf + (size_t)b * nh * hd,
                               .k = kf + (size_t)slots[b] * nkv * stride * hd,
                               .v = vf + (size_t)slots[b] * nkv * stride * hd,
                               .gate = gd ? gf + (size_t)b * gd : NULL,
                               .out = ref + (size_t)b * nh * hd,
                               .T = 1,
                               .pos0 = c.lens[b] - 1,
                               .n_heads = nh,
                               .n_kv_heads = nkv,
                               .hd = hd,
                               .kv_stride = stride,
                               .gate_dim = gd,
                               .gate_mode = c.mode,
                               .scale = 1.0f / sqrtf((float)hd)};
        if (ga_cpu_attention(pool, &ca)) exit(1);
    }
    size_t wbytes = ga_attention_decode_workspace(B, nh, hd, c.max_kv_len);
    size_t cbytes = ga_attention_decode_counters(B, nh, nkv);
    void *dk = dup_to_dev(k, nc * 2), *dv = dup_to_dev(v, nc * 2), *dq = dup_to_dev(q, nq * 2),
         *dg = gd ? dup_to_dev(g, ng * 2) : NULL, *dout = dmalloc(nq * 2);
    int *dslots = dup_to_dev(slots, B * sizeof(int)), *dlens = dup_to_dev(c.lens, B * sizeof(int));
    float *dwork = dmalloc(wbytes);
    unsigned *dcnt = dmalloc(cbytes ? cbytes : 16);
    CU(cudaMemset(dcnt, 0, cbytes ? cbytes : 16));
    poison(dout, nq * 2), poison(dwork, wbytes);
    ga_attn_decode_args a = {.q = dq,
                             .k_cache = dk,
                             .v_cache = dv,
                             .slots = dslots,
                             .kv_lens = dlens,
                             .gate = dg,
                             .out = dout,
                             .work = dwork,
                             .counters = cbytes ? dcnt : NULL,
                             .B = B,
                             .n_heads = nh,
                             .n_kv_heads = nkv,
                             .hd = hd,
                             .kv_stride = stride,
                             .max_kv_len = c.max_kv_len,
                             .gate_mode = c.mode,
                             .scale = 1.0f / sqrtf((float)hd)};
    ga_err err = {{0}};
    if (launched(ga_attention_decode(&a, 0, &err), &err, "decode", shape)) {
        down(out, dout, nq * 2);
        widen(out, got, nq);
        report("decode", shape, nerr(got, ref, nq), TOL_ATTN);
    }
    cudaFree(dk), cudaFree(dv), cudaFree(dq), cudaFree(dg), cudaFree(dout), cudaFree(dslots);
    cudaFree(dlens), cudaFree(dwork), cudaFree(dcnt);
    free(k), free(v), free(q), free(g), free(out), free(kf), free(vf), free(qf), free(gf);
    free(ref), free(got);
}

/* ---------------------------------------------------------------- paged KV cache
 * A pool of blocks (n_blocks, n_kv, bs, hd) bf16 per layer (kernels.h), NaN everywhere no
 * sequence owns, block ids shuffled so a sequence's blocks are neither in order nor
 * adjacent; the CPU reference is the CPU backend's own attention reading the same pool
 * through the same table (ga_cpu_attn_args.table). */

static void case_paged_decode(dc_case c, int bs) {
    char shape[112];
    snprintf(shape, sizeof shape, "bs %d hd %d G %d kv %d B %d len0 %d max %d %s", bs, c.hd, c.G,
             c.n_kv, c.B, c.lens[0], c.max_kv_len, ga_gate_mode_name(c.mode));
    const int hd = c.hd, nkv = c.n_kv, B = c.B, nh = c.G * nkv;
    const int tstride = (c.max_kv_len + bs - 1) / bs;
    int nblk = 3; /* spare blocks nobody owns */
    for (int b = 0; b < B; b++)
        nblk += (c.lens[b] + bs - 1) / bs;
    const ga_gate_layout L = ga_gate_layout_make(nh, nkv, hd, c.mode);
    const int gd = ga_gate_layout_gate_dim(&L);
    const size_t pitch = (size_t)nkv * bs * hd, nc = (size_t)nblk * pitch;
    const size_t nq = (size_t)B * nh * hd, ng = (size_t)B * gd;
    uint16_t *k = xmalloc(nc * 2), *v = xmalloc(nc * 2), *q = xmalloc(nq * 2), *g = xmalloc(ng * 2),
             *out = xmalloc(nq * 2);
    float *kf = xmalloc(nc * 4), *vf = xmalloc(nc * 4), *qf = xmalloc(nq * 4),
          *gf = xmalloc(ng * 4), *ref = xmalloc(nq * 4), *got = xmalloc(nq * 4);
    int *ids = xmalloc(nblk * sizeof(int)), *tab = xmalloc((size_t)B * tstride * sizeof(int));
    shuffle_ids(ids, nblk);
    for (size_t i = 0; i < nc; i++)
        k[i] = v[i] = 0xffff;
    int used = 0;
    for (int b = 0; b < B; b++) {
        const int len = c.lens[b];
        for (int j = 0; j < tstride; j++) /* unused entries: a spare (NaN) block */
            tab[b * tstride + j] = j * bs < len ? ids[used++] : ids[nblk - 1];
        uint16_t *kc = xmalloc((size_t)len * hd * 2), *vc = xmalloc((size_t)len * hd * 2);
        for (int j = 0; j < nkv; j++) {
            decode_inputs(kc, vc, q + ((size_t)b * nh + (size_t)j * c.G) * hd, len, hd, c.G, hd);
            for (int p = 0; p < len; p++) {
                size_t dst =
                    (size_t)tab[b * tstride + p / bs] * pitch + ((size_t)j * bs + p % bs) * hd;
                memcpy(k + dst, kc + (size_t)p * hd, hd * 2);
                memcpy(v + dst, vc + (size_t)p * hd, hd * 2);
            }
        }
        free(kc), free(vc);
    }
    fill_bf16(g, gf, ng, 2.0f);
    widen(k, kf, nc), widen(v, vf, nc), widen(q, qf, nq);
    for (int b = 0; b < B; b++) {
        ga_cpu_attn_args ca = {.q = qf + (size_t)b * nh * hd,
                               .k = kf,
                               .v = vf,
                               .table = tab + b * tstride,
                               .block_pitch = pitch,
                               .gate = gd ? gf + (size_t)b * gd : NULL,
                               .out = ref + (size_t)b * nh * hd,
                               .T = 1,
                               .pos0 = c.lens[b] - 1,
                               .n_heads = nh,
                               .n_kv_heads = nkv,
                               .hd = hd,
                               .kv_stride = bs,
                               .gate_dim = gd,
                               .gate_mode = c.mode,
                               .scale = 1.0f / sqrtf((float)hd)};
        if (ga_cpu_attention(pool, &ca)) exit(1);
    }
    size_t wbytes = ga_attention_decode_workspace(B, nh, hd, c.max_kv_len);
    size_t cbytes = ga_attention_decode_counters(B, nh, nkv);
    void *dk = dup_to_dev(k, nc * 2), *dv = dup_to_dev(v, nc * 2), *dq = dup_to_dev(q, nq * 2),
         *dg = gd ? dup_to_dev(g, ng * 2) : NULL, *dout = dmalloc(nq * 2);
    int *dtab = dup_to_dev(tab, (size_t)B * tstride * sizeof(int)),
        *dlens = dup_to_dev(c.lens, B * sizeof(int));
    float *dwork = dmalloc(wbytes);
    unsigned *dcnt = dmalloc(cbytes);
    CU(cudaMemset(dcnt, 0, cbytes));
    poison(dout, nq * 2), poison(dwork, wbytes);
    ga_attn_decode_args a = {.q = dq,
                             .k_cache = dk,
                             .v_cache = dv,
                             .kv_lens = dlens,
                             .gate = dg,
                             .out = dout,
                             .work = dwork,
                             .counters = dcnt,
                             .B = B,
                             .n_heads = nh,
                             .n_kv_heads = nkv,
                             .hd = hd,
                             .kv_stride = bs,
                             .max_kv_len = c.max_kv_len,
                             .block_table = dtab,
                             .table_stride = tstride,
                             .block_size = bs,
                             .gate_mode = c.mode,
                             .scale = 1.0f / sqrtf((float)hd)};
    ga_err err = {{0}};
    if (launched(ga_attention_decode(&a, 0, &err), &err, "pdecode", shape)) {
        down(out, dout, nq * 2);
        widen(out, got, nq);
        report("pdecode", shape, nerr(got, ref, nq), TOL_ATTN);
    }
    cudaFree(dk), cudaFree(dv), cudaFree(dq), cudaFree(dg), cudaFree(dout), cudaFree(dtab);
    cudaFree(dlens), cudaFree(dwork), cudaFree(dcnt);
    free(k), free(v), free(q), free(g), free(out), free(kf), free(vf), free(qf), free(gf);
    free(ref), free(got), free(ids), free(tab);
}

/* Paged prefill as the backend runs it: the sequence's keys gathered from the pool into the
 * slot layout (ga_kv_gather, checked exact against the pool), then the prefill kernel(s). */
static void case_paged_prefill(attn_case c, int bs) {
    char shape[112];
    snprintf(shape, sizeof shape, "bs %d hd %d G %d kv %d T %d pos0 %d %s", bs, c.hd, c.G, c.n_kv,
             c.T, c.pos0, ga_gate_mode_name(c.mode));
    const int hd = c.hd, T = c.T, nkv = c.n_kv, nh = c.G * nkv, kv_len = c.pos0 + T;
    const int used = (kv_len + bs - 1) / bs, nblk = used + 2, stride = kv_len + 5;
    const ga_gate_layout L = ga_gate_layout_make(nh, nkv, hd, c.mode);
    const int gd = ga_gate_layout_gate_dim(&L);
    const size_t pitch = (size_t)nkv * bs * hd, nc = (size_t)nblk * pitch;
    const size_t nq = (size_t)T * nh * hd, ng = (size_t)T * gd, ns = (size_t)nkv * stride * hd;
    uint16_t *k = xmalloc(nc * 2), *v = xmalloc(nc * 2), *q = xmalloc(nq * 2), *g = xmalloc(ng * 2),
             *out = xmalloc(nq * 2), *gk = xmalloc(ns * 2);
    float *kf = xmalloc(nc * 4), *vf = xmalloc(nc * 4), *qf = xmalloc(nq * 4),
          *gf = xmalloc(ng * 4), *ref = xmalloc(nq * 4), *got = xmalloc(nq * 4);
    int *ids = xmalloc(nblk * sizeof(int));
    shuffle_ids(ids, nblk);
    for (size_t i = 0; i < nc; i++)
        k[i] = v[i] = 0xffff;
    for (int b = 0; b < used; b++)
        for (int j = 0; j < nkv; j++) {
            const int rows = b == used - 1 ? kv_len - b * bs : bs;
            const size_t off = (size_t)ids[b] * pitch + (size_t)j * bs * hd;
            fill_bf16(k + off, NULL, (size_t)rows * hd, 1.0f);
            fill_bf16(v + off, NULL, (size_t)rows * hd, 1.0f);
        }
    fill_bf16(q, qf, nq, 1.5f);
    fill_bf16(g, gf, ng, 2.0f);
    widen(k, kf, nc), widen(v, vf, nc);
    ga_cpu_attn_args ca = {.q = qf,
                           .k = kf,
                           .v = vf,
                           .table = ids,
                           .block_pitch = pitch,
                           .gate = gd ? gf : NULL,
                           .out = ref,
                           .T = T,
                           .pos0 = c.pos0,
                           .n_heads = nh,
                           .n_kv_heads = nkv,
                           .hd = hd,
                           .kv_stride = bs,
                           .gate_dim = gd,
                           .gate_mode = c.mode,
                           .scale = 1.0f / sqrtf((float)hd)};
    if (ga_cpu_attention(pool, &ca)) exit(1);
    void *dk = dup_to_dev(k, nc * 2), *dv = dup_to_dev(v, nc * 2), *dq = dup_to_dev(q, nq * 2),
         *dg = gd ? dup_to_dev(g, ng * 2) : NULL, *dout = dmalloc(nq * 2), *dgk = dmalloc(ns * 2),
         *dgv = dmalloc(ns * 2);
    int *dtab = dup_to_dev(ids, used * sizeof(int));
    poison(dgk, ns * 2), poison(dgv, ns * 2);
    ga_kv_gather_args ga = {.k_pool = dk,
                            .v_pool = dv,
                            .table = dtab,
                            .k_out = dgk,
                            .v_out = dgv,
                            .len = kv_len,
                            .n_kv_heads = nkv,
                            .block_size = bs,
                            .hd = hd,
                            .out_stride = stride};
    ga_err err = {{0}};
    if (launched(ga_kv_gather(&ga, 0, &err), &err, "kv_gather", shape)) {
        down(gk, dgk, ns * 2);
        size_t bad = 0;
        for (int j = 0; j < nkv; j++)
            for (int p = 0; p < stride; p++) {
                const uint16_t *gr = gk + ((size_t)j * stride + p) * hd;
                for (int e = 0; e < hd; e++) {
                    /* rows past the sequence stay poison: nothing gathered past len */
                    const uint16_t want =
                        p < kv_len
                            ? k[(size_t)ids[p / bs] * pitch + ((size_t)j * bs + p % bs) * hd + e]
                            : 0xffff;
                    bad += gr[e] != want;
                }
            }
        report("kv_gather", shape, bad ? INFINITY : 0.0, TOL_EXACT);
    }
    for (int impl = GA_ATTN_IMPL_MMA; impl <= GA_ATTN_IMPL_WGMMA; impl++) {
        if (impl == GA_ATTN_IMPL_WGMMA && !ga_attention_prefill_sm90_usable(hd)) continue;
        poison(dout, nq * 2);
        ga_attn_prefill_args a = {.q = dq,
                                  .k = dgk,
                                  .v = dgv,
                                  .gate = dg,
                                  .out = dout,
                                  .T = T,
                                  .pos0 = c.pos0,
                                  .n_heads = nh,
                                  .n_kv_heads = nkv,
                                  .hd = hd,
                                  .kv_stride = stride,
                                  .gate_mode = c.mode,
                                  .scale = 1.0f / sqrtf((float)hd),
                                  .impl = (ga_attn_impl)impl};
        char sh2[128];
        snprintf(sh2, sizeof sh2, "%s %s", impl == GA_ATTN_IMPL_MMA ? "mma" : "wgmma", shape);
        if (launched(ga_attention_prefill(&a, 0, &err), &err, "pprefill", sh2)) {
            down(out, dout, nq * 2);
            widen(out, got, nq);
            report("pprefill", sh2, nerr(got, ref, nq), TOL_ATTN);
        }
    }
    cudaFree(dk), cudaFree(dv), cudaFree(dq), cudaFree(dg), cudaFree(dout), cudaFree(dgk);
    cudaFree(dgv), cudaFree(dtab);
    free(k), free(v), free(q), free(g), free(out), free(gk), free(kf), free(vf), free(qf);
    free(gf), free(ref), free(got), free(ids);
}

/* ---------------------------------------------------------------- attention probabilities */
static void case_probs(int hd, int G, int n_kv, int T, int res, int head) {
    char shape[96];
    snprintf(shape, sizeof shape, "hd %d G %d kv %d T %d res %d head %d", hd, G, n_kv, T, res,
             head);
    const int nh = G * n_kv;
    const size_t nq = (size_t)T * nh * hd, nc = (size_t)n_kv * T * hd;
    uint16_t *q = xmalloc(nq * 2), *k = xmalloc(nc * 2), *v = xmalloc(nc * 2);
    float *qf = xmalloc(nq * 4), *kf = xmalloc(nc * 4), *vf = xmalloc(nc * 4), *o = xmalloc(nq * 4);
    float *mref = xmalloc((size_t)res * res * 4), *map = xmalloc((size_t)res * res * 4);
    fill_bf16(q, qf, nq, 1.5f), fill_bf16(k, kf, nc, 1.0f), fill_bf16(v, vf, nc, 1.0f);
    memset(mref, 0, (size_t)res * res * 4);
    double first = 0;
    ga_cpu_attn_args ca = {.q = qf,
                           .k = kf,
                           .v = vf,
                           .out = o,
                           .T = T,
                           .n_heads = nh,
                           .n_kv_heads = n_kv,
                           .hd = hd,
                           .kv_stride = T,
                           .scale = 1.0f / sqrtf((float)hd),
                           .map = mref,
                           .res = res,
                           .head = head,
                           .first_share = &first};
    if (ga_cpu_attention(pool, &ca)) exit(1);
    void *dq = dup_to_dev(q, nq * 2), *dk = dup_to_dev(k, nc * 2), *dv = dup_to_dev(v, nc * 2),
         *dout = dmalloc(nq * 2);
    float *dlse = dmalloc((size_t)nh * T * 4), *dmap = dmalloc((size_t)res * res * 4),
          *dfirst = dmalloc(4);
    CU(cudaMemset(dmap, 0, (size_t)res * res * 4));
    CU(cudaMemset(dfirst, 0, 4));
    ga_attn_prefill_args pa = {.q = dq,
                               .k = dk,
                               .v = dv,
                               .out = dout,
                               .lse = dlse,
                               .T = T,
                               .n_heads = nh,
                               .n_kv_heads = n_kv,
                               .hd = hd,
                               .kv_stride = T,
                               .gate_mode = GA_GATE_NONE,
                               .scale = 1.0f / sqrtf((float)hd)};
    ga_attn_probs_args ra = {.q = dq,
                             .k = dk,
                             .lse = dlse,
                             .map = dmap,
                             .first_share = dfirst,
                             .T = T,
                             .n_heads = nh,
                             .n_kv_heads = n_kv,
                             .hd = hd,
                             .kv_stride = T,
                             .head = head,
                             .res = res,
                             .scale = 1.0f / sqrtf((float)hd)};
    ga_err err = {{0}};
    if (launched(ga_attention_prefill(&pa, 0, &err), &err, "probs", shape) &&
        launched(ga_attention_probs(&ra, 0, &err), &err, "probs", shape)) {
        float fs = 0;
        down(map, dmap, (size_t)res * res * 4);
        down(&fs, dfirst, 4);
        report("probs.map", shape, nerr(map, mref, (size_t)res * res), TOL_MAP);
        if (T > 1) {
            /* the kernel sums p(key 0); the CPU op returns its mean over heads x (T-1) rows */
            float got = (float)(fs / ((double)nh * (T - 1))), want = (float)first;
            report("probs.first", shape, nerr(&got, &want, 1), TOL_MAP);
        }
    }
    cudaFree(dq), cudaFree(dk), cudaFree(dv), cudaFree(dout), cudaFree(dlse), cudaFree(dmap);
    cudaFree(dfirst);
    free(q), free(k), free(v), free(qf), free(kf), free(vf), free(o), free(mref), free(map);
}

/* ---------------------------------------------------------------- SwiGLU */
static void case_swiglu(int T, int I) {
    char shape[96];
    snprintf(shape, sizeof shape, "T %d I %d", T, I);
    size_t n = (size_t)T * I;
    uint16_t *h = xmalloc(2 * n * 2), *ho = xmalloc(n * 2);
    float *f = xmalloc(2 * n * 4), *ref = xmalloc(n * 4), *fo = xmalloc(n * 4);
    fill_bf16(h, f, 2 * n, 3.f);
    for (int t = 0; t < T; t++) /* row t = [gate | up] */
        ga_cpu_swiglu(ref + (size_t)t * I, f + (size_t)t * 2 * I, f + (size_t)t * 2 * I + I,
                      (size_t)I);
    void *din = dup_to_dev(h, 2 * n * 2), *dout = dmalloc(n * 2);
    poison(dout, n * 2);
    ga_err err = {{0}};
    if (launched(ga_swiglu(din, dout, T, I, 0, &err), &err, "swiglu", shape)) {
        down(ho, dout, n * 2);
        widen(ho, fo, n);
        report("swiglu", shape, nerr(fo, ref, n), TOL_BF16_OUT);
    }
    cudaFree(din), cudaFree(dout);
    free(h), free(ho), free(f), free(ref), free(fo);
}

/* ---------------------------------------------------------------- embedding */
static void case_embed(int T, int dim, int vocab) {
    char shape[96];
    snprintf(shape, sizeof shape, "T %d dim %d vocab %d", T, dim, vocab);
    uint16_t *tab = xmalloc((size_t)vocab * dim * 2);
    float *tabf = xmalloc((size_t)vocab * dim * 4), *ref = xmalloc((size_t)T * dim * 4),
          *x = xmalloc((size_t)T * dim * 4);
    fill_bf16(tab, tabf, (size_t)vocab * dim, 1.f);
    int32_t *tok = xmalloc(T * 4);
    for (int t = 0; t < T; t++)
        tok[t] = (int32_t)(ga_test_rand_u64(&rng) % vocab);
    tok[T - 1] = vocab - 1; /* the last row of the table */
    ga_cpu_embed(ref, tabf, tok, T, dim);
    void *dtab = dup_to_dev(tab, (size_t)vocab * dim * 2);
    int32_t *dtok = dup_to_dev(tok, T * 4);
    float *dx = dmalloc((size_t)T * dim * 4);
    poison(dx, (size_t)T * dim * 4);
    ga_err err = {{0}};
    if (launched(ga_embed(dtok, dtab, dx, T, dim, vocab, 0, &err), &err, "embed", shape)) {
        down(x, dx, (size_t)T * dim * 4);
        report("embed", shape, nerr(x, ref, (size_t)T * dim), TOL_EXACT);
    }
    cudaFree(dtab), cudaFree(dtok), cudaFree(dx);
    free(tab), free(tabf), free(ref), free(x), free(tok);
}

/* ---------------------------------------------------------------- argmax */
static void case_argmax(int rows, int vocab) {
    char shape[96];
    snprintf(shape, sizeof shape, "rows %d vocab %d (ties, NaN)", rows, vocab);
    size_t n = (size_t)rows * vocab;
    float *l = xmalloc(n * 4);
    int32_t *got = xmalloc(rows * 4);
    for (size_t i = 0; i < n; i++)
        l[i] = ga_test_rand_normal(&rng);
    for (int r = 0; r < rows; r++) {
        float *row = l + (size_t)r * vocab;
        if (r % 3 == 1 && vocab > 4) row[vocab - 1] = row[vocab / 2] = 100.f; /* a tie */
        if (r % 3 == 2 && vocab > 4) row[0] = NAN;                            /* never wins */
    }
    float *dl = dup_to_dev(l, n * 4);
    int32_t *dout = dmalloc(rows * 4);
    poison(dout, rows * 4);
    ga_err err = {{0}};
    if (launched(ga_argmax(dl, rows, vocab, dout, 0, &err), &err, "argmax", shape)) {
        down(got, dout, rows * 4);
        int bad = 0;
        for (int r = 0; r < rows; r++) /* the host sampler's greedy pick */
            bad += got[r] != ga_argmax_f32(l + (size_t)r * vocab, vocab);
        report("argmax", shape, (double)bad / rows, TOL_EXACT);
    }
    cudaFree(dl), cudaFree(dout);
    free(l), free(got);
}

/* ---------------------------------------------------------------- gate statistics */
static void case_gate_stats(int64_t n) {
    char shape[96];
    snprintf(shape, sizeof shape, "n %lld", (long long)n);
    uint16_t *g = xmalloc((size_t)n * 2);
    float *gf = xmalloc((size_t)n * 4);
    fill_bf16(g, gf, (size_t)n, 3.f);
    double want = 0, got_s = 0;
    size_t below = 0;
    ga_cpu_gate_stats(gf, (size_t)n, GA_GATE_LOW_THRESHOLD, &want, &below);
    void *dg = dup_to_dev(g, (size_t)n * 2);
    double *ds = dmalloc(8);
    unsigned long long *dc = dmalloc(8), got_c = 0;
    CU(cudaMemset(ds, 0, 8));
    CU(cudaMemset(dc, 0, 8));
    ga_err err = {{0}};
    if (launched(ga_gate_stats(dg, n, GA_GATE_LOW_THRESHOLD, ds, dc, 0, &err), &err, "gate",
                 shape)) {
        down(&got_s, ds, 8), down(&got_c, dc, 8);
        /* fp32 sigmoids summed in fp64 in a different order */
        report("gate.sum", shape, fabs(got_s - want) / want, TOL_F32);
        /* the count may differ only for values within an ulp of sigmoid^-1(0.1) (the GPU's
         * sigmoid is fast-math): 1e-4 of n, normalised by n */
        double dcount = fabs((double)got_c - (double)below);
        report("gate.below", shape, dcount <= 1 ? 0.0 : dcount / (double)n, 1e-4);
    }
    cudaFree(dg), cudaFree(ds), cudaFree(dc);
    free(g), free(gf);
}

/* ---------------------------------------------------------------- GEMM wrapper */
/* Indexed by the backend's gemm_impl (cuda_internal.h). The default (cuBLAS) takes the GEMV of
 * kernels/gemv.cu for M <= 8. */
static const char *const gemm_names[] = {"cuBLAS+GEMV", "cuBLASLt", "fallback", "cuBLAS only"};
static void case_gemm(ga_cuda *c, int M, int N, int K, bool f32, int impl) {
    char shape[96];
    snprintf(shape, sizeof shape, "%s M %d N %d K %d %s", gemm_names[impl], M, N, K,
             f32 ? "f32" : "bf16");
    uint16_t *x = xmalloc((size_t)M * K * 2), *w = xmalloc((size_t)N * K * 2);
    float *fx = xmalloc((size_t)M * K * 4), *fw = xmalloc((size_t)N * K * 4);
    float *ref = xmalloc((size_t)M * N * 4), *y = xmalloc((size_t)M * N * 4);
    fill_bf16(x, fx, (size_t)M * K, 1.f);
    fill_bf16(w, fw, (size_t)N * K, 1.f / sqrtf((float)K));
    ga_cpu_matmul(pool, ref, fx, fw, NULL, M, K, N); /* the CPU backend's matmul */
    void *dx = dup_to_dev(x, (size_t)M * K * 2), *dw = dup_to_dev(w, (size_t)N * K * 2),
         *dy = dmalloc((size_t)M * N * 4);
    poison(dy, (size_t)M * N * 4);
    ga_err err = {{0}};
    c->gemm_impl = impl;
    ga_status st = impl == GA_GEMM_FALLBACK ? ga_gemm_fallback(dx, dw, dy, f32, M, N, K, 0, &err)
                                            : ga_cuda_gemm(c, dx, dw, dy, f32, M, N, K, &err);
    if (launched(st, &err, "gemm", shape)) {
        if (f32) {
            down(y, dy, (size_t)M * N * 4);
        } else {
            uint16_t *yh = xmalloc((size_t)M * N * 2);
            down(yh, dy, (size_t)M * N * 2);
            widen(yh, y, (size_t)M * N);
            free(yh);
        }
        report("gemm", shape, nerr(y, ref, (size_t)M * N), f32 ? TOL_F32 : TOL_BF16_OUT);
    }
    cudaFree(dx), cudaFree(dw), cudaFree(dy);
    free(x), free(w), free(fx), free(fw), free(ref), free(y);
}

static int gemm_section(void) {
    ga_cuda c;
    memset(&c, 0, sizeof c); /* the wrapper needs only the handles, workspace and stream */
    if (cublasCreate(&c.blas) != CUBLAS_STATUS_SUCCESS ||
        cublasLtCreate(&c.lt) != CUBLAS_STATUS_SUCCESS) {
        fprintf(stderr, "creating the cuBLAS / cuBLASLt handles failed\n");
        return 1;
    }
    c.blas_ws_bytes = (size_t)32 << 20;
    c.blas_ws = dmalloc(c.blas_ws_bytes);
    const int Ms[] = {1, 7, 128}, NK[][2] = {{64, 64}, {1000, 256}, {72, 1000}};
    const int impls[] = {GA_GEMM_FALLBACK, GA_GEMM_CUBLAS, GA_GEMM_LT, GA_GEMM_CUBLAS_ONLY};
    /* Under compute-sanitizer's initcheck (tools/gpu_check.sh sets GA_TEST_NO_CUBLAS), cuBLAS's
     * TMA stores read as uninitialised: only our own kernels run then. */
    const int n_impls = getenv("GA_TEST_NO_CUBLAS") ? 1 : 4;
    for (int ii = 0; ii < n_impls; ii++) {
        if (!quick) {
            case_gemm(&c, 128, 4112, 1024, false, impls[ii]);
            case_gemm(&c, 1, 2048, 1024, true, impls[ii]);
        }
        for (int m = 0; m < 3; m++)
            for (int s = 0; s < 3; s++)
                for (int f = 0; f < 2; f++)
                    case_gemm(&c, Ms[m], NK[s][0], NK[s][1], f, impls[ii]);
    }
    cudaFree(c.blas_ws);
    cublasLtDestroy(c.lt);
    cublasDestroy(c.blas);
    return 0;
}

/* ---------------------------------------------------------------- fused decode GEMVs */
/* xn (M, K) = bf16(rmsnorm(x) * w) per row: the CPU backend's rmsnorm, rounded as the GPU
 * stages it. */
static void ref_norm_bf16(float *xn, const float *x, const float *w, int M, int K, float eps) {
    for (int m = 0; m < M; m++)
        ga_cpu_rmsnorm(xn + (size_t)m * K, x + (size_t)m * K, w, K, eps);
    for (size_t i = 0; i < (size_t)M * K; i++)
        xn[i] = ga_bf16_to_f32(ga_f32_to_bf16(xn[i]));
}

static float *rand_f32(size_t n, float mean, float std) {
    float *f = xmalloc(n * 4);
    for (size_t i = 0; i < n; i++)
        f[i] = mean + std * ga_test_rand_normal(&rng);
    return f;
}

/* Output bytes of a (M, N) result on the device, widened to fp32 in f. */
static void down_out(float *f, const void *d, size_t n, bool f32) {
    if (f32) {
        down(f, d, n * 4);
        return;
    }
    uint16_t *h = xmalloc(n * 2);
    down(h, d, n * 2);
    widen(h, f, n);
    free(h);
}

static void bitwise_info(const char *op, const char *shape, const void *a, const void *b,
                         size_t bytes) {
    printf("%-10s %-56s info: %s the unfused GPU ops\n", op, shape,
           memcmp(a, b, bytes) ? "differs from" : "bitwise equal to");
}

/* The row-M-1 of a batch of M alone (M = 1) must be bitwise the batch's: decode relies on it. */
static void check_row_alone(const char *op, const char *shape, const void *batch, const void *alone,
                            size_t row_bytes) {
    const bool same = !memcmp(batch, alone, row_bytes);
    printf("%-10s %-56s last row alone vs in the batch: %s %s\n", op, shape,
           same ? "bitwise equal" : "DIFFERENT", same ? "PASS" : "FAIL");
    if (same)
        ga_t_pass++;
    else
        ga_t_fail++;
}

/* y = rmsnorm(x) . W^T (q|k|v, LM head) */
static void case_fused_norm(int M, int N, int K, bool f32) {
    char shape[96];
    snprintf(shape, sizeof shape, "M %d N %d K %d %s", M, N, K, f32 ? "f32" : "bf16");
    const float eps = 1e-6f;
    const size_t nx = (size_t)M * K, nw = (size_t)N * K, ny = (size_t)M * N, yb = f32 ? 4 : 2;
    float *x = rand_f32(nx, 0.f, 3.f), *g = rand_f32(K, 1.f, 0.3f), *xn = xmalloc(nx * 4);
    float *fw = xmalloc(nw * 4), *ref = xmalloc(ny * 4), *got = xmalloc(ny * 4);
    uint16_t *w = xmalloc(nw * 2);
    fill_bf16(w, fw, nw, 1.f / sqrtf((float)K));
    ref_norm_bf16(xn, x, g, M, K, eps);
    ga_cpu_matmul(pool, ref, xn, fw, NULL, M, K, N);
    float *dx = dup_to_dev(x, nx * 4), *dg = dup_to_dev(g, K * 4);
    void *dw = dup_to_dev(w, nw * 2), *dy = dmalloc(ny * 4), *dy1 = dmalloc(ny * 4),
         *dxn = dmalloc(nx * 2);
    unsigned char *hb = xmalloc(ny * 4), *hu = xmalloc(ny * 4);
    poison(dy, ny * 4);
    ga_err err = {{0}};
    if (launched(ga_gemv_rmsnorm(dx, dg, eps, dw, dy, f32, M, N, K, false, 0, &err), &err,
                 "gemv+norm", shape)) {
        down_out(got, dy, ny, f32);
        report("gemv+norm", shape, nerr(got, ref, ny), TOL_FUSED);
        down(hb, dy, ny * yb);
        /* the unfused ops: ga_rmsnorm_residual (no delta) then ga_gemv */
        poison(dy1, ny * 4);
        if (launched(ga_rmsnorm_residual(dx, NULL, NULL, dg, dxn, M, K, eps, 0, &err), &err,
                     "gemv+norm", shape) &&
            launched(ga_gemv(dxn, dw, dy1, f32, M, N, K, 0, &err), &err, "gemv+norm", shape)) {
            down(hu, dy1, ny * yb);
            bitwise_info("gemv+norm", shape, hb, hu, ny * yb);
        }
        poison(dy1, ny * 4);
        if (M > 1 && launched(ga_gemv_rmsnorm(dx + (size_t)(M - 1) * K, dg, eps, dw, dy1, f32, 1, N,
                                              K, false, 0, &err),
                              &err, "gemv+norm", shape)) {
            down(hu, dy1, (size_t)N * yb);
            check_row_alone("gemv+norm", shape, hb + (size_t)(M - 1) * N * yb, hu, (size_t)N * yb);
        }
    }
    cudaFree(dx), cudaFree(dg), cudaFree(dw), cudaFree(dy), cudaFree(dy1), cudaFree(dxn);
    free(x), free(g), free(xn), free(fw), free(ref), free(got), free(w), free(hb), free(hu);
}

/* act = swiglu(rmsnorm(x) . [Wg | Wu]^T) (gate|up + SwiGLU) */
static void case_fused_swiglu(int M, int I, int K) {
    char shape[96];
    snprintf(shape, sizeof shape, "M %d I %d K %d", M, I, K);
    const float eps = 1e-6f;
    const size_t nx = (size_t)M * K, nw = (size_t)2 * I * K, na = (size_t)M * I;
    float *x = rand_f32(nx, 0.f, 3.f), *g = rand_f32(K, 1.f, 0.3f), *xn = xmalloc(nx * 4);
    float *fw = xmalloc(nw * 4), *gu = xmalloc(2 * na * 4), *ref = xmalloc(na * 4),
          *got = xmalloc(na * 4);
    uint16_t *w = xmalloc(nw * 2);
    /* std 2/sqrt(K): g and u of std ~2, through the curved part of silu and its tails */
    fill_bf16(w, fw, nw, 2.f / sqrtf((float)K));
    ref_norm_bf16(xn, x, g, M, K, eps);
    ga_cpu_matmul(pool, gu, xn, fw, NULL, M, K, 2 * I);
    for (size_t i = 0; i < 2 * na; i++) /* the GEMV output the SwiGLU reads is bf16 */
        gu[i] = ga_bf16_to_f32(ga_f32_to_bf16(gu[i]));
    for (int m = 0; m < M; m++)
        ga_cpu_swiglu(ref + (size_t)m * I, gu + (size_t)m * 2 * I, gu + (size_t)m * 2 * I + I,
                      (size_t)I);
    float *dx = dup_to_dev(x, nx * 4), *dg = dup_to_dev(g, K * 4);
    void *dw = dup_to_dev(w, nw * 2), *da = dmalloc(na * 2), *da1 = dmalloc(na * 2),
         *dxn = dmalloc(nx * 2), *dgu = dmalloc(2 * na * 2);
    unsigned char *hb = xmalloc(na * 2), *hu = xmalloc(na * 2);
    poison(da, na * 2);
    ga_err err = {{0}};
    if (launched(ga_gemv_rmsnorm_swiglu(dx, dg, eps, dw, da, M, I, K, false, 0, &err), &err,
                 "gemv+glu", shape)) {
        down_out(got, da, na, false);
        report("gemv+glu", shape, nerr(got, ref, na), TOL_FUSED);
        down(hb, da, na * 2);
        poison(da1, na * 2);
        if (launched(ga_rmsnorm_residual(dx, NULL, NULL, dg, dxn, M, K, eps, 0, &err), &err,
                     "gemv+glu", shape) &&
            launched(ga_gemv(dxn, dw, dgu, false, M, 2 * I, K, 0, &err), &err, "gemv+glu", shape) &&
            launched(ga_swiglu(dgu, da1, M, I, 0, &err), &err, "gemv+glu", shape)) {
            down(hu, da1, na * 2);
            bitwise_info("gemv+glu", shape, hb, hu, na * 2);
        }
        poison(da1, na * 2);
        if (M > 1 && launched(ga_gemv_rmsnorm_swiglu(dx + (size_t)(M - 1) * K, dg, eps, dw, da1, 1,
                                                     I, K, false, 0, &err),
                              &err, "gemv+glu", shape)) {
            down(hu, da1, (size_t)I * 2);
            check_row_alone("gemv+glu", shape, hb + (size_t)(M - 1) * I * 2, hu, (size_t)I * 2);
        }
    }
    cudaFree(dx), cudaFree(dg), cudaFree(dw), cudaFree(da), cudaFree(da1), cudaFree(dxn);
    cudaFree(dgu);
    free(x), free(g), free(xn), free(fw), free(gu), free(ref), free(got), free(w), free(hb);
    free(hu);
}

/* x += a . W^T (+ bias) (o_proj, down_proj) */
static void case_fused_resid(int M, int N, int K, bool bias) {
    char shape[96];
    snprintf(shape, sizeof shape, "M %d N %d K %d bias %d", M, N, K, bias);
    const size_t na = (size_t)M * K, nw = (size_t)N * K, nx = (size_t)M * N;
    float *x = rand_f32(nx, 0.f, 3.f), *b = rand_f32(N, 0.f, 0.5f), *fa = xmalloc(na * 4);
    float *fw = xmalloc(nw * 4), *ref = xmalloc(nx * 4), *got = xmalloc(nx * 4);
    uint16_t *a = xmalloc(na * 2), *w = xmalloc(nw * 2);
    fill_bf16(a, fa, na, 1.f);
    fill_bf16(w, fw, nw, 1.f / sqrtf((float)K));
    /* the CPU backend's residual add: x += matmul(a, W) with the bias folded into the matmul */
    ga_cpu_matmul(pool, ref, fa, fw, bias ? b : NULL, M, K, N);
    for (size_t i = 0; i < nx; i++)
        ref[i] += x[i];
    float *dx = dup_to_dev(x, nx * 4), *dx1 = dup_to_dev(x, nx * 4), *db = dup_to_dev(b, N * 4),
          *dd = dmalloc(nx * 4);
    void *da = dup_to_dev(a, na * 2), *dw = dup_to_dev(w, nw * 2), *dxn = dmalloc(nx * 2),
         *dn = dup_to_dev(b, N * 4); /* any fp32 (N): the unfused norm's weight, output unused */
    unsigned char *hb = xmalloc(nx * 4), *hu = xmalloc(nx * 4);
    ga_err err = {{0}};
    if (launched(ga_gemv_residual(da, dw, bias ? db : NULL, dx, M, N, K, false, 0, &err), &err,
                 "gemv+res", shape)) {
        down(got, dx, nx * 4);
        report("gemv+res", shape, nerr(got, ref, nx), TOL_F32);
        down(hb, dx, nx * 4);
        /* the unfused ops: ga_gemv into delta, then ga_rmsnorm_residual's add */
        if (launched(ga_gemv(da, dw, dd, true, M, N, K, 0, &err), &err, "gemv+res", shape) &&
            launched(ga_rmsnorm_residual(dx1, dd, bias ? db : NULL, dn, dxn, M, N, 1e-6f, 0, &err),
                     &err, "gemv+res", shape)) {
            down(hu, dx1, nx * 4);
            bitwise_info("gemv+res", shape, hb, hu, nx * 4);
        }
        float *dlast = dup_to_dev(x + (size_t)(M - 1) * N, (size_t)N * 4);
        if (M > 1 && launched(ga_gemv_residual((const uint16_t *)da + (size_t)(M - 1) * K, dw,
                                               bias ? db : NULL, dlast, 1, N, K, false, 0, &err),
                              &err, "gemv+res", shape)) {
            down(hu, dlast, (size_t)N * 4);
            check_row_alone("gemv+res", shape, hb + (size_t)(M - 1) * N * 4, hu, (size_t)N * 4);
        }
        cudaFree(dlast);
    }
    cudaFree(dx), cudaFree(dx1), cudaFree(db), cudaFree(dd), cudaFree(da), cudaFree(dw);
    cudaFree(dxn), cudaFree(dn);
    free(x), free(b), free(fa), free(fw), free(ref), free(got), free(a), free(w), free(hb);
    free(hu);
}

/* Programmatic dependent launch: two layers of the fused decode chain (norm->q|k|v, residual
 * o_proj, norm->gate|up->SwiGLU, residual down_proj, then norm->LM head), where each GEMV may
 * start while the previous one runs and x is read by one kernel and rewritten by the next.
 * Launched plainly, with PDL on a stream, and with PDL captured into a graph (as the decode
 * step runs it, replayed twice), every output must be bitwise the same: a kernel that touched
 * x or its output before griddepcontrol.wait would race. */
typedef struct chain_bufs {
    float *x0, *x, *n1, *n2, *nf, *bo;
    void *a, *wqkv, *wo, *wgu, *wdown, *wlm, *qkv, *act, *logits;
} chain_bufs;
enum { CH_H = 2048, CH_I = 6144, CH_QKV = 4112, CH_V = 5003 };

/* reset: x = x0 first (not in the captured graph, whose first node is then a kernel as in the
 * decode step; the caller resets x before each replay). */
static ga_status chain_run(const chain_bufs *b, int M, bool pdl, bool reset, cudaStream_t st,
                           ga_err *err) {
    ga_status r;
    if (reset && cudaMemcpyAsync(b->x, b->x0, (size_t)M * CH_H * 4, cudaMemcpyDeviceToDevice, st))
        return ga_err_set(err, GA_ERR_CUDA, "chain: copy of x failed");
    for (int l = 0; l < 2; l++)
        if ((r = ga_gemv_rmsnorm(b->x, b->n1, 1e-6f, b->wqkv, b->qkv, false, M, CH_QKV, CH_H, pdl,
                                 st, err)) ||
            (r = ga_gemv_residual(b->a, b->wo, b->bo, b->x, M, CH_H, CH_H, pdl, st, err)) ||
            (r = ga_gemv_rmsnorm_swiglu(b->x, b->n2, 1e-6f, b->wgu, b->act, M, CH_I, CH_H, pdl, st,
                                        err)) ||
            (r = ga_gemv_residual(b->act, b->wdown, NULL, b->x, M, CH_H, CH_I, pdl, st, err)))
            return r;
    return ga_gemv_rmsnorm(b->x, b->nf, 1e-6f, b->wlm, b->logits, true, M, CH_V, CH_H, pdl, st,
                           err);
}

/* x, qkv, act and logits of the last run, concatenated on the host. */
static size_t chain_down(const chain_bufs *b, int M, unsigned char *h) {
    size_t o = 0;
    down(h + o, b->x, (size_t)M * CH_H * 4), o += (size_t)M * CH_H * 4;
    down(h + o, b->qkv, (size_t)M * CH_QKV * 2), o += (size_t)M * CH_QKV * 2;
    down(h + o, b->act, (size_t)M * CH_I * 2), o += (size_t)M * CH_I * 2;
    down(h + o, b->logits, (size_t)M * CH_V * 4), o += (size_t)M * CH_V * 4;
    return o;
}

static void *dev_bf16(size_t n, float std) {
    uint16_t *h = xmalloc(n * 2);
    fill_bf16(h, NULL, n, std);
    void *d = dup_to_dev(h, n * 2);
    free(h);
    return d;
}
static float *dev_f32(size_t n, float mean, float std) {
    float *h = rand_f32(n, mean, std), *d = dup_to_dev(h, n * 4);
    free(h);
    return d;
}

static void case_fused_chain(int M) {
    char shape[96];
    snprintf(shape, sizeof shape, "M %d H %d I %d, 2 layers + LM head", M, CH_H, CH_I);
    ga_cuda_devinfo di;
    ga_err err = {{0}};
    if (ga_cuda_devinfo_query(&di, &err) || di.cc_major < 9) {
        printf("%-10s %-56s skipped: programmatic dependent launch needs sm_90\n", "gemv+pdl",
               shape);
        return;
    }
    chain_bufs b = {
        .x0 = dev_f32((size_t)M * CH_H, 0.f, 3.f),
        .x = dmalloc((size_t)M * CH_H * 4),
        .n1 = dev_f32(CH_H, 1.f, 0.3f),
        .n2 = dev_f32(CH_H, 1.f, 0.3f),
        .nf = dev_f32(CH_H, 1.f, 0.3f),
        .bo = dev_f32(CH_H, 0.f, 0.5f),
        .a = dev_bf16((size_t)M * CH_H, 1.f),
        .wqkv = dev_bf16((size_t)CH_QKV * CH_H, 1.f / sqrtf(CH_H)),
        .wo = dev_bf16((size_t)CH_H * CH_H, 1.f / sqrtf(CH_H)),
        .wgu = dev_bf16((size_t)2 * CH_I * CH_H, 2.f / sqrtf(CH_H)),
        .wdown = dev_bf16((size_t)CH_H * CH_I, 1.f / sqrtf(CH_I)),
        .wlm = dev_bf16((size_t)CH_V * CH_H, 1.f / sqrtf(CH_H)),
        .qkv = dmalloc((size_t)M * CH_QKV * 2),
        .act = dmalloc((size_t)M * CH_I * 2),
        .logits = dmalloc((size_t)M * CH_V * 4),
    };
    const size_t bytes = (size_t)M * (CH_H * 4 + CH_QKV * 2 + CH_I * 2 + CH_V * 4);
    unsigned char *ref = xmalloc(bytes), *got = xmalloc(bytes);
    cudaStream_t st;
    CU(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
    if (launched(chain_run(&b, M, false, true, st, &err), &err, "gemv+pdl", shape)) {
        CU(cudaStreamSynchronize(st));
        chain_down(&b, M, ref);
        bool ok = true;
        for (int rep = 0; rep < 3 && ok; rep++) { /* PDL on the stream */
            poison(b.qkv, (size_t)M * CH_QKV * 2), poison(b.act, (size_t)M * CH_I * 2);
            poison(b.logits, (size_t)M * CH_V * 4);
            CU(cudaDeviceSynchronize()); /* the memsets run on the legacy stream, not st */
            ok = launched(chain_run(&b, M, true, true, st, &err), &err, "gemv+pdl", shape);
            CU(cudaStreamSynchronize(st));
            if (ok) chain_down(&b, M, got), ok = !memcmp(got, ref, bytes);
        }
        report("gemv+pdl", "stream: bitwise as without PDL", ok ? 0.0 : 1.0, TOL_EXACT);
        cudaGraph_t g = NULL;
        cudaGraphExec_t ge = NULL;
        CU(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal));
        ga_status cs = chain_run(&b, M, true, false, st, &err);
        cudaError_t ce = cudaStreamEndCapture(st, &g);
        ok = launched(cs, &err, "gemv+pdl", shape) && ce == cudaSuccess &&
             cudaGraphInstantiate(&ge, g, 0) == cudaSuccess;
        if (!ok) printf("gemv+pdl: capture failed: %s\n", cudaGetErrorName(cudaGetLastError()));
        for (int rep = 0; rep < 2 && ok; rep++) {
            poison(b.qkv, (size_t)M * CH_QKV * 2), poison(b.act, (size_t)M * CH_I * 2);
            poison(b.logits, (size_t)M * CH_V * 4);
            CU(cudaMemcpy(b.x, b.x0, (size_t)M * CH_H * 4, cudaMemcpyDeviceToDevice));
            CU(cudaDeviceSynchronize()); /* the memsets run on the legacy stream, not st */
            CU(cudaGraphLaunch(ge, st));
            CU(cudaStreamSynchronize(st));
            chain_down(&b, M, got);
            ok = !memcmp(got, ref, bytes);
        }
        report("gemv+pdl", "graph: bitwise as without PDL", ok ? 0.0 : 1.0, TOL_EXACT);
        if (ge) cudaGraphExecDestroy(ge);
        if (g) cudaGraphDestroy(g);
    }
    CU(cudaStreamDestroy(st));
    void *all[] = {b.x0, b.x,   b.n1,    b.n2,  b.nf,  b.bo,  b.a,     b.wqkv,
                   b.wo, b.wgu, b.wdown, b.wlm, b.qkv, b.act, b.logits};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        cudaFree(all[i]);
    free(ref), free(got);
}

static void fused_section(void) {
    case_fused_chain(1);
    case_fused_chain(2);
    for (int M = 1; M <= 2; M++) {
        /* the 1.7B shape: q|k|v (headwise gate), LM head; gate|up; o_proj, down_proj */
        case_fused_norm(M, 4112, 2048, false);
        if (!quick) case_fused_norm(M, 151936, 2048, true);
        case_fused_swiglu(M, 6144, 2048);
        case_fused_resid(M, 2048, 2048, true);
        case_fused_resid(M, 2048, 6144, false);
        /* awkward: odd N / I, K/8 below a warp, K not a multiple of 256 (the unrolled loop and
         * its remainder), the largest staged row (M * K * 2 = 24 KB at K 6144, M 2) */
        case_fused_norm(M, 1001, 64, true);
        case_fused_norm(M, 33, 1000, false);
        case_fused_norm(M, 257, 2056, true);
        case_fused_norm(M, 17, 6144, false);
        case_fused_swiglu(M, 1001, 64);
        case_fused_swiglu(M, 33, 1000);
        case_fused_swiglu(M, 3, 6144);
        case_fused_resid(M, 1001, 64, true);
        case_fused_resid(M, 33, 1000, false);
        case_fused_resid(M, 17, 2056, true);
    }
}

/* ---------------------------------------------------------------- rows: launch-shape invariance
 * The deterministic mode, test_determ and the decode-vs-recompute tests need a row's result to
 * be the same bits whatever the number of rows launched with it: the prefill normalises 512- or
 * 2048-row chunks, decode 1..64 rows, and the fused decode GEMVs (gemv.cu) their own rows. Each
 * case launches N_ROWS rows once, then R = 1, 2, 7, 512 of them (at an offset, on a fresh copy
 * of the inputs) and requires those rows bitwise equal to the full launch's, and every row
 * outside the window untouched. The full launch is also checked against the CPU backend's op
 * (tolerance), and the norm against gemv.cu's own norm bitwise: ga_gemv_rmsnorm with an identity
 * weight and an fp32 output returns its staged bf16 row exactly (every product but one is
 * w = 0, and x + 0 = x; only the sign of a zero can differ, and == ignores it). */
enum { N_ROWS = 2048 };
static const int rows_R[] = {1, 2, 7, 512};

/* Bitwise equality of two byte ranges, one case. */
static void report_same(const char *op, const char *shape, const void *a, const void *b,
                        size_t bytes) {
    const bool same = !memcmp(a, b, bytes);
    printf("%-10s %-56s %s %s\n", op, shape, same ? "bitwise equal" : "DIFFERENT",
           same ? "PASS" : "FAIL");
    if (same)
        ga_t_pass++;
    else
        ga_t_fail++;
}

/* The window of R rows this case moves: away from row 0 and the end, different for each R. */
static int rows_offset(int R) {
    return R == N_ROWS ? 0 : (int)((R * 613L + 5) % (N_ROWS - R + 1));
}

static void rows_norm(int dim, bool delta, bool bias) {
    char shape[96];
    const size_t n = (size_t)N_ROWS * dim;
    const float eps = 1e-6f;
    float *x = rand_f32(n, 0.f, 3.f), *d = rand_f32(n, 0.f, 1.f), *b = rand_f32(dim, 0.f, 0.5f),
          *w = rand_f32(dim, 1.f, 0.3f);
    float *xref = xmalloc(n * 4), *oref = xmalloc(n * 4), *xall = xmalloc(n * 4),
          *oallf = xmalloc(n * 4), *xr = xmalloc(n * 4);
    uint16_t *oall = xmalloc(n * 2), *ow = xmalloc(n * 2);
    float *dx0 = dup_to_dev(x, n * 4), *dx = dmalloc(n * 4), *dd = dup_to_dev(d, n * 4),
          *db = dup_to_dev(b, dim * 4), *dw = dup_to_dev(w, dim * 4);
    void *dout = dmalloc(n * 2);
    const float *pd = delta ? dd : NULL, *pb = bias ? db : NULL;
    ga_err err = {{0}};
    snprintf(shape, sizeof shape, "rows %d dim %d delta %d bias %d", N_ROWS, dim, delta, bias);
    CU(cudaMemcpy(dx, dx0, n * 4, cudaMemcpyDeviceToDevice));
    poison(dout, n * 2);
    if (!launched(ga_rmsnorm_residual(dx, pd, pb, dw, dout, N_ROWS, dim, eps, 0, &err), &err,
                  "rows.norm", shape))
        goto out;
    down(xall, dx, n * 4);
    down(oall, dout, n * 2);
    widen(oall, oallf, n);
    for (size_t i = 0; i < n; i++) /* the CPU backend: x += delta (+ bias), then its rmsnorm */
        xref[i] = delta ? x[i] + (d[i] + (bias ? b[i % dim] : 0.f)) : x[i];
    for (int r = 0; r < N_ROWS; r++)
        ga_cpu_rmsnorm(oref + (size_t)r * dim, xref + (size_t)r * dim, w, dim, eps);
    if (delta) report("rows.res", shape, nerr(xall, xref, n), TOL_F32);
    report("rows.norm", shape, nerr(oallf, oref, n), TOL_BF16_OUT);
    for (size_t k = 0; k < sizeof rows_R / sizeof *rows_R; k++) {
        const int R = rows_R[k], off = rows_offset(R);
        const size_t o = (size_t)off * dim, m = (size_t)R * dim;
        snprintf(shape, sizeof shape, "rows %d at %d of %d, dim %d delta %d bias %d", R, off,
                 N_ROWS, dim, delta, bias);
        CU(cudaMemcpy(dx, dx0, n * 4, cudaMemcpyDeviceToDevice));
        poison(dout, n * 2);
        if (!launched(ga_rmsnorm_residual(dx + o, delta ? dd + o : NULL, pb, dw,
                                          (uint16_t *)dout + o, R, dim, eps, 0, &err),
                      &err, "rows.norm", shape))
            continue;
        down(xr, dx, n * 4);
        down(ow, dout, n * 2);
        report_same("rows.norm", shape, ow + o, oall + o, m * 2);
        if (delta) report_same("rows.res", shape, xr + o, xall + o, m * 4);
        /* outside the window: x as it was, out still poison */
        bool untouched = !memcmp(xr, x, o * 4) && !memcmp(xr + o + m, x + o + m, (n - o - m) * 4);
        for (size_t i = 0; i < n && untouched; i++)
            if ((i < o || i >= o + m) && ow[i] != 0xffff) untouched = false;
        report("rows.win", shape, untouched ? 0.0 : 1.0, TOL_EXACT);
    }
    /* gemv.cu's fused norm of the same (post-add) rows, bitwise, every row in launches of M:
     * one ulp of 1/rms flips about 2^-15 of the bf16 outputs, so a different order of the sum
     * of squares needs all N_ROWS * dim of them to show */
    const int M = dim * 2 * GA_GEMV_MAX_M <= GA_GEMV_STAGE_BYTES ? GA_GEMV_MAX_M
                                                                 : GA_GEMV_STAGE_BYTES / (dim * 2);
    if (dim % 8 == 0 && M >= 1 && dim <= 4096) {
        const size_t nw = (size_t)dim * dim, ny = (size_t)N_ROWS * dim;
        uint16_t *eye = xmalloc(nw * 2);
        memset(eye, 0, nw * 2);
        for (int i = 0; i < dim; i++)
            eye[(size_t)i * dim + i] = ga_f32_to_bf16(1.f);
        float *dxs = dup_to_dev(xall, ny * 4), *y = xmalloc(ny * 4);
        void *deye = dup_to_dev(eye, nw * 2);
        float *dy = dmalloc(ny * 4);
        snprintf(shape, sizeof shape, "rows %d dim %d vs gemv.cu's norm (M %d)", N_ROWS, dim, M);
        poison(dy, ny * 4);
        bool ok = ga_gemv_norm_supported(dxs, dw, deye, M, dim);
        if (!ok) {
            printf("%-10s %-56s not supported by gemv.cu FAIL\n", "rows.gemv", shape);
            ga_t_fail++;
        }
        for (int r = 0; ok && r < N_ROWS; r += M) {
            const int m = N_ROWS - r < M ? N_ROWS - r : M;
            ok = launched(ga_gemv_rmsnorm(dxs + (size_t)r * dim, dw, eps, deye,
                                          dy + (size_t)r * dim, true, m, dim, dim, false, 0, &err),
                          &err, "rows.gemv", shape);
        }
        if (ok) {
            down(y, dy, ny * 4);
            size_t bad = 0;
            for (size_t i = 0; i < ny; i++)
                bad += !(y[i] == oallf[i]);
            report("rows.gemv", shape, (double)bad, TOL_EXACT);
        }
        cudaFree(dxs), cudaFree(deye), cudaFree(dy);
        free(eye), free(y);
    }
out:
    cudaFree(dx0), cudaFree(dx), cudaFree(dd), cudaFree(db), cudaFree(dw), cudaFree(dout);
    free(x), free(d), free(b), free(w), free(xref), free(oref), free(xall), free(oallf), free(xr);
    free(oall), free(ow);
}

static void rows_swiglu(int I) {
    char shape[96];
    const size_t n = (size_t)N_ROWS * I;
    uint16_t *h = xmalloc(2 * n * 2), *oall = xmalloc(n * 2), *ow = xmalloc(n * 2);
    float *f = xmalloc(2 * n * 4), *ref = xmalloc(n * 4), *fo = xmalloc(n * 4);
    fill_bf16(h, f, 2 * n, 3.f);
    void *din = dup_to_dev(h, 2 * n * 2), *dout = dmalloc(n * 2);
    ga_err err = {{0}};
    snprintf(shape, sizeof shape, "T %d I %d", N_ROWS, I);
    poison(dout, n * 2);
    if (!launched(ga_swiglu(din, dout, N_ROWS, I, 0, &err), &err, "rows.glu", shape)) goto out;
    down(oall, dout, n * 2);
    widen(oall, fo, n);
    for (int t = 0; t < N_ROWS; t++) /* row t = [gate | up] */
        ga_cpu_swiglu(ref + (size_t)t * I, f + (size_t)t * 2 * I, f + (size_t)t * 2 * I + I,
                      (size_t)I);
    report("rows.glu", shape, nerr(fo, ref, n), TOL_BF16_OUT);
    for (size_t k = 0; k < sizeof rows_R / sizeof *rows_R; k++) {
        const int R = rows_R[k], off = rows_offset(R);
        const size_t o = (size_t)off * I, m = (size_t)R * I;
        snprintf(shape, sizeof shape, "T %d at %d of %d, I %d", R, off, N_ROWS, I);
        poison(dout, n * 2);
        if (!launched(ga_swiglu((const uint16_t *)din + 2 * o, (uint16_t *)dout + o, R, I, 0, &err),
                      &err, "rows.glu", shape))
            continue;
        down(ow, dout, n * 2);
        report_same("rows.glu", shape, ow + o, oall + o, m * 2);
        bool untouched = true;
        for (size_t i = 0; i < n && untouched; i++)
            if ((i < o || i >= o + m) && ow[i] != 0xffff) untouched = false;
        report("rows.win", shape, untouched ? 0.0 : 1.0, TOL_EXACT);
    }
out:
    cudaFree(din), cudaFree(dout);
    free(h), free(oall), free(ow), free(f), free(ref), free(fo);
}

/* ga_swiglu bitwise against gemv.cu's SwiGLU epilogue (the decode path, whose arithmetic the
 * old kernel shared): the gate|up GEMV with weight rows e_j (gate j) and e_(j+1 mod I) (up j)
 * over K = I turns the normalised row xn into g = xn[j], u = xn[j + 1] exactly (one product
 * w = 1, the rest 0; bf16 -> fp32 -> bf16 is exact), so ga_swiglu over [xn | xn shifted by one]
 * must store the same bits. */
static void rows_swiglu_vs_gemv(int I) {
    char shape[96];
    const size_t n = (size_t)N_ROWS * I, nw = (size_t)2 * I * I;
    const int M = I * 2 * GA_GEMV_MAX_M <= GA_GEMV_STAGE_BYTES ? GA_GEMV_MAX_M
                                                               : GA_GEMV_STAGE_BYTES / (I * 2);
    const float eps = 1e-6f;
    snprintf(shape, sizeof shape, "T %d I %d vs gemv.cu's SwiGLU (M %d)", N_ROWS, I, M);
    float *x = rand_f32(n, 0.f, 3.f), *g = rand_f32(I, 1.f, 0.3f);
    uint16_t *xn = xmalloc(n * 2), *gu = xmalloc(2 * n * 2), *w = xmalloc(nw * 2);
    uint16_t *a1 = xmalloc(n * 2), *a2 = xmalloc(n * 2);
    float *dx = dup_to_dev(x, n * 4), *dg = dup_to_dev(g, I * 4);
    uint16_t *dxn = dmalloc(n * 2), *da1 = dmalloc(n * 2), *da2 = dmalloc(n * 2);
    ga_err err = {{0}};
    memset(w, 0, nw * 2);
    for (int j = 0; j < I; j++) {
        w[(size_t)j * I + j] = ga_f32_to_bf16(1.f);
        w[(size_t)(I + j) * I + (j + 1) % I] = ga_f32_to_bf16(1.f);
    }
    void *dw = dup_to_dev(w, nw * 2), *dgu = NULL;
    bool ok = launched(ga_rmsnorm_residual(dx, NULL, NULL, dg, dxn, N_ROWS, I, eps, 0, &err), &err,
                       "rows.glu", shape);
    if (ok) {
        down(xn, dxn, n * 2);
        for (int t = 0; t < N_ROWS; t++)
            for (int j = 0; j < I; j++) {
                gu[(size_t)t * 2 * I + j] = xn[(size_t)t * I + j];
                gu[(size_t)t * 2 * I + I + j] = xn[(size_t)t * I + (j + 1) % I];
            }
        dgu = dup_to_dev(gu, 2 * n * 2);
        poison(da1, n * 2);
        poison(da2, n * 2);
        ok = launched(ga_swiglu(dgu, da2, N_ROWS, I, 0, &err), &err, "rows.glu", shape);
    }
    for (int r = 0; ok && r < N_ROWS; r += M) {
        const int m = N_ROWS - r < M ? N_ROWS - r : M;
        ok = launched(ga_gemv_rmsnorm_swiglu(dx + (size_t)r * I, dg, eps, dw, da1 + (size_t)r * I,
                                             m, I, I, false, 0, &err),
                      &err, "rows.glu", shape);
    }
    if (ok) {
        down(a1, da1, n * 2);
        down(a2, da2, n * 2);
        report_same("rows.glu", shape, a2, a1, n * 2);
    }
    cudaFree(dx), cudaFree(dg), cudaFree(dxn), cudaFree(da1), cudaFree(da2), cudaFree(dw);
    cudaFree(dgu);
    free(x), free(g), free(xn), free(gu), free(w), free(a1), free(a2);
}

static void rows_section(void) {
    /* the 1.7B width (with and without the o_proj bias, and the first layer's norm without a
     * delta); a partial last float4 round (2560: 640 float4s over 256 threads); fewer float4s
     * than threads (1000); the widest row held in registers (6144) and the first past it
     * (6148, the two-pass kernel); not a multiple of 4 (1001, the scalar kernel) */
    rows_norm(2048, true, false);
    rows_norm(2048, true, true);
    rows_norm(2048, false, false);
    rows_norm(1000, true, true);
    rows_norm(2560, true, false);
    rows_norm(6144, true, true);
    rows_norm(6148, true, false);
    rows_norm(1001, true, true);
    /* the 1.7B intermediate (one and four chunks a thread, by the row count), the 0.6B one,
     * and an odd width (the scalar kernel) */
    rows_swiglu(6144);
    rows_swiglu(3072);
    rows_swiglu(1001);
    rows_swiglu_vs_gemv(3072); /* M 8 staged rows of K = 3072: gemv.cu's 48 KB */
    rows_swiglu_vs_gemv(1000);
}

/* ---------------------------------------------------------------- the shape table */
static const ga_gate_mode modes[] = {GA_GATE_NONE, GA_GATE_HEADWISE, GA_GATE_ELEMENTWISE};

static int gpu_sections(int argc, char **argv) {
    const int Ts[] = {1, 7, 128, 1000, 4096};
    const int nT = quick ? 3 : 5;
    if (ga_test_want(argc, argv, "norm")) {
        for (int i = 0; i < nT; i++) {
            case_rmsnorm(Ts[i], 1024, true, true);
            case_rmsnorm(Ts[i], 1001, true, false); /* not a multiple of 4: the scalar path */
            case_rmsnorm(Ts[i], 64, false, false);
        }
        case_rmsnorm(3, 5120, true, false);
    }
    if (ga_test_want(argc, argv, "qk")) {
        const int Gs[] = {1, 2, 4, 16};
        for (int ti = 0; ti < (quick ? 3 : 4); ti++)
            for (int hd = 64; hd <= 256; hd *= 2)
                for (int g = 0; g < 4; g++)
                    for (int m = 0; m < 3; m++)
                        case_qk((qk_case){.T = Ts[ti],
                                          .hd = hd,
                                          .G = Gs[g],
                                          .n_kv = Gs[g] == 16 ? 1 : 2,
                                          .mode = modes[m],
                                          .bias = (ti + m) % 2 == 0,
                                          .qknorm = (ti + g) % 3 != 2,
                                          .pos0 = (ti * 13) % 17});
        for (int m = 0; m < 3; m++) { /* decode form: scattered slots and positions */
            case_qk((qk_case){7, 128, 2, 4, modes[m], true, true, true, 0, 0});
            case_qk((qk_case){64, 64, 4, 1, modes[m], false, true, true, 0, 0});
        }
        case_qk((qk_case){5, 96, 3, 3, GA_GATE_HEADWISE, true, true, false, 2, 0}); /* odd heads */
        case_qk((qk_case){9, 32, 2, 2, GA_GATE_ELEMENTWISE, true, false, true, 0, 0}); /* hd 32 */
        case_qk((qk_case){3, 192, 5, 2, GA_GATE_HEADWISE, false, true, false, 1, 0});
        /* G 8 and 12: more head vectors per KV group than the generic kernel has warps */
        case_qk((qk_case){33, 128, 8, 2, GA_GATE_ELEMENTWISE, true, true, false, 5, 0});
        case_qk((qk_case){17, 64, 12, 1, GA_GATE_HEADWISE, false, true, true, 0, 0});
        if (!quick)
            case_qk((qk_case){4096, 128, 2, 8, GA_GATE_ELEMENTWISE, false, true, false, 0, 0});
        qk_timing();
    }
    if (ga_test_want(argc, argv, "attn")) {
        const int Ts2[] = {1, 7, 128, 257, 1000};
        const int Gs[] = {1, 2, 4, 16};
        int n = 0;
        for (int hd = 64; hd <= 256; hd *= 2)
            for (int g = 0; g < 4; g++)
                for (int ti = 0; ti < 5; ti++)
                    for (int m = 0; m < 3; m++, n++) {
                        int T = Ts2[ti], pos0 = n % 2 ? 0 : 29 + T % 5;
                        case_prefill_all(
                            (attn_case){hd, Gs[g], Gs[g] >= 4 ? 1 : 2, T, pos0, modes[m]});
                    }
        case_prefill_all((attn_case){128, 2, 2, 7, 3000, GA_GATE_HEADWISE}); /* far into a seq */
        if (!quick) {                                                        /* long T */
            case_prefill_all((attn_case){128, 2, 1, 4096, 0, GA_GATE_HEADWISE});
            case_prefill_all((attn_case){64, 4, 1, 4096, 0, GA_GATE_ELEMENTWISE});
            case_prefill_all((attn_case){128, 8, 1, 4096, 1000, GA_GATE_NONE});
            case_prefill_all((attn_case){128, 2, 2, 2100, 77, GA_GATE_ELEMENTWISE});
            case_prefill_all((attn_case){256, 4, 1, 2500, 0, GA_GATE_ELEMENTWISE});
        }
    }
    if (ga_test_want(argc, argv, "decode")) {
        const dc_case cases[] = {
            {128, 2, 2, 4, {1, 100, 4096, 32768}, 32768, 0}, /* one row at 32k keys */
            {64, 4, 2, 3, {100, 1, 4096}, 40000, 0},         /* grid far above the rows */
            {128, 1, 2, 2, {129, 256}, 300, 0},              /* split boundaries */
            {64, 1, 4, 4, {7, 63, 64, 65}, 80, 0},           /* 64-key chunk edges */
            {128, 8, 1, 2, {1000, 127}, 1024, 0},            /* G = 8: one full slab */
            {128, 16, 1, 1, {32768}, 32768, 0},              /* G = 16 at 32k */
            {128, 2, 8, 1, {32768}, 32768, 0},               /* the benchmark's shape */
            {64, 12, 1, 2, {1000, 65}, 1100, 0},             /* a partial slab */
            {128, 4, 1, 6, {5000, 3, 64, 2000, 129, 700}, 5000, 0},
            /* hd 256 (32-key chunks): 16 heads on 2 KV heads at 32k (past the calibrated
             * 8192: see decode_calibration), chunk edges, two slabs, six rows of different
             * split counts */
            {256, 8, 2, 1, {32768}, 32768, 0},
            {256, 2, 2, 4, {31, 32, 33, 129}, 140, 0},
            {256, 16, 1, 2, {1000, 7}, 1024, 0},
            {256, 4, 1, 6, {5000, 3, 64, 2000, 129, 700}, 5000, 0},
        };
        for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
            for (int m = 0; m < 3; m++) {
                dc_case c = cases[i];
                c.mode = modes[m];
                if (quick && c.max_kv_len > 8192) continue;
                case_decode(c);
            }
    }
    if (ga_test_want(argc, argv, "paged")) {
        /* lengths off the block size, every gate mode, G 1..8, hd 64/128/256, bs 16/32/64 */
        const dc_case dcs[] = {
            {128, 2, 2, 4, {1, 100, 4095, 333}, 4096, 0},
            {64, 4, 2, 3, {17, 1, 1000}, 1100, 0},
            {128, 1, 2, 2, {129, 255}, 300, 0},
            {64, 8, 1, 4, {7, 63, 64, 65}, 80, 0},
            {128, 3, 1, 6, {5000, 3, 64, 2000, 129, 700}, 5000, 0},
            {128, 8, 1, 1, {32767}, 32768, 0},
            {256, 8, 2, 2, {4095, 33}, 4096, 0},
            {256, 3, 1, 3, {1, 100, 1000}, 1100, 0},
        };
        const attn_case pcs[] = {
            {64, 1, 2, 7, 29, 0},   {128, 2, 2, 129, 0, 0},  {128, 4, 1, 300, 77, 0},
            {64, 8, 1, 1, 1000, 0}, {128, 5, 1, 33, 15, 0},  {64, 2, 2, 1000, 3, 0},
            {256, 2, 2, 129, 0, 0}, {256, 4, 1, 300, 77, 0},
        };
        const int bss[] = {16, 32, 64};
        for (int bi = 0; bi < 3; bi++)
            for (int m = 0; m < 3; m++) {
                for (size_t i = 0; i < sizeof dcs / sizeof *dcs; i++) {
                    dc_case c = dcs[i];
                    c.mode = modes[m];
                    if (quick && c.max_kv_len > 8192) continue;
                    case_paged_decode(c, bss[bi]);
                }
                for (size_t i = 0; i < sizeof pcs / sizeof *pcs; i++) {
                    attn_case c = pcs[i];
                    c.mode = modes[m];
                    case_paged_prefill(c, bss[bi]);
                }
            }
        for (int m = 0; m < 3; m++) /* the KV write through a block table */
            case_qk((qk_case){9, 128, 2, 2, modes[m], true, true, true, 0, 16});
        case_qk((qk_case){40, 64, 4, 1, GA_GATE_HEADWISE, false, true, true, 0, 16});
        case_qk((qk_case){9, 256, 4, 2, GA_GATE_ELEMENTWISE, true, true, true, 0, 16});
    }
    if (ga_test_want(argc, argv, "probs")) {
        case_probs(64, 2, 2, 7, 7, -1);
        case_probs(128, 2, 1, 300, 64, -1);
        case_probs(128, 4, 2, 1000, 100, 3);
        case_probs(256, 2, 2, 300, 64, -1);
        case_probs(256, 4, 1, 200, 200, 1);
        if (!quick) case_probs(128, 2, 2, 4096, 256, -1);
    }
    if (ga_test_want(argc, argv, "act")) {
        for (int i = 0; i < nT; i++) {
            case_swiglu(Ts[i], 1024);
            case_swiglu(Ts[i], 1001); /* odd: the scalar path */
        }
        case_swiglu(3, 3072);
    }
    if (ga_test_want(argc, argv, "embed")) {
        case_embed(1, 64, 1000);
        case_embed(7, 100, 1000); /* not a multiple of 8: the scalar path */
        case_embed(1000, 1024, 1000);
    }
    if (ga_test_want(argc, argv, "argmax")) {
        case_argmax(1, 1);
        case_argmax(7, 1000);
        case_argmax(quick ? 4 : 128, 151936);
    }
    if (ga_test_want(argc, argv, "gate")) {
        case_gate_stats(7);
        case_gate_stats(1000 * 16);
        case_gate_stats(quick ? 128 * 4096 : 4096 * 4096);
    }
    if (ga_test_want(argc, argv, "fused")) fused_section();
    if (ga_test_want(argc, argv, "rows")) rows_section();
    if (ga_test_want(argc, argv, "gemm") && gemm_section()) return 1;
    CU(cudaDeviceSynchronize());
    return 0;
}
#endif

int main(int argc, char **argv) {
    quick = atoi(ga_test_env("GA_TEST_QUICK", "0"));
    pool = ga_pool_create(0);
    if (!pool) return 1;
    bool cpu_only = argc > 1 && !strcmp(argv[1], "cpu");
    if (ga_test_want(argc, argv, "cpu")) {
        harness_selftest();
        decode_calibration();
    }
    if (!cpu_only) {
#ifdef GA_HAVE_CUDA
        if (!ga_cuda_available()) {
            printf("no CUDA GPU: skipped\n");
            ga_pool_free(pool);
            return 77;
        }
        if (gpu_sections(argc, argv)) return 1;
#else
        printf("built without CUDA: GPU sections skipped\n");
        ga_pool_free(pool);
        return 77;
#endif
    }
    ga_pool_free(pool);
    return ga_test_finish();
}
