/*
 * The MoE block of the hybrid CUDA backend (ga_hyb_moe in cpu_hybrid.c, Qwen3NextSparseMoeBlock):
 * router GEMM, softmax + top-k on the device (moe.cu), the routed rows grouped by expert and
 * gathered, then per active expert one gate|up GEMM, SwiGLU and one down GEMM over its
 * contiguous rows, and the weighted combine with the shared expert times
 * sigmoid(shared_expert_gate(x)).
 *
 * Two ways to the expert products, by the pass:
 *  - a decode step (on_device): ga_moe_expert_gemm, every expert's rows in one launch that reads
 *    the expert offsets on the device; nothing comes back to the host, so the step can be
 *    captured in a graph (cuda_hybrid_fwd.c). Its fp32 sums run in another order than cuBLAS's
 *    (rounding level, then the bf16 of the gate|up output);
 *  - a prefill chunk: one cuBLAS GEMM pair per active expert over its contiguous rows, which
 *    needs the per-expert counts on the host (one device-to-host copy and stream sync per MoE
 *    layer per chunk, small beside a chunk's work; tensor-core GEMMs at prefill heights).
 *
 * FP8 experts (kept as FP8, cuda_hybrid_weights.c) give the numbers of the bf16 upload both
 * ways. A decode step takes ga_moe_expert_gemm_f8, which widens each code to its bf16 value on
 * load and runs the bf16 kernel's FMAs: it reads half the bytes and needs no scratch, and a
 * decode step is where the expert weights' bytes are the time (a step reads K experts' weights
 * per row and does 2 FLOPs per weight per row). A prefill chunk dequantises each active
 * expert into the one bf16 buffer the dense projections use (ga_cuda_proj: c->f8_tmp, the size
 * of the largest single GEMM's weight; at Qwen3-Next-80B's shape one expert's gate|up is 4 MiB)
 * just before its cuBLAS GEMM: 3 bytes a weight moved beside a GEMM that reuses each weight
 * over the expert's rows of the chunk, and tensor cores at prefill heights. Dequantising every
 * expert of a layer at once would need 1.5 GiB of scratch at that shape; an FP8-weight form of
 * the expert GEMM for prefill would forgo the tensor cores (or, as an FP8 tensor-core GEMM,
 * round differently from the bf16 upload).
 */
#include "cuda_hybrid_internal.h"

/* Expert e's matrix in a (E * rows, K) expert weight, FP8 (f8->scale set: codes, and *view the
 * scales with expert e's part of the row table) or bf16. */
static const void *expert(const void *w, const ga_f8_scales *f8, int e, int rows, int K,
                          ga_f8_scales *view) {
    const size_t at = (size_t)e * rows * K;
    *view = *f8;
    if (!f8->scale) return (const uint16_t *)w + at;
    view->srow += (size_t)e * rows;
    return (const uint8_t *)w + at;
}

/* The on-device expert product (a decode step) on bf16 or FP8 experts. */
static ga_status expert_gemm(const void *x, const void *w, const ga_f8_scales *f8, const int *off,
                             int n, int E, int N, int K, void *y, bool y_f32, cudaStream_t s,
                             ga_err *err) {
    if (f8->scale) return ga_moe_expert_gemm_f8(x, w, f8, off, n, E, N, K, y, y_f32, s, err);
    return ga_moe_expert_gemm(x, w, off, n, E, N, K, y, y_f32, s, err);
}

/* The shared expert: delta's second term and its gate logit. */
static ga_status shared_expert(ga_cuda_hyb *h, const hyb_dlayer *w, int rows, ga_err *err) {
    ga_cuda *g = &h->g;
    const int H = h->H;
    ga_status st;
    if ((st = ga_cuda_proj(g, h->xn, w->w_sh_gu, &w->f8_sh_gu, h->big, false, rows, 2 * h->Is, H,
                           err)) ||
        (st = ga_swiglu(h->big, h->act, rows, h->Is, g->stream, err)) ||
        (st = ga_cuda_proj(g, h->act, w->w_sh_down, &w->f8_sh_down, h->sh_y, true, rows, H, h->Is,
                           err)))
        return st;
    return ga_cuda_gemm(g, h->xn, w->w_sh_gate, h->sh_g, true, rows, 1, H, err);
}

