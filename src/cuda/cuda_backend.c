/*
 * The CUDA backend's lifetime: ga_cuda_backend_create (device, cuBLAS, weights, KV cache,
 * RoPE tables, activation scratch; with a memory check up front that says what is needed
 * versus free) and its matching free. The work itself is in cuda_forward.c and cuda_decode.c.
 *
 * Memory layout on the device:
 *   weights   bf16, fused per layer (see cuda_weights.c)
 *   KV cache  one allocation, per layer k then v, each (max_batch, n_kv, max_context, hd) bf16;
 *             a sequence id is its slot. Paged (ga_session_opts kv_blocks / kv_memory): no
 *             slot cache at creation; paged_init allocates per layer k then v pools
 *             (n_blocks, n_kv, block_size, hd) bf16, the tables' device mirror and the
 *             prefill's gather buffer (2 x (n_kv, max_context, hd) bf16)
 *   rope      fp32 cos and sin tables (max_context, hd/2)
 *   scratch   activations for max(prefill chunk, max_batch) rows, logits for at most
 *             max(GA_CUDA_LOGIT_ROWS, max_batch) of them (cuda_internal.h)
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rope.h"
#include "cuda_internal.h"

/* Prefill runs in passes of at most ga_session_opts.prefill_chunk tokens (default
 * GA_PREFILL_CHUNK_DEFAULT in gattn.h; each pass a continuation of the previous), which sizes
 * the activation scratch; a capture needs the whole prompt at once and grows the scratch for
 * it. Issue 12: at 512 rows o_proj's and down_proj's GEMMs (N = 2048) fill 64-128 CTAs of the
 * H200's 132 SMs, and every small kernel pays its launch and tail once a pass. */
#define GA_CUDA_BLAS_WS ((size_t)32 << 20)

static ga_status cuda_malloc(void **p, size_t bytes, const char *what, ga_err *err) {
    *p = NULL;
    cudaError_t e = cudaMalloc(p, bytes ? bytes : 16);
    if (e == cudaSuccess) return GA_OK;
    (void)cudaGetLastError();
    *p = NULL;
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    return ga_err_set(err, e == cudaErrorMemoryAllocation ? GA_ERR_OOM : GA_ERR_CUDA,
                      "GPU allocation of %s failed: %zu bytes needed, %zu bytes free (%s)", what,
                      bytes, free_b, cudaGetErrorName(e));
}

int ga_cuda_logit_rows(int rows, int max_batch) {
    const int cap = max_batch > GA_CUDA_LOGIT_ROWS ? max_batch : GA_CUDA_LOGIT_ROWS;
    return rows < cap ? rows : cap;
}

size_t ga_cuda_scratch_bytes(const ga_config *cfg, int rows, int logit_rows) {
    const size_t G = (size_t)(cfg->n_heads / cfg->n_kv_heads);
    const size_t gate_dim = (size_t)ga_config_gate_dim(cfg);
    const size_t qkv = (size_t)ga_config_q_rows(cfg) + 2 * (size_t)cfg->n_kv_heads * cfg->head_dim;
    const size_t gu = 2 * (size_t)cfg->intermediate_size;
    const size_t attn = (size_t)cfg->n_heads * cfg->head_dim;
    (void)G;
    size_t per_row = (size_t)cfg->hidden_size * (4 + 4 + 2) + (qkv > gu ? qkv : gu) * 2 +
                     attn * 2 * 2 + gate_dim * 2 + (size_t)cfg->intermediate_size * 2 +
                     (size_t)cfg->n_heads * 4 + 5 * 4;
    return per_row * (size_t)rows + (size_t)cfg->vocab_size * 4 * (size_t)logit_rows +
           16 * 256; // + alignment slack of the separate buffers
}

void ga_cuda_scratch_free(ga_cuda *c) {
    ga_cuda_scratch *s = &c->sc;
    void *bufs[] = {s->x,      s->delta,     s->xn,    s->qkv,     s->q,
                    s->gate,   s->attn,      s->act,   s->logits,  s->lse,
                    s->tokens, s->positions, s->slots, s->kv_lens, s->dest};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        cudaFree(bufs[i]);
    memset(s, 0, sizeof *s);
}

