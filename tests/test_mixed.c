/*
 * Mixed steps (ga_session_step_mixed; issue 13): a serving step's decode rows and prompt
 * tokens in one call.
 *  - session: the same sessions driven by mixed steps and by the two calls they stand for
 *    (ga_session_decode_batch / decode_sample, then ga_session_forward_multi) give the same
 *    decode-row logits and ids, the same prefill logits, and caches that decode the same
 *    afterwards. Slots and paged; continuations and fresh prompts among the pieces.
 *  - arguments (cpu): what the session refuses, having changed nothing.
 *  - scheduler (cpu): requests of many lengths, greedy, sampled and with log-probabilities,
 *    served together with mixed steps (the CPU backend's step_mixed) give each request the
 *    tokens and log-probabilities it gets served alone and served with separate prefill
 *    passes; the metrics count mixed steps only where they ran.
 * Section cpu in every build: bitwise (the CPU backend computes each row alone). Section gpu
 * (label gpu, exit 77 without a GPU): the CUDA backend at head_dim 64 and 128, slots and
 * paged: bitwise in deterministic mode, within a bf16 tolerance otherwise.
 */
#include <math.h>
#include <pthread.h>

#include "testutil.h"

#include "core/model.h"
#include "engine/scheduler.h"

#define MAXB 8
#define ND 4  /* decode rows: sequences 0..3 */
#define NPC 2 /* prefill pieces: sequences 4 and 5 */

static ga_session *open_s(const ga_model *m, ga_device dev, bool det, int ctx, int kv_blocks) {
    ga_session_opts so = {.device = dev,
                          .max_context = ctx,
                          .max_batch = MAXB,
                          .n_threads = 2,
                          .kv_blocks = kv_blocks,
                          .kv_block_size = kv_blocks ? 16 : 0,
                          .deterministic = det};
    ga_err e = {{0}};
    ga_session *s = NULL;
    CHECK_OK(ga_session_create(m, &so, &s, &e), &e);
    return s;
}

static int32_t tok(int i, int salt, int V) {
    return (int32_t)(((unsigned)i * 2654435761u + (unsigned)salt * 40503u) % (unsigned)V);
}

/* Both sessions' state before the steps: sequences 0..3 prefilled to lengths that differ
 * (one past the first 64-key tile, one past a 16-token block), sequence 5 a 10-token start of
 * its prompt (its pieces continue it), sequence 4 empty. */
static void setup(ga_session *s, int V) {
    static const int len[6] = {5, 70, 33, 17, 0, 10};
    ga_err e = {{0}};
    int32_t buf[80];
    for (int q = 0; q < 6; q++) {
        if (!len[q]) continue;
        for (int i = 0; i < len[q]; i++)
            buf[i] = tok(i, q, V);
        CHECK_OK(ga_session_forward(s, q, buf, len[q], false, NULL, &e), &e);
    }
}

static bool close_enough(const float *a, const float *b, size_t n, bool exact, const char *what,
                         const char *name) {
    if (exact) {
        const bool same = ga_test_same_bits(a, b, n);
        CHECK_MSG(same, "%s: %s differ from the separate calls' (bitwise)", name, what);
        return same;
    }
    const double err = ga_test_rel_l2(a, b, n);
    CHECK_MSG(err < 2e-2, "%s: %s differ from the separate calls' (relative L2 %.3g)", name, what,
              err);
    return err < 2e-2;
}

/* Three mixed steps on session a against the separate calls on session b, then one decode
 * step of all six sequences on both (the caches the steps wrote). exact: bitwise. */
