/*
 * Launchers of the CUDA kernels in kernels/, callable from host C (src/cuda/). One section per
 * op family (one .cu each). Every launcher takes a cudaStream_t, checks its preconditions,
 * never allocates, and returns a ga_status with the message in err.
 *
 * Tensors are passed as void pointers; "bf16" means __nv_bfloat16 (uint16_t storage).
 * Layouts are row-major; T is the number of new tokens, hd the head dim.
 */
#ifndef GATTN_KERNELS_H
#define GATTN_KERNELS_H

#include <cuda_runtime.h>
#include <stdint.h>

#include "gattn/gattn.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- attention (attention_*.cu)
 * KV cache layout, per layer: k and v are (max_batch, n_kv, kv_stride, hd) bf16; a sequence
 * slot s holds its positions [0, len) at k + ((s*n_kv + h)*kv_stride + pos)*hd.
 * Gate layout: the raw (pre-sigmoid) gate of each token, (T, n_heads) headwise or
 * (T, n_heads*hd) elementwise, bf16. The kernels apply sigmoid(gate) to each head's output
 * in their epilogue, before the store. */

/* ---------------------------------------------------------------- device attributes
 * (device_info.cu) What the launchers need to know about the GPU, queried once per device (the
 * CUDA backend does it at creation) and passed in the attention launchers' args; a NULL
 * devinfo there makes the launcher query it for that call (tests and benches). */
typedef struct ga_cuda_devinfo {
    int n_sm;               /* multiprocessors */
    int smem_optin;         /* bytes of shared memory a block may opt in to */
    int cc_major, cc_minor; /* compute capability */
} ga_cuda_devinfo;
/* Attributes of the current device. */
ga_status ga_cuda_devinfo_query(ga_cuda_devinfo *out, ga_err *err);

/* Which prefill kernel runs: AUTO picks the Hopper wgmma/TMA kernel where it exists (sm_90
 * device, sm_90a build, head_dim 128) and the portable mma.sync one elsewhere; the other two
 * force one (tests and benchmarks compare them; WGMMA where unusable is GA_ERR_UNSUPPORTED). */
typedef enum { GA_ATTN_IMPL_AUTO = 0, GA_ATTN_IMPL_MMA, GA_ATTN_IMPL_WGMMA } ga_attn_impl;

typedef struct ga_attn_prefill_args {
    const void *q;    /* bf16 (T, n_heads, hd), normed + roped, positions pos0..pos0+T-1 */
    const void *k;    /* bf16 this slot's cache for this layer: (n_kv, kv_stride, hd) */
    const void *v;    /* bf16 same layout as k */
    const void *gate; /* bf16 raw gate (T, gate_dim), NULL for baseline */
    void *out;        /* bf16 (T, n_heads*hd), gated */
    float *lse;       /* fp32 (n_heads, T): log-sum-exp of the scaled scores, or NULL */
    int T, pos0;      /* query i sits at position pos0+i and sees keys [0, pos0+i] */
    int n_heads, n_kv_heads, hd, kv_stride;
    ga_gate_mode gate_mode;
    float scale;                    /* 1/sqrt(hd) */
    ga_attn_impl impl;              /* 0: AUTO */
    const ga_cuda_devinfo *devinfo; /* the device's attributes (NULL: queried for this call) */
} ga_attn_prefill_args;
ga_status ga_attention_prefill(const ga_attn_prefill_args *a, cudaStream_t stream, ga_err *err);
/* Whether the Hopper kernel can run for this head_dim on the device d describes (the _usable
 * form queries the current device). */
int ga_attention_prefill_sm90_usable_on(const ga_cuda_devinfo *d, int hd);
int ga_attention_prefill_sm90_usable(int hd);
/* The Hopper kernel itself (attention_prefill_sm90.cu); arguments already validated. */
ga_status ga_attention_prefill_sm90(const ga_attn_prefill_args *a, cudaStream_t stream,
                                    ga_err *err);

