/*
 * The continuous-batching loop (see scheduler.h): a bounded waiting queue, the list of
 * requests holding cache, one thread that steps them, and the cache allocator that decides
 * who may join.
 */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/sampler.h"
#include "engine/scheduler.h"

const double ga_sched_hist_bounds[GA_SCHED_HIST_BUCKETS] = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};

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
    int32_t last;    /* last token produced, appended by the next decode step */
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
    int block_size, blocks_total;
    ga_sched_metrics met; /* under mu */
    /* step scratch, scheduler thread only */
    float *logits; /* max_batch * V */
    void *sample_scratch;
    int *seqs, *rows, *pos;
    int32_t *toks, *next;
    uint64_t *streams;
};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

const char *ga_sched_finish_name(ga_sched_finish f) {
    switch (f) {
    case GA_FINISH_STOP:
        return "stop";
    case GA_FINISH_LENGTH:
        return "length";
    case GA_FINISH_CANCELLED:
        return "cancelled";
    case GA_FINISH_ERROR:
        return "error";
    }
    return "?";
}

/* ------------------------------------------------------------------ cache allocator
 * A lease is one session slot (a sequence id). With slots, the slot is sized for max_context
 * when the session was made, so a request that passed ga_sched_submit's length check always
 * fits once it has one. With a paged cache the slot holds only the blocks its tokens took:
 * admission asks for the blocks of the tokens to prefill plus one, and before each step
 * ensure_room preempts the most recently admitted requests until every decoding sequence can
 * take the block its next token may need (a preempted request gives its blocks back and waits
 * at the head of the queue; it is recomputed from its prompt and the tokens it already sent,
 * which are not sent again). */

/* Tokens r prefills when (re)admitted: its prompt, plus after a preemption every token it
 * produced but the last, which the next decode step appends as usual. */
static int fill_len(const ga_sched_req *r) {
    return r->o.n_prompt + (r->produced ? r->produced - 1 : 0);
}

static int free_blocks(const ga_sched *q) {
    ga_kv_info ki;
    ga_session_kv_info(q->s, &ki);
    return ki.blocks_free;
}

static bool cache_can_admit(const ga_sched *q, const ga_sched_req *r) {
    if (q->n_free <= 0) return false;
    if (!q->paged) return true;
    return free_blocks(q) >= (fill_len(r) + q->block_size - 1) / q->block_size + 1;
}

static int cache_acquire(ga_sched *q) {
    int slot = q->free_slots[--q->n_free];
    ga_session_reset(q->s, slot); /* the session empties whatever the slot holds */
    return slot;
}

static void cache_release(ga_sched *q, int slot) {
    ga_session_reset(q->s, slot);
    q->free_slots[q->n_free++] = slot;
}

/* ------------------------------------------------------------------ create / free */

ga_status ga_sched_create(ga_session *s, const ga_model *m, const ga_sched_opts *o, ga_sched **out,
                          ga_err *err) {
    *out = NULL;
    ga_sched_opts opts = o ? *o : (ga_sched_opts){0};
    if (opts.prefill_chunk < 0 || opts.max_queue < 0)
        return ga_err_set(err, GA_ERR_ARG, "scheduler: negative prefill_chunk or max_queue");
    if (!opts.prefill_chunk) opts.prefill_chunk = 512;
    if (!opts.max_queue) opts.max_queue = 256;
    ga_sched *q = calloc(1, sizeof *q);
    if (!q) return ga_err_set(err, GA_ERR_OOM, "scheduler: out of memory");
    q->s = s;
    q->m = m;
    q->o = opts;
    q->V = ga_model_config(m)->vocab_size;
    q->max_ctx = ga_session_max_context(s);
    q->max_batch = ga_session_max_batch(s);
    ga_kv_info ki;
    ga_session_kv_info(s, &ki);
    q->paged = ki.paged;
    q->block_size = ki.block_size;
    q->blocks_total = ki.blocks_total;
    q->met.kv_paged = ki.paged;
    q->met.blocks_free = ki.blocks_free;
    size_t B = (size_t)q->max_batch;
    q->active = calloc(B, sizeof *q->active);
    q->free_slots = malloc(B * sizeof *q->free_slots);
    q->logits = malloc(B * (size_t)q->V * sizeof *q->logits);
    q->sample_scratch = malloc(ga_sample_scratch_bytes(q->V));
    q->seqs = malloc(B * sizeof *q->seqs);
    q->rows = malloc(B * sizeof *q->rows);
    q->pos = malloc(B * sizeof *q->pos);
    q->toks = malloc(B * sizeof *q->toks);
    q->next = malloc(B * sizeof *q->next);
    q->streams = calloc(B, sizeof *q->streams);
    if (!q->active || !q->free_slots || !q->logits || !q->sample_scratch || !q->seqs || !q->rows ||
        !q->pos || !q->toks || !q->next || !q->streams) {
        ga_sched_free(q);
        return ga_err_set(err, GA_ERR_OOM, "scheduler: out of memory");
    }
    /* Slot 0 on top, so a lone request uses the slot `gattn generate` uses. */
    for (int i = 0; i < q->max_batch; i++)
        q->free_slots[i] = q->max_batch - 1 - i;
    q->n_free = q->max_batch;
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->cv, NULL);
    *out = q;
    return GA_OK;
}

