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
 * forward_multi runs several sequences' prefill pieces as the rows of one pass (shared GEMMs,
 * per-piece recurrences and attention); a decode step is captured into a CUDA graph per (batch
 * size, KV-length bucket) and replayed, as the Qwen3 backend's (cuda_decode.c), which needs its
 * MoE blocks to stay on the device (cuda_hybrid_moe.c); decode_sample picks the tokens on the
 * device.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/passes.h"
#include "cuda_hybrid_internal.h"

/* One pass of `rows` rows: prefill pieces (piece i is rows off[i]..off[i+1) of sequence
 * seqs[i], its first row at position pos0[i]; forward has one piece, forward_multi several) or
 * a decode step (one row per sequence) whose rows attend to at most max_kv keys (the step's
 * bucket bound, so an eager step and a graph replay launch the same split). */
typedef struct pass {
    int rows;
    bool decode;
    int np;
    const int *seqs, *pos0, *off;
    int max_kv;
    ga_attn_capture *cap; /* a prefill of the whole prompt from 0 recording maps, or NULL */
} pass;

static int blocks_for(const ga_cuda_hyb *h, int64_t tokens) {
    return (int)((tokens + h->block_size - 1) / h->block_size);
}

/* Tokens and the per-row positions, slots, cache rows and key counts to the device, with the
 * block table rows a pass reads (prefill: row i, piece i's sequence; decode: row i, row i's).
 * seqs / pos: decode's. h_in is pinned and the caller syncs before the next pass stages again.
 * The rows keep the stride max_blocks (a graph reads them at a fixed address); entries past a
 * row's blocks are stale but valid block ids (d_tab starts zeroed), never read. */
static ga_status stage(ga_cuda_hyb *h, const pass *p, const int *seqs, const int *pos,
                       const int32_t *tokens, ga_err *err) {
    const int R = p->rows, S = h->rows;
    int32_t *ht = h->h_in, *hp = ht + S, *hs = hp + S, *hd = hs + S, *hk = hd + S;
    memcpy(ht, tokens, (size_t)R * sizeof *ht);
    for (int i = 0, r = 0; i < (p->decode ? R : p->np); i++)
        for (int t = 0; t < (p->decode ? 1 : p->off[i + 1] - p->off[i]); t++, r++) {
            const int seq = p->decode ? seqs[r] : p->seqs[i];
            const int at = p->decode ? pos[r] : p->pos0[i] + t;
            hp[r] = at;
            hs[r] = seq;
            hd[r] = h->paged
                        ? h->tables[seq][at / h->block_size] * h->block_size + at % h->block_size
                        : 0;
            hk[r] = at + 1;
        }
    GA_CUDA_CHECK(cudaMemcpyAsync(h->d_tokens, ht, (size_t)R * sizeof *ht, cudaMemcpyHostToDevice,
                                  h->g.stream));
    GA_CUDA_CHECK(cudaMemcpyAsync(h->d_pos, hp, 4 * (size_t)S * sizeof *hp, cudaMemcpyHostToDevice,
                                  h->g.stream));
    if (!h->paged || !h->n_full) return GA_OK;
    const int n_tab = p->decode ? R : p->np;
    for (int i = 0; i < n_tab; i++) {
        const int seq = p->decode ? seqs[i] : p->seqs[i];
        const int nb = blocks_for(h, p->decode ? (int64_t)pos[i] + 1
                                               : (int64_t)p->pos0[i] + p->off[i + 1] - p->off[i]);
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
    ga_status st =
        ga_cuda_proj(&h->g, h->xn, w->w_qkv, &w->f8_qkv, h->big, false, R, h->qkv_dim, h->H, err);
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
        /* one launch per piece: its rows' queries against its sequence's keys so far */
        for (int i = 0; i < p->np && !st; i++) {
            const int a0 = p->off[i], T = p->off[i + 1] - a0, seq = p->seqs[i];
            const size_t qo = (size_t)a0 * h->nh * hd;
            const void *k = kc + (size_t)seq * h->nkv * h->max_context * hd, *v;
            v = vc + (size_t)seq * h->nkv * h->max_context * hd;
            if (h->paged) { /* the sequence's keys so far into the slot layout the kernel reads */
                const ga_kv_gather_args ga = {.k_pool = kc,
                                              .v_pool = vc,
                                              .table = h->d_tab + (size_t)i * h->max_blocks,
                                              .k_out = h->gk,
                                              .v_out = h->gv,
                                              .len = p->pos0[i] + T,
                                              .n_kv_heads = h->nkv,
                                              .block_size = h->block_size,
                                              .hd = hd,
                                              .out_stride = h->max_context};
                if ((st = ga_kv_gather(&ga, h->g.stream, err))) return st;
                k = h->gk;
                v = h->gv;
            }
            const ga_attn_prefill_args a = {.q = (const uint16_t *)h->q + qo,
                                            .k = k,
                                            .v = v,
                                            .gate = (const uint16_t *)h->gate + qo,
                                            .out = (uint16_t *)h->attn + qo,
                                            .lse = p->cap ? h->lse : NULL,
                                            .T = T,
                                            .pos0 = p->pos0[i],
                                            .n_heads = h->nh,
                                            .n_kv_heads = h->nkv,
                                            .hd = hd,
                                            .kv_stride = h->max_context,
                                            .gate_mode = GA_GATE_ELEMENTWISE,
                                            .scale = scale,
                                            .devinfo = &h->g.devinfo};
            st = ga_attention_prefill(&a, h->g.stream, err);
            /* a capture has one piece (forward from position 0) */
            if (!st && p->cap)
                st = ga_cuda_hyb_capture_layer(h, l, T, k, h->max_context, p->cap, err);
        }
    }
    if (st) return st;
    return ga_cuda_proj(&h->g, h->attn, w->w_o, &w->f8_o, h->delta, true, R, h->H, h->nh * hd, err);
}

