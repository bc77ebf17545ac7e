/*
 * Writing random-weight model folders in the published format: config.json, safetensors
 * (one file, or shards with model.safetensors.index.json) and optionally a small byte-level
 * BPE tokenizer. Tests, the demo and the benchmarks make their models here, so nothing
 * large is committed.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "core/model.h"
#include "core/path.h"
#include "gattn/tokenizer.h"

/* The double whose shortest text is the shortest decimal that reads back as f: a float field
 * (rms_norm_eps) is written as the 1e-06 the user meant, not as the float's exact binary value
 * printed to 15 digits (9.99999997475243e-07), which reads back as the same float anyway. */
static double float_as_decimal(float f) {
    char buf[32];
    for (int digits = 1; digits <= 9; digits++) { /* 9 significant digits round-trip any float */
        snprintf(buf, sizeof buf, "%.*g", digits, (double)f);
        if ((float)strtod(buf, NULL) == f) break;
    }
    return strtod(buf, NULL);
}

/* The hybrid families' config.json (issue 15), as transformers 5.17 writes the text configs
 * (qwen3_next, qwen3_5_text, qwen3_5_moe_text); src/core/config_hybrid.c reads it back. */
static void add_hybrid(cJSON *r, const ga_config *c) {
    const ga_hybrid_config *h = &c->hybrid;
    cJSON *lt = cJSON_AddArrayToObject(r, "layer_types");
    for (int l = 0; l < c->n_layers; l++)
        cJSON_AddItemToArray(
            lt, cJSON_CreateString(h->layer_is_linear[l] ? "linear_attention" : "full_attention"));
    cJSON_AddNumberToObject(r, "linear_conv_kernel_dim", h->linear_conv_kernel_dim);
    cJSON_AddNumberToObject(r, "linear_num_key_heads", h->linear_num_key_heads);
    cJSON_AddNumberToObject(r, "linear_num_value_heads", h->linear_num_value_heads);
    cJSON_AddNumberToObject(r, "linear_key_head_dim", h->linear_key_head_dim);
    cJSON_AddNumberToObject(r, "linear_value_head_dim", h->linear_value_head_dim);
    if (c->arch != GA_ARCH_QWEN3_NEXT)
        cJSON_AddBoolToObject(r, "attn_output_gate", h->attn_output_gate);
    cJSON *rp = cJSON_AddObjectToObject(r, "rope_parameters");
    cJSON_AddStringToObject(rp, "rope_type", "default");
    cJSON_AddNumberToObject(rp, "rope_theta", c->rope_theta);
    cJSON_AddNumberToObject(rp, "partial_rotary_factor", h->partial_rotary_factor);
    if (!h->moe) return;
    cJSON_AddNumberToObject(r, "num_experts", h->num_experts);
    cJSON_AddNumberToObject(r, "num_experts_per_tok", h->num_experts_per_tok);
    cJSON_AddNumberToObject(r, "moe_intermediate_size", h->moe_intermediate_size);
    cJSON_AddNumberToObject(r, "shared_expert_intermediate_size",
                            h->shared_expert_intermediate_size);
    cJSON_AddBoolToObject(r, "norm_topk_prob", h->norm_topk_prob);
    if (c->arch != GA_ARCH_QWEN3_NEXT) return;
    cJSON_AddNumberToObject(r, "decoder_sparse_step", 1);
    cJSON *mo = cJSON_AddArrayToObject(r, "mlp_only_layers");
    for (int l = 0; l < c->n_layers; l++)
        if (!h->layer_is_moe[l]) cJSON_AddItemToArray(mo, cJSON_CreateNumber(l));
}

