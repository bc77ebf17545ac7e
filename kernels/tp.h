/*
 * The kernel of tensor parallelism's loopback all-reduce (src/cuda/cuda_comm.c): N ranks on one
 * device, each with its own fp32 buffer of partial sums (its o_proj or down_proj product); the
 * kernel writes their sum into every buffer, so each rank's copy of the residual stream adds
 * the same values. NCCL does this across devices; the loopback lets one GPU run (and test)
 * the split.
 */
#ifndef GATTN_TP_KERNELS_H
#define GATTN_TP_KERNELS_H

#include <stdint.h>

#include <cuda_runtime.h>

#include "gattn/gattn.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ga_tp_sum_args {
    float *bufs[GA_TP_MAX]; /* fp32 (count) each, on the launching stream's device */
    int n;                  /* buffers, 1..GA_TP_MAX */
    int64_t count;          /* elements of each */
} ga_tp_sum_args;

/* bufs[i][j] = ((bufs[0][j] + bufs[1][j]) + ...) + bufs[n-1][j] for every i, in fp32 in rank
 * order, so every buffer ends with the same bits. */
ga_status ga_tp_sum(const ga_tp_sum_args *a, cudaStream_t stream, ga_err *err);

#ifdef __cplusplus
}
#endif

#endif