void ga_sched_free(ga_sched *q) {
    if (!q) return;
    if (q->started) ga_sched_stop(q, 0);
    if (q->free_slots && q->logits) { /* fully made: the lock exists */
        pthread_mutex_destroy(&q->mu);
        pthread_cond_destroy(&q->cv);
    }
    free(q->active);
    free(q->free_slots);
    free(q->logits);
    free(q->sample_scratch);
    free(q->seqs);
    free(q->rows);
    free(q->pos);
    free(q->toks);
    free(q->next);
    free(q->streams);
    free(q);
}

/* ------------------------------------------------------------------ submission */

static bool bad_float(float x) {
    return !isfinite(x) || x < 0;
}

ga_status ga_sched_submit(ga_sched *q, const ga_sched_req_opts *o, ga_sched_req **out,
                          ga_sched_refusal *refusal, ga_err *err) {
    *out = NULL;
    *refusal = GA_SCHED_ACCEPTED;
    if (!o->prompt || o->n_prompt < 1) return ga_err_set(err, GA_ERR_ARG, "the prompt is empty");
    if (o->max_tokens < 1)
        return ga_err_set(err, GA_ERR_ARG, "max_tokens %d must be >= 1", o->max_tokens);
    if ((int64_t)o->n_prompt + o->max_tokens > q->max_ctx)
        return ga_err_set(err, GA_ERR_ARG,
                          "the prompt (%d tokens) plus max_tokens (%d) exceed the context of %d "
                          "tokens",
                          o->n_prompt, o->max_tokens, q->max_ctx);
    /* A request must fit the whole paged cache alone, so preempting the others always lets
     * the oldest one finish. */
    if (q->paged && ((int64_t)o->n_prompt + o->max_tokens + q->block_size - 1) / q->block_size >
                        q->blocks_total)
        return ga_err_set(err, GA_ERR_ARG,
                          "the prompt (%d tokens) plus max_tokens (%d) need more than the KV "
                          "cache's %d blocks of %d tokens",
                          o->n_prompt, o->max_tokens, q->blocks_total, q->block_size);
    for (int i = 0; i < o->n_prompt; i++)
        if (o->prompt[i] < 0 || o->prompt[i] >= q->V)
            return ga_err_set(err, GA_ERR_ARG, "token id %d at position %d is outside [0, %d)",
                              o->prompt[i], i, q->V);
    const ga_sampling *sp = &o->sampling;
    if (isnan(sp->temperature) || bad_float(sp->top_p) || sp->top_k < 0)
        return ga_err_set(err, GA_ERR_ARG,
                          "bad sampling values (temperature %g, top_p %g, top_k %d)",
                          (double)sp->temperature, (double)sp->top_p, sp->top_k);
    if (o->logprobs < -1 || o->logprobs > GA_SCHED_MAX_TOP)
        return ga_err_set(err, GA_ERR_ARG, "logprobs %d outside [0, %d]", o->logprobs,
                          GA_SCHED_MAX_TOP);
    if (o->n_stop < 0 || o->n_stop > GA_GEN_MAX_STOP)
        return ga_err_set(err, GA_ERR_ARG, "%d stop ids outside [0, %d]", o->n_stop,
                          GA_GEN_MAX_STOP);
    ga_sched_req *r = calloc(1, sizeof *r);
    int32_t *p = malloc(((size_t)o->n_prompt + o->max_tokens) * sizeof *p);
    if (!r || !p) {
        free(r);
        free(p);
        return ga_err_set(err, GA_ERR_OOM, "scheduler: out of memory");
    }
    memcpy(p, o->prompt, (size_t)o->n_prompt * sizeof *p);
    r->o = *o;
    r->o.prompt = r->prompt = p;
    r->refs = 2;
    r->slot = -1;
    r->state = R_WAITING;
    r->t_submit = now_s();
    pthread_mutex_lock(&q->mu);
    if (q->closed || q->stopping)
        *refusal = GA_SCHED_CLOSED;
    else if (q->n_wait >= q->o.max_queue)
        *refusal = GA_SCHED_QUEUE_FULL;
    if (*refusal) {
        pthread_mutex_unlock(&q->mu);
        free(p);
        free(r);
        return GA_OK;
    }
    if (q->wait_tail)
        q->wait_tail->next = r;
    else
        q->wait_head = r;
    q->wait_tail = r;
    q->n_wait++;
    q->met.waiting = q->n_wait;
    pthread_cond_signal(&q->cv);
    pthread_mutex_unlock(&q->mu);
    *out = r;
    return GA_OK;
}

