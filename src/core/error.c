/* Error reporting (ga_err), status names, version, and the CUDA probe of CPU-only builds. */
#include <stdarg.h>
#include <stdio.h>

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
    switch (s) {
    case GA_OK:
        return "ok";
    case GA_ERR_IO:
        return "io error";
    case GA_ERR_FORMAT:
        return "format error";
    case GA_ERR_SHAPE:
        return "shape error";
    case GA_ERR_ARG:
        return "argument error";
    case GA_ERR_OOM:
        return "out of memory";
    case GA_ERR_UNSUPPORTED:
        return "unsupported";
    case GA_ERR_CUDA:
        return "cuda error";
    case GA_ERR_NO_CACHE:
        return "no free cache blocks";
    }
    return "unknown error";
}

const char *ga_version(void) {
    return GATTN_VERSION;
}

#ifndef GA_HAVE_CUDA
/* A build without the CUDA backend never has a usable GPU. */
bool ga_cuda_available(void) {
    return false;
}
#endif
