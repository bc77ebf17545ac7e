/*
 * The hybrid presets (src/cli/presets.c) against the published sizes of the models they name
 * (issue 15): each preset's config goes through config.json and back (ga_config_to_json, then
 * the parser, as write-model does), must parse as its family, and its parameter count (text
 * model; vision and mtp excluded) must land on the published figure: Qwen3-Next-80B-A3B 80B
 * total and 3B active per token without the embedding tables (the name says both), Qwen3.5-9B 9B,
 * Qwen3.5-0.8B 0.8B (each counted with its vision tower in the name, so the text model is somewhat
 * below). A wrong head count, width or expert count moves these by far more than the ranges allow.
 */
#include "cli/presets.h"
#include "core/config_internal.h"
#include "core/model.h"
#include "testutil.h"

static void check(const char *name, ga_arch arch, double lo_b, double hi_b, double act_lo_b,
                  double act_hi_b) {
    const ga_preset *p = ga_preset_find(name);
    CHECK_MSG(p != NULL, "no preset %s", name);
    if (!p) return;
    char *json = ga_config_to_json(&p->shape);
    CHECK(json != NULL);
    if (!json) return;
    ga_config c;
    ga_err e = {{0}};
    CHECK_OK(ga_config_parse(json, strlen(json), name, &c, &e), &e);
    free(json);
    CHECK_MSG(c.arch == arch && c.gate == GA_GATE_ELEMENTWISE && c.norm_zero_centred,
              "%s: parsed as %s", name, ga_arch_name(c.arch));
    CHECK_MSG(c.hybrid.n_linear_layers * 4 == c.n_layers * 3 &&
                  c.hybrid.full_attention_interval == 4,
              "%s: %d of %d layers linear", name, c.hybrid.n_linear_layers, c.n_layers);
    CHECK_MSG(c.hybrid.rotary_dim == 64, "%s: rotary_dim %d", name, c.hybrid.rotary_dim);
    int64_t active = 0, total = ga_cfg_hybrid_params(&c, &active);
    /* "A3B" counts the layers a token runs through, not the embedding and LM head tables */
    int64_t emb = (int64_t)c.vocab_size * c.hidden_size * (c.tie_word_embeddings ? 1 : 2);
    double tb = total / 1e9, ab = (active - emb) / 1e9;
    CHECK_MSG(tb >= lo_b && tb <= hi_b, "%s: %.3f B parameters, want %.2f..%.2f", name, tb, lo_b,
              hi_b);
    CHECK_MSG(ab >= act_lo_b && ab <= act_hi_b, "%s: %.3f B active, want %.2f..%.2f", name, ab,
              act_lo_b, act_hi_b);
    CHECK(total == ga_config_param_count(&c));
}

int main(void) {
    check("qwen3-next-80b-a3b", GA_ARCH_QWEN3_NEXT, 78.0, 82.0, 2.8, 3.4);
    check("qwen3.5-9b", GA_ARCH_QWEN3_5, 8.0, 9.5, 0.0, 9.5);
    check("qwen3.5-0.8b", GA_ARCH_QWEN3_5, 0.6, 0.9, 0.0, 0.9);
    return ga_test_finish();
}
