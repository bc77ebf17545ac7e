/*
 * Attention probabilities for visualisation (ga_attention_probs): recomputes
 * p_ij = exp(scale * q_i.k_j - lse_i) tile by tile from q, k and the prefill's log-sum-exp,
 * and folds them straight into the pooled res x res map and the first-token share, so
 * memory stays O(T*hd + res^2) whatever T is (T = 32k works; the T x T matrix of one head
 * would already be 4 GiB).
 *
 * A CTA owns a 64 x 64 (query, key) tile on or below the diagonal, for all heads it needs:
 * scores in fp32 from bf16 q and k staged through shared memory (correctness over speed: no
 * tensor cores here), then each thread adds p * 1/(heads * |query block|) to its own
 * registers across heads, then once into a shared-memory copy of the map bins the tile
 * touches, then once per bin into the global map with atomics. Pooling matches ga_pool_bin
 * (src/core/capture.h): position i lies in block floor(i*res/T).
 */
#include <cuda_bf16.h>
#include <math.h>
#include <stdint.h>

#include "cuda_check.h"
#include "kernels.h"

#define PB_TILE 64
#define PB_DK 32 /* head-dim slice staged at a time */
#define PB_THREADS 256

/* Same rule as ga_pool_bin (the test checks the maps against it). */
static __device__ __forceinline__ int pb_bin(int64_t i, int T, int res) {
    return (int)((i * res) / T);
}
/* First position of block b: the smallest i with floor(i*res/T) >= b, i.e. ceil(b*T/res). */
static __device__ __forceinline__ int64_t pb_bin_first(int64_t b, int T, int res) {
    return (b * T + res - 1) / res;
}

__global__ void __launch_bounds__(PB_THREADS)
    k_attn_probs(const __nv_bfloat16 *__restrict__ q, const __nv_bfloat16 *__restrict__ k,
                 const float *__restrict__ lse, float *__restrict__ map,
                 float *__restrict__ first_share, int T, int n_heads, int G, int hd, int kv_stride,
                 int head, int res, float scale) {
    __shared__ float sq[PB_TILE][PB_DK + 1]; /* +1: column reads hit 16 distinct banks */
    __shared__ float sk[PB_TILE][PB_DK + 1];
    __shared__ float sbin[PB_TILE * PB_TILE]; /* at most 64 row blocks x 64 column blocks */
    __shared__ float sfirst;

    const int qt = blockIdx.y, kt = blockIdx.x;
    if (kt > qt) return; /* wholly above the diagonal: all p are 0 */
    const int i0 = qt * PB_TILE, j0 = kt * PB_TILE;
    const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
    const bool want_map = map != nullptr;
    const bool want_first = first_share != nullptr && kt == 0;

    int rb0 = 0, cb0 = 0, ncb = 1, nrb = 1;
    if (want_map) {
        rb0 = pb_bin(i0, T, res);
        nrb = pb_bin(min(i0 + PB_TILE, T) - 1, T, res) - rb0 + 1;
        cb0 = pb_bin(j0, T, res);
        ncb = pb_bin(min(j0 + PB_TILE, T) - 1, T, res) - cb0 + 1;
        for (int i = tid; i < nrb * ncb; i += PB_THREADS)
            sbin[i] = 0.0f;
    }
    if (tid == 0) sfirst = 0.0f;

    /* The weight of p_ij in the map: 1/(heads averaged) * 1/(queries in i's block). */
    const int n_map_heads = head < 0 ? n_heads : 1;
    float wrow[4];
    int rbin[4];
#pragma unroll
    for (int a = 0; a < 4; a++) {
        int64_t i = i0 + ty + 16 * a;
        rbin[a] = 0;
        wrow[a] = 0.0f;
        if (want_map && i < T) {
            int bb = pb_bin(i, T, res);
            int64_t cnt = pb_bin_first(bb + 1, T, res) - pb_bin_first(bb, T, res);
            rbin[a] = bb;
            wrow[a] = 1.0f / ((float)n_map_heads * (float)cnt);
        }
    }

    float pacc[4][4] = {};
    float first = 0.0f;
    for (int h = 0; h < n_heads; h++) {
        const bool in_map = want_map && (head < 0 || h == head);
        if (!in_map && !want_first) continue; /* CTA-uniform */
        const int hk = h / G;
        float s[4][4] = {};
        for (int d0 = 0; d0 < hd; d0 += PB_DK) {
            __syncthreads(); /* previous slice fully consumed */
            for (int e = tid; e < PB_TILE * PB_DK; e += PB_THREADS) {
                int r = e / PB_DK, c = e % PB_DK;
                int64_t i = i0 + r, j = j0 + r;
                sq[r][c] = i < T ? __bfloat162float(q[(i * n_heads + h) * hd + d0 + c]) : 0.0f;
                sk[r][c] =
                    j < T ? __bfloat162float(k[((int64_t)hk * kv_stride + j) * hd + d0 + c]) : 0.0f;
            }
            __syncthreads();
#pragma unroll 8
            for (int c = 0; c < PB_DK; c++) {
                float qv[4], kv[4];
#pragma unroll
                for (int a = 0; a < 4; a++)
                    qv[a] = sq[ty + 16 * a][c];
#pragma unroll
                for (int b = 0; b < 4; b++)
                    kv[b] = sk[tx + 16 * b][c];
#pragma unroll
                for (int a = 0; a < 4; a++)
#pragma unroll
                    for (int b = 0; b < 4; b++)
                        s[a][b] += qv[a] * kv[b];
            }
        }
#pragma unroll
        for (int a = 0; a < 4; a++) {
            int i = i0 + ty + 16 * a;
            if (i >= T) continue;
            float L = lse[(int64_t)h * T + i];
#pragma unroll
            for (int b = 0; b < 4; b++) {
                int j = j0 + tx + 16 * b;
                if (j > i) continue; /* causal: p = 0 (also covers j >= T) */
                float p = __expf(s[a][b] * scale - L);
                if (in_map) pacc[a][b] += p * wrow[a];
                if (want_first && j == 0 && i >= 1) first += p;
            }
        }
    }

    if (want_map) {
        __syncthreads(); /* sbin zeroed by every thread */
#pragma unroll
        for (int a = 0; a < 4; a++) {
            int i = i0 + ty + 16 * a;
#pragma unroll
            for (int b = 0; b < 4; b++) {
                int j = j0 + tx + 16 * b;
                if (i < T && j <= i)
                    atomicAdd(&sbin[(rbin[a] - rb0) * ncb + pb_bin(j, T, res) - cb0], pacc[a][b]);
            }
        }
    }
    if (want_first) {
#pragma unroll
        for (int off = 16; off >= 1; off >>= 1)
            first += __shfl_xor_sync(0xffffffffu, first, off);
        __syncthreads(); /* sfirst initialised */
        if (tid % 32 == 0) atomicAdd(&sfirst, first);
    }
    __syncthreads();
    if (want_map) {
        for (int e = tid; e < nrb * ncb; e += PB_THREADS) {
            float v = sbin[e];
            if (v != 0.0f) atomicAdd(&map[(int64_t)(rb0 + e / ncb) * res + cb0 + e % ncb], v);
        }
    }
    if (want_first && tid == 0) atomicAdd(first_share, sfirst);
}

