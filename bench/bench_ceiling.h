/* The plain-read ceiling kernel of bench_attention (bench_ceiling.cu). */
#ifndef GATTN_BENCH_CEILING_H
#define GATTN_BENCH_CEILING_H

#include <stddef.h>

#include <cuda_runtime.h>

#ifdef __cplusplus
extern "C" {
#endif
/* Reads bytes_a of a and bytes_b of b (multiples of 16) once, with streaming (evict-first)
 * loads or, streaming = 0, ordinary ones that fill L2; returns the launch's error. */
cudaError_t ba_read_ceiling(const void *a, size_t bytes_a, const void *b, size_t bytes_b,
                            unsigned *sink, int n_sm, int streaming, cudaStream_t st);
#ifdef __cplusplus
}
#endif

#endif