char *ga_config_to_json(const ga_config *c) {
    static const char *const types[][2] = {
        [GA_ARCH_QWEN3] = {"qwen3", "Qwen3ForCausalLM"},
        [GA_ARCH_QWEN3_NEXT] = {"qwen3_next", "Qwen3NextForCausalLM"},
        [GA_ARCH_QWEN3_5] = {"qwen3_5_text", "Qwen3_5ForCausalLM"},
        [GA_ARCH_QWEN3_5_MOE] = {"qwen3_5_moe_text", "Qwen3_5MoeForCausalLM"},
    };
    cJSON *r = cJSON_CreateObject();
    cJSON *arch = cJSON_AddArrayToObject(r, "architectures");
    cJSON_AddItemToArray(arch, cJSON_CreateString(types[c->arch][1]));
    cJSON_AddStringToObject(r, "model_type", types[c->arch][0]);
    cJSON_AddNumberToObject(r, "vocab_size", c->vocab_size);
    cJSON_AddNumberToObject(r, "hidden_size", c->hidden_size);
    cJSON_AddNumberToObject(r, "intermediate_size", c->intermediate_size);
    cJSON_AddNumberToObject(r, "num_hidden_layers", c->n_layers);
    cJSON_AddNumberToObject(r, "num_attention_heads", c->n_heads);
    cJSON_AddNumberToObject(r, "num_key_value_heads", c->n_kv_heads);
    cJSON_AddNumberToObject(r, "head_dim", c->head_dim);
    cJSON_AddNumberToObject(r, "rms_norm_eps", float_as_decimal(c->rms_norm_eps));
    cJSON_AddNumberToObject(r, "rope_theta", c->rope_theta);
    cJSON_AddNullToObject(r, "rope_scaling");
    cJSON_AddNumberToObject(r, "max_position_embeddings", c->max_position_embeddings);
    cJSON_AddBoolToObject(r, "tie_word_embeddings", c->tie_word_embeddings);
    cJSON_AddBoolToObject(r, "attention_bias", c->attention_bias && c->o_bias);
    if (c->attention_bias && !c->o_bias) cJSON_AddBoolToObject(r, "qkv_bias", true);
    cJSON_AddBoolToObject(r, "use_qk_norm", c->use_qk_norm);
    cJSON_AddStringToObject(r, "hidden_act", "silu");
    cJSON_AddStringToObject(r, "torch_dtype",
                            c->torch_dtype == GA_F32   ? "float32"
                            : c->torch_dtype == GA_F16 ? "float16"
                                                       : "bfloat16");
    if (c->fp8_block[0] > 0) { /* as FineGrainedFP8Config writes it in the released folders */
        cJSON *q = cJSON_AddObjectToObject(r, "quantization_config");
        cJSON_AddStringToObject(q, "quant_method", "fp8");
        cJSON_AddStringToObject(q, "fmt", "e4m3");
        cJSON_AddStringToObject(q, "activation_scheme", "dynamic");
        cJSON *bs = cJSON_AddArrayToObject(q, "weight_block_size");
        cJSON_AddItemToArray(bs, cJSON_CreateNumber(c->fp8_block[0]));
        cJSON_AddItemToArray(bs, cJSON_CreateNumber(c->fp8_block[1]));
        cJSON *nc = cJSON_AddArrayToObject(q, "modules_to_not_convert");
        cJSON_AddItemToArray(nc, cJSON_CreateString("lm_head"));
    }
    if (c->arch != GA_ARCH_QWEN3) {
        add_hybrid(r, c);
    } else {
        cJSON_AddBoolToObject(r, "headwise_attn_output_gate", c->gate == GA_GATE_HEADWISE);
        cJSON_AddBoolToObject(r, "elementwise_attn_output_gate", c->gate == GA_GATE_ELEMENTWISE);
    }
    if (c->bos_token_id >= 0) cJSON_AddNumberToObject(r, "bos_token_id", c->bos_token_id);
    if (c->n_eos == 1) {
        cJSON_AddNumberToObject(r, "eos_token_id", c->eos_token_ids[0]);
    } else if (c->n_eos > 1) {
        cJSON *e = cJSON_AddArrayToObject(r, "eos_token_id");
        for (int i = 0; i < c->n_eos; i++)
            cJSON_AddItemToArray(e, cJSON_CreateNumber(c->eos_token_ids[i]));
    }
    char *s = cJSON_Print(r);
    cJSON_Delete(r);
    return s;
}

