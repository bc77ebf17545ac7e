/*
 * The hybrid CUDA backend's layer stack (Qwen3NextDecoderLayer, as ga_hyb_forward_capture runs
 * it on the CPU): for each layer, x += mixer(norm(x)) then x += mlp(norm(x)), with the mixer a
 * full-attention layer (fused QKV GEMM, ga_hyb_attn_prep, the shared prefill / decode attention
 * launchers with the elementwise gate epilogue, o_proj) or a Gated DeltaNet layer (fused
 * in-projection GEMM, conv1d + SiLU with its state, the chunked delta rule for a prefill or the
 * recurrent one for a decode step, gated RMSNorm, out_proj), and the MLP dense SwiGLU or MoE
 * (cuda_hybrid_moe.c). Each residual add is fused into the next norm (ga_rmsnorm_residual).
 *
 * A prefill runs in chunks of the scratch's rows, each a continuation of the one before; a
 * decode step runs one token of each of nb sequences as nb rows. A DeltaNet state cannot
 * rewind: a sequence continues where it stopped or starts again at 0, which zeroes its states.
 * Not done yet: decode graphs, forward_multi (the session calls forward per sequence), device
 * sampling (the session samples on the host).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_hybrid_internal.h"

/* One pass of `rows` rows: a prefill chunk of sequence seq from position pos0, or a decode
 * step (one row per sequence) whose longest row attends to max_kv keys. */
typedef struct pass {
    int rows;
    bool decode;
    int seq, pos0, max_kv;
    ga_attn_capture *cap; /* a prefill of the whole prompt from 0 recording maps, or NULL */
} pass;

static int blocks_for(const ga_cuda_hyb *h, int64_t tokens) {
    return (int)((tokens + h->block_size - 1) / h->block_size);
}

/* Tokens and the per-row positions, slots, cache rows and key counts to the device, with the
 * block table rows a pass reads (prefill: row 0, the sequence's; decode: row i, row i's).
 * seqs / pos: decode's; a prefill derives its rows from p. h_in is pinned and the caller syncs
 * before the next pass stages again. */
static ga_status stage(ga_cuda_hyb *h, const pass *p, const int *seqs, const int *pos,
                       const int32_t *tokens, ga_err *err) {
    const int R = p->rows, S = h->rows;
    int32_t *ht = h->h_in, *hp = ht + S, *hs = hp + S, *hd = hs + S, *hk = hd + S;
    memcpy(ht, tokens, (size_t)R * sizeof *ht);
    for (int r = 0; r < R; r++) {
        const int seq = p->decode ? seqs[r] : p->seq;
        const int at = p->decode ? pos[r] : p->pos0 + r;
        hp[r] = at;
        hs[r] = seq;
        hd[r] =
            h->paged ? h->tables[seq][at / h->block_size] * h->block_size + at % h->block_size : 0;
        hk[r] = at + 1;
    }
    GA_CUDA_CHECK(cudaMemcpyAsync(h->d_tokens, ht, (size_t)R * sizeof *ht, cudaMemcpyHostToDevice,
                                  h->g.stream));
    GA_CUDA_CHECK(cudaMemcpyAsync(h->d_pos, hp, 4 * (size_t)S * sizeof *hp, cudaMemcpyHostToDevice,
                                  h->g.stream));
    if (!h->paged || !h->n_full) return GA_OK;
    const int n_tab = p->decode ? R : 1;
    for (int i = 0; i < n_tab; i++) {
        const int seq = p->decode ? seqs[i] : p->seq;
        const int nb = blocks_for(h, p->decode ? (int64_t)pos[i] + 1 : (int64_t)p->pos0 + R);
        int32_t *row = h->h_tab + (size_t)i * h->max_blocks;
        memcpy(row, h->tables[seq], (size_t)nb * sizeof *row);
        GA_CUDA_CHECK(cudaMemcpyAsync(h->d_tab + (size_t)i * h->max_blocks, row,
                                      (size_t)nb * sizeof *row, cudaMemcpyHostToDevice,
                                      h->g.stream));
    }
    return GA_OK;
}

