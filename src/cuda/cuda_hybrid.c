/*
 * The hybrid CUDA backend's lifetime (cuda_hybrid_internal.h): create, free and paged_init.
 *
 * Device memory:
 *   weights   bf16, fused per layer, or for FP8 folders (by default) their FP8 projections
 *             and experts as e4m3 with block scales plus one bf16 buffer the largest of them
 *             is dequantised into before a cuBLAS GEMM (cuda_hybrid_weights.c; counted by
 *             ga_cuda_hyb_weight_plan, not by the parameter count)
 *   K/V       full-attention layers only: slots (max_batch, nkv, max_context, hd) bf16 per
 *             layer for K and for V, or (paged_init) pools of n_blocks blocks
 *   states    per linear layer and sequence slot: conv (cd, K-1) and recurrent (Hv, dk, dv)
 *             fp32, allocated for max_batch at creation whatever the cache (kv_fixed_bytes)
 *   rope      fp32 cos / sin (max_context, rotary_dim / 2), the CPU reference's angles
 *   scratch   activations for max(prefill chunk, max_batch) rows
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_hybrid_internal.h"

/* Prefill runs in chunks of at most this many tokens, each a continuation of the previous
 * (the DeltaNet states carry over, the attention sees the cache): it bounds the scratch and the
 * chunked delta rule's workspace, which is linear in the tokens. */
#define HYB_PREFILL_CHUNK 512
#define HYB_BLAS_WS ((size_t)32 << 20)

static size_t maxz(size_t a, size_t b) {
    return a > b ? a : b;
}

/* Bytes of the scratch for `rows` rows (the allocation below, buffer by buffer). */
static size_t scratch_bytes(const ga_cuda_hyb *h, int rows) {
    const size_t r = (size_t)rows, H = (size_t)h->H, rk = r * (size_t)(h->K ? h->K : 0);
    const size_t I = (size_t)h->cfg.intermediate_size;
    size_t big = maxz(maxz((size_t)h->qkv_dim, (size_t)h->P), maxz(2 * I, 2 * (size_t)h->Is));
    size_t b = r * H * 4 * 2 + r * H * 2 + r * big * 2 + 2 * r * h->nh * h->hd * 2 +
               r * maxz((size_t)h->nh * h->hd, (size_t)h->vd) * 2 + r * h->cd * 2 +
               r * maxz(I, (size_t)h->Is) * 2 + r * h->V * 4 + r * h->nh * 4 + 9 * r * 4;
    if (h->n_lin) b += ga_gdn_chunk_workspace(rows, h->Hk, h->Hv, h->dk, h->dv);
    if (h->E)
        b += r * h->E * 4 + rk * 4 * 4 + (size_t)(h->E + 1) * 4 + rk * H * 2 + rk * 3 * h->Ie * 2 +
             rk * H * 4 + r * H * 4 + r * 4;
    return b + 40 * 256;
}

static void scratch_free(ga_cuda_hyb *h) {
    void *d[] = {h->x,        h->delta, h->xn,     h->big,   h->q,        h->gate,     h->attn,
                 h->conv_out, h->act,   h->logits, h->lse,   h->gdn_work, h->d_tokens, h->d_pos,
                 h->r_logits, h->r_idx, h->r_w,    h->r_off, h->r_src,    h->r_pos,    h->e_x,
                 h->e_gu,     h->e_act, h->e_y,    h->sh_y,  h->sh_g};
    for (size_t i = 0; i < sizeof d / sizeof d[0]; i++)
        cudaFree(d[i]);
    cudaFreeHost(h->h_in);
    cudaFreeHost(h->h_off);
    h->x = h->delta = h->logits = h->lse = h->gdn_work = h->r_logits = h->r_w = h->e_y = h->sh_y =
        h->sh_g = NULL;
    h->xn = h->big = h->q = h->gate = h->attn = h->conv_out = h->act = h->e_x = h->e_gu = h->e_act =
        NULL;
    h->d_tokens = h->d_pos = h->r_idx = h->r_off = h->r_src = h->r_pos = h->h_in = h->h_off = NULL;
    h->rows = 0;
}

/* Every activation buffer for `rows` rows, poisoned with NaN (0xFF bytes) as the Qwen3
 * backend's are, so a kernel reading what nothing wrote shows up as NaN logits. */
