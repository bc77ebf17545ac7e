/*
 * Greedy token selection on the device: argmax per fp32 logits row (one block per row, a
 * reduction of (value, index) pairs). Temperature / top-k / top-p sampling is
 * sampling_topk.cu.
 */
#include <cuda_runtime.h>

#include "cuda_check.h"
#include "kernels.h"

// (value, index) order for argmax: larger value wins, then the lower index; NaN never wins,
// so a row with NaNs picks the best finite entry (a row of NaN keeps index 0).
struct ArgBest {
    float v;
    int i;
};

__device__ __forceinline__ ArgBest arg_better(ArgBest a, ArgBest b) {
    if (b.i < 0) return a;
    if (a.i < 0) return b;
    if (b.v > a.v || (b.v == a.v && b.i < a.i)) return b;
    return a;
}

__device__ __forceinline__ ArgBest block_argmax(ArgBest best, ArgBest *red) {
    for (int o = 16; o > 0; o >>= 1) {
        ArgBest other;
        other.v = __shfl_xor_sync(0xffffffffu, best.v, o);
        other.i = __shfl_xor_sync(0xffffffffu, best.i, o);
        best = arg_better(best, other);
    }
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    if (lane == 0) red[warp] = best;
    __syncthreads();
    const int nw = blockDim.x >> 5;
    best = lane < nw ? red[lane] : ArgBest{0.f, -1};
    for (int o = 16; o > 0; o >>= 1) {
        ArgBest other;
        other.v = __shfl_xor_sync(0xffffffffu, best.v, o);
        other.i = __shfl_xor_sync(0xffffffffu, best.i, o);
        best = arg_better(best, other);
    }
    return best;
}

// Greedy selection is one block per row, so the row's 600 KB (Qwen3's 151,936 logits) must
// stream through one SM: with one scalar load per step each thread waited out a DRAM round
// trip ~300 times (132 us a decode step on an H200, 6% of it; tools/gpu_profile.sh). Here
// each thread keeps four 16-byte loads in flight before it compares anything.
#define ARGMAX_THREADS 1024
#define ARGMAX_UNROLL 4

__device__ __forceinline__ ArgBest arg_consider(ArgBest best, float4 v, int base) {
    // NaN compares false everywhere: skipping it keeps the order total.
    if (v.x == v.x) best = arg_better(best, ArgBest{v.x, base});
    if (v.y == v.y) best = arg_better(best, ArgBest{v.y, base + 1});
    if (v.z == v.z) best = arg_better(best, ArgBest{v.z, base + 2});
    if (v.w == v.w) best = arg_better(best, ArgBest{v.w, base + 3});
    return best;
}

__global__ void __launch_bounds__(ARGMAX_THREADS)
    k_argmax(const float *__restrict__ logits, int vocab, int32_t *__restrict__ out) {
    __shared__ ArgBest red[32];
    const float *row = logits + (size_t)blockIdx.x * vocab;
    ArgBest best = {0.f, -1};
    const int nt = blockDim.x;
    int tail = 0; // first element the vector loop did not cover
    // Rows start 16-byte aligned when vocab is a multiple of 4 (cudaMalloc'd base).
    if ((vocab & 3) == 0) {
        const float4 *r4 = reinterpret_cast<const float4 *>(row);
        const int n4 = vocab >> 2;
        int i = threadIdx.x;
        for (; i + (ARGMAX_UNROLL - 1) * nt < n4; i += ARGMAX_UNROLL * nt) {
            float4 v[ARGMAX_UNROLL];
#pragma unroll
            for (int u = 0; u < ARGMAX_UNROLL; u++)
                v[u] = __ldcs(r4 + i + u * nt); // read once: do not keep it in L2
#pragma unroll
            for (int u = 0; u < ARGMAX_UNROLL; u++)
                best = arg_consider(best, v[u], 4 * (i + u * nt));
        }
        for (; i < n4; i += nt)
            best = arg_consider(best, __ldcs(r4 + i), 4 * i);
        tail = vocab;
    }
    for (int i = tail + threadIdx.x; i < vocab; i += nt) {
        const float v = row[i];
        if (v == v) best = arg_better(best, ArgBest{v, i});
    }
    best = block_argmax(best, red);
    if (threadIdx.x == 0) out[blockIdx.x] = best.i < 0 ? 0 : best.i;
}

extern "C" ga_status ga_argmax(const float *logits, int rows, int vocab, int32_t *out,
                               cudaStream_t stream, ga_err *err) {
    if (rows < 0 || vocab <= 0 || !logits || !out)
        return ga_err_set(err, GA_ERR_ARG, "ga_argmax: bad arguments (rows %d, vocab %d)", rows,
                          vocab);
    if (rows == 0) return GA_OK;
    k_argmax<<<rows, ARGMAX_THREADS, 0, stream>>>(logits, vocab, out);
    GA_CUDA_CHECK_LAUNCH();
    return GA_OK;
}
