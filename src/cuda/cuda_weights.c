/*
 * Weight upload: binds the model's host views (mapped safetensors or in-memory) to device
 * buffers. Matrices become bf16 (BF16 tensors are copied as they are; F32 and F16 go through a
 * staging buffer and the device conversion kernel, rounding to nearest even like the host).
 * Projections that read the same input are stacked into one matrix: q_proj (with its gate
 * rows, in checkpoint order) | k_proj | v_proj, and gate_proj | up_proj. Norm weights and
 * biases stay fp32.
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

/* F8_E4M3 with block scales (FP8 folders): the host tensor reader dequantises each chunk to
 * bf16 (the bf16 of the fp32 product, as the CPU backend's fp32 value rounds), and the chunk is
 * checked for NaN/Inf as bf16 (a finite code times a large scale can overflow) before the
 * copy. Keeping FP8 on the device with FP8 GEMMs is the next step (README). */
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

/* Stacks the row blocks parts[0..n) (each (rows_i, K)) into one bf16 matrix. */
static ga_status upload_stacked(ga_cuda *c, const ga_tensor *const *parts, int n, void **out,
                                void *staging, const char *what, ga_err *err) {
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
    st = upload_stacked(c, &m->embed, 1, &c->embed, staging, "the embedding", err);
    if (st) goto done;
    if (m->lm_head && m->lm_head != m->embed) {
        st = upload_stacked(c, &m->lm_head, 1, &c->lm_head, staging, "lm_head", err);
        if (st) goto done;
    } else {
        c->lm_head = c->embed; // tied: the embedding doubles as the LM head
    }
    if ((st = upload_f32(c, m->final_norm, &c->final_norm, err))) goto done;

    for (int l = 0; l < cfg->n_layers; l++) {
        const ga_layer_w *w = &m->layers[l];
        ga_cuda_layer *d = &c->layers[l];
        const ga_tensor *qkv[3] = {w->q_proj, w->k_proj, w->v_proj};
        if ((st = upload_stacked(c, qkv, 3, &d->w_qkv, staging, "the fused QKV weight", err)))
            goto done;
        if (w->q_bias) {
            st = dalloc((void **)&d->b_qkv, (size_t)c->qkv_dim * sizeof(float), "qkv bias", err);
            if (st) goto done;
            if ((st = upload_f32_into(c, w->q_bias, d->b_qkv, err))) goto done;
            if ((st = upload_f32_into(c, w->k_bias, d->b_qkv + c->q_rows, err))) goto done;
            if ((st = upload_f32_into(c, w->v_bias, d->b_qkv + c->q_rows + c->kv_dim, err)))
                goto done;
        }
        if ((st = upload_stacked(c, &w->o_proj, 1, &d->w_o, staging, "o_proj", err))) goto done;
        if ((st = upload_f32(c, w->o_bias, &d->b_o, err))) goto done;
        if ((st = upload_f32(c, w->q_norm, &d->q_norm, err))) goto done;
        if ((st = upload_f32(c, w->k_norm, &d->k_norm, err))) goto done;
        if ((st = upload_f32(c, w->input_norm, &d->input_norm, err))) goto done;
        if ((st = upload_f32(c, w->post_norm, &d->post_norm, err))) goto done;
        const ga_tensor *gu[2] = {w->gate_proj, w->up_proj};
        if ((st = upload_stacked(c, gu, 2, &d->w_gu, staging, "the fused gate|up weight", err)))
            goto done;
        if ((st = upload_stacked(c, &w->down_proj, 1, &d->w_down, staging, "down_proj", err)))
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
