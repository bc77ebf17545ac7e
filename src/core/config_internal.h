/*
 * What config.c and config_hybrid.c share: the field readers (type-checked, bounded, errors
 * naming the file and the field) and the hybrid families' part of the parse.
 */
#ifndef GATTN_CORE_CONFIG_INTERNAL_H
#define GATTN_CORE_CONFIG_INTERNAL_H

#include <cjson/cJSON.h>

#include "gattn/gattn.h"

/* Upper bounds on sizes: far above any published model, low enough that every product we
 * form (rows * cols * bytes, layers * ...) stays below 2^62. */
#define MAX_VOCAB (1 << 22)
#define MAX_HIDDEN (1 << 16)
#define MAX_INTER (1 << 18)
#define MAX_LAYERS GA_MAX_LAYERS
#define MAX_HEADS 1024
#define MAX_HEAD_DIM 1024
#define MAX_POSITIONS (1 << 24)
#define MAX_EXPERTS 4096

typedef struct cfg_ctx {
    const cJSON *root; /* the object fields are read from (text_config for a VL wrapper) */
    const char *path;  /* config.json, for messages */
    ga_err *err;
} cfg_ctx;

/* An integer field of c->root in [lo, hi]; absent or null -> def (or an error if required). */
ga_status ga_cfg_int(cfg_ctx *c, const char *key, bool required, long def, long lo, long hi,
                     int *out);
/* A number field of obj in (lo, hi]; absent or null -> def. */
ga_status ga_cfg_num(cfg_ctx *c, const cJSON *obj, const char *key, double def, double lo,
                     double hi, double *out);
/* A boolean field of c->root; absent or null -> def. */
ga_status ga_cfg_bool(cfg_ctx *c, const char *key, bool def, bool *out);

/* model_type of the top-level object into *arch and, for the vision-language wrappers
 * (qwen3_5, qwen3_5_moe), the nested text_config into *text (else *text = top). */
ga_status ga_cfg_arch(cfg_ctx *c, ga_arch *arch, const cJSON **text);

/* The hybrid fields (layer pattern, Gated DeltaNet shapes, partial/multimodal RoPE, MoE) of
 * c->root into g->hybrid; g's common fields (n_layers, head_dim, ...) are already parsed. */
ga_status ga_cfg_hybrid(cfg_ctx *c, ga_config *g);

/* Parameter count of a hybrid config (the text model; mtp.* and model.visual.* excluded). */
int64_t ga_cfg_hybrid_params(const ga_config *c, int64_t *active);

#endif
