/*
 * The hybrid families' tensors (Qwen3-Next, Qwen3.5, Qwen3.6; issue 15): one list naming
 * every text weight with its shape (model.* or, in the vision-language folders,
 * model.language_model.*), used to bind a folder by name and shape (expected-versus-found
 * errors naming the tensor and its file), to write random models and to build in-memory ones.
 * model.visual.* and mtp.* are never looked at. The safetensors reader has already checked every
 * byte span and limited dtypes to F32/F16/BF16 (anything else, FP8 included, fails there naming
 * the tensor); the backends convert whatever of those three a tensor holds.
 *
 * Shapes (out x in for Linear, as transformers 5.17 stores them), with Hk/Hv DeltaNet key/value
 * heads, key = Hk*d_k, val = Hv*d_v, conv_dim = 2*key + val:
 *   self_attn.q_proj (n_heads*2*head_dim, H) per head [query | gate]; k/v_proj (n_kv*hd, H);
 *   o_proj (H, n_heads*hd); q_norm/k_norm (hd)
 *   linear_attn: Qwen3.5 in_proj_qkv (conv_dim, H), in_proj_z (val, H), in_proj_b/a (Hv, H);
 *   Qwen3-Next in_proj_qkvz (2*key + 2*val, H), in_proj_ba (2*Hv, H) grouped per key head;
 *   conv1d.weight (conv_dim, 1, K); dt_bias, A_log (Hv); norm.weight (d_v); out_proj (H, val)
 *   mlp (dense): gate/up_proj (I, H), down_proj (H, I)
 *   mlp (MoE): gate.weight (E, H); experts.N.{gate,up}_proj (Ie, H), down_proj (H, Ie) or packed
 *   experts.gate_up_proj (E, 2*Ie, H) [gate rows | up rows] and experts.down_proj (E, H, Ie);
 *   shared_expert.{gate,up,down}_proj (Is wide) and shared_expert_gate.weight (1, H) when Is > 0
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

const char *ga_model_hyb_prefix(const ga_config *c) {
    return c->hybrid.vl_wrapper ? "model.language_model." : "model.";
}

typedef struct hyb_walk {
    ga_tensor_visit_fn fn; /* called for every tensor (check or create) */
    void *ctx;
    ga_model *bind; /* non-NULL: store each found tensor in its slot */
    bool packed;    /* experts as two 3-D tensors per layer */
} hyb_walk;

static ga_status one(hyb_walk *w, const ga_tensor **slot, const char *name, int nd,
                     const int64_t *shape, ga_err *err) {
    ga_status st = w->fn(w->ctx, name, nd, shape, err);
    if (!st && w->bind && slot) *slot = ga_store_find(w->bind->store, name);
    return st;
}

