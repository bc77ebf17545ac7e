/*
 * The CUDA forward pass: the layer stack shared by prefill and decode, the prefill /
 * continuation entry point of the backend (forward), and the attention capture (pooled maps,
 * first-token share, gate statistics) taken from the same attention path during a prefill.
 *
 * Per layer, for R rows (tokens):
 *   xn   = rmsnorm(x += delta_prev)            norm.cu      (fp32 residual, bf16 out)
 *   qkv  = xn . [Wq|Wk|Wv]^T                   cuBLAS       (bf16 out)
 *   q, gate, K/V cache = qk_norm_rope(qkv)     qk_rope.cu
 *   attn = sigmoid(gate) * attention(q, K, V)  attention_*.cu (gate in the epilogue)
 *   delta = attn . Wo^T                        cuBLAS       (fp32 out)
 *   xn   = rmsnorm(x += delta + o_bias)        norm.cu
 *   gu   = xn . [Wgate|Wup]^T                  cuBLAS       (bf16 out)
 *   act  = silu(g) * u                         activation.cu
 *   delta = act . Wdown^T                      cuBLAS       (fp32 out, added by the next norm)
 *
 * A decode step of at most GA_GEMV_AUTO_MAX_M rows (ga_cuda_decode_fused) folds the norms,
 * residual adds and SwiGLU into the weight-streaming GEMVs (kernels/gemv.cu), with the same
 * roundings, and never writes delta, xn or the gate|up intermediate:
 *   qkv  = rmsnorm(x) . [Wq|Wk|Wv]^T           ga_gemv_rmsnorm
 *   (q/k norm, RoPE, attention as above)
 *   x   += attn . Wo^T + o_bias                ga_gemv_residual
 *   act  = swiglu(rmsnorm(x) . [Wg|Wu]^T)      ga_gemv_rmsnorm_swiglu
 *   x   += act . Wdown^T                       ga_gemv_residual
 *   logits = rmsnorm(x) . Wlm^T                ga_gemv_rmsnorm (ga_cuda_decode_logits)
 * On sm_90+ these GEMVs use programmatic dependent launch, so each one's first weight loads
 * overlap the end of the kernel before it (in the captured decode graphs too).
 *
 * A layer is two halves (ga_cuda_layer_attn up to o_proj, ga_cuda_layer_mlp up to down_proj)
 * so that tensor parallelism (cuda_tp.c) can launch each half on every rank and all-reduce the
 * ranks' deltas in between; its ranks always take the unfused path. One rank runs the halves
 * back to back: the same kernels in the same order as a single loop.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/passes.h"
#include "cuda_internal.h"

#define GA_GATE_LOW 0.1f

/* The fused decode GEMVs launch with programmatic dependent launch on sm_90+ (kernels/gemv.cu);
 * build with -DGA_CUDA_DECODE_PDL=0 to launch them plainly (to time the difference, or to rule
 * it out). */
#ifndef GA_CUDA_DECODE_PDL
#define GA_CUDA_DECODE_PDL 1
#endif

/* The fused decode GEMVs for a weight that may be FP8 (ga_cuda_layer: f8->scale set). */
static ga_status gemv_rmsnorm(ga_cuda *c, const float *norm_w, const void *w,
                              const ga_f8_scales *f8, void *y, int rows, int N, int K, bool pdl,
                              ga_err *err) {
    const float eps = c->cfg.rms_norm_eps;
    if (f8->scale)
        return ga_gemv_f8_rmsnorm(c->sc.x, norm_w, eps, w, f8, y, false, rows, N, K, pdl, c->stream,
                                  err);
    return ga_gemv_rmsnorm(c->sc.x, norm_w, eps, w, y, false, rows, N, K, pdl, c->stream, err);
}
static ga_status gemv_rmsnorm_swiglu(ga_cuda *c, const float *norm_w, const void *w,
                                     const ga_f8_scales *f8, int rows, int I, int K, bool pdl,
                                     ga_err *err) {
    const float eps = c->cfg.rms_norm_eps;
    if (f8->scale)
        return ga_gemv_f8_rmsnorm_swiglu(c->sc.x, norm_w, eps, w, f8, c->sc.act, rows, I, K, pdl,
                                         c->stream, err);
    return ga_gemv_rmsnorm_swiglu(c->sc.x, norm_w, eps, w, c->sc.act, rows, I, K, pdl, c->stream,
                                  err);
}
static ga_status gemv_residual(ga_cuda *c, const void *a, const void *w, const ga_f8_scales *f8,
                               const float *bias, int rows, int N, int K, bool pdl, ga_err *err) {
    if (f8->scale)
        return ga_gemv_f8_residual(a, w, f8, bias, c->sc.x, rows, N, K, pdl, c->stream, err);
    return ga_gemv_residual(a, w, bias, c->sc.x, rows, N, K, pdl, c->stream, err);
}

