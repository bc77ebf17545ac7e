/*
 * Internals of the CUDA backend (src/cuda/): the device-side model, KV cache and scratch
 * buffers, and the helpers the backend's files share. Host C only; kernels are reached through
 * the launchers in kernels/kernels.h.
 *
 * Precision: weights bf16 on the device (or e4m3 with block scales, FP8 folders by default:
 * see ga_cuda_layer; every product still sees the bf16 value of the dequantised weight,
 * exactly what the bf16 upload would hold); every GEMM reads bf16 and accumulates in fp32
 * (cuBLAS COMPUTE_32F). The residual stream x is fp32 for the whole forward; the GEMMs that
 * feed it (o_proj, down_proj) and the LM head write fp32; the GEMMs that feed other kernels
 * (QKV, gate|up) write bf16. Norm weights, biases and RoPE tables are fp32.
 */
#ifndef GATTN_CUDA_INTERNAL_H
#define GATTN_CUDA_INTERNAL_H

// cublasLt.h declares one function with () in C; harmless, but -Wstrict-prototypes would
// reject it if the toolkit's headers were ever included without -isystem.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstrict-prototypes"
#include <cublasLt.h>
#pragma GCC diagnostic pop
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "core/backend.h"
#include "cuda_check.h"
#include "kernels.h"

/* One layer's device weights. Fused projections stack row blocks of the checkpoint's
 * (out, in) matrices, so one GEMM computes all outputs that read the same input. */
typedef struct ga_cuda_layer {
    void *w_qkv;       /* bf16 (q_rows + 2*n_kv*hd, hidden): q_proj (with gate rows) | k | v */
    float *b_qkv;      /* fp32 (q_rows + 2*n_kv*hd) or NULL (no attention bias) */
    void *w_o;         /* bf16 (hidden, n_heads*hd) */
    float *b_o;        /* fp32 (hidden) or NULL */
    float *q_norm;     /* fp32 (hd) or NULL without qk norm */
    float *k_norm;     /* fp32 (hd) or NULL */
    float *input_norm; /* fp32 (hidden) */
    float *post_norm;  /* fp32 (hidden) */
    void *w_gu;        /* bf16 (2*inter, hidden): gate_proj | up_proj */
    void *w_down;      /* bf16 (hidden, inter) */
    /* FP8 folders with the weights kept as FP8 (ga_session_opts.cuda_weights): when a
     * matrix's f8_*.scale is set, its w_* above holds e4m3 codes (1 byte a weight) and these
     * its block scales (one device allocation: the scales, then the srow table, freed through
     * scale). Decode rows take the _f8 GEMVs; larger passes dequantise into c->f8_tmp first. */
    ga_f8_scales f8_qkv, f8_o, f8_gu, f8_down;
} ga_cuda_layer;

/* Activations for up to `rows` tokens at once (a prefill pass or a decode batch). The logits
 * hold logit_rows rows, fewer than rows when a pass is taller than GA_CUDA_LOGIT_ROWS (never
 * fewer than max_batch, which a decode step needs at once): the LM head of a pass's rows runs
 * in blocks of logit_rows, so a 2048-row pass does not need 2048 x vocab fp32 (1.2 GB). */
typedef struct ga_cuda_scratch {
    int rows, logit_rows;
    float *x;        /* fp32 (rows, hidden) residual stream */
    float *delta;    /* fp32 (rows, hidden) o_proj / down_proj output, added by the next norm */
    void *xn;        /* bf16 (rows, hidden) normed input of the next GEMM */
    void *qkv;       /* bf16 (rows, qkv_dim) fused QKV(+gate) GEMM output; reused for gate|up */
    void *q;         /* bf16 (rows, n_heads*hd) normed + roped queries */
    void *gate;      /* bf16 (rows, gate_dim) raw gate, or NULL for baseline */
    void *attn;      /* bf16 (rows, n_heads*hd) gated attention output */
    void *act;       /* bf16 (rows, inter) SwiGLU output */
    float *logits;   /* fp32 (logit_rows, vocab) */
    float *lse;      /* fp32 (n_heads, rows) for the capture's probabilities */
    int32_t *tokens; /* device (rows) */
    int *positions;  /* device (rows) */
    int *slots;      /* device (rows) */
    int *kv_lens;    /* device (rows) */
    int *dest;       /* device (rows): paged cache row of each token (block * bs + offset) */
} ga_cuda_scratch;

