/*
 * Skinny GEMM for decode: Y (M x N) = X (M x K) . W^T with W a checkpoint Linear weight
 * (N out x K in), both row-major bf16, for M <= GA_GEMV_MAX_M rows (the decode batch).
 *
 * Why not cuBLAS: at M = 1..8 every byte of W is used M times, so the product is a stream of
 * the weights and nothing else; cuBLAS picks 64x8 / 128x8 tiles on 8-96 CTAs there and reached
 * 1.1-3.0 TB/s on an H200 for the 1.7B shape's projections (o_proj 1.1, q|k|v 2.1, down 2.4 plus
 * a split-K reduce kernel, gate|up 3.0; tools/gpu_profile.sh, bench/RESULTS.md), against a
 * 4.2 TB/s copy rate. Here each warp owns GEMV_ROWS output rows and walks their K in 16-byte
 * chunks, lane-interleaved so a warp's loads are 512 contiguous bytes per row, with
 * GEMV_UNROLL chunks per row in flight before the first FMA; there is no shared memory and no
 * second pass, and every CTA starts streaming at once.
 *
 * X is tiny (M x K bf16: 4-96 KB) and is read through the non-coherent path by every warp, so
 * after the first warp of an SM it comes from L1. W is read once: the streaming hint keeps it
 * from displacing other lines in L2.
 *
 * Accumulation is fp32 in a fixed order that does not depend on M (lane l sums chunks l,
 * l+32, ... in order, then a butterfly over the warp), so a row's result is the same whether
 * it is decoded alone or in a batch: batched decode stays bitwise equal to single decode.
 */
#include <cuda_bf16.h>
#include <stdint.h>

#include "cuda_check.h"
#include "kernels.h"

#define GEMV_WARPS 8  /* warps per CTA */
#define GEMV_ROWS 2   /* output rows per warp: 2 keeps >= 1 CTA per SM at N = 2048 */
#define GEMV_UNROLL 8 /* 16-byte chunks per row in flight per lane: all of K = 2048 at once */

__device__ __forceinline__ void bf16x8_to_f32(uint4 v, float f[8]) {
    const __nv_bfloat162 *h = reinterpret_cast<const __nv_bfloat162 *>(&v);
#pragma unroll
    for (int j = 0; j < 4; j++) {
        const float2 t = __bfloat1622float2(h[j]);
        f[2 * j] = t.x;
        f[2 * j + 1] = t.y;
    }
}

/* acc[r][m] += w chunk r . x chunk m for the GEMV_ROWS weight chunks wv (already loaded) and
 * the chunk at index c of every x row. Each weight chunk is widened to fp32 once and used M
 * times; x is re-read from L1 for each chunk. */
template <int M>
__device__ __forceinline__ void gemv_chunk(const uint4 (&wv)[GEMV_ROWS], const uint4 *x, int K8,
                                           int c, float (&acc)[GEMV_ROWS][M]) {
    float wf[GEMV_ROWS][8];
#pragma unroll
    for (int r = 0; r < GEMV_ROWS; r++)
        bf16x8_to_f32(wv[r], wf[r]);
#pragma unroll
    for (int m = 0; m < M; m++) {
        float xf[8];
        bf16x8_to_f32(__ldg(x + (size_t)m * K8 + c), xf);
#pragma unroll
        for (int r = 0; r < GEMV_ROWS; r++)
#pragma unroll
            for (int j = 0; j < 8; j++)
                acc[r][m] = fmaf(wf[r][j], xf[j], acc[r][m]);
    }
}