/* k: the sequence's keys of layer l in the slot layout (n_kv, kv_stride, hd). */
static ga_status capture_layer(ga_cuda *c, int l, int T, const void *k, int kv_stride,
                               ga_attn_capture *cap, ga_err *err) {
    const ga_config *cfg = &c->cfg;
    const bool want_map = cap->layers && cap->layers[l] && cap->maps && cap->maps[l];
    if (want_map)
        GA_CUDA_CHECK(cudaMemsetAsync(c->cap_map, 0, (size_t)cap->res * cap->res * 4, c->stream));
    ga_attn_probs_args pa = {
        .q = c->sc.q,
        .k = k,
        .lse = c->sc.lse,
        .map = want_map ? c->cap_map : NULL,
        .first_share = c->cap_first + l,
        .T = T,
        .n_heads = cfg->n_heads,
        .n_kv_heads = cfg->n_kv_heads,
        .hd = cfg->head_dim,
        .kv_stride = kv_stride,
        .head = cap->head,
        .res = cap->res,
        .scale = 1.0f / sqrtf((float)cfg->head_dim),
    };
    ga_status st = ga_attention_probs(&pa, c->stream, err);
    if (st) return st;
    if (c->gate_dim) {
        st = ga_gate_stats(c->sc.gate, (int64_t)T * c->gate_dim, GA_GATE_LOW, c->cap_gsum + l,
                           c->cap_gbelow + l, c->stream, err);
        if (st) return st;
    }
    if (want_map) {
        GA_CUDA_CHECK(cudaMemcpyAsync(cap->maps[l], c->cap_map, (size_t)cap->res * cap->res * 4,
                                      cudaMemcpyDeviceToHost, c->stream));
        GA_CUDA_CHECK(cudaStreamSynchronize(c->stream));
    }
    return GA_OK;
}

static int blocks_for(const ga_cuda *c, int64_t tokens) {
    return (int)((tokens + c->block_size - 1) / c->block_size);
}

/* The pinned staging of a pass's inputs (h_pass, h_tab: cuda_internal.h) for `rows` rows:
 * grown when a pass is taller than any before (the first prefill, or a capture's whole
 * prompt), after a synchronisation, since the copies of the last two passes may still read
 * the old buffer. */
static ga_status pass_staging(ga_cuda *c, int rows, ga_err *err) {
    if (rows <= c->h_pass_rows) return GA_OK;
    GA_CUDA_CHECK(cudaStreamSynchronize(c->stream));
    cudaFreeHost(c->h_pass);
    c->h_pass = NULL;
    c->h_pass_rows = 0;
    if (cudaMallocHost((void **)&c->h_pass, 2 * 4 * (size_t)rows * sizeof(int32_t)) !=
        cudaSuccess) {
        (void)cudaGetLastError();
        c->h_pass = NULL;
        return ga_err_set(err, GA_ERR_OOM, "pinned host allocation of %zu bytes failed",
                          2 * 4 * (size_t)rows * sizeof(int32_t));
    }
    c->h_pass_rows = rows;
    return GA_OK;
}

