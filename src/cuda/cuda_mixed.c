/*
 * Mixed steps (backend.h's step_mixed): a serving step's decode rows and its prompt tokens in
 * one pass, so they share every weight GEMM. A prefill pass of its own streams all the weights
 * again (on an H200 a 64-token prefill of a 1.7B model takes as long as a decode step of 64
 * rows: both read 3.4 GB), so a step with a separate prefill costs about two steps; in one
 * pass the prompt rows ride on the decode rows' weight reads while the GEMMs stay memory-bound.
 *
 * The pass's rows: the nd decode rows first, then the pieces' prompt tokens. Staged as a plan
 * whose first nd pieces are one row each (ga_cuda_plan.nd), so the per-row positions, cache
 * rows and block tables go through ga_cuda_stage_pass as a prefill's do; the decode rows' KV
 * lengths beside them. Then every layer as in a prefill (unfused: norms, cuBLAS or the plain
 * GEMM over all rows, q/k norm + RoPE + KV write of each row at its own position), except
 * attention: the decode rows through one ga_attention_decode launch with the split a decode
 * step of them would take (the step's KV-length bucket; in deterministic mode the fixed
 * split), the pieces through the prefill attention one by one. The LM head runs only for the
 * decode rows and each piece's last row; the decode rows' tokens are picked on the device as
 * decode_sample does. Launched eagerly: no CUDA graph (a pure decode step keeps its graphs).
 *
 * Deterministic mode: the decode step of these rows is unfused (the plain GEMM is not the
 * default GEMM, ga_cuda_decode_fused) and every kernel here computes a row from that row
 * alone, with the same decode-attention split: a decode row's logits are bitwise those of a
 * decode step, and a piece's those of forward_multi (prefill attention walks key tiles from
 * key 0 at absolute boundaries). Otherwise the cuBLAS GEMMs of a taller pass round
 * differently: bf16 tolerance.
 */
#include <stdlib.h>
#include <string.h>

#include "cuda_internal.h"

/* The two calls the step stands for, when one pass cannot hold it: more rows than the
 * activation buffers (the scheduler keeps a step within prefill_chunk rows, the buffers'
 * height, but a short chunk under a large batch may pass it), or, defensively, a
 * tensor-parallel state (cuda_tp.c does not expose the hook: its ranks run prefill passes and
 * decode steps only). */
static ga_status two_calls(ga_backend *b, int nd, const int *dseqs, const int *dpos,
                           const int32_t *dtokens, const ga_sampling *sp, const uint64_t *streams,
                           int32_t *dnext, float *dlogits, int np, const int *pseqs,
                           const int *ppos0, const int32_t *ptokens, const int *poff,
                           float *plogits, ga_err *err) {
    ga_status st = dnext
                       ? ga_cuda_decode_sample(b, dseqs, dpos, dtokens, nd, sp, streams, dnext, err)
                       : ga_cuda_decode_batch(b, dseqs, dpos, dtokens, nd, dlogits, err);
    if (st) return st;
    return ga_cuda_forward_multi(b, np, pseqs, ppos0, ptokens, poff, false, plogits, err);
}

/* The decode rows' KV lengths into sc.kv_lens, and the step's KV-length bucket as a decode
 * step of them picks it (ga_cuda_stage_step): the bound that sizes the decode attention's
 * split. (Their block tables are staged with the pieces': ga_cuda_stage_pass, entries past a
 * row's keys zero, as a decode step's are.) */
static ga_status stage_decode_rows(ga_cuda *c, int nd, const int *dpos, ga_err *err) {
    int32_t *h = c->h_in + 3 * (size_t)c->max_batch; // the kv_lens part of the decode staging
    int need = 0, bucket = 0;
    for (int i = 0; i < nd; i++) {
        h[i] = dpos[i] + 1; // keys seen: the cache plus the new token
        need = h[i] > need ? h[i] : need;
    }
    while (bucket + 1 < c->n_kv_buckets && (GA_KV_BUCKET0 << bucket) < need)
        bucket++;
    const int bound = GA_KV_BUCKET0 << bucket;
    c->decode_kv_bound = bound < c->max_context ? bound : c->max_context;
    // Every call into the backend ends synchronised, so the pinned staging is free here.
    GA_CUDA_CHECK(cudaMemcpyAsync(c->sc.kv_lens, h, (size_t)nd * sizeof(int32_t),
                                  cudaMemcpyHostToDevice, c->stream));
    return GA_OK;
}

/* The pass up to the logits: staging, embedding, the layers, the LM head of the decode rows
 * (sc.logits rows 0..nd-1) and, with want_p, of each piece's last row (rows nd..nd+np-1).
 * The plan arrays (nd + np pieces) and the row tokens are the caller's scratch. */
