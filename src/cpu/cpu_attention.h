/*
 * CPU reference attention (cpu_attention.c): causal GQA with the fused output gate, plus
 * optional recording of pooled attention maps and the first-token share. This is the one
 * host statement of the attention math: the CPU backend runs it, and the GPU attention
 * kernels are checked against it (tests/test_backend_ops.c).
 */
#ifndef GATTN_CPU_ATTENTION_H
#define GATTN_CPU_ATTENTION_H

#include "core/gate_layout.h"
#include "gattn/gattn.h"
#include "threadpool.h"

typedef struct ga_cpu_attn_args {
    const float *q; /* (T, n_heads, hd), normed + roped */
    /* this sequence's layer cache: (n_kv, kv_stride, hd), or, with a block table, the cache
     * of block 0 at this layer, each block holding (n_kv, kv_stride, hd) with kv_stride =
     * the block size, and block b's rows at table[b] * block_pitch floats from there */
    const float *k;
    const float *v;       /* same layout */
    const int32_t *table; /* NULL: contiguous */
    size_t block_pitch;   /* floats from one block to the next */
    const float *gate;    /* raw gate (T, gate_dim) or NULL */
    float *out;           /* (T, n_heads*hd) */
    int T, pos0, n_heads, n_kv_heads, hd, kv_stride, gate_dim;
    ga_gate_mode gate_mode;
    float scale;
    /* capture (pos0 == 0): map is res*res (zeroed), head -1 for the mean */
    float *map;
    int res, head;
    double *first_share; /* out: mean p(key 0) over heads and queries 1..T-1 */
    float *lse;          /* out, optional (n_heads, T): log-sum-exp of the scaled scores */
} ga_cpu_attn_args;

/* The attention of one query vector q (hd) over rows [0, n_keys) of one KV head's keys K and
 * values V (row pitch hd): p = softmax(scale * q.K) (max-subtracted, sum in double),
 * out (hd) = (p V) * sigmoid(gate), gate being this head's raw gate (1 value headwise, hd
 * elementwise; ignored for GA_GATE_NONE). p: scratch of n_keys floats that holds the
 * probabilities afterwards. Returns the natural log-sum-exp of the scaled scores. */
double ga_cpu_attend(const float *q, const float *K, const float *V, int n_keys, int hd,
                     float scale, const float *gate, ga_gate_mode mode, float *out, float *p);

/* Returns 0, or -1 when scratch memory could not be allocated. */
int ga_cpu_attention(ga_pool *pool, const ga_cpu_attn_args *a);

#endif
