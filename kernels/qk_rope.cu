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
 * Every intermediate is fp32; only the stores round to bf16. cos/sin come from a table the host
 * builds in double precision, so positions in the tens of thousands keep exact angles.
 *
 * Two kernels, one arithmetic:
 *  - k_qk_warp<HD> (hd 64/128/256, every real model): one warp per head vector, flattened over
 *    (token, KV group, q heads | k | v), HD/32 elements a lane at e = lane + 32k, so the rotate
 *    pair (i, i + hd/2) sits in one lane and nothing goes through shared memory. Every load of
 *    a warp (its qkv slice, bias, norm weight, gate rows, position) is issued before the first
 *    use: one memory round trip for prefill (the position is pos0 + t), two for decode
 *    (positions[t] -> cos/sin). 46 registers (hd 128, sm_90a): 40 warps an SM.
 *  - k_qk_generic (any even hd <= 256, e.g. 96): one block per (token, KV group), one warp a
 *    head vector, the vector staged in shared memory (108 registers). Until 2026-12-02 it was
 *    the only kernel: its 117 registers left 4 blocks (16 warps) an SM, each waiting for three
 *    dependent round trips (position, qkv, cos/sin after the shuffles): 16 us for 512 tokens of
 *    the 1.7B shape on the H200 (ncu), which move ~8 MB, ~3 us at the copy rate.
 * Both go through the qk_* helpers below, whose every rounding is pinned (__fadd_rn, __fmul_rn,
 * __fmaf_rn: nvcc and ptxas contract none of them, --use_fast_math or not), so the two kernels,
 * and any launch shape, give the same bits for a token: the sum of squares runs over
 * e = lane, lane + 32, ... in each lane and then the xor butterfly 16..1 in both. The pinned
 * forms are the ones the pre-2026-12-02 kernel compiled to on sm_90a (ptxas had contracted
 * x1*c - x2*s into fma(x1, c, -(x2*s))), so its results are unchanged too.
 */
#include <cuda_bf16.h>

#include "cuda_check.h"
#include "kernels.h"

#define QK_MAX_WARPS 8
#define QK_MAX_HD 256
#define QK_WARP_THREADS 128 /* k_qk_warp: 4 head vectors a block; small blocks spread decode */

struct QkParams {
    const __nv_bfloat16 *qkv;
    const float *bias, *q_norm, *k_norm, *cos, *sin;
    __nv_bfloat16 *q_out, *gate_out, *k_cache, *v_cache;
    const int *positions, *slots, *dest;
    int pos0, slot, n_heads, n_kv, hd, kv_stride, rope_rows, G, gsz, q_rows, qkv_dim, gate_dim;
    int per_head; /* gate values per query head: 0, 1 (headwise) or hd (elementwise) */
    int T;
    float eps;
};

/* ---------------------------------------------------------------- the shared arithmetic */
// One input element in fp32: the GEMM's bf16 value plus its bias (0 without one). The add is
// kept even then: with --use_fast_math it flushes an fp32-denormal bf16 value to 0, as the
// kernel always has.
__device__ __forceinline__ float qk_in(__nv_bfloat16 x, float b) {
    return __fadd_rn(__bfloat162float(x), b);
}

// The warp's sum of squares: each lane's partial (its elements in order e = lane, lane + 32..)
// reduced by the xor butterfly 16, 8, 4, 2, 1; every lane ends with the same value.
__device__ __forceinline__ float qk_warp_sum(float ss) {
    for (int o = 16; o > 0; o >>= 1)
        ss = __fadd_rn(ss, __shfl_xor_sync(0xffffffffu, ss, o));
    return ss;
}

// 1/rms of a head vector, or 1 without a norm weight: rsqrt(ss * rcp(hd) + eps) in one fma.
// That is what `rsqrtf(ss / hd + eps)` compiled to under --use_fast_math on sm_90a (div.approx
// = a * rcp.approx(b), then ptxas fused the multiply with the add); written out so no compiler
// choice is left. rcp.approx(64/128/256) is exact.
__device__ __forceinline__ float qk_inv_rms(float ss, int hd, float eps, bool norm) {
    float r;
    asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"((float)hd));
    return norm ? rsqrtf(__fmaf_rn(ss, r, eps)) : 1.f;
}

