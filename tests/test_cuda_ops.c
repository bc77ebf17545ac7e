/*
 * The non-attention CUDA kernels (kernels/norm.cu, qk_rope.cu, activation.cu, embed.cu,
 * sampling.cu, convert.cu, gate_stats.cu) and the cuBLAS GEMM wrapper, each against a naive
 * fp32/fp64 reference written here, on fresh random inputs at awkward sizes. Output buffers are
 * poisoned (bf16 0xFFFF / fp32 NaN bytes) before every launch so an unwritten element fails,
 * and every output is checked for NaN/Inf. GA_TEST_QUICK=1 (set under compute-sanitizer)
 * drops the largest shapes.
 *
 * Tolerances: a bf16 store rounds to 8 significant bits (relative error <= 2^-9 = 0.2%);
 * values compared after one bf16 rounding use atol 1e-2 + rtol 1e-2 on O(1) data, fp32 results
 * use 1e-5 relative, conversions and gathers are compared bit for bit.
 */
#include <cuda_runtime.h>
#include <stdint.h>

#include "core/tensor.h"
#include "cuda/cuda_internal.h"
#include "cuda_test_diag.h"
#include "kernels.h"
#include "testutil.h"

static char phase_buf[192];
#define PHASE(...)                                                                                 \
    do {                                                                                           \
        snprintf(phase_buf, sizeof phase_buf, __VA_ARGS__);                                        \
        ga_diag_phase = phase_buf;                                                                 \
    } while (0)

static uint64_t rng = 0x5eed1234abcdull;
static int quick;

