/*
 * The gate layout: where each query head and its output gate sit in q_proj's output row.
 * This is the one host-side statement of it; the CPU backend, the visualisation reference and
 * every host test reference go through these functions. (The CUDA kernel qk_rope.cu keeps
 * its own device copy, checked against the CPU op by tests/test_backend_ops.c.)
 *
 * A gated-attention checkpoint's q_proj has q_rows = n_heads*hd + gate_dim output rows,
 * grouped per KV head j (0 <= j < n_kv): the group's G = n_heads/n_kv query heads (G*hd
 * rows, head h = j*G + g at g*hd), then the group's gate rows (G of them headwise, G*hd
 * elementwise, none for the baseline). The raw gate is gathered into a (gate_dim) vector
 * where head h's gate is at h (headwise) or h*hd .. h*hd+hd-1 (elementwise).
 */
#ifndef GATTN_CORE_GATE_LAYOUT_H
#define GATTN_CORE_GATE_LAYOUT_H

#include <stddef.h>

#include "gattn/gattn.h"

typedef struct ga_gate_layout {
    int n_heads, n_kv_heads, hd;
    int G;        /* query heads per KV head */
    int per_head; /* gate values per query head: 0 (baseline), 1 (headwise), hd (elementwise) */
} ga_gate_layout;

static inline ga_gate_layout ga_gate_layout_make(int n_heads, int n_kv_heads, int hd,
                                                 ga_gate_mode mode) {
    ga_gate_layout L = {n_heads, n_kv_heads, hd, n_kv_heads > 0 ? n_heads / n_kv_heads : 0, 0};
    L.per_head = mode == GA_GATE_HEADWISE ? 1 : mode == GA_GATE_ELEMENTWISE ? hd : 0;
    return L;
}

static inline ga_gate_layout ga_gate_layout_of(const ga_config *c) {
    return ga_gate_layout_make(c->n_heads, c->n_kv_heads, c->head_dim, c->gate);
}

/* Length of the gathered raw gate vector of one token (0 for the baseline). */
static inline int ga_gate_layout_gate_dim(const ga_gate_layout *L) {
    return L->n_heads * L->per_head;
}

/* Rows of one KV group in q_proj's output: its queries, then its gate. */
static inline int ga_gate_layout_group_rows(const ga_gate_layout *L) {
    return L->G * (L->hd + L->per_head);
}

/* Rows of q_proj (n_heads*hd + gate_dim). */
static inline int ga_gate_layout_q_rows(const ga_gate_layout *L) {
    return L->n_kv_heads * ga_gate_layout_group_rows(L);
}

/* Offset of query head h's hd rows within q_proj's output row. */
static inline size_t ga_gate_layout_q_off(const ga_gate_layout *L, int h) {
    int j = h / L->G, g = h % L->G;
    return (size_t)j * ga_gate_layout_group_rows(L) + (size_t)g * L->hd;
}

/* Offset of query head h's per_head gate rows within q_proj's output row. */
static inline size_t ga_gate_layout_gate_off(const ga_gate_layout *L, int h) {
    int j = h / L->G, g = h % L->G;
    return (size_t)j * ga_gate_layout_group_rows(L) + (size_t)L->G * L->hd +
           (size_t)g * L->per_head;
}

/* Offset of query head h's gate within the gathered (gate_dim) vector. */
static inline size_t ga_gate_layout_gate_idx(const ga_gate_layout *L, int h) {
    return (size_t)h * L->per_head;
}

/* KV head that query head h reads. */
static inline int ga_gate_layout_kv_head(const ga_gate_layout *L, int h) {
    return h / L->G;
}

#endif