static ga_status full_attention(ga_cuda_hyb *h, int l, const hyb_dlayer *w, const pass *p,
                                ga_err *err) {
    const int R = p->rows, hd = h->hd;
    ga_status st = ga_cuda_gemm(&h->g, h->xn, w->w_qkv, h->big, false, R, h->qkv_dim, h->H, err);
    if (st) return st;
    uint16_t *kc = (uint16_t *)h->kv + (size_t)(2 * w->full_idx) * h->kv_layer_elems;
    uint16_t *vc = kc + h->kv_layer_elems;
    const ga_hyb_attn_prep_args pa = {
        .qkv = h->big,
        .q_norm = w->q_norm,
        .k_norm = w->k_norm,
        .rope_cos = h->rope_cos,
        .rope_sin = h->rope_sin,
        .q_out = h->q,
        .gate_out = h->gate,
        .k_cache = kc,
        .v_cache = vc,
        .positions = h->d_pos,
        .slots = h->d_slot,
        .dest = h->paged ? h->d_dest : NULL,
        .T = R,
        .n_heads = h->nh,
        .n_kv_heads = h->nkv,
        .hd = hd,
        .rd = h->rd,
        .qkv_stride = h->qkv_dim,
        .kv_stride = h->paged ? h->block_size : h->max_context,
        .rope_rows = h->max_context,
        .eps = h->cfg.rms_norm_eps,
    };
    if ((st = ga_hyb_attn_prep(&pa, h->g.stream, err))) return st;
    const float scale = (float)(1.0 / sqrt((double)hd));
    if (p->decode) {
        const ga_attn_decode_args da = {
            .q = h->q,
            .k_cache = kc,
            .v_cache = vc,
            .slots = h->d_slot,
            .kv_lens = h->d_kvlen,
            .gate = h->gate,
            .out = h->attn,
            .work = h->dec_work,
            .counters = h->dec_counters,
            .B = R,
            .n_heads = h->nh,
            .n_kv_heads = h->nkv,
            .hd = hd,
            .kv_stride = h->max_context,
            .max_kv_len = p->max_kv,
            .block_table = h->paged ? h->d_tab : NULL,
            .table_stride = h->max_blocks,
            .block_size = h->block_size,
            .gate_mode = GA_GATE_ELEMENTWISE,
            .scale = scale,
            .devinfo = &h->g.devinfo,
        };
        st = ga_attention_decode(&da, h->g.stream, err);
    } else {
        const void *k = kc + (size_t)p->seq * h->nkv * h->max_context * hd, *v;
        v = vc + (size_t)p->seq * h->nkv * h->max_context * hd;
        if (h->paged) { /* the sequence's keys so far into the slot layout the kernel reads */
            const ga_kv_gather_args ga = {.k_pool = kc,
                                          .v_pool = vc,
                                          .table = h->d_tab,
                                          .k_out = h->gk,
                                          .v_out = h->gv,
                                          .len = p->pos0 + R,
                                          .n_kv_heads = h->nkv,
                                          .block_size = h->block_size,
                                          .hd = hd,
                                          .out_stride = h->max_context};
            if ((st = ga_kv_gather(&ga, h->g.stream, err))) return st;
            k = h->gk;
            v = h->gv;
        }
        const ga_attn_prefill_args a = {.q = h->q,
                                        .k = k,
                                        .v = v,
                                        .gate = h->gate,
                                        .out = h->attn,
                                        .lse = p->cap ? h->lse : NULL,
                                        .T = R,
                                        .pos0 = p->pos0,
                                        .n_heads = h->nh,
                                        .n_kv_heads = h->nkv,
                                        .hd = hd,
                                        .kv_stride = h->max_context,
                                        .gate_mode = GA_GATE_ELEMENTWISE,
                                        .scale = scale,
                                        .devinfo = &h->g.devinfo};
        st = ga_attention_prefill(&a, h->g.stream, err);
        if (!st && p->cap) st = ga_cuda_hyb_capture_layer(h, l, R, k, h->max_context, p->cap, err);
    }
    if (st) return st;
    return ga_cuda_gemm(&h->g, h->attn, w->w_o, h->delta, true, R, h->H, h->nh * hd, err);
}

