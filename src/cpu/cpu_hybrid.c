/*
 * The CPU reference forward of the hybrid Qwen models (see cpu_hybrid.h). fp32 values, double
 * accumulation for every dot product, norm and softmax, so the reference does not drift with
 * the hidden size. Each op names the transformers 5.17 function it follows
 * (models/qwen3_next/modeling_qwen3_next.py unless stated).
 */
#include "cpu_hybrid.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct ga_hyb_state {
    int max_seq, pos;
    int n_layers;
    float **conv;   /* (n_layers): (conv_dim, kernel-1) for linear layers, else NULL */
    float **rec;    /* (n_layers): (Hv, d_k, d_v) for linear layers, else NULL */
    float **k, **v; /* slots: (n_layers): (max_seq, n_kv_heads, head_dim) for full layers, else
                     * NULL; paged: all NULL, the K/V live in blocks (below) */
    size_t conv_n, rec_n, kv_n, row; /* row: n_kv_heads * head_dim, one position of one layer */
    /* paged (ga_hyb_state_create_paged + ga_hyb_state_page): */
    bool paged;
    float *pk, *pv;       /* the pools of blocks; block b at b * ga_hyb_block_floats */
    const int32_t *table; /* the sequence's block table */
    int block_size;
    size_t block_pitch; /* floats per block */
    int *full_idx;      /* (n_layers): full layer l's index among the full layers (its part of a
                         * block, which holds block_size positions of each in layer order) */
};

/* K (or V, with pool pv) of full layer l at position t: (n_kv_heads, head_dim) contiguous, in
 * its slot or in block table[t / block_size]; the same floats either way, so the same math. */
static float *kv_row(const ga_hyb_state *s, float *const *slot, float *pool, int l, int t) {
    if (!s->paged) return slot[l] + (size_t)t * s->row;
    return pool + (size_t)s->table[t / s->block_size] * s->block_pitch +
           ((size_t)s->full_idx[l] * s->block_size + (size_t)(t % s->block_size)) * s->row;
}
#define K_ROW(s, l, t) kv_row(s, (s)->k, (s)->pk, l, t)
#define V_ROW(s, l, t) kv_row(s, (s)->v, (s)->pv, l, t)

static double dot(const float *a, const float *b, int n) {
    double s = 0.0;
    for (int i = 0; i < n; i++)
        s += (double)a[i] * b[i];
    return s;
}

/* y[o] = W[o, :] . x for o < out (W row-major out x in). */
static void matvec(float *y, const float *W, const float *x, int in, int out) {
    for (int o = 0; o < out; o++)
        y[o] = (float)dot(W + (size_t)o * in, x, in);
}

static float sigmoidf_(float x) {
    return (float)(1.0 / (1.0 + exp(-(double)x)));
}
static float siluf_(float x) {
    return (float)((double)x / (1.0 + exp(-(double)x)));
}
/* F.softplus with torch's defaults (beta 1, threshold 20: linear above it). */
static double softplus_(double x) {
    return x > 20.0 ? x : log1p(exp(x));
}

void ga_hyb_rmsnorm_zc(float *out, const float *x, const float *w, int n, float eps) {
    double r = 1.0 / sqrt(dot(x, x, n) / n + eps);
    for (int i = 0; i < n; i++)
        out[i] = (float)(x[i] * r * (1.0 + w[i]));
}

void ga_hyb_gated_rmsnorm(float *out, const float *o, const float *z, const float *w, int n,
                          float eps) {
    double r = 1.0 / sqrt(dot(o, o, n) / n + eps);
    for (int i = 0; i < n; i++)
        out[i] = (float)((double)w[i] * (o[i] * r) * siluf_(z[i]));
}

void ga_hyb_conv_step(float *out, const float *x, float *state, const float *w, int C, int kernel) {
    int m = kernel - 1;
    for (int c = 0; c < C; c++) {
        float *st = state + (size_t)c * m;
        const float *wc = w + (size_t)c * kernel;
        double s = (double)wc[m] * x[c];
        for (int j = 0; j < m; j++)
            s += (double)wc[j] * st[j];
        if (m > 0) {
            memmove(st, st + 1, (size_t)(m - 1) * sizeof *st);
            st[m - 1] = x[c];
        }
        out[c] = siluf_((float)s);
    }
}