ga_status ga_cuda_stage_pass(ga_cuda *c, const int32_t *tokens, int rows, const ga_cuda_plan *pl,
                             ga_err *err) {
    ga_cuda_scratch *s = &c->sc;
    ga_status st = pass_staging(c, rows, err);
    if (st) return st;
    /* The staging is pinned, so each copy below reads it when the stream reaches the copy,
     * after this function has returned, while the host goes on to stage the next pass. So
     * passes alternate between two halves, and a half is rewritten only once the copies of
     * the pass that last used it (two passes back) have run: a wait the GPU has usually
     * passed already, where a synchronisation after every pass drained the stream. (Pageable
     * sources would need no wait here, but their copies may synchronise with the stream.) */
    const int half = c->pass_half;
    GA_CUDA_CHECK(cudaEventSynchronize(c->pass_free[half]));
    int32_t *ht = c->h_pass + (size_t)half * 4 * c->h_pass_rows;
    int32_t *hp = ht + rows, *hs = hp + rows, *hd = hs + rows;
    const size_t bytes = (size_t)rows * sizeof(int32_t);
    memcpy(ht, tokens, bytes);
    GA_CUDA_CHECK(cudaMemcpyAsync(s->tokens, ht, bytes, cudaMemcpyHostToDevice, c->stream));
    // One sequence in a slot: the kernels take (slot, pos0) as scalars, no rows to stage.
    if (c->paged || pl->ns > 1) {
        for (int i = 0; i < pl->ns; i++) {
            const int seq = pl->seqs[i];
            for (int r = pl->off[i]; r < pl->off[i + 1]; r++) {
                const int p = pl->pos0[i] + (r - pl->off[i]);
                hp[r] = p;
                hs[r] = seq;
                hd[r] = c->paged
                            ? c->tables[seq][p / c->block_size] * c->block_size + p % c->block_size
                            : 0;
            }
        }
        GA_CUDA_CHECK(cudaMemcpyAsync(s->positions, hp, bytes, cudaMemcpyHostToDevice, c->stream));
        if (c->paged) {
            GA_CUDA_CHECK(cudaMemcpyAsync(s->dest, hd, bytes, cudaMemcpyHostToDevice, c->stream));
            // Piece i's table in row i of d_tab: the entries of its keys so far and its new
            // rows (in the next pass, row i may be another sequence's: forward_multi). All
            // rows in one copy, the tails between them zeroed (block 0: every entry copied is
            // a valid block, as a decode step's are): a copy per piece costs microseconds of
            // host time each while the GPU waits, and a mixed step (cuda_mixed.c) has a
            // one-row piece per decoding sequence.
            int32_t *tab = c->h_tab + (size_t)half * c->max_batch * c->max_blocks;
            size_t n_tab = 0;
            for (int i = 0; i < pl->ns; i++) {
                const int nb = blocks_for(c, (int64_t)pl->pos0[i] + pl->off[i + 1] - pl->off[i]);
                int32_t *row = tab + (size_t)i * c->max_blocks;
                memcpy(row, c->tables[pl->seqs[i]], (size_t)nb * sizeof(int32_t));
                if (i + 1 < pl->ns)
                    memset(row + nb, 0, (size_t)(c->max_blocks - nb) * sizeof(int32_t));
                n_tab = (size_t)i * c->max_blocks + nb;
            }
            GA_CUDA_CHECK(cudaMemcpyAsync(c->d_tab, tab, n_tab * sizeof(int32_t),
                                          cudaMemcpyHostToDevice, c->stream));
        } else {
            GA_CUDA_CHECK(cudaMemcpyAsync(s->slots, hs, bytes, cudaMemcpyHostToDevice, c->stream));
        }
    }
    GA_CUDA_CHECK(cudaEventRecord(c->pass_free[half], c->stream));
    c->pass_half = half ^ 1;
    return GA_OK;
}

/* Prefill attention of every piece of the plan after its decode rows (pl->nd; all of a
 * prefill's) for layer l (K/V already written). */
static ga_status prefill_attention(ga_cuda *c, int l, const ga_cuda_plan *pl, ga_attn_capture *cap,
                                   ga_err *err) {
    const ga_config *cfg = &c->cfg;
    ga_cuda_scratch *s = &c->sc;
    const int hd = cfg->head_dim;
    ga_status st;
    for (int i = pl->nd; i < pl->ns; i++) {
        const int r0 = pl->off[i], T = pl->off[i + 1] - r0, pos0 = pl->pos0[i];
        const void *k, *v;
        if (c->paged) { // gather the sequence's keys so far into the slot layout
            ga_kv_gather_args ga = {
                .k_pool = ga_cuda_kcache(c, l),
                .v_pool = ga_cuda_vcache(c, l),
                .table = c->d_tab + (size_t)i * c->max_blocks,
                .k_out = c->gk,
                .v_out = c->gv,
                .len = pos0 + T,
                .n_kv_heads = cfg->n_kv_heads,
                .block_size = c->block_size,
                .hd = hd,
                .out_stride = c->max_context,
            };
            if ((st = ga_kv_gather(&ga, c->stream, err))) return st;
            k = c->gk;
            v = c->gv;
        } else {
            const size_t off = (size_t)pl->seqs[i] * cfg->n_kv_heads * c->max_context * hd;
            k = (uint16_t *)ga_cuda_kcache(c, l) + off;
            v = (uint16_t *)ga_cuda_vcache(c, l) + off;
        }
        ga_attn_prefill_args pa = {
            .q = (uint16_t *)s->q + (size_t)r0 * c->attn_dim,
            .k = k,
            .v = v,
            .gate = s->gate ? (uint16_t *)s->gate + (size_t)r0 * c->gate_dim : NULL,
            .out = (uint16_t *)s->attn + (size_t)r0 * c->attn_dim,
            .lse = cap ? s->lse : NULL,
            .T = T,
            .pos0 = pos0,
            .n_heads = cfg->n_heads,
            .n_kv_heads = cfg->n_kv_heads,
            .hd = hd,
            .kv_stride = c->max_context,
            .gate_mode = cfg->gate,
            .scale = 1.0f / sqrtf((float)hd),
            .devinfo = &c->devinfo,
        };
        if ((st = ga_attention_prefill(&pa, c->stream, err))) return st;
        if (cap && (st = capture_layer(c, l, T, k, c->max_context, cap, err))) return st;
    }
    return GA_OK;
}