/* The sequences of one pass of rows (a prefill chunk): piece i is rows off[i]..off[i+1) of
 * sequence seqs[i], its first row at position pos0[i]. Decode passes none (device arrays).
 * A mixed step (cuda_mixed.c) puts its decode rows first: pieces 0..nd-1 are one row each,
 * attended by one decode-attention launch over their block-table rows 0..nd-1 (stride
 * max_blocks) and kv_lens; the pieces after them by the prefill attention. nd is 0 in a
 * prefill. */
typedef struct ga_cuda_plan {
    int ns;
    const int *seqs, *pos0, *off;
    int nd;
} ga_cuda_plan;

typedef struct ga_cuda_tp ga_cuda_tp;

typedef struct ga_cuda {
    const ga_model *model;
    ga_config cfg; /* a tensor-parallel rank's: its heads, KV heads and intermediate (tp_shard.h) */
    int dev;
    /* Tensor parallelism (cuda_tp.c): tp_ranks > 1 makes this state one rank of a split model
     * (its weights, KV cache and scratch are the rank's share), whose decode never takes the
     * fused GEMVs (ga_cuda_step_fused); tp is set on rank 0 only, the backend's impl, which
     * runs the passes of every rank through it. tp_ranks 0 or 1 and tp NULL: no split. */
    int tp_ranks;
    ga_cuda_tp *tp;
    ga_cuda_devinfo devinfo; /* the device's attributes, queried once at creation */
    char name[256];
    cudaStream_t stream;
    cublasHandle_t blas;
    void *blas_ws; /* cuBLAS workspace, set explicitly so GEMMs are graph-capturable */
    size_t blas_ws_bytes;
    /* GEMM implementation, from ga_session_opts.cuda_gemm at creation: cuBLAS (default),
     * cuBLASLt (matmul with a heuristic algorithm) or the plain kernel; the last two exist to
     * tell a cuBLAS problem on a given machine from a bug in the rest of the backend. */
    enum { GA_GEMM_CUBLAS = 0, GA_GEMM_LT, GA_GEMM_FALLBACK, GA_GEMM_CUBLAS_ONLY } gemm_impl;
    cublasLtHandle_t lt; /* only with GA_GEMM_LT */
    /* ga_session_opts.deterministic: the plain GEMM for every shape (its output element is
     * one fp32 FMA chain over K in order, whatever M and the tile it lands in) and the decode
     * attention's fixed split (GA_DECODE_INVARIANT_SPLITS), so no row's arithmetic depends on
     * the batch. Prefill attention needs nothing: both kernels walk key tiles from key 0 at
     * absolute boundaries, so a row's result does not depend on the chunk it is in. */
    bool deterministic;

    /* FP8 weights (cuda_weights.c): whether FP8 projections stay FP8 on the device; the bf16
     * matrix (f8_tmp_elems elements: the largest FP8 projection) that prefill GEMMs
     * dequantise each FP8 weight into just before using it; the device bytes of all weights. */
    bool keep_fp8;
    ga_fp8_math fp8_math; /* ga_session_opts.fp8_math: copied into every ga_f8_scales */
    void *f8_tmp;
    size_t f8_tmp_elems;
    uint64_t weight_bytes;

    /* derived shapes */
    int G, q_rows, gate_dim, kv_dim, qkv_dim, attn_dim;

    /* weights */
    void *embed;   /* bf16 (vocab, hidden) */
    void *lm_head; /* bf16 (vocab, hidden); == embed when tied */
    float *final_norm;
    ga_cuda_layer *layers;
    float *rope_cos, *rope_sin; /* fp32 (max_context, hd/2) */

    /* KV cache: one allocation; layer l's k at kv + (2l)*layer_elems, v at (2l+1). Slots:
     * each (max_batch, n_kv, max_context, hd). Paged (after paged_init): each a pool
     * (n_blocks, n_kv, block_size, hd), a sequence's position p in block tables[seq][p / bs]
     * at row p % bs (kernels/kernels.h). */
    void *kv;
    size_t kv_layer_elems; /* max_batch * n_kv * max_context * hd, or n_blocks * n_kv * bs * hd */
    int max_context, max_batch;
    bool paged;
    int block_size, n_blocks, max_blocks; /* max_blocks: table entries per sequence */
    const int32_t *const *tables;         /* the session's block tables (host) */
    /* Device mirror of the tables a pass reads, refreshed by a copy before every forward
     * chunk and decode step (captured graphs read it at a fixed address): (max_batch,
     * max_blocks) ints. Prefill: row i is piece i's sequence; decode: row b is batch row b's
     * sequence, with the step's bucket stride dec_tab_stride (entries for the bucket's keys). */
    int *d_tab;
    /* Pinned staging of d_tab: two halves of (max_batch, max_blocks), used as h_pass's
     * halves are by prefill passes. Decode uses the first half; it runs only after a prefill
     * synchronised, and synchronises itself. */
    int32_t *h_tab;
    int dec_tab_stride;
    /* Paged prefill: one layer's K and V of the sequence being attended, gathered from the
     * pool into the slot layout (n_kv, max_context, hd) bf16 each, for the prefill and
     * probability kernels (kernels/kv_paged.cu says why and what it costs). */
    void *gk, *gv;
    /* Pinned staging of a prefill pass's inputs, two halves of tokens | positions | slots |
     * dest (4 * h_pass_rows int32 each). A prefill does not synchronise between passes: pass
     * k + 1 is staged while pass k may still wait for its copies, so passes alternate halves
     * and rewrite one only after pass_free[half], recorded after the copies of the pass that
     * last used it (h_tab's half too). ga_cuda_stage_pass. */
    int32_t *h_pass;
    int h_pass_rows;
    cudaEvent_t pass_free[2];
    int pass_half; /* the half the next pass stages into */

    ga_cuda_scratch sc;
    /* Prompt tokens per prefill pass (ga_session_opts.prefill_chunk, capped at max_context):
     * the height of a prefill's GEMMs; the scratch holds max(prefill_chunk, max_batch) rows
     * (more after a capture, which needs the whole prompt in one pass). */
    int prefill_chunk;
    float *dec_work;        /* split-KV partials for decode attention */
    unsigned *dec_counters; /* its split counters, in the same allocation after the partials */
    int32_t *h_in;          /* pinned host staging: tokens | positions | slots | kv_lens | dest
                               (5*max_batch) */

    /* token selection on the device (decode_sample): per-row random streams, the chosen ids
     * and the sampler's scratch, sized for max_batch rows; pinned host mirrors */
    uint64_t *d_streams;
    int32_t *d_next;
    float *samp_scratch;
    uint64_t *h_streams;
    int32_t *h_next;

    /* decode graphs per (batch size, KV-length bucket), captured on first use: index
     * nb * n_kv_buckets + bucket; bucket b bounds the keys a row attends to by
     * min(max_context, GA_KV_BUCKET0 << b), and decode_kv_bound is the bound of the step being
     * run or captured. A fixed split for the whole cache would make every step of a long-
     * context session launch (and skip) the splits of the full cache. */
    cudaGraphExec_t *graphs;
    int n_kv_buckets;
    int decode_kv_bound;

    /* capture buffers (allocated on first capture) */
    float *cap_map;
    int cap_map_elems;
    float *cap_first;
    double *cap_gsum;
    unsigned long long *cap_gbelow;
} ga_cuda;