void ga_hyb_delta_step(float *S, float *o, const float *q, const float *k, const float *v, float g,
                       float beta, int dk, int dv) {
    float decay = (float)exp((double)g);
    for (size_t i = 0; i < (size_t)dk * dv; i++)
        S[i] *= decay;
    for (int j = 0; j < dv; j++) {
        double mem = 0.0; /* (k^T S)[j] after the decay */
        for (int i = 0; i < dk; i++)
            mem += (double)k[i] * S[(size_t)i * dv + j];
        float delta = (float)((v[j] - mem) * beta);
        double acc = 0.0;
        for (int i = 0; i < dk; i++) {
            float *sij = &S[(size_t)i * dv + j];
            *sij += k[i] * delta;
            acc += (double)q[i] * *sij;
        }
        o[j] = (float)acc;
    }
}

static int max_inter(const ga_config *c) {
    int a = c->hybrid.moe_intermediate_size, b = c->hybrid.shared_expert_intermediate_size;
    return a > b ? a : b;
}

size_t ga_hyb_moe_scratch(const ga_config *c) {
    return (size_t)c->hybrid.num_experts + 2 * (size_t)max_inter(c) + (size_t)c->hidden_size;
}

static void l2norm(float *x, int n) {
    /* transformers' l2norm (matching FLA): x * rsqrt(sum(x^2) + 1e-6) */
    double r = 1.0 / sqrt(dot(x, x, n) + 1e-6);
    for (int i = 0; i < n; i++)
        x[i] = (float)(x[i] * r);
}

/* SwiGLU of one token (Qwen3NextMLP): out = down(silu(gate x) * up x). h: 2 * inter floats. */
static void swiglu(const ga_hyb_mlp_w *w, const float *x, float *out, float *h, int hidden,
                   int inter) {
    float *u = h + inter;
    matvec(h, w->gate, x, hidden, inter);
    matvec(u, w->up, x, hidden, inter);
    for (int i = 0; i < inter; i++)
        h[i] = siluf_(h[i]) * u[i];
    matvec(out, w->down, h, inter, hidden);
}

void ga_hyb_moe(const ga_config *c, const ga_hyb_moe_w *w, const float *x, float *out,
                float *scratch) {
    const ga_hybrid_config *hc = &c->hybrid;
    int H = c->hidden_size, E = hc->num_experts, K = hc->num_experts_per_tok;
    float *p = scratch, *h = scratch + E;
    /* Qwen3NextTopKRouter: softmax over all experts, then top-k of the probabilities. */
    matvec(p, w->router, x, H, E);
    double mx = p[0], sum = 0.0;
    for (int e = 1; e < E; e++)
        mx = p[e] > mx ? p[e] : mx;
    for (int e = 0; e < E; e++)
        sum += exp(p[e] - mx);
    for (int e = 0; e < E; e++)
        p[e] = (float)(exp(p[e] - mx) / sum);
    int sel[GA_HYB_MAX_TOPK];
    float wt[GA_HYB_MAX_TOPK];
    double wsum = 0.0;
    for (int k = 0; k < K; k++) { /* largest first; ties go to the lower index */
        int best = -1;
        for (int e = 0; e < E; e++) {
            bool taken = false;
            for (int j = 0; j < k; j++)
                taken = taken || sel[j] == e;
            if (!taken && (best < 0 || p[e] > p[best])) best = e;
        }
        sel[k] = best;
        wt[k] = p[best];
        wsum += p[best];
    }
    if (hc->norm_topk_prob)
        for (int k = 0; k < K; k++)
            wt[k] = (float)(wt[k] / wsum);
    float *y = h + 2 * max_inter(c);
    memset(out, 0, (size_t)H * sizeof *out);
    for (int k = 0; k < K; k++) { /* Qwen3NextExperts: gate/up halves, SwiGLU, weighted sum */
        swiglu(&w->experts[sel[k]], x, y, h, H, hc->moe_intermediate_size);
        for (int i = 0; i < H; i++)
            out[i] += wt[k] * y[i];
    }
    if (hc->shared_expert_intermediate_size > 0) {
        swiglu(&w->shared, x, y, h, H, hc->shared_expert_intermediate_size);
        float sg = sigmoidf_((float)dot(w->shared_gate, x, H));
        for (int i = 0; i < H; i++)
            out[i] += sg * y[i];
    }
}