/* Where a pass's in-projection output lies in big: rows of [q | k | v | z | b | a] (stride
 * P), or, with a separate w_ba, rows of [q | k | v | z] (stride cd + vd) followed by the
 * pass's rows of [b | a] (stride 2 * Hv). */
typedef struct gdn_in {
    const uint16_t *proj, *ba;
    int stride, ab_stride;
} gdn_in;

/* The conv and the delta rule of rows a0 .. a0 + B*T - 1: B sequences of T tokens each (a
 * decode step: B rows of one token; a prefill piece: one sequence of T tokens). */
static ga_status deltanet_rows(ga_cuda_hyb *h, const hyb_dlayer *w, const gdn_in *in, int a0, int B,
                               int T, ga_err *err) {
    const uint16_t *proj = in->proj + (size_t)a0 * in->stride;
    const uint16_t *ba = in->ba + (size_t)a0 * in->ab_stride;
    uint16_t *y = (uint16_t *)h->conv_out + (size_t)a0 * h->cd;
    const ga_gdn_conv_args ca = {
        .x = proj,
        .y = y,
        .state = h->conv_state + (size_t)w->lin_idx * h->max_batch * h->cd * (h->conv_k - 1),
        .slots = h->d_slot + a0,
        .w = w->conv,
        .B = B,
        .T = T,
        .C = h->cd,
        .K = h->conv_k,
        .x_stride = in->stride,
        .y_stride = h->cd,
    };
    ga_status st = ga_gdn_conv(&ca, h->g.stream, err);
    if (st) return st;
    const ga_gdn_delta_args da = {
        .q = y,
        .k = y + h->kd,
        .v = y + 2 * h->kd,
        .b = ba,
        .a = ba + h->Hv,
        .A_log = w->A_log,
        .dt_bias = w->dt_bias,
        .state = h->rec_state + (size_t)w->lin_idx * h->max_batch * h->Hv * h->dk * h->dv,
        .slots = h->d_slot + a0,
        .o = (uint16_t *)h->attn + (size_t)a0 * h->vd,
        .B = B,
        .T = T,
        .Hk = h->Hk,
        .Hv = h->Hv,
        .dk = h->dk,
        .dv = h->dv,
        .qkv_stride = h->cd,
        .ab_stride = in->ab_stride,
        .o_stride = h->vd,
        .chunk_impl = h->gdn_chunk_impl,
    };
    return T > 1 ? ga_gdn_delta_chunked(&da, h->gdn_work, h->gdn_work_bytes, h->g.stream, err)
                 : ga_gdn_delta(&da, h->g.stream, err);
}

