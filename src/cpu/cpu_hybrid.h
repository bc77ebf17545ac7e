/*
 * The CPU reference forward of the hybrid Qwen families (issue 15): Qwen3-Next, Qwen3.5 and
 * Qwen3.6, dense and MoE. A standalone module: weights come in as plain fp32 arrays (the
 * binding by tensor name is the next step), state lives in a ga_hyb_state, and the math follows
 * transformers 5.17 models/qwen3_next/modeling_qwen3_next.py and models/qwen3_5 (the function
 * named beside each op in cpu_hybrid.c). Sessions reach it through the hybrid CPU backend
 * (cpu_hybrid_backend.c), which feeds it the tensors src/core/model_hybrid.c binds.
 *
 * One sequence, processed token by token inside each layer (the recurrent form of the Gated
 * DeltaNet), so a prefill of T tokens followed by decodes gives the same numbers as one prefill
 * of all of them: every token sees exactly the state its predecessors left.
 */
#ifndef GATTN_CPU_HYBRID_H
#define GATTN_CPU_HYBRID_H

#include <stddef.h>
#include <stdint.h>

#include "core/capture.h"
#include "gattn/gattn.h"

/* Full-attention layer (Qwen3NextAttention). No biases (attention_bias is false in every
 * released hybrid; a config asking for them is refused by ga_hyb_check). */
typedef struct ga_hyb_attn_w {
    const float *q;      /* (n_heads * 2 * head_dim, hidden): per head [query | gate] rows */
    const float *k, *v;  /* (n_kv_heads * head_dim, hidden) */
    const float *q_norm; /* (head_dim) zero-centred */
    const float *k_norm; /* (head_dim) zero-centred */
    const float *o;      /* (hidden, n_heads * head_dim) */
} ga_hyb_attn_w;

/* Gated DeltaNet layer (Qwen3NextGatedDeltaNet / Qwen3_5GatedDeltaNet). Exactly one of the two
 * projection sets is given: Qwen3.5's split one (in_qkv != NULL) or Qwen3-Next's fused,
 * per-key-head-grouped one (in_qkvz != NULL). With Hk key heads, Hv value heads, r = Hv / Hk,
 * key_dim = Hk * d_k, value_dim = Hv * d_v, conv_dim = 2 * key_dim + value_dim: */
typedef struct ga_hyb_gdn_w {
    const float *in_qkv;  /* (conv_dim, hidden): rows [q | k | v], heads contiguous */
    const float *in_z;    /* (value_dim, hidden) */
    const float *in_b;    /* (Hv, hidden) */
    const float *in_a;    /* (Hv, hidden) */
    const float *in_qkvz; /* (Hk * (2 d_k + 2 r d_v), hidden): per key head [q | k | v_r | z_r] */
    const float *in_ba;   /* (Hk * 2 r, hidden): per key head [b_r | a_r] */
    const float *conv;    /* (conv_dim, kernel): depthwise, the last tap on the newest input */
    const float *dt_bias; /* (Hv) */
    const float *A_log;   /* (Hv) */
    const float *norm;    /* (d_v) the gated norm's weight, plain (not zero-centred) */
    const float *out;     /* (hidden, value_dim) */
} ga_hyb_gdn_w;

typedef struct ga_hyb_mlp_w {
    const float *gate, *up; /* (inter, hidden) */
    const float *down;      /* (hidden, inter) */
} ga_hyb_mlp_w;

typedef struct ga_hyb_moe_w {
    const float *router;         /* (num_experts, hidden) */
    const ga_hyb_mlp_w *experts; /* (num_experts), moe_intermediate_size wide */
    ga_hyb_mlp_w shared;         /* shared_expert_intermediate_size wide (unused when 0) */
    const float *shared_gate;    /* (hidden): one row, sigmoid scales the shared expert */
} ga_hyb_moe_w;

typedef struct ga_hyb_layer_w {
    const float *input_norm; /* (hidden) zero-centred */
    const float *post_norm;  /* (hidden) zero-centred */
    ga_hyb_attn_w attn;      /* full-attention layers */
    ga_hyb_gdn_w gdn;        /* linear-attention layers */
    ga_hyb_mlp_w mlp;        /* dense layers, intermediate_size wide */
    ga_hyb_moe_w moe;        /* MoE layers (hybrid.layer_is_moe) */
} ga_hyb_layer_w;

typedef struct ga_hyb_weights {
    const float *embed;          /* (vocab, hidden) */
    const ga_hyb_layer_w *layer; /* (n_layers) */
    const float *final_norm;     /* (hidden) zero-centred */
    const float *lm_head;        /* (vocab, hidden); NULL: tied to embed */
} ga_hyb_weights;

/* Per-sequence state: for each linear layer the conv state (the last kernel-1 inputs of every
 * conv channel) and the recurrent state (Hv x d_k x d_v), a fixed size whatever the length;
 * for each full-attention layer the K and V of every position so far, either in the state
 * (ga_hyb_state_create: max_seq positions) or in blocks of a paged cache that the state reads
 * through the sequence's block table (ga_hyb_state_create_paged, then ga_hyb_state_page). */
typedef struct ga_hyb_state ga_hyb_state;

