/* The hybrid families' config.json (issue 15): the released shapes of Qwen3-Next-80B-A3B,
 * Qwen3.5-27B (dense) and Qwen3.5-35B-A3B (MoE) from tests/data/hybrid/, the defaults
 * transformers gives absent fields, every malformed case, and the refusal to run them. The
 * parameter counts are checked against the sizes the model names state (80B, 27B, 35B-A3B),
 * which share nothing with the count's code. */
#include "testutil.h"

#include "core/model.h"

static void load_data(const char *name, ga_config *c) {
    const char *dir = getenv("GA_TEST_DATA");
    char path[1024];
    snprintf(path, sizeof path, "%s/hybrid/%s", dir ? dir : "tests/data", name);
    ga_err e = {{0}};
    CHECK_OK(ga_config_load(path, c, &e), &e);
}

/* 3 linear : 1 full over n layers */
static void check_pattern(const ga_config *c, int n) {
    CHECK(c->n_layers == n && c->hybrid.n_linear_layers == n / 4 * 3);
    CHECK(c->hybrid.full_attention_interval == 4);
    for (int l = 0; l < n; l++)
        CHECK_MSG(c->hybrid.layer_is_linear[l] == (l % 4 != 3), "layer %d", l);
}

#define NEXT                                                                                       \
    "\"model_type\": \"qwen3_next\", \"vocab_size\": 64, \"hidden_size\": 32, "                    \
    "\"num_hidden_layers\": 4, \"num_attention_heads\": 4, \"num_key_value_heads\": 2, "           \
    "\"intermediate_size\": 48"

