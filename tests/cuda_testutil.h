/*
 * Device-memory helpers of the CUDA tests (test_backend_ops, test_cuda_ops, test_gemv): a
 * CUDA call that fails ends the test with its name and place (a test has nothing to recover),
 * and outputs are poisoned with 0xFF bytes (NaN as fp32 and as bf16) before a launch, so an
 * element the kernel did not write fails the comparison.
 */
#ifndef GATTN_CUDA_TESTUTIL_H
#define GATTN_CUDA_TESTUTIL_H

#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>

#define CU(call)                                                                                   \
    do {                                                                                           \
        cudaError_t e_ = (call);                                                                   \
        if (e_ != cudaSuccess) {                                                                   \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorName(e_));   \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

static inline void *dmalloc(size_t bytes) {
    void *p = NULL;
    CU(cudaMalloc(&p, bytes ? bytes : 16));
    return p;
}
static inline void poison(void *d, size_t bytes) {
    CU(cudaMemset(d, 0xff, bytes)); /* NaN as bf16 and as fp32 */
}
static inline void up(void *d, const void *h, size_t bytes) {
    CU(cudaMemcpy(d, h, bytes, cudaMemcpyHostToDevice));
}
static inline void *dup_to_dev(const void *h, size_t bytes) {
    void *d = dmalloc(bytes);
    up(d, h, bytes);
    return d;
}
/* Waits for every launch first, so a kernel's failure is reported here, not at a later call. */
static inline void down(void *h, const void *d, size_t bytes) {
    CU(cudaDeviceSynchronize());
    CU(cudaMemcpy(h, d, bytes, cudaMemcpyDeviceToHost));
}

#endif
