/*
 * The CPU reference backend: the whole Qwen3 (gated-attention) decoder in fp32, with a
 * fp32 KV cache: one slot of max_context tokens per sequence, or (paged mode) blocks of
 * block_size tokens from one pool, found through the session's block tables. It is the definition
 * the CUDA backend is tested against, so it follows the model text literally: x = embed[tokens] per
 * layer: h = rmsnorm(x); qg = h Wq^T (+b); k, v likewise; split qg per KV group into queries and
 * raw gate; q, k <- per-head rmsnorm (q_norm/k_norm), RoPE; causal GQA; gate; x += o_proj(attn); x
 * += down(silu(gate(rmsnorm(x))) * up(rmsnorm(x))) logits = lm_head(rmsnorm(x))
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/backend.h"
#include "core/rope.h"
#include "cpu_attention.h"
#include "cpu_weights.h"
#include "cpu_ops.h"

typedef struct cpu_layer {
    float *in_norm, *post_norm;    /* (hidden) */
    float *wq, *bq;                /* (q_rows, hidden), (q_rows) */
    float *wk, *bk, *wv, *bv;      /* (n_kv*hd, hidden), (n_kv*hd) */
    float *wo, *bo;                /* (hidden, n_heads*hd), (hidden) */
    float *q_norm, *k_norm;        /* (hd) or NULL */
    float *w_gate, *w_up, *w_down; /* (inter, hidden) x2, (hidden, inter) */
} cpu_layer;

typedef struct cpu_backend {
    ga_backend base;
    const ga_model *m;
    ga_config c;
    ga_pool *pool;
    float *embed, *final_norm, *lm_head; /* lm_head == embed when tied */
    cpu_layer *layers;
    float *cos_tab, *sin_tab; /* (max_context, hd/2) */
    /* slots: (max_batch, n_layers, n_kv, max_context, hd);
     * paged: (n_blocks, n_layers, n_kv, block_size, hd), block b at b * block_pitch */
    float *k_cache, *v_cache;
    int max_context, max_batch;
    const int32_t *const *tables; /* paged: the session's block table per sequence, or NULL */
    int block_size;
    size_t block_pitch; /* floats per block: n_layers * n_kv * block_size * hd */
    float **owned;      /* every converted weight, for free() */
    int n_owned;
} cpu_backend;

/* fp32 copy of t (NULL for NULL), owned by the backend (freed with it). */
static float *convert(cpu_backend *b, const ga_tensor *t, ga_err *err, ga_status *st) {
    if (!t || *st) return NULL;
    float *p = ga_cpu_weight_f32(t, err, st);
    if (p) b->owned[b->n_owned++] = p;
    return p;
}

static void cpu_free(ga_backend *base) {
    cpu_backend *b = (cpu_backend *)base;
    if (!b) return;
    for (int i = 0; i < b->n_owned; i++)
        free(b->owned[i]);
    free(b->owned);
    free(b->layers);
    free(b->cos_tab);
    free(b->sin_tab);
    free(b->k_cache);
    free(b->v_cache);
    ga_pool_free(b->pool);
    free(b);
}

static size_t cache_off(const cpu_backend *b, int seq, int layer) {
    return (((size_t)seq * b->c.n_layers + layer) * b->c.n_kv_heads) * b->max_context *
           b->c.head_dim;
}

/* Where layer l's K (or V) of sequence seq at position p goes, and the pitch between its KV
 * heads' rows. */
static size_t kv_slot(const cpu_backend *b, int seq, int l, int p, size_t *pitch) {
    const size_t hd = (size_t)b->c.head_dim;
    if (!b->tables) {
        *pitch = (size_t)b->max_context * hd;
        return cache_off(b, seq, l) + (size_t)p * hd;
    }
    const size_t bs = (size_t)b->block_size;
    *pitch = bs * hd;
    return (size_t)b->tables[seq][p / b->block_size] * b->block_pitch +
           (size_t)l * b->c.n_kv_heads * bs * hd + (size_t)(p % b->block_size) * hd;
}

/* Scratch for one forward of T tokens. */
typedef struct fwd_buf {
    float *x, *h, *qg, *k, *v, *q, *gate, *att, *o, *mg, *mu;
} fwd_buf;

static void buf_free(fwd_buf *f) {
    free(f->x);
    free(f->h);
    free(f->qg);
    free(f->k);
    free(f->v);
    free(f->q);
    free(f->gate);
    free(f->att);
    free(f->o);
    free(f->mg);
    free(f->mu);
}

