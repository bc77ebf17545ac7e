/*
 * The hybrid model's bound tensors (src/core/model_hybrid.c) onto the device. Matrices become
 * bf16 through ga_cuda_upload_matrix (the Qwen3 backend's path: NaN/Inf refused, F32/F16
 * converted on the device); vectors stay fp32, the zero-centred norm weights stored as 1 + w.
 * Projections that read the same input are stacked into one matrix:
 *   full attention  q_proj (per head [query | gate], checkpoint order) | k_proj | v_proj
 *   DeltaNet        [q | k | v | z | b | a] with heads contiguous: Qwen3.5's in_proj_qkv | z |
 *                   b | a as they are; Qwen3-Next's in_proj_qkvz / in_proj_ba, grouped per key
 *                   head ([q | k | v_r | z_r], [b_r | a_r]), ungrouped here once by moving row
 *                   blocks (what fix_query_key_value_ordering and gdn_token in cpu_hybrid.c do to
 *                   the outputs every token; a row permutation of W permutes W x exactly)
 *   MLP             gate_proj | up_proj (dense, each expert, the shared expert)
 */
#include <stdlib.h>
#include <string.h>

#include "cuda_hybrid_internal.h"

typedef struct upl {
    ga_cuda_hyb *h;
    void *staging;
    ga_err *err;
    ga_status st;
} upl;

/* Row blocks parts[0..n) stacked into one new bf16 matrix (NULL parts skipped). */
static void *stacked(upl *u, const ga_tensor *const *parts, int n, const char *what) {
    if (u->st) return NULL;
    size_t elems = 0;
    for (int i = 0; i < n; i++)
        elems += parts[i] ? (size_t)ga_tensor_numel(parts[i]) : 0;
    void *d = NULL;
    if ((u->st = ga_cuda_dalloc(&d, elems * 2, what, u->err))) return NULL;
    size_t off = 0;
    for (int i = 0; i < n && !u->st; i++) {
        if (!parts[i]) continue;
        u->st = ga_cuda_upload_matrix(&u->h->g, parts[i], (uint16_t *)d + off, u->staging, u->err);
        off += (size_t)ga_tensor_numel(parts[i]);
    }
    return d;
}

static void *mat(upl *u, const ga_tensor *t, const char *what) {
    return t ? stacked(u, &t, 1, what) : NULL;
}

/* fp32 copy of a vector tensor, plus one when zc (a zero-centred norm's 1 + w). */
static float *vec(upl *u, const ga_tensor *t, bool zc) {
    if (u->st || !t) return NULL;
    const int64_t n = ga_tensor_numel(t);
    float *hb = malloc((size_t)n * sizeof *hb), *d = NULL;
    if (!hb) {
        u->st = ga_err_set(u->err, GA_ERR_OOM, "out of host memory converting %s", t->name);
        return NULL;
    }
    ga_tensor_read_f32(t, 0, n, hb);
    const int64_t bad = ga_f32_find_nonfinite(hb, n);
    if (bad >= 0) {
        u->st = ga_tensor_nonfinite_err(t, bad, u->err);
    } else {
        for (int64_t i = 0; zc && i < n; i++)
            hb[i] = (float)(1.0 + (double)hb[i]);
        u->st = ga_cuda_dalloc((void **)&d, (size_t)n * sizeof(float), t->name, u->err);
        if (!u->st && cudaMemcpy(d, hb, (size_t)n * sizeof(float), cudaMemcpyHostToDevice))
            u->st = ga_err_set(u->err, GA_ERR_CUDA, "copying %s to the GPU failed", t->name);
    }
    free(hb);
    return d;
}

/* Moves `rows` rows of H bf16 from row `from` of src to row `to` of dst (device to device). */
static void move_rows(upl *u, void *dst, int to, const void *src, int from, int rows) {
    if (u->st) return;
    const size_t row = (size_t)u->h->H * 2;
    if (cudaMemcpy((char *)dst + (size_t)to * row, (const char *)src + (size_t)from * row,
                   (size_t)rows * row, cudaMemcpyDeviceToDevice) != cudaSuccess)
        u->st = ga_err_set(u->err, GA_ERR_CUDA, "regrouping the DeltaNet projections failed");
}

/* Qwen3-Next's fused, per-key-head grouped projections into w_in's [q | k | v | z | b | a]. */
static void *ungroup(upl *u, const ga_hyb_layer_t *t) {
    ga_cuda_hyb *h = u->h;
    const int r = h->Hv / h->Hk, gq = 2 * h->dk + 2 * r * h->dv, rv = r * h->dv;
    void *d = NULL, *qkvz = mat(u, t->in_qkvz, "in_proj_qkvz"),
         *ba = mat(u, t->in_ba, "in_proj_ba");
    if (!u->st) u->st = ga_cuda_dalloc(&d, (size_t)h->P * h->H * 2, "in_proj", u->err);
    for (int k = 0; k < h->Hk; k++) {
        const int g = k * gq;
        move_rows(u, d, k * h->dk, qkvz, g, h->dk);                           /* q */
        move_rows(u, d, h->kd + k * h->dk, qkvz, g + h->dk, h->dk);           /* k */
        move_rows(u, d, 2 * h->kd + k * rv, qkvz, g + 2 * h->dk, rv);         /* v */
        move_rows(u, d, h->cd + k * rv, qkvz, g + 2 * h->dk + rv, rv);        /* z */
        move_rows(u, d, h->cd + h->vd + k * r, ba, k * 2 * r, r);             /* b */
        move_rows(u, d, h->cd + h->vd + h->Hv + k * r, ba, k * 2 * r + r, r); /* a */
    }
    cudaFree(qkvz);
    cudaFree(ba);
    return d;
}

