/*
 * Generation loop (see generate.h): prefill each prompt into its slot, pick its first token
 * from the prefill logits on the host, then decode every running sequence together with
 * ga_session_decode_sample (the backend picks the tokens) until each one stops.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/generate.h"
#include "engine/sampler.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

const char *ga_gen_stop_name(ga_gen_stop s) {
    switch (s) {
    case GA_GEN_STOP_LENGTH:
        return "length";
    case GA_GEN_STOP_EOS:
        return "eos";
    case GA_GEN_STOP_CALLBACK:
        return "callback";
    case GA_GEN_STOP_CONTEXT:
        return "context";
    }
    return "?";
}

static void add_stop(ga_gen_opts *o, int32_t id) {
    if (id < 0 || o->n_stop >= GA_GEN_MAX_STOP) return;
    for (int i = 0; i < o->n_stop; i++)
        if (o->stop_ids[i] == id) return;
    o->stop_ids[o->n_stop++] = id;
}

void ga_gen_default_stops(const ga_config *c, const ga_tokenizer *tok, ga_gen_opts *o) {
    for (int i = 0; i < c->n_eos; i++)
        add_stop(o, c->eos_token_ids[i]);
    if (!tok) return;
    add_stop(o, ga_tok_eos_id(tok));
    add_stop(o, ga_tok_special_id(tok, "<|im_end|>"));
    add_stop(o, ga_tok_special_id(tok, "<|endoftext|>"));
}

static bool is_stop(const ga_gen_opts *o, int32_t id) {
    for (int i = 0; i < o->n_stop; i++)
        if (o->stop_ids[i] == id) return true;
    return false;
}

static ga_status check_opts(const ga_gen_opts *o, ga_err *err) {
    if (!o) return ga_err_set(err, GA_ERR_ARG, "generate: no options");
    if (o->max_new_tokens < 1)
        return ga_err_set(err, GA_ERR_ARG, "generate: max_new_tokens %d must be >= 1",
                          o->max_new_tokens);
    if (o->n_stop < 0 || o->n_stop > GA_GEN_MAX_STOP)
        return ga_err_set(err, GA_ERR_ARG, "generate: %d stop ids outside [0, %d]", o->n_stop,
                          GA_GEN_MAX_STOP);
    const ga_sampling *sp = &o->sampling;
    if (!(sp->temperature == sp->temperature) || sp->top_k < 0 || !(sp->top_p == sp->top_p))
        return ga_err_set(err, GA_ERR_ARG,
                          "generate: bad sampling parameters (temperature %g, top_k %d, top_p %g)",
                          (double)sp->temperature, sp->top_k, (double)sp->top_p);
    return GA_OK;
}

/* One sequence's state while a batch runs. */
typedef struct gen_seq {
    int slot;     /* KV slot */
    int32_t last; /* last token produced, to be appended by the next step */
    int produced; /* tokens passed to the callback */
    bool running;
} gen_seq;

/* Records token t for sequence i and decides whether it keeps running. */
static void take_token(const ga_session *s, const ga_gen_opts *o, gen_seq *q, int i, int32_t t,
                       ga_gen_token_fn cb, void *user, ga_gen_stats *st, ga_gen_stop *why) {
    if (is_stop(o, t)) {
        q->running = false;
        why[i] = GA_GEN_STOP_EOS;
        return;
    }
    q->last = t;
    q->produced++;
    st->generated_tokens++;
    if (cb && cb(user, i, t)) {
        q->running = false;
        why[i] = GA_GEN_STOP_CALLBACK;
    } else if (q->produced >= o->max_new_tokens) {
        q->running = false;
        why[i] = GA_GEN_STOP_LENGTH;
    } else if (ga_session_seq_len(s, q->slot) >= ga_session_max_context(s)) {
        /* appending `t` to get another token needs one more cache row */
        q->running = false;
        why[i] = GA_GEN_STOP_CONTEXT;
    }
}

