/*
 * Tensor parallelism of the Qwen3 CUDA backend over N ranks (issue 15 item 4): Megatron's split
 * of every layer (src/core/tp_shard.h: which heads, gate rows and MLP slice a rank holds), one
 * ordinary device state (ga_cuda) per rank holding its share of the weights, its KV heads'
 * cache and its own scratch, and an all-reduce (cuda_comm.h: NCCL across devices, a loopback
 * sum on one) after every o_proj and down_proj.
 *
 * The residual stream is replicated: every rank embeds the same tokens and keeps its own copy
 * of x. A rank's o_proj / down_proj writes its partial product into its fp32 delta (the
 * unfused path of cuda_forward.c, decode included: the fused decode GEMVs add into x, which
 * would add the partials without their sum); the all-reduce makes every delta the full
 * product; the next norm adds it (and o_bias, once, to each copy), as with one rank. So every
 * rank's x stays bit-identical, and rank 0 alone runs the final norm and LM head (the other
 * ranks hold no LM head: their embedding stands in for it, never read).
 *
 * One process and one host thread drive every rank: each layer is launched rank by rank up to
 * its o_proj, then the all-reduce (ordered on the ranks' streams), then the MLP half likewise.
 * Decode steps run eagerly (no CUDA graphs: the per-rank capture of a step joined by the
 * all-reduce's events is left for later), prefill passes as with one rank. Attention capture
 * (viz) is refused.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/tp_shard.h"
#include "cuda_comm.h"
#include "cuda_internal.h"

struct ga_cuda_tp {
    int n;
    ga_cuda *rank[GA_TP_MAX]; /* rank[0] is the backend's impl, rank[0]->tp this */
    ga_cuda_comm *comm;
    char name[384];
};

/* Frees every rank but rank 0 (its owner frees it) and the communicator. */
void ga_cuda_tp_free(ga_cuda_tp *tp) {
    if (!tp) return;
    ga_cuda_comm_free(tp->comm);
    for (int r = 1; r < tp->n; r++)
        ga_cuda_state_free(tp->rank[r]);
    free(tp);
}

static ga_status set_dev(const ga_cuda *c, ga_err *err) {
    GA_CUDA_CHECK(cudaSetDevice(c->dev));
    return GA_OK;
}

/* The layer stack of `rows` rows on every rank, the ranks' deltas all-reduced after each
 * half-layer; ends on rank 0's device. */
static ga_status tp_layers(ga_cuda_tp *tp, int rows, const ga_cuda_plan *pl, bool decode,
                           ga_err *err) {
    const ga_config *cfg = &tp->rank[0]->cfg;
    const size_t count = (size_t)rows * cfg->hidden_size;
    float *bufs[GA_TP_MAX];
    ga_status st;
    for (int r = 0; r < tp->n; r++)
        bufs[r] = tp->rank[r]->sc.delta;
    for (int l = 0; l < cfg->n_layers; l++) {
        for (int r = 0; r < tp->n; r++)
            if ((st = set_dev(tp->rank[r], err)) ||
                (st = ga_cuda_layer_attn(tp->rank[r], l, rows, pl, decode, false, NULL, err)))
                return st;
        if ((st = ga_cuda_comm_allreduce(tp->comm, bufs, count, err))) return st;
        for (int r = 0; r < tp->n; r++)
            if ((st = set_dev(tp->rank[r], err)) ||
                (st = ga_cuda_layer_mlp(tp->rank[r], l, rows, false, err)))
                return st;
        if ((st = ga_cuda_comm_allreduce(tp->comm, bufs, count, err))) return st;
    }
    return set_dev(tp->rank[0], err);
}

ga_status ga_cuda_tp_pass(ga_cuda_tp *tp, const int32_t *tokens, int rows, const ga_cuda_plan *pl,
                          ga_err *err) {
    ga_status st;
    for (int r = 0; r < tp->n; r++) {
        ga_cuda *c = tp->rank[r];
        if ((st = set_dev(c, err)) || (st = ga_cuda_stage_pass(c, tokens, rows, pl, err)) ||
            (st = ga_embed(c->sc.tokens, c->embed, c->sc.x, rows, c->cfg.hidden_size,
                           c->cfg.vocab_size, c->stream, err)))
            return st;
    }
    return tp_layers(tp, rows, pl, false, err);
}