static int buf_alloc(fwd_buf *f, const ga_config *c, int T) {
    size_t H = c->hidden_size, QR = ga_config_q_rows(c), KV = (size_t)c->n_kv_heads * c->head_dim;
    size_t QH = (size_t)c->n_heads * c->head_dim, GD = ga_config_gate_dim(c),
           I = c->intermediate_size;
    memset(f, 0, sizeof *f);
    f->x = malloc(T * H * sizeof(float));
    f->h = malloc(T * H * sizeof(float));
    f->qg = malloc(T * QR * sizeof(float));
    f->k = malloc(T * KV * sizeof(float));
    f->v = malloc(T * KV * sizeof(float));
    f->q = malloc(T * QH * sizeof(float));
    f->gate = malloc(T * (GD ? GD : 1) * sizeof(float));
    f->att = malloc(T * QH * sizeof(float));
    f->o = malloc(T * H * sizeof(float));
    f->mg = malloc(T * I * sizeof(float));
    f->mu = malloc(T * I * sizeof(float));
    if (!f->x || !f->h || !f->qg || !f->k || !f->v || !f->q || !f->gate || !f->att || !f->o ||
        !f->mg || !f->mu) {
        buf_free(f);
        return -1;
    }
    return 0;
}

/* Gate statistics of one layer for the capture: mean sigmoid and share below 0.1. */
static void gate_stats(const float *gate, size_t n, ga_layer_metrics *m) {
    double sum;
    size_t below;
    ga_cpu_gate_stats(gate, n, GA_GATE_LOW_THRESHOLD, &sum, &below);
    m->gate_mean = sum / (double)n;
    m->gate_below_0_1 = (double)below / (double)n;
}

static ga_status cpu_forward(ga_backend *base, int seq, int pos0, const int32_t *tokens, int T,
                             bool all_positions, float *logits, ga_attn_capture *cap, ga_err *err) {
    cpu_backend *b = (cpu_backend *)base;
    const ga_config *c = &b->c;
    int H = c->hidden_size, hd = c->head_dim, nh = c->n_heads, nkv = c->n_kv_heads;
    const ga_gate_layout gl = ga_gate_layout_of(c);
    int QR = ga_gate_layout_q_rows(&gl), GD = ga_gate_layout_gate_dim(&gl);
    int KV = nkv * hd, I = c->intermediate_size;
    fwd_buf f;
    if (buf_alloc(&f, c, T))
        return ga_err_set(err, GA_ERR_OOM, "CPU backend: out of memory for %d tokens", T);
    ga_cpu_embed(f.x, b->embed, tokens, T, H);

    ga_status st = GA_OK;
    for (int l = 0; l < c->n_layers && !st; l++) {
        const cpu_layer *w = &b->layers[l];
        for (int t = 0; t < T; t++)
            ga_cpu_rmsnorm(f.h + (size_t)t * H, f.x + (size_t)t * H, w->in_norm, H,
                           c->rms_norm_eps);
        ga_cpu_matmul(b->pool, f.qg, f.h, w->wq, w->bq, T, H, QR);
        ga_cpu_matmul(b->pool, f.k, f.h, w->wk, w->bk, T, H, KV);
        ga_cpu_matmul(b->pool, f.v, f.h, w->wv, w->bv, T, H, KV);
        /* Attention reads layer l of the sequence: its slot, or every block's layer l. */
        const size_t l_off =
            b->tables ? (size_t)l * nkv * b->block_size * hd : cache_off(b, seq, l);
        const float *kc = b->k_cache + l_off, *vc = b->v_cache + l_off;
        for (int t = 0; t < T; t++) {
            int p = pos0 + t;
            size_t pitch, at = kv_slot(b, seq, l, p, &pitch);
            const float *cr = b->cos_tab + (size_t)p * (hd / 2),
                        *sr = b->sin_tab + (size_t)p * (hd / 2);
            ga_cpu_qk_args qa = {.layout = &gl,
                                 .qg = f.qg + (size_t)t * QR,
                                 .k = f.k + (size_t)t * KV,
                                 .v = f.v + (size_t)t * KV,
                                 .q_norm = w->q_norm,
                                 .k_norm = w->k_norm,
                                 .cos_row = cr,
                                 .sin_row = sr,
                                 .eps = c->rms_norm_eps,
                                 .q_out = f.q + (size_t)t * nh * hd,
                                 .gate_out = GD ? f.gate + (size_t)t * GD : NULL,
                                 .k_out = b->k_cache + at,
                                 .v_out = b->v_cache + at,
                                 .kv_pitch = pitch};
            ga_cpu_qk_prep(&qa);
        }
        ga_cpu_attn_args aa = {
            .q = f.q,
            .k = kc,
            .v = vc,
            .gate = GD ? f.gate : NULL,
            .out = f.att,
            .T = T,
            .pos0 = pos0,
            .n_heads = nh,
            .n_kv_heads = nkv,
            .hd = hd,
            .kv_stride = b->tables ? b->block_size : b->max_context,
            .table = b->tables ? b->tables[seq] : NULL,
            .block_pitch = b->block_pitch,
            .gate_dim = GD,
            .gate_mode = c->gate,
            .scale = 1.0f / sqrtf((float)hd),
        };
        if (cap) {
            aa.map = cap->maps[l];
            aa.res = cap->res;
            aa.head = cap->head;
            aa.first_share = &cap->metrics[l].first_token_share;
            if (GD) gate_stats(f.gate, (size_t)T * GD, &cap->metrics[l]);
        }
        if (ga_cpu_attention(b->pool, &aa)) {
            st = ga_err_set(err, GA_ERR_OOM, "CPU backend: out of memory in attention");
            break;
        }
        ga_cpu_matmul(b->pool, f.o, f.att, w->wo, w->bo, T, nh * hd, H);
        for (size_t i = 0; i < (size_t)T * H; i++)
            f.x[i] += f.o[i];
        for (int t = 0; t < T; t++)
            ga_cpu_rmsnorm(f.h + (size_t)t * H, f.x + (size_t)t * H, w->post_norm, H,
                           c->rms_norm_eps);
        ga_cpu_matmul(b->pool, f.mg, f.h, w->w_gate, NULL, T, H, I);
        ga_cpu_matmul(b->pool, f.mu, f.h, w->w_up, NULL, T, H, I);
        ga_cpu_swiglu(f.mg, f.mg, f.mu, (size_t)T * I);
        ga_cpu_matmul(b->pool, f.o, f.mg, w->w_down, NULL, T, I, H);
        for (size_t i = 0; i < (size_t)T * H; i++)
            f.x[i] += f.o[i];
    }
    if (!st && logits) {
        int first = all_positions ? 0 : T - 1, n = T - first;
        for (int t = first; t < T; t++)
            ga_cpu_rmsnorm(f.h + (size_t)t * H, f.x + (size_t)t * H, b->final_norm, H,
                           c->rms_norm_eps);
        ga_cpu_matmul(b->pool, logits, f.h + (size_t)first * H, b->lm_head, NULL, n, H,
                      c->vocab_size);
    }
    buf_free(&f);
    return st;
}

