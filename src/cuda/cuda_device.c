/*
 * Device discovery for the CUDA build: ga_cuda_available() (declared in gattn.h; the CPU-only
 * build's fallback lives in src/core) and the device name the backend reports.
 */

#include "cuda_internal.h"

bool ga_cuda_available(void) {
    int n = 0;
    // cudaGetDeviceCount fails (no driver, no device) rather than returning 0 on machines
    // without a GPU; either way there is no usable device. Clear the sticky-free error state.
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        (void)cudaGetLastError();
        return false;
    }
    if (n <= 0) return false;
    struct cudaDeviceProp prop;
    if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess) {
        (void)cudaGetLastError();
        return false;
    }
    // bf16 tensor-core GEMMs and the kernels' bf16 intrinsics need sm_80 or newer.
    return prop.major >= 8;
}