ga_status ga_cuda_hyb_moe(ga_cuda_hyb *h, const hyb_dlayer *w, int rows, bool on_device,
                          ga_err *err) {
    ga_cuda *g = &h->g;
    const int H = h->H, E = h->E, K = h->K, Ie = h->Ie, n = rows * K;
    const bool norm = h->cfg.hybrid.norm_topk_prob;
    ga_status st;
    if ((st = ga_cuda_gemm(g, h->xn, w->w_router, h->r_logits, true, rows, E, H, err)) ||
        (st = ga_moe_route(h->r_logits, rows, E, K, norm, h->r_idx, h->r_w, g->stream, err)) ||
        (st = ga_moe_sort(h->r_idx, n, K, E, h->r_off, h->r_src, h->r_pos, g->stream, err)) ||
        (st = ga_moe_gather(h->xn, h->r_src, n, H, h->e_x, g->stream, err)))
        return st;
    const bool shared = h->Is > 0 && w->w_sh_gu;
    if (on_device) {
        if ((shared && (st = shared_expert(h, w, rows, err))) ||
            (st = expert_gemm(h->e_x, w->w_exp_gu, &w->f8_exp_gu, h->r_off, n, E, 2 * Ie, H,
                              h->e_gu, false, g->stream, err)) ||
            (st = ga_swiglu(h->e_gu, h->e_act, n, Ie, g->stream, err)) ||
            (st = expert_gemm(h->e_act, w->w_exp_down, &w->f8_exp_down, h->r_off, n, E, H, Ie,
                              h->e_y, true, g->stream, err)))
            return st;
        return ga_moe_combine(h->e_y, h->r_pos, h->r_w, shared ? h->sh_y : NULL,
                              shared ? h->sh_g : NULL, h->delta, rows, K, H, g->stream, err);
    }
    GA_CUDA_CHECK(cudaMemcpyAsync(h->h_off, h->r_off, (size_t)(E + 1) * sizeof(int),
                                  cudaMemcpyDeviceToHost, g->stream));
    /* The shared expert does not need the counts: queue it before waiting for them. */
    if (shared && (st = shared_expert(h, w, rows, err))) return st;
    GA_CUDA_CHECK(cudaStreamSynchronize(g->stream));
    const uint16_t *x = h->e_x;
    uint16_t *gu = h->e_gu, *act = h->e_act;
    ga_f8_scales v;
    for (int e = 0; e < E; e++) {
        const int a = h->h_off[e], cnt = h->h_off[e + 1] - a;
        if (cnt <= 0) continue;
        if (a < 0 || h->h_off[e + 1] > n) /* the sort's output, never expected */
            return ga_err_set(err, GA_ERR_CUDA, "MoE: expert %d has rows %d..%d of %d", e, a,
                              a + cnt, n);
        const void *we = expert(w->w_exp_gu, &w->f8_exp_gu, e, 2 * Ie, H, &v);
        if ((st = ga_cuda_proj(g, x + (size_t)a * H, we, &v, gu + (size_t)a * 2 * Ie, false, cnt,
                               2 * Ie, H, err)))
            return st;
    }
    if ((st = ga_swiglu(h->e_gu, h->e_act, n, Ie, g->stream, err))) return st;
    for (int e = 0; e < E; e++) {
        const int a = h->h_off[e], cnt = h->h_off[e + 1] - a;
        if (cnt <= 0) continue;
        const void *we = expert(w->w_exp_down, &w->f8_exp_down, e, H, Ie, &v);
        if ((st = ga_cuda_proj(g, act + (size_t)a * Ie, we, &v, h->e_y + (size_t)a * H, true, cnt,
                               H, Ie, err)))
            return st;
    }
    return ga_moe_combine(h->e_y, h->r_pos, h->r_w, shared ? h->sh_y : NULL,
                          shared ? h->sh_g : NULL, h->delta, rows, K, H, g->stream, err);
}
