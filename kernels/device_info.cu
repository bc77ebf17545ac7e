/*
 * The device attributes the launchers need (kernels.h ga_cuda_devinfo), queried once: the CUDA
 * backend does it at creation and passes the struct in every launcher's arguments, so no
 * launch pays for attribute queries. Launchers called with a NULL devinfo (tests, benches)
 * query it for that call through the same function.
 */
#include "cuda_check.h"
#include "kernels.h"

extern "C" ga_status ga_cuda_devinfo_query(ga_cuda_devinfo *out, ga_err *err) {
    int dev = 0;
    ga_cuda_devinfo d = {};
    GA_CUDA_CHECK(cudaGetDevice(&dev));
    GA_CUDA_CHECK(cudaDeviceGetAttribute(&d.n_sm, cudaDevAttrMultiProcessorCount, dev));
    GA_CUDA_CHECK(
        cudaDeviceGetAttribute(&d.smem_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
    GA_CUDA_CHECK(cudaDeviceGetAttribute(&d.cc_major, cudaDevAttrComputeCapabilityMajor, dev));
    GA_CUDA_CHECK(cudaDeviceGetAttribute(&d.cc_minor, cudaDevAttrComputeCapabilityMinor, dev));
    *out = d;
    return GA_OK;
}
