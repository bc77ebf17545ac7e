/*
 * The model: its config and its weights bound by name, dtype and shape to views in a store.
 * Backends read the views and convert them to their compute type when they are created.
 *
 * Shapes follow the Hugging Face checkpoint layout (row-major, out x in for Linear):
 *   q_rows = n_heads*head_dim (+ n_heads headwise | + n_heads*head_dim elementwise)
 *   q_proj rows are grouped per KV head j: the G*head_dim query rows of heads jG..jG+G-1,
 *   then that group's gate rows (G headwise, G*head_dim elementwise, head-major).
 */
#ifndef GATTN_CORE_MODEL_H
#define GATTN_CORE_MODEL_H

#include "safetensors.h"

typedef struct ga_layer_w {
    const ga_tensor *input_norm; /* (hidden) */
    const ga_tensor *q_proj;     /* (q_rows, hidden) */
    const ga_tensor *q_bias;     /* (q_rows) or NULL */
    const ga_tensor *k_proj;     /* (n_kv*head_dim, hidden) */
    const ga_tensor *k_bias;     /* (n_kv*head_dim) or NULL */
    const ga_tensor *v_proj;     /* (n_kv*head_dim, hidden) */
    const ga_tensor *v_bias;     /* (n_kv*head_dim) or NULL */
    const ga_tensor *o_proj;     /* (hidden, n_heads*head_dim) */
    const ga_tensor *o_bias;     /* (hidden) or NULL */
    const ga_tensor *q_norm;     /* (head_dim) or NULL without qk norm */
    const ga_tensor *k_norm;     /* (head_dim) or NULL without qk norm */
    const ga_tensor *post_norm;  /* (hidden) post_attention_layernorm */
    const ga_tensor *gate_proj;  /* (intermediate, hidden) */
    const ga_tensor *up_proj;    /* (intermediate, hidden) */
    const ga_tensor *down_proj;  /* (hidden, intermediate) */
} ga_layer_w;

/* A hybrid layer's tensors (Qwen3-Next / Qwen3.5 / Qwen3.6, issue 15), bound by
 * src/core/model_hybrid.c; the fields a layer's kind does not use stay NULL. Shapes there. */
typedef struct ga_hyb_layer_t {
    const ga_tensor *input_norm, *post_norm;
    const ga_tensor *q, *k, *v, *o, *q_norm, *k_norm;               /* full attention */
    const ga_tensor *in_qkv, *in_z, *in_b, *in_a, *in_qkvz, *in_ba; /* DeltaNet projections */
    const ga_tensor *conv, *dt_bias, *A_log, *norm, *out;           /* DeltaNet */
    const ga_tensor *gate, *up, *down;                              /* dense SwiGLU */
    const ga_tensor *router, *sh_gate, *sh_up, *sh_down, *sh_scale; /* MoE */
    const ga_tensor **experts;               /* per-expert layout: (num_experts, 3) g/u/d */
    const ga_tensor *exp_gate_up, *exp_down; /* packed layout: (E, 2I, H), (E, H, I) */
} ga_hyb_layer_t;

struct ga_model {
    ga_config cfg;
    char *dir;  /* NULL for in-memory models */
    char *name; /* folder name or "random" */
    ga_store *store;
    const ga_tensor *embed;        /* (vocab, hidden) */
    const ga_tensor *final_norm;   /* (hidden) */
    const ga_tensor *lm_head;      /* (vocab, hidden); == embed when tied */
    ga_layer_w *layers;            /* n_layers */
    ga_hyb_layer_t *hyb;           /* n_layers, hybrid configs only (layers is NULL then) */
    const ga_tensor **hyb_experts; /* storage behind hyb[l].experts */
};

/* Checks that store holds `name` with shape (ndim, shape); the error names the tensor, the
 * file (or `where` when missing) and expected-versus-found. */
const ga_tensor *ga_model_expect(const ga_store *store, const char *where, const char *name,
                                 int ndim, const int64_t *shape, ga_err *err, ga_status *st);

/* ga_model_load without the binding: config and store only (gattn info describes a hybrid
 * folder and then reports what ga_model_bind says of its weights). */
ga_status ga_model_open_unbound(const char *dir, ga_model **out, ga_err *err);

/* Binds all weights of cfg in store to m (m->cfg must be set); errors name the tensor and
 * expected-versus-found dtype/shape. */
ga_status ga_model_bind(ga_model *m, ga_err *err);

/* Names every tensor the config requires, in checkpoint order; calls fn for each with its
 * expected shape. Used by binding, the random writer and in-memory models alike. */
typedef ga_status (*ga_tensor_visit_fn)(void *ctx, const char *name, int ndim, const int64_t *shape,
                                        ga_err *err);
ga_status ga_model_visit_tensors(const ga_config *cfg, ga_tensor_visit_fn fn, void *ctx,
                                 ga_err *err);

/* Hybrid configs (model_hybrid.c): the tensor list (text weights only; model.visual.* and
 * mtp.* are not required) and binding into m->hyb. Experts are found per expert
 * (mlp.experts.N.gate_proj.weight, what the released folders hold) or packed
 * (mlp.experts.gate_up_proj (E, 2I, H) + mlp.experts.down_proj (E, H, I), transformers 5.x's
 * in-memory layout), whichever the folder has; the list and the random writer use per-expert. */
ga_status ga_model_hyb_visit(const ga_config *c, ga_tensor_visit_fn fn, void *ctx, ga_err *err);
ga_status ga_model_hyb_bind(ga_model *m, ga_err *err);
/* "model.language_model." for the vision-language folders, else "model.". */
const char *ga_model_hyb_prefix(const ga_config *c);

/* A memory store holding every tensor cfg requires, filled with seeded random values
 * (projections uniform with standard deviation std, norm weights near 1, small biases). */
ga_status ga_model_random_store(const ga_config *cfg, uint64_t seed, ga_dtype dtype, float std,
                                ga_store **out, ga_err *err);

/* config.json text for cfg (malloc'd), as the published checkpoints write it. */
char *ga_config_to_json(const ga_config *cfg);

#endif
