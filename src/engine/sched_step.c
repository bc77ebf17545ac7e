/*
 * One scheduler step's work (see scheduler.h): the batched decode of every generating request,
 * the prefill chunks of those still reading their prompt, and the delivery of each new token
 * (log-probabilities, stop ids, limits, metrics).
 */
#include <math.h>
#include <string.h>

#include "engine/sampler.h"
#include "engine/sched_internal.h"

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
void sched_finish(ga_sched *q, ga_sched_req *r, ga_sched_finish f, const char *msg) {
    if (r->state == R_DONE) return;
    pthread_mutex_lock(&q->mu);
    if (r->slot >= 0) sched_cache_release(q, r->slot);
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
        sched_finish(q, r, GA_FINISH_STOP, NULL);
        return;
    }
    double t = sched_now();
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
        sched_finish(q, r, GA_FINISH_STOP, NULL);
    else if (r->produced >= r->o.max_tokens)
        sched_finish(q, r, GA_FINISH_LENGTH, NULL);
    else if (ga_session_seq_len(q->s, r->slot) >= q->max_ctx)
        sched_finish(q, r, GA_FINISH_LENGTH, NULL);
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
bool sched_decode_step(ga_sched *q) {
    int nb = 0;
    bool need_logits = false, same = true;
    const ga_sampling *sp0 = NULL;
    for (int i = 0; i < q->n_active; i++) {
        ga_sched_req *r = q->active[i];
        if (r->state != R_DECODE) continue;
        q->rows[nb] = i;
        q->seqs[nb] = r->slot;
        q->pos[nb] = ga_session_seq_len(q->s, r->slot);
        /* The token at that position: r->last, or while a recomputed request replays what it
         * already sent, the next of those (prompt[] holds them after the prompt). */
        q->toks[nb] = r->prompt[q->pos[nb]];
        q->streams[nb] = 0; /* not the slot: a request draws the same in any batch */
        if (nb == 0)
            sp0 = eff_sampling(r);
        else
            same = same && same_sampling(sp0, eff_sampling(r));
        need_logits = need_logits || r->o.logprobs >= 0;
        nb++;
    }
    if (!nb) {
        q->step_decode_s = 0;
        return false;
    }
    ga_err err = {{0}};
    double t0 = sched_now();
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
    double dt = sched_now() - t0;
    q->step_decode_s = st ? 0 : dt;
    pthread_mutex_lock(&q->mu);
    q->met.decode_s += dt;
    if (!st) {
        q->met.decode_tokens += (uint64_t)nb;
        q->met.decode_steps++;
    }
    pthread_mutex_unlock(&q->mu);
    for (int b = 0; b < nb; b++) {
        ga_sched_req *r = q->active[q->rows[b]];
        if (st)
            sched_finish(q, r, GA_FINISH_ERROR, err.msg);
        else if (q->pos[b] + 1 < r->o.n_prompt + r->produced)
            continue; /* a replayed position: its next token was sent before the preemption */
        else
            take_token(q, r, q->next[b], q->pos[b] + 1,
                       need_logits ? q->logits + (size_t)b * q->V : NULL);
    }
    return true;
}

int ga_sched_prefill_budget(int prefill_chunk, double share, double decode_s,
                            double prefill_tok_s) {
    if (share <= 0 || decode_s <= 0 || prefill_tok_s <= 0) return prefill_chunk;
    const double cap = share * decode_s / prefill_tok_s + 1e-6; /* 2.5 x 2 ms / 10 us is 500 */
    const int lo = prefill_chunk < GA_SCHED_MIN_PREFILL ? prefill_chunk : GA_SCHED_MIN_PREFILL;
    if (cap >= prefill_chunk) return prefill_chunk;
    return cap < lo ? lo : (int)cap;
}

/* Up to prefill_chunk prompt tokens, oldest request first, every request's chunk in one
 * ga_session_forward_multi call: their rows share each weight GEMM on a backend with the
 * multi-sequence hook (the chunk budget is shared, as before). Each row attends only to its
 * own sequence, so a request's logits are those it would get alone where the backend's rows do
 * not depend on their neighbours (the CPU backend; tests/serve_load checks it). The call is all
 * or nothing: when it fails, every request in it fails. */
