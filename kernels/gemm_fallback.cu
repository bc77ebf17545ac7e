/*
 * A plain tiled GEMM, Y (M, N) = X (M, K) . W (N, K)^T with bf16 inputs, fp32 accumulation and
 * bf16 or fp32 output: the same contract as the cuBLAS wrapper (src/cuda/cuda_gemm.c). It is
 * not the production path; it exists as an independent implementation that the GEMM test
 * checks both against, and as a fallback the backend uses with ga_session_opts.cuda_gemm
 * GA_CUDA_GEMM_FALLBACK (to tell a cuBLAS problem on a machine from a bug in the rest of the
 * backend).
 *
 * 64x64 output tile per block, K staged 32 at a time through shared memory as fp32, 4x4
 * outputs per thread. Any M, N, K (edges are guarded).
 */
#include <cuda_bf16.h>

#include "cuda_check.h"
#include "kernels.h"

#define FB_TILE 64
#define FB_KT 32
#define FB_THREADS 256

__global__ void __launch_bounds__(FB_THREADS)
    k_gemm_fallback(const __nv_bfloat16 *__restrict__ x, const __nv_bfloat16 *__restrict__ w,
                    void *__restrict__ y, int y_f32, int M, int N, int K) {
    __shared__ float sx[FB_KT][FB_TILE + 1]; // [k][m]; +1 keeps column writes conflict-light
    __shared__ float sw[FB_KT][FB_TILE + 1]; // [k][n]
    const int m0 = blockIdx.y * FB_TILE, n0 = blockIdx.x * FB_TILE;
    const int tm = threadIdx.x / 16, tn = threadIdx.x % 16; // 16 x 16 threads, 4 x 4 each
    float acc[4][4] = {};
    for (int k0 = 0; k0 < K; k0 += FB_KT) {
        for (int i = threadIdx.x; i < FB_TILE * FB_KT; i += FB_THREADS) {
            const int r = i / FB_KT, kk = i % FB_KT;
            const int gk = k0 + kk;
            const int gm = m0 + r, gn = n0 + r;
            sx[kk][r] = (gm < M && gk < K) ? __bfloat162float(x[(size_t)gm * K + gk]) : 0.f;
            sw[kk][r] = (gn < N && gk < K) ? __bfloat162float(w[(size_t)gn * K + gk]) : 0.f;
        }
        __syncthreads();
#pragma unroll 8
        for (int kk = 0; kk < FB_KT; kk++) {
            float a[4], b[4];
#pragma unroll
            for (int i = 0; i < 4; i++)
                a[i] = sx[kk][tm * 4 + i], b[i] = sw[kk][tn * 4 + i];
#pragma unroll
            for (int i = 0; i < 4; i++)
#pragma unroll
                for (int j = 0; j < 4; j++)
                    acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
        }
        __syncthreads();
    }
    for (int i = 0; i < 4; i++) {
        const int gm = m0 + tm * 4 + i;
        if (gm >= M) continue;
        for (int j = 0; j < 4; j++) {
            const int gn = n0 + tn * 4 + j;
            if (gn >= N) continue;
            if (y_f32)
                static_cast<float *>(y)[(size_t)gm * N + gn] = acc[i][j];
            else
                static_cast<__nv_bfloat16 *>(y)[(size_t)gm * N + gn] =
                    __float2bfloat16_rn(acc[i][j]);
        }
    }
}

extern "C" ga_status ga_gemm_fallback(const void *x, const void *w, void *y, bool y_f32, int M,
                                      int N, int K, cudaStream_t stream, ga_err *err) {
    if (M < 0 || N <= 0 || K <= 0 || !x || !w || !y)
        return ga_err_set(err, GA_ERR_ARG, "ga_gemm_fallback: bad shape M %d N %d K %d", M, N, K);
    if (M == 0) return GA_OK;
    if (GA_CEIL_DIV(M, FB_TILE) > 65535)
        return ga_err_set(err, GA_ERR_UNSUPPORTED, "ga_gemm_fallback: M %d too large", M);
    const dim3 grid(GA_CEIL_DIV(N, FB_TILE), GA_CEIL_DIV(M, FB_TILE));
    k_gemm_fallback<<<grid, FB_THREADS, 0, stream>>>(static_cast<const __nv_bfloat16 *>(x),
                                                     static_cast<const __nv_bfloat16 *>(w), y,
                                                     y_f32 ? 1 : 0, M, N, K);
    GA_CUDA_CHECK_LAUNCH();
    return GA_OK;
}
