/*
 * The Gated DeltaNet kernels of the hybrid Qwen models (launchers declared in gdn.h): causal
 * depthwise conv1d + SiLU with its state, the recurrent gated delta rule, and the per-head
 * gated RMSNorm and zero-centred RMSNorm. Kernels first, launchers after.
 *
 * Numerics: bf16 activations in and out, fp32 states and arithmetic. The library builds with
 * --use_fast_math, so expf/__expf below are ex2.approx-based (relative error ~1e-7 at the
 * magnitudes seen here) and rsqrtf is the approximate rsqrt.approx (2 ulp); the CPU reference
 * computes these in double. Both are far below one bf16 rounding of the outputs.
 *
 * Memory traffic per token (the costs these kernels are meant to be bound by) is in the
 * comment above each kernel; C is conv_dim = 2*Hk*dk + Hv*dv.
 */
#include <cuda_bf16.h>

#include "cuda_check.h"
#include "gdn.h"

typedef __nv_bfloat16 bf16;

static __device__ __forceinline__ float ldf(float v) {
    return v;
}
static __device__ __forceinline__ float ldf(bf16 v) {
    return __bfloat162float(v);
}

static __device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the total.
 * red: 32 floats of shared memory, reusable after the call returns. */
static __device__ __forceinline__ float block_sum(float v, float *red) {
    v = warp_sum(v);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    if (lane == 0) red[warp] = v;
    __syncthreads();
    v = lane < (int)(blockDim.x >> 5) ? red[lane] : 0.f;
    v = warp_sum(v);
    __syncthreads(); // red is free again
    return v;
}

/* ---------------------------------------------------------------- conv1d + SiLU
 * One thread per (channel, run of CONV_TOKENS tokens): it slides a K-1 window along its
 * channel in registers, so each input is read from memory about once. A warp covers 32
 * adjacent channels, 64 contiguous bytes per token row. The state of channel c is read and
 * rewritten only by the thread of the first run (blockIdx.y == 0): it is the only one whose
 * window reaches before token 0 (CONV_TOKENS >= K-1), so there is no race with the others.
 * Bytes per token: 2C (x) + 2C (y); per sequence and launch also 2 * 4C(K-1) of state and 4CK of
 * weights (a decode step at C = 8192, K = 4: 16 + 16 + 192 + 128 KB, the weights shared by the
 * batch through L2). */
#define CONV_THREADS 128
#define CONV_TOKENS 32
static_assert(CONV_TOKENS >= GA_GDN_MAX_CONV - 1, "a run must cover the state window");

__global__ void __launch_bounds__(CONV_THREADS)
    k_gdn_conv(const bf16 *__restrict__ x, bf16 *__restrict__ y, float *__restrict__ state,
               const int *__restrict__ slots, const float *__restrict__ w, int T, int C, int K,
               int xs, int ys) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    const int t0 = blockIdx.y * CONV_TOKENS, b = blockIdx.z, m = K - 1;
    const int slot = slots ? slots[b] : b;
    float *st = state + ((size_t)slot * C + c) * m;
    const bf16 *xc = x + (size_t)b * T * xs + c;
    bf16 *yc = y + (size_t)b * T * ys + c;
    float wr[GA_GDN_MAX_CONV - 1], win[GA_GDN_MAX_CONV - 1];
    const float wlast = w[(size_t)c * K + m];
    // Fixed-bound loops with guards keep wr/win in registers for any runtime K.
#pragma unroll
    for (int j = 0; j < GA_GDN_MAX_CONV - 1; j++) {
        wr[j] = j < m ? w[(size_t)c * K + j] : 0.f;
        const int pos = t0 - m + j; // the input window[j] holds before token t0
        win[j] = j >= m ? 0.f : pos >= 0 ? ldf(xc[(size_t)pos * xs]) : st[m + pos];
    }
    const int t1 = min(T, t0 + CONV_TOKENS);
    for (int t = t0; t < t1; t++) {
        const float xv = ldf(xc[(size_t)t * xs]);
        float s = wlast * xv;
#pragma unroll
        for (int j = 0; j < GA_GDN_MAX_CONV - 1; j++)
            s += wr[j] * win[j]; // wr[j] = 0 beyond m
#pragma unroll
        for (int j = 0; j < GA_GDN_MAX_CONV - 2; j++)
            if (j < m - 1) win[j] = win[j + 1];
#pragma unroll
        for (int j = 0; j < GA_GDN_MAX_CONV - 1; j++)
            if (j == m - 1) win[j] = xv;
        // silu(s) = s / (1 + exp(-s)): exp overflows to inf for s -> -inf and gives -0.
        yc[(size_t)t * ys] = __float2bfloat16_rn(s / (1.f + __expf(-s)));
    }
    if (blockIdx.y == 0) {
        // The new state: the last m inputs. When T < m the older ones come from the old state,
        // read at index T + j > j before anything at or above it is written (a forward memmove).
        for (int j = 0; j < m; j++) {
            const int pos = T - m + j;
            st[j] = pos >= 0 ? ldf(xc[(size_t)pos * xs]) : st[T + j];
        }
    }
}

