/*
 * The paged KV cache of the hybrid CPU backend (issue 15 with issue 13's session options
 * kv_blocks / kv_memory), for Qwen3-Next (fused projections, MoE beside a dense layer),
 * Qwen3.5 (split projections, dense) and Qwen3.5-MoE, each with two full-attention layers so a
 * block holds more than one layer's K/V:
 *   - results are bit-identical to the slot cache: prefill in chunks that cross block
 *     boundaries, sequences growing interleaved so their blocks are not in order, batched
 *     decode, ga_session_forward_multi (the session's per-sequence fallback), a reset sequence
 *     reusing another's freed blocks (its DeltaNet states start from zero), attention capture,
 *     ga_generate and ga_generate_batch;
 *   - out of blocks: GA_ERR_NO_CACHE changing nothing (lengths, free blocks, and the DeltaNet
 *     state: the sequence continues exactly as if the failed call had not been made), reset
 *     giving the blocks back;
 *   - the backend's sizes: kv_token_bytes counts the full-attention layers' K/V only and
 *     kv_fixed_bytes the conv + recurrent states of max_batch sequences.
 */
#include <math.h>

#include "core/backend.h"
#include "cpu/cpu_hybrid.h"
#include "engine/generate.h"
#include "testutil.h"

#define CTX 96

static const char *const k_cfgs[] = {
    "{\"model_type\": \"qwen3_next\", \"vocab_size\": 61, \"hidden_size\": 32, "
    "\"intermediate_size\": 40, \"num_hidden_layers\": 6, \"full_attention_interval\": 3, "
    "\"num_attention_heads\": 4, \"num_key_value_heads\": 2, \"head_dim\": 16, "
    "\"linear_num_key_heads\": 2, \"linear_num_value_heads\": 4, \"linear_key_head_dim\": 8, "
    "\"linear_value_head_dim\": 8, \"num_experts\": 4, \"num_experts_per_tok\": 2, "
    "\"moe_intermediate_size\": 12, \"shared_expert_intermediate_size\": 16, "
    "\"mlp_only_layers\": [1], \"max_position_embeddings\": 128}",
    "{\"model_type\": \"qwen3_5_text\", \"vocab_size\": 61, \"hidden_size\": 32, "
    "\"intermediate_size\": 40, \"num_hidden_layers\": 6, \"full_attention_interval\": 3, "
    "\"num_attention_heads\": 2, \"num_key_value_heads\": 1, \"head_dim\": 16, "
    "\"linear_num_key_heads\": 1, \"linear_num_value_heads\": 2, \"linear_key_head_dim\": 8, "
    "\"linear_value_head_dim\": 8, \"tie_word_embeddings\": true, "
    "\"max_position_embeddings\": 128}",
    "{\"model_type\": \"qwen3_5_moe\", \"text_config\": {\"vocab_size\": 61, \"hidden_size\": 32, "
    "\"num_hidden_layers\": 6, \"full_attention_interval\": 3, \"num_attention_heads\": 4, "
    "\"num_key_value_heads\": 2, \"head_dim\": 16, \"linear_num_key_heads\": 2, "
    "\"linear_num_value_heads\": 4, \"linear_key_head_dim\": 8, \"linear_value_head_dim\": 8, "
    "\"num_experts\": 4, \"num_experts_per_tok\": 2, \"moe_intermediate_size\": 12, "
    "\"shared_expert_intermediate_size\": 16, \"max_position_embeddings\": 128}}",
};

