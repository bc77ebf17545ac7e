/*
 * Continuous batching: one scheduler thread owns a session and serves many requests at once.
 * A request waits in a bounded queue until the cache has room for it, joins the running batch
 * at the next step, and leaves it the step it finishes, without waiting for the others.
 *
 * One step of the loop (scheduler.c):
 *   1. admit waiting requests while the cache allocator has room (a slot today),
 *   2. one decode step for every request that is generating (one batched session call),
 *   3. up to prefill_chunk prompt tokens of the requests still prefilling, oldest first, so a
 *      long prompt costs the running decodes at most one chunk per token they produce; all
 *      these requests' chunks go in one ga_session_forward_multi call (shared weight GEMMs);
 *      on a backend that runs decode rows and prompt tokens in one pass
 *      (ga_session_has_step_mixed: CUDA Qwen3 on one GPU, the CPU), 2 and 3 are one
 *      ga_session_step_mixed call, the prompt tokens held to what is left of prefill_chunk
 *      rows after the decode rows (ga_sched_mixed_budget),
 *   4. hand each new token to its request's callback; finished or cancelled requests give
 *      their cache back at once.
 *
 * Exactness (what tests/serve_load checks): a request's tokens do not depend on what runs
 * beside it. Greedy (temperature <= 0) picks the argmax of logits that the session computes
 * per row; a sampled token at sequence position p draws with (seed, stream 0, p), exactly as
 * ga_generate does, so a request with a seed gets the tokens of `gattn generate --seed`.
 *
 * The cache a request holds is a "cache lease" from the allocator in scheduler.c: one session
 * slot (a sequence id; the session hides what it holds, KV rows or a hybrid model's
 * recurrent state). With a paged session cache (ga_session_opts.kv_blocks / kv_memory) a slot
 * holds only the KV blocks its tokens took: a request is admitted when the blocks of its
 * prompt plus one are free, and when a decoding sequence cannot grow, the most recently
 * admitted request is preempted: its blocks are freed and it goes back to the head of the
 * queue, to be recomputed when it fits again: its prompt prefilled, the tokens it produced
 * fed again by decode steps (each position by the kernel that first computed it). Tokens it
 * already handed to on_token are not handed again, and the recomputation is exact on a
 * batch-invariant session (the CPU backend; CUDA with ga_session_opts.deterministic), so its
 * output stream is the one it would have had alone.
 *
 * Threads: ga_sched_submit, ga_sched_cancel, ga_sched_release, ga_sched_metrics and
 * ga_sched_close may be called from any thread. Callbacks run on the scheduler thread, never
 * with the scheduler's lock held; they must not call back into the scheduler except
 * ga_sched_cancel.
 */
#ifndef GATTN_ENGINE_SCHEDULER_H
#define GATTN_ENGINE_SCHEDULER_H

#include "engine/generate.h"

#define GA_SCHED_MAX_TOP 20 /* top log-probabilities per token (OpenAI's limit) */

typedef struct ga_sched ga_sched;
typedef struct ga_sched_req ga_sched_req;

typedef enum ga_sched_finish {
    GA_FINISH_STOP = 0,      /* a stop id, or the token callback asked to stop */
    GA_FINISH_LENGTH = 1,    /* max_tokens generated, or the slot's context is full */
    GA_FINISH_CANCELLED = 2, /* ga_sched_cancel, or the scheduler shut down */
    GA_FINISH_ERROR = 3,     /* the session failed (message in on_done's msg) */
} ga_sched_finish;

/* One generated token, with its log-probabilities when the request asked for them
 * (log-softmax of the model's raw logits, before temperature or truncation). */
typedef struct ga_sched_token {
    int32_t id;
    int position;  /* its position in the sequence (n_prompt for the first) */
    float logprob; /* of id; 0 when not asked */
    int n_top;     /* entries in top_*: 0 unless asked */
    int32_t top_ids[GA_SCHED_MAX_TOP];
    float top_logprobs[GA_SCHED_MAX_TOP];
} ga_sched_token;

/* Returns nonzero to stop the request after this token (finish "stop"). */
typedef int (*ga_sched_token_fn)(void *user, const ga_sched_token *t);
/* Called exactly once per submitted request, last. msg is "" unless finish is ERROR. */
typedef void (*ga_sched_done_fn)(void *user, ga_sched_finish finish, const char *msg);

typedef struct ga_sched_req_opts {
    const int32_t *prompt; /* copied by ga_sched_submit */
    int n_prompt;          /* >= 1 */
    int max_tokens;        /* >= 1; n_prompt + max_tokens <= the session's max_context */
    ga_sampling sampling;  /* temperature <= 0: greedy */
    int n_stop;            /* stop ids (not passed to on_token) */
    int32_t stop_ids[GA_GEN_MAX_STOP];
    int logprobs; /* -1: none; 0..GA_SCHED_MAX_TOP: the chosen token's and that many top */
    ga_sched_token_fn on_token;
    ga_sched_done_fn on_done;
    void *user;
} ga_sched_req_opts;

