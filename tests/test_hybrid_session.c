/*
 * Hybrid models through the session API on the CPU backend (issue 15), with an in-memory random
 * model (ga_model_random binds the hybrid tensor list): for Qwen3-Next (fused projections, a
 * dense layer beside MoE ones) and Qwen3.5 (split projections, dense):
 *   - one prefill of T tokens (all positions) equals token-by-token decode of the same tokens,
 *     bit for bit (each token sees exactly the state its predecessors left, either way), and
 *     equals the same tokens decoded in a batch beside another sequence, and prefilled through
 *     ga_session_forward_multi (the session's per-sequence fallback);
 *   - all of it through a paged cache (kv_blocks: the backend takes it, paged and not refused;
 *     tests/test_hybrid_paged.c compares it with slots);
 *   - --device cuda on these head_dim 16 models: refused with the reason (a GPU present) or the
 *     usual no-GPU / no-CUDA-build error; auto runs them on the CPU either way.
 */
#include <math.h>

#include "testutil.h"

#define T 9

static const char *const k_cfgs[] = {
    "{\"model_type\": \"qwen3_next\", \"vocab_size\": 50, \"hidden_size\": 32, "
    "\"intermediate_size\": 40, \"num_hidden_layers\": 4, \"num_attention_heads\": 4, "
    "\"num_key_value_heads\": 2, \"head_dim\": 16, \"linear_num_key_heads\": 2, "
    "\"linear_num_value_heads\": 4, \"linear_key_head_dim\": 8, \"linear_value_head_dim\": 8, "
    "\"num_experts\": 4, \"num_experts_per_tok\": 2, \"moe_intermediate_size\": 12, "
    "\"shared_expert_intermediate_size\": 16, \"mlp_only_layers\": [1], "
    "\"max_position_embeddings\": 64}",
    "{\"model_type\": \"qwen3_5_text\", \"vocab_size\": 50, \"hidden_size\": 32, "
    "\"intermediate_size\": 40, \"num_hidden_layers\": 4, \"num_attention_heads\": 2, "
    "\"num_key_value_heads\": 1, \"head_dim\": 16, \"linear_num_key_heads\": 1, "
    "\"linear_num_value_heads\": 2, \"linear_key_head_dim\": 8, \"linear_value_head_dim\": 8, "
    "\"tie_word_embeddings\": true, \"max_position_embeddings\": 64}",
};

static void check_cfg(const char *json) {
    ga_err e = {{0}};
    ga_config c;
    CHECK_OK(ga_test_config_parse(json, &c, &e), &e);
    ga_model *m = NULL;
    CHECK_OK(ga_model_random(&c, 5, GA_BF16, &m, &e), &e);
    if (!m) return;
    const int V = c.vocab_size;
    int32_t ids[T] = {3, 1, 4, 1, 5, 9, 2, 6, 49};
    float *full = malloc(sizeof(float) * T * V), *step = malloc(sizeof(float) * T * V);
    float *two = malloc(sizeof(float) * 2 * V), *multi = malloc(sizeof(float) * 2 * T * V);
    for (int i = 0; i < T * V; i++)
        full[i] = step[i] = NAN;
    ga_session_opts so = {
        .device = GA_DEVICE_AUTO, .max_context = 16, .max_batch = 2, .kv_blocks = 8};
    ga_session *s = NULL;
    CHECK_OK(ga_session_create(m, &so, &s, &e), &e);
    if (s) {
        ga_kv_info kv;
        ga_session_kv_info(s, &kv);
        CHECK(kv.paged && !kv.paged_refused && kv.blocks_total == 8);
        CHECK(ga_session_device(s) == GA_DEVICE_CPU);
        CHECK_OK(ga_session_forward(s, 0, ids, T, true, full, &e), &e);
        /* sequence 1 token by token; sequence 0 again beside it in a batch of two */
        ga_session_reset(s, 0);
        CHECK_OK(ga_session_forward(s, 0, ids, 1, false, NULL, &e), &e);
        CHECK_OK(ga_session_forward(s, 1, ids, 1, false, step, &e), &e);
        bool batch_same = true;
        for (int t = 1; t < T; t++) {
            int seqs[2] = {0, 1};
            int32_t tk[2] = {ids[t], ids[t]};
            CHECK_OK(ga_session_decode_batch(s, seqs, tk, 2, two, &e), &e);
            memcpy(step + (size_t)t * V, two + V, sizeof(float) * V);
            batch_same = batch_same && !memcmp(two, two + V, sizeof(float) * V);
        }
        CHECK_MSG(batch_same, "%s: two sequences of one batch differ", ga_arch_name(c.arch));
        CHECK_MSG(!memcmp(full, step, sizeof(float) * T * V),
                  "%s: prefill and decode differ (rel L2 %.3g)", ga_arch_name(c.arch),
                  ga_test_rel_l2(full, step, (size_t)T * V));
        /* both sequences prefilled in one call */
        ga_session_reset(s, 0);
        ga_session_reset(s, 1);
        int seqs[2] = {0, 1}, off[3] = {0, T, 2 * T};
        int32_t both[2 * T];
        memcpy(both, ids, sizeof ids);
        memcpy(both + T, ids, sizeof ids);
        CHECK_OK(ga_session_forward_multi(s, 2, seqs, both, off, true, multi, &e), &e);
        CHECK(!memcmp(multi, full, sizeof(float) * T * V) &&
              !memcmp(multi + (size_t)T * V, full, sizeof(float) * T * V));
        bool finite = true;
        for (int i = 0; i < T * V; i++)
            finite = finite && isfinite(full[i]);
        CHECK(finite);
    }
    ga_session_free(s);
    /* --device cuda takes the hybrid CUDA backend. These models' head_dim 16 is below what its
     * attention kernels take (64, 128, 256), so with a GPU an explicit cuda is refused with a
     * reason and the way out (--device cpu), and auto falls back to the CPU; without a GPU cuda
     * fails as for any model, naming the missing GPU or CUDA build. */
    so = (ga_session_opts){.device = GA_DEVICE_CUDA, .max_context = 16};
    s = NULL;
    ga_status cst = ga_session_create(m, &so, &s, &e);
    CHECK(cst == GA_ERR_UNSUPPORTED && s == NULL);
    if (ga_cuda_available())
        CHECK_MSG(strstr(e.msg, "hybrid CUDA backend") && strstr(e.msg, "--device cpu"), "%s",
                  e.msg);
    else
        CHECK_MSG(strstr(e.msg, "no CUDA GPU is available") ||
                      strstr(e.msg, "this build of gattn has no CUDA backend"),
                  "%s", e.msg);
    ga_session_free(s);
    so = (ga_session_opts){.device = GA_DEVICE_AUTO, .max_context = 16};
    s = NULL;
    CHECK_OK(ga_session_create(m, &so, &s, &e), &e);
    CHECK(s && ga_session_device(s) == GA_DEVICE_CPU);
    ga_session_free(s);
    free(full), free(step), free(two), free(multi);
    ga_model_free(m);
}

int main(void) {
    for (size_t i = 0; i < sizeof k_cfgs / sizeof k_cfgs[0]; i++)
        check_cfg(k_cfgs[i]);
    return ga_test_finish();
}
