/*
 * config.json of the hybrid Qwen families (issue 15): Qwen3-Next, Qwen3.5 and Qwen3.6 (dense and
 * MoE). This file owns recognising them by model_type, reading the fields they add to a Qwen3
 * config, their parameter count, and the refusal to run them (no forward pass yet).
 *
 * The fields, their meaning and their defaults as transformers 5.17 has them
 * (models/qwen3_next/configuration_qwen3_next.py: Qwen3NextConfig;
 *  models/qwen3_5/configuration_qwen3_5.py: Qwen3_5TextConfig, Qwen3_5Config;
 *  models/qwen3_5_moe/configuration_qwen3_5_moe.py: Qwen3_5MoeTextConfig, Qwen3_5MoeConfig):
 *
 *  model_type             "qwen3_next" (top-level text model); "qwen3_5" / "qwen3_5_moe" are
 *                         the vision-language wrappers (Qwen3_5Config, Qwen3_5MoeConfig) whose
 *                         text model sits in "text_config" ("qwen3_5_text", "qwen3_5_moe_text",
 *                         also accepted at the top level). Their tie_word_embeddings (default
 *                         false) is the wrapper's; vision_config and the image/video token ids
 *                         are the vision tower's and are not read.
 *  layer_types            one of "linear_attention" / "full_attention" per layer. Absent: built
 *                         from full_attention_interval (default 4): layer l (from 0) is full
 *                         attention when (l + 1) % interval == 0, so "3 linear : 1 full".
 *  linear_conv_kernel_dim 4: the depthwise causal conv1d over [q | k | v] of a DeltaNet layer.
 *  linear_num_key_heads   16, linear_num_value_heads 32: q/k heads and v heads of the DeltaNet;
 *                         each key head serves value_heads / key_heads value heads.
 *  linear_key_head_dim    128, linear_value_head_dim 128: d_k and d_v (state d_k x d_v per
 *                         value head).
 *  head_dim               256 (not hidden / heads as in Qwen3Config): full-attention head size;
 *                         q_proj gives 2 * head_dim rows per query head (query, then gate).
 *  attn_output_gate       Qwen3.5 configs write it (true); Qwen3-Next has no field and is always
 *                         gated. The gate is elementwise sigmoid on the attention output.
 *  partial_rotary_factor  0.25 (set in __post_init__ when absent): RoPE covers the first
 *                         int(head_dim * factor) dimensions of q and k, rotate-half within them.
 *                         Qwen3-Next writes it at the top, Qwen3.5 inside rope_parameters.
 *                         When both are present rope_parameters wins: transformers 5.x's
 *                         rotary embedding reads only rope_parameters, and its configs save
 *                         the class default (0.25) at the top beside a different value
 *                         inside (a Qwen3_5TextConfig made with 0.5 in rope_parameters writes
 *                         both; its logits use 0.5: tests/fixtures_hybrid).
 *  rope_parameters        rope_type "default", rope_theta (10000000 in the released folders);
 *                         Qwen3.5 adds mrope_section ([11, 11, 10]: rotary pairs per t/h/w
 *                         position stream, summing to rotary_dim / 2) and mrope_interleaved.
 *                         For text input all three streams carry the token position, so the
 *                         multimodal RoPE equals ordinary RoPE: gattn supports text input only.
 *  num_experts            Qwen3-Next 512, Qwen3.5-MoE 256: routed experts per MoE block.
 *  num_experts_per_tok    10 / 8: top-k of the softmax router.
 *  moe_intermediate_size  512: each expert's SwiGLU width.
 *  shared_expert_intermediate_size 512: the shared expert's width, scaled by
 *                         sigmoid(shared_expert_gate(x)).
 *  norm_topk_prob         Qwen3-Next true (renormalise the top-k weights to sum 1).
 *                         Qwen3_5MoeTextConfig has no such field; it is read when present and
 *                         taken as true otherwise (to be confirmed by the transformers fixtures).
 *  decoder_sparse_step    Qwen3-Next 1: layer l has an MoE block when (l + 1) % step == 0 and l
 *                         is not in mlp_only_layers (default []), a dense SwiGLU of
 *                         intermediate_size (5120 in Qwen3-Next-80B-A3B) otherwise. Qwen3.5-MoE
 *                         has neither field: every layer is MoE and there is no
 *                         intermediate_size.
 *  mtp_num_hidden_layers  the multi-token-prediction head (mtp.* tensors), not used for
 *                         ordinary decoding and ignored.
 *  RMSNorm                implied by the model type: every decoder norm (input, post-attention,
 *                         final, q/k) is zero-centred, x * rsqrt(mean(x^2) + eps) * (1 + w); the
 *                         DeltaNet output norm is the plain gated one, w * norm(o) * silu(z).
 */