/* Decode attention of the first B rows of the pass (one query token each, the staged
 * kv_lens, slots or block-table rows 0..B-1 of d_tab at table_stride) for layer l: a decode
 * step's rows, or a mixed step's. The KV split follows decode_kv_bound (the step's length
 * bucket), or in deterministic mode the fixed split, the same for both. */
static ga_status decode_attention(ga_cuda *c, int l, int B, int table_stride, ga_err *err) {
    const ga_config *cfg = &c->cfg;
    ga_cuda_scratch *s = &c->sc;
    const int hd = cfg->head_dim;
    const float scale = 1.0f / sqrtf((float)hd);
    void *kc = ga_cuda_kcache(c, l), *vc = ga_cuda_vcache(c, l);
    ga_attn_decode_args da = {
        .q = s->q,
        .k_cache = kc,
        .v_cache = vc,
        .slots = s->slots,
        .kv_lens = s->kv_lens,
        .gate = s->gate,
        .out = s->attn,
        .work = c->dec_work,
        .counters = c->dec_counters,
        .B = B,
        .n_heads = cfg->n_heads,
        .n_kv_heads = cfg->n_kv_heads,
        .hd = hd,
        .kv_stride = c->paged ? c->block_size : c->max_context,
        // The split over the KV length is fixed by the step's length bucket (see
        // cuda_decode.c), not the exact lengths, so one captured graph serves every
        // step whose rows fit the bucket.
        .max_kv_len = c->decode_kv_bound > 0 ? c->decode_kv_bound : c->max_context,
        .block_table = c->paged ? c->d_tab : NULL,
        .table_stride = table_stride,
        .block_size = c->block_size,
        .fixed_splits = c->deterministic ? GA_DECODE_INVARIANT_SPLITS : 0,
        .gate_mode = cfg->gate,
        .scale = scale,
        .devinfo = &c->devinfo,
    };
    return ga_attention_decode(&da, c->stream, err);
}

ga_status ga_cuda_layer_attn(ga_cuda *c, int l, int rows, const ga_cuda_plan *pl, bool decode,
                             bool fused, ga_attn_capture *cap, ga_err *err) {
    const ga_config *cfg = &c->cfg;
    ga_cuda_scratch *s = &c->sc;
    const int H = cfg->hidden_size, hd = cfg->head_dim;
    // Per-row positions / destinations: decode, paged, or several sequences; one sequence in
    // a slot passes (slot, pos0) as scalars.
    const bool per_row = decode || c->paged || pl->ns > 1;
    const bool pdl = GA_CUDA_DECODE_PDL && fused && c->devinfo.cc_major >= 9;
    const float eps = cfg->rms_norm_eps;
    ga_status st;
    const ga_cuda_layer *w = &c->layers[l];
    void *kc = ga_cuda_kcache(c, l), *vc = ga_cuda_vcache(c, l);
    if (fused) {
        if ((st = gemv_rmsnorm(c, w->input_norm, w->w_qkv, &w->f8_qkv, s->qkv, rows, c->qkv_dim, H,
                               pdl, err)))
            return st;
    } else if ((st = ga_rmsnorm_residual(s->x, l ? s->delta : NULL, NULL, w->input_norm, s->xn,
                                         rows, H, eps, c->stream, err)) ||
               (st = ga_cuda_proj(c, s->xn, w->w_qkv, &w->f8_qkv, s->qkv, false, rows, c->qkv_dim,
                                  H, err))) {
        return st;
    }
    ga_qk_rope_args ra = {
        .qkv = s->qkv,
        .bias = w->b_qkv,
        .q_norm = w->q_norm,
        .k_norm = w->k_norm,
        .rope_cos = c->rope_cos,
        .rope_sin = c->rope_sin,
        .q_out = s->q,
        .gate_out = s->gate,
        .k_cache = kc,
        .v_cache = vc,
        .positions = per_row ? s->positions : NULL,
        .slots = per_row && !c->paged ? s->slots : NULL,
        .dest = c->paged ? s->dest : NULL,
        .pos0 = per_row ? 0 : pl->pos0[0],
        .slot = per_row ? 0 : pl->seqs[0],
        .T = rows,
        .n_heads = cfg->n_heads,
        .n_kv_heads = cfg->n_kv_heads,
        .hd = hd,
        .kv_stride = c->paged ? c->block_size : c->max_context,
        .rope_rows = c->max_context,
        .gate_mode = cfg->gate,
        .eps = cfg->rms_norm_eps,
    };
    if ((st = ga_qk_norm_rope(&ra, c->stream, err))) return st;
    if (decode) {
        if ((st = decode_attention(c, l, rows, c->dec_tab_stride, err))) return st;
    } else {
        // A mixed step's decode rows first (cuda_mixed.c): the kernel and split of a decode
        // step, so they do not depend on the pieces beside them.
        if (pl->nd && (st = decode_attention(c, l, pl->nd, c->max_blocks, err))) return st;
        if ((st = prefill_attention(c, l, pl, cap, err))) return st;
    }
    if (fused)
        return gemv_residual(c, s->attn, w->w_o, &w->f8_o, w->b_o, rows, H, c->attn_dim, pdl, err);
    return ga_cuda_proj(c, s->attn, w->w_o, &w->f8_o, s->delta, true, rows, H, c->attn_dim, err);
}

