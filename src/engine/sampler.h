/*
 * Token selection from logits on the host: greedy argmax, or temperature + top-k + top-p
 * sampling driven by a counter-based random number (seed, stream, position), so a draw
 * depends only on which sequence and which position it is for: reproducible across runs,
 * batch compositions and backends. The CUDA backend's device sampler implements the same
 * definition.
 */
#ifndef GATTN_ENGINE_SAMPLER_H
#define GATTN_ENGINE_SAMPLER_H

#include "gattn/gattn.h"

/* The uniform draw in [0, 1) for (seed, stream, pos): splitmix64 of a mix of the three. */
double ga_sample_uniform(uint64_t seed, uint64_t stream, uint64_t pos);
/* Index of the largest value (the lowest index among equals); NaN never wins. */
int32_t ga_argmax_f32(const float *x, int n);
/* Picks a token from logits[0..n) per sp (NULL or temperature <= 0 or top_k == 1: argmax).
 * scratch must hold n candidates of (fp32 probability, int32 id): ga_sample_scratch_bytes(n). */
int32_t ga_sample_host(const float *logits, int n, const ga_sampling *sp, uint64_t stream,
                       uint64_t pos, void *scratch);
size_t ga_sample_scratch_bytes(int n);

#endif
