/*
 * Perplexity of a token stream under a session's model: windows of `context` tokens, scored as
 * Hugging Face's sliding-window recipe does it (docs "Perplexity of fixed-length models").
 *
 * Windows start at 0, S, 2S, ... (S = stride; without one S = context, windows that do not
 * overlap) and end at min(start + context, n); the stream ends with the first window that
 * reaches n. Window w scores the tokens at absolute indices [max(prev_end, start + 1), end),
 * prev_end being the previous window's end (0 for the first): the last `end - prev_end` tokens
 * (S for every window but the first and the last), never the window's first token, which has
 * nothing before it in the window. Each scored token j costs -log softmax(logits(j-1))[ids[j]],
 * natural log, the log-softmax taken over the full vocabulary from the fp32 logits with the sum
 * accumulated in double. Its position within the window, q = j - start (1 .. context-1), puts
 * it in the power-of-two bucket floor(log2 q): 1-1, 2-3, 4-7, ...
 */
#ifndef GATTN_ENGINE_PERPLEXITY_H
#define GATTN_ENGINE_PERPLEXITY_H

#include "gattn/gattn.h"

#define GA_PPL_MAX_BUCKETS 32

typedef struct ga_ppl_opts {
    int context; /* window length (>= 2, <= the session's max_context) */
    int stride;  /* 0: context (no overlap); else 1 <= stride <= context */
    /* Windows per ga_session_forward_multi call (0: 1; at most the session's max_batch): their
     * rows share each weight GEMM on a backend with the multi-sequence hook. The result does
     * not depend on it where the backend's rows do not depend on their neighbours (the CPU
     * backend): each window's NLL is summed in token order on its own, and the windows' sums
     * are added in window order, whatever the batch. */
    int batch;
    /* Called after each scored chunk with the tokens scored so far and the total (optional). */
    void (*progress)(void *user, int64_t scored, int64_t total);
    void *progress_user;
} ga_ppl_opts;

typedef struct ga_ppl_result {
    int context;    /* the window length used */
    int64_t tokens; /* tokens scored */
    double nll;     /* mean negative log-likelihood, natural log */
    double ppl;     /* exp(nll) */
    int n_buckets;  /* buckets 0 .. n_buckets-1 cover positions 1 .. context-1 */
    int64_t bucket_tokens[GA_PPL_MAX_BUCKETS]; /* bucket b: positions [2^b, 2^(b+1)) */
    double bucket_nll[GA_PPL_MAX_BUCKETS];     /* mean NLL in the bucket (NaN when empty) */
} ga_ppl_result;

/* Tokens the recipe scores for a stream of n tokens (0 when n < 2). */
int64_t ga_ppl_count(int64_t n, int context, int stride);

/* Scores ids[0..n) with session s of model m; uses sequence slots 0 .. batch-1 and leaves them
 * reset. Errors: fewer than 2 tokens, a context past the session's, a bad stride or batch, a
 * token id outside the vocabulary (named by index), a non-finite logit. */
ga_status ga_perplexity(const ga_model *m, ga_session *s, const int32_t *ids, int64_t n,
                        const ga_ppl_opts *o, ga_ppl_result *out, ga_err *err);

#endif