#include <math.h>
#include <string.h>

#include "config_internal.h"

static const struct {
    const char *name;
    ga_arch arch;
    bool wrapper;
} k_types[] = {
    {"qwen3", GA_ARCH_QWEN3, false},
    {"qwen3_next", GA_ARCH_QWEN3_NEXT, false},
    {"qwen3_5", GA_ARCH_QWEN3_5, true},
    {"qwen3_5_text", GA_ARCH_QWEN3_5, false},
    {"qwen3_5_moe", GA_ARCH_QWEN3_5_MOE, true},
    {"qwen3_5_moe_text", GA_ARCH_QWEN3_5_MOE, false},
};
#define N_TYPES (sizeof k_types / sizeof k_types[0])
#define TYPE_LIST "qwen3, qwen3_next, qwen3_5, qwen3_5_text, qwen3_5_moe, qwen3_5_moe_text"

const char *ga_arch_name(ga_arch a) {
    switch (a) {
    case GA_ARCH_QWEN3:
        return "qwen3";
    case GA_ARCH_QWEN3_NEXT:
        return "qwen3_next";
    case GA_ARCH_QWEN3_5:
        return "qwen3_5";
    case GA_ARCH_QWEN3_5_MOE:
        return "qwen3_5_moe";
    }
    return "?";
}

/* model_type of obj: NULL when absent, "" (and an error) when not a string. */
static ga_status type_of(cfg_ctx *c, const cJSON *obj, const char *field, const char **out) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, "model_type");
    *out = NULL;
    if (!it || cJSON_IsNull(it)) return GA_OK;
    if (!cJSON_IsString(it))
        return ga_err_set(c->err, GA_ERR_FORMAT, "%s: \"%s\" must be a string", c->path, field);
    *out = it->valuestring;
    return GA_OK;
}

ga_status ga_cfg_arch(cfg_ctx *c, ga_arch *arch, const cJSON **text) {
    const char *mt;
    ga_status st = type_of(c, c->root, "model_type", &mt);
    *arch = GA_ARCH_QWEN3;
    *text = c->root;
    if (st || !mt) return st; /* no model_type: a Qwen3 config, as gattn has always read them */
    size_t i = 0;
    while (i < N_TYPES && strcmp(mt, k_types[i].name) != 0)
        i++;
    if (i == N_TYPES)
        return ga_err_set(c->err, GA_ERR_UNSUPPORTED,
                          "%s: model_type \"%s\" is not supported (" TYPE_LIST ")", c->path, mt);
    *arch = k_types[i].arch;
    if (!k_types[i].wrapper) return GA_OK;
    const cJSON *tc = cJSON_GetObjectItemCaseSensitive(c->root, "text_config");
    if (!tc || cJSON_IsNull(tc))
        return ga_err_set(c->err, GA_ERR_FORMAT,
                          "%s: missing required field \"text_config\" (model_type \"%s\")", c->path,
                          mt);
    if (!cJSON_IsObject(tc))
        return ga_err_set(c->err, GA_ERR_FORMAT, "%s: \"text_config\" must be an object", c->path);
    /* The nested model_type must name the same family (some folders repeat the wrapper's). */
    const char *inner;
    if ((st = type_of(c, tc, "text_config.model_type", &inner))) return st;
    if (inner) {
        size_t j = 0;
        while (j < N_TYPES && strcmp(inner, k_types[j].name) != 0)
            j++;
        if (j == N_TYPES || k_types[j].arch != *arch)
            return ga_err_set(c->err, GA_ERR_FORMAT,
                              "%s: text_config.model_type \"%s\" does not belong to model_type "
                              "\"%s\"",
                              c->path, inner, mt);
    }
    *text = tc;
    return GA_OK;
}

