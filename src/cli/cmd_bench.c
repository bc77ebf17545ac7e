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
#include "presets.h"

#ifndef GATTN_COMMIT
#define GATTN_COMMIT "unknown"
#endif

static const char *C = "bench";

/* Defaults without a GPU: the paper's shape would take 10 GB and many minutes on a CPU, so
 * the CPU gets a smaller shape and shorter lists that finish in about a minute. */
#define CPU_PRESET "small"
static const ga_bench_list CPU_PREFILL = {{64, 256}, 2}, CPU_DEPTHS = {{0, 256}, 2},
                           CPU_BATCHES = {{1, 4}, 2};
#define CPU_DECODE_TOKENS 16

/* "512,2048" -> sorted distinct ints in [o->lo, o->hi] into the ga_bench_list o->dst. */
static int parse_list(const char *cmd, const ga_opt *o, const char *s) {
    int32_t *v;
    int k;
    ga_bench_list *l = o->dst;
    if (ga_cli_list(cmd, o->name, o->what, s, &v, &k)) return -1;
    if (k > MAX_LIST) {
        free(v);
        return ga_cli_usage(cmd, "%s: at most %d values", o->name, MAX_LIST), -1;
    }
    l->n = 0;
    for (int i = 0; i < k; i++) {
        if (v[i] < o->lo || v[i] > o->hi) {
            ga_cli_usage(cmd, "%s: %d is outside [%.0f, %.0f]", o->name, v[i], o->lo, o->hi);
            free(v);
            return -1;
        }
        int j = l->n;
        while (j > 0 && l->v[j - 1] > v[i])
            j--;
        if (j > 0 && l->v[j - 1] == v[i]) continue;
        memmove(l->v + j + 1, l->v + j, (size_t)(l->n - j) * sizeof *l->v);
        l->v[j] = v[i];
        l->n++;
    }
    free(v);
    return 0;
}

static int parse_variants(const char *cmd, const ga_opt *o, const char *s) {
    ga_bench_args *a = o->dst;
    a->n_variants = 0;
    char *dup = strdup(s), *save = NULL;
    if (!dup) return ga_cli_fail(cmd, "out of memory"), -1;
    int rc = 0;
    for (char *t = strtok_r(dup, ",", &save); t && !rc; t = strtok_r(NULL, ",", &save)) {
        ga_gate_mode g;
        if (ga_variant_parse(t, &g)) {
            rc = ga_cli_usage(cmd, "%s: '%s' is not %s", o->name, t, GA_VARIANT_NAMES);
            break;
        }
        for (int i = 0; i < a->n_variants; i++)
            if (a->variants[i] == g) rc = ga_cli_usage(cmd, "%s: '%s' appears twice", o->name, t);
        if (!rc) a->variants[a->n_variants++] = g;
    }
    free(dup);
    if (!rc && !a->n_variants) rc = ga_cli_usage(cmd, "%s: empty list", o->name);
    return rc ? -1 : 0;
}

#define LIST_OPT(N, D, LO, HI, WHAT, H)                                                            \
    {                                                                                              \
        .name = (N), .type = GA_OPT_CUSTOM, .parse = parse_list, .dst = (D), .lo = (LO),           \
        .hi = (HI), .what = (WHAT), .meta = "LIST", .help = (H)                                    \
    }

