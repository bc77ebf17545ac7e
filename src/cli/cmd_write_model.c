/* gattn write-model: a random-weight model folder in the published format. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: gattn write-model --out DIR [--variant baseline|headwise|elementwise]\n"
            "         [--preset tiny|paper-1.7b] [--layers N] [--hidden N] [--intermediate N]\n"
            "         [--heads N] [--kv-heads N] [--head-dim N] [--vocab N] [--max-pos N]\n"
            "         [--theta X] [--untied] [--bias] [--dtype f32|bf16|f16] [--shards N]\n"
            "         [--seed N] [--init-std X] [--tokenizer]\n"
            "  Writes config.json and safetensors (sharded with an index for --shards > 1) with\n"
            "  seeded random weights; --tokenizer adds a small byte-level BPE tokenizer.json\n"
            "  (needs --vocab >= 259). Defaults: the tiny preset (4 layers, hidden 128, 4 query\n"
            "  heads, 2 KV heads, head_dim 32, intermediate 384, vocab 1024, tied, f32).\n"
            "  paper-1.7b: hidden 2048, 28 layers, 16/8 heads, head_dim 128, intermediate 6144,\n"
            "  vocab 151936, tied, bf16 (3.4 GB on disk).\n");
}

int ga_cmd_write_model(int argc, char **argv) {
    const char *C = "write-model", *out = NULL;
    ga_config c = {.vocab_size = 1024,
                   .hidden_size = 128,
                   .intermediate_size = 384,
                   .n_layers = 4,
                   .n_heads = 4,
                   .n_kv_heads = 2,
                   .head_dim = 32,
                   .rms_norm_eps = 1e-6f,
                   .rope_theta = 1000000.0,
                   .max_position_embeddings = 4096,
                   .tie_word_embeddings = true,
                   .use_qk_norm = true,
                   .bos_token_id = -1};
    ga_write_opts o = {.seed = 1, .dtype = GA_F32, .n_shards = 1};
    /* First pass: the preset, so explicit sizes given in any order override it. */
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--preset") && i + 1 < argc) {
            const char *p = argv[i + 1];
            if (!strcmp(p, "paper-1.7b")) {
                c.vocab_size = 151936, c.hidden_size = 2048, c.intermediate_size = 6144;
                c.n_layers = 28, c.n_heads = 16, c.n_kv_heads = 8, c.head_dim = 128;
                c.max_position_embeddings = 40960;
                o.dtype = GA_BF16;
            } else if (strcmp(p, "tiny") != 0) {
                return ga_cli_fail(C, "--preset: '%s' is not tiny or paper-1.7b", p);
            }
        }
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        long x;
        double d;
        struct {
            const char *flag;
            int *dst;
            long lo, hi;
        } ints[] = {
            {"--layers", &c.n_layers, 1, 1024},
            {"--hidden", &c.hidden_size, 1, 65536},
            {"--intermediate", &c.intermediate_size, 1, 262144},
            {"--heads", &c.n_heads, 1, 1024},
            {"--kv-heads", &c.n_kv_heads, 1, 1024},
            {"--head-dim", &c.head_dim, 2, 1024},
            {"--vocab", &c.vocab_size, 1, 1 << 22},
            {"--max-pos", &c.max_position_embeddings, 1, 1 << 24},
            {"--shards", &o.n_shards, 1, 64},
        };
        bool done = false;
        for (size_t k = 0; k < sizeof ints / sizeof ints[0]; k++) {
            if (!strcmp(a, ints[k].flag)) {
                if (!(v = ga_cli_value(C, argc, argv, &i)) ||
                    ga_cli_int(C, a, v, ints[k].lo, ints[k].hi, &x))
                    return 1;
                *ints[k].dst = (int)x;
                done = true;
            }
        }
        if (done) continue;
        if (!strcmp(a, "--out")) {
            if (!(out = ga_cli_value(C, argc, argv, &i))) return 1;
        } else if (!strcmp(a, "--preset")) {
            i++; /* handled above */
        } else if (!strcmp(a, "--variant")) {
            if (!(v = ga_cli_value(C, argc, argv, &i))) return 1;
            if (!strcmp(v, "baseline"))
                c.gate = GA_GATE_NONE;
            else if (!strcmp(v, "headwise"))
                c.gate = GA_GATE_HEADWISE;
            else if (!strcmp(v, "elementwise"))
                c.gate = GA_GATE_ELEMENTWISE;
            else
                return ga_cli_fail(C, "--variant: '%s' is not baseline, headwise or elementwise",
                                   v);
        } else if (!strcmp(a, "--dtype")) {
            if (!(v = ga_cli_value(C, argc, argv, &i))) return 1;
            if (!strcmp(v, "f32"))
                o.dtype = GA_F32;
            else if (!strcmp(v, "bf16"))
                o.dtype = GA_BF16;
            else if (!strcmp(v, "f16"))
                o.dtype = GA_F16;
            else
                return ga_cli_fail(C, "--dtype: '%s' is not f32, bf16 or f16", v);
        } else if (!strcmp(a, "--seed")) {
            if (!(v = ga_cli_value(C, argc, argv, &i)) || ga_cli_int(C, a, v, 0, 0x7fffffffL, &x))
                return 1;
            o.seed = (uint64_t)x;
        } else if (!strcmp(a, "--theta")) {
            if (!(v = ga_cli_value(C, argc, argv, &i)) || ga_cli_float(C, a, v, 1e-6, 1e12, &d))
                return 1;
            c.rope_theta = d;
        } else if (!strcmp(a, "--init-std")) {
            if (!(v = ga_cli_value(C, argc, argv, &i)) || ga_cli_float(C, a, v, 1e-6, 10, &d))
                return 1;
            o.init_std = (float)d;
        } else if (!strcmp(a, "--untied")) {
            c.tie_word_embeddings = false;
        } else if (!strcmp(a, "--bias")) {
            c.attention_bias = c.o_bias = true;
        } else if (!strcmp(a, "--tokenizer")) {
            o.tokenizer = true;
        } else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else {
            return ga_cli_fail(C, "unknown argument '%s'", a);
        }
    }
    if (!out) {
        return ga_cli_fail(C, "--out DIR is required");
    }
    if (o.tokenizer && c.vocab_size < 259)
        return ga_cli_fail(C, "--tokenizer needs --vocab >= 259 (256 bytes + 3 special tokens)");
    ga_err err = {{0}};
    if (ga_model_write_random(out, &c, &o, &err)) return ga_cli_fail_err(C, &err);
    printf("wrote %s: %s, %d layers, hidden %d, %d/%d heads x %d, vocab %d, %s, %lld parameters\n",
           out, ga_gate_mode_name(c.gate), c.n_layers, c.hidden_size, c.n_heads, c.n_kv_heads,
           c.head_dim, c.vocab_size, ga_dtype_name(o.dtype), (long long)ga_config_param_count(&c));
    return 0;
}
