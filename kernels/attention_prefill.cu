/*
 * Causal GQA attention for prefill (ga_attention_prefill): flash-attention style on the
 * tensor cores (mma.sync m16n8k16 bf16, fp32 accumulate), portable to sm_80 and later.
 *
 * One CTA owns BM = 16*MT*WARPS query rows of one query head; each warp owns MT m-tiles of
 * 16 rows (long prompts: 8 warps x 32 rows; short ones, and every hd 256 prompt: 4 x 16).
 * The CTA walks the KV tiles (BN = 64 keys, 32 at hd 256) from key 0 to the last key its
 * rows can see, with the next K/V tile streamed into shared memory by cp.async while the
 * current one is used (double buffering). Scores S = Q K^T stay in registers, the softmax
 * is online (running max and sum per row, fp32, base 2), and P is re-packed from the S
 * accumulators straight into A fragments for O += P V, so the T x T matrix is never stored
 * anywhere. KV tiles past the causal diagonal are never loaded (about half the work of the full
 * square), and a warp whose rows all precede a tile skips its math. The epilogue divides by the row
 * sum, multiplies by sigmoid(gate) (headwise or elementwise) and stores bf16, so the gate costs no
 * extra pass; it also writes the row's natural-log log-sum-exp when asked.
 *
 * ga_attention_prefill validates the arguments for both kernels and dispatches: on an sm_90
 * device with an sm_90a build and head_dim 128 it runs the Hopper wgmma/TMA kernel
 * (attention_prefill_sm90.cu, about twice as fast there), everywhere else this one
 * (head_dim 64 and 256 on sm_90 included).
 */
#include <cuda_bf16.h>
#include <math.h>
#include <stdint.h>

#include "attention_common.cuh"
#include "cuda_check.h"
#include "kernels.h"
#include "launch_cache.cuh"

/* CTA shape for long prompts (T > GA_PF_SMALL_T): warps, and 16-row m-tiles per warp; short
 * prompts use 4 warps of one m-tile (64-row tiles: more CTAs to fill the GPU). Compile-time
 * knobs only so tools/gpu_attn.sh can test and time the alternatives. */
#ifndef GA_PF_LONG_WARPS
#define GA_PF_LONG_WARPS 8
#endif
#ifndef GA_PF_LONG_MT
#define GA_PF_LONG_MT 2
#endif
#ifndef GA_PF_SMALL_T
#define GA_PF_SMALL_T 2048
#endif

/* Shared-memory rows are padded by 8 bf16 (16 bytes): a row pitch of HD+8 elements is an
 * odd number of 16-byte units, so the 8 row addresses of one ldmatrix phase fall in 8
 * different bank groups (no conflicts) while every row stays 16-byte aligned for cp.async.
 * BN keys per KV tile: 64, or 32 at hd 256, where the 4 K/V buffers of 64 keys alone would
 * take 132 KiB; with 32 the 64-row tile needs (64 + 4 x 32) x 264 x 2 = 99 KiB, which is
 * exactly the per-block limit of sm_86/89 and gives 2 CTAs per SM on sm_90. */
template <int HD> struct pf_dims {
    static constexpr int LD = HD + 8;
    static constexpr int CPR = HD / 8; /* 16-byte chunks per row */
    static constexpr int BN = HD == 256 ? 32 : 64;
};

template <int HD, int WARPS, int MT> static constexpr size_t pf_smem_bytes(void) {
    return (size_t)(16 * MT * WARPS + 4 * pf_dims<HD>::BN) * pf_dims<HD>::LD *
           sizeof(__nv_bfloat16);
}

/* Streams rows [row0, row0+rows) of a (rows_total, HD) bf16 matrix with row pitch `pitch`
 * into shared memory; rows at or past `valid` are zero-filled instead of read. */
