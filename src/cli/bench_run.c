/*
 * gattn bench, the measuring half (see cmd_bench.c for what is measured and how the derived
 * figures are counted): sessions per batch size and depth, untimed fills, warm-ups, timed
 * repetitions, and the rows and skips of the report.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_run.h"
#include "cli.h"
#ifdef GA_HAVE_CUDA
#include "cuda/cuda_meminfo.h"
#endif

#define FILL_CHUNK 4096

static const char *C = "bench";

double ga_bench_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ------------------------------------------------------------------ progress */

int ga_bench_rows_per_variant(const ga_bench_args *a) {
    return a->prefill.n + a->batches.n * a->depths.n;
}

/* One row measured or skipped: its line on stderr as it finishes (the table on stdout comes at
 * the end, with the overheads against baseline), and on a terminal a last line that says how
 * far the run is and about how long it has left (elapsed time per row so far, times the rows
 * left: the later rows are the longer ones, so it errs short). */
static void progress(ga_bench_ctx *b, const ga_bench_row *x, const ga_bench_skip *sk) {
    b->rows_done++;
    if (b->tty) fputs("\r\033[K", stderr);
    if (x)
        fprintf(stderr,
                "gattn bench: [%d/%d] %s %s batch %d depth %d tokens %d: %.3f ms, %.1f tokens/s\n",
                b->rows_done, b->rows_total, x->variant, x->test, x->batch, x->depth, x->tokens,
                x->mean_ms, x->tokens_per_s);
    else
        fprintf(stderr, "gattn bench: [%d/%d] skipped %s %s batch %d depth %d: %s\n", b->rows_done,
                b->rows_total, sk->variant, sk->test, sk->batch, sk->depth, sk->reason);
    if (b->tty && b->rows_done < b->rows_total) {
        double el = ga_bench_now() - b->t_start;
        double eta = el / b->rows_done * (b->rows_total - b->rows_done);
        fprintf(stderr, "gattn bench: %d of %d rows, %.0f s so far, about %.0f s left",
                b->rows_done, b->rows_total, el, eta);
    }
    fflush(stderr);
}

/* ------------------------------------------------------------------ measuring */

static int add_skip(ga_bench_ctx *b, const char *test, int batch, int depth, int tokens,
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
    progress(b, NULL, s);
    return 0;
}