void ga_sched_cancel(ga_sched *q, ga_sched_req *r) {
    if (!r) return;
    __atomic_store_n(&r->cancel, 1, __ATOMIC_RELEASE);
    pthread_mutex_lock(&q->mu);
    pthread_cond_signal(&q->cv); /* a waiting request is dropped at once */
    pthread_mutex_unlock(&q->mu);
}

static void unref_locked(ga_sched_req *r) {
    if (--r->refs == 0) {
        free(r->prompt);
        free(r);
    }
}

void ga_sched_release(ga_sched *q, ga_sched_req *r) {
    if (!r) return;
    pthread_mutex_lock(&q->mu);
    unref_locked(r);
    pthread_mutex_unlock(&q->mu);
}

void ga_sched_metrics_get(ga_sched *q, ga_sched_metrics *out) {
    pthread_mutex_lock(&q->mu);
    *out = q->met;
    out->running = q->n_active;
    out->waiting = q->n_wait;
    out->slots_free = q->n_free;
    out->slots_used = q->max_batch - q->n_free;
    pthread_mutex_unlock(&q->mu);
}

void ga_sched_close(ga_sched *q) {
    pthread_mutex_lock(&q->mu);
    q->closed = true;
    pthread_mutex_unlock(&q->mu);
}

/* ------------------------------------------------------------------ the step */

static void hist_add(ga_sched_hist *h, double v) {
    int b = 0;
    while (b < GA_SCHED_HIST_BUCKETS && v > ga_sched_hist_bounds[b])
        b++;
    h->count[b]++;
    h->n++;
    h->sum += v;
}

/* Finishes r: gives its cache back, tells its owner, drops the scheduler's reference.
 * Called on the scheduler thread without the lock. */
static void finish(ga_sched *q, ga_sched_req *r, ga_sched_finish f, const char *msg) {
    if (r->state == R_DONE) return;
    pthread_mutex_lock(&q->mu);
    if (r->slot >= 0) cache_release(q, r->slot);
    r->slot = -1;
    r->state = R_DONE;
    r->finish = f;
    q->met.requests_finished[f]++;
    pthread_mutex_unlock(&q->mu);
    r->o.on_done(r->o.user, f, msg ? msg : "");
}