template <int HD, int NTHR>
static __device__ __forceinline__ void pf_load_rows(__nv_bfloat16 *dst, const __nv_bfloat16 *src,
                                                    int64_t pitch, int row0, int rows, int valid) {
    constexpr int CPR = pf_dims<HD>::CPR, LD = pf_dims<HD>::LD;
    for (int c = threadIdx.x; c < rows * CPR; c += NTHR) {
        int r = c / CPR, col = (c % CPR) * 8;
        bool ok = row0 + r < valid;
        const __nv_bfloat16 *p = ok ? src + (int64_t)(row0 + r) * pitch + col : src;
        ga_cp_async16(dst + r * LD + col, p, ok ? 16 : 0);
    }
}

/* WARPS warps of MT m-tiles (16 query rows each): BM = 16*MT*WARPS rows per CTA. With
 * MT = 1 the warp keeps its Q fragments in registers for the whole KV loop; with MT = 2 it
 * re-reads them from shared memory per tile but uses every K and V fragment it loads twice,
 * which cuts the shared-memory traffic per FLOP by about a third at the cost of registers.
 * hd 256 (MT = 1 only: its O accumulators alone are 128 registers a thread) re-reads Q too,
 * as its 64 registers of Q fragments would not fit beside them. */
template <int HD, int WARPS, int MT>
__global__ void __launch_bounds__(WARPS * 32, 1)
    k_attn_prefill(const __nv_bfloat16 *__restrict__ q, const __nv_bfloat16 *__restrict__ k,
                   const __nv_bfloat16 *__restrict__ v, const __nv_bfloat16 *__restrict__ gate,
                   __nv_bfloat16 *__restrict__ out, float *__restrict__ lse, int T, int pos0,
                   int n_heads, int G, int kv_stride, int gate_mode, float scale_log2) {
    constexpr int WR = 16 * MT; /* query rows per warp */
    constexpr int BM = WR * WARPS, BN = pf_dims<HD>::BN, NTHR = WARPS * 32;
    constexpr bool QREG = MT == 1 && HD <= 128; /* Q fragments stay in registers */
    constexpr int LD = pf_dims<HD>::LD;
    constexpr int KC = HD / 16; /* 16-wide k-chunks of the head dim (QK^T) */
    constexpr int DT = HD / 8;  /* 8-wide n-tiles of the head dim (PV) */
    extern __shared__ __align__(16) unsigned char pf_smem[];
    __nv_bfloat16 *sQ = reinterpret_cast<__nv_bfloat16 *>(pf_smem); /* BM x LD */
    __nv_bfloat16 *sK = sQ + BM * LD;                               /* 2 x BN x LD */
    __nv_bfloat16 *sV = sK + 2 * BN * LD;                           /* 2 x BN x LD */

    /* Heads vary fastest and the latest (longest) query tiles go first, so the first wave
     * holds the heaviest CTAs and the G heads that share a KV head run side by side (their
     * K/V come from L2). */
    const int h = blockIdx.x;
    const int qt = gridDim.y - 1 - blockIdx.y;
    const int hk = h / G;
    const int m0 = qt * BM;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int g = lane >> 2, c4 = lane & 3;

    const int q_end = min(m0 + BM, T);
    const int kv_end = pos0 + q_end; /* keys [0, kv_end) are visible to some row here */
    const int n_kt = (kv_end + BN - 1) / BN;
    const int64_t q_pitch = (int64_t)n_heads * HD;
    const __nv_bfloat16 *qh = q + (int64_t)h * HD;
    const __nv_bfloat16 *kh = k + (int64_t)hk * kv_stride * HD;
    const __nv_bfloat16 *vh = v + (int64_t)hk * kv_stride * HD;

    pf_load_rows<HD, NTHR>(sQ, qh + (int64_t)m0 * q_pitch, q_pitch, 0, BM, q_end - m0);
    pf_load_rows<HD, NTHR>(sK, kh, HD, 0, BN, kv_end);
    pf_load_rows<HD, NTHR>(sV, vh, HD, 0, BN, kv_end);
    ga_cp_async_commit();

    uint32_t qf[QREG ? KC : 1][4]; /* Q fragments kept in registers (QREG only) */
    float o[MT][DT][4];
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int i = 0; i < DT; i++)
            o[mt][i][0] = o[mt][i][1] = o[mt][i][2] = o[mt][i][3] = 0.0f;
    /* running max in scaled base-2 units (scale*log2e*score) and per-lane partial sums */
    float m_run[MT][2], l_run[MT][2];
