/*
 * RMSNorm with the residual add fused in (the pre-norms of attention and MLP, and the final
 * norm). The residual stream x is fp32 and is updated in place (x += delta + bias), so the
 * block outputs are added in fp32 and never rounded to bf16 on the residual path; the
 * normalised row is stored bf16 because it only feeds a bf16 GEMM.
 *
 * One block of GA_NORM_THREADS per row, float4 i of the row to thread i mod 256: the map, the
 * per-thread order of the sum of squares and the block reduction are those of the decode GEMVs'
 * fused norm (gemv.cu, through norm_common.cuh), so a row's bits depend on nothing but the row,
 * whatever the number of rows in the launch and whichever path normalises it.
 *
 * Why the row is held in registers (issue 12, prefill profile of 2026-12-02): the two-pass
 * form (kept below for rows wider than GA_NORM_REG_MAX * 1024 elements) walks its float4s in a
 * loop of unknown trip count, so a thread issues the loads of its next float4 only after the
 * adds and the store of the last (in-order issue; its PTX shows no hoisting), and the second
 * pass loads x and w again after the barrier: at dim 2048 a block waits for four memory
 * latencies in a row, two of them DRAM. 512 rows moved 14.7 MB (x in and out, the fp32 delta
 * in, xn out: ncu's 5.6 MB of DRAM traffic is only what missed L2) in 5.5 us. Here a thread
 * issues every load of its row (x, delta, bias, w) before the first use, keeps the row in
 * registers across the reduction and stores x and xn from them: one memory latency a block.
 */
#include <cuda_bf16.h>
#include <stdint.h>

#include "cuda_check.h"
#include "kernels.h"
#include "norm_common.cuh"

#define NORM_THREADS GA_NORM_THREADS
/* The widest row held in registers: GA_NORM_REG_MAX float4s a thread, dim <= 6144 (every Qwen3
 * dense width). ptxas (sm_90a): 22 registers at 1 float4, 40 at 2 (dim 2048), 92 at 5, 110 at 6,
 * so >= 2 blocks an SM, each with 256 x 32 bytes of x and delta a float4 in flight; 8 float4s
 * would take 142 (one block an SM, nothing in flight during its reduction). */
#define GA_NORM_REG_MAX 6

template <int VPT>
__global__ void __launch_bounds__(NORM_THREADS)
    k_rmsnorm_residual_reg(float *__restrict__ x, const float *__restrict__ delta,
                           const float *__restrict__ bias, const float *__restrict__ w,
                           __nv_bfloat16 *__restrict__ out, int dim, float eps) {
    __shared__ float red[32];
    const size_t row = blockIdx.x;
    const int n4 = dim / 4;
    float4 *xr = reinterpret_cast<float4 *>(x + row * dim);
    const float4 *w4 = reinterpret_cast<const float4 *>(w);
    float4 v[VPT], g[VPT];
    // Every load of the row first: x (plain: it is written back), w (the same 8 KB for every
    // row: L1/L2), delta (read once, then overwritten by the next GEMM: evict first).
#pragma unroll
    for (int k = 0; k < VPT; k++) {
        const int i = threadIdx.x + k * NORM_THREADS;
        if (i < n4) {
            v[k] = xr[i];
            g[k] = __ldg(w4 + i);
        }
    }
    if (delta) {
        const float4 *d4 = reinterpret_cast<const float4 *>(delta + row * dim);
        const float4 *b4 = reinterpret_cast<const float4 *>(bias);
        float4 d[VPT], b[VPT];
#pragma unroll
        for (int k = 0; k < VPT; k++) {
            const int i = threadIdx.x + k * NORM_THREADS;
            if (i < n4) {
                d[k] = __ldcs(d4 + i);
                if (bias) b[k] = __ldg(b4 + i);
            }
        }
#pragma unroll
        for (int k = 0; k < VPT; k++) {
            const int i = threadIdx.x + k * NORM_THREADS;
            if (i < n4) { // (x + delta) + bias, as the two-pass kernel and gemv.cu's epilogue
                v[k].x += d[k].x;
                v[k].y += d[k].y;
                v[k].z += d[k].z;
                v[k].w += d[k].w;
                if (bias) {
                    v[k].x += b[k].x;
                    v[k].y += b[k].y;
                    v[k].z += b[k].z;
                    v[k].w += b[k].w;
                }
                xr[i] = v[k];
            }
        }
    }
    float ss = 0.f; // float4 t, t + 256, ... in order: the two-pass loop's order
#pragma unroll
    for (int k = 0; k < VPT; k++)
        if (threadIdx.x + k * NORM_THREADS < n4) ss += ga_norm_sumsq4(v[k]);
    const float inv = ga_norm_inv(ga_norm_block_sum(ss, red), dim, eps);
    uint2 *o4 = reinterpret_cast<uint2 *>(out + row * dim); // 4 bf16 = 8 bytes a float4
#pragma unroll
    for (int k = 0; k < VPT; k++) {
        const int i = threadIdx.x + k * NORM_THREADS;
        if (i < n4) o4[i] = ga_norm_bf16x4_packed(v[k], g[k], inv);
    }
}

