/*
 * config.json: parsing and validation of the model hyper-parameters, and the quantities
 * derived from them (q_proj rows with the gate, parameter count).
 *
 * config.json is untrusted input: the JSON is parsed strictly (json.h: no duplicate keys, no
 * NUL in strings, nothing after the value), every field is type-checked, every size is bounded so
 * that products of sizes fit comfortably in 64 bits, and unsupported features (RoPE scaling
 * types other than linear and yarn, sliding windows, activations other than SiLU) are refused
 * instead of ignored.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "gattn/gattn.h"
#include "config_internal.h"
#include "json.h"
#include "path.h"

int ga_config_gate_dim(const ga_config *c) {
    switch (c->gate) {
    case GA_GATE_HEADWISE:
        return c->n_heads;
    case GA_GATE_ELEMENTWISE:
        return c->n_heads * c->head_dim;
    default:
        return 0;
    }
}

int ga_config_q_rows(const ga_config *c) {
    return c->n_heads * c->head_dim + ga_config_gate_dim(c);
}

int64_t ga_config_param_count(const ga_config *c) {
    if (c->arch != GA_ARCH_QWEN3) return ga_cfg_hybrid_params(c, NULL);
    int64_t h = c->hidden_size, hd = c->head_dim, kv = (int64_t)c->n_kv_heads * hd;
    int64_t q = ga_config_q_rows(c), o_in = (int64_t)c->n_heads * hd, I = c->intermediate_size;
    int64_t per_layer = 2 * h /* two norms */
                        + q * h + 2 * kv * h + h * o_in + 3 * I * h;
    if (c->use_qk_norm) per_layer += 2 * hd;
    if (c->attention_bias) per_layer += q + 2 * kv;
    if (c->o_bias) per_layer += h;
    int64_t total = per_layer * c->n_layers + (int64_t)c->vocab_size * h + h;
    if (!c->tie_word_embeddings) total += (int64_t)c->vocab_size * h;
    return total;
}

const char *ga_gate_mode_name(ga_gate_mode g) {
    switch (g) {
    case GA_GATE_HEADWISE:
        return "headwise";
    case GA_GATE_ELEMENTWISE:
        return "elementwise";
    default:
        return "baseline";
    }
}

const char *ga_dtype_name(ga_dtype d) {
    switch (d) {
    case GA_F32:
        return "F32";
    case GA_F16:
        return "F16";
    case GA_BF16:
        return "BF16";
    case GA_F8_E4M3:
        return "F8_E4M3";
    }
    return "?";
}

size_t ga_dtype_size(ga_dtype d) {
    return d == GA_F32 ? 4 : d == GA_F8_E4M3 ? 1 : 2;
}

/* ------------------------------------------------------------------ field readers */

ga_status ga_cfg_int(cfg_ctx *c, const char *key, bool required, long def, long lo, long hi,
                     int *out) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(c->root, key);
    if (!it || cJSON_IsNull(it)) {
        if (required)
            return ga_err_set(c->err, GA_ERR_FORMAT, "%s: missing required field \"%s\"", c->path,
                              key);
        *out = (int)def;
        return GA_OK;
    }
    if (!cJSON_IsNumber(it))
        return ga_err_set(c->err, GA_ERR_FORMAT, "%s: field \"%s\" must be an integer", c->path,
                          key);
    double v = it->valuedouble;
    if (!isfinite(v) || v != floor(v) || v < (double)lo || v > (double)hi)
        return ga_err_set(c->err, GA_ERR_FORMAT,
                          "%s: field \"%s\" = %g is not an integer in [%ld, %ld]", c->path, key, v,
                          lo, hi);
    *out = (int)v;
    return GA_OK;
}

ga_status ga_cfg_num(cfg_ctx *c, const cJSON *obj, const char *key, double def, double lo,
                     double hi, double *out) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!it || cJSON_IsNull(it)) {
        *out = def;
        return GA_OK;
    }
    if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble) || it->valuedouble <= lo ||
        it->valuedouble > hi)
        return ga_err_set(c->err, GA_ERR_FORMAT, "%s: field \"%s\" must be a number in (%g, %g]",
                          c->path, key, lo, hi);
    *out = it->valuedouble;
    return GA_OK;
}

