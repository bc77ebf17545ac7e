/*
 * The naive reference forward (see viz_naive.h). Written from the model definition:
 *   x = embed[token]
 *   per layer: h = rmsnorm(x) * w_in; q|gate = Wq h (rows grouped per KV head: the group's
 *   G*hd query rows, then its gate rows); k = Wk h; v = Wv h (+ biases); q, k per head
 *   rmsnorm with q_norm/k_norm; rotary embedding (rotate-half form, inv_freq =
 *   theta^(-2i/hd)); p = softmax over keys <= query of q.k / sqrt(hd); o = p v, times
 *   sigmoid(gate) per head or per element (this step through the CPU backend's attention row,
 *   ga_cpu_attend, in fp32); x += Wo o (+ bias);
 *   x += Wdown (silu(Wg h2) * (Wu h2)) with h2 = rmsnorm(x) * w_post.
 * Everything else in double, one token and one head at a time.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/gate_layout.h"
#include "core/safetensors.h"
#include "cpu/cpu_attention.h"
#include "viz_naive.h"

/* A weight read by its checkpoint name straight from the store (the safetensors reader), not
 * through the engine's model binding, so a binding that swaps or misses tensors shows up as a
 * difference. NULL when absent (biases, qk norms) or out of memory. */
static double *read_w(const ga_model *m, int layer, const char *suffix) {
    char name[160];
    if (layer < 0)
        snprintf(name, sizeof name, "model.%s", suffix);
    else
        snprintf(name, sizeof name, "model.layers.%d.%s", layer, suffix);
    const ga_tensor *t = ga_store_find(m->store, name);
    if (!t) return NULL;
    int64_t n = ga_tensor_numel(t);
    float *f = malloc((size_t)n * sizeof *f);
    double *d = malloc((size_t)n * sizeof *d);
    if (f && d) {
        ga_tensor_read_f32(t, 0, n, f);
        for (int64_t i = 0; i < n; i++)
            d[i] = f[i];
    }
    free(f);
    return d;
}

static void rmsnorm(double *out, const double *x, const double *w, int n, double eps) {
    double ss = 0;
    for (int i = 0; i < n; i++)
        ss += x[i] * x[i];
    double r = 1.0 / sqrt(ss / n + eps);
    for (int i = 0; i < n; i++)
        out[i] = x[i] * r * w[i];
}

/* y[r] = sum_c W[r][c] x[c] (+ b[r]) for W (rows, cols) */
static void linear(double *y, const double *W, const double *b, const double *x, int rows,
                   int cols) {
    for (int r = 0; r < rows; r++) {
        double s = b ? b[r] : 0.0;
        const double *w = W + (size_t)r * cols;
        for (int c = 0; c < cols; c++)
            s += w[c] * x[c];
        y[r] = s;
    }
}

static void rope(double *v, int hd, int pos, double theta) {
    int half = hd / 2;
    for (int i = 0; i < half; i++) {
        double ang = pos * pow(theta, -2.0 * i / hd);
        double c = cos(ang), s = sin(ang), a = v[i], b = v[i + half];
        v[i] = a * c - b * s;
        v[i + half] = b * c + a * s;
    }
}

