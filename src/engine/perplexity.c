/*
 * Perplexity (perplexity.h): the window plan of the sliding-window recipe and the NLL of every
 * scored token from the session's all-position logits.
 *
 * Batching: up to `batch` consecutive windows form a group, one sequence slot each, and go to
 * the session together through ga_session_forward_multi, so their rows share each weight GEMM
 * (one call per round below instead of one per window).
 *
 * Memory: a group's windows are fed in rounds, each window a piece of at most CHUNK_FLOATS /
 * (V * windows) rows per round (continuations of its sequence), so the logits buffer holds at
 * most CHUNK_FLOATS floats whatever the context and batch (32k positions of a 152k vocabulary
 * would be 20 GB at once).
 *
 * Summation order: each window's NLL (and its per-bucket sums) is accumulated in token order
 * on its own, and the windows' partial sums are added to the totals in window order, so the
 * order of every floating-point addition is the same for any batch.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "perplexity.h"

#define CHUNK_FLOATS (64u << 20) /* 256 MB of fp32 logits */

static int bucket_of(int64_t q) {
    int b = 0;
    while (q >>= 1)
        b++;
    return b;
}

int64_t ga_ppl_count(int64_t n, int context, int stride) {
    if (n < 2 || context < 2) return 0;
    const int64_t S = stride > 0 ? stride : context;
    int64_t total = 0, prev_end = 0;
    for (int64_t start = 0; start < n; start += S) {
        const int64_t end = start + context < n ? start + context : n;
        const int64_t from = prev_end > start + 1 ? prev_end : start + 1;
        if (end > from) total += end - from;
        prev_end = end;
        if (end == n) break;
    }
    return total;
}

/* -log softmax(row)[t] over V logits, the sum of exponentials in double around the max. */
static double token_nll(const float *row, int V, int t) {
    float mx = row[0];
    for (int v = 1; v < V; v++)
        if (row[v] > mx) mx = row[v];
    double sum = 0;
    for (int v = 0; v < V; v++)
        sum += exp((double)row[v] - mx);
    return log(sum) + mx - (double)row[t];
}

/* One window of the plan: tokens [start, end) fed, [from, end) scored. */
typedef struct window {
    int64_t start, end, from;
    int64_t fed;                     /* tokens of [start, end - 1) fed so far */
    int64_t tokens;                  /* scored so far */
    double sum;                      /* their NLL, in token order */
    double bsum[GA_PPL_MAX_BUCKETS]; /* per bucket, in token order */
    int64_t btok[GA_PPL_MAX_BUCKETS];
} window;