static void compare(const ga_model *m, ga_device dev, bool det, bool paged, bool exact,
                    const char *name) {
    const int V = m->cfg.vocab_size, ctx = 256;
    ga_session *a = open_s(m, dev, det, ctx, paged ? 96 : 0);
    ga_session *b = open_s(m, dev, det, ctx, paged ? 96 : 0);
    if (!a || !b) {
        ga_session_free(a);
        ga_session_free(b);
        return;
    }
    setup(a, V);
    setup(b, V);
    const int dseqs[ND] = {2, 0, 3, 1}, pseqs[NPC] = {5, 4};
    float *la = malloc((size_t)(ND + NPC) * V * sizeof(float));
    float *lb = malloc((size_t)(ND + NPC) * V * sizeof(float));
    int32_t ptoks[64], dtoks[MAXB], na[ND], nb_[ND];
    ga_err e = {{0}};
    /* piece lengths per step: a single token, a 64-key tile crossed, uneven */
    static const int plen[3][NPC] = {{1, 23}, {40, 1}, {7, 19}};
    for (int step = 0; step < 3 && la && lb; step++) {
        int poff[NPC + 1] = {0};
        for (int k = 0; k < NPC; k++) {
            const int p0 = ga_session_seq_len(a, pseqs[k]);
            for (int i = 0; i < plen[step][k]; i++)
                ptoks[poff[k] + i] = tok(p0 + i, pseqs[k], V);
            poff[k + 1] = poff[k] + plen[step][k];
        }
        for (int i = 0; i < ND; i++)
            dtoks[i] = tok(ga_session_seq_len(a, dseqs[i]), dseqs[i], V);
        for (size_t i = 0; i < (size_t)(ND + NPC) * V; i++)
            la[i] = lb[i] = NAN; /* poisoned: an unwritten row fails */
        if (step != 1) {         /* logits for both kinds of rows */
            CHECK_OK(ga_session_step_mixed(a, ND, dseqs, dtoks, NULL, NULL, NULL, la, NPC, pseqs,
                                           ptoks, poff, la + (size_t)ND * V, &e),
                     &e);
            CHECK_OK(ga_session_decode_batch(b, dseqs, dtoks, ND, lb, &e), &e);
            CHECK_OK(ga_session_forward_multi(b, NPC, pseqs, ptoks, poff, false,
                                              lb + (size_t)ND * V, &e),
                     &e);
            close_enough(la, lb, (size_t)ND * V, exact, "decode-row logits", name);
            close_enough(la + (size_t)ND * V, lb + (size_t)ND * V, (size_t)NPC * V, exact,
                         "prefill logits", name);
        } else { /* ids picked (greedy), no prefill logits */
            CHECK_OK(ga_session_step_mixed(a, ND, dseqs, dtoks, NULL, NULL, na, NULL, NPC, pseqs,
                                           ptoks, poff, NULL, &e),
                     &e);
            CHECK_OK(ga_session_decode_sample(b, dseqs, dtoks, ND, NULL, NULL, nb_, &e), &e);
            CHECK_OK(ga_session_forward_multi(b, NPC, pseqs, ptoks, poff, false, NULL, &e), &e);
            int diff = 0;
            for (int i = 0; i < ND; i++)
                diff += na[i] != nb_[i];
            if (exact)
                CHECK_MSG(!diff, "%s: %d of %d greedy ids differ from decode_sample's", name, diff,
                          ND);
            else if (diff)
                printf("%s: %d of %d greedy ids differ (bf16 rounding of a taller pass)\n", name,
                       diff, ND);
        }
        for (int q = 0; q < 6; q++)
            CHECK_MSG(ga_session_seq_len(a, q) == ga_session_seq_len(b, q),
                      "%s: sequence %d is %d tokens long after mixed steps, %d after the calls",
                      name, q, ga_session_seq_len(a, q), ga_session_seq_len(b, q));
    }
    /* the caches: one decode step of every sequence reads all the K/V the steps wrote */
    const int all[6] = {0, 1, 2, 3, 4, 5};
    for (int i = 0; i < 6; i++)
        dtoks[i] = tok(ga_session_seq_len(a, i), i, V);
    if (la && lb) {
        CHECK_OK(ga_session_decode_batch(a, all, dtoks, 6, la, &e), &e);
        CHECK_OK(ga_session_decode_batch(b, all, dtoks, 6, lb, &e), &e);
        close_enough(la, lb, (size_t)6 * V, exact, "logits of a decode step after the steps", name);
    }
    free(la);
    free(lb);
    ga_session_free(a);
    ga_session_free(b);
}

