/*
 * The gated delta rule of one sequence's prefill in the chunked form (ga_gdn_delta_chunked,
 * gdn.h), the recurrence of ga_gdn_delta rewritten per chunk of L = GA_GDN_CHUNK tokens as in
 * flash-linear-attention's chunk_gated_delta_rule (the WY / UT representation), derived here:
 *
 * With a_t = exp(g_t), the step is S_t = a_t S_{t-1} + k_t d_t^T with
 * d_t = beta_t (v_t - a_t S_{t-1}^T k_t). Inside a chunk starting from S_0, with the inclusive
 * cumulative decay G_t = g_0 + ... + g_t and gamma_t = exp(G_t):
 *   S_t = gamma_t S_0 + sum_{s<=t} exp(G_t - G_s) k_s d_s^T,
 * so the d_s satisfy the unit lower-triangular system (I + A) D = U0 - W0 S_0 with
 *   A[s][r] = beta_s exp(G_s - G_r) (k_s . k_r)   (r < s),
 *   U0[s] = beta_s v_s,   W0[s] = beta_s gamma_s k_s.
 * Solving u = (I + A)^-1 U0 and w = (I + A)^-1 W0 once per chunk (independent of the state, so
 * every chunk in parallel: k_gdn_chunk_wy) leaves, per chunk in order (k_gdn_chunk_scan):
 *   D = u - w S_0
 *   o_t = gamma_t S_0^T q_t + sum_{s<=t} P[t][s] d_s,  P[t][s] = exp(G_t - G_s) (q_t . k_s)
 *   S_L = gamma_{L-1} S_0 + sum_s exp(G_{L-1} - G_s) k_s d_s^T.
 * Every exponent is G_t - G_s with t >= s or G_t itself, all <= 0: nothing overflows.
 *
 * This first version is fp32 SIMT throughout (no tensor cores): it removes the per-token
 * barriers of the recurrent kernel from the sequential part, which now does O(L dk) work per
 * column and chunk instead of per token; the matrix products are the place for mma/wgmma next.
 * Version 2 (gdn_chunk_v2.cu, the default; this file's launcher dispatches on a->chunk_impl)
 * moves D's consumers out of the sequential loop and tiles every product: the Q08 profile had
 * this version's scan at 2.0 ms and its wy at 0.27 ms per 512-token call. This file keeps the
 * launcher, the per-token prep both versions share, and version 1 (chunk_impl 1) for A/B.
 * Bytes: per token the scratch takes 4 (2 Hk dk + Hv (3 + dk + dv + L)) bytes (q, k normalised;
 * g, beta, G; w, u; a row of P: 58 KB at Qwen3-Next's Hk 16, Hv 32, dk = dv = 128), written once
 * and read back one to three times (w, u, P, q by the dv/32 column blocks of a head), plus the
 * inputs and o as in ga_gdn_delta, and the state once per launch.
 */
#include "gdn_chunk_common.cuh"

typedef __nv_bfloat16 bf16;

static __device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* The triangular solve of one (chunk, value head): (I + A) [w | u] = [W0 | U0] with
 * W0[s] = beta_s gamma_s k_s and U0[s] = beta_s v_s, one column of [W0 | U0] a thread by forward
 * substitution (the column lives in registers; the loops are fully unrolled so x[] is indexed by
 * constants). A (strictly lower, in shared memory), gc = G and bt = beta of the chunk's rows;
 * kn points at the chunk's first key row (row s at s * rs), v at its first value row of head h.
 * Rows past L are neither read nor written. */
