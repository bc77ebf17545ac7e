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

/* The decode rows of a step: every generating request's next position, into q->rows, seqs,
 * pos, toks and streams [0, nb). *same: one sampling for every row (*sp0); *need_logits: some
 * row's request asked for log-probabilities (its logits must come back). */
static int plan_decode(ga_sched *q, bool *same, const ga_sampling **sp0, bool *need_logits) {
    int nb = 0;
    *same = true;
    *sp0 = NULL;
    *need_logits = false;
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
            *sp0 = eff_sampling(r);
        else
            *same = *same && same_sampling(*sp0, eff_sampling(r));
        *need_logits = *need_logits || r->o.logprobs >= 0;
        nb++;
    }
    return nb;
}

/* After a step ran the nb decode rows (st: how it went): the ids from q->logits (rows [0, nb))
 * when they came back as logits, then each row's token to its request. */
static void deliver_decode(ga_sched *q, int nb, bool ids, bool need_logits, ga_status st,
                           const ga_err *err) {
    for (int b = 0; b < nb && !st && !ids; b++)
        q->next[b] =
            ga_sample_host(q->logits + (size_t)b * q->V, q->V, eff_sampling(q->active[q->rows[b]]),
                           0, (uint64_t)q->pos[b] + 1, q->sample_scratch);
    for (int b = 0; b < nb; b++) {
        ga_sched_req *r = q->active[q->rows[b]];
        if (st)
            sched_finish(q, r, GA_FINISH_ERROR, err->msg);
        else if (q->pos[b] + 1 < r->o.n_prompt + r->produced)
            continue; /* a replayed position: its next token was sent before the preemption */
        else
            take_token(q, r, q->next[b], q->pos[b] + 1,
                       need_logits ? q->logits + (size_t)b * q->V : NULL);
    }
}