/* ---------------------------------------------------------------- gated delta rule
 * One block per (32 value columns, value head, sequence); 8 warps split the dk rows of the
 * state, R = dk/8 rows a thread, so a block holds its 32-column slice of S (dk x 32 fp32) in
 * registers for all T tokens and moves it through memory once per launch. Every column of S
 * evolves independently given q, k, v_j, g and beta, so the column slices need no
 * communication; the two reductions over rows (k^T S and q^T S) go through shared memory.
 * Each block recomputes its key head's l2 norms (dk values, cheap next to the state slice).
 * Bytes: per sequence and launch 2 * 4 Hv dk dv of state (Qwen3-Next, Hv 32, dk = dv = 128:
 * 4 MiB a layer, the whole cost of a decode step); per token 2(2 Hk dk + Hv dv) of q/k/v, 4 Hv
 * of a/b, 2 Hv dv of o (~36 KB at those shapes; the re-reads of q/k by the dv/32 * Hv/Hk blocks
 * sharing a key head hit L2). */
#define DELTA_THREADS 256
#define DELTA_COLS 32

template <int R>
__global__ void __launch_bounds__(DELTA_THREADS) k_gdn_delta(ga_gdn_delta_args a, float qscale) {
    constexpr int dk = 8 * R;
    __shared__ float qs[dk], ks[dk], nq[8], nk[8], red[8][DELTA_COLS], red2[8][DELTA_COLS];
    __shared__ float decay_s, beta_s;
    const int lane = threadIdx.x & 31, wp = threadIdx.x >> 5, tid = threadIdx.x;
    const int j = blockIdx.x * DELTA_COLS + lane, h = blockIdx.y, b = blockIdx.z;
    const int dv = a.dv, hk = h / (a.Hv / a.Hk);
    const bool col = j < dv;
    const int slot = a.slots ? a.slots[b] : b;
    float *S = a.state + ((size_t)slot * a.Hv + h) * dk * dv;
    const bf16 *qg = static_cast<const bf16 *>(a.q) + hk * dk;
    const bf16 *kg = static_cast<const bf16 *>(a.k) + hk * dk;
    const bf16 *vg = static_cast<const bf16 *>(a.v) + (size_t)h * dv;
    const bf16 *ag = static_cast<const bf16 *>(a.a) + h;
    const bf16 *bg = static_cast<const bf16 *>(a.b) + h;
    bf16 *og = static_cast<bf16 *>(a.o) + (size_t)h * dv;
    float s[R];
#pragma unroll
    for (int r = 0; r < R; r++)
        s[r] = col ? S[(size_t)(wp * R + r) * dv + j] : 0.f;
    const float negA = -__expf(a.A_log[h]), dtb = a.dt_bias[h];
    for (int t = 0; t < a.T; t++) {
        const size_t row = (size_t)b * a.T + t;
        float qv = 0.f, kv = 0.f;
        if (tid < dk) {
            qv = __bfloat162float(qg[row * a.qkv_stride + tid]);
            kv = __bfloat162float(kg[row * a.qkv_stride + tid]);
        }
        const float sq = warp_sum(qv * qv), sk = warp_sum(kv * kv);
        if (lane == 0) nq[wp] = sq, nk[wp] = sk;
        if (tid == 0) {
            // g = -exp(A_log) * softplus(a + dt_bias); softplus as torch's (linear above 20)
            const float x = __bfloat162float(ag[row * a.ab_stride]) + dtb;
            const float sp = x > 20.f ? x : log1pf(__expf(x));
            decay_s = __expf(negA * sp);
            beta_s = 1.f / (1.f + __expf(-__bfloat162float(bg[row * a.ab_stride])));
        }
        __syncthreads();
        if (tid < dk) {
            float tq = 0.f, tk = 0.f;
#pragma unroll
            for (int w = 0; w < 8; w++)
                tq += nq[w], tk += nk[w];
            // the CPU op's order: l2-normalise (sum + 1e-6, not mean), then scale q
            qs[tid] = qv * rsqrtf(tq + 1e-6f) * qscale;
            ks[tid] = kv * rsqrtf(tk + 1e-6f);
        }
        __syncthreads();
        const float decay = decay_s;
        float mem = 0.f; // this warp's rows of (k^T S)[j], after the decay
#pragma unroll
        for (int r = 0; r < R; r++) {
            s[r] *= decay;
            mem += ks[wp * R + r] * s[r];
        }
        red[wp][lane] = mem;
        __syncthreads();
        float kS = 0.f;
#pragma unroll
        for (int w = 0; w < 8; w++)
            kS += red[w][lane];
        const float vj = col ? __bfloat162float(vg[row * a.qkv_stride + j]) : 0.f;
        const float delta = (vj - kS) * beta_s;
        float acc = 0.f;
#pragma unroll
        for (int r = 0; r < R; r++) {
            s[r] += ks[wp * R + r] * delta;
            acc += qs[wp * R + r] * s[r];
        }
        red2[wp][lane] = acc;
        __syncthreads();
        // Every shared array is rewritten next token only after a barrier that follows its last
        // read here (nq/nk, decay/beta: after the 1st; qs/ks, red: after the 2nd; red2: the 3rd).
        if (wp == 0 && col) {
            float o = 0.f;
#pragma unroll
            for (int w = 0; w < 8; w++)
                o += red2[w][lane];
            og[row * a.o_stride + j] = __float2bfloat16_rn(o);
        }
    }
    if (col) {
#pragma unroll
        for (int r = 0; r < R; r++)
            S[(size_t)(wp * R + r) * dv + j] = s[r];
    }
}