// Normalise and rotate one pair (x1 at i, x2 at i + hd/2): rotate_half(x) = [-x2, x1], cos/sin
// repeat over the halves. w1/w2 are the norm weights (1 without a norm).
__device__ __forceinline__ void qk_rope_pair(float v1, float v2, float inv, float w1, float w2,
                                             float c, float s, __nv_bfloat16 *o1,
                                             __nv_bfloat16 *o2) {
    const float x1 = __fmul_rn(__fmul_rn(v1, inv), w1);
    const float x2 = __fmul_rn(__fmul_rn(v2, inv), w2);
    *o1 = __float2bfloat16_rn(__fmaf_rn(x1, c, -__fmul_rn(x2, s)));
    *o2 = __float2bfloat16_rn(__fmaf_rn(x2, c, __fmul_rn(x1, s)));
}

// Token t's RoPE position, its cache row offset (in elements, KV head 0) and whether the host's
// positions are in range. Host validated them; ok = false only keeps a bad one from writing
// out of bounds (nothing of the token is written then).
struct QkTok {
    int pos;
    size_t cache_row; // cache element offset of (token, KV head j) is cache_row + j * kv_stride*hd
    bool ok;
};
__device__ __forceinline__ QkTok qk_token(const QkParams &p, int t) {
    QkTok r;
    r.pos = p.positions ? p.positions[t] : p.pos0 + t;
    const int slot = p.slots ? p.slots[t] : p.slot;
    const int drow = p.dest ? p.dest[t] : 0;
    r.ok = !(r.pos < 0 || (!p.dest && r.pos >= p.kv_stride) || r.pos >= p.rope_rows || drow < 0);
    // Paged: dest[t] is the token's cache row, block dest / kv_stride (kv_stride = the block
    // size), row dest % kv_stride of it; slots: row pos of the slot.
    const size_t blk = p.dest ? (size_t)drow / p.kv_stride : (size_t)slot;
    const size_t row_in = p.dest ? (size_t)drow % p.kv_stride : (size_t)r.pos;
    r.cache_row = (blk * p.n_kv * p.kv_stride + row_in) * p.hd;
    return r;
}

__device__ __forceinline__ size_t qk_cache_off(const QkParams &p, const QkTok &k, int j) {
    return k.cache_row + (size_t)j * p.kv_stride * p.hd;
}

/* ---------------------------------------------------------------- k_qk_warp<HD>
 * Warp w of the launch takes job w = (t * n_kv + j) * (G + 2) + task: task < G is query head
 * jG+task (and that head's gate rows), task G key head j, task G+1 value head j. */
