/*
 * The MoE block's device-side bookkeeping for the hybrid backend (hybrid.h): routing, grouping
 * the routed rows by expert, gathering them, the weighted combine, and the grouped expert
 * product of small batches (ga_moe_expert_gemm: every expert's rows in one launch, each block
 * reading its expert and row count from the device offsets, so a decode step needs no host
 * round trip and can be captured in a graph). Prefill chunks still take one cuBLAS GEMM pair
 * per active expert (cuda_hybrid_moe.c). Everything here is deterministic: the grouping depends
 * on the routing only, the combine sums the top-k contributions of a row in k order, then the
 * shared expert, as ga_hyb_moe does, with no atomics, and a row's expert product is one fixed
 * reduction tree over K whatever the batch.
 *
 * FP8 experts (ga_moe_expert_gemm_f8) are read as codes and widened on load, for the decode
 * steps; prefill chunks dequantise each active expert before its cuBLAS GEMMs
 * (cuda_hybrid_moe.c says why).
 *
 * Precision: softmax, top-k and the weights in fp32 (the CPU reference uses double; a top-k
 * tie flipped by that rounding is a near-tie of the router, as with any bf16 activation).
 * Built with --use_fast_math: expf is the ex2.approx form (relative error ~1e-7 here).
 */
#include <cuda_bf16.h>
#include <stdint.h>

#include "cuda_check.h"
#include "fp8_common.cuh"
#include "hybrid.h"
#include "kernels.h"

typedef __nv_bfloat16 bf16;
#define ROUTE_THREADS 256
#define SORT_THREADS 1024

__device__ __forceinline__ float block_reduce(float v, bool is_max, float *sh) {
    for (int o = 16; o > 0; o >>= 1) {
        const float u = __shfl_xor_sync(0xffffffffu, v, o);
        v = is_max ? fmaxf(v, u) : v + u;
    }
    const int w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    __syncthreads(); // sh free from a previous reduction
    if ((threadIdx.x & 31) == 0) sh[w] = v;
    __syncthreads();
    float r = sh[0];
    for (int i = 1; i < nw; i++)
        r = is_max ? fmaxf(r, sh[i]) : r + sh[i];
    return r;
}

/* One block per row; p (E floats, dynamic shared memory) holds the probabilities. */
__global__ void __launch_bounds__(ROUTE_THREADS)
    k_moe_route(const float *__restrict__ logits, int E, int K, bool norm_topk, int *idx,
                float *wout) {
    extern __shared__ float p[];
    __shared__ float red[ROUTE_THREADS / 32];
    __shared__ float best_v[ROUTE_THREADS / 32];
    __shared__ int best_i[ROUTE_THREADS / 32];
    __shared__ float sel_w[64];
    const int r = blockIdx.x, tid = threadIdx.x;
    const float *l = logits + (size_t)r * E;
    float mx = -INFINITY;
    for (int e = tid; e < E; e += blockDim.x)
        mx = fmaxf(mx, l[e]);
    mx = block_reduce(mx, true, red);
    float s = 0.f;
    for (int e = tid; e < E; e += blockDim.x) {
        const float x = expf(l[e] - mx);
        p[e] = x;
        s += x;
    }
    s = block_reduce(s, false, red);
    for (int e = tid; e < E; e += blockDim.x)
        p[e] /= s;
    __syncthreads();
    float wsum = 0.f;
    for (int k = 0; k < K; k++) { // largest first, ties to the lower index
        float bv = -1.f;
        int bi = 0x7fffffff;
        for (int e = tid; e < E; e += blockDim.x)
            if (p[e] > bv) bv = p[e], bi = e; // e ascends per thread: the first of equals stays
        for (int o = 16; o > 0; o >>= 1) {
            const float ov = __shfl_xor_sync(0xffffffffu, bv, o);
            const int oi = __shfl_xor_sync(0xffffffffu, bi, o);
            if (ov > bv || (ov == bv && oi < bi)) bv = ov, bi = oi;
        }
        if ((tid & 31) == 0) best_v[tid >> 5] = bv, best_i[tid >> 5] = bi;
        __syncthreads();
        if (tid == 0) {
            for (int w = 1; w < (int)(blockDim.x >> 5); w++)
                if (best_v[w] > bv || (best_v[w] == bv && best_i[w] < bi))
                    bv = best_v[w], bi = best_i[w];
            if (bi >= E) bi = 0; // a NaN row: nothing compares greater; keep indices valid
            idx[(size_t)r * K + k] = bi;
            sel_w[k] = p[bi];
            wsum += p[bi];
            p[bi] = -2.f; // taken: below every probability
        }
        __syncthreads();
    }
    if (tid == 0)
        for (int k = 0; k < K; k++)
            wout[(size_t)r * K + k] = norm_topk ? sel_w[k] / wsum : sel_w[k];
}

