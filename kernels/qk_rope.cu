/*
 * The one pass between the fused QKV(+gate) GEMM and attention. Each row of qkv is
 * [q_proj rows | k rows | v rows]; q_proj rows are grouped per KV head j: the G*hd query rows
 * of heads jG..jG+G-1, then the group's gate rows (G headwise or G*hd elementwise). This
 * kernel adds the projection bias, splits query from gate, applies the per-head RMSNorm
 * (q_norm / k_norm over hd, fp32) and rotate-half RoPE to q and k, and writes:
 *   q    -> q_out (T, n_heads, hd) bf16
 *   gate -> gate_out (T, gate_dim) bf16, raw (sigmoid is applied in the attention epilogue)
 *   k, v -> the KV cache at (slot, position) of each token, or (paged) at the cache row
 *           dest[t] the host computed from the sequence's block table.
 * One block per (token, KV group) with one warp per head vector (G q heads, k, v, gate copy).
 * Every intermediate is fp32; only the stores round to bf16. cos/sin come from a table the host
 * builds in double precision, so positions in the tens of thousands keep exact angles.
 */
#include <cuda_bf16.h>

#include "cuda_check.h"
#include "kernels.h"

#define QK_MAX_WARPS 8
#define QK_MAX_HD 256

struct QkParams {
    const __nv_bfloat16 *qkv;
    const float *bias, *q_norm, *k_norm, *cos, *sin;
    __nv_bfloat16 *q_out, *gate_out, *k_cache, *v_cache;
    const int *positions, *slots, *dest;
    int pos0, slot, n_heads, n_kv, hd, kv_stride, rope_rows, G, gsz, q_rows, qkv_dim, gate_dim;
    float eps;
};

// Normalises (optional) and rotates one head vector src[0..hd) (+ bias), writes dst.
__device__ __forceinline__ void norm_rope_head(const QkParams &p, const __nv_bfloat16 *src,
                                               const float *bias, const float *w, int pos,
                                               float *buf, __nv_bfloat16 *dst, int lane) {
    const int hd = p.hd, half = hd / 2;
    float ss = 0.f;
    for (int e = lane; e < hd; e += 32) {
        const float v = __bfloat162float(src[e]) + (bias ? bias[e] : 0.f);
        buf[e] = v;
        ss += v * v;
    }
    for (int o = 16; o > 0; o >>= 1)
        ss += __shfl_xor_sync(0xffffffffu, ss, o);
    const float inv = w ? rsqrtf(ss / hd + p.eps) : 1.f;
    __syncwarp();
    const float *cs = p.cos + (size_t)pos * half;
    const float *sn = p.sin + (size_t)pos * half;
    for (int i = lane; i < half; i += 32) {
        const float x1 = buf[i] * inv * (w ? w[i] : 1.f);
        const float x2 = buf[i + half] * inv * (w ? w[i + half] : 1.f);
        const float c = cs[i], s = sn[i];
        // rotate_half(x) = [-x2, x1]; cos/sin repeat over the two halves.
        dst[i] = __float2bfloat16_rn(x1 * c - x2 * s);
        dst[i + half] = __float2bfloat16_rn(x2 * c + x1 * s);
    }
    __syncwarp(); // buf is reused by this warp's next task
}

__global__ void __launch_bounds__(QK_MAX_WARPS * 32) k_qk_norm_rope(QkParams p) {
    __shared__ float bufs[QK_MAX_WARPS][QK_MAX_HD];
    const int t = blockIdx.x, j = blockIdx.y;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int nwarps = blockDim.x >> 5;
    const int pos = p.positions ? p.positions[t] : p.pos0 + t;
    const int slot = p.slots ? p.slots[t] : p.slot;
    // Host validated positions; this guard only keeps a bad one from writing out of bounds.
    const int drow = p.dest ? p.dest[t] : 0;
    if (pos < 0 || (!p.dest && pos >= p.kv_stride) || pos >= p.rope_rows || drow < 0) return;
    const __nv_bfloat16 *row = p.qkv + (size_t)t * p.qkv_dim;
    const float *brow = p.bias;
    const int group = j * (p.G * p.hd + p.gsz); // start of group j inside the q_proj rows
    const int kv_dim = p.n_kv * p.hd;
    // Paged: dest[t] is the token's cache row, block dest / kv_stride (kv_stride = the block
    // size), row dest % kv_stride of it; slots: row pos of the slot.
    const size_t blk = p.dest ? (size_t)drow / p.kv_stride : (size_t)slot;
    const size_t row_in = p.dest ? (size_t)drow % p.kv_stride : (size_t)pos;
    const size_t cache_off = ((blk * p.n_kv + j) * p.kv_stride + row_in) * p.hd;
    const int ntasks = p.G + 2 + (p.gsz > 0);
    for (int task = warp; task < ntasks; task += nwarps) {
        if (task < p.G) { // query head jG+task
            const int off = group + task * p.hd;
            const int h = j * p.G + task;
            norm_rope_head(p, row + off, brow ? brow + off : nullptr, p.q_norm, pos, bufs[warp],
                           p.q_out + ((size_t)t * p.n_heads + h) * p.hd, lane);
        } else if (task == p.G) { // key head j
            const int off = p.q_rows + j * p.hd;
            norm_rope_head(p, row + off, brow ? brow + off : nullptr, p.k_norm, pos, bufs[warp],
                           p.k_cache + cache_off, lane);
        } else if (task == p.G + 1) { // value head j: bias only
            const int off = p.q_rows + kv_dim + j * p.hd;
            for (int e = lane; e < p.hd; e += 32) {
                const float v = __bfloat162float(row[off + e]) + (brow ? brow[off + e] : 0.f);
                p.v_cache[cache_off + e] = __float2bfloat16_rn(v);
            }
        } else { // the group's raw gate rows, head-major like gate_out
            const int off = group + p.G * p.hd;
            __nv_bfloat16 *dst = p.gate_out + (size_t)t * p.gate_dim + (size_t)j * p.gsz;
            for (int e = lane; e < p.gsz; e += 32) {
                if (brow)
                    dst[e] = __float2bfloat16_rn(__bfloat162float(row[off + e]) + brow[off + e]);
                else
                    dst[e] = row[off + e]; // no bias: the GEMM's bf16 value, unchanged
            }
        }
    }
}