ga_status ga_cfg_bool(cfg_ctx *c, const char *key, bool def, bool *out) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(c->root, key);
    if (!it || cJSON_IsNull(it)) {
        *out = def;
        return GA_OK;
    }
    if (!cJSON_IsBool(it))
        return ga_err_set(c->err, GA_ERR_FORMAT, "%s: field \"%s\" must be true or false", c->path,
                          key);
    *out = cJSON_IsTrue(it);
    return GA_OK;
}

/* eos_token_id: an integer or a list of integers. */
static ga_status get_eos(cfg_ctx *c, ga_config *cfg) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(c->root, "eos_token_id");
    cfg->n_eos = 0;
    if (!it || cJSON_IsNull(it)) return GA_OK;
    const cJSON *arr[GA_MAX_EOS];
    int n = 0;
    if (cJSON_IsArray(it)) {
        const cJSON *e;
        cJSON_ArrayForEach(e, it) {
            if (n == GA_MAX_EOS)
                return ga_err_set(c->err, GA_ERR_FORMAT,
                                  "%s: \"eos_token_id\" lists more than %d ids", c->path,
                                  GA_MAX_EOS);
            arr[n++] = e;
        }
    } else {
        arr[n++] = it;
    }
    for (int i = 0; i < n; i++) {
        double v = arr[i]->valuedouble;
        if (!cJSON_IsNumber(arr[i]) || v != floor(v) || v < 0 || v >= cfg->vocab_size)
            return ga_err_set(c->err, GA_ERR_FORMAT,
                              "%s: \"eos_token_id\" must be token ids in [0, %d)", c->path,
                              cfg->vocab_size);
        cfg->eos_token_ids[cfg->n_eos++] = (int)v;
    }
    return GA_OK;
}

/* One number of a rope block ("rope_scaling.factor"); absent or null leaves *out and *found
 * unchanged. */
static ga_status rope_num(cfg_ctx *c, const cJSON *rs, const char *block, const char *key,
                          double lo, double hi, double *out, bool *found) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(rs, key);
    if (!it || cJSON_IsNull(it)) return GA_OK;
    if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble) || it->valuedouble < lo ||
        it->valuedouble > hi)
        return ga_err_set(c->err, GA_ERR_FORMAT, "%s: field \"%s.%s\" must be a number in [%g, %g]",
                          c->path, block, key, lo, hi);
    *out = it->valuedouble;
    if (found) *found = true;
    return GA_OK;
}

/* One of rope_scaling (transformers 4: "type" or "rope_type") and rope_parameters
 * (transformers 5: "rope_type", default when absent) into *out. */
