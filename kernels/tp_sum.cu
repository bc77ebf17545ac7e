/*
 * Loopback all-reduce of tensor parallelism (kernels/tp.h): the sum of N ranks' fp32 partials,
 * written back into every rank's buffer. Memory-bound (N reads and N writes an element);
 * grid-stride so one launch covers any count.
 */
#include "cuda_check.h"
#include "tp.h"

#define TP_SUM_THREADS 256

__global__ void __launch_bounds__(TP_SUM_THREADS) k_tp_sum(ga_tp_sum_args a) {
    for (int64_t j = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; j < a.count;
         j += (int64_t)gridDim.x * blockDim.x) {
        float s = a.bufs[0][j];
        for (int i = 1; i < a.n; i++)
            s += a.bufs[i][j];
        for (int i = 0; i < a.n; i++)
            a.bufs[i][j] = s;
    }
}

extern "C" ga_status ga_tp_sum(const ga_tp_sum_args *a, cudaStream_t stream, ga_err *err) {
    if (!a || a->n < 1 || a->n > GA_TP_MAX || a->count < 0)
        return ga_err_set(err, GA_ERR_ARG, "ga_tp_sum: bad arguments (n %d)", a ? a->n : -1);
    for (int i = 0; i < a->n; i++)
        if (!a->bufs[i]) return ga_err_set(err, GA_ERR_ARG, "ga_tp_sum: buffer %d is NULL", i);
    if (a->count == 0 || a->n == 1) return GA_OK;
    const int64_t b64 = GA_CEIL_DIV(a->count, (int64_t)TP_SUM_THREADS);
    const int blocks = (int)(b64 < 8192 ? b64 : 8192);
    k_tp_sum<<<blocks, TP_SUM_THREADS, 0, stream>>>(*a);
    GA_CUDA_CHECK_LAUNCH();
    return GA_OK;
}
