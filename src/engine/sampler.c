/* Host token selection (see sampler.h). */
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "engine/sampler.h"

double ga_sample_uniform(uint64_t seed, uint64_t stream, uint64_t pos) {
    uint64_t z = seed ^ (stream * 0x9e3779b97f4a7c15ull) ^ (pos * 0xc2b2ae3d27d4eb4full);
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (double)(z >> 11) * (1.0 / 9007199254740992.0);
}

int32_t ga_argmax_f32(const float *x, int n) {
    int32_t best = 0;
    float bv = -INFINITY;
    for (int i = 0; i < n; i++)
        if (x[i] > bv) { /* strict: the lowest index wins ties, NaN compares false */
            bv = x[i];
            best = i;
        }
    return best;
}

size_t ga_sample_scratch_bytes(int n) {
    return (size_t)n * (sizeof(float) + sizeof(int32_t));
}

typedef struct cand {
    float p;
    int32_t id;
} cand;

static int cmp_desc(const void *a, const void *b) {
    const cand *x = a, *y = b;
    if (x->p != y->p) return x->p < y->p ? 1 : -1;
    return (x->id > y->id) - (x->id < y->id); /* stable order for equal values */
}

/* a comes before b in the candidate order: larger p, then the lower id (cmp_desc < 0) */
static inline bool cand_before(cand a, cand b) {
    return a.p > b.p || (a.p == b.p && a.id < b.id);
}

/* Sift node i of a heap of k candidates whose root is the one that comes last in order. */
static void sift_last_first(cand *h, int k, int i) {
    for (;;) {
        int l = 2 * i + 1, r = l + 1, w = i;
        if (l < k && cand_before(h[w], h[l])) w = l;
        if (r < k && cand_before(h[w], h[r])) w = r;
        if (w == i) return;
        cand t = h[i];
        h[i] = h[w];
        h[w] = t;
        i = w;
    }
}

/* Leaves the first k of c[0..n) in order (as a full sort by cmp_desc would) in c[0..k):
 * a heap of the k best seen so far, O(n log k), then a sort of those k. Same result as
 * sorting everything, since the order is total (NaN probabilities were zeroed). */
static void top_k_in_order(cand *c, int n, int k) {
    for (int i = k / 2 - 1; i >= 0; i--)
        sift_last_first(c, k, i);
    for (int i = k; i < n; i++)
        if (cand_before(c[i], c[0])) {
            c[0] = c[i];
            sift_last_first(c, k, 0);
        }
    qsort(c, (size_t)k, sizeof *c, cmp_desc);
}

int32_t ga_sample_host(const float *logits, int n, const ga_sampling *sp, uint64_t stream,
                       uint64_t pos, void *scratch) {
    if (!sp || sp->temperature <= 0.0f || sp->top_k == 1) return ga_argmax_f32(logits, n);
    cand *c = scratch;
    float mx = logits[ga_argmax_f32(logits, n)];
    /* Unnormalised softmax at temperature T in fp32 (the normaliser cancels: the draw scales
     * by the mass that top-k / top-p keep, summed in double below). */
    for (int i = 0; i < n; i++) {
        float v = expf((logits[i] - mx) / sp->temperature);
        if (!(v == v)) v = 0; /* NaN logits never get picked */
        c[i].p = v;
        c[i].id = i;
    }
    int k = (sp->top_k > 0 && sp->top_k < n) ? sp->top_k : n;
    if (k < n)
        top_k_in_order(c, n, k); /* only the first k are ever read */
    else
        qsort(c, (size_t)n, sizeof *c, cmp_desc);
    /* top-k, then the smallest prefix whose mass reaches top_p of what top-k kept */
    double kept = 0;
    for (int i = 0; i < k; i++)
        kept += c[i].p;
    if (sp->top_p > 0.0f && sp->top_p < 1.0f) {
        double acc = 0;
        int m = 0;
        while (m < k) {
            acc += c[m++].p;
            if (acc >= sp->top_p * kept) break;
        }
        k = m;
        kept = acc;
    }
    double u = ga_sample_uniform(sp->seed, stream, pos) * kept, acc = 0;
    for (int i = 0; i < k; i++) {
        acc += c[i].p;
        if (u < acc) return c[i].id;
    }
    return c[k - 1].id;
}
