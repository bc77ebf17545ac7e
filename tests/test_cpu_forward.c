/*
 * CPU backend properties on random models of awkward shapes (all three variants, G = 1, 2, 4,
 * biases, untied embeddings): prefill followed by decode equals full recompute; batched
 * decode equals decoding each sequence alone; session argument checks; and the attention
 * capture (rows of the maps sum to 1, causal zeros, pooled rows sum to 1, first-token share
 * consistent with the map, gate statistics present exactly for gated models).
 */
#include "testutil.h"

#include "core/model.h"

static ga_model *make(ga_gate_mode gate, int heads, int kv, int hd, bool tied, bool bias,
                      uint64_t seed) {
    ga_config c = {.vocab_size = 77,
                   .hidden_size = 40,
                   .intermediate_size = 56,
                   .n_layers = 3,
                   .n_heads = heads,
                   .n_kv_heads = kv,
                   .head_dim = hd,
                   .rms_norm_eps = 1e-6f,
                   .rope_theta = 1e4,
                   .max_position_embeddings = 256,
                   .tie_word_embeddings = tied,
                   .use_qk_norm = true,
                   .attention_bias = bias,
                   .o_bias = bias,
                   .gate = gate,
                   .bos_token_id = -1};
    return ga_test_model_std(&c, seed, 0.3f);
}

static void test_prefill_decode(ga_model *m, const char *tag) {
    const int T = 23, V = m->cfg.vocab_size;
    int32_t ids[23];
    uint64_t r = 42;
    for (int i = 0; i < T; i++)
        ids[i] = (int32_t)(ga_test_rand_u64(&r) % (uint64_t)V);
    ga_err e = {{0}};
    ga_session_opts so = {
        .device = GA_DEVICE_CPU, .max_context = 64, .max_batch = 3, .n_threads = 2};
    ga_session *s = NULL;
    CHECK_OK(ga_session_create(m, &so, &s, &e), &e);
    if (!s) return;
    float *full = malloc((size_t)T * V * sizeof(float)),
          *inc = malloc((size_t)T * V * sizeof(float));
    for (int i = 0; i < T * V; i++)
        full[i] = inc[i] = NAN;
    CHECK_OK(ga_session_forward(s, 0, ids, T, true, full, &e), &e);
    CHECK(ga_session_seq_len(s, 0) == T);
    /* sequence 1: prefill 5 (logits of all 5), then 9, then one at a time */
    CHECK_OK(ga_session_forward(s, 1, ids, 5, true, inc, &e), &e);
    CHECK_OK(ga_session_forward(s, 1, ids + 5, 9, true, inc + 5 * V, &e), &e);
    for (int t = 14; t < T; t++)
        CHECK_OK(ga_session_forward(s, 1, ids + t, 1, false, inc + (size_t)t * V, &e), &e);
    double rel = ga_test_rel_l2(inc, full, (size_t)T * V);
    CHECK_MSG(rel <= 1e-6, "%s: incremental vs full rel %.3g", tag, rel);
    /* batched decode of sequences 0..2 equals each alone */
    ga_session_reset(s, 2);
    CHECK_OK(ga_session_forward(s, 2, ids, 3, false, NULL, &e), &e);
    int seqs[3] = {2, 0, 1};
    int32_t nxt[3] = {5, 6, 7};
    float *bl = malloc(3 * (size_t)V * sizeof(float));
    CHECK_OK(ga_session_decode_batch(s, seqs, nxt, 3, bl, &e), &e);
    CHECK(ga_session_seq_len(s, 2) == 4 && ga_session_seq_len(s, 0) == T + 1);
    ga_session *s2 = NULL;
    CHECK_OK(ga_session_create(m, &so, &s2, &e), &e);
    float *one = malloc((size_t)V * sizeof(float));
    CHECK_OK(ga_session_forward(s2, 0, ids, 3, false, NULL, &e), &e);
    CHECK_OK(ga_session_forward(s2, 0, &nxt[0], 1, false, one, &e), &e);
    CHECK_MSG(ga_test_rel_l2(bl, one, (size_t)V) <= 1e-6, "%s: batched row 0 differs", tag);
    free(one);
    free(bl);
    ga_session_free(s2);
    free(full);
    free(inc);
    ga_session_free(s);
}

static void test_errors(ga_model *m) {
    ga_err e = {{0}};
    ga_session_opts so = {
        .device = GA_DEVICE_CPU, .max_context = 8, .max_batch = 2, .n_threads = 1};
    ga_session *s = NULL;
    CHECK_OK(ga_session_create(m, &so, &s, &e), &e);
    if (!s) return;
    int32_t bad[2] = {3, 77};
    CHECK(ga_session_forward(s, 0, bad, 2, false, NULL, &e) == GA_ERR_ARG && strstr(e.msg, "77"));
    int32_t neg = -1;
    CHECK(ga_session_forward(s, 0, &neg, 1, false, NULL, &e) == GA_ERR_ARG);
    int32_t nine[9] = {0};
    CHECK(ga_session_forward(s, 0, nine, 9, false, NULL, &e) == GA_ERR_ARG &&
          strstr(e.msg, "context"));
    CHECK(ga_session_forward(s, 2, nine, 1, false, NULL, &e) == GA_ERR_ARG);
    CHECK(ga_session_forward(s, 0, nine, 0, false, NULL, &e) == GA_ERR_ARG);
    int dup[2] = {1, 1};
    CHECK(ga_session_decode_batch(s, dup, nine, 2, NULL, &e) == GA_ERR_ARG &&
          strstr(e.msg, "twice"));
    CHECK(ga_session_seq_len(s, 0) == 0); /* failed calls change nothing */
    ga_session_free(s);
    so.max_context = m->cfg.max_position_embeddings + 1;
    CHECK(ga_session_create(m, &so, &s, &e) == GA_ERR_ARG &&
          strstr(e.msg, "max_position_embeddings"));
}

