/*
 * gattn bench: prefill and decode speed of the baseline, headwise and elementwise variants at
 * one shape (random weights made in memory, or a model folder), like llama-bench.
 *
 * Per variant: prefill of each length at batch 1 (from an empty cache, logits of the last
 * token), and decode of N tokens per sequence at each context depth for each batch size
 * (greedy, tokens picked on the backend). Caches are filled to the depth by prefill, untimed.
 * A depth > 0 is filled once per row and the repetitions continue from where the previous
 * one stopped (repetition r, warm-ups counted, starts at depth d + r*N; the table shows
 * the timed range), because refilling 32 sequences of 32k tokens per repetition would cost
 * minutes; depth 0 restarts empty.
 *
 * Derived figures, per timed repetition:
 *  - matmul parameters P = every weight except the input embedding table (the LM head
 *    counts, tied or not, since it is multiplied every token);
 *  - FLOPs: 2*P per token (prefill: 2*(P - lm_head) per token + 2*lm_head for the last one)
 *    plus attention 4*layers*heads*head_dim*(keys attended) per token;
 *  - bytes: the backend's weights (bf16 on CUDA, fp32 on the CPU) read once per decode step
 *    or prefill, plus the K and V rows every sequence attends to, per decode step.
 * The commit is baked in at configure time (GATTN_COMMIT, bench/gen.cmake).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_run.h"
#include "cli.h"

#ifndef GATTN_COMMIT
#define GATTN_COMMIT "unknown"
#endif

static const char *C = "bench";

static void usage(FILE *f) {
    fprintf(f,
            "usage: gattn bench [--model DIR] [--device cpu|cuda|auto]\n"
            "         [--variants baseline,headwise,elementwise] [--prefill 512,2048,8192]\n"
            "         [--depths 0,4096,32768] [--decode-tokens 128] [--batch 1,32]\n"
            "         [--reps 3] [--warmup 1] [--csv FILE] [--json FILE] [--threads N]\n"
            "         [--layers N] [--hidden N] [--heads N] [--kv-heads N] [--head-dim N]\n"
            "         [--intermediate N] [--vocab N] [--max-pos N] [--untied]\n"
            "  Without --model: random bf16 weights in memory at the paper's 1.7B shape\n"
            "  (28 layers, hidden 2048, 16/8 heads, head_dim 128, intermediate 6144, vocab\n"
            "  151936, tied, max positions 40960), one model per variant. Prints a markdown\n"
            "  table: mean and min-max time per repetition, tokens/s, GB/s (weights + KV read),\n"
            "  TFLOP/s, the overhead against baseline and the device memory in use (CUDA).\n"
            "  Rows beyond the model's max positions or the device memory are skipped (listed).\n");
}

/* "512,2048" -> sorted unique ints in [lo, hi]. */
static int parse_list(const char *opt, const char *s, long lo, long hi, int *out, int *n) {
    int32_t *v;
    int k;
    if (ga_cli_tokens(C, opt, s, &v, &k)) return -1;
    if (k > MAX_LIST) {
        free(v);
        return ga_cli_fail(C, "%s: at most %d values", opt, MAX_LIST), -1;
    }
    *n = 0;
    for (int i = 0; i < k; i++) {
        if (v[i] < lo || v[i] > hi) {
            ga_cli_fail(C, "%s: %d is outside [%ld, %ld]", opt, v[i], lo, hi);
            free(v);
            return -1;
        }
        int j = *n;
        while (j > 0 && out[j - 1] > v[i])
            j--;
        if (j > 0 && out[j - 1] == v[i]) continue;
        memmove(out + j + 1, out + j, (size_t)(*n - j) * sizeof *out);
        out[j] = v[i];
        (*n)++;
    }
    free(v);
    return 0;
}

static int parse_variants(const char *s, ga_bench_args *a) {
    a->n_variants = 0;
    char *dup = strdup(s), *save = NULL;
    if (!dup) return ga_cli_fail(C, "out of memory"), -1;
    int rc = 0;
    for (char *t = strtok_r(dup, ",", &save); t && !rc; t = strtok_r(NULL, ",", &save)) {
        ga_gate_mode g;
        if (!strcmp(t, "baseline"))
            g = GA_GATE_NONE;
        else if (!strcmp(t, "headwise"))
            g = GA_GATE_HEADWISE;
        else if (!strcmp(t, "elementwise"))
            g = GA_GATE_ELEMENTWISE;
        else {
            rc = ga_cli_fail(C, "--variants: '%s' is not baseline, headwise or elementwise", t);
            break;
        }
        for (int i = 0; i < a->n_variants; i++)
            if (a->variants[i] == g) rc = ga_cli_fail(C, "--variants: '%s' appears twice", t);
        if (!rc) a->variants[a->n_variants++] = g;
    }
    free(dup);
    if (!rc && !a->n_variants) rc = ga_cli_fail(C, "--variants: empty list");
    return rc ? -1 : 0;
}