template <int HD> __global__ void __launch_bounds__(QK_WARP_THREADS) k_qk_warp(QkParams p) {
    constexpr int NE = HD / 32; // elements a lane: e = lane + 32k
    constexpr int NH = NE / 2;  // rotate pairs a lane: k < NH with k + NH (hd/2 = 32 NH)
    const int lane = threadIdx.x & 31;
    const int nj = p.G + 2, per_t = p.n_kv * nj;
    const int job = blockIdx.x * (QK_WARP_THREADS / 32) + (threadIdx.x >> 5);
    if (job >= p.T * per_t) return; // whole warps: the shuffles below see all 32 lanes
    const int t = job / per_t, jr = job - t * per_t, j = jr / nj, task = jr - j * nj;
    const bool is_q = task < p.G, is_k = task == p.G, rope = task <= p.G;
    const int kv_dim = p.n_kv * HD;
    const int group = j * (p.G * HD + p.gsz); // start of group j inside the q_proj rows
    const int off = is_q ? group + task * HD : p.q_rows + (is_k ? 0 : kv_dim) + j * HD;
    const __nv_bfloat16 *row = p.qkv + (size_t)t * p.qkv_dim;
    const float *w = is_q ? p.q_norm : is_k ? p.k_norm : nullptr;

    // Loads first, all independent of one another (the position only feeds cos/sin), through
    // the read-only path: nothing here writes what the launch reads.
    __nv_bfloat16 x[NE];
    float b[NE], wv[NE];
#pragma unroll
    for (int k = 0; k < NE; k++) {
        x[k] = __ldg(row + off + lane + 32 * k);
        b[k] = p.bias ? __ldg(p.bias + off + lane + 32 * k) : 0.f;
        wv[k] = w ? __ldg(w + lane + 32 * k) : 1.f;
    }
    // This head's raw gate rows (query warps of gated layouts): 1 value or HD of them.
    const int goff = group + p.G * HD + task * p.per_head;
    __nv_bfloat16 g[NE];
    float gb[NE];
    const int ng = is_q ? (p.per_head == 1 ? (lane == 0) : p.per_head ? NE : 0) : 0;
#pragma unroll
    for (int k = 0; k < NE; k++)
        if (k < ng) {
            g[k] = __ldg(row + goff + lane + 32 * k);
            gb[k] = p.bias ? __ldg(p.bias + goff + lane + 32 * k) : 0.f;
        }
    const QkTok tok = qk_token(p, t);
    const int pos = tok.ok ? tok.pos : 0; // a bad position still reads inside the table
    const float *cs = p.cos + (size_t)pos * (HD / 2), *sn = p.sin + (size_t)pos * (HD / 2);
    float c[NH], s[NH];
#pragma unroll
    for (int k = 0; k < NH; k++)
        c[k] = rope ? __ldg(cs + lane + 32 * k) : 0.f,
        s[k] = rope ? __ldg(sn + lane + 32 * k) : 0.f;

    float v[NE], ss = 0.f;
#pragma unroll
    for (int k = 0; k < NE; k++) {
        v[k] = qk_in(x[k], b[k]);
        ss = __fmaf_rn(v[k], v[k], ss);
    }
    if (!tok.ok) return; // warp-uniform (one token a warp)
    if (rope) {
        const float inv = qk_inv_rms(qk_warp_sum(ss), p.hd, p.eps, w != nullptr);
        __nv_bfloat16 *dst = is_q ? p.q_out + ((size_t)t * p.n_heads + j * p.G + task) * HD
                                  : p.k_cache + qk_cache_off(p, tok, j);
#pragma unroll
        for (int k = 0; k < NH; k++)
            qk_rope_pair(v[k], v[k + NH], inv, wv[k], wv[k + NH], c[k], s[k], dst + lane + 32 * k,
                         dst + lane + 32 * (k + NH));
    } else {
        __nv_bfloat16 *dst = p.v_cache + qk_cache_off(p, tok, j);
#pragma unroll
        for (int k = 0; k < NE; k++)
            dst[lane + 32 * k] = __float2bfloat16_rn(v[k]);
    }
    __nv_bfloat16 *gd =
        p.gate_out + (size_t)t * p.gate_dim + (size_t)j * p.gsz + (size_t)task * p.per_head;
#pragma unroll
    for (int k = 0; k < NE; k++)
        if (k < ng) // no bias: the GEMM's bf16 value, unchanged
            gd[lane + 32 * k] = p.bias ? __float2bfloat16_rn(qk_in(g[k], gb[k])) : g[k];
}

/* ---------------------------------------------------------------- k_qk_generic
 * One block per (token, KV group) with one warp per head vector (G q heads, k, v, gate copy). */
// Normalises (optional) and rotates one head vector src[0..hd) (+ bias), writes dst.
__device__ __forceinline__ void norm_rope_head(const QkParams &p, const __nv_bfloat16 *src,
                                               const float *bias, const float *w, int pos,
                                               float *buf, __nv_bfloat16 *dst, int lane) {
    const int hd = p.hd, half = hd / 2;
    float ss = 0.f;
    for (int e = lane; e < hd; e += 32) {
        const float v = qk_in(src[e], bias ? bias[e] : 0.f);
        buf[e] = v;
        ss = __fmaf_rn(v, v, ss);
    }
    const float inv = qk_inv_rms(qk_warp_sum(ss), hd, p.eps, w != nullptr);
    __syncwarp();
    const float *cs = p.cos + (size_t)pos * half;
    const float *sn = p.sin + (size_t)pos * half;
    for (int i = lane; i < half; i += 32)
        qk_rope_pair(buf[i], buf[i + half], inv, w ? w[i] : 1.f, w ? w[i + half] : 1.f, cs[i],
                     sn[i], dst + i, dst + i + half);
    __syncwarp(); // buf is reused by this warp's next task
}

