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
#include <time.h>
#include <unistd.h>

#include "bench_report.h"
#include "cli.h"
#ifdef GA_HAVE_CUDA
#include "cuda/cuda_meminfo.h"
#endif

#ifndef GATTN_COMMIT
#define GATTN_COMMIT "unknown"
#endif

#define MAX_LIST 16
#define FILL_CHUNK 4096

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

typedef struct bench_args {
    const char *model_dir, *csv, *json;
    ga_device device;
    ga_gate_mode variants[3];
    int n_variants;
    int prefill[MAX_LIST], n_prefill;
    int depths[MAX_LIST], n_depths;
    int batches[MAX_LIST], n_batches;
    long decode_tokens, reps, warmup, threads;
    ga_config shape;
} bench_args;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
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

static int parse_variants(const char *s, bench_args *a) {
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

static int parse_args(int argc, char **argv, bench_args *a) {
    *a = (bench_args){.decode_tokens = 128,
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

/* ------------------------------------------------------------------ measuring */

typedef struct bench_ctx {
    const bench_args *a;
    const ga_model *m;
    const char *variant;
    ga_bench_report *rep;
    int rows_cap, skips_cap;
    double bytes_per_weight; /* as the backend stores them */
    double matmul_params, lm_head_params;
    int32_t *tokens; /* scratch ids, long enough for the longest fill */
    float *logits;   /* vocab */
    ga_err err;
} bench_ctx;

static int add_skip(bench_ctx *b, const char *test, int batch, int depth, int tokens,
                    const char *reason) {
    ga_bench_report *r = b->rep;
    if (r->n_skips == b->skips_cap) {
        int cap = b->skips_cap ? 2 * b->skips_cap : 16;
        ga_bench_skip *n = realloc(r->skips, (size_t)cap * sizeof *n);
        if (!n) return ga_cli_fail(C, "out of memory");
        r->skips = n;
        b->skips_cap = cap;
    }
    ga_bench_skip *s = &r->skips[r->n_skips++];
    snprintf(s->variant, sizeof s->variant, "%s", b->variant);
    s->test = test;
    s->batch = batch;
    s->depth = depth;
    s->tokens = tokens;
    snprintf(s->reason, sizeof s->reason, "%s", reason);
    fprintf(stderr, "gattn bench: skipped %s %s batch %d depth %d: %s\n", b->variant, test, batch,
            depth, reason);
    return 0;
}

static ga_bench_row *new_row(bench_ctx *b) {
    ga_bench_report *r = b->rep;
    if (r->n_rows == b->rows_cap) {
        int cap = b->rows_cap ? 2 * b->rows_cap : 16;
        ga_bench_row *n = realloc(r->rows, (size_t)cap * sizeof *n);
        if (!n) return NULL;
        r->rows = n;
        b->rows_cap = cap;
    }
    ga_bench_row *x = &r->rows[r->n_rows++];
    memset(x, 0, sizeof *x);
    snprintf(x->variant, sizeof x->variant, "%s", b->variant);
    x->overhead_pct = NAN;
    x->peak_mem_gib = NAN;
    return x;
}

/* Device memory in use now (GiB), NAN on the CPU; keeps the maximum in *peak. */
static void sample_mem(const ga_session *s, const bench_args *a, double *peak) {
#ifdef GA_HAVE_CUDA
    if (ga_session_device(s) == GA_DEVICE_CUDA) {
        uint64_t fr, tot;
        ga_err e;
        if (!ga_cuda_mem_info(0, &fr, &tot, &e)) {
            double used = (double)(tot - fr) / (1024.0 * 1024.0 * 1024.0);
            if (isnan(*peak) || used > *peak) *peak = used;
        }
    }
#else
    (void)s;
    (void)peak;
#endif
    (void)a;
}

static void fill_stats(ga_bench_row *x, const double *t, int reps, double work_tokens, double bytes,
                       double flops) {
    double sum = 0, mn = t[0], mx = t[0];
    for (int i = 0; i < reps; i++) {
        sum += t[i];
        mn = t[i] < mn ? t[i] : mn;
        mx = t[i] > mx ? t[i] : mx;
    }
    double mean = sum / reps, var = 0;
    for (int i = 0; i < reps; i++)
        var += (t[i] - mean) * (t[i] - mean);
    x->reps = reps;
    x->mean_ms = mean * 1e3;
    x->min_ms = mn * 1e3;
    x->max_ms = mx * 1e3;
    x->std_ms = (reps > 1 ? sqrt(var / (reps - 1)) : 0) * 1e3;
    x->tokens_per_s = work_tokens / mean;
    x->gb_per_s = bytes / mean / 1e9;
    x->tflop_per_s = flops / mean / 1e12;
}

/* Deterministic ids in [0, vocab), different per use. */
static void make_tokens(int32_t *t, int n, int vocab, uint64_t seed) {
    uint64_t z = seed * 0x9e3779b97f4a7c15ull + 1;
    for (int i = 0; i < n; i++) {
        z = z * 6364136223846793005ull + 1442695040888963407ull;
        t[i] = (int32_t)((z >> 33) % (uint64_t)vocab);
    }
}

static bool is_oom(ga_status st) {
    return st == GA_ERR_OOM;
}

/* Returns 0, or 1 after printing a fatal error; an out-of-memory row is skipped. */
static int bench_prefill(bench_ctx *b, ga_session *s, int P) {
    const bench_args *a = b->a;
    const ga_config *c = ga_model_config(b->m);
    int total = (int)(a->warmup + a->reps);
    double *t = malloc((size_t)total * sizeof *t), peak = NAN;
    if (!t) return ga_cli_fail(C, "out of memory");
    make_tokens(b->tokens, P, c->vocab_size, (uint64_t)P);
    for (int r = 0; r < total; r++) {
        ga_session_reset(s, 0);
        double t0 = now_s();
        ga_status st = ga_session_forward(s, 0, b->tokens, P, false, b->logits, &b->err);
        t[r] = now_s() - t0;
        if (st) {
            free(t);
            if (is_oom(st)) return add_skip(b, "prefill", 1, 0, P, b->err.msg);
            return ga_cli_fail_err(C, &b->err);
        }
        sample_mem(s, a, &peak);
    }
    ga_bench_row *x = new_row(b);
    if (!x) {
        free(t);
        return ga_cli_fail(C, "out of memory");
    }
    x->test = "prefill";
    x->batch = 1;
    x->tokens = P;
    x->depth = 0;
    x->depth_end = P;
    double attn = 4.0 * c->n_layers * c->n_heads * c->head_dim * ((double)P * (P + 1) / 2);
    double flops =
        2.0 * (b->matmul_params - b->lm_head_params) * P + 2.0 * b->lm_head_params + attn;
    double bytes = b->matmul_params * b->bytes_per_weight;
    fill_stats(x, t + a->warmup, (int)a->reps, P, bytes, flops);
    x->peak_mem_gib = peak;
    free(t);
    return 0;
}

/* Fills sequences 0..B-1 to depth d (untimed). */
static ga_status fill(bench_ctx *b, ga_session *s, int B, int d) {
    const ga_config *c = ga_model_config(b->m);
    for (int q = 0; q < B; q++) {
        ga_session_reset(s, q);
        for (int done = 0; done < d;) {
            int n = d - done < FILL_CHUNK ? d - done : FILL_CHUNK;
            make_tokens(b->tokens, n, c->vocab_size, (uint64_t)(q * 7919 + done));
            ga_status st = ga_session_forward(s, q, b->tokens, n, false, NULL, &b->err);
            if (st) return st;
            done += n;
        }
    }
    return GA_OK;
}

static int bench_decode(bench_ctx *b, ga_session *s, int B, int d) {
    const bench_args *a = b->a;
    const ga_config *c = ga_model_config(b->m);
    const int N = (int)a->decode_tokens, total = (int)(a->warmup + a->reps);
    double *t = malloc((size_t)total * sizeof *t), peak = NAN, bytes = 0, flops = 0;
    int *seqs = malloc((size_t)B * sizeof *seqs);
    int32_t *cur = malloc((size_t)B * sizeof *cur), *next = malloc((size_t)B * sizeof *next);
    int rc = 0;
    ga_status st = GA_OK;
    if (!t || !seqs || !cur || !next) {
        rc = ga_cli_fail(C, "out of memory");
        goto done;
    }
    for (int q = 0; q < B; q++)
        seqs[q] = q;
    make_tokens(cur, B, c->vocab_size, 12345);
    if (d > 0) st = fill(b, s, B, d);
    sample_mem(s, a, &peak);
    /* K and V rows read per attended position, over all layers */
    const double kv_row = 2.0 * c->n_layers * c->n_kv_heads * c->head_dim * b->bytes_per_weight;
    const double attn_per_key = 4.0 * c->n_layers * c->n_heads * c->head_dim;
    int depth_end = d;
    for (int r = 0; r < total && !st; r++) {
        if (d == 0)
            for (int q = 0; q < B; q++)
                ga_session_reset(s, q);
        int ctx0 = ga_session_seq_len(s, 0);
        double t0 = now_s();
        for (int k = 0; k < N && !st; k++) {
            st = ga_session_decode_sample(s, seqs, cur, B, NULL, NULL, next, &b->err);
            int32_t *tmp = cur;
            cur = next;
            next = tmp;
        }
        t[r] = now_s() - t0;
        depth_end = ga_session_seq_len(s, 0);
        if (r == a->warmup) {
            /* Every timed repetition of a row has the same work up to the depth drift; the
             * figures use the first timed one's. Step k attends ctx0 + k + 1 keys. */
            double keys = (double)N * ctx0 + (double)N * (N + 1) / 2;
            bytes = (double)N * b->matmul_params * b->bytes_per_weight + B * keys * kv_row;
            flops = (double)B * N * 2.0 * b->matmul_params + B * keys * attn_per_key;
        }
    }
    sample_mem(s, a, &peak);
    if (st) {
        rc = is_oom(st) ? add_skip(b, "decode", B, d, N, b->err.msg) : ga_cli_fail_err(C, &b->err);
        goto done;
    }
    ga_bench_row *x = new_row(b);
    if (!x) {
        rc = ga_cli_fail(C, "out of memory");
        goto done;
    }
    x->test = "decode";
    x->batch = B;
    x->depth = d;
    x->depth_end = depth_end;
    x->tokens = N;
    fill_stats(x, t + a->warmup, (int)a->reps, (double)B * N, bytes, flops);
    x->peak_mem_gib = peak;
done:
    free(t);
    free(seqs);
    free(cur);
    free(next);
    return rc;
}

/* Creates a session; on out-of-memory returns 2 with the message in b->err. */
static int open_session(bench_ctx *b, int max_batch, int ctx, ga_session **s) {
    ga_session_opts so = {.device = b->a->device,
                          .max_context = ctx,
                          .max_batch = max_batch,
                          .n_threads = (int)b->a->threads};
    ga_status st = ga_session_create(b->m, &so, s, &b->err);
    if (!st) {
        b->bytes_per_weight = ga_session_device(*s) == GA_DEVICE_CUDA ? 2.0 : 4.0;
        if (!b->rep->device) b->rep->device = strdup(ga_session_device_name(*s));
        return 0;
    }
    if (is_oom(st)) return 2;
    return ga_cli_fail_err(C, &b->err);
}

/* All rows of one model. */
static int bench_model(bench_ctx *b) {
    const bench_args *a = b->a;
    const ga_config *c = ga_model_config(b->m);
    const int maxpos = c->max_position_embeddings, N = (int)a->decode_tokens;
    const int steps = (int)(a->warmup + a->reps) * N;
    char why[200];
    int rc = 0;
    /* Prefill rows: one session of batch 1 sized for the longest length that fits. */
    int nP = a->n_prefill;
    while (nP > 0 && a->prefill[nP - 1] > maxpos) {
        nP--;
        snprintf(why, sizeof why, "%d tokens exceed max_position_embeddings %d", a->prefill[nP],
                 maxpos);
        if ((rc = add_skip(b, "prefill", 1, 0, a->prefill[nP], why))) return rc;
    }
    while (nP > 0) {
        ga_session *s = NULL;
        rc = open_session(b, 1, a->prefill[nP - 1], &s);
        if (rc == 1) return 1;
        if (rc == 2) {
            nP--;
            if ((rc = add_skip(b, "prefill", 1, 0, a->prefill[nP], b->err.msg))) return rc;
            continue;
        }
        for (int i = 0; i < nP && !rc; i++)
            rc = bench_prefill(b, s, a->prefill[i]);
        ga_session_free(s);
        if (rc) return rc;
        break;
    }
    /* Decode rows: a session per batch size, sized for the deepest depth that fits. */
    for (int bi = 0; bi < a->n_batches; bi++) {
        const int B = a->batches[bi];
        int nD = a->n_depths;
        /* depth 0 restarts each repetition; deeper rows keep growing by N per repetition */
        while (nD > 0) {
            int d = a->depths[nD - 1];
            int need = d == 0 ? N : d + steps;
            if (need <= maxpos) break;
            nD--;
            snprintf(why, sizeof why,
                     "depth + %d timed and warm-up tokens exceed max_position_embeddings %d",
                     d == 0 ? N : steps, maxpos);
            if ((rc = add_skip(b, "decode", B, d, N, why))) return rc;
        }
        while (nD > 0) {
            int d = a->depths[nD - 1];
            ga_session *s = NULL;
            rc = open_session(b, B, d == 0 ? N : d + steps, &s);
            if (rc == 1) return 1;
            if (rc == 2) {
                nD--;
                if ((rc = add_skip(b, "decode", B, d, N, b->err.msg))) return rc;
                continue;
            }
            for (int i = 0; i < nD && !rc; i++)
                rc = bench_decode(b, s, B, a->depths[i]);
            ga_session_free(s);
            if (rc) return rc;
            break;
        }
    }
    return 0;
}

static int run_variant(bench_ctx *b, ga_model *m) {
    const bench_args *a = b->a;
    const ga_config *c = ga_model_config(m);
    b->m = m;
    b->variant = ga_gate_mode_name(c->gate);
    double VH = (double)c->vocab_size * c->hidden_size;
    b->lm_head_params = VH;
    b->matmul_params = (double)ga_config_param_count(c) - (c->tie_word_embeddings ? 0.0 : VH);
    int longest = 1;
    for (int i = 0; i < a->n_prefill; i++)
        longest = a->prefill[i] > longest ? a->prefill[i] : longest;
    longest = longest > FILL_CHUNK ? longest : FILL_CHUNK;
    b->tokens = malloc((size_t)longest * sizeof *b->tokens);
    b->logits = malloc((size_t)c->vocab_size * sizeof *b->logits);
    int rc = b->tokens && b->logits ? bench_model(b) : ga_cli_fail(C, "out of memory");
    free(b->tokens);
    free(b->logits);
    b->tokens = NULL;
    b->logits = NULL;
    return rc;
}

int ga_cmd_bench(int argc, char **argv) {
    bench_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc) return rc < 0 ? 0 : rc;
    ga_bench_report rep = {.commit = GATTN_COMMIT, .warmup = (int)a.warmup, .reps = (int)a.reps};
    bench_ctx b = {.a = &a, .rep = &rep};
    ga_model *m = NULL;
    if (a.model_dir) {
        if (ga_model_load(a.model_dir, &m, &b.err)) {
            rc = ga_cli_fail_err(C, &b.err);
            goto done;
        }
        rep.shape = *ga_model_config(m);
        rep.dtype = ga_model_weight_dtype(m);
        rep.model = ga_model_name(m);
        rc = run_variant(&b, m);
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
            rc = run_variant(&b, m);
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