/* ---------------------------------------------------------------- norms
 * Gated RMSNorm: one warp per (row, head); bytes per token 2 Hv n each of o, z and out (24 KB
 * at Hv 32, n 128). Zero-centred RMSNorm: one block per row; 2n or 4n in, 2n out. */
#define NORM_THREADS 256

__global__ void __launch_bounds__(NORM_THREADS)
    k_gdn_gated_rmsnorm(ga_gdn_gated_norm_args a, int64_t items) {
    const int64_t item = (int64_t)blockIdx.x * (NORM_THREADS / 32) + (threadIdx.x >> 5);
    if (item >= items) return; // no barrier below: a warp may leave alone
    const int lane = threadIdx.x & 31, n = a.n;
    const int64_t row = item / a.heads;
    const int h = (int)(item % a.heads);
    const bf16 *o = static_cast<const bf16 *>(a.o) + row * a.o_stride + (int64_t)h * n;
    const bf16 *z = static_cast<const bf16 *>(a.z) + row * a.z_stride + (int64_t)h * n;
    bf16 *out = static_cast<bf16 *>(a.out) + row * a.out_stride + (int64_t)h * n;
    float ss = 0.f;
    for (int i = lane; i < n; i += 32) {
        const float v = __bfloat162float(o[i]);
        ss += v * v;
    }
    const float r = rsqrtf(warp_sum(ss) / n + a.eps);
    // out may be o: each element is read and written by the same lane, after the sum above.
    for (int i = lane; i < n; i += 32) {
        const float v = __bfloat162float(o[i]), zz = __bfloat162float(z[i]);
        out[i] = __float2bfloat16_rn(a.w[i] * (v * r) * (zz / (1.f + __expf(-zz))));
    }
}

template <typename T>
__global__ void __launch_bounds__(NORM_THREADS)
    k_gdn_rmsnorm_zc(const T *__restrict__ x, const float *__restrict__ w, bf16 *__restrict__ out,
                     int n, int xs, int os, float eps) {
    __shared__ float red[32];
    const T *xr = x + (size_t)blockIdx.x * xs;
    bf16 *orow = out + (size_t)blockIdx.x * os;
    float ss = 0.f;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        const float v = ldf(xr[i]);
        ss += v * v;
    }
    const float r = rsqrtf(block_sum(ss, red) / n + eps);
    for (int i = threadIdx.x; i < n; i += blockDim.x)
        orow[i] = __float2bfloat16_rn(ldf(xr[i]) * r * (1.f + w[i]));
}

/* ---------------------------------------------------------------- launchers */