__global__ void __launch_bounds__(QK_MAX_WARPS * 32) k_qk_generic(QkParams p) {
    __shared__ float bufs[QK_MAX_WARPS][QK_MAX_HD];
    const int t = blockIdx.x, j = blockIdx.y;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int nwarps = blockDim.x >> 5;
    const QkTok tok = qk_token(p, t);
    if (!tok.ok) return;
    const int pos = tok.pos;
    const __nv_bfloat16 *row = p.qkv + (size_t)t * p.qkv_dim;
    const float *brow = p.bias;
    const int group = j * (p.G * p.hd + p.gsz); // start of group j inside the q_proj rows
    const int kv_dim = p.n_kv * p.hd;
    const size_t cache_off = qk_cache_off(p, tok, j);
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
            for (int e = lane; e < p.hd; e += 32)
                p.v_cache[cache_off + e] =
                    __float2bfloat16_rn(qk_in(row[off + e], brow ? brow[off + e] : 0.f));
        } else { // the group's raw gate rows, head-major like gate_out
            const int off = group + p.G * p.hd;
            __nv_bfloat16 *dst = p.gate_out + (size_t)t * p.gate_dim + (size_t)j * p.gsz;
            for (int e = lane; e < p.gsz; e += 32) {
                if (brow)
                    dst[e] = __float2bfloat16_rn(qk_in(row[off + e], brow[off + e]));
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
    const bool warp_hd = a->hd == 64 || a->hd == 128 || a->hd == 256;
    if (a->impl != GA_QK_IMPL_AUTO && a->impl != GA_QK_IMPL_GENERIC &&
        (a->impl != GA_QK_IMPL_WARP || !warp_hd))
        return ga_err_set(err, GA_ERR_ARG,
                          "ga_qk_norm_rope: impl %d unknown or not for head_dim %d (the warp "
                          "kernel takes 64, 128, 256)",
                          (int)a->impl, a->hd);
    if (!a->qkv || !a->q_out || !a->k_cache || !a->v_cache || !a->rope_cos || !a->rope_sin ||
        (a->gate_mode != GA_GATE_NONE && !a->gate_out) || a->kv_stride <= 0 || a->rope_rows <= 0)
        return ga_err_set(err, GA_ERR_ARG, "ga_qk_norm_rope: missing buffer");
    if (!a->positions && !a->dest &&
        (a->pos0 < 0 || a->pos0 + a->T > a->kv_stride || a->pos0 + a->T > a->rope_rows))
        return ga_err_set(err, GA_ERR_ARG,
                          "ga_qk_norm_rope: positions %d..%d outside the cache (%d) or rope "
                          "table (%d)",
                          a->pos0, a->pos0 + a->T - 1, a->kv_stride, a->rope_rows);
    const int G = a->n_heads / a->n_kv_heads;
    // The warp kernel numbers its head vectors (T * (n_heads + 2 n_kv)) in an int.
    if ((long long)a->T * (a->n_heads + 2 * a->n_kv_heads) > 0x7fffffffLL)
        return ga_err_set(err, GA_ERR_ARG, "ga_qk_norm_rope: T %d too large for one launch", a->T);
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
    p.G = G;
    p.per_head = a->gate_mode == GA_GATE_HEADWISE      ? 1
                 : a->gate_mode == GA_GATE_ELEMENTWISE ? a->hd
                                                       : 0;
    p.gsz = G * p.per_head;
    p.gate_dim = p.gsz * a->n_kv_heads;
    p.q_rows = a->n_kv_heads * (G * a->hd + p.gsz);
    p.qkv_dim = p.q_rows + 2 * a->n_kv_heads * a->hd;
    p.T = a->T;
    p.eps = a->eps;
    if (warp_hd && a->impl != GA_QK_IMPL_GENERIC) {
        // One warp per head vector; the choice depends on hd alone, never on T, so a token's
        // bits do not depend on how many others share its launch (decode vs recompute).
        const long long jobs = (long long)a->T * (a->n_heads + 2 * a->n_kv_heads);
        const unsigned grid =
            (unsigned)((jobs + QK_WARP_THREADS / 32 - 1) / (QK_WARP_THREADS / 32));
        if (a->hd == 64)
            k_qk_warp<64><<<grid, QK_WARP_THREADS, 0, stream>>>(p);
        else if (a->hd == 128)
            k_qk_warp<128><<<grid, QK_WARP_THREADS, 0, stream>>>(p);
        else
            k_qk_warp<256><<<grid, QK_WARP_THREADS, 0, stream>>>(p);
    } else {
        int nw = G + 2 + (p.gsz > 0);
        if (nw > QK_MAX_WARPS) nw = QK_MAX_WARPS;
        const dim3 grid(a->T, a->n_kv_heads);
        k_qk_generic<<<grid, nw * 32, 0, stream>>>(p);
    }
    GA_CUDA_CHECK_LAUNCH();
    return GA_OK;
}