int main(void) {
    ga_config c;
    ga_err e = {{0}};

    /* Qwen3-Next-80B-A3B: top-level, MoE on every layer, partial_rotary_factor at the top */
    load_data("qwen3_next_80b_a3b.json", &c);
    CHECK(c.arch == GA_ARCH_QWEN3_NEXT && !c.hybrid.vl_wrapper && c.norm_zero_centred);
    check_pattern(&c, 48);
    CHECK(c.head_dim == 256 && c.n_heads == 16 && c.n_kv_heads == 2 && c.use_qk_norm);
    CHECK(c.gate == GA_GATE_ELEMENTWISE && ga_config_q_rows(&c) == 2 * 16 * 256);
    CHECK(c.hybrid.rotary_dim == 64 && c.hybrid.partial_rotary_factor == 0.25);
    CHECK(c.hybrid.linear_num_key_heads == 16 && c.hybrid.linear_num_value_heads == 32 &&
          c.hybrid.linear_key_head_dim == 128 && c.hybrid.linear_value_head_dim == 128 &&
          c.hybrid.linear_conv_kernel_dim == 4);
    CHECK(c.hybrid.moe && c.hybrid.num_experts == 512 && c.hybrid.num_experts_per_tok == 10 &&
          c.hybrid.moe_intermediate_size == 512 &&
          c.hybrid.shared_expert_intermediate_size == 512 && c.hybrid.norm_topk_prob &&
          c.hybrid.n_moe_layers == 48);
    CHECK(c.rope_theta == 1e7 && c.max_position_embeddings == 262144 && c.n_eos == 1 &&
          c.eos_token_ids[0] == 151645 && c.bos_token_id == 151643);
    int64_t p = ga_config_param_count(&c), a = ga_config_active_param_count(&c);
    CHECK_MSG(p > 79e9 && p < 82e9, "Qwen3-Next-80B-A3B: %lld parameters", (long long)p);
    CHECK_MSG(a > 2.7e9 && a < 4e9, "Qwen3-Next-80B-A3B: %lld active", (long long)a);
    /* runnable (on the CPU backend; the session refuses CUDA for hybrids) */
    CHECK(ga_config_unsupported(&c) == NULL && ga_config_check_runnable(&c, "dir", &e) == GA_OK);

    /* Qwen3.5-27B: the vision-language wrapper, text_config, rope_parameters with mrope */
    load_data("qwen3_5_27b.json", &c);
    CHECK(c.arch == GA_ARCH_QWEN3_5 && c.hybrid.vl_wrapper && !c.hybrid.moe);
    check_pattern(&c, 64);
    CHECK(c.hidden_size == 5120 && c.intermediate_size == 17408 && c.n_heads == 24 &&
          c.n_kv_heads == 4 && c.head_dim == 256 && c.hybrid.linear_num_value_heads == 48);
    CHECK(c.hybrid.rotary_dim == 64 && c.hybrid.n_mrope_section == 3 &&
          c.hybrid.mrope_section[0] == 11 && c.hybrid.mrope_section[2] == 10 &&
          c.hybrid.mrope_interleaved && c.rope_theta == 1e7);
    CHECK(c.hybrid.mtp_num_hidden_layers == 1 && c.torch_dtype == GA_BF16 &&
          c.eos_token_ids[0] == 248044 && !c.tie_word_embeddings);
    p = ga_config_param_count(&c);
    CHECK_MSG(p > 26e9 && p < 28e9, "Qwen3.5-27B: %lld parameters", (long long)p);
    CHECK(ga_config_active_param_count(&c) == p);

    /* Qwen3.5-35B-A3B: MoE wrapper, no intermediate_size, every layer MoE */
    load_data("qwen3_5_35b_a3b.json", &c);
    CHECK(c.arch == GA_ARCH_QWEN3_5_MOE && c.hybrid.vl_wrapper && c.hybrid.moe);
    check_pattern(&c, 40);
    CHECK(c.intermediate_size == 0 && c.hybrid.n_moe_layers == 40 && c.hybrid.num_experts == 256 &&
          c.hybrid.num_experts_per_tok == 8);
    p = ga_config_param_count(&c), a = ga_config_active_param_count(&c);
    /* 35B with the vision tower (~0.4B) that the text count leaves out */
    CHECK_MSG(p > 33.5e9 && p < 36e9, "Qwen3.5-35B-A3B: %lld parameters", (long long)p);
    CHECK_MSG(a > 2.5e9 && a < 4e9, "Qwen3.5-35B-A3B: %lld active", (long long)a);

    /* defaults as transformers has them: interval 4, DeltaNet 16/32 x 128, conv 4, head_dim
     * 256, partial 0.25, 512 experts top 10 (qwen3_next) */
    CHECK_OK(ga_test_config_parse("{" NEXT "}", &c, &e), &e);
    CHECK(c.head_dim == 256 && c.hybrid.rotary_dim == 64 && c.hybrid.n_linear_layers == 3 &&
          !c.hybrid.layer_is_linear[3] && c.hybrid.linear_num_key_heads == 16 &&
          c.hybrid.linear_num_value_heads == 32 && c.hybrid.num_experts == 512 &&
          c.hybrid.num_experts_per_tok == 10 && c.hybrid.decoder_sparse_step == 1);
    /* both places: rope_parameters wins, as transformers 5.x's rotary embedding reads it (a
     * Qwen3_5TextConfig saves the class default 0.25 at the top beside its real value) */
    CHECK_OK(ga_test_config_parse("{" NEXT
                                  ", \"partial_rotary_factor\": 0.25, \"rope_parameters\": "
                                  "{\"partial_rotary_factor\": 0.5}}",
                                  &c, &e),
             &e);
    CHECK(c.hybrid.rotary_dim == 128 && c.hybrid.partial_rotary_factor == 0.5);
    /* an explicit irregular pattern, decoder_sparse_step and mlp_only_layers */
    CHECK_OK(ga_test_config_parse(
                 "{" NEXT ", \"layer_types\": [\"full_attention\", \"linear_attention\", "
                 "\"linear_attention\", \"full_attention\"], \"decoder_sparse_step\": 2, "
                 "\"mlp_only_layers\": [3], \"num_experts\": 8, \"num_experts_per_tok\": 2}",
                 &c, &e),
             &e);
    CHECK(c.hybrid.n_linear_layers == 2 && c.hybrid.full_attention_interval == 0);
    CHECK(!c.hybrid.layer_is_moe[0] && c.hybrid.layer_is_moe[1] && !c.hybrid.layer_is_moe[2] &&
          !c.hybrid.layer_is_moe[3] && c.hybrid.n_moe_layers == 1);
    /* no DeltaNet layer at all still runs (full attention + MoE) */
    CHECK_OK(ga_test_config_parse("{" NEXT ", \"full_attention_interval\": 1}", &c, &e), &e);
    CHECK(c.hybrid.n_linear_layers == 0 && ga_config_unsupported(&c) == NULL);
    /* qwen3_5_text at the top level; attn_output_gate false drops the gate */
    CHECK_OK(ga_test_config_parse(
                 "{\"model_type\": \"qwen3_5_text\", \"vocab_size\": 64, \"hidden_size\": 32, "
                 "\"intermediate_size\": 48, \"num_hidden_layers\": 4, \"num_attention_heads\": 2, "
                 "\"head_dim\": 16, \"attn_output_gate\": false, \"full_attention_interval\": 1}",
                 &c, &e),
             &e);
    CHECK(c.arch == GA_ARCH_QWEN3_5 && !c.hybrid.vl_wrapper && c.gate == GA_GATE_NONE &&
          c.hybrid.rotary_dim == 4);
    /* the CPU reference always applies the gate: refused in one line naming the field */
    CHECK(ga_config_check_runnable(&c, "dir", &e) == GA_ERR_UNSUPPORTED);
    CHECK_MSG(!strcmp(e.msg, "dir: qwen3_5: full attention without the output gate "
                             "(attn_output_gate false) is not supported yet: issue 15"),
              "%s", e.msg);
    /* a Qwen3 config is untouched: no model_type or "qwen3" */
    CHECK_OK(ga_test_config_parse(
                 "{\"model_type\": \"qwen3\", \"vocab_size\": 64, \"hidden_size\": 32, "
                 "\"intermediate_size\": 48, \"num_hidden_layers\": 2, \"num_attention_heads\": 4}",
                 &c, &e),
             &e);
    CHECK(c.arch == GA_ARCH_QWEN3 && c.head_dim == 8 && !c.norm_zero_centred &&
          ga_config_unsupported(&c) == NULL && ga_config_check_runnable(&c, "x", &e) == GA_OK);

    /* every error names the file and the field */
    ga_test_config_expect_fail("{\"model_type\": \"llama\", \"vocab_size\": 4}", GA_ERR_UNSUPPORTED,
                               "model_type \"llama\" is not supported");
    ga_test_config_expect_fail("{\"model_type\": 3}", GA_ERR_FORMAT,
                               "\"model_type\" must be a string");
    ga_test_config_expect_fail("{\"model_type\": \"qwen3_5\"}", GA_ERR_FORMAT,
                               "missing required field \"text_config\"");
    ga_test_config_expect_fail("{\"model_type\": \"qwen3_5\", \"text_config\": []}", GA_ERR_FORMAT,
                               "\"text_config\" must be an object");
    ga_test_config_expect_fail(
        "{\"model_type\": \"qwen3_5\", \"text_config\": {\"model_type\": \"qwen3_next\"}}",
        GA_ERR_FORMAT, "text_config.model_type \"qwen3_next\" does not belong");
    ga_test_config_expect_fail(
        "{\"model_type\": \"qwen3_5\", \"text_config\": {\"vocab_size\": 64}}", GA_ERR_FORMAT,
        "missing required field \"hidden_size\"");
    ga_test_config_expect_fail(
        "{\"model_type\": \"qwen3_5_moe\", \"text_config\": {\"vocab_size\": 64, "
        "\"hidden_size\": 32, \"num_hidden_layers\": 4}}",
        GA_ERR_FORMAT, "missing required field \"num_attention_heads\"");
    ga_test_config_expect_fail("{" NEXT ", \"layer_types\": [\"linear_attention\"]}", GA_ERR_FORMAT,
                               "\"layer_types\" lists 1 layers, num_hidden_layers is 4");
    ga_test_config_expect_fail("{" NEXT ", \"layer_types\": \"linear_attention\"}", GA_ERR_FORMAT,
                               "\"layer_types\" must be a list");
    ga_test_config_expect_fail("{" NEXT
                               ", \"layer_types\": [\"linear_attention\", \"sliding_attention\", "
                               "\"linear_attention\", \"full_attention\"]}",
                               GA_ERR_FORMAT, "\"layer_types[1]\" must be");
    ga_test_config_expect_fail("{" NEXT
                               ", \"layer_types\": [\"linear_attention\", 1, \"a\", \"b\"]}",
                               GA_ERR_FORMAT, "\"layer_types[1]\" must be");
    ga_test_config_expect_fail("{" NEXT ", \"full_attention_interval\": 0}", GA_ERR_FORMAT,
                               "\"full_attention_interval\" = 0");
    ga_test_config_expect_fail(
        "{" NEXT ", \"linear_num_key_heads\": 3}", GA_ERR_FORMAT,
        "linear_num_value_heads 32 is not a multiple of linear_num_key_heads 3");
    ga_test_config_expect_fail("{" NEXT ", \"linear_key_head_dim\": 0}", GA_ERR_FORMAT,
                               "\"linear_key_head_dim\"");
    ga_test_config_expect_fail("{" NEXT ", \"linear_conv_kernel_dim\": \"4\"}", GA_ERR_FORMAT,
                               "\"linear_conv_kernel_dim\" must be an integer");
    ga_test_config_expect_fail("{" NEXT ", \"partial_rotary_factor\": 1.5}", GA_ERR_FORMAT,
                               "\"partial_rotary_factor\" must be a number");
    ga_test_config_expect_fail("{" NEXT ", \"head_dim\": 6, \"partial_rotary_factor\": 0.5}",
                               GA_ERR_FORMAT, "gives 3 rotary dimensions");
    ga_test_config_expect_fail("{" NEXT ", \"rope_parameters\": {\"mrope_section\": [11, 11, 11]}}",
                               GA_ERR_FORMAT, "\"rope_parameters.mrope_section\" sums to 33");
    ga_test_config_expect_fail("{" NEXT ", \"rope_parameters\": {\"mrope_section\": [11, -1, 22]}}",
                               GA_ERR_FORMAT, "\"rope_parameters.mrope_section[1]\"");
    ga_test_config_expect_fail("{" NEXT ", \"rope_parameters\": {\"mrope_section\": 32}}",
                               GA_ERR_FORMAT, "must be a list of 1 to 4 integers");
    ga_test_config_expect_fail("{" NEXT ", \"rope_parameters\": {\"mrope_interleaved\": 1}}",
                               GA_ERR_FORMAT,
                               "\"rope_parameters.mrope_interleaved\" must be true or false");
    ga_test_config_expect_fail("{" NEXT ", \"num_experts\": 4, \"num_experts_per_tok\": 5}",
                               GA_ERR_FORMAT, "num_experts_per_tok 5 is more than num_experts 4");
    ga_test_config_expect_fail("{" NEXT ", \"mlp_only_layers\": [4]}", GA_ERR_FORMAT,
                               "\"mlp_only_layers[0]\" must be a layer index in [0, 4)");
    ga_test_config_expect_fail("{" NEXT ", \"mlp_only_layers\": {}}", GA_ERR_FORMAT,
                               "\"mlp_only_layers\" must be a list");
    ga_test_config_expect_fail("{" NEXT ", \"norm_topk_prob\": 1}", GA_ERR_FORMAT,
                               "\"norm_topk_prob\" must be true or false");
    ga_test_config_expect_fail(
        "{\"model_type\": \"qwen3_next\", \"vocab_size\": 64, \"hidden_size\": 32, "
        "\"num_hidden_layers\": 4, \"num_attention_heads\": 4, \"mlp_only_layers\": [0]}",
        GA_ERR_FORMAT, "missing required field \"intermediate_size\" (1 layers");
    ga_test_config_expect_fail(
        "{\"model_type\": \"qwen3_5_text\", \"vocab_size\": 64, \"hidden_size\": 32, "
        "\"num_hidden_layers\": 4, \"num_attention_heads\": 4}",
        GA_ERR_FORMAT, "missing required field \"intermediate_size\"");
    return ga_test_finish();
}
