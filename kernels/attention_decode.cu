/*
 * Decode attention (ga_attention_decode): one new query token per row against a long KV
 * cache, split over the KV length (flash-decoding) so that a single sequence still fills
 * the GPU, with the sigmoid output gate applied in the combine step.
 *
 * Pass 1, k_attn_decode_split: grid (B, n_kv, splits); a CTA takes DC_CHUNK keys of one KV
 * head and ALL G query heads that share it, so K and V are read from memory once per group,
 * not once per query head. V streams into shared memory by cp.async while K goes to
 * registers (16-byte loads, several in flight per thread) and the scores of all G heads are
 * formed; then a per-head max and sum, then acc = sum p V from shared memory. The partial
 * (max, sum, unnormalised acc) goes to `work`. Pass 2, k_attn_decode_combine: grid
 * (B, n_heads) merges the splits of a row with the usual rescaling, divides, gates and
 * stores bf16.
 *
 * The grid depends only on B and the host-side max_kv_len (one split per DC_CHUNK keys), so
 * a CUDA graph captured once replays as the sequences grow: a CTA whose chunk starts past
 * its row's kv_lens[b] exits at once, and the combine only reads the splits that exist.
 */
#include <cuda_bf16.h>
#include <math.h>
#include <stdint.h>

#include "attention_common.cuh"
#include "cuda_check.h"
#include "kernels.h"

/* Keys per split. A compile-time knob only so tools/gpu_attn.sh can time alternatives; the
 * workspace size and the grid follow it. */
#ifndef GA_DC_CHUNK
#define GA_DC_CHUNK 128
#endif
#define DC_CHUNK GA_DC_CHUNK
#define DC_THREADS 128
#define DC_WARPS (DC_THREADS / 32)
#define DC_HB 8     /* query heads accumulated at once in the PV step (registers) */
#define DC_MAX_G 64 /* shared memory bound: scores and q of all G heads are staged */

static int dc_splits(int max_kv_len) {
    return GA_CEIL_DIV(max_kv_len, DC_CHUNK);
}

static size_t dc_smem_bytes(int hd, int G) {
    return (size_t)DC_CHUNK * hd * 2              /* V chunk, bf16 */
           + (size_t)G * hd * sizeof(float)       /* q of the group, fp32 */
           + (size_t)G * DC_CHUNK * sizeof(float) /* scores, then probabilities */
           + (size_t)2 * G * sizeof(float);       /* max and sum per head */
}

/* The row's usable length: kv_lens[b] clamped to the cache and to the split grid, so a bad
 * length can never read outside the cache (the session validates lengths beforehand). */
static __device__ __forceinline__ int dc_row_len(const int *kv_lens, int b, int kv_stride,
                                                 int splits) {
    return min(min(kv_lens[b], kv_stride), splits * DC_CHUNK);
}