static ga_status cpu_decode_batch(ga_backend *base, const int *seqs, const int *pos,
                                  const int32_t *tokens, int nb, float *logits, ga_err *err) {
    const cpu_backend *b = (const cpu_backend *)base;
    for (int i = 0; i < nb; i++) {
        ga_status st = cpu_forward(base, seqs[i], pos[i], tokens + i, 1, false,
                                   logits ? logits + (size_t)i * b->c.vocab_size : NULL, NULL, err);
        if (st) return st;
    }
    return GA_OK;
}

/* A mixed step (backend.h's step_mixed): the decode rows, then the pieces. Every row of the
 * CPU backend is computed on its own, so this is the two calls' arithmetic exactly; what the
 * hook gives is the scheduler's mixed steps on the CPU, where tests can check that a request's
 * tokens do not depend on the work it shares a step with. dnext is never asked (no
 * decode_sample: the session samples on the host). */
static ga_status cpu_step_mixed(ga_backend *base, int nd, const int *dseqs, const int *dpos,
                                const int32_t *dtokens, const ga_sampling *sp,
                                const uint64_t *streams, int32_t *dnext, float *dlogits, int np,
                                const int *pseqs, const int *ppos0, const int32_t *ptokens,
                                const int *poff, float *plogits, ga_err *err) {
    (void)sp;
    (void)streams;
    (void)dnext;
    const cpu_backend *b = (const cpu_backend *)base;
    const size_t V = (size_t)b->c.vocab_size;
    ga_status st = cpu_decode_batch(base, dseqs, dpos, dtokens, nd, dlogits, err);
    for (int i = 0; i < np && !st; i++)
        st = cpu_forward(base, pseqs[i], ppos0[i], ptokens + poff[i], poff[i + 1] - poff[i], false,
                         plogits ? plogits + (size_t)i * V : NULL, NULL, err);
    return st;
}

