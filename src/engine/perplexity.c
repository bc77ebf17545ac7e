/*
 * Perplexity (perplexity.h): the window plan of the sliding-window recipe and the NLL of every
 * scored token from the session's all-position logits.
 *
 * Memory: a window is fed to the session in chunks (continuations of the same sequence) so
 * the logits buffer holds at most CHUNK_FLOATS floats whatever the context (32k positions of a
 * 152k vocabulary would be 20 GB at once).
 */
#include <math.h>
#include <stdlib.h>

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

ga_status ga_perplexity(const ga_model *m, ga_session *s, const int32_t *ids, int64_t n,
                        const ga_ppl_opts *o, ga_ppl_result *out, ga_err *err) {
    const int C = o->context, S = o->stride > 0 ? o->stride : o->context;
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
    const int V = ga_model_config(m)->vocab_size;
    for (int64_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= V)
            return ga_err_set(err, GA_ERR_ARG, "token id %d (item %lld) is outside [0, %d)",
                              (int)ids[i], (long long)i + 1, V);
    int chunk = (int)(CHUNK_FLOATS / (unsigned)V);
    if (chunk < 1) chunk = 1;
    if (chunk > C) chunk = C;
    float *logits = malloc((size_t)chunk * V * sizeof(float));
    if (!logits) return ga_err_set(err, GA_ERR_OOM, "out of memory for %d rows of logits", chunk);

    *out = (ga_ppl_result){0};
    double sum = 0, bsum[GA_PPL_MAX_BUCKETS] = {0};
    const int64_t total = ga_ppl_count(n, C, S);
    const int slots = ga_session_max_batch(s);
    ga_status st = GA_OK;
    int64_t prev_end = 0, win = 0;
    for (int64_t start = 0; start < n && !st; start += S, win++) {
        const int64_t end = start + C < n ? start + C : n;
        const int64_t from = prev_end > start + 1 ? prev_end : start + 1;
        const int seq = (int)(win % slots);
        ga_session_reset(s, seq);
        /* feed [start, end) in chunks; row r of a chunk beginning at b predicts token b + r + 1 */
        for (int64_t b = start; b < end - 1 && !st; b += chunk) {
            const int len = (int)(end - 1 - b < chunk ? end - 1 - b : chunk);
            /* only chunks that predict a scored token need the LM head */
            if (b + len < from) {
                st = ga_session_forward(s, seq, ids + b, len, false, NULL, err);
                continue;
            }
            if ((st = ga_session_forward(s, seq, ids + b, len, true, logits, err))) break;
            for (int r = 0; r < len; r++) {
                const int64_t j = b + r + 1; /* the predicted token */
                if (j < from) continue;
                const float *row = logits + (size_t)r * V;
                const double l = token_nll(row, V, ids[j]);
                if (!isfinite(l)) {
                    st = ga_err_set(err, GA_ERR_ARG,
                                    "non-finite log-likelihood at token %lld (window at %lld)",
                                    (long long)j, (long long)start);
                    break;
                }
                const int bk = bucket_of(j - start);
                sum += l;
                bsum[bk] += l;
                out->bucket_tokens[bk]++;
                out->tokens++;
            }
            if (!st && o->progress) o->progress(o->progress_user, out->tokens, total);
        }
        ga_session_reset(s, seq);
        prev_end = end;
        if (end == n) break;
    }
    free(logits);
    if (st) return st;
    out->nll = out->tokens ? sum / out->tokens : NAN;
    out->ppl = exp(out->nll);
    out->context = C;
    out->n_buckets = bucket_of(C - 1) + 1;
    for (int b = 0; b < GA_PPL_MAX_BUCKETS; b++)
        out->bucket_nll[b] = out->bucket_tokens[b] ? bsum[b] / out->bucket_tokens[b] : NAN;
    return GA_OK;
}