#define CU(call)                                                                                   \
    do {                                                                                           \
        cudaError_t e_ = (call);                                                                   \
        if (e_ != cudaSuccess) {                                                                   \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorName(e_));   \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

static void *dmalloc(size_t bytes) {
    void *p = NULL;
    CU(cudaMalloc(&p, bytes ? bytes : 16));
    return p;
}
static void *hmalloc(size_t bytes) {
    void *p = malloc(bytes ? bytes : 16);
    if (!p) exit(1);
    return p;
}
static void poison(void *d, size_t bytes) {
    CU(cudaMemset(d, 0xff, bytes));
}
static void up(void *d, const void *h, size_t bytes) {
    CU(cudaMemcpy(d, h, bytes, cudaMemcpyHostToDevice));
}
static void down(void *h, const void *d, size_t bytes) {
    CU(cudaMemcpy(h, d, bytes, cudaMemcpyDeviceToHost));
}
static void fill_bf16(uint16_t *h, float *f, size_t n, float scale) {
    for (size_t i = 0; i < n; i++) {
        h[i] = ga_f32_to_bf16(ga_test_rand_normal(&rng) * scale);
        if (f) f[i] = ga_bf16_to_f32(h[i]);
    }
}
static void bf16_to_f32_n(const uint16_t *h, float *f, size_t n) {
    for (size_t i = 0; i < n; i++)
        f[i] = ga_bf16_to_f32(h[i]);
}

/* ------------------------------------------------------------------ rmsnorm + residual */
static void test_rmsnorm(int rows, int dim, bool with_delta, bool with_bias) {
    PHASE("rmsnorm rows %d dim %d", rows, dim);
    size_t n = (size_t)rows * dim;
    float *x = hmalloc(n * 4), *d = hmalloc(n * 4), *b = hmalloc(dim * 4), *w = hmalloc(dim * 4);
    float *xref = hmalloc(n * 4), *oref = hmalloc(n * 4), *xg = hmalloc(n * 4),
          *og = hmalloc(n * 4);
    uint16_t *oh = hmalloc(n * 2);
    for (size_t i = 0; i < n; i++)
        x[i] = 3.f * ga_test_rand_normal(&rng), d[i] = ga_test_rand_normal(&rng);
    for (int i = 0; i < dim; i++)
        b[i] = 0.5f * ga_test_rand_normal(&rng), w[i] = 1.f + 0.3f * ga_test_rand_normal(&rng);
    const float eps = 1e-6f;
    for (int r = 0; r < rows; r++) {
        double ss = 0;
        for (int i = 0; i < dim; i++) {
            float v = x[(size_t)r * dim + i];
            if (with_delta) v += d[(size_t)r * dim + i] + (with_bias ? b[i] : 0.f);
            xref[(size_t)r * dim + i] = v;
            ss += (double)v * v;
        }
        float inv = (float)(1.0 / sqrt(ss / dim + eps));
        for (int i = 0; i < dim; i++)
            oref[(size_t)r * dim + i] = w[i] * (xref[(size_t)r * dim + i] * inv);
    }
    float *dx = dmalloc(n * 4), *dd = dmalloc(n * 4), *db = dmalloc(dim * 4),
          *dw = dmalloc(dim * 4);
    void *dout = dmalloc(n * 2);
    up(dx, x, n * 4), up(dd, d, n * 4), up(db, b, dim * 4), up(dw, w, dim * 4);
    poison(dout, n * 2);
    ga_err err = {{0}};
    CHECK_OK(ga_rmsnorm_residual(dx, with_delta ? dd : NULL, with_bias ? db : NULL, dw, dout, rows,
                                 dim, eps, 0, &err),
             &err);
    CU(cudaDeviceSynchronize());
    down(xg, dx, n * 4);
    down(oh, dout, n * 2);
    bf16_to_f32_n(oh, og, n);
    double rx = ga_test_tol_ratio(xg, xref, n, 1e-6, 1e-6);
    double ro = ga_test_tol_ratio(og, oref, n, 1e-2, 1e-2);
    CHECK_MSG(rx <= 1 && ro <= 1,
              "rmsnorm rows %d dim %d delta %d bias %d: x ratio %.3g out ratio %.3g", rows, dim,
              with_delta, with_bias, rx, ro);
    cudaFree(dx), cudaFree(dd), cudaFree(db), cudaFree(dw), cudaFree(dout);
    free(x), free(d), free(b), free(w), free(xref), free(oref), free(xg), free(og), free(oh);
}

/* ------------------------------------------------------------------ qk norm + rope */
typedef struct qk_case {
    int T, hd, G, n_kv;
    ga_gate_mode mode;
    bool bias, qknorm, decode; /* decode: per-row positions and slots from device arrays */
    int pos0;
} qk_case;

static void ref_norm_rope(const float *src, const float *bias, const float *w, const float *cs,
                          const float *sn, int hd, float eps, float *dst) {
    float buf[256];
    double ss = 0;
    for (int e = 0; e < hd; e++) {
        buf[e] = src[e] + (bias ? bias[e] : 0.f);
        ss += (double)buf[e] * buf[e];
    }
    float inv = w ? (float)(1.0 / sqrt(ss / hd + eps)) : 1.f;
    for (int e = 0; e < hd; e++)
        buf[e] = buf[e] * inv * (w ? w[e] : 1.f);
    int h = hd / 2;
    for (int i = 0; i < h; i++) {
        dst[i] = buf[i] * cs[i] - buf[i + h] * sn[i];
        dst[i + h] = buf[i + h] * cs[i] + buf[i] * sn[i];
    }
}

static void test_qk_rope(qk_case k) {
    PHASE("qk_rope T %d hd %d G %d n_kv %d mode %d decode %d", k.T, k.hd, k.G, k.n_kv, (int)k.mode,
          k.decode);
    const int T = k.T, hd = k.hd, G = k.G, nkv = k.n_kv, nh = G * nkv;
    const int gsz = k.mode == GA_GATE_HEADWISE ? G : k.mode == GA_GATE_ELEMENTWISE ? G * hd : 0;
    const int gate_dim = gsz * nkv, q_rows = nkv * (G * hd + gsz), kvd = nkv * hd;
    const int qkv_dim = q_rows + 2 * kvd, max_batch = 3, half = hd / 2;
    const int stride = k.decode ? 50 : k.pos0 + T + 3, rope_rows = stride;
    const float eps = 1e-6f;
    size_t nq = (size_t)T * qkv_dim, ncache = (size_t)max_batch * nkv * stride * hd;
    uint16_t *hqkv = hmalloc(nq * 2);
    float *fqkv = hmalloc(nq * 4), *bias = hmalloc(qkv_dim * 4), *qn = hmalloc(hd * 4),
          *kn = hmalloc(hd * 4);
    fill_bf16(hqkv, fqkv, nq, 2.f);
    for (int i = 0; i < qkv_dim; i++)
        bias[i] = 0.3f * ga_test_rand_normal(&rng);
    for (int i = 0; i < hd; i++)
        qn[i] = 1.f + 0.2f * ga_test_rand_normal(&rng),
        kn[i] = 1.f + 0.2f * ga_test_rand_normal(&rng);
    float *cs = hmalloc((size_t)rope_rows * half * 4), *sn = hmalloc((size_t)rope_rows * half * 4);
    for (int p = 0; p < rope_rows; p++)
        for (int i = 0; i < half; i++) {
            double a = p * pow(1e6, -2.0 * i / hd);
            cs[(size_t)p * half + i] = (float)cos(a), sn[(size_t)p * half + i] = (float)sin(a);
        }
    int *pos = hmalloc(T * sizeof(int)), *slot = hmalloc(T * sizeof(int));
    for (int t = 0; t < T; t++) {
        // decode rows: distinct (slot, position) pairs so no two rows write one cache row
        pos[t] = k.decode ? (t * 7 + 3) % stride : k.pos0 + t;
        slot[t] = k.decode ? (t / stride) % max_batch : 1;
    }
    /* reference */
    float *qref = hmalloc((size_t)T * nh * hd * 4), *gref = hmalloc((size_t)T * gate_dim * 4 + 4);
    float *kref = hmalloc((size_t)T * kvd * 4), *vref = hmalloc((size_t)T * kvd * 4);
    for (int t = 0; t < T; t++) {
        const float *row = fqkv + (size_t)t * qkv_dim;
        const float *c = cs + (size_t)pos[t] * half, *s = sn + (size_t)pos[t] * half;
        for (int j = 0; j < nkv; j++) {
            int grp = j * (G * hd + gsz);
            for (int g = 0; g < G; g++)
                ref_norm_rope(row + grp + g * hd, k.bias ? bias + grp + g * hd : NULL,
                              k.qknorm ? qn : NULL, c, s, hd, eps,
                              qref + ((size_t)t * nh + j * G + g) * hd);
            for (int e = 0; e < gsz; e++)
                gref[(size_t)t * gate_dim + j * gsz + e] =
                    row[grp + G * hd + e] + (k.bias ? bias[grp + G * hd + e] : 0.f);
            int ko = q_rows + j * hd, vo = q_rows + kvd + j * hd;
            ref_norm_rope(row + ko, k.bias ? bias + ko : NULL, k.qknorm ? kn : NULL, c, s, hd, eps,
                          kref + ((size_t)t * nkv + j) * hd);
            for (int e = 0; e < hd; e++)
                vref[((size_t)t * nkv + j) * hd + e] = row[vo + e] + (k.bias ? bias[vo + e] : 0.f);
        }
    }
    /* device */
    void *dqkv = dmalloc(nq * 2), *dq = dmalloc((size_t)T * nh * hd * 2),
         *dg = dmalloc((size_t)T * gate_dim * 2), *dk = dmalloc(ncache * 2),
         *dv = dmalloc(ncache * 2);
    float *dbias = dmalloc(qkv_dim * 4), *dqn = dmalloc(hd * 4), *dkn = dmalloc(hd * 4),
          *dcs = dmalloc((size_t)rope_rows * half * 4),
          *dsn = dmalloc((size_t)rope_rows * half * 4);
    int *dpos = dmalloc(T * sizeof(int)), *dslot = dmalloc(T * sizeof(int));
    up(dqkv, hqkv, nq * 2), up(dbias, bias, qkv_dim * 4), up(dqn, qn, hd * 4), up(dkn, kn, hd * 4);
    up(dcs, cs, (size_t)rope_rows * half * 4), up(dsn, sn, (size_t)rope_rows * half * 4);
    up(dpos, pos, T * sizeof(int)), up(dslot, slot, T * sizeof(int));
    poison(dq, (size_t)T * nh * hd * 2), poison(dg, (size_t)T * gate_dim * 2);
    poison(dk, ncache * 2), poison(dv, ncache * 2);
    ga_qk_rope_args a = {.qkv = dqkv,
                         .bias = k.bias ? dbias : NULL,
                         .q_norm = k.qknorm ? dqn : NULL,
                         .k_norm = k.qknorm ? dkn : NULL,
                         .rope_cos = dcs,
                         .rope_sin = dsn,
                         .q_out = dq,
                         .gate_out = gate_dim ? dg : NULL,
                         .k_cache = dk,
                         .v_cache = dv,
                         .positions = k.decode ? dpos : NULL,
                         .slots = k.decode ? dslot : NULL,
                         .pos0 = k.pos0,
                         .slot = 1,
                         .T = T,
                         .n_heads = nh,
                         .n_kv_heads = nkv,
                         .hd = hd,
                         .kv_stride = stride,
                         .rope_rows = rope_rows,
                         .gate_mode = k.mode,
                         .eps = eps};
    ga_err err = {{0}};
    CHECK_OK(ga_qk_norm_rope(&a, 0, &err), &err);
    CU(cudaDeviceSynchronize());
    size_t nqo = (size_t)T * nh * hd;
    uint16_t *hq = hmalloc(nqo * 2), *hg = hmalloc((size_t)T * gate_dim * 2 + 2),
             *hk = hmalloc(ncache * 2), *hv = hmalloc(ncache * 2);
    float *fq = hmalloc(nqo * 4), *fg = hmalloc((size_t)T * gate_dim * 4 + 4),
          *fk = hmalloc((size_t)T * kvd * 4), *fv = hmalloc((size_t)T * kvd * 4);
    down(hq, dq, nqo * 2), down(hg, dg, (size_t)T * gate_dim * 2);
    down(hk, dk, ncache * 2), down(hv, dv, ncache * 2);
    bf16_to_f32_n(hq, fq, nqo);
    bf16_to_f32_n(hg, fg, (size_t)T * gate_dim);
    size_t written = 0;
    for (int t = 0; t < T; t++)
        for (int j = 0; j < nkv; j++)
            for (int e = 0; e < hd; e++) {
                size_t ci = (((size_t)slot[t] * nkv + j) * stride + pos[t]) * hd + e;
                fk[((size_t)t * nkv + j) * hd + e] = ga_bf16_to_f32(hk[ci]);
                fv[((size_t)t * nkv + j) * hd + e] = ga_bf16_to_f32(hv[ci]);
            }
    // Everything outside the written rows must still be poison (no stray writes).
    for (size_t i = 0; i < ncache; i++)
        written += hk[i] != 0xffff;
    double rq = ga_test_tol_ratio(fq, qref, nqo, 1e-2, 1e-2);
    double rg = gate_dim ? ga_test_tol_ratio(fg, gref, (size_t)T * gate_dim, 1e-2, 1e-2) : 0;
    double rk = ga_test_tol_ratio(fk, kref, (size_t)T * kvd, 1e-2, 1e-2);
    double rv = ga_test_tol_ratio(fv, vref, (size_t)T * kvd, 1e-2, 1e-2);
    CHECK_MSG(rq <= 1 && rg <= 1 && rk <= 1 && rv <= 1 && written <= (size_t)T * kvd,
              "qk_rope T %d hd %d G %d mode %s bias %d qknorm %d decode %d pos0 %d: ratios q %.3g "
              "gate %.3g k %.3g v %.3g, %zu cache elements written (want <= %zu)",
              T, hd, G, ga_gate_mode_name(k.mode), k.bias, k.qknorm, k.decode, k.pos0, rq, rg, rk,
              rv, written, (size_t)T * kvd);
    void *dfree[] = {dqkv, dq, dg, dk, dv, dbias, dqn, dkn, dcs, dsn, dpos, dslot};
    for (size_t i = 0; i < sizeof dfree / sizeof *dfree; i++)
        cudaFree(dfree[i]);
    void *hfree[] = {hqkv, fqkv, bias, qn, kn, cs, sn, pos, slot, qref, gref,
                     kref, vref, hq,   hg, hk, hv, fq, fg,  fk,   fv};
    for (size_t i = 0; i < sizeof hfree / sizeof *hfree; i++)
        free(hfree[i]);
}

/* ------------------------------------------------------------------ swiglu */
static void test_swiglu(int T, int I) {
    PHASE("swiglu T %d I %d", T, I);
    size_t n = (size_t)T * I;
    uint16_t *h = hmalloc(2 * n * 2), *ho = hmalloc(n * 2);
    float *f = hmalloc(2 * n * 4), *ref = hmalloc(n * 4), *fo = hmalloc(n * 4);
    fill_bf16(h, f, 2 * n, 3.f);
    for (int t = 0; t < T; t++)
        for (int i = 0; i < I; i++) {
            double g = f[(size_t)t * 2 * I + i], u = f[(size_t)t * 2 * I + I + i];
            ref[(size_t)t * I + i] = (float)(g / (1 + exp(-g)) * u);
        }
    void *din = dmalloc(2 * n * 2), *dout = dmalloc(n * 2);
    up(din, h, 2 * n * 2);
    poison(dout, n * 2);
    ga_err err = {{0}};
    CHECK_OK(ga_swiglu(din, dout, T, I, 0, &err), &err);
    CU(cudaDeviceSynchronize());
    down(ho, dout, n * 2);
    bf16_to_f32_n(ho, fo, n);
    double r = ga_test_tol_ratio(fo, ref, n, 1e-2, 1e-2);
    CHECK_MSG(r <= 1, "swiglu T %d I %d: ratio %.3g", T, I, r);
    cudaFree(din), cudaFree(dout);
    free(h), free(ho), free(f), free(ref), free(fo);
}

/* ------------------------------------------------------------------ embedding */
static void test_embed(int T, int dim, int vocab) {
    PHASE("embed T %d dim %d", T, dim);
    uint16_t *tab = hmalloc((size_t)vocab * dim * 2);
    fill_bf16(tab, NULL, (size_t)vocab * dim, 1.f);
    int32_t *tok = hmalloc(T * 4);
    for (int t = 0; t < T; t++)
        tok[t] = (int32_t)(ga_test_rand_u64(&rng) % vocab);
    tok[T - 1] = vocab - 1;    // the last row of the table
    if (T > 2) tok[1] = vocab; // out of range: a NaN row, not a read past the table
    void *dtab = dmalloc((size_t)vocab * dim * 2);
    int32_t *dtok = dmalloc(T * 4);
    float *dx = dmalloc((size_t)T * dim * 4), *x = hmalloc((size_t)T * dim * 4);
    up(dtab, tab, (size_t)vocab * dim * 2), up(dtok, tok, T * 4);
    poison(dx, (size_t)T * dim * 4);
    ga_err err = {{0}};
    CHECK_OK(ga_embed(dtok, dtab, dx, T, dim, vocab, 0, &err), &err);
    CU(cudaDeviceSynchronize());
    down(x, dx, (size_t)T * dim * 4);
    int bad = 0;
    for (int t = 0; t < T; t++)
        for (int i = 0; i < dim; i++) {
            float v = x[(size_t)t * dim + i];
            if (tok[t] >= vocab)
                bad += !isnan(v);
            else
                bad += memcmp(&v, &(float){ga_bf16_to_f32(tab[(size_t)tok[t] * dim + i])}, 4) != 0;
        }
    CHECK_MSG(bad == 0, "embed T %d dim %d: %d wrong elements", T, dim, bad);
    cudaFree(dtab), cudaFree(dtok), cudaFree(dx);
    free(tab), free(tok), free(x);
}

/* ------------------------------------------------------------------ argmax */
static void test_argmax(int rows, int vocab) {
    PHASE("argmax rows %d vocab %d", rows, vocab);
    size_t n = (size_t)rows * vocab;
    float *l = hmalloc(n * 4);
    int32_t *want = hmalloc(rows * 4), *got = hmalloc(rows * 4);
    for (size_t i = 0; i < n; i++)
        l[i] = ga_test_rand_normal(&rng);
    for (int r = 0; r < rows; r++) {
        float *row = l + (size_t)r * vocab;
        if (r % 3 == 1 && vocab > 4) { // a tie: the lower index must win
            row[vocab - 1] = 100.f;
            row[vocab / 2] = 100.f;
        }
        if (r % 3 == 2 && vocab > 4) row[0] = NAN; // NaN never wins
        int best = -1;
        for (int i = 0; i < vocab; i++)
            if (!isnan(row[i]) && (best < 0 || row[i] > row[best])) best = i;
        want[r] = best < 0 ? 0 : best;
    }
    float *dl = dmalloc(n * 4);
    int32_t *dout = dmalloc(rows * 4);
    up(dl, l, n * 4);
    poison(dout, rows * 4);
    ga_err err = {{0}};
    CHECK_OK(ga_argmax(dl, rows, vocab, dout, 0, &err), &err);
    CU(cudaDeviceSynchronize());
    down(got, dout, rows * 4);
    int bad = 0;
    for (int r = 0; r < rows; r++)
        bad += got[r] != want[r];
    CHECK_MSG(bad == 0, "argmax rows %d vocab %d: %d rows wrong", rows, vocab, bad);
    cudaFree(dl), cudaFree(dout);
    free(l), free(want), free(got);
}

/* ------------------------------------------------------------------ conversion */
static void test_convert(ga_dtype dt, int64_t n) {
    PHASE("convert dtype %d n %lld", (int)dt, (long long)n);
    size_t esz = ga_dtype_size(dt);
    uint8_t *src = hmalloc((size_t)n * esz);
    uint16_t *want = hmalloc((size_t)n * 2), *got = hmalloc((size_t)n * 2);
    const float specials[] = {0.f, -0.f, INFINITY, -INFINITY, NAN, 1e-40f, 3.3895e38f, 65504.f};
    for (int64_t i = 0; i < n; i++) {
        float f = i < 8 ? specials[i] : ga_test_rand_normal(&rng) * 100.f;
        if (dt == GA_F32) {
            memcpy(src + i * 4, &f, 4);
            want[i] = ga_f32_to_bf16(f);
        } else {
            uint16_t h = ga_f32_to_f16(f);
            memcpy(src + i * 2, &h, 2);
            want[i] = ga_f32_to_bf16(ga_f16_to_f32(h));
        }
    }
    void *ds = dmalloc((size_t)n * esz), *dd = dmalloc((size_t)n * 2);
    up(ds, src, (size_t)n * esz);
    poison(dd, (size_t)n * 2);
    ga_err err = {{0}};
    CHECK_OK(ga_convert_to_bf16(ds, dt, dd, n, 0, &err), &err);
    CU(cudaDeviceSynchronize());
    down(got, dd, (size_t)n * 2);
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
        bool wn = (want[i] & 0x7fff) > 0x7f80, gn = (got[i] & 0x7fff) > 0x7f80;
        bad += wn ? !gn : got[i] != want[i]; // any NaN payload is a NaN
    }
    CHECK_MSG(bad == 0, "convert %s n %lld: %lld elements differ", ga_dtype_name(dt), (long long)n,
              (long long)bad);
    cudaFree(ds), cudaFree(dd);
    free(src), free(want), free(got);
}