/* 0 to go on, else the exit code (0 after --help). */
static int parse_args(int argc, char **argv, ga_bench_args *a) {
    const ga_preset *gpu = ga_preset_find("paper-1.7b");
    *a = (ga_bench_args){.decode_tokens = 128,
                         .reps = 3,
                         .warmup = 1,
                         .n_variants = 3,
                         .variants = {GA_GATE_NONE, GA_GATE_HEADWISE, GA_GATE_ELEMENTWISE},
                         .prefill = {{512, 2048, 8192}, 3},
                         .depths = {{0, 4096, 32768}, 3},
                         .batches = {{1, 32}, 2},
                         .shape = gpu->shape};
    ga_config over = {0};
    bool untied = false;
    ga_opt opts[] = {
        GA_O_STR("--model", &a->model_dir, "DIR", "benchmark this model folder as it is"),
        GA_O_DEVICE(&a->device),
        GA_O_CUDA_GEMM(&a->cuda_gemm),
        GA_O_PREFILL_CHUNK(&a->prefill_chunk),
        GA_O_WEIGHTS_DTYPE(&a->cuda_weights),
        GA_O_FP8_MATH(&a->fp8_math),
        GA_TP_OPTS(&a->tp),
        GA_O_CUSTOM("--variants", parse_variants, a, "LIST",
                    "baseline,headwise,elementwise (default: all three)"),
        LIST_OPT("--prefill", &a->prefill, 1, 1 << 24, "prompt lengths",
                 "prompt lengths (default 512,2048,8192; CPU 64,256)"),
        LIST_OPT("--depths", &a->depths, 0, 1 << 24, "context depths",
                 "decode context depths (default 0,4096,32768; CPU 0,256)"),
        GA_O_LONG("--decode-tokens", &a->decode_tokens, 1, 1 << 20, "N",
                  "tokens decoded per repetition (default 128; CPU 16)"),
        LIST_OPT("--batch", &a->batches, 1, 4096, "batch sizes",
                 "decode batch sizes (default 1,32; CPU 1,4)"),
        GA_O_LONG("--reps", &a->reps, 1, 1000, "N", "timed repetitions (default 3)"),
        GA_O_LONG("--warmup", &a->warmup, 0, 1000, "N", "warm-up repetitions (default 1)"),
        GA_O_STR("--csv", &a->csv, "FILE", "also write the rows as CSV"),
        GA_O_STR("--json", &a->json, "FILE", "also write the rows as JSON"),
        GA_O_LONG("--threads", &a->threads, 1, 1024, "N", "CPU threads (default: all cores)"),
        GA_SHAPE_OPTS(&over),
        GA_O_FLAG("--untied", &untied, "a separate lm_head (random weights)"),
        GA_ROPE_OPTS(&a->rope),
    };
    ga_cli_spec spec = {
        .cmd = C,
        .usage = "[--model DIR] [--device D] [--variants LIST] [--prefill LIST] [--depths LIST]\n"
                 "         [--decode-tokens N] [--batch LIST] [--reps N] [--warmup N] [--csv F]\n"
                 "         [--json F] [--threads N] [--rope-scaling yarn|linear --rope-factor F]\n"
                 "         [shape options]",
        .about =
            "Without --model: random bf16 weights in memory, one model per variant, at the\n"
            "paper's 1.7B shape (28 layers, hidden 2048, 16/8 heads, head_dim 128,\n"
            "intermediate 6144, vocab 151936, tied) on a GPU. On the CPU backend (--device cpu,\n"
            "or no GPU) the default is the 'small' shape (4 layers, hidden 256, 4/2 heads x 64,\n"
            "intermediate 768, vocab 8192) with the shorter CPU lists below: about a minute.\n"
            "Each row is reported on stderr as it finishes (with an ETA on a terminal); the\n"
            "markdown table on stdout: mean and min-max time per repetition, tokens/s, GB/s\n"
            "(weights + KV read), TFLOP/s, the overhead against baseline and the device memory\n"
            "in use (CUDA). Rows beyond the model's max positions or the device memory are\n"
            "skipped (listed). --rope-scaling yarn --rope-factor 4 times depths past\n"
            "max_position_embeddings (e.g. --depths 131072 at the 1.7B shape), as Qwen's\n"
            "model cards extend the context.\n",
        .opts = opts,
        .n_opts = GA_N_OPTS(opts)};
    int rc = ga_cli_parse(&spec, argc, argv);
    const int tp_rc = ga_cli_tp_check(&spec, &a->tp);
    if (rc) return rc; /* GA_CLI_HELP or the usage exit code */
    if (tp_rc) return tp_rc;
    if ((rc = ga_cli_rope_check(&spec, &a->rope))) return rc;
    bool shape_given;
    ga_config *c = &a->shape;
    if ((rc = ga_cli_shape_apply(&spec, &over, c, &shape_given))) return rc;
    if (untied) c->tie_word_embeddings = false;
    shape_given |= untied;
    if (a->model_dir && (shape_given || ga_cli_opt(&spec, "--variants")->given))
        return ga_cli_usage(C, "--model benchmarks that model as it is: drop the shape flags "
                               "and --variants");
    /* The CPU default: only when no shape was asked for and the run lands on the CPU. */
    bool cpu = a->device == GA_DEVICE_CPU || (a->device == GA_DEVICE_AUTO && !ga_cuda_available());
    if (cpu && !a->model_dir && !shape_given) {
        a->shape = ga_preset_find(CPU_PRESET)->shape;
        if (!ga_cli_opt(&spec, "--prefill")->given) a->prefill = CPU_PREFILL;
        if (!ga_cli_opt(&spec, "--depths")->given) a->depths = CPU_DEPTHS;
        if (!ga_cli_opt(&spec, "--batch")->given) a->batches = CPU_BATCHES;
        if (!ga_cli_opt(&spec, "--decode-tokens")->given) a->decode_tokens = CPU_DECODE_TOKENS;
        fprintf(stderr,
                "gattn bench: no GPU in use: benchmarking the '%s' shape on the CPU (about a "
                "minute); give shape options (e.g. --layers 28 --hidden 2048) for another\n",
                CPU_PRESET);
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
    return 0;
}

int ga_cmd_bench(int argc, char **argv) {
    ga_bench_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc) return ga_cli_parse_exit(rc);
    ga_bench_report rep = {.commit = GATTN_COMMIT,
                           .warmup = (int)a.warmup,
                           .reps = (int)a.reps,
                           .prefill_chunk =
                               a.prefill_chunk ? a.prefill_chunk : GA_PREFILL_CHUNK_DEFAULT};
    ga_bench_ctx b = {.a = &a, .rep = &rep, .tty = isatty(2) != 0};
    b.rows_total = ga_bench_rows_per_variant(&a) * (a.model_dir ? 1 : a.n_variants);
    rep.fp8_fast = a.fp8_math == GA_FP8_MATH_FAST;
    b.t_start = ga_bench_now();
    ga_model *m = NULL;
    if (a.model_dir) {
        if (ga_model_load(a.model_dir, &m, &b.err)) {
            rc = ga_cli_fail_err(C, &b.err);
            goto done;
        }
        if ((rc = ga_cli_rope_apply(C, &a.rope, m))) goto done;
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
            if ((rc = ga_cli_rope_apply(C, &a.rope, m))) break;
            if (v == 0) rep.shape = *ga_model_config(m); /* with the scaling in force */
            rc = ga_bench_run_variant(&b, m);
            ga_model_free(m);
            m = NULL;
        }
    }
    if (rc) goto done;
    if (!rep.device) rep.device = strdup("none");
    ga_bench_overheads(&rep);
    ga_bench_write_markdown(&rep, stdout);
    if ((rc = ga_cli_finish_stdout(C))) goto done;
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
