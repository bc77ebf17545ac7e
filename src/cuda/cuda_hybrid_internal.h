/*
 * Internals of the hybrid CUDA backend (issue 15), shared by its files:
 *   cuda_hybrid.c          lifetime: create (memory check, cuBLAS through an embedded ga_cuda,
 *                          weights, caches, scratch), free, paged_init
 *   cuda_hybrid_weights.c  the bound tensors (src/core/model_hybrid.c) onto the device
 *   cuda_hybrid_fwd.c      the layer stack: forward (prefill in chunks) and decode_batch
 *   cuda_hybrid_moe.c      the MoE block
 *   cuda_hybrid_capture.c  attention capture (viz) of the full-attention layers
 * It follows the CPU reference (src/cpu/cpu_hybrid.c) op for op; the Qwen3 CUDA backend
 * (cuda_backend.c, cuda_forward.c) is the model for the GEMMs, caches and attention launchers.
 *
 * Precision as the Qwen3 backend (cuda_internal.h): bf16 weights and GEMM inputs, fp32
 * accumulation, an fp32 residual stream. The decoder norms (input, post-attention, final) are
 * zero-centred, x * r * (1 + w): they go through ga_rmsnorm_residual with the weight stored as
 * fp32(1 + w) (one fp32 rounding of 1 + w, 6e-8 relative, far below the bf16 of the output).
 * DeltaNet states (conv and recurrent) are fp32, a fixed size per sequence slot.
 */
#ifndef GATTN_CUDA_HYBRID_INTERNAL_H
#define GATTN_CUDA_HYBRID_INTERNAL_H

#include "cuda_hybrid.h"
#include "cuda_internal.h"
#include "gdn.h"
#include "hybrid.h"

/* One layer's device weights; the fields of the other kinds stay NULL. */
typedef struct hyb_dlayer {
    float *input_norm, *post_norm; /* fp32 (H): 1 + w */
    /* full attention */
    void *w_qkv; /* bf16 (2*nh*hd + 2*nkv*hd, H): q_proj ([query | gate] per head) | k | v */
    void *w_o;   /* bf16 (H, nh*hd) */
    float *q_norm, *k_norm; /* fp32 (hd): raw (the prep kernel adds the 1) */
    int full_idx;           /* index among the full-attention layers (its K/V) */
    /* Gated DeltaNet */
    void *w_in;  /* bf16 (P, H): rows [q | k | v | z | b | a], heads contiguous; without
                    [b | a] when w_ba holds them */
    void *w_ba;  /* NULL, or bf16 (2*Hv, H) [b | a] when the folder stores them in another
                    dtype than the rest (released FP8 folders keep in_proj_b/a, in_proj_ba bf16):
                    then w_in's [q | k | v | z] can stay FP8 */
    void *w_out; /* bf16 (H, vd) */
    float *conv; /* fp32 (cd, K) */
    float *dt_bias, *A_log, *gnorm; /* fp32 (Hv), (Hv), (dv) */
    int lin_idx;                    /* index among the linear layers (its states) */
    /* MLP: dense */
    void *w_gu, *w_down; /* bf16 (2I, H) gate | up, (H, I) */
    /* MLP: MoE */
    void *w_router;            /* bf16 (E, H) */
    void *w_exp_gu;            /* bf16 (E, 2Ie, H): per expert gate rows | up rows */
    void *w_exp_down;          /* bf16 (E, H, Ie) */
    void *w_sh_gu, *w_sh_down; /* bf16 (2Is, H), (H, Is); NULL without a shared expert */
    void *w_sh_gate;           /* bf16 (1, H) */
    /* FP8 folders with the weights kept as FP8 (ga_session_opts.cuda_weights, issue 15 item
     * 4): when a matrix's f8_*.scale is set, its w_* above holds e4m3 codes (1 byte a weight)
     * and these its block scales and row table (one allocation, freed through scale; the
     * experts' tables have E * rows entries, expert e's rows at e * rows). The router and
     * shared_expert_gate stay bf16 (a few columns; released folders store them bf16). */
    ga_f8_scales f8_qkv, f8_o, f8_in, f8_out, f8_gu, f8_down;
    ga_f8_scales f8_exp_gu, f8_exp_down, f8_sh_gu, f8_sh_down;
} hyb_dlayer;