/* layer_types, or the pattern full_attention_interval implies. */
static ga_status layer_pattern(cfg_ctx *c, ga_config *g) {
    ga_hybrid_config *h = &g->hybrid;
    const cJSON *lt = cJSON_GetObjectItemCaseSensitive(c->root, "layer_types");
    int interval = 0;
    ga_status st = ga_cfg_int(c, "full_attention_interval", false, 4, 1, MAX_LAYERS, &interval);
    if (st) return st;
    if (!lt || cJSON_IsNull(lt)) {
        for (int l = 0; l < g->n_layers; l++)
            h->layer_is_linear[l] = (l + 1) % interval != 0;
    } else {
        if (!cJSON_IsArray(lt))
            return ga_err_set(c->err, GA_ERR_FORMAT, "%s: \"layer_types\" must be a list", c->path);
        int n = cJSON_GetArraySize(lt);
        if (n != g->n_layers)
            return ga_err_set(c->err, GA_ERR_FORMAT,
                              "%s: \"layer_types\" lists %d layers, num_hidden_layers is %d",
                              c->path, n, g->n_layers);
        int l = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, lt) {
            const char *s = cJSON_IsString(e) ? e->valuestring : NULL;
            if (s && !strcmp(s, "linear_attention"))
                h->layer_is_linear[l] = 1;
            else if (s && !strcmp(s, "full_attention"))
                h->layer_is_linear[l] = 0;
            else
                return ga_err_set(c->err, GA_ERR_FORMAT,
                                  "%s: \"layer_types[%d]\" must be \"linear_attention\" or "
                                  "\"full_attention\"",
                                  c->path, l);
            l++;
        }
    }
    /* The interval the pattern follows, for `gattn info` ("3 linear : 1 full"); 0 if none. */
    h->n_linear_layers = 0;
    for (int l = 0; l < g->n_layers; l++)
        h->n_linear_layers += h->layer_is_linear[l];
    h->full_attention_interval = 0;
    for (int k = 1; k <= g->n_layers && !h->full_attention_interval; k++) {
        bool same = true;
        for (int l = 0; same && l < g->n_layers; l++)
            same = h->layer_is_linear[l] == ((l + 1) % k != 0);
        if (same) h->full_attention_interval = k;
    }
    return GA_OK;
}

/* partial_rotary_factor (rope_parameters, else the top level) and the multimodal RoPE split. */
static ga_status partial_rope(cfg_ctx *c, ga_config *g) {
    ga_hybrid_config *h = &g->hybrid;
    const cJSON *rp = cJSON_GetObjectItemCaseSensitive(c->root, "rope_parameters");
    if (!cJSON_IsObject(rp)) rp = NULL; /* config.c has refused a non-object already */
    double top = 0, in = 0;
    ga_status st = ga_cfg_num(c, c->root, "partial_rotary_factor", 0, 0, 1, &top);
    if (!st && rp) st = ga_cfg_num(c, rp, "partial_rotary_factor", 0, 0, 1, &in);
    if (st) return st;
    h->partial_rotary_factor = in ? in : top ? top : 0.25;
    h->rotary_dim = (int)(g->head_dim * h->partial_rotary_factor); /* int() as transformers */
    if (h->rotary_dim < 2 || h->rotary_dim % 2)
        return ga_err_set(c->err, GA_ERR_FORMAT,
                          "%s: head_dim %d * partial_rotary_factor %g gives %d rotary dimensions; "
                          "RoPE needs an even number >= 2",
                          c->path, g->head_dim, h->partial_rotary_factor, h->rotary_dim);
    if (!rp) return GA_OK;
    const cJSON *ms = cJSON_GetObjectItemCaseSensitive(rp, "mrope_section");
    if (ms && !cJSON_IsNull(ms)) {
        int n = cJSON_IsArray(ms) ? cJSON_GetArraySize(ms) : -1, sum = 0, i = 0;
        if (n < 1 || n > 4)
            return ga_err_set(c->err, GA_ERR_FORMAT,
                              "%s: \"rope_parameters.mrope_section\" must be a list of 1 to 4 "
                              "integers",
                              c->path);
        const cJSON *e;
        cJSON_ArrayForEach(e, ms) {
            double v = cJSON_IsNumber(e) ? e->valuedouble : -1;
            if (v != floor(v) || v < 0 || v > MAX_HEAD_DIM)
                return ga_err_set(c->err, GA_ERR_FORMAT,
                                  "%s: \"rope_parameters.mrope_section[%d]\" must be an integer "
                                  "in [0, %d]",
                                  c->path, i, MAX_HEAD_DIM);
            h->mrope_section[i++] = (int)v;
            sum += (int)v;
        }
        h->n_mrope_section = n;
        if (sum != h->rotary_dim / 2)
            return ga_err_set(c->err, GA_ERR_FORMAT,
                              "%s: \"rope_parameters.mrope_section\" sums to %d, the rotary "
                              "dimensions give %d pairs",
                              c->path, sum, h->rotary_dim / 2);
    }
    const cJSON *mi = cJSON_GetObjectItemCaseSensitive(rp, "mrope_interleaved");
    if (mi && !cJSON_IsNull(mi)) {
        if (!cJSON_IsBool(mi))
            return ga_err_set(c->err, GA_ERR_FORMAT,
                              "%s: \"rope_parameters.mrope_interleaved\" must be true or false",
                              c->path);
        h->mrope_interleaved = cJSON_IsTrue(mi);
    }
    return GA_OK;
}

