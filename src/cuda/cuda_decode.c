/*
 * Batched decode: one new token for each of nb sequences. The whole step (embedding, layers,
 * final norm, LM head) is captured into a CUDA graph once per (batch size, KV-length bucket)
 * and replayed; the per-step inputs (tokens, positions, cache slots, KV lengths) live in device
 * buffers that are refreshed by copies before each replay. Bucket b bounds the keys any row of
 * the step attends to by min(max_context, GA_KV_BUCKET0 << b), and the decode attention's KV
 * split is fixed by that bound rather than by the exact lengths, so one graph serves every step
 * whose rows fit its bucket while a short sequence in a long-context session does not launch
 * (and skip) the splits of the whole cache. Graphs remove the ~15 launches per layer of CPU
 * overhead that dominates decode of small models.
 */
#include <string.h>

#include "cuda_internal.h"

static ga_status decode_body(ga_cuda *c, int nb, ga_err *err) {
    const ga_config *cfg = &c->cfg;
    ga_cuda_scratch *s = &c->sc;
    ga_status st =
        ga_embed(s->tokens, c->embed, s->x, nb, cfg->hidden_size, cfg->vocab_size, c->stream, err);
    if (st) return st;
    if ((st = ga_cuda_layers(c, nb, NULL, true, NULL, err))) return st;
    return ga_cuda_decode_logits(c, nb, err);
}

static ga_status capture_graph(ga_cuda *c, int nb, int slot, ga_err *err) {
    cudaGraph_t graph = NULL;
    GA_CUDA_CHECK(cudaStreamBeginCapture(c->stream, cudaStreamCaptureModeThreadLocal));
    ga_status st = decode_body(c, nb, err);
    cudaError_t e = cudaStreamEndCapture(c->stream, &graph);
    if (st) { // the body's error explains more than the broken capture
        if (graph) cudaGraphDestroy(graph);
        (void)cudaGetLastError();
        return st;
    }
    GA_CUDA_CHECK(e);
    e = cudaGraphInstantiate(&c->graphs[slot], graph, 0);
    cudaGraphDestroy(graph);
    if (e != cudaSuccess) c->graphs[slot] = NULL;
    GA_CUDA_CHECK(e);
    return GA_OK;
}

ga_status ga_cuda_stage_step(ga_cuda *c, const int *seqs, const int *pos, const int32_t *tokens,
                             int nb, int *slot_out, ga_err *err) {
    ga_cuda_scratch *s = &c->sc;
    if (nb > c->max_batch || nb > s->rows)
        return ga_err_set(err, GA_ERR_ARG, "decode batch of %d exceeds max_batch %d", nb,
                          c->max_batch);
    GA_CUDA_CHECK(cudaSetDevice(c->dev));
    // Pinned staging: tokens | positions | slots | kv_lens | dest, each max_batch long. The
    // previous step synchronised before returning, so the staging is free to rewrite.
    const int mb = c->max_batch;
    int32_t *h = c->h_in;
    for (int i = 0; i < nb; i++) {
        h[i] = tokens[i];
        h[mb + i] = pos[i];
        h[2 * mb + i] = seqs[i];
        h[3 * mb + i] = pos[i] + 1; // keys seen: the cache plus the new token
        h[4 * mb + i] = c->paged ? c->tables[seqs[i]][pos[i] / c->block_size] * c->block_size +
                                       pos[i] % c->block_size
                                 : 0;
    }
    // The smallest length bucket holding every row's keys picks the graph.
    int need = 0, bucket = 0;
    for (int i = 0; i < nb; i++)
        need = pos[i] + 1 > need ? pos[i] + 1 : need;
    while (bucket + 1 < c->n_kv_buckets && (GA_KV_BUCKET0 << bucket) < need)
        bucket++;
    int bound = GA_KV_BUCKET0 << bucket;
    c->decode_kv_bound = bound < c->max_context ? bound : c->max_context;
    const int slot = nb * c->n_kv_buckets + bucket;
    const size_t bytes = (size_t)nb * sizeof(int32_t);
    if (c->paged) {
        /* Row b's table in row b of d_tab, with the bucket's stride (entries for the bound's
         * keys; a graph of this bucket was captured with this stride), entries past the
         * row's length zero (a valid block, never read). The copy precedes the replay. */
        const int stride = (c->decode_kv_bound + c->block_size - 1) / c->block_size;
        c->dec_tab_stride = stride;
        for (int i = 0; i < nb; i++) {
            const int used = pos[i] / c->block_size + 1;
            int32_t *row = c->h_tab + (size_t)i * stride;
            memcpy(row, c->tables[seqs[i]], (size_t)used * sizeof(int32_t));
            memset(row + used, 0, (size_t)(stride - used) * sizeof(int32_t));
        }
        GA_CUDA_CHECK(cudaMemcpyAsync(c->d_tab, c->h_tab, (size_t)nb * stride * sizeof(int32_t),
                                      cudaMemcpyHostToDevice, c->stream));
        GA_CUDA_CHECK(
            cudaMemcpyAsync(s->dest, h + 4 * mb, bytes, cudaMemcpyHostToDevice, c->stream));
    }
    GA_CUDA_CHECK(cudaMemcpyAsync(s->tokens, h, bytes, cudaMemcpyHostToDevice, c->stream));
    GA_CUDA_CHECK(cudaMemcpyAsync(s->positions, h + mb, bytes, cudaMemcpyHostToDevice, c->stream));
    GA_CUDA_CHECK(cudaMemcpyAsync(s->slots, h + 2 * mb, bytes, cudaMemcpyHostToDevice, c->stream));
    GA_CUDA_CHECK(
        cudaMemcpyAsync(s->kv_lens, h + 3 * mb, bytes, cudaMemcpyHostToDevice, c->stream));
    *slot_out = slot;
    return GA_OK;
}