typedef struct ga_attn_decode_args {
    const void *q;       /* bf16 (B, n_heads, hd): one new token per row */
    const void *k_cache; /* bf16 layer base: (max_batch, n_kv, kv_stride, hd) */
    const void *v_cache; /* bf16 same layout */
    const int *slots;    /* device (B): cache slot of each row (unused when paged) */
    const int *kv_lens;  /* device (B): keys each row attends to (its new token included) */
    const void *gate;    /* bf16 raw gate (B, gate_dim), NULL for baseline */
    void *out;           /* bf16 (B, n_heads*hd), gated */
    float *work;         /* split-KV partials, ga_attention_decode_workspace() bytes */
    unsigned *counters;  /* split tickets and chunk claims, ga_attention_decode_counters()
                            bytes: zeroed once by the caller (cudaMemset at allocation); every
                            launch leaves them zero. One launch at a time per buffer. */
    int B, n_heads, n_kv_heads, hd, kv_stride;
    int max_kv_len; /* host-side upper bound of kv_lens; fixes the split so graphs replay */
    /* Paged KV cache (block_table non-NULL): k_cache / v_cache are the layer's pool
     * (n_blocks, n_kv, block_size, hd), row b's key j in block block_table[b * table_stride +
     * j / block_size] at row j % block_size; max_kv_len <= table_stride * block_size;
     * kv_stride and slots are unused. */
    const int *block_table;
    int table_stride, block_size;
    int waves; /* 0: the default; else (1..64) CTAs per row and KV head for about this
                  many waves of the GPU (more, shorter CTAs balance uneven rates) */
    /* Batch-invariant mode (ga_session_opts.deterministic): when > 0, exactly this many
     * splits whatever B, max_kv_len and the device (waves is then ignored), so a row's
     * result depends on its own query and keys only: the row takes min(fixed_splits, its
     * 64-key chunks) CTAs, and that count and the combine order follow from its length.
     * `work` must then hold ga_attention_decode_workspace_fixed(B, .., fixed_splits). */
    int fixed_splits;
    ga_gate_mode gate_mode;
    float scale;
    const ga_cuda_devinfo *devinfo; /* the device's attributes (NULL: queried for this call) */
} ga_attn_decode_args;
/* Bytes of `work` (an upper bound for any GPU) and of `counters` for B rows; 0 on bad sizes.
 * Both also serve any smaller B or max_kv_len. */
size_t ga_attention_decode_workspace(int B, int n_heads, int hd, int max_kv_len);
size_t ga_attention_decode_counters(int B, int n_heads, int n_kv_heads);
/* Bytes of `work` for B rows with fixed_splits = splits; 0 on bad sizes. */
size_t ga_attention_decode_workspace_fixed(int B, int n_heads, int hd, int splits);
/* The split count of batch-invariant decoding: 32 CTAs per (row, KV head) fill about one
 * wave of an H200 (132 SMs x 2 CTAs) for one row of a model with 8 KV heads, the case
 * `gattn generate` runs; a row of n keys uses min(32, ceil(n / 64)) of them (ceil(n / 32) at
 * head_dim 256, whose decode chunks are 32 keys). */
#define GA_DECODE_INVARIANT_SPLITS 32
ga_status ga_attention_decode(const ga_attn_decode_args *a, cudaStream_t stream, ga_err *err);

/* Attention probabilities for visualisation, recomputed tile by tile from q, k and the
 * prefill's lse (p = exp(scale*q.k - lse)), never materialising T x T x heads:
 *  - map (optional, fp32 res*res, zeroed by the caller): pooled head mean (head < 0) or one
 *    head, map[bi*res+bj] += sum_{j in bj} mean_{i in bi} p_ij (blocks per ga_pool_bin);
 *  - first_share (optional, fp32 scalar, zeroed by caller): += sum over heads and queries
 *    1..T-1 of p(key 0). Prefill from position 0 only (pos0 == 0). */
typedef struct ga_attn_probs_args {
    const void *q;    /* bf16 (T, n_heads, hd) as given to the prefill */
    const void *k;    /* bf16 (n_kv, kv_stride, hd) */
    const float *lse; /* (n_heads, T) from the prefill */
    float *map;
    float *first_share;
    int T, n_heads, n_kv_heads, hd, kv_stride;
    int head; /* -1: mean over heads */
    int res;
    float scale;
} ga_attn_probs_args;
ga_status ga_attention_probs(const ga_attn_probs_args *a, cudaStream_t stream, ga_err *err);

/* ---------------------------------------------------------------- paged KV (kv_paged.cu)
 * Paged KV cache layout, per layer: k and v are pools (n_blocks, n_kv, block_size, hd) bf16;
 * a sequence's position p sits in block table[p / block_size] at row p % block_size.
 * ga_kv_gather copies positions [0, len) of one sequence into k_out / v_out (n_kv, out_stride,
 * hd), the slot layout the prefill and probability kernels take. hd a multiple of 8, buffers
 * 16-byte aligned; table on the device with ceil(len / block_size) valid entries. */
typedef struct ga_kv_gather_args {
    const void *k_pool, *v_pool;
    const int *table;
    void *k_out, *v_out;
    int len, n_kv_heads, block_size, hd, out_stride;
} ga_kv_gather_args;
ga_status ga_kv_gather(const ga_kv_gather_args *a, cudaStream_t stream, ga_err *err);