/* Experts, the shared expert and which layers are MoE. */
static ga_status moe_fields(cfg_ctx *c, ga_config *g) {
    ga_hybrid_config *h = &g->hybrid;
    bool next = g->arch == GA_ARCH_QWEN3_NEXT;
    ga_status st;
    if ((st = ga_cfg_int(c, "num_experts", false, next ? 512 : 256, 0, MAX_EXPERTS,
                         &h->num_experts)) ||
        (st = ga_cfg_int(c, "num_experts_per_tok", false, next ? 10 : 8, 1, MAX_EXPERTS,
                         &h->num_experts_per_tok)) ||
        (st = ga_cfg_int(c, "moe_intermediate_size", false, 512, 1, MAX_INTER,
                         &h->moe_intermediate_size)) ||
        (st = ga_cfg_int(c, "shared_expert_intermediate_size", false, 512, 0, MAX_INTER,
                         &h->shared_expert_intermediate_size)) ||
        (st = ga_cfg_bool(c, "norm_topk_prob", true, &h->norm_topk_prob)) ||
        (st = ga_cfg_int(c, "decoder_sparse_step", false, 1, 1, MAX_LAYERS,
                         &h->decoder_sparse_step)))
        return st;
    if (h->num_experts && h->num_experts_per_tok > h->num_experts)
        return ga_err_set(c->err, GA_ERR_FORMAT,
                          "%s: num_experts_per_tok %d is more than num_experts %d", c->path,
                          h->num_experts_per_tok, h->num_experts);
    /* Qwen3_5MoeTextConfig has no decoder_sparse_step / mlp_only_layers: every layer is MoE. */
    if (!next) h->decoder_sparse_step = 1;
    for (int l = 0; l < g->n_layers; l++)
        h->layer_is_moe[l] = h->num_experts > 0 && (l + 1) % h->decoder_sparse_step == 0;
    const cJSON *mo = next ? cJSON_GetObjectItemCaseSensitive(c->root, "mlp_only_layers") : NULL;
    if (mo && !cJSON_IsNull(mo)) {
        if (!cJSON_IsArray(mo))
            return ga_err_set(c->err, GA_ERR_FORMAT, "%s: \"mlp_only_layers\" must be a list",
                              c->path);
        int i = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, mo) {
            double v = cJSON_IsNumber(e) ? e->valuedouble : -1;
            if (v != floor(v) || v < 0 || v >= g->n_layers)
                return ga_err_set(c->err, GA_ERR_FORMAT,
                                  "%s: \"mlp_only_layers[%d]\" must be a layer index in [0, %d)",
                                  c->path, i, g->n_layers);
            h->layer_is_moe[(int)v] = 0;
            i++;
        }
    }
    h->n_moe_layers = 0;
    for (int l = 0; l < g->n_layers; l++)
        h->n_moe_layers += h->layer_is_moe[l];
    if (h->n_moe_layers < g->n_layers && g->intermediate_size < 1)
        return ga_err_set(c->err, GA_ERR_FORMAT,
                          "%s: missing required field \"intermediate_size\" (%d layers have a "
                          "dense MLP)",
                          c->path, g->n_layers - h->n_moe_layers);
    return GA_OK;
}

ga_status ga_cfg_hybrid(cfg_ctx *c, ga_config *g) {
    ga_hybrid_config *h = &g->hybrid;
    ga_status st;
    h->attn_output_gate = true;
    if ((st = layer_pattern(c, g)) ||
        (st = ga_cfg_int(c, "linear_conv_kernel_dim", false, 4, 1, 64,
                         &h->linear_conv_kernel_dim)) ||
        (st = ga_cfg_int(c, "linear_num_key_heads", false, 16, 1, MAX_HEADS,
                         &h->linear_num_key_heads)) ||
        (st = ga_cfg_int(c, "linear_num_value_heads", false, 32, 1, MAX_HEADS,
                         &h->linear_num_value_heads)) ||
        (st = ga_cfg_int(c, "linear_key_head_dim", false, 128, 1, MAX_HEAD_DIM,
                         &h->linear_key_head_dim)) ||
        (st = ga_cfg_int(c, "linear_value_head_dim", false, 128, 1, MAX_HEAD_DIM,
                         &h->linear_value_head_dim)) ||
        (st = ga_cfg_int(c, "mtp_num_hidden_layers", false, 0, 0, MAX_LAYERS,
                         &h->mtp_num_hidden_layers)) ||
        (g->arch != GA_ARCH_QWEN3_NEXT &&
         (st = ga_cfg_bool(c, "attn_output_gate", true, &h->attn_output_gate))) ||
        (st = partial_rope(c, g)))
        return st;
    if (h->linear_num_value_heads % h->linear_num_key_heads)
        return ga_err_set(c->err, GA_ERR_FORMAT,
                          "%s: linear_num_value_heads %d is not a multiple of "
                          "linear_num_key_heads %d",
                          c->path, h->linear_num_value_heads, h->linear_num_key_heads);
    h->moe = g->arch == GA_ARCH_QWEN3_NEXT || g->arch == GA_ARCH_QWEN3_5_MOE;
    if (h->moe && (st = moe_fields(c, g))) return st;
    /* What the family implies rather than writes: q/k norm on every full-attention layer, all
     * decoder norms zero-centred, and the gate elementwise (per query head [query | gate]). */
    g->use_qk_norm = true;
    g->norm_zero_centred = true;
    g->gate = h->attn_output_gate ? GA_GATE_ELEMENTWISE : GA_GATE_NONE;
    return GA_OK;
}