/* Stages the step's inputs and runs it (graph replay, or eagerly then captured on the first
 * step at this batch size; a tensor-parallel backend's ranks eagerly). Leaves the logits in
 * sc.logits; does not synchronise. */
static ga_status run_step(ga_cuda *c, const int *seqs, const int *pos, const int32_t *tokens,
                          int nb, ga_err *err) {
    if (c->tp) return ga_cuda_tp_step(c->tp, seqs, pos, tokens, nb, err);
    int slot = 0;
    ga_status st = ga_cuda_stage_step(c, seqs, pos, tokens, nb, &slot, err);
    if (st) return st;
    if (c->graphs[slot]) {
        GA_CUDA_CHECK(cudaGraphLaunch(c->graphs[slot], c->stream));
        return GA_OK;
    }
    // First step at this batch size: run it eagerly (which also loads every kernel and lets
    // cuBLAS pick its algorithms outside a capture), then capture the same work for the steps
    // that follow. Capturing does not execute, so the step runs once.
    st = decode_body(c, nb, err);
    if (!st) st = capture_graph(c, nb, slot, err);
    return st;
}

ga_status ga_cuda_decode_batch(ga_backend *b, const int *seqs, const int *pos,
                               const int32_t *tokens, int nb, float *logits, ga_err *err) {
    ga_cuda *c = b->impl;
    if (nb <= 0) return GA_OK;
    ga_status st = run_step(c, seqs, pos, tokens, nb, err);
    if (st) return st;
    if (logits)
        GA_CUDA_CHECK(cudaMemcpyAsync(logits, c->sc.logits,
                                      (size_t)nb * c->cfg.vocab_size * sizeof(float),
                                      cudaMemcpyDeviceToHost, c->stream));
    // Also keeps the pinned staging from being rewritten while the copies above are pending.
    GA_CUDA_CHECK(cudaStreamSynchronize(c->stream));
    return GA_OK;
}

/* The step, then token selection on the device (src/engine/sampler.h's definition, through
 * kernels/sampling_topk.cu): only nb ids come back instead of nb x vocab logits. The draw for
 * row i uses position pos[i] + 1 (sc.positions holds pos), as the host fallback does. */
ga_status ga_cuda_pick(ga_cuda *c, int nb, const ga_sampling *sp, const uint64_t *streams,
                       int32_t *next, ga_err *err) {
    bool greedy = !sp || sp->temperature <= 0.0f || sp->top_k == 1;
    if (!greedy) {
        memcpy(c->h_streams, streams, (size_t)nb * sizeof(uint64_t));
        GA_CUDA_CHECK(cudaMemcpyAsync(c->d_streams, c->h_streams, (size_t)nb * sizeof(uint64_t),
                                      cudaMemcpyHostToDevice, c->stream));
    }
    ga_status st =
        ga_sample_topk(c->sc.logits, nb, c->cfg.vocab_size, greedy ? NULL : sp, c->d_streams,
                       c->sc.positions, c->samp_scratch, c->d_next, c->stream, err);
    if (st) return st;
    GA_CUDA_CHECK(cudaMemcpyAsync(c->h_next, c->d_next, (size_t)nb * sizeof(int32_t),
                                  cudaMemcpyDeviceToHost, c->stream));
    GA_CUDA_CHECK(cudaStreamSynchronize(c->stream));
    memcpy(next, c->h_next, (size_t)nb * sizeof(int32_t));
    return GA_OK;
}

ga_status ga_cuda_decode_sample(ga_backend *b, const int *seqs, const int *pos,
                                const int32_t *tokens, int nb, const ga_sampling *sp,
                                const uint64_t *streams, int32_t *next, ga_err *err) {
    ga_cuda *c = b->impl;
    if (nb <= 0) return GA_OK;
    ga_status st = run_step(c, seqs, pos, tokens, nb, err);
    if (st) return st;
    return ga_cuda_pick(c, nb, sp, streams, next, err);
}
