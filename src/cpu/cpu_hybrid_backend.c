/*
 * The CPU backend for the hybrid families (Qwen3-Next, Qwen3.5, Qwen3.6; issue 15): the bound
 * tensors (src/core/model_hybrid.c) converted to fp32 once at creation, as the Qwen3 CPU backend
 * does, and run through the reference forward of cpu_hybrid.c with one ga_hyb_state per
 * sequence (the conv and recurrent state of every DeltaNet layer).
 *
 * The K/V of the full-attention layers live either in the state (slots: max_context positions
 * per sequence) or, when the session asks for a paged cache (paged_init), in blocks of
 * block_size positions from one pool, read through the session's block table of the sequence
 * as the Qwen3 CPU backend reads them: a block holds block_size positions of every
 * full-attention layer, so kv_token_bytes counts those layers only. The DeltaNet states stay a
 * fixed size per sequence beside the blocks, allocated once for max_batch sequences at creation
 * (kv_fixed_bytes: what a session sizing its blocks from kv_memory takes off first). Either way
 * the numbers are the same floats in the same order, so paged and slot results are bit-equal.
 *
 * A recurrent state cannot rewind: a sequence continues where it stopped or starts at 0, which
 * zeroes its conv and recurrent states (a reset or a preempted sequence recomputed).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/backend.h"
#include "cpu_hybrid.h"
#include "cpu_weights.h"

typedef struct hyb_backend {
    ga_backend base;
    ga_config c;
    ga_hyb_weights w;
    ga_hyb_layer_w *lw;    /* (n_layers) */
    ga_hyb_mlp_w *experts; /* (n_moe_layers * num_experts) */
    ga_hyb_state **state;  /* (max_batch) */
    /* paged (paged_init): K and V pools of blocks, the session's block tables */
    float *pk, *pv;
    const int32_t *const *tables;
    int block_size;
    bool paged;    /* states made without K/V (the session asked for a paged cache) */
    float *rows;   /* (max_context, vocab): logits of a forward before the last row */
    float **owned; /* every converted weight, for free() */
    int n_owned, cap_owned, max_batch;
} hyb_backend;

static void hyb_free(ga_backend *base) {
    hyb_backend *b = (hyb_backend *)base;
    if (!b) return;
    for (int i = 0; i < b->n_owned; i++)
        free(b->owned[i]);
    for (int i = 0; b->state && i < b->max_batch; i++)
        ga_hyb_state_free(b->state[i]);
    free(b->state);
    free(b->owned);
    free(b->lw);
    free(b->experts);
    free(b->rows);
    free(b->pk);
    free(b->pv);
    free(b);
}

/* fp32 copy of t (NULL for NULL), every value checked finite as it is converted. */
static float *convert(hyb_backend *b, const ga_tensor *t, ga_err *err, ga_status *st) {
    if (!t || *st) return NULL;
    if (b->n_owned == b->cap_owned) {
        int cap = b->cap_owned ? 2 * b->cap_owned : 64;
        float **p = realloc(b->owned, (size_t)cap * sizeof *p);
        if (!p) {
            *st = ga_err_set(err, GA_ERR_OOM, "CPU backend: out of memory");
            return NULL;
        }
        b->owned = p;
        b->cap_owned = cap;
    }
    float *p = ga_cpu_weight_f32(t, err, st);
    if (p) b->owned[b->n_owned++] = p;
    return p;
}

/* The state of seq positioned at pos0: a fresh sequence at 0, else exactly where it stopped. */
static ga_status state_at(hyb_backend *b, int seq, int pos0, ga_err *err) {
    ga_hyb_state *s = b->state[seq];
    if (pos0 == 0) {
        ga_hyb_state_reset(s);
        return GA_OK;
    }
    if (ga_hyb_state_pos(s) != pos0)
        return ga_err_set(err, GA_ERR_ARG,
                          "hybrid CPU backend: sequence %d holds %d tokens, asked to continue at "
                          "%d (a DeltaNet state cannot rewind)",
                          seq, ga_hyb_state_pos(s), pos0);
    return GA_OK;
}

