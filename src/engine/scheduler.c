/*
 * The continuous-batching loop (see scheduler.h): a bounded waiting queue, the list of
 * requests holding cache, and the one thread that admits, cancels and steps them. Who may
 * join is sched_cache.c's to say, what a step does is sched_step.c's.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/sampler.h"
#include "engine/sched_internal.h"

const double ga_sched_hist_bounds[GA_SCHED_HIST_BUCKETS] = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};

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

/* ------------------------------------------------------------------ create / free */

ga_status ga_sched_create(ga_session *s, const ga_model *m, const ga_sched_opts *o, ga_sched **out,
                          ga_err *err) {
    *out = NULL;
    ga_sched_opts opts = o ? *o : (ga_sched_opts){0};
    if (opts.prefill_chunk < 0 || opts.max_queue < 0)
        return ga_err_set(err, GA_ERR_ARG, "scheduler: negative prefill_chunk or max_queue");
    if (!opts.prefill_chunk) opts.prefill_chunk = 512;
    if (!(opts.prefill_share == opts.prefill_share) || opts.prefill_share > 1000)
        return ga_err_set(err, GA_ERR_ARG, "scheduler: prefill_share %g is not a number <= 1000",
                          opts.prefill_share);
    if (opts.prefill_share == 0) opts.prefill_share = 1.0;
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
    q->mixed = ga_session_has_step_mixed(s) && !opts.separate_prefill;
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
    q->ptoks = malloc((size_t)opts.prefill_chunk * sizeof *q->ptoks);
    q->poffs = malloc((B + 1) * sizeof *q->poffs);
    if (!q->active || !q->free_slots || !q->logits || !q->sample_scratch || !q->seqs || !q->rows ||
        !q->pos || !q->toks || !q->next || !q->streams || !q->ptoks || !q->poffs) {
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
    free(q->ptoks);
    free(q->poffs);
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
    r->t_submit = sched_now();
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
    /* Not n_active: a request is finished (R_DONE, under mu) and its client answered before
     * the step's compaction drops it from the list; /metrics must not count it then. */
    out->running = 0;
    for (int i = 0; i < q->n_active; i++)
        out->running += q->active[i]->state != R_DONE;
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
        bool cancel_all = q->stopping && sched_now() >= q->deadline;
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
        while (q->wait_head && sched_cache_can_admit(q, q->wait_head)) {
            ga_sched_req *r = q->wait_head;
            q->wait_head = r->next;
            if (!q->wait_head) q->wait_tail = NULL;
            q->n_wait--;
            r->next = NULL;
            r->slot = sched_cache_acquire(q);
            r->state = R_PREFILL;
            q->active[q->n_active++] = r;
        }
        q->met.waiting = q->n_wait;
        q->met.running = q->n_active;
        pthread_mutex_unlock(&q->mu);

        while (dropped) {
            ga_sched_req *r = dropped;
            dropped = r->next;
            sched_finish(q, r, GA_FINISH_CANCELLED, NULL);
            pthread_mutex_lock(&q->mu);
            unref_locked(r);
            pthread_mutex_unlock(&q->mu);
        }
        for (int i = 0; i < q->n_active; i++) {
            ga_sched_req *r = q->active[i];
            if (cancel_all || __atomic_load_n(&r->cancel, __ATOMIC_ACQUIRE))
                sched_finish(q, r, GA_FINISH_CANCELLED, NULL);
        }
        sched_ensure_room(q);
        bool progress = false;
        if (q->mixed) {
            progress = sched_mixed_step(q);
        } else {
            progress = sched_decode_step(q);
            sched_prefill_step(q, &progress);
        }
        /* Paged: prefills waiting for blocks that only running prefills hold would wait
         * forever; the newest gives its blocks back. */
        if (!progress && sched_running(q) > 1) sched_preempt(q, sched_newest(q));
        compact(q);
        pthread_mutex_lock(&q->mu);
        if (q->paged) {
            q->met.blocks_free = sched_free_blocks(q);
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
    q->deadline = sched_now() + (grace_s > 0 ? grace_s : 0);
    pthread_cond_signal(&q->cv);
    pthread_mutex_unlock(&q->mu);
    pthread_join(q->th, NULL);
    q->started = false;
}