ga_status ga_cuda_layer_mlp(ga_cuda *c, int l, int rows, bool fused, ga_err *err) {
    const ga_config *cfg = &c->cfg;
    ga_cuda_scratch *s = &c->sc;
    const ga_cuda_layer *w = &c->layers[l];
    const int H = cfg->hidden_size, I = cfg->intermediate_size;
    const bool pdl = GA_CUDA_DECODE_PDL && fused && c->devinfo.cc_major >= 9;
    ga_status st;
    if (fused) {
        if ((st = gemv_rmsnorm_swiglu(c, w->post_norm, w->w_gu, &w->f8_gu, rows, I, H, pdl, err)))
            return st;
        return gemv_residual(c, s->act, w->w_down, &w->f8_down, NULL, rows, H, I, pdl, err);
    }
    if ((st = ga_rmsnorm_residual(s->x, s->delta, w->b_o, w->post_norm, s->xn, rows, H,
                                  cfg->rms_norm_eps, c->stream, err)))
        return st;
    if ((st = ga_cuda_proj(c, s->xn, w->w_gu, &w->f8_gu, s->qkv, false, rows, 2 * I, H, err)))
        return st;
    if ((st = ga_swiglu(s->qkv, s->act, rows, I, c->stream, err))) return st;
    return ga_cuda_proj(c, s->act, w->w_down, &w->f8_down, s->delta, true, rows, H, I, err);
}

bool ga_cuda_step_fused(const ga_cuda *c, bool decode, int rows) {
    // Tensor-parallel ranks hold partial o_proj / down_proj products that must be summed
    // over the ranks before the residual add: the unfused path's fp32 delta is that sum's
    // buffer, so their decode takes it (the fused GEMVs add into x directly).
    return decode && c->tp_ranks <= 1 && ga_cuda_decode_fused(c, rows);
}

ga_status ga_cuda_layers(ga_cuda *c, int rows, const ga_cuda_plan *pl, bool decode,
                         ga_attn_capture *cap, ga_err *err) {
    if (cap && (decode || pl->ns != 1))
        return ga_err_set(err, GA_ERR_ARG, "attention capture needs a single-sequence prefill");
    const bool fused = ga_cuda_step_fused(c, decode, rows);
    ga_status st;
    for (int l = 0; l < c->cfg.n_layers; l++)
        if ((st = ga_cuda_layer_attn(c, l, rows, pl, decode, fused, cap, err)) ||
            (st = ga_cuda_layer_mlp(c, l, rows, fused, err)))
            return st;
    return GA_OK;
}

ga_status ga_cuda_decode_logits(ga_cuda *c, int rows, ga_err *err) {
    const ga_config *cfg = &c->cfg;
    ga_cuda_scratch *s = &c->sc;
    // Fused: the last down_proj already added its output to x (no delta).
    if (ga_cuda_step_fused(c, true, rows))
        return ga_gemv_rmsnorm(s->x, c->final_norm, cfg->rms_norm_eps, c->lm_head, s->logits, true,
                               rows, cfg->vocab_size, cfg->hidden_size, c->devinfo.cc_major >= 9,
                               c->stream, err);
    ga_status st = ga_rmsnorm_residual(s->x, s->delta, NULL, c->final_norm, s->xn, rows,
                                       cfg->hidden_size, cfg->rms_norm_eps, c->stream, err);
    if (st) return st;
    return ga_cuda_gemm(c, s->xn, c->lm_head, s->logits, true, rows, cfg->vocab_size,
                        cfg->hidden_size, err);
}