template <int HD>
__global__ void __launch_bounds__(DC_THREADS, 3)
    k_attn_decode_split(const __nv_bfloat16 *__restrict__ q,
                        const __nv_bfloat16 *__restrict__ k_cache,
                        const __nv_bfloat16 *__restrict__ v_cache, const int *__restrict__ slots,
                        const int *__restrict__ kv_lens, float *__restrict__ work_acc,
                        float *__restrict__ work_ml, int n_heads, int n_kv, int G, int kv_stride,
                        int splits, float scale_log2) {
    constexpr int LPK = HD / 8;              /* lanes per key: one 16-byte load each */
    constexpr int GROUPS = DC_THREADS / LPK; /* keys handled side by side in the CTA */
    constexpr int KPG = DC_CHUNK / GROUPS;   /* keys per lane group */
    extern __shared__ __align__(16) unsigned char dc_smem[];
    __nv_bfloat16 *sV = reinterpret_cast<__nv_bfloat16 *>(dc_smem); /* DC_CHUNK x HD */
    float *sQ = reinterpret_cast<float *>(sV + DC_CHUNK * HD);      /* G x HD */
    float *sS = sQ + G * HD;                                        /* G x DC_CHUNK */
    float *sM = sS + G * DC_CHUNK;                                  /* G */
    float *sL = sM + G;                                             /* G */

    const int b = blockIdx.x, hk = blockIdx.y, sp = blockIdx.z;
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
    const int len = dc_row_len(kv_lens, b, kv_stride, splits);
    const int start = sp * DC_CHUNK;
    if (start >= len) return; /* this row is shorter than the grid: nothing here */
    const int n = min(DC_CHUNK, len - start);
    const int64_t base = (((int64_t)slots[b] * n_kv + hk) * kv_stride + start) * HD;
    const __nv_bfloat16 *kb = k_cache + base;
    const __nv_bfloat16 *vb = v_cache + base;

    /* V chunk -> shared memory in the background; rows past n are zero-filled. */
    for (int c = tid; c < DC_CHUNK * LPK; c += DC_THREADS) {
        int r = c / LPK, col = (c % LPK) * 8;
        bool ok = r < n;
        ga_cp_async16(sV + r * HD + col, ok ? vb + r * HD + col : vb, ok ? 16 : 0);
    }
    ga_cp_async_commit();

    /* K chunk -> registers: all KPG loads issued before any is used. Streaming loads (read
     * once, no reuse worth caching). */
    const int grp = tid / LPK, lig = tid % LPK;
    uint4 kr[KPG];
#pragma unroll
    for (int r = 0; r < KPG; r++) {
        int key = r * GROUPS + grp;
        kr[r] = key < n ? __ldcs(reinterpret_cast<const uint4 *>(kb + key * HD + lig * 8))
                        : make_uint4(0, 0, 0, 0);
    }
    const __nv_bfloat16 *qb = q + ((int64_t)b * n_heads + (int64_t)hk * G) * HD;
    for (int i = tid; i < G * HD; i += DC_THREADS)
        sQ[i] = __bfloat162float(qb[i]);
    __syncthreads();

    /* Scores of every head of the group: each lane dots its 8 dims, the LPK lanes of a key
     * reduce by butterfly shuffles (they stay inside their aligned lane group). */
    for (int gi = 0; gi < G; gi++) {
        const float4 qa = *reinterpret_cast<const float4 *>(sQ + gi * HD + lig * 8);
        const float4 qc = *reinterpret_cast<const float4 *>(sQ + gi * HD + lig * 8 + 4);
#pragma unroll
        for (int r = 0; r < KPG; r++) {
            float2 k01 = ga_unpack_bf16(kr[r].x), k23 = ga_unpack_bf16(kr[r].y);
            float2 k45 = ga_unpack_bf16(kr[r].z), k67 = ga_unpack_bf16(kr[r].w);
            float dot = qa.x * k01.x + qa.y * k01.y + qa.z * k23.x + qa.w * k23.y + qc.x * k45.x +
                        qc.y * k45.y + qc.z * k67.x + qc.w * k67.y;
#pragma unroll
            for (int off = LPK / 2; off >= 1; off >>= 1)
                dot += __shfl_xor_sync(0xffffffffu, dot, off);
            int key = r * GROUPS + grp;
            if (lig == 0 && key < n) sS[gi * DC_CHUNK + key] = dot * scale_log2;
        }
    }
    __syncthreads();

    /* Max and sum per head (a warp per head); scores become p = 2^(s - max). */
    for (int gi = warp; gi < G; gi += DC_WARPS) {
        float *srow = sS + gi * DC_CHUNK;
        float mx = -INFINITY;
        for (int j = lane; j < n; j += 32)
            mx = fmaxf(mx, srow[j]);
#pragma unroll
        for (int off = 16; off >= 1; off >>= 1)
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, off));
        float sum = 0.0f;
        for (int j = lane; j < n; j += 32) {
            float p = exp2f(srow[j] - mx);
            srow[j] = p;
            sum += p;
        }