extern "C" ga_status ga_attention_probs(const ga_attn_probs_args *a, cudaStream_t stream,
                                        ga_err *err) {
    if (!a || !a->q || !a->k || !a->lse)
        return ga_err_set(err, GA_ERR_ARG, "attention probs: NULL tensor");
    if (a->T < 1 || a->n_heads < 1 || a->n_kv_heads < 1)
        return ga_err_set(err, GA_ERR_ARG,
                          "attention probs: bad sizes T=%d n_heads=%d "
                          "n_kv_heads=%d",
                          a->T, a->n_heads, a->n_kv_heads);
    if (a->n_heads % a->n_kv_heads != 0)
        return ga_err_set(err, GA_ERR_ARG,
                          "attention probs: n_heads %d is not a multiple of n_kv_heads %d",
                          a->n_heads, a->n_kv_heads);
    /* Any multiple of the staged slice PB_DK would do; these are the ones tested. */
    if (a->hd != 64 && a->hd != 128 && a->hd != 256)
        return ga_err_set(err, GA_ERR_UNSUPPORTED,
                          "attention probs: head_dim %d (supported: 64, 128, 256)", a->hd);
    if (a->T > a->kv_stride)
        return ga_err_set(err, GA_ERR_ARG, "attention probs: T %d exceeds the cache length %d",
                          a->T, a->kv_stride);
    if (a->head < -1 || a->head >= a->n_heads)
        return ga_err_set(err, GA_ERR_ARG, "attention probs: head %d out of range [-1, %d)",
                          a->head, a->n_heads);
    if (a->map && (a->res < 1 || a->res > a->T))
        return ga_err_set(err, GA_ERR_ARG, "attention probs: res %d out of range [1, T=%d]", a->res,
                          a->T);
    if (!(a->scale > 0.0f) || !isfinite(a->scale))
        return ga_err_set(err, GA_ERR_ARG, "attention probs: bad scale %g", (double)a->scale);
    if (!a->map && !a->first_share) return GA_OK; /* nothing asked for */
    const int nt = GA_CEIL_DIV(a->T, PB_TILE);
    if (nt > 65535)
        return ga_err_set(err, GA_ERR_UNSUPPORTED, "attention probs: T %d too long", a->T);
    /* Only the first key column is needed for the share alone. */
    dim3 grid(a->map ? nt : 1, nt);
    k_attn_probs<<<grid, PB_THREADS, 0, stream>>>(
        (const __nv_bfloat16 *)a->q, (const __nv_bfloat16 *)a->k, a->lse, a->map, a->first_share,
        a->T, a->n_heads, a->n_heads / a->n_kv_heads, a->hd, a->kv_stride, a->head,
        a->map ? a->res : 1, a->scale);
    GA_CUDA_CHECK_LAUNCH();
    return GA_OK;
}
