/*
 * The SwiGLU product of one element, shared by activation.cu (the standalone SwiGLU) and
 * gemv.cu (the gate|up GEMV that applies it in its epilogue), so both compute it identically.
 */
#ifndef GATTN_ACTIVATION_COMMON_CUH
#define GATTN_ACTIVATION_COMMON_CUH

__device__ __forceinline__ float ga_silu_mul(float g, float u) {
    // g * sigmoid(g) = g / (1 + exp(-g)); for g -> -inf, exp overflows to inf and the
    // quotient goes to -0, the right limit.
    return g / (1.f + __expf(-g)) * u;
}

#endif
