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
 *
 * FP8 folders (issue 15 item 4): with h->g.keep_fp8 (the default for them, ga_session_opts
 * cuda_weights), a stack whose parts are all F8_E4M3 with block scales (f8_able) goes up as
 * stored, as the Qwen3 backend's do (cuda_weights.c): the e4m3 bytes, the parts' fp32 scales
 * one after the other, and a table giving each row its scale row, so row blocks taken from
 * anywhere in a part (the Qwen3-Next regrouping) keep their scales. Every product reads each
 * weight as the bf16 of fp32 code x scale, the value the bf16 upload holds. The experts are
 * the point (Qwen3-Next-80B-A3B: 77 of its 80 B parameters): all E experts of a layer are one
 * (E * rows, K) FP8 matrix with one table. Released folders keep in_proj_b / in_proj_a /
 * in_proj_ba bf16 beside FP8 in_proj_qkv / z / qkvz: [b | a] then becomes its own bf16 matrix
 * w_ba (in both weight modes, so both run the same GEMM shapes) and [q | k | v | z] stays FP8.
 */
#include <stdlib.h>
#include <string.h>

#include "cuda_hybrid_internal.h"

typedef struct upl {
    ga_cuda_hyb *h;
    void *staging;
    ga_err *err;
    ga_status st;
    /* ga_cuda_hyb_weight_plan: walk the same matrices, counting instead of uploading */
    bool plan;
    uint64_t bytes;  /* device bytes of the weights */
    size_t f8_elems; /* the largest FP8 matrix one GEMM dequantises (bf16 elements) */
} upl;

/* Rows r0 .. r0 + rows - 1 of a checkpoint matrix: a piece of a device matrix. Pieces of one
 * tensor come one after the other in a list. */
typedef struct seg {
    const ga_tensor *t;
    int64_t r0, rows;
} seg;

static int64_t cols(const ga_tensor *t) {
    return t->shape[t->ndim - 1];
}

/* The whole tensor (a 3-D packed expert tensor as its (E * rows, K) matrix). */
static seg whole(const ga_tensor *t) {
    return (seg){t, 0, t ? ga_tensor_numel(t) / cols(t) : 0};
}

/* Whether the pieces can stay FP8 together: every tensor F8_E4M3 with bound block scales of
 * one width along K that the FP8 kernels take (a power of two >= 8), K a multiple of 8 and the
 * same for all. A property of the folder, not of the session: it also decides which matrices
 * are stacked (w_ba), so both weight modes run the same GEMMs. */
static bool f8_able(const seg *s, int n) {
    const ga_tensor *t0 = NULL;
    for (int i = 0; i < n; i++) {
        const ga_tensor *t = s[i].t;
        if (!t) continue;
        if (!t0) t0 = t;
        const int b = t->block[1];
        if (t->dtype != GA_F8_E4M3 || !t->scale_inv || t->ndim != 2 || t->block[0] <= 0 || b < 8 ||
            (b & (b - 1)) || t->shape[1] % 8 || t->shape[1] != t0->shape[1] || b != t0->block[1])
            return false;
    }
    return t0 != NULL;
}

static int64_t block_rows(const ga_tensor *t) {
    return (t->shape[0] + t->block[0] - 1) / t->block[0];
}

/* The pieces as FP8: codes into a new (N, K) allocation, the scales of each tensor (once) and
 * the row table into *f8. Each piece's codes are checked for NaN/Inf as the bf16 upload checks
 * them (the dequantised values, in bf16 range) before they are copied. */
