/*
 * Weights as the CPU backends hold them: fp32 copies of the model's tensors (f32, f16 or bf16
 * on disk), each value checked finite as it is converted. Shared by the Qwen3 backend
 * (cpu_backend.c) and the hybrid one (cpu_hybrid_backend.c).
 */
#ifndef GATTN_CPU_WEIGHTS_H
#define GATTN_CPU_WEIGHTS_H

#include "core/tensor.h"

/* A malloc'd fp32 copy of t, or NULL with *err set: GA_ERR_OOM naming the tensor, or the
 * tensor's first NaN/Inf (ga_tensor_nonfinite_err). t must not be NULL. */
float *ga_cpu_weight_f32(const ga_tensor *t, ga_err *err, ga_status *st);

#endif
