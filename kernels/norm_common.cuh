/*
 * The row arithmetic of the RMSNorm, shared by norm.cu (the standalone norm) and gemv.cu (the
 * decode GEMVs that normalise their own input): both reduce a row's sum of squares with the
 * same thread-to-element map (float4 i to thread i mod 256), the same expression and the same
 * block reduction, and round the normalised value to bf16 with the same expression, so the
 * fused path stages the very bf16 values the standalone norm would have stored.
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

__device__ __forceinline__ float ga_norm_sumsq4(float4 v) {
    return v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
}

/* 1 / rms from the block total of the squares. */
__device__ __forceinline__ float ga_norm_inv(float total, int dim, float eps) {
    return rsqrtf(total / dim + eps);
}

/* bf16(w * (x * inv)) of four elements, as two bf16 pairs. */
__device__ __forceinline__ void ga_norm_bf16x4(float4 v, float4 g, float inv, __nv_bfloat162 *o) {
    o[0] = __floats2bfloat162_rn(g.x * (v.x * inv), g.y * (v.y * inv));
    o[1] = __floats2bfloat162_rn(g.z * (v.z * inv), g.w * (v.w * inv));
}

#endif