static void *build_f8(upl *u, const seg *s, int n, int64_t N, ga_f8_scales *f8, const char *what) {
    const int64_t K = s[0].t->shape[1], kb = (K + s[0].t->block[1] - 1) / s[0].t->block[1];
    int64_t srows = 0;
    for (int i = 0; i < n; i++)
        if (!i || s[i].t != s[i - 1].t) srows += block_rows(s[i].t);
    const size_t sbytes = (size_t)(srows * kb) * sizeof(float), tbytes = (size_t)N * sizeof(int);
    void *d = NULL, *dsc = NULL;
    if ((u->st = ga_cuda_dalloc(&d, (size_t)(N * K), what, u->err))) return NULL;
    if ((u->st = ga_cuda_dalloc(&dsc, sbytes + tbytes, "FP8 block scales", u->err))) return d;
    *f8 = (ga_f8_scales){.scale = dsc,
                         .srow = (const int *)((const char *)dsc + sbytes),
                         .block = s[0].t->block[1],
                         .kb = (int)kb,
                         .math = u->h->g.fp8_math};
    float *hs = malloc(sbytes + tbytes);
    if (!hs) {
        u->st = ga_err_set(u->err, GA_ERR_OOM, "out of host memory staging %s", what);
        return d;
    }
    int *ht = (int *)((char *)hs + sbytes);
    int64_t row = 0, base = 0, next = 0;
    for (int i = 0; i < n && !u->st; i++) {
        const ga_tensor *t = s[i].t;
        if (!i || t != s[i - 1].t) {
            base = next;
            next += block_rows(t);
            ga_tensor_read_f32(t->scale_inv, 0, ga_tensor_numel(t->scale_inv), hs + base * kb);
        }
        for (int64_t r = 0; r < s[i].rows; r++)
            ht[row + r] = (int)(base + (s[i].r0 + r) / t->block[0]);
        const int64_t first = s[i].r0 * K, m = s[i].rows * K;
        const int64_t bad = ga_tensor_find_nonfinite(t, first, m, true);
        if (bad >= 0) {
            u->st = ga_tensor_nonfinite_err(t, bad, u->err);
            break;
        }
        if (cudaMemcpy((uint8_t *)d + row * K, (const uint8_t *)t->data + first, (size_t)m,
                       cudaMemcpyHostToDevice) != cudaSuccess)
            u->st = ga_err_set(u->err, GA_ERR_CUDA, "copying %s to the GPU failed: %s", t->name,
                               cudaGetErrorName(cudaGetLastError()));
        row += s[i].rows;
    }
    if (!u->st && cudaMemcpy(dsc, hs, sbytes + tbytes, cudaMemcpyHostToDevice) != cudaSuccess)
        u->st = ga_err_set(u->err, GA_ERR_CUDA, "copying the block scales of %s failed: %s",
                           s[0].t->name, cudaGetErrorName(cudaGetLastError()));
    free(hs);
    return d;
}

/* The pieces as one new bf16 (N, K) matrix. A tensor used whole goes straight into place; one
 * cut into row blocks goes up once into a temporary (any stored dtype, F8 dequantised as a
 * whole, scales and all) and its blocks are moved on the device. */
static void *build_bf16(upl *u, const seg *s, int n, int64_t N, const char *what) {
    const int64_t K = cols(s[0].t);
    void *d = NULL;
    if ((u->st = ga_cuda_dalloc(&d, (size_t)(N * K) * 2, what, u->err))) return NULL;
    int64_t row = 0;
    for (int i = 0, j; i < n && !u->st; i = j) {
        const ga_tensor *t = s[i].t;
        for (j = i + 1; j < n && s[j].t == t;)
            j++;
        if (j == i + 1 && s[i].r0 == 0 && s[i].rows * K == ga_tensor_numel(t)) {
            u->st = ga_cuda_upload_matrix(&u->h->g, t, (uint16_t *)d + row * K, u->staging, u->err);
            row += s[i].rows;
            continue;
        }
        void *tmp = NULL;
        if ((u->st = ga_cuda_dalloc(&tmp, (size_t)ga_tensor_numel(t) * 2, what, u->err))) break;
        u->st = ga_cuda_upload_matrix(&u->h->g, t, tmp, u->staging, u->err);
        for (int k = i; k < j && !u->st; k++) {
            if (cudaMemcpy((uint16_t *)d + row * K, (const uint16_t *)tmp + s[k].r0 * K,
                           (size_t)(s[k].rows * K) * 2, cudaMemcpyDeviceToDevice) != cudaSuccess)
                u->st = ga_err_set(u->err, GA_ERR_CUDA, "regrouping %s on the GPU failed", what);
            row += s[k].rows;
        }
        cudaFree(tmp);
    }
    return d;
}

