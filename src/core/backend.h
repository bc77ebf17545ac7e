/*
 * The backend interface: what a compute backend (CPU reference, CUDA) implements for a
 * session. The session validates every argument (sequence ids, lengths against the cache,
 * token ids against the vocabulary) before it calls a backend, so backends may assume valid
 * input and only fail on resources (memory, device errors).
 */
#ifndef GATTN_CORE_BACKEND_H
#define GATTN_CORE_BACKEND_H

#include "capture.h"
#include "model.h"

typedef struct ga_backend ga_backend;

struct ga_backend {
    const char *name; /* "cpu" or the GPU's name */
    ga_device device;
    /* Runs tokens[0..n) of sequence seq at positions pos0..pos0+n-1 (pos0 = current length),
     * appends their K/V, writes logits (last token, or all with all_positions) if logits is
     * non-NULL. cap, when non-NULL, asks for attention maps and metrics (pos0 == 0). */
    ga_status (*forward)(ga_backend *b, int seq, int pos0, const int32_t *tokens, int n,
                         bool all_positions, float *logits, ga_attn_capture *cap, ga_err *err);
    /* One token for each of nb sequences; pos[i] is seqs[i]'s current length. */
    ga_status (*decode_batch)(ga_backend *b, const int *seqs, const int *pos, const int32_t *tokens,
                              int nb, float *logits, ga_err *err);
    void (*free)(ga_backend *b);
    void *impl;
    /* Optional: decode_batch that picks the next tokens on the backend (sampling per
     * src/engine/sampler.h, greedy when sp is NULL) instead of returning logits. pos[i] doubles
     * as the position of the draw. When NULL, the session samples on the host from
     * decode_batch's logits. */
    ga_status (*decode_sample)(ga_backend *b, const int *seqs, const int *pos,
                               const int32_t *tokens, int nb, const ga_sampling *sp,
                               const uint64_t *streams, int32_t *next, ga_err *err);
};

ga_status ga_cpu_backend_create(const ga_model *m, const ga_session_opts *opts, int max_context,
                                int max_batch, ga_backend **out, ga_err *err);
#ifdef GA_HAVE_CUDA
ga_status ga_cuda_backend_create(const ga_model *m, const ga_session_opts *opts, int max_context,
                                 int max_batch, ga_backend **out, ga_err *err);
#endif

#endif
