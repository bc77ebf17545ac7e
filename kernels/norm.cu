/*
 * RMSNorm with the residual add fused in (the pre-norms of attention and MLP, and the final
 * norm). The residual stream x is fp32 and is updated in place (x += delta + bias), so the
 * block outputs are added in fp32 and never rounded to bf16 on the residual path; the
 * normalised row is stored bf16 because it only feeds a bf16 GEMM.
 *
 * One block per row. Rows whose dim is a multiple of 4 use 16-byte float4 loads (x, delta, w
 * are 16-byte aligned: cudaMalloc bases and row strides of dim*4 bytes).
 */
#include <cuda_bf16.h>

#include "cuda_check.h"
#include "kernels.h"
#include "norm_common.cuh"

#define NORM_THREADS GA_NORM_THREADS

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

extern "C" ga_status ga_rmsnorm_residual(float *x, const float *delta, const float *delta_bias,
                                         const float *w, void *out, int rows, int dim, float eps,
                                         cudaStream_t stream, ga_err *err) {
    if (rows < 0 || dim <= 0 || !x || !w || !out || (delta_bias && !delta))
        return ga_err_set(err, GA_ERR_ARG, "ga_rmsnorm_residual: bad arguments (rows %d, dim %d)",
                          rows, dim);
    if (rows == 0) return GA_OK;
    __nv_bfloat16 *o = static_cast<__nv_bfloat16 *>(out);
    if (dim % 4 == 0)
        k_rmsnorm_residual_vec4<<<rows, NORM_THREADS, 0, stream>>>(x, delta, delta_bias, w, o, dim,
                                                                   eps);
    else
        k_rmsnorm_residual<<<rows, NORM_THREADS, 0, stream>>>(x, delta, delta_bias, w, o, dim, eps);
    GA_CUDA_CHECK_LAUNCH();
    return GA_OK;
}