/* Log-softmax of the raw logits at t, and the n most likely tokens (ties: lower id first). */
static void fill_logprobs(const float *x, int V, int n, ga_sched_token *t) {
    float mx = x[0];
    for (int i = 1; i < V; i++)
        if (x[i] > mx) mx = x[i];
    double sum = 0;
    for (int i = 0; i < V; i++)
        sum += exp((double)x[i] - mx);
    double lse = mx + log(sum);
    t->logprob = (float)(x[t->id] - lse);
    t->n_top = 0;
    for (int k = 0; k < n && k < V; k++) {
        int best = -1;
        for (int i = 0; i < V; i++) {
            bool taken = false;
            for (int j = 0; j < k && !taken; j++)
                taken = t->top_ids[j] == i;
            if (!taken && (best < 0 || x[i] > x[best])) best = i;
        }
        t->top_ids[k] = best;
        t->top_logprobs[k] = (float)(x[best] - lse);
        t->n_top++;
    }
}

static bool is_stop(const ga_sched_req *r, int32_t id) {
    for (int i = 0; i < r->o.n_stop; i++)
        if (r->o.stop_ids[i] == id) return true;
    return false;
}

/* Records token id (at sequence position pos) for r; logits (V floats) when the request asked
 * for log-probabilities. */
static void take_token(ga_sched *q, ga_sched_req *r, int32_t id, int pos, const float *logits) {
    if (is_stop(r, id)) {
        finish(q, r, GA_FINISH_STOP, NULL);
        return;
    }
    double t = now_s();
    pthread_mutex_lock(&q->mu);
    q->met.generated_tokens++;
    hist_add(r->produced ? &q->met.itl : &q->met.ttft, t - (r->produced ? r->t_last : r->t_submit));
    pthread_mutex_unlock(&q->mu);
    r->t_last = t;
    r->prompt[r->o.n_prompt + r->produced] = id; /* for a recompute after a preemption */
    r->produced++;
    r->last = id;
    ga_sched_token tok = {.id = id, .position = pos};
    if (r->o.logprobs >= 0 && logits) fill_logprobs(logits, q->V, r->o.logprobs, &tok);
    if (r->o.on_token && r->o.on_token(r->o.user, &tok))
        finish(q, r, GA_FINISH_STOP, NULL);
    else if (r->produced >= r->o.max_tokens)
        finish(q, r, GA_FINISH_LENGTH, NULL);
    else if (ga_session_seq_len(q->s, r->slot) >= q->max_ctx)
        finish(q, r, GA_FINISH_LENGTH, NULL);
}

static const ga_sampling *eff_sampling(const ga_sched_req *r) {
    return r->o.sampling.temperature > 0 && r->o.sampling.top_k != 1 ? &r->o.sampling : NULL;
}

static bool same_sampling(const ga_sampling *a, const ga_sampling *b) {
    if (!a || !b) return a == b;
    return a->temperature == b->temperature && a->top_k == b->top_k && a->top_p == b->top_p &&
           a->seed == b->seed;
}

/* One decode step for every request that is generating. */
static bool decode_step(ga_sched *q) {
    int nb = 0;
    bool need_logits = false, same = true;
    const ga_sampling *sp0 = NULL;
    for (int i = 0; i < q->n_active; i++) {
        ga_sched_req *r = q->active[i];
        if (r->state != R_DECODE) continue;
        q->rows[nb] = i;
        q->seqs[nb] = r->slot;
        q->toks[nb] = r->last;
        q->pos[nb] = ga_session_seq_len(q->s, r->slot); /* where r->last lands */
        q->streams[nb] = 0; /* not the slot: a request draws the same in any batch */
        if (nb == 0)
            sp0 = eff_sampling(r);
        else
            same = same && same_sampling(sp0, eff_sampling(r));
        need_logits = need_logits || r->o.logprobs >= 0;
        nb++;
    }
    if (!nb) return false;
    ga_err err = {{0}};
    double t0 = now_s();
    ga_status st;
    if (same && !need_logits) {
        /* One sampling for the batch: the backend picks (on the GPU only ids come back). */
        st = ga_session_decode_sample(q->s, q->seqs, q->toks, nb, sp0, q->streams, q->next, &err);
    } else {
        st = ga_session_decode_batch(q->s, q->seqs, q->toks, nb, q->logits, &err);
        for (int b = 0; b < nb && !st; b++)
            q->next[b] = ga_sample_host(q->logits + (size_t)b * q->V, q->V,
                                        eff_sampling(q->active[q->rows[b]]), 0,
                                        (uint64_t)q->pos[b] + 1, q->sample_scratch);
    }
    double dt = now_s() - t0;
    pthread_mutex_lock(&q->mu);
    q->met.decode_s += dt;
    if (!st) q->met.decode_tokens += (uint64_t)nb;
    pthread_mutex_unlock(&q->mu);
    for (int b = 0; b < nb; b++) {
        ga_sched_req *r = q->active[q->rows[b]];
        if (st)
            finish(q, r, GA_FINISH_ERROR, err.msg);
        else
            take_token(q, r, q->next[b], q->pos[b] + 1,
                       need_logits ? q->logits + (size_t)b * q->V : NULL);
    }
    return true;
}

