/*
 * Generation (src/engine/generate.c) on the CPU backend, checked against definitions computed
 * here without the generation loop:
 *  - greedy ids equal repeatedly taking the argmax (a plain loop in this file) of the
 *    last-position logits of a full recompute (fresh prefill of prompt + ids so far);
 *  - sampled ids equal ga_sample_host applied to full-recompute logits with the draw counter
 *    of each position (the sampler's definition), reproducible, seed-dependent;
 *  - top-k 1 equals greedy; generation is identical across runs and sessions;
 *  - batched generation gives every prompt the ids it gets alone (greedy and sampled);
 *  - stop ids, the context limit and the callback end a sequence as documented;
 *  - bad arguments fail with GA_ERR_ARG.
 */
#include "engine/generate.h"
#include "engine/sampler.h"
#include "testutil.h"

#define MAXG 64

typedef struct collect {
    int32_t ids[8][MAXG];
    int n[8];
    int stop_after; /* callback returns 1 after this many tokens (0: never) */
} collect;

static int on_token(void *user, int index, int32_t t) {
    collect *c = user;
    if (c->n[index] < MAXG) c->ids[index][c->n[index]++] = t;
    return c->stop_after && c->n[index] >= c->stop_after;
}

static int naive_argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

/* Last-position logits of a fresh prefill of ids[0..n) in slot 0 of session s. */
static bool recompute(ga_session *s, const int32_t *ids, int n, float *logits) {
    ga_err err = {{0}};
    ga_session_reset(s, 0);
    ga_status st = ga_session_forward(s, 0, ids, n, false, logits, &err);
    CHECK_MSG(st == GA_OK, "recompute: %s", err.msg);
    return st == GA_OK;
}

/* Checks gen[0..ng) against recomputed selection after prompt p (stream, sampling sp). */
static void check_against_recompute(const ga_model *m, const int32_t *p, int np, const int32_t *gen,
                                    int ng, const ga_sampling *sp, uint64_t stream,
                                    const char *what) {
    const int V = ga_model_config(m)->vocab_size;
    ga_session_opts so = {.device = GA_DEVICE_CPU, .max_context = np + ng, .n_threads = 1};
    ga_session *s = NULL;
    ga_err err = {{0}};
    CHECK_OK(ga_session_create(m, &so, &s, &err), &err);
    if (!s) return;
    int32_t *seq = malloc((size_t)(np + ng) * sizeof *seq);
    float *logits = malloc((size_t)V * sizeof *logits);
    void *scratch = malloc(ga_sample_scratch_bytes(V));
    memcpy(seq, p, (size_t)np * sizeof *seq);
    int bad = -1;
    for (int k = 0; k < ng && bad < 0; k++) {
        for (int i = 0; i < V; i++)
            logits[i] = NAN; /* poison */
        if (!recompute(s, seq, np + k, logits)) break;
        int32_t want = sp ? ga_sample_host(logits, V, sp, stream, (uint64_t)(np + k), scratch)
                          : naive_argmax(logits, V);
        if (want != gen[k]) bad = k;
        seq[np + k] = gen[k];
    }
    CHECK_MSG(bad < 0, "%s: token %d differs from the recomputed choice", what, bad);
    free(seq);
    free(logits);
    free(scratch);
    ga_session_free(s);
}

static ga_session *session(const ga_model *m, int ctx, int batch) {
    ga_session_opts so = {
        .device = GA_DEVICE_CPU, .max_context = ctx, .max_batch = batch, .n_threads = 1};
    ga_session *s = NULL;
    ga_err err = {{0}};
    CHECK_OK(ga_session_create(m, &so, &s, &err), &err);
    return s;
}

