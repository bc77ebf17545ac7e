/*
 * SwiGLU over the fused MLP GEMM output: each row of gu is [gate (I) | up (I)] (the fused
 * weight stacks gate_proj over up_proj), out = silu(gate) * up. The product is formed in fp32
 * from the bf16 GEMM outputs and rounded once to bf16 for the down_proj GEMM.
 * When I is a multiple of 8, each thread moves 16 bytes (8 bf16) per load and store.
 */
#include <cuda_bf16.h>

#include "activation_common.cuh"
#include "cuda_check.h"
#include "kernels.h"

#define ACT_THREADS 256

__global__ void __launch_bounds__(ACT_THREADS)
    k_swiglu_vec8(const __nv_bfloat16 *__restrict__ gu, __nv_bfloat16 *__restrict__ out, int T,
                  int inter) {
    const int n8 = inter / 8;
    const int64_t total = (int64_t)T * n8;
    for (int64_t idx = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; idx < total;
         idx += (int64_t)gridDim.x * blockDim.x) {
        const int64_t t = idx / n8;
        const int c = (int)(idx % n8);
        const uint4 gv = reinterpret_cast<const uint4 *>(gu + t * 2 * inter)[c];
        const uint4 uv = reinterpret_cast<const uint4 *>(gu + t * 2 * inter + inter)[c];
        const __nv_bfloat162 *g2 = reinterpret_cast<const __nv_bfloat162 *>(&gv);
        const __nv_bfloat162 *u2 = reinterpret_cast<const __nv_bfloat162 *>(&uv);
        uint4 ov;
        __nv_bfloat162 *o2 = reinterpret_cast<__nv_bfloat162 *>(&ov);
#pragma unroll
        for (int k = 0; k < 4; k++) {
            const float2 g = __bfloat1622float2(g2[k]);
            const float2 u = __bfloat1622float2(u2[k]);
            o2[k] = __floats2bfloat162_rn(ga_silu_mul(g.x, u.x), ga_silu_mul(g.y, u.y));
        }
        reinterpret_cast<uint4 *>(out + t * inter)[c] = ov;
    }
}

__global__ void __launch_bounds__(ACT_THREADS)
    k_swiglu(const __nv_bfloat16 *__restrict__ gu, __nv_bfloat16 *__restrict__ out, int T,
             int inter) {
    const int64_t total = (int64_t)T * inter;
    for (int64_t idx = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; idx < total;
         idx += (int64_t)gridDim.x * blockDim.x) {
        const int64_t t = idx / inter;
        const int c = (int)(idx % inter);
        const float g = __bfloat162float(gu[t * 2 * inter + c]);
        const float u = __bfloat162float(gu[t * 2 * inter + inter + c]);
        out[idx] = __float2bfloat16_rn(ga_silu_mul(g, u));
    }
}

extern "C" ga_status ga_swiglu(const void *gu, void *out, int T, int inter, cudaStream_t stream,
                               ga_err *err) {
    if (T < 0 || inter <= 0 || !gu || !out)
        return ga_err_set(err, GA_ERR_ARG, "ga_swiglu: bad arguments (T %d, I %d)", T, inter);
    if (T == 0) return GA_OK;
    const __nv_bfloat16 *in = static_cast<const __nv_bfloat16 *>(gu);
    __nv_bfloat16 *o = static_cast<__nv_bfloat16 *>(out);
    const bool vec = inter % 8 == 0 && ((uintptr_t)gu % 16) == 0 && ((uintptr_t)out % 16) == 0;
    const int64_t work = (int64_t)T * (vec ? inter / 8 : inter);
    // Grid-stride loop: cap the grid so huge T*I never overflows gridDim.
    const int64_t blocks64 = GA_CEIL_DIV(work, (int64_t)ACT_THREADS);
    const int blocks = (int)(blocks64 < 65536 ? blocks64 : 65536);
    if (vec)
        k_swiglu_vec8<<<blocks, ACT_THREADS, 0, stream>>>(in, o, T, inter);
    else
        k_swiglu<<<blocks, ACT_THREADS, 0, stream>>>(in, o, T, inter);
    GA_CUDA_CHECK_LAUNCH();
    return GA_OK;
}