/* Up to prefill_chunk prompt tokens, oldest request first. */
static void prefill_step(ga_sched *q, bool *progress) {
    int budget = q->o.prefill_chunk;
    for (int i = 0; i < q->n_active && budget > 0; i++) {
        ga_sched_req *r = q->active[i];
        if (r->state != R_PREFILL) continue;
        int left = fill_len(r) - r->prefilled;
        int n = left < budget ? left : budget;
        if (q->paged) { /* what fits the free blocks; later requests wait their turn */
            const int len = ga_session_seq_len(q->s, r->slot), bs = q->block_size;
            const int64_t fit = (int64_t)free_blocks(q) * bs + (len % bs ? bs - len % bs : 0);
            if (n > fit) n = (int)fit;
            if (n < 1) break;
        }
        bool last = n == left;
        bool resume = r->produced > 0; /* recomputing after a preemption: no new token */
        ga_err err = {{0}};
        double t0 = now_s();
        ga_status st = ga_session_forward(q->s, r->slot, r->prompt + r->prefilled, n, false,
                                          last && !resume ? q->logits : NULL, &err);
        double dt = now_s() - t0;
        pthread_mutex_lock(&q->mu);
        q->met.prefill_s += dt;
        if (!st) q->met.prompt_tokens += (uint64_t)n;
        pthread_mutex_unlock(&q->mu);
        budget -= n;
        *progress = true;
        if (st) {
            finish(q, r, GA_FINISH_ERROR, err.msg);
            continue;
        }
        r->prefilled += n;
        if (!last) continue;
        r->state = R_DECODE;
        if (resume) continue; /* r->last goes in with the next decode step, as before */
        /* The first token lands at position n_prompt and draws with that counter, as in
         * ga_generate. */
        int32_t t = ga_sample_host(q->logits, q->V, eff_sampling(r), 0, (uint64_t)r->o.n_prompt,
                                   q->sample_scratch);
        take_token(q, r, t, r->o.n_prompt, q->logits);
    }
}

/* Takes r off the running list back to the head of the queue, its blocks freed. */
static void preempt(ga_sched *q, int i) {
    ga_sched_req *r = q->active[i];
    pthread_mutex_lock(&q->mu);
    cache_release(q, r->slot);
    r->slot = -1;
    r->prefilled = 0;
    r->state = R_WAITING;
    for (int k = i; k + 1 < q->n_active; k++)
        q->active[k] = q->active[k + 1];
    q->n_active--;
    r->next = q->wait_head;
    q->wait_head = r;
    if (!q->wait_tail) q->wait_tail = r;
    q->n_wait++;
    q->met.preemptions++;
    q->met.running = q->n_active;
    q->met.waiting = q->n_wait;
    pthread_mutex_unlock(&q->mu);
}

/* The most recently admitted request still running, or -1. */
static int newest(const ga_sched *q) {
    for (int i = q->n_active - 1; i >= 0; i--)
        if (q->active[i]->state != R_DONE) return i;
    return -1;
}

static int running(const ga_sched *q) {
    int n = 0;
    for (int i = 0; i < q->n_active; i++)
        n += q->active[i]->state != R_DONE;
    return n;
}

/* Paged cache: preempts the newest requests until every decoding sequence can take the block
 * its next token may need. The oldest request alone always fits (ga_sched_submit). */
static void ensure_room(ga_sched *q) {
    if (!q->paged) return;
    for (;;) {
        int need = 0;
        for (int i = 0; i < q->n_active; i++) {
            const ga_sched_req *r = q->active[i];
            if (r->state == R_DECODE) need += ga_session_kv_blocks_needed(q->s, r->slot, 1);
        }
        if (need <= free_blocks(q) || running(q) < 2) return;
        preempt(q, newest(q));
    }
}

