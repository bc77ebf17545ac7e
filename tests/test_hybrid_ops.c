/*
 * The hybrid backend's own kernels (kernels/hybrid_attn.cu, kernels/moe.cu; hybrid.h) against
 * references that share no code with them, on fresh random inputs, every output poisoned (NaN)
 * before the launch so an unwritten element fails. gpu label, exit 77 without a GPU. Sections:
 *   prep   ga_hyb_attn_prep vs the CPU reference's zero-centred norm (ga_hyb_rmsnorm_zc) and the
 *          rotate-half partial RoPE of transformers' apply_rotary_pos_emb written here in double:
 *          q and the raw gate of every head, K and V in a slot cache (two slots, positions out
 *          of order) and in a paged pool; head_dim 64 / 128 / 256, rotary 1/4, 1/2 and all of
 *          it, GQA 1, 2 and 4 query heads a KV head;
 *   route  ga_moe_route vs softmax + top-k in double, on logits whose K-th and (K+1)-th
 *          experts are at least 0.05 apart (no near-tie, so the choice is exact), with and
 *          without norm_topk_prob; E from 8 to 512, K from 1 to 10;
 *   moe    ga_moe_sort (each expert's entries contiguous, in entry order, offsets the counts),
 *          ga_moe_gather (exact copies) and ga_moe_combine vs the weighted sum in double, with
 *          and without the shared expert.
 * Tolerances: bf16 outputs within 2^-8 relative plus 1e-6 (one rounding of an fp32 value that
 * differs from the double reference by fp32 noise); fp32 outputs within 1e-5 relative.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/tensor.h"
#include "cpu/cpu_hybrid.h"
#include "cuda_testutil.h"
#include "hybrid.h"
#include "testutil.h"

static uint64_t rng = 0x51e7b0a5ull;

static float urand(void) { /* uniform in [-1, 1) */
    return (float)((ga_test_rand_u64(&rng) >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
}

static uint16_t bf(float x) {
    return ga_f32_to_bf16(x);
}
static float fb(uint16_t h) {
    return ga_bf16_to_f32(h);
}

/* Worst of |got - ref| / (atol + rtol |ref|), NaN counting as infinitely bad. */
static double worst_ratio(const float *got, const double *ref, size_t n, double atol, double rtol) {
    double w = 0;
    for (size_t i = 0; i < n; i++) {
        const double r = fabs(got[i] - ref[i]) / (atol + rtol * fabs(ref[i]));
        if (!(r <= w)) w = isnan(r) ? INFINITY : r;
    }
    return w;
}

/* ---------------------------------------------------------------- prep */

/* Reference of one head vector: zero-centred norm by the CPU op, then RoPE on the first rd
 * dimensions, pairing i with i + rd/2, angle pos * theta^(-2i/rd), in double. */
static void ref_head(const float *x, const float *w, int hd, int rd, int pos, double theta,
                     double *out) {
    float n[512];
    ga_hyb_rmsnorm_zc(n, x, w, hd, 1e-6f);
    for (int i = 0; i < hd; i++)
        out[i] = n[i];
    for (int i = 0; i < rd / 2; i++) {
        const double ang = pos * pow(theta, -2.0 * i / rd), c = cos(ang), s = sin(ang);
        out[i] = n[i] * c - n[i + rd / 2] * s;
        out[i + rd / 2] = n[i + rd / 2] * c + n[i] * s;
    }
}

static void case_prep(int hd, int rd, int nh, int nkv, bool paged) {
    const int T = 5, ctx = 40, bs = 16, nblocks = 6;
    const int qkv_stride = (2 * nh + 2 * nkv) * hd + 8; /* a wider row, as a GEMM may leave */
    const double theta = 1e6;
    const int pos[5] = {0, 17, 3, 39, 16}, slot[5] = {1, 0, 1, 0, 0};
    const int table[3] = {4, 1, 5}; /* paged: blocks of the one sequence, out of order */
    int dest[5];
    for (int t = 0; t < T; t++)
        dest[t] = table[pos[t] / bs] * bs + pos[t] % bs;
    uint16_t *qkv = malloc((size_t)T * qkv_stride * 2);
    float *qkvf = malloc((size_t)T * qkv_stride * 4), qn[512], kn[512];
    for (size_t i = 0; i < (size_t)T * qkv_stride; i++) {
        qkv[i] = bf(2.0f * urand());
        qkvf[i] = fb(qkv[i]);
    }
    for (int i = 0; i < hd; i++)
        qn[i] = 0.3f * urand(), kn[i] = 0.3f * urand();
    const int half = rd / 2;
    float *cs = malloc((size_t)ctx * half * 4), *sn = malloc((size_t)ctx * half * 4);
    for (int p = 0; p < ctx; p++)
        for (int i = 0; i < half; i++) {
            const double ang = p * pow(theta, -2.0 * i / rd);
            cs[p * half + i] = (float)cos(ang), sn[p * half + i] = (float)sin(ang);
        }
    const size_t cache = paged ? (size_t)nblocks * nkv * bs * hd : (size_t)2 * nkv * ctx * hd;
    const size_t qn_elems = (size_t)T * nh * hd;
    void *d_qkv = dup_to_dev(qkv, (size_t)T * qkv_stride * 2);
    float *d_qn = dup_to_dev(qn, hd * 4), *d_kn = dup_to_dev(kn, hd * 4);
    float *d_cs = dup_to_dev(cs, (size_t)ctx * half * 4),
          *d_sn = dup_to_dev(sn, (size_t)ctx * half * 4);
    int *d_pos = dup_to_dev(pos, sizeof pos), *d_slot = dup_to_dev(slot, sizeof slot);
    int *d_dest = dup_to_dev(dest, sizeof dest);
    void *d_q = dmalloc(qn_elems * 2), *d_g = dmalloc(qn_elems * 2);
    void *d_k = dmalloc(cache * 2), *d_v = dmalloc(cache * 2);
    poison(d_q, qn_elems * 2), poison(d_g, qn_elems * 2), poison(d_k, cache * 2),
        poison(d_v, cache * 2);
    const ga_hyb_attn_prep_args a = {.qkv = d_qkv,
                                     .q_norm = d_qn,
                                     .k_norm = d_kn,
                                     .rope_cos = d_cs,
                                     .rope_sin = d_sn,
                                     .q_out = d_q,
                                     .gate_out = d_g,
                                     .k_cache = d_k,
                                     .v_cache = d_v,
                                     .positions = d_pos,
                                     .slots = d_slot,
                                     .dest = paged ? d_dest : NULL,
                                     .T = T,
                                     .n_heads = nh,
                                     .n_kv_heads = nkv,
                                     .hd = hd,
                                     .rd = rd,
                                     .qkv_stride = qkv_stride,
                                     .kv_stride = paged ? bs : ctx,
                                     .rope_rows = ctx,
                                     .eps = 1e-6f};
    ga_err e = {{0}};
    CHECK_OK(ga_hyb_attn_prep(&a, 0, &e), &e);
    uint16_t *hq = malloc(qn_elems * 2), *hg = malloc(qn_elems * 2);
    uint16_t *hk = malloc(cache * 2), *hv = malloc(cache * 2);
    down(hq, d_q, qn_elems * 2), down(hg, d_g, qn_elems * 2), down(hk, d_k, cache * 2),
        down(hv, d_v, cache * 2);
    double wq = 0, wg = 0, wk = 0, wv = 0, ref[512];
    float got[512];
    for (int t = 0; t < T; t++) {
        const float *row = qkvf + (size_t)t * qkv_stride;
        for (int h = 0; h < nh; h++) { /* per head [query | gate] */
            ref_head(row + (size_t)h * 2 * hd, qn, hd, rd, pos[t], theta, ref);
            for (int i = 0; i < hd; i++)
                got[i] = fb(hq[((size_t)t * nh + h) * hd + i]);
            double r = worst_ratio(got, ref, hd, 1e-6, 1.0 / 256);
            wq = r > wq ? r : wq;
            for (int i = 0; i < hd; i++) {
                got[i] = fb(hg[((size_t)t * nh + h) * hd + i]);
                ref[i] = row[(size_t)h * 2 * hd + hd + i];
            }
            r = worst_ratio(got, ref, hd, 1e-30, 0); /* the raw gate: an exact copy */
            wg = r > wg ? r : wg;
        }
        for (int j = 0; j < nkv; j++) {
            const size_t blk = paged ? (size_t)dest[t] / bs : (size_t)slot[t];
            const size_t off = paged ? (size_t)dest[t] % bs : (size_t)pos[t];
            const size_t at = ((blk * nkv + j) * (paged ? bs : ctx) + off) * hd;
            ref_head(row + (size_t)2 * nh * hd + (size_t)j * hd, kn, hd, rd, pos[t], theta, ref);
            for (int i = 0; i < hd; i++)
                got[i] = fb(hk[at + i]);
            double r = worst_ratio(got, ref, hd, 1e-6, 1.0 / 256);
            wk = r > wk ? r : wk;
            for (int i = 0; i < hd; i++) {
                got[i] = fb(hv[at + i]);
                ref[i] = row[(size_t)(2 * nh + nkv) * hd + (size_t)j * hd + i];
            }
            r = worst_ratio(got, ref, hd, 1e-30, 0);
            wv = r > wv ? r : wv;
        }
    }
    printf("  prep hd %3d rd %3d heads %d/%d %-5s  q %.3f gate %.3f k %.3f v %.3f (<= 1)\n", hd, rd,
           nh, nkv, paged ? "paged" : "slots", wq, wg, wk, wv);
    CHECK_MSG(wq <= 1 && wg <= 1 && wk <= 1 && wv <= 1,
              "prep hd %d rd %d heads %d/%d %s: q %.3g gate %.3g k %.3g v %.3g", hd, rd, nh, nkv,
              paged ? "paged" : "slots", wq, wg, wk, wv);
    CU(cudaFree(d_qkv));
    CU(cudaFree(d_qn));
    CU(cudaFree(d_kn));
    CU(cudaFree(d_cs));
    CU(cudaFree(d_sn));
    CU(cudaFree(d_pos));
    CU(cudaFree(d_slot));
    CU(cudaFree(d_dest));
    CU(cudaFree(d_q));
    CU(cudaFree(d_g));
    CU(cudaFree(d_k));
    CU(cudaFree(d_v));
    free(qkv), free(qkvf), free(cs), free(sn), free(hq), free(hg), free(hk), free(hv);
}

/* ---------------------------------------------------------------- route */

static void case_route(int rows, int E, int K, bool norm) {
    float *lg = malloc((size_t)rows * E * 4);
    int *ref_i = malloc((size_t)rows * K * sizeof(int));
    double *ref_w = malloc((size_t)rows * K * sizeof(double));
    for (int r = 0; r < rows; r++) {
        float *l = lg + (size_t)r * E;
        /* distinct logits 0.05 apart, shuffled: every gap clear of fp32 softmax noise */
        for (int e = 0; e < E; e++)
            l[e] = 0.05f * (float)e - 0.025f * E;
        for (int e = E - 1; e > 0; e--) {
            const int j = (int)(ga_test_rand_u64(&rng) % (uint64_t)(e + 1));
            const float t = l[e];
            l[e] = l[j], l[j] = t;
        }
        double mx = -INFINITY, sum = 0;
        for (int e = 0; e < E; e++)
            mx = l[e] > mx ? l[e] : mx;
        for (int e = 0; e < E; e++)
            sum += exp(l[e] - mx);
        double wsum = 0;
        for (int k = 0; k < K; k++) { /* largest first */
            int best = 0;
            for (int e = 0, first = 1; e < E; e++) { /* the best among the untaken */
                bool taken = false;
                for (int j = 0; j < k; j++)
                    taken = taken || ref_i[(size_t)r * K + j] == e;
                if (!taken && (first || l[e] > l[best])) best = e, first = 0;
            }
            ref_i[(size_t)r * K + k] = best;
            ref_w[(size_t)r * K + k] = exp(l[best] - mx) / sum;
            wsum += ref_w[(size_t)r * K + k];
        }
        for (int k = 0; norm && k < K; k++)
            ref_w[(size_t)r * K + k] /= wsum;
    }
    float *d_l = dup_to_dev(lg, (size_t)rows * E * 4), *d_w = dmalloc((size_t)rows * K * 4);
    int *d_i = dmalloc((size_t)rows * K * sizeof(int));
    poison(d_w, (size_t)rows * K * 4), poison(d_i, (size_t)rows * K * sizeof(int));
    ga_err e = {{0}};
    CHECK_OK(ga_moe_route(d_l, rows, E, K, norm, d_i, d_w, 0, &e), &e);
    int *gi = malloc((size_t)rows * K * sizeof(int));
    float *gw = malloc((size_t)rows * K * 4);
    down(gi, d_i, (size_t)rows * K * sizeof(int)), down(gw, d_w, (size_t)rows * K * 4);
    int wrong = 0;
    for (size_t i = 0; i < (size_t)rows * K; i++)
        wrong += gi[i] != ref_i[i];
    const double rw = worst_ratio(gw, ref_w, (size_t)rows * K, 1e-7, 1e-5);
    printf("  route rows %3d E %3d K %2d norm %d  wrong experts %d, weights %.3f (<= 1)\n", rows, E,
           K, norm, wrong, rw);
    CHECK_MSG(wrong == 0 && rw <= 1, "route E %d K %d norm %d: %d wrong experts, weights %.3g", E,
              K, norm, wrong, rw);
    CU(cudaFree(d_l));
    CU(cudaFree(d_w));
    CU(cudaFree(d_i));
    free(lg), free(ref_i), free(ref_w), free(gi), free(gw);
}

/* ---------------------------------------------------------------- sort, gather, combine */

static void case_moe(int rows, int E, int K, int H, bool shared) {
    const int n = rows * K;
    int *idx = malloc((size_t)n * sizeof(int));
    /* K distinct experts a row, drawn from the lower half so some get none -- or from all E
     * when K is more than that half holds (K == E: every expert every row; drawing K distinct
     * ones from E / 2 + 1 could never end) */
    const int range = K > E / 2 + 1 ? E : E / 2 + 1;
    for (int r = 0; r < rows; r++)
        for (int k = 0; k < K; k++) {
            int e;
            bool dup;
            do {
                e = (int)(ga_test_rand_u64(&rng) % (uint64_t)range);
                dup = false;
                for (int j = 0; j < k; j++)
                    dup = dup || idx[r * K + j] == e;
            } while (dup);
            idx[r * K + k] = e;
        }
    int *d_idx = dup_to_dev(idx, (size_t)n * sizeof(int));
    int *d_off = dmalloc((size_t)(E + 1) * sizeof(int)), *d_src = dmalloc((size_t)n * sizeof(int));
    int *d_pos = dmalloc((size_t)n * sizeof(int));
    poison(d_off, (size_t)(E + 1) * sizeof(int)), poison(d_src, (size_t)n * sizeof(int)),
        poison(d_pos, (size_t)n * sizeof(int));
    ga_err e = {{0}};
    CHECK_OK(ga_moe_sort(d_idx, n, K, E, d_off, d_src, d_pos, 0, &e), &e);
    int *off = malloc((size_t)(E + 1) * sizeof(int)), *src = malloc((size_t)n * sizeof(int));
    int *pos = malloc((size_t)n * sizeof(int));
    down(off, d_off, (size_t)(E + 1) * sizeof(int)), down(src, d_src, (size_t)n * sizeof(int)),
        down(pos, d_pos, (size_t)n * sizeof(int));
    int bad = off[0] != 0 || off[E] != n;
    for (int x = 0, p = 0; x < E; x++) { /* expert x's entries in entry order at its offsets */
        bad += off[x + 1] < off[x];
        for (int i = 0; i < n; i++)
            if (idx[i] == x) {
                bad += pos[i] != p || src[p] != i / K;
                p++;
            }
        bad += p != off[x + 1];
    }
    /* gather: exact rows */
    uint16_t *x = malloc((size_t)rows * H * 2);
    for (size_t i = 0; i < (size_t)rows * H; i++)
        x[i] = bf(urand());
    void *d_x = dup_to_dev(x, (size_t)rows * H * 2), *d_ex = dmalloc((size_t)n * H * 2);
    poison(d_ex, (size_t)n * H * 2);
    CHECK_OK(ga_moe_gather(d_x, d_src, n, H, d_ex, 0, &e), &e);
    uint16_t *ex = malloc((size_t)n * H * 2);
    down(ex, d_ex, (size_t)n * H * 2);
    int gbad = 0;
    for (int i = 0; i < n; i++)
        gbad += memcmp(ex + (size_t)pos[i] * H, x + (size_t)(i / K) * H, (size_t)H * 2) != 0;
    /* combine */
    float *y = malloc((size_t)n * H * 4), *w = malloc((size_t)n * 4);
    float *sh = malloc((size_t)rows * H * 4), *sg = malloc((size_t)rows * 4);
    for (size_t i = 0; i < (size_t)n * H; i++)
        y[i] = urand();
    for (int i = 0; i < n; i++)
        w[i] = 0.5f * (urand() + 1.0f);
    for (size_t i = 0; i < (size_t)rows * H; i++)
        sh[i] = urand();
    for (int r = 0; r < rows; r++)
        sg[r] = 3.0f * urand();
    float *d_y = dup_to_dev(y, (size_t)n * H * 4), *d_w = dup_to_dev(w, (size_t)n * 4);
    float *d_sh = dup_to_dev(sh, (size_t)rows * H * 4), *d_sg = dup_to_dev(sg, (size_t)rows * 4);
    float *d_out = dmalloc((size_t)rows * H * 4);
    poison(d_out, (size_t)rows * H * 4);
    CHECK_OK(ga_moe_combine(d_y, d_pos, d_w, shared ? d_sh : NULL, shared ? d_sg : NULL, d_out,
                            rows, K, H, 0, &e),
             &e);
    float *out = malloc((size_t)rows * H * 4);
    double *ref = malloc((size_t)rows * H * sizeof(double));
    down(out, d_out, (size_t)rows * H * 4);
    for (int r = 0; r < rows; r++) /* entry i = r*K + k is y's row pos[i] (checked above) */
        for (int h = 0; h < H; h++) {
            double acc = 0;
            for (int k = 0; k < K; k++)
                acc += (double)w[r * K + k] * y[(size_t)pos[r * K + k] * H + h];
            if (shared) acc += 1.0 / (1.0 + exp(-(double)sg[r])) * sh[(size_t)r * H + h];
            ref[(size_t)r * H + h] = acc;
        }
    const double rc = worst_ratio(out, ref, (size_t)rows * H, 1e-6, 1e-5);
    printf("  moe rows %3d E %3d K %2d H %4d shared %d  sort %d bad, gather %d bad, combine %.3f "
           "(<= 1)\n",
           rows, E, K, H, shared, bad, gbad, rc);
    CHECK_MSG(bad == 0 && gbad == 0 && rc <= 1, "moe E %d K %d: sort %d, gather %d, combine %.3g",
              E, K, bad, gbad, rc);
    CU(cudaFree(d_idx));
    CU(cudaFree(d_off));
    CU(cudaFree(d_src));
    CU(cudaFree(d_pos));
    CU(cudaFree(d_x));
    CU(cudaFree(d_ex));
    CU(cudaFree(d_y));
    CU(cudaFree(d_w));
    CU(cudaFree(d_sh));
    CU(cudaFree(d_sg));
    CU(cudaFree(d_out));
    free(idx), free(off), free(src), free(pos), free(x), free(ex), free(y), free(w), free(sh),
        free(sg), free(out), free(ref);
}

int main(int argc, char **argv) {
    GA_REQUIRE_GPU();
    if (ga_test_want(argc, argv, "prep")) {
        case_prep(64, 64, 4, 2, false); /* full rotary (Qwen3.5 test shapes: 0.25 of 256) */
        case_prep(64, 16, 8, 2, true);
        case_prep(128, 64, 4, 1, false); /* Qwen3-Next: partial 0.5, one KV head */
        case_prep(128, 64, 4, 1, true);
        case_prep(256, 64, 16, 4, false); /* released Qwen3.5: hd 256, rotary 64 */
        case_prep(256, 64, 8, 8, true);
        case_prep(256, 256, 2, 1, false);
    }
    if (ga_test_want(argc, argv, "route")) {
        case_route(7, 8, 2, true);
        case_route(5, 16, 4, false);
        case_route(3, 64, 8, true);
        case_route(33, 512, 10, true); /* Qwen3-Next-80B: 512 experts, top-10 */
        case_route(2, 300, 1, false);
        case_route(4, 16, 16, false); /* every expert: what test_hybrid_gpu routes */
    }
    if (ga_test_want(argc, argv, "moe")) {
        case_moe(1, 8, 2, 256, true);
        case_moe(37, 16, 4, 256, false);
        case_moe(100, 512, 10, 64, true);
        case_moe(9, 8, 8, 100, true);
    }
    CU(cudaDeviceSynchronize());
    return ga_test_finish();
}