/* Generates for one prompt alone in a fresh session; returns the count. */
static int gen_alone(const ga_model *m, const int32_t *p, int np, const ga_gen_opts *o,
                     int32_t *out, ga_gen_stop *why) {
    ga_session *s = session(m, 128, 1);
    if (!s) return -1;
    collect c = {0};
    ga_err err = {{0}};
    ga_gen_stats st;
    CHECK_OK(ga_generate(s, m, 0, p, np, o, on_token, &c, &st, why, &err), &err);
    CHECK(st.generated_tokens == c.n[0]);
    CHECK(st.prompt_tokens == np);
    memcpy(out, c.ids[0], (size_t)c.n[0] * sizeof *out);
    ga_session_free(s);
    return c.n[0];
}

static void test_variant(ga_gate_mode gate, const char *tmp) {
    ga_config cfg = {.vocab_size = 300,
                     .hidden_size = 64,
                     .intermediate_size = 96,
                     .n_layers = 2,
                     .n_heads = 4,
                     .n_kv_heads = 2,
                     .head_dim = 16,
                     .rms_norm_eps = 1e-6f,
                     .rope_theta = 10000.0,
                     .max_position_embeddings = 256,
                     .tie_word_embeddings = true,
                     .use_qk_norm = true,
                     .gate = gate,
                     .bos_token_id = -1};
    /* A large init std gives well-separated logits, so cached and recomputed argmaxes agree. */
    ga_write_opts wo = {
        .seed = 7 + (uint64_t)gate, .dtype = GA_F32, .init_std = 0.25f, .n_shards = 1};
    char *dir = ga_test_path(tmp, ga_gate_mode_name(gate));
    ga_err err = {{0}};
    ga_model *m = NULL;
    CHECK_OK(ga_model_write_random(dir, &cfg, &wo, &err), &err);
    CHECK_OK(ga_model_load(dir, &m, &err), &err);
    free(dir);
    if (!m) return;
    printf("variant %s\n", ga_gate_mode_name(gate));

    const int32_t prompts[3][9] = {{5, 17, 200, 3, 99, 42, 7, 1, 250}, {11, 12}, {299, 0, 150}};
    const int plen[3] = {9, 2, 3};
    const int NG = 16;

    /* Greedy: equals the recomputed argmax; identical across runs. */
    ga_gen_opts greedy = {.max_new_tokens = NG};
    int32_t g1[MAXG], g2[MAXG];
    ga_gen_stop why;
    int n1 = gen_alone(m, prompts[0], plen[0], &greedy, g1, &why);
    CHECK(n1 == NG && why == GA_GEN_STOP_LENGTH);
    check_against_recompute(m, prompts[0], plen[0], g1, n1, NULL, 0, "greedy");
    int n2 = gen_alone(m, prompts[0], plen[0], &greedy, g2, &why);
    CHECK(n2 == n1 && !memcmp(g1, g2, (size_t)n1 * sizeof *g1));

    /* Sampling: the sampler's definition on recomputed logits; reproducible; seed matters. */
    ga_gen_opts samp = {.max_new_tokens = NG, .sampling = {1.0f, 50, 0.95f, 1234}, .stream = 5};
    int32_t s1[MAXG], s2[MAXG], s3[MAXG];
    int m1 = gen_alone(m, prompts[0], plen[0], &samp, s1, &why);
    CHECK(m1 == NG);
    check_against_recompute(m, prompts[0], plen[0], s1, m1, &samp.sampling, 5, "sampled");
    int m2 = gen_alone(m, prompts[0], plen[0], &samp, s2, &why);
    CHECK(m2 == m1 && !memcmp(s1, s2, (size_t)m1 * sizeof *s1));
    ga_gen_opts samp2 = samp;
    samp2.sampling.seed = 99;
    samp2.sampling.temperature = 2.0f;
    samp2.sampling.top_k = 0;
    samp2.sampling.top_p = 1.0f;
    int m3 = gen_alone(m, prompts[0], plen[0], &samp2, s3, &why);
    check_against_recompute(m, prompts[0], plen[0], s3, m3, &samp2.sampling, 5, "sampled T=2");
    CHECK_MSG(memcmp(s1, s3, (size_t)NG * sizeof *s1) != 0, "another seed gave the same ids");

    /* top-k 1 is greedy at any temperature */
    ga_gen_opts k1 = {.max_new_tokens = NG, .sampling = {0.8f, 1, 0.9f, 77}};
    int32_t t1[MAXG];
    int nk = gen_alone(m, prompts[0], plen[0], &k1, t1, &why);
    CHECK(nk == n1 && !memcmp(t1, g1, (size_t)n1 * sizeof *t1));

    /* Batched equals alone with the same options, greedy and sampled: a prompt's draws do not
     * depend on its index in the batch (issue 10 item 6). */
    for (int mode = 0; mode < 2; mode++) {
        ga_gen_opts o = mode ? samp : greedy;
        ga_session *s = session(m, 64, 3);
        if (!s) continue;
        collect c = {0};
        ga_gen_stop whys[3];
        ga_gen_stats st;
        const int32_t *pp[3] = {prompts[0], prompts[1], prompts[2]};
        CHECK_OK(ga_generate_batch(s, m, pp, plen, 3, &o, on_token, &c, &st, whys, &err), &err);
        for (int i = 0; i < 3; i++) {
            int32_t alone[MAXG];
            int na = gen_alone(m, prompts[i], plen[i], &o, alone, &why);
            CHECK_MSG(na == c.n[i] && !memcmp(alone, c.ids[i], (size_t)na * sizeof *alone),
                      "%s: prompt %d batched differs from alone", mode ? "sampled" : "greedy", i);
        }
        CHECK(st.prompt_tokens == plen[0] + plen[1] + plen[2]);
        CHECK(st.decode_tokens == 3 * (NG - 1));
        ga_session_free(s);
    }

    /* The session's default streams (NULL) do not depend on the slot: the same history in
     * slot 1 of a batch and alone in slot 0 draws the same tokens. */
    {
        ga_session *s = session(m, 64, 2);
        const ga_sampling hot = {2.0f, 0, 1.0f, 31};
        int32_t a_tok = prompts[1][1], b_tok[2] = {prompts[2][2], prompts[1][1]};
        bool same = true;
        if (s) {
            CHECK_OK(ga_session_forward(s, 0, prompts[1], plen[1], false, NULL, &err), &err);
            CHECK_OK(ga_session_forward(s, 1, prompts[2], plen[2], false, NULL, &err), &err);
            int32_t alone[MAXG];
            for (int k = 0; k < NG; k++) {
                const int seq0 = 0;
                CHECK_OK(ga_session_decode_sample(s, &seq0, &a_tok, 1, &hot, NULL, &alone[k], &err),
                         &err);
                a_tok = alone[k];
            }
            ga_session_reset(s, 0);
            ga_session_reset(s, 1);
            CHECK_OK(ga_session_forward(s, 0, prompts[2], plen[2], false, NULL, &err), &err);
            CHECK_OK(ga_session_forward(s, 1, prompts[1], plen[1], false, NULL, &err), &err);
            for (int k = 0; k < NG && same; k++) {
                const int seqs[2] = {0, 1};
                int32_t next[2];
                CHECK_OK(ga_session_decode_sample(s, seqs, b_tok, 2, &hot, NULL, next, &err), &err);
                same = next[1] == alone[k];
                b_tok[0] = next[0];
                b_tok[1] = next[1];
            }
            CHECK_MSG(same, "decode_sample with default streams: slot 1 differs from slot 0");
            ga_session_free(s);
        }
    }

    /* A stop id ends the sequence before it; the stop token is not reported. */
    ga_gen_opts eos = greedy;
    eos.n_stop = 1;
    eos.stop_ids[0] = g1[5];
    int first = 0;
    while (g1[first] != g1[5])
        first++;
    int32_t e[MAXG];
    int ne = gen_alone(m, prompts[0], plen[0], &eos, e, &why);
    CHECK(ne == first && why == GA_GEN_STOP_EOS && !memcmp(e, g1, (size_t)ne * sizeof *e));

    /* A full cache: prompt 9 + 3 tokens in a context of 11 (the last is never appended). */
    {
        ga_session *s = session(m, plen[0] + 2, 1);
        collect c = {0};
        if (s) {
            CHECK_OK(
                ga_generate(s, m, 0, prompts[0], plen[0], &greedy, on_token, &c, NULL, &why, &err),
                &err);
            CHECK(c.n[0] == 3 && why == GA_GEN_STOP_CONTEXT &&
                  !memcmp(c.ids[0], g1, 3 * sizeof *g1));
            /* the callback's stop request */
            collect c2 = {.stop_after = 2};
            CHECK_OK(
                ga_generate(s, m, 0, prompts[1], plen[1], &greedy, on_token, &c2, NULL, &why, &err),
                &err);
            CHECK(c2.n[0] == 2 && why == GA_GEN_STOP_CALLBACK);
            /* bad arguments */
            ga_gen_opts zero = {.max_new_tokens = 0};
            CHECK(ga_generate(s, m, 0, prompts[0], plen[0], &zero, NULL, NULL, NULL, NULL, &err) ==
                  GA_ERR_ARG);
            CHECK(ga_generate(s, m, 0, prompts[0], 0, &greedy, NULL, NULL, NULL, NULL, &err) ==
                  GA_ERR_ARG);
            int32_t longp[16] = {0};
            CHECK(ga_generate(s, m, 0, longp, 16, &greedy, NULL, NULL, NULL, NULL, &err) ==
                  GA_ERR_ARG);
            CHECK(strstr(err.msg, "context") != NULL);
            CHECK(ga_generate(s, m, 1, prompts[0], plen[0], &greedy, NULL, NULL, NULL, NULL,
                              &err) == GA_ERR_ARG);
            const int32_t *pp[2] = {prompts[0], prompts[1]};
            CHECK(ga_generate_batch(s, m, pp, plen, 2, &greedy, NULL, NULL, NULL, NULL, &err) ==
                  GA_ERR_ARG);
            int32_t badtok = 300;
            CHECK(ga_generate(s, m, 0, &badtok, 1, &greedy, NULL, NULL, NULL, NULL, &err) ==
                  GA_ERR_ARG);
            ga_session_free(s);
        }
    }
    ga_model_free(m);
}

