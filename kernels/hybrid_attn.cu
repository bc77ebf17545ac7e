/*
 * The pass between a hybrid full-attention layer's fused [q_proj | k | v] GEMM and the
 * attention kernels (ga_hyb_attn_prep, hybrid.h), following attn_token of src/cpu/cpu_hybrid.c:
 * q_proj gives per query head [hd query | hd gate] (not the per-KV-group layout of the paper
 * checkpoints that ga_qk_norm_rope reads), every q/k norm is zero-centred (1 + w), and RoPE
 * covers only the first rd = head_dim * partial_rotary_factor dimensions, rotate-half within
 * them. One block per (token, head vector) with one thread per dimension: the norm is a block
 * sum, and the rotation reads its partner dimension from shared memory.
 */
#include <cuda_bf16.h>

#include "cuda_check.h"
#include "hybrid.h"

typedef __nv_bfloat16 bf16;
#define PREP_MAX_HD 512

/* grid (T, n_heads + 2 * n_kv): y < n_heads a query head (and its gate), then the K heads,
 * then the V heads. */
__global__ void __launch_bounds__(PREP_MAX_HD) k_hyb_attn_prep(ga_hyb_attn_prep_args a) {
    __shared__ float v[PREP_MAX_HD];
    __shared__ float warp_ss[PREP_MAX_HD / 32];
    const int t = blockIdx.x, y = blockIdx.y, i = threadIdx.x, hd = a.hd;
    const int nh = a.n_heads, nkv = a.n_kv_heads;
    const int pos = a.positions[t];
    // The host validated positions and cache rows; this guard only keeps a bad one from
    // writing out of bounds.
    const int drow = a.dest ? a.dest[t] : 0;
    if (pos < 0 || pos >= a.rope_rows || drow < 0 || (!a.dest && pos >= a.kv_stride)) return;
    const bf16 *row = static_cast<const bf16 *>(a.qkv) + (size_t)t * a.qkv_stride;
    const size_t blk = a.dest ? (size_t)drow / a.kv_stride : (size_t)a.slots[t];
    const size_t off_in = a.dest ? (size_t)drow % a.kv_stride : (size_t)pos;
    const int q_rows = 2 * nh * hd, kv_dim = nkv * hd;
    if (y >= nh + nkv) { // V head: a copy into the cache
        const int j = y - nh - nkv;
        static_cast<bf16 *>(a.v_cache)[((blk * nkv + j) * a.kv_stride + off_in) * hd + i] =
            row[q_rows + kv_dim + j * hd + i];
        return;
    }
    const bool is_q = y < nh;
    const bf16 *src = is_q ? row + (size_t)y * 2 * hd : row + q_rows + (y - nh) * hd;
    if (is_q) // the gate half, raw: sigmoid is the attention epilogue's
        static_cast<bf16 *>(a.gate_out)[((size_t)t * nh + y) * hd + i] = src[hd + i];
    const float x = __bfloat162float(src[i]);
    float ss = x * x;
    for (int o = 16; o > 0; o >>= 1)
        ss += __shfl_xor_sync(0xffffffffu, ss, o);
    if ((i & 31) == 0) warp_ss[i >> 5] = ss;
    __syncthreads();
    float tot = 0.f;
    for (int w = 0; w < hd / 32; w++)
        tot += warp_ss[w];
    const float *nw = is_q ? a.q_norm : a.k_norm;
    // ga_hyb_rmsnorm_zc: x * rsqrt(mean(x^2) + eps) * (1 + w)
    const float xn = x * rsqrtf(tot / hd + a.eps) * (1.f + nw[i]);
    v[i] = xn;
    __syncthreads();
    const int half = a.rd / 2;
    float out = xn;
    if (i < a.rd) {
        const int f = i < half ? i : i - half;
        const float c = a.rope_cos[(size_t)pos * half + f], s = a.rope_sin[(size_t)pos * half + f];
        // rotate_half within the rotary part: [x1, x2] -> [x1 c - x2 s, x2 c + x1 s]
        out = i < half ? xn * c - v[i + half] * s : xn * c + v[i - half] * s;
    }
    if (is_q) {
        static_cast<bf16 *>(a.q_out)[((size_t)t * nh + y) * hd + i] = __float2bfloat16_rn(out);
    } else {
        const int j = y - nh;
        static_cast<bf16 *>(a.k_cache)[((blk * nkv + j) * a.kv_stride + off_in) * hd + i] =
            __float2bfloat16_rn(out);
    }
}

extern "C" ga_status ga_hyb_attn_prep(const ga_hyb_attn_prep_args *a, cudaStream_t stream,
                                      ga_err *err) {
    if (!a) return ga_err_set(err, GA_ERR_ARG, "ga_hyb_attn_prep: args is NULL");
    if (!a->qkv || !a->q_norm || !a->k_norm || !a->rope_cos || !a->rope_sin || !a->q_out ||
        !a->gate_out || !a->k_cache || !a->v_cache || !a->positions || (!a->dest && !a->slots))
        return ga_err_set(err, GA_ERR_ARG,
                          "ga_hyb_attn_prep: qkv, norms, rope tables, outputs, caches, positions "
                          "and slots or dest must be set");
    if (a->hd < 32 || a->hd > PREP_MAX_HD || a->hd % 32 || a->rd < 2 || a->rd % 2 || a->rd > a->hd)
        return ga_err_set(err, GA_ERR_ARG,
                          "ga_hyb_attn_prep: head_dim %d (a multiple of 32 up to %d), rotary dim "
                          "%d (even, <= head_dim)",
                          a->hd, PREP_MAX_HD, a->rd);
    if (a->T < 0 || a->n_heads < 1 || a->n_kv_heads < 1 || a->n_heads % a->n_kv_heads ||
        a->kv_stride < 1 || a->rope_rows < 1 ||
        a->qkv_stride < (2 * a->n_heads + 2 * a->n_kv_heads) * a->hd)
        return ga_err_set(err, GA_ERR_ARG,
                          "ga_hyb_attn_prep: T %d, heads %d / %d, kv_stride %d, qkv_stride %d",
                          a->T, a->n_heads, a->n_kv_heads, a->kv_stride, a->qkv_stride);
    if (a->T == 0) return GA_OK;
    if (a->n_heads + 2 * a->n_kv_heads > 65535)
        return ga_err_set(err, GA_ERR_ARG, "ga_hyb_attn_prep: %d heads", a->n_heads);
    k_hyb_attn_prep<<<dim3(a->T, a->n_heads + 2 * a->n_kv_heads), a->hd, 0, stream>>>(*a);
    GA_CUDA_CHECK_LAUNCH();
    return GA_OK;
}