static __device__ __forceinline__ void gdn_chunk_solve(const ga_gdn_delta_args &a, float *ws,
                                                       const chunk_ws &l, const float (*A)[CH + 1],
                                                       const float *gc, const float *bt,
                                                       const float *kn, size_t rs, int h, int t0,
                                                       int L) {
    const int T = a.T, dk = a.dk, dv = a.dv;
    const __nv_bfloat16 *v =
        static_cast<const __nv_bfloat16 *>(a.v) + (size_t)t0 * a.qkv_stride + (size_t)h * dv;
    for (int col = threadIdx.x; col < dk + dv; col += blockDim.x) {
        const bool isw = col < dk;
        float x[CH];
#pragma unroll
        for (int s = 0; s < CH; s++) {
            float acc = 0.f;
            if (s < L)
                acc = isw ? bt[s] * __expf(gc[s]) * kn[s * rs + col]
                          : bt[s] * __bfloat162float(v[(size_t)s * a.qkv_stride + col - dk]);
#pragma unroll
            for (int r = 0; r < s; r++)
                acc -= A[s][r] * x[r];
            x[s] = acc;
            if (s < L) {
                if (isw)
                    ws[l.w + ((size_t)h * T + t0 + s) * dk + col] = acc;
                else
                    ws[l.u + ((size_t)h * T + t0 + s) * dv + col - dk] = acc;
            }
        }
    }
}

/* Per token: q and k of every key head l2-normalised (q also scaled, the CPU op's order), and
 * g, beta of every value head. One block per token, one warp per head vector. */
__global__ void __launch_bounds__(CHUNK_THREADS)
    k_gdn_chunk_prep(ga_gdn_delta_args a, float qscale, float *__restrict__ ws, chunk_ws l) {
    const int t = blockIdx.x, lane = threadIdx.x & 31, wp = threadIdx.x >> 5;
    const int Hk = a.Hk, dk = a.dk;
    for (int v = wp; v < 2 * Hk; v += CHUNK_THREADS / 32) {
        const bool isk = v >= Hk;
        const int hk = isk ? v - Hk : v;
        const bf16 *src =
            static_cast<const bf16 *>(isk ? a.k : a.q) + (size_t)t * a.qkv_stride + (size_t)hk * dk;
        float *dst = ws + (isk ? l.kn : l.qn) + ((size_t)t * Hk + hk) * dk;
        float ss = 0.f;
        for (int i = lane; i < dk; i += 32) {
            const float x = __bfloat162float(src[i]);
            ss += x * x;
        }
        const float r = rsqrtf(warp_sum(ss) + 1e-6f), sc = isk ? 1.f : qscale;
        for (int i = lane; i < dk; i += 32)
            dst[i] = __bfloat162float(src[i]) * r * sc;
    }
    for (int h = threadIdx.x; h < a.Hv; h += CHUNK_THREADS) {
        const bf16 *ar = static_cast<const bf16 *>(a.a) + (size_t)t * a.ab_stride;
        const bf16 *br = static_cast<const bf16 *>(a.b) + (size_t)t * a.ab_stride;
        const float x = __bfloat162float(ar[h]) + a.dt_bias[h];
        const float sp = x > 20.f ? x : log1pf(__expf(x)); // torch's softplus threshold
        ws[l.g + (size_t)t * a.Hv + h] = -__expf(a.A_log[h]) * sp;
        ws[l.bt + (size_t)t * a.Hv + h] = 1.f / (1.f + __expf(-__bfloat162float(br[h])));
    }
}

/* Per (chunk, value head): G, A and P, then the triangular solve for w and u, one column of
 * [W0 | U0] a thread (forward substitution; the column lives in registers, the loops are fully
 * unrolled so x[] is indexed by constants). Rows past the sequence's end are zero. */
