/*
 * The CPU attention op (src/cpu/cpu_attention.c) where softmax is numerically hard: scores
 * driven far past expf's range (large q/k norms over long rows, where scale * q.k reaches
 * hundreds and expf overflows past 88.7) and far below it (every score around -300, where
 * expf underflows to 0 for every key). A softmax that forgets to subtract the row maximum
 * returns Inf/NaN on both. The reference here is independent of the op: scores, a stable
 * softmax (max-subtracted) and the gated PV product in double, written from the definition.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/cpu_attention.h"
#include "cpu/cpu_ops.h"
#include "testutil.h"

static uint64_t rng = 0xa77e57ull;

/* out (T, nh, hd), lse (nh, T): causal attention of query t (position pos0 + t) over keys
 * 0..pos0+t, head h reading KV head h / G, headwise gate g[t*nh + h]. */
static void ref_attention(const float *q, const float *k, const float *v, const float *g, int T,
                          int pos0, int nh, int nkv, int hd, double *out, double *lse) {
    int G = nh / nkv;
    double *s = malloc((size_t)(pos0 + T) * sizeof *s);
    for (int t = 0; t < T; t++)
        for (int h = 0; h < nh; h++) {
            const float *K = k + (size_t)(h / G) * (pos0 + T) * hd;
            const float *V = v + (size_t)(h / G) * (pos0 + T) * hd;
            const float *qh = q + ((size_t)t * nh + h) * hd;
            int n = pos0 + t + 1;
            double mx = -INFINITY, sum = 0;
            for (int j = 0; j < n; j++) {
                double d = 0;
                for (int e = 0; e < hd; e++)
                    d += (double)qh[e] * K[(size_t)j * hd + e];
                s[j] = d / sqrt((double)hd);
                mx = s[j] > mx ? s[j] : mx;
            }
            for (int j = 0; j < n; j++)
                sum += s[j] = exp(s[j] - mx);
            double gate = 1.0 / (1.0 + exp(-(double)g[(size_t)t * nh + h]));
            for (int e = 0; e < hd; e++) {
                double acc = 0;
                for (int j = 0; j < n; j++)
                    acc += s[j] * V[(size_t)j * hd + e];
                out[((size_t)t * nh + h) * hd + e] = acc / sum * gate;
            }
            lse[(size_t)h * T + t] = mx + log(sum);
        }
    free(s);
}

/* kind 0: big scores (|q|, |k| ~ 8 sqrt(hd): scaled scores of std ~64*8/sqrt(hd)... up to
 * several hundred); kind 1: every score around -300 (keys share a direction u, q = -c u). */
static void overflow_case(ga_pool *pool, int kind, int T, int pos0, int nh, int nkv, int hd) {
    int n = pos0 + T;
    size_t nq = (size_t)T * nh * hd, nc = (size_t)nkv * n * hd;
    float *q = malloc(nq * 4), *k = malloc(nc * 4), *v = malloc(nc * 4),
          *g = malloc((size_t)T * nh * 4), *out = malloc(nq * 4), *lse = malloc((size_t)nh * T * 4);
    double *ro = malloc(nq * 8), *rl = malloc((size_t)nh * T * 8);
    float *u = malloc((size_t)hd * 4);
    for (int e = 0; e < hd; e++)
        u[e] = (e % 2 ? 1.f : -1.f) / sqrtf((float)hd); /* unit vector */
    for (size_t i = 0; i < nc; i++) {
        v[i] = ga_test_rand_normal(&rng);
        k[i] = kind == 0 ? 8.f * ga_test_rand_normal(&rng)
                         : 20.f * u[i % hd] + 0.5f * ga_test_rand_normal(&rng);
    }
    /* kind 1: q.k ~ -c * 20 for every key, scaled by 1/sqrt(hd): c = 15 sqrt(hd) gives ~-300 */
    for (size_t i = 0; i < nq; i++)
        q[i] = kind == 0 ? 8.f * ga_test_rand_normal(&rng)
                         : -15.f * sqrtf((float)hd) * u[i % hd] + 0.1f * ga_test_rand_normal(&rng);
    for (size_t i = 0; i < (size_t)T * nh; i++)
        g[i] = 2.f * ga_test_rand_normal(&rng);
    ga_cpu_attn_args a = {.q = q,
                          .k = k,
                          .v = v,
                          .gate = g,
                          .out = out,
                          .T = T,
                          .pos0 = pos0,
                          .n_heads = nh,
                          .n_kv_heads = nkv,
                          .hd = hd,
                          .kv_stride = n,
                          .gate_dim = nh,
                          .gate_mode = GA_GATE_HEADWISE,
                          .scale = 1.0f / sqrtf((float)hd),
                          .lse = lse};
    CHECK(ga_cpu_attention(pool, &a) == 0);
    ref_attention(q, k, v, g, T, pos0, nh, nkv, hd, ro, rl);
    /* How extreme the scores are: the largest |lse| tells the range expf was asked about. */
    double big = 0;
    for (size_t i = 0; i < (size_t)nh * T; i++)
        big = fabs(rl[i]) > big ? fabs(rl[i]) : big;
    float *rof = malloc(nq * 4), *rlf = malloc((size_t)nh * T * 4);
    for (size_t i = 0; i < nq; i++)
        rof[i] = (float)ro[i];
    for (size_t i = 0; i < (size_t)nh * T; i++)
        rlf[i] = (float)rl[i];
    /* fp32 scores of magnitude ~S carry an absolute error ~S * 2^-24 * sqrt(hd) (~1e-4 at
     * S = 500), which moves probabilities by that relative amount: 1e-3 normalised. */
    double eo = ga_test_rel_l2(out, rof, nq), el = ga_test_rel_l2(lse, rlf, (size_t)nh * T);
    CHECK_MSG(big > 100 && eo <= 1e-3 && el <= 1e-5,
              "%s scores, T %d pos0 %d hd %d: max |lse| %.1f (want > 100), output error %.3g (tol "
              "1e-3), lse error %.3g (tol 1e-5)",
              kind ? "very negative" : "large", T, pos0, hd, big, eo, el);
    printf("%s scores T %d pos0 %d hd %d: max |lse| %.1f, output error %.3g, lse error %.3g\n",
           kind ? "negative" : "large", T, pos0, hd, big, eo, el);
    free(q), free(k), free(v), free(g), free(out), free(lse), free(ro), free(rl), free(u),
        free(rof), free(rlf);
}

int main(void) {
    ga_pool *pool = ga_pool_create(2);
    if (!pool) return 1;
    overflow_case(pool, 0, 64, 1500, 2, 1, 64); /* long rows, large norms */
    overflow_case(pool, 0, 33, 0, 4, 2, 128);   /* short causal rows from position 0 */
    overflow_case(pool, 1, 16, 700, 2, 1, 64);  /* every score about -300 */
    overflow_case(pool, 1, 5, 0, 2, 2, 128);
    ga_pool_free(pool);
    return ga_test_finish();
}