#pragma unroll
        for (int off = 16; off >= 1; off >>= 1)
            sum += __shfl_xor_sync(0xffffffffu, sum, off);
        if (lane == 0) {
            sM[gi] = mx;
            sL[gi] = sum;
        }
    }
    ga_cp_async_wait<0>();
    __syncthreads();

    /* acc = sum_j p_j V_j: a thread per head-dim column walks the chunk's keys, DC_HB heads
     * at a time (the V column is re-read from shared memory for the next batch). */
    const int64_t part0 = ((int64_t)b * n_heads + (int64_t)hk * G) * splits + sp;
    if (tid < HD) {
        for (int h0 = 0; h0 < G; h0 += DC_HB) {
            float acc[DC_HB];
#pragma unroll
            for (int j = 0; j < DC_HB; j++)
                acc[j] = 0.0f;
#pragma unroll 4
            for (int key = 0; key < n; key++) {
                float vv = __bfloat162float(sV[key * HD + tid]);
#pragma unroll
                for (int j = 0; j < DC_HB; j++)
                    if (h0 + j < G) acc[j] += sS[(h0 + j) * DC_CHUNK + key] * vv;
            }
#pragma unroll
            for (int j = 0; j < DC_HB; j++)
                if (h0 + j < G) work_acc[(part0 + (int64_t)(h0 + j) * splits) * HD + tid] = acc[j];
        }
    }
    for (int gi = tid; gi < G; gi += DC_THREADS) {
        work_ml[(part0 + (int64_t)gi * splits) * 2 + 0] = sM[gi];
        work_ml[(part0 + (int64_t)gi * splits) * 2 + 1] = sL[gi];
    }
}

/* Merges the splits of (row b, head h): with M the largest split max, out = sum_s 2^(m_s-M)
 * acc_s / sum_s 2^(m_s-M) l_s, then the gate. At 32k tokens a row has 256 splits, so the
 * splits are spread over the block (a serial loop per thread would pay one L2 latency per
 * split): first M and L by block reductions, then DC_CB_THREADS/(hd/4) groups of threads
 * each sum a share of the splits with float4 loads, then the groups are added in shared
 * memory. */
#define DC_CB_THREADS 256
static __device__ __forceinline__ float dc_block_reduce(float v, bool is_max, float *red) {
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
#pragma unroll
    for (int off = 16; off >= 1; off >>= 1) {
        float o = __shfl_xor_sync(0xffffffffu, v, off);
        v = is_max ? fmaxf(v, o) : v + o;
    }
    __syncthreads(); /* red may still be read from a previous reduction */
    if (lane == 0) red[warp] = v;
    __syncthreads();
    v = red[0];
    for (int w = 1; w < DC_CB_THREADS / 32; w++)
        v = is_max ? fmaxf(v, red[w]) : v + red[w];
    return v;
}