ga_status ga_cuda_lm_head(ga_cuda *c, int first, int n, int dst, ga_err *err) {
    const ga_config *cfg = &c->cfg;
    ga_cuda_scratch *s = &c->sc;
    const size_t H = (size_t)cfg->hidden_size;
    ga_status st = ga_rmsnorm_residual(s->x + first * H, s->delta + first * H, NULL, c->final_norm,
                                       (uint16_t *)s->xn + first * H, n, cfg->hidden_size,
                                       cfg->rms_norm_eps, c->stream, err);
    if (st) return st;
    return ga_cuda_gemm(c, (uint16_t *)s->xn + first * H, c->lm_head,
                        s->logits + (size_t)dst * cfg->vocab_size, true, n, cfg->vocab_size,
                        cfg->hidden_size, err);
}

/* Rows [0, n) of sc.logits to the caller's memory. The copy is ordered on the stream before
 * whatever writes sc.logits next (the next block's or pass's LM head), so that needs no
 * wait. Into pageable memory (what callers pass) the call returns once the copy is done; into
 * pinned memory at once, and the synchronisation at the end of the prefill covers it. */
static ga_status logits_out(ga_cuda *c, float *dst, int n, ga_err *err) {
    GA_CUDA_CHECK(cudaMemcpyAsync(dst, c->sc.logits, (size_t)n * c->cfg.vocab_size * sizeof(float),
                                  cudaMemcpyDeviceToHost, c->stream));
    return GA_OK;
}

/* Every row [first, first+n) of the pass through the final norm and LM head, in blocks of
 * sc.logit_rows rows (the logits scratch's height, whatever the pass's), logits to dst (n
 * rows). A block's GEMM is as tall as the pass's others up to GA_CUDA_LOGIT_ROWS. */
static ga_status lm_head_rows(ga_cuda *c, int first, int n, float *dst, ga_err *err) {
    const size_t V = (size_t)c->cfg.vocab_size;
    const int block = c->sc.logit_rows;
    for (int r = 0; r < n; r += block) {
        const int k = n - r < block ? n - r : block;
        ga_status st = ga_cuda_lm_head(c, first + r, k, 0, err);
        if (!st) st = logits_out(c, dst + (size_t)r * V, k, err);
        if (st) return st;
    }
    return GA_OK;
}

static ga_status capture_begin(ga_cuda *c, ga_attn_capture *cap, int n, ga_err *err) {
    const int L = c->cfg.n_layers;
    ga_status st;
    if (!cap->metrics || cap->n_tokens != n || cap->res <= 0) {
        if ((st = ga_capture_prepare(cap, L, n, err))) return st;
    }
    if (!c->cap_first) {
        // All three or none: a half-made set (cap_first without cap_gsum) would pass the test
        // above on the next capture and leave it writing through NULL.
        float *first = NULL;
        double *gsum = NULL;
        unsigned long long *gbelow = NULL;
        cudaError_t e = cudaMalloc((void **)&first, (size_t)L * sizeof(float));
        if (e == cudaSuccess) e = cudaMalloc((void **)&gsum, (size_t)L * sizeof(double));
        if (e == cudaSuccess) e = cudaMalloc((void **)&gbelow, (size_t)L * sizeof(*gbelow));
        if (e != cudaSuccess) {
            (void)cudaGetLastError();
            cudaFree(first);
            cudaFree(gsum);
            cudaFree(gbelow);
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
            c->cap_map = NULL; // retried by the next capture
            GA_CUDA_CHECK(e);
        }
        c->cap_map_elems = elems;
    }
    GA_CUDA_CHECK(cudaMemsetAsync(c->cap_first, 0, (size_t)L * sizeof(float), c->stream));
    GA_CUDA_CHECK(cudaMemsetAsync(c->cap_gsum, 0, (size_t)L * sizeof(double), c->stream));
    GA_CUDA_CHECK(cudaMemsetAsync(c->cap_gbelow, 0, (size_t)L * 8, c->stream));
    // The probabilities need the whole prompt's q and lse at once: hold all n rows.
    if (c->sc.rows < n) {
        GA_CUDA_CHECK(cudaStreamSynchronize(c->stream));
        ga_cuda_drop_graphs(c); // they point at the buffers being replaced
        if ((st = ga_cuda_scratch_alloc(c, n, err))) return st;
    }
    return GA_OK;
}