/* The pieces s[0..n) (NULL tensors skipped) stacked into one device matrix: FP8 into *f8 when
 * f8 is given, the session keeps FP8 and f8_able, else bf16. unit: the rows one GEMM reads (an
 * expert's, for the experts' matrices; 0: all), which sizes the dequantisation buffer. In a
 * plan, counts the bytes instead and returns NULL. */
static void *build(upl *u, const seg *in, int n, ga_f8_scales *f8, int64_t unit, const char *what) {
    if (u->st) return NULL;
    seg *s = malloc((size_t)(n > 0 ? n : 1) * sizeof *s);
    if (!s) {
        u->st = ga_err_set(u->err, GA_ERR_OOM, "out of host memory");
        return NULL;
    }
    int m = 0;
    int64_t N = 0;
    for (int i = 0; i < n; i++)
        if (in[i].t) {
            s[m++] = in[i];
            N += in[i].rows;
        }
    void *d = NULL;
    if (m) {
        const bool keep = f8 && u->h->g.keep_fp8 && f8_able(s, m);
        const int64_t K = cols(s[0].t);
        if (u->plan) {
            if (keep) {
                uint64_t sc = 0;
                for (int i = 0; i < m; i++)
                    if (!i || s[i].t != s[i - 1].t)
                        sc += (uint64_t)ga_tensor_numel(s[i].t->scale_inv);
                u->bytes += (uint64_t)(N * K) + 4 * sc + 4 * (uint64_t)N;
                const size_t e = (size_t)((unit ? unit : N) * K);
                if (e > u->f8_elems) u->f8_elems = e;
            } else {
                u->bytes += 2 * (uint64_t)(N * K);
            }
        } else {
            d = keep ? build_f8(u, s, m, N, f8, what) : build_bf16(u, s, m, N, what);
        }
    }
    free(s);
    return d;
}

static void *mat(upl *u, const ga_tensor *t, ga_f8_scales *f8, const char *what) {
    const seg s = whole(t);
    return t ? build(u, &s, 1, f8, 0, what) : NULL;
}