static ga_status deltanet(ga_cuda_hyb *h, const hyb_dlayer *w, const pass *p, ga_err *err) {
    const int R = p->rows, Pw = w->w_ba ? h->cd + h->vd : h->P;
    uint16_t *big = h->big;
    const gdn_in in = {.proj = big,
                       .ba = w->w_ba ? big + (size_t)R * Pw : big + h->cd + h->vd,
                       .stride = Pw,
                       .ab_stride = w->w_ba ? 2 * h->Hv : h->P};
    ga_status st = ga_cuda_proj(&h->g, h->xn, w->w_in, &w->f8_in, big, false, R, Pw, h->H, err);
    if (!st && w->w_ba)
        st = ga_cuda_gemm(&h->g, h->xn, w->w_ba, big + (size_t)R * Pw, false, R, 2 * h->Hv, h->H,
                          err);
    if (st) return st;
    /* the projections of every row together; the recurrences per sequence (a prefill piece
     * each), or all rows of a decode step in one launch */
    if (p->decode) st = deltanet_rows(h, w, &in, 0, R, 1, err);
    for (int i = 0; !p->decode && i < p->np && !st; i++)
        st = deltanet_rows(h, w, &in, p->off[i], 1, p->off[i + 1] - p->off[i], err);
    if (st) return st;
    const uint16_t *proj = big;
    const ga_gdn_gated_norm_args na = {.o = h->attn,
                                       .z = proj + h->cd,
                                       .w = w->gnorm,
                                       .out = h->attn,
                                       .rows = R,
                                       .heads = h->Hv,
                                       .n = h->dv,
                                       .o_stride = h->vd,
                                       .z_stride = Pw,
                                       .out_stride = h->vd,
                                       .eps = h->cfg.rms_norm_eps};
    if ((st = ga_gdn_gated_rmsnorm(&na, h->g.stream, err))) return st;
    return ga_cuda_proj(&h->g, h->attn, w->w_out, &w->f8_out, h->delta, true, R, h->H, h->vd, err);
}

static ga_status dense_mlp(ga_cuda_hyb *h, const hyb_dlayer *w, int R, ga_err *err) {
    const int I = h->cfg.intermediate_size;
    ga_status st;
    if ((st = ga_cuda_proj(&h->g, h->xn, w->w_gu, &w->f8_gu, h->big, false, R, 2 * I, h->H, err)) ||
        (st = ga_swiglu(h->big, h->act, R, I, h->g.stream, err)))
        return st;
    return ga_cuda_proj(&h->g, h->act, w->w_down, &w->f8_down, h->delta, true, R, h->H, I, err);
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
        if (!st)
            st = w->w_router ? ga_cuda_hyb_moe(h, w, R, p->decode, err) : dense_mlp(h, w, R, err);
    }
    if (!st)
        st = ga_rmsnorm_residual(h->x, h->delta, NULL, h->final_norm, h->xn, R, H, eps, s, err);
    return st;
}