static ga_session *open_s(const ga_model *m, int kv_blocks, int block_size, int max_batch) {
    ga_session_opts so = {.device = GA_DEVICE_CPU,
                          .max_context = CTX,
                          .max_batch = max_batch,
                          .n_threads = 1,
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
    /* enough blocks for the 3 sequences' CTX tokens, so only the layout differs */
    const int nblk = 3 * ((CTX + block_size - 1) / block_size);
    ga_session *ss[2] = {open_s(m, 0, 0, 3), open_s(m, nblk, block_size, 3)};
    if (!ss[0] || !ss[1]) goto out;
    ga_kv_info ki;
    ga_session_kv_info(ss[1], &ki);
    CHECK_MSG(ki.paged && !ki.paged_refused && ki.block_size == block_size &&
                  ki.blocks_total == nblk,
              "%s: paged %d refused %d", tag, ki.paged, ki.paged_refused);
    ga_session_kv_info(ss[0], &ki);
    CHECK(!ki.paged && !ki.paged_refused);
    float *out[2];
    const size_t n_out = (size_t)(T + 8 + 3 * 6 + 2 * 20 + 5) * V;
    for (int k = 0; k < 2; k++) {
        ga_session *s = ss[k];
        float *o = out[k] = malloc(n_out * sizeof(float));
        for (size_t i = 0; i < n_out; i++)
            o[i] = NAN;
        ga_err e = {{0}};
        float *d = ga_test_paged_workload(s, ids, T, V, 6, o); /* the end of its rows */
        CHECK(ga_session_seq_len(s, 0) == T + 6 && ga_session_seq_len(s, 2) == 8);
        /* a reset sequence takes the blocks another gave back, and its states start at zero;
         * then forward_multi (every position) beside a sequence that continues */
        ga_session_reset(s, 0);
        ga_session_reset(s, 1);
        CHECK_OK(ga_session_forward(s, 1, ids + 7, 20, true, d, &e), &e);
        d += (size_t)20 * V;
        int seqs[2] = {0, 2}, off[3] = {0, 15, 20};
        int32_t both[20];
        memcpy(both, ids + 1, 15 * sizeof *both);
        memcpy(both + 15, ids + 30, 5 * sizeof *both);
        CHECK_OK(ga_session_forward_multi(s, 2, seqs, both, off, true, d, &e), &e);
        d += (size_t)20 * V;
        CHECK_OK(ga_session_forward_multi(s, 2, seqs, both, off, false, d, &e), &e);
        CHECK(ga_session_seq_len(s, 0) == 30 && ga_session_seq_len(s, 2) == 18);
    }
    bool finite = true;
    for (size_t i = 0; i < n_out - 3 * (size_t)V; i++)
        finite = finite && isfinite(out[0][i]);
    CHECK_MSG(finite, "%s: slot logits not all written or not finite", tag);
    CHECK_MSG(ga_test_same_bits(out[0], out[1], n_out - 3 * (size_t)V),
              "%s bs %d: paged logits differ from slots (rel L2 %.3g)", tag, block_size,
              ga_test_rel_l2(out[0], out[1], n_out - 3 * (size_t)V));
    free(out[0]);
    free(out[1]);

    /* capture: maps and metrics of a prefill of sequence 0 */
    const int L = m->cfg.n_layers;
    bool layers[16];
    for (int l = 0; l < L; l++)
        layers[l] = true;
    ga_attn_capture cap[2];
    for (int k = 0; k < 2; k++) {
        ga_err e = {{0}};
        cap[k] = (ga_attn_capture){.layers = layers, .head = -1, .max_res = 64};
        ga_session_reset(ss[k], 0);
        CHECK_OK(ga_session_set_capture(ss[k], &cap[k], &e), &e);
        CHECK_OK(ga_session_forward(ss[k], 0, ids, T, false, NULL, &e), &e);
    }
    CHECK(cap[0].maps && cap[1].maps && cap[0].res == cap[1].res);
    for (int l = 0; cap[0].maps && cap[1].maps && l < L; l++) {
        CHECK((cap[0].maps[l] == NULL) == (cap[1].maps[l] == NULL));
        if (cap[0].maps[l] && cap[1].maps[l])
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
out:
    ga_session_free(ss[0]);
    ga_session_free(ss[1]);
}

/* Logits of ids[0..n) decoded one by one on a fresh slot session (the reference). */
static void reference(const ga_model *m, const int32_t *ids, int n, float *lg) {
    ga_session *s = open_s(m, 0, 0, 1);
    ga_err e = {{0}};
    for (int t = 0; s && t < n; t++)
        CHECK_OK(
            ga_session_forward(s, 0, ids + t, 1, false, lg + (size_t)t * m->cfg.vocab_size, &e),
            &e);
    ga_session_free(s);
}

static void test_alloc(const ga_model *m, const char *tag) {
    const int V = m->cfg.vocab_size;
    ga_err e = {{0}};
    ga_kv_info ki;
    int32_t ids[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    float *ref = malloc(16 * (size_t)V * sizeof(float)),
          *lg = malloc(2 * (size_t)V * sizeof(float));
    reference(m, ids, 16, ref);
    ga_session *s = open_s(m, 4, 4, 3);
    if (!s) goto out;
    CHECK(ga_session_kv_blocks_needed(s, 0, 1) == 1 && ga_session_kv_blocks_needed(s, 0, 9) == 3);
    CHECK_OK(ga_session_forward(s, 0, ids, 9, false, NULL, &e), &e);
    ga_session_kv_info(s, &ki);
    CHECK(ki.blocks_total == 4 && ki.blocks_free == 1);
    /* exhaustion: a distinct status, and nothing taken or run */
    CHECK(ga_session_forward(s, 1, ids, 5, false, NULL, &e) == GA_ERR_NO_CACHE);
    CHECK(strstr(e.msg, "needs 2 more blocks") != NULL);
    ga_session_kv_info(s, &ki);
    CHECK(ki.blocks_free == 1 && ga_session_seq_len(s, 1) == 0);
    CHECK_OK(ga_session_forward(s, 1, ids, 4, false, NULL, &e), &e);
    ga_session_kv_info(s, &ki);
    CHECK(ki.blocks_free == 0);
    /* sequence 0 at 9 tokens continues within its block; sequence 1 at 4 needs a new one */
    int seqs[2] = {0, 1};
    int32_t tk[2] = {ids[9], ids[4]};
    CHECK(ga_session_decode_batch(s, seqs, tk, 2, lg, &e) == GA_ERR_NO_CACHE);
    CHECK(ga_session_seq_len(s, 0) == 9 && ga_session_seq_len(s, 1) == 4);
    int32_t nx[2];
    CHECK(ga_session_decode_sample(s, seqs, tk, 2, NULL, NULL, nx, &e) == GA_ERR_NO_CACHE);
    int ms[2] = {0, 1}, off[3] = {0, 1, 2};
    CHECK(ga_session_forward_multi(s, 2, ms, tk, off, false, lg, &e) == GA_ERR_NO_CACHE);
    /* the failed calls left sequence 0's DeltaNet state where it was: it continues exactly as
     * the reference does */
    CHECK_OK(ga_session_forward(s, 0, ids + 9, 1, false, lg, &e), &e);
    CHECK_MSG(ga_test_same_bits(lg, ref + (size_t)9 * V, (size_t)V),
              "%s: a sequence continued after GA_ERR_NO_CACHE differs from the reference", tag);
    /* reset gives the blocks back; sequence 1 regrows from zero states and matches too */
    ga_session_reset(s, 1);
    ga_session_kv_info(s, &ki);
    CHECK(ki.blocks_free == 1 && ga_session_seq_len(s, 1) == 0);
    for (int t = 0; t < 4; t++)
        CHECK_OK(ga_session_forward(s, 1, ids + t, 1, false, lg, &e), &e);
    CHECK_MSG(ga_test_same_bits(lg, ref + (size_t)3 * V, (size_t)V), "%s: a reset sequence differs",
              tag);
    ga_session_reset(s, 0);
    ga_session_kv_info(s, &ki);
    CHECK(ki.blocks_free == 3 && ga_session_seq_len(s, 0) == 0);
    /* ga_generate past the blocks fails cleanly with the same status */
    ga_gen_opts go = {.max_new_tokens = 40};
    CHECK(ga_generate(s, m, 2, ids, 3, &go, NULL, NULL, NULL, NULL, &e) == GA_ERR_NO_CACHE);
    ga_session_free(s);
out:
    free(ref);
    free(lg);
}

/* The backend's own sizes, from the config by hand. */
static void test_sizes(const ga_model *m, const char *tag) {
    const ga_config *c = &m->cfg;
    const ga_hybrid_config *h = &c->hybrid;
    int full = 0;
    for (int l = 0; l < c->n_layers; l++)
        full += !h->layer_is_linear[l];
    CHECK(full == 2 && ga_hyb_full_layers(c) == 2);
    size_t conv_dim = 2 * (size_t)h->linear_num_key_heads * h->linear_key_head_dim +
                      (size_t)h->linear_num_value_heads * h->linear_value_head_dim;
    size_t state =
        (conv_dim * (h->linear_conv_kernel_dim - 1) +
         (size_t)h->linear_num_value_heads * h->linear_key_head_dim * h->linear_value_head_dim) *
        4 * (size_t)(c->n_layers - full);
    ga_session_opts so = {.max_batch = 3, .kv_blocks = 5};
    ga_backend *b = NULL;
    ga_err e = {{0}};
    CHECK_OK(ga_cpu_hybrid_backend_create(m, &so, CTX, 3, &b, &e), &e);
    if (!b) return;
    CHECK_MSG(b->kv_token_bytes == 2 * 4 * (size_t)full * c->n_kv_heads * c->head_dim,
              "%s: kv_token_bytes %zu", tag, b->kv_token_bytes);
    CHECK_MSG(b->kv_fixed_bytes == 3 * state && state > 0, "%s: kv_fixed_bytes %zu, expected %zu",
              tag, b->kv_fixed_bytes, 3 * state);
    CHECK(b->paged_init != NULL);
    b->free(b);
}

/* kv_memory pays for the DeltaNet states of max_batch sequences first, the blocks get the rest. */
static void test_kv_memory(const ga_model *m, const char *tag) {
    const ga_config *c = &m->cfg;
    const int64_t per = 2 * 4 * 2 * (int64_t)c->n_kv_heads * c->head_dim * 16; /* 2 full layers */
    const int64_t fixed = 3 * (int64_t)ga_hyb_state_fixed_bytes(c);
    ga_session_opts so = {.device = GA_DEVICE_CPU, .max_context = CTX, .max_batch = 3};
    ga_err e = {{0}};
    ga_session *s = NULL;
    ga_kv_info ki;
    so.kv_memory = fixed + 5 * per + per - 1;
    CHECK_OK(ga_session_create(m, &so, &s, &e), &e);
    if (s) {
        ga_session_kv_info(s, &ki);
        CHECK_MSG(ki.paged && ki.blocks_total == 5, "%s: %d blocks from kv_memory, expected 5", tag,
                  ki.blocks_total);
        ga_session_free(s);
    }
    s = NULL;
    so.kv_memory = fixed + per - 1; /* the states fit, no block */
    CHECK(ga_session_create(m, &so, &s, &e) == GA_ERR_ARG && !s);
    CHECK_MSG(strstr(e.msg, "holds no block") != NULL, "%s", e.msg);
}

int main(void) {
    for (size_t i = 0; i < sizeof k_cfgs / sizeof k_cfgs[0]; i++) {
        ga_err e = {{0}};
        ga_config c;
        CHECK_OK(ga_test_config_parse(k_cfgs[i], &c, &e), &e);
        ga_model *m = NULL;
        CHECK_OK(ga_model_random(&c, 11 + i, GA_BF16, &m, &e), &e);
        if (!m) continue;
        const char *tag = ga_arch_name(c.arch);
        test_sizes(m, tag);
        test_equal(m, 4, tag);
        test_equal(m, 7, tag);
        if (i == 0) test_equal(m, 1, tag);
        test_alloc(m, tag);
        test_kv_memory(m, tag);
        ga_model_free(m);
    }
    return ga_test_finish();
}
