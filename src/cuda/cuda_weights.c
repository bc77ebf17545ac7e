/*
 * Weight upload: binds the model's host views (mapped safetensors or in-memory) to device
 * buffers. Matrices become bf16 (BF16 tensors are copied as they are; F32 and F16 go through a
 * staging buffer and the device conversion kernel, rounding to nearest even like the host).
 * Projections that read the same input are stacked into one matrix: q_proj (with its gate
 * rows, in checkpoint order) | k_proj | v_proj, and gate_proj | up_proj. Norm weights and
 * biases stay fp32.
 *
 * FP8 folders (issue 15 item 4): with c->keep_fp8 (the default for them, ga_session_opts
 * cuda_weights), a projection whose parts are all F8_E4M3 with block scales goes up as it is
 * stored: the e4m3 bytes (N x K, 1 byte a weight) and the fp32 scales (weight_scale_inv, one
 * (ceil(rows / block[0]), ceil(K / block[1])) block per part, stacked), with a table giving
 * each row its scale row, so q|k|v and gate|up stay one matrix whatever the parts' row counts.
 * The kernels read every weight as the bf16 of the fp32 product code x scale, which is what the
 * bf16 upload below stores, so both modes give the same numbers (kernels/kernels.h). The
 * embedding and LM head are bf16 either way (released FP8 folders store them so; an F8 one is
 * dequantised).
 */
#include <stdlib.h>
#include <string.h>

#include "cuda_internal.h"

#define STAGING_BYTES GA_CUDA_STAGING_BYTES

/* cudaMalloc with a message that says how much was asked and how much was free. */
static ga_status dalloc(void **p, size_t bytes, const char *what, ga_err *err) {
    *p = NULL;
    if (bytes == 0) bytes = 16;
    cudaError_t e = cudaMalloc(p, bytes);
    if (e == cudaSuccess) return GA_OK;
    (void)cudaGetLastError();
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    *p = NULL;
    return ga_err_set(err, e == cudaErrorMemoryAllocation ? GA_ERR_OOM : GA_ERR_CUDA,
                      "GPU allocation of %s failed: %zu bytes needed, %zu of %zu bytes free (%s)",
                      what, bytes, free_b, total_b, cudaGetErrorName(e));
}

/* F8_E4M3 with block scales (FP8 folders) as bf16, when the projection is not kept as FP8: the
 * host tensor reader dequantises each chunk to bf16 (the bf16 of the fp32 product, as the CPU
 * backend's fp32 value rounds), and the chunk is checked for NaN/Inf as bf16 (a finite code
 * times a large scale can overflow) before the copy. */
static ga_status upload_f8(const ga_tensor *t, uint16_t *dst, ga_err *err) {
    const int64_t n = ga_tensor_numel(t), chunk = (int64_t)(STAGING_BYTES / 2);
    uint16_t *h = malloc(STAGING_BYTES);
    if (!h) return ga_err_set(err, GA_ERR_OOM, "out of host memory converting %s", t->name);
    ga_status st = GA_OK;
    for (int64_t first = 0; first < n && !st; first += chunk) {
        const int64_t m = n - first < chunk ? n - first : chunk;
        ga_tensor_read_bf16(t, first, m, h);
        const ga_tensor view = {.name = t->name,
                                .dtype = GA_BF16,
                                .ndim = 1,
                                .shape = {m},
                                .data = h,
                                .nbytes = (uint64_t)m * 2};
        const int64_t bad = ga_tensor_find_nonfinite(&view, 0, m, false);
        if (bad >= 0) {
            st = ga_tensor_nonfinite_err(t, first + bad, err);
            break;
        }
        cudaError_t e = cudaMemcpy(dst + first, h, (size_t)m * 2, cudaMemcpyHostToDevice);
        if (e != cudaSuccess)
            st = ga_err_set(err, GA_ERR_CUDA, "copying %s to the GPU failed: %s", t->name,
                            cudaGetErrorName(e));
    }
    free(h);
    return st;
}