/* Allocates the buffers for `rows` into the empty c->sc; on failure leaves it empty. */
static ga_status scratch_set(ga_cuda *c, int rows, ga_err *err) {
    const ga_config *cfg = &c->cfg;
    ga_cuda_scratch *s = &c->sc;
    const size_t r = (size_t)rows, H = (size_t)cfg->hidden_size, I = (size_t)cfg->intermediate_size;
    const size_t qkv = (size_t)c->qkv_dim > 2 * I ? (size_t)c->qkv_dim : 2 * I;
    const int logit_rows = ga_cuda_logit_rows(rows, c->max_batch);
    const size_t lr = (size_t)logit_rows;
    ga_status st;
    if ((st = cuda_malloc((void **)&s->x, r * H * 4, "activations", err)) ||
        (st = cuda_malloc((void **)&s->delta, r * H * 4, "activations", err)) ||
        (st = cuda_malloc(&s->xn, r * H * 2, "activations", err)) ||
        (st = cuda_malloc(&s->qkv, r * qkv * 2, "activations", err)) ||
        (st = cuda_malloc(&s->q, r * c->attn_dim * 2, "activations", err)) ||
        (c->gate_dim && (st = cuda_malloc(&s->gate, r * c->gate_dim * 2, "activations", err))) ||
        (st = cuda_malloc(&s->attn, r * c->attn_dim * 2, "activations", err)) ||
        (st = cuda_malloc(&s->act, r * I * 2, "activations", err)) ||
        (st = cuda_malloc((void **)&s->logits, lr * cfg->vocab_size * 4, "logits", err)) ||
        (st = cuda_malloc((void **)&s->lse, r * cfg->n_heads * 4, "activations", err)) ||
        (st = cuda_malloc((void **)&s->tokens, r * 4, "activations", err)) ||
        (st = cuda_malloc((void **)&s->positions, r * 4, "activations", err)) ||
        (st = cuda_malloc((void **)&s->slots, r * 4, "activations", err)) ||
        (st = cuda_malloc((void **)&s->kv_lens, r * 4, "activations", err)) ||
        (st = cuda_malloc((void **)&s->dest, r * 4, "activations", err))) {
        ga_cuda_scratch_free(c);
        return st;
    }
    /* Every activation starts as NaN (0xFF bytes: NaN in fp32 and bf16), so a kernel that
     * reads an element nothing wrote makes the logits NaN, which every GPU test rejects. This
     * is the check compute-sanitizer's initcheck cannot make here: cuBLAS's Hopper kernels
     * store their output with TMA, which initcheck does not see, so it reports the next
     * kernel's reads of a GEMM output as uninitialised (213,041 reports at norm.cu's read of
     * delta for a 333-token prefill, none with the plain GEMM kernel, and finite logits equal
     * to the CPU's with this poison: bench/RESULTS.md, 2026-12-01). One memset per buffer at
     * allocation, on the backend's stream (ordered before its kernels), never on the hot path. */
    void *fp[] = {s->x, s->delta, s->xn, s->qkv, s->q, s->gate, s->attn, s->act, s->logits, s->lse};
    const size_t fp_bytes[] = {r * H * 4,           r * H * 4,           r * H * 2,
                               r * qkv * 2,         r * c->attn_dim * 2, r * c->gate_dim * 2,
                               r * c->attn_dim * 2, r * I * 2,           lr * cfg->vocab_size * 4,
                               r * cfg->n_heads * 4};
    for (size_t i = 0; i < sizeof fp / sizeof fp[0]; i++) {
        if (!fp[i]) continue;
        cudaError_t e = cudaMemsetAsync(fp[i], 0xFF, fp_bytes[i], c->stream);
        if (e != cudaSuccess) {
            ga_cuda_scratch_free(c);
            return ga_err_set(err, GA_ERR_CUDA, "poisoning the activations failed: %s",
                              cudaGetErrorName(e));
        }
    }
    s->rows = rows;
    s->logit_rows = logit_rows;
    return GA_OK;
}

