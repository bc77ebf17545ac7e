/*
 * What the two versions of the chunked delta rule share (gdn_chunk.cu: the launcher, the
 * per-token prep and version 1; gdn_chunk_v2.cu: version 2): the fp32 scratch layout.
 */
#ifndef GATTN_GDN_CHUNK_COMMON_CUH
#define GATTN_GDN_CHUNK_COMMON_CUH

#include <cuda_bf16.h>

#include "cuda_check.h"
#include "gdn.h"

#define CH GA_GDN_CHUNK
#define CHUNK_THREADS 256

/* Scratch layout, fp32, offsets in floats. */
typedef struct chunk_ws {
    size_t qn, kn; /* (T, Hk, dk): l2-normalised q (times 1/sqrt(dk)) and k */
    size_t g, bt;  /* (T, Hv): log decay g and beta */
    size_t gc;     /* (Hv, T): G, the cumulative g within each chunk */
    size_t w, u;   /* (Hv, T, dk), (Hv, T, dv): the solved W and U (v2: u becomes D in place) */
    size_t P;      /* (Hv, n_chunks, CH, CH): masked, decayed q k^T */
    size_t S0;     /* v2 only: (n_chunks, Hv, dk, dv), the state entering every chunk */
    size_t total;
} chunk_ws;

static inline chunk_ws chunk_layout(int T, int Hk, int Hv, int dk, int dv) {
    chunk_ws l;
    const size_t t = (size_t)T, nch = (size_t)GA_CEIL_DIV(T, CH);
    l.qn = 0;
    l.kn = l.qn + t * Hk * dk;
    l.g = l.kn + t * Hk * dk;
    l.bt = l.g + t * Hv;
    l.gc = l.bt + t * Hv;
    l.w = l.gc + t * Hv;
    l.u = l.w + t * Hv * dk;
    l.P = l.u + t * Hv * dv;
    l.S0 = l.P + (size_t)Hv * nch * CH * CH;
    l.total = l.S0 + nch * Hv * dk * dv;
    return l;
}

/* Version 2's kernels after the prep (gdn_chunk_v2.cu); ws holds the prep's qn, kn, g, bt. */
ga_status ga_gdn_chunk_v2(const ga_gdn_delta_args *a, float *ws, const chunk_ws *l,
                          cudaStream_t stream, ga_err *err);

#endif