/* Logits of rows first .. first+n-1 of xn into h->logits from row dst (n, V). */
static ga_status lm_head(ga_cuda_hyb *h, int first, int n, int dst, ga_err *err) {
    return ga_cuda_gemm(&h->g, (const uint16_t *)h->xn + (size_t)first * h->H, h->lm_head,
                        h->logits + (size_t)dst * h->V, true, n, h->V, h->H, err);
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
        const int at = pos0 + s0, off[2] = {0, len};
        const pass p = {.rows = len, .np = 1, .seqs = &seq, .pos0 = &at, .off = off, .cap = cap};
        if ((st = stage(h, &p, NULL, NULL, tokens + s0, err)) || (st = layers(h, &p, err)))
            return st;
        if (logits && (all_positions || last)) {
            const int first = all_positions ? 0 : len - 1, rows = all_positions ? len : 1;
            if ((st = lm_head(h, first, rows, 0, err))) return st;
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

/* backend.h's forward_multi, as the Qwen3 backend's (cuda_forward.c): the rows of every
 * sequence in chunks of the scratch's rows, each chunk's pieces sharing every weight GEMM
 * (projections, MLP / experts, LM head), the DeltaNet conv and delta rule and the attention per
 * piece (a sequence cut by a chunk boundary continues in the next chunk from its states and
 * cache). A row's numbers differ from a per-sequence forward only where a GEMM's height picks
 * another cuBLAS kernel (fp32 summation order, then the bf16 rounding of its output). */
ga_status ga_cuda_hyb_forward_multi(ga_backend *b, int ns, const int *seqs, const int *pos0,
                                    const int32_t *tokens, const int *off, bool all_positions,
                                    float *logits, ga_err *err) {
    ga_cuda_hyb *h = b->impl;
    const size_t V = (size_t)h->V;
    GA_CUDA_CHECK(cudaSetDevice(h->g.dev));
    if (ns <= 0 || off[ns] <= 0) return GA_OK;
    ga_status st = GA_OK;
    for (int i = 0; i < ns && !st; i++)
        st = continue_at(h, seqs[i], pos0[i], err);
    if (st) return st;
    for (int i = 0; i < ns; i++)
        h->seq_pos[seqs[i]] = -1; /* until the call has finished */
    int *ps = malloc(3 * ((size_t)ns + 1) * sizeof(int));
    if (!ps) return ga_err_set(err, GA_ERR_OOM, "out of host memory");
    int *pp = ps + ns + 1, *po = pp + ns + 1;
    const int total = off[ns], chunk = h->rows;
    int next_out = 0; /* without all_positions: the next sequence whose logits come back */
    for (int r0 = 0; r0 < total && !st; r0 += chunk) {
        const int len = total - r0 < chunk ? total - r0 : chunk;
        int n_end, first_end;
        const int np = ga_pass_pieces(ns, seqs, pos0, off, r0, len, ps, pp, po, &first_end, &n_end);
        const pass p = {.rows = len, .np = np, .seqs = ps, .pos0 = pp, .off = po};
        if ((st = stage(h, &p, NULL, NULL, tokens + r0, err)) || (st = layers(h, &p, err))) break;
        if (logits && all_positions) {
            if ((st = lm_head(h, 0, len, 0, err))) break;
            if (cudaMemcpyAsync(logits + (size_t)r0 * V, h->logits, (size_t)len * V * 4,
                                cudaMemcpyDeviceToHost, h->g.stream) != cudaSuccess)
                st = ga_err_set(err, GA_ERR_CUDA, "copying the logits back failed");
        } else if (logits && n_end > 0) {
            /* sequences first_end .. first_end + n_end - 1 end here, in order: one LM head row
             * each, copied back together */
            for (int k = 0; k < n_end && !st; k++)
                st = lm_head(h, off[first_end + k + 1] - 1 - r0, 1, k, err);
            if (!st &&
                cudaMemcpyAsync(logits + (size_t)next_out * V, h->logits, (size_t)n_end * V * 4,
                                cudaMemcpyDeviceToHost, h->g.stream) != cudaSuccess)
                st = ga_err_set(err, GA_ERR_CUDA, "copying the logits back failed");
            next_out += n_end;
        }
        /* the next chunk restages the pinned inputs and overwrites the logits */
        if (!st && cudaStreamSynchronize(h->g.stream) != cudaSuccess)
            st = ga_err_set(err, GA_ERR_CUDA, "hybrid forward_multi: %s",
                            cudaGetErrorName(cudaGetLastError()));
    }
    free(ps);
    if (st) return st;
    for (int i = 0; i < ns; i++)
        h->seq_pos[seqs[i]] = pos0[i] + off[i + 1] - off[i];
    return GA_OK;
}

/* A decode step's work after staging: layers and LM head over nb rows, logits in h->logits. */
static ga_status decode_body(ga_cuda_hyb *h, int nb, int max_kv, ga_err *err) {
    const pass p = {.rows = nb, .decode = true, .max_kv = max_kv};
    ga_status st = layers(h, &p, err);
    return st ? st : lm_head(h, 0, nb, 0, err);
}

static ga_status capture_graph(ga_cuda_hyb *h, int nb, int max_kv, int slot, ga_err *err) {
    cudaGraph_t graph = NULL;
    cudaGraphExec_t *exec = &h->g.graphs[slot];
    GA_CUDA_CHECK(cudaStreamBeginCapture(h->g.stream, cudaStreamCaptureModeThreadLocal));
    ga_status st = decode_body(h, nb, max_kv, err);
    cudaError_t e = cudaStreamEndCapture(h->g.stream, &graph);
    if (st) { /* the body's error explains more than the broken capture */
        if (graph) cudaGraphDestroy(graph);
        (void)cudaGetLastError();
        return st;
    }
    GA_CUDA_CHECK(e);
    e = cudaGraphInstantiate(exec, graph, 0);
    cudaGraphDestroy(graph);
    if (e != cudaSuccess) *exec = NULL;
    GA_CUDA_CHECK(e);
    return GA_OK;
}

/* One decode step of nb rows up to the logits in h->logits (not synchronised), as the Qwen3
 * backend's run_step (cuda_decode.c): the inputs staged into the fixed device buffers, then the
 * graph of (nb, KV-length bucket) replayed, or on the first step of that pair the step run
 * eagerly (it loads the kernels and lets cuBLAS pick its algorithms outside a capture) and then
 * captured. The states a row starts afresh (position 0) are zeroed before, outside the graph. A
 * step's attention is launched for its bucket's bound, eager or replayed, so both give the same
 * numbers. */
static ga_status run_step(ga_cuda_hyb *h, const int *seqs, const int *pos, const int32_t *tokens,
                          int nb, ga_err *err) {
    GA_CUDA_CHECK(cudaSetDevice(h->g.dev));
    if (nb > h->max_batch || nb > h->rows)
        return ga_err_set(err, GA_ERR_ARG,
                          "hybrid CUDA backend: a decode batch of %d rows (max_batch %d)", nb,
                          h->max_batch);
    int need = 0;
    ga_status st = GA_OK;
    for (int i = 0; i < nb && !st; i++) {
        st = continue_at(h, seqs[i], pos[i], err);
        need = pos[i] + 1 > need ? pos[i] + 1 : need;
    }
    if (st) return st;
    for (int i = 0; i < nb; i++)
        h->seq_pos[seqs[i]] = -1;
    int bucket = 0;
    while (bucket + 1 < h->g.n_kv_buckets && (GA_KV_BUCKET0 << bucket) < need)
        bucket++;
    const int bound =
        GA_KV_BUCKET0 << bucket < h->max_context ? GA_KV_BUCKET0 << bucket : h->max_context;
    const pass p = {.rows = nb, .decode = true, .max_kv = bound};
    if ((st = stage(h, &p, seqs, pos, tokens, err))) return st;
    const int slot = nb * h->g.n_kv_buckets + bucket;
    if (h->g.graphs[slot]) {
        GA_CUDA_CHECK(cudaGraphLaunch(h->g.graphs[slot], h->g.stream));
        return GA_OK;
    }
    st = decode_body(h, nb, bound, err);
    if (!st) st = capture_graph(h, nb, bound, slot, err);
    return st;
}

static void step_done(ga_cuda_hyb *h, const int *seqs, const int *pos, int nb) {
    for (int i = 0; i < nb; i++)
        h->seq_pos[seqs[i]] = pos[i] + 1;
}

ga_status ga_cuda_hyb_decode_batch(ga_backend *b, const int *seqs, const int *pos,
                                   const int32_t *tokens, int nb, float *logits, ga_err *err) {
    ga_cuda_hyb *h = b->impl;
    if (nb <= 0) return GA_OK;
    ga_status st = run_step(h, seqs, pos, tokens, nb, err);
    if (st) return st;
    if (logits)
        GA_CUDA_CHECK(cudaMemcpyAsync(logits, h->logits, (size_t)nb * h->V * sizeof(float),
                                      cudaMemcpyDeviceToHost, h->g.stream));
    /* also keeps the pinned staging from being rewritten while the copies are pending */
    GA_CUDA_CHECK(cudaStreamSynchronize(h->g.stream));
    step_done(h, seqs, pos, nb);
    return GA_OK;
}

/* The step, then token selection on the device (ga_sample_topk, src/engine/sampler.h's
 * definition, as ga_cuda_decode_sample): only nb ids come back. Row i's draw uses position
 * pos[i] + 1 (d_pos holds pos[i]), as the session's host fallback does. */
ga_status ga_cuda_hyb_decode_sample(ga_backend *b, const int *seqs, const int *pos,
                                    const int32_t *tokens, int nb, const ga_sampling *sp,
                                    const uint64_t *streams, int32_t *next, ga_err *err) {
    ga_cuda_hyb *h = b->impl;
    ga_cuda *g = &h->g;
    if (nb <= 0) return GA_OK;
    ga_status st = run_step(h, seqs, pos, tokens, nb, err);
    if (st) return st;
    const bool greedy = !sp || sp->temperature <= 0.0f || sp->top_k == 1;
    if (!greedy) {
        memcpy(g->h_streams, streams, (size_t)nb * sizeof(uint64_t));
        GA_CUDA_CHECK(cudaMemcpyAsync(g->d_streams, g->h_streams, (size_t)nb * sizeof(uint64_t),
                                      cudaMemcpyHostToDevice, g->stream));
    }
    st = ga_sample_topk(h->logits, nb, h->V, greedy ? NULL : sp, g->d_streams, h->d_pos,
                        g->samp_scratch, g->d_next, g->stream, err);
    if (st) return st;
    GA_CUDA_CHECK(cudaMemcpyAsync(g->h_next, g->d_next, (size_t)nb * sizeof(int32_t),
                                  cudaMemcpyDeviceToHost, g->stream));
    GA_CUDA_CHECK(cudaStreamSynchronize(g->stream));
    memcpy(next, g->h_next, (size_t)nb * sizeof(int32_t));
    step_done(h, seqs, pos, nb);
    return GA_OK;
}