typedef struct ga_cuda_hyb {
    ga_backend base;
    /* The GEMM context (stream, cuBLAS, workspace, gemm_impl, device info) as the Qwen3
     * backend sets it up, so ga_cuda_gemm and ga_cuda_upload_matrix serve both backends; also
     * its decode graphs (graphs, n_kv_buckets: ga_cuda_drop_graphs serves both) and device
     * sampler buffers (d_streams, d_next, samp_scratch, h_streams, h_next). Its Qwen3 model
     * fields stay empty. */
    ga_cuda g;
    const ga_model *model;
    ga_config cfg;
    int max_context, max_batch;
    /* shapes */
    int H, V, nh, nkv, hd, rd, qkv_dim;        /* full attention */
    int Hk, Hv, dk, dv, kd, vd, cd, P, conv_k; /* DeltaNet: P the fused in-projection's rows */
    int E, K, Ie, Is;                          /* MoE */
    int n_full, n_lin;
    /* weights */
    void *embed, *lm_head;      /* bf16 (V, H); lm_head == embed when tied */
    float *final_norm;          /* fp32 (H): 1 + w */
    hyb_dlayer *L;              /* (n_layers) */
    float *rope_cos, *rope_sin; /* fp32 (max_context, rd/2) */
    /* K/V of the full-attention layers: one allocation, full layer f's K at kv + 2f *
     * kv_layer_elems, V at (2f + 1). Slots: (max_batch, nkv, max_context, hd) each; paged
     * (paged_init): pools (n_blocks, nkv, block_size, hd). */
    void *kv;
    size_t kv_layer_elems;
    bool paged;
    int block_size, n_blocks, max_blocks;
    const int32_t *const *tables; /* the session's block tables (host) */
    int *d_tab;                   /* (max_batch, max_blocks) device mirror of the rows in use */
    int32_t *h_tab;               /* pinned staging of d_tab */
    void *gk, *gv; /* paged prefill: one layer's K/V gathered (nkv, max_context, hd) */
    /* DeltaNet states, fp32: conv (n_lin, max_batch, cd, K-1), recurrent (n_lin, max_batch, Hv,
     * dk, dv); a sequence id is its slot. */
    float *conv_state, *rec_state;
    int *seq_pos; /* host (max_batch): tokens each sequence's state holds */
    /* scratch for `rows` tokens (a prefill chunk or a decode batch) */
    int rows;
    float *x, *delta; /* fp32 (rows, H) residual stream, a block's output */
    void *xn;         /* bf16 (rows, H) */
    void *big;        /* bf16 (rows, max(qkv_dim, P, 2I, 2Is)) a projection's output */
    void *q, *gate;   /* bf16 (rows, nh*hd) */
    void *attn;       /* bf16 (rows, max(nh*hd, vd)) attention / DeltaNet output */
    void *conv_out;   /* bf16 (rows, cd) */
    void *act;        /* bf16 (rows, max(I, Is)) */
    float *logits;    /* fp32 (rows, V) */
    float *lse;       /* fp32 (nh, rows): the prefill's log-sum-exp, for a capture */
    float *gdn_work;  /* the chunked prefill's workspace for `rows` tokens */
    size_t gdn_work_bytes;
    /* the chunked prefill's version (ga_gdn_delta_args.chunk_impl): 2, or 1 with
     * GA_GDN_CHUNK_IMPL=1 in the environment at create (an A/B switch for benchmarks) */
    int gdn_chunk_impl;
    int32_t *d_tokens;                      /* device (rows) */
    int *d_pos, *d_slot, *d_dest, *d_kvlen; /* device (rows) each, one allocation */
    int32_t *h_in;   /* pinned (5 * rows): tokens | positions | slots | dest | kv_lens */
    float *dec_work; /* decode attention's split partials, then its counters */
    unsigned *dec_counters;
    /* MoE scratch (rows * K routed entries) */
    float *r_logits;            /* fp32 (rows, E) */
    int *r_idx;                 /* (rows, K) */
    float *r_w;                 /* (rows, K) */
    int *r_off, *r_src, *r_pos; /* (E + 1), (rows*K), (rows*K) */
    int *h_off;                 /* pinned (E + 1) */
    void *e_x, *e_gu, *e_act;   /* bf16 (rows*K, H), (rows*K, 2Ie), (rows*K, Ie) */
    float *e_y, *sh_y, *sh_g;   /* fp32 (rows*K, H), (rows, H), (rows) */
} ga_cuda_hyb;

