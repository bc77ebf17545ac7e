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
 *
 * FP8 weights (issue 15 item 4; the F8 template flag, the ga_gemv_f8* launchers): W is e4m3
 * bytes (N x K) with fp32 block scales, as FP8 checkpoints store it. A lane reads 8 codes
 * (8-byte loads, a warp 256 contiguous bytes per row) where the bf16 form reads 8 bf16
 * weights, so every lane owns the same chunks of K as in the bf16 kernel and sums them in the
 * same order. Each code becomes bf16(fp32(code) * scale) -- the value the bf16 upload of the
 * same folder stores (src/core/tensor.h) -- before the identical FMAs, so the result is
 * bitwise that of the bf16 GEMV on the dequantised weights, at half the weight bytes. (16-byte
 * loads would hand a lane two chunks that belong to two lanes of the bf16 order and need
 * shuffles to put them back.) The fused prologues and epilogues are shared, not copied: F8
 * only changes how a weight chunk is loaded and widened (fp8_common.cuh, shared with the MoE
 * expert GEMM). ga_f8_dequant writes the same bf16 values into a matrix, for the prefill GEMMs
 * (cuBLAS on bf16: the same numbers as the bf16 upload). The FP8 GEMV is bound by instructions,
 * not bytes (1.43 TB/s against bf16's 2.37 on the H200, bench/RESULTS.md): its M = 1 loop over
 * 128 weights a lane was 930 SASS instructions against bf16's 453, now 756 (one conversion per
 * weight for the bf16 rounding, fp8_common.cuh; scale pointers kept in registers, k_gemv).
 * ga_f8_scales.math GA_FP8_MATH_FAST selects gemv_chunk's FAST form (517): not bitwise.
 */
#include <cuda_bf16.h>
#include <cuda_fp8.h>
#include <stdint.h>

#include "activation_common.cuh"
#include "cuda_check.h"
#include "fp8_common.cuh"
#include "kernels.h"
#include "norm_common.cuh"

#define GEMV_WARPS 8  /* warps per CTA */
#define GEMV_ROWS 2   /* output rows per warp: 2 keeps >= 1 CTA per SM at N = 2048 */
#define GEMV_UNROLL 8 /* 16-byte chunks per row in flight per lane: all of K = 2048 at once */
/* Shared memory for a staged input (M x K bf16): GA_GEMV_STAGE_BYTES (kernels.h), the default
 * 48 KB less the static reduction array red[M][32]. (Counting the 48 KB for the input alone let
 * M 8 x K 3072 through ga_gemv_fused_supported and then fail its launch with
 * cudaErrorInvalidValue.) */
#define GEMV_STAGE_SMEM GA_GEMV_STAGE_BYTES
static_assert(GEMV_STAGE_SMEM + GA_GEMV_MAX_M * 32 * sizeof(float) <= 48 * 1024,
              "the staged input and red[] must fit the 48 KB a CTA takes without opting in");

static_assert(GEMV_WARPS * 32 == GA_NORM_THREADS, "the fused norm assumes norm.cu's block size");

/* p itself, through an empty asm the compiler cannot see into: it then keeps the pointer in a
 * register instead of rebuilding it from its parts at each use (k_gemv's scale pointers). */
__device__ __forceinline__ const float *opaque_ptr(const float *p) {
    asm volatile("" : "+l"(p));
    return p;
}

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

/* A weight chunk of 8 elements: 16 bytes of bf16, or 8 bytes of e4m3 (F8). */
template <bool F8> struct wchunk { typedef uint4 T; };
template <> struct wchunk<true> { typedef uint2 T; };

