/*
 * Gate metrics for the attention capture: sum of sigmoid(gate) and how many gate values fall
 * below a threshold, over the raw bf16 gate the attention kernels consume (so the metric
 * describes the gate actually applied). Block partials are reduced in fp32 (at most 256*k
 * values each, well inside fp32's precision for a mean) and then added in fp64 atomically,
 * so millions of values across blocks do not lose the small terms.
 */
#include <cuda_bf16.h>

#include "attention_common.cuh"
#include "cuda_check.h"
#include "kernels.h"

#define GATE_THREADS 256

__global__ void __launch_bounds__(GATE_THREADS)
    k_gate_stats(const __nv_bfloat16 *__restrict__ gate, int64_t n, float threshold, double *sum,
                 unsigned long long *below) {
    __shared__ float rs[GATE_THREADS / 32];
    __shared__ unsigned rc[GATE_THREADS / 32];
    float s = 0.f;
    unsigned c = 0;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        // The precise sigmoid (within 2 ulp under --use_fast_math, attention_common.cuh), so
        // the metric matches the CPU's; the epilogues' cheaper one is within 2^-18 of it.
        const float g = ga_sigmoid(__bfloat162float(gate[i]));
        s += g;
        c += g < threshold;
    }
    for (int o = 16; o > 0; o >>= 1) {
        s += __shfl_xor_sync(0xffffffffu, s, o);
        c += __shfl_xor_sync(0xffffffffu, c, o);
    }
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    if (lane == 0) {
        rs[warp] = s;
        rc[warp] = c;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        double ts = 0;
        unsigned long long tc = 0;
        for (int w = 0; w < GATE_THREADS / 32; w++) {
            ts += rs[w];
            tc += rc[w];
        }
        atomicAdd(sum, ts);
        atomicAdd(below, tc);
    }
}

extern "C" ga_status ga_gate_stats(const void *gate, int64_t n, float threshold, double *sum,
                                   unsigned long long *below, cudaStream_t stream, ga_err *err) {
    if (n < 0 || !sum || !below || (n > 0 && !gate))
        return ga_err_set(err, GA_ERR_ARG, "ga_gate_stats: bad arguments (n %lld)", (long long)n);
    if (n == 0) return GA_OK;
    const int64_t b64 = GA_CEIL_DIV(n, (int64_t)GATE_THREADS * 8);
    const int blocks = (int)(b64 < 4096 ? b64 : 4096);
    k_gate_stats<<<blocks, GATE_THREADS, 0, stream>>>(static_cast<const __nv_bfloat16 *>(gate), n,
                                                      threshold, sum, below);
    GA_CUDA_CHECK_LAUNCH();
    return GA_OK;
}
