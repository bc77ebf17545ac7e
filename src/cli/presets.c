/* The named model shapes and the variant names (presets.h). */
#include <string.h>

#include "presets.h"

/* Fields every preset shares: Qwen3's norm eps, RoPE theta, qk-norm, tied embeddings. */
#define QWEN3_COMMON                                                                               \
    .rms_norm_eps = 1e-6f, .rope_theta = 1000000.0, .tie_word_embeddings = true,                   \
    .use_qk_norm = true, .bos_token_id = -1

/* The hybrid families (issue 15): every 4th layer full attention (full_attention_interval 4),
 * the others Gated DeltaNet, written out for all GA_MAX_LAYERS so a --layers override keeps the
 * pattern; every layer MoE for Qwen3-Next (decoder_sparse_step 1, mlp_only_layers []). Decoder
 * norms zero-centred, the output gate elementwise, rms_norm_eps 1e-6, conv kernel 4, partial
 * RoPE on head_dim / 4 (partial_rotary_factor 0.25) in every released config cited below. */
#define LIN4 1, 1, 1, 0
#define LIN16 LIN4, LIN4, LIN4, LIN4
#define LIN64 LIN16, LIN16, LIN16, LIN16
#define LIN256 LIN64, LIN64, LIN64, LIN64
#define ONE4 1, 1, 1, 1
#define ONE16 ONE4, ONE4, ONE4, ONE4
#define ONE64 ONE16, ONE16, ONE16, ONE16
#define ONE256 ONE64, ONE64, ONE64, ONE64
#define HYBRID_COMMON(kh, vh)                                                                      \
    .layer_is_linear = {LIN256, LIN256, LIN256, LIN256}, .linear_conv_kernel_dim = 4,              \
    .linear_num_key_heads = (kh), .linear_num_value_heads = (vh), .linear_key_head_dim = 128,      \
    .linear_value_head_dim = 128, .attn_output_gate = true, .partial_rotary_factor = 0.25,         \
    .rotary_dim = 64
#define HYBRID_TOP                                                                                 \
    .norm_zero_centred = true, .gate = GA_GATE_ELEMENTWISE, .rms_norm_eps = 1e-6f,                 \
    .use_qk_norm = true, .bos_token_id = -1, .torch_dtype = GA_BF16,                               \
    .max_position_embeddings = 262144, .rope_theta = 10000000.0