static ga_status run(ga_session *s, const ga_model *m, const int *slots,
                     const int32_t *const *prompts, const int *n_prompts, int n,
                     const ga_gen_opts *o, ga_gen_token_fn cb, void *user, ga_gen_stats *stats,
                     ga_gen_stop *stop_reasons, ga_err *err) {
    ga_gen_stats st = {0};
    ga_status rc = check_opts(o, err);
    if (rc) return rc;
    if (n < 1 || n > ga_session_max_batch(s))
        return ga_err_set(err, GA_ERR_ARG,
                          "generate: %d prompts outside [1, %d] (the session's max_batch)", n,
                          ga_session_max_batch(s));
    for (int i = 0; i < n; i++) {
        if (!prompts[i] || n_prompts[i] < 1)
            return ga_err_set(err, GA_ERR_ARG, "generate: prompt %d is empty", i);
        if (n_prompts[i] > ga_session_max_context(s))
            return ga_err_set(err, GA_ERR_ARG,
                              "generate: prompt %d has %d tokens, more than the context of %d", i,
                              n_prompts[i], ga_session_max_context(s));
    }
    const int V = ga_model_config(m)->vocab_size;
    const ga_sampling *sp = &o->sampling;
    gen_seq *q = calloc((size_t)n, sizeof *q);
    ga_gen_stop *why = calloc((size_t)n, sizeof *why);
    float *logits = malloc((size_t)V * sizeof *logits);
    void *scratch = malloc(ga_sample_scratch_bytes(V));
    int *seqs = malloc((size_t)n * sizeof *seqs);
    int32_t *toks = malloc((size_t)n * sizeof *toks), *next = malloc((size_t)n * sizeof *next);
    uint64_t *streams = malloc((size_t)n * sizeof *streams);
    int *rows = malloc((size_t)n * sizeof *rows);
    if (!q || !why || !logits || !scratch || !seqs || !toks || !next || !streams || !rows) {
        rc = ga_err_set(err, GA_ERR_OOM, "generate: out of memory");
        goto done;
    }
    /* Prefill every prompt and take its first token from the last position's logits. */
    for (int i = 0; i < n && !rc; i++) {
        q[i].slot = slots[i];
        q[i].running = true;
        ga_session_reset(s, slots[i]);
        double t0 = now_s();
        rc = ga_session_forward(s, slots[i], prompts[i], n_prompts[i], false, logits, err);
        if (rc) break;
        /* The token lands at position n_prompt and draws with that counter (as the
         * session's decode_sample does for later positions). */
        int32_t t = ga_sample_host(logits, V, sp, o->stream, (uint64_t)n_prompts[i], scratch);
        st.prefill_s += now_s() - t0;
        st.prompt_tokens += n_prompts[i];
        take_token(s, o, &q[i], i, t, cb, user, &st, why);
    }
    /* Decode all running sequences together until none is left. */
    while (!rc) {
        int nb = 0;
        for (int i = 0; i < n; i++) {
            if (!q[i].running) continue;
            rows[nb] = i;
            seqs[nb] = q[i].slot;
            toks[nb] = q[i].last;
            streams[nb] = o->stream; /* not i: a prompt draws the same alone or batched */
            nb++;
        }
        if (!nb) break;
        double t0 = now_s();
        rc = ga_session_decode_sample(s, seqs, toks, nb, sp->temperature > 0 ? sp : NULL, streams,
                                      next, err);
        st.decode_s += now_s() - t0;
        if (rc) break;
        st.decode_tokens += nb;
        for (int r = 0; r < nb; r++)
            take_token(s, o, &q[rows[r]], rows[r], next[r], cb, user, &st, why);
    }
    if (!rc && stop_reasons) memcpy(stop_reasons, why, (size_t)n * sizeof *why);
done:
    if (stats) *stats = st;
    free(q);
    free(why);
    free(logits);
    free(scratch);
    free(seqs);
    free(toks);
    free(next);
    free(streams);
    free(rows);
    return rc;
}

ga_status ga_generate(ga_session *s, const ga_model *m, int seq, const int32_t *prompt,
                      int n_prompt, const ga_gen_opts *o, ga_gen_token_fn cb, void *user,
                      ga_gen_stats *stats, ga_gen_stop *stop_reason, ga_err *err) {
    if (seq < 0 || seq >= ga_session_max_batch(s))
        return ga_err_set(err, GA_ERR_ARG, "generate: sequence %d outside [0, %d)", seq,
                          ga_session_max_batch(s));
    /* A single prompt is a batch of one in slot seq. */
    return run(s, m, &seq, &prompt, &n_prompt, 1, o, cb, user, stats, stop_reason, err);
}

ga_status ga_generate_batch(ga_session *s, const ga_model *m, const int32_t *const *prompts,
                            const int *n_prompts, int n, const ga_gen_opts *o, ga_gen_token_fn cb,
                            void *user, ga_gen_stats *stats, ga_gen_stop *stop_reasons,
                            ga_err *err) {
    if (n < 1 || n > ga_session_max_batch(s))
        return ga_err_set(err, GA_ERR_ARG,
                          "generate: %d prompts outside [1, %d] (the session's max_batch)", n,
                          ga_session_max_batch(s));
    int *slots = malloc((size_t)n * sizeof *slots);
    if (!slots) return ga_err_set(err, GA_ERR_OOM, "generate: out of memory");
    for (int i = 0; i < n; i++)
        slots[i] = i;
    ga_status rc = run(s, m, slots, prompts, n_prompts, n, o, cb, user, stats, stop_reasons, err);
    free(slots);
    return rc;
}
