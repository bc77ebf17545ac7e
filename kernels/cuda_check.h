/*
 * The one error-check header for CUDA and cuBLAS calls. Library code does not exit: the
 * macros write "call failed at file:line: error name" into a ga_err and return GA_ERR_CUDA
 * from the enclosing function (which must return ga_status and have `ga_err *err` in scope).
 * Launchers check the last error right after every launch with GA_CUDA_CHECK_LAUNCH.
 */
#ifndef GATTN_CUDA_CHECK_H
#define GATTN_CUDA_CHECK_H

#include <cuda_runtime.h>

#include "gattn/gattn.h"

#define GA_CUDA_CHECK(call)                                                                        \
    do {                                                                                           \
        cudaError_t e_ = (call);                                                                   \
        if (e_ != cudaSuccess) {                                                                   \
            (void)cudaGetLastError(); /* a refused launch must not fail the next check too */      \
            return ga_err_set(err, e_ == cudaErrorMemoryAllocation ? GA_ERR_OOM : GA_ERR_CUDA,     \
                              "%s failed at %s:%d: %s", #call, __FILE__, __LINE__,                 \
                              cudaGetErrorName(e_));                                               \
        }                                                                                          \
    } while (0)

#define GA_CUDA_CHECK_LAUNCH() GA_CUDA_CHECK(cudaGetLastError())

#define GA_CUBLAS_CHECK(call)                                                                      \
    do {                                                                                           \
        cublasStatus_t s_ = (call);                                                                \
        if (s_ != CUBLAS_STATUS_SUCCESS) {                                                         \
            return ga_err_set(err, s_ == CUBLAS_STATUS_ALLOC_FAILED ? GA_ERR_OOM : GA_ERR_CUDA,    \
                              "%s failed at %s:%d: %s", #call, __FILE__, __LINE__,                 \
                              cublasGetStatusName(s_));                                            \
        }                                                                                          \
    } while (0)

#define GA_CEIL_DIV(a, b) (((a) + (b)-1) / (b))

#endif
