/*
 * Token selection on the device. Now: greedy argmax per row (one block per row, a reduction
 * of (value, index) pairs). The sampling issue adds temperature / top-k / top-p here as
 * further kernels on the same fp32 logits rows (rows, vocab) with their own launchers; they
 * will share the block reduction helpers below.
 */
#include <cuda_runtime.h>

#include "cuda_check.h"
#include "kernels.h"

#define SAMPLE_THREADS 512

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

__global__ void __launch_bounds__(SAMPLE_THREADS)
    k_argmax(const float *__restrict__ logits, int vocab, int32_t *__restrict__ out) {
    __shared__ ArgBest red[32];
    const float *row = logits + (size_t)blockIdx.x * vocab;
    ArgBest best = {0.f, -1};
    for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
        const float v = row[i];
        // NaN compares false everywhere: skipping it keeps the order total.
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
    k_argmax<<<rows, SAMPLE_THREADS, 0, stream>>>(logits, vocab, out);
    GA_CUDA_CHECK_LAUNCH();
    return GA_OK;
}