static ga_status write_text(const char *dir, const char *name, const char *text, ga_err *err) {
    char *p = ga_path_join(dir, name);
    if (!p) return ga_err_set(err, GA_ERR_OOM, "out of memory");
    FILE *f = fopen(p, "wb");
    ga_status st = GA_OK;
    if (!f) {
        st = ga_err_set(err, GA_ERR_IO, "%s: cannot create: %s", p, strerror(errno));
    } else {
        size_t n = strlen(text);
        bool ok = fwrite(text, 1, n, f) == n;
        if (fclose(f) != 0 || !ok) st = ga_err_set(err, GA_ERR_IO, "%s: write failed", p);
    }
    free(p);
    return st;
}

/* FP8 as the released checkpoints are made: every matrix of a linear layer (2-D, neither the
 * embedding nor lm_head) becomes F8_E4M3 with one fp32 scale per (bh x bw) block, scale_inv =
 * amax / 448 (1 for an all-zero block) and w8 = e4m3(w / scale_inv) rounded to nearest even
 * (transformers' Fp8Quantize: scale 448 / amax, clamp to +-448, cast); every other tensor
 * becomes BF16, the released folders' torch_dtype. `src` holds fp32 values. */
static ga_status quantise_fp8(const ga_store *src, int bh, int bw, ga_store **out, ga_err *err) {
    ga_store *q = ga_store_new_memory();
    if (!q) return ga_err_set(err, GA_ERR_OOM, "out of memory");
    for (int i = 0; i < ga_store_count(src); i++) {
        const ga_tensor *t = ga_store_at(src, i);
        const float *w = t->data;
        const bool fp8 = t->ndim == 2 && strcmp(t->name, "model.embed_tokens.weight") &&
                         strcmp(t->name, "lm_head.weight");
        ga_tensor *d =
            ga_store_add_owned(q, t->name, fp8 ? GA_F8_E4M3 : GA_BF16, t->ndim, t->shape);
        if (!d) goto oom;
        if (!fp8) {
            uint16_t *h = (uint16_t *)d->data;
            for (int64_t k = 0; k < ga_tensor_numel(t); k++)
                h[k] = ga_f32_to_bf16(w[k]);
            continue;
        }
        const int64_t rows = t->shape[0], cols = t->shape[1];
        const int64_t sshape[2] = {(rows + bh - 1) / bh, (cols + bw - 1) / bw};
        char sname[1100];
        snprintf(sname, sizeof sname, "%s_scale_inv", t->name);
        ga_tensor *sc = ga_store_add_owned(q, sname, GA_F32, 2, sshape);
        if (!sc) goto oom;
        /* The add may have moved the array: the weight is the tensor just before its scale. */
        d = (ga_tensor *)ga_store_at(q, ga_store_count(q) - 2);
        uint8_t *w8 = (uint8_t *)d->data;
        float *scale = (float *)sc->data;
        for (int64_t br = 0; br < sshape[0]; br++)
            for (int64_t bc = 0; bc < sshape[1]; bc++) {
                const int64_t r1 = br * bh + bh < rows ? br * bh + bh : rows;
                const int64_t c1 = bc * bw + bw < cols ? bc * bw + bw : cols;
                float amax = 0;
                for (int64_t r = br * bh; r < r1; r++)
                    for (int64_t c = bc * bw; c < c1; c++)
                        amax = fmaxf(amax, fabsf(w[r * cols + c]));
                const float s = amax > 0 ? amax / 448.0f : 1.0f;
                scale[br * sshape[1] + bc] = s;
                for (int64_t r = br * bh; r < r1; r++)
                    for (int64_t c = bc * bw; c < c1; c++)
                        w8[r * cols + c] = ga_f32_to_e4m3(w[r * cols + c] / s);
            }
    }
    *out = q;
    return GA_OK;
oom:
    ga_store_free(q);
    return ga_err_set(err, GA_ERR_OOM, "out of memory quantising the weights to FP8");
}