/* acc[r][m] += w chunk r . x chunk m for the GEMV_ROWS weight chunks wv (already loaded) and
 * the chunk at index c of every x row. Each weight chunk is widened to fp32 once and used M
 * times; x is re-read from L1 for each chunk. F8: col is the chunk's scale column, c >> kshift.
 *
 * FAST (--fp8-math fast, F8 only): the chunk's 8 codes are widened unscaled, their dot product
 * with x is one fp32 chain (code values are exact in fp32), and that partial sum is multiplied
 * by the chunk's block scale in the accumulating FMA: acc += (sum_j code_j x_j) * s. A lane's
 * chunk lies in one scale block, so this is the scale applied once per block and lane. It skips
 * the per-weight multiply and bf16 rounding of the exact form (SASS of the M = 1 loop, 128
 * weights a lane: 517 instructions against the exact form's 756 and bf16's 453) and is closer
 * to the real product code * s * x, but not bitwise the bf16 GEMV: the exact form rounds each
 * weight to bf16 (relative error up to 2^-9), the fast form does not. The order of every sum
 * still depends on neither M nor the batch, so a row gets the same bits alone or in a batch.
 * What it gives up: the unscaled dot product overflows fp32 where the scaled one would not, if
 * |x| > 3.4e38 / (8 * 448), about 9e34. */
template <int M, bool SMEM, bool F8, bool FAST>
__device__ __forceinline__ void
gemv_chunk(const typename wchunk<F8>::T (&wv)[GEMV_ROWS], const float *const (&sr)[GEMV_ROWS],
           unsigned col, const uint4 *x, int K8, int c, float (&acc)[GEMV_ROWS][M]) {
    float wf[GEMV_ROWS][8];
    float sc[GEMV_ROWS];
#pragma unroll
    for (int r = 0; r < GEMV_ROWS; r++) {
        if constexpr (F8 && FAST) {
            e4m3x8_to_f32_raw(wv[r], wf[r]);
            sc[r] = __ldg(sr[r] + col);
        } else if constexpr (F8) {
            e4m3x8_to_f32(wv[r], __ldg(sr[r] + col), wf[r]);
        } else {
            bf16x8_to_f32(wv[r], wf[r]);
        }
    }
#pragma unroll
    for (int m = 0; m < M; m++) {
        float xf[8];
        bf16x8_to_f32(SMEM ? x[(size_t)m * K8 + c] : __ldg(x + (size_t)m * K8 + c), xf);
#pragma unroll
        for (int r = 0; r < GEMV_ROWS; r++) {
            if constexpr (F8 && FAST) {
                float t = __fmul_rn(wf[r][0], xf[0]);
#pragma unroll
                for (int j = 1; j < 8; j++)
                    t = fmaf(wf[r][j], xf[j], t);
                acc[r][m] = fmaf(t, sc[r], acc[r][m]);
            } else {
#pragma unroll
                for (int j = 0; j < 8; j++)
                    acc[r][m] = fmaf(wf[r][j], xf[j], acc[r][m]);
            }
        }
    }
}

/* One launch's operands. N is the number of outputs a row of Y has: W's rows for EPI_STORE and
 * EPI_RESID, I for EPI_SWIGLU (W then has 2I rows: gate rows [0, I), up rows [I, 2I)). */
struct gemv_params {
    const uint4 *x;      /* bf16 (M, K) input (IN_GLOBAL, IN_STAGE) */
    const float *xf;     /* IN_NORM: fp32 (M, K) residual rows to normalise */
    const float *norm_w; /* IN_NORM: fp32 (K) */
    float eps;           /* IN_NORM */
    const uint4 *w;      /* bf16 (N or 2N, K); F8: e4m3 bytes of the same shape */
    const float *scale;  /* F8 (the F8 form when non-NULL): fp32 block scales, kb a row */
    const int *srow;     /* F8: device (N or 2N): the scale row of each weight row */
    int kb, kshift;      /* F8: scale columns; log2 of the block width in 8-element chunks */
    int fast;            /* F8: GA_FP8_MATH_FAST (gemv_chunk's FAST) */
    void *y;             /* EPI_STORE: (M, N) fp32 or bf16; EPI_SWIGLU: bf16 (M, N) */
    int y_f32;           /* EPI_STORE */
    float *resid;        /* EPI_RESID: fp32 (M, N), += the product */
    const float *bias;   /* EPI_RESID: fp32 (N) or NULL */
    int N, K8;
};