static const ga_preset PRESETS[] = {
    {"tiny",
     "4 layers, hidden 128, 4/2 heads x 32, intermediate 384, vocab 1024, f32",
     {.vocab_size = 1024,
      .hidden_size = 128,
      .intermediate_size = 384,
      .n_layers = 4,
      .n_heads = 4,
      .n_kv_heads = 2,
      .head_dim = 32,
      .max_position_embeddings = 4096,
      .torch_dtype = GA_F32,
      QWEN3_COMMON},
     GA_F32},
    {"small",
     "4 layers, hidden 256, 4/2 heads x 64, intermediate 768, vocab 8192 (the CPU "
     "bench's default)",
     {.vocab_size = 8192,
      .hidden_size = 256,
      .intermediate_size = 768,
      .n_layers = 4,
      .n_heads = 4,
      .n_kv_heads = 2,
      .head_dim = 64,
      .max_position_embeddings = 8192,
      .torch_dtype = GA_BF16,
      QWEN3_COMMON},
     GA_BF16},
    {"qwen3-0.6b",
     "Qwen3-0.6B: 28 layers, hidden 1024, 16/8 heads x 128, intermediate 3072",
     {.vocab_size = 151936,
      .hidden_size = 1024,
      .intermediate_size = 3072,
      .n_layers = 28,
      .n_heads = 16,
      .n_kv_heads = 8,
      .head_dim = 128,
      .max_position_embeddings = 40960,
      .torch_dtype = GA_BF16,
      QWEN3_COMMON},
     GA_BF16},
    {"paper-1.7b",
     "the paper's 1.7B: 28 layers, hidden 2048, 16/8 heads x 128, "
     "intermediate 6144, vocab 151936, bf16 (3.4 GB)",
     {.vocab_size = 151936,
      .hidden_size = 2048,
      .intermediate_size = 6144,
      .n_layers = 28,
      .n_heads = 16,
      .n_kv_heads = 8,
      .head_dim = 128,
      .max_position_embeddings = 40960,
      .torch_dtype = GA_BF16,
      QWEN3_COMMON},
     GA_BF16},
    /* Qwen3.5 dense (model_type qwen3_5, the text_config of a vision-language checkpoint;
     * written here as qwen3_5_text). Sources, read 2026-12-02:
     * - Qwen3.5-9B: the model card (huggingface.co/Qwen/Qwen3.5-9B, "Model Overview"): hidden
     *   4096, 32 layers as 8 x (3 DeltaNet + 1 attention), DeltaNet 32 V / 16 QK heads x 128,
     *   attention 16 Q / 4 KV heads x 256, rotary dimension 64, intermediate 12288, vocab
     *   248320 (padded), context 262144; rope_theta 1e7 as its config.json text_config.
     * - Qwen3.5-0.8B: hidden 1024, 24 layers, 8 / 2 heads x 256, intermediate 3584, vocab
     *   248320, rope_theta 1e7 (the model card's figures as apxml.com/models/qwen35-08b lists
     *   them); DeltaNet 16 / 16 heads x 128 and tied embeddings as the config.json of a 0.8B
     *   derivative at the same hidden/intermediate sizes shows them.
     */
    {"qwen3.5-0.8b",
     "Qwen3.5-0.8B (hybrid): 24 layers (18 DeltaNet + 6 attention), hidden 1024, "
     "8/2 heads x 256, DeltaNet 16/16 heads x 128, intermediate 3584, vocab 248320",
     {.arch = GA_ARCH_QWEN3_5,
      .hybrid = {HYBRID_COMMON(16, 16)},
      .vocab_size = 248320,
      .hidden_size = 1024,
      .intermediate_size = 3584,
      .n_layers = 24,
      .n_heads = 8,
      .n_kv_heads = 2,
      .head_dim = 256,
      .tie_word_embeddings = true,
      HYBRID_TOP},
     GA_BF16},
    {"qwen3.5-9b",
     "Qwen3.5-9B (hybrid): 32 layers (24 DeltaNet + 8 attention), hidden 4096, "
     "16/4 heads x 256, DeltaNet 16/32 heads x 128, intermediate 12288, vocab 248320",
     {.arch = GA_ARCH_QWEN3_5,
      .hybrid = {HYBRID_COMMON(16, 32)},
      .vocab_size = 248320,
      .hidden_size = 4096,
      .intermediate_size = 12288,
      .n_layers = 32,
      .n_heads = 16,
      .n_kv_heads = 4,
      .head_dim = 256,
      HYBRID_TOP},
     GA_BF16},
    /* Qwen3-Next-80B-A3B: huggingface.co/Qwen/Qwen3-Next-80B-A3B-Instruct/blob/main/config.json
     * (and transformers' Qwen3NextConfig defaults, which mirror it): hidden 2048, 48 layers,
     * full_attention_interval 4, 16 / 2 heads x 256, DeltaNet 16 / 32 heads x 128, conv 4,
     * intermediate 5120 (unused: every layer MoE), 512 experts of 512, top-10, a shared expert
     * of 512, norm_topk_prob, vocab 151936, rope_theta 1e7, partial_rotary_factor 0.25,
     * max_position_embeddings 262144, untied. */
    {"qwen3-next-80b-a3b",
     "Qwen3-Next-80B-A3B (hybrid MoE): 48 layers (36 DeltaNet + 12 attention), "
     "hidden 2048, 16/2 heads x 256, DeltaNet 16/32 heads x 128, 512 experts x 512 top-10 + "
     "shared 512, vocab 151936",
     {.arch = GA_ARCH_QWEN3_NEXT,
      .hybrid = {HYBRID_COMMON(16, 32), .moe = true, .num_experts = 512, .num_experts_per_tok = 10,
                 .moe_intermediate_size = 512, .shared_expert_intermediate_size = 512,
                 .norm_topk_prob = true, .decoder_sparse_step = 1,
                 .layer_is_moe = {ONE256, ONE256, ONE256, ONE256}},
      .vocab_size = 151936,
      .hidden_size = 2048,
      .intermediate_size = 5120,
      .n_layers = 48,
      .n_heads = 16,
      .n_kv_heads = 2,
      .head_dim = 256,
      HYBRID_TOP},
     GA_BF16},
};

const ga_preset *ga_preset_find(const char *name) {
    static const struct {
        const char *alias, *name;
    } short_names[] = {{"0.6b", "qwen3-0.6b"}, {"1.7b", "paper-1.7b"}};
    for (size_t i = 0; i < sizeof short_names / sizeof short_names[0]; i++)
        if (!strcmp(name, short_names[i].alias)) name = short_names[i].name;
    for (size_t i = 0; i < sizeof PRESETS / sizeof PRESETS[0]; i++)
        if (!strcmp(name, PRESETS[i].name)) return &PRESETS[i];
    return NULL;
}

const char *ga_preset_names(void) {
    return "tiny, small, qwen3-0.6b, paper-1.7b, qwen3.5-0.8b, qwen3.5-9b or qwen3-next-80b-a3b";
}

int ga_variant_parse(const char *name, ga_gate_mode *out) {
    static const ga_gate_mode all[] = {GA_GATE_NONE, GA_GATE_HEADWISE, GA_GATE_ELEMENTWISE};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (!strcmp(name, ga_gate_mode_name(all[i]))) return *out = all[i], 0;
    return -1;
}