ga_status ga_cuda_tp_sync(ga_cuda_tp *tp, ga_err *err) {
    ga_status first = GA_OK;
    for (int r = 0; r < tp->n; r++) {
        cudaError_t e = cudaSetDevice(tp->rank[r]->dev);
        if (e == cudaSuccess) e = cudaStreamSynchronize(tp->rank[r]->stream);
        if (e != cudaSuccess && !first)
            first =
                ga_err_set(err, GA_ERR_CUDA, "tensor-parallel rank %d: %s", r, cudaGetErrorName(e));
    }
    cudaSetDevice(tp->rank[0]->dev);
    return first;
}

ga_status ga_cuda_tp_step(ga_cuda_tp *tp, const int *seqs, const int *pos, const int32_t *tokens,
                          int nb, ga_err *err) {
    ga_status st;
    for (int r = 0; r < tp->n; r++) {
        ga_cuda *c = tp->rank[r];
        int slot = 0; /* the graph index; ranks run eagerly */
        if ((st = ga_cuda_stage_step(c, seqs, pos, tokens, nb, &slot, err)) ||
            (st = ga_embed(c->sc.tokens, c->embed, c->sc.x, nb, c->cfg.hidden_size,
                           c->cfg.vocab_size, c->stream, err)))
            return st;
    }
    if ((st = tp_layers(tp, nb, NULL, true, err)) ||
        (st = ga_cuda_decode_logits(tp->rank[0], nb, err)))
        return st;
    /* The caller synchronises rank 0 only; the other ranks' pinned step staging is rewritten
     * by the next step, so their streams are drained here (all that is left on them is the
     * wait for the last sum, which rank 0's LM head follows anyway). */
    for (int r = 1; r < tp->n; r++) {
        GA_CUDA_CHECK(cudaSetDevice(tp->rank[r]->dev));
        GA_CUDA_CHECK(cudaStreamSynchronize(tp->rank[r]->stream));
    }
    return set_dev(tp->rank[0], err);
}

ga_status ga_cuda_tp_paged_init(ga_cuda_tp *tp, int n_blocks, int block_size,
                                const int32_t *const *tables, ga_err *err) {
    for (int r = 0; r < tp->n; r++) {
        ga_status st = ga_cuda_state_paged_init(tp->rank[r], n_blocks, block_size, tables, err);
        if (st) return st;
    }
    return set_dev(tp->rank[0], err);
}

/* The ranks' devices: opts' list (exactly n entries) or 0..n-1, each present; one device n
 * times or n distinct ones (cuda_comm.h), checked before any weight is read. */
static ga_status tp_devices(const ga_session_opts *opts, int n, int *devs, ga_err *err) {
    int ndev = 0;
    if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev == 0) {
        (void)cudaGetLastError();
        return ga_err_set(err, GA_ERR_UNSUPPORTED, "no CUDA GPU is available");
    }
    if (opts->n_tp_devices == 0) {
        if (n > ndev)
            return ga_err_set(err, GA_ERR_ARG,
                              "--tp %d needs %d GPUs, %d present (--tp-devices 0,0,... runs "
                              "every rank on one GPU, for testing)",
                              n, n, ndev);
        for (int r = 0; r < n; r++)
            devs[r] = r;
    } else if (opts->n_tp_devices != n) {
        return ga_err_set(err, GA_ERR_ARG, "--tp-devices names %d devices for --tp %d",
                          opts->n_tp_devices, n);
    } else {
        for (int r = 0; r < n; r++) {
            devs[r] = opts->tp_devices[r];
            if (devs[r] < 0 || devs[r] >= ndev)
                return ga_err_set(err, GA_ERR_ARG,
                                  "--tp-devices: CUDA device %d does not exist (%d present)",
                                  devs[r], ndev);
        }
    }
    int same = 0, distinct = 1;
    for (int r = 1; r < n; r++) {
        same += devs[r] == devs[0];
        for (int q = 0; q < r; q++)
            distinct &= devs[q] != devs[r];
    }
    if (same != n - 1 && !distinct)
        return ga_err_set(err, GA_ERR_ARG,
                          "--tp-devices: name one device %d times (every rank on it) or %d "
                          "distinct devices, not a mix",
                          n, n);
