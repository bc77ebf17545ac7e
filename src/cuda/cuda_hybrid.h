/*
 * The CUDA backend of the hybrid Qwen families (Qwen3-Next, Qwen3.5, Qwen3.6; issue 15): what
 * the session calls. The device-side model and its files are described in
 * cuda_hybrid_internal.h.
 */
#ifndef GATTN_CUDA_HYBRID_H
#define GATTN_CUDA_HYBRID_H

#include "core/backend.h"

/* A ga_backend for a bound hybrid model (m->hyb): the same contract and the same numbers as
 * the CPU hybrid backend (src/cpu/cpu_hybrid_backend.c) up to bf16 rounding. GA_ERR_UNSUPPORTED
 * (no GPU, a shape the kernels do not take) lets a session asked for "auto" use the CPU. */
ga_status ga_cuda_hybrid_backend_create(const ga_model *m, const ga_session_opts *opts,
                                        int max_context, int max_batch, ga_backend **out,
                                        ga_err *err);

#endif