extern "C" ga_status ga_qk_norm_rope(const ga_qk_rope_args *a, cudaStream_t stream, ga_err *err) {
    if (!a || a->T < 0 || a->n_heads <= 0 || a->n_kv_heads <= 0 || a->n_heads % a->n_kv_heads)
        return ga_err_set(err, GA_ERR_ARG, "ga_qk_norm_rope: bad head counts");
    if (a->hd <= 0 || a->hd % 2 || a->hd > QK_MAX_HD)
        return ga_err_set(err, GA_ERR_ARG, "ga_qk_norm_rope: head_dim %d must be even and <= %d",
                          a->hd, QK_MAX_HD);
    if (!a->qkv || !a->q_out || !a->k_cache || !a->v_cache || !a->rope_cos || !a->rope_sin ||
        (a->gate_mode != GA_GATE_NONE && !a->gate_out) || a->kv_stride <= 0 || a->rope_rows <= 0)
        return ga_err_set(err, GA_ERR_ARG, "ga_qk_norm_rope: missing buffer");
    if (!a->positions && !a->dest &&
        (a->pos0 < 0 || a->pos0 + a->T > a->kv_stride || a->pos0 + a->T > a->rope_rows))
        return ga_err_set(err, GA_ERR_ARG,
                          "ga_qk_norm_rope: positions %d..%d outside the cache (%d) or rope "
                          "table (%d)",
                          a->pos0, a->pos0 + a->T - 1, a->kv_stride, a->rope_rows);
    if (a->T == 0) return GA_OK;
    QkParams p;
    p.qkv = static_cast<const __nv_bfloat16 *>(a->qkv);
    p.bias = a->bias;
    p.q_norm = a->q_norm;
    p.k_norm = a->k_norm;
    p.cos = a->rope_cos;
    p.sin = a->rope_sin;
    p.q_out = static_cast<__nv_bfloat16 *>(a->q_out);
    p.gate_out = static_cast<__nv_bfloat16 *>(a->gate_out);
    p.k_cache = static_cast<__nv_bfloat16 *>(a->k_cache);
    p.v_cache = static_cast<__nv_bfloat16 *>(a->v_cache);
    p.positions = a->positions;
    p.slots = a->slots;
    p.dest = a->dest;
    p.pos0 = a->pos0;
    p.slot = a->slot;
    p.n_heads = a->n_heads;
    p.n_kv = a->n_kv_heads;
    p.hd = a->hd;
    p.kv_stride = a->kv_stride;
    p.rope_rows = a->rope_rows;
    p.G = a->n_heads / a->n_kv_heads;
    p.gsz = a->gate_mode == GA_GATE_HEADWISE      ? p.G
            : a->gate_mode == GA_GATE_ELEMENTWISE ? p.G * a->hd
                                                  : 0;
    p.gate_dim = p.gsz * a->n_kv_heads;
    p.q_rows = a->n_kv_heads * (p.G * a->hd + p.gsz);
    p.qkv_dim = p.q_rows + 2 * a->n_kv_heads * a->hd;
    p.eps = a->eps;
    int nw = p.G + 2 + (p.gsz > 0);
    if (nw > QK_MAX_WARPS) nw = QK_MAX_WARPS;
    const dim3 grid(a->T, a->n_kv_heads);
    k_qk_norm_rope<<<grid, nw * 32, 0, stream>>>(p);
    GA_CUDA_CHECK_LAUNCH();
    return GA_OK;
}
