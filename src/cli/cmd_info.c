/* gattn info: what a model folder holds (variant, shapes, parameters, dtype, memory). */
#include <stdio.h>
#include <stdlib.h>

#include <cjson/cJSON.h>

#include "cli.h"

int ga_cmd_info(int argc, char **argv) {
    const char *dir = NULL;
    bool json = false;
    ga_cli_rope rope = {0};
    ga_opt opts[] = {
        GA_O_STR("--model", &dir, "DIR", "the model folder (required)"),
        GA_O_FLAG("--json", &json, "print one JSON object instead of text"),
        GA_ROPE_OPTS(&rope),
    };
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
    if (ga_model_load(dir, &m, &err)) return ga_cli_fail_err("info", &err);
    if ((rc = ga_cli_rope_apply(spec.cmd, &rope, m))) {
        ga_model_free(m);
        return rc;
    }
    const ga_config *c = ga_model_config(m);
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
        cJSON_AddNumberToObject(o, "kv_bytes_per_token_bf16", kv_tok_bf16);
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
        printf("memory           %.2f MiB as bf16 (GPU), %.2f MiB as fp32 (CPU backend)\n",
               params * 2 / 1048576.0, params * 4 / 1048576.0);
        printf("kv cache         %.1f KiB per token as bf16 (GPU), %.1f KiB as fp32 (CPU); "
               "%.1f MiB for 4096 tokens on the GPU\n",
               kv_tok_bf16 / 1024, kv_tok_bf16 * 2 / 1024, kv_tok_bf16 * 4096 / 1048576.0);
    }
    ga_model_free(m);
    return ga_cli_finish_stdout("info");
}