/* What one full-attention layer records for an attention capture over a prefill of T tokens
 * from position 0 (ga_attn_capture in gattn.h): the pooled map straight from the softmax
 * probabilities below, p(key 0) summed over heads and queries 1..T-1, and the sigmoid of every
 * gate value (n_heads * head_dim a token: the gate is elementwise). */
typedef struct attn_rec {
    float *map; /* (res, res), or NULL when the layer's map was not asked for */
    int res, T, head;
    double first, gate_sum;
    size_t gate_below, gate_n;
} attn_rec;

/* First query row of pooling block b: the smallest i with floor(i * res / T) == b. */
static int block_start(int b, int T, int res) {
    return (int)(((int64_t)b * T + res - 1) / res);
}

/* Full attention of one token at position pos (Qwen3NextAttention + eager_attention_forward):
 * per query head [query | gate] from q_proj, zero-centred q/k norms, rotate-half RoPE on the
 * first rotary_dim dims (apply_rotary_pos_emb), causal GQA softmax over the cache, output times
 * sigmoid(gate), o_proj. buf: 2 * n_heads * head_dim + max_seq floats. rec: NULL, or what a
 * capture records (the token's position is its query row). */
static void attn_token(const ga_config *c, const ga_hyb_attn_w *w, ga_hyb_state *s, int l,
                       const float *x, float *out, float *buf, attn_rec *rec) {
    int H = c->hidden_size, nh = c->n_heads, nkv = c->n_kv_heads, hd = c->head_dim;
    int rd = c->hybrid.rotary_dim, pos = s->pos;
    float *qg = buf, *att = buf + 2 * nh * hd;
    float *kc = K_ROW(s, l, pos), *vc = V_ROW(s, l, pos);
    matvec(qg, w->q, x, H, 2 * nh * hd);
    matvec(kc, w->k, x, H, nkv * hd);
    matvec(vc, w->v, x, H, nkv * hd);
    for (int h = 0; h < nh + nkv; h++) {
        float *v = h < nh ? qg + (size_t)h * 2 * hd : kc + (size_t)(h - nh) * hd;
        ga_hyb_rmsnorm_zc(v, v, h < nh ? w->q_norm : w->k_norm, hd, c->rms_norm_eps);
        for (int i = 0; i < rd / 2; i++) {
            /* Qwen3NextRotaryEmbedding.compute_default_rope_parameters: dim = rotary_dim */
            double ang = pos * pow(c->rope_theta, -2.0 * i / rd);
            float cs = (float)cos(ang), sn = (float)sin(ang), a = v[i], b = v[i + rd / 2];
            v[i] = a * cs - b * sn;
            v[i + rd / 2] = b * cs + a * sn;
        }
    }
    float *o = qg; /* head h's output overwrites its query (read before written) */
    double scale = 1.0 / sqrt((double)hd);
    for (int h = 0; h < nh; h++) {
        const float *q = qg + (size_t)h * 2 * hd, *gate = q + hd;
        int j = h / (nh / nkv);
        double mx = -INFINITY, sum = 0.0;
        for (int t = 0; t <= pos; t++) {
            att[t] = (float)(dot(q, K_ROW(s, l, t) + (size_t)j * hd, hd) * scale);
            mx = att[t] > mx ? att[t] : mx;
        }
        for (int t = 0; t <= pos; t++)
            sum += exp(att[t] - mx);
        double acc[GA_HYB_MAX_HEAD_DIM] = {0};
        float *row = NULL; /* this query's block row of the map, weighted as a block mean */
        double map_w = 0.0;
        if (rec && rec->map && (rec->head < 0 || rec->head == h)) {
            int bi = ga_pool_bin(pos, rec->T, rec->res);
            int cnt = block_start(bi + 1, rec->T, rec->res) - block_start(bi, rec->T, rec->res);
            row = rec->map + (size_t)bi * rec->res;
            map_w = 1.0 / cnt / (rec->head < 0 ? nh : 1);
        }
        for (int t = 0; t <= pos; t++) {
            double p = exp(att[t] - mx) / sum;
            if (row) row[ga_pool_bin(t, rec->T, rec->res)] += (float)(p * map_w);
            if (rec && t == 0 && pos > 0) rec->first += p;
            const float *vt = V_ROW(s, l, t) + (size_t)j * hd;
            for (int d = 0; d < hd; d++)
                acc[d] += p * vt[d];
        }
        float gv[GA_HYB_MAX_HEAD_DIM];
        for (int d = 0; d < hd; d++)
            gv[d] = sigmoidf_(gate[d]);
        if (rec) {
            for (int d = 0; d < hd; d++) {
                rec->gate_sum += gv[d];
                rec->gate_below += gv[d] < GA_HYB_GATE_LOW;
            }
            rec->gate_n += (size_t)hd;
        }
        for (int d = 0; d < hd; d++)
            o[(size_t)h * hd + d] = (float)acc[d] * gv[d];
    }
    matvec(out, w->o, o, nh * hd, H);
}