/* One decode step for every request that is generating. */
bool sched_decode_step(ga_sched *q) {
    bool need_logits, same;
    const ga_sampling *sp0;
    const int nb = plan_decode(q, &same, &sp0, &need_logits);
    if (!nb) {
        q->step_decode_s = 0;
        return false;
    }
    ga_err err = {{0}};
    double t0 = sched_now();
    /* One sampling for the batch: the backend picks (on the GPU only ids come back). */
    const bool ids = same && !need_logits;
    ga_status st =
        ids ? ga_session_decode_sample(q->s, q->seqs, q->toks, nb, sp0, q->streams, q->next, &err)
            : ga_session_decode_batch(q->s, q->seqs, q->toks, nb, q->logits, &err);
    double dt = sched_now() - t0;
    q->step_decode_s = st ? 0 : dt;
    pthread_mutex_lock(&q->mu);
    q->met.decode_s += dt;
    if (!st) {
        q->met.decode_tokens += (uint64_t)nb;
        q->met.decode_steps++;
    }
    pthread_mutex_unlock(&q->mu);
    deliver_decode(q, nb, ids, need_logits, st, &err);
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

/* The prefill pieces of a step: up to budget prompt tokens, oldest request first, into
 * q->rows and seqs [base, base + ns), q->ptoks and q->poffs [0, ns]; paged, only what fits
 * free_b free blocks (later requests wait their turn). *need: some request's prompt ends
 * here (its logits must come back). Returns ns. */
static int plan_prefill(ga_sched *q, int budget, int base, int64_t free_b, bool *need) {
    int ns = 0;
    q->poffs[0] = 0;
    *need = false;
    for (int i = 0; i < q->n_active && budget > 0; i++) {
        ga_sched_req *r = q->active[i];
        if (r->state != R_PREFILL) continue;
        int left = sched_fill_len(r) - r->prefilled;
        int n = left < budget ? left : budget;
        if (q->paged) {
            const int len = ga_session_seq_len(q->s, r->slot), bs = q->block_size;
            const int64_t fit = free_b * bs + (len % bs ? bs - len % bs : 0);
            if (n > fit) n = (int)fit;
            if (n < 1) break;
            free_b -= ga_session_kv_blocks_needed(q->s, r->slot, n);
        }
        memcpy(q->ptoks + q->poffs[ns], r->prompt + r->prefilled, (size_t)n * sizeof *q->ptoks);
        q->rows[base + ns] = i;
        q->seqs[base + ns] = r->slot;
        q->poffs[ns + 1] = q->poffs[ns] + n;
        *need = *need || (r->prefilled + n == sched_fill_len(r) && !r->produced);
        ns++;
        budget -= n;
    }
    return ns;
}

/* After a step ran the ns pieces planned at base (st: how it went; logits: their rows, each
 * piece's last token, when plan_prefill said some were needed): each request's progress, and
 * the first token of those whose prompt is done. */
static void deliver_prefill(ga_sched *q, int base, int ns, ga_status st, const ga_err *err,
                            const float *logits) {
    for (int k = 0; k < ns; k++) {
        ga_sched_req *r = q->active[q->rows[base + k]];
        if (st) {
            sched_finish(q, r, GA_FINISH_ERROR, err->msg);
            continue;
        }
        r->prefilled += q->poffs[k + 1] - q->poffs[k];
        if (r->prefilled < sched_fill_len(r)) continue;
        r->state = R_DECODE;
        if (r->produced)
            continue; /* recomputed after a preemption: decode steps replay what it sent */
        /* The first token lands at position n_prompt and draws with that counter, as in
         * ga_generate. */
        const float *row = logits + (size_t)k * q->V;
        int32_t t = ga_sample_host(row, q->V, eff_sampling(r), 0, (uint64_t)r->o.n_prompt,
                                   q->sample_scratch);
        take_token(q, r, t, r->o.n_prompt, row);
    }
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
    bool need;
    const int ns = plan_prefill(q, budget_cap, 0, q->paged ? sched_free_blocks(q) : 0, &need);
    if (!ns) return;
    *progress = true;
    /* the cap ended it */
    const bool capped = budget_cap < q->o.prefill_chunk && q->poffs[ns] == budget_cap;
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
    deliver_prefill(q, 0, ns, st, &err, q->logits);
}

int ga_sched_mixed_budget(int prefill_chunk, int nd) {
    const int lo = prefill_chunk < GA_SCHED_MIN_PREFILL ? prefill_chunk : GA_SCHED_MIN_PREFILL;
    return prefill_chunk - nd > lo ? prefill_chunk - nd : lo;
}

/* One step with the decode rows and the prefill pieces in one ga_session_step_mixed call, on
 * a backend that runs it as one pass: the prompt tokens ride on the decode step's weight
 * reads instead of streaming every weight again in a pass of their own. The step's rows are
 * held to prefill_chunk (decode rows first; ga_sched_mixed_budget), so a step is about as
 * tall as a prefill pass; prefill_share does not apply (there is no separate pass to hold
 * back). Without decode rows it is sched_prefill_step's pass at the full chunk, without
 * prompt work (or blocks for it) sched_decode_step's step (a captured graph on CUDA). A
 * mixed step is all or nothing, as either call is. */
bool sched_mixed_step(ga_sched *q) {
    bool need_logits, same, need;
    const ga_sampling *sp0;
    bool progress = false;
    const int nd = plan_decode(q, &same, &sp0, &need_logits);
    if (!nd) {
        q->step_decode_s = 0;
        sched_prefill_step(q, &progress);
        return progress;
    }
    int64_t free_b = 0;
    if (q->paged) { /* the decode rows' blocks first: sched_ensure_room made room for them */
        free_b = sched_free_blocks(q);
        for (int b = 0; b < nd; b++)
            free_b -= ga_session_kv_blocks_needed(q->s, q->seqs[b], 1);
    }
    const int budget = ga_sched_mixed_budget(q->o.prefill_chunk, nd);
    const int np = free_b >= 0 ? plan_prefill(q, budget, nd, free_b, &need) : 0;
    if (!np) return sched_decode_step(q);
    const int P = q->poffs[np];
    const bool ids = same && !need_logits;
    float *plogits = need ? q->logits + (size_t)nd * q->V : NULL;
    ga_err err = {{0}};
    double t0 = sched_now();
    ga_status st = ga_session_step_mixed(q->s, nd, q->seqs, q->toks, sp0, q->streams,
                                         ids ? q->next : NULL, ids ? NULL : q->logits, np,
                                         q->seqs + nd, q->ptoks, q->poffs, plogits, &err);
    double dt = sched_now() - t0;
    q->step_decode_s = 0;
    pthread_mutex_lock(&q->mu);
    /* the step's time split between decode and prefill by rows, so that busy = prefill +
     * decode seconds stays the wall time in steps (mixed_s: the whole of the mixed ones) */
    q->met.decode_s += dt * nd / (nd + P);
    q->met.prefill_s += dt * P / (nd + P);
    q->met.mixed_s += dt;
    if (!st) {
        q->met.decode_tokens += (uint64_t)nd;
        q->met.decode_steps++;
        q->met.prompt_tokens += (uint64_t)P;
        q->met.prefill_calls++;
        q->met.prefill_seqs += (uint64_t)np;
        q->met.mixed_steps++;
    }
    pthread_mutex_unlock(&q->mu);
    deliver_decode(q, nd, ids, need_logits, st, &err);
    deliver_prefill(q, nd, np, st, &err, plogits);
    return true;
}