/* Copies tensor t (any dtype) as bf16 into dst (numel elements), refusing NaN/Inf weights.
 * Matrices reach the device without a host conversion (BF16 bytes are copied as they are,
 * F32/F16 are converted on the device), so the finiteness check is one host pass over the
 * stored bits: each staging-sized chunk is scanned just before it is copied, while its pages
 * are being read for the copy anyway. The scan runs at memory speed (9.8 GB/s of bf16 on one
 * core of the dev machine, where memcpy does 11 GB/s), about what the pageable host-to-device
 * copy after it costs again: a 1.7B bf16 model pays ~0.35 s once, at session creation. */
static ga_status upload_bf16(ga_cuda *c, const ga_tensor *t, void *dst, void *staging,
                             ga_err *err) {
    if (t->dtype == GA_F8_E4M3) return upload_f8(t, dst, err);
    const int64_t n = ga_tensor_numel(t);
    const size_t esz = ga_dtype_size(t->dtype);
    const int64_t chunk = (int64_t)(STAGING_BYTES / esz);
    for (int64_t first = 0; first < n; first += chunk) {
        const int64_t m = n - first < chunk ? n - first : chunk;
        const int64_t bad = ga_tensor_find_nonfinite(t, first, m, true);
        if (bad >= 0) return ga_tensor_nonfinite_err(t, bad, err);
        const uint8_t *src = (const uint8_t *)t->data + (size_t)first * esz;
        if (t->dtype == GA_BF16) {
            GA_CUDA_CHECK(cudaMemcpyAsync((uint16_t *)dst + first, src, (size_t)m * 2,
                                          cudaMemcpyHostToDevice, c->stream));
            continue;
        }
        GA_CUDA_CHECK(
            cudaMemcpyAsync(staging, src, (size_t)m * esz, cudaMemcpyHostToDevice, c->stream));
        ga_status st =
            ga_convert_to_bf16(staging, t->dtype, (uint16_t *)dst + first, m, c->stream, err);
        if (st) return st;
        // The staging buffer is reused by the next chunk.
        GA_CUDA_CHECK(cudaStreamSynchronize(c->stream));
    }
    GA_CUDA_CHECK(cudaStreamSynchronize(c->stream));
    return GA_OK;
}

/* Whether the stacked matrix parts[0..n) stays FP8 on the device: every part F8_E4M3 with bound
 * block scales of one width along K that the FP8 GEMV takes (a power of two >= 8), K a
 * multiple of 8. Anything else (a BF16 projection of an FP8 folder, another block width) is
 * uploaded as bf16. */
static bool f8_kept(const ga_cuda *c, const ga_tensor *const *parts, int n) {
    if (!c->keep_fp8) return false;
    for (int i = 0; i < n; i++) {
        const ga_tensor *t = parts[i];
        const int b = t->block[1];
        if (t->dtype != GA_F8_E4M3 || !t->scale_inv || t->ndim != 2 || t->block[0] <= 0 || b < 8 ||
            (b & (b - 1)) || t->shape[1] % 8 || t->shape[1] != parts[0]->shape[1] ||
            b != parts[0]->block[1])
            return false;
    }
    return true;
}

/* Scale rows of the stack: each part's own block rows. */
static int64_t f8_scale_rows(const ga_tensor *const *parts, int n) {
    int64_t r = 0;
    for (int i = 0; i < n; i++)
        r += (parts[i]->shape[0] + parts[i]->block[0] - 1) / parts[i]->block[0];
    return r;
}

static int64_t f8_kb(const ga_tensor *t) {
    return (t->shape[1] + t->block[1] - 1) / t->block[1];
}