static ga_status mixed_pass(ga_cuda *c, int nd, const int *dseqs, const int *dpos,
                            const int32_t *dtokens, int np, const int *pseqs, const int *ppos0,
                            const int32_t *ptokens, const int *poff, bool want_p, int *seqs,
                            int *pos0, int *off, int32_t *toks, ga_err *err) {
    const ga_config *cfg = &c->cfg;
    const int ns = nd + np, rows = nd + poff[np];
    for (int i = 0; i < nd; i++) {
        seqs[i] = dseqs[i];
        pos0[i] = dpos[i];
        off[i] = i;
        toks[i] = dtokens[i];
    }
    for (int i = 0; i < np; i++) {
        seqs[nd + i] = pseqs[i];
        pos0[nd + i] = ppos0[i];
        off[nd + i] = nd + poff[i];
    }
    off[ns] = rows;
    memcpy(toks + nd, ptokens, (size_t)poff[np] * sizeof *toks);
    const ga_cuda_plan pl = {.ns = ns, .seqs = seqs, .pos0 = pos0, .off = off, .nd = nd};
    ga_status st;
    if ((st = stage_decode_rows(c, nd, dpos, err)) ||
        (st = ga_cuda_stage_pass(c, toks, rows, &pl, err)) ||
        (st = ga_embed(c->sc.tokens, c->embed, c->sc.x, rows, cfg->hidden_size, cfg->vocab_size,
                       c->stream, err)) ||
        (st = ga_cuda_layers(c, rows, &pl, false, NULL, err)) ||
        (st = ga_cuda_lm_head(c, 0, nd, 0, err)))
        return st;
    for (int i = 0; i < np && want_p; i++)
        if ((st = ga_cuda_lm_head(c, off[nd + i + 1] - 1, 1, nd + i, err))) return st;
    return GA_OK;
}

/* The logits asked for back to the caller (pageable: each copy returns once done), before
 * the sampler runs on sc.logits. */
static ga_status logits_back(ga_cuda *c, int nd, int np, float *dlogits, float *plogits,
                             ga_err *err) {
    const size_t V = (size_t)c->cfg.vocab_size;
    if (plogits)
        GA_CUDA_CHECK(cudaMemcpyAsync(plogits, c->sc.logits + (size_t)nd * V,
                                      (size_t)np * V * sizeof(float), cudaMemcpyDeviceToHost,
                                      c->stream));
    if (dlogits)
        GA_CUDA_CHECK(cudaMemcpyAsync(dlogits, c->sc.logits, (size_t)nd * V * sizeof(float),
                                      cudaMemcpyDeviceToHost, c->stream));
    return GA_OK;
}

ga_status ga_cuda_step_mixed(ga_backend *b, int nd, const int *dseqs, const int *dpos,
                             const int32_t *dtokens, const ga_sampling *sp, const uint64_t *streams,
                             int32_t *dnext, float *dlogits, int np, const int *pseqs,
                             const int *ppos0, const int32_t *ptokens, const int *poff,
                             float *plogits, ga_err *err) {
    ga_cuda *c = b->impl;
    const int rows = nd + poff[np];
    if (c->tp || rows > c->sc.rows || nd + np > c->sc.logit_rows || nd + np > c->max_batch)
        return two_calls(b, nd, dseqs, dpos, dtokens, sp, streams, dnext, dlogits, np, pseqs, ppos0,
                         ptokens, poff, plogits, err);
    GA_CUDA_CHECK(cudaSetDevice(c->dev));
    int *plan = malloc(3 * ((size_t)nd + np + 1) * sizeof(int));
    int32_t *toks = malloc((size_t)rows * sizeof *toks);
    ga_status st = plan && toks ? GA_OK : ga_err_set(err, GA_ERR_OOM, "out of host memory");
    const int n1 = nd + np + 1;
    if (!st)
        st = mixed_pass(c, nd, dseqs, dpos, dtokens, np, pseqs, ppos0, ptokens, poff,
                        plogits != NULL, plan, plan + n1, plan + 2 * n1, toks, err);
    if (!st) st = logits_back(c, nd, np, dlogits, plogits, err);
    // sc.positions rows 0..nd-1 hold the decode rows' positions (staged as their pieces'):
    // the draw of each is at position + 1, as in decode_sample.
    if (!st && dnext) st = ga_cuda_pick(c, nd, sp, streams, dnext, err);
    // Every exit synchronised: the pinned staging and the caller's buffers are free after.
    cudaError_t e = cudaStreamSynchronize(c->stream);
    if (!st && e != cudaSuccess)
        st = ga_err_set(err, GA_ERR_CUDA, "mixed step: %s", cudaGetErrorName(e));
    free(plan);
    free(toks);
    return st;
}
