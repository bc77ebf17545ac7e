/*
 * SwiGLU over the fused MLP GEMM output: each row of gu is [gate (I) | up (I)] (the fused
 * weight stacks gate_proj over up_proj), out = silu(gate) * up. The product is formed in fp32
 * from the bf16 GEMM outputs and rounded once to bf16 for the down_proj GEMM (the same
 * arithmetic as gemv.cu's SwiGLU epilogue, activation_common.cuh). Elementwise: an element's
 * bits depend on nothing but its gate and up values, whatever the launch shape.
 *
 * When I is a multiple of 8, a thread moves 16 bytes (8 bf16) per load and store. Why each
 * thread takes SWIGLU_UNROLL chunks with all their loads issued first (issue 12, prefill
 * profile of 2026-12-02): with one chunk a thread, 512 rows of I = 6144 made 1536 blocks, more
 * than an H200 holds at once (132 SMs x 8), so the last ~480 started only after the first ones
 * had waited out their memory latency and stored; and each thread split its index with a 64-bit
 * division (a ~70-instruction software routine). The call moved 18.9 MB (12.6 MB of gate|up in,
 * 6.3 MB out) in 5.9 us. Here the index arithmetic is 32-bit and, past one resident wave of
 * one-chunk threads, a block covers 4 x 256 chunks, so 512 rows are 384 blocks whose loads are
 * all in flight at once.
 */
#include <cuda_bf16.h>
#include <stdint.h>

#include "activation_common.cuh"
#include "cuda_check.h"
#include "kernels.h"

#define ACT_THREADS 256
#define SWIGLU_UNROLL 4
/* Chunks of 8 (T * I / 8) past which a thread takes SWIGLU_UNROLL of them: about the threads an
 * H200 holds at once (132 SMs x 2048 threads = 270K). Below it one chunk a thread already puts
 * every load in flight in one wave, over more SMs (decode batches). */
#define SWIGLU_UNROLL_MIN_WORK (1 << 18)

/* Chunk idx (of T * I / 8, row-major) of gate|up to 8 outputs. Idx is uint32_t unless the
 * chunk count needs 64 bits. */
template <int U, typename Idx>
__global__ void __launch_bounds__(ACT_THREADS)
    k_swiglu_vec8(const __nv_bfloat16 *__restrict__ gu, __nv_bfloat16 *__restrict__ out, Idx total,
                  int inter) {
    const Idx n8 = (Idx)(inter / 8);
    const Idx tile = (Idx)ACT_THREADS * U;
    for (Idx base = blockIdx.x * tile + threadIdx.x; base < total; base += (Idx)gridDim.x * tile) {
        uint4 gv[U], uv[U];
#pragma unroll
        for (int u = 0; u < U; u++) {
            const Idx idx = base + (Idx)u * ACT_THREADS;
            if (idx < total) {
                const Idx t = idx / n8, c = idx - t * n8;
                // gate|up is read once (the next GEMM overwrites it): evict first
                const uint4 *row = reinterpret_cast<const uint4 *>(gu + (size_t)t * 2 * inter);
                gv[u] = __ldcs(row + c);
                uv[u] = __ldcs(row + n8 + c);
            }
        }
#pragma unroll
        for (int u = 0; u < U; u++) {
            const Idx idx = base + (Idx)u * ACT_THREADS;
            if (idx >= total) break;
            const __nv_bfloat162 *g2 = reinterpret_cast<const __nv_bfloat162 *>(&gv[u]);
            const __nv_bfloat162 *u2 = reinterpret_cast<const __nv_bfloat162 *>(&uv[u]);
            uint4 ov;
            __nv_bfloat162 *o2 = reinterpret_cast<__nv_bfloat162 *>(&ov);
#pragma unroll
            for (int k = 0; k < 4; k++) {
                const float2 g = __bfloat1622float2(g2[k]);
                const float2 v = __bfloat1622float2(u2[k]);
                o2[k] = __floats2bfloat162_rn(ga_silu_mul(g.x, v.x), ga_silu_mul(g.y, v.y));
            }
            // (T, I) out is row-major with I = 8 * n8: chunk idx is at 8 * idx
            reinterpret_cast<uint4 *>(out)[idx] = ov;
        }
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

/* Grid-stride loops: cap the grid so huge T*I never overflows gridDim. */
static int swiglu_blocks(int64_t work, int64_t per_block) {
    const int64_t b = GA_CEIL_DIV(work, per_block);
    return (int)(b < 65536 ? b : 65536);
}

template <typename Idx>
static void launch_vec8(const __nv_bfloat16 *in, __nv_bfloat16 *o, int64_t work, int inter,
                        cudaStream_t stream) {
    if (work >= SWIGLU_UNROLL_MIN_WORK)
        k_swiglu_vec8<SWIGLU_UNROLL, Idx>
            <<<swiglu_blocks(work, ACT_THREADS * SWIGLU_UNROLL), ACT_THREADS, 0, stream>>>(
                in, o, (Idx)work, inter);
    else
        k_swiglu_vec8<1, Idx>
            <<<swiglu_blocks(work, ACT_THREADS), ACT_THREADS, 0, stream>>>(in, o, (Idx)work, inter);
}

extern "C" ga_status ga_swiglu(const void *gu, void *out, int T, int inter, cudaStream_t stream,
                               ga_err *err) {
    if (T < 0 || inter <= 0 || !gu || !out)
        return ga_err_set(err, GA_ERR_ARG, "ga_swiglu: bad arguments (T %d, I %d)", T, inter);
    if (T == 0) return GA_OK;
    const __nv_bfloat16 *in = static_cast<const __nv_bfloat16 *>(gu);
    __nv_bfloat16 *o = static_cast<__nv_bfloat16 *>(out);
    const bool vec = inter % 8 == 0 && ((uintptr_t)gu % 16) == 0 && ((uintptr_t)out % 16) == 0;
    if (vec) {
        const int64_t work = (int64_t)T * (inter / 8);
        // 32-bit chunk indices while base + a grid's stride (< 2^26) stays below 2^32
        if (work < ((int64_t)1 << 31))
            launch_vec8<uint32_t>(in, o, work, inter, stream);
        else
            launch_vec8<uint64_t>(in, o, work, inter, stream);
    } else {
        k_swiglu<<<swiglu_blocks((int64_t)T * inter, ACT_THREADS), ACT_THREADS, 0, stream>>>(
            in, o, T, inter);
    }
    GA_CUDA_CHECK_LAUNCH();
    return GA_OK;
}