static ga_status hyb_forward(ga_backend *base, int seq, int pos0, const int32_t *tokens, int n,
                             bool all_positions, float *logits, ga_attn_capture *cap, ga_err *err) {
    hyb_backend *b = (hyb_backend *)base;
    ga_status st = state_at(b, seq, pos0, err);
    if (st) return st;
    if (b->tables) ga_hyb_state_page(b->state[seq], b->pk, b->pv, b->tables[seq], b->block_size);
    size_t V = (size_t)b->c.vocab_size;
    float *out = all_positions && logits ? logits : b->rows;
    if ((st = ga_hyb_forward_capture(&b->c, &b->w, b->state[seq], tokens, n, out, cap, err)))
        return st;
    if (logits && !all_positions) memcpy(logits, out + (size_t)(n - 1) * V, V * sizeof *logits);
    return GA_OK;
}

static ga_status hyb_decode_batch(ga_backend *base, const int *seqs, const int *pos,
                                  const int32_t *tokens, int nb, float *logits, ga_err *err) {
    size_t V = (size_t)((hyb_backend *)base)->c.vocab_size;
    for (int i = 0; i < nb; i++) {
        ga_status st = hyb_forward(base, seqs[i], pos[i], tokens + i, 1, true,
                                   logits ? logits + (size_t)i * V : NULL, NULL, err);
        if (st) return st;
    }
    return GA_OK;
}

static ga_status hyb_paged_init(ga_backend *base, int n_blocks, int block_size,
                                const int32_t *const *tables, ga_err *err) {
    hyb_backend *b = (hyb_backend *)base;
    if (!b->paged)
        return ga_err_set(err, GA_ERR_ARG,
                          "hybrid CPU backend: paged_init on a backend made with slots");
    size_t per = ga_hyb_block_floats(&b->c, block_size);
    free(b->pk);
    free(b->pv);
    b->pk = malloc((size_t)n_blocks * per * sizeof(float));
    b->pv = malloc((size_t)n_blocks * per * sizeof(float));
    b->tables = NULL;
    if (!b->pk || !b->pv)
        return ga_err_set(err, GA_ERR_OOM,
                          "hybrid CPU backend: out of memory for a paged KV cache of %.1f MiB (%d "
                          "blocks of %d tokens); lower --kv-blocks / --kv-memory",
                          2.0 * n_blocks * per * sizeof(float) / 1048576.0, n_blocks, block_size);
    b->tables = tables;
    b->block_size = block_size;
    return GA_OK;
}

static void mlp_of(hyb_backend *b, ga_hyb_mlp_w *d, const ga_tensor *g, const ga_tensor *u,
                   const ga_tensor *dn, ga_err *err, ga_status *st) {
    d->gate = convert(b, g, err, st);
    d->up = convert(b, u, err, st);
    d->down = convert(b, dn, err, st);
}

static ga_status convert_layer(hyb_backend *b, const ga_model *m, int l, ga_hyb_mlp_w *ex,
                               ga_err *err) {
    const ga_config *c = &m->cfg;
    const ga_hyb_layer_t *t = &m->hyb[l];
    ga_hyb_layer_w *d = &b->lw[l];
    ga_status st = GA_OK;
    d->input_norm = convert(b, t->input_norm, err, &st);
    d->post_norm = convert(b, t->post_norm, err, &st);
    d->attn = (ga_hyb_attn_w){convert(b, t->q, err, &st),      convert(b, t->k, err, &st),
                              convert(b, t->v, err, &st),      convert(b, t->q_norm, err, &st),
                              convert(b, t->k_norm, err, &st), convert(b, t->o, err, &st)};
    ga_hyb_gdn_w *g = &d->gdn;
    g->in_qkv = convert(b, t->in_qkv, err, &st);
    g->in_z = convert(b, t->in_z, err, &st);
    g->in_b = convert(b, t->in_b, err, &st);
    g->in_a = convert(b, t->in_a, err, &st);
    g->in_qkvz = convert(b, t->in_qkvz, err, &st);
    g->in_ba = convert(b, t->in_ba, err, &st);
    g->conv = convert(b, t->conv, err, &st); /* (conv_dim, 1, K) is (conv_dim, K) in memory */
    g->dt_bias = convert(b, t->dt_bias, err, &st);
    g->A_log = convert(b, t->A_log, err, &st);
    g->norm = convert(b, t->norm, err, &st);
    g->out = convert(b, t->out, err, &st);
    if (!ex) {
        mlp_of(b, &d->mlp, t->gate, t->up, t->down, err, &st);
        return st;
    }
    int E = c->hybrid.num_experts;
    size_t Ie = (size_t)c->hybrid.moe_intermediate_size, H = (size_t)c->hidden_size;
    if (t->experts) {
        for (int e = 0; e < E; e++)
            mlp_of(b, &ex[e], t->experts[3 * e], t->experts[3 * e + 1], t->experts[3 * e + 2], err,
                   &st);
    } else { /* packed: gate_up (E, 2Ie, H) holds expert e's gate rows then its up rows */
        const float *gu = convert(b, t->exp_gate_up, err, &st);
        const float *dn = convert(b, t->exp_down, err, &st);
        for (int e = 0; !st && e < E; e++)
            ex[e] = (ga_hyb_mlp_w){gu + (size_t)e * 2 * Ie * H, gu + ((size_t)e * 2 + 1) * Ie * H,
                                   dn + (size_t)e * H * Ie};
    }
    d->moe.router = convert(b, t->router, err, &st);
    d->moe.experts = ex;
    mlp_of(b, &d->moe.shared, t->sh_gate, t->sh_up, t->sh_down, err, &st);
    d->moe.shared_gate = convert(b, t->sh_scale, err, &st);
    return st;
}

