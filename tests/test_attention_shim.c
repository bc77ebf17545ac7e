/*
 * Stand-ins for the three libgattn functions the attention kernels and their test/bench
 * call (ga_err_set, ga_status_name, ga_cuda_available). Used ONLY by tools/gpu_attn.sh's
 * fallback build, which compiles the attention kernels without the rest of the library so
 * that a half-written file elsewhere in the tree cannot stop the GPU run. Never linked into
 * libgattn or any CMake target.
 */
#include <stdarg.h>
#include <stdio.h>

#include <cuda_runtime.h>

#include "gattn/gattn.h"

ga_status ga_err_set(ga_err *err, ga_status code, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

const char *ga_status_name(ga_status s) {
    static const char *const names[] = {"ok",          "io error",     "format error",
                                        "shape error", "bad argument", "out of memory",
                                        "unsupported", "cuda error"};
    return (unsigned)s < sizeof names / sizeof names[0] ? names[s] : "unknown";
}

bool ga_cuda_available(void) {
    int n = 0;
    return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}
