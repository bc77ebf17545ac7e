/*
 * gattn write-model: a random-weight model folder in the published format.
 *
 * The folder must be new or empty: an old model left beside the new one would be read in its
 * place (a model.safetensors is loaded ahead of new shards). With --force the files a model
 * folder is made of (below) are removed first and everything else there is kept.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "core/path.h"
#include "presets.h"

static const char *C = "write-model";

/* The files that make a Hugging Face model folder (weights, index, config, tokenizer): what
 * write-model writes and what a loader may read. */
static bool is_model_file(const char *name) {
    static const char *const names[] = {
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "model.safetensors.index.json",
        "vocab.json",
        "merges.txt",
        "special_tokens_map.json",
        "added_tokens.json",
        "pytorch_model.bin",
        "pytorch_model.bin.index.json",
        "chat_template.jinja",
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(name, names[i])) return true;
    int a, b, len = 0;
    /* model-00001-of-00003.safetensors, the shards of any writer */
    return sscanf(name, "model-%5d-of-%5d.safetensors%n", &a, &b, &len) == 2 &&
           (size_t)len == strlen(name);
}

/* Makes `out` ready for a new model: absent (created by the writer), an empty folder, or with
 * --force a folder whose model files are removed. Returns 0 or the exit code. */
static int prepare_out(const char *out, bool force) {
    struct stat st;
    if (stat(out, &st) != 0) {
        if (errno == ENOENT) return 0;
        return ga_cli_fail(C, "--out: %s: %s", out, strerror(errno));
    }
    if (!S_ISDIR(st.st_mode)) return ga_cli_fail(C, "--out: %s exists and is not a folder", out);
    DIR *d = opendir(out);
    if (!d) return ga_cli_fail(C, "--out: cannot read folder %s: %s", out, strerror(errno));
    int rc = 0, entries = 0;
    char first[256] = "";
    struct dirent *e;
    while (!rc && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        if (!entries++) snprintf(first, sizeof first, "%s", e->d_name);
        if (!force || !is_model_file(e->d_name)) continue;
        char *p = ga_path_join(out, e->d_name);
        if (!p) {
            rc = ga_cli_fail(C, "out of memory");
            break;
        }
        struct stat fs;
        if (lstat(p, &fs) == 0 && S_ISDIR(fs.st_mode))
            rc = ga_cli_fail(C, "--force: %s is a folder; not removing it", p);
        else if (unlink(p) != 0 && errno != ENOENT)
            rc = ga_cli_fail(C, "--force: cannot remove %s: %s", p, strerror(errno));
        free(p);
    }
    closedir(d);
    if (!rc && entries && !force)
        rc = ga_cli_fail(C,
                         "--out: %s is not empty (it holds '%s'%s); an old model there would be "
                         "read instead of the new one: give --force to replace its model files",
                         out, first, entries > 1 ? " and more" : "");
    return rc;
}

static int parse_dtype(const char *cmd, const ga_opt *o, const char *v) {
    ga_dtype *d = o->dst;
    if (!strcmp(v, "f32"))
        *d = GA_F32;
    else if (!strcmp(v, "bf16"))
        *d = GA_BF16;
    else if (!strcmp(v, "f16"))
        *d = GA_F16;
    else if (!strcmp(v, "fp8"))
        *d = GA_F8_E4M3;
    else
        return ga_cli_usage(cmd, "%s: '%s' is not f32, bf16, f16 or fp8", o->name, v), -1;
    return 0;
}

static int parse_preset(const char *cmd, const ga_opt *o, const char *v) {
    if (!(*(const ga_preset **)o->dst = ga_preset_find(v)))
        return ga_cli_usage(cmd, "%s: '%s' is not %s", o->name, v, ga_preset_names()), -1;
    return 0;
}

/* --family: a hybrid config (issue 15) on the preset's sizes: 3 Gated DeltaNet layers to 1 full
 * attention layer, DeltaNet heads of half the attention head size, and for the MoE families 8
 * experts of top-2 (Qwen3-Next: layer 0 dense through mlp_only_layers, so both MLP kinds run). */