/* cuda_hybrid.c: the scratch for `rows` rows, replacing the current set; on failure the
 * previous size is restored, so the backend stays usable. */
ga_status ga_cuda_hyb_scratch_resize(ga_cuda_hyb *h, int rows, ga_err *err);

/* cuda_hybrid_capture.c: an attention capture of a prefill of n tokens from position 0, as
 * ga_hyb_forward_capture records it: begin (outputs prepared, metrics zeroed, the scratch grown
 * to hold all n rows: the probabilities need the whole prompt's q and lse), one call per
 * full-attention layer after its attention (k: the sequence's keys in the slot layout), end
 * (metrics back; a linear layer's map freed to NULL, its metrics NaN). */
ga_status ga_cuda_hyb_capture_begin(ga_cuda_hyb *h, ga_attn_capture *cap, int n, ga_err *err);
ga_status ga_cuda_hyb_capture_layer(ga_cuda_hyb *h, int l, int T, const void *k, int kv_stride,
                                    ga_attn_capture *cap, ga_err *err);
ga_status ga_cuda_hyb_capture_end(ga_cuda_hyb *h, ga_attn_capture *cap, int n, ga_err *err);

/* cuda_hybrid_weights.c: *bytes, the device bytes the weights will take with the FP8 decision of
 * h->g.keep_fp8 (FP8 matrices at a byte a weight plus their scales and row tables), before
 * anything is uploaded; *f8_tmp_elems the bf16 elements of the largest FP8 matrix one GEMM
 * dequantises (one expert's for the experts; 0 when none stays FP8). */
ga_status ga_cuda_hyb_weight_plan(ga_cuda_hyb *h, uint64_t *bytes, size_t *f8_tmp_elems,
                                  ga_err *err);
/* cuda_hybrid_weights.c: every weight onto the device (h->L allocated by the caller). */
ga_status ga_cuda_hyb_upload(ga_cuda_hyb *h, void (*progress)(void *, float), void *user,
                             ga_err *err);
void ga_cuda_hyb_free_weights(ga_cuda_hyb *h);

/* cuda_hybrid_fwd.c: the backend's forward, forward_multi, decode_batch and decode_sample
 * (backend.h); decode steps through graphs kept in g.graphs (g.n_kv_buckets buckets), device
 * sampling through g's sampler buffers. */
ga_status ga_cuda_hyb_forward(ga_backend *b, int seq, int pos0, const int32_t *tokens, int n,
                              bool all_positions, float *logits, ga_attn_capture *cap, ga_err *err);
ga_status ga_cuda_hyb_forward_multi(ga_backend *b, int ns, const int *seqs, const int *pos0,
                                    const int32_t *tokens, const int *off, bool all_positions,
                                    float *logits, ga_err *err);
ga_status ga_cuda_hyb_decode_batch(ga_backend *b, const int *seqs, const int *pos,
                                   const int32_t *tokens, int nb, float *logits, ga_err *err);
ga_status ga_cuda_hyb_decode_sample(ga_backend *b, const int *seqs, const int *pos,
                                    const int32_t *tokens, int nb, const ga_sampling *sp,
                                    const uint64_t *streams, int32_t *next, ga_err *err);

/* cuda_hybrid_moe.c: delta (rows, H) fp32 = the MoE block of layer l on xn (rows, H).
 * on_device: the expert products without a host round trip (a decode step, capturable). */
ga_status ga_cuda_hyb_moe(ga_cuda_hyb *h, const hyb_dlayer *w, int rows, bool on_device,
                          ga_err *err);

#endif