ga_status ga_cuda_scratch_alloc(ga_cuda *c, int rows, ga_err *err) {
    const int old = c->sc.rows;
    // Free first so the new set can use the old one's memory; if it does not fit, put the old
    // size back, so a failed capture of a long prompt leaves a working backend behind.
    ga_cuda_scratch_free(c);
    ga_status st = scratch_set(c, rows, err);
    if (st && old > 0) {
        ga_err ignored = {{0}};
        (void)scratch_set(c, old, &ignored);
    }
    return st;
}

void ga_cuda_drop_graphs(ga_cuda *c) {
    if (!c->graphs) return;
    for (int b = 0; b < (c->max_batch + 1) * c->n_kv_buckets; b++) {
        if (c->graphs[b]) cudaGraphExecDestroy(c->graphs[b]);
        c->graphs[b] = NULL;
    }
}

/* cos/sin tables for every cache position with the model's RoPE scaling, built on the host by
 * ga_rope_tables (core/rope.h: frequency, angle and cos/sin in double, rounded once to fp32),
 * the same table the CPU reference builds, so long positions carry no fp32 angle error and
 * yarn's attention factor rides on cos/sin without a kernel change. */
static ga_status rope_tables(ga_cuda *c, ga_err *err) {
    const size_t n = (size_t)c->max_context * (c->cfg.head_dim / 2);
    float *hc = NULL, *hs = NULL;
    ga_status st = ga_rope_tables(&c->cfg, c->cfg.head_dim, c->max_context, &hc, &hs, err);
    if (st) return st;
    if ((st = cuda_malloc((void **)&c->rope_cos, n * 4, "RoPE tables", err))) goto done;
    if ((st = cuda_malloc((void **)&c->rope_sin, n * 4, "RoPE tables", err))) goto done;
    if (cudaMemcpy(c->rope_cos, hc, n * 4, cudaMemcpyHostToDevice) != cudaSuccess ||
        cudaMemcpy(c->rope_sin, hs, n * 4, cudaMemcpyHostToDevice) != cudaSuccess)
        st = ga_err_set(err, GA_ERR_CUDA, "copying the RoPE tables to the GPU failed");
done:
    free(hc);
    free(hs);
    return st;
}

void ga_cuda_state_free(ga_cuda *c) {
    if (c) {
        if (c->tp) ga_cuda_tp_free(c->tp); // the other ranks and the communicator first
        c->tp = NULL;
        cudaSetDevice(c->dev);
        if (c->stream) cudaStreamSynchronize(c->stream);
        ga_cuda_drop_graphs(c);
        free(c->graphs);
        ga_cuda_scratch_free(c);
        ga_cuda_free_weights(c);
        cudaFree(c->f8_tmp);
        cudaFree(c->kv);
        cudaFree(c->gk);
        cudaFree(c->gv);
        cudaFree(c->d_tab);
        cudaFreeHost(c->h_tab);
        cudaFreeHost(c->h_pass);
        for (int i = 0; i < 2; i++)
            if (c->pass_free[i]) cudaEventDestroy(c->pass_free[i]);
        cudaFree(c->rope_cos);
        cudaFree(c->rope_sin);
        cudaFree(c->dec_work);
        cudaFree(c->cap_map);
        cudaFree(c->cap_first);
        cudaFree(c->cap_gsum);
        cudaFree(c->cap_gbelow);
        cudaFreeHost(c->h_in);
        cudaFreeHost(c->h_streams);
        cudaFreeHost(c->h_next);
        cudaFree(c->d_streams);
        cudaFree(c->d_next);
        cudaFree(c->samp_scratch);
        cudaFree(c->blas_ws);
        if (c->blas) cublasDestroy(c->blas);
        if (c->lt) cublasLtDestroy(c->lt);
        if (c->stream) cudaStreamDestroy(c->stream);
        free(c);
    }
}

static void cuda_free(ga_backend *b) {
    if (!b) return;
    ga_cuda_state_free(b->impl);
    free(b);
}

/* The paged KV cache (backend.h's paged_init): pools of n_blocks blocks per layer for K and
 * V, the device mirror of the tables and the prefill's gather buffer, checked against free
 * memory first. The slot cache was skipped at creation. */
