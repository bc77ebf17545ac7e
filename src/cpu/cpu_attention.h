/*
 * CPU reference attention (cpu_attention.c): causal GQA with the fused output gate, plus
 * optional recording of pooled attention maps and the first-token share.
 */
#ifndef GATTN_CPU_ATTENTION_H
#define GATTN_CPU_ATTENTION_H

#include "gattn/gattn.h"
#include "threadpool.h"

typedef struct ga_cpu_attn_args {
    const float *q;    /* (T, n_heads, hd), normed + roped */
    const float *k;    /* this sequence's layer cache: (n_kv, kv_stride, hd) */
    const float *v;    /* same layout */
    const float *gate; /* raw gate (T, gate_dim) or NULL */
    float *out;        /* (T, n_heads*hd) */
    int T, pos0, n_heads, n_kv_heads, hd, kv_stride, gate_dim;
    ga_gate_mode gate_mode;
    float scale;
    /* capture (pos0 == 0): map is res*res (zeroed), head -1 for the mean */
    float *map;
    int res, head;
    double *first_share; /* out: mean p(key 0) over heads and queries 1..T-1 */
} ga_cpu_attn_args;

/* Returns 0, or -1 when scratch memory could not be allocated. */
int ga_cpu_attention(ga_pool *pool, const ga_cpu_attn_args *a);

#endif