/* Gated DeltaNet of one token (Qwen3NextGatedDeltaNet.forward, recurrent branch; Qwen3.5's
 * split projections from Qwen3_5GatedDeltaNet). buf: 2 * conv_dim + 2 * value_dim + 2 * Hv. */
static void gdn_token(const ga_config *c, const ga_hyb_gdn_w *w, ga_hyb_state *s, int l,
                      const float *x, float *out, float *buf) {
    const ga_hybrid_config *hc = &c->hybrid;
    int H = c->hidden_size, Hk = hc->linear_num_key_heads, Hv = hc->linear_num_value_heads;
    int dk = hc->linear_key_head_dim, dv = hc->linear_value_head_dim, r = Hv / Hk;
    int kd = Hk * dk, vd = Hv * dv, cd = 2 * kd + vd;
    float *mix = buf, *qkv = mix + cd, *z = qkv + cd, *b = z + vd, *a = b + Hv, *o = a + Hv;
    if (w->in_qkv) {
        matvec(mix, w->in_qkv, x, H, cd);
        matvec(z, w->in_z, x, H, vd);
        matvec(b, w->in_b, x, H, Hv);
        matvec(a, w->in_a, x, H, Hv);
    } else {
        /* fix_query_key_value_ordering: rows grouped per key head as [q | k | v_r | z_r] and
         * [b_r | a_r]; ungroup into [q | k | v] (heads contiguous), z, b, a. qkv is free here. */
        int gq = 2 * dk + 2 * r * dv;
        float *grp = qkv; /* needs Hk * gq = cd + vd floats: qkv and z, both free yet */
        matvec(grp, w->in_qkvz, x, H, Hk * gq);
        for (int h = 0; h < Hk; h++) {
            const float *g = grp + (size_t)h * gq;
            memcpy(mix + h * dk, g, (size_t)dk * sizeof *g);
            memcpy(mix + kd + h * dk, g + dk, (size_t)dk * sizeof *g);
            memcpy(mix + 2 * kd + (size_t)h * r * dv, g + 2 * dk, (size_t)r * dv * sizeof *g);
        }
        for (int h = 0; h < Hk; h++) /* z last: its slot overlaps the groups of lower heads */
            memmove(z + (size_t)h * r * dv, grp + (size_t)h * gq + 2 * dk + r * dv,
                    (size_t)r * dv * sizeof *z);
        float ba[2 * GA_HYB_MAX_HEADS];
        matvec(ba, w->in_ba, x, H, 2 * Hv);
        for (int h = 0; h < Hk; h++)
            for (int j = 0; j < r; j++) {
                b[h * r + j] = ba[h * 2 * r + j];
                a[h * r + j] = ba[h * 2 * r + r + j];
            }
    }
    ga_hyb_conv_step(qkv, mix, s->conv[l], w->conv, cd, hc->linear_conv_kernel_dim);
    float qscale = (float)(1.0 / sqrt((double)dk));
    for (int h = 0; h < Hk; h++) {
        l2norm(qkv + h * dk, dk);
        l2norm(qkv + kd + h * dk, dk);
        for (int i = 0; i < dk; i++)
            qkv[h * dk + i] *= qscale;
    }
    for (int h = 0; h < Hv; h++) {
        int hk = h / r; /* repeat_interleave: value heads h*r .. h*r+r-1 share key head h */
        double g = -exp((double)w->A_log[h]) * softplus_((double)a[h] + w->dt_bias[h]);
        float *oh = o + (size_t)h * dv;
        ga_hyb_delta_step(s->rec[l] + (size_t)h * dk * dv, oh, qkv + hk * dk, qkv + kd + hk * dk,
                          qkv + 2 * kd + (size_t)h * dv, (float)g, sigmoidf_(b[h]), dk, dv);
        ga_hyb_gated_rmsnorm(oh, oh, z + (size_t)h * dv, w->norm, dv, c->rms_norm_eps);
    }
    matvec(out, w->out, o, vd, H);
}

