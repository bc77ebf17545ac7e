/*
 * Helpers of the attention kernel tests: host bf16 conversion, random bf16 tensors, and the
 * reference the GPU kernels are checked against: one query against a run of keys through the
 * CPU backend's attention row (ga_cpu_attend), so the kernels are held to the same host
 * statement of attention as the whole-model tests.
 */
#ifndef GATTN_TEST_ATTENTION_REF_H
#define GATTN_TEST_ATTENTION_REF_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cuda_runtime.h>

#include "gattn/gattn.h"

#define TA_BF16_NAN 0xFFFFu /* poison pattern: bf16 NaN (and fp32 NaN as 0xFFFFFFFF) */

uint16_t ta_f2bf(float f); /* round to nearest even; NaN stays NaN */
float ta_bf2f(uint16_t b);
/* n values N(0, std^2) rounded to bf16. */
void ta_fill_bf16(uint16_t *dst, size_t n, float std, uint64_t *rng);
void ta_fill_u16(uint16_t *dst, size_t n, uint16_t v);

/* Attention of one query vector q (hd) over keys/values rows [0, n_keys) of k and v (row
 * pitch hd; v may be NULL), scaled by `scale`, by the CPU backend's op. gate points at this head's
 * raw gate: one value (headwise), hd values (elementwise) or NULL. Writes the gated output (hd
 * floats) and, if lse != NULL, the natural-log log-sum-exp of the scaled scores. p: scratch of
 * n_keys doubles, which holds the probabilities afterwards. */
void ta_ref_attend(const uint16_t *q, const uint16_t *k, const uint16_t *v, int n_keys, int hd,
                   double scale, const uint16_t *gate, ga_gate_mode mode, float *out, double *lse,
                   double *p);

/* Aborts the test program when a CUDA runtime call fails (a sticky device error would
 * poison every later case anyway). */
#define TA_CUDA(call)                                                                              \
    do {                                                                                           \
        cudaError_t e_ = (call);                                                                   \
        if (e_ != cudaSuccess) {                                                                   \
            fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #call,                   \
                    cudaGetErrorString(e_));                                                       \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

/* Tolerances of the bf16 outputs against the double reference: |gpu - ref| <= atol +
 * rtol*|ref|. The kernels read bf16 inputs exactly, accumulate in fp32, round P to bf16 for
 * the PV product (prefill) and round the output to bf16 (relative error 2^-9 each). */
#define TA_OUT_ATOL 5e-3
#define TA_OUT_RTOL 1e-2
/* Decode: ||gpu - ref|| / ||ref|| over a case; see test_attention_decode.c. */
#define TA_DECODE_NERR 5e-3
/* lse is fp32 all the way: only summation order and exp2/log2 approximations differ. */
#define TA_LSE_ATOL 1e-3
#define TA_LSE_RTOL 1e-4

/* One prefill case: n_heads = G * n_kv. */
typedef struct ta_pf_case {
    int hd, G, n_kv, T, pos0;
    ga_gate_mode mode;
} ta_pf_case;
void ta_prefill_case(const ta_pf_case *c, int impl, uint64_t seed); /* impl: ga_attn_impl */
void ta_decode_quick(void);
void ta_probs_quick(void);

/* Test sections (each returns through the CHECK counters). */
void ta_section_args(void);
void ta_section_prefill(int long_cases);
void ta_section_decode(void);
void ta_section_probs(int long_cases);
void ta_section_quick(void);

/* Count of entries of a (n) that are NaN or Inf. */
size_t ta_count_nonfinite_bf16(const uint16_t *a, size_t n);
size_t ta_count_nonfinite_f32(const float *a, size_t n);

#endif
