/* The named model shapes and the variant names (presets.h). */
#include <string.h>

#include "presets.h"

/* Fields every preset shares: Qwen3's norm eps, RoPE theta, qk-norm, tied embeddings. */
#define QWEN3_COMMON                                                                               \
    .rms_norm_eps = 1e-6f, .rope_theta = 1000000.0, .tie_word_embeddings = true,                   \
    .use_qk_norm = true, .bos_token_id = -1

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
    return "tiny, small, qwen3-0.6b or paper-1.7b";
}

int ga_variant_parse(const char *name, ga_gate_mode *out) {
    static const ga_gate_mode all[] = {GA_GATE_NONE, GA_GATE_HEADWISE, GA_GATE_ELEMENTWISE};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (!strcmp(name, ga_gate_mode_name(all[i]))) return *out = all[i], 0;
    return -1;
}