static ga_status cpu_paged_init(ga_backend *base, int n_blocks, int block_size,
                                const int32_t *const *tables, ga_err *err) {
    cpu_backend *b = (cpu_backend *)base;
    const ga_config *c = &b->c;
    size_t pitch = (size_t)c->n_layers * c->n_kv_heads * block_size * c->head_dim;
    free(b->k_cache);
    free(b->v_cache);
    b->k_cache = malloc((size_t)n_blocks * pitch * sizeof(float));
    b->v_cache = malloc((size_t)n_blocks * pitch * sizeof(float));
    if (!b->k_cache || !b->v_cache)
        return ga_err_set(err, GA_ERR_OOM,
                          "CPU backend: out of memory for a paged KV cache of %.1f MiB (%d blocks "
                          "of %d tokens); lower --kv-blocks / --kv-memory",
                          2.0 * n_blocks * pitch * sizeof(float) / 1048576.0, n_blocks, block_size);
    b->tables = tables;
    b->block_size = block_size;
    b->block_pitch = pitch;
    return GA_OK;
}

ga_status ga_cpu_backend_create(const ga_model *m, const ga_session_opts *opts, int max_context,
                                int max_batch, ga_backend **out, ga_err *err) {
    *out = NULL;
    const ga_config *c = &m->cfg;
    cpu_backend *b = calloc(1, sizeof *b);
    if (!b) return ga_err_set(err, GA_ERR_OOM, "out of memory");
    b->base = (ga_backend){.name = "cpu",
                           .device = GA_DEVICE_CPU,
                           .forward = cpu_forward,
                           .decode_batch = cpu_decode_batch,
                           .step_mixed = cpu_step_mixed,
                           .free = cpu_free,
                           .impl = b,
                           .paged_init = cpu_paged_init,
                           .kv_token_bytes = 2 * sizeof(float) * (size_t)c->n_layers *
                                             c->n_kv_heads * c->head_dim};
    b->m = m;
    b->c = *c;
    b->max_context = max_context;
    b->max_batch = max_batch;
    ga_status st = GA_OK;
    b->pool = ga_pool_create(opts ? opts->n_threads : 0);
    b->owned = calloc((size_t)c->n_layers * 16 + 4, sizeof(float *));
    b->layers = calloc((size_t)c->n_layers, sizeof *b->layers);
    if (!b->pool || !b->owned || !b->layers) {
        cpu_free(&b->base);
        return ga_err_set(err, GA_ERR_OOM, "out of memory");
    }
    b->embed = convert(b, m->embed, err, &st);
    b->final_norm = convert(b, m->final_norm, err, &st);
    b->lm_head = c->tie_word_embeddings ? b->embed : convert(b, m->lm_head, err, &st);
    for (int l = 0; l < c->n_layers; l++) {
        const ga_layer_w *w = &m->layers[l];
        cpu_layer *d = &b->layers[l];
        d->in_norm = convert(b, w->input_norm, err, &st);
        d->post_norm = convert(b, w->post_norm, err, &st);
        d->wq = convert(b, w->q_proj, err, &st);
        d->bq = convert(b, w->q_bias, err, &st);
        d->wk = convert(b, w->k_proj, err, &st);
        d->bk = convert(b, w->k_bias, err, &st);
        d->wv = convert(b, w->v_proj, err, &st);
        d->bv = convert(b, w->v_bias, err, &st);
        d->wo = convert(b, w->o_proj, err, &st);
        d->bo = convert(b, w->o_bias, err, &st);
        d->q_norm = convert(b, w->q_norm, err, &st);
        d->k_norm = convert(b, w->k_norm, err, &st);
        d->w_gate = convert(b, w->gate_proj, err, &st);
        d->w_up = convert(b, w->up_proj, err, &st);
        d->w_down = convert(b, w->down_proj, err, &st);
        if (opts && opts->progress)
            opts->progress(opts->progress_user, (float)(l + 1) / c->n_layers);
    }
    if (!st) st = ga_rope_tables(c, c->head_dim, max_context, &b->cos_tab, &b->sin_tab, err);
    if (!st && !ga_opts_paged(opts)) { /* paged: the blocks come with paged_init */
        size_t per = (size_t)max_batch * c->n_layers * c->n_kv_heads * max_context * c->head_dim;
        b->k_cache = malloc(per * sizeof(float));
        b->v_cache = malloc(per * sizeof(float));
        if (!b->k_cache || !b->v_cache)
            st = ga_err_set(err, GA_ERR_OOM,
                            "CPU backend: out of memory for a KV cache of %.1f MiB (%d sequences x "
                            "%d tokens); lower the context or batch",
                            2.0 * per * sizeof(float) / 1048576.0, max_batch, max_context);
    }
    if (st) {
        cpu_free(&b->base);
        return st;
    }
    *out = &b->base;
    return GA_OK;
}