__global__ void __launch_bounds__(CHUNK_THREADS)
    k_gdn_chunk_wy(ga_gdn_delta_args a, float *__restrict__ ws, chunk_ws l) {
    __shared__ float gc[CH], bt[CH], A[CH][CH + 1];
    const int c = blockIdx.x, h = blockIdx.y, tid = threadIdx.x;
    const int T = a.T, Hk = a.Hk, Hv = a.Hv, dk = a.dk, hk = h / (Hv / Hk);
    const int t0 = c * CH, L = min(CH, T - t0);
    if (tid < CH) {
        gc[tid] = tid < L ? ws[l.g + (size_t)(t0 + tid) * Hv + h] : 0.f;
        bt[tid] = tid < L ? ws[l.bt + (size_t)(t0 + tid) * Hv + h] : 0.f;
    }
    __syncthreads();
    if (tid == 0) // 64 adds in sequence: cheaper than a scan's barriers
        for (int s = 1; s < CH; s++)
            gc[s] += gc[s - 1];
    __syncthreads();
    if (tid < L) ws[l.gc + (size_t)h * T + t0 + tid] = gc[tid];
    const float *kn = ws + l.kn + ((size_t)t0 * Hk + hk) * dk; // row s at s * Hk * dk
    const float *qn = ws + l.qn + ((size_t)t0 * Hk + hk) * dk;
    const size_t rs = (size_t)Hk * dk;
    float *P = ws + l.P + ((size_t)h * gridDim.x + c) * CH * CH;
    for (int p = tid; p < CH * CH; p += CHUNK_THREADS) {
        const int s = p / CH, r = p % CH;
        float kk = 0.f, qk = 0.f, e = 0.f;
        if (s < L && r <= s) {
            const float *ks = kn + s * rs, *kr = kn + r * rs, *qs = qn + s * rs;
            for (int i = 0; i < dk; i++) {
                kk += ks[i] * kr[i];
                qk += qs[i] * kr[i];
            }
            e = __expf(gc[s] - gc[r]);
        }
        A[s][r] = r < s ? bt[s] * e * kk : 0.f;
        P[p] = qk * e; // 0 above the diagonal and past the end
    }
    __syncthreads();
    gdn_chunk_solve(a, ws, l, A, gc, bt, kn, rs, h, t0, L);
}

/* Per (32 value columns, value head): the chunks in order, the state slice (dk x 32) in shared
 * memory so any warp reads any row of it; a warp takes every 8th row of D, O and S. */
#define SCAN_COLS 32
__global__ void __launch_bounds__(CHUNK_THREADS)
    k_gdn_chunk_scan(ga_gdn_delta_args a, const float *__restrict__ ws, chunk_ws l) {
    __shared__ float S[256 * SCAN_COLS], D[CH * SCAN_COLS], gsh[CH], dsh[CH];
    const int lane = threadIdx.x & 31, wp = threadIdx.x >> 5, tid = threadIdx.x;
    const int T = a.T, Hk = a.Hk, Hv = a.Hv, dk = a.dk, dv = a.dv;
    const int h = blockIdx.y, hk = h / (Hv / Hk), j = blockIdx.x * SCAN_COLS + lane;
    const bool col = j < dv;
    const int nw = CHUNK_THREADS / 32, nch = GA_CEIL_DIV(T, CH);
    const int slot = a.slots ? a.slots[0] : 0;
    float *Sg = a.state + ((size_t)slot * Hv + h) * dk * dv;
    bf16 *og = static_cast<bf16 *>(a.o) + (size_t)h * dv + j;
    const size_t rs = (size_t)Hk * dk;
    for (int i = wp; i < dk; i += nw)
        S[i * SCAN_COLS + lane] = col ? Sg[(size_t)i * dv + j] : 0.f;
    for (int c = 0; c < nch; c++) {
        const int t0 = c * CH, L = min(CH, T - t0);
        const float *gc = ws + l.gc + (size_t)h * T + t0;
        // Not before every warp has finished the last chunk's S update, which reads dsh: without
        // this barrier warps 0-1 could overwrite dsh under the others (a race found by running
        // the kernel in a thread-per-lane CPU emulation, branch h13-gdn's tools/gdn_emu; a last
        // chunk shorter than 64 tokens shows it).
        __syncthreads();
        if (tid < CH) {
            gsh[tid] = tid < L ? gc[tid] : 0.f;
            dsh[tid] = tid < L ? __expf(gc[L - 1] - gc[tid]) : 0.f; // exp(G_{L-1} - G_s)
        }
        __syncthreads(); // S loaded / last chunk's S update done; gsh, dsh ready
        const float *w = ws + l.w + ((size_t)h * T + t0) * dk;
        const float *u = ws + l.u + ((size_t)h * T + t0) * dv;
        for (int s = wp; s < CH; s += nw) { // D = u - w S_0
            float d = 0.f;
            if (s < L && col) {
                const float *ws_ = w + (size_t)s * dk;
                d = u[(size_t)s * dv + j];
                for (int i = 0; i < dk; i++)
                    d -= ws_[i] * S[i * SCAN_COLS + lane];
            }
            D[s * SCAN_COLS + lane] = d;
        }
        __syncthreads();
        const float *qn = ws + l.qn + (size_t)t0 * rs + (size_t)hk * dk;
        const float *P = ws + l.P + ((size_t)h * nch + c) * CH * CH;
        for (int t = wp; t < L; t += nw) { // o_t = gamma_t S_0^T q_t + sum_{s<=t} P[t][s] d_s
            const float *q = qn + (size_t)t * rs;
            float qs = 0.f, pd = 0.f;
            for (int i = 0; i < dk; i++)
                qs += q[i] * S[i * SCAN_COLS + lane];
            for (int s = 0; s <= t; s++)
                pd += P[t * CH + s] * D[s * SCAN_COLS + lane];
            if (col)
                og[(size_t)(t0 + t) * a.o_stride] = __float2bfloat16_rn(__expf(gsh[t]) * qs + pd);
        }
        __syncthreads(); // every read of S_0 done before it is overwritten
        const float *kn = ws + l.kn + (size_t)t0 * rs + (size_t)hk * dk;
        const float gL = __expf(gsh[L - 1]);
        for (int i = wp; i < dk; i += nw) { // S_L = gamma_{L-1} S_0 + sum_s dsh[s] k_s d_s^T
            float acc = gL * S[i * SCAN_COLS + lane];
            for (int s = 0; s < L; s++)
                acc += dsh[s] * kn[(size_t)s * rs + i] * D[s * SCAN_COLS + lane];
            S[i * SCAN_COLS + lane] = acc; // only this thread reads row i, column lane here
        }
    }
    __syncthreads();
    if (col)
        for (int i = wp; i < dk; i += nw)
            Sg[(size_t)i * dv + j] = S[i * SCAN_COLS + lane];
}