int naive_forward(const ga_model *m, const int32_t *tokens, int T, naive_out *o) {
    const ga_config *c = &m->cfg;
    int H = c->hidden_size, hd = c->head_dim, nh = c->n_heads, nkv = c->n_kv_heads;
    int G = nh / nkv, I = c->intermediate_size, L = c->n_layers;
    const ga_gate_layout gl = ga_gate_layout_of(c);
    int GD = ga_gate_layout_gate_dim(&gl), QR = ga_gate_layout_q_rows(&gl);
    double eps = c->rms_norm_eps;
    memset(o, 0, sizeof *o);
    o->n_layers = L;
    o->n_heads = nh;
    o->T = T;
    o->gate_dim = GD;
    o->probs = calloc((size_t)L, sizeof *o->probs);
    o->gates = calloc((size_t)L, sizeof *o->gates);
    double *x = calloc((size_t)T * H, sizeof *x), *h = calloc((size_t)H, sizeof *h);
    double *qg = calloc((size_t)QR, sizeof *qg);
    double *q = calloc((size_t)T * nh * hd, sizeof *q),
           *k = calloc((size_t)T * nkv * hd, sizeof *k);
    double *v = calloc((size_t)T * nkv * hd, sizeof *v),
           *att = calloc((size_t)nh * hd, sizeof *att);
    double *tmp = calloc((size_t)(H > I ? H : I), sizeof *tmp);
    double *mg = calloc((size_t)I, sizeof *mg), *mu = calloc((size_t)I, sizeof *mu);
    double *embed = read_w(m, -1, "embed_tokens.weight");
    int ok = o->probs && o->gates && x && h && qg && q && k && v && att && tmp && mg && mu && embed;
    for (int t = 0; ok && t < T; t++)
        for (int i = 0; i < H; i++)
            x[(size_t)t * H + i] = embed[(size_t)tokens[t] * H + i];
    free(embed);

    for (int l = 0; ok && l < L; l++) {
        double *win = read_w(m, l, "input_layernorm.weight");
        double *wq = read_w(m, l, "self_attn.q_proj.weight"), *bq = NULL, *bk = NULL, *bv = NULL;
        double *wk = read_w(m, l, "self_attn.k_proj.weight");
        double *wv = read_w(m, l, "self_attn.v_proj.weight");
        double *wo = read_w(m, l, "self_attn.o_proj.weight"), *bo = NULL;
        double *qn = NULL, *kn = NULL, *wp = read_w(m, l, "post_attention_layernorm.weight");
        double *wg = read_w(m, l, "mlp.gate_proj.weight"), *wu = read_w(m, l, "mlp.up_proj.weight"),
               *wd = read_w(m, l, "mlp.down_proj.weight");
        if (c->attention_bias) {
            bq = read_w(m, l, "self_attn.q_proj.bias");
            bk = read_w(m, l, "self_attn.k_proj.bias");
            bv = read_w(m, l, "self_attn.v_proj.bias");
        }
        if (c->o_bias) bo = read_w(m, l, "self_attn.o_proj.bias");
        if (c->use_qk_norm) {
            qn = read_w(m, l, "self_attn.q_norm.weight");
            kn = read_w(m, l, "self_attn.k_norm.weight");
        }
        double *P = calloc((size_t)nh * T * T, sizeof *P);
        double *gate = GD ? calloc((size_t)T * GD, sizeof *gate) : NULL;
        double *graw = GD ? calloc((size_t)T * GD, sizeof *graw) : NULL; /* before the sigmoid */
        ok = win && wq && wk && wv && wo && wp && wg && wu && wd && P && (!GD || (gate && graw)) &&
             (!c->use_qk_norm || (qn && kn)) && (!c->attention_bias || (bq && bk && bv)) &&
             (!c->o_bias || bo);
        o->probs[l] = P;
        o->gates[l] = gate;
        for (int t = 0; ok && t < T; t++) {
            rmsnorm(h, x + (size_t)t * H, win, H, eps);
            linear(qg, wq, bq, h, QR, H);
            for (int hh = 0; hh < nh; hh++) { /* split per core/gate_layout.h */
                double *qh = q + ((size_t)t * nh + hh) * hd;
                memcpy(qh, qg + ga_gate_layout_q_off(&gl, hh), hd * sizeof *qh);
                if (qn) rmsnorm(qh, qh, qn, hd, eps);
                rope(qh, hd, t, c->rope_theta);
                const double *gs = qg + ga_gate_layout_gate_off(&gl, hh);
                for (int i = 0; i < gl.per_head; i++) {
                    const size_t gi = (size_t)t * GD + ga_gate_layout_gate_idx(&gl, hh) + i;
                    graw[gi] = gs[i];
                    gate[gi] = 1.0 / (1.0 + exp(-gs[i]));
                }
            }
            linear(k + (size_t)t * nkv * hd, wk, bk, h, nkv * hd, H);
            linear(v + (size_t)t * nkv * hd, wv, bv, h, nkv * hd, H);
            for (int j = 0; j < nkv; j++) {
                double *kh = k + ((size_t)t * nkv + j) * hd;
                if (kn) rmsnorm(kh, kh, kn, hd, eps);
                rope(kh, hd, t, c->rope_theta);
            }
        }
        /* Attention through the CPU backend's attention row (ga_cpu_attend, fp32): the one
         * host statement of softmax(q.k / sqrt(hd)) v and the gate; this forward supplies its
         * own q, k, v and raw gate, from weights read by name. */
        float *qf = malloc((size_t)hd * sizeof *qf), *of = malloc((size_t)hd * sizeof *of);
        float *kf = malloc((size_t)T * hd * sizeof *kf), *vf = malloc((size_t)T * hd * sizeof *vf);
        float *pf = malloc((size_t)T * sizeof *pf), *gf = malloc((size_t)hd * sizeof *gf);
        ok = ok && qf && of && kf && vf && pf && gf;
        for (int t = 0; ok && t < T; t++) {
            for (int hh = 0; hh < nh; hh++) {
                const double *qh = q + ((size_t)t * nh + hh) * hd;
                for (int i = 0; i < hd; i++)
                    qf[i] = (float)qh[i];
                for (int s2 = 0; s2 <= t; s2++)
                    for (int i = 0; i < hd; i++) {
                        const size_t at = ((size_t)s2 * nkv + hh / G) * hd + i;
                        kf[(size_t)s2 * hd + i] = (float)k[at];
                        vf[(size_t)s2 * hd + i] = (float)v[at];
                    }
                for (int i = 0; i < gl.per_head; i++)
                    gf[i] = (float)graw[(size_t)t * GD + ga_gate_layout_gate_idx(&gl, hh) + i];
                ga_cpu_attend(qf, kf, vf, t + 1, hd, (float)(1.0 / sqrt((double)hd)), gf, c->gate,
                              of, pf);
                double *p = P + ((size_t)hh * T + t) * T;
                for (int s2 = 0; s2 <= t; s2++)
                    p[s2] = pf[s2];
                double *oh = att + (size_t)hh * hd;
                for (int i = 0; i < hd; i++)
                    oh[i] = of[i];
            }
            linear(tmp, wo, bo, att, H, nh * hd);
            for (int i = 0; i < H; i++)
                x[(size_t)t * H + i] += tmp[i];
        }
        free(qf), free(of), free(kf), free(vf), free(pf), free(gf);
        for (int t = 0; ok && t < T; t++) {
            rmsnorm(h, x + (size_t)t * H, wp, H, eps);
            linear(mg, wg, NULL, h, I, H);
            linear(mu, wu, NULL, h, I, H);
            for (int i = 0; i < I; i++)
                mg[i] = mg[i] / (1.0 + exp(-mg[i])) * mu[i];
            linear(tmp, wd, NULL, mg, H, I);
            for (int i = 0; i < H; i++)
                x[(size_t)t * H + i] += tmp[i];
        }
        free(win), free(wq), free(bq), free(wk), free(bk), free(wv), free(bv), free(wo), free(bo);
        free(qn), free(kn), free(wp), free(wg), free(wu), free(wd), free(graw);
    }
    free(x), free(h), free(qg), free(q), free(k), free(v), free(att), free(tmp), free(mg), free(mu);
    if (!ok) {
        naive_free(o);
        return -1;
    }
    return 0;
}

void naive_free(naive_out *o) {
    for (int l = 0; l < o->n_layers; l++) {
        if (o->probs) free(o->probs[l]);
        if (o->gates) free(o->gates[l]);
    }
    free(o->probs);
    free(o->gates);
    memset(o, 0, sizeof *o);
}

float *naive_map(const naive_out *o, int l, int head) {
    int T = o->T;
    float *m = malloc((size_t)T * T * sizeof *m);
    if (!m) return NULL;
    for (size_t i = 0; i < (size_t)T * T; i++) {
        double s = 0;
        if (head >= 0) {
            s = o->probs[l][(size_t)head * T * T + i];
        } else {
            for (int h = 0; h < o->n_heads; h++)
                s += o->probs[l][(size_t)h * T * T + i];
            s /= o->n_heads;
        }
        m[i] = (float)s;
    }
    return m;
}
