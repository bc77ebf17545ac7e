/*
 * fp32 building blocks of the CPU reference backend. They favour clarity and exact fp32
 * semantics over speed, but the matrix products are threaded and vectorisable so that small
 * models run interactively.
 */
#ifndef GATTN_CPU_OPS_H
#define GATTN_CPU_OPS_H

#include <stdint.h>

#include "threadpool.h"

/* y[t, o] = sum_i x[t, i] * w[o, i] + (b ? b[o] : 0) for t < T, o < out (w row-major out x in). */
void ga_cpu_matmul(ga_pool *pool, float *y, const float *x, const float *w, const float *b, int T,
                   int in, int out);
/* out = w * x / sqrt(mean(x^2) + eps) over n elements (out may alias x). */
void ga_cpu_rmsnorm(float *out, const float *x, const float *w, int n, float eps);
/* Rotate-half RoPE of one head vector x[hd] at a position, from its cos/sin rows (hd/2 each). */
void ga_cpu_rope(float *x, const float *cos_row, const float *sin_row, int hd);
/* cos/sin table (max_pos x hd/2), angles pos * theta^(-2i/hd) evaluated in double. */
int ga_cpu_rope_table(float **cos_tab, float **sin_tab, int max_pos, int hd, double theta);
static inline float ga_sigmoidf(float x) {
    return 1.0f / (1.0f + expf(-x));
}
static inline float ga_siluf(float x) {
    return x / (1.0f + expf(-x));
}

#endif
