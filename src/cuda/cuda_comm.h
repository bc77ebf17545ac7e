/*
 * The communicator of tensor parallelism: an in-place sum (all-reduce) of one fp32 buffer per
 * rank, each rank's work ordered on its own stream. Two implementations behind one interface:
 *   NCCL      the ranks on distinct devices of this host (one process, one host thread:
 *             ncclCommInitAll, and the ranks' ncclAllReduce calls inside one group);
 *   loopback  every rank on the same device (a device named N times in --tp-devices): rank
 *             0's stream waits for the others' partials (events), sums them into every buffer
 *             (kernels/tp_sum.cu), and the others wait for that.
 * NCCL is optional at build time (GA_HAVE_NCCL): without it only the loopback exists, and
 * distinct devices are refused with a message saying so.
 */
#ifndef GATTN_CUDA_COMM_H
#define GATTN_CUDA_COMM_H

#include <cuda_runtime.h>

#include "gattn/gattn.h"

typedef struct ga_cuda_comm ga_cuda_comm;

/* n ranks (2..GA_TP_MAX), rank r on device devs[r] with stream streams[r]: all devices equal
 * (loopback) or all distinct (NCCL). */
ga_status ga_cuda_comm_create(int n, const int *devs, const cudaStream_t *streams,
                              ga_cuda_comm **out, ga_err *err);
void ga_cuda_comm_free(ga_cuda_comm *cm);
/* bufs[r] (count fp32 on rank r's device) = the sum over ranks, on every rank, enqueued on the
 * ranks' streams (nothing waits on the host). */
ga_status ga_cuda_comm_allreduce(ga_cuda_comm *cm, float *const *bufs, size_t count, ga_err *err);
/* "nccl" or "loopback" */
const char *ga_cuda_comm_kind(const ga_cuda_comm *cm);

#endif