/* ---------------------------------------------------------------- other op families
 * (norm.cu, qk_rope.cu, activation.cu, embed.cu, sampling.cu, convert.cu): declared below by
 * their owners. */

/* ---------------------------------------------------------------- norm (norm.cu)
 * The residual stream x stays fp32 (rows, dim). Fused: if delta is non-NULL, x += delta
 * (+ delta_bias per column) first and is written back; then out = w * x / sqrt(mean(x^2) +
 * eps) in fp32, stored bf16 as the next GEMM's input. delta is a block's fp32 GEMM output
 * (o_proj or down_proj), delta_bias the o_proj bias. */
ga_status ga_rmsnorm_residual(float *x, const float *delta, const float *delta_bias, const float *w,
                              void *out, int rows, int dim, float eps, cudaStream_t stream,
                              ga_err *err);

/* ---------------------------------------------------------------- q/k norm + RoPE (qk_rope.cu)
 * One pass over the fused QKV(+gate) GEMM output, row t = [q_proj rows | k rows | v rows]
 * with q_proj rows grouped per KV head (G*hd query rows, then the group's gate rows). Adds
 * the bias, applies the per-head RMSNorm to q and k, RoPE (rotate-half, fp32 cos/sin table
 * built on the host in double) to q and k, and writes q, the raw gate and K/V into the
 * cache at each token's (slot, position). Two kernels with the same pinned fp32 arithmetic
 * (bitwise equal outputs): AUTO takes the warp-per-head-vector kernel for hd 64/128/256 and the
 * generic one otherwise; tests force either. */
typedef enum { GA_QK_IMPL_AUTO = 0, GA_QK_IMPL_GENERIC, GA_QK_IMPL_WARP } ga_qk_impl;
typedef struct ga_qk_rope_args {
    const void *qkv;         /* bf16 (T, qkv_dim), qkv_dim = q_rows + 2*n_kv*hd */
    const float *bias;       /* fp32 (qkv_dim) or NULL */
    const float *q_norm;     /* fp32 (hd) or NULL (no qk norm) */
    const float *k_norm;     /* fp32 (hd) or NULL */
    const float *rope_cos;   /* fp32 (rope_rows, hd/2): cos(pos * inv_freq[i]) */
    const float *rope_sin;   /* fp32 (rope_rows, hd/2) */
    void *q_out;             /* bf16 (T, n_heads, hd) */
    void *gate_out;          /* bf16 (T, gate_dim), raw (pre-sigmoid); NULL for baseline */
    void *k_cache, *v_cache; /* bf16 layer base (max_batch, n_kv, kv_stride, hd), or paged:
                                (n_blocks, n_kv, block_size, hd) with kv_stride = block_size */
    const int *positions;    /* device (T) or NULL: token t sits at pos0 + t */
    const int *slots;        /* device (T) or NULL: every token goes to `slot` */
    const int *dest;         /* device (T) or NULL. Paged: token t's K/V go to cache row
                                dest[t] = block * kv_stride + offset (block from the sequence's
                                table, offset = position % block_size); slots is then unused
                                and positions only drive RoPE (they may exceed kv_stride). */
    int pos0, slot;
    int T, n_heads, n_kv_heads, hd, kv_stride, rope_rows;
    ga_gate_mode gate_mode;
    float eps;
    ga_qk_impl impl; /* 0: AUTO */
} ga_qk_rope_args;
ga_status ga_qk_norm_rope(const ga_qk_rope_args *a, cudaStream_t stream, ga_err *err);

/* ---------------------------------------------------------------- activation (activation.cu)
 * SwiGLU over the fused MLP GEMM output gu (T, 2*I) = [gate | up] per row:
 * out (T, I) = silu(gate) * up, computed in fp32, stored bf16. */
ga_status ga_swiglu(const void *gu, void *out, int T, int inter, cudaStream_t stream, ga_err *err);

/* ---------------------------------------------------------------- embedding (embed.cu)
 * x (T, dim) fp32 = table[tokens[t]] (bf16 table (vocab, dim)); tokens on the device. A token
 * outside [0, vocab) (the session validates, so never expected) yields a NaN row. */
ga_status ga_embed(const int32_t *tokens, const void *table, float *x, int T, int dim, int vocab,
                   cudaStream_t stream, ga_err *err);

/* ---------------------------------------------------------------- sampling (sampling.cu)
 * Greedy: out[r] = argmax over logits row r (rows, vocab) fp32, lowest index on ties, NaN
 * never wins (a row of NaN gives 0). */