/* ------------------------------------------------------------------ gate stats */
static void test_gate_stats(int64_t n) {
    PHASE("gate_stats n %lld", (long long)n);
    uint16_t *g = hmalloc((size_t)n * 2);
    fill_bf16(g, NULL, (size_t)n, 3.f);
    double want = 0;
    long long below = 0;
    for (int64_t i = 0; i < n; i++) {
        double s = 1.0 / (1.0 + exp(-(double)ga_bf16_to_f32(g[i])));
        want += s;
        below += s < 0.1;
    }
    void *dg = dmalloc((size_t)n * 2);
    double *ds = dmalloc(8);
    unsigned long long *dc = dmalloc(8), got_c = 0;
    double got_s = 0;
    up(dg, g, (size_t)n * 2);
    CU(cudaMemset(ds, 0, 8));
    CU(cudaMemset(dc, 0, 8));
    ga_err err = {{0}};
    CHECK_OK(ga_gate_stats(dg, n, 0.1f, ds, dc, 0, &err), &err);
    CU(cudaDeviceSynchronize());
    down(&got_s, ds, 8), down(&got_c, dc, 8);
    // The count may differ only for values within an ulp of sigmoid^-1(0.1); bf16 inputs
    // rarely land there: allow 1e-4 of n.
    CHECK_MSG(fabs(got_s - want) <= 1e-5 * want + 1e-6 &&
                  llabs((long long)got_c - below) <= 1 + n / 10000,
              "gate_stats n %lld: sum %.9g want %.9g, below %llu want %lld", (long long)n, got_s,
              want, got_c, below);
    cudaFree(dg), cudaFree(ds), cudaFree(dc);
    free(g);
}

