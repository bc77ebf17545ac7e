/*
 * Attention capture helpers shared by the backends (which record maps and metrics), the
 * engine (which prepares a capture for a prefill) and viz (which pools full-resolution maps
 * for pictures): one definition of the pooling blocks, one allocator of the outputs.
 */
#ifndef GATTN_CORE_CAPTURE_H
#define GATTN_CORE_CAPTURE_H

#include "gattn/gattn.h"

/* Allocates the capture outputs for n_layers layers at resolution res (fills cap->res,
 * cap->n_tokens, maps for the selected layers, metrics set to NaN). Frees what cap held
 * before; on failure cap holds nothing. */
ga_status ga_capture_prepare(ga_attn_capture *cap, int n_layers, int n_tokens, ga_err *err);

/* Pooling block of position i for T tokens at resolution res: floor(i * res / T). */
static inline int ga_pool_bin(int64_t i, int T, int res) {
    return (int)((i * res) / T);
}

#endif