static void test_default_stops(void) {
    ga_config c = {.n_eos = 2, .eos_token_ids = {7, 9}};
    ga_gen_opts o = {0};
    ga_gen_default_stops(&c, NULL, &o);
    CHECK(o.n_stop == 2 && o.stop_ids[0] == 7 && o.stop_ids[1] == 9);
    const char *data = ga_test_env("GA_TEST_DATA", NULL);
    if (!data) return;
    char *dir = ga_test_path(data, "tok_small");
    ga_tokenizer *t = NULL;
    ga_err err = {{0}};
    CHECK_OK(ga_tok_load_dir(dir, &t, &err), &err);
    free(dir);
    if (!t) return;
    ga_gen_opts o2 = {0};
    ga_gen_default_stops(&c, t, &o2);
    int32_t im_end = ga_tok_special_id(t, "<|im_end|>");
    int32_t eot = ga_tok_special_id(t, "<|endoftext|>");
    bool has_im = false, has_eot = false;
    for (int i = 0; i < o2.n_stop; i++) {
        has_im |= o2.stop_ids[i] == im_end;
        has_eot |= o2.stop_ids[i] == eot;
        for (int j = 0; j < i; j++)
            CHECK(o2.stop_ids[i] != o2.stop_ids[j]);
    }
    CHECK(im_end < 0 || has_im);
    CHECK(eot < 0 || has_eot);
    CHECK(im_end >= 0 || eot >= 0); /* the test tokenizer has Qwen's specials */
    ga_tok_free(t);
}

int main(void) {
    char *tmp = ga_test_tmpdir("gen");
    test_variant(GA_GATE_NONE, tmp);
    test_variant(GA_GATE_HEADWISE, tmp);
    test_variant(GA_GATE_ELEMENTWISE, tmp);
    test_default_stops();
    ga_test_rmtree(tmp);
    free(tmp);
    return ga_test_finish();
}