template <int HD>
__global__ void __launch_bounds__(DC_CB_THREADS)
    k_attn_decode_combine(const int *__restrict__ kv_lens, const float *__restrict__ work_acc,
                          const float *__restrict__ work_ml, const __nv_bfloat16 *__restrict__ gate,
                          __nv_bfloat16 *__restrict__ out, int n_heads, int kv_stride, int splits,
                          int gate_mode) {
    constexpr int R = HD / 4;             /* threads per split row (float4 each) */
    constexpr int NG = DC_CB_THREADS / R; /* split groups */
    __shared__ float red[DC_CB_THREADS / 32];
    __shared__ __align__(16) float sacc[NG][HD];
    const int b = blockIdx.x, h = blockIdx.y, tid = threadIdx.x;
    const int len = dc_row_len(kv_lens, b, kv_stride, splits);
    const int ns = len > 0 ? GA_CEIL_DIV(len, DC_CHUNK) : 0;
    const int64_t part0 = ((int64_t)b * n_heads + h) * splits;
    const float *ml = work_ml + part0 * 2;

    float M = -INFINITY;
    for (int s = tid; s < ns; s += DC_CB_THREADS)
        M = fmaxf(M, ml[2 * s]);
    M = dc_block_reduce(M, true, red);
    float L = 0.0f;
    for (int s = tid; s < ns; s += DC_CB_THREADS)
        L += exp2f(ml[2 * s] - M) * ml[2 * s + 1];
    L = dc_block_reduce(L, false, red);

    const int r = tid % R, grp = tid / R;
    float4 a = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
#pragma unroll 4
    for (int s = grp; s < ns; s += NG) {
        float w = exp2f(ml[2 * s] - M);
        float4 v = *reinterpret_cast<const float4 *>(work_acc + (part0 + s) * HD + 4 * r);
        a.x += w * v.x;
        a.y += w * v.y;
        a.z += w * v.z;
        a.w += w * v.w;
    }
    *reinterpret_cast<float4 *>(&sacc[grp][4 * r]) = a;
    __syncthreads();
    /* An empty row (length 0, rejected upstream) stores zeros rather than NaN. */
    const float inv = L > 0.0f ? 1.0f / L : 0.0f;
    for (int d = 2 * tid; d < HD; d += 2 * DC_CB_THREADS) {
        float a0 = 0.0f, a1 = 0.0f;
#pragma unroll
        for (int g = 0; g < NG; g++) {
            a0 += sacc[g][d];
            a1 += sacc[g][d + 1];
        }
        float2 gv = ga_gate_pair(gate, gate_mode, b, h, n_heads, HD, d);
        *reinterpret_cast<uint32_t *>(out + ((int64_t)b * n_heads + h) * HD + d) =
            ga_pack_bf16(a0 * inv * gv.x, a1 * inv * gv.y);
    }
}

extern "C" size_t ga_attention_decode_workspace(int B, int n_heads, int hd, int max_kv_len) {
    if (B < 1 || n_heads < 1 || hd < 1 || max_kv_len < 1) return 0;
    return (size_t)B * n_heads * dc_splits(max_kv_len) * (hd + 2) * sizeof(float);
}

static int dc_misaligned(const void *p, uintptr_t align) {
    return ((uintptr_t)p & (align - 1)) != 0;
}