static ga_status scratch_alloc(ga_cuda_hyb *h, int rows, ga_err *err) {
    const size_t r = (size_t)rows, H = (size_t)h->H, rk = r * (size_t)h->K;
    const size_t I = (size_t)h->cfg.intermediate_size;
    const size_t big = maxz(maxz((size_t)h->qkv_dim, (size_t)h->P), maxz(2 * I, 2 * (size_t)h->Is));
    struct {
        void **p;
        size_t bytes;
        bool poison;
    } b[] = {
        {(void **)&h->x, r * H * 4, true},
        {(void **)&h->delta, r * H * 4, true},
        {&h->xn, r * H * 2, true},
        {&h->big, r * big * 2, true},
        {&h->q, r * h->nh * h->hd * 2, true},
        {&h->gate, r * h->nh * h->hd * 2, true},
        {&h->attn, r * maxz((size_t)h->nh * h->hd, (size_t)h->vd) * 2, true},
        {&h->conv_out, r * maxz((size_t)h->cd, 1) * 2, true},
        {&h->act, r * maxz(I, (size_t)h->Is) * 2, true},
        {(void **)&h->logits, r * h->V * 4, true},
        {(void **)&h->lse, h->n_full ? r * h->nh * 4 : 0, true},
        {(void **)&h->d_tokens, r * 4, false},
        {(void **)&h->d_pos, 4 * r * 4, false},
        {(void **)&h->gdn_work,
         h->n_lin ? ga_gdn_chunk_workspace(rows, h->Hk, h->Hv, h->dk, h->dv) : 0, false},
        {(void **)&h->r_logits, h->E ? r * h->E * 4 : 0, true},
        {(void **)&h->r_idx, rk * 4, false},
        {(void **)&h->r_w, rk * 4, true},
        {(void **)&h->r_off, h->E ? (size_t)(h->E + 1) * 4 : 0, false},
        {(void **)&h->r_src, rk * 4, false},
        {(void **)&h->r_pos, rk * 4, false},
        {&h->e_x, rk * H * 2, true},
        {&h->e_gu, rk * 2 * h->Ie * 2, true},
        {&h->e_act, rk * h->Ie * 2, true},
        {(void **)&h->e_y, rk * H * 4, true},
        {(void **)&h->sh_y, h->Is ? r * H * 4 : 0, true},
        {(void **)&h->sh_g, h->Is ? r * 4 : 0, true},
    };
    ga_status st = GA_OK;
    for (size_t i = 0; i < sizeof b / sizeof b[0] && !st; i++) {
        if (!b[i].bytes) continue;
        st = ga_cuda_dalloc(b[i].p, b[i].bytes, "activations", err);
        if (!st && b[i].poison && cudaMemsetAsync(*b[i].p, 0xFF, b[i].bytes, h->g.stream))
            st = ga_err_set(err, GA_ERR_CUDA, "poisoning the activations failed");
    }
    if (!st && cudaMallocHost((void **)&h->h_in, 5 * r * sizeof(int32_t)) != cudaSuccess) {
        h->h_in = NULL;
        st = ga_err_set(err, GA_ERR_OOM, "pinned host allocation failed");
    }
    if (!st && h->E &&
        cudaMallocHost((void **)&h->h_off, (h->E + 1) * sizeof(int)) != cudaSuccess) {
        h->h_off = NULL;
        st = ga_err_set(err, GA_ERR_OOM, "pinned host allocation failed");
    }
    if (st) {
        scratch_free(h);
        return st;
    }
    h->d_slot = h->d_pos + r;
    h->d_dest = h->d_slot + r;
    h->d_kvlen = h->d_dest + r;
    h->gdn_work_bytes = h->n_lin ? ga_gdn_chunk_workspace(rows, h->Hk, h->Hv, h->dk, h->dv) : 0;
    h->rows = rows;
    return GA_OK;
}

ga_status ga_cuda_hyb_scratch_resize(ga_cuda_hyb *h, int rows, ga_err *err) {
    const int old = h->rows;
    GA_CUDA_CHECK(cudaStreamSynchronize(h->g.stream));
    ga_cuda_drop_graphs(&h->g); /* they address the buffers freed here */
    scratch_free(h);
    ga_status st = scratch_alloc(h, rows, err);
    if (st && old > 0) {
        ga_err ignored = {{0}};
        (void)scratch_alloc(h, old, &ignored);
    }
    return st;
}

/* cos / sin of the partial RoPE for every cache position, exactly attn_token's in
 * cpu_hybrid.c: angle pos * theta^(-2i / rd) in double, rounded once to fp32. */