static ga_status cuda_paged_init(ga_backend *b, int n_blocks, int block_size,
                                 const int32_t *const *tables, ga_err *err) {
    ga_cuda *c = b->impl;
    if (c->tp) return ga_cuda_tp_paged_init(c->tp, n_blocks, block_size, tables, err);
    return ga_cuda_state_paged_init(c, n_blocks, block_size, tables, err);
}

ga_status ga_cuda_state_paged_init(ga_cuda *c, int n_blocks, int block_size,
                                   const int32_t *const *tables, ga_err *err) {
    const ga_config *cfg = &c->cfg;
    if (block_size < GA_CUDA_MIN_BLOCK)
        return ga_err_set(err, GA_ERR_UNSUPPORTED,
                          "the CUDA backend's paged KV cache needs --kv-block-size >= %d, got %d",
                          GA_CUDA_MIN_BLOCK, block_size);
    if (n_blocks < 1 || !tables || (int64_t)n_blocks * block_size > INT32_MAX)
        return ga_err_set(err, GA_ERR_ARG,
                          "paged KV cache: %d blocks of %d tokens (at most %d tokens in all)",
                          n_blocks, block_size, INT32_MAX);
    if (c->kv || c->paged)
        return ga_err_set(err, GA_ERR_ARG, "paged KV cache: the CUDA backend already has a cache");
    GA_CUDA_CHECK(cudaSetDevice(c->dev));
    const int max_blocks = (c->max_context + block_size - 1) / block_size;
    const size_t layer_elems = (size_t)n_blocks * cfg->n_kv_heads * block_size * cfg->head_dim;
    const size_t pool = 2 * (size_t)cfg->n_layers * layer_elems * 2;
    const size_t gather = 2 * (size_t)cfg->n_kv_heads * c->max_context * cfg->head_dim * 2;
    const size_t tab = (size_t)c->max_batch * max_blocks * sizeof(int32_t);
    size_t free_b = 0, total_b = 0;
    GA_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
    if (pool + gather + tab > free_b)
        return ga_err_set(err, GA_ERR_OOM,
                          "not enough GPU memory on %s for a paged KV cache of %d blocks of %d "
                          "tokens: %zu bytes needed (pool %zu, gather buffer %zu), %zu of %zu "
                          "free; lower --kv-blocks / --kv-memory",
                          c->name, n_blocks, block_size, pool + gather + tab, pool, gather, free_b,
                          total_b);
    ga_status st;
    if ((st = cuda_malloc(&c->kv, pool, "the paged KV cache", err)) ||
        (st = cuda_malloc(&c->gk, gather / 2, "the paged prefill's gather buffer", err)) ||
        (st = cuda_malloc(&c->gv, gather / 2, "the paged prefill's gather buffer", err)) ||
        (st = cuda_malloc((void **)&c->d_tab, tab, "the block tables", err)))
        goto fail;
    // Two halves: see h_tab in cuda_internal.h.
    if (cudaMallocHost((void **)&c->h_tab, 2 * tab) != cudaSuccess) {
        st = ga_err_set(err, GA_ERR_OOM, "pinned host allocation of the block tables failed");
        goto fail;
    }
    if (cudaMemset(c->d_tab, 0, tab) != cudaSuccess) {
        st = ga_err_set(err, GA_ERR_CUDA, "zeroing the block tables failed");
        goto fail;
    }
    c->kv_layer_elems = layer_elems;
    c->paged = true;
    c->block_size = block_size;
    c->n_blocks = n_blocks;
    c->max_blocks = max_blocks;
    c->tables = tables;
    ga_cuda_drop_graphs(c); // none should exist yet; they would address the slot layout
    return GA_OK;
fail:
    cudaFree(c->kv), cudaFree(c->gk), cudaFree(c->gv), cudaFree(c->d_tab);
    cudaFreeHost(c->h_tab);
    c->kv = c->gk = c->gv = NULL;
    c->d_tab = NULL;
    c->h_tab = NULL;
    (void)cudaGetLastError();
    return st;
}