static bool layer_linear(const ga_config *c, int l) {
    return c->hybrid.layer_is_linear[l] != 0;
}

ga_status ga_hyb_check(const ga_config *c, ga_err *err) {
    const ga_hybrid_config *hc = &c->hybrid;
    if (c->arch == GA_ARCH_QWEN3)
        return ga_err_set(err, GA_ERR_UNSUPPORTED, "hybrid forward: not a hybrid config (qwen3)");
    if (c->attention_bias || c->o_bias)
        return ga_err_set(err, GA_ERR_UNSUPPORTED, "hybrid forward: attention biases");
    /* q_proj then has n_heads * head_dim rows, no gate half: every released hybrid is gated */
    if (!hc->attn_output_gate)
        return ga_err_set(err, GA_ERR_UNSUPPORTED,
                          "hybrid forward: attn_output_gate false (no output gate) is not "
                          "supported");
    if (c->head_dim > GA_HYB_MAX_HEAD_DIM || c->hybrid.rotary_dim > c->head_dim ||
        c->hybrid.rotary_dim % 2 || c->n_kv_heads <= 0 || c->n_heads % c->n_kv_heads)
        return ga_err_set(err, GA_ERR_UNSUPPORTED, "hybrid forward: head_dim %d / rotary_dim %d",
                          c->head_dim, hc->rotary_dim);
    if (hc->n_linear_layers > 0 &&
        (hc->linear_num_key_heads <= 0 || hc->linear_num_value_heads % hc->linear_num_key_heads ||
         hc->linear_num_value_heads > GA_HYB_MAX_HEADS || hc->linear_conv_kernel_dim < 1))
        return ga_err_set(err, GA_ERR_UNSUPPORTED,
                          "hybrid forward: linear heads %d key / %d value, conv kernel %d",
                          hc->linear_num_key_heads, hc->linear_num_value_heads,
                          hc->linear_conv_kernel_dim);
    if (hc->n_moe_layers > 0 &&
        (hc->num_experts_per_tok < 1 || hc->num_experts_per_tok > hc->num_experts ||
         hc->num_experts_per_tok > GA_HYB_MAX_TOPK))
        return ga_err_set(err, GA_ERR_UNSUPPORTED, "hybrid forward: top-%d of %d experts",
                          hc->num_experts_per_tok, hc->num_experts);
    return GA_OK;
}

void ga_hyb_state_free(ga_hyb_state *s) {
    if (!s) return;
    for (int l = 0; l < s->n_layers; l++) {
        free(s->conv[l]);
        free(s->rec[l]);
        free(s->k[l]);
        free(s->v[l]);
    }
    free(s->conv);
    free(s->rec);
    free(s->k);
    free(s->v);
    free(s->full_idx);
    free(s);
}

static ga_status state_create(const ga_config *c, int max_seq, bool paged, ga_hyb_state **out,
                              ga_err *err) {
    *out = NULL;
    ga_status st = ga_hyb_check(c, err);
    if (st) return st;
    if (max_seq < 1) return ga_err_set(err, GA_ERR_ARG, "hybrid state: max_seq %d", max_seq);
    const ga_hybrid_config *hc = &c->hybrid;
    ga_hyb_state *s = calloc(1, sizeof *s);
    if (!s) return ga_err_set(err, GA_ERR_OOM, "hybrid state");
    int L = c->n_layers;
    s->n_layers = L;
    s->max_seq = max_seq;
    s->conv_n = (size_t)(2 * hc->linear_num_key_heads * hc->linear_key_head_dim +
                         hc->linear_num_value_heads * hc->linear_value_head_dim) *
                (size_t)(hc->linear_conv_kernel_dim - 1);
    s->rec_n =
        (size_t)hc->linear_num_value_heads * hc->linear_key_head_dim * hc->linear_value_head_dim;
    s->row = (size_t)c->n_kv_heads * c->head_dim;
    s->kv_n = (size_t)max_seq * s->row;
    s->paged = paged;
    s->conv = calloc((size_t)L, sizeof *s->conv);
    s->rec = calloc((size_t)L, sizeof *s->rec);
    s->k = calloc((size_t)L, sizeof *s->k);
    s->v = calloc((size_t)L, sizeof *s->v);
    s->full_idx = calloc((size_t)L, sizeof *s->full_idx);
    bool ok = s->conv && s->rec && s->k && s->v && s->full_idx;
    for (int l = 0, full = 0; ok && l < L; l++) {
        if (layer_linear(c, l)) {
            s->conv[l] = calloc(s->conv_n + 1, sizeof(float));
            s->rec[l] = calloc(s->rec_n, sizeof(float));
            ok = s->conv[l] && s->rec[l];
        } else if (paged) {
            s->full_idx[l] = full++;
        } else {
            s->k[l] = calloc(s->kv_n, sizeof(float));
            s->v[l] = calloc(s->kv_n, sizeof(float));
            ok = s->k[l] && s->v[l];
        }
    }
    if (!ok) {
        ga_hyb_state_free(s);
        return ga_err_set(err, GA_ERR_OOM, "hybrid state: %d layers, max_seq %d", L, max_seq);
    }
    *out = s;
    return GA_OK;
}