/* ------------------------------------------------------------------ GEMM wrapper */
/* impl: GA_GEMM_CUBLAS / GA_GEMM_LT through the wrapper, GA_GEMM_FALLBACK the kernel's own
 * launcher. */
static const char *const gemm_names[] = {"cuBLAS", "cuBLASLt", "fallback"};
static void test_gemm(ga_cuda *c, int M, int N, int K, bool f32, int impl) {
    PHASE("gemm %s M %d N %d K %d f32 %d", gemm_names[impl], M, N, K, f32);
    uint16_t *x = hmalloc((size_t)M * K * 2), *w = hmalloc((size_t)N * K * 2);
    float *fx = hmalloc((size_t)M * K * 4), *fw = hmalloc((size_t)N * K * 4);
    float *ref = hmalloc((size_t)M * N * 4), *y = hmalloc((size_t)M * N * 4);
    fill_bf16(x, fx, (size_t)M * K, 1.f);
    fill_bf16(w, fw, (size_t)N * K, 1.f / sqrtf((float)K));
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            double s = 0;
            for (int k = 0; k < K; k++)
                s += (double)fx[(size_t)m * K + k] * fw[(size_t)n * K + k];
            ref[(size_t)m * N + n] = (float)s;
        }
    void *dx = dmalloc((size_t)M * K * 2), *dw = dmalloc((size_t)N * K * 2),
         *dy = dmalloc((size_t)M * N * 4);
    up(dx, x, (size_t)M * K * 2), up(dw, w, (size_t)N * K * 2);
    poison(dy, (size_t)M * N * 4);
    ga_err err = {{0}};
    c->gemm_impl = impl == GA_GEMM_LT ? GA_GEMM_LT : GA_GEMM_CUBLAS;
    if (impl == GA_GEMM_FALLBACK)
        CHECK_OK(ga_gemm_fallback(dx, dw, dy, f32, M, N, K, 0, &err), &err);
    else
        CHECK_OK(ga_cuda_gemm(c, dx, dw, dy, f32, M, N, K, &err), &err);
    CU(cudaDeviceSynchronize());
    if (f32) {
        down(y, dy, (size_t)M * N * 4);
    } else {
        uint16_t *yh = hmalloc((size_t)M * N * 2);
        down(yh, dy, (size_t)M * N * 2);
        bf16_to_f32_n(yh, y, (size_t)M * N);
        free(yh);
    }
    // fp32 accumulation of K products of O(1/sqrt K) terms: 1e-4 absolute covers the
    // summation order; bf16 output adds its rounding.
    double r = ga_test_tol_ratio(y, ref, (size_t)M * N, f32 ? 1e-4 : 1e-2, f32 ? 1e-4 : 1e-2);
    CHECK_MSG(r <= 1, "gemm (%s) M %d N %d K %d %s: ratio %.3g", gemm_names[impl], M, N, K,
              f32 ? "f32" : "bf16", r);
    cudaFree(dx), cudaFree(dw), cudaFree(dy);
    free(x), free(w), free(fx), free(fw), free(ref), free(y);
}