extern "C" ga_status ga_attention_decode(const ga_attn_decode_args *a, cudaStream_t stream,
                                         ga_err *err) {
    if (!a || !a->q || !a->k_cache || !a->v_cache || !a->slots || !a->kv_lens || !a->out ||
        !a->work)
        return ga_err_set(err, GA_ERR_ARG, "attention decode: NULL tensor");
    if (a->B < 1 || a->n_heads < 1 || a->n_kv_heads < 1 || a->max_kv_len < 1)
        return ga_err_set(err, GA_ERR_ARG,
                          "attention decode: bad sizes B=%d n_heads=%d n_kv_heads=%d "
                          "max_kv_len=%d",
                          a->B, a->n_heads, a->n_kv_heads, a->max_kv_len);
    if (a->n_heads % a->n_kv_heads != 0)
        return ga_err_set(err, GA_ERR_ARG,
                          "attention decode: n_heads %d is not a multiple of n_kv_heads %d",
                          a->n_heads, a->n_kv_heads);
    if (a->hd != 64 && a->hd != 128)
        return ga_err_set(err, GA_ERR_UNSUPPORTED,
                          "attention decode: head_dim %d (supported: 64, 128)", a->hd);
    if (a->max_kv_len > a->kv_stride)
        return ga_err_set(err, GA_ERR_ARG,
                          "attention decode: max_kv_len %d exceeds the cache length %d",
                          a->max_kv_len, a->kv_stride);
    const int G = a->n_heads / a->n_kv_heads;
    if (G > DC_MAX_G)
        return ga_err_set(err, GA_ERR_UNSUPPORTED,
                          "attention decode: %d query heads per KV head (at most %d)", G, DC_MAX_G);
    if (a->gate_mode != GA_GATE_NONE && a->gate_mode != GA_GATE_HEADWISE &&
        a->gate_mode != GA_GATE_ELEMENTWISE)
        return ga_err_set(err, GA_ERR_ARG, "attention decode: bad gate mode %d", (int)a->gate_mode);
    if ((a->gate_mode != GA_GATE_NONE) != (a->gate != NULL))
        return ga_err_set(err, GA_ERR_ARG,
                          "attention decode: gate must be given exactly when gate_mode != none");
    if (!(a->scale > 0.0f) || !isfinite(a->scale))
        return ga_err_set(err, GA_ERR_ARG, "attention decode: bad scale %g", (double)a->scale);
    if (dc_misaligned(a->k_cache, 16) || dc_misaligned(a->v_cache, 16) || dc_misaligned(a->q, 4) ||
        dc_misaligned(a->out, 4) || dc_misaligned(a->gate, 4) || dc_misaligned(a->work, 16))
        return ga_err_set(err, GA_ERR_ARG,
                          "attention decode: caches/work must be 16-byte aligned, q/out/gate "
                          "4-byte");
    const int splits = dc_splits(a->max_kv_len);
    if (splits > 65535 || a->n_kv_heads > 65535 || a->n_heads > 65535)
        return ga_err_set(err, GA_ERR_UNSUPPORTED, "attention decode: grid too large");

    float *work_acc = a->work;
    float *work_ml = a->work + (size_t)a->B * a->n_heads * splits * a->hd;
    const size_t smem = dc_smem_bytes(a->hd, G);
    dim3 grid(a->B, a->n_kv_heads, splits);
    const float sl2 = a->scale * GA_LOG2E;
    if (a->hd == 64) {
        if (smem > 48 * 1024)
            GA_CUDA_CHECK(cudaFuncSetAttribute(
                k_attn_decode_split<64>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
        k_attn_decode_split<64><<<grid, DC_THREADS, smem, stream>>>(
            (const __nv_bfloat16 *)a->q, (const __nv_bfloat16 *)a->k_cache,
            (const __nv_bfloat16 *)a->v_cache, a->slots, a->kv_lens, work_acc, work_ml, a->n_heads,
            a->n_kv_heads, G, a->kv_stride, splits, sl2);
    } else {
        if (smem > 48 * 1024)
            GA_CUDA_CHECK(cudaFuncSetAttribute(
                k_attn_decode_split<128>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
        k_attn_decode_split<128><<<grid, DC_THREADS, smem, stream>>>(
            (const __nv_bfloat16 *)a->q, (const __nv_bfloat16 *)a->k_cache,
            (const __nv_bfloat16 *)a->v_cache, a->slots, a->kv_lens, work_acc, work_ml, a->n_heads,
            a->n_kv_heads, G, a->kv_stride, splits, sl2);
    }
    GA_CUDA_CHECK_LAUNCH();
    const dim3 cgrid(a->B, a->n_heads);
    if (a->hd == 64)
        k_attn_decode_combine<64><<<cgrid, DC_CB_THREADS, 0, stream>>>(
            a->kv_lens, work_acc, work_ml, (const __nv_bfloat16 *)a->gate, (__nv_bfloat16 *)a->out,
            a->n_heads, a->kv_stride, splits, (int)a->gate_mode);
    else
        k_attn_decode_combine<128><<<cgrid, DC_CB_THREADS, 0, stream>>>(
            a->kv_lens, work_acc, work_ml, (const __nv_bfloat16 *)a->gate, (__nv_bfloat16 *)a->out,
            a->n_heads, a->kv_stride, splits, (int)a->gate_mode);
    GA_CUDA_CHECK_LAUNCH();
    return GA_OK;
}
