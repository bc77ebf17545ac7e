/*
 * The `gattn` command-line program: one file per subcommand (cmd_*.c), each exporting
 * `int ga_cmd_NAME(int argc, char **argv)` (argv[0] is the subcommand name) that returns the
 * process exit code, plus what they share: the option parser (cli_opts.c), strict value
 * parsers and error lines (cli_common.c), the shape presets and variant names (presets.c) and
 * the JSON-lines reader and JSON string writer (jsonl.c).
 *
 * Exit codes, the same in every subcommand:
 *   0  success
 *   1  runtime failure: a bad or missing model file, an I/O error (stdout included), out of
 *      memory, a numeric failure, or a value that does not fit the model it names (a token
 *      id beyond its vocabulary)
 *   2  usage error: the command line itself is wrong (unknown option, missing or malformed
 *      value, conflicting or missing options); decided before any file is read.
 * Errors are one line on stderr, "gattn NAME: error: ...", naming the argument or file.
 */
#ifndef GATTN_CLI_H
#define GATTN_CLI_H

#include <stdio.h>

#include "gattn/gattn.h"

enum { GA_EXIT_OK = 0, GA_EXIT_FAIL = 1, GA_EXIT_USAGE = 2 };

typedef struct ga_cmd {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} ga_cmd;

int ga_cmd_info(int argc, char **argv);
int ga_cmd_logits(int argc, char **argv);
int ga_cmd_write_model(int argc, char **argv);
int ga_cmd_tokenize(int argc, char **argv);
int ga_cmd_detokenize(int argc, char **argv);
int ga_cmd_viz(int argc, char **argv);
int ga_cmd_generate(int argc, char **argv);
int ga_cmd_bench(int argc, char **argv);
int ga_cmd_serve(int argc, char **argv);
int ga_cmd_perplexity(int argc, char **argv);

/* ------------------------------------------------------------------ errors */