/* Bytes of the decode attention's split partials for max_batch rows: the largest split any
 * bucket takes, or the fixed split of deterministic mode. */
static size_t decode_workspace(const ga_cuda *c) {
    const ga_config *cfg = &c->cfg;
    if (c->deterministic)
        return ga_attention_decode_workspace_fixed(c->max_batch, cfg->n_heads, cfg->head_dim,
                                                   GA_DECODE_INVARIANT_SPLITS);
    return ga_attention_decode_workspace(c->max_batch, cfg->n_heads, cfg->head_dim, c->max_context);
}

/* Everything the backend will hold, checked against free memory before the first large
 * allocation so an oversized request fails with numbers instead of half-way through. */
static ga_status check_memory(ga_cuda *c, int scratch_rows, ga_err *err) {
    const int logit_rows = ga_cuda_logit_rows(scratch_rows, c->max_batch);
    const ga_config *cfg = &c->cfg;
    const uint64_t weights = c->weight_bytes + c->f8_tmp_elems * 2;
    const uint64_t kv = c->kv_layer_elems ? 2ull * cfg->n_layers * c->kv_layer_elems * 2 : 0;
    const uint64_t rope = 2ull * c->max_context * (cfg->head_dim / 2) * 4;
    const uint64_t act =
        ga_cuda_scratch_bytes(cfg, scratch_rows, logit_rows) + decode_workspace(c) +
        ga_attention_decode_counters(c->max_batch, cfg->n_heads, cfg->n_kv_heads) + GA_CUDA_BLAS_WS;
    size_t free_b = 0, total_b = 0;
    GA_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
    const uint64_t need = weights + kv + rope + act;
    if (need > free_b)
        return ga_err_set(err, GA_ERR_OOM,
                          "not enough GPU memory on %s: %llu bytes needed (KV cache %llu for "
                          "max_batch %d x max_context %d, weights %llu, activations %llu for "
                          "%d rows, RoPE %llu) but %zu of %zu bytes are free; lower "
                          "--max-context, the batch or --prefill-chunk (a paged cache is sized "
                          "later, by --kv-blocks / --kv-memory)",
                          c->name, (unsigned long long)need, (unsigned long long)kv, c->max_batch,
                          c->max_context, (unsigned long long)weights, (unsigned long long)act,
                          scratch_rows, (unsigned long long)rope, free_b, total_b);
    return GA_OK;
}