#ifndef GA_HAVE_NCCL
    if (same != n - 1)
        return ga_err_set(err, GA_ERR_UNSUPPORTED,
                          "--tp %d over distinct GPUs needs NCCL, and this gattn was built without "
                          "NCCL (--tp-devices naming one device %d times runs)",
                          n, n);
#endif
    return GA_OK;
}

/* "tensor-parallel rank R (GPU D): " before the message a rank's creation left. */
static void prefix_rank(ga_err *err, int r, int dev) {
    if (!err) return;
    char msg[sizeof err->msg];
    snprintf(msg, sizeof msg, "%s", err->msg);
    snprintf(err->msg, sizeof err->msg, "tensor-parallel rank %d (GPU %d): %.440s", r, dev, msg);
}

ga_status ga_cuda_tp_backend_create(const ga_model *m, const ga_session_opts *opts, int max_context,
                                    int max_batch, ga_backend **out, ga_err *err) {
    *out = NULL;
    const ga_config *cfg = ga_model_config(m);
    const int n = opts->tensor_parallel;
    int devs[GA_TP_MAX];
    ga_status st;
    if ((st = ga_tp_check(cfg, n, err)) || (st = tp_devices(opts, n, devs, err))) return st;
    if (opts->cuda_weights == GA_CUDA_WEIGHTS_FP8)
        return ga_err_set(err, GA_ERR_UNSUPPORTED,
                          "--weights-dtype fp8 does not run with tensor parallelism (the ranks "
                          "hold bf16 slices of the weights)");
    ga_backend *b = calloc(1, sizeof *b);
    ga_cuda_tp *tp = calloc(1, sizeof *tp);
    if (!b || !tp) {
        free(b);
        free(tp);
        return ga_err_set(err, GA_ERR_OOM, "out of host memory");
    }
    tp->n = n;
    cudaStream_t streams[GA_TP_MAX];
    for (int r = 0; r < n; r++) {
        ga_model *sm = NULL;
        if ((st = ga_tp_model(m, n, r, &sm, err))) goto fail;
        if (r > 0) sm->lm_head = sm->embed; /* rank 0 alone runs the LM head */
        st = ga_cuda_state_create(sm, opts, devs[r], max_context, max_batch, n, &tp->rank[r], err);
        ga_tp_model_free(sm); /* uploaded: the host slices are no longer needed */
        if (st) {
            prefix_rank(err, r, devs[r]);
            goto fail;
        }
        tp->rank[r]->model = m;
        streams[r] = tp->rank[r]->stream;
    }
    if ((st = ga_cuda_comm_create(n, devs, streams, &tp->comm, err))) goto fail;
    if ((st = set_dev(tp->rank[0], err))) goto fail;
    snprintf(tp->name, sizeof tp->name, "%d x %s (tensor parallel, %s)", n, tp->rank[0]->name,
             ga_cuda_comm_kind(tp->comm));
    ga_cuda_backend_init(b, tp->rank[0]);
    tp->rank[0]->tp = tp;
    b->name = tp->name;
    /* No one-pass mixed steps across ranks yet (their layer halves and all-reduces would need
     * the mixed attention too): the scheduler runs decode steps and prefill passes apart, its
     * --prefill-share limit included, instead of mixed steps that are two calls underneath. */
    b->step_mixed = NULL;
    /* the whole model's KV bytes a token (every rank's heads): a paged cache's kv_memory
     * counts all ranks together */
    b->kv_token_bytes = 2 * 2 * (size_t)cfg->n_layers * cfg->n_kv_heads * cfg->head_dim;
    *out = b;
    return GA_OK;
fail:
    ga_cuda_state_free(tp->rank[0]);
    ga_cuda_tp_free(tp);
    free(b);
    return st;
}