static ga_status rope_block(cfg_ctx *c, const cJSON *rs, const char *block, ga_rope_scaling *out) {
    memset(out, 0, sizeof *out);
    const cJSON *ty = cJSON_GetObjectItemCaseSensitive(rs, "rope_type");
    if (!ty || cJSON_IsNull(ty)) ty = cJSON_GetObjectItemCaseSensitive(rs, "type");
    const char *name = "default";
    if (ty && !cJSON_IsNull(ty)) {
        if (!cJSON_IsString(ty))
            return ga_err_set(c->err, GA_ERR_FORMAT, "%s: \"%s.rope_type\" must be a string",
                              c->path, block);
        name = ty->valuestring;
    } else if (!strcmp(block, "rope_scaling")) {
        return ga_err_set(c->err, GA_ERR_FORMAT, "%s: missing field \"rope_scaling.rope_type\"",
                          c->path);
    }
    if (!strcmp(name, "default")) return GA_OK;
    if (!strcmp(name, "dynamic"))
        return ga_err_set(c->err, GA_ERR_UNSUPPORTED,
                          "%s: %s type \"dynamic\" is not supported: transformers recomputes "
                          "dynamic-NTK frequencies per forward call, which a KV cache cannot "
                          "reproduce (use yarn or linear)",
                          c->path, block);
    if (!strcmp(name, "linear"))
        out->type = GA_ROPE_LINEAR;
    else if (!strcmp(name, "yarn"))
        out->type = GA_ROPE_YARN;
    else
        return ga_err_set(c->err, GA_ERR_UNSUPPORTED,
                          "%s: %s type \"%s\" is not supported (default, linear, yarn)", c->path,
                          block, name);
    bool have_factor = false;
    double orig = 0;
    ga_status st;
    if ((st = rope_num(c, rs, block, "factor", 1e-6, 1e6, &out->factor, &have_factor)) ||
        (st = rope_num(c, rs, block, "original_max_position_embeddings", 1, MAX_POSITIONS, &orig,
                       NULL)))
        return st;
    if (!have_factor)
        return ga_err_set(c->err, GA_ERR_FORMAT, "%s: missing field \"%s.factor\" (%s RoPE)",
                          c->path, block, name);
    if (orig != floor(orig))
        return ga_err_set(c->err, GA_ERR_FORMAT,
                          "%s: field \"%s.original_max_position_embeddings\" must be an integer",
                          c->path, block);
    out->original_max_position_embeddings = (int)orig;
    if (out->type != GA_ROPE_YARN) return GA_OK;
    if ((st = rope_num(c, rs, block, "beta_fast", 0, 1e6, &out->beta_fast, NULL)) ||
        (st = rope_num(c, rs, block, "beta_slow", 0, 1e6, &out->beta_slow, NULL)) ||
        (st = rope_num(c, rs, block, "attention_factor", 0, 1e6, &out->attention_factor, NULL)) ||
        (st = rope_num(c, rs, block, "mscale", 0, 1e6, &out->mscale, NULL)) ||
        (st = rope_num(c, rs, block, "mscale_all_dim", 0, 1e6, &out->mscale_all_dim, NULL)))
        return st;
    const cJSON *tr = cJSON_GetObjectItemCaseSensitive(rs, "truncate");
    if (tr && !cJSON_IsNull(tr)) {
        if (!cJSON_IsBool(tr))
            return ga_err_set(c->err, GA_ERR_FORMAT,
                              "%s: field \"%s.truncate\" must be true or false", c->path, block);
        out->no_truncate = !cJSON_IsTrue(tr);
    }
    return GA_OK;
}

/* RoPE: rope_theta at the top level (Qwen3 checkpoints) or inside rope_parameters
 * (transformers 5), and the scaling from rope_scaling or rope_parameters (src/core/rope.c has
 * the math). When both blocks scale, they must agree. */
static ga_status get_rope(cfg_ctx *c, ga_config *cfg) {
    ga_status st = ga_cfg_num(c, c->root, "rope_theta", 10000.0, 0.0, 1e12, &cfg->rope_theta);
    if (st) return st;
    const char *blocks[2] = {"rope_scaling", "rope_parameters"};
    ga_rope_scaling got[2] = {{0}, {0}};
    for (int b = 0; b < 2; b++) {
        const cJSON *rs = cJSON_GetObjectItemCaseSensitive(c->root, blocks[b]);
        if (!rs || cJSON_IsNull(rs)) continue;
        if (!cJSON_IsObject(rs))
            return ga_err_set(c->err, GA_ERR_FORMAT, "%s: \"%s\" must be an object or null",
                              c->path, blocks[b]);
        if ((st = rope_block(c, rs, blocks[b], &got[b]))) return st;
        if (b == 1 && cJSON_GetObjectItemCaseSensitive(rs, "rope_theta")) {
            double t = cfg->rope_theta;
            st = ga_cfg_num(c, rs, "rope_theta", cfg->rope_theta, 0.0, 1e12, &t);
            if (st) return st;
            const cJSON *top = cJSON_GetObjectItemCaseSensitive(c->root, "rope_theta");
            if (top && cJSON_IsNumber(top) && top->valuedouble != t)
                return ga_err_set(c->err, GA_ERR_FORMAT,
                                  "%s: rope_theta %g disagrees with rope_parameters.rope_theta %g",
                                  c->path, top->valuedouble, t);
            cfg->rope_theta = t;
        }
    }
    if (got[0].type != GA_ROPE_DEFAULT && got[1].type != GA_ROPE_DEFAULT &&
        memcmp(&got[0], &got[1], sizeof got[0]) != 0)
        return ga_err_set(c->err, GA_ERR_FORMAT,
                          "%s: rope_scaling and rope_parameters give different RoPE scalings",
                          c->path);
    cfg->rope_scaling = got[1].type != GA_ROPE_DEFAULT ? got[1] : got[0];
    return GA_OK;
}