static ga_status rope_tables(ga_cuda_hyb *h, ga_err *err) {
    const int half = h->rd / 2;
    const size_t n = (size_t)h->max_context * half;
    float *hc = malloc(n * sizeof *hc), *hs = malloc(n * sizeof *hs);
    ga_status st = GA_OK;
    if (!hc || !hs) {
        st = ga_err_set(err, GA_ERR_OOM, "out of host memory for the RoPE tables");
        goto done;
    }
    for (int p = 0; p < h->max_context; p++)
        for (int i = 0; i < half; i++) {
            const double ang = p * pow(h->cfg.rope_theta, -2.0 * i / h->rd);
            hc[(size_t)p * half + i] = (float)cos(ang);
            hs[(size_t)p * half + i] = (float)sin(ang);
        }
    if ((st = ga_cuda_dalloc((void **)&h->rope_cos, n * 4, "RoPE tables", err)) ||
        (st = ga_cuda_dalloc((void **)&h->rope_sin, n * 4, "RoPE tables", err)))
        goto done;
    if (cudaMemcpy(h->rope_cos, hc, n * 4, cudaMemcpyHostToDevice) != cudaSuccess ||
        cudaMemcpy(h->rope_sin, hs, n * 4, cudaMemcpyHostToDevice) != cudaSuccess)
        st = ga_err_set(err, GA_ERR_CUDA, "copying the RoPE tables to the GPU failed");
done:
    free(hc);
    free(hs);
    return st;
}

static void hyb_free(ga_backend *b) {
    ga_cuda_hyb *h = (ga_cuda_hyb *)b;
    if (!h) return;
    cudaSetDevice(h->g.dev);
    if (h->g.stream) cudaStreamSynchronize(h->g.stream);
    ga_cuda_drop_graphs(&h->g);
    free(h->g.graphs);
    scratch_free(h);
    ga_cuda_hyb_free_weights(h);
    cudaFree(h->kv);
    cudaFree(h->gk);
    cudaFree(h->gv);
    cudaFree(h->d_tab);
    cudaFreeHost(h->h_tab);
    cudaFree(h->conv_state);
    cudaFree(h->rec_state);
    cudaFree(h->rope_cos);
    cudaFree(h->rope_sin);
    cudaFree(h->dec_work);
    cudaFree(h->g.d_streams);
    cudaFree(h->g.d_next);
    cudaFree(h->g.samp_scratch);
    cudaFreeHost(h->g.h_streams);
    cudaFreeHost(h->g.h_next);
    cudaFree(h->g.cap_map);
    cudaFree(h->g.cap_first);
    cudaFree(h->g.cap_gsum);
    cudaFree(h->g.cap_gbelow);
    cudaFree(h->g.f8_tmp);
    cudaFree(h->g.blas_ws);
    if (h->g.blas) cublasDestroy(h->g.blas);
    if (h->g.lt) cublasLtDestroy(h->g.lt);
    if (h->g.stream) cudaStreamDestroy(h->g.stream);
    free(h->seq_pos);
    free(h);
}

static size_t kv_bytes_per_token(const ga_cuda_hyb *h) {
    return 2 * 2 * (size_t)h->n_full * h->nkv * h->hd;
}

static size_t state_bytes_per_seq(const ga_cuda_hyb *h) {
    return (size_t)h->n_lin * ((size_t)h->cd * (h->conv_k - 1) + (size_t)h->Hv * h->dk * h->dv) *
           sizeof(float);
}

/* backend.h's paged_init: K/V pools for the full-attention layers, the tables' device mirror
 * and the prefill's gather buffer, checked against free memory first. */
