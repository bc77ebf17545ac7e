/*
 * Launchers of the CUDA kernels the hybrid Qwen backend (src/cuda/cuda_hybrid*.c, issue 15)
 * adds beside the Gated DeltaNet ones (gdn.h) and the shared attention ones (kernels.h):
 *  - hybrid_attn.cu: the pass between a full-attention layer's fused [q_proj | k | v] GEMM and
 *    the attention kernels (per-head [query | gate] split, zero-centred q/k RMSNorm, partial
 *    rotate-half RoPE, K/V into the cache);
 *  - moe.cu: the MoE block's routing (softmax, top-k, norm_topk_prob), the grouping of the
 *    routed rows by expert, their gather, the grouped expert product of small batches, and the
 *    weighted combine with the shared expert.
 * Each follows the CPU reference op of src/cpu/cpu_hybrid.c named beside it (tested end to end
 * against that backend by tests/test_hybrid_gpu.c). Every launcher takes a cudaStream_t, checks
 * its arguments before touching the device (GA_ERR_ARG naming the launcher), never allocates.
 */
#ifndef GATTN_HYBRID_KERNELS_H
#define GATTN_HYBRID_KERNELS_H

#include <cuda_runtime.h>

#include "gattn/gattn.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- hybrid_attn.cu
 * attn_token of cpu_hybrid.c up to the softmax, for T tokens (each with its own position and
 * cache place): per query head h, row t's q_proj part holds [hd query | hd gate]; the query and
 * each key head get the zero-centred RMSNorm x * rsqrt(mean(x^2) + eps) * (1 + w), then RoPE on
 * the first rd dimensions (rotate-half within them, cos/sin of table row `position`); V is
 * copied. Every intermediate is fp32; only the stores round to bf16. Writes
 *   q    -> q_out (T, n_heads, hd)
 *   gate -> gate_out (T, n_heads * hd), raw: the elementwise gate layout the attention kernels'
 *           epilogue takes (GA_GATE_ELEMENTWISE)
 *   k, v -> the cache: slots (max_batch, n_kv, kv_stride, hd) at (slots[t], positions[t]), or
 *           paged pools (n_blocks, n_kv, block_size, hd) at row dest[t] = block * kv_stride +
 *           offset (kv_stride = the block size), as ga_qk_norm_rope addresses them. */
typedef struct ga_hyb_attn_prep_args {
    const void *qkv;                  /* bf16 (T, qkv_stride): [q_proj | k | v] rows */
    const float *q_norm, *k_norm;     /* fp32 (hd): the raw weights (the kernel adds the 1) */
    const float *rope_cos, *rope_sin; /* fp32 (rope_rows, rd / 2) */
    void *q_out, *gate_out;
    void *k_cache, *v_cache;
    const int *positions; /* device (T) */
    const int *slots;     /* device (T); unused when dest is set */
    const int *dest;      /* device (T) or NULL (slots) */
    int T, n_heads, n_kv_heads, hd, rd, qkv_stride, kv_stride, rope_rows;
    float eps;
} ga_hyb_attn_prep_args;
/* hd a multiple of 32 up to 512, rd even and <= hd. */
ga_status ga_hyb_attn_prep(const ga_hyb_attn_prep_args *a, cudaStream_t stream, ga_err *err);

/* ---------------------------------------------------------------- moe.cu
 * Qwen3NextTopKRouter (ga_hyb_moe's first half) for `rows` rows of router logits (rows, E)
 * fp32: softmax over the E experts, the K largest probabilities (largest first, ties to the
 * lower index), divided by their sum when norm_topk_prob. idx (rows, K) int, w (rows, K) fp32.
 * E <= GA_MOE_MAX_EXPERTS, K <= E and <= 64. */
#define GA_MOE_MAX_EXPERTS 4096
ga_status ga_moe_route(const float *logits, int rows, int E, int K, bool norm_topk, int *idx,
                       float *w, cudaStream_t stream, ga_err *err);

/* Groups the n = rows * K routed entries (entry i = row i / K, its choice i % K) by expert,
 * in entry order within an expert, so one GEMM per expert reads contiguous rows:
 *   offsets (E + 1): expert e's entries at sorted positions [offsets[e], offsets[e+1])
 *   src_row (n): the token row of sorted position p
 *   pos_of (n): the sorted position of entry i (what the combine reads back).
 * One block; the order depends on idx only, never on timing. */
ga_status ga_moe_sort(const int *idx, int n, int K, int E, int *offsets, int *src_row, int *pos_of,
                      cudaStream_t stream, ga_err *err);

/* out (n, H) bf16 = x[src_row[p]] for every sorted position p; x (rows, H) bf16. */
ga_status ga_moe_gather(const void *x, const int *src_row, int n, int H, void *out,
                        cudaStream_t stream, ga_err *err);

/* The expert products of the sorted entries without a host round trip: for every sorted
 * position p < n, with e its expert (offsets[e] <= p < offsets[e+1], read on the device),
 *   y[p] (N) = w[e] (N, K) . x[p] (K)
 * x (n, K) bf16 in sorted order (ga_moe_gather's output, or the SwiGLU of the gate|up rows), w
 * (E, N, K) bf16, y (n, N) fp32 when y_f32, else bf16. fp32 accumulation, one fixed order per
 * row (independent of the batch and of how many rows share the expert). Meant for the small
 * batches of a decode step (it streams each expert's weights once per 4 of its rows); the
 * launch depends on n, E, N, K only, so a captured graph serves any routing. */
ga_status ga_moe_expert_gemm(const void *x, const void *w, const int *offsets, int n, int E, int N,
                             int K, void *y, bool y_f32, cudaStream_t stream, ga_err *err);
/* The same products with FP8 experts (the hybrid backend's FP8 weights, issue 15 item 4): w8
 * (E * N, K) e4m3 codes, f8 the block scales of kernels.h's ga_f8_scales with srow holding E * N
 * entries (expert e's row n at e * N + n). Every weight is widened to bf16(fp32(code) * scale)
 * on load, so y is bitwise what ga_moe_expert_gemm returns on the dequantised (E, N, K) bf16
 * weights. K a multiple of 8, x 16-byte and w8 8-byte aligned (the bf16 form's vector path). */
struct ga_f8_scales;
ga_status ga_moe_expert_gemm_f8(const void *x, const void *w8, const struct ga_f8_scales *f8,
                                const int *offsets, int n, int E, int N, int K, void *y, bool y_f32,
                                cudaStream_t stream, ga_err *err);

/* The weighted sum of ga_hyb_moe: for each row r, in this order,
 *   out[r] = sum_{k < K} w[r, k] * y[pos_of[r*K + k]]  (+ sigmoid(sg[r]) * shared[r])
 * with y (n, H) the experts' fp32 down_proj outputs in sorted order; shared (rows, H) fp32 and
 * sg (rows) fp32 (the shared_expert_gate logit) both NULL when the block has no shared expert.
 * out (rows, H) fp32. */
ga_status ga_moe_combine(const float *y, const int *pos_of, const float *w, const float *shared,
                         const float *sg, float *out, int rows, int K, int H, cudaStream_t stream,
                         ga_err *err);

#ifdef __cplusplus
}
#endif

#endif