/* One block: each thread owns experts e = tid, tid + blockDim, ... and walks the entries in
 * order, so positions inside an expert follow entry order. counts live in offsets first. */
__global__ void __launch_bounds__(SORT_THREADS)
    k_moe_sort(const int *__restrict__ idx, int n, int K, int E, int *offsets, int *src_row,
               int *pos_of) {
    const int tid = threadIdx.x;
    for (int e = tid; e < E; e += blockDim.x) {
        int c = 0;
        for (int i = 0; i < n; i++)
            c += idx[i] == e;
        offsets[e + 1] = c;
    }
    __syncthreads();
    if (tid == 0) {
        offsets[0] = 0;
        for (int e = 0; e < E; e++)
            offsets[e + 1] += offsets[e];
    }
    __syncthreads();
    for (int e = tid; e < E; e += blockDim.x) {
        int p = offsets[e];
        for (int i = 0; i < n; i++)
            if (idx[i] == e) {
                src_row[p] = i / K;
                pos_of[i] = p++;
            }
    }
}

__global__ void k_moe_gather(const bf16 *__restrict__ x, const int *__restrict__ src_row, int H,
                             bf16 *__restrict__ out) {
    const int p = blockIdx.x;
    const bf16 *s = x + (size_t)src_row[p] * H;
    bf16 *d = out + (size_t)p * H;
    for (int i = threadIdx.x; i < H; i += blockDim.x)
        d[i] = s[i];
}

__global__ void k_moe_combine(const float *__restrict__ y, const int *__restrict__ pos_of,
                              const float *__restrict__ w, const float *__restrict__ shared,
                              const float *__restrict__ sg, float *__restrict__ out, int K, int H) {
    const int r = blockIdx.x;
    const float g = shared ? 1.f / (1.f + expf(-sg[r])) : 0.f;
    for (int i = threadIdx.x; i < H; i += blockDim.x) {
        float acc = 0.f;
        for (int k = 0; k < K; k++)
            acc += w[(size_t)r * K + k] * y[(size_t)pos_of[(size_t)r * K + k] * H + i];
        if (shared) acc += g * shared[(size_t)r * H + i];
        out[(size_t)r * H + i] = acc;
    }
}

/* ga_moe_expert_gemm: block (p, column tile). Sorted position p leads a group of up to
 * EG_ROWS rows of its expert (the positions off[e], off[e] + EG_ROWS, ...); any other p exits,
 * so every row is computed once and a group reads its expert's weights once. Each warp owns
 * EG_CPW columns; its lanes stride over K (8 elements a lane with VEC, 16-byte loads), then one
 * xor-shuffle tree: a row's result depends on its own inputs only, not on the group it is in.
 *
 * F8 (ga_moe_expert_gemm_f8, VEC only): w holds e4m3 codes, a lane loads the 8 codes of the
 * chunk the bf16 form loads as 16 bytes and widens each to bf16(fp32(code) * scale)
 * (fp8_common.cuh): the same 8 floats the bf16 form widens from the dequantised upload, then
 * the same FMAs in the same order, so the two are bitwise equal at half the weight bytes. */
#define EG_ROWS 4
#define EG_THREADS 256
#define EG_CPW 2
#define EG_COLS (EG_THREADS / 32 * EG_CPW)

