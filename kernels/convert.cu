/*
 * Weight conversion at load: F32 or F16 tensors, copied raw to the device, become the bf16 the
 * GEMMs read. Rounding is to nearest even (__float2bfloat16_rn), the same as the host's
 * ga_f32_to_bf16, so a converted weight is bit-identical to the host conversion; F16 goes
 * through fp32 exactly. Grid-stride so any n fits one launch.
 */
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "cuda_check.h"
#include "kernels.h"

#define CONVERT_THREADS 256

__global__ void __launch_bounds__(CONVERT_THREADS)
    k_f32_to_bf16(const float *__restrict__ src, __nv_bfloat16 *__restrict__ dst, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        dst[i] = __float2bfloat16_rn(src[i]);
}

__global__ void __launch_bounds__(CONVERT_THREADS)
    k_f16_to_bf16(const __half *__restrict__ src, __nv_bfloat16 *__restrict__ dst, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        dst[i] = __float2bfloat16_rn(__half2float(src[i]));
}

extern "C" ga_status ga_convert_to_bf16(const void *src, ga_dtype src_dtype, void *dst, int64_t n,
                                        cudaStream_t stream, ga_err *err) {
    if (n < 0 || (n > 0 && (!src || !dst)))
        return ga_err_set(err, GA_ERR_ARG, "ga_convert_to_bf16: bad arguments (n %lld)",
                          (long long)n);
    if (n == 0) return GA_OK;
    const int64_t b64 = GA_CEIL_DIV(n, (int64_t)CONVERT_THREADS);
    const int blocks = (int)(b64 < 65536 ? b64 : 65536);
    __nv_bfloat16 *d = static_cast<__nv_bfloat16 *>(dst);
    switch (src_dtype) {
    case GA_BF16:
        GA_CUDA_CHECK(cudaMemcpyAsync(dst, src, (size_t)n * 2, cudaMemcpyDeviceToDevice, stream));
        return GA_OK;
    case GA_F32:
        k_f32_to_bf16<<<blocks, CONVERT_THREADS, 0, stream>>>(static_cast<const float *>(src), d,
                                                              n);
        break;
    case GA_F16:
        k_f16_to_bf16<<<blocks, CONVERT_THREADS, 0, stream>>>(static_cast<const __half *>(src), d,
                                                              n);
        break;
    default:
        return ga_err_set(err, GA_ERR_ARG, "ga_convert_to_bf16: unknown dtype %d", (int)src_dtype);
    }
    GA_CUDA_CHECK_LAUNCH();
    return GA_OK;
}
