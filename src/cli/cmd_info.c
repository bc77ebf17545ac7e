/* gattn info: what a model folder holds (variant, shapes, parameters, dtype, memory). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "core/model.h"
#include "core/tp_shard.h"

/* The tensor groups of a hybrid folder: the text model's (described), and those gattn ignores. */

/* FP8 folders (quantization_config fp8): how their weights are stored and what the backends
 * make of them. Both CUDA backends keep FP8 projections (and a hybrid's experts) as FP8 by
 * default (ga_cuda_weights). */
static void print_quant(const ga_config *c) {
    if (c->fp8_block[0] <= 0) return;
    printf("quantisation     fp8 e4m3, %dx%d block scales, dequantised to fp32 (CPU); kept "
           "as FP8 on CUDA (--weights-dtype bf16: dequantised to bf16)\n",
           c->fp8_block[0], c->fp8_block[1]);
}

/* The GPU the fit line speaks of: an H200's memory as cudaMemGetInfo reports it free on the
 * machines gattn is tested on (the card has 141 GB = 131 GiB by the label, 139 GiB usable). */
#define H200_BYTES (139.0 * 1073741824.0)

static void add_quant_json(cJSON *o, const ga_config *c) {
    if (c->fp8_block[0] <= 0) return;
    cJSON *q = cJSON_AddObjectToObject(o, "quantization");
    cJSON_AddStringToObject(q, "quant_method", "fp8");
    cJSON_AddStringToObject(q, "fmt", "e4m3");
    cJSON *bs = cJSON_AddArrayToObject(q, "weight_block_size");
    cJSON_AddItemToArray(bs, cJSON_CreateNumber(c->fp8_block[0]));
    cJSON_AddItemToArray(bs, cJSON_CreateNumber(c->fp8_block[1]));
}

static const char *const k_ignored[] = {"model.visual.", "mtp."};
#define N_IGNORED 2

/* "3 linear : 1 full" for a regular pattern, else the counts. */
static void pattern_desc(const ga_hybrid_config *h, int n_layers, char *buf, size_t n) {
    int full = n_layers - h->n_linear_layers, k = h->full_attention_interval;
    if (k > 1 && n_layers % k == 0)
        snprintf(buf, n, "%d linear : 1 full", k - 1);
    else
        snprintf(buf, n, "%d linear, %d full (irregular)", h->n_linear_layers, full);
}

/* Which layers are full attention, as a compact list ("3,7,11,...,47"). */
static void full_list(const ga_config *c, char *buf, size_t n) {
    size_t at = 0;
    buf[0] = 0;
    for (int l = 0; l < c->n_layers && at + 16 < n; l++)
        if (!c->hybrid.layer_is_linear[l])
            at += (size_t)snprintf(buf + at, n - at, "%s%d", at ? "," : "", l);
}