/* Drops finished requests from the active list (their cache is already back). */
static void compact(ga_sched *q) {
    pthread_mutex_lock(&q->mu);
    int k = 0;
    for (int i = 0; i < q->n_active; i++) {
        ga_sched_req *r = q->active[i];
        if (r->state == R_DONE)
            unref_locked(r);
        else
            q->active[k++] = r;
    }
    q->n_active = k;
    q->met.running = k;
    pthread_mutex_unlock(&q->mu);
}

static void *loop(void *arg) {
    ga_sched *q = arg;
    pthread_mutex_lock(&q->mu);
    for (;;) {
        while (!q->stopping && !q->n_wait && !q->n_active)
            pthread_cond_wait(&q->cv, &q->mu);
        bool cancel_all = q->stopping && now_s() >= q->deadline;
        if (q->stopping && !q->n_wait && !q->n_active) break;
        /* Waiting requests that were cancelled leave the queue without holding cache. */
        ga_sched_req *dropped = NULL, **pp = &q->wait_head, *last = NULL;
        while (*pp) {
            ga_sched_req *r = *pp;
            if (cancel_all || __atomic_load_n(&r->cancel, __ATOMIC_ACQUIRE)) {
                *pp = r->next;
                q->n_wait--;
                r->next = dropped;
                dropped = r;
            } else {
                last = r;
                pp = &r->next;
            }
        }
        q->wait_tail = last;
        /* Admission, first come first served: the head waits until it fits. */
        while (q->wait_head && cache_can_admit(q, q->wait_head)) {
            ga_sched_req *r = q->wait_head;
            q->wait_head = r->next;
            if (!q->wait_head) q->wait_tail = NULL;
            q->n_wait--;
            r->next = NULL;
            r->slot = cache_acquire(q);
            r->state = R_PREFILL;
            q->active[q->n_active++] = r;
        }
        q->met.waiting = q->n_wait;
        q->met.running = q->n_active;
        pthread_mutex_unlock(&q->mu);

        while (dropped) {
            ga_sched_req *r = dropped;
            dropped = r->next;
            finish(q, r, GA_FINISH_CANCELLED, NULL);
            pthread_mutex_lock(&q->mu);
            unref_locked(r);
            pthread_mutex_unlock(&q->mu);
        }
        for (int i = 0; i < q->n_active; i++) {
            ga_sched_req *r = q->active[i];
            if (cancel_all || __atomic_load_n(&r->cancel, __ATOMIC_ACQUIRE))
                finish(q, r, GA_FINISH_CANCELLED, NULL);
        }
        ensure_room(q);
        bool progress = decode_step(q);
        prefill_step(q, &progress);
        /* Paged: prefills waiting for blocks that only running prefills hold would wait
         * forever; the newest gives its blocks back. */
        if (!progress && running(q) > 1) preempt(q, newest(q));
        compact(q);
        pthread_mutex_lock(&q->mu);
        if (q->paged) {
            q->met.blocks_free = free_blocks(q);
            q->met.blocks_used = q->blocks_total - q->met.blocks_free;
        }
        pthread_mutex_unlock(&q->mu);
        pthread_mutex_lock(&q->mu);
    }
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

ga_status ga_sched_start(ga_sched *q, ga_err *err) {
    if (q->started) return ga_err_set(err, GA_ERR_ARG, "scheduler: already started");
    if (pthread_create(&q->th, NULL, loop, q))
        return ga_err_set(err, GA_ERR_OOM, "scheduler: cannot start its thread");
    q->started = true;
    return GA_OK;
}

void ga_sched_stop(ga_sched *q, double grace_s) {
    if (!q->started) return;
    pthread_mutex_lock(&q->mu);
    q->closed = true;
    q->stopping = true;
    q->deadline = now_s() + (grace_s > 0 ? grace_s : 0);
    pthread_cond_signal(&q->cv);
    pthread_mutex_unlock(&q->mu);
    pthread_join(q->th, NULL);
    q->started = false;
}
