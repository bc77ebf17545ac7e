/*
 * Tensor parallelism's all-reduce (cuda_comm.h): NCCL across devices, a loopback over one.
 */
#include "cuda_comm.h"

#include <stdlib.h>

#ifdef GA_HAVE_NCCL
#include <nccl.h>
#endif

#include "cuda_check.h"
#include "tp.h"

struct ga_cuda_comm {
    int n;
    int devs[GA_TP_MAX];
    cudaStream_t streams[GA_TP_MAX];
    bool loopback;
    /* loopback: ready[r] recorded on rank r's stream after its partial, done on rank 0's after
     * the sum (re-recorded every call: a wait binds to the latest record when it is enqueued) */
    cudaEvent_t ready[GA_TP_MAX], done;
#ifdef GA_HAVE_NCCL
    ncclComm_t comms[GA_TP_MAX];
#endif
};

const char *ga_cuda_comm_kind(const ga_cuda_comm *cm) {
    return cm->loopback ? "loopback" : "nccl";
}

void ga_cuda_comm_free(ga_cuda_comm *cm) {
    if (!cm) return;
    for (int r = 0; r < cm->n; r++)
        if (cm->ready[r]) cudaEventDestroy(cm->ready[r]);
    if (cm->done) cudaEventDestroy(cm->done);
#ifdef GA_HAVE_NCCL
    for (int r = 0; r < cm->n; r++)
        if (cm->comms[r]) ncclCommDestroy(cm->comms[r]);
#endif
    free(cm);
}

ga_status ga_cuda_comm_create(int n, const int *devs, const cudaStream_t *streams,
                              ga_cuda_comm **out, ga_err *err) {
    *out = NULL;
    if (n < 2 || n > GA_TP_MAX)
        return ga_err_set(err, GA_ERR_ARG, "tensor-parallel communicator: %d ranks", n);
    int same = 0, distinct = 1;
    for (int r = 1; r < n; r++) {
        same += devs[r] == devs[0];
        for (int q = 0; q < r; q++)
            if (devs[q] == devs[r]) distinct = 0;
    }
    const bool loopback = same == n - 1;
    if (!loopback && !distinct)
        return ga_err_set(err, GA_ERR_ARG,
                          "--tp-devices: name one device N times (every rank on it) or N distinct "
                          "devices, not a mix");
#ifndef GA_HAVE_NCCL
    if (!loopback)
        return ga_err_set(err, GA_ERR_UNSUPPORTED,
                          "tensor parallelism over distinct GPUs needs NCCL: this gattn was built "
                          "without NCCL (only --tp-devices naming one device N times runs)");
#endif
    ga_cuda_comm *cm = calloc(1, sizeof *cm);
    if (!cm) return ga_err_set(err, GA_ERR_OOM, "out of host memory");
    cm->n = n;
    cm->loopback = loopback;
    for (int r = 0; r < n; r++) {
        cm->devs[r] = devs[r];
        cm->streams[r] = streams[r];
    }
    ga_status st = GA_OK;
    if (loopback) {
        cudaError_t e = cudaSetDevice(devs[0]);
        for (int r = 0; r < n && e == cudaSuccess; r++)
            e = cudaEventCreateWithFlags(&cm->ready[r], cudaEventDisableTiming);
        if (e == cudaSuccess) e = cudaEventCreateWithFlags(&cm->done, cudaEventDisableTiming);
        if (e != cudaSuccess)
            st = ga_err_set(err, GA_ERR_CUDA, "creating the loopback all-reduce's events: %s",
                            cudaGetErrorName(e));
    } else {
#ifdef GA_HAVE_NCCL
        ncclResult_t r = ncclCommInitAll(cm->comms, n, devs);
        if (r != ncclSuccess) {
            for (int i = 0; i < n; i++)
                cm->comms[i] = NULL;
            st = ga_err_set(err, GA_ERR_CUDA, "NCCL: ncclCommInitAll over %d GPUs failed: %s", n,
                            ncclGetErrorString(r));
        }
#endif
    }
    if (st) {
        ga_cuda_comm_free(cm);
        return st;
    }
    *out = cm;
    return GA_OK;
}

ga_status ga_cuda_comm_allreduce(ga_cuda_comm *cm, float *const *bufs, size_t count, ga_err *err) {
    if (count == 0) return GA_OK;
    if (!cm->loopback) {
#ifdef GA_HAVE_NCCL
        ncclResult_t r = ncclGroupStart();
        for (int i = 0; i < cm->n && r == ncclSuccess; i++)
            r = ncclAllReduce(bufs[i], bufs[i], count, ncclFloat32, ncclSum, cm->comms[i],
                              cm->streams[i]);
        ncclResult_t e = ncclGroupEnd();
        if (r == ncclSuccess) r = e;
        if (r != ncclSuccess)
            return ga_err_set(err, GA_ERR_CUDA, "NCCL all-reduce of %zu floats failed: %s", count,
                              ncclGetErrorString(r));
        return GA_OK;
#endif
    }
    GA_CUDA_CHECK(cudaSetDevice(cm->devs[0]));
    ga_tp_sum_args a = {.n = cm->n, .count = (int64_t)count};
    for (int r = 0; r < cm->n; r++) {
        a.bufs[r] = bufs[r];
        if (r == 0) continue;
        GA_CUDA_CHECK(cudaEventRecord(cm->ready[r], cm->streams[r]));
        GA_CUDA_CHECK(cudaStreamWaitEvent(cm->streams[0], cm->ready[r], 0));
    }
    ga_status st = ga_tp_sum(&a, cm->streams[0], err);
    if (st) return st;
    GA_CUDA_CHECK(cudaEventRecord(cm->done, cm->streams[0]));
    for (int r = 1; r < cm->n; r++)
        GA_CUDA_CHECK(cudaStreamWaitEvent(cm->streams[r], cm->done, 0));
    return GA_OK;
}
