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
    /* Optional (NULL: the session calls forward once per sequence). Several sequences in one
     * pass: for i < ns, tokens[off[i]..off[i+1]) of sequence seqs[i] at positions pos0[i]..
     * (distinct sequences, validated and with their blocks taken by the session). Logits as
     * ga_session_forward_multi: off[ns] rows with all_positions, else ns rows (each
     * sequence's last token); NULL skips the LM head. Never called with a capture. */
    ga_status (*forward_multi)(ga_backend *b, int ns, const int *seqs, const int *pos0,
                               const int32_t *tokens, const int *off, bool all_positions,
                               float *logits, ga_err *err);
    void (*free)(ga_backend *b);
    void *impl;
    /* Optional: decode_batch that picks the next tokens on the backend (sampling per
     * src/engine/sampler.h, greedy when sp is NULL) instead of returning logits. pos[i] doubles
     * as the position of the draw. When NULL, the session samples on the host from
     * decode_batch's logits. */
    ga_status (*decode_sample)(ga_backend *b, const int *seqs, const int *pos,
                               const int32_t *tokens, int nb, const ga_sampling *sp,
                               const uint64_t *streams, int32_t *next, ga_err *err);
    /* Optional (NULL: the session runs the decode rows, then the prefill pieces, as two
     * calls). One step holding both kinds of work in one pass, so the rows share every weight
     * GEMM (a prefill pass of its own would stream the weights a second time):
     *  - nd decode rows: dseqs[i] gets dtokens[i] at position dpos[i], as decode_batch;
     *    dnext non-NULL: the backend picks the ids as decode_sample does (sp, streams, the
     *    draw at dpos[i] + 1; only asked of a backend with decode_sample), else dlogits gets
     *    nd x vocab floats;
     *  - np prefill pieces: ptokens[poff[i]..poff[i+1]) of pseqs[i] from position ppos0[i],
     *    as forward_multi without all_positions: plogits (NULL: no LM head) gets np rows,
     *    each piece's last token.
     * nd, np >= 1, every sequence distinct, validated and with its blocks taken by the
     * session. A decode row's result must not depend on the pieces beside it beyond the
     * rounding of a batch of another height (in batch-invariant modes: not at all). */
    ga_status (*step_mixed)(ga_backend *b, int nd, const int *dseqs, const int *dpos,
                            const int32_t *dtokens, const ga_sampling *sp, const uint64_t *streams,
                            int32_t *dnext, float *dlogits, int np, const int *pseqs,
                            const int *ppos0, const int32_t *ptokens, const int *poff,
                            float *plogits, ga_err *err);
    /* Optional (NULL: the backend has slots only). Switches the backend to a paged KV cache
     * of n_blocks blocks of block_size tokens, called once right after create when the
     * session options ask for paging (the backend then skipped its slot cache). tables[seq]
     * is the session's block table of sequence seq (max_context / block_size rounded up
     * entries, valid for the sequence's current length plus the tokens of the call); the
     * session owns the tables and the free list, the backend owns the blocks' memory. A
     * sequence's cache is then "its blocks" (a hybrid model keeps its DeltaNet states beside
     * them, a fixed size per sequence indexed by seq: kv_fixed_bytes). */
    ga_status (*paged_init)(ga_backend *b, int n_blocks, int block_size,
                            const int32_t *const *tables, ga_err *err);
    /* Bytes one token takes in the KV cache (all layers, K and V): sizes kv_memory. */
    size_t kv_token_bytes;
    /* Bytes the cache holds whatever the lengths, for max_batch sequences (a hybrid model's
     * DeltaNet conv + recurrent states; 0 for Qwen3): a paged cache sized from kv_memory
     * gives its blocks what is left of kv_memory after these. */
    size_t kv_fixed_bytes;
};

/* Whether the session options ask for a paged KV cache (backends skip their slot cache). */
static inline bool ga_opts_paged(const ga_session_opts *o) {
    return o && (o->kv_blocks > 0 || o->kv_memory > 0);
}

ga_status ga_cpu_backend_create(const ga_model *m, const ga_session_opts *opts, int max_context,
                                int max_batch, ga_backend **out, ga_err *err);
#ifdef GA_HAVE_CUDA
ga_status ga_cuda_backend_create(const ga_model *m, const ga_session_opts *opts, int max_context,
                                 int max_batch, ga_backend **out, ga_err *err);
#endif

#endif