static ga_status deltanet(ga_cuda_hyb *h, const hyb_dlayer *w, const pass *p, ga_err *err) {
    const int R = p->rows, B = p->decode ? R : 1, T = p->decode ? 1 : R;
    ga_status st = ga_cuda_gemm(&h->g, h->xn, w->w_in, h->big, false, R, h->P, h->H, err);
    if (st) return st;
    const uint16_t *proj = h->big, *y = h->conv_out;
    const ga_gdn_conv_args ca = {
        .x = proj,
        .y = h->conv_out,
        .state = h->conv_state + (size_t)w->lin_idx * h->max_batch * h->cd * (h->conv_k - 1),
        .slots = h->d_slot,
        .w = w->conv,
        .B = B,
        .T = T,
        .C = h->cd,
        .K = h->conv_k,
        .x_stride = h->P,
        .y_stride = h->cd,
    };
    if ((st = ga_gdn_conv(&ca, h->g.stream, err))) return st;
    const ga_gdn_delta_args da = {
        .q = y,
        .k = y + h->kd,
        .v = y + 2 * h->kd,
        .b = proj + h->cd + h->vd,
        .a = proj + h->cd + h->vd + h->Hv,
        .A_log = w->A_log,
        .dt_bias = w->dt_bias,
        .state = h->rec_state + (size_t)w->lin_idx * h->max_batch * h->Hv * h->dk * h->dv,
        .slots = h->d_slot,
        .o = h->attn,
        .B = B,
        .T = T,
        .Hk = h->Hk,
        .Hv = h->Hv,
        .dk = h->dk,
        .dv = h->dv,
        .qkv_stride = h->cd,
        .ab_stride = h->P,
        .o_stride = h->vd,
    };
    st = T > 1 ? ga_gdn_delta_chunked(&da, h->gdn_work, h->gdn_work_bytes, h->g.stream, err)
               : ga_gdn_delta(&da, h->g.stream, err);
    if (st) return st;
    const ga_gdn_gated_norm_args na = {.o = h->attn,
                                       .z = proj + h->cd,
                                       .w = w->gnorm,
                                       .out = h->attn,
                                       .rows = R,
                                       .heads = h->Hv,
                                       .n = h->dv,
                                       .o_stride = h->vd,
                                       .z_stride = h->P,
                                       .out_stride = h->vd,
                                       .eps = h->cfg.rms_norm_eps};
    if ((st = ga_gdn_gated_rmsnorm(&na, h->g.stream, err))) return st;
    return ga_cuda_gemm(&h->g, h->attn, w->w_out, h->delta, true, R, h->H, h->vd, err);
}

static ga_status dense_mlp(ga_cuda_hyb *h, const hyb_dlayer *w, int R, ga_err *err) {
    const int I = h->cfg.intermediate_size;
    ga_status st;
    if ((st = ga_cuda_gemm(&h->g, h->xn, w->w_gu, h->big, false, R, 2 * I, h->H, err)) ||
        (st = ga_swiglu(h->big, h->act, R, I, h->g.stream, err)))
        return st;
    return ga_cuda_gemm(&h->g, h->act, w->w_down, h->delta, true, R, h->H, I, err);
}

/* The embedded rows through every layer and the final norm: xn holds the normed hidden
 * states the LM head reads. */
static ga_status layers(ga_cuda_hyb *h, const pass *p, ga_err *err) {
    const ga_config *c = &h->cfg;
    const int R = p->rows, H = h->H;
    const float eps = c->rms_norm_eps;
    cudaStream_t s = h->g.stream;
    ga_status st = ga_embed(h->d_tokens, h->embed, h->x, R, H, h->V, s, err);
    for (int l = 0; !st && l < c->n_layers; l++) {
        const hyb_dlayer *w = &h->L[l];
        if ((st = ga_rmsnorm_residual(h->x, l ? h->delta : NULL, NULL, w->input_norm, h->xn, R, H,
                                      eps, s, err)))
            break;
        st =
            c->hybrid.layer_is_linear[l] ? deltanet(h, w, p, err) : full_attention(h, l, w, p, err);
        if (!st)
            st = ga_rmsnorm_residual(h->x, h->delta, NULL, w->post_norm, h->xn, R, H, eps, s, err);
        if (!st) st = w->w_router ? ga_cuda_hyb_moe(h, w, R, err) : dense_mlp(h, w, R, err);
    }
    if (!st)
        st = ga_rmsnorm_residual(h->x, h->delta, NULL, h->final_norm, h->xn, R, H, eps, s, err);
    return st;
}

/* Logits of rows first .. first+n-1 of xn into h->logits (n, V). */
static ga_status lm_head(ga_cuda_hyb *h, int first, int n, ga_err *err) {
    return ga_cuda_gemm(&h->g, (const uint16_t *)h->xn + (size_t)first * h->H, h->lm_head,
                        h->logits, true, n, h->V, h->H, err);
}

/* Zeroes sequence seq's conv and recurrent states in every linear layer (a new sequence). */
static ga_status reset_states(ga_cuda_hyb *h, int seq, ga_err *err) {
    const size_t cs = (size_t)h->cd * (h->conv_k - 1), rs = (size_t)h->Hv * h->dk * h->dv;
    for (int i = 0; i < h->n_lin; i++) {
        const size_t li = (size_t)i * h->max_batch + seq;
        GA_CUDA_CHECK(cudaMemsetAsync(h->conv_state + li * cs, 0, cs * 4, h->g.stream));
        GA_CUDA_CHECK(cudaMemsetAsync(h->rec_state + li * rs, 0, rs * 4, h->g.stream));
    }
    return GA_OK;
}