void sched_prefill_step(ga_sched *q, bool *progress) {
    /* Decodes ran this iteration: the pass is held to prefill_share of their step time, so the
     * decoding requests' next token is not held up by a whole prefill chunk (on the CPU a
     * prompt in any passes gives the same cache and logits; on CUDA pass heights change
     * rounding only, as prefill_chunk does). */
    const int budget_cap = ga_sched_prefill_budget(q->o.prefill_chunk, q->o.prefill_share,
                                                   q->step_decode_s, q->prefill_tok_s);
    int budget = budget_cap, ns = 0;
    int64_t free_b = q->paged ? sched_free_blocks(q) : 0;
    q->poffs[0] = 0;
    /* plan: which requests, how many tokens each */
    for (int i = 0; i < q->n_active && budget > 0; i++) {
        ga_sched_req *r = q->active[i];
        if (r->state != R_PREFILL) continue;
        int left = sched_fill_len(r) - r->prefilled;
        int n = left < budget ? left : budget;
        if (q->paged) { /* what fits the free blocks; later requests wait their turn */
            const int len = ga_session_seq_len(q->s, r->slot), bs = q->block_size;
            const int64_t fit = free_b * bs + (len % bs ? bs - len % bs : 0);
            if (n > fit) n = (int)fit;
            if (n < 1) break;
            free_b -= ga_session_kv_blocks_needed(q->s, r->slot, n);
        }
        memcpy(q->ptoks + q->poffs[ns], r->prompt + r->prefilled, (size_t)n * sizeof *q->ptoks);
        q->rows[ns] = i;
        q->seqs[ns] = r->slot;
        q->poffs[ns + 1] = q->poffs[ns] + n;
        ns++;
        budget -= n;
    }
    if (!ns) return;
    *progress = true;
    const bool capped = budget_cap < q->o.prefill_chunk && budget == 0; /* the cap ended it */
    /* logits (each request's last row) when some request's prompt ends in this chunk */
    bool need = false;
    for (int k = 0; k < ns; k++) {
        const ga_sched_req *r = q->active[q->rows[k]];
        need = need ||
               (r->prefilled + q->poffs[k + 1] - q->poffs[k] == sched_fill_len(r) && !r->produced);
    }
    ga_err err = {{0}};
    double t0 = sched_now();
    ga_status st = ga_session_forward_multi(q->s, ns, q->seqs, q->ptoks, q->poffs, false,
                                            need ? q->logits : NULL, &err);
    double dt = sched_now() - t0;
    /* the time per prompt token, a running average over passes of some size (a pass of a few
     * tokens is mostly fixed cost: it would make every later budget the minimum) */
    if (!st && q->poffs[ns] >= GA_SCHED_MIN_PREFILL / 2) {
        const double t = dt / q->poffs[ns];
        q->prefill_tok_s = q->prefill_tok_s > 0 ? 0.75 * q->prefill_tok_s + 0.25 * t : t;
    }
    pthread_mutex_lock(&q->mu);
    q->met.prefill_s += dt;
    if (!st) {
        q->met.prompt_tokens += (uint64_t)q->poffs[ns];
        q->met.prefill_calls++;
        q->met.prefill_seqs += (uint64_t)ns;
        if (capped) q->met.prefill_capped++;
    }
    pthread_mutex_unlock(&q->mu);
    for (int k = 0; k < ns; k++) {
        ga_sched_req *r = q->active[q->rows[k]];
        if (st) {
            sched_finish(q, r, GA_FINISH_ERROR, err.msg);
            continue;
        }
        r->prefilled += q->poffs[k + 1] - q->poffs[k];
        if (r->prefilled < sched_fill_len(r)) continue;
        r->state = R_DECODE;
        if (r->produced)
            continue; /* recomputed after a preemption: decode steps replay what it sent */
        /* The first token lands at position n_prompt and draws with that counter, as in
         * ga_generate. */
        const float *row = q->logits + (size_t)k * q->V;
        int32_t t = ga_sample_host(row, q->V, eff_sampling(r), 0, (uint64_t)r->o.n_prompt,
                                   q->sample_scratch);
        take_token(q, r, t, r->o.n_prompt, row);
    }
}