static ga_status hyb_paged_init(ga_backend *b, int n_blocks, int block_size,
                                const int32_t *const *tables, ga_err *err) {
    ga_cuda_hyb *h = (ga_cuda_hyb *)b;
    if (block_size < GA_CUDA_MIN_BLOCK)
        return ga_err_set(err, GA_ERR_UNSUPPORTED,
                          "the CUDA backend's paged KV cache needs --kv-block-size >= %d, got %d",
                          GA_CUDA_MIN_BLOCK, block_size);
    if (n_blocks < 1 || !tables || (int64_t)n_blocks * block_size > INT32_MAX)
        return ga_err_set(err, GA_ERR_ARG, "paged KV cache: %d blocks of %d tokens", n_blocks,
                          block_size);
    if (h->kv || h->paged)
        return ga_err_set(err, GA_ERR_ARG, "paged KV cache: the CUDA backend already has a cache");
    GA_CUDA_CHECK(cudaSetDevice(h->g.dev));
    ga_cuda_drop_graphs(&h->g); /* none should exist yet; they would address the slot layout */
    const int max_blocks = (h->max_context + block_size - 1) / block_size;
    const size_t layer_elems = (size_t)n_blocks * h->nkv * block_size * h->hd;
    const size_t pool = 2 * (size_t)h->n_full * layer_elems * 2;
    const size_t gather = 2 * (size_t)h->nkv * h->max_context * h->hd * 2;
    const size_t tab = (size_t)h->max_batch * max_blocks * sizeof(int32_t);
    size_t free_b = 0, total_b = 0;
    GA_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
    if (pool + gather + tab > free_b)
        return ga_err_set(err, GA_ERR_OOM,
                          "not enough GPU memory on %s for a paged KV cache of %d blocks of %d "
                          "tokens: %zu bytes needed, %zu of %zu free; lower --kv-blocks / "
                          "--kv-memory",
                          h->g.name, n_blocks, block_size, pool + gather + tab, free_b, total_b);
    ga_status st;
    if ((st = ga_cuda_dalloc(&h->kv, pool, "the paged KV cache", err)) ||
        (st = ga_cuda_dalloc(&h->gk, gather / 2, "the paged prefill's gather buffer", err)) ||
        (st = ga_cuda_dalloc(&h->gv, gather / 2, "the paged prefill's gather buffer", err)) ||
        (st = ga_cuda_dalloc((void **)&h->d_tab, tab, "the block tables", err)))
        goto fail;
    if (cudaMallocHost((void **)&h->h_tab, tab) != cudaSuccess) {
        h->h_tab = NULL;
        st = ga_err_set(err, GA_ERR_OOM, "pinned host allocation of the block tables failed");
        goto fail;
    }
    if (cudaMemset(h->d_tab, 0, tab) != cudaSuccess) {
        st = ga_err_set(err, GA_ERR_CUDA, "zeroing the block tables failed");
        goto fail;
    }
    h->kv_layer_elems = layer_elems;
    h->paged = true;
    h->block_size = block_size;
    h->n_blocks = n_blocks;
    h->max_blocks = max_blocks;
    h->tables = tables;
    return GA_OK;
fail:
    cudaFree(h->kv), cudaFree(h->gk), cudaFree(h->gv), cudaFree(h->d_tab);
    cudaFreeHost(h->h_tab);
    h->kv = h->gk = h->gv = NULL;
    h->d_tab = NULL;
    h->h_tab = NULL;
    (void)cudaGetLastError();
    return st;
}

/* The shapes the kernels take, refused up front with GA_ERR_UNSUPPORTED (auto falls back to
 * the CPU). The attention launchers decide their head_dim themselves (checked at the first
 * call would be too late): a dry run of their argument checks is not exposed, so the sizes
 * they are known to take are listed here. */
static ga_status check_shapes(const ga_cuda_hyb *h, ga_err *err) {
    const ga_config *c = &h->cfg;
    const ga_hybrid_config *hc = &c->hybrid;
    /* what the CPU reference refuses too (ga_hyb_check): no hybrid release has these */
    if (c->arch == GA_ARCH_QWEN3 || c->attention_bias || c->o_bias || !hc->attn_output_gate)
        return ga_err_set(err, GA_ERR_UNSUPPORTED,
                          "hybrid CUDA backend: a hybrid config with the output gate and no "
                          "attention biases is needed");
    if (h->nkv < 1 || h->nh % h->nkv || h->rd > h->hd || h->rd < 2 || h->rd % 2 ||
        (h->n_lin && (h->Hk < 1 || h->Hv % h->Hk || h->conv_k < 1)) ||
        (h->E && (h->K < 1 || h->K > h->E)))
        return ga_err_set(err, GA_ERR_UNSUPPORTED,
                          "hybrid CUDA backend: heads %d / %d, rotary %d of %d, linear heads %d / "
                          "%d, top-%d of %d experts",
                          h->nh, h->nkv, h->rd, h->hd, h->Hk, h->Hv, h->K, h->E);
    if (h->n_full && (h->hd % 32 || h->hd > 512))
        return ga_err_set(err, GA_ERR_UNSUPPORTED,
                          "the hybrid CUDA backend needs a head_dim that is a multiple of 32 up "
                          "to 512, this model has %d (use --device cpu)",
                          h->hd);
    if (h->n_lin && h->dk != 16 && h->dk != 32 && h->dk != 64 && h->dk != 128 && h->dk != 256)
        return ga_err_set(err, GA_ERR_UNSUPPORTED,
                          "the hybrid CUDA backend needs linear_key_head_dim 16/32/64/128/256, "
                          "this model has %d (use --device cpu)",
                          h->dk);
    if (h->n_lin && (h->conv_k > GA_GDN_MAX_CONV || h->dv > 1024))
        return ga_err_set(err, GA_ERR_UNSUPPORTED,
                          "the hybrid CUDA backend takes a conv kernel up to %d and "
                          "linear_value_head_dim up to 1024 (%d, %d)",
                          GA_GDN_MAX_CONV, h->conv_k, h->dv);
    if (h->E && (h->E > GA_MOE_MAX_EXPERTS || h->K > 64))
        return ga_err_set(err, GA_ERR_UNSUPPORTED,
                          "the hybrid CUDA backend takes up to %d experts and top-64 (%d, %d)",
                          GA_MOE_MAX_EXPERTS, h->E, h->K);
    return GA_OK;
}