static int parse_args(int argc, char **argv, ga_bench_args *a) {
    *a = (ga_bench_args){.decode_tokens = 128,
                         .reps = 3,
                         .warmup = 1,
                         .n_variants = 3,
                         .variants = {GA_GATE_NONE, GA_GATE_HEADWISE, GA_GATE_ELEMENTWISE},
                         .prefill = {512, 2048, 8192},
                         .n_prefill = 3,
                         .depths = {0, 4096, 32768},
                         .n_depths = 3,
                         .batches = {1, 32},
                         .n_batches = 2,
                         .shape = {.vocab_size = 151936,
                                   .hidden_size = 2048,
                                   .intermediate_size = 6144,
                                   .n_layers = 28,
                                   .n_heads = 16,
                                   .n_kv_heads = 8,
                                   .head_dim = 128,
                                   .rms_norm_eps = 1e-6f,
                                   .rope_theta = 1000000.0,
                                   .max_position_embeddings = 40960,
                                   .tie_word_embeddings = true,
                                   .use_qk_norm = true,
                                   .torch_dtype = GA_BF16,
                                   .bos_token_id = -1}};
    bool shape_given = false, variants_given = false;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *v;
        long x;
        ga_config *c = &a->shape;
        struct {
            const char *flag;
            int *dst;
            long lo, hi;
        } dims[] = {{"--layers", &c->n_layers, 1, 1024},
                    {"--hidden", &c->hidden_size, 1, 65536},
                    {"--heads", &c->n_heads, 1, 1024},
                    {"--kv-heads", &c->n_kv_heads, 1, 1024},
                    {"--head-dim", &c->head_dim, 2, 1024},
                    {"--intermediate", &c->intermediate_size, 1, 262144},
                    {"--vocab", &c->vocab_size, 2, 1 << 22},
                    {"--max-pos", &c->max_position_embeddings, 1, 1 << 24}};
        struct {
            const char *flag;
            long *dst, lo, hi;
        } nums[] = {{"--decode-tokens", &a->decode_tokens, 1, 1 << 20},
                    {"--reps", &a->reps, 1, 1000},
                    {"--warmup", &a->warmup, 0, 1000},
                    {"--threads", &a->threads, 1, 1024}};
        bool done = false;
        for (size_t k = 0; k < sizeof dims / sizeof dims[0] && !done; k++) {
            if (strcmp(o, dims[k].flag)) continue;
            if (!(v = ga_cli_value(C, argc, argv, &i)) ||
                ga_cli_int(C, o, v, dims[k].lo, dims[k].hi, &x))
                return 1;
            *dims[k].dst = (int)x;
            shape_given = done = true;
        }
        for (size_t k = 0; k < sizeof nums / sizeof nums[0] && !done; k++) {
            if (strcmp(o, nums[k].flag)) continue;
            if (!(v = ga_cli_value(C, argc, argv, &i)) ||
                ga_cli_int(C, o, v, nums[k].lo, nums[k].hi, nums[k].dst))
                return 1;
            done = true;
        }
        if (done) continue;
        if (!strcmp(o, "--model")) {
            if (!(a->model_dir = ga_cli_value(C, argc, argv, &i))) return 1;
        } else if (!strcmp(o, "--csv")) {
            if (!(a->csv = ga_cli_value(C, argc, argv, &i))) return 1;
        } else if (!strcmp(o, "--json")) {
            if (!(a->json = ga_cli_value(C, argc, argv, &i))) return 1;
        } else if (!strcmp(o, "--device")) {
            if (!(v = ga_cli_value(C, argc, argv, &i)) || ga_cli_device(C, v, &a->device)) return 1;
        } else if (!strcmp(o, "--variants")) {
            if (!(v = ga_cli_value(C, argc, argv, &i)) || parse_variants(v, a)) return 1;
            variants_given = true;
        } else if (!strcmp(o, "--prefill")) {
            if (!(v = ga_cli_value(C, argc, argv, &i)) ||
                parse_list(o, v, 1, 1 << 24, a->prefill, &a->n_prefill))
                return 1;
        } else if (!strcmp(o, "--depths")) {
            if (!(v = ga_cli_value(C, argc, argv, &i)) ||
                parse_list(o, v, 0, 1 << 24, a->depths, &a->n_depths))
                return 1;
        } else if (!strcmp(o, "--batch")) {
            if (!(v = ga_cli_value(C, argc, argv, &i)) ||
                parse_list(o, v, 1, 4096, a->batches, &a->n_batches))
                return 1;
        } else if (!strcmp(o, "--untied")) {
            a->shape.tie_word_embeddings = false;
            shape_given = true;
        } else if (!strcmp(o, "--help") || !strcmp(o, "-h")) {
            usage(stdout);
            return -1;
        } else {
            return ga_cli_fail(C, "unknown argument '%s' (gattn bench --help)", o);
        }
    }
    /* Output files are checked first, so that a typo does not cost a whole run. */
    const char *outs[2] = {a->csv, a->json}, *names[2] = {"--csv", "--json"};
    for (int k = 0; k < 2; k++) {
        if (!outs[k]) continue;
        char *dir = strdup(outs[k]);
        if (!dir) return ga_cli_fail(C, "out of memory");
        char *slash = strrchr(dir, '/');
        const char *d = slash ? (slash == dir ? "/" : (*slash = 0, dir)) : ".";
        int w = access(d, W_OK);
        free(dir);
        if (w)
            return ga_cli_fail(C, "%s: cannot write '%s': %s", names[k], outs[k], strerror(errno));
    }
    const ga_config *c = &a->shape;
    if (a->model_dir && (shape_given || variants_given))
        return ga_cli_fail(C, "--model benchmarks that model as it is: drop the shape flags "
                              "and --variants");
    if (c->n_heads % c->n_kv_heads)
        return ga_cli_fail(C, "--heads %d is not a multiple of --kv-heads %d", c->n_heads,
                           c->n_kv_heads);
    if (c->head_dim % 2) return ga_cli_fail(C, "--head-dim %d must be even (RoPE)", c->head_dim);
    return 0;
}

