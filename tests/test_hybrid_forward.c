/* The hybrid CPU reference (src/cpu/cpu_hybrid.c, issue 15) on a tiny random model built here:
 * (a) prefill then decode equals one prefill, (b) every logit equals a naive double-precision
 * forward written below straight from the formulas (whole-sequence causal conv, textbook delta
 * rule S_t = exp(g) S_{t-1} + beta k (v - exp(g) S_{t-1}^T k)^T, full causal attention), for
 * Qwen3.5's split and Qwen3-Next's grouped projections, dense and MoE, (c) edge cases. The
 * naive forward shares no code with the module. */
#include "testutil.h"

#include <math.h>

#include "cpu/cpu_hybrid.h"

enum { V = 23, D = 16, L = 4, NH = 2, NKV = 1, HD = 8, RD = 4, HK = 2, HV = 4, DK = 4, DV = 6 };
enum { KC = 4, FF = 12, E = 4, TOPK = 2, FFE = 6, FFS = 5, MAXT = 12 };
#define KD (HK * DK)
#define VD (HV * DV)
#define CD (2 * KD + VD)

static uint64_t rng = 88172645463325252ull;
static float frand(float scale) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return scale * (float)((double)(rng >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}
/* every weight array of the test models, freed together by free_all */
static void *g_alloc[4096];
static int g_nalloc;
static void *track(void *p) {
    if (g_nalloc < (int)(sizeof g_alloc / sizeof g_alloc[0])) g_alloc[g_nalloc++] = p;
    return p;
}
static void free_all(void) {
    while (g_nalloc > 0)
        free(g_alloc[--g_nalloc]);
}
static float *rnd(size_t n, float scale) {
    float *p = track(malloc(n * sizeof *p));
    for (size_t i = 0; i < n; i++)
        p[i] = frand(scale);
    return p;
}

static void make_config(ga_config *c, bool moe, int topk) {
    memset(c, 0, sizeof *c);
    c->arch = moe ? GA_ARCH_QWEN3_NEXT : GA_ARCH_QWEN3_5;
    c->norm_zero_centred = true;
    c->vocab_size = V, c->hidden_size = D, c->intermediate_size = FF, c->n_layers = L;
    c->n_heads = NH, c->n_kv_heads = NKV, c->head_dim = HD, c->rms_norm_eps = 1e-6f;
    c->rope_theta = 10000.0;
    ga_hybrid_config *h = &c->hybrid;
    h->n_linear_layers = 3, h->full_attention_interval = 4;
    for (int l = 0; l < L; l++)
        h->layer_is_linear[l] = (l % 4 != 3);
    h->linear_conv_kernel_dim = KC, h->linear_num_key_heads = HK, h->linear_num_value_heads = HV;
    h->linear_key_head_dim = DK, h->linear_value_head_dim = DV;
    h->attn_output_gate = true, h->partial_rotary_factor = 0.5, h->rotary_dim = RD;
    if (moe) {
        h->moe = true, h->num_experts = E, h->num_experts_per_tok = topk;
        h->moe_intermediate_size = FFE, h->shared_expert_intermediate_size = FFS;
        h->norm_topk_prob = true;
        for (int l = 0; l < L; l++) /* MoE on odd layers, dense on even: both paths per model */
            h->layer_is_moe[l] = l % 2, h->n_moe_layers += l % 2;
    }
}

typedef struct model {
    ga_hyb_layer_w lw[L];
    ga_hyb_mlp_w ex[L][E];
    ga_hyb_weights w;
} model;

static ga_hyb_mlp_w mlp(int ff) {
    return (ga_hyb_mlp_w){rnd((size_t)ff * D, 0.4f), rnd((size_t)ff * D, 0.4f),
                          rnd((size_t)D * ff, 0.4f)};
}

static void make_model(model *m) {
    memset(m, 0, sizeof *m);
    for (int l = 0; l < L; l++) {
        ga_hyb_layer_w *w = &m->lw[l];
        w->input_norm = rnd(D, 0.5f), w->post_norm = rnd(D, 0.5f);
        w->attn = (ga_hyb_attn_w){rnd(2 * NH * HD * D, 0.5f),
                                  rnd(NKV * HD * D, 0.5f),
                                  rnd(NKV * HD * D, 0.5f),
                                  rnd(HD, 0.5f),
                                  rnd(HD, 0.5f),
                                  rnd(D * NH * HD, 0.4f)};
        ga_hyb_gdn_w *g = &w->gdn;
        g->in_qkv = rnd(CD * D, 0.5f), g->in_z = rnd(VD * D, 0.5f);
        g->in_b = rnd(HV * D, 0.5f), g->in_a = rnd(HV * D, 0.5f);
        g->conv = rnd(CD * KC, 0.6f), g->dt_bias = rnd(HV, 1.0f), g->A_log = rnd(HV, 1.0f);
        g->norm = rnd(DV, 1.0f), g->out = rnd(D * VD, 0.4f);
        w->mlp = mlp(FF);
        for (int e = 0; e < E; e++)
            m->ex[l][e] = mlp(FFE);
        w->moe = (ga_hyb_moe_w){rnd(E * D, 1.0f), m->ex[l], mlp(FFS), rnd(D, 0.5f)};
    }
    m->w = (ga_hyb_weights){rnd(V * D, 1.0f), m->lw, rnd(D, 0.5f), rnd(V * D, 0.5f)};
}

/* The same layer weights regrouped the way Qwen3-Next stores them: per key head h the rows
 * [q_h | k_h | v of its r value heads | z of its r value heads], and [b_r | a_r]. */
static void to_fused(ga_hyb_gdn_w *g) {
    int r = HV / HK, gq = 2 * DK + 2 * r * DV;
    float *qkvz = track(malloc(sizeof(float) * HK * gq * D));
    float *ba = track(malloc(sizeof(float) * 2 * HV * D));
    for (int h = 0; h < HK; h++) {
        float *dst = qkvz + (size_t)h * gq * D;
        memcpy(dst, g->in_qkv + (size_t)h * DK * D, sizeof(float) * DK * D);
        memcpy(dst + DK * D, g->in_qkv + (size_t)(KD + h * DK) * D, sizeof(float) * DK * D);
        memcpy(dst + 2 * DK * D, g->in_qkv + (size_t)(2 * KD + h * r * DV) * D,
               sizeof(float) * r * DV * D);
        memcpy(dst + (2 * DK + r * DV) * D, g->in_z + (size_t)h * r * DV * D,
               sizeof(float) * r * DV * D);
        memcpy(ba + (size_t)h * 2 * r * D, g->in_b + (size_t)h * r * D, sizeof(float) * r * D);
        memcpy(ba + (size_t)(h * 2 * r + r) * D, g->in_a + (size_t)h * r * D,
               sizeof(float) * r * D);
    }
    g->in_qkvz = qkvz, g->in_ba = ba, g->in_qkv = NULL;
}

/* ---- the naive forward, double throughout ---- */
static void nmat(double *y, const float *W, const double *x, int in, int out) {
    for (int o = 0; o < out; o++) {
        y[o] = 0;
        for (int i = 0; i < in; i++)
            y[o] += W[(size_t)o * in + i] * x[i];
    }
}
static double nsig(double x) {
    return 1 / (1 + exp(-x));
}
static void nnorm(double *x, const float *w, int n, int zc) {
    double ss = 0;
    for (int i = 0; i < n; i++)
        ss += x[i] * x[i];
    double r = 1 / sqrt(ss / n + 1e-6);
    for (int i = 0; i < n; i++)
        x[i] = x[i] * r * (zc + (double)w[i]);
}
static void nswiglu(const ga_hyb_mlp_w *w, const double *x, double *out, int ff) {
    double g[16], u[16];
    nmat(g, w->gate, x, D, ff);
    nmat(u, w->up, x, D, ff);
    for (int i = 0; i < ff; i++)
        g[i] = g[i] * nsig(g[i]) * u[i];
    nmat(out, w->down, g, ff, D);
}

static void naive(const ga_config *c, const model *m, const int32_t *tok, int T, double *logits) {
    static double x[MAXT][D], h[MAXT][D], y[MAXT][D], mixed[MAXT][CD];
    for (int t = 0; t < T; t++)
        for (int i = 0; i < D; i++)
            x[t][i] = m->w.embed[tok[t] * D + i];
    for (int l = 0; l < L; l++) {
        const ga_hyb_layer_w *w = &m->lw[l];
        for (int t = 0; t < T; t++) {
            memcpy(h[t], x[t], sizeof h[t]);
            nnorm(h[t], w->input_norm, D, 1);
        }
        if (c->hybrid.layer_is_linear[l]) {
            const ga_hyb_gdn_w *g = &w->gdn;
            double S[HV][DK][DV] = {{{0}}};
            for (int t = 0; t < T; t++)
                nmat(mixed[t], g->in_qkv, h[t], D, CD);
            for (int t = 0; t < T; t++) {
                double qkv[CD], z[VD], b[HV], a[HV], o[VD];
                for (int ch = 0; ch < CD; ch++) { /* causal conv, zeros before the sequence */
                    double s = 0;
                    for (int j = 0; j < KC; j++) {
                        int src = t - (KC - 1) + j;
                        if (src >= 0) s += g->conv[ch * KC + j] * mixed[src][ch];
                    }
                    qkv[ch] = s * nsig(s);
                }
                nmat(z, g->in_z, h[t], D, VD);
                nmat(b, g->in_b, h[t], D, HV);
                nmat(a, g->in_a, h[t], D, HV);
                for (int hv = 0; hv < HV; hv++) {
                    int hk = hv / (HV / HK);
                    double q[DK], k[DK], qq = 0, kk = 0;
                    for (int i = 0; i < DK; i++) {
                        q[i] = qkv[hk * DK + i], k[i] = qkv[KD + hk * DK + i];
                        qq += q[i] * q[i], kk += k[i] * k[i];
                    }
                    for (int i = 0; i < DK; i++)
                        q[i] /= sqrt(qq + 1e-6) * sqrt((double)DK), k[i] /= sqrt(kk + 1e-6);
                    const double *v = qkv + 2 * KD + hv * DV;
                    double sp = log(1 + exp(a[hv] + g->dt_bias[hv]));
                    double decay = exp(-exp((double)g->A_log[hv]) * sp), beta = nsig(b[hv]);
                    for (int j = 0; j < DV; j++) {
                        double ks = 0;
                        for (int i = 0; i < DK; i++)
                            ks += k[i] * S[hv][i][j];
                        for (int i = 0; i < DK; i++)
                            S[hv][i][j] = decay * S[hv][i][j] + beta * k[i] * (v[j] - decay * ks);
                    }
                    double *oh = o + hv * DV, ss = 0;
                    for (int j = 0; j < DV; j++) {
                        oh[j] = 0;
                        for (int i = 0; i < DK; i++)
                            oh[j] += q[i] * S[hv][i][j];
                        ss += oh[j] * oh[j];
                    }
                    for (int j = 0; j < DV; j++) {
                        double zz = z[hv * DV + j];
                        oh[j] = g->norm[j] * oh[j] / sqrt(ss / DV + 1e-6) * zz * nsig(zz);
                    }
                }
                nmat(y[t], g->out, o, VD, D);
            }
        } else {
            static double q[MAXT][NH][2 * HD], k[MAXT][NKV][HD], v[MAXT][NKV][HD];
            for (int t = 0; t < T; t++) {
                nmat(&q[t][0][0], w->attn.q, h[t], D, 2 * NH * HD);
                nmat(&k[t][0][0], w->attn.k, h[t], D, NKV * HD);
                nmat(&v[t][0][0], w->attn.v, h[t], D, NKV * HD);
                for (int hh = 0; hh < NH + NKV; hh++) {
                    double *p = hh < NH ? q[t][hh] : k[t][hh - NH];
                    nnorm(p, hh < NH ? w->attn.q_norm : w->attn.k_norm, HD, 1);
                    for (int i = 0; i < RD / 2; i++) { /* rotate-half on the first RD dims */
                        double th = t * pow(c->rope_theta, -2.0 * i / RD);
                        double x1 = p[i], x2 = p[i + RD / 2];
                        p[i] = x1 * cos(th) - x2 * sin(th);
                        p[i + RD / 2] = x2 * cos(th) + x1 * sin(th);
                    }
                }
            }
            for (int t = 0; t < T; t++) {
                double o[NH * HD];
                for (int hh = 0; hh < NH; hh++) {
                    int j = hh / (NH / NKV);
                    double sc[MAXT], mx = -1e300, sum = 0;
                    for (int u = 0; u <= t; u++) {
                        sc[u] = 0;
                        for (int d = 0; d < HD; d++)
                            sc[u] += q[t][hh][d] * k[u][j][d] / sqrt((double)HD);
                        mx = fmax(mx, sc[u]);
                    }
                    for (int u = 0; u <= t; u++)
                        sum += exp(sc[u] - mx);
                    for (int d = 0; d < HD; d++) {
                        double acc = 0;
                        for (int u = 0; u <= t; u++)
                            acc += exp(sc[u] - mx) / sum * v[u][j][d];
                        o[hh * HD + d] = acc * nsig(q[t][hh][HD + d]);
                    }
                }
                nmat(y[t], w->attn.o, o, NH * HD, D);
            }
        }
        for (int t = 0; t < T; t++) {
            for (int i = 0; i < D; i++)
                x[t][i] += y[t][i];
            memcpy(h[t], x[t], sizeof h[t]);
            nnorm(h[t], w->post_norm, D, 1);
            if (c->hybrid.layer_is_moe[l]) {
                const ga_hyb_moe_w *mw = &w->moe;
                double p[E], sum = 0, part[D], tot = 0;
                nmat(p, mw->router, h[t], D, E);
                for (int e = 0; e < E; e++)
                    sum += (p[e] = exp(p[e]));
                int rank_ok[E];
                for (int e = 0; e < E; e++) { /* in the top-k: fewer than k experts beat it */
                    int better = 0;
                    for (int f = 0; f < E; f++)
                        better += p[f] > p[e] || (p[f] == p[e] && f < e);
                    rank_ok[e] = better < c->hybrid.num_experts_per_tok;
                    if (rank_ok[e]) tot += p[e] / sum;
                }
                memset(y[t], 0, sizeof y[t]);
                for (int e = 0; e < E; e++) {
                    if (!rank_ok[e]) continue;
                    nswiglu(&mw->experts[e], h[t], part, FFE);
                    for (int i = 0; i < D; i++)
                        y[t][i] += p[e] / sum / tot * part[i];
                }
                nswiglu(&mw->shared, h[t], part, FFS);
                double sg = 0;
                for (int i = 0; i < D; i++)
                    sg += mw->shared_gate[i] * h[t][i];
                for (int i = 0; i < D; i++)
                    y[t][i] += nsig(sg) * part[i];
            } else {
                nswiglu(&w->mlp, h[t], y[t], FF);
            }
            for (int i = 0; i < D; i++)
                x[t][i] += y[t][i];
        }
    }
    for (int t = 0; t < T; t++) {
        nnorm(x[t], m->w.final_norm, D, 1);
        nmat(logits + t * V, m->w.lm_head, x[t], D, V);
    }
}

/* max over i of |a - b| / (atol + rtol |b|) with atol = rtol = 1e-4 (fp32 against double over
 * a few layers); above 1 fails. NaN counts as a failure. */
static double max_rel(const float *a, const double *b, int n) {
    double worst = 0;
    for (int i = 0; i < n; i++) {
        if (!isfinite(a[i])) return INFINITY;
        worst = fmax(worst, fabs(a[i] - b[i]) / (1e-4 + 1e-4 * fabs(b[i])));
    }
    return worst;
}

static const int32_t k_tok[MAXT] = {3, 17, 0, 22, 9, 9, 5, 12, 1, 20, 7, 14};

/* (b) every logit of one prefill against the naive forward; (a) the same sequence fed as
 * prefill(split) + one-token decodes, and in uneven pieces, equal to the one prefill. */
static void check_model(const char *name, bool moe, int topk, bool fused) {
    ga_config c;
    make_config(&c, moe, topk);
    static model m;
    make_model(&m);
    double ref[MAXT * V];
    naive(&c, &m, k_tok, MAXT, ref);
    if (fused)
        for (int l = 0; l < L; l++)
            to_fused(&m.lw[l].gdn);
    ga_err e = {{0}};
    ga_hyb_state *s;
    CHECK_OK(ga_hyb_state_create(&c, MAXT, &s, &e), &e);
    float full[MAXT * V], part[MAXT * V];
    for (int i = 0; i < MAXT * V; i++)
        full[i] = part[i] = NAN;
    CHECK_OK(ga_hyb_forward(&c, &m.w, s, k_tok, MAXT, full, &e), &e);
    double err = max_rel(full, ref, MAXT * V);
    CHECK_MSG(err <= 1, "%s: prefill vs naive double, error %.3g of the tolerance", name, err);
    static const int cuts[][MAXT + 1] = {{5, 1, 1, 1, 1, 1, 1, 1, 0}, {1, 1, 3, 7, 0}, {2, 10, 0}};
    for (size_t k = 0; k < sizeof cuts / sizeof cuts[0]; k++) {
        ga_hyb_state_reset(s);
        int at = 0;
        for (int j = 0; cuts[k][j]; at += cuts[k][j], j++)
            CHECK_OK(ga_hyb_forward(&c, &m.w, s, k_tok + at, cuts[k][j], part + at * V, &e), &e);
        CHECK(at == MAXT && ga_hyb_state_pos(s) == MAXT);
        double d = 0;
        for (int i = 0; i < MAXT * V; i++)
            d = fmax(d, fabs(part[i] - full[i]) / (1e-3 + fabs(full[i])));
        CHECK_MSG(d < 1e-6, "%s: pieces %zu vs one prefill, max rel diff %.3g", name, k, d);
    }
    /* bad input: a token out of range, more tokens than the state has room for */
    int32_t bad = V;
    ga_hyb_state_reset(s);
    CHECK(ga_hyb_forward(&c, &m.w, s, &bad, 1, part, &e) == GA_ERR_ARG);
    CHECK(strstr(e.msg, "token 0 is 23") != NULL);
    CHECK_OK(ga_hyb_forward(&c, &m.w, s, k_tok, MAXT, part, &e), &e);
    CHECK(ga_hyb_forward(&c, &m.w, s, k_tok, 1, part, &e) == GA_ERR_ARG);
    CHECK(strstr(e.msg, "room 0") != NULL);
    ga_hyb_state_free(s);
    free_all();
}

/* (c) the conv during warm-up (fewer inputs than the kernel): zero history, one input at a
 * time, against the definition. */
static void check_conv_warmup(void) {
    enum { C = 3, K = 4 };
    float w[C * K], st[C * (K - 1)] = {0}, xs[2][C], out[C];
    for (int i = 0; i < C * K; i++)
        w[i] = frand(1);
    for (int t = 0; t < 2; t++) {
        for (int ch = 0; ch < C; ch++)
            xs[t][ch] = frand(1);
        ga_hyb_conv_step(out, xs[t], st, w, C, K);
        for (int ch = 0; ch < C; ch++) {
            double s = w[ch * K + K - 1] * (double)xs[t][ch];
            if (t == 1) s += w[ch * K + K - 2] * (double)xs[0][ch];
            double want = s / (1 + exp(-s));
            CHECK_MSG(fabs(out[ch] - want) < 1e-6, "conv t=%d ch=%d %g vs %g", t, ch, out[ch],
                      want);
        }
    }
    /* kernel 1: no state, a pointwise scale + SiLU */
    ga_hyb_conv_step(out, xs[0], st, w, C, 1);
    double s0 = w[0] * (double)xs[0][0];
    CHECK(fabs(out[0] - s0 / (1 + exp(-s0))) < 1e-6);
}

/* (c) MoE: a zero router ties every expert; with top_k = num_experts and norm_topk_prob the
 * routed part is the plain mean of all experts whatever the tie order. */
static void check_moe_ties(void) {
    ga_config c;
    make_config(&c, true, E);
    static model m;
    make_model(&m);
    ga_hyb_moe_w w = m.lw[1].moe;
    float zero[E * D] = {0}, x[D], out[D];
    w.router = zero;
    for (int i = 0; i < D; i++)
        x[i] = frand(1);
    float *scratch = malloc(ga_hyb_moe_scratch(&c) * sizeof *scratch);
    ga_hyb_moe(&c, &w, x, out, scratch);
    double xd[D], want[D] = {0}, part[D], sg = 0;
    for (int i = 0; i < D; i++)
        xd[i] = x[i], sg += w.shared_gate[i] * xd[i];
    for (int e = 0; e < E; e++) {
        nswiglu(&w.experts[e], xd, part, FFE);
        for (int i = 0; i < D; i++)
            want[i] += part[i] / E;
    }
    nswiglu(&w.shared, xd, part, FFS);
    for (int i = 0; i < D; i++)
        want[i] += nsig(sg) * part[i];
    CHECK_MSG(max_rel(out, want, D) <= 0.1, "moe ties: %g", max_rel(out, want, D));
    free(scratch);
    free_all();
}

int main(void) {
    check_model("qwen3_5 dense, split projections", false, 0, false);
    check_model("qwen3_next MoE top-2, fused projections", true, TOPK, true);
    check_model("MoE top_k = num_experts, split", true, E, false);
    check_model("dense, fused projections", false, 0, true);
    check_conv_warmup();
    check_moe_ties();
    ga_config c;
    make_config(&c, true, E + 1);
    ga_err e = {{0}};
    ga_hyb_state *s;
    CHECK(ga_hyb_state_create(&c, 4, &s, &e) == GA_ERR_UNSUPPORTED && s == NULL);
    CHECK(strstr(e.msg, "top-5 of 4 experts") != NULL);
    return ga_test_finish();
}