/* Whether the shared attention launchers take this head_dim on this device (their set grows:
 * 64 and 128 today, 256 for the released hybrids next): one real prefill of one token over the
 * (poisoned) scratch, so a refusal comes at creation, where "auto" can still pick the CPU,
 * instead of at the first forward. Its output is scratch that every forward overwrites. */
static ga_status probe_attention(ga_cuda_hyb *h, ga_err *err) {
    if (!h->n_full) return GA_OK;
    const ga_attn_prefill_args a = {.q = h->q,
                                    .k = h->q,
                                    .v = h->q,
                                    .gate = h->gate,
                                    .out = h->attn,
                                    .T = 1,
                                    .n_heads = h->nh,
                                    .n_kv_heads = h->nkv,
                                    .hd = h->hd,
                                    .kv_stride = 1,
                                    .gate_mode = GA_GATE_ELEMENTWISE,
                                    .scale = 1.0f,
                                    /* the portable kernel: it bounds every load by the keys */
                                    .impl = GA_ATTN_IMPL_MMA,
                                    .devinfo = &h->g.devinfo};
    ga_status st = ga_attention_prefill(&a, h->g.stream, err);
    if (st == GA_ERR_UNSUPPORTED) {
        char why[sizeof err->msg];
        snprintf(why, sizeof why, "%s", err->msg);
        return ga_err_set(err, st,
                          "the hybrid CUDA backend cannot run this model: %s (use "
                          "--device cpu)",
                          why);
    }
    if (!st) GA_CUDA_CHECK(cudaStreamSynchronize(h->g.stream));
    return st;
}

static void set_shapes(ga_cuda_hyb *h) {
    const ga_config *c = &h->cfg;
    const ga_hybrid_config *hc = &c->hybrid;
    h->H = c->hidden_size;
    h->V = c->vocab_size;
    h->nh = c->n_heads;
    h->nkv = c->n_kv_heads;
    h->hd = c->head_dim;
    h->rd = hc->rotary_dim;
    h->qkv_dim = (2 * h->nh + 2 * h->nkv) * h->hd;
    h->n_lin = hc->n_linear_layers;
    h->n_full = c->n_layers - h->n_lin;
    if (h->n_lin) {
        h->Hk = hc->linear_num_key_heads;
        h->Hv = hc->linear_num_value_heads;
        h->dk = hc->linear_key_head_dim;
        h->dv = hc->linear_value_head_dim;
        h->kd = h->Hk * h->dk;
        h->vd = h->Hv * h->dv;
        h->cd = 2 * h->kd + h->vd;
        h->P = h->cd + h->vd + 2 * h->Hv;
        h->conv_k = hc->linear_conv_kernel_dim;
    }
    if (hc->moe && hc->n_moe_layers) {
        h->E = hc->num_experts;
        h->K = hc->num_experts_per_tok;
        h->Ie = hc->moe_intermediate_size;
        h->Is = hc->shared_expert_intermediate_size;
    }
}