static void layer(upl *u, int l) {
    ga_cuda_hyb *h = u->h;
    const ga_config *c = &h->cfg;
    const ga_hyb_layer_t *t = &h->model->hyb[l];
    hyb_dlayer *d = &h->L[l];
    d->input_norm = vec(u, t->input_norm, true);
    d->post_norm = vec(u, t->post_norm, true);
    if (c->hybrid.layer_is_linear[l]) {
        if (t->in_qkvz) {
            d->w_in = ungroup(u, t);
        } else {
            const ga_tensor *p[4] = {t->in_qkv, t->in_z, t->in_b, t->in_a};
            d->w_in = stacked(u, p, 4, "the fused DeltaNet in-projection");
        }
        d->w_out = mat(u, t->out, "out_proj");
        d->conv = vec(u, t->conv, false); /* (cd, 1, K) is (cd, K) in memory */
        d->dt_bias = vec(u, t->dt_bias, false);
        d->A_log = vec(u, t->A_log, false);
        d->gnorm = vec(u, t->norm, false); /* the gated norm's weight is plain */
    } else {
        const ga_tensor *p[3] = {t->q, t->k, t->v};
        d->w_qkv = stacked(u, p, 3, "the fused QKV weight");
        d->w_o = mat(u, t->o, "o_proj");
        d->q_norm = vec(u, t->q_norm, false);
        d->k_norm = vec(u, t->k_norm, false);
    }
    if (!(c->hybrid.moe && c->hybrid.layer_is_moe[l])) {
        const ga_tensor *p[2] = {t->gate, t->up};
        d->w_gu = stacked(u, p, 2, "the fused gate|up weight");
        d->w_down = mat(u, t->down, "down_proj");
        return;
    }
    d->w_router = mat(u, t->router, "the MoE router");
    if (t->experts) {
        const size_t eg = (size_t)2 * h->Ie * h->H, ed = (size_t)h->H * h->Ie;
        if (!u->st) u->st = ga_cuda_dalloc(&d->w_exp_gu, (size_t)h->E * eg * 2, "experts", u->err);
        if (!u->st)
            u->st = ga_cuda_dalloc(&d->w_exp_down, (size_t)h->E * ed * 2, "experts", u->err);
        for (int e = 0; e < h->E && !u->st; e++) {
            uint16_t *gu = (uint16_t *)d->w_exp_gu + (size_t)e * eg;
            u->st = ga_cuda_upload_matrix(&h->g, t->experts[3 * e], gu, u->staging, u->err);
            if (!u->st)
                u->st = ga_cuda_upload_matrix(&h->g, t->experts[3 * e + 1], gu + eg / 2, u->staging,
                                              u->err);
            if (!u->st)
                u->st = ga_cuda_upload_matrix(&h->g, t->experts[3 * e + 2],
                                              (uint16_t *)d->w_exp_down + (size_t)e * ed,
                                              u->staging, u->err);
        }
    } else { /* packed: gate_up (E, 2Ie, H) already holds each expert's gate rows | up rows */
        d->w_exp_gu = mat(u, t->exp_gate_up, "experts.gate_up_proj");
        d->w_exp_down = mat(u, t->exp_down, "experts.down_proj");
    }
    if (h->Is > 0) {
        const ga_tensor *p[2] = {t->sh_gate, t->sh_up};
        d->w_sh_gu = stacked(u, p, 2, "the shared expert's gate|up");
        d->w_sh_down = mat(u, t->sh_down, "the shared expert's down_proj");
        d->w_sh_gate = mat(u, t->sh_scale, "shared_expert_gate");
    }
}

ga_status ga_cuda_hyb_upload(ga_cuda_hyb *h, void (*progress)(void *, float), void *user,
                             ga_err *err) {
    const ga_model *m = h->model;
    upl u = {.h = h, .err = err};
    u.st = ga_cuda_dalloc(&u.staging, GA_CUDA_STAGING_BYTES, "the weight staging buffer", err);
    h->embed = mat(&u, m->embed, "the embedding");
    h->lm_head = m->lm_head && m->lm_head != m->embed ? mat(&u, m->lm_head, "lm_head") : h->embed;
    h->final_norm = vec(&u, m->final_norm, true);
    for (int l = 0, nf = 0, nl = 0; l < h->cfg.n_layers && !u.st; l++) {
        layer(&u, l);
        h->L[l].full_idx = h->cfg.hybrid.layer_is_linear[l] ? -1 : nf++;
        h->L[l].lin_idx = h->cfg.hybrid.layer_is_linear[l] ? nl++ : -1;
        if (progress) progress(user, (float)(l + 1) / (float)h->cfg.n_layers);
    }
    cudaFree(u.staging);
    return u.st;
}

void ga_cuda_hyb_free_weights(ga_cuda_hyb *h) {
    for (int l = 0; h->L && l < h->cfg.n_layers; l++) {
        hyb_dlayer *d = &h->L[l];
        void *p[] = {d->input_norm, d->post_norm,  d->w_qkv,   d->w_o,       d->q_norm,
                     d->k_norm,     d->w_in,       d->w_out,   d->conv,      d->dt_bias,
                     d->A_log,      d->gnorm,      d->w_gu,    d->w_down,    d->w_router,
                     d->w_exp_gu,   d->w_exp_down, d->w_sh_gu, d->w_sh_down, d->w_sh_gate};
        for (size_t i = 0; i < sizeof p / sizeof p[0]; i++)
            cudaFree(p[i]);
    }
    free(h->L);
    h->L = NULL;
    if (h->lm_head != h->embed) cudaFree(h->lm_head);
    cudaFree(h->embed);
    cudaFree(h->final_norm);
    h->embed = h->lm_head = NULL;
    h->final_norm = NULL;
}
