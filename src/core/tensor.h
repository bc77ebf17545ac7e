/*
 * Tensor views and dtype conversion.
 *
 * A ga_tensor is a named, typed, shaped view of bytes that somebody else owns (a mapped
 * safetensors file or an in-memory buffer). Backends convert views into their compute type
 * when they are created; nothing here allocates.
 *
 * F8_E4M3 tensors (FP8 checkpoints) carry block scales: element (i, j) of a (rows, cols)
 * matrix stands for e4m3(w8[i][j]) * scale_inv[i / block[0]][j / block[1]], the convention of
 * transformers' FP8Linear (integrations/finegrained_fp8.py: weight_scale_inv of shape
 * (ceil(out / block[0]), ceil(in / block[1]))). The readers below return those dequantised
 * values, so a backend that converts through them runs an FP8 folder unchanged.
 */
#ifndef GATTN_CORE_TENSOR_H
#define GATTN_CORE_TENSOR_H

#include "gattn/gattn.h"

#define GA_MAX_DIMS 4

typedef struct ga_tensor {
    char *name;
    ga_dtype dtype;
    int ndim;
    int64_t shape[GA_MAX_DIMS];
    const void *data; /* not owned */
    uint64_t nbytes;
    const char *file; /* file the bytes come from, for error messages ("<memory>" otherwise) */
    /* F8_E4M3 only, set by ga_store_bind_fp8: the block scales, (ceil(rows / block[0]),
     * ceil(cols / block[1])), F32/BF16/F16, in the same store. NULL elsewhere. */
    const struct ga_tensor *scale_inv;
    int block[2];
} ga_tensor;

int64_t ga_tensor_numel(const ga_tensor *t);

/* bf16 <-> f32: bf16 is the top half of an IEEE float; f32 -> bf16 rounds to nearest even
 * and keeps NaN a NaN. */
static inline float ga_bf16_to_f32(uint16_t h) {
    union {
        uint32_t u;
        float f;
    } v;
    v.u = (uint32_t)h << 16;
    return v.f;
}
static inline uint16_t ga_f32_to_bf16(float f) {
    union {
        uint32_t u;
        float f;
    } v;
    v.f = f;
    if ((v.u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((v.u >> 16) | 0x40u); /* quiet NaN */
    uint32_t rounding = 0x7fffu + ((v.u >> 16) & 1u);
    return (uint16_t)((v.u + rounding) >> 16);
}
float ga_f16_to_f32(uint16_t h);
uint16_t ga_f32_to_f16(float f);

/* OCP FP8 E4M3 ("e4m3fn"): 1 sign, 4 exponent (bias 7), 3 mantissa bits; no infinities,
 * S.1111.111 is NaN, the largest finite value is 448. Decoding is exact (a table). */
float ga_e4m3_to_f32(uint8_t b);
/* float -> e4m3, round to nearest even; beyond +-448 saturates to +-448 (the writer clamps
 * there first, as transformers' quantiser does), NaN stays NaN. */
uint8_t ga_f32_to_e4m3(float f);

/* Converts n elements starting at element `first` of t into dst (F8_E4M3: dequantised with
 * the bound block scales, the product rounded once to fp32, then to bf16 for the bf16 reader). */
void ga_tensor_read_f32(const ga_tensor *t, int64_t first, int64_t n, float *dst);
void ga_tensor_read_bf16(const ga_tensor *t, int64_t first, int64_t n, uint16_t *dst);

/* Finiteness of weights. A NaN or infinite weight poisons every logit it reaches, and the
 * commands used to disagree about it (logits refused the NaN output, generate sampled from
 * it); backends check each weight while they convert or upload it, so a model with one is
 * refused at session creation with a message naming the tensor.
 *
 * Index of the first NaN or infinite value of x[0, n), or -1. Tests bits, so it holds under
 * any floating-point flags. */
int64_t ga_f32_find_nonfinite(const float *x, int64_t n);
/* The same over elements [first, first + n) of t, from the stored bits (no conversion). With
 * bf16_range, an F32 value that is finite but rounds to infinity in bf16 (|v| >= 2^128 *
 * (1 - 2^-9)) counts too: the CUDA backend keeps matrices in bf16. */
int64_t ga_tensor_find_nonfinite(const ga_tensor *t, int64_t first, int64_t n, bool bf16_range);
/* The error for element idx of t: "<file>: tensor "<name>": element i (row r, column c) is
 * NaN; a model's weights must be finite". Returns GA_ERR_FORMAT. */
ga_status ga_tensor_nonfinite_err(const ga_tensor *t, int64_t idx, ga_err *err);

/* "(3, 4)" style shape string for messages; buf of at least 96 bytes. */
const char *ga_shape_str(int ndim, const int64_t *shape, char *buf, size_t cap);

#endif