extern "C" ga_status ga_gdn_conv(const ga_gdn_conv_args *a, cudaStream_t stream, ga_err *err) {
    if (!a) return ga_err_set(err, GA_ERR_ARG, "ga_gdn_conv: args is NULL");
    if (!a->x || !a->y || !a->state || !a->w)
        return ga_err_set(err, GA_ERR_ARG, "ga_gdn_conv: x, y, state and w must be set");
    if (a->B < 1 || a->B > 65535 || a->T < 1 || a->C < 1)
        return ga_err_set(err, GA_ERR_ARG, "ga_gdn_conv: B %d (1..65535), T %d, C %d", a->B, a->T,
                          a->C);
    if (a->K < 1 || a->K > GA_GDN_MAX_CONV)
        return ga_err_set(err, GA_ERR_ARG, "ga_gdn_conv: kernel width K %d (1..%d)", a->K,
                          GA_GDN_MAX_CONV);
    if (a->x_stride < a->C || a->y_stride < a->C)
        return ga_err_set(err, GA_ERR_ARG, "ga_gdn_conv: x_stride %d / y_stride %d below C %d",
                          a->x_stride, a->y_stride, a->C);
    const bf16 *x = static_cast<const bf16 *>(a->x);
    const bf16 *y = static_cast<const bf16 *>(a->y);
    const size_t rows = (size_t)a->B * a->T;
    if (y < x + rows * a->x_stride && x < y + rows * a->y_stride)
        return ga_err_set(err, GA_ERR_ARG, "ga_gdn_conv: y overlaps x");
    const dim3 grid(GA_CEIL_DIV(a->C, CONV_THREADS), GA_CEIL_DIV(a->T, CONV_TOKENS), a->B);
    if (grid.y > 65535) return ga_err_set(err, GA_ERR_ARG, "ga_gdn_conv: T %d too long", a->T);
    k_gdn_conv<<<grid, CONV_THREADS, 0, stream>>>(x, static_cast<bf16 *>(a->y), a->state, a->slots,
                                                  a->w, a->T, a->C, a->K, a->x_stride, a->y_stride);
    GA_CUDA_CHECK_LAUNCH();
    return GA_OK;
}

extern "C" ga_status ga_gdn_delta_check(const ga_gdn_delta_args *a, const char *fn, ga_err *err) {
    if (!a) return ga_err_set(err, GA_ERR_ARG, "%s: args is NULL", fn);
    if (!a->q || !a->k || !a->v || !a->a || !a->b || !a->A_log || !a->dt_bias || !a->state || !a->o)
        return ga_err_set(err, GA_ERR_ARG,
                          "%s: q, k, v, a, b, A_log, dt_bias, state and o must be set", fn);
    if (a->B < 1 || a->B > 65535 || a->T < 1)
        return ga_err_set(err, GA_ERR_ARG, "%s: B %d (1..65535), T %d", fn, a->B, a->T);
    if (a->Hk < 1 || a->Hv < 1 || a->Hv % a->Hk || a->Hv > 65535)
        return ga_err_set(err, GA_ERR_ARG,
                          "%s: Hv %d value heads must be a multiple of Hk %d key heads", fn, a->Hv,
                          a->Hk);
    if (a->dv < 1 || (a->dk != 16 && a->dk != 32 && a->dk != 64 && a->dk != 128 && a->dk != 256))
        return ga_err_set(err, GA_ERR_ARG, "%s: dk %d (16/32/64/128/256), dv %d", fn, a->dk, a->dv);
    if (a->qkv_stride < a->Hk * a->dk || a->qkv_stride < a->Hv * a->dv || a->ab_stride < a->Hv ||
        a->o_stride < a->Hv * a->dv)
        return ga_err_set(err, GA_ERR_ARG,
                          "%s: qkv_stride %d / ab_stride %d / o_stride %d below the heads' width",
                          fn, a->qkv_stride, a->ab_stride, a->o_stride);
    return GA_OK;
}

