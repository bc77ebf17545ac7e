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
 *
 * Fused variants for the decode step (issue 12), one kernel template with the plain GEMV:
 *  - input RMSNorm (q|k|v, gate|up, LM head): X is not a bf16 tensor but the fp32 residual
 *    stream; every CTA reduces each row's sum of squares itself (the rows are a few KB, read
 *    from L2) and stages xn = bf16(w * x * inv) in shared memory, with norm.cu's arithmetic
 *    (norm_common.cuh), before its first FMA. The CTA's first weight chunks are loaded before
 *    that prologue, so the norm overlaps the weight stream instead of delaying it.
 *  - residual epilogue (o_proj, down_proj): x += acc (+ bias), in the order norm.cu adds a
 *    delta and a bias ((x + acc) + bias); each output element belongs to one warp, so there
 *    are no atomics and no fp32 delta buffer. The input rows are copied into shared memory
 *    once per CTA (see IN_STAGE below).
 *  - SwiGLU epilogue (gate|up): warp j computes gate row j and up row I + j together and
 *    stores act[j] = bf16(silu(g) * u), g and u first rounded to bf16 as the unfused GEMV
 *    stores them, then activation.cu's fp32 arithmetic (activation_common.cuh).
 * Together they remove every rmsnorm_residual and swiglu launch of a decode step and the
 * 2I-wide gate|up intermediate.
 *
 * Programmatic dependent launch (the fused launchers' pdl, sm_90+): the kernel may then start
 * while the previous kernel of the stream finishes. Before griddepcontrol.wait a CTA only
 * reads weights (never written during a forward) and issues its first weight chunks; after
 * it, it lets the next kernel launch (griddepcontrol.launch_dependents) and reads x or A, the
 * previous kernels' outputs, and writes its own. So the weight prefetch of one GEMV overlaps
 * the tail of the kernel before it, and at most two kernels overlap. Launched without the
 * attribute (or before sm_90) both instructions do nothing.
 */
#include <cuda_bf16.h>
#include <stdint.h>

#include "activation_common.cuh"
#include "cuda_check.h"
#include "kernels.h"
#include "norm_common.cuh"

#define GEMV_WARPS 8  /* warps per CTA */
#define GEMV_ROWS 2   /* output rows per warp: 2 keeps >= 1 CTA per SM at N = 2048 */
#define GEMV_UNROLL 8 /* 16-byte chunks per row in flight per lane: all of K = 2048 at once */
/* Shared memory for a staged input (M x K bf16): the default 48 KB a CTA may take without
 * opting in, K <= 24576 at M = 1, 3072 at M = 8. */
#define GEMV_STAGE_SMEM (48 * 1024)

static_assert(GEMV_WARPS * 32 == GA_NORM_THREADS, "the fused norm assumes norm.cu's block size");

__device__ __forceinline__ void pdl_wait_and_release() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

/* Where a CTA's X comes from: read by every warp through the read-only path (the plain GEMV);
 * normalised from the fp32 residual into shared memory; or copied into shared memory (the
 * residual GEMVs). The last two read the previous kernel's output with coherent L2 loads
 * (__ldcg) after griddepcontrol.wait: under programmatic dependent launch that kernel may still
 * be running when this one starts, which the read-only path's contract does not allow. */
enum { IN_GLOBAL = 0, IN_NORM = 1, IN_STAGE = 2 };
/* What a CTA does around the product. */
enum { EPI_STORE = 0, EPI_RESID = 1, EPI_SWIGLU = 2 };

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
template <int M, bool SMEM>
__device__ __forceinline__ void gemv_chunk(const uint4 (&wv)[GEMV_ROWS], const uint4 *x, int K8,
                                           int c, float (&acc)[GEMV_ROWS][M]) {
    float wf[GEMV_ROWS][8];
#pragma unroll
    for (int r = 0; r < GEMV_ROWS; r++)
        bf16x8_to_f32(wv[r], wf[r]);
#pragma unroll
    for (int m = 0; m < M; m++) {
        float xf[8];
        bf16x8_to_f32(SMEM ? x[(size_t)m * K8 + c] : __ldg(x + (size_t)m * K8 + c), xf);
#pragma unroll
        for (int r = 0; r < GEMV_ROWS; r++)
#pragma unroll
            for (int j = 0; j < 8; j++)
                acc[r][m] = fmaf(wf[r][j], xf[j], acc[r][m]);
    }
}

/* One launch's operands. N is the number of outputs a row of Y has: W's rows for EPI_STORE and
 * EPI_RESID, I for EPI_SWIGLU (W then has 2I rows: gate rows [0, I), up rows [I, 2I)). */
struct gemv_params {
    const uint4 *x;      /* bf16 (M, K) input (IN_GLOBAL, IN_STAGE) */
    const float *xf;     /* IN_NORM: fp32 (M, K) residual rows to normalise */
    const float *norm_w; /* IN_NORM: fp32 (K) */
    float eps;           /* IN_NORM */
    const uint4 *w;      /* bf16 (N or 2N, K) */
    void *y;             /* EPI_STORE: (M, N) fp32 or bf16; EPI_SWIGLU: bf16 (M, N) */
    int y_f32;           /* EPI_STORE */
    float *resid;        /* EPI_RESID: fp32 (M, N), += the product */
    const float *bias;   /* EPI_RESID: fp32 (N) or NULL */
    int N, K8;
};

template <int M, int IN, int EPI>
__global__ void __launch_bounds__(GEMV_WARPS * 32) k_gemv(const gemv_params p) {
    constexpr bool SMEM = IN != IN_GLOBAL;
    extern __shared__ uint4 xs[]; /* IN_NORM, IN_STAGE: the rows of X, M x K8 16-byte chunks */
    __shared__ float red[IN == IN_NORM ? M : 1][32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int N = p.N, K8 = p.K8;
    int n0; // the warp's first output (EPI_SWIGLU: its only one)
    const uint4 *wr[GEMV_ROWS];
    if (EPI == EPI_SWIGLU) {
        static_assert(GEMV_ROWS == 2, "a SwiGLU warp owns one gate row and one up row");
        n0 = blockIdx.x * GEMV_WARPS + warp;
        const int j = min(n0, N - 1);
        wr[0] = p.w + (size_t)j * K8;
        wr[1] = p.w + (size_t)(N + j) * K8;
    } else {
        n0 = (blockIdx.x * GEMV_WARPS + warp) * GEMV_ROWS;
#pragma unroll
        for (int r = 0; r < GEMV_ROWS; r++) // a row past N re-reads the last row; never stored
            wr[r] = p.w + (size_t)min(n0 + r, N - 1) * K8;
    }
    const bool active = n0 < N;
    if (!SMEM && !active) return; // else every warp takes part in the prologue's barrier
    // The first weight chunks depend on nothing the previous kernels write: the fused forms
    // start them before waiting for those kernels and before their prologue. (The plain GEMV
    // keeps its loads in the loop, where the compiler interleaves them with the FMAs in half the
    // registers: 46 against 98 at M = 1.)
    int c = lane;
    uint4 wv[GEMV_UNROLL][GEMV_ROWS];
    const bool pre = SMEM && active && c + 32 * (GEMV_UNROLL - 1) < K8;
    if (pre) {
#pragma unroll
        for (int u = 0; u < GEMV_UNROLL; u++)
#pragma unroll
            for (int r = 0; r < GEMV_ROWS; r++)
                wv[u][r] = __ldcs(wr[r] + c + 32 * u);
    }
    pdl_wait_and_release();
    float acc[GEMV_ROWS][M];
#pragma unroll
    for (int r = 0; r < GEMV_ROWS; r++)
#pragma unroll
        for (int m = 0; m < M; m++)
            acc[r][m] = 0.f;

    if (IN == IN_NORM) {
        const int K4 = 2 * K8;
        const float4 *g4 = reinterpret_cast<const float4 *>(p.norm_w);
        __nv_bfloat162 *xs2 = reinterpret_cast<__nv_bfloat162 *>(xs);
#pragma unroll
        for (int m = 0; m < M; m++) { // norm.cu's vec4 kernel, row by row
            const float4 *xr = reinterpret_cast<const float4 *>(p.xf) + (size_t)m * K4;
            float ss = 0.f;
            for (int i = threadIdx.x; i < K4; i += blockDim.x)
                ss += ga_norm_sumsq4(__ldcg(xr + i));
            const float inv = ga_norm_inv(ga_norm_block_sum(ss, red[m]), 8 * K8, p.eps);
            for (int i = threadIdx.x; i < K4; i += blockDim.x)
                ga_norm_bf16x4(__ldcg(xr + i), g4[i], inv, xs2 + (size_t)m * 2 * K4 + 2 * i);
        }
    } else if (IN == IN_STAGE) {
        for (int i = threadIdx.x; i < M * K8; i += blockDim.x)
            xs[i] = __ldcg(p.x + i);
    }
    if (SMEM) {
        __syncthreads();
        if (!active) return;
    }
    const uint4 *x = SMEM ? xs : p.x;

    for (; c + 32 * (GEMV_UNROLL - 1) < K8; c += 32 * GEMV_UNROLL) {
        if (!SMEM || c != lane) { // the fused forms' first chunks are already in flight
#pragma unroll
            for (int u = 0; u < GEMV_UNROLL; u++)
#pragma unroll
                for (int r = 0; r < GEMV_ROWS; r++)
                    wv[u][r] = __ldcs(wr[r] + c + 32 * u);
        }
#pragma unroll
        for (int u = 0; u < GEMV_UNROLL; u++)
            gemv_chunk<M, SMEM>(wv[u], x, K8, c + 32 * u, acc);
    }
    for (; c < K8; c += 32) {
        uint4 w1[GEMV_ROWS];
#pragma unroll
        for (int r = 0; r < GEMV_ROWS; r++)
            w1[r] = __ldcs(wr[r] + c);
        gemv_chunk<M, SMEM>(w1, x, K8, c, acc);
    }
#pragma unroll
    for (int r = 0; r < GEMV_ROWS; r++)
#pragma unroll
        for (int m = 0; m < M; m++)
#pragma unroll
            for (int o = 16; o > 0; o >>= 1)
                acc[r][m] += __shfl_xor_sync(0xffffffffu, acc[r][m], o);
    if (lane != 0) return;
    if (EPI == EPI_SWIGLU) {
        __nv_bfloat16 *act = static_cast<__nv_bfloat16 *>(p.y);
#pragma unroll
        for (int m = 0; m < M; m++) {
            // g and u rounded to bf16 first, as the unfused GEMV stores them for activation.cu
            const float g = __bfloat162float(__float2bfloat16_rn(acc[0][m]));
            const float u = __bfloat162float(__float2bfloat16_rn(acc[1][m]));
            act[(size_t)m * N + n0] = __float2bfloat16_rn(ga_silu_mul(g, u));
        }
    } else {
#pragma unroll
        for (int r = 0; r < GEMV_ROWS; r++) {
            if (n0 + r >= N) break;
#pragma unroll
            for (int m = 0; m < M; m++) {
                const size_t i = (size_t)m * N + n0 + r;
                if (EPI == EPI_RESID) {
                    float v = p.resid[i] + acc[r][m]; // norm.cu's order: (x + delta) + bias
                    if (p.bias) v += p.bias[n0 + r];
                    p.resid[i] = v;
                } else if (p.y_f32) {
                    static_cast<float *>(p.y)[i] = acc[r][m];
                } else {
                    static_cast<__nv_bfloat16 *>(p.y)[i] = __float2bfloat16_rn(acc[r][m]);
                }
            }
        }
    }
}

template <int IN, int EPI>
static ga_status launch(const gemv_params &p, int M, bool pdl, cudaStream_t stream, ga_err *err) {
    const int per_cta = EPI == EPI_SWIGLU ? GEMV_WARPS : GEMV_WARPS * GEMV_ROWS;
    void (*kern)(const gemv_params);
    switch (M) {
    case 1:
        kern = k_gemv<1, IN, EPI>;
        break;
    case 2:
        kern = k_gemv<2, IN, EPI>;
        break;
    case 3:
        kern = k_gemv<3, IN, EPI>;
        break;
    case 4:
        kern = k_gemv<4, IN, EPI>;
        break;
    case 5:
        kern = k_gemv<5, IN, EPI>;
        break;
    case 6:
        kern = k_gemv<6, IN, EPI>;
        break;
    case 7:
        kern = k_gemv<7, IN, EPI>;
        break;
    default:
        kern = k_gemv<8, IN, EPI>;
        break;
    }
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[0].val.programmaticStreamSerializationAllowed = 1;
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = dim3(GA_CEIL_DIV(p.N, per_cta));
    cfg.blockDim = dim3(GEMV_WARPS * 32);
    cfg.dynamicSmemBytes = IN != IN_GLOBAL ? (size_t)M * p.K8 * 16 : 0;
    cfg.stream = stream;
    cfg.attrs = attr;
    cfg.numAttrs = pdl ? 1 : 0;
    GA_CUDA_CHECK(cudaLaunchKernelEx(&cfg, kern, p));
    GA_CUDA_CHECK_LAUNCH();
    return GA_OK;
}

static bool aligned16(const void *p) {
    return ((uintptr_t)p & 15) == 0;
}

extern "C" int ga_gemv_supported(const void *x, const void *w, int M, int K) {
    return M >= 1 && M <= GA_GEMV_MAX_M && K > 0 && K % 8 == 0 && aligned16(x) && aligned16(w);
}

extern "C" int ga_gemv_fused_supported(const void *x, const void *w, int M, int K) {
    return ga_gemv_supported(x, w, M, K) && (size_t)M * K * 2 <= GEMV_STAGE_SMEM;
}

extern "C" int ga_gemv_norm_supported(const float *x, const float *norm_w, const void *w, int M,
                                      int K) {
    return ga_gemv_fused_supported(x, w, M, K) && aligned16(norm_w);
}

extern "C" ga_status ga_gemv(const void *x, const void *w, void *y, bool y_f32, int M, int N, int K,
                             cudaStream_t stream, ga_err *err) {
    if (!x || !w || !y || N <= 0 || !ga_gemv_supported(x, w, M, K))
        return ga_err_set(err, GA_ERR_ARG,
                          "ga_gemv: unsupported arguments (M %d of at most %d, N %d, K %d a "
                          "multiple of 8, 16-byte aligned x and w)",
                          M, GA_GEMV_MAX_M, N, K);
    gemv_params p = {};
    p.x = static_cast<const uint4 *>(x);
    p.w = static_cast<const uint4 *>(w);
    p.y = y;
    p.y_f32 = y_f32 ? 1 : 0;
    p.N = N;
    p.K8 = K / 8;
    return launch<IN_GLOBAL, EPI_STORE>(p, M, false, stream, err);
}

extern "C" ga_status ga_gemv_rmsnorm(const float *x, const float *norm_w, float eps, const void *w,
                                     void *y, bool y_f32, int M, int N, int K, bool pdl,
                                     cudaStream_t stream, ga_err *err) {
    if (!x || !norm_w || !w || !y || N <= 0 || !ga_gemv_norm_supported(x, norm_w, w, M, K))
        return ga_err_set(err, GA_ERR_ARG,
                          "ga_gemv_rmsnorm: unsupported arguments (M %d of at most %d, N %d, K %d "
                          "a multiple of 8 with M*K*2 <= %d, 16-byte aligned x, norm_w and w)",
                          M, GA_GEMV_MAX_M, N, K, GEMV_STAGE_SMEM);
    gemv_params p = {};
    p.xf = x;
    p.norm_w = norm_w;
    p.eps = eps;
    p.w = static_cast<const uint4 *>(w);
    p.y = y;
    p.y_f32 = y_f32 ? 1 : 0;
    p.N = N;
    p.K8 = K / 8;
    return launch<IN_NORM, EPI_STORE>(p, M, pdl, stream, err);
}

extern "C" ga_status ga_gemv_rmsnorm_swiglu(const float *x, const float *norm_w, float eps,
                                            const void *w_gu, void *act, int M, int inter, int K,
                                            bool pdl, cudaStream_t stream, ga_err *err) {
    if (!x || !norm_w || !w_gu || !act || inter <= 0 ||
        !ga_gemv_norm_supported(x, norm_w, w_gu, M, K))
        return ga_err_set(err, GA_ERR_ARG,
                          "ga_gemv_rmsnorm_swiglu: unsupported arguments (M %d of at most %d, I "
                          "%d, K %d a multiple of 8 with M*K*2 <= %d, 16-byte aligned x, norm_w "
                          "and w_gu)",
                          M, GA_GEMV_MAX_M, inter, K, GEMV_STAGE_SMEM);
    gemv_params p = {};
    p.xf = x;
    p.norm_w = norm_w;
    p.eps = eps;
    p.w = static_cast<const uint4 *>(w_gu);
    p.y = act;
    p.N = inter;
    p.K8 = K / 8;
    return launch<IN_NORM, EPI_SWIGLU>(p, M, pdl, stream, err);
}

extern "C" ga_status ga_gemv_residual(const void *a, const void *w, const float *bias, float *x,
                                      int M, int N, int K, bool pdl, cudaStream_t stream,
                                      ga_err *err) {
    if (!a || !w || !x || N <= 0 || !ga_gemv_fused_supported(a, w, M, K))
        return ga_err_set(err, GA_ERR_ARG,
                          "ga_gemv_residual: unsupported arguments (M %d of at most %d, N %d, K %d "
                          "a multiple of 8 with M*K*2 <= %d, 16-byte aligned a and w)",
                          M, GA_GEMV_MAX_M, N, K, GEMV_STAGE_SMEM);
    gemv_params p = {};
    p.x = static_cast<const uint4 *>(a);
    p.w = static_cast<const uint4 *>(w);
    p.resid = x;
    p.bias = bias;
    p.N = N;
    p.K8 = K / 8;
    return launch<IN_STAGE, EPI_RESID>(p, M, pdl, stream, err);
}