/* cuda_gemm.c: Y (M, N) = X (M, K) . W (N, K)^T, row-major, bf16 in, fp32 accumulate; Y is fp32
 * when y_f32, else bf16. */
ga_status ga_cuda_gemm(ga_cuda *c, const void *x, const void *w, void *y, bool y_f32, int M, int N,
                       int K, ga_err *err);
/* cuda_gemm.c: ga_cuda_gemm for a weight that may be FP8 (f8 NULL or f8->scale NULL: w is
 * bf16). An FP8 w takes the _f8 GEMV where the bf16 one would take the GEMV, else is dequantised
 * into c->f8_tmp and multiplied as bf16: the numbers of the bf16 upload in every case. */
ga_status ga_cuda_proj(ga_cuda *c, const void *x, const void *w, const ga_f8_scales *f8, void *y,
                       bool y_f32, int M, int N, int K, ga_err *err);
/* cuda_gemm.c: whether a decode step of `rows` rows runs the fused GEMVs of kernels/gemv.cu
 * (the norms, residual adds and SwiGLU folded into the projections: cuda_forward.c), decided
 * for the whole step: the default GEMM, rows <= GA_GEMV_AUTO_MAX_M, and every projection's
 * shape and alignment taken by the fused kernels. */
bool ga_cuda_decode_fused(const ga_cuda *c, int rows);