template <int M, int IN, int EPI, bool F8, bool FAST>
__global__ void __launch_bounds__(GEMV_WARPS * 32) k_gemv(const gemv_params p) {
    typedef typename wchunk<F8>::T WT;
    constexpr bool SMEM = IN != IN_GLOBAL;
    extern __shared__ uint4 xs[]; /* IN_NORM, IN_STAGE: the rows of X, M x K8 16-byte chunks */
    __shared__ float red[IN == IN_NORM ? M : 1][32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int N = p.N, K8 = p.K8;
    int n0; // the warp's first output (EPI_SWIGLU: its only one)
    int row[GEMV_ROWS];
    if (EPI == EPI_SWIGLU) {
        static_assert(GEMV_ROWS == 2, "a SwiGLU warp owns one gate row and one up row");
        n0 = blockIdx.x * GEMV_WARPS + warp;
        const int j = min(n0, N - 1);
        row[0] = j;
        row[1] = N + j;
    } else {
        n0 = (blockIdx.x * GEMV_WARPS + warp) * GEMV_ROWS;
#pragma unroll
        for (int r = 0; r < GEMV_ROWS; r++) // a row past N re-reads the last row; never stored
            row[r] = min(n0 + r, N - 1);
    }
    // A row is K8 chunks either way: 16-byte bf16 chunks, or 8-byte e4m3 ones (F8).
    const WT *wr[GEMV_ROWS];
    const float *sr[GEMV_ROWS] = {};
#pragma unroll
    for (int r = 0; r < GEMV_ROWS; r++) {
        wr[r] = reinterpret_cast<const WT *>(p.w) + (size_t)row[r] * K8;
        // F8: the row's scale pointer kept whole (opaque_ptr): otherwise the compiler rebuilt
        // scale + (srow * kb + column) * 4 at every scale load (IMAD.WIDE, LEA pair), about 40
        // instructions of the M = 1 loop's 128 weights; now one IMAD.WIDE.U32 a load.
        if (F8) sr[r] = opaque_ptr(p.scale + (size_t)__ldg(p.srow + row[r]) * p.kb);
    }
    const bool active = n0 < N;
    if (!SMEM && !active) return; // else every warp takes part in the prologue's barrier
    // The first weight chunks depend on nothing the previous kernels write: the fused forms
    // start them before waiting for those kernels and before their prologue. (The plain GEMV
    // keeps its loads in the loop, where the compiler interleaves them with the FMAs in half the
    // registers: 46 against 98 at M = 1.)
    int c = lane;
    WT wv[GEMV_UNROLL][GEMV_ROWS];
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
            gemv_chunk<M, SMEM, F8, FAST>(wv[u], sr, (unsigned)(c + 32 * u) >> p.kshift, x, K8,
                                          c + 32 * u, acc);
    }
    for (; c < K8; c += 32) {
        WT w1[GEMV_ROWS];
#pragma unroll
        for (int r = 0; r < GEMV_ROWS; r++)
            w1[r] = __ldcs(wr[r] + c);
        gemv_chunk<M, SMEM, F8, FAST>(w1, sr, (unsigned)c >> p.kshift, x, K8, c, acc);
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

template <int IN, int EPI, bool F8, bool FAST> static void (*pick(int M))(const gemv_params) {
    switch (M) {
    case 1:
        return k_gemv<1, IN, EPI, F8, FAST>;
    case 2:
        return k_gemv<2, IN, EPI, F8, FAST>;
    case 3:
        return k_gemv<3, IN, EPI, F8, FAST>;
    case 4:
        return k_gemv<4, IN, EPI, F8, FAST>;
    case 5:
        return k_gemv<5, IN, EPI, F8, FAST>;
    case 6:
        return k_gemv<6, IN, EPI, F8, FAST>;
    case 7:
        return k_gemv<7, IN, EPI, F8, FAST>;
    default:
        return k_gemv<8, IN, EPI, F8, FAST>;
    }
}

/* p.scale non-NULL: the F8 form; p.fast its fast arithmetic. */
template <int IN, int EPI>
static ga_status launch(const gemv_params &p, int M, bool pdl, cudaStream_t stream, ga_err *err) {
    const int per_cta = EPI == EPI_SWIGLU ? GEMV_WARPS : GEMV_WARPS * GEMV_ROWS;
    void (*kern)(const gemv_params) = !p.scale ? pick<IN, EPI, false, false>(M)
                                      : p.fast ? pick<IN, EPI, true, true>(M)
                                               : pick<IN, EPI, true, false>(M);
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

/* ---------------------------------------------------------------- FP8 weights */

/* Every output element is 8 weights: one 8-byte load of codes, one 16-byte store of bf16. */
__global__ void k_f8_dequant(const uint2 *__restrict__ w, const float *__restrict__ scale,
                             const int *__restrict__ srow, int kb, int kshift, int K8, int64_t n8,
                             uint4 *__restrict__ out) {
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n8) return;
    const int64_t row = i / K8;
    const int c = (int)(i - row * K8);
    float f[8];
    e4m3x8_to_f32(__ldcs(w + i), __ldg(scale + (size_t)__ldg(srow + row) * kb + (c >> kshift)), f);
    uint4 o;
    __nv_bfloat162 *h = reinterpret_cast<__nv_bfloat162 *>(&o);
#pragma unroll
    for (int j = 0; j < 4; j++) // exact: each f is already a bf16 value
        h[j] = __floats2bfloat162_rn(f[2 * j], f[2 * j + 1]);
    out[i] = o;
}

static bool aligned8(const void *p) {
    return ((uintptr_t)p & 7) == 0;
}

/* The F8 operands' own conditions: block width a power of two of at least 8 (whole 8-element
 * chunks share a scale, and the chunk's scale column is a shift), scale columns ceil(K / block),
 * 8-byte aligned codes (rows of K bytes, K a multiple of 8). */
static bool f8_ok(const void *w8, const ga_f8_scales *f8, int K) {
    if (!w8 || !f8 || !f8->scale || !f8->srow || f8->block < 8 || (f8->block & (f8->block - 1)))
        return false;
    if (f8->math != GA_FP8_MATH_EXACT && f8->math != GA_FP8_MATH_FAST) return false;
    return K > 0 && K % 8 == 0 && f8->kb == (K + f8->block - 1) / f8->block && aligned8(w8);
}

static int f8_kshift(int block) {
    int s = 0;
    while ((8 << s) < block)
        s++;
    return s;
}

static void f8_params(gemv_params &p, const void *w8, const ga_f8_scales *f8) {
    p.w = static_cast<const uint4 *>(w8);
    p.scale = f8->scale;
    p.srow = f8->srow;
    p.kb = f8->kb;
    p.kshift = f8_kshift(f8->block);
    p.fast = f8->math == GA_FP8_MATH_FAST;
}

extern "C" int ga_gemv_f8_supported(const void *x, const void *w8, const ga_f8_scales *f8, int M,
                                    int K) {
    return M >= 1 && M <= GA_GEMV_MAX_M && aligned16(x) && f8_ok(w8, f8, K);
}

extern "C" int ga_gemv_f8_fused_supported(const void *x, const void *w8, const ga_f8_scales *f8,
                                          int M, int K) {
    return ga_gemv_f8_supported(x, w8, f8, M, K) && (size_t)M * K * 2 <= GEMV_STAGE_SMEM;
}

extern "C" ga_status ga_gemv_f8(const void *x, const void *w8, const ga_f8_scales *f8, void *y,
                                bool y_f32, int M, int N, int K, cudaStream_t stream, ga_err *err) {
    if (!x || !y || N <= 0 || !ga_gemv_f8_supported(x, w8, f8, M, K))
        return ga_err_set(err, GA_ERR_ARG,
                          "ga_gemv_f8: unsupported arguments (M %d of at most %d, N %d, K %d a "
                          "multiple of 8, block scales of a power-of-two width >= 8, 16-byte "
                          "aligned x, 8-byte aligned w)",
                          M, GA_GEMV_MAX_M, N, K);
    gemv_params p = {};
    f8_params(p, w8, f8);
    p.x = static_cast<const uint4 *>(x);
    p.y = y;
    p.y_f32 = y_f32 ? 1 : 0;
    p.N = N;
    p.K8 = K / 8;
    return launch<IN_GLOBAL, EPI_STORE>(p, M, false, stream, err);
}

extern "C" ga_status ga_gemv_f8_rmsnorm(const float *x, const float *norm_w, float eps,
                                        const void *w8, const ga_f8_scales *f8, void *y, bool y_f32,
                                        int M, int N, int K, bool pdl, cudaStream_t stream,
                                        ga_err *err) {
    if (!x || !norm_w || !y || N <= 0 || !aligned16(norm_w) ||
        !ga_gemv_f8_fused_supported(x, w8, f8, M, K))
        return ga_err_set(err, GA_ERR_ARG,
                          "ga_gemv_f8_rmsnorm: unsupported arguments (M %d, N %d, K %d with "
                          "M*K*2 <= %d, valid block scales, aligned x, norm_w and w)",
                          M, N, K, GEMV_STAGE_SMEM);
    gemv_params p = {};
    f8_params(p, w8, f8);
    p.xf = x;
    p.norm_w = norm_w;
    p.eps = eps;
    p.y = y;
    p.y_f32 = y_f32 ? 1 : 0;
    p.N = N;
    p.K8 = K / 8;
    return launch<IN_NORM, EPI_STORE>(p, M, pdl, stream, err);
}

extern "C" ga_status ga_gemv_f8_rmsnorm_swiglu(const float *x, const float *norm_w, float eps,
                                               const void *w8_gu, const ga_f8_scales *f8, void *act,
                                               int M, int inter, int K, bool pdl,
                                               cudaStream_t stream, ga_err *err) {
    if (!x || !norm_w || !act || inter <= 0 || !aligned16(norm_w) ||
        !ga_gemv_f8_fused_supported(x, w8_gu, f8, M, K))
        return ga_err_set(err, GA_ERR_ARG,
                          "ga_gemv_f8_rmsnorm_swiglu: unsupported arguments (M %d, I %d, K %d "
                          "with M*K*2 <= %d, valid block scales, aligned x, norm_w and w_gu)",
                          M, inter, K, GEMV_STAGE_SMEM);
    gemv_params p = {};
    f8_params(p, w8_gu, f8);
    p.xf = x;
    p.norm_w = norm_w;
    p.eps = eps;
    p.y = act;
    p.N = inter;
    p.K8 = K / 8;
    return launch<IN_NORM, EPI_SWIGLU>(p, M, pdl, stream, err);
}

extern "C" ga_status ga_gemv_f8_residual(const void *a, const void *w8, const ga_f8_scales *f8,
                                         const float *bias, float *x, int M, int N, int K, bool pdl,
                                         cudaStream_t stream, ga_err *err) {
    if (!a || !x || N <= 0 || !ga_gemv_f8_fused_supported(a, w8, f8, M, K))
        return ga_err_set(err, GA_ERR_ARG,
                          "ga_gemv_f8_residual: unsupported arguments (M %d, N %d, K %d with "
                          "M*K*2 <= %d, valid block scales, aligned a and w)",
                          M, N, K, GEMV_STAGE_SMEM);
    gemv_params p = {};
    f8_params(p, w8, f8);
    p.x = static_cast<const uint4 *>(a);
    p.resid = x;
    p.bias = bias;
    p.N = N;
    p.K8 = K / 8;
    return launch<IN_STAGE, EPI_RESID>(p, M, pdl, stream, err);
}

extern "C" ga_status ga_f8_dequant(const void *w8, const ga_f8_scales *f8, void *out, int N, int K,
                                   cudaStream_t stream, ga_err *err) {
    if (!out || N <= 0 || !f8_ok(w8, f8, K) || ((uintptr_t)out & 15))
        return ga_err_set(err, GA_ERR_ARG,
                          "ga_f8_dequant: unsupported arguments (N %d, K %d a multiple of 8, "
                          "block scales of a power-of-two width >= 8, aligned w and out)",
                          N, K);
    const int64_t n8 = (int64_t)N * (K / 8);
    const int threads = 256;
    k_f8_dequant<<<(unsigned)GA_CEIL_DIV(n8, threads), threads, 0, stream>>>(
        static_cast<const uint2 *>(w8), f8->scale, f8->srow, f8->kb, f8_kshift(f8->block), K / 8,
        n8, static_cast<uint4 *>(out));
    GA_CUDA_CHECK_LAUNCH();
    return GA_OK;
}