/* Device bytes of the stack parts[0..n): FP8 codes, scales and row table, or bf16. */
static uint64_t stack_bytes(const ga_cuda *c, const ga_tensor *const *parts, int n,
                            size_t *f8_elems) {
    uint64_t elems = 0;
    for (int i = 0; i < n; i++)
        elems += (uint64_t)ga_tensor_numel(parts[i]);
    if (!f8_kept(c, parts, n)) return elems * 2;
    const uint64_t rows = elems / (uint64_t)parts[0]->shape[1];
    if (elems > *f8_elems) *f8_elems = elems;
    return elems + (uint64_t)f8_scale_rows(parts, n) * f8_kb(parts[0]) * 4 + rows * 4;
}

/* The stack parts[0..n) as FP8 (f8_kept): codes into *out, scales and row table into one
 * allocation described by *f8. Every chunk of codes is checked for NaN/Inf as the bf16 upload
 * checks it (the dequantised values, in bf16 range) before its bytes are copied. */
static ga_status upload_stacked_f8(const ga_tensor *const *parts, int n, void **out,
                                   ga_f8_scales *f8, const char *what, ga_err *err) {
    const int64_t K = parts[0]->shape[1], kb = f8_kb(parts[0]), srows = f8_scale_rows(parts, n);
    int64_t N = 0;
    for (int i = 0; i < n; i++)
        N += parts[i]->shape[0];
    ga_status st = dalloc(out, (size_t)(N * K), what, err);
    if (st) return st;
    const size_t sbytes = (size_t)(srows * kb) * sizeof(float), tbytes = (size_t)N * sizeof(int);
    void *dsc = NULL;
    if ((st = dalloc(&dsc, sbytes + tbytes, "FP8 block scales", err))) return st;
    f8->scale = dsc;
    f8->srow = (const int *)((const char *)dsc + sbytes);
    f8->block = parts[0]->block[1];
    f8->kb = (int)kb;
    float *hs = malloc(sbytes + tbytes);
    if (!hs) return ga_err_set(err, GA_ERR_OOM, "out of host memory staging %s", what);
    int *ht = (int *)((char *)hs + sbytes);
    int64_t row = 0, srow = 0;
    for (int i = 0; i < n && !st; i++) {
        const ga_tensor *t = parts[i];
        const int64_t rows = t->shape[0], numel = ga_tensor_numel(t);
        ga_tensor_read_f32(t->scale_inv, 0, ga_tensor_numel(t->scale_inv), hs + srow * kb);
        for (int64_t r = 0; r < rows; r++)
            ht[row + r] = (int)(srow + r / t->block[0]);
        const int64_t chunk = (int64_t)STAGING_BYTES;
        for (int64_t first = 0; first < numel && !st; first += chunk) {
            const int64_t m = numel - first < chunk ? numel - first : chunk;
            const int64_t bad = ga_tensor_find_nonfinite(t, first, m, true);
            if (bad >= 0) {
                st = ga_tensor_nonfinite_err(t, bad, err);
                break;
            }
            cudaError_t e =
                cudaMemcpy((uint8_t *)*out + row * K + first, (const uint8_t *)t->data + first,
                           (size_t)m, cudaMemcpyHostToDevice);
            if (e != cudaSuccess)
                st = ga_err_set(err, GA_ERR_CUDA, "copying %s to the GPU failed: %s", t->name,
                                cudaGetErrorName(e));
        }
        row += rows;
        srow += (rows + t->block[0] - 1) / t->block[0];
    }
    if (!st) {
        cudaError_t e = cudaMemcpy(dsc, hs, sbytes + tbytes, cudaMemcpyHostToDevice);
        if (e != cudaSuccess)
            st = ga_err_set(err, GA_ERR_CUDA, "copying the block scales of %s failed: %s",
                            parts[0]->name, cudaGetErrorName(e));
    }
    free(hs);
    return st;
}