static ga_status capture_end(ga_cuda *c, ga_attn_capture *cap, int n, ga_err *err) {
    const int L = c->cfg.n_layers;
    float *first = malloc((size_t)L * sizeof(float));
    double *gsum = malloc((size_t)L * sizeof(double));
    unsigned long long *gbelow = malloc((size_t)L * sizeof(unsigned long long));
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
    const double nh = c->cfg.n_heads, ng = (double)n * c->gate_dim;
    for (int l = 0; l < L; l++) {
        ga_layer_metrics *mt = &cap->metrics[l];
        mt->first_token_share = n >= 2 ? first[l] / (nh * (n - 1)) : NAN;
        mt->gate_mean = c->gate_dim ? gsum[l] / ng : NAN;
        mt->gate_below_0_1 = c->gate_dim ? (double)gbelow[l] / ng : NAN;
    }
done:
    free(first);
    free(gsum);
    free(gbelow);
    return st;
}

/* The rows of a prefill pass (a chunk): the prefill_chunk setting, or the whole prompt for a
 * capture (capture_begin grew the scratch for it). */
static int pass_rows(const ga_cuda *c, bool whole, int n) {
    if (whole) return n;
    return c->prefill_chunk < c->sc.rows ? c->prefill_chunk : c->sc.rows;
}

/* One prefill pass's rows up to the LM head: staged, embedded and through the layer stack, on
 * this state, or on every rank of a tensor-parallel backend (rank 0 then holds what the LM
 * head reads, like a single state). */
static ga_status pass_body(ga_cuda *c, const int32_t *tokens, int rows, const ga_cuda_plan *pl,
                           ga_attn_capture *cap, ga_err *err) {
    if (c->tp) return ga_cuda_tp_pass(c->tp, tokens, rows, pl, err);
    const ga_config *cfg = &c->cfg;
    ga_status st;
    if ((st = ga_cuda_stage_pass(c, tokens, rows, pl, err)) ||
        (st = ga_embed(c->sc.tokens, c->embed, c->sc.x, rows, cfg->hidden_size, cfg->vocab_size,
                       c->stream, err)))
        return st;
    return ga_cuda_layers(c, rows, pl, false, cap, err);
}

/* The end of every prefill, failed or not: waits for the stream, so that no copy into the
 * caller's logits and no read of the pinned staging is pending when it returns (the next
 * call, a decode step or the caller may reuse them); keeps the first error. */
static ga_status prefill_drain(ga_cuda *c, ga_status st, const char *what, ga_err *err) {
    cudaError_t e = cudaStreamSynchronize(c->stream);
    if (c->tp) { // the other ranks' streams too (their staging is reused by the next call)
        ga_err ignored = {{0}};
        ga_status ts = ga_cuda_tp_sync(c->tp, st ? &ignored : err);
        if (!st) st = ts;
    }
    if (st) return st;
    if (e != cudaSuccess) return ga_err_set(err, GA_ERR_CUDA, "%s: %s", what, cudaGetErrorName(e));
    return GA_OK;
}

/* No synchronisation between the passes of a prefill (issue 12: each drained the stream, so
 * the GPU idled while the host launched the next pass's first kernels). Stream order already
 * protects every device buffer a pass reuses: the next pass's copies and kernels that rewrite
 * sc.tokens, the staged rows, d_tab, the activations and sc.logits run after this pass's
 * readers of them on the one stream, and its KV rows are new ones. What is not ordered by the
 * stream is host memory: the pinned staging (double-buffered: ga_cuda_stage_pass) and the
 * logits copied back (logits_out). The caller's tokens are copied into the staging first. */
static ga_status forward_passes(ga_cuda *c, int seq, int pos0, const int32_t *tokens, int n,
                                bool all_positions, float *logits, ga_attn_capture *cap,
                                ga_err *err) {
    const ga_config *cfg = &c->cfg;
    const size_t V = (size_t)cfg->vocab_size;
    const int chunk = pass_rows(c, cap != NULL, n);
    ga_status st;
    for (int s0 = 0; s0 < n; s0 += chunk) {
        const int len = n - s0 < chunk ? n - s0 : chunk;
        const bool last = s0 + len == n;
        const int p0 = pos0 + s0, off[2] = {0, len};
        const ga_cuda_plan pl = {.ns = 1, .seqs = &seq, .pos0 = &p0, .off = off};
        if ((st = pass_body(c, tokens + s0, len, &pl, cap, err))) return st;
        if (logits && all_positions) {
            if ((st = lm_head_rows(c, 0, len, logits + (size_t)s0 * V, err))) return st;
        } else if (logits && last) {
            if ((st = ga_cuda_lm_head(c, len - 1, 1, 0, err)) ||
                (st = logits_out(c, logits, 1, err)))
                return st;
        }
    }
    return GA_OK;
}

