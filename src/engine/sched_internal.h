/*
 * The scheduler's insides (scheduler.h), shared by its three files:
 *   scheduler.c   the request lifecycle: create/free, submission, cancel/release, metrics, the
 *                 loop thread (admission from the queue, cancellations, one step after another);
 *   sched_cache.c the cache allocator: admission by free slots and KV blocks, preemption;
 *   sched_step.c  one step's work: the batched decode, the prefill chunks, token delivery.
 * Not a public header: only src/engine/sched_*.c and scheduler.c include it.
 */
#ifndef GATTN_ENGINE_SCHED_INTERNAL_H
#define GATTN_ENGINE_SCHED_INTERNAL_H

#include <pthread.h>
#include <time.h>

#include "engine/scheduler.h"

typedef enum rstate { R_WAITING, R_PREFILL, R_DECODE, R_DONE } rstate;

struct ga_sched_req {
    ga_sched_req_opts o;
    int32_t *prompt; /* own copy of o.prompt, then the tokens produced (n_prompt + max_tokens) */
    int refs;        /* the caller's handle + the scheduler's; under q->mu */
    int cancel;      /* atomic: ga_sched_cancel was called */
    rstate state;    /* scheduler thread only, except R_WAITING -> R_PREFILL under q->mu */
    int slot;        /* cache lease while in PREFILL/DECODE */
    int prefilled;   /* tokens of prompt[] in the cache */
    int produced;    /* tokens passed to on_token */
    int32_t last;    /* last token produced (prompt[n_prompt + produced - 1]) */
    double t_submit, t_last;
    ga_sched_finish finish;
    ga_sched_req *next; /* waiting queue link */
};

struct ga_sched {
    ga_session *s;
    const ga_model *m;
    int V, max_ctx, max_batch;
    ga_sched_opts o;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t th;
    bool started, closed, stopping;
    double deadline; /* when stopping: cancel what is still running after this */
    ga_sched_req *wait_head, *wait_tail;
    int n_wait;
    ga_sched_req **active; /* max_batch; admission order; scheduler thread (count under mu) */
    int n_active;
    int *free_slots; /* the cache allocator: a stack of free session slots */
    int n_free;
    bool paged; /* the session's cache is paged: admission and growth count blocks */
    bool mixed; /* steps are sched_mixed_step's (a one-pass mixed backend, not turned off) */
    int block_size, blocks_total;
    ga_sched_metrics met; /* under mu */
    /* the prefill share (ga_sched_opts.prefill_share), scheduler thread only: this loop
     * iteration's decode step time (0: none ran) and the running estimate of the prefill
     * time per prompt token (0: not measured yet) */
    double step_decode_s, prefill_tok_s;
    /* step scratch, scheduler thread only */
    float *logits; /* max_batch * V */
    void *sample_scratch;
    int *seqs, *rows, *pos;
    int32_t *toks, *next;
    int32_t *ptoks; /* prefill_chunk: the step's prefill tokens, request after request */
    int *poffs;     /* max_batch + 1: where each request's tokens start in ptoks */
    uint64_t *streams;
};

static inline double sched_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ------------------------------------------------------------------ sched_cache.c */
/* Tokens r prefills when (re)admitted: its prompt (after a preemption, decode steps replay
 * what it produced). */
int sched_fill_len(const ga_sched_req *r);
int sched_free_blocks(const ga_sched *q);
/* Whether the head of the queue may join now. Under q->mu. */
bool sched_cache_can_admit(const ga_sched *q, const ga_sched_req *r);
/* A free slot, emptied (under q->mu). */
int sched_cache_acquire(ga_sched *q);
/* Gives a slot back (under q->mu). */
void sched_cache_release(ga_sched *q, int slot);
/* Takes active[i] back to the head of the queue, its cache freed. Scheduler thread. */
void sched_preempt(ga_sched *q, int i);
/* The most recently admitted request still running, or -1. */
int sched_newest(const ga_sched *q);
/* Requests in the active list not yet finished. */
int sched_running(const ga_sched *q);
/* Paged: preempts the newest requests until every decoding sequence can grow by a token. */
void sched_ensure_room(ga_sched *q);

/* ------------------------------------------------------------------ sched_step.c */
/* Finishes r: cache back, on_done, the scheduler's reference dropped by the next compaction.
 * Scheduler thread, without the lock. */
void sched_finish(ga_sched *q, ga_sched_req *r, ga_sched_finish f, const char *msg);
/* One decode step for every request that is generating; false when there was none. */
bool sched_decode_step(ga_sched *q);
/* Up to prefill_chunk prompt tokens of the requests still prefilling; *progress set when any
 * ran. */
void sched_prefill_step(ga_sched *q, bool *progress);
/* The step of a backend with one-pass mixed steps (ga_session_has_step_mixed): the decode rows
 * and up to ga_sched_mixed_budget prompt tokens in one call, or either alone when the other
 * has none; false when nothing ran. */
bool sched_mixed_step(ga_sched *q);

#endif