uint64_t ga_cuda_weight_plan(const ga_cuda *c, size_t *f8_tmp_elems) {
    const ga_model *m = c->model;
    size_t f8 = 0;
    // the embedding and LM head are bf16 whatever their stored dtype (ga_cuda_upload_weights)
    uint64_t b = 2ull * (uint64_t)ga_tensor_numel(m->embed);
    if (m->lm_head && m->lm_head != m->embed) b += 2ull * (uint64_t)ga_tensor_numel(m->lm_head);
    for (int l = 0; l < c->cfg.n_layers; l++) {
        const ga_layer_w *w = &m->layers[l];
        const ga_tensor *qkv[3] = {w->q_proj, w->k_proj, w->v_proj};
        const ga_tensor *gu[2] = {w->gate_proj, w->up_proj};
        b += stack_bytes(c, qkv, 3, &f8) + stack_bytes(c, &w->o_proj, 1, &f8) +
             stack_bytes(c, gu, 2, &f8) + stack_bytes(c, &w->down_proj, 1, &f8);
    }
    /* norms and biases (fp32): small, counted as the parameter count does */
    b += 4ull * (uint64_t)c->cfg.hidden_size * (2ull * c->cfg.n_layers + 1);
    if (f8_tmp_elems) *f8_tmp_elems = f8;
    return b;
}

/* fp32 copy of a (small) vector tensor into dst. */
static ga_status upload_f32_into(ga_cuda *c, const ga_tensor *t, float *dst, ga_err *err) {
    const int64_t n = ga_tensor_numel(t);
    float *h = malloc((size_t)n * sizeof(float));
    if (!h) return ga_err_set(err, GA_ERR_OOM, "out of host memory converting %s", t->name);
    ga_tensor_read_f32(t, 0, n, h);
    const int64_t bad = ga_f32_find_nonfinite(h, n); /* on the converted copy: no extra pass */
    if (bad >= 0) {
        free(h);
        return ga_tensor_nonfinite_err(t, bad, err);
    }
    cudaError_t e = cudaMemcpy(dst, h, (size_t)n * sizeof(float), cudaMemcpyHostToDevice);
    free(h);
    GA_CUDA_CHECK(e);
    return GA_OK;
}

static ga_status upload_f32(ga_cuda *c, const ga_tensor *t, float **out, ga_err *err) {
    *out = NULL;
    if (!t) return GA_OK;
    ga_status st = dalloc((void **)out, (size_t)ga_tensor_numel(t) * sizeof(float), t->name, err);
    if (st) return st;
    return upload_f32_into(c, t, *out, err);
}

/* Stacks the row blocks parts[0..n) (each (rows_i, K)) into one bf16 matrix, or one FP8 matrix
 * with its scales into *f8 when f8 is given and f8_kept. */
static ga_status upload_stacked(ga_cuda *c, const ga_tensor *const *parts, int n, void **out,
                                ga_f8_scales *f8, void *staging, const char *what, ga_err *err) {
    if (f8 && f8_kept(c, parts, n)) {
        f8->math = c->fp8_math; /* upload_stacked_f8 fills the rest */
        return upload_stacked_f8(parts, n, out, f8, what, err);
    }
    size_t elems = 0;
    for (int i = 0; i < n; i++)
        elems += (size_t)ga_tensor_numel(parts[i]);
    ga_status st = dalloc(out, elems * 2, what, err);
    if (st) return st;
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        st = upload_bf16(c, parts[i], (uint16_t *)*out + off, staging, err);
        if (st) return st;
        off += (size_t)ga_tensor_numel(parts[i]);
    }
    return GA_OK;
}

