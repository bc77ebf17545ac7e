/*
 * The paged KV cache of the CPU backend (session option kv_blocks / kv_memory): results are
 * bit-identical to the contiguous slot cache (prefill in chunks that cross block boundaries,
 * decode, batched decode with interleaved growth so the sequences' blocks are not in order,
 * attention capture, ga_generate and ga_generate_batch), and the session's block allocator
 * (growth, exhaustion with GA_ERR_NO_CACHE changing nothing, reset giving blocks back, sizing
 * from bytes, bad option values).
 */
#include "testutil.h"

#include "core/model.h"
#include "engine/generate.h"

static ga_model *make(ga_gate_mode gate, int heads, int kv, int hd, uint64_t seed) {
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
                   .tie_word_embeddings = true,
                   .use_qk_norm = true,
                   .gate = gate,
                   .bos_token_id = -1};
    return ga_test_model_std(&c, seed, 0.3f);
}

static ga_session *open_s(const ga_model *m, int kv_blocks, int block_size) {
    ga_session_opts so = {.device = GA_DEVICE_CPU,
                          .max_context = 96,
                          .max_batch = 3,
                          .n_threads = 2,
                          .kv_blocks = kv_blocks,
                          .kv_block_size = block_size};
    ga_err e = {{0}};
    ga_session *s = NULL;
    CHECK_OK(ga_session_create(m, &so, &s, &e), &e);
    return s;
}

/* The same calls on a slot session and a paged one; every output compared bit for bit. */
static void test_equal(const ga_model *m, int block_size, const char *tag) {
    const int V = m->cfg.vocab_size, T = 41;
    int32_t ids[41];
    for (int i = 0; i < T; i++)
        ids[i] = (i * 13 + 5) % V;
    /* enough blocks for the 3 sequences' 96 tokens, so only the layout differs */
    const int nblk = 3 * ((96 + block_size - 1) / block_size);
    ga_session *ss[2] = {open_s(m, 0, 0), open_s(m, nblk, block_size)};
    if (!ss[0] || !ss[1]) return;
    ga_kv_info ki;
    ga_session_kv_info(ss[1], &ki);
    CHECK(ki.paged && !ki.paged_refused && ki.block_size == block_size && ki.blocks_total == nblk);
    ga_session_kv_info(ss[0], &ki);
    CHECK(!ki.paged && !ki.paged_refused);
    float *out[2];
    const size_t n_out = (size_t)(T + 8 + 3 * 6) * V;
    for (int k = 0; k < 2; k++) {
        ga_session *s = ss[k];
        float *o = out[k] = malloc(n_out * sizeof(float));
        for (size_t i = 0; i < n_out; i++)
            o[i] = NAN;
        ga_test_paged_workload(s, ids, T, V, 6, o);
        CHECK(ga_session_seq_len(s, 0) == T + 6 && ga_session_seq_len(s, 2) == 8);
    }
    CHECK_MSG(ga_test_same_bits(out[0], out[1], n_out), "%s bs %d: paged logits differ from slots",
              tag, block_size);
    free(out[0]);
    free(out[1]);

    /* capture: maps and metrics of a prefill of sequence 0 */
    bool layers[3] = {true, true, true};
    ga_attn_capture cap[2];
    for (int k = 0; k < 2; k++) {
        ga_err e = {{0}};
        cap[k] = (ga_attn_capture){.layers = layers, .head = -1, .max_res = 64};
        ga_session_reset(ss[k], 0);
        CHECK_OK(ga_session_set_capture(ss[k], &cap[k], &e), &e);
        CHECK_OK(ga_session_forward(ss[k], 0, ids, T, false, NULL, &e), &e);
    }
    for (int l = 0; l < 3; l++) {
        CHECK(cap[0].maps && cap[1].maps && cap[0].res == cap[1].res);
        if (!cap[0].maps || !cap[1].maps) break;
        CHECK_MSG(
            ga_test_same_bits(cap[0].maps[l], cap[1].maps[l], (size_t)cap[0].res * cap[0].res),
            "%s: capture map of layer %d differs", tag, l);
        CHECK(memcmp(&cap[0].metrics[l], &cap[1].metrics[l], sizeof cap[0].metrics[l]) == 0);
    }
    ga_attn_capture_free(&cap[0]);
    ga_attn_capture_free(&cap[1]);

    /* generate (sampled, so every logit matters) and generate_batch */
    ga_gen_opts go = {.max_new_tokens = 30,
                      .sampling = {.temperature = 0.9f, .top_k = 0, .top_p = 1, .seed = 7}};
    ga_test_tok_sink sink[2];
    memset(sink, 0, sizeof sink);
    for (int k = 0; k < 2; k++) {
        ga_err e = {{0}};
        const int32_t *prompts[3] = {ids, ids + 5, ids + 9};
        int np[3] = {29, 3, 17};
        CHECK_OK(ga_generate_batch(ss[k], m, prompts, np, 3, &go, ga_test_on_tok, &sink[k], NULL,
                                   NULL, &e),
                 &e);
        CHECK_OK(ga_generate(ss[k], m, 1, ids + 2, 38, &go, ga_test_on_tok_alone, &sink[k], NULL,
                             NULL, &e),
                 &e);
    }
    CHECK(sink[0].n[0] == 30 && sink[0].n[3] > 0);
    CHECK_MSG(memcmp(&sink[0], &sink[1], sizeof sink[0]) == 0, "%s: generated tokens differ", tag);
    ga_session_free(ss[0]);
    ga_session_free(ss[1]);
}

