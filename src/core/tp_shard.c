/*
 * Tensor parallelism's split of a Qwen3 layer (tp_shard.h says which rows and columns each
 * rank takes and why they are contiguous), and the per-rank host model a backend uploads.
 */
#include "tp_shard.h"

#include <stdlib.h>
#include <string.h>

#include "gate_layout.h"
#include "tensor.h"

ga_status ga_tp_check(const ga_config *c, int n, ga_err *err) {
    if (n < 1 || n > GA_TP_MAX)
        return ga_err_set(err, GA_ERR_ARG,
                          "tensor parallelism over %d ranks: 1 to %d are supported", n, GA_TP_MAX);
    if (c->arch != GA_ARCH_QWEN3)
        return ga_err_set(err, GA_ERR_UNSUPPORTED,
                          "tensor parallelism is not supported for hybrid (Gated DeltaNet) models "
                          "yet (issue 15): run them with --tp 1");
    if (c->n_heads % n || c->n_kv_heads % n || c->intermediate_size % n)
        return ga_err_set(err, GA_ERR_ARG,
                          "tensor parallelism over %d ranks needs heads (%d), KV heads (%d) and "
                          "intermediate size (%d) divisible by %d",
                          n, c->n_heads, c->n_kv_heads, c->intermediate_size, n);
    return GA_OK;
}

ga_status ga_tp_shard_of(const ga_config *c, int n, int rank, ga_tp_shard *out, ga_err *err) {
    ga_status st = ga_tp_check(c, n, err);
    if (st) return st;
    if (rank < 0 || rank >= n)
        return ga_err_set(err, GA_ERR_ARG, "tensor-parallel rank %d of %d", rank, n);
    memset(out, 0, sizeof *out);
    out->rank = rank;
    out->n = n;
    out->cfg = *c;
    out->cfg.n_heads = c->n_heads / n;
    out->cfg.n_kv_heads = c->n_kv_heads / n;
    out->cfg.intermediate_size = c->intermediate_size / n;
    const ga_gate_layout L = ga_gate_layout_of(c);
    const int64_t kv_per = c->n_kv_heads / n, hd = c->head_dim;
    out->q_rows = kv_per * ga_gate_layout_group_rows(&L);
    out->q_row0 = rank * out->q_rows;
    out->kv_rows = kv_per * hd;
    out->kv_row0 = rank * out->kv_rows;
    out->o_cols = (int64_t)out->cfg.n_heads * hd;
    out->o_col0 = rank * out->o_cols;
    out->i_rows = out->cfg.intermediate_size;
    out->i_row0 = rank * out->i_rows;
    return GA_OK;
}

uint64_t ga_tp_rank_weight_bytes(const ga_config *c, int n, int rank) {
    ga_tp_shard sh;
    if (ga_tp_shard_of(c, n, rank, &sh, NULL)) return 0;
    const uint64_t H = (uint64_t)c->hidden_size, V = (uint64_t)c->vocab_size;
    uint64_t b = 2 * V * H;
    if (!c->tie_word_embeddings && rank == 0) b += 2 * V * H;
    const uint64_t per_layer = (uint64_t)(sh.q_rows + 2 * sh.kv_rows) * H +
                               H * (uint64_t)sh.o_cols + 3 * (uint64_t)sh.i_rows * H;
    b += 2 * per_layer * (uint64_t)c->n_layers;
    b += 4 * H * (2 * (uint64_t)c->n_layers + 1);
    return b;
}

void ga_tp_slice_bf16(const ga_tensor *t, int64_t r0, int64_t nr, int64_t c0, int64_t nc,
                      uint16_t *dst) {
    const int64_t cols = t->ndim == 2 ? t->shape[1] : 0;
    for (int64_t r = 0; r < nr; r++)
        ga_tensor_read_bf16(t, (r0 + r) * cols + c0, nc, dst + r * nc);
}

/* The shard model and everything it allocated; m first, so a ga_model * is one of these. */
typedef struct tp_model {
    ga_model m;
    ga_layer_w *layers;
    ga_tensor *slices; /* n_slices used of cap */
    int n_slices, cap;
} tp_model;

/* A bf16 copy of rows [r0, r0+nr) x cols [c0, c0+nc) of t (a 1-D t: elements [c0, c0+nc)),
 * shaped (nr, nc) for a matrix or (nc) for a vector. NULL t gives NULL. */