ga_status ga_cuda_state_create(const ga_model *m, const ga_session_opts *opts, int dev,
                               int max_context, int max_batch, int tp_ranks, ga_cuda **out,
                               ga_err *err) {
    *out = NULL;
    const ga_config *cfg = ga_model_config(m);
    if (max_context <= 0 || max_batch <= 0)
        return ga_err_set(err, GA_ERR_ARG, "cuda backend: max_context %d / max_batch %d",
                          max_context, max_batch);
    // Hybrid families (Gated DeltaNet layers) bind other tensors; the session routes them to
    // the CPU, and this keeps any other caller from reading Qwen3 layers that are not there.
    if (cfg->arch != GA_ARCH_QWEN3)
        return ga_err_set(err, GA_ERR_UNSUPPORTED,
                          "hybrid (Gated DeltaNet) models run on the CPU backend only in this "
                          "build: issue 15");
    // The attention kernels are instantiated for these head sizes (their tile shapes); the
    // other kernels take any even head_dim up to 256. Refuse early with a clear message.
    if (cfg->head_dim != 64 && cfg->head_dim != 128)
        return ga_err_set(err, GA_ERR_UNSUPPORTED,
                          "the CUDA backend supports head_dim 64 and 128, this model has %d "
                          "(use --device cpu)",
                          cfg->head_dim);
    int ndev = 0;
    if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev == 0) {
        (void)cudaGetLastError();
        return ga_err_set(err, GA_ERR_UNSUPPORTED, "no CUDA GPU is available");
    }
    const int chunk_opt = opts ? opts->prefill_chunk : 0;
    if (chunk_opt < 0 || chunk_opt > GA_PREFILL_CHUNK_MAX)
        return ga_err_set(err, GA_ERR_ARG, "cuda backend: prefill_chunk %d out of range [0, %d]",
                          chunk_opt, GA_PREFILL_CHUNK_MAX);
    if (dev < 0 || dev >= ndev)
        return ga_err_set(err, GA_ERR_ARG, "CUDA device %d does not exist (%d present)", dev, ndev);

    ga_cuda *c = calloc(1, sizeof *c);
    if (!c) return ga_err_set(err, GA_ERR_OOM, "out of host memory");
    c->tp_ranks = tp_ranks;
    c->model = m;
    c->cfg = *cfg;
    c->dev = dev;
    c->max_context = max_context;
    c->max_batch = max_batch;
    c->G = cfg->n_heads / cfg->n_kv_heads;
    c->q_rows = ga_config_q_rows(cfg);
    c->gate_dim = ga_config_gate_dim(cfg);
    c->kv_dim = cfg->n_kv_heads * cfg->head_dim;
    c->qkv_dim = c->q_rows + 2 * c->kv_dim;
    c->attn_dim = cfg->n_heads * cfg->head_dim;
    // Paged: the blocks come with paged_init, sized by the session from kv_token_bytes.
    c->kv_layer_elems = ga_opts_paged(opts) ? 0
                                            : (size_t)max_batch * cfg->n_kv_heads *
                                                  (size_t)max_context * cfg->head_dim;

    ga_status st = GA_OK;
    struct cudaDeviceProp prop;
    cudaError_t e = cudaSetDevice(dev);
    if (e == cudaSuccess) e = cudaGetDeviceProperties(&prop, dev);
    if (e != cudaSuccess) {
        st = ga_err_set(err, GA_ERR_CUDA, "CUDA device %d: %s", dev, cudaGetErrorName(e));
        goto fail;
    }
    if (prop.major < 8) {
        st = ga_err_set(err, GA_ERR_UNSUPPORTED, "%s (sm_%d%d): gattn needs sm_80 or newer",
                        prop.name, prop.major, prop.minor);
        goto fail;
    }
    snprintf(c->name, sizeof c->name, "%s", prop.name);
    if ((st = ga_cuda_devinfo_query(&c->devinfo, err))) goto fail;
    switch (opts ? opts->cuda_gemm : GA_CUDA_GEMM_CUBLAS) {
    case GA_CUDA_GEMM_CUBLAS:
        c->gemm_impl = GA_GEMM_CUBLAS;
        break;
    case GA_CUDA_GEMM_LT:
        c->gemm_impl = GA_GEMM_LT;
        break;
    case GA_CUDA_GEMM_FALLBACK:
        c->gemm_impl = GA_GEMM_FALLBACK;
        break;
    case GA_CUDA_GEMM_CUBLAS_ONLY:
        c->gemm_impl = GA_GEMM_CUBLAS_ONLY;
        break;
    default:
        st = ga_err_set(err, GA_ERR_ARG, "cuda_gemm %d is not a GEMM implementation",
                        (int)opts->cuda_gemm);
        goto fail;
    }
    if (opts && opts->deterministic) {
        /* cuBLAS picks kernels (and K splits) by shape and the GEMV serves only M <= 2, so a
         * row's sums would follow the batch; the plain kernel's do not. */
        if (c->gemm_impl != GA_GEMM_CUBLAS && c->gemm_impl != GA_GEMM_FALLBACK) {
            st = ga_err_set(err, GA_ERR_ARG,
                            "deterministic needs the plain GEMM (cuda_gemm fallback), not %d",
                            (int)opts->cuda_gemm);
            goto fail;
        }
        c->gemm_impl = GA_GEMM_FALLBACK;
        c->deterministic = true;
    }
    if (c->gemm_impl == GA_GEMM_LT && cublasLtCreate(&c->lt) != CUBLAS_STATUS_SUCCESS) {
        c->lt = NULL;
        st = ga_err_set(err, GA_ERR_CUDA, "creating the cuBLASLt handle failed");
        goto fail;
    }

    int chunk = chunk_opt ? chunk_opt : GA_PREFILL_CHUNK_DEFAULT;
    if (chunk > max_context) chunk = max_context;
    c->prefill_chunk = chunk;
    /* FP8 folders keep their FP8 projections as FP8 unless told otherwise (gattn.h says why);
     * the plan gives the device bytes check_memory counts. */
    const ga_cuda_weights wd = opts ? opts->cuda_weights : GA_CUDA_WEIGHTS_AUTO;
    if (wd != GA_CUDA_WEIGHTS_AUTO && wd != GA_CUDA_WEIGHTS_BF16 && wd != GA_CUDA_WEIGHTS_FP8) {
        st = ga_err_set(err, GA_ERR_ARG, "cuda_weights %d is not a weights dtype", (int)wd);
        goto fail;
    }
    c->keep_fp8 = wd != GA_CUDA_WEIGHTS_BF16;
    c->fp8_math = opts ? opts->fp8_math : GA_FP8_MATH_EXACT;
    if (c->fp8_math != GA_FP8_MATH_EXACT && c->fp8_math != GA_FP8_MATH_FAST) {
        st = ga_err_set(err, GA_ERR_ARG, "fp8_math %d is not exact (0) or fast (1)",
                        (int)c->fp8_math);
        goto fail;
    }
    c->weight_bytes = ga_cuda_weight_plan(c, &c->f8_tmp_elems);
    if (wd == GA_CUDA_WEIGHTS_FP8 && !c->f8_tmp_elems) {
        st = ga_err_set(err, GA_ERR_ARG,
                        "FP8 weights on the device asked for, but %s has no projection stored as "
                        "F8_E4M3 with block scales of a power-of-two width >= 8",
                        ga_model_name(m));
        goto fail;
    }
    int rows = chunk > max_batch ? chunk : max_batch;
    if ((st = check_memory(c, rows, err))) goto fail;

    if (cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking) != cudaSuccess ||
        cublasCreate(&c->blas) != CUBLAS_STATUS_SUCCESS) {
        st = ga_err_set(err, GA_ERR_CUDA, "creating the CUDA stream / cuBLAS handle failed");
        goto fail;
    }
    // The prefill staging's events (cuda_internal.h, h_pass).
    for (int i = 0; i < 2; i++)
        if (cudaEventCreateWithFlags(&c->pass_free[i], cudaEventDisableTiming) != cudaSuccess) {
            c->pass_free[i] = NULL;
            st = ga_err_set(err, GA_ERR_CUDA, "creating the prefill staging's events failed");
            goto fail;
        }
    if ((st = cuda_malloc(&c->blas_ws, GA_CUDA_BLAS_WS, "the cuBLAS workspace", err))) goto fail;
    c->blas_ws_bytes = GA_CUDA_BLAS_WS;
    // cublasSetStream resets the workspace to cuBLAS' own pool; ours is set after it so that
    // GEMMs captured into decode graphs never allocate.
    if (cublasSetStream(c->blas, c->stream) != CUBLAS_STATUS_SUCCESS ||
        cublasSetWorkspace(c->blas, c->blas_ws, c->blas_ws_bytes) != CUBLAS_STATUS_SUCCESS ||
        cublasSetMathMode(c->blas,
                          CUBLAS_DEFAULT_MATH | CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION) !=
            CUBLAS_STATUS_SUCCESS) {
        st = ga_err_set(err, GA_ERR_CUDA, "configuring cuBLAS failed");
        goto fail;
    }

    if ((st = ga_cuda_upload_weights(c, opts ? opts->progress : NULL,
                                     opts ? opts->progress_user : NULL, err)))
        goto fail;
    if (c->f8_tmp_elems &&
        (st = cuda_malloc(&c->f8_tmp, c->f8_tmp_elems * 2, "the FP8 dequantisation buffer", err)))
        goto fail;
    const size_t kv_bytes = 2 * (size_t)cfg->n_layers * c->kv_layer_elems * 2;
    if (kv_bytes && (st = cuda_malloc(&c->kv, kv_bytes, "the KV cache", err))) goto fail;
    if ((st = rope_tables(c, err))) goto fail;
    if ((st = ga_cuda_scratch_alloc(c, rows, err))) goto fail;
    /* The decode workspace, then the decode kernel's split counters (zeroed once here; every
     * launch leaves them zero) in the same allocation. */
    size_t ws = decode_workspace(c);
    size_t wc = ga_attention_decode_counters(max_batch, cfg->n_heads, cfg->n_kv_heads);
    if ((st = cuda_malloc((void **)&c->dec_work, ws + wc, "the decode workspace", err))) goto fail;
    c->dec_counters = (unsigned *)((char *)c->dec_work + ws);
    if ((e = cudaMemset(c->dec_counters, 0, wc)) != cudaSuccess) {
        st = ga_err_set(err, GA_ERR_CUDA, "zeroing the decode counters: %s", cudaGetErrorName(e));
        goto fail;
    }
    if (cudaMallocHost((void **)&c->h_in, 5 * (size_t)max_batch * sizeof(int32_t)) != cudaSuccess) {
        st = ga_err_set(err, GA_ERR_OOM, "pinned host allocation failed");
        goto fail;
    }
    /* Device token selection: only ids cross the bus per decode step. */
    if ((st = cuda_malloc((void **)&c->d_streams, (size_t)max_batch * sizeof(uint64_t),
                          "the sampler's streams", err)) ||
        (st = cuda_malloc((void **)&c->d_next, (size_t)max_batch * sizeof(int32_t),
                          "the sampled ids", err)) ||
        (st = cuda_malloc((void **)&c->samp_scratch,
                          ga_sample_topk_scratch_bytes(max_batch, cfg->vocab_size),
                          "the sampler's scratch", err)))
        goto fail;
    if (cudaMallocHost((void **)&c->h_streams, (size_t)max_batch * sizeof(uint64_t)) !=
            cudaSuccess ||
        cudaMallocHost((void **)&c->h_next, (size_t)max_batch * sizeof(int32_t)) != cudaSuccess) {
        st = ga_err_set(err, GA_ERR_OOM, "pinned host allocation failed");
        goto fail;
    }
    c->n_kv_buckets = 1;
    while ((GA_KV_BUCKET0 << (c->n_kv_buckets - 1)) < max_context)
        c->n_kv_buckets++;
    c->graphs = calloc(((size_t)max_batch + 1) * c->n_kv_buckets, sizeof(cudaGraphExec_t));
    if (!c->graphs) {
        st = ga_err_set(err, GA_ERR_OOM, "out of host memory");
        goto fail;
    }
    *out = c;
    return GA_OK;
