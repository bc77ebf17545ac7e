/*
 * Private helpers of the attention kernels (attention_prefill.cu, attention_decode.cu,
 * attention_probs.cu): bf16 packing, the sigmoid gate read, cp.async, ldmatrix and the
 * m16n8k16 bf16 tensor-core MMA as inline PTX (sm_80 and later). Device code only.
 */
#ifndef GATTN_ATTENTION_COMMON_CUH
#define GATTN_ATTENTION_COMMON_CUH

#include <cuda_bf16.h>
#include <stdint.h>

#include "gattn/gattn.h"

/* log2(e): softmax runs in base 2 (exp2f is one MUFU op) with the score scale folded in. */
#define GA_LOG2E 1.4426950408889634f
#define GA_LN2 0.6931471805599453f

/* The sigmoid of a raw gate value, in fp32. Full-precision expf: the gate multiplies the
 * whole head output, so its error shows directly in the result. */
static __device__ __forceinline__ float ga_sigmoid(float x) {
    return 1.0f / (1.0f + expf(-x));
}

static __device__ __forceinline__ uint32_t ga_pack_bf16(float lo, float hi) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi); /* .x = lo sits in the low half */
    return *reinterpret_cast<uint32_t *>(&v);
}

static __device__ __forceinline__ float2 ga_unpack_bf16(uint32_t u) {
    __nv_bfloat162 v = *reinterpret_cast<__nv_bfloat162 *>(&u);
    return __bfloat1622float2(v);
}

static __device__ __forceinline__ uint32_t ga_smem_addr(const void *p) {
    return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

/* 16-byte global->shared copy that bypasses L1; src_bytes = 0 zero-fills the destination
 * (used for rows past the sequence, so garbage such as NaN never reaches the MMA). */
static __device__ __forceinline__ void ga_cp_async16(void *smem, const void *gmem, int src_bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(ga_smem_addr(smem)),
                 "l"(gmem), "r"(src_bytes)
                 : "memory");
}
static __device__ __forceinline__ void ga_cp_async_commit(void) {
    asm volatile("cp.async.commit_group;\n" ::: "memory");
}
template <int N> static __device__ __forceinline__ void ga_cp_async_wait(void) {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

/* Four 8x8 b16 matrices; lanes 8m..8m+7 give the row addresses of matrix m, and register m
 * of each lane receives (row lane/4, columns 2*(lane%4), +1) of matrix m. */
static __device__ __forceinline__ void ga_ldmatrix_x4(uint32_t r[4], const void *smem) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(ga_smem_addr(smem)));
}
/* Same, transposed: register m receives (rows 2*(lane%4), +1; column lane/4) of matrix m. */
static __device__ __forceinline__ void ga_ldmatrix_x4_trans(uint32_t r[4], const void *smem) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(ga_smem_addr(smem)));
}

/* D = A(16x16, row) * B(16x8, col) + D, bf16 inputs, fp32 accumulators. Fragment layout
 * (g = lane/4, c = lane%4): a0 (g, 2c..2c+1), a1 (g+8, 2c..), a2 (g, 8+2c..), a3 (g+8, 8+2c..);
 * b0 (k 2c..2c+1, n g), b1 (k 8+2c.., n g); d0,d1 (g, 2c..2c+1), d2,d3 (g+8, 2c..2c+1). */
static __device__ __forceinline__ void ga_mma_bf16(float d[4], const uint32_t a[4], uint32_t b0,
                                                   uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
                 "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/* The sigmoid gate of two adjacent output elements (d, d+1) of head h of token t; 1 when
 * there is no gate. Headwise: one scalar per (token, head); elementwise: one per element. */
static __device__ __forceinline__ float2 ga_gate_pair(const __nv_bfloat16 *gate, int mode,
                                                      int64_t t, int h, int n_heads, int hd,
                                                      int d) {
    if (mode == GA_GATE_HEADWISE) {
        float g = ga_sigmoid(__bfloat162float(gate[t * n_heads + h]));
        return make_float2(g, g);
    }
    if (mode == GA_GATE_ELEMENTWISE) {
        const __nv_bfloat162 *p =
            reinterpret_cast<const __nv_bfloat162 *>(gate + (t * n_heads + h) * (int64_t)hd + d);
        float2 v = __bfloat1622float2(*p);
        return make_float2(ga_sigmoid(v.x), ga_sigmoid(v.y));
    }
    return make_float2(1.0f, 1.0f);
}

#endif