ga_status ga_argmax(const float *logits, int rows, int vocab, int32_t *out, cudaStream_t stream,
                    ga_err *err);

/* ---------------------------------------------------------------- conversion (convert.cu)
 * n elements of src (GA_F32 or GA_F16; GA_BF16 is a plain copy) to bf16, rounding to
 * nearest even like ga_f32_to_bf16 (NaN stays NaN). */
ga_status ga_convert_to_bf16(const void *src, ga_dtype src_dtype, void *dst, int64_t n,
                             cudaStream_t stream, ga_err *err);

/* ---------------------------------------------------------------- skinny GEMM (gemv.cu)
 * Y (M x N, bf16 or fp32) = X (M x K bf16) . W^T (W: N x K bf16), row-major, for the decode
 * batch M <= GA_GEMV_MAX_M; K a multiple of 8 and x, w 16-byte aligned (ga_gemv_supported). */
#define GA_GEMV_MAX_M 8
/* The fused forms stage their M x K bf16 input in shared memory: M * K * 2 bytes at most this
 * (the default 48 KB a CTA may take without opting in, less the kernel's static reduction
 * array), so K <= 24064 at M = 1 and 3008 at M = 8 (ga_gemv_fused_supported). */
#define GA_GEMV_STAGE_BYTES (48 * 1024 - GA_GEMV_MAX_M * 32 * 4)
int ga_gemv_supported(const void *x, const void *w, int M, int K);
ga_status ga_gemv(const void *x, const void *w, void *y, bool y_f32, int M, int N, int K,
                  cudaStream_t stream, ga_err *err);

/* The decode step's fused forms of the GEMV (issue 12), same M, K and alignment conditions:
 *  ga_gemv_rmsnorm:        Y = rmsnorm(X) . W^T with X the fp32 residual rows (M, K) and
 *                          rmsnorm(X) = bf16(norm_w * x / sqrt(mean(x^2) + eps)) exactly as
 *                          ga_rmsnorm_residual (no delta) stores it; M * K * 2 bytes <= 48 KB
 *                          and norm_w 16-byte aligned (ga_gemv_norm_supported);
 *  ga_gemv_rmsnorm_swiglu: act (M, I) bf16 = silu(g) * u with [g | u] = rmsnorm(X) . W_gu^T,
 *                          W_gu (2I, K) = gate rows | up rows, g and u rounded to bf16 first:
 *                          ga_swiglu after the unfused GEMV, without the (M, 2I) intermediate;
 *  ga_gemv_residual:       x (M, N) fp32 += A . W^T (+ bias (N)), A (M, K) bf16: the residual
 *                          add of ga_rmsnorm_residual, (x + delta) + bias, without the delta
 *                          buffer; x must not overlap A or W; M * K * 2 bytes <= 48 KB
 *                          (ga_gemv_fused_supported).
 * Each output element is written by one thread; results do not depend on M (a row alone and
 * in a batch are bitwise equal). pdl: launched with programmatic dependent launch (sm_90 and
 * newer only; works in stream capture), so the kernel's weight prefetch overlaps the tail of
 * the stream's previous kernel; it waits for that kernel before reading x / A or writing. */
int ga_gemv_fused_supported(const void *x, const void *w, int M, int K);
int ga_gemv_norm_supported(const float *x, const float *norm_w, const void *w, int M, int K);
ga_status ga_gemv_rmsnorm(const float *x, const float *norm_w, float eps, const void *w, void *y,
                          bool y_f32, int M, int N, int K, bool pdl, cudaStream_t stream,
                          ga_err *err);
ga_status ga_gemv_rmsnorm_swiglu(const float *x, const float *norm_w, float eps, const void *w_gu,
                                 void *act, int M, int inter, int K, bool pdl, cudaStream_t stream,
                                 ga_err *err);
ga_status ga_gemv_residual(const void *a, const void *w, const float *bias, float *x, int M, int N,
                           int K, bool pdl, cudaStream_t stream, ga_err *err);

/* FP8 weights (FP8 folders kept as FP8 on the device, issue 15 item 4): W is e4m3 codes
 * (N x K bytes, row-major, 8-byte aligned) and element (n, k) stands for
 * bf16(fp32(e4m3(W[n][k])) * scale[srow[n] * kb + k / block]): the bf16 value the dequantised
 * upload of the same folder holds (src/core/tensor.h, ga_tensor_read_bf16). srow maps each row to
 * its scale row, so stacked projections (q|k|v, gate|up), each with its own block rows, share one
 * table. The _f8 GEMVs are the forms above with the same conditions plus block a power of two
 * >= 8 and kb = ceil(K / block), and return bitwise what the bf16 forms return on the
 * dequantised weights (same chunk order, same FMAs), reading half the weight bytes.
 * ga_f8_dequant writes the dequantised (N, K) bf16 matrix (out 16-byte aligned): the prefill
 * GEMMs run cuBLAS on it, so prefill gives the numbers of the bf16 upload. */
