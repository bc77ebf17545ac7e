/*
 * The model shapes the tools know by name and the attention-variant names, written once:
 * `gattn write-model --preset`, `gattn bench` (its default shape) and bench/bench_cuda_model.c
 * all read this table. Depends on the public API only (no CLI printing), so a bench program
 * can compile it in.
 */
#ifndef GATTN_CLI_PRESETS_H
#define GATTN_CLI_PRESETS_H

#include "gattn/gattn.h"

typedef struct ga_preset {
    const char *name;  /* "tiny", "qwen3-0.6b", "paper-1.7b" */
    const char *about; /* one line for --help */
    ga_config shape;   /* Qwen3: gate GA_GATE_NONE, set the variant separately; hybrids (arch
                        * not GA_ARCH_QWEN3): the full hybrid config, gate elementwise */
    ga_dtype dtype;    /* the dtype its weights are written in by default */
} ga_preset;

/* The preset called `name` (or one of its short names: "0.6b", "1.7b"), or NULL. */
const ga_preset *ga_preset_find(const char *name);
/* "tiny, small, qwen3-0.6b, ...": the names for an error message or --help. */
const char *ga_preset_names(void);

/* "baseline" | "headwise" | "elementwise" -> *out; 0, or -1 for another name. */
int ga_variant_parse(const char *name, ga_gate_mode *out);
#define GA_VARIANT_NAMES "baseline, headwise or elementwise"

#endif