/* GA_OK when the module can run c (a hybrid config with the shapes it supports). */
ga_status ga_hyb_check(const ga_config *c, ga_err *err);
ga_status ga_hyb_state_create(const ga_config *c, int max_seq, ga_hyb_state **out, ga_err *err);
/* The fixed part only (conv + recurrent states); the K/V of its full-attention layers live in
 * blocks given by ga_hyb_state_page before the first forward. */
ga_status ga_hyb_state_create_paged(const ga_config *c, int max_seq, ga_hyb_state **out,
                                    ga_err *err);
/* Points a paged state (no-op for a slot state) at its blocks: K and V pools of blocks of
 * ga_hyb_block_floats(c, block_size) floats each, block b at b times that; a block holds, per
 * full-attention layer in layer order, block_size positions of (n_kv_heads, head_dim). table:
 * the sequence's block table, an entry for every block of the positions the next forwards
 * touch (position p in block table[p / block_size]). */
void ga_hyb_state_page(ga_hyb_state *s, float *k_pool, float *v_pool, const int32_t *table,
                       int block_size);
/* Full-attention layers of c (the layers that keep K/V). */
int ga_hyb_full_layers(const ga_config *c);
/* Floats of one block of a paged cache (K or V): full layers * block_size * n_kv * head_dim. */
size_t ga_hyb_block_floats(const ga_config *c, int block_size);
/* Bytes of one sequence's fixed state: conv + recurrent state of every linear layer. */
size_t ga_hyb_state_fixed_bytes(const ga_config *c);
void ga_hyb_state_free(ga_hyb_state *s);
/* Back to an empty sequence (zero states, position 0). */
void ga_hyb_state_reset(ga_hyb_state *s);
int ga_hyb_state_pos(const ga_hyb_state *s);

/* Runs T tokens at positions pos .. pos+T-1 of the sequence s holds and advances it. logits:
 * (T, vocab). Tokens are checked against vocab, T against the room left. */
ga_status ga_hyb_forward(const ga_config *c, const ga_hyb_weights *w, ga_hyb_state *s,
                         const int32_t *tokens, int T, float *logits, ga_err *err);

/* ga_hyb_forward with an attention capture (NULL: none) for a prefill from position 0, cap
 * prepared by ga_capture_prepare for c->n_layers layers and T tokens: every full-attention
 * layer records its pooled map (for the layers cap->layers selects) from the probabilities of
 * its own softmax, its first-token share and the statistics of its elementwise sigmoid gates
 * (n_heads * head_dim values a token; below GA_HYB_GATE_LOW counts as closed). A linear
 * (Gated DeltaNet) layer has no attention map: its map is freed to NULL and its metrics stay
 * NaN. */
#define GA_HYB_GATE_LOW 0.1
ga_status ga_hyb_forward_capture(const ga_config *c, const ga_hyb_weights *w, ga_hyb_state *s,
                                 const int32_t *tokens, int T, float *logits, ga_attn_capture *cap,
                                 ga_err *err);

/* The ops, exposed for their tests. */
/* out = x * rsqrt(mean(x^2) + eps) * (1 + w) (Qwen3NextRMSNorm); out may alias x. */
void ga_hyb_rmsnorm_zc(float *out, const float *x, const float *w, int n, float eps);
/* out = w * (o * rsqrt(mean(o^2) + eps)) * silu(z) (Qwen3NextRMSNormGated); out may alias o. */
void ga_hyb_gated_rmsnorm(float *out, const float *o, const float *z, const float *w, int n,
                          float eps);
/* One token of the depthwise causal conv1d + SiLU over C channels (torch_causal_conv1d_update):
 * x (C) in, out (C); state (C, kernel-1) oldest first, shifted to take x. */
void ga_hyb_conv_step(float *out, const float *x, float *state, const float *w, int C, int kernel);
/* One token of the gated delta rule for one value head (torch_recurrent_gated_delta_rule),
 * q already scaled: S (d_k, d_v) decays by exp(g), then S += k (x) beta (v - k^T S); o = q^T S. */
void ga_hyb_delta_step(float *S, float *o, const float *q, const float *k, const float *v, float g,
                       float beta, int dk, int dv);
/* The MoE block of one token (Qwen3NextSparseMoeBlock): out (hidden) from x (hidden), top-k
 * at most GA_HYB_MAX_TOPK; scratch: ga_hyb_moe_scratch(c) floats. */
#define GA_HYB_MAX_TOPK 64
#define GA_HYB_MAX_HEAD_DIM 512 /* full-attention head_dim */
#define GA_HYB_MAX_HEADS 256    /* DeltaNet value heads */
size_t ga_hyb_moe_scratch(const ga_config *c);
void ga_hyb_moe(const ga_config *c, const ga_hyb_moe_w *w, const float *x, float *out,
                float *scratch);

/* The CPU backend for a hybrid model (cpu_hybrid_backend.c): weights converted to fp32, one
 * ga_hyb_state per sequence; the full-attention K/V in a slot of max_context per sequence, or
 * (session options kv_blocks / kv_memory) in the blocks of a paged cache; attention capture
 * through ga_hyb_forward_capture. */
typedef struct ga_backend ga_backend;
ga_status ga_cpu_hybrid_backend_create(const ga_model *m, const ga_session_opts *opts,
                                       int max_context, int max_batch, ga_backend **out,
                                       ga_err *err);

#endif