static int info_hybrid(ga_model *m, const char *dir, const ga_config *c, bool json,
                       const char *bind_err) {
    const ga_hybrid_config *h = &c->hybrid;
    char pat[64], fulls[512];
    pattern_desc(h, c->n_layers, pat, sizeof pat);
    full_list(c, fulls, sizeof fulls);
    const char *why = ga_config_unsupported(c);
    if (!why) why = bind_err;
    int64_t params = ga_config_param_count(c), active = ga_config_active_param_count(c);
    const char *text_prefix = h->vl_wrapper ? "model.language_model." : "model.";
    uint64_t text_bytes, ign_bytes[N_IGNORED];
    int text_n = ga_model_count_prefix(m, text_prefix, &text_bytes);
    int lm_n = ga_model_count_prefix(m, "lm_head.", NULL);
    int ign_n[N_IGNORED];
    for (int i = 0; i < N_IGNORED; i++)
        ign_n[i] = ga_model_count_prefix(m, k_ignored[i], &ign_bytes[i]);
    /* model.visual. starts with "model." too: keep the text group to the text model */
    if (!h->vl_wrapper) {
        text_n -= ign_n[0];
        text_bytes -= ign_bytes[0];
    }
    int n_full = c->n_layers - h->n_linear_layers;
    double kv_tok_bf16 = 2.0 * n_full * c->n_kv_heads * c->head_dim * 2;
    /* per sequence, per linear layer: the fp32 recurrent state (value heads x d_k x d_v) and
     * the conv state (kernel - 1 columns of [q|k|v]) */
    int64_t convch = 2LL * h->linear_num_key_heads * h->linear_key_head_dim +
                     (int64_t)h->linear_num_value_heads * h->linear_value_head_dim;
    double state_seq =
        (double)h->n_linear_layers *
        ((double)h->linear_num_value_heads * h->linear_key_head_dim * h->linear_value_head_dim +
         (double)(h->linear_conv_kernel_dim - 1) * convch) *
        4;
    uint64_t stored = ga_model_weight_bytes(m);
    /* the hybrid CUDA backend's weights, by default and as bf16 (tensors the folder lacks
     * counted from config.json, as Qwen's releases store them) */
    const double gpu = ga_cli_hybrid_gpu_bytes(m, true, false);
    const double gpu16 = ga_cli_hybrid_gpu_bytes(m, false, false);
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", ga_model_name(m));
        cJSON_AddStringToObject(o, "model_type", ga_arch_name(c->arch));
        cJSON_AddBoolToObject(o, "vision_language_folder", h->vl_wrapper);
        cJSON_AddStringToObject(o, "variant", ga_gate_mode_name(c->gate));
        cJSON_AddBoolToObject(o, "runnable", why == NULL);
        if (why) cJSON_AddStringToObject(o, "not_supported", why);
        cJSON_AddStringToObject(o, "devices", why ? "" : "cpu");
        cJSON_AddStringToObject(o, "layer_pattern", pat);
        cJSON_AddNumberToObject(o, "num_hidden_layers", c->n_layers);
        cJSON_AddNumberToObject(o, "linear_attention_layers", h->n_linear_layers);
        cJSON_AddNumberToObject(o, "full_attention_layers", n_full);
        cJSON_AddNumberToObject(o, "full_attention_interval", h->full_attention_interval);
        cJSON *fl = cJSON_AddArrayToObject(o, "full_attention_layer_ids");
        for (int l = 0; l < c->n_layers; l++)
            if (!h->layer_is_linear[l]) cJSON_AddItemToArray(fl, cJSON_CreateNumber(l));
        cJSON_AddNumberToObject(o, "vocab_size", c->vocab_size);
        cJSON_AddNumberToObject(o, "hidden_size", c->hidden_size);
        cJSON_AddNumberToObject(o, "intermediate_size", c->intermediate_size);
        cJSON_AddNumberToObject(o, "num_attention_heads", c->n_heads);
        cJSON_AddNumberToObject(o, "num_key_value_heads", c->n_kv_heads);
        cJSON_AddNumberToObject(o, "head_dim", c->head_dim);
        cJSON_AddNumberToObject(o, "q_proj_rows", ga_config_q_rows(c));
        cJSON_AddNumberToObject(o, "partial_rotary_factor", h->partial_rotary_factor);
        cJSON_AddNumberToObject(o, "rotary_dim", h->rotary_dim);
        cJSON *ms = cJSON_AddArrayToObject(o, "mrope_section");
        for (int i = 0; i < h->n_mrope_section; i++)
            cJSON_AddItemToArray(ms, cJSON_CreateNumber(h->mrope_section[i]));
        cJSON_AddBoolToObject(o, "mrope_interleaved", h->mrope_interleaved);
        cJSON_AddNumberToObject(o, "rope_theta", c->rope_theta);
        cJSON_AddNumberToObject(o, "max_position_embeddings", c->max_position_embeddings);
        cJSON_AddBoolToObject(o, "norm_zero_centred", c->norm_zero_centred);
        cJSON_AddNumberToObject(o, "linear_num_key_heads", h->linear_num_key_heads);
        cJSON_AddNumberToObject(o, "linear_num_value_heads", h->linear_num_value_heads);
        cJSON_AddNumberToObject(o, "linear_key_head_dim", h->linear_key_head_dim);
        cJSON_AddNumberToObject(o, "linear_value_head_dim", h->linear_value_head_dim);
        cJSON_AddNumberToObject(o, "linear_conv_kernel_dim", h->linear_conv_kernel_dim);
        cJSON_AddBoolToObject(o, "moe", h->moe);
        if (h->moe) {
            cJSON_AddNumberToObject(o, "moe_layers", h->n_moe_layers);
            cJSON_AddNumberToObject(o, "num_experts", h->num_experts);
            cJSON_AddNumberToObject(o, "num_experts_per_tok", h->num_experts_per_tok);
            cJSON_AddNumberToObject(o, "moe_intermediate_size", h->moe_intermediate_size);
            cJSON_AddNumberToObject(o, "shared_expert_intermediate_size",
                                    h->shared_expert_intermediate_size);
            cJSON_AddBoolToObject(o, "norm_topk_prob", h->norm_topk_prob);
        }
        cJSON_AddNumberToObject(o, "mtp_num_hidden_layers", h->mtp_num_hidden_layers);
        cJSON_AddBoolToObject(o, "tie_word_embeddings", c->tie_word_embeddings);
        cJSON_AddNumberToObject(o, "parameters", (double)params);
        cJSON_AddNumberToObject(o, "active_parameters", (double)active);
        cJSON_AddStringToObject(o, "weight_dtype", ga_dtype_name(ga_model_weight_dtype(m)));
        cJSON_AddNumberToObject(o, "weight_bytes", (double)stored);
        /* what the hybrid CUDA backend holds by default (FP8 weights as FP8), and as bf16 */
        cJSON_AddNumberToObject(o, "gpu_weight_bytes", gpu);
        cJSON_AddNumberToObject(o, "gpu_weight_bytes_bf16", gpu16);
        cJSON_AddBoolToObject(o, "weights_fit_one_h200", gpu < H200_BYTES);
        add_quant_json(o, c);
        cJSON_AddNumberToObject(o, "text_tensors", text_n + lm_n);
        cJSON *ig = cJSON_AddObjectToObject(o, "ignored_tensors");
        for (int i = 0; i < N_IGNORED; i++)
            cJSON_AddNumberToObject(ig, k_ignored[i], ign_n[i]);
        cJSON_AddNumberToObject(o, "kv_bytes_per_token_bf16", kv_tok_bf16);
        cJSON_AddNumberToObject(o, "linear_state_bytes_per_sequence_fp32", state_seq);
        char *txt = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        if (!txt) return ga_cli_fail("info", "out of memory");
        puts(txt);
        free(txt);
        return 0;
    }
    printf("model            %s (%s)\n", ga_model_name(m), dir);
    printf("model_type       %s%s (hybrid: Gated DeltaNet + gated full attention)\n",
           ga_arch_name(c->arch), h->vl_wrapper ? ", vision-language folder (text_config)" : "");
    if (why)
        printf("runs             no: %s\n", why);
    else
        printf("runs             on the CPU backend (fp32) and on CUDA (bf16), text input only; "
               "viz maps the full-attention layers with --device cpu (issue 15)\n");
    printf("layers           %d: %s (%d linear_attention, %d full_attention: %s)\n", c->n_layers,
           pat, h->n_linear_layers, n_full, fulls);
    printf("full attention   %d query, %d key/value heads (G = %d), head_dim %d; q_proj %d rows "
           "(per head %d query + %d gate)%s\n",
           c->n_heads, c->n_kv_heads, c->n_heads / c->n_kv_heads, c->head_dim, ga_config_q_rows(c),
           c->head_dim, h->attn_output_gate ? c->head_dim : 0,
           h->attn_output_gate ? ", sigmoid gate per element" : "");
    printf("rope             theta %g, partial: %d of %d dims (factor %g), max positions %d",
           c->rope_theta, h->rotary_dim, c->head_dim, h->partial_rotary_factor,
           c->max_position_embeddings);
    if (h->n_mrope_section) {
        printf(", mrope_section [");
        for (int i = 0; i < h->n_mrope_section; i++)
            printf("%s%d", i ? ", " : "", h->mrope_section[i]);
        printf("]%s (text input only: equals plain RoPE)",
               h->mrope_interleaved ? " interleaved" : "");
    }
    printf("\n");
    printf("linear attention %d key heads x d_k %d, %d value heads x d_v %d, conv kernel %d\n",
           h->linear_num_key_heads, h->linear_key_head_dim, h->linear_num_value_heads,
           h->linear_value_head_dim, h->linear_conv_kernel_dim);
    if (h->moe)
        printf("mlp              MoE on %d of %d layers: %d experts, top %d%s, expert width %d, "
               "shared expert %d",
               h->n_moe_layers, c->n_layers, h->num_experts, h->num_experts_per_tok,
               h->norm_topk_prob ? " (renormalised)" : "", h->moe_intermediate_size,
               h->shared_expert_intermediate_size);
    if (h->moe && h->n_moe_layers < c->n_layers)
        printf("; dense SwiGLU %d on the other %d\n", c->intermediate_size,
               c->n_layers - h->n_moe_layers);
    else if (h->moe)
        printf("\n");
    else
        printf("mlp              dense SwiGLU, intermediate %d\n", c->intermediate_size);
    printf("norms            RMSNorm zero-centred (x * (1 + w)), eps %g\n", c->rms_norm_eps);
    printf("hidden / vocab   %d / %d (%s embeddings)\n", c->hidden_size, c->vocab_size,
           c->tie_word_embeddings ? "tied" : "untied");
    printf("parameters       %lld (%.3f B), %lld active per token (%.3f B); mtp and vision "
           "excluded\n",
           (long long)params, params / 1e9, (long long)active, active / 1e9);
    printf("weights          %s, %.2f MiB as stored; text model %d tensors (%s*), %s\n",
           ga_dtype_name(ga_model_weight_dtype(m)), stored / 1048576.0, text_n + lm_n, text_prefix,
           bind_err ? "not bound (see runs)" : "bound by name and shape");
    print_quant(c);
    const char *est = bind_err ? " (tensors the folder lacks counted from config.json)" : "";
    const double MiB = 1048576.0, GiB = 1073741824.0;
    if (gpu < gpu16)
        printf("memory           %.2f MiB on the GPU (FP8 weights as FP8; %.2f MiB as bf16), %.2f "
               "MiB as fp32 (CPU backend)%s\n",
               gpu / MiB, gpu16 / MiB, params * 4 / MiB, est);
    else
        printf("memory           %.2f MiB as bf16 (GPU), %.2f MiB as fp32 (CPU backend)%s\n",
               gpu16 / MiB, params * 4 / MiB, est);
    if (gpu < H200_BYTES)
        printf(
            "one H200         fits: the weights take %.2f of its %.0f GiB, %.2f GiB stay for the "
            "KV cache, DeltaNet states and activations\n",
            gpu / GiB, H200_BYTES / GiB, (H200_BYTES - gpu) / GiB);
    else
        printf("one H200         does not fit: the weights alone take %.2f of its %.0f GiB%s\n",
               gpu / GiB, H200_BYTES / GiB,
               c->fp8_block[0] > 0 ? "" : " (an FP8 folder would take about half)");
    for (int i = 0; i < N_IGNORED; i++)
        printf("ignored          %s* %d tensors, %.2f MiB%s\n", k_ignored[i], ign_n[i],
               ign_bytes[i] / 1048576.0,
               i == 0 ? " (vision tower)" : " (multi-token prediction head)");
    printf("cache            %.1f KiB per token as bf16 (%d full-attention layers), plus %.2f MiB "
           "of fp32 DeltaNet state per sequence\n",
           kv_tok_bf16 / 1024, n_full, state_seq / 1048576.0);
    return 0;
}