ga_status ga_hyb_state_create(const ga_config *c, int max_seq, ga_hyb_state **out, ga_err *err) {
    return state_create(c, max_seq, false, out, err);
}

ga_status ga_hyb_state_create_paged(const ga_config *c, int max_seq, ga_hyb_state **out,
                                    ga_err *err) {
    return state_create(c, max_seq, true, out, err);
}

int ga_hyb_full_layers(const ga_config *c) {
    int n = 0;
    for (int l = 0; l < c->n_layers; l++)
        n += !layer_linear(c, l);
    return n;
}

size_t ga_hyb_block_floats(const ga_config *c, int block_size) {
    return (size_t)ga_hyb_full_layers(c) * block_size * c->n_kv_heads * c->head_dim;
}

size_t ga_hyb_state_fixed_bytes(const ga_config *c) {
    const ga_hybrid_config *hc = &c->hybrid;
    size_t conv = (size_t)(2 * hc->linear_num_key_heads * hc->linear_key_head_dim +
                           hc->linear_num_value_heads * hc->linear_value_head_dim) *
                  (size_t)(hc->linear_conv_kernel_dim - 1);
    size_t rec =
        (size_t)hc->linear_num_value_heads * hc->linear_key_head_dim * hc->linear_value_head_dim;
    return (size_t)hc->n_linear_layers * (conv + rec) * sizeof(float);
}

void ga_hyb_state_page(ga_hyb_state *s, float *k_pool, float *v_pool, const int32_t *table,
                       int block_size) {
    if (!s->paged) return;
    size_t full = 0;
    for (int l = 0; l < s->n_layers; l++)
        full += s->conv[l] == NULL;
    s->pk = k_pool;
    s->pv = v_pool;
    s->table = table;
    s->block_size = block_size;
    s->block_pitch = full * (size_t)block_size * s->row;
}

void ga_hyb_state_reset(ga_hyb_state *s) {
    for (int l = 0; l < s->n_layers; l++) {
        if (s->conv[l]) memset(s->conv[l], 0, s->conv_n * sizeof(float));
        if (s->rec[l]) memset(s->rec[l], 0, s->rec_n * sizeof(float));
    }
    s->pos = 0;
}

int ga_hyb_state_pos(const ga_hyb_state *s) {
    return s->pos;
}

ga_status ga_hyb_forward(const ga_config *c, const ga_hyb_weights *w, ga_hyb_state *s,
                         const int32_t *tokens, int T, float *logits, ga_err *err) {
    return ga_hyb_forward_capture(c, w, s, tokens, T, logits, NULL, err);
}