static int apply_family(const char *f, ga_config *c) {
    if (!strcmp(f, "qwen3"))
        return 0;
    else if (!strcmp(f, "qwen3_5"))
        c->arch = GA_ARCH_QWEN3_5;
    else if (!strcmp(f, "qwen3_5_moe"))
        c->arch = GA_ARCH_QWEN3_5_MOE;
    else if (!strcmp(f, "qwen3_next"))
        c->arch = GA_ARCH_QWEN3_NEXT;
    else
        return ga_cli_usage(C, "--family: '%s' is not qwen3, qwen3_5, qwen3_5_moe or qwen3_next",
                            f);
    ga_hybrid_config *h = &c->hybrid;
    for (int l = 0; l < c->n_layers; l++)
        h->layer_is_linear[l] = (l + 1) % 4 != 0;
    h->linear_conv_kernel_dim = 4;
    h->linear_num_key_heads = c->n_kv_heads;
    h->linear_num_value_heads = c->n_heads;
    h->linear_key_head_dim = h->linear_value_head_dim = c->head_dim / 2 > 0 ? c->head_dim / 2 : 1;
    h->attn_output_gate = true;
    h->partial_rotary_factor = 0.25;
    h->moe = c->arch != GA_ARCH_QWEN3_5;
    h->num_experts = 8;
    h->num_experts_per_tok = 2;
    h->moe_intermediate_size = c->intermediate_size / 4 > 0 ? c->intermediate_size / 4 : 1;
    h->shared_expert_intermediate_size =
        c->intermediate_size / 2 > 0 ? c->intermediate_size / 2 : 1;
    h->norm_topk_prob = true;
    for (int l = 0; l < c->n_layers; l++)
        h->layer_is_moe[l] = h->moe && !(c->arch == GA_ARCH_QWEN3_NEXT && l == 0);
    c->gate = GA_GATE_ELEMENTWISE;
    c->use_qk_norm = true;
    return 0;
}