ga_status ga_cuda_upload_weights(ga_cuda *c, void (*progress)(void *, float), void *user,
                                 ga_err *err) {
    const ga_model *m = c->model;
    const ga_config *cfg = &c->cfg;
    void *staging = NULL;
    ga_status st = dalloc(&staging, STAGING_BYTES, "the weight staging buffer", err);
    if (st) return st;

    c->layers = calloc((size_t)cfg->n_layers, sizeof(ga_cuda_layer));
    if (!c->layers) {
        st = ga_err_set(err, GA_ERR_OOM, "out of host memory");
        goto done;
    }
    st = upload_stacked(c, &m->embed, 1, &c->embed, NULL, staging, "the embedding", err);
    if (st) goto done;
    if (m->lm_head && m->lm_head != m->embed) {
        st = upload_stacked(c, &m->lm_head, 1, &c->lm_head, NULL, staging, "lm_head", err);
        if (st) goto done;
    } else {
        c->lm_head = c->embed; // tied: the embedding doubles as the LM head
    }
    if ((st = upload_f32(c, m->final_norm, &c->final_norm, err))) goto done;

    for (int l = 0; l < cfg->n_layers; l++) {
        const ga_layer_w *w = &m->layers[l];
        ga_cuda_layer *d = &c->layers[l];
        const ga_tensor *qkv[3] = {w->q_proj, w->k_proj, w->v_proj};
        if ((st = upload_stacked(c, qkv, 3, &d->w_qkv, &d->f8_qkv, staging, "the fused QKV weight",
                                 err)))
            goto done;
        if (w->q_bias) {
            st = dalloc((void **)&d->b_qkv, (size_t)c->qkv_dim * sizeof(float), "qkv bias", err);
            if (st) goto done;
            if ((st = upload_f32_into(c, w->q_bias, d->b_qkv, err))) goto done;
            if ((st = upload_f32_into(c, w->k_bias, d->b_qkv + c->q_rows, err))) goto done;
            if ((st = upload_f32_into(c, w->v_bias, d->b_qkv + c->q_rows + c->kv_dim, err)))
                goto done;
        }
        if ((st = upload_stacked(c, &w->o_proj, 1, &d->w_o, &d->f8_o, staging, "o_proj", err)))
            goto done;
        if ((st = upload_f32(c, w->o_bias, &d->b_o, err))) goto done;
        if ((st = upload_f32(c, w->q_norm, &d->q_norm, err))) goto done;
        if ((st = upload_f32(c, w->k_norm, &d->k_norm, err))) goto done;
        if ((st = upload_f32(c, w->input_norm, &d->input_norm, err))) goto done;
        if ((st = upload_f32(c, w->post_norm, &d->post_norm, err))) goto done;
        const ga_tensor *gu[2] = {w->gate_proj, w->up_proj};
        if ((st = upload_stacked(c, gu, 2, &d->w_gu, &d->f8_gu, staging, "the fused gate|up weight",
                                 err)))
            goto done;
        if ((st = upload_stacked(c, &w->down_proj, 1, &d->w_down, &d->f8_down, staging, "down_proj",
                                 err)))
            goto done;
        if (progress) progress(user, (float)(l + 1) / (float)cfg->n_layers);
    }
done:
    cudaFree(staging);
    return st;
}

ga_status ga_cuda_dalloc(void **p, size_t bytes, const char *what, ga_err *err) {
    return dalloc(p, bytes, what, err);
}

ga_status ga_cuda_upload_matrix(ga_cuda *c, const ga_tensor *t, void *dst, void *staging,
                                ga_err *err) {
    return upload_bf16(c, t, dst, staging, err);
}

void ga_cuda_free_weights(ga_cuda *c) {
    if (c->layers) {
        for (int l = 0; l < c->cfg.n_layers; l++) {
            ga_cuda_layer *d = &c->layers[l];
            cudaFree(d->w_qkv);
            cudaFree(d->b_qkv);
            cudaFree(d->w_o);
            cudaFree(d->b_o);
            cudaFree(d->q_norm);
            cudaFree(d->k_norm);
            cudaFree(d->input_norm);
            cudaFree(d->post_norm);
            cudaFree(d->w_gu);
            cudaFree(d->w_down);
            const ga_f8_scales *f8[4] = {&d->f8_qkv, &d->f8_o, &d->f8_gu, &d->f8_down};
            for (int i = 0; i < 4; i++) // the scales and the row table: one allocation
                cudaFree((void *)f8[i]->scale);
        }
        free(c->layers);
        c->layers = NULL;
    }
    if (c->lm_head != c->embed) cudaFree(c->lm_head);
    cudaFree(c->embed);
    cudaFree(c->final_norm);
    c->embed = c->lm_head = NULL;
    c->final_norm = NULL;
}