ga_status ga_cpu_hybrid_backend_create(const ga_model *m, const ga_session_opts *opts,
                                       int max_context, int max_batch, ga_backend **out,
                                       ga_err *err) {
    *out = NULL;
    const ga_config *c = &m->cfg;
    ga_status st = ga_hyb_check(c, err);
    if (st) return st;
    if (!m->hyb) return ga_err_set(err, GA_ERR_ARG, "hybrid CPU backend: the model is not bound");
    hyb_backend *b = calloc(1, sizeof *b);
    if (!b) return ga_err_set(err, GA_ERR_OOM, "out of memory");
    /* A model without full-attention layers has no K/V at all: nothing to page (and a block
     * of 0 bytes would size no cache), so it keeps the slots of fixed states. */
    const int n_full = ga_hyb_full_layers(c);
    b->paged = ga_opts_paged(opts) && n_full > 0;
    b->base = (ga_backend){.name = "cpu",
                           .device = GA_DEVICE_CPU,
                           .forward = hyb_forward,
                           .decode_batch = hyb_decode_batch,
                           .free = hyb_free,
                           .impl = b,
                           .paged_init = n_full > 0 ? hyb_paged_init : NULL,
                           .kv_token_bytes =
                               2 * sizeof(float) * (size_t)n_full * c->n_kv_heads * c->head_dim,
                           .kv_fixed_bytes = (size_t)max_batch * ga_hyb_state_fixed_bytes(c)};
    b->c = *c;
    b->max_batch = max_batch;
    int E = c->hybrid.moe ? c->hybrid.num_experts : 0;
    b->lw = calloc((size_t)c->n_layers, sizeof *b->lw);
    b->experts = calloc((size_t)(E ? E : 1) * (c->hybrid.n_moe_layers + 1), sizeof *b->experts);
    b->state = calloc((size_t)max_batch, sizeof *b->state);
    b->rows = malloc((size_t)max_context * c->vocab_size * sizeof *b->rows);
    if (!b->lw || !b->experts || !b->state || !b->rows) {
        hyb_free(&b->base);
        return ga_err_set(err, GA_ERR_OOM,
                          "hybrid CPU backend: out of memory for %d sequences of %d tokens",
                          max_batch, max_context);
    }
    float *embed = convert(b, m->embed, err, &st);
    const float *final_norm = convert(b, m->final_norm, err, &st);
    const float *lm_head = c->tie_word_embeddings ? NULL : convert(b, m->lm_head, err, &st);
    int k = 0;
    for (int l = 0; !st && l < c->n_layers; l++) {
        bool moe = c->hybrid.moe && c->hybrid.layer_is_moe[l];
        st = convert_layer(b, m, l, moe ? b->experts + (size_t)E * k++ : NULL, err);
        if (opts && opts->progress)
            opts->progress(opts->progress_user, (float)(l + 1) / c->n_layers);
    }
    b->w = (ga_hyb_weights){embed, b->lw, final_norm, lm_head};
    for (int i = 0; !st && i < max_batch; i++)
        st = b->paged ? ga_hyb_state_create_paged(c, max_context, &b->state[i], err)
                      : ga_hyb_state_create(c, max_context, &b->state[i], err);
    if (st) {
        hyb_free(&b->base);
        return st;
    }
    *out = &b->base;
    return GA_OK;
}