typedef struct ga_f8_scales {
    const float *scale; /* fp32 (scale rows, kb): weight_scale_inv, stacked */
    const int *srow;    /* device (N): the scale row of each weight row */
    int block;          /* block width along K */
    int kb;             /* scale columns, ceil(K / block) */
    int math;           /* ga_fp8_math: the _f8 GEMVs' arithmetic (GA_FP8_MATH_FAST: not
                           bitwise the bf16 forms, gemv.cu); the dequantisation and the MoE
                           expert GEMM are exact either way */
} ga_f8_scales;
int ga_gemv_f8_supported(const void *x, const void *w8, const ga_f8_scales *f8, int M, int K);
int ga_gemv_f8_fused_supported(const void *x, const void *w8, const ga_f8_scales *f8, int M, int K);
ga_status ga_gemv_f8(const void *x, const void *w8, const ga_f8_scales *f8, void *y, bool y_f32,
                     int M, int N, int K, cudaStream_t stream, ga_err *err);
ga_status ga_gemv_f8_rmsnorm(const float *x, const float *norm_w, float eps, const void *w8,
                             const ga_f8_scales *f8, void *y, bool y_f32, int M, int N, int K,
                             bool pdl, cudaStream_t stream, ga_err *err);
ga_status ga_gemv_f8_rmsnorm_swiglu(const float *x, const float *norm_w, float eps,
                                    const void *w8_gu, const ga_f8_scales *f8, void *act, int M,
                                    int inter, int K, bool pdl, cudaStream_t stream, ga_err *err);
ga_status ga_gemv_f8_residual(const void *a, const void *w8, const ga_f8_scales *f8,
                              const float *bias, float *x, int M, int N, int K, bool pdl,
                              cudaStream_t stream, ga_err *err);
ga_status ga_f8_dequant(const void *w8, const ga_f8_scales *f8, void *out, int N, int K,
                        cudaStream_t stream, ga_err *err);

/* ---------------------------------------------------------------- fallback GEMM (gemm_fallback.cu)
 * Y (M, N) = X (M, K) . W (N, K)^T, bf16 in, fp32 accumulate, Y fp32 (y_f32) or bf16. The
 * contract of the cuBLAS wrapper, in a plain tiled kernel: the GEMM test's second
 * implementation, and the backend's GEMM with ga_session_opts.cuda_gemm GA_CUDA_GEMM_FALLBACK. */
ga_status ga_gemm_fallback(const void *x, const void *w, void *y, bool y_f32, int M, int N, int K,
                           cudaStream_t stream, ga_err *err);

/* ---------------------------------------------------------------- gate metrics (gate_stats.cu)
 * Over n raw gate values g (bf16): *sum += sum sigmoid(g) (fp64), *below += #{sigmoid(g) <
 * threshold}. The caller zeroes both. */
ga_status ga_gate_stats(const void *gate, int64_t n, float threshold, double *sum,
                        unsigned long long *below, cudaStream_t stream, ga_err *err);

/* ---------------------------------------------------------------- sampling (sampling_topk.cu)
 * Temperature / top-k / top-p sampling of rows (rows, vocab) of fp32 logits, block per row,
 * exactly src/engine/sampler.h's ga_sample_host: row r draws with
 * ga_sample_uniform(sp->seed, streams[r], pos[r] + 1), pos[r] being the position of the token
 * decoded in that row (the sampled one lands at pos[r] + 1), as the session's host fallback
 * (src/engine/session.c).
 * streams, pos (device) and scratch (device, ga_sample_topk_scratch_bytes) are only read when
 * sampling; sp NULL, temperature <= 0 or top_k 1 is greedy (ga_argmax). Ties with the host
 * are documented in sampling_topk.cu. */
size_t ga_sample_topk_scratch_bytes(int rows, int vocab);
ga_status ga_sample_topk(const float *logits, int rows, int vocab, const ga_sampling *sp,
                         const uint64_t *streams, const int *pos, float *scratch, int32_t *out,
                         cudaStream_t stream, ga_err *err);

#ifdef __cplusplus
}
#endif

#endif
