/*
 * fp32 building blocks of the CPU reference backend. They favour clarity and exact fp32
 * semantics over speed, but the matrix products are threaded and vectorisable so that small
 * models run interactively.
 */
#ifndef GATTN_CPU_OPS_H
#define GATTN_CPU_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "core/gate_layout.h"
#include "threadpool.h"

/* y[t, o] = sum_i x[t, i] * w[o, i] + (b ? b[o] : 0) for t < T, o < out (w row-major out x in). */
void ga_cpu_matmul(ga_pool *pool, float *y, const float *x, const float *w, const float *b, int T,
                   int in, int out);
/* out = w * x / sqrt(mean(x^2) + eps) over n elements (out may alias x). */
void ga_cpu_rmsnorm(float *out, const float *x, const float *w, int n, float eps);
/* Rotate-half RoPE of one head vector x[hd] at a position, from its cos/sin rows (hd/2 each). */
void ga_cpu_rope(float *x, const float *cos_row, const float *sin_row, int hd);
/* cos/sin table (max_pos x hd/2), angles pos * theta^(-2i/hd) evaluated in double: unscaled
 * (default RoPE), for op tests; the backend builds its tables with the model's scaling through
 * ga_rope_tables (core/rope.h). */
int ga_cpu_rope_table(float **cos_tab, float **sin_tab, int max_pos, int hd, double theta);

/* The attention-input pass of one token (the CPU statement of kernels/qk_rope.cu): splits
 * q_proj's output row qg (q_rows, bias already added) per the gate layout into the query
 * heads, each RMS-normed with q_norm (when non-NULL) and roped, and the raw gate (gathered,
 * when gate_out is non-NULL); k and v (n_kv*hd, bias added) go to k_out/v_out with head j at
 * j*kv_pitch, k normed with k_norm and roped. cos_row/sin_row: the token's RoPE rows. */
typedef struct ga_cpu_qk_args {
    const ga_gate_layout *layout;
    const float *qg, *k, *v;
    const float *q_norm, *k_norm; /* (hd) or NULL */
    const float *cos_row, *sin_row;
    float eps;
    float *q_out;    /* (n_heads, hd) */
    float *gate_out; /* (gate_dim) or NULL */
    float *k_out, *v_out;
    size_t kv_pitch;
} ga_cpu_qk_args;
void ga_cpu_qk_prep(const ga_cpu_qk_args *a);

/* out[i] = silu(g[i]) * u[i] for i < n (out may alias g). */
void ga_cpu_swiglu(float *out, const float *g, const float *u, size_t n);
/* x[t] = table[tokens[t]] for T rows of dim values (tokens already validated). */
void ga_cpu_embed(float *x, const float *table, const int32_t *tokens, int T, int dim);

/* The gate metrics threshold: the share of gate values sigmoid(g) below this. */
#define GA_GATE_LOW_THRESHOLD 0.1f
/* Over n raw gate values: *sum = sum sigmoid(g) (double), *below = #{sigmoid(g) < threshold}. */
void ga_cpu_gate_stats(const float *gate, size_t n, float threshold, double *sum, size_t *below);

static inline float ga_sigmoidf(float x) {
    return 1.0f / (1.0f + expf(-x));
}
static inline float ga_siluf(float x) {
    return x / (1.0f + expf(-x));
}

#endif