static ga_bench_row *new_row(ga_bench_ctx *b) {
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
static void sample_mem(const ga_session *s, const ga_bench_args *a, double *peak) {
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
static int bench_prefill(ga_bench_ctx *b, ga_session *s, int P) {
    const ga_bench_args *a = b->a;
    const ga_config *c = ga_model_config(b->m);
    int total = (int)(a->warmup + a->reps);
    double *t = malloc((size_t)total * sizeof *t), peak = NAN;
    if (!t) return ga_cli_fail(C, "out of memory");
    make_tokens(b->tokens, P, c->vocab_size, (uint64_t)P);
    for (int r = 0; r < total; r++) {
        ga_session_reset(s, 0);
        double t0 = ga_bench_now();
        ga_status st = ga_session_forward(s, 0, b->tokens, P, false, b->logits, &b->err);
        t[r] = ga_bench_now() - t0;
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
    x->timed_from = 0;
    x->depth_end = P;
    double attn = 4.0 * b->attn_layers * c->n_heads * c->head_dim * ((double)P * (P + 1) / 2);
    double flops = 2.0 * (b->matmul_params - b->lm_head_params) * P + 2.0 * b->lm_head_params +
                   attn + b->state_flops * P;
    double bytes = b->weight_step_bytes;
    fill_stats(x, t + a->warmup, (int)a->reps, P, bytes, flops);
    x->peak_mem_gib = peak;
    free(t);
    progress(b, x, NULL);
    return 0;
}

/* Fills sequences 0..B-1 to depth d (untimed). */
static ga_status fill(ga_bench_ctx *b, ga_session *s, int B, int d) {
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

static int bench_decode(ga_bench_ctx *b, ga_session *s, int B, int d) {
    const ga_bench_args *a = b->a;
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
    const double kv_row = 2.0 * b->attn_layers * c->n_kv_heads * c->head_dim * b->bytes_per_weight;
    const double attn_per_key = 4.0 * b->attn_layers * c->n_heads * c->head_dim;
    int depth_end = d, timed_from = d;
    for (int r = 0; r < total && !st; r++) {
        if (d == 0)
            for (int q = 0; q < B; q++)
                ga_session_reset(s, q);
        int ctx0 = ga_session_seq_len(s, 0);
        double t0 = ga_bench_now();
        for (int k = 0; k < N && !st; k++) {
            st = ga_session_decode_sample(s, seqs, cur, B, NULL, NULL, next, &b->err);
            int32_t *tmp = cur;
            cur = next;
            next = tmp;
        }
        t[r] = ga_bench_now() - t0;
        depth_end = ga_session_seq_len(s, 0);
        if (r == a->warmup) {
            timed_from = ctx0;
            /* Every timed repetition of a row has the same work up to the depth drift; the
             * figures use the first timed one's. Step k attends ctx0 + k + 1 keys. */
            double keys = (double)N * ctx0 + (double)N * (N + 1) / 2;
            bytes = (double)N * b->weight_step_bytes + B * keys * kv_row +
                    (double)B * N * b->state_bytes;
            flops =
                (double)B * N * (2.0 * b->matmul_params + b->state_flops) + B * keys * attn_per_key;
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
    x->timed_from = timed_from;
    x->depth_end = depth_end;
    x->tokens = N;
    fill_stats(x, t + a->warmup, (int)a->reps, (double)B * N, bytes, flops);
    x->peak_mem_gib = peak;
    progress(b, x, NULL);
done:
    free(t);
    free(seqs);
    free(cur);
    free(next);
    return rc;
}

/* Creates a session; on out-of-memory returns 2 with the message in b->err. */
static int open_session(ga_bench_ctx *b, int max_batch, int ctx, ga_session **s) {
    ga_session_opts so = {.device = b->a->device,
                          .cuda_gemm = b->a->cuda_gemm,
                          .prefill_chunk = b->a->prefill_chunk,
                          .cuda_weights = b->a->cuda_weights,
                          .fp8_math = b->a->fp8_math,
                          .max_context = ctx,
                          .max_batch = max_batch,
                          .n_threads = (int)b->a->threads};
    ga_cli_tp_set(&b->a->tp, &so);
    ga_status st = ga_session_create(b->m, &so, s, &b->err);
    if (!st) {
        const bool cuda = ga_session_device(*s) == GA_DEVICE_CUDA;
        b->bytes_per_weight = cuda ? 2.0 : 4.0;
        b->weight_step_bytes = b->matmul_params * b->bytes_per_weight;
        if (cuda && b->a->cuda_weights != GA_CUDA_WEIGHTS_BF16)
            b->weight_step_bytes -= (double)ga_cli_fp8_saving(b->m, true);
        if (!b->rep->device) b->rep->device = strdup(ga_session_device_name(*s));
        return 0;
    }
    if (is_oom(st)) return 2;
    return ga_cli_fail_err(C, &b->err);
}

/* All rows of one model. */
static int bench_model(ga_bench_ctx *b) {
    const ga_bench_args *a = b->a;
    const ga_config *c = ga_model_config(b->m);
    /* The usable context: max_position_embeddings, or factor x original with a RoPE scaling. */
    const int maxpos = ga_config_max_context(c), N = (int)a->decode_tokens;
    const char *bound = ga_cli_context_bound(c);
    const int steps = (int)(a->warmup + a->reps) * N;
    char why[200];
    int rc = 0;
    /* Prefill rows: one session of batch 1 sized for the longest length that fits. */
    int nP = a->prefill.n;
    while (nP > 0 && a->prefill.v[nP - 1] > maxpos) {
        nP--;
        snprintf(why, sizeof why, "%d tokens exceed the %s %d", a->prefill.v[nP], bound, maxpos);
        if ((rc = add_skip(b, "prefill", 1, 0, a->prefill.v[nP], why))) return rc;
    }
    while (nP > 0) {
        ga_session *s = NULL;
        rc = open_session(b, 1, a->prefill.v[nP - 1], &s);
        if (rc == 1) return 1;
        if (rc == 2) {
            nP--;
            if ((rc = add_skip(b, "prefill", 1, 0, a->prefill.v[nP], b->err.msg))) return rc;
            continue;
        }
        for (int i = 0; i < nP && !rc; i++)
            rc = bench_prefill(b, s, a->prefill.v[i]);
        ga_session_free(s);
        if (rc) return rc;
        break;
    }
    /* Decode rows: a session per batch size, sized for the deepest depth that fits. */
    for (int bi = 0; bi < a->batches.n; bi++) {
        const int B = a->batches.v[bi];
        int nD = a->depths.n;
        /* depth 0 restarts each repetition; deeper rows keep growing by N per repetition */
        while (nD > 0) {
            int d = a->depths.v[nD - 1];
            int need = d == 0 ? N : d + steps;
            if (need <= maxpos) break;
            nD--;
            snprintf(why, sizeof why, "depth + %d timed and warm-up tokens exceed the %s %d",
                     d == 0 ? N : steps, bound, maxpos);
            if ((rc = add_skip(b, "decode", B, d, N, why))) return rc;
        }
        while (nD > 0) {
            int d = a->depths.v[nD - 1];
            ga_session *s = NULL;
            rc = open_session(b, B, d == 0 ? N : d + steps, &s);
            if (rc == 1) return 1;
            if (rc == 2) {
                nD--;
                if ((rc = add_skip(b, "decode", B, d, N, b->err.msg))) return rc;
                continue;
            }
            for (int i = 0; i < nD && !rc; i++)
                rc = bench_decode(b, s, B, a->depths.v[i]);
            ga_session_free(s);
            if (rc) return rc;
            break;
        }
    }
    return 0;
}

int ga_bench_run_variant(ga_bench_ctx *b, ga_model *m) {
    const ga_bench_args *a = b->a;
    const ga_config *c = ga_model_config(m);
    b->m = m;
    b->variant = ga_gate_mode_name(c->gate);
    double VH = (double)c->vocab_size * c->hidden_size;
    b->lm_head_params = VH;
    /* Per token: the parameters a token multiplies (MoE: the routed top-k and the shared
     * expert, not all experts; at larger batches more experts' bytes are read, so the GB/s
     * column of a MoE decode is a lower bound), softmax attention in the full-attention layers
     * only, and for Gated DeltaNet layers the recurrent state: per value head a d_k x d_v fp32
     * matrix decayed, read twice (k^T S, q^T S) and updated (about 8 d_k d_v FLOPs), read and
     * written once per token. */
    b->matmul_params =
        (double)ga_config_active_param_count(c) - (c->tie_word_embeddings ? 0.0 : VH);
    const ga_hybrid_config *hy = &c->hybrid;
    const double n_lin = c->arch == GA_ARCH_QWEN3 ? 0 : hy->n_linear_layers;
    const double state =
        (double)hy->linear_num_value_heads * hy->linear_key_head_dim * hy->linear_value_head_dim;
    b->attn_layers = c->n_layers - n_lin;
    b->state_flops = n_lin * 8.0 * state;
    b->state_bytes = n_lin * 2.0 * 4.0 * state;
    int longest = 1;
    for (int i = 0; i < a->prefill.n; i++)
        longest = a->prefill.v[i] > longest ? a->prefill.v[i] : longest;
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