ga_status ga_hyb_forward_capture(const ga_config *c, const ga_hyb_weights *w, ga_hyb_state *s,
                                 const int32_t *tokens, int T, float *logits, ga_attn_capture *cap,
                                 ga_err *err) {
    ga_status st = ga_hyb_check(c, err);
    if (st) return st;
    if (cap && (s->pos != 0 || cap->n_tokens != T || !cap->maps || !cap->metrics ||
                cap->n_layers_alloc != c->n_layers))
        return ga_err_set(err, GA_ERR_ARG,
                          "hybrid forward: an attention capture needs a prepared capture of %d "
                          "layers and a prefill from position 0 (at %d, %d tokens)",
                          c->n_layers, s->pos, T);
    if (s->paged && (!s->table || !s->pk || !s->pv || s->block_size < 1))
        return ga_err_set(err, GA_ERR_ARG,
                          "hybrid forward: a paged state without its blocks (ga_hyb_state_page)");
    if (T < 1 || T > s->max_seq - s->pos)
        return ga_err_set(err, GA_ERR_ARG, "hybrid forward: %d tokens at position %d (room %d)", T,
                          s->pos, s->max_seq - s->pos);
    for (int t = 0; t < T; t++)
        if (tokens[t] < 0 || tokens[t] >= c->vocab_size)
            return ga_err_set(err, GA_ERR_ARG, "hybrid forward: token %d is %d, vocab %d", t,
                              (int)tokens[t], c->vocab_size);
    const ga_hybrid_config *hc = &c->hybrid;
    int H = c->hidden_size;
    size_t cd = (size_t)2 * hc->linear_num_key_heads * hc->linear_key_head_dim +
                (size_t)hc->linear_num_value_heads * hc->linear_value_head_dim;
    size_t nbuf = 2 * (size_t)c->n_heads * c->head_dim + (size_t)s->max_seq;
    size_t gbuf = 4 * cd + 2 * (size_t)hc->linear_num_value_heads;
    size_t mbuf = 2 * (size_t)c->intermediate_size + (hc->moe ? ga_hyb_moe_scratch(c) : 0);
    nbuf = nbuf > gbuf ? nbuf : gbuf;
    nbuf = nbuf > mbuf ? nbuf : mbuf;
    float *x = malloc((size_t)T * H * sizeof *x), *hn = malloc((size_t)H * sizeof *hn);
    float *y = malloc((size_t)H * sizeof *y), *buf = malloc(nbuf * sizeof *buf);
    if (!x || !hn || !y || !buf) {
        free(x), free(hn), free(y), free(buf);
        return ga_err_set(err, GA_ERR_OOM, "hybrid forward: %d tokens", T);
    }
    for (int t = 0; t < T; t++)
        memcpy(x + (size_t)t * H, w->embed + (size_t)tokens[t] * H, (size_t)H * sizeof *x);
    int pos0 = s->pos;
    for (int l = 0; l < c->n_layers; l++) {
        const ga_hyb_layer_w *lw = &w->layer[l];
        attn_rec rec = {0}, *rp = NULL;
        if (cap && layer_linear(c, l)) { /* no softmax, so no map: NULL map, NaN metrics */
            free(cap->maps[l]);
            cap->maps[l] = NULL;
        } else if (cap) {
            rec = (attn_rec){.map = cap->maps[l], .res = cap->res, .T = T, .head = cap->head};
            rp = &rec;
        }
        for (int t = 0; t < T; t++) { /* Qwen3NextDecoderLayer.forward */
            float *xt = x + (size_t)t * H;
            s->pos = pos0 + t;
            ga_hyb_rmsnorm_zc(hn, xt, lw->input_norm, H, c->rms_norm_eps);
            if (layer_linear(c, l))
                gdn_token(c, &lw->gdn, s, l, hn, y, buf);
            else
                attn_token(c, &lw->attn, s, l, hn, y, buf, rp);
            for (int i = 0; i < H; i++)
                xt[i] += y[i];
            ga_hyb_rmsnorm_zc(hn, xt, lw->post_norm, H, c->rms_norm_eps);
            if (hc->layer_is_moe[l])
                ga_hyb_moe(c, &lw->moe, hn, y, buf);
            else
                swiglu(&lw->mlp, hn, y, buf, H, c->intermediate_size);
            for (int i = 0; i < H; i++)
                xt[i] += y[i];
        }
        if (rp) {
            ga_layer_metrics *mt = &cap->metrics[l];
            mt->first_token_share = T > 1 ? rec.first / ((double)c->n_heads * (T - 1)) : NAN;
            mt->gate_mean = rec.gate_n ? rec.gate_sum / (double)rec.gate_n : NAN;
            mt->gate_below_0_1 = rec.gate_n ? (double)rec.gate_below / (double)rec.gate_n : NAN;
        }
    }
    const float *head = w->lm_head ? w->lm_head : w->embed;
    for (int t = 0; t < T; t++) {
        ga_hyb_rmsnorm_zc(hn, x + (size_t)t * H, w->final_norm, H, c->rms_norm_eps);
        matvec(logits + (size_t)t * c->vocab_size, head, hn, H, c->vocab_size);
    }
    s->pos = pos0 + T;
    free(x), free(hn), free(y), free(buf);
    return GA_OK;
}
