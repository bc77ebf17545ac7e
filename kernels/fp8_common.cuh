/*
 * The e4m3 weight decode shared by the kernels that read FP8 weights (gemv.cu, moe.cu): a code
 * times its block scale becomes bf16(fp32(code) * scale), the value the bf16 upload of the same
 * folder holds (src/core/tensor.h, ga_tensor_read_bf16), so a kernel that widens it and runs
 * the FMAs of its bf16 form returns bitwise what that form returns on the dequantised weights.
 */
#ifndef GATTN_FP8_COMMON_CUH
#define GATTN_FP8_COMMON_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>
#include <stdint.h>

/* fp32 product without flush-to-zero: the kernels are built with --use_fast_math
 * (-ftz=true), which would flush a product below 2^-126 where the host's dequantisation
 * (ga_tensor_read_bf16) keeps it; the bf16 conversion after it (cvt.rn.bf16.f32) keeps
 * subnormals too. */
__device__ __forceinline__ float mul_rn_noftz(float a, float b) {
    float r;
    asm("mul.rn.f32 %0, %1, %2;" : "=f"(r) : "f"(a), "f"(b));
    return r;
}

/* 8 e4m3 codes (e4m3 -> half is exact: every e4m3 value is a half) times their block's scale,
 * each rounded to bf16 and widened back: the bf16 weights the dequantised upload holds. At
 * batch 1 the FP8 stream carries twice the weights a second of the bf16 one, so the
 * instructions per weight matter: pairs go through the x2 conversions (e4m3x2 -> f16x2, two
 * floats -> bf16x2), about 4 instructions a weight before the FMAs where bf16 needs 1. */
__device__ __forceinline__ void e4m3x8_to_f32(uint2 v, float s, float f[8]) {
    const __nv_fp8x2_storage_t *q = reinterpret_cast<const __nv_fp8x2_storage_t *>(&v);
#pragma unroll
    for (int j = 0; j < 4; j++) {
        const float2 t = __half22float2(__half2(__nv_cvt_fp8x2_to_halfraw2(q[j], __NV_E4M3)));
        const float2 r =
            __bfloat1622float2(__floats2bfloat162_rn(mul_rn_noftz(t.x, s), mul_rn_noftz(t.y, s)));
        f[2 * j] = r.x;
        f[2 * j + 1] = r.y;
    }
}

#endif