int ga_cmd_write_model(int argc, char **argv) {
    const char *out = NULL, *family = "qwen3";
    const ga_preset *preset = ga_preset_find("tiny");
    ga_config over = {0};
    ga_gate_mode gate = GA_GATE_NONE;
    ga_dtype dtype = GA_F32;
    double theta = 0, init_std = 0;
    long seed = 1;
    int shards = 1, fp8_block = 0;
    bool untied = false, bias = false, tokenizer = false, force = false;
    ga_opt opts[] = {
        GA_O_STR("--out", &out, "DIR", "the folder to write (required; new or empty)"),
        GA_O_FLAG("--force", &force,
                  "write into a non-empty folder: its model files (config, weights,\n"
                  "index, tokenizer) are removed first, other files are kept"),
        GA_O_VARIANT("--variant", &gate, "baseline (default), headwise or elementwise"),
        GA_O_STR("--family", &family, "F",
                 "qwen3 (default), or a hybrid (issue 15): qwen3_5 (dense),\n"
                 "qwen3_5_moe or qwen3_next (MoE), 3 DeltaNet : 1 attention layers"),
        GA_O_CUSTOM("--preset", parse_preset, &preset, "NAME",
                    "tiny (default), small, qwen3-0.6b, paper-1.7b, or the hybrids\n"
                    "qwen3.5-0.8b, qwen3.5-9b, qwen3-next-80b-a3b (published shapes);\n"
                    "the options below override its sizes"),
        GA_SHAPE_OPTS(&over),
        GA_O_FLOAT("--theta", &theta, 1e-6, 1e12, "X", "RoPE theta (default 1e6)"),
        GA_O_FLAG("--untied", &untied, "a separate lm_head.weight"),
        GA_O_FLAG("--bias", &bias, "q/k/v/o projection biases"),
        GA_O_CUSTOM("--dtype", parse_dtype, &dtype, "T",
                    "f32, bf16 or f16 (default: the preset's), or fp8: projections\n"
                    "F8_E4M3 with block scales (as released FP8 folders), the rest bf16"),
        GA_O_INT("--fp8-block", &fp8_block, 1, 65536, "N",
                 "with --dtype fp8: N x N scale blocks (default 128)"),
        GA_O_INT("--shards", &shards, 1, 64, "N", "safetensors shards (> 1: with an index)"),
        GA_O_LONG("--seed", &seed, 0, 0x7fffffffL, "N", "random seed (default 1)"),
        GA_O_FLOAT("--init-std", &init_std, 1e-6, 10, "X", "std of the weights (default 0.02)"),
        GA_O_FLAG("--tokenizer", &tokenizer,
                  "add a small byte-level BPE tokenizer.json (--vocab >= 259)"),
    };
    ga_cli_spec spec = {
        .cmd = C,
        .usage = "--out DIR [--force] [--family F] [--variant V] [--preset NAME] [shape options] "
                 "[--dtype T [--fp8-block N]]\n"
                 "         [--shards N] [--seed N] [--init-std X] [--tokenizer]",
        .about = "Writes config.json and safetensors (sharded with an index for --shards > 1)\n"
                 "with seeded random weights. The tiny preset: 4 layers, hidden 128, 4 query\n"
                 "heads, 2 KV heads, head_dim 32, intermediate 384, vocab 1024, tied, f32.\n"
                 "paper-1.7b: hidden 2048, 28 layers, 16/8 heads, head_dim 128, intermediate\n"
                 "6144, vocab 151936, tied, bf16 (3.4 GB on disk).\n",
        .opts = opts,
        .n_opts = GA_N_OPTS(opts)};
    int rc = ga_cli_parse(&spec, argc, argv);
    if (rc) return ga_cli_parse_exit(rc);
    if (!out) return ga_cli_usage(C, "--out DIR is required");

    ga_config c = preset->shape;
    bool any;
    if ((rc = ga_cli_shape_apply(&spec, &over, &c, &any))) return rc;
    if (c.arch == GA_ARCH_QWEN3) c.gate = gate; /* a hybrid preset's gate is its family's */
    if (ga_cli_opt(&spec, "--theta")->given) c.rope_theta = theta;
    if (untied) c.tie_word_embeddings = false;
    if (bias) c.attention_bias = c.o_bias = true;
    if ((rc = apply_family(family, &c))) return rc;
    ga_write_opts o = {.seed = (uint64_t)seed,
                       .dtype = ga_cli_opt(&spec, "--dtype")->given ? dtype : preset->dtype,
                       .fp8_block = fp8_block,
                       .n_shards = shards,
                       .init_std = (float)init_std,
                       .tokenizer = tokenizer};
    if (fp8_block && o.dtype != GA_F8_E4M3) return ga_cli_usage(C, "--fp8-block needs --dtype fp8");
    if (o.tokenizer && c.vocab_size < 259)
        return ga_cli_usage(C, "--tokenizer needs --vocab >= 259 (256 bytes + 3 special tokens)");

    if ((rc = prepare_out(out, force))) return rc;
    ga_err err = {{0}};
    if (ga_model_write_random(out, &c, &o, &err)) return ga_cli_fail_err(C, &err);
    printf(
        "wrote %s: %s%s%s, %d layers, hidden %d, %d/%d heads x %d, vocab %d, %s, %lld parameters\n",
        out, c.arch == GA_ARCH_QWEN3 ? "" : ga_arch_name(c.arch),
        c.arch == GA_ARCH_QWEN3 ? "" : " ", ga_gate_mode_name(c.gate), c.n_layers, c.hidden_size,
        c.n_heads, c.n_kv_heads, c.head_dim, c.vocab_size, ga_dtype_name(o.dtype),
        (long long)ga_config_param_count(&c));
    return ga_cli_finish_stdout(C);
}
