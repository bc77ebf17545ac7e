/*
 * Attention-map arithmetic on the host: block-mean pooling (the same definition the backends
 * use while capturing, see ga_attn_capture in gattn.h), what `gattn viz` uses to pool a
 * full-resolution capture down for the figure. The attention-sink metrics are computed by
 * the backends themselves during the capture (cpu_backend.c, cuda_forward.c); the tests
 * check them against a naive forward.
 */
#include <stdlib.h>

#include "core/capture.h"
#include "viz.h"

ga_status ga_attn_pool(const float *p, int T, int res, float *out, ga_err *err) {
    if (T < 1 || res < 1 || res > T)
        return ga_err_set(err, GA_ERR_ARG, "cannot pool %d tokens to resolution %d", T, res);
    /* Bins are contiguous runs of rows (ga_pool_bin is monotonic), so one row of sums at a
     * time suffices; sums in double because a block can cover thousands of rows. */
    double *acc = malloc((size_t)res * sizeof *acc);
    if (!acc) return ga_err_set(err, GA_ERR_OOM, "out of memory pooling a %dx%d map", T, T);
    int q = 0;
    for (int bi = 0; bi < res; bi++) {
        for (int bj = 0; bj < res; bj++)
            acc[bj] = 0.0;
        int rows = 0;
        for (; q < T && ga_pool_bin(q, T, res) == bi; q++, rows++) {
            const float *pr = p + (size_t)q * T;
            for (int k = 0; k < T; k++)
                acc[ga_pool_bin(k, T, res)] += pr[k];
        }
        /* res <= T gives every bin at least one row */
        for (int bj = 0; bj < res; bj++)
            out[(size_t)bi * res + bj] = rows ? (float)(acc[bj] / rows) : 0.0f;
    }
    free(acc);
    return GA_OK;
}