/* cuda_weights.c; progress (optional) is called after each layer with the fraction done. */
ga_status ga_cuda_upload_weights(ga_cuda *c, void (*progress)(void *, float), void *user,
                                 ga_err *err);
void ga_cuda_free_weights(ga_cuda *c);
/* cuda_weights.c: the device bytes the weights will take (FP8 matrices at 1 byte a weight plus
 * their scales when c->keep_fp8) and the bf16 elements of the largest FP8 projection (the
 * prefill dequantisation buffer, 0 when none is FP8), before anything is uploaded. */
uint64_t ga_cuda_weight_plan(const ga_cuda *c, size_t *f8_tmp_elems);
/* cuda_weights.c, shared with the hybrid backend (cuda_hybrid_weights.c): cudaMalloc with a
 * message saying what was asked and what is free; tensor t (any stored dtype, NaN/Inf refused)
 * as bf16 into dst (numel elements) through staging, a device buffer of GA_CUDA_STAGING_BYTES,
 * on c->stream. */
#define GA_CUDA_STAGING_BYTES ((size_t)32 << 20)
ga_status ga_cuda_dalloc(void **p, size_t bytes, const char *what, ga_err *err);
ga_status ga_cuda_upload_matrix(ga_cuda *c, const ga_tensor *t, void *dst, void *staging,
                                ga_err *err);

/* Rows of logits the LM head writes at once in a prefill (the logits scratch's height unless
 * max_batch is larger): 512 x a 151,936 vocabulary is 311 MB of fp32. */
#define GA_CUDA_LOGIT_ROWS 512
/* cuda_backend.c: activation buffers for `rows` tokens, replacing the current set. On failure
 * the previous set (and its row count) is kept, so the backend stays usable. */
ga_status ga_cuda_scratch_alloc(ga_cuda *c, int rows, ga_err *err);
void ga_cuda_scratch_free(ga_cuda *c);
/* Logit rows of a scratch of `rows` rows for a backend of max_batch sequences. */
int ga_cuda_logit_rows(int rows, int max_batch);
size_t ga_cuda_scratch_bytes(const ga_config *cfg, int rows, int logit_rows);
/* Drops every captured decode graph (after buffers moved). */
void ga_cuda_drop_graphs(ga_cuda *c);