int ga_cmd_info(int argc, char **argv) {
    const char *dir = NULL;
    bool json = false;
    ga_cli_rope rope = {0};
    int tp = 0;
    ga_opt opts[] = {
        GA_O_STR("--model", &dir, "DIR", "the model folder (required)"),
        GA_O_FLAG("--json", &json, "print one JSON object instead of text"),
        GA_O_INT("--tensor-parallel", &tp, 1, GA_TP_MAX, "N",
                 "also the GPU memory of each rank split over N GPUs"),
        GA_ROPE_OPTS(&rope),
    };
    opts[2].alias = "--tp";
    ga_cli_spec spec = {
        .cmd = "info",
        .usage = "--model DIR [--json] [--rope-scaling TYPE --rope-factor F]",
        .about = "Describes the model: attention variant, shapes, parameter count, weight dtype\n"
                 "and the memory it needs (weights as stored, as bf16 on a GPU, as fp32 on the\n"
                 "CPU backend, and the KV cache per token).\n",
        .opts = opts,
        .n_opts = GA_N_OPTS(opts)};
    int rc = ga_cli_parse(&spec, argc, argv);
    if (rc) return ga_cli_parse_exit(rc);
    if (!dir) return ga_cli_usage("info", "--model DIR is required");
    if ((rc = ga_cli_rope_check(&spec, &rope))) return rc;
    ga_err err = {{0}};
    ga_model *m;
    /* A hybrid folder is described even when its weights do not bind (the shapes of a released
     * checkpoint with only some tensors present, say): the binding error becomes its "runs"
     * line. A Qwen3 folder must bind, as before. */
    if (ga_model_open_unbound(dir, &m, &err)) return ga_cli_fail_err("info", &err);
    ga_err bind_err = {{0}};
    bool bound = !ga_model_bind(m, &bind_err);
    if (!bound && ga_model_config(m)->arch == GA_ARCH_QWEN3) {
        ga_model_free(m);
        return ga_cli_fail_err("info", &bind_err);
    }
    if ((rc = ga_cli_rope_apply(spec.cmd, &rope, m))) {
        ga_model_free(m);
        return rc;
    }
    const ga_config *c = ga_model_config(m);
    if (tp > 1 && ga_tp_check(c, tp, &err)) {
        ga_model_free(m);
        return ga_cli_fail_err("info", &err);
    }
    if (c->arch != GA_ARCH_QWEN3) {
        rc = info_hybrid(m, dir, c, json, bound ? NULL : bind_err.msg);
        ga_model_free(m);
        return rc ? rc : ga_cli_finish_stdout("info");
    }
    char rope_desc[128];
    ga_cli_rope_describe(c, rope_desc, sizeof rope_desc);
    int64_t params = ga_config_param_count(c);
    uint64_t stored = ga_model_weight_bytes(m);
    /* KV cache: K and V, n_kv heads of head_dim per layer per token. */
    double kv_tok_bf16 = 2.0 * c->n_layers * c->n_kv_heads * c->head_dim * 2;
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", ga_model_name(m));
        cJSON_AddStringToObject(o, "variant", ga_gate_mode_name(c->gate));
        cJSON_AddNumberToObject(o, "vocab_size", c->vocab_size);
        cJSON_AddNumberToObject(o, "hidden_size", c->hidden_size);
        cJSON_AddNumberToObject(o, "intermediate_size", c->intermediate_size);
        cJSON_AddNumberToObject(o, "num_hidden_layers", c->n_layers);
        cJSON_AddNumberToObject(o, "num_attention_heads", c->n_heads);
        cJSON_AddNumberToObject(o, "num_key_value_heads", c->n_kv_heads);
        cJSON_AddNumberToObject(o, "head_dim", c->head_dim);
        cJSON_AddNumberToObject(o, "q_proj_rows", ga_config_q_rows(c));
        cJSON_AddNumberToObject(o, "gate_dim", ga_config_gate_dim(c));
        cJSON_AddBoolToObject(o, "tie_word_embeddings", c->tie_word_embeddings);
        cJSON_AddBoolToObject(o, "attention_bias", c->attention_bias);
        cJSON_AddNumberToObject(o, "rope_theta", c->rope_theta);
        cJSON_AddNumberToObject(o, "max_position_embeddings", c->max_position_embeddings);
        cJSON_AddStringToObject(o, "rope_scaling", rope_desc);
        cJSON_AddNumberToObject(o, "usable_context", ga_config_max_context(c));
        cJSON_AddNumberToObject(o, "parameters", (double)params);
        cJSON_AddStringToObject(o, "weight_dtype", ga_dtype_name(ga_model_weight_dtype(m)));
        cJSON_AddNumberToObject(o, "weight_bytes", (double)stored);
        /* what the CUDA backend holds by default (FP8 projections as FP8) */
        cJSON_AddNumberToObject(o, "gpu_weight_bytes",
                                (double)(params * 2 - ga_cli_fp8_saving(m, false)));
        add_quant_json(o, c);
        cJSON_AddNumberToObject(o, "kv_bytes_per_token_bf16", kv_tok_bf16);
        if (tp > 1) {
            cJSON *r = cJSON_AddArrayToObject(o, "tp_rank_gpu_weight_bytes");
            for (int i = 0; i < tp; i++)
                cJSON_AddItemToArray(r,
                                     cJSON_CreateNumber((double)ga_tp_rank_weight_bytes(c, tp, i)));
            cJSON_AddNumberToObject(o, "tp_rank_kv_bytes_per_token_bf16", kv_tok_bf16 / tp);
        }
        char *txt = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        if (!txt) {
            ga_model_free(m);
            return ga_cli_fail("info", "out of memory");
        }
        puts(txt);
        free(txt);
    } else {
        printf("model            %s (%s)\n", ga_model_name(m), dir);
        printf("variant          %s attention%s\n", ga_gate_mode_name(c->gate),
               c->gate == GA_GATE_HEADWISE      ? " gate (one sigmoid gate per head)"
               : c->gate == GA_GATE_ELEMENTWISE ? " gate (one sigmoid gate per output element)"
                                                : " (no output gate)");
        printf("layers           %d\n", c->n_layers);
        printf("hidden           %d (intermediate %d, SwiGLU)\n", c->hidden_size,
               c->intermediate_size);
        printf("heads            %d query, %d key/value (G = %d), head_dim %d\n", c->n_heads,
               c->n_kv_heads, c->n_heads / c->n_kv_heads, c->head_dim);
        printf("q_proj rows      %d (%d query + %d gate)\n", ga_config_q_rows(c),
               c->n_heads * c->head_dim, ga_config_gate_dim(c));
        printf("vocab            %d (%s embeddings)\n", c->vocab_size,
               c->tie_word_embeddings ? "tied" : "untied");
        printf("rope             theta %g, max positions %d, scaling %s\n", c->rope_theta,
               c->max_position_embeddings, rope_desc);
        printf("usable context   %d tokens\n", ga_config_max_context(c));
        printf("qk norm / bias   %s / %s\n", c->use_qk_norm ? "yes" : "no",
               c->attention_bias ? (c->o_bias ? "q,k,v,o" : "q,k,v") : "none");
        printf("parameters       %lld (%.3f B)\n", (long long)params, params / 1e9);
        printf("weights          %s, %.2f MiB as stored\n", ga_dtype_name(ga_model_weight_dtype(m)),
               stored / 1048576.0);
        print_quant(c);
        const int64_t saved = ga_cli_fp8_saving(m, false);
        if (saved > 0)
            printf("memory           %.2f MiB on the GPU (FP8 projections as FP8; %.2f MiB as "
                   "bf16), %.2f MiB as fp32 (CPU backend)\n",
                   (params * 2 - saved) / 1048576.0, params * 2 / 1048576.0,
                   params * 4 / 1048576.0);
        else
            printf("memory           %.2f MiB as bf16 (GPU), %.2f MiB as fp32 (CPU backend)\n",
                   params * 2 / 1048576.0, params * 4 / 1048576.0);
        printf("kv cache         %.1f KiB per token as bf16 (GPU), %.1f KiB as fp32 (CPU); "
               "%.1f MiB for 4096 tokens on the GPU\n",
               kv_tok_bf16 / 1024, kv_tok_bf16 * 2 / 1024, kv_tok_bf16 * 4096 / 1048576.0);
        if (tp > 1)
            printf("tensor parallel  %d GPUs: weights %.2f MiB on rank 0, %.2f MiB on each other "
                   "rank (bf16); kv cache %.1f KiB per token on each\n",
                   tp, ga_tp_rank_weight_bytes(c, tp, 0) / 1048576.0,
                   ga_tp_rank_weight_bytes(c, tp, 1) / 1048576.0, kv_tok_bf16 / tp / 1024);
    }
    ga_model_free(m);
    return ga_cli_finish_stdout("info");
}
