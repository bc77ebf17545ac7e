/* Device memory figures through cudaMemGetInfo (see cuda_meminfo.h). */
#include <cuda_runtime.h>

#include "cuda/cuda_meminfo.h"

ga_status ga_cuda_mem_info(int device, uint64_t *free_b, uint64_t *total_b, ga_err *err) {
    int prev = 0;
    cudaError_t e = cudaGetDevice(&prev);
    if (e == cudaSuccess && prev != device) e = cudaSetDevice(device);
    size_t fr = 0, tot = 0;
    if (e == cudaSuccess) e = cudaMemGetInfo(&fr, &tot);
    /* Leave the calling thread on the device it had. */
    if (prev != device) cudaSetDevice(prev);
    if (e != cudaSuccess)
        return ga_err_set(err, GA_ERR_CUDA, "cudaMemGetInfo on device %d failed: %s", device,
                          cudaGetErrorName(e));
    *free_b = fr;
    *total_b = tot;
    return GA_OK;
}