/* cuda_forward.c: the layer stack for `rows` tokens already embedded in sc.x. Prefill mode
 * runs the plan's pieces (each its sequence's continuation; the device row arrays and
 * tables staged by the caller through ga_cuda_stage_pass), one attention launch per piece;
 * decode mode uses the device positions / slots / dest / kv_lens / tables of sc and the
 * decode attention. A capture needs a plan of one piece. */
ga_status ga_cuda_layers(ga_cuda *c, int rows, const ga_cuda_plan *pl, bool decode,
                         ga_attn_capture *cap, ga_err *err);
/* cuda_forward.c: ga_cuda_layers' two halves of layer l, for tensor parallelism, which sums
 * the ranks' partial products after each. attn: input norm (adding sc.delta of the layer
 * before), QKV, q/k norm + RoPE, attention, o_proj into sc.delta (fused: added into sc.x with
 * o_bias). mlp: post-attention norm (adding sc.delta and o_bias), gate|up, SwiGLU, down_proj
 * into sc.delta (fused: into sc.x). */
ga_status ga_cuda_layer_attn(ga_cuda *c, int l, int rows, const ga_cuda_plan *pl, bool decode,
                             bool fused, ga_attn_capture *cap, ga_err *err);
ga_status ga_cuda_layer_mlp(ga_cuda *c, int l, int rows, bool fused, ga_err *err);
/* Whether a pass of `rows` rows takes the fused decode GEMVs: a decode step that
 * ga_cuda_decode_fused takes, never on a tensor-parallel rank. */
bool ga_cuda_step_fused(const ga_cuda *c, bool decode, int rows);
/* Copies a prefill pass's tokens (rows of them) into sc.tokens and, when the kernels take
 * them per row (paged, or several pieces), each row's position, slot and cache row, and the
 * pieces' block tables, through the pinned staging (h_pass). Does not synchronise. */
ga_status ga_cuda_stage_pass(ga_cuda *c, const int32_t *tokens, int rows, const ga_cuda_plan *pl,
                             ga_err *err);
/* Decode: the final norm and LM head of the `rows` rows after ga_cuda_layers(decode), logits
 * into sc.logits (fused into one GEMV when ga_cuda_decode_fused). */
ga_status ga_cuda_decode_logits(ga_cuda *c, int rows, ga_err *err);
/* cuda_forward.c: the final norm (adding the last MLP output) and LM head of rows [first,
 * first + n) of an unfused pass, logits into sc.logits rows [dst, dst + n) (dst + n <=
 * sc.logit_rows): the computation of ga_cuda_decode_logits for those rows when it is not
 * fused. */
ga_status ga_cuda_lm_head(ga_cuda *c, int first, int n, int dst, ga_err *err);
ga_status ga_cuda_forward(ga_backend *b, int seq, int pos0, const int32_t *tokens, int n,
                          bool all_positions, float *logits, ga_attn_capture *cap, ga_err *err);
ga_status ga_cuda_forward_multi(ga_backend *b, int ns, const int *seqs, const int *pos0,
                                const int32_t *tokens, const int *off, bool all_positions,
                                float *logits, ga_err *err);

/* cuda_decode.c */
/* Copies a decode step's inputs (tokens, positions, slots, KV lengths, cache rows and, paged,
 * the block tables) to the device, picks the step's KV-length bucket (decode_kv_bound) and
 * sets *slot to its graph's index. Does not synchronise. */
ga_status ga_cuda_stage_step(ga_cuda *c, const int *seqs, const int *pos, const int32_t *tokens,
                             int nb, int *slot, ga_err *err);
ga_status ga_cuda_decode_batch(ga_backend *b, const int *seqs, const int *pos,
                               const int32_t *tokens, int nb, float *logits, ga_err *err);
ga_status ga_cuda_decode_sample(ga_backend *b, const int *seqs, const int *pos,
                                const int32_t *tokens, int nb, const ga_sampling *sp,
                                const uint64_t *streams, int32_t *next, ga_err *err);