extern "C" ga_status ga_gdn_delta(const ga_gdn_delta_args *a, cudaStream_t stream, ga_err *err) {
    const ga_status st = ga_gdn_delta_check(a, "ga_gdn_delta", err);
    if (st) return st;
    const dim3 grid(GA_CEIL_DIV(a->dv, DELTA_COLS), a->Hv, a->B);
    const float qscale = (float)(1.0 / sqrt((double)a->dk));
    switch (a->dk) {
    case 16:
        k_gdn_delta<2><<<grid, DELTA_THREADS, 0, stream>>>(*a, qscale);
        break;
    case 32:
        k_gdn_delta<4><<<grid, DELTA_THREADS, 0, stream>>>(*a, qscale);
        break;
    case 64:
        k_gdn_delta<8><<<grid, DELTA_THREADS, 0, stream>>>(*a, qscale);
        break;
    case 128:
        k_gdn_delta<16><<<grid, DELTA_THREADS, 0, stream>>>(*a, qscale);
        break;
    default:
        k_gdn_delta<32><<<grid, DELTA_THREADS, 0, stream>>>(*a, qscale);
        break;
    }
    GA_CUDA_CHECK_LAUNCH();
    return GA_OK;
}

extern "C" ga_status ga_gdn_gated_rmsnorm(const ga_gdn_gated_norm_args *a, cudaStream_t stream,
                                          ga_err *err) {
    if (!a) return ga_err_set(err, GA_ERR_ARG, "ga_gdn_gated_rmsnorm: args is NULL");
    if (!a->o || !a->z || !a->w || !a->out)
        return ga_err_set(err, GA_ERR_ARG, "ga_gdn_gated_rmsnorm: o, z, w and out must be set");
    if (a->rows < 0 || a->heads < 1 || a->n < 1 || a->n > 1024 || !(a->eps >= 0.f))
        return ga_err_set(err, GA_ERR_ARG,
                          "ga_gdn_gated_rmsnorm: rows %d, heads %d, n %d (1..1024), eps %g",
                          a->rows, a->heads, a->n, (double)a->eps);
    const int width = a->heads * a->n;
    if (a->o_stride < width || a->z_stride < width || a->out_stride < width)
        return ga_err_set(err, GA_ERR_ARG,
                          "ga_gdn_gated_rmsnorm: o_stride %d / z_stride %d / out_stride %d below "
                          "heads * n %d",
                          a->o_stride, a->z_stride, a->out_stride, width);
    if (a->out != a->o && a->out_stride != a->o_stride) {
        const bf16 *o = static_cast<const bf16 *>(a->o), *out = static_cast<const bf16 *>(a->out);
        if (out < o + (size_t)a->rows * a->o_stride && o < out + (size_t)a->rows * a->out_stride)
            return ga_err_set(err, GA_ERR_ARG,
                              "ga_gdn_gated_rmsnorm: out overlaps o without being it");
    }
    if (a->rows == 0) return GA_OK;
    const int64_t items = (int64_t)a->rows * a->heads;
    const int64_t blocks = GA_CEIL_DIV(items, (int64_t)(NORM_THREADS / 32));
    if (blocks > 0x7fffffff)
        return ga_err_set(err, GA_ERR_ARG, "ga_gdn_gated_rmsnorm: %lld heads in all",
                          (long long)items);
    k_gdn_gated_rmsnorm<<<(unsigned)blocks, NORM_THREADS, 0, stream>>>(*a, items);
    GA_CUDA_CHECK_LAUNCH();
    return GA_OK;
}

extern "C" ga_status ga_gdn_rmsnorm_zc(const void *x, int x_f32, const float *w, void *out,
                                       int rows, int n, int x_stride, int out_stride, float eps,
                                       cudaStream_t stream, ga_err *err) {
    if (!x || !w || !out)
        return ga_err_set(err, GA_ERR_ARG, "ga_gdn_rmsnorm_zc: x, w and out must be set");
    if (rows < 0 || n < 1 || x_stride < n || out_stride < n || !(eps >= 0.f))
        return ga_err_set(err, GA_ERR_ARG,
                          "ga_gdn_rmsnorm_zc: rows %d, n %d, x_stride %d, out_stride %d, eps %g",
                          rows, n, x_stride, out_stride, (double)eps);
    if (rows == 0) return GA_OK;
    // Small rows (per-head q/k norms, n = head_dim) get a block of their own size.
    const int threads = n >= NORM_THREADS ? NORM_THREADS : GA_CEIL_DIV(n, 32) * 32;
    bf16 *o = static_cast<bf16 *>(out);
    if (x_f32)
        k_gdn_rmsnorm_zc<float><<<rows, threads, 0, stream>>>(static_cast<const float *>(x), w, o,
                                                              n, x_stride, out_stride, eps);
    else
        k_gdn_rmsnorm_zc<bf16><<<rows, threads, 0, stream>>>(static_cast<const bf16 *>(x), w, o, n,
                                                             x_stride, out_stride, eps);
    GA_CUDA_CHECK_LAUNCH();
    return GA_OK;
}
