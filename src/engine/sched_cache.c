/*
 * The scheduler's cache allocator (see scheduler.h and sched_internal.h): who may join the
 * running batch, and who leaves it when a paged cache runs out of blocks.
 */
#include "engine/sched_internal.h"

/* ------------------------------------------------------------------ cache allocator
 * A lease is one session slot (a sequence id). With slots, the slot is sized for max_context
 * when the session was made, so a request that passed ga_sched_submit's length check always
 * fits once it has one. With a paged cache the slot holds only the blocks its tokens took:
 * admission asks for the blocks of the tokens to prefill plus one, and before each step
 * ensure_room preempts the most recently admitted requests until every decoding sequence can
 * take the block its next token may need (a preempted request gives its blocks back and waits
 * at the head of the queue; it is recomputed from its prompt and the tokens it already sent,
 * which are not sent again). */

/* Tokens r prefills when (re)admitted: its prompt only. After a preemption the tokens it
 * already sent are fed again by decode steps (sched_decode_step: a replay, nothing sent), so
 * every position is recomputed by the kernel that first computed it: a prefill rounds
 * differently from the decode steps that made those K/V on CUDA, and a batch-invariant
 * (deterministic) session then recomputes them bitwise. It costs one decode row per sent
 * token instead of part of a prefill chunk, only after a preemption. */
int sched_fill_len(const ga_sched_req *r) {
    return r->o.n_prompt;
}

int sched_free_blocks(const ga_sched *q) {
    ga_kv_info ki;
    ga_session_kv_info(q->s, &ki);
    return ki.blocks_free;
}

bool sched_cache_can_admit(const ga_sched *q, const ga_sched_req *r) {
    if (q->n_free <= 0) return false;
    if (!q->paged) return true;
    return sched_free_blocks(q) >= (sched_fill_len(r) + q->block_size - 1) / q->block_size + 1;
}

int sched_cache_acquire(ga_sched *q) {
    int slot = q->free_slots[--q->n_free];
    ga_session_reset(q->s, slot); /* the session empties whatever the slot holds */
    return slot;
}

void sched_cache_release(ga_sched *q, int slot) {
    ga_session_reset(q->s, slot);
    q->free_slots[q->n_free++] = slot;
}

/* Takes r off the running list back to the head of the queue, its blocks freed. */
void sched_preempt(ga_sched *q, int i) {
    ga_sched_req *r = q->active[i];
    pthread_mutex_lock(&q->mu);
    sched_cache_release(q, r->slot);
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
int sched_newest(const ga_sched *q) {
    for (int i = q->n_active - 1; i >= 0; i--)
        if (q->active[i]->state != R_DONE) return i;
    return -1;
}

int sched_running(const ga_sched *q) {
    int n = 0;
    for (int i = 0; i < q->n_active; i++)
        n += q->active[i]->state != R_DONE;
    return n;
}

/* Paged cache: preempts the newest requests until every decoding sequence can take the block
 * its next token may need. The oldest request alone always fits (ga_sched_submit). */
void sched_ensure_room(ga_sched *q) {
    if (!q->paged) return;
    for (;;) {
        int need = 0;
        for (int i = 0; i < q->n_active; i++) {
            const ga_sched_req *r = q->active[i];
            if (r->state == R_DECODE) need += ga_session_kv_blocks_needed(q->s, r->slot, 1);
        }
        if (need <= sched_free_blocks(q) || sched_running(q) < 2) return;
        sched_preempt(q, sched_newest(q));
    }
}