static ga_status get_dtype(cfg_ctx *c, ga_config *cfg) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(c->root, "torch_dtype");
    if (!it || cJSON_IsNull(it)) it = cJSON_GetObjectItemCaseSensitive(c->root, "dtype");
    cfg->torch_dtype = GA_BF16;
    if (!it || cJSON_IsNull(it)) return GA_OK;
    if (!cJSON_IsString(it))
        return ga_err_set(c->err, GA_ERR_FORMAT, "%s: \"torch_dtype\" must be a string", c->path);
    const char *s = it->valuestring;
    if (!strcmp(s, "float32"))
        cfg->torch_dtype = GA_F32;
    else if (!strcmp(s, "float16"))
        cfg->torch_dtype = GA_F16;
    else if (!strcmp(s, "bfloat16"))
        cfg->torch_dtype = GA_BF16;
    else
        return ga_err_set(c->err, GA_ERR_UNSUPPORTED,
                          "%s: torch_dtype \"%s\" is not supported (float32, float16, bfloat16)",
                          c->path, s);
    return GA_OK;
}

/* quantization_config, as transformers' FineGrainedFP8Config writes it for the released FP8
 * folders (Qwen3-*-FP8, Qwen3-Next-*-FP8): {"quant_method": "fp8", "fmt": "e4m3",
 * "weight_block_size": [128, 128], "activation_scheme": "dynamic", "modules_to_not_convert":
 * [...]}. The weights are dequantised at load, so the activation scheme only has to be one
 * transformers also runs without activation scales ("dynamic"); which modules are FP8 is read
 * from the tensors' dtypes (ga_store_bind_fp8), not from modules_to_not_convert. A VL wrapper
 * keeps it at the top level; text_config is looked at too. */
static ga_status get_quant(cfg_ctx *top, const cJSON *text_root, ga_config *g) {
    const char *path = top->path;
    ga_err *err = top->err;
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(top->root, "quantization_config");
    if (!q || cJSON_IsNull(q))
        q = cJSON_GetObjectItemCaseSensitive(text_root, "quantization_config");
    if (!q || cJSON_IsNull(q)) return GA_OK;
    if (!cJSON_IsObject(q))
        return ga_err_set(err, GA_ERR_FORMAT, "%s: \"quantization_config\" must be an object",
                          path);
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(q, "quant_method");
    if (!cJSON_IsString(m))
        return ga_err_set(err, GA_ERR_FORMAT,
                          "%s: quantization_config needs a \"quant_method\" string", path);
    if (strcmp(m->valuestring, "fp8") != 0)
        return ga_err_set(err, GA_ERR_UNSUPPORTED,
                          "%s: quantization_config.quant_method \"%s\" is not supported (fp8: "
                          "block-scaled F8_E4M3 weights)",
                          path, m->valuestring);
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(q, "fmt");
    if (fmt && !cJSON_IsNull(fmt) && (!cJSON_IsString(fmt) || strcmp(fmt->valuestring, "e4m3")))
        return ga_err_set(err, GA_ERR_UNSUPPORTED,
                          "%s: quantization_config.fmt %s is not supported (e4m3)", path,
                          cJSON_IsString(fmt) ? fmt->valuestring : "(not a string)");
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(q, "activation_scheme");
    if (act && !cJSON_IsNull(act) && (!cJSON_IsString(act) || strcmp(act->valuestring, "dynamic")))
        return ga_err_set(err, GA_ERR_UNSUPPORTED,
                          "%s: quantization_config.activation_scheme %s is not supported (dynamic)",
                          path, cJSON_IsString(act) ? act->valuestring : "(not a string)");
    g->fp8_block[0] = g->fp8_block[1] = 128; /* FineGrainedFP8Config's default */
    const cJSON *bs = cJSON_GetObjectItemCaseSensitive(q, "weight_block_size");
    if (!bs || cJSON_IsNull(bs)) return GA_OK;
    bool ok = cJSON_IsArray(bs) && cJSON_GetArraySize(bs) == 2;
    for (int i = 0; ok && i < 2; i++) {
        const cJSON *v = cJSON_GetArrayItem(bs, i);
        ok = cJSON_IsNumber(v) && v->valuedouble >= 1 && v->valuedouble <= 65536 &&
             v->valuedouble == (double)(int)v->valuedouble;
        if (ok) g->fp8_block[i] = (int)v->valuedouble;
    }
    if (!ok)
        return ga_err_set(err, GA_ERR_FORMAT,
                          "%s: quantization_config.weight_block_size must be [rows, cols], two "
                          "integers in [1, 65536]",
                          path);
    return GA_OK;
}