/* cuda_decode.c: token selection on the device for the nb rows of sc.logits, at positions
 * sc.positions[0..nb) (the draw of row i uses position + 1), ids into next; synchronises. */
ga_status ga_cuda_pick(ga_cuda *c, int nb, const ga_sampling *sp, const uint64_t *streams,
                       int32_t *next, ga_err *err);

/* cuda_mixed.c: backend.h's step_mixed (decode rows and prefill pieces in one pass). */
ga_status ga_cuda_step_mixed(ga_backend *b, int nd, const int *dseqs, const int *dpos,
                             const int32_t *dtokens, const ga_sampling *sp, const uint64_t *streams,
                             int32_t *dnext, float *dlogits, int np, const int *pseqs,
                             const int *ppos0, const int32_t *ptokens, const int *poff,
                             float *plogits, ga_err *err);

/* cuda_backend.c: one device state for model m (a tensor-parallel rank's model: tp_ranks > 1)
 * on device dev, everything allocated and the weights uploaded; and its release. */
ga_status ga_cuda_state_create(const ga_model *m, const ga_session_opts *opts, int dev,
                               int max_context, int max_batch, int tp_ranks, ga_cuda **out,
                               ga_err *err);
void ga_cuda_state_free(ga_cuda *c);
/* The backend's entry points over state c (b->impl = c; b->free frees c with it). */
void ga_cuda_backend_init(ga_backend *b, ga_cuda *c);
/* cuda_backend.c: the paged KV cache of one device state (backend.h's paged_init). */
ga_status ga_cuda_state_paged_init(ga_cuda *c, int n_blocks, int block_size,
                                   const int32_t *const *tables, ga_err *err);

/* cuda_tp.c: tensor parallelism over opts->tensor_parallel ranks (> 1), called by
 * ga_cuda_backend_create; the backend's impl is rank 0's state, whose forward, forward_multi
 * and decode entry points hand each pass to the functions below. */
ga_status ga_cuda_tp_backend_create(const ga_model *m, const ga_session_opts *opts, int max_context,
                                    int max_batch, ga_backend **out, ga_err *err);
/* Frees ranks 1.. and the communicator (rank 0 is the caller's). */
void ga_cuda_tp_free(ga_cuda_tp *tp);
/* A prefill pass of every rank (staging, embedding, the layer stack with the all-reduces):
 * leaves rank 0's sc.x / sc.delta ready for the LM head, as ga_cuda_layers does. */
ga_status ga_cuda_tp_pass(ga_cuda_tp *tp, const int32_t *tokens, int rows, const ga_cuda_plan *pl,
                          ga_err *err);
/* A decode step of every rank, eagerly (no graphs), logits in rank 0's sc.logits. */
ga_status ga_cuda_tp_step(ga_cuda_tp *tp, const int *seqs, const int *pos, const int32_t *tokens,
                          int nb, ga_err *err);
/* Waits for every rank's stream; the first error. */
ga_status ga_cuda_tp_sync(ga_cuda_tp *tp, ga_err *err);
ga_status ga_cuda_tp_paged_init(ga_cuda_tp *tp, int n_blocks, int block_size,
                                const int32_t *const *tables, ga_err *err);

#define GA_KV_BUCKET0 256
/* The smallest block size the CUDA paged cache takes (paged_init refuses smaller ones). */
#define GA_CUDA_MIN_BLOCK 16

/* K / V cache base of layer l (bf16 elements of kv_layer_elems each). */
static inline void *ga_cuda_kcache(const ga_cuda *c, int l) {
    return (uint16_t *)c->kv + (size_t)(2 * l) * c->kv_layer_elems;
}
static inline void *ga_cuda_vcache(const ga_cuda *c, int l) {
    return (uint16_t *)c->kv + (size_t)(2 * l + 1) * c->kv_layer_elems;
}

#endif