typedef struct eg_f8 {
    const float *scale; /* F8: fp32 block scales, kb a row */
    const int *srow;    /* F8: (E * N) the scale row of each expert weight row */
    int kb, kshift;     /* F8: scale columns; log2(block / 8) */
} eg_f8;

template <bool VEC, bool F32, bool F8>
__global__ void __launch_bounds__(EG_THREADS)
    k_moe_expert_gemm(const bf16 *__restrict__ x, const void *__restrict__ w, const eg_f8 q,
                      const int *__restrict__ off, int E, int N, int K, void *__restrict__ y) {
    static_assert(VEC || !F8, "FP8 experts take the vector path only");
    const int p = blockIdx.x;
    int lo = 0, hi = E - 1; /* the expert of p: the last e with off[e] <= p (off[E] = n > p) */
    while (lo < hi) {
        const int mid = (lo + hi + 1) >> 1;
        if (off[mid] <= p)
            lo = mid;
        else
            hi = mid - 1;
    }
    const int e = lo, a = off[e];
    if ((p - a) % EG_ROWS) return;
    const int rows = min(EG_ROWS, off[e + 1] - p);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int c0 = blockIdx.y * EG_COLS + warp * EG_CPW;
    const bf16 *xp = x + (size_t)p * K;
    float acc[EG_CPW][EG_ROWS];
#pragma unroll
    for (int j = 0; j < EG_CPW; j++)
#pragma unroll
        for (int r = 0; r < EG_ROWS; r++)
            acc[j][r] = 0.f;
#pragma unroll
    for (int j = 0; j < EG_CPW; j++) {
        const int c = c0 + j;
        if (c >= N) break;
        const size_t wrow = (size_t)e * N + c; /* the weight row, in (E * N, K) */
        if constexpr (VEC) {
            const float *sr = nullptr;
            if constexpr (F8) sr = q.scale + (size_t)__ldg(q.srow + wrow) * q.kb;
            for (int k = lane * 8; k < K; k += 32 * 8) {
                float wf[8];
                if constexpr (F8) {
                    const uint2 wv = *reinterpret_cast<const uint2 *>(
                        static_cast<const uint8_t *>(w) + wrow * K + k);
                    e4m3x8_to_f32(wv, __ldg(sr + ((k >> 3) >> q.kshift)), wf);
                } else {
                    const uint4 wv = *reinterpret_cast<const uint4 *>(static_cast<const bf16 *>(w) +
                                                                      wrow * K + k);
                    const __nv_bfloat162 *w2 = reinterpret_cast<const __nv_bfloat162 *>(&wv);
#pragma unroll
                    for (int i = 0; i < 4; i++) {
                        const float2 t = __bfloat1622float2(w2[i]);
                        wf[2 * i] = t.x;
                        wf[2 * i + 1] = t.y;
                    }
                }
#pragma unroll
                for (int r = 0; r < EG_ROWS; r++) {
                    if (r >= rows) break;
                    const uint4 xv = *reinterpret_cast<const uint4 *>(xp + (size_t)r * K + k);
                    const __nv_bfloat162 *x2 = reinterpret_cast<const __nv_bfloat162 *>(&xv);
                    float s = acc[j][r];
#pragma unroll
                    for (int i = 0; i < 4; i++) {
                        const float2 xf = __bfloat1622float2(x2[i]);
                        s = fmaf(wf[2 * i], xf.x, s);
                        s = fmaf(wf[2 * i + 1], xf.y, s);
                    }
                    acc[j][r] = s;
                }
            }
        } else {
            const bf16 *wr = static_cast<const bf16 *>(w) + wrow * K;
            for (int k = lane; k < K; k += 32) {
                const float wf = __bfloat162float(wr[k]);
#pragma unroll
                for (int r = 0; r < EG_ROWS; r++)
                    if (r < rows)
                        acc[j][r] = fmaf(wf, __bfloat162float(xp[(size_t)r * K + k]), acc[j][r]);
            }
        }
    }
#pragma unroll
    for (int j = 0; j < EG_CPW; j++)
#pragma unroll
        for (int r = 0; r < EG_ROWS; r++)
#pragma unroll
            for (int o = 16; o > 0; o >>= 1)
                acc[j][r] += __shfl_xor_sync(0xffffffffu, acc[j][r], o);
    if (lane) return;
#pragma unroll
    for (int j = 0; j < EG_CPW; j++) {
        const int c = c0 + j;
        if (c >= N) break;
#pragma unroll
        for (int r = 0; r < EG_ROWS; r++) {
            if (r >= rows) break;
            const size_t at = (size_t)(p + r) * N + c;
            if (F32)
                static_cast<float *>(y)[at] = acc[j][r];
            else
                static_cast<bf16 *>(y)[at] = __float2bfloat16(acc[j][r]);
        }
    }
}

