/*
 * Device memory in use, for reports (gattn bench's peak memory column). CUDA builds only:
 * guard callers with #ifdef GA_HAVE_CUDA.
 */
#ifndef GATTN_CUDA_MEMINFO_H
#define GATTN_CUDA_MEMINFO_H

#include <stdint.h>

#include "gattn/gattn.h"

/* Free and total bytes of CUDA device `device` (cudaMemGetInfo; the free figure counts
 * every process's allocations). */
ga_status ga_cuda_mem_info(int device, uint64_t *free_b, uint64_t *total_b, ga_err *err);

#endif