int ga_cmd_bench(int argc, char **argv) {
    ga_bench_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc) return rc < 0 ? 0 : rc;
    ga_bench_report rep = {.commit = GATTN_COMMIT, .warmup = (int)a.warmup, .reps = (int)a.reps};
    ga_bench_ctx b = {.a = &a, .rep = &rep};
    ga_model *m = NULL;
    if (a.model_dir) {
        if (ga_model_load(a.model_dir, &m, &b.err)) {
            rc = ga_cli_fail_err(C, &b.err);
            goto done;
        }
        rep.shape = *ga_model_config(m);
        rep.dtype = ga_model_weight_dtype(m);
        rep.model = ga_model_name(m);
        rc = ga_bench_run_variant(&b, m);
    } else {
        rep.shape = a.shape;
        rep.dtype = GA_BF16;
        rep.model = "random";
        for (int v = 0; v < a.n_variants && !rc; v++) {
            ga_config cfg = a.shape;
            cfg.gate = a.variants[v];
            fprintf(stderr, "gattn bench: %s: making random weights\n",
                    ga_gate_mode_name(cfg.gate));
            if (ga_model_random(&cfg, 1, GA_BF16, &m, &b.err)) {
                rc = ga_cli_fail_err(C, &b.err);
                break;
            }
            rc = ga_bench_run_variant(&b, m);
            ga_model_free(m);
            m = NULL;
        }
    }
    if (rc) goto done;
    if (!rep.device) rep.device = strdup("none");
    ga_bench_overheads(&rep);
    ga_bench_write_markdown(&rep, stdout);
    fflush(stdout);
    if (a.csv && ga_bench_write_csv(&rep, a.csv)) {
        rc = ga_cli_fail(C, "--csv: cannot write '%s': %s", a.csv, strerror(errno));
        goto done;
    }
    if (a.json && ga_bench_write_json(&rep, a.json)) {
        rc = ga_cli_fail(C, "--json: cannot write '%s': %s", a.json, strerror(errno));
        goto done;
    }
done:
    ga_model_free(m);
    free((char *)rep.device);
    free(rep.rows);
    free(rep.skips);
    return rc;
}