extern "C" ga_status ga_moe_route(const float *logits, int rows, int E, int K, bool norm_topk,
                                  int *idx, float *w, cudaStream_t stream, ga_err *err) {
    if (!logits || !idx || !w || rows < 0 || E < 1 || E > GA_MOE_MAX_EXPERTS || K < 1 || K > E ||
        K > 64)
        return ga_err_set(err, GA_ERR_ARG, "ga_moe_route: rows %d, E %d (1..%d), K %d (1..64)",
                          rows, E, GA_MOE_MAX_EXPERTS, K);
    if (rows == 0) return GA_OK;
    if (rows > 0x7fffffff / 64) return ga_err_set(err, GA_ERR_ARG, "ga_moe_route: %d rows", rows);
    k_moe_route<<<rows, ROUTE_THREADS, (size_t)E * sizeof(float), stream>>>(logits, E, K, norm_topk,
                                                                            idx, w);
    GA_CUDA_CHECK_LAUNCH();
    return GA_OK;
}

extern "C" ga_status ga_moe_sort(const int *idx, int n, int K, int E, int *offsets, int *src_row,
                                 int *pos_of, cudaStream_t stream, ga_err *err) {
    if (!idx || !offsets || !src_row || !pos_of || n < 0 || K < 1 || E < 1 ||
        E > GA_MOE_MAX_EXPERTS)
        return ga_err_set(err, GA_ERR_ARG, "ga_moe_sort: n %d, K %d, E %d (1..%d)", n, K, E,
                          GA_MOE_MAX_EXPERTS);
    k_moe_sort<<<1, SORT_THREADS, 0, stream>>>(idx, n, K, E, offsets, src_row, pos_of);
    GA_CUDA_CHECK_LAUNCH();
    return GA_OK;
}

extern "C" ga_status ga_moe_gather(const void *x, const int *src_row, int n, int H, void *out,
                                   cudaStream_t stream, ga_err *err) {
    if (!x || !src_row || !out || n < 0 || H < 1)
        return ga_err_set(err, GA_ERR_ARG, "ga_moe_gather: n %d, H %d", n, H);
    if (n == 0) return GA_OK;
    k_moe_gather<<<n, 256, 0, stream>>>(static_cast<const bf16 *>(x), src_row, H,
                                        static_cast<bf16 *>(out));
    GA_CUDA_CHECK_LAUNCH();
    return GA_OK;
}

extern "C" ga_status ga_moe_combine(const float *y, const int *pos_of, const float *w,
                                    const float *shared, const float *sg, float *out, int rows,
                                    int K, int H, cudaStream_t stream, ga_err *err) {
    if (!y || !pos_of || !w || !out || (!shared != !sg) || rows < 0 || K < 1 || H < 1)
        return ga_err_set(err, GA_ERR_ARG,
                          "ga_moe_combine: rows %d, K %d, H %d (shared and sg both or neither)",
                          rows, K, H);
    if (rows == 0) return GA_OK;
    k_moe_combine<<<rows, 256, 0, stream>>>(y, pos_of, w, shared, sg, out, K, H);
    GA_CUDA_CHECK_LAUNCH();
    return GA_OK;
}