/* What the session refuses, with every sequence's length unchanged. */
static void arguments(const ga_model *m) {
    const int V = m->cfg.vocab_size;
    ga_session *s = open_s(m, GA_DEVICE_CPU, false, 128, 0);
    if (!s) return;
    setup(s, V);
    float *lg = malloc((size_t)MAXB * V * sizeof(float));
    int32_t t[MAXB] = {0}, next[MAXB];
    const int d2[2] = {0, 1}, p1[1] = {4}, dup[1] = {1}, off[2] = {0, 3}, bad_off[2] = {0, 0};
    struct {
        int nd, np;
        const int *p, *off;
        bool ids, logits;
        const char *why;
    } cases[] = {
        {0, 1, p1, off, false, true, "no decode rows"},
        {2, 0, p1, off, false, true, "no pieces"},
        {2, 1, dup, off, false, true, "a sequence both decoding and prefilling"},
        {2, 1, p1, bad_off, false, true, "an empty piece"},
        {2, 1, p1, off, true, true, "both ids and logits"},
        {2, 1, p1, off, false, false, "neither ids nor logits"},
        {MAXB, 1, p1, off, false, true, "more sequences than the session has"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases && lg; k++) {
        int before[6];
        for (int q = 0; q < 6; q++)
            before[q] = ga_session_seq_len(s, q);
        ga_err e = {{0}};
        const int seqs8[MAXB] = {0, 1, 2, 3, 5, 6, 7, 4};
        ga_status st =
            ga_session_step_mixed(s, cases[k].nd, cases[k].nd == MAXB ? seqs8 : d2, t, NULL, NULL,
                                  cases[k].ids ? next : NULL, cases[k].logits ? lg : NULL,
                                  cases[k].np, cases[k].p, t, cases[k].off, NULL, &e);
        CHECK_MSG(st == GA_ERR_ARG && e.msg[0], "%s: %s (%s), expected an argument error",
                  cases[k].why, ga_status_name(st), e.msg);
        for (int q = 0; q < 6; q++)
            CHECK_MSG(ga_session_seq_len(s, q) == before[q],
                      "%s: sequence %d changed length on a refused step", cases[k].why, q);
    }
    free(lg);
    ga_session_free(s);
}

/* ------------------------------------------------------------------ the scheduler */

#define NR 12   /* requests */
#define MAXT 24 /* tokens a request generates at most */
#define MAXP 60 /* prompt tokens at most */

typedef struct sink {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int32_t tok[MAXT];
    float lp[MAXT];
    int n;
    bool done;
    ga_sched_finish finish;
} sink;

static int on_token(void *user, const ga_sched_token *t) {
    sink *k = user;
    if (k->n < MAXT) {
        k->tok[k->n] = t->id;
        k->lp[k->n] = t->logprob;
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

/* Request i: its prompt length, tokens, sampling and log-probabilities. */
static ga_sched_req_opts req_opts(int i, int32_t *prompt, int V) {
    const int np = 1 + (i * 23) % MAXP;
    for (int j = 0; j < np; j++)
        prompt[j] = tok(j, 100 + i, V);
    ga_sched_req_opts ro = {.prompt = prompt,
                            .n_prompt = np,
                            .max_tokens = 4 + (i * 7) % (MAXT - 3),
                            .logprobs = i % 3 == 1 ? 2 : -1};
    if (i % 4 == 2) ro.sampling = (ga_sampling){.temperature = 0.9f, .top_p = 0.95f, .seed = 7};
    return ro;
}

/* Serves requests [first, first + nr) at once (all submitted before the loop starts) on a
 * fresh CPU session; fills out[] and the metrics. */
static void serve(const ga_model *m, int first, int nr, bool separate, int kv_blocks, sink *out,
                  ga_sched_metrics *met) {
    const int V = m->cfg.vocab_size;
    ga_err e = {{0}};
    ga_session *s = open_s(m, GA_DEVICE_CPU, false, 128, kv_blocks);
    if (!s) return;
    ga_sched *q = NULL;
    ga_sched_opts qo = {.prefill_chunk = 16, .separate_prefill = separate};
    CHECK_OK(ga_sched_create(s, m, &qo, &q, &e), &e);
    ga_sched_req *reqs[NR] = {0};
    int32_t prompts[NR][MAXP];
    for (int i = 0; i < nr && q; i++) {
        out[i] = (sink){.n = 0};
        pthread_mutex_init(&out[i].mu, NULL);
        pthread_cond_init(&out[i].cv, NULL);
        ga_sched_req_opts ro = req_opts(first + i, prompts[i], V);
        ro.on_token = on_token;
        ro.on_done = on_done;
        ro.user = &out[i];
        ga_sched_refusal why = GA_SCHED_ACCEPTED;
        CHECK_OK(ga_sched_submit(q, &ro, &reqs[i], &why, &e), &e);
    }
    if (q) CHECK_OK(ga_sched_start(q, &e), &e);
    for (int i = 0; i < nr && q; i++) {
        pthread_mutex_lock(&out[i].mu);
        while (!out[i].done)
            pthread_cond_wait(&out[i].cv, &out[i].mu);
        pthread_mutex_unlock(&out[i].mu);
        ga_sched_release(q, reqs[i]);
        pthread_mutex_destroy(&out[i].mu);
        pthread_cond_destroy(&out[i].cv);
    }
    if (q) ga_sched_metrics_get(q, met);
    ga_sched_free(q);
    ga_session_free(s);
}

static void scheduler(const ga_model *m) {
    const int V = m->cfg.vocab_size;
    sink alone[NR], mixed[NR], sep[NR], paged[NR];
    ga_sched_metrics met;
    for (int i = 0; i < NR; i++)
        serve(m, i, 1, false, 0, &alone[i], &met);
    serve(m, 0, NR, false, 0, mixed, &met);
    CHECK_MSG(met.mixed_steps > 0 && met.mixed_steps <= met.decode_steps &&
                  met.mixed_steps <= met.prefill_calls,
              "mixed steps %llu of %llu decode steps and %llu prefill calls",
              (unsigned long long)met.mixed_steps, (unsigned long long)met.decode_steps,
              (unsigned long long)met.prefill_calls);
    serve(m, 0, NR, true, 0, sep, &met);
    CHECK_MSG(met.mixed_steps == 0, "separate_prefill ran %llu mixed steps",
              (unsigned long long)met.mixed_steps);
    /* paged, 8 blocks of 16 for requests of up to 84 tokens (6 blocks): preemptions, and
     * prompts held back for blocks */
    serve(m, 0, NR, false, 8, paged, &met);
    printf("paged: %llu mixed steps, %llu preemptions\n", (unsigned long long)met.mixed_steps,
           (unsigned long long)met.preemptions);
    const sink *runs[3] = {mixed, sep, paged};
    const char *names[3] = {"mixed", "separate", "paged mixed"};
    for (int r = 0; r < 3; r++)
        for (int i = 0; i < NR; i++) {
            int32_t prompt[MAXP];
            const ga_sched_req_opts ro = req_opts(i, prompt, V);
            const sink *a = &alone[i], *b = &runs[r][i];
            bool same = a->finish == GA_FINISH_LENGTH && b->finish == GA_FINISH_LENGTH &&
                        a->n == ro.max_tokens && b->n == a->n;
            for (int t = 0; same && t < a->n; t++)
                same = a->tok[t] == b->tok[t] &&
                       (ro.logprobs < 0 || ga_test_same_bits(&a->lp[t], &b->lp[t], 1));
            CHECK_MSG(same,
                      "%s: request %d (prompt %d, %d tokens, %s%s): %d tokens, not those it gets "
                      "alone (%d)",
                      names[r], i, ro.n_prompt, ro.max_tokens,
                      ro.sampling.temperature > 0 ? "sampled" : "greedy",
                      ro.logprobs >= 0 ? ", logprobs" : "", b->n, a->n);
        }
}

static ga_model *cpu_model(void) {
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
    return ga_test_model_std(&c, 13, 0.3f);
}

static void cpu_section(void) {
    ga_model *m = cpu_model();
    if (!m) return;
    compare(m, GA_DEVICE_CPU, false, false, true, "cpu slots");
    compare(m, GA_DEVICE_CPU, false, true, true, "cpu paged");
    arguments(m);
    scheduler(m);
    ga_model_free(m);
}

#ifdef GA_HAVE_CUDA
static int gpu_section(void) {
    if (!ga_cuda_available()) {
        printf("no CUDA GPU: skipped\n");
        return 77;
    }
    for (int hd = 64; hd <= 128; hd += 64) {
        ga_model *m = ga_test_model_2l(hd, GA_GATE_ELEMENTWISE, 4096);
        if (!m) continue;
        char name[64];
        for (int paged = 0; paged < 2; paged++) {
            snprintf(name, sizeof name, "cuda hd %d %s deterministic", hd,
                     paged ? "paged" : "slots");
            compare(m, GA_DEVICE_CUDA, true, paged, true, name);
            snprintf(name, sizeof name, "cuda hd %d %s", hd, paged ? "paged" : "slots");
            compare(m, GA_DEVICE_CUDA, false, paged, false, name);
        }
        ga_model_free(m);
    }
    return 0;
}
#endif

int main(int argc, char **argv) {
    if (ga_test_want(argc, argv, "cpu")) cpu_section();
    if (argc > 1 && !strcmp(argv[1], "gpu")) {
#ifdef GA_HAVE_CUDA
        int r = gpu_section();
        if (r) return r;
#else
        printf("built without CUDA: skipped\n");
        return 77;
#endif
    }
    return ga_test_finish();
}