static ga_status walk(const ga_config *c, hyb_walk *w, ga_err *err) {
    const ga_hybrid_config *h = &c->hybrid;
    const char *pre = ga_model_hyb_prefix(c);
    char name[192];
    int64_t H = c->hidden_size, hd = c->head_dim, V = c->vocab_size;
    int64_t key = (int64_t)h->linear_num_key_heads * h->linear_key_head_dim;
    int64_t val = (int64_t)h->linear_num_value_heads * h->linear_value_head_dim;
    int64_t Hv = h->linear_num_value_heads, conv_dim = 2 * key + val;
    int64_t q_rows = (int64_t)c->n_heads * hd * (h->attn_output_gate ? 2 : 1);
    int64_t kv = (int64_t)c->n_kv_heads * hd, o_in = (int64_t)c->n_heads * hd;
    int64_t E = h->num_experts, Ie = h->moe_intermediate_size;
    int64_t Is = h->shared_expert_intermediate_size, I = c->intermediate_size;
    bool fused = c->arch == GA_ARCH_QWEN3_NEXT;
    ga_model *m = w->bind;
    ga_status st;
#define T(slot, nd, ...)                                                                           \
    do {                                                                                           \
        int64_t shp_[] = {__VA_ARGS__};                                                            \
        if ((st = one(w, slot, name, nd, shp_, err))) return st;                                   \
    } while (0)
#define N(...) snprintf(name, sizeof name, __VA_ARGS__)
    N("%sembed_tokens.weight", pre);
    T(m ? &m->embed : NULL, 2, V, H);
    for (int l = 0; l < c->n_layers; l++) {
        ga_hyb_layer_t *L = m ? &m->hyb[l] : NULL;
#define S(field) (L ? &L->field : NULL)
#define LN(suffix) N("%slayers.%d.%s", pre, l, suffix)
        LN("input_layernorm.weight");
        T(S(input_norm), 1, H);
        if (h->layer_is_linear[l]) {
            if (fused) {
                LN("linear_attn.in_proj_qkvz.weight");
                T(S(in_qkvz), 2, 2 * key + 2 * val, H);
                LN("linear_attn.in_proj_ba.weight");
                T(S(in_ba), 2, 2 * Hv, H);
            } else {
                LN("linear_attn.in_proj_qkv.weight");
                T(S(in_qkv), 2, conv_dim, H);
                LN("linear_attn.in_proj_z.weight");
                T(S(in_z), 2, val, H);
                LN("linear_attn.in_proj_b.weight");
                T(S(in_b), 2, Hv, H);
                LN("linear_attn.in_proj_a.weight");
                T(S(in_a), 2, Hv, H);
            }
            LN("linear_attn.conv1d.weight");
            T(S(conv), 3, conv_dim, 1, h->linear_conv_kernel_dim);
            LN("linear_attn.dt_bias");
            T(S(dt_bias), 1, Hv);
            LN("linear_attn.A_log");
            T(S(A_log), 1, Hv);
            LN("linear_attn.norm.weight");
            T(S(norm), 1, h->linear_value_head_dim);
            LN("linear_attn.out_proj.weight");
            T(S(out), 2, H, val);
        } else {
            LN("self_attn.q_proj.weight");
            T(S(q), 2, q_rows, H);
            LN("self_attn.k_proj.weight");
            T(S(k), 2, kv, H);
            LN("self_attn.v_proj.weight");
            T(S(v), 2, kv, H);
            LN("self_attn.o_proj.weight");
            T(S(o), 2, H, o_in);
            LN("self_attn.q_norm.weight");
            T(S(q_norm), 1, hd);
            LN("self_attn.k_norm.weight");
            T(S(k_norm), 1, hd);
        }
        LN("post_attention_layernorm.weight");
        T(S(post_norm), 1, H);
        if (h->moe && h->layer_is_moe[l]) {
            LN("mlp.gate.weight");
            T(S(router), 2, E, H);
            if (w->packed) {
                LN("mlp.experts.gate_up_proj");
                T(S(exp_gate_up), 3, E, 2 * Ie, H);
                LN("mlp.experts.down_proj");
                T(S(exp_down), 3, E, H, Ie);
            } else {
                for (int e = 0; e < E; e++) {
                    const ga_tensor **x = L ? &L->experts[3 * e] : NULL;
                    N("%slayers.%d.mlp.experts.%d.gate_proj.weight", pre, l, e);
                    T(x, 2, Ie, H);
                    N("%slayers.%d.mlp.experts.%d.up_proj.weight", pre, l, e);
                    T(x ? x + 1 : NULL, 2, Ie, H);
                    N("%slayers.%d.mlp.experts.%d.down_proj.weight", pre, l, e);
                    T(x ? x + 2 : NULL, 2, H, Ie);
                }
            }
            if (Is > 0) {
                LN("mlp.shared_expert.gate_proj.weight");
                T(S(sh_gate), 2, Is, H);
                LN("mlp.shared_expert.up_proj.weight");
                T(S(sh_up), 2, Is, H);
                LN("mlp.shared_expert.down_proj.weight");
                T(S(sh_down), 2, H, Is);
                LN("mlp.shared_expert_gate.weight");
                T(S(sh_scale), 2, 1, H);
            }
        } else {
            LN("mlp.gate_proj.weight");
            T(S(gate), 2, I, H);
            LN("mlp.up_proj.weight");
            T(S(up), 2, I, H);
            LN("mlp.down_proj.weight");
            T(S(down), 2, H, I);
        }
#undef LN
#undef S
    }
    N("%snorm.weight", pre);
    T(m ? &m->final_norm : NULL, 1, H);
    if (!c->tie_word_embeddings) {
        N("lm_head.weight");
        T(m ? &m->lm_head : NULL, 2, V, H);
    }
#undef N
#undef T
    return GA_OK;
}

ga_status ga_model_hyb_visit(const ga_config *c, ga_tensor_visit_fn fn, void *ctx, ga_err *err) {
    hyb_walk w = {fn, ctx, NULL, false};
    return walk(c, &w, err);
}

typedef struct check_ctx {
    const ga_store *store;
    const char *where;
} check_ctx;

static ga_status check_one(void *vctx, const char *name, int ndim, const int64_t *shape,
                           ga_err *err) {
    check_ctx *c = vctx;
    ga_status st = GA_OK;
    ga_model_expect(c->store, c->where, name, ndim, shape, err, &st);
    return st;
}

/* The layout of the experts: packed when the first MoE layer has mlp.experts.gate_up_proj. */
static bool experts_packed(const ga_model *m) {
    const ga_config *c = &m->cfg;
    for (int l = 0; l < c->n_layers; l++) {
        if (!(c->hybrid.moe && c->hybrid.layer_is_moe[l])) continue;
        char name[192];
        snprintf(name, sizeof name, "%slayers.%d.mlp.experts.gate_up_proj", ga_model_hyb_prefix(c),
                 l);
        return ga_store_find(m->store, name) != NULL;
    }
    return false;
}

ga_status ga_model_hyb_bind(ga_model *m, ga_err *err) {
    const ga_config *c = &m->cfg;
    free(m->hyb);
    free(m->hyb_experts);
    m->hyb_experts = NULL;
    m->hyb = calloc((size_t)c->n_layers, sizeof *m->hyb);
    if (!m->hyb) return ga_err_set(err, GA_ERR_OOM, "out of memory");
    hyb_walk w = {check_one, NULL, m, experts_packed(m)};
    if (c->hybrid.moe && c->hybrid.n_moe_layers && !w.packed) {
        size_t per = 3 * (size_t)c->hybrid.num_experts;
        m->hyb_experts = calloc(per * c->hybrid.n_moe_layers, sizeof *m->hyb_experts);
        if (!m->hyb_experts) return ga_err_set(err, GA_ERR_OOM, "out of memory");
        int k = 0;
        for (int l = 0; l < c->n_layers; l++)
            if (c->hybrid.layer_is_moe[l]) m->hyb[l].experts = m->hyb_experts + per * k++;
    }
    check_ctx cc = {m->store, m->dir ? m->dir : "<memory>"};
    w.ctx = &cc;
    ga_status st = walk(c, &w, err);
    if (st) return st;
    if (c->tie_word_embeddings) m->lm_head = m->embed;
    return GA_OK;
}