static bool eg_args_ok(const void *x, const void *w, const int *offsets, const void *y, int n,
                       int E, int N, int K) {
    return x && w && offsets && y && n >= 0 && E >= 1 && E <= GA_MOE_MAX_EXPERTS && N >= 1 &&
           K >= 1 && (N + EG_COLS - 1) / EG_COLS <= 65535;
}

extern "C" ga_status ga_moe_expert_gemm(const void *x, const void *w, const int *offsets, int n,
                                        int E, int N, int K, void *y, bool y_f32,
                                        cudaStream_t stream, ga_err *err) {
    if (!eg_args_ok(x, w, offsets, y, n, E, N, K))
        return ga_err_set(err, GA_ERR_ARG, "ga_moe_expert_gemm: n %d, E %d (1..%d), N %d, K %d", n,
                          E, GA_MOE_MAX_EXPERTS, N, K);
    if (n == 0) return GA_OK;
    const bf16 *xb = static_cast<const bf16 *>(x);
    const bool vec = K % 8 == 0 && ((uintptr_t)x % 16 == 0) && ((uintptr_t)w % 16 == 0);
    const dim3 grid((unsigned)n, (unsigned)((N + EG_COLS - 1) / EG_COLS));
    const eg_f8 q = {};
    if (vec && y_f32)
        k_moe_expert_gemm<true, true, false>
            <<<grid, EG_THREADS, 0, stream>>>(xb, w, q, offsets, E, N, K, y);
    else if (vec)
        k_moe_expert_gemm<true, false, false>
            <<<grid, EG_THREADS, 0, stream>>>(xb, w, q, offsets, E, N, K, y);
    else if (y_f32)
        k_moe_expert_gemm<false, true, false>
            <<<grid, EG_THREADS, 0, stream>>>(xb, w, q, offsets, E, N, K, y);
    else
        k_moe_expert_gemm<false, false, false>
            <<<grid, EG_THREADS, 0, stream>>>(xb, w, q, offsets, E, N, K, y);
    GA_CUDA_CHECK_LAUNCH();
    return GA_OK;
}

extern "C" ga_status ga_moe_expert_gemm_f8(const void *x, const void *w8, const ga_f8_scales *f8,
                                           const int *offsets, int n, int E, int N, int K, void *y,
                                           bool y_f32, cudaStream_t stream, ga_err *err) {
    /* the vector path's conditions (the bf16 form takes it on the same x and K with its 16-byte
     * aligned weights), and whole 8-code chunks per scale block */
    const int b = f8 ? f8->block : 0;
    if (!eg_args_ok(x, w8, offsets, y, n, E, N, K) || !f8 || !f8->scale || !f8->srow || b < 8 ||
        (b & (b - 1)) || K % 8 || f8->kb != (K + b - 1) / b || (uintptr_t)x % 16 ||
        (uintptr_t)w8 % 8)
        return ga_err_set(err, GA_ERR_ARG,
                          "ga_moe_expert_gemm_f8: n %d, E %d (1..%d), N %d, K %d (a multiple of "
                          "8), block %d (a power of two >= 8), x 16- and w 8-byte aligned",
                          n, E, GA_MOE_MAX_EXPERTS, N, K, b);
    if (n == 0) return GA_OK;
    int kshift = 0;
    while ((8 << kshift) < b)
        kshift++;
    const eg_f8 q = {f8->scale, f8->srow, f8->kb, kshift};
    const bf16 *xb = static_cast<const bf16 *>(x);
    const dim3 grid((unsigned)n, (unsigned)((N + EG_COLS - 1) / EG_COLS));
    if (y_f32)
        k_moe_expert_gemm<true, true, true>
            <<<grid, EG_THREADS, 0, stream>>>(xb, w8, q, offsets, E, N, K, y);
    else
        k_moe_expert_gemm<true, false, true>
            <<<grid, EG_THREADS, 0, stream>>>(xb, w8, q, offsets, E, N, K, y);
    GA_CUDA_CHECK_LAUNCH();
    return GA_OK;
}