#pragma unroll
    for (int mt = 0; mt < MT; mt++) {
        m_run[mt][0] = m_run[mt][1] = -INFINITY;
        l_run[mt][0] = l_run[mt][1] = 0.0f;
    }
    const int wrow0 = m0 + warp * WR; /* first query row of this warp */
    const __nv_bfloat16 *sQw = sQ + (warp * WR + (lane & 15)) * LD + (lane >> 4) * 8;

    for (int kt = 0; kt < n_kt; kt++) {
        if (kt + 1 < n_kt) {
            int buf = (kt + 1) & 1;
            pf_load_rows<HD, NTHR>(sK + buf * BN * LD, kh, HD, (kt + 1) * BN, BN, kv_end);
            pf_load_rows<HD, NTHR>(sV + buf * BN * LD, vh, HD, (kt + 1) * BN, BN, kv_end);
        }
        ga_cp_async_commit(); /* possibly empty, so wait_group<1> always means "tile kt" */
        ga_cp_async_wait<1>();
        __syncthreads();

        if (QREG && kt == 0) {
#pragma unroll
            for (int kc = 0; kc < KC; kc++)
                ga_ldmatrix_x4(qf[QREG ? kc : 0], sQw + kc * 16);
        }
        const __nv_bfloat16 *cK = sK + (kt & 1) * BN * LD;
        const __nv_bfloat16 *cV = sV + (kt & 1) * BN * LD;
        const int k0 = kt * BN;

        if (k0 <= pos0 + wrow0 + WR - 1) { /* warp-uniform: some key of the tile is visible */
            float s[MT][BN / 8][4];
#pragma unroll
            for (int mt = 0; mt < MT; mt++)
#pragma unroll
                for (int i = 0; i < BN / 8; i++)
                    s[mt][i][0] = s[mt][i][1] = s[mt][i][2] = s[mt][i][3] = 0.0f;
#pragma unroll
            for (int kc = 0; kc < KC; kc++) {
                uint32_t qa[MT][4];
                if (!QREG) {
#pragma unroll
                    for (int mt = 0; mt < MT; mt++)
                        ga_ldmatrix_x4(qa[mt], sQw + mt * 16 * LD + kc * 16);
                }
#pragma unroll
                for (int np = 0; np < BN / 16; np++) {
                    /* matrices: keys +0..7 / d +0..7, keys +0..7 / d +8..15,
                     * keys +8..15 / d +0..7, keys +8..15 / d +8..15 */
                    uint32_t b[4];
                    int key = np * 16 + (lane & 7) + ((lane >> 4) << 3);
                    int d = kc * 16 + ((lane >> 3) & 1) * 8;
                    ga_ldmatrix_x4(b, cK + key * LD + d);
#pragma unroll
                    for (int mt = 0; mt < MT; mt++) {
                        const uint32_t *af = QREG ? qf[QREG ? kc : 0] : qa[mt];
                        ga_mma_bf16(s[mt][2 * np], af, b[0], b[1]);
                        ga_mma_bf16(s[mt][2 * np + 1], af, b[2], b[3]);
                    }
                }
            }
            if (k0 + BN - 1 > pos0 + wrow0) { /* the tile crosses some row's diagonal */
#pragma unroll
                for (int mt = 0; mt < MT; mt++)
#pragma unroll
                    for (int nt = 0; nt < BN / 8; nt++)
#pragma unroll
                        for (int e = 0; e < 4; e++) {
                            int key = k0 + nt * 8 + 2 * c4 + (e & 1);
                            int row = wrow0 + mt * 16 + g + (e >> 1) * 8;
                            if (key > pos0 + row) s[mt][nt][e] = -INFINITY;
                        }
            }
            /* Online softmax. Each row lives in the 4 lanes of one quad; the quad agrees on
             * the max (shuffles) while each lane keeps its own partial sum until the end.
             * The scale is folded into the exponent: p = 2^(s*scale*log2e - m). */
#pragma unroll
            for (int mt = 0; mt < MT; mt++)
#pragma unroll
                for (int r = 0; r < 2; r++) {
                    float mx = -INFINITY;
#pragma unroll
                    for (int nt = 0; nt < BN / 8; nt++)
                        mx = fmaxf(mx, fmaxf(s[mt][nt][2 * r], s[mt][nt][2 * r + 1]));
                    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
                    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
                    float m_new = fmaxf(m_run[mt][r], mx * scale_log2); /* scale > 0 */
                    /* A row with no visible key yet keeps -inf; subtract 0 then (not -inf)
                     * so exp2 gives 0 instead of NaN. */
                    float m_use = m_new == -INFINITY ? 0.0f : m_new;
                    float corr = exp2f(m_run[mt][r] - m_use);
                    m_run[mt][r] = m_new;
                    float rs = 0.0f;
#pragma unroll
                    for (int nt = 0; nt < BN / 8; nt++) {
                        float p0 = exp2f(fmaf(s[mt][nt][2 * r], scale_log2, -m_use));
                        float p1 = exp2f(fmaf(s[mt][nt][2 * r + 1], scale_log2, -m_use));
                        s[mt][nt][2 * r] = p0;
                        s[mt][nt][2 * r + 1] = p1;
                        rs += p0 + p1;
                    }
                    l_run[mt][r] = l_run[mt][r] * corr + rs;
#pragma unroll
                    for (int dt = 0; dt < DT; dt++) {
                        o[mt][dt][2 * r] *= corr;
                        o[mt][dt][2 * r + 1] *= corr;
                    }
                }
                /* O += P V: the S accumulators of key n-tiles 2j, 2j+1 are exactly the A
                 * fragment of key chunk j (rows g / g+8, keys 2c.. / 8+2c..). */
#pragma unroll
            for (int kc = 0; kc < BN / 16; kc++) {
                uint32_t a[MT][4];
#pragma unroll
                for (int mt = 0; mt < MT; mt++) {
                    a[mt][0] = ga_pack_bf16(s[mt][2 * kc][0], s[mt][2 * kc][1]);
                    a[mt][1] = ga_pack_bf16(s[mt][2 * kc][2], s[mt][2 * kc][3]);
                    a[mt][2] = ga_pack_bf16(s[mt][2 * kc + 1][0], s[mt][2 * kc + 1][1]);
                    a[mt][3] = ga_pack_bf16(s[mt][2 * kc + 1][2], s[mt][2 * kc + 1][3]);
                }
#pragma unroll
                for (int dp = 0; dp < HD / 16; dp++) {
                    /* transposed matrices: keys +0..7 / d +0..7, keys +8..15 / d +0..7,
                     * keys +0..7 / d +8..15, keys +8..15 / d +8..15 */
                    uint32_t b[4];
                    int key = kc * 16 + (lane & 7) + ((lane >> 3) & 1) * 8;
                    int d = dp * 16 + (lane >> 4) * 8;
                    ga_ldmatrix_x4_trans(b, cV + key * LD + d);
#pragma unroll
                    for (int mt = 0; mt < MT; mt++) {
                        ga_mma_bf16(o[mt][2 * dp], a[mt], b[0], b[1]);
                        ga_mma_bf16(o[mt][2 * dp + 1], a[mt], b[2], b[3]);
                    }
                }
            }
        }
        __syncthreads(); /* the buffer of tile kt is refilled in iteration kt+1 */
    }

    /* Epilogue: normalise, gate, store bf16, write lse. */
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int r = 0; r < 2; r++) {
            float l = l_run[mt][r];
            l += __shfl_xor_sync(0xffffffffu, l, 1);
            l += __shfl_xor_sync(0xffffffffu, l, 2);
            const int t = wrow0 + mt * 16 + g + 8 * r;
            if (t >= T) continue;
            const float inv = l > 0.0f ? 1.0f / l : 0.0f;
            __nv_bfloat16 *orow = out + ((int64_t)t * n_heads + h) * HD;
#pragma unroll
            for (int dt = 0; dt < DT; dt++) {
                int d = dt * 8 + 2 * c4;
                float2 gv = ga_gate_pair(gate, gate_mode, t, h, n_heads, HD, d);
                *reinterpret_cast<uint32_t *>(orow + d) =
                    ga_pack_bf16(o[mt][dt][2 * r] * inv * gv.x, o[mt][dt][2 * r + 1] * inv * gv.y);
            }
            if (lse && c4 == 0) lse[(int64_t)h * T + t] = (m_run[mt][r] + __log2f(l)) * GA_LN2;
        }
}