/* The GEMM context as ga_cuda_backend_create makes it (cuda_backend.c). */
static ga_status gemm_setup(ga_cuda_hyb *h, const ga_session_opts *opts, ga_err *err) {
    ga_cuda *g = &h->g;
    switch (opts ? opts->cuda_gemm : GA_CUDA_GEMM_CUBLAS) {
    case GA_CUDA_GEMM_CUBLAS:
        g->gemm_impl = GA_GEMM_CUBLAS;
        break;
    case GA_CUDA_GEMM_LT:
        g->gemm_impl = GA_GEMM_LT;
        break;
    case GA_CUDA_GEMM_FALLBACK:
        g->gemm_impl = GA_GEMM_FALLBACK;
        break;
    case GA_CUDA_GEMM_CUBLAS_ONLY:
        g->gemm_impl = GA_GEMM_CUBLAS_ONLY;
        break;
    default:
        return ga_err_set(err, GA_ERR_ARG, "cuda_gemm %d is not a GEMM implementation",
                          (int)opts->cuda_gemm);
    }
    if (opts && opts->deterministic)
        return ga_err_set(err, GA_ERR_UNSUPPORTED,
                          "deterministic (batch-invariant) mode is not implemented for hybrid "
                          "models on CUDA (use --device cpu)");
    /* FP8 folders keep their FP8 projections and experts as FP8 unless told otherwise, as the
     * Qwen3 backend does (gattn.h says why): the same numbers at half the weight memory, which
     * is what lets Qwen3-Next-80B-A3B fit one GPU. */
    const ga_cuda_weights wd = opts ? opts->cuda_weights : GA_CUDA_WEIGHTS_AUTO;
    if (wd != GA_CUDA_WEIGHTS_AUTO && wd != GA_CUDA_WEIGHTS_BF16 && wd != GA_CUDA_WEIGHTS_FP8)
        return ga_err_set(err, GA_ERR_ARG, "cuda_weights %d is not a weights dtype", (int)wd);
    g->keep_fp8 = wd != GA_CUDA_WEIGHTS_BF16;
    g->fp8_math = opts ? opts->fp8_math : GA_FP8_MATH_EXACT;
    if (g->fp8_math != GA_FP8_MATH_EXACT && g->fp8_math != GA_FP8_MATH_FAST)
        return ga_err_set(err, GA_ERR_ARG, "fp8_math %d is not exact (0) or fast (1)",
                          (int)g->fp8_math);
    if (g->gemm_impl == GA_GEMM_LT && cublasLtCreate(&g->lt) != CUBLAS_STATUS_SUCCESS) {
        g->lt = NULL;
        return ga_err_set(err, GA_ERR_CUDA, "creating the cuBLASLt handle failed");
    }
    if (cudaStreamCreateWithFlags(&g->stream, cudaStreamNonBlocking) != cudaSuccess ||
        cublasCreate(&g->blas) != CUBLAS_STATUS_SUCCESS)
        return ga_err_set(err, GA_ERR_CUDA, "creating the CUDA stream / cuBLAS handle failed");
    ga_status st = ga_cuda_dalloc(&g->blas_ws, HYB_BLAS_WS, "the cuBLAS workspace", err);
    if (st) return st;
    g->blas_ws_bytes = HYB_BLAS_WS;
    if (cublasSetStream(g->blas, g->stream) != CUBLAS_STATUS_SUCCESS ||
        cublasSetWorkspace(g->blas, g->blas_ws, g->blas_ws_bytes) != CUBLAS_STATUS_SUCCESS ||
        cublasSetMathMode(g->blas,
                          CUBLAS_DEFAULT_MATH | CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION) !=
            CUBLAS_STATUS_SUCCESS)
        return ga_err_set(err, GA_ERR_CUDA, "configuring cuBLAS failed");
    return GA_OK;
}