__global__ void __launch_bounds__(NORM_THREADS)
    k_rmsnorm_residual_vec4(float *__restrict__ x, const float *__restrict__ delta,
                            const float *__restrict__ bias, const float *__restrict__ w,
                            __nv_bfloat16 *__restrict__ out, int dim, float eps) {
    __shared__ float red[32];
    const size_t row = blockIdx.x;
    float4 *xr = reinterpret_cast<float4 *>(x + row * dim);
    const int n4 = dim / 4;
    float ss = 0.f;
    for (int i = threadIdx.x; i < n4; i += blockDim.x) {
        float4 v = xr[i];
        if (delta) {
            const float4 d = reinterpret_cast<const float4 *>(delta + row * dim)[i];
            v.x += d.x;
            v.y += d.y;
            v.z += d.z;
            v.w += d.w;
            if (bias) {
                const float4 b = reinterpret_cast<const float4 *>(bias)[i];
                v.x += b.x;
                v.y += b.y;
                v.z += b.z;
                v.w += b.w;
            }
            xr[i] = v;
        }
        ss += ga_norm_sumsq4(v);
    }
    const float inv = ga_norm_inv(ga_norm_block_sum(ss, red), dim, eps);
    // Second pass re-reads x (L1/L2-resident: a row is at most a few tens of KB).
    __nv_bfloat162 *o2 = reinterpret_cast<__nv_bfloat162 *>(out + row * dim);
    for (int i = threadIdx.x; i < n4; i += blockDim.x) {
        const float4 v = xr[i];
        const float4 g = reinterpret_cast<const float4 *>(w)[i];
        ga_norm_bf16x4(v, g, inv, o2 + 2 * i);
    }
}

__global__ void __launch_bounds__(NORM_THREADS)
    k_rmsnorm_residual(float *__restrict__ x, const float *__restrict__ delta,
                       const float *__restrict__ bias, const float *__restrict__ w,
                       __nv_bfloat16 *__restrict__ out, int dim, float eps) {
    __shared__ float red[32];
    const size_t row = blockIdx.x;
    float *xr = x + row * dim;
    float ss = 0.f;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) {
        float v = xr[i];
        if (delta) {
            v += delta[row * dim + i] + (bias ? bias[i] : 0.f);
            xr[i] = v;
        }
        ss += v * v;
    }
    const float inv = ga_norm_inv(ga_norm_block_sum(ss, red), dim, eps);
    for (int i = threadIdx.x; i < dim; i += blockDim.x)
        out[row * dim + i] = __float2bfloat16_rn(w[i] * (xr[i] * inv));
}

template <int VPT>
static void launch_reg(int vpt, int rows, cudaStream_t stream, float *x, const float *delta,
                       const float *bias, const float *w, __nv_bfloat16 *out, int dim, float eps) {
    if constexpr (VPT > 1) {
        if (vpt < VPT) {
            launch_reg<VPT - 1>(vpt, rows, stream, x, delta, bias, w, out, dim, eps);
            return;
        }
    }
    k_rmsnorm_residual_reg<VPT>
        <<<rows, NORM_THREADS, 0, stream>>>(x, delta, bias, w, out, dim, eps);
}

static bool aligned(const void *p, uintptr_t a) {
    return (reinterpret_cast<uintptr_t>(p) & (a - 1)) == 0;
}

extern "C" ga_status ga_rmsnorm_residual(float *x, const float *delta, const float *delta_bias,
                                         const float *w, void *out, int rows, int dim, float eps,
                                         cudaStream_t stream, ga_err *err) {
    if (rows < 0 || dim <= 0 || !x || !w || !out || (delta_bias && !delta))
        return ga_err_set(err, GA_ERR_ARG, "ga_rmsnorm_residual: bad arguments (rows %d, dim %d)",
                          rows, dim);
    if (rows == 0) return GA_OK;
    __nv_bfloat16 *o = static_cast<__nv_bfloat16 *>(out);
    // The vector kernels load x, delta, bias and w as float4 and store 4 bf16 at a time: bases
    // 16-byte (8 for out) aligned and dim % 4 == 0 keep every row aligned.
    const bool vec = dim % 4 == 0 && aligned(x, 16) && aligned(delta, 16) &&
                     aligned(delta_bias, 16) && aligned(w, 16) && aligned(out, 8);
    const int vpt = GA_CEIL_DIV(dim / 4, NORM_THREADS);
    if (vec && vpt <= GA_NORM_REG_MAX)
        launch_reg<GA_NORM_REG_MAX>(vpt, rows, stream, x, delta, delta_bias, w, o, dim, eps);
    else if (vec)
        k_rmsnorm_residual_vec4<<<rows, NORM_THREADS, 0, stream>>>(x, delta, delta_bias, w, o, dim,
                                                                   eps);
    else
        k_rmsnorm_residual<<<rows, NORM_THREADS, 0, stream>>>(x, delta, delta_bias, w, o, dim, eps);
    GA_CUDA_CHECK_LAUNCH();
    return GA_OK;
}