/* fp32 copy of a vector tensor, plus one when zc (a zero-centred norm's 1 + w). */
static float *vec(upl *u, const ga_tensor *t, bool zc) {
    if (u->st || !t) return NULL;
    const int64_t n = ga_tensor_numel(t);
    if (u->plan) {
        u->bytes += (uint64_t)n * sizeof(float);
        return NULL;
    }
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

/* The DeltaNet in-projection's pieces in w_in's row order [q | k | v | z | b | a]; the first
 * *n_qkvz of them are [q | k | v | z]. Qwen3-Next's per-key-head groups are cut into their
 * row blocks here (ungrouped). NULL on failure (u->st set). */
static seg *in_segs(upl *u, const ga_hyb_layer_t *t, int *n, int *n_qkvz) {
    const ga_cuda_hyb *h = u->h;
    const int Hk = t->in_qkvz ? h->Hk : 1;
    seg *s = malloc((size_t)6 * Hk * sizeof *s);
    if (!s) {
        u->st = ga_err_set(u->err, GA_ERR_OOM, "out of host memory");
        return NULL;
    }
    if (!t->in_qkvz) {
        s[0] = whole(t->in_qkv), s[1] = whole(t->in_z), s[2] = whole(t->in_b),
        s[3] = whole(t->in_a);
        *n = 4, *n_qkvz = 2;
        return s;
    }
    const int r = h->Hv / h->Hk, gq = 2 * h->dk + 2 * r * h->dv, rv = r * h->dv;
    for (int k = 0; k < Hk; k++) {
        const int g = k * gq;
        s[k] = (seg){t->in_qkvz, g, h->dk};                         /* q */
        s[Hk + k] = (seg){t->in_qkvz, g + h->dk, h->dk};            /* k */
        s[2 * Hk + k] = (seg){t->in_qkvz, g + 2 * h->dk, rv};       /* v */
        s[3 * Hk + k] = (seg){t->in_qkvz, g + 2 * h->dk + rv, rv};  /* z */
        s[4 * Hk + k] = (seg){t->in_ba, (int64_t)k * 2 * r, r};     /* b */
        s[5 * Hk + k] = (seg){t->in_ba, (int64_t)k * 2 * r + r, r}; /* a */
    }
    /* b and a interleave two tensors' rows only in that order; in_ba is one tensor, so its
     * pieces are together as build_* wants them */
    *n = 6 * Hk, *n_qkvz = 4 * Hk;
    return s;
}

static void layer(upl *u, int l, hyb_dlayer *d) {
    ga_cuda_hyb *h = u->h;
    const ga_config *c = &h->cfg;
    const ga_hyb_layer_t *t = &h->model->hyb[l];
    d->input_norm = vec(u, t->input_norm, true);
    d->post_norm = vec(u, t->post_norm, true);
    if (c->hybrid.layer_is_linear[l]) {
        int n = 0, nq = 0;
        seg *s = u->st ? NULL : in_segs(u, t, &n, &nq);
        if (s && f8_able(s, nq) && !f8_able(s + nq, n - nq)) {
            d->w_in = build(u, s, nq, &d->f8_in, 0, "the fused DeltaNet in-projection");
            d->w_ba = build(u, s + nq, n - nq, NULL, 0, "the DeltaNet b|a projection");
        } else if (s) {
            d->w_in = build(u, s, n, &d->f8_in, 0, "the fused DeltaNet in-projection");
        }
        free(s);
        d->w_out = mat(u, t->out, &d->f8_out, "out_proj");
        d->conv = vec(u, t->conv, false); /* (cd, 1, K) is (cd, K) in memory */
        d->dt_bias = vec(u, t->dt_bias, false);
        d->A_log = vec(u, t->A_log, false);
        d->gnorm = vec(u, t->norm, false); /* the gated norm's weight is plain */
    } else {
        const seg p[3] = {whole(t->q), whole(t->k), whole(t->v)};
        d->w_qkv = build(u, p, 3, &d->f8_qkv, 0, "the fused QKV weight");
        d->w_o = mat(u, t->o, &d->f8_o, "o_proj");
        d->q_norm = vec(u, t->q_norm, false);
        d->k_norm = vec(u, t->k_norm, false);
    }
    if (!(c->hybrid.moe && c->hybrid.layer_is_moe[l])) {
        const seg p[2] = {whole(t->gate), whole(t->up)};
        d->w_gu = build(u, p, 2, &d->f8_gu, 0, "the fused gate|up weight");
        d->w_down = mat(u, t->down, &d->f8_down, "down_proj");
        return;
    }
    d->w_router = mat(u, t->router, NULL, "the MoE router");
    if (t->experts) { /* expert e's gate rows | up rows at e * 2Ie, its down rows at e * H */
        seg *s = u->st ? NULL : malloc((size_t)3 * h->E * sizeof *s);
        if (!s && !u->st) u->st = ga_err_set(u->err, GA_ERR_OOM, "out of host memory");
        for (int e = 0; s && e < h->E; e++) {
            s[2 * e] = whole(t->experts[3 * e]);
            s[2 * e + 1] = whole(t->experts[3 * e + 1]);
            s[2 * h->E + e] = whole(t->experts[3 * e + 2]);
        }
        if (s) {
            d->w_exp_gu = build(u, s, 2 * h->E, &d->f8_exp_gu, 2 * h->Ie, "experts");
            d->w_exp_down = build(u, s + 2 * h->E, h->E, &d->f8_exp_down, h->H, "experts");
        }
        free(s);
    } else { /* packed: gate_up (E, 2Ie, H) already holds each expert's gate rows | up rows */
        d->w_exp_gu = mat(u, t->exp_gate_up, NULL, "experts.gate_up_proj");
        d->w_exp_down = mat(u, t->exp_down, NULL, "experts.down_proj");
    }
    if (h->Is > 0) {
        const seg p[2] = {whole(t->sh_gate), whole(t->sh_up)};
        d->w_sh_gu = build(u, p, 2, &d->f8_sh_gu, 0, "the shared expert's gate|up");
        d->w_sh_down = mat(u, t->sh_down, &d->f8_sh_down, "the shared expert's down_proj");
        d->w_sh_gate = mat(u, t->sh_scale, NULL, "shared_expert_gate");
    }
}

ga_status ga_cuda_hyb_weight_plan(ga_cuda_hyb *h, uint64_t *bytes, size_t *f8_tmp_elems,
                                  ga_err *err) {
    const ga_model *m = h->model;
    upl u = {.h = h, .err = err, .plan = true};
    hyb_dlayer d;
    (void)mat(&u, m->embed, NULL, "the embedding");
    if (m->lm_head && m->lm_head != m->embed) (void)mat(&u, m->lm_head, NULL, "lm_head");
    (void)vec(&u, m->final_norm, true);
    for (int l = 0; l < h->cfg.n_layers && !u.st; l++) {
        memset(&d, 0, sizeof d);
        layer(&u, l, &d);
    }
    *bytes = u.bytes;
    *f8_tmp_elems = u.f8_elems;
    return u.st;
}

ga_status ga_cuda_hyb_upload(ga_cuda_hyb *h, void (*progress)(void *, float), void *user,
                             ga_err *err) {
    const ga_model *m = h->model;
    upl u = {.h = h, .err = err};
    u.st = ga_cuda_dalloc(&u.staging, GA_CUDA_STAGING_BYTES, "the weight staging buffer", err);
    h->embed = mat(&u, m->embed, NULL, "the embedding");
    h->lm_head =
        m->lm_head && m->lm_head != m->embed ? mat(&u, m->lm_head, NULL, "lm_head") : h->embed;
    h->final_norm = vec(&u, m->final_norm, true);
    for (int l = 0, nf = 0, nl = 0; l < h->cfg.n_layers && !u.st; l++) {
        layer(&u, l, &h->L[l]);
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
        void *p[] = {d->input_norm, d->post_norm, d->w_qkv,      d->w_o,     d->q_norm,
                     d->k_norm,     d->w_in,      d->w_ba,       d->w_out,   d->conv,
                     d->dt_bias,    d->A_log,     d->gnorm,      d->w_gu,    d->w_down,
                     d->w_router,   d->w_exp_gu,  d->w_exp_down, d->w_sh_gu, d->w_sh_down,
                     d->w_sh_gate};
        for (size_t i = 0; i < sizeof p / sizeof p[0]; i++)
            cudaFree(p[i]);
        const ga_f8_scales *f8[] = {&d->f8_qkv,   &d->f8_o,      &d->f8_in,     &d->f8_out,
                                    &d->f8_gu,    &d->f8_down,   &d->f8_exp_gu, &d->f8_exp_down,
                                    &d->f8_sh_gu, &d->f8_sh_down};
        for (size_t i = 0; i < sizeof f8 / sizeof f8[0]; i++) // the scales and the row table
            cudaFree((void *)f8[i]->scale);
    }
    free(h->L);
    h->L = NULL;
    if (h->lm_head != h->embed) cudaFree(h->lm_head);
    cudaFree(h->embed);
    cudaFree(h->final_norm);
    h->embed = h->lm_head = NULL;
    h->final_norm = NULL;
}