static ga_status slice(tp_model *tm, const ga_tensor *t, int64_t r0, int64_t nr, int64_t c0,
                       int64_t nc, const ga_tensor **out, ga_err *err) {
    *out = NULL;
    if (!t) return GA_OK;
    if (tm->n_slices == tm->cap) return ga_err_set(err, GA_ERR_ARG, "tp_model: too many slices");
    const bool vec = t->ndim == 1;
    if (vec) nr = 1;
    uint16_t *d = malloc((size_t)(nr * nc) * 2);
    if (!d)
        return ga_err_set(err, GA_ERR_OOM, "out of host memory slicing %s for tensor parallelism",
                          t->name);
    if (vec)
        ga_tensor_read_bf16(t, c0, nc, d);
    else
        ga_tp_slice_bf16(t, r0, nr, c0, nc, d);
    ga_tensor *s = &tm->slices[tm->n_slices++];
    memset(s, 0, sizeof *s);
    s->name = t->name;
    s->dtype = GA_BF16;
    s->ndim = vec ? 1 : 2;
    s->shape[0] = vec ? nc : nr;
    s->shape[1] = vec ? 0 : nc;
    s->data = d;
    s->nbytes = (uint64_t)(nr * nc) * 2;
    s->file = "<tensor-parallel slice>";
    *out = s;
    return GA_OK;
}

ga_status ga_tp_model(const ga_model *m, int n, int rank, ga_model **out, ga_err *err) {
    *out = NULL;
    const ga_config *c = &m->cfg;
    ga_tp_shard sh;
    ga_status st = ga_tp_shard_of(c, n, rank, &sh, err);
    if (st) return st;
    if (!m->layers)
        return ga_err_set(err, GA_ERR_UNSUPPORTED, "tensor parallelism: %s has no Qwen3 layers",
                          m->name ? m->name : "the model");
    tp_model *tm = calloc(1, sizeof *tm);
    const int per_layer = 10; /* q, q_bias, k, k_bias, v, v_bias, o, gate, up, down */
    if (tm) {
        tm->cap = per_layer * c->n_layers;
        tm->layers = calloc((size_t)c->n_layers, sizeof *tm->layers);
        tm->slices = calloc((size_t)tm->cap, sizeof *tm->slices);
    }
    if (!tm || !tm->layers || !tm->slices) {
        ga_tp_model_free(tm ? &tm->m : NULL);
        return ga_err_set(err, GA_ERR_OOM, "out of host memory");
    }
    tm->m = *m;
    tm->m.cfg = sh.cfg;
    tm->m.layers = tm->layers;
    tm->m.hyb = NULL;
    tm->m.hyb_experts = NULL;
    const int64_t H = c->hidden_size;
    for (int l = 0; l < c->n_layers && !st; l++) {
        const ga_layer_w *w = &m->layers[l];
        ga_layer_w *d = &tm->layers[l];
        *d = *w; /* the replicated views: norms, q/k norm, o_bias */
        if ((st = slice(tm, w->q_proj, sh.q_row0, sh.q_rows, 0, H, &d->q_proj, err)) ||
            (st = slice(tm, w->q_bias, 0, 1, sh.q_row0, sh.q_rows, &d->q_bias, err)) ||
            (st = slice(tm, w->k_proj, sh.kv_row0, sh.kv_rows, 0, H, &d->k_proj, err)) ||
            (st = slice(tm, w->k_bias, 0, 1, sh.kv_row0, sh.kv_rows, &d->k_bias, err)) ||
            (st = slice(tm, w->v_proj, sh.kv_row0, sh.kv_rows, 0, H, &d->v_proj, err)) ||
            (st = slice(tm, w->v_bias, 0, 1, sh.kv_row0, sh.kv_rows, &d->v_bias, err)) ||
            (st = slice(tm, w->o_proj, 0, H, sh.o_col0, sh.o_cols, &d->o_proj, err)) ||
            (st = slice(tm, w->gate_proj, sh.i_row0, sh.i_rows, 0, H, &d->gate_proj, err)) ||
            (st = slice(tm, w->up_proj, sh.i_row0, sh.i_rows, 0, H, &d->up_proj, err)) ||
            (st = slice(tm, w->down_proj, 0, H, sh.i_row0, sh.i_rows, &d->down_proj, err)))
            break;
    }
    if (st) {
        ga_tp_model_free(&tm->m);
        return st;
    }
    *out = &tm->m;
    return GA_OK;
}

void ga_tp_model_free(ga_model *shard) {
    if (!shard) return;
    tp_model *tm = (tp_model *)shard;
    for (int i = 0; i < tm->n_slices; i++)
        free((void *)tm->slices[i].data);
    free(tm->slices);
    free(tm->layers);
    free(tm);
}
