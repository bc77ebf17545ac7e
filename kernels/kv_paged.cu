/*
 * Paged KV cache helper (ga_kv_gather): copies the first len keys and values of one sequence,
 * found through its block table in a layer's pool (n_blocks, n_kv, block_size, hd), into a
 * contiguous (n_kv, out_stride, hd) buffer, the slot layout the prefill attention kernels
 * (mma and wgmma/TMA) and the probability kernel read. This is the paged prefill's choice
 * over paged-aware loads in the two prefill kernels: the Hopper kernel streams K/V tiles with
 * TMA descriptors over a strided tensor, which a per-block table would break into one
 * descriptor per block. Cost: one extra read and write of the sequence's K/V per layer and
 * prefill chunk (4 * len * n_kv * hd bytes), next to the attention's own reads of the same
 * K/V once per query tile; decode does not gather (attention_decode.cu reads the pool).
 * One thread per 16-byte piece of a key (or value) row; hd a multiple of 8.
 */
#include <cuda_bf16.h>
#include <stdint.h>

#include "cuda_check.h"
#include "kernels.h"

#define KG_THREADS 256

__global__ void __launch_bounds__(KG_THREADS)
    k_kv_gather(const uint4 *__restrict__ k_pool, const uint4 *__restrict__ v_pool,
                const int *__restrict__ table, uint4 *__restrict__ k_out, uint4 *__restrict__ v_out,
                int len, int n_kv, int bs, int hd8, int out_stride) {
    const int64_t i = (int64_t)blockIdx.x * KG_THREADS + threadIdx.x;
    const int64_t per_head = (int64_t)len * hd8;
    if (i >= per_head * n_kv) return;
    const int h = (int)(i / per_head);
    const int64_t r = i % per_head;
    const int key = (int)(r / hd8), e = (int)(r % hd8);
    const int blk = __ldg(table + key / bs);
    const int64_t src = (((int64_t)blk * n_kv + h) * bs + key % bs) * hd8 + e;
    const int64_t dst = ((int64_t)h * out_stride + key) * hd8 + e;
    k_out[dst] = __ldg(k_pool + src);
    v_out[dst] = __ldg(v_pool + src);
}

extern "C" ga_status ga_kv_gather(const ga_kv_gather_args *a, cudaStream_t stream, ga_err *err) {
    if (!a || !a->k_pool || !a->v_pool || !a->table || !a->k_out || !a->v_out)
        return ga_err_set(err, GA_ERR_ARG, "kv gather: NULL tensor");
    if (a->len < 0 || a->n_kv_heads < 1 || a->block_size < 1 || a->hd < 8 || a->hd % 8 ||
        a->out_stride < a->len)
        return ga_err_set(err, GA_ERR_ARG,
                          "kv gather: bad sizes len=%d n_kv=%d block_size=%d hd=%d out_stride=%d",
                          a->len, a->n_kv_heads, a->block_size, a->hd, a->out_stride);
    if (((uintptr_t)a->k_pool | (uintptr_t)a->v_pool | (uintptr_t)a->k_out | (uintptr_t)a->v_out) &
        15)
        return ga_err_set(err, GA_ERR_ARG, "kv gather: buffers must be 16-byte aligned");
    if (a->len == 0) return GA_OK;
    const int hd8 = a->hd / 8;
    const int64_t n = (int64_t)a->len * hd8 * a->n_kv_heads;
    const int64_t blocks = (n + KG_THREADS - 1) / KG_THREADS;
    if (blocks > INT32_MAX) return ga_err_set(err, GA_ERR_UNSUPPORTED, "kv gather: too large");
    k_kv_gather<<<(unsigned)blocks, KG_THREADS, 0, stream>>>(
        (const uint4 *)a->k_pool, (const uint4 *)a->v_pool, a->table, (uint4 *)a->k_out,
        (uint4 *)a->v_out, a->len, a->n_kv_heads, a->block_size, hd8, a->out_stride);
    GA_CUDA_CHECK_LAUNCH();
    return GA_OK;
}
