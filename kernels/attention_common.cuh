/*
 * Private helpers of the attention kernels (attention_prefill.cu, attention_decode.cu,
 * attention_probs.cu) and of gate_stats.cu: bf16 packing, the two sigmoids (precise for the
 * gate statistics, cheap for the epilogues) and the gate read, cp.async, ldmatrix and the
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

/* e^x to about 1 ulp for |x| <= 87 (clamped there: beyond, e^-x of a sigmoid is below fp32's
 * resolution of 1 or its result below the smallest normal), whatever the compiler flags. Every
 * .cu is built with --use_fast_math, which turns expf into ex2.approx of x*log2(e) (about 20
 * ulp at |x| = 20, from rounding the product) and 1/x into rcp.approx.ftz; this uses only what
 * fast-math leaves alone: rintf, fmaf and an exponent built from integer bits. Cody-Waite
 * reduction x = n*ln2 + r (ln2 split so n*hi is exact), then e^r on |r| <= ln2/2 by its
 * Taylor series to r^7 (the next term is below 5e-9 relative). */
static __device__ __forceinline__ float ga_exp_precise(float x) {
    x = fminf(fmaxf(x, -87.0f), 87.0f);
    const float n = rintf(x * GA_LOG2E); /* |n| <= 126: 2^n is a normal float */
    float r = fmaf(n, -0.693145751953125f, x);
    r = fmaf(n, -1.428606765330187045e-06f, r);
    float p = 1.984126984126984e-04f; /* 1/7! */
    p = fmaf(p, r, 1.388888888888889e-03f);
    p = fmaf(p, r, 8.333333333333333e-03f);
    p = fmaf(p, r, 4.166666666666667e-02f);
    p = fmaf(p, r, 1.666666666666667e-01f);
    p = fmaf(p, r, 0.5f);
    p = fmaf(p, r, 1.0f);
    p = fmaf(p, r, 1.0f);
    return p * __int_as_float(((int)n + 127) << 23);
}

/* The sigmoid of a raw gate value in fp32, within about 2 ulp of the exact value whatever the
 * flags (checked against double per bf16 value by test_gate_sigmoid through ga_gate_stats),
 * for the gate statistics of kernels/gate_stats.cu, which sum fp32 sigmoids in double and are
 * compared with the CPU's; the attention epilogues use ga_sigmoid_epilogue below.
 * The reciprocal: rcp.approx (what 1/d is under fast-math; within 1 ulp) and one Newton step
 * in fmaf, r + r(1 - d r), which lands within half an ulp (+2^-46) of 1/d: as exact as
 * __frcp_rn but branch-free. __frcp_rn inlines a special-case path at each of the epilogue's
 * 64 unrolled gate reads; it grew the Hopper prefill kernel's code from 62 to 107 KB (this
 * form: 78 KB) and coincided with elementwise prefill losing 3-5% (bench/RESULTS.md).
 * d = 1 + e^-x lies in [1, 6.1e37] (x clamped in ga_exp_precise), so r stays a normal. */
static __device__ __forceinline__ float ga_sigmoid(float x) {
    const float d = 1.0f + ga_exp_precise(-x);
    float r;
    asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(d)); /* the same whatever the flags */
    return fmaf(r, fmaf(-d, r, 1.0f), r);
}

/* The sigmoid the attention epilogues apply to every gate value: ex2.approx of the rounded
 * product -x*log2(e), then rcp.approx of 1 + e (inline PTX: the same whatever the flags).
 * Relative error for |x| <= 80: the product's rounding moves the exponent by at most half an
 * ulp of 115.4 (2^-18 absolute, 2^-18.5 relative in e^-x), ex2.approx adds 2^-22, the add and
 * rcp.approx 2^-23 each: under 2^-18 (3.8e-6) in all. The result only scales an fp32 sum that
 * is then rounded to bf16 (half an ulp: 2^-9), 500x coarser, so an output differs from the
 * exactly rounded one only when it lies within 2^-18 of a bf16 rounding boundary; test_gen_cuda
 * counts those (gate epilogue: every bf16 gate in [-80, 80] through the decode kernel). The
 * precise ga_sigmoid above (Cody-Waite exp + Newton) costs 3x the instructions at the 64
 * unrolled gate reads of an epilogue: measured with ncu at 2048 tokens, it made the Hopper
 * prefill kernel 32% slower for elementwise gates (16.4 -> 21.6 us a launch, bench/RESULTS.md). */
static __device__ __forceinline__ float ga_sigmoid_epilogue(float x) {
    float e, r;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(e) : "f"(x * -GA_LOG2E));
    asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(1.0f + e));
    return r;
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
        float g = ga_sigmoid_epilogue(__bfloat162float(gate[t * n_heads + h]));
        return make_float2(g, g);
    }
    if (mode == GA_GATE_ELEMENTWISE) {
        const __nv_bfloat162 *p =
            reinterpret_cast<const __nv_bfloat162 *>(gate + (t * n_heads + h) * (int64_t)hd + d);
        float2 v = __bfloat1622float2(*p);
        return make_float2(ga_sigmoid_epilogue(v.x), ga_sigmoid_epilogue(v.y));
    }
    return make_float2(1.0f, 1.0f);
}

#endif
