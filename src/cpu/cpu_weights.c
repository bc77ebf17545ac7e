/*
 * fp32 copies of weight tensors for the CPU backends (cpu_weights.h).
 */
#include <stdlib.h>

#include "cpu_weights.h"

float *ga_cpu_weight_f32(const ga_tensor *t, ga_err *err, ga_status *st) {
    int64_t n = ga_tensor_numel(t);
    float *p = malloc((size_t)(n ? n : 1) * sizeof(float));
    if (!p) {
        *st = ga_err_set(err, GA_ERR_OOM,
                         "CPU backend: out of memory converting \"%s\" (%lld values)", t->name,
                         (long long)n);
        return NULL;
    }
    /* Convert in blocks small enough to stay in L1/L2 and check each block for NaN/Inf right
     * after writing it: the finiteness check rides on the conversion pass, no second pass
     * over the weights in memory. */
    const int64_t block = 8192;
    for (int64_t i = 0; i < n; i += block) {
        const int64_t m = n - i < block ? n - i : block;
        ga_tensor_read_f32(t, i, m, p + i);
        const int64_t bad = ga_f32_find_nonfinite(p + i, m);
        if (bad >= 0) {
            *st = ga_tensor_nonfinite_err(t, i + bad, err);
            free(p);
            return NULL;
        }
    }
    return p;
}