static ga_status write_shards(const char *dir, const ga_store *s, int n_shards, ga_err *err) {
    int n = ga_store_count(s);
    const ga_tensor **all = malloc((size_t)(n ? n : 1) * sizeof *all);
    if (!all) return ga_err_set(err, GA_ERR_OOM, "out of memory");
    for (int i = 0; i < n; i++)
        all[i] = ga_store_at(s, i);
    ga_status st = GA_OK;
    if (n_shards <= 1) {
        char *p = ga_path_join(dir, "model.safetensors");
        st =
            p ? ga_safetensors_write(p, all, n, err) : ga_err_set(err, GA_ERR_OOM, "out of memory");
        free(p);
        free(all);
        return st;
    }
    if (n_shards > n) n_shards = n;
    cJSON *idx = cJSON_CreateObject();
    cJSON *meta = cJSON_AddObjectToObject(idx, "metadata");
    uint64_t total = 0;
    for (int i = 0; i < n; i++)
        total += all[i]->nbytes;
    cJSON_AddNumberToObject(meta, "total_size", (double)total);
    cJSON *wm = cJSON_AddObjectToObject(idx, "weight_map");
    int per = (n + n_shards - 1) / n_shards;
    for (int sh = 0; sh < n_shards && !st; sh++) {
        char fn[64];
        snprintf(fn, sizeof fn, "model-%05d-of-%05d.safetensors", sh + 1, n_shards);
        int lo = sh * per, hi = lo + per < n ? lo + per : n;
        if (lo >= hi) break;
        char *p = ga_path_join(dir, fn);
        st = p ? ga_safetensors_write(p, all + lo, hi - lo, err)
               : ga_err_set(err, GA_ERR_OOM, "out of memory");
        free(p);
        for (int i = lo; i < hi; i++)
            cJSON_AddStringToObject(wm, all[i]->name, fn);
    }
    char *text = cJSON_Print(idx);
    cJSON_Delete(idx);
    if (!st)
        st = text ? write_text(dir, "model.safetensors.index.json", text, err)
                  : ga_err_set(err, GA_ERR_OOM, "out of memory");
    free(text);
    free(all);
    return st;
}

ga_status ga_model_write_random(const char *dir, const ga_config *cfg, const ga_write_opts *o,
                                ga_err *err) {
    ga_write_opts opts = o ? *o : (ga_write_opts){.dtype = GA_F32, .n_shards = 1};
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return ga_err_set(err, GA_ERR_IO, "%s: cannot create folder: %s", dir, strerror(errno));
    ga_config c = *cfg;
    const bool fp8 = opts.dtype == GA_F8_E4M3;
    const int block = opts.fp8_block > 0 ? opts.fp8_block : 128;
    if (fp8 && block > 65536)
        return ga_err_set(err, GA_ERR_ARG, "FP8 block size %d is out of range [1, 65536]", block);
    c.torch_dtype = fp8 ? GA_BF16 : opts.dtype;
    c.fp8_block[0] = c.fp8_block[1] = fp8 ? block : 0;
    if (opts.tokenizer) {
        /* The synthetic tokenizer puts its special tokens at the top of the vocabulary:
         * <|endoftext|> = V-3, <|im_start|> = V-2, <|im_end|> = V-1. */
        c.n_eos = 2;
        c.eos_token_ids[0] = c.vocab_size - 1;
        c.eos_token_ids[1] = c.vocab_size - 3;
    }
    /* Round-trip the config through the parser: what we write must be what we accept. */
    char *json = ga_config_to_json(&c);
    if (!json) return ga_err_set(err, GA_ERR_OOM, "out of memory");
    ga_config check;
    ga_status st = ga_config_parse(json, strlen(json), "config.json", &check, err);
    if (!st) st = write_text(dir, "config.json", json, err);
    /* A hybrid's derived fields (layer_is_moe, rotary_dim) are the parser's: the weights
     * follow the config as it will be read. */
    if (!st && c.arch != GA_ARCH_QWEN3) c = check;
    free(json);
    if (st) return st;
    ga_store *s = NULL;
    if ((st = ga_model_random_store(&c, opts.seed, fp8 ? GA_F32 : opts.dtype, opts.init_std, &s,
                                    err)))
        return st;
    if (fp8) {
        ga_store *q = NULL;
        st = quantise_fp8(s, block, block, &q, err);
        ga_store_free(s);
        if (st) return st;
        s = q;
    }
    st = write_shards(dir, s, opts.n_shards, err);
    ga_store_free(s);
    if (!st && opts.tokenizer) st = ga_tok_write_synthetic(dir, c.vocab_size, err);
    return st;
}