fail:
    ga_cuda_state_free(c);
    return st;
}

ga_status ga_cuda_backend_create(const ga_model *m, const ga_session_opts *opts, int max_context,
                                 int max_batch, ga_backend **out, ga_err *err) {
    *out = NULL;
    if (opts && opts->tensor_parallel > 1)
        return ga_cuda_tp_backend_create(m, opts, max_context, max_batch, out, err);
    const ga_config *cfg = ga_model_config(m);
    ga_backend *b = calloc(1, sizeof *b);
    if (!b) return ga_err_set(err, GA_ERR_OOM, "out of host memory");
    ga_cuda *c = NULL;
    ga_status st = ga_cuda_state_create(m, opts, opts ? opts->cuda_device : 0, max_context,
                                        max_batch, 1, &c, err);
    if (st) {
        free(b);
        return st;
    }
    ga_cuda_backend_init(b, c);
    b->kv_token_bytes = 2 * 2 * (size_t)cfg->n_layers * cfg->n_kv_heads * cfg->head_dim;
    *out = b;
    return GA_OK;
}

void ga_cuda_backend_init(ga_backend *b, ga_cuda *c) {
    b->impl = c;
    b->name = c->name;
    b->device = GA_DEVICE_CUDA;
    b->forward = ga_cuda_forward;
    b->decode_batch = ga_cuda_decode_batch;
    b->decode_sample = ga_cuda_decode_sample;
    b->forward_multi = ga_cuda_forward_multi;
    b->step_mixed = ga_cuda_step_mixed;
    b->paged_init = cuda_paged_init;
    b->free = cuda_free;
}