static void test_alloc(const ga_model *m) {
    ga_err e = {{0}};
    ga_kv_info ki;
    int32_t ids[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    ga_session *s = open_s(m, 4, 4);
    if (!s) return;
    CHECK(ga_session_kv_blocks_needed(s, 0, 1) == 1 && ga_session_kv_blocks_needed(s, 0, 9) == 3);
    CHECK_OK(ga_session_forward(s, 0, ids, 9, false, NULL, &e), &e);
    ga_session_kv_info(s, &ki);
    CHECK(ki.blocks_total == 4 && ki.blocks_free == 1);
    CHECK(ga_session_kv_blocks_needed(s, 0, 3) == 0 && ga_session_kv_blocks_needed(s, 0, 4) == 1);
    /* exhaustion: a distinct status, and nothing taken or run */
    CHECK(ga_session_forward(s, 1, ids, 5, false, NULL, &e) == GA_ERR_NO_CACHE);
    CHECK(strstr(e.msg, "needs 2 more blocks") != NULL);
    ga_session_kv_info(s, &ki);
    CHECK(ki.blocks_free == 1 && ga_session_seq_len(s, 1) == 0);
    CHECK_OK(ga_session_forward(s, 1, ids, 4, false, NULL, &e), &e);
    ga_session_kv_info(s, &ki);
    CHECK(ki.blocks_free == 0);
    int seqs[2] = {0, 1};
    int32_t tk[2] = {3, 4};
    float *lg = malloc(2 * (size_t)m->cfg.vocab_size * sizeof(float));
    CHECK(ga_session_decode_batch(s, seqs, tk, 2, lg, &e) == GA_ERR_NO_CACHE);
    CHECK(ga_session_seq_len(s, 0) == 9 && ga_session_seq_len(s, 1) == 4);
    int32_t nx[2];
    CHECK(ga_session_decode_sample(s, seqs, tk, 2, NULL, NULL, nx, &e) == GA_ERR_NO_CACHE);
    /* reset gives the blocks back; growth then succeeds */
    ga_session_reset(s, 0);
    ga_session_kv_info(s, &ki);
    CHECK(ki.blocks_free == 3 && ga_session_seq_len(s, 0) == 0);
    CHECK_OK(ga_session_forward(s, 0, ids, 1, false, NULL, &e), &e);
    CHECK_OK(ga_session_decode_batch(s, seqs, tk, 2, lg, &e), &e);
    ga_session_kv_info(s, &ki);
    CHECK(ki.blocks_free == 1 && ga_session_seq_len(s, 1) == 5);
    /* ga_generate past the blocks fails cleanly with the same status */
    ga_gen_opts go = {.max_new_tokens = 40};
    CHECK(ga_generate(s, m, 2, ids, 3, &go, NULL, NULL, NULL, NULL, &e) == GA_ERR_NO_CACHE);
    free(lg);
    ga_session_free(s);

    /* sizing from bytes: 2 (K, V) * 4 bytes * 3 layers * 2 KV heads * 16 = 768 bytes a token */
    ga_session_opts so = {.device = GA_DEVICE_CPU, .max_context = 64, .n_threads = 1};
    so.kv_memory = 768 * 16 * 3 + 100;
    s = NULL;
    CHECK_OK(ga_session_create(m, &so, &s, &e), &e);
    if (s) {
        ga_session_kv_info(s, &ki);
        CHECK(ki.paged && ki.block_size == 16 && ki.blocks_total == 3);
        ga_session_free(s);
    }
    so.kv_memory = 100;
    CHECK(ga_session_create(m, &so, &s, &e) == GA_ERR_ARG && !s);
    CHECK(strstr(e.msg, "holds no block") != NULL);
    /* bad option values */
    const struct {
        int blocks, bs;
        int64_t mem;
    } bad[] = {{-1, 0, 0}, {0, 0, -5}, {4, -1, 0}, {4, 5000, 0}, {(1 << 24) + 1, 0, 0}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        so.kv_blocks = bad[i].blocks;
        so.kv_block_size = bad[i].bs;
        so.kv_memory = bad[i].mem;
        CHECK(ga_session_create(m, &so, &s, &e) == GA_ERR_ARG && !s);
    }
}

int main(void) {
    ga_model *m = make(GA_GATE_HEADWISE, 4, 2, 16, 5);
    test_equal(m, 16, "headwise");
    test_equal(m, 5, "headwise");
    test_alloc(m);
    ga_model_free(m);
    m = make(GA_GATE_ELEMENTWISE, 8, 2, 6, 9);
    test_equal(m, 1, "elementwise");
    test_equal(m, 7, "elementwise");
    ga_model_free(m);
    return ga_test_finish();
}