ga_status ga_perplexity(const ga_model *m, ga_session *s, const int32_t *ids, int64_t n,
                        const ga_ppl_opts *o, ga_ppl_result *out, ga_err *err) {
    const int C = o->context, S = o->stride > 0 ? o->stride : o->context;
    const int B = o->batch > 0 ? o->batch : 1;
    if (n < 2)
        return ga_err_set(err, GA_ERR_ARG, "the text has %lld token%s; perplexity needs at least 2",
                          (long long)n, n == 1 ? "" : "s");
    if (C < 2)
        return ga_err_set(err, GA_ERR_ARG, "context %d: a window needs at least 2 tokens", C);
    if (C > ga_session_max_context(s))
        return ga_err_set(err, GA_ERR_ARG, "context %d exceeds the session's context of %d tokens",
                          C, ga_session_max_context(s));
    if (S < 1 || S > C)
        return ga_err_set(err, GA_ERR_ARG, "stride %d is not in [1, context %d]", S, C);
    if (B > ga_session_max_batch(s))
        return ga_err_set(err, GA_ERR_ARG, "batch %d exceeds the session's %d sequences", B,
                          ga_session_max_batch(s));
    const int V = ga_model_config(m)->vocab_size;
    for (int64_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= V)
            return ga_err_set(err, GA_ERR_ARG, "token id %d (item %lld) is outside [0, %d)",
                              (int)ids[i], (long long)i + 1, V);
    /* rows per window per round */
    int piece = (int)(CHUNK_FLOATS / (unsigned)V / (unsigned)B);
    if (piece < 1) piece = 1;
    if (piece > C) piece = C;
    const size_t rows = (size_t)piece * B;
    float *logits = malloc(rows * V * sizeof(float));
    int32_t *toks = malloc(rows * sizeof *toks);
    window *w = malloc((size_t)B * sizeof *w);
    int *seqs = malloc((size_t)B * sizeof *seqs), *offs = malloc(((size_t)B + 1) * sizeof *offs);
    if (!logits || !toks || !w || !seqs || !offs) {
        free(logits);
        free(toks);
        free(w);
        free(seqs);
        free(offs);
        return ga_err_set(err, GA_ERR_OOM, "out of memory for %zu rows of logits", rows);
    }

    *out = (ga_ppl_result){0};
    double sum = 0, bsum[GA_PPL_MAX_BUCKETS] = {0};
    const int64_t total = ga_ppl_count(n, C, S);
    ga_status st = GA_OK;
    int64_t prev_end = 0, next_start = 0;
    bool done = false;
    while (!done && !st) {
        /* the next group: up to B windows of the plan, window i in sequence slot i */
        int nw = 0;
        while (nw < B && !done) {
            const int64_t start = next_start, end = start + C < n ? start + C : n;
            w[nw] = (window){
                .start = start, .end = end, .from = prev_end > start + 1 ? prev_end : start + 1};
            ga_session_reset(s, nw);
            nw++;
            prev_end = end;
            next_start += S;
            done = end == n || next_start >= n;
        }
        /* rounds: every window with tokens left feeds its next piece; row r of a piece that
         * begins at b predicts token b + r + 1 */
        for (;;) {
            int ns = 0;
            bool need = false;
            offs[0] = 0;
            for (int i = 0; i < nw; i++) {
                window *x = &w[i];
                const int64_t b = x->start + x->fed, left = x->end - 1 - b;
                if (left <= 0) continue;
                const int len = (int)(left < piece ? left : piece);
                memcpy(toks + offs[ns], ids + b, (size_t)len * sizeof *toks);
                need = need || b + len >= x->from; /* only then the LM head is needed */
                seqs[ns] = i;
                offs[ns + 1] = offs[ns] + len;
                ns++;
            }
            if (!ns) break;
            if ((st = ga_session_forward_multi(s, ns, seqs, toks, offs, need, need ? logits : NULL,
                                               err)))
                break;
            for (int k = 0; k < ns && !st; k++) {
                window *x = &w[seqs[k]];
                const int64_t b = x->start + x->fed;
                const int len = offs[k + 1] - offs[k];
                for (int r = 0; r < len && need; r++) {
                    const int64_t j = b + r + 1; /* the predicted token */
                    if (j < x->from) continue;
                    const double l = token_nll(logits + (size_t)(offs[k] + r) * V, V, ids[j]);
                    if (!isfinite(l)) {
                        st = ga_err_set(err, GA_ERR_ARG,
                                        "non-finite log-likelihood at token %lld (window at %lld)",
                                        (long long)j, (long long)x->start);
                        break;
                    }
                    const int bk = bucket_of(j - x->start);
                    x->sum += l;
                    x->bsum[bk] += l;
                    x->btok[bk]++;
                    x->tokens++;
                }
                x->fed += len;
            }
            if (!st && o->progress) {
                int64_t scored = out->tokens;
                for (int i = 0; i < nw; i++)
                    scored += w[i].tokens;
                o->progress(o->progress_user, scored, total);
            }
        }
        for (int i = 0; i < nw; i++) {
            ga_session_reset(s, i);
            sum += w[i].sum;
            out->tokens += w[i].tokens;
            for (int b = 0; b < GA_PPL_MAX_BUCKETS; b++) {
                bsum[b] += w[i].bsum[b];
                out->bucket_tokens[b] += w[i].btok[b];
            }
        }
    }
    free(logits);
    free(toks);
    free(w);
    free(seqs);
    free(offs);
    if (st) return st;
    out->nll = out->tokens ? sum / out->tokens : NAN;
    out->ppl = exp(out->nll);
    out->context = C;
    out->n_buckets = bucket_of(C - 1) + 1;
    for (int b = 0; b < GA_PPL_MAX_BUCKETS; b++)
        out->bucket_nll[b] = out->bucket_tokens[b] ? bsum[b] / out->bucket_tokens[b] : NAN;
    return GA_OK;
}