/* ---------------------------------------------------------------- launcher */

extern "C" size_t ga_gdn_chunk_workspace(int T, int Hk, int Hv, int dk, int dv) {
    if (T < 1 || Hk < 1 || Hv < 1 || dk < 1 || dv < 1) return 0;
    return chunk_layout(T, Hk, Hv, dk, dv).total * sizeof(float);
}

extern "C" ga_status ga_gdn_delta_chunked(const ga_gdn_delta_args *a, float *work,
                                          size_t work_bytes, cudaStream_t stream, ga_err *err) {
    const ga_status st = ga_gdn_delta_check(a, "ga_gdn_delta_chunked", err);
    if (st) return st;
    if (a->B != 1)
        return ga_err_set(err, GA_ERR_ARG, "ga_gdn_delta_chunked: B %d (one sequence: 1)", a->B);
    const size_t need = ga_gdn_chunk_workspace(a->T, a->Hk, a->Hv, a->dk, a->dv);
    if (!work || work_bytes < need)
        return ga_err_set(err, GA_ERR_ARG, "ga_gdn_delta_chunked: work %zu bytes, needs %zu",
                          work ? work_bytes : (size_t)0, need);
    const chunk_ws l = chunk_layout(a->T, a->Hk, a->Hv, a->dk, a->dv);
    const int nch = GA_CEIL_DIV(a->T, CH);
    if (nch > 65535 || (int64_t)a->T * a->Hv > 0x7fffffff)
        return ga_err_set(err, GA_ERR_ARG, "ga_gdn_delta_chunked: T %d too long", a->T);
    const float qscale = (float)(1.0 / sqrt((double)a->dk));
    k_gdn_chunk_prep<<<a->T, CHUNK_THREADS, 0, stream>>>(*a, qscale, work, l);
    GA_CUDA_CHECK_LAUNCH();
    if (a->chunk_impl != 1) return ga_gdn_chunk_v2(a, work, &l, stream, err);
    k_gdn_chunk_wy<<<dim3(nch, a->Hv), CHUNK_THREADS, 0, stream>>>(*a, work, l);
    GA_CUDA_CHECK_LAUNCH();
    k_gdn_chunk_scan<<<dim3(GA_CEIL_DIV(a->dv, SCAN_COLS), a->Hv), CHUNK_THREADS, 0, stream>>>(
        *a, work, l);
    GA_CUDA_CHECK_LAUNCH();
    return GA_OK;
}