template <int M>
__global__ void __launch_bounds__(GEMV_WARPS * 32)
    k_gemv(const uint4 *__restrict__ x, const uint4 *__restrict__ w, void *__restrict__ y,
           int y_f32, int N, int K8) {
    const int lane = threadIdx.x & 31;
    const int n0 = (blockIdx.x * GEMV_WARPS + (threadIdx.x >> 5)) * GEMV_ROWS;
    if (n0 >= N) return;
    const uint4 *wr[GEMV_ROWS];
#pragma unroll
    for (int r = 0; r < GEMV_ROWS; r++) // a row past N re-reads the last row; never stored
        wr[r] = w + (size_t)min(n0 + r, N - 1) * K8;
    float acc[GEMV_ROWS][M];
#pragma unroll
    for (int r = 0; r < GEMV_ROWS; r++)
#pragma unroll
        for (int m = 0; m < M; m++)
            acc[r][m] = 0.f;

    int c = lane;
    for (; c + 32 * (GEMV_UNROLL - 1) < K8; c += 32 * GEMV_UNROLL) {
        uint4 wv[GEMV_UNROLL][GEMV_ROWS];
#pragma unroll
        for (int u = 0; u < GEMV_UNROLL; u++)
#pragma unroll
            for (int r = 0; r < GEMV_ROWS; r++)
                wv[u][r] = __ldcs(wr[r] + c + 32 * u);
#pragma unroll
        for (int u = 0; u < GEMV_UNROLL; u++)
            gemv_chunk<M>(wv[u], x, K8, c + 32 * u, acc);
    }
    for (; c < K8; c += 32) {
        uint4 wv[GEMV_ROWS];
#pragma unroll
        for (int r = 0; r < GEMV_ROWS; r++)
            wv[r] = __ldcs(wr[r] + c);
        gemv_chunk<M>(wv, x, K8, c, acc);
    }
#pragma unroll
    for (int r = 0; r < GEMV_ROWS; r++)
#pragma unroll
        for (int m = 0; m < M; m++)
#pragma unroll
            for (int o = 16; o > 0; o >>= 1)
                acc[r][m] += __shfl_xor_sync(0xffffffffu, acc[r][m], o);
    if (lane == 0) {
#pragma unroll
        for (int r = 0; r < GEMV_ROWS; r++) {
            if (n0 + r >= N) break;
#pragma unroll
            for (int m = 0; m < M; m++) {
                const size_t i = (size_t)m * N + n0 + r;
                if (y_f32)
                    static_cast<float *>(y)[i] = acc[r][m];
                else
                    static_cast<__nv_bfloat16 *>(y)[i] = __float2bfloat16_rn(acc[r][m]);
            }
        }
    }
}

extern "C" int ga_gemv_supported(const void *x, const void *w, int M, int K) {
    return M >= 1 && M <= GA_GEMV_MAX_M && K > 0 && K % 8 == 0 && ((uintptr_t)x & 15) == 0 &&
           ((uintptr_t)w & 15) == 0;
}

extern "C" ga_status ga_gemv(const void *x, const void *w, void *y, bool y_f32, int M, int N, int K,
                             cudaStream_t stream, ga_err *err) {
    if (!x || !w || !y || N <= 0 || !ga_gemv_supported(x, w, M, K))
        return ga_err_set(err, GA_ERR_ARG,
                          "ga_gemv: unsupported arguments (M %d of at most %d, N %d, K %d a "
                          "multiple of 8, 16-byte aligned x and w)",
                          M, GA_GEMV_MAX_M, N, K);
    const int per_cta = GEMV_WARPS * GEMV_ROWS;
    const dim3 grid(GA_CEIL_DIV(N, per_cta)), block(GEMV_WARPS * 32);
    const uint4 *x4 = static_cast<const uint4 *>(x), *w4 = static_cast<const uint4 *>(w);
    const int K8 = K / 8, f = y_f32 ? 1 : 0;
    switch (M) {
    case 1:
        k_gemv<1><<<grid, block, 0, stream>>>(x4, w4, y, f, N, K8);
        break;
    case 2:
        k_gemv<2><<<grid, block, 0, stream>>>(x4, w4, y, f, N, K8);
        break;
    case 3:
        k_gemv<3><<<grid, block, 0, stream>>>(x4, w4, y, f, N, K8);
        break;
    case 4:
        k_gemv<4><<<grid, block, 0, stream>>>(x4, w4, y, f, N, K8);
        break;
    case 5:
        k_gemv<5><<<grid, block, 0, stream>>>(x4, w4, y, f, N, K8);
        break;
    case 6:
        k_gemv<6><<<grid, block, 0, stream>>>(x4, w4, y, f, N, K8);
        break;
    case 7:
        k_gemv<7><<<grid, block, 0, stream>>>(x4, w4, y, f, N, K8);
        break;
    default:
        k_gemv<8><<<grid, block, 0, stream>>>(x4, w4, y, f, N, K8);
        break;
    }
    GA_CUDA_CHECK_LAUNCH();
    return GA_OK;
}
