/*
 * An independent, deliberately simple double-precision forward of a Qwen3 (gated-attention)
 * model for the visualisation tests: it returns every layer's attention probabilities per
 * head and the sigmoid gate values, computed from the checkpoint's weights with none of the
 * engine's compute code and without its model binding: weights are read by name from the
 * checkpoint's tensor store.
 */
#ifndef GATTN_TEST_VIZ_NAIVE_H
#define GATTN_TEST_VIZ_NAIVE_H

#include "core/model.h"

typedef struct naive_out {
    int n_layers, n_heads, T, gate_dim;
    double **probs; /* n_layers x (n_heads, T, T): row = query, column = key */
    double **gates; /* n_layers x (T, gate_dim) after the sigmoid; NULL for baseline */
} naive_out;

/* 0 on success, -1 when out of memory. */
int naive_forward(const ga_model *m, const int32_t *tokens, int T, naive_out *out);
void naive_free(naive_out *o);
/* (T, T) head mean (head < 0) or one head of layer l, as floats (malloc'd). */
float *naive_map(const naive_out *o, int l, int head);

#endif