/* Prints "gattn CMD: error: <msg>" to stderr and returns 1 (use: return ga_cli_fail(...)). */
int ga_cli_fail(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Same for a library error. */
int ga_cli_fail_err(const char *cmd, const ga_err *err);
/* Same line for a usage error; returns 2. */
int ga_cli_usage(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Flushes stdout and checks that everything written to it arrived: returns 0, or 1 with
 * "cannot write to stdout" printed (a full disk, /dev/full, a closed pipe). Every subcommand
 * calls it before it reports success. */
int ga_cli_finish_stdout(const char *cmd);

/* ------------------------------------------------------------------ option values */

/* Strict parsers of one option value; 0 on success, -1 with the usage error printed. */
int ga_cli_int(const char *cmd, const char *opt, const char *s, long lo, long hi, long *out);
int ga_cli_float(const char *cmd, const char *opt, const char *s, double lo, double hi,
                 double *out);
/* "3,14,15" -> malloc'd values; rejects empty items, non-digits, values outside
 * [0, INT32_MAX]. `what` names the items in the error ("token ids", "layer numbers"). */
int ga_cli_list(const char *cmd, const char *opt, const char *what, const char *s, int32_t **v,
                int *n);
/* "cpu" | "cuda" | "gpu" | "auto" */
int ga_cli_device(const char *cmd, const char *opt, const char *s, ga_device *out);

/* ------------------------------------------------------------------ option tables */

typedef enum ga_opt_type {
    GA_OPT_FLAG,    /* bool: set to true */
    GA_OPT_STR,     /* const char *: a non-empty value */
    GA_OPT_INT,     /* int in [lo, hi] */
    GA_OPT_LONG,    /* long in [lo, hi] */
    GA_OPT_FLOAT,   /* double in [lo, hi] */
    GA_OPT_DEVICE,  /* ga_device */
    GA_OPT_VARIANT, /* ga_gate_mode: baseline | headwise | elementwise */
    GA_OPT_LIST,    /* ga_cli_ids: comma-separated non-negative integers, each in [lo, hi] */
    GA_OPT_CUSTOM,  /* parse(cmd, opt, value) */
} ga_opt_type;

typedef struct ga_cli_ids {
    int32_t *v; /* malloc'd; the caller frees */
    int n;
} ga_cli_ids;

typedef struct ga_opt ga_opt;
struct ga_opt {
    const char *name;  /* "--model" */
    const char *alias; /* "-n", or NULL */
    ga_opt_type type;
    void *dst;
    const char *meta; /* the value in --help ("DIR", "N"); NULL for a flag */
    const char *help;
    double lo, hi;    /* INT, LONG, FLOAT, LIST: the accepted range */
    const char *what; /* LIST: what the items are ("token ids"); CUSTOM: free for its use */
    int (*parse)(const char *cmd, const ga_opt *o, const char *value); /* CUSTOM: 0 or -1 */
    bool given;                                                        /* set by the parser */
};

typedef struct ga_cli_spec {
    const char *cmd;   /* "generate" */
    const char *usage; /* after "usage: gattn CMD " */
    const char *about; /* printed between the usage line and the options */
    ga_opt *opts;
    int n_opts;
    const char **positional; /* one positional argument (tokenize's TEXT), or NULL */
    const char *notes;       /* printed after the options, or NULL */
} ga_cli_spec;

/* Table entries (designated initializers: the fields a type does not use stay zero). */
#define GA_O_FLAG(N, D, H)                                                                         \
    { .name = (N), .type = GA_OPT_FLAG, .dst = (D), .help = (H) }
#define GA_O_STR(N, D, M, H)                                                                       \
    { .name = (N), .type = GA_OPT_STR, .dst = (D), .meta = (M), .help = (H) }
#define GA_O_INT(N, D, LO, HI, M, H)                                                               \
    {                                                                                              \
        .name = (N), .type = GA_OPT_INT, .dst = (D), .lo = (LO), .hi = (HI), .meta = (M),          \
        .help = (H)                                                                                \
    }
#define GA_O_LONG(N, D, LO, HI, M, H)                                                              \
    {                                                                                              \
        .name = (N), .type = GA_OPT_LONG, .dst = (D), .lo = (LO), .hi = (HI), .meta = (M),         \
        .help = (H)                                                                                \
    }
#define GA_O_FLOAT(N, D, LO, HI, M, H)                                                             \
    {                                                                                              \
        .name = (N), .type = GA_OPT_FLOAT, .dst = (D), .lo = (LO), .hi = (HI), .meta = (M),        \
        .help = (H)                                                                                \
    }
#define GA_O_LIST(N, D, LO, HI, WHAT, M, H)                                                        \
    {                                                                                              \
        .name = (N), .type = GA_OPT_LIST, .dst = (D), .lo = (LO), .hi = (HI), .what = (WHAT),      \
        .meta = (M), .help = (H)                                                                   \
    }
#define GA_O_DEVICE(D)                                                                             \
    {                                                                                              \
        .name = "--device", .type = GA_OPT_DEVICE, .dst = (D), .meta = "D",                        \
        .help = "cpu, cuda or auto (default: cuda when there is a GPU)"                            \
    }
/* --cuda-gemm: the CUDA backend's GEMM (ga_cuda_gemm_impl), for telling a cuBLAS problem from
 * a backend bug and for timing the decode GEMV against cuBLAS. */
int ga_cli_parse_cuda_gemm(const char *cmd, const ga_opt *o, const char *v);
#define GA_O_CUDA_GEMM(D)                                                                          \
    {                                                                                              \
        .name = "--cuda-gemm", .type = GA_OPT_CUSTOM, .parse = ga_cli_parse_cuda_gemm, .dst = (D), \
        .meta = "IMPL",                                                                            \
        .help = "CUDA GEMM: cublas (default: cuBLAS, and the weight-streaming\n"                   \
                "GEMV for decode batches of 1-2), cublas-only, lt or fallback"                     \
    }
/* --prefill-chunk: ga_session_opts.prefill_chunk (an int), the prompt tokens of one CUDA
 * prefill pass; one help text for bench, generate, logits and perplexity. serve's option of
 * the same name is its scheduler's prompt budget per step, which it also passes on as this
 * (cmd_serve.c says why). */
#define GA_CLI_STR_(x) #x
#define GA_CLI_STR(x) GA_CLI_STR_(x)
#define GA_O_PREFILL_CHUNK(D)                                                                      \
    GA_O_INT("--prefill-chunk", (D), 1, GA_PREFILL_CHUNK_MAX, "N",                                 \
             "CUDA prefill: prompt tokens per pass, the height of its GEMMs;\n"                    \
             "more fill a large GPU better, and take more memory\n"                                \
             "(default " GA_CLI_STR(GA_PREFILL_CHUNK_DEFAULT) ")")
/* --weights-dtype: how the CUDA backend holds an FP8 folder's FP8 projections
 * (ga_cuda_weights): fp8 (the default for FP8 folders) or bf16, bitwise the same logits. */
int ga_cli_parse_weights_dtype(const char *cmd, const ga_opt *o, const char *v);
/* GPU bytes an FP8 folder's weights take less with its FP8 projections (and a hybrid's
 * experts) kept as FP8 (the CUDA default) than as bf16: 0 for other folders (gattn info,
 * bench's GB/s). per_token: a hybrid MoE's routed experts counted for the top-k a token runs. */
int64_t ga_cli_fp8_saving(const ga_model *m, bool per_token);
/* The weight bytes the hybrid CUDA backend holds for a hybrid model (0 for Qwen3): bf16
 * matrices, fp32 vectors, and with keep_fp8 each matrix it keeps as FP8 at a byte a weight
 * plus its scales and row table (cuda_hybrid_weights.c). Tensors the folder does not hold (a
 * config-only folder) count as Qwen's FP8 releases store them when config.json has
 * quantization_config (projections and experts FP8; tables, router, shared_expert_gate and the
 * DeltaNet a / b projections bf16). per_token: the routed experts scaled to the top-k of E. */
double ga_cli_hybrid_gpu_bytes(const ga_model *m, bool keep_fp8, bool per_token);
#define GA_O_WEIGHTS_DTYPE(D)                                                                      \
    {                                                                                              \
        .name = "--weights-dtype", .type = GA_OPT_CUSTOM, .parse = ga_cli_parse_weights_dtype,     \
        .dst = (D), .meta = "T",                                                                   \
        .help = "CUDA, FP8 folders: fp8 keeps the FP8 weights as FP8 on the GPU\n"                 \
                "(the default: half the memory, faster decode at batch 1-2),\n"                    \
                "bf16 dequantises them at load; the logits are the same"                           \
    }
/* --fp8-math: ga_session_opts.fp8_math, how the CUDA decode GEMV computes with FP8 weights
 * kept as FP8: exact (the default, bitwise the bf16 logits) or fast. */
int ga_cli_parse_fp8_math(const char *cmd, const ga_opt *o, const char *v);
#define GA_O_FP8_MATH(D)                                                                           \
    {                                                                                              \
        .name = "--fp8-math", .type = GA_OPT_CUSTOM, .parse = ga_cli_parse_fp8_math, .dst = (D),   \
        .meta = "M",                                                                               \
        .help = "CUDA, FP8 weights kept as FP8: the decode GEMV's arithmetic;\n"                   \
                "exact (the default) rounds each weight to its bf16 value, bitwise\n"              \
                "the bf16 logits; fast scales each 8-weight dot product once:\n"                   \
                "faster and deterministic, not bitwise the bf16 logits"                            \
    }
/* --tensor-parallel N (alias --tp) and --tp-devices LIST: ga_session_opts.tensor_parallel and
 * tp_devices, one help text for generate, logits, bench, perplexity and serve; after parsing,
 * ga_cli_tp_apply checks the pair and copies it into the session options. */
typedef struct ga_cli_tp {
    int n;
    ga_cli_ids devices; /* as parsed; ga_cli_tp_check moves it into dev and frees it */
    int dev[GA_TP_MAX], n_dev;
} ga_cli_tp;
#define GA_TP_OPTS(T)                                                                              \
    {.name = "--tensor-parallel",                                                                  \
     .alias = "--tp",                                                                              \
     .type = GA_OPT_INT,                                                                           \
     .dst = &(T)->n,                                                                               \
     .lo = 1,                                                                                      \
     .hi = GA_TP_MAX,                                                                              \
     .meta = "N",                                                                                  \
     .help = "CUDA: split every layer over N GPUs (tensor parallelism;\n"                          \
             "heads, KV heads and intermediate size must divide by N)"},                           \
        GA_O_LIST("--tp-devices", &(T)->devices, 0, 1023, "CUDA devices", "LIST",                  \
                  "the GPU of each --tensor-parallel rank (default 0,1,..,N-1);\n"                 \
                  "one GPU named N times runs every rank on it (testing)")
/* After parsing (whatever its result, so the list is freed): 0, or 2 with the usage error
 * printed (--tp-devices without --tensor-parallel, or naming other than N devices). */
int ga_cli_tp_check(const ga_cli_spec *spec, ga_cli_tp *t);
/* Sets so's tensor_parallel and tp_devices from a checked t. */
void ga_cli_tp_set(const ga_cli_tp *t, ga_session_opts *so);
/* --deterministic: ga_session_opts.deterministic, one help text for generate and serve. */
#define GA_O_DETERMINISTIC(D)                                                                      \
    GA_O_FLAG("--deterministic", (D),                                                              \
              "batch-invariant arithmetic: greedy tokens do not depend on what\n"                  \
              "runs beside a prompt (CUDA: the plain GEMM, slower; CPU: as always)")
/* --rope-scaling TYPE --rope-factor F [--rope-original-max N]: overrides config.json's RoPE
 * scaling (cli_rope.c), as Qwen's model cards tell users to do for long inputs. One group for
 * every command that runs a model. */
typedef struct ga_cli_rope {
    const char *type; /* default | none | linear | yarn (dynamic is refused, with the reason) */
    double factor;
    int original_max;
} ga_cli_rope;
int ga_cli_parse_rope_type(const char *cmd, const ga_opt *o, const char *v);
#define GA_ROPE_OPTS(R)                                                                            \
    GA_O_CUSTOM("--rope-scaling", ga_cli_parse_rope_type, &(R)->type, "TYPE",                      \
                "override the RoPE scaling: yarn, linear or default"),                             \
        GA_O_FLOAT("--rope-factor", &(R)->factor, 1e-6, 1e6, "F",                                  \
                   "scaling factor (with --rope-scaling yarn|linear)"),                            \
        GA_O_INT("--rope-original-max", &(R)->original_max, 1, 1 << 24, "N",                       \
                 "pretraining context (default: max_position_embeddings)")
/* After parsing: the combination is complete (a factor with yarn/linear, none without).
 * Returns 0 or 2 with the usage error printed. */
int ga_cli_rope_check(const ga_cli_spec *spec, const ga_cli_rope *r);
/* After loading: applies a given override to the model; 0, or 1 with the error printed. */
int ga_cli_rope_apply(const char *cmd, const ga_cli_rope *r, ga_model *m);
/* What bounds a model's context, for errors: "max_position_embeddings" without RoPE scaling,
 * else "usable context with its RoPE scaling". */
const char *ga_cli_context_bound(const ga_config *c);
/* "yarn x4 over 32768 (attention factor 1.139)" or "none"; buf of n bytes. */
const char *ga_cli_rope_describe(const ga_config *c, char *buf, size_t n);
#define GA_O_VARIANT(N, D, H)                                                                      \
    { .name = (N), .type = GA_OPT_VARIANT, .dst = (D), .meta = "V", .help = (H) }
#define GA_O_CUSTOM(N, FN, D, M, H)                                                                \
    { .name = (N), .type = GA_OPT_CUSTOM, .parse = (FN), .dst = (D), .meta = (M), .help = (H) }
#define GA_N_OPTS(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* The shape options that write-model and bench share (--layers, --hidden, --intermediate,
 * --heads, --kv-heads, --head-dim, --vocab, --max-pos), as table entries writing into the
 * ga_config *OVER; ga_cli_shape_apply then copies the given ones over a preset's shape. */
#define GA_SHAPE_OPTS(OVER)                                                                        \
    GA_O_INT("--layers", &(OVER)->n_layers, 1, 1024, "N", "decoder layers"),                       \
        GA_O_INT("--hidden", &(OVER)->hidden_size, 1, 65536, "N", "hidden size"),                  \
        GA_O_INT("--intermediate", &(OVER)->intermediate_size, 1, 262144, "N",                     \
                 "MLP intermediate size"),                                                         \
        GA_O_INT("--heads", &(OVER)->n_heads, 1, 1024, "N", "query heads"),                        \
        GA_O_INT("--kv-heads", &(OVER)->n_kv_heads, 1, 1024, "N",                                  \
                 "key/value heads (divides --heads)"),                                             \
        GA_O_INT("--head-dim", &(OVER)->head_dim, 2, 1024, "N", "head dimension (even)"),          \
        GA_O_INT("--vocab", &(OVER)->vocab_size, 2, 1 << 22, "N", "vocabulary size"),              \
        GA_O_INT("--max-pos", &(OVER)->max_position_embeddings, 1, 1 << 24, "N",                   \
                 "max_position_embeddings")
/* Copies the shape options given on the command line from *over onto *c and checks the
 * result (heads a multiple of kv-heads, even head_dim); returns 0, or 2 with the usage error
 * printed. *any is set when a shape option was given. */
int ga_cli_shape_apply(const ga_cli_spec *spec, const ga_config *over, ga_config *c, bool *any);

#define GA_CLI_HELP (-1)
/* Parses argv[1..] per the table: "--name VALUE", "--name=VALUE", an alias, flags, and "--"
 * before a positional argument. Returns 0 (go on), GA_CLI_HELP after printing --help on
 * stdout, or GA_EXIT_USAGE after printing the error. A value may begin with '-'. */
int ga_cli_parse(ga_cli_spec *spec, int argc, char **argv);
/* The --help text generated from the table. */
void ga_cli_print_help(const ga_cli_spec *spec, FILE *f);
/* The entry of the table named `name` (for ->given), or NULL. */
const ga_opt *ga_cli_opt(const ga_cli_spec *spec, const char *name);
/* Exit code of a parse result: `if ((rc = ga_cli_parse(...))) return ga_cli_parse_exit(rc);` */
static inline int ga_cli_parse_exit(int rc) {
    return rc == GA_CLI_HELP ? GA_EXIT_OK : rc;
}

#endif