/* Sections run as separate ctest entries (so one crash cannot hide the others); no argument
 * runs them all (the compute-sanitizer pass); see ga_test_want. */
int main(int argc, char **argv) {
    ga_diag_install();
    GA_REQUIRE_GPU();
    quick = atoi(ga_test_env("GA_TEST_QUICK", "0"));
    const int Ts[] = {1, 7, 128, 1000, 4096};
    const int nT = quick ? 3 : 5;

    if (ga_test_want(argc, argv, "norm")) {
        printf("== rmsnorm\n");
        for (int i = 0; i < nT; i++) {
            test_rmsnorm(Ts[i], 1024, true, true);
            test_rmsnorm(Ts[i], 1001, true, false); // not a multiple of 4: the scalar path
            test_rmsnorm(Ts[i], 64, false, false);
        }
        test_rmsnorm(3, 5120, true, false);
    }

    if (ga_test_want(argc, argv, "qk")) {
        printf("== qk norm + rope\n");
        const int hds[] = {64, 128}, Gs[] = {1, 2, 4};
        const ga_gate_mode modes[] = {GA_GATE_NONE, GA_GATE_HEADWISE, GA_GATE_ELEMENTWISE};
        int nqk = 0;
        for (int ti = 0; ti < (quick ? 3 : 4); ti++)
            for (int h = 0; h < 2; h++)
                for (int g = 0; g < 3; g++)
                    for (int m = 0; m < 3; m++) {
                        qk_case k = {.T = Ts[ti],
                                     .hd = hds[h],
                                     .G = Gs[g],
                                     .n_kv = 2,
                                     .mode = modes[m],
                                     .bias = (ti + m) % 2 == 0,
                                     .qknorm = (ti + g) % 3 != 2,
                                     .decode = false,
                                     .pos0 = (ti * 13) % 17};
                        test_qk_rope(k);
                        nqk++;
                    }
        // Decode form: rows scattered over slots and positions through device arrays.
        for (int m = 0; m < 3; m++) {
            test_qk_rope((qk_case){.T = 7,
                                   .hd = 128,
                                   .G = 2,
                                   .n_kv = 4,
                                   .mode = modes[m],
                                   .bias = true,
                                   .qknorm = true,
                                   .decode = true});
            test_qk_rope((qk_case){.T = 64,
                                   .hd = 64,
                                   .G = 4,
                                   .n_kv = 1,
                                   .mode = modes[m],
                                   .bias = false,
                                   .qknorm = true,
                                   .decode = true});
            nqk += 2;
        }
        // odd head counts, hd 96
        test_qk_rope((qk_case){.T = 5,
                               .hd = 96,
                               .G = 3,
                               .n_kv = 3,
                               .mode = GA_GATE_HEADWISE,
                               .bias = true,
                               .qknorm = true,
                               .pos0 = 2});
        nqk++;
        if (!quick) {
            test_qk_rope((qk_case){.T = 4096,
                                   .hd = 128,
                                   .G = 2,
                                   .n_kv = 8,
                                   .mode = GA_GATE_ELEMENTWISE,
                                   .qknorm = true});
            nqk++;
        }
        printf("qk_rope cases: %d\n", nqk);
    }

    if (ga_test_want(argc, argv, "act")) {
        printf("== swiglu\n");
        for (int i = 0; i < nT; i++) {
            test_swiglu(Ts[i], 1024);
            test_swiglu(Ts[i], 1001); // odd: the scalar path
        }
        test_swiglu(3, 3072);
    }

    if (ga_test_want(argc, argv, "embed")) {
        printf("== embed\n");
        test_embed(1, 64, 1000);
        test_embed(7, 100, 1000); // not a multiple of 8: scalar path
        test_embed(1000, 1024, 1000);
    }

    if (ga_test_want(argc, argv, "argmax")) {
        printf("== argmax\n");
        test_argmax(1, 1);
        test_argmax(7, 1000);
        test_argmax(quick ? 4 : 128, 151936);
    }

    if (ga_test_want(argc, argv, "convert")) {
        printf("== convert\n");
        test_convert(GA_F32, 1);
        test_convert(GA_F32, 1000);
        test_convert(GA_F16, 1000);
        test_convert(GA_F32, quick ? 100003 : (1 << 20) + 3);
        test_convert(GA_F16, quick ? 100003 : (1 << 20) + 3);
    }

    if (ga_test_want(argc, argv, "gate")) {
        printf("== gate stats\n");
        test_gate_stats(7);
        test_gate_stats(1000 * 16);
        test_gate_stats(quick ? 128 * 4096 : 4096 * 4096);
    }

    // GEMM: the plain kernel and cuBLAS in section "gemm", cuBLASLt in "gemm_lt" (separate,
    // so a library problem in one cannot hide the other's result).
    for (int sec = 0; sec < 2; sec++) {
        if (!ga_test_want(argc, argv, sec ? "gemm_lt" : "gemm")) continue;
        printf("== %s\n", sec ? "gemm (cuBLASLt)" : "gemm (plain kernel, cuBLAS)");
        // The wrapper needs only the handles, workspace and stream of the backend context.
        ga_cuda c;
        memset(&c, 0, sizeof c);
        PHASE("cuBLAS handle");
        if (cublasCreate(&c.blas) != CUBLAS_STATUS_SUCCESS ||
            (sec && cublasLtCreate(&c.lt) != CUBLAS_STATUS_SUCCESS)) {
            fprintf(stderr, "creating the cuBLAS / cuBLASLt handle failed\n");
            return 1;
        }
        c.blas_ws_bytes = (size_t)32 << 20;
        c.blas_ws = dmalloc(c.blas_ws_bytes);
        const int Ms[] = {1, 7, 128}, NK[][2] = {{64, 64}, {1000, 256}, {72, 1000}};
        const int impls[2][2] = {{GA_GEMM_FALLBACK, GA_GEMM_CUBLAS}, {GA_GEMM_LT, -1}};
        for (int ii = 0; ii < 2 && impls[sec][ii] >= 0; ii++) {
            const int impl = impls[sec][ii];
            printf("   %s\n", gemm_names[impl]);
            // Large shapes (the model's) before small and odd ones.
            if (!quick) {
                test_gemm(&c, 128, 4112, 1024, false, impl);
                test_gemm(&c, 1, 2048, 1024, true, impl);
            }
            for (int m = 0; m < 3; m++)
                for (int s = 0; s < 3; s++) {
                    test_gemm(&c, Ms[m], NK[s][0], NK[s][1], true, impl);
                    test_gemm(&c, Ms[m], NK[s][0], NK[s][1], false, impl);
                }
        }
        PHASE("cuBLAS teardown");
        cudaFree(c.blas_ws);
        if (c.lt) cublasLtDestroy(c.lt);
        cublasDestroy(c.blas);
    }

    PHASE("exit");
    CU(cudaDeviceSynchronize());
    return ga_test_finish();
}