int64_t ga_cfg_hybrid_params(const ga_config *c, int64_t *active) {
    const ga_hybrid_config *h = &c->hybrid;
    int64_t H = c->hidden_size, hd = c->head_dim, nh = c->n_heads, kv = c->n_kv_heads;
    int64_t key = (int64_t)h->linear_num_key_heads * h->linear_key_head_dim;
    int64_t val = (int64_t)h->linear_num_value_heads * h->linear_value_head_dim;
    int64_t nv = h->linear_num_value_heads;
    int64_t q = nh * hd * (h->attn_output_gate ? 2 : 1);
    int64_t full = q * H + 2 * kv * hd * H + H * nh * hd + 2 * hd;
    if (c->attention_bias) full += q + 2 * kv * hd + H;
    /* in_proj_qkv(z) and in_proj_b/a (or the fused qkvz / ba), the conv weights, dt_bias and
     * A_log per value head, the gated norm over d_v, out_proj. */
    int64_t linear = (2 * key + 2 * val) * H + 2 * nv * H +
                     (2 * key + val) * h->linear_conv_kernel_dim + 2 * nv +
                     h->linear_value_head_dim + H * val;
    int64_t dense = 3 * (int64_t)c->intermediate_size * H;
    int64_t expert = 3 * (int64_t)h->moe_intermediate_size * H;
    int64_t shared = h->shared_expert_intermediate_size
                         ? 3 * (int64_t)h->shared_expert_intermediate_size * H + H
                         : 0;
    int64_t moe = (int64_t)h->num_experts * H + h->num_experts * expert + shared;
    int64_t total = (int64_t)c->vocab_size * H * (c->tie_word_embeddings ? 1 : 2) + H;
    int64_t idle = 0; /* expert weights a token does not touch */
    for (int l = 0; l < c->n_layers; l++) {
        total += 2 * H + (h->layer_is_linear[l] ? linear : full);
        if (h->moe && h->layer_is_moe[l]) {
            total += moe;
            idle += (int64_t)(h->num_experts - h->num_experts_per_tok) * expert;
        } else {
            total += dense;
        }
    }
    if (active) *active = total - idle;
    return total;
}

int64_t ga_config_active_param_count(const ga_config *c) {
    int64_t active = ga_config_param_count(c);
    if (c->arch != GA_ARCH_QWEN3) ga_cfg_hybrid_params(c, &active);
    return active;
}

/* The hybrids run on the CPU backend (src/cpu/cpu_hybrid_backend.c); what its reference forward
 * does not implement is refused here, before any weight is converted. The CUDA backend's refusal
 * is the session's (src/engine/session.c), since it depends on the device asked for. */
const char *ga_config_unsupported(const ga_config *c) {
    if (c->arch == GA_ARCH_QWEN3) return NULL;
    if (!c->hybrid.attn_output_gate)
        return "full attention without the output gate (attn_output_gate false) is not "
               "supported yet: issue 15";
    if (c->attention_bias || c->o_bias)
        return "attention biases in a hybrid model are not supported yet: issue 15";
    if (c->rope_scaling.type != GA_ROPE_DEFAULT)
        return "RoPE scaling in a hybrid model is not supported yet: issue 15";
    return NULL;
}

ga_status ga_config_check_runnable(const ga_config *c, const char *what, ga_err *err) {
    const char *why = ga_config_unsupported(c);
    if (!why) return GA_OK;
    return ga_err_set(err, GA_ERR_UNSUPPORTED, "%s: %s: %s", what, ga_arch_name(c->arch), why);
}
