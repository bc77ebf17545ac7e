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

/* x rounded to bf16 (round to nearest even, subnormals kept), as an fp32: cvt.rn.bf16x2.f32
 * puts bf16(x) in the upper half and bf16(0) = 0 in the lower, and that word is the fp32 bit
 * pattern of the bf16 value. One instruction; the pair form (__floats2bfloat162_rn, then
 * widening each half back to fp32) costs 1.5 a value: half a conversion and a shift or mask.
 * Same conversion, same rounding and the same NaN (0x7fff, widened 0x7fff0000) as the pair. */
__device__ __forceinline__ float round_bf16_f32(float x) {
    uint32_t u;
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(u) : "f"(x), "f"(0.f));
    return __uint_as_float(u);
}

/* 8 e4m3 codes (e4m3 -> half is exact: every e4m3 value is a half) times their block's scale,
 * each rounded to bf16 and widened back: the bf16 weights the dequantised upload holds. At
 * batch 1 the FP8 stream carries twice the weights a second of the bf16 one, so the
 * instructions per weight matter: 4.5 a weight before the FMAs where bf16 needs 1 -- half an
 * e4m3x2 -> f16x2 conversion, an f16 -> f32 widening, the non-FTZ multiply and
 * round_bf16_f32 (the pair conversion and two widenings back cost 0.5 a weight more). */
__device__ __forceinline__ void e4m3x8_to_f32(uint2 v, float s, float f[8]) {
    const __nv_fp8x2_storage_t *q = reinterpret_cast<const __nv_fp8x2_storage_t *>(&v);
#pragma unroll
    for (int j = 0; j < 4; j++) {
        const float2 t = __half22float2(__half2(__nv_cvt_fp8x2_to_halfraw2(q[j], __NV_E4M3)));
        f[2 * j] = round_bf16_f32(mul_rn_noftz(t.x, s));
        f[2 * j + 1] = round_bf16_f32(mul_rn_noftz(t.y, s));
    }
}

/* 8 e4m3 codes as fp32, unscaled (--fp8-math fast, gemv.cu): e4m3 -> f16 -> f32 is exact, so
 * these are the codes' own values; the kernel multiplies a chunk's dot product by the block
 * scale once instead of rounding every weight to bf16. 12 instructions for 8 weights: one
 * e4m3x2 -> f16x2 conversion a pair and one f16 -> f32 widening a weight. NaN codes (0x7f,
 * 0xff) stay NaN, as in the exact form. */
__device__ __forceinline__ void e4m3x8_to_f32_raw(uint2 v, float f[8]) {
    const __nv_fp8x2_storage_t *q = reinterpret_cast<const __nv_fp8x2_storage_t *>(&v);
#pragma unroll
    for (int j = 0; j < 4; j++) {
        const float2 t = __half22float2(__half2(__nv_cvt_fp8x2_to_halfraw2(q[j], __NV_E4M3)));
        f[2 * j] = t.x;
        f[2 * j + 1] = t.y;
    }
}

#endif