ga_status ga_cuda_forward(ga_backend *b, int seq, int pos0, const int32_t *tokens, int n,
                          bool all_positions, float *logits, ga_attn_capture *cap, ga_err *err) {
    ga_cuda *c = b->impl;
    ga_status st;
    GA_CUDA_CHECK(cudaSetDevice(c->dev));
    if (n <= 0) return GA_OK;
    if (c->sc.rows < 1) // only after a failed scratch resize could not restore the old size
        return ga_err_set(err, GA_ERR_OOM, "the CUDA backend has no activation buffers left");
    if (cap && pos0 != 0)
        return ga_err_set(err, GA_ERR_ARG, "attention capture needs a prefill from position 0");
    if (cap && c->tp)
        return ga_err_set(
            err, GA_ERR_UNSUPPORTED,
            "attention capture (viz) does not run with tensor parallelism: use --tp 1");
    if (cap && (st = capture_begin(c, cap, n, err))) return st;
    st = forward_passes(c, seq, pos0, tokens, n, all_positions, logits, cap, err);
    if ((st = prefill_drain(c, st, "forward", err))) return st;
    if (cap && (st = capture_end(c, cap, n, err))) return st;
    return GA_OK;
}

/* Several sequences' prefills in one pass: their rows, concatenated, go through every GEMM
 * together in passes of prefill_chunk rows (a sequence may straddle two passes: its second
 * part is a continuation); qk_rope writes each row where its sequence wants it; attention
 * runs once per sequence piece. Logits: every row with all_positions, else each sequence's
 * last row, which the LM head computes in the pass where that row lies. ps/pp/po: room for
 * a pass's plan (ns + 1 entries each). Passes are not synchronised: see forward_passes. */
static ga_status multi_passes(ga_cuda *c, int ns, const int *seqs, const int *pos0,
                              const int32_t *tokens, const int *off, bool all_positions,
                              float *logits, int *ps, int *pp, int *po, ga_err *err) {
    const ga_config *cfg = &c->cfg;
    const size_t V = (size_t)cfg->vocab_size;
    const int total = off[ns], chunk = pass_rows(c, false, total);
    int next_out = 0; /* without all_positions: the next sequence whose logits come back */
    ga_status st;
    for (int r0 = 0; r0 < total; r0 += chunk) {
        const int len = total - r0 < chunk ? total - r0 : chunk;
        int n_end, first_end;
        const int np = ga_pass_pieces(ns, seqs, pos0, off, r0, len, ps, pp, po, &first_end, &n_end);
        const ga_cuda_plan pl = {.ns = np, .seqs = ps, .pos0 = pp, .off = po};
        if ((st = pass_body(c, tokens + r0, len, &pl, NULL, err))) return st;
        if (logits && all_positions) {
            if ((st = lm_head_rows(c, 0, len, logits + (size_t)r0 * V, err))) return st;
        } else if (logits && n_end > 0) {
            /* Sequences first_end .. first_end + n_end - 1 end here, in order: one LM head row
             * each into sc.logits, copied back together whenever logit_rows of them are there
             * (more sequences can end in a pass than the logits scratch has rows). */
            int k = 0;
            for (int j = 0; j < n_end; j++) {
                if ((st = ga_cuda_lm_head(c, off[first_end + j + 1] - 1 - r0, 1, k, err)))
                    return st;
                if (++k == c->sc.logit_rows || j == n_end - 1) {
                    if ((st = logits_out(c, logits + (size_t)next_out * V, k, err))) return st;
                    next_out += k;
                    k = 0;
                }
            }
        }
    }
    return GA_OK;
}

ga_status ga_cuda_forward_multi(ga_backend *b, int ns, const int *seqs, const int *pos0,
                                const int32_t *tokens, const int *off, bool all_positions,
                                float *logits, ga_err *err) {
    ga_cuda *c = b->impl;
    GA_CUDA_CHECK(cudaSetDevice(c->dev));
    if (ns <= 0 || off[ns] <= 0) return GA_OK;
    if (c->sc.rows < 1)
        return ga_err_set(err, GA_ERR_OOM, "the CUDA backend has no activation buffers left");
    int *ps = malloc(3 * ((size_t)ns + 1) * sizeof(int));
    if (!ps) return ga_err_set(err, GA_ERR_OOM, "out of host memory");
    ga_status st = multi_passes(c, ns, seqs, pos0, tokens, off, all_positions, logits, ps,
                                ps + ns + 1, ps + 2 * (ns + 1), err);
    st = prefill_drain(c, st, "forward_multi", err);
    free(ps);
    return st;
}