/* Where sequence seq continues: 0 starts it afresh, anything else must be where it stopped. */
static ga_status continue_at(ga_cuda_hyb *h, int seq, int pos0, ga_err *err) {
    if (pos0 == 0) return reset_states(h, seq, err);
    if (h->seq_pos[seq] != pos0)
        return ga_err_set(err, GA_ERR_ARG,
                          "hybrid CUDA backend: sequence %d holds %d tokens, asked to continue at "
                          "%d (a DeltaNet state cannot rewind)",
                          seq, h->seq_pos[seq], pos0);
    return GA_OK;
}

ga_status ga_cuda_hyb_forward(ga_backend *b, int seq, int pos0, const int32_t *tokens, int n,
                              bool all_positions, float *logits, ga_attn_capture *cap,
                              ga_err *err) {
    ga_cuda_hyb *h = b->impl;
    const size_t V = (size_t)h->V;
    GA_CUDA_CHECK(cudaSetDevice(h->g.dev));
    if (n <= 0) return GA_OK;
    if (cap && pos0 != 0)
        return ga_err_set(err, GA_ERR_ARG, "attention capture needs a prefill from position 0");
    ga_status st = continue_at(h, seq, pos0, err);
    if (!st && cap) st = ga_cuda_hyb_capture_begin(h, cap, n, err); /* rows >= n after it */
    if (st) return st;
    h->seq_pos[seq] = -1; /* until this forward has finished: a failure leaves no continuation */
    for (int s0 = 0; s0 < n; s0 += h->rows) {
        const int len = n - s0 < h->rows ? n - s0 : h->rows;
        const bool last = s0 + len == n;
        const pass p = {.rows = len, .seq = seq, .pos0 = pos0 + s0, .cap = cap};
        if ((st = stage(h, &p, NULL, NULL, tokens + s0, err)) || (st = layers(h, &p, err)))
            return st;
        if (logits && (all_positions || last)) {
            const int first = all_positions ? 0 : len - 1, rows = all_positions ? len : 1;
            if ((st = lm_head(h, first, rows, err))) return st;
            GA_CUDA_CHECK(cudaMemcpyAsync(all_positions ? logits + (size_t)s0 * V : logits,
                                          h->logits, (size_t)rows * V * sizeof(float),
                                          cudaMemcpyDeviceToHost, h->g.stream));
        }
        /* the next chunk restages the pinned inputs and overwrites the logits */
        GA_CUDA_CHECK(cudaStreamSynchronize(h->g.stream));
    }
    if (cap && (st = ga_cuda_hyb_capture_end(h, cap, n, err))) return st;
    h->seq_pos[seq] = pos0 + n;
    return GA_OK;
}

ga_status ga_cuda_hyb_decode_batch(ga_backend *b, const int *seqs, const int *pos,
                                   const int32_t *tokens, int nb, float *logits, ga_err *err) {
    ga_cuda_hyb *h = b->impl;
    GA_CUDA_CHECK(cudaSetDevice(h->g.dev));
    if (nb <= 0) return GA_OK;
    if (nb > h->rows)
        return ga_err_set(err, GA_ERR_ARG, "hybrid CUDA backend: a decode batch of %d rows (%d)",
                          nb, h->rows);
    int max_kv = 0;
    ga_status st = GA_OK;
    for (int i = 0; i < nb && !st; i++) {
        st = continue_at(h, seqs[i], pos[i], err);
        max_kv = pos[i] + 1 > max_kv ? pos[i] + 1 : max_kv;
    }
    if (st) return st;
    for (int i = 0; i < nb; i++)
        h->seq_pos[seqs[i]] = -1;
    const pass p = {.rows = nb, .decode = true, .max_kv = max_kv};
    if ((st = stage(h, &p, seqs, pos, tokens, err)) || (st = layers(h, &p, err))) return st;
    if (logits) {
        if ((st = lm_head(h, 0, nb, err))) return st;
        GA_CUDA_CHECK(cudaMemcpyAsync(logits, h->logits, (size_t)nb * h->V * sizeof(float),
                                      cudaMemcpyDeviceToHost, h->g.stream));
    }
    GA_CUDA_CHECK(cudaStreamSynchronize(h->g.stream));
    for (int i = 0; i < nb; i++)
        h->seq_pos[seqs[i]] = pos[i] + 1;
    return GA_OK;
}