ga_status ga_cuda_hybrid_backend_create(const ga_model *m, const ga_session_opts *opts,
                                        int max_context, int max_batch, ga_backend **out,
                                        ga_err *err) {
    *out = NULL;
    const ga_config *cfg = ga_model_config(m);
    ga_status st = GA_OK;
    if (cfg->arch == GA_ARCH_QWEN3 || !m->hyb)
        return ga_err_set(err, GA_ERR_ARG, "hybrid CUDA backend: the model is not bound");
    if (max_context <= 0 || max_batch <= 0)
        return ga_err_set(err, GA_ERR_ARG, "hybrid CUDA backend: max_context %d / max_batch %d",
                          max_context, max_batch);
    int ndev = 0;
    if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev == 0) {
        (void)cudaGetLastError();
        return ga_err_set(err, GA_ERR_UNSUPPORTED, "no CUDA GPU is available");
    }
    const int dev = opts ? opts->cuda_device : 0;
    if (dev < 0 || dev >= ndev)
        return ga_err_set(err, GA_ERR_ARG, "CUDA device %d does not exist (%d present)", dev, ndev);
    ga_cuda_hyb *h = calloc(1, sizeof *h);
    if (!h) return ga_err_set(err, GA_ERR_OOM, "out of host memory");
    h->model = m;
    h->cfg = *cfg;
    h->g.cfg = *cfg;
    h->g.model = m;
    h->g.dev = dev;
    h->max_context = h->g.max_context = max_context;
    h->max_batch = h->g.max_batch = max_batch;
    set_shapes(h);
    const bool paged = ga_opts_paged(opts) && h->n_full > 0;
    h->base = (ga_backend){.name = h->g.name,
                           .device = GA_DEVICE_CUDA,
                           .forward = ga_cuda_hyb_forward,
                           .decode_batch = ga_cuda_hyb_decode_batch,
                           .forward_multi = ga_cuda_hyb_forward_multi,
                           .decode_sample = ga_cuda_hyb_decode_sample,
                           .free = hyb_free,
                           .impl = h,
                           .paged_init = h->n_full > 0 ? hyb_paged_init : NULL,
                           .kv_token_bytes = kv_bytes_per_token(h),
                           .kv_fixed_bytes = (size_t)max_batch * state_bytes_per_seq(h)};
    struct cudaDeviceProp prop;
    if ((st = check_shapes(h, err))) goto fail;
    if (cudaSetDevice(dev) != cudaSuccess || cudaGetDeviceProperties(&prop, dev) != cudaSuccess) {
        st = ga_err_set(err, GA_ERR_CUDA, "CUDA device %d: %s", dev,
                        cudaGetErrorName(cudaGetLastError()));
        goto fail;
    }
    if (prop.major < 8) {
        st = ga_err_set(err, GA_ERR_UNSUPPORTED, "%s (sm_%d%d): gattn needs sm_80 or newer",
                        prop.name, prop.major, prop.minor);
        goto fail;
    }
    snprintf(h->g.name, sizeof h->g.name, "%s", prop.name);
    if ((st = ga_cuda_devinfo_query(&h->g.devinfo, err))) goto fail;
    if ((st = gemm_setup(h, opts, err))) goto fail;

    const char *impl = getenv("GA_GDN_CHUNK_IMPL");
    h->gdn_chunk_impl = impl && !strcmp(impl, "1") ? 1 : 2;
    const int chunk = max_context < HYB_PREFILL_CHUNK ? max_context : HYB_PREFILL_CHUNK;
    const int rows = chunk > max_batch ? chunk : max_batch;
    h->kv_layer_elems = paged ? 0 : (size_t)max_batch * h->nkv * (size_t)max_context * h->hd;
    const size_t kv = 2 * (size_t)h->n_full * h->kv_layer_elems * 2;
    const size_t states = (size_t)max_batch * state_bytes_per_seq(h);
    const size_t ws = ga_attention_decode_workspace(max_batch, h->nh, h->hd, max_context);
    const size_t wc = ga_attention_decode_counters(max_batch, h->nh, h->nkv);
    /* the weights as they will sit on the device (FP8 matrices at a byte a weight), and the
     * bf16 buffer the largest FP8 one is dequantised into */
    uint64_t weights = 0;
    if ((st = ga_cuda_hyb_weight_plan(h, &weights, &h->g.f8_tmp_elems, err))) goto fail;
    if (opts && opts->cuda_weights == GA_CUDA_WEIGHTS_FP8 && !h->g.f8_tmp_elems) {
        st = ga_err_set(err, GA_ERR_ARG,
                        "FP8 weights on the device asked for, but %s has no projection stored as "
                        "F8_E4M3 with block scales of a power-of-two width >= 8",
                        ga_model_name(m));
        goto fail;
    }
    const size_t f8_tmp = h->g.f8_tmp_elems * 2;
    const size_t samp = ga_sample_topk_scratch_bytes(max_batch, h->V) + (size_t)max_batch * 12;
    const uint64_t need = weights + f8_tmp + kv + states + scratch_bytes(h, rows) + ws + wc + samp +
                          2ull * max_context * (h->rd / 2) * 4 + HYB_BLAS_WS;
    size_t free_b = 0, total_b = 0;
    if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) {
        st = ga_err_set(err, GA_ERR_CUDA, "cudaMemGetInfo failed");
        goto fail;
    }
    if (need > free_b) {
        st = ga_err_set(err, GA_ERR_OOM,
                        "not enough GPU memory on %s: %llu bytes needed (weights %llu%s, KV "
                        "cache %zu and DeltaNet states %zu for max_batch %d x max_context %d) but "
                        "%zu of %zu bytes are free; lower --max-context or the batch",
                        h->g.name, (unsigned long long)need, (unsigned long long)weights,
                        h->g.f8_tmp_elems ? " with FP8 kept as FP8" : "", kv, states, max_batch,
                        max_context, free_b, total_b);
        goto fail;
    }
    h->seq_pos = calloc((size_t)max_batch, sizeof *h->seq_pos);
    h->L = calloc((size_t)cfg->n_layers, sizeof *h->L);
    if (!h->seq_pos || !h->L) {
        st = ga_err_set(err, GA_ERR_OOM, "out of host memory");
        goto fail;
    }
    if ((st = ga_cuda_hyb_upload(h, opts ? opts->progress : NULL, opts ? opts->progress_user : NULL,
                                 err)))
        goto fail;
    h->g.weight_bytes = weights;
    if (f8_tmp && (st = ga_cuda_dalloc(&h->g.f8_tmp, f8_tmp, "the FP8 dequantisation buffer", err)))
        goto fail;
    if (kv && (st = ga_cuda_dalloc(&h->kv, kv, "the KV cache", err))) goto fail;
    if (h->n_lin) {
        const size_t cs = (size_t)h->n_lin * max_batch * h->cd * (h->conv_k - 1) * 4;
        const size_t rs = (size_t)h->n_lin * max_batch * h->Hv * h->dk * h->dv * 4;
        if ((st = ga_cuda_dalloc((void **)&h->conv_state, cs, "the DeltaNet conv states", err)) ||
            (st = ga_cuda_dalloc((void **)&h->rec_state, rs, "the DeltaNet states", err)))
            goto fail;
    }
    if (h->n_full && (st = rope_tables(h, err))) goto fail;
    if ((st = scratch_alloc(h, rows, err)) || (st = probe_attention(h, err))) goto fail;
    if ((st = ga_cuda_dalloc((void **)&h->dec_work, ws + wc, "the decode workspace", err)))
        goto fail;
    h->dec_counters = (unsigned *)((char *)h->dec_work + ws);
    if (cudaMemset(h->dec_counters, 0, wc) != cudaSuccess ||
        cudaStreamSynchronize(h->g.stream) != cudaSuccess) {
        st = ga_err_set(err, GA_ERR_CUDA, "zeroing the decode counters failed");
        goto fail;
    }
    /* decode_sample's device token selection, sized for max_batch rows */
    if ((st = ga_cuda_dalloc((void **)&h->g.d_streams, (size_t)max_batch * sizeof(uint64_t),
                             "the sampler's streams", err)) ||
        (st = ga_cuda_dalloc((void **)&h->g.d_next, (size_t)max_batch * sizeof(int32_t),
                             "the sampled ids", err)) ||
        (st = ga_cuda_dalloc((void **)&h->g.samp_scratch,
                             ga_sample_topk_scratch_bytes(max_batch, h->V), "the sampler's scratch",
                             err)))
        goto fail;
    if (cudaMallocHost((void **)&h->g.h_streams, (size_t)max_batch * sizeof(uint64_t)) !=
            cudaSuccess ||
        cudaMallocHost((void **)&h->g.h_next, (size_t)max_batch * sizeof(int32_t)) != cudaSuccess) {
        st = ga_err_set(err, GA_ERR_OOM, "pinned host allocation failed");
        goto fail;
    }
    /* decode graphs per (batch size, KV-length bucket), captured on first use (cuda_hybrid_fwd.c)
     */
    h->g.n_kv_buckets = 1;
    while ((GA_KV_BUCKET0 << (h->g.n_kv_buckets - 1)) < max_context)
        h->g.n_kv_buckets++;
    h->g.graphs = calloc(((size_t)max_batch + 1) * h->g.n_kv_buckets, sizeof(cudaGraphExec_t));
    if (!h->g.graphs) {
        st = ga_err_set(err, GA_ERR_OOM, "out of host memory");
        goto fail;
    }
    *out = &h->base;
    return GA_OK;
fail:
    hyb_free(&h->base);
    return st;
}