typedef struct ga_sched_opts {
    /* prompt tokens per step, all requests together (0: 512); in a mixed step, the step's
     * rows: decode rows plus prompt tokens (ga_sched_mixed_budget) */
    int prefill_chunk;
    int max_queue; /* waiting requests at most (0: 256) */
    /* Separate passes only: in a step where requests are decoding, the prefill pass takes at
     * most this multiple of that step's decode time (prompt tokens estimated from the
     * measured prefill time per token), so a running request's next token waits at most
     * about (1 + share) decode steps (0: 1.0; < 0: no limit, the whole prefill_chunk every
     * step). Mixed steps have no separate pass to hold back: there it is accepted and unused. */
    double prefill_share;
    /* Run the prefill as a pass of its own after the decode step even where the backend can
     * mix the two in one pass (ga_session_has_step_mixed): the steps before mixed steps, to
     * compare against. */
    bool separate_prefill;
} ga_sched_opts;

/* The fewest prompt tokens a step's prefill takes when any are waiting (no starvation). */
#define GA_SCHED_MIN_PREFILL 32

/* The prompt-token budget of a step's prefill pass: prefill_chunk, capped at share x decode_s /
 * prefill_tok_s when decodes ran (decode_s > 0), the limit is on (share > 0) and a time per
 * prompt token is known (prefill_tok_s > 0); never below GA_SCHED_MIN_PREFILL (or the chunk). */
int ga_sched_prefill_budget(int prefill_chunk, double share, double decode_s, double prefill_tok_s);

/* The prompt tokens of a mixed step (decode rows and prefill in one pass: a backend with
 * ga_session_has_step_mixed) with nd decode rows: what is left of prefill_chunk rows after
 * them, never below GA_SCHED_MIN_PREFILL (or the chunk), so prompts progress beside any
 * batch. */
int ga_sched_mixed_budget(int prefill_chunk, int nd);

/* Why a submission was refused (GA_ERR_ARG with a message otherwise). */
typedef enum ga_sched_refusal {
    GA_SCHED_ACCEPTED = 0,
    GA_SCHED_QUEUE_FULL = 1, /* try again later */
    GA_SCHED_CLOSED = 2,     /* shutting down */
} ga_sched_refusal;

#define GA_SCHED_HIST_BUCKETS 14
extern const double ga_sched_hist_bounds[GA_SCHED_HIST_BUCKETS]; /* seconds, ascending */

typedef struct ga_sched_hist {
    uint64_t count[GA_SCHED_HIST_BUCKETS + 1]; /* per bucket (not cumulative); last: +Inf */
    uint64_t n;
    double sum;
} ga_sched_hist;

typedef struct ga_sched_metrics {
    int running, waiting;
    int slots_used, slots_free;
    bool kv_paged;                 /* the session's cache is paged (blocks below) */
    int blocks_used, blocks_free;  /* paged: KV blocks */
    uint64_t preemptions;          /* requests sent back to the queue to free blocks */
    uint64_t requests_finished[4]; /* by ga_sched_finish */
    uint64_t prompt_tokens, generated_tokens;
    double prefill_s, decode_s; /* wall time in prefill chunks and decode steps */
    uint64_t prefill_calls;     /* prefill session calls (one a step: every request's chunk) */
    uint64_t prefill_seqs;      /* request chunks in them (prefill_seqs / prefill_calls: the
                                 * mean number of requests a prefill call carries) */
    uint64_t decode_tokens;     /* rows of decode steps (with the replays of a preempted
                                 * request's sent tokens, src/engine/sched_cache.c) */
    uint64_t decode_steps;      /* decode steps (decode_tokens / decode_steps: the mean batch) */
    uint64_t prefill_capped;    /* prefill passes whose budget prefill_share cut below the chunk */
    /* Steps that ran decode rows and prompt tokens in one pass (each also counts as a decode
     * step and a prefill call; its time is split between decode_s and prefill_s by rows) and
     * their whole wall time. */
    uint64_t mixed_steps;
    double mixed_s;
    ga_sched_hist ttft; /* submit to first token */
    ga_sched_hist itl;  /* between consecutive tokens of a request */
} ga_sched_metrics;

/* The scheduler borrows s and m (they must outlive it); every slot of s is its to use. */
ga_status ga_sched_create(ga_session *s, const ga_model *m, const ga_sched_opts *o, ga_sched **out,
                          ga_err *err);
/* Starts the scheduler thread. */
ga_status ga_sched_start(ga_sched *q, ga_err *err);
/* Queues a request. On GA_OK, *refusal says whether it was taken; when it was, *out is a
 * handle the caller must give back with ga_sched_release (after or before on_done). A
 * request that can never fit (prompt plus max_tokens past the context) is GA_ERR_ARG. */
ga_status ga_sched_submit(ga_sched *q, const ga_sched_req_opts *o, ga_sched_req **out,
                          ga_sched_refusal *refusal, ga_err *err);
/* Asks the scheduler to drop the request (its slot is freed at the next step; on_done gets
 * CANCELLED unless it already finished). Safe to call at any time before release. */
void ga_sched_cancel(ga_sched *q, ga_sched_req *r);
void ga_sched_release(ga_sched *q, ga_sched_req *r);
void ga_sched_metrics_get(ga_sched *q, ga_sched_metrics *out);
/* Refuses new requests (GA_SCHED_CLOSED) from now on. */
void ga_sched_close(ga_sched *q);
/* Closes, lets the requests in flight finish for up to grace_s seconds, cancels the rest,
 * and joins the thread. Every on_done has been called when it returns. */
void ga_sched_stop(ga_sched *q, double grace_s);
void ga_sched_free(ga_sched *q);

const char *ga_sched_finish_name(ga_sched_finish f);

#endif