template <int HD, int WARPS, int MT>
static ga_status pf_launch(const ga_attn_prefill_args *a, cudaStream_t stream, ga_err *err) {
    constexpr int BM = 16 * MT * WARPS;
    const size_t smem = pf_smem_bytes<HD, WARPS, MT>();
    auto kern = k_attn_prefill<HD, WARPS, MT>;
    /* Over the 48 KiB default: opt in (a function attribute, not a stream operation), once
     * per device and kernel (launch_cache.cuh). */
    static ga_dev_cache setup;
    int dev = -1;
    if (!ga_dev_cache_get(setup, &dev)) {
        GA_CUDA_CHECK(
            cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
        ga_dev_cache_put(setup, dev, 1);
    }
    dim3 grid(a->n_heads, GA_CEIL_DIV(a->T, BM));
    kern<<<grid, WARPS * 32, smem, stream>>>(
        (const __nv_bfloat16 *)a->q, (const __nv_bfloat16 *)a->k, (const __nv_bfloat16 *)a->v,
        (const __nv_bfloat16 *)a->gate, (__nv_bfloat16 *)a->out, a->lse, a->T, a->pos0, a->n_heads,
        a->n_heads / a->n_kv_heads, a->kv_stride, (int)a->gate_mode, a->scale * GA_LOG2E);
    GA_CUDA_CHECK_LAUNCH();
    return GA_OK;
}

static int pf_misaligned(const void *p, uintptr_t align) {
    return ((uintptr_t)p & (align - 1)) != 0;
}

extern "C" ga_status ga_attention_prefill(const ga_attn_prefill_args *a, cudaStream_t stream,
                                          ga_err *err) {
    if (!a || !a->q || !a->k || !a->v || !a->out)
        return ga_err_set(err, GA_ERR_ARG, "attention prefill: NULL tensor");
    if (a->T < 1 || a->pos0 < 0 || a->n_heads < 1 || a->n_kv_heads < 1)
        return ga_err_set(err, GA_ERR_ARG,
                          "attention prefill: bad sizes T=%d pos0=%d n_heads=%d n_kv_heads=%d",
                          a->T, a->pos0, a->n_heads, a->n_kv_heads);
    if (a->n_heads % a->n_kv_heads != 0)
        return ga_err_set(err, GA_ERR_ARG,
                          "attention prefill: n_heads %d is not a multiple of n_kv_heads %d",
                          a->n_heads, a->n_kv_heads);
    if (a->hd != 64 && a->hd != 128 && a->hd != 256)
        return ga_err_set(err, GA_ERR_UNSUPPORTED,
                          "attention prefill: head_dim %d (supported: 64, 128, 256)", a->hd);
    if ((int64_t)a->pos0 + a->T > (int64_t)a->kv_stride)
        return ga_err_set(err, GA_ERR_ARG,
                          "attention prefill: pos0 %d + T %d exceeds the cache length %d", a->pos0,
                          a->T, a->kv_stride);
    if (a->gate_mode != GA_GATE_NONE && a->gate_mode != GA_GATE_HEADWISE &&
        a->gate_mode != GA_GATE_ELEMENTWISE)
        return ga_err_set(err, GA_ERR_ARG, "attention prefill: bad gate mode %d",
                          (int)a->gate_mode);
    if ((a->gate_mode != GA_GATE_NONE) != (a->gate != NULL))
        return ga_err_set(err, GA_ERR_ARG,
                          "attention prefill: gate must be given exactly when gate_mode != none");
    if (!(a->scale > 0.0f) || !isfinite(a->scale))
        return ga_err_set(err, GA_ERR_ARG, "attention prefill: bad scale %g", (double)a->scale);
    if (pf_misaligned(a->q, 16) || pf_misaligned(a->k, 16) || pf_misaligned(a->v, 16) ||
        pf_misaligned(a->out, 16) || pf_misaligned(a->gate, 4))
        return ga_err_set(err, GA_ERR_ARG,
                          "attention prefill: q/k/v/out must be 16-byte aligned, gate 4-byte");
    if (a->impl != GA_ATTN_IMPL_AUTO && a->impl != GA_ATTN_IMPL_MMA &&
        a->impl != GA_ATTN_IMPL_WGMMA)
        return ga_err_set(err, GA_ERR_ARG, "attention prefill: bad impl %d", (int)a->impl);
    /* Device-independent refusals first, so they read the same without a GPU. */
    if (a->impl == GA_ATTN_IMPL_WGMMA && a->hd != 128)
        return ga_err_set(err, GA_ERR_UNSUPPORTED,
                          "attention prefill: the Hopper kernel takes head_dim 128, not %d", a->hd);
    /* The device's attributes come with the args (queried once by the backend); a caller
     * without them (a test, a bench) pays for one query here. */
    ga_attn_prefill_args own;
    ga_cuda_devinfo queried;
    if (!a->devinfo) {
        ga_status st = ga_cuda_devinfo_query(&queried, err);
        if (st) return st;
        own = *a;
        own.devinfo = &queried;
        a = &own;
    }
    /* AUTO: the Hopper kernel wherever it is usable (head_dim 128 only: hd 64 and 256 run
     * this file's kernel on sm_90 too); measured faster than this one from 1k tokens up
     * (bench/RESULTS.md), and tested at every length the prefill tests cover. */
    if (a->impl == GA_ATTN_IMPL_WGMMA ||
        (a->impl == GA_ATTN_IMPL_AUTO && ga_attention_prefill_sm90_usable_on(a->devinfo, a->hd)))
        return ga_attention_prefill_sm90(a, stream, err);
    if ((a->T + 63) / 64 > 65535)
        return ga_err_set(err, GA_ERR_UNSUPPORTED, "attention prefill: T %d too long", a->T);
    /* Short prompts: 64-row tiles give more CTAs to fill the GPU. Long ones: 256-row tiles
     * (8 warps x 32 rows) load each K/V tile once per 256 query rows and each fragment once
     * per 32, but need 139 KiB of shared memory at hd 128: cards with less per block
     * (sm_86/89: 99 KiB) take the 64-row shape (87 KiB) instead. */
    const int optin = a->devinfo->smem_optin;
    /* hd 256: one shape, 4 warps of one m-tile with 32-key tiles (99 KiB; see pf_dims), at
     * every length; not yet timed against a long-prompt shape. */
    if (a->hd == 256) {
        if (pf_smem_bytes<256, 4, 1>() > (size_t)optin)
            return ga_err_set(err, GA_ERR_UNSUPPORTED,
                              "attention prefill: head_dim 256 needs %zu bytes of shared memory "
                              "per block, the GPU allows %d",
                              pf_smem_bytes<256, 4, 1>(), optin);
        return pf_launch<256, 4, 1>(a, stream, err);
    }
    const size_t long_smem = a->hd == 64 ? pf_smem_bytes<64, GA_PF_LONG_WARPS, GA_PF_LONG_MT>()
                                         : pf_smem_bytes<128, GA_PF_LONG_WARPS, GA_PF_LONG_MT>();
    const bool small = a->T <= GA_PF_SMALL_T || long_smem > (size_t)optin;
    if (a->hd == 64)
        return small ? pf_launch<64, 4, 1>(a, stream, err)
                     : pf_launch<64, GA_PF_LONG_WARPS, GA_PF_LONG_MT>(a, stream, err);
    return small ? pf_launch<128, 4, 1>(a, stream, err)
                 : pf_launch<128, GA_PF_LONG_WARPS, GA_PF_LONG_MT>(a, stream, err);
}