ga_status ga_config_parse(const char *text, size_t len, const char *path, ga_config *out,
                          ga_err *err) {
    memset(out, 0, sizeof *out);
    cJSON *root;
    ga_status st0 = ga_json_parse_strict(text, len, path, NULL, &root, err);
    if (st0) return st0;
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return ga_err_set(err, GA_ERR_FORMAT, "%s: top level must be a JSON object", path);
    }
    cfg_ctx c = {root, path, err}, top = c;
    ga_config *g = out;
    ga_status st;
    bool b_attn = false, b_qkv = false, hw = false, ew = false, sliding = false;
    double eps = 1e-6;
    /* The family first: a vision-language wrapper (qwen3_5, qwen3_5_moe) keeps the text model's
     * fields in text_config, and those are what every reader below sees. */
    const cJSON *text_root = root;
    if ((st = ga_cfg_arch(&c, &g->arch, &text_root))) goto done;
    c.root = text_root;
    const bool hybrid = g->arch != GA_ARCH_QWEN3;
    const bool moe = g->arch == GA_ARCH_QWEN3_NEXT || g->arch == GA_ARCH_QWEN3_5_MOE;
    /* The wrapper's own tie_word_embeddings is the default for the text model's. */
    bool tie_top = false;
    if (text_root != root && (st = ga_cfg_bool(&top, "tie_word_embeddings", false, &tie_top)))
        goto done;
    /* An MoE family needs intermediate_size only for dense layers (mlp_only_layers), which
     * ga_cfg_hybrid checks. */
    if ((st = ga_cfg_int(&c, "vocab_size", true, 0, 1, MAX_VOCAB, &g->vocab_size)) ||
        (st = ga_cfg_int(&c, "hidden_size", true, 0, 1, MAX_HIDDEN, &g->hidden_size)) ||
        (st = ga_cfg_int(&c, "intermediate_size", !moe, 0, moe ? 0 : 1, MAX_INTER,
                         &g->intermediate_size)) ||
        (st = ga_cfg_int(&c, "num_hidden_layers", true, 0, 1, MAX_LAYERS, &g->n_layers)) ||
        (st = ga_cfg_int(&c, "num_attention_heads", true, 0, 1, MAX_HEADS, &g->n_heads)) ||
        (st = ga_cfg_int(&c, "num_key_value_heads", false, g->n_heads, 1, MAX_HEADS,
                         &g->n_kv_heads)) ||
        (st = ga_cfg_int(&c, "max_position_embeddings", false, 32768, 1, MAX_POSITIONS,
                         &g->max_position_embeddings)) ||
        (st = ga_cfg_bool(&c, "tie_word_embeddings", tie_top, &g->tie_word_embeddings)) ||
        (st = ga_cfg_bool(&c, "use_qk_norm", true, &g->use_qk_norm)) ||
        (st = ga_cfg_bool(&c, "attention_bias", false, &b_attn)) ||
        (st = ga_cfg_bool(&c, "qkv_bias", false, &b_qkv)) ||
        (st = ga_cfg_bool(&c, "headwise_attn_output_gate", false, &hw)) ||
        (st = ga_cfg_bool(&c, "elementwise_attn_output_gate", false, &ew)) ||
        (st = ga_cfg_bool(&c, "use_sliding_window", false, &sliding)) ||
        (st = ga_cfg_num(&c, c.root, "rms_norm_eps", 1e-6, 0.0, 1.0, &eps)) ||
        (st = get_rope(&c, g)) ||
        (st = get_dtype(text_root != root && !cJSON_GetObjectItemCaseSensitive(c.root, "dtype") &&
                                !cJSON_GetObjectItemCaseSensitive(c.root, "torch_dtype")
                            ? &top
                            : &c,
                        g)) ||
        (st = get_quant(&top, text_root, g)))
        goto done;
    g->rms_norm_eps = (float)eps;
    g->attention_bias = b_attn || b_qkv;
    g->o_bias = b_attn;
    if (hw && ew) {
        st = ga_err_set(err, GA_ERR_FORMAT,
                        "%s: headwise_attn_output_gate and elementwise_attn_output_gate are both "
                        "true; a model has at most one gate",
                        path);
        goto done;
    }
    g->gate = hw ? GA_GATE_HEADWISE : ew ? GA_GATE_ELEMENTWISE : GA_GATE_NONE;
    if (sliding) {
        st = ga_err_set(err, GA_ERR_UNSUPPORTED, "%s: use_sliding_window is not supported", path);
        goto done;
    }
    /* head_dim defaults to hidden/heads, as in transformers' Qwen3Config; it need not equal
     * that. The hybrid configs default it to 256. */
    const cJSON *hdit = cJSON_GetObjectItemCaseSensitive(c.root, "head_dim");
    if (hybrid && (!hdit || cJSON_IsNull(hdit))) {
        g->head_dim = 256;
    } else if (!hdit || cJSON_IsNull(hdit)) {
        if (g->hidden_size % g->n_heads) {
            st = ga_err_set(err, GA_ERR_FORMAT,
                            "%s: no head_dim, and hidden_size %d is not a multiple of "
                            "num_attention_heads %d",
                            path, g->hidden_size, g->n_heads);
            goto done;
        }
        g->head_dim = g->hidden_size / g->n_heads;
    } else if ((st = ga_cfg_int(&c, "head_dim", true, 0, 2, MAX_HEAD_DIM, &g->head_dim))) {
        goto done;
    }
    if (g->head_dim % 2) {
        st = ga_err_set(err, GA_ERR_FORMAT, "%s: head_dim %d must be even for RoPE", path,
                        g->head_dim);
        goto done;
    }
    if (g->n_heads % g->n_kv_heads) {
        st = ga_err_set(err, GA_ERR_FORMAT,
                        "%s: num_attention_heads %d is not a multiple of num_key_value_heads %d",
                        path, g->n_heads, g->n_kv_heads);
        goto done;
    }
    if ((int64_t)g->n_heads * g->head_dim > MAX_HIDDEN * 4) {
        st =
            ga_err_set(err, GA_ERR_FORMAT, "%s: num_attention_heads * head_dim = %lld is too large",
                       path, (long long)g->n_heads * g->head_dim);
        goto done;
    }
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(c.root, "hidden_act");
    if (act && !cJSON_IsNull(act)) {
        if (!cJSON_IsString(act)) {
            st = ga_err_set(err, GA_ERR_FORMAT, "%s: \"hidden_act\" must be a string", path);
            goto done;
        }
        if (strcmp(act->valuestring, "silu") != 0 && strcmp(act->valuestring, "swish") != 0) {
            st =
                ga_err_set(err, GA_ERR_UNSUPPORTED, "%s: hidden_act \"%s\" is not supported (silu)",
                           path, act->valuestring);
            goto done;
        }
    }
    /* eos/bos sit in text_config in the released Qwen3.5 folders; older ones had them at the top.
     */
    const cJSON *ids = c.root;
    if (text_root != root && !cJSON_GetObjectItemCaseSensitive(ids, "eos_token_id")) ids = root;
    cfg_ctx ids_ctx = {ids, path, err};
    if ((st = get_eos(&ids_ctx, g))) goto done;
    g->bos_token_id = -1;
    const cJSON *bos = cJSON_GetObjectItemCaseSensitive(ids, "bos_token_id");
    if (bos && cJSON_IsNumber(bos) && bos->valuedouble >= 0 && bos->valuedouble < g->vocab_size)
        g->bos_token_id = (int)bos->valuedouble;
    st = hybrid ? ga_cfg_hybrid(&c, g) : GA_OK;
    g->hybrid.vl_wrapper = hybrid && text_root != root;
done:
    cJSON_Delete(root);
    return st;
}

ga_status ga_config_load(const char *path, ga_config *out, ga_err *err) {
    /* A config is a few KB; refuse anything absurd before reading it into memory. */
    char *buf;
    size_t len;
    ga_status st = ga_read_regular(path, 16u << 20, &buf, &len, err);
    if (st) return st;
    st = ga_config_parse(buf, len, path, out, err);
    free(buf);
    return st;
}
