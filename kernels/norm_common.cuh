/*
 * The row arithmetic of the RMSNorm, shared by norm.cu (the standalone norm) and gemv.cu (the
 * decode GEMVs that normalise their own input): both reduce a row's sum of squares with the
 * same thread-to-element map (float4 i to thread i mod 256), the same per-thread order (float4
 * t, t + 256, ... added one after the other into ss, starting from 0), the same expression and
 * the same block reduction, and round the normalised value to bf16 with the same expression, so
 * the fused path stages the very bf16 values the standalone norm would have stored. norm.cu
 * holds the row in registers and gemv.cu loops over it; the order above is what both keep.
 * (--use_fast_math: ga_norm_inv's division is div.approx and rsqrtf rsqrt.approx; both paths
 * compile them from these lines with dim a run-time value, never a constant the compiler could
 * fold into a multiply.)
 */
#ifndef GATTN_NORM_COMMON_CUH
#define GATTN_NORM_COMMON_CUH

#include <cuda_bf16.h>

/* Threads of a block that normalises a row (norm.cu's block, gemv.cu's CTA). */
#define GA_NORM_THREADS 256

__device__ __forceinline__ float ga_norm_block_sum(float v, float *red) {
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    if (lane == 0) red[warp] = v;
    __syncthreads();
    const int nw = blockDim.x >> 5;
    v = lane < nw ? red[lane] : 0.f;
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v; // every thread holds the total
}

/* x^2 + y^2 + z^2 + w^2 with the roundings spelled out: nvcc contracts a plain
 * `x*x + y*y + ...` into FMAs as it sees fit, and it chose fma(y, y, x*x) in norm.cu's
 * one-float4-a-thread kernel but fma(x, x, y*y) in gemv.cu's loop (PTX of 2026-12-02), so the
 * two disagreed in the last bit of a few rows at dim 1000 (test_backend_ops rows, on the H200).
 * The intrinsics are never contracted or reordered. */
__device__ __forceinline__ float ga_norm_sumsq4(float4 v) {
    return __fmaf_rn(v.w, v.w, __fmaf_rn(v.z, v.z, __fmaf_rn(v.y, v.y, __fmul_rn(v.x, v.x))));
}

/* 1 / rms from the block total of the squares. */
__device__ __forceinline__ float ga_norm_inv(float total, int dim, float eps) {
    return rsqrtf(total / dim + eps);
}

/* bf16(w * (x * inv)) of four elements, packed in memory order (one 8-byte store). */
__device__ __forceinline__ uint2 ga_norm_bf16x4_packed(float4 v, float4 g, float inv) {
    const __nv_bfloat162 lo = __floats2bfloat162_rn(g.x * (v.x * inv), g.y * (v.y * inv));
    const __nv_bfloat162 hi = __floats2bfloat162_rn(g.z * (v.z * inv), g.w * (v.w * inv));
    uint2 r;
    r.x = *reinterpret_cast<const unsigned *>(&lo);
    r.y = *reinterpret_cast<const unsigned *>(&hi);
    return r;
}

/* The same four values as two bf16 pairs (gemv.cu stages them in shared memory). */
__device__ __forceinline__ void ga_norm_bf16x4(float4 v, float4 g, float inv, __nv_bfloat162 *o) {
    const uint2 r = ga_norm_bf16x4_packed(v, g, inv);
    o[0] = *reinterpret_cast<const __nv_bfloat162 *>(&r.x);
    o[1] = *reinterpret_cast<const __nv_bfloat162 *>(&r.y);
}

#endif
