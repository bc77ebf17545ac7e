/*
 * Attention capture (gattn viz, sink metrics) on the hybrid CUDA backend, recording what
 * ga_hyb_forward_capture records on the CPU: for every full-attention layer the pooled map
 * (recomputed tile by tile from q, k and the prefill's log-sum-exp by ga_attention_probs, as
 * the Qwen3 backend does), the first-token share and the statistics of its elementwise sigmoid
 * gates (n_heads * head_dim values a token, below GA_HYB_GATE_LOW counted as closed); a linear
 * (Gated DeltaNet) layer has no softmax, so its map is freed to NULL and its metrics stay NaN.
 * The device buffers of the metrics and the map live in the embedded ga_cuda's capture fields.
 */
#include <math.h>
#include <stdlib.h>

#include "core/capture.h"
#include "cuda_hybrid_internal.h"

/* cpu_hybrid.h's GA_HYB_GATE_LOW (src/cpu is not a layer the CUDA backend may include). */
#define HYB_GATE_LOW 0.1f

ga_status ga_cuda_hyb_capture_begin(ga_cuda_hyb *h, ga_attn_capture *cap, int n, ga_err *err) {
    ga_cuda *c = &h->g;
    const int L = h->cfg.n_layers;
    ga_status st;
    if (!cap->metrics || cap->n_tokens != n || cap->res <= 0 || cap->n_layers_alloc != L)
        if ((st = ga_capture_prepare(cap, L, n, err))) return st;
    if (!c->cap_first) { /* all three or none, as cuda_forward.c keeps them */
        float *first = NULL;
        double *gsum = NULL;
        unsigned long long *gbelow = NULL;
        cudaError_t e = cudaMalloc((void **)&first, (size_t)L * sizeof *first);
        if (e == cudaSuccess) e = cudaMalloc((void **)&gsum, (size_t)L * sizeof *gsum);
        if (e == cudaSuccess) e = cudaMalloc((void **)&gbelow, (size_t)L * sizeof *gbelow);
        if (e != cudaSuccess) {
            (void)cudaGetLastError();
            cudaFree(first), cudaFree(gsum), cudaFree(gbelow);
            return ga_err_set(err, e == cudaErrorMemoryAllocation ? GA_ERR_OOM : GA_ERR_CUDA,
                              "attention capture: GPU allocation of the metrics failed (%s)",
                              cudaGetErrorName(e));
        }
        c->cap_first = first;
        c->cap_gsum = gsum;
        c->cap_gbelow = gbelow;
    }
    const int elems = cap->res * cap->res;
    if (elems > c->cap_map_elems) {
        cudaFree(c->cap_map);
        c->cap_map = NULL;
        c->cap_map_elems = 0;
        cudaError_t e = cudaMalloc((void **)&c->cap_map, (size_t)elems * sizeof(float));
        if (e != cudaSuccess) {
            c->cap_map = NULL; /* retried by the next capture */
            GA_CUDA_CHECK(e);
        }
        c->cap_map_elems = elems;
    }
    GA_CUDA_CHECK(cudaMemsetAsync(c->cap_first, 0, (size_t)L * sizeof(float), c->stream));
    GA_CUDA_CHECK(cudaMemsetAsync(c->cap_gsum, 0, (size_t)L * sizeof(double), c->stream));
    GA_CUDA_CHECK(cudaMemsetAsync(c->cap_gbelow, 0, (size_t)L * 8, c->stream));
    if (h->rows < n && (st = ga_cuda_hyb_scratch_resize(h, n, err))) return st;
    return GA_OK;
}

ga_status ga_cuda_hyb_capture_layer(ga_cuda_hyb *h, int l, int T, const void *k, int kv_stride,
                                    ga_attn_capture *cap, ga_err *err) {
    ga_cuda *c = &h->g;
    const bool want_map = cap->layers && cap->layers[l] && cap->maps && cap->maps[l];
    if (want_map)
        GA_CUDA_CHECK(cudaMemsetAsync(c->cap_map, 0, (size_t)cap->res * cap->res * 4, c->stream));
    const ga_attn_probs_args pa = {
        .q = h->q,
        .k = k,
        .lse = h->lse,
        .map = want_map ? c->cap_map : NULL,
        .first_share = c->cap_first + l,
        .T = T,
        .n_heads = h->nh,
        .n_kv_heads = h->nkv,
        .hd = h->hd,
        .kv_stride = kv_stride,
        .head = cap->head,
        .res = cap->res,
        .scale = (float)(1.0 / sqrt((double)h->hd)),
    };
    ga_status st = ga_attention_probs(&pa, c->stream, err);
    if (!st)
        st = ga_gate_stats(h->gate, (int64_t)T * h->nh * h->hd, HYB_GATE_LOW, c->cap_gsum + l,
                           c->cap_gbelow + l, c->stream, err);
    if (st) return st;
    if (want_map) {
        GA_CUDA_CHECK(cudaMemcpyAsync(cap->maps[l], c->cap_map, (size_t)cap->res * cap->res * 4,
                                      cudaMemcpyDeviceToHost, c->stream));
        GA_CUDA_CHECK(cudaStreamSynchronize(c->stream));
    }
    return GA_OK;
}

ga_status ga_cuda_hyb_capture_end(ga_cuda_hyb *h, ga_attn_capture *cap, int n, ga_err *err) {
    ga_cuda *c = &h->g;
    const int L = h->cfg.n_layers;
    float *first = malloc((size_t)L * sizeof *first);
    double *gsum = malloc((size_t)L * sizeof *gsum);
    unsigned long long *gbelow = malloc((size_t)L * sizeof *gbelow);
    ga_status st = GA_OK;
    if (!first || !gsum || !gbelow) {
        st = ga_err_set(err, GA_ERR_OOM, "out of host memory");
        goto done;
    }
    if (cudaMemcpyAsync(first, c->cap_first, (size_t)L * 4, cudaMemcpyDeviceToHost, c->stream) ||
        cudaMemcpyAsync(gsum, c->cap_gsum, (size_t)L * 8, cudaMemcpyDeviceToHost, c->stream) ||
        cudaMemcpyAsync(gbelow, c->cap_gbelow, (size_t)L * 8, cudaMemcpyDeviceToHost, c->stream) ||
        cudaStreamSynchronize(c->stream)) {
        st = ga_err_set(err, GA_ERR_CUDA, "copying the capture metrics back failed");
        goto done;
    }
    const double ng = (double)n * h->nh * h->hd;
    for (int l = 0; l < L; l++) {
        ga_layer_metrics *mt = &cap->metrics[l];
        if (h->cfg.hybrid.layer_is_linear[l]) { /* no softmax, so no map */
            free(cap->maps[l]);
            cap->maps[l] = NULL;
            mt->first_token_share = mt->gate_mean = mt->gate_below_0_1 = NAN;
            continue;
        }
        mt->first_token_share = n >= 2 ? first[l] / ((double)h->nh * (n - 1)) : NAN;
        mt->gate_mean = gsum[l] / ng;
        mt->gate_below_0_1 = (double)gbelow[l] / ng;
    }
done:
    free(first);
    free(gsum);
    free(gbelow);
    return st;
}
