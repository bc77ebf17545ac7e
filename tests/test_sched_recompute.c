/*
 * A preempted request's recompute (src/engine/sched_cache.c, sched_step.c; issue 13): the
 * scheduler prefills only its prompt again and replays the tokens it already sent through
 * decode steps, so every position is recomputed by the kernel that first computed it (on
 * CUDA a prefill rounds differently from the decode steps that made those K/V). CPU backend,
 * paged cache too small for two requests at once, both submitted before the loop starts so
 * the schedule (and the preemptions) do not depend on timing. Checks: a preemption happened;
 * the prefill metric counts each admission's prompt and nothing more (a recompute that
 * prefilled the sent tokens counts them too); each request's tokens equal the same request
 * served alone, none sent twice, positions in order.
 */
#include <pthread.h>

#include "testutil.h"

#include "core/model.h"
#include "engine/scheduler.h"

#define NP 20  /* prompt tokens of each request */
#define NT 100 /* tokens each generates */

static ga_model *make(uint64_t seed) {
    ga_config c = {.vocab_size = 77,
                   .hidden_size = 40,
                   .intermediate_size = 56,
                   .n_layers = 2,
                   .n_heads = 4,
                   .n_kv_heads = 2,
                   .head_dim = 16,
                   .rms_norm_eps = 1e-6f,
                   .rope_theta = 1e4,
                   .max_position_embeddings = 256,
                   .tie_word_embeddings = true,
                   .use_qk_norm = true,
                   .gate = GA_GATE_HEADWISE,
                   .bos_token_id = -1};
    return ga_test_model_std(&c, seed, 0.3f);
}

typedef struct sink {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int32_t tok[NT + 1];
    int pos[NT + 1];
    int n;
    bool done;
    ga_sched_finish finish;
} sink;

static int on_token(void *user, const ga_sched_token *t) {
    sink *k = user;
    if (k->n <= NT) {
        k->tok[k->n] = t->id;
        k->pos[k->n] = t->position;
    }
    k->n++;
    return 0;
}

static void on_done(void *user, ga_sched_finish f, const char *msg) {
    (void)msg;
    sink *k = user;
    pthread_mutex_lock(&k->mu);
    k->finish = f;
    k->done = true;
    pthread_cond_signal(&k->cv);
    pthread_mutex_unlock(&k->mu);
}

/* Serves the nr prompts (all submitted before the loop starts) on a fresh paged session of
 * kv_blocks blocks of 16; fills out[i] and the scheduler's metrics. */
static void serve(const ga_model *m, const int32_t (*prompts)[NP], int nr, int kv_blocks, sink *out,
                  ga_sched_metrics *met) {
    ga_err e = {{0}};
    ga_session_opts so = {.device = GA_DEVICE_CPU,
                          .max_context = 128,
                          .max_batch = 2,
                          .n_threads = 2,
                          .kv_blocks = kv_blocks,
                          .kv_block_size = 16};
    ga_session *s = NULL;
    CHECK_OK(ga_session_create(m, &so, &s, &e), &e);
    ga_sched *q = NULL;
    ga_sched_opts qo = {.prefill_chunk = 512};
    CHECK_OK(ga_sched_create(s, m, &qo, &q, &e), &e);
    ga_sched_req *reqs[2] = {0};
    for (int i = 0; i < nr; i++) {
        out[i] = (sink){.n = 0};
        pthread_mutex_init(&out[i].mu, NULL);
        pthread_cond_init(&out[i].cv, NULL);
        ga_sched_req_opts ro = {.prompt = prompts[i],
                                .n_prompt = NP,
                                .max_tokens = NT,
                                .logprobs = -1,
                                .on_token = on_token,
                                .on_done = on_done,
                                .user = &out[i]};
        ga_sched_refusal why = GA_SCHED_ACCEPTED;
        CHECK_OK(ga_sched_submit(q, &ro, &reqs[i], &why, &e), &e);
    }
    CHECK_OK(ga_sched_start(q, &e), &e);
    for (int i = 0; i < nr; i++) {
        pthread_mutex_lock(&out[i].mu);
        while (!out[i].done)
            pthread_cond_wait(&out[i].cv, &out[i].mu);
        pthread_mutex_unlock(&out[i].mu);
        ga_sched_release(q, reqs[i]);
    }
    ga_sched_metrics_get(q, met);
    ga_sched_stop(q, 1.0);
    ga_sched_free(q);
    ga_session_free(s);
    for (int i = 0; i < nr; i++) {
        pthread_mutex_destroy(&out[i].mu);
        pthread_cond_destroy(&out[i].cv);
    }
}

int main(void) {
    ga_model *m = make(11);
    int32_t prompts[2][NP];
    uint64_t rng = 5;
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < NP; j++)
            prompts[i][j] = (int32_t)(ga_test_rand_u64(&rng) % 77);

    /* Alone: each request with the whole cache to itself. */
    sink alone[2];
    ga_sched_metrics met;
    for (int i = 0; i < 2; i++) {
        serve(m, &prompts[i], 1, 16, &alone[i], &met);
        CHECK(alone[i].finish == GA_FINISH_LENGTH && alone[i].n == NT);
        CHECK(met.preemptions == 0);
    }

    /* Together in 10 blocks (160 tokens) where each needs 8 (NP + NT = 120 tokens): the
     * second is preempted once both have grown, after it sent tokens, and recomputed. */
    sink both[2];
    serve(m, (const int32_t(*)[NP])prompts, 2, 10, both, &met);
    CHECK_MSG(met.preemptions >= 1, "no preemption: the test does not test the recompute");
    /* Every prefill reads one prompt: the two admissions plus one per preemption. */
    CHECK_MSG(met.prompt_tokens == (uint64_t)NP * (2 + met.preemptions),
              "prefilled %llu tokens for %llu preemptions: want %d per admission (the sent "
              "tokens are replayed by decode steps, not prefilled)",
              (unsigned long long)met.prompt_tokens, (unsigned long long)met.preemptions, NP);
    CHECK(met.generated_tokens == 2 * NT);
    for (int i = 0; i < 2; i++) {
        CHECK_MSG(both[i].finish == GA_FINISH_LENGTH && both[i].n == NT,
                  "request %d: finish %d after %d tokens (want length, %d)", i, (int)both[i].finish,
                  both[i].n, NT);
        bool same = both[i].n == alone[i].n;
        for (int t = 0; same && t < NT; t++)
            same = both[i].tok[t] == alone[i].tok[t] && both[i].pos[t] == NP + t;
        CHECK_MSG(same, "request %d: tokens or positions differ from the request served alone", i);
    }
    ga_model_free(m);
    return ga_test_finish();
}