static void test_capture(ga_model *m, const char *tag) {
    const int L = m->cfg.n_layers;
    ga_err e = {{0}};
    ga_session_opts so = {.device = GA_DEVICE_CPU, .max_context = 200, .n_threads = 2};
    ga_session *s = NULL;
    CHECK_OK(ga_session_create(m, &so, &s, &e), &e);
    if (!s) return;
    int32_t ids[150];
    for (int i = 0; i < 150; i++)
        ids[i] = (i * 7 + 3) % m->cfg.vocab_size;
    bool layers[8] = {true, false, true};
    for (int round = 0; round < 2; round++) {
        int T = round ? 150 : 17, max_res = round ? 16 : 64;
        ga_attn_capture cap = {.layers = layers, .head = -1, .max_res = max_res};
        ga_session_reset(s, 0);
        CHECK_OK(ga_session_set_capture(s, &cap, &e), &e);
        CHECK_OK(ga_session_forward(s, 0, ids, T, false, NULL, &e), &e);
        CHECK(cap.n_tokens == T && cap.res == (T < max_res ? T : max_res));
        CHECK(cap.maps && cap.maps[0] && !cap.maps[1] && cap.maps[2]);
        for (int l = 0; l < L && cap.maps; l++) {
            const ga_layer_metrics *mt = &cap.metrics[l];
            CHECK(mt->first_token_share > 0 && mt->first_token_share < 1);
            if (m->cfg.gate == GA_GATE_NONE)
                CHECK(isnan(mt->gate_mean) && isnan(mt->gate_below_0_1));
            else
                CHECK(mt->gate_mean > 0 && mt->gate_mean < 1 && mt->gate_below_0_1 >= 0 &&
                      mt->gate_below_0_1 <= 1);
            if (!cap.maps[l]) continue;
            int R = cap.res;
            double worst = 0, col0 = 0;
            for (int i = 0; i < R; i++) {
                double sum = 0;
                for (int j = 0; j < R; j++)
                    sum += cap.maps[l][i * R + j];
                if (fabs(sum - 1) > worst) worst = fabs(sum - 1);
                if (round == 0) {
                    for (int j = i + 1; j < R; j++)
                        CHECK(cap.maps[l][i * R + j] == 0.0f);
                    if (i > 0) col0 += cap.maps[l][i * R];
                }
            }
            CHECK_MSG(worst < 1e-5, "%s layer %d: pooled row sum off by %.3g", tag, l, worst);
            if (round == 0) /* unpooled: first-token share is the mean of column 0 below row 0 */
                CHECK_MSG(fabs(col0 / (T - 1) - mt->first_token_share) < 1e-6,
                          "%s: share %.6f vs %.6f", tag, col0 / (T - 1), mt->first_token_share);
        }
        ga_attn_capture_free(&cap);
    }
    /* one head only, and bad capture arguments */
    ga_attn_capture cap = {.layers = layers, .head = m->cfg.n_heads, .max_res = 8};
    CHECK(ga_session_set_capture(s, &cap, &e) == GA_ERR_ARG);
    cap.head = 0;
    CHECK_OK(ga_session_set_capture(s, &cap, &e), &e);
    CHECK(ga_session_forward(s, 0, ids, 3, false, NULL, &e) == GA_ERR_ARG); /* not empty */
    ga_session_reset(s, 0);
    CHECK_OK(ga_session_set_capture(s, &cap, &e), &e);
    CHECK_OK(ga_session_forward(s, 0, ids, 5, false, NULL, &e), &e);
    CHECK(cap.maps && cap.maps[0] && fabsf(cap.maps[0][0] - 1.0f) < 1e-6f);
    ga_attn_capture_free(&cap);
    ga_session_free(s);
}

int main(void) {
    struct {
        ga_gate_mode gate;
        int heads, kv, hd;
        bool tied, bias;
        const char *tag;
    } cases[] = {
        {GA_GATE_NONE, 4, 4, 8, true, false, "baseline G1"},
        {GA_GATE_HEADWISE, 4, 2, 16, false, true, "headwise G2 bias"},
        {GA_GATE_ELEMENTWISE, 8, 2, 6, true, false, "elementwise G4 hd6"},
        {GA_GATE_HEADWISE, 6, 3, 10, false, false, "headwise G2 hd10"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ga_model *m = make(cases[i].gate, cases[i].heads, cases[i].kv, cases[i].hd, cases[i].tied,
                           cases[i].bias, 100 + i);
        test_prefill_decode(m, cases[i].tag);
        test_capture(m, cases[i].tag);
        if (i == 0) test_errors(m);
        ga_model_free(m);
    }
    return ga_test_finish();
}
