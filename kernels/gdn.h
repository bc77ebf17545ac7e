/*
 * Launchers of the Gated DeltaNet kernels (kernels/gdn.cu) for the hybrid Qwen models (issue
 * 15): the causal depthwise conv1d + SiLU with its state, the recurrent gated delta rule, and
 * the two RMSNorms these layers use (zero-centred, and gated per head). Each one follows the
 * CPU reference op of src/cpu/cpu_hybrid.c named beside it, and is tested against it by
 * tests/test_gdn_ops.c.
 *
 * Precision: activations bf16 (what the projection GEMMs produce and consume), states and
 * weights fp32, arithmetic fp32. Every launcher takes a cudaStream_t, checks its arguments
 * before touching the device (GA_ERR_ARG, one line naming the launcher and the argument), never
 * allocates, and returns a ga_status.
 *
 * Batching: B sequences of T new tokens each; the activation row of token t of sequence b is
 * b*T + t. A decode step is T = 1 with B sequences, a prefill B = 1 with T tokens. Per-sequence
 * states live in a pool of slots; slots (device, B ints) picks each sequence's slot, NULL means
 * sequence b uses slot b.
 */
#ifndef GATTN_GDN_H
#define GATTN_GDN_H

#include <cuda_runtime.h>

#include "gattn/gattn.h"

#ifdef __cplusplus
extern "C" {
#endif

#define GA_GDN_MAX_CONV 8 /* conv kernel width (4 in every released model) */

/* Depthwise causal conv1d + SiLU over C channels (ga_hyb_conv_step, token by token):
 * y[t, c] = silu(sum_j w[c, j] * in[t - (K-1) + j, c]) where in[-m..-1] is the state. The state
 * is left holding the last K-1 inputs (T < K-1 keeps the newest of the old ones). */
typedef struct ga_gdn_conv_args {
    const void *x;          /* bf16 (B*T, x_stride): channels [0, C) of each row */
    void *y;                /* bf16 (B*T, y_stride): the SiLU'd conv output; must not overlap x */
    float *state;           /* fp32 (slots, C, K-1): per slot the last K-1 inputs of every channel,
                               oldest first (the CPU op's layout) */
    const int *slots;       /* device (B), or NULL */
    const float *w;         /* fp32 (C, K): the last tap multiplies the newest input */
    int B, T, C, K;         /* K in 1 .. GA_GDN_MAX_CONV */
    int x_stride, y_stride; /* elements between rows, >= C */
} ga_gdn_conv_args;
ga_status ga_gdn_conv(const ga_gdn_conv_args *a, cudaStream_t stream, ga_err *err);

/* The recurrent gated delta rule (the gdn_token part of cpu_hybrid.c after the conv, and
 * ga_hyb_delta_step), all T tokens of each sequence in one launch, the state in registers in
 * between. Per token and value head h (key head hk = h / (Hv/Hk)):
 *   q = l2norm(q_hk) / sqrt(dk), k = l2norm(k_hk)   (l2norm: x * rsqrt(sum x^2 + 1e-6))
 *   g = -exp(A_log[h]) * softplus(a[h] + dt_bias[h]), beta = sigmoid(b[h])
 *   S *= exp(g); S += k (x) beta (v - k^T S); o = q^T S        (S: dk x dv)
 * The conv output [q | k | v] is what q/k/v point into: q = y, k = y + Hk*dk, v = y + 2*Hk*dk
 * with qkv_stride the conv's y_stride. */
typedef struct ga_gdn_delta_args {
    const void *q, *k;            /* bf16 rows (B*T, qkv_stride): key head hk at hk*dk */
    const void *v;                /* bf16 rows (B*T, qkv_stride): value head h at h*dv */
    const void *a, *b;            /* bf16 rows (B*T, ab_stride): raw a[h], b[h] at h */
    const float *A_log, *dt_bias; /* fp32 (Hv) */
    float *state;                 /* fp32 (slots, Hv, dk, dv), row-major per head */
    const int *slots;             /* device (B), or NULL */
    void *o;                      /* bf16 rows (B*T, o_stride): head h at h*dv */
    int B, T, Hk, Hv;             /* Hv a multiple of Hk */
    int dk, dv;                   /* dk in {16, 32, 64, 128, 256}; dv >= 1 */
    int qkv_stride, ab_stride, o_stride;
    int chunk_impl; /* ga_gdn_delta_chunked only: 1 the first version (sequential scan doing
                       everything; kept for A/B), else (0, 2) version 2 (gdn_chunk_v2.cu) */
} ga_gdn_delta_args;
ga_status ga_gdn_delta(const ga_gdn_delta_args *a, cudaStream_t stream, ga_err *err);
/* The argument checks ga_gdn_delta and ga_gdn_delta_chunked share (fn names the caller). */
ga_status ga_gdn_delta_check(const ga_gdn_delta_args *a, const char *fn, ga_err *err);

/* The same rule for one sequence's prefill (a->B == 1) in the chunked form (gdn_chunk.cu): the
 * T tokens in chunks of GA_GDN_CHUNK, each chunk's intra-chunk dependencies solved at once in
 * the WY / UT representation (all chunks in parallel), then one sequential pass over the
 * chunks carrying the state. Equal to T recurrent steps up to fp32 rounding. work: fp32 scratch
 * of ga_gdn_chunk_workspace() bytes (no allocation on the hot path; the size of version 2, which
 * also keeps every chunk's entering state); 354 MiB at T 4096, Hk 16, Hv 32, dk = dv = 128
 * (26 MiB at the hybrid backend's 512-token prefill pieces for Qwen3.5-0.8B), linear in T: a
 * caller prefills longer prompts in pieces. */
#define GA_GDN_CHUNK 64
size_t ga_gdn_chunk_workspace(int T, int Hk, int Hv, int dk, int dv);
ga_status ga_gdn_delta_chunked(const ga_gdn_delta_args *a, float *work, size_t work_bytes,
                               cudaStream_t stream, ga_err *err);

/* Gated RMSNorm per head (ga_hyb_gated_rmsnorm): for each row and head h,
 * out = w * (o * rsqrt(mean(o^2) + eps)) * silu(z), over the head's n values. out may be o. */
typedef struct ga_gdn_gated_norm_args {
    const void *o;   /* bf16 (rows, o_stride): head h at h*n */
    const void *z;   /* bf16 (rows, z_stride): head h at h*n */
    const float *w;  /* fp32 (n): plain weight, shared by the heads */
    void *out;       /* bf16 (rows, out_stride): head h at h*n */
    int rows, heads; /* rows: tokens */
    int n;           /* head size, 1 .. 1024 */
    int o_stride, z_stride, out_stride;
    float eps;
} ga_gdn_gated_norm_args;
ga_status ga_gdn_gated_rmsnorm(const ga_gdn_gated_norm_args *a, cudaStream_t stream, ga_err *err);

/* Zero-centred RMSNorm (ga_hyb_rmsnorm_zc): out = x * rsqrt(mean(x^2) + eps) * (1 + w) over
 * each row of n values: a decoder norm (n = hidden) or a per-head q/k norm (rows = tokens *
 * heads, n = head_dim, x_stride = head_dim). x is bf16 (x_f32 = 0) or fp32 (x_f32 = 1, the
 * residual stream); out bf16 (rows, out_stride); out must not overlap an fp32 x. */
ga_status ga_gdn_rmsnorm_zc(const void *x, int x_f32, const float *w, void *out, int rows, int n,
                            int x_stride, int out_stride, float eps, cudaStream_t stream,
                            ga_err *err);

#ifdef __cplusplus
}
#endif

#endif
