/*
 * The GEMM wrapper of the CUDA backend: every projection is Y = X . W^T with X the
 * activations (M tokens x K) and W a checkpoint Linear weight (N out x K in), both row-major
 * bf16. cuBLAS is column-major, so we compute Y^T (N x M, column-major == Y row-major) =
 * W^T-as-stored (op T on the K x N column-major view of W) times X^T (the K x M column-major
 * view of X, op N). Accumulation is fp32 (CUBLAS_COMPUTE_32F, no reduced-precision
 * reductions); the output is bf16 or fp32. By default, decode batches (M <= GA_GEMV_AUTO_MAX_M,
 * K a multiple of 8) take the weight-streaming kernel of kernels/gemv.cu instead, with the
 * same contract; GA_CUDA_GEMM_CUBLAS_ONLY keeps cuBLAS for them (to compare the two). A decode
 * step that takes the GEMV also fuses the norms, residual adds and SwiGLU into it
 * (ga_cuda_decode_fused, cuda_forward.c); GA_CUDA_GEMM_CUBLAS_ONLY turns that off too.
 *
 * Two alternatives with the same contract, chosen by ga_session_opts.cuda_gemm at backend
 * creation, separate a cuBLAS problem on a given machine from a bug in the rest of the backend:
 * "lt" calls cuBLASLt directly (descriptors and a heuristic algorithm per call: fine for
 * prefill and for captured decode graphs, slower for eager small calls), "fallback" the plain
 * kernel of kernels/gemm_fallback.cu.
 *
 * FP8 weights kept as FP8 (ga_cuda_proj): a pass that would take the bf16 GEMV takes its FP8
 * form, which reads half the bytes and returns the same bits; any other pass dequantises the
 * weight into one bf16 buffer just before its GEMM (the buffer the size of the largest
 * projection, reused by every GEMM of the stream in order), so prefill, decode batches above
 * GA_GEMV_AUTO_MAX_M and the cuBLASLt / fallback / deterministic paths compute exactly what
 * they compute on the bf16 upload. The cost is that pass's dequantisation: 3 bytes a weight
 * moved (read 1, write 2) on top of the GEMM's 2. Using the FP8 GEMV for batches 3-8 would
 * avoid it but sum in another order than cuBLAS does there (not the bf16 upload's numbers);
 * an FP8 tensor-core GEMM (cuBLASLt block scales) is the way to fast large batches, with other
 * numbers again.
 */
#include <stdint.h>

#include "cuda_internal.h"

/* The largest decode batch that takes kernels/gemv.cu by default. Measured on an H200 at the
 * 1.7B shape (a whole decode step, profile_step --gemm default vs cublas-only, 2026-12-01):
 * M = 1: 1.551 vs 1.625 ms, M = 2: 1.428 vs 1.645 ms; M = 4: 1.753 vs 1.664 and M = 8: 2.571
 * vs 1.688, where each weight chunk feeds more FMAs than one warp issues in time and cuBLAS's
 * tiles win (bench/RESULTS.md). */
#define GA_GEMV_AUTO_MAX_M 2

static bool aligned16(const void *p) {
    return ((uintptr_t)p & 15) == 0;
}

/* The fused GEMVs' conditions for one projection, bf16 or FP8. */
static bool fused_ok(const void *x, const void *w, const ga_f8_scales *f8, int rows, int K) {
    return f8->scale ? ga_gemv_f8_fused_supported(x, w, f8, rows, K)
                     : ga_gemv_fused_supported(x, w, rows, K);
}

bool ga_cuda_decode_fused(const ga_cuda *c, int rows) {
    const ga_config *cfg = &c->cfg;
    const int H = cfg->hidden_size, I = cfg->intermediate_size;
    if (c->gemm_impl != GA_GEMM_CUBLAS || rows < 1 || rows > GA_GEMV_AUTO_MAX_M) return false;
    /* Scratch rows come from cudaMalloc (256-byte aligned) with row strides of H, I and
     * attn_dim elements, so the shapes' multiples of 8 keep every row 16-byte aligned. */
    if (!ga_gemv_norm_supported(c->sc.x, c->final_norm, c->lm_head, rows, H)) return false;
    for (int l = 0; l < cfg->n_layers; l++) {
        const ga_cuda_layer *w = &c->layers[l];
        if (w->f8_qkv.scale || w->f8_o.scale || w->f8_gu.scale || w->f8_down.scale) {
            if (!aligned16(w->input_norm) || !aligned16(w->post_norm) ||
                !fused_ok(c->sc.x, w->w_qkv, &w->f8_qkv, rows, H) ||
                !fused_ok(c->sc.x, w->w_gu, &w->f8_gu, rows, H) ||
                !fused_ok(c->sc.attn, w->w_o, &w->f8_o, rows, c->attn_dim) ||
                !fused_ok(c->sc.act, w->w_down, &w->f8_down, rows, I))
                return false;
            continue;
        }
        if (!ga_gemv_norm_supported(c->sc.x, w->input_norm, w->w_qkv, rows, H) ||
            !ga_gemv_norm_supported(c->sc.x, w->post_norm, w->w_gu, rows, H) ||
            !ga_gemv_fused_supported(c->sc.attn, w->w_o, rows, c->attn_dim) ||
            !ga_gemv_fused_supported(c->sc.act, w->w_down, rows, I))
            return false;
    }
    return true;
}

ga_status ga_cuda_proj(ga_cuda *c, const void *x, const void *w, const ga_f8_scales *f8, void *y,
                       bool y_f32, int M, int N, int K, ga_err *err) {
    if (!f8 || !f8->scale) return ga_cuda_gemm(c, x, w, y, y_f32, M, N, K, err);
    if (M < 0 || N <= 0 || K <= 0)
        return ga_err_set(err, GA_ERR_ARG, "gemm: bad shape M %d N %d K %d", M, N, K);
    if (M == 0) return GA_OK;
    // Where ga_cuda_gemm would stream the bf16 weight through the GEMV (the same condition).
    if (c->gemm_impl == GA_GEMM_CUBLAS && M <= GA_GEMV_AUTO_MAX_M &&
        ga_gemv_f8_supported(x, w, f8, M, K))
        return ga_gemv_f8(x, w, f8, y, y_f32, M, N, K, c->stream, err);
    if ((size_t)N * (size_t)K > c->f8_tmp_elems)
        return ga_err_set(err, GA_ERR_ARG,
                          "gemm: FP8 weight %d x %d is larger than the dequantisation buffer (%zu)",
                          N, K, c->f8_tmp_elems);
    ga_status st = ga_f8_dequant(w, f8, c->f8_tmp, N, K, c->stream, err);
    if (st) return st;
    return ga_cuda_gemm(c, x, c->f8_tmp, y, y_f32, M, N, K, err);
}

/* The same Y^T = W^T-op . X^T product through cuBLASLt. Stored layouts (column-major views):
 * W is K x N (ld K, op T), X is K x M (ld K, op N), Y is N x M (ld N). */
static ga_status gemm_lt(ga_cuda *c, const void *x, const void *w, void *y, bool y_f32, int M,
                         int N, int K, ga_err *err) {
    cublasLtMatmulDesc_t op = NULL;
    cublasLtMatrixLayout_t la = NULL, lb = NULL, ly = NULL;
    cublasLtMatmulPreference_t pref = NULL;
    const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    const uint64_t ws = c->blas_ws_bytes;
    const float alpha = 1.0f, beta = 0.0f;
    cublasLtMatmulHeuristicResult_t res;
    int nres = 0;
    cublasStatus_t s = cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F);
    if (!s) s = cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta);
    if (!s) s = cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb);
    if (!s) s = cublasLtMatrixLayoutCreate(&la, CUDA_R_16BF, (uint64_t)K, (uint64_t)N, K);
    if (!s) s = cublasLtMatrixLayoutCreate(&lb, CUDA_R_16BF, (uint64_t)K, (uint64_t)M, K);
    if (!s)
        s = cublasLtMatrixLayoutCreate(&ly, y_f32 ? CUDA_R_32F : CUDA_R_16BF, (uint64_t)N,
                                       (uint64_t)M, N);
    if (!s) s = cublasLtMatmulPreferenceCreate(&pref);
    if (!s)
        s = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                 &ws, sizeof ws);
    if (!s) s = cublasLtMatmulAlgoGetHeuristic(c->lt, op, la, lb, ly, ly, pref, 1, &res, &nres);
    if (!s && nres < 1) s = CUBLAS_STATUS_NOT_SUPPORTED;
    if (!s)
        s = cublasLtMatmul(c->lt, op, &alpha, w, la, x, lb, &beta, y, ly, y, ly, &res.algo,
                           c->blas_ws, c->blas_ws_bytes, c->stream);
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
    if (ly) cublasLtMatrixLayoutDestroy(ly);
    if (lb) cublasLtMatrixLayoutDestroy(lb);
    if (la) cublasLtMatrixLayoutDestroy(la);
    if (op) cublasLtMatmulDescDestroy(op);
    if (s)
        return ga_err_set(err, s == CUBLAS_STATUS_ALLOC_FAILED ? GA_ERR_OOM : GA_ERR_CUDA,
                          "cuBLASLt matmul M %d N %d K %d failed: %s", M, N, K,
                          cublasGetStatusName(s));
    return GA_OK;
}

ga_status ga_cuda_gemm(ga_cuda *c, const void *x, const void *w, void *y, bool y_f32, int M, int N,
                       int K, ga_err *err) {
    if (M < 0 || N <= 0 || K <= 0)
        return ga_err_set(err, GA_ERR_ARG, "gemm: bad shape M %d N %d K %d", M, N, K);
    if (M == 0) return GA_OK;
    if (c->gemm_impl == GA_GEMM_FALLBACK)
        return ga_gemm_fallback(x, w, y, y_f32, M, N, K, c->stream, err);
    if (c->gemm_impl == GA_GEMM_LT) return gemm_lt(c, x, w, y, y_f32, M, N, K, err);
    /* Decode batches: the weights stream through kernels/gemv.cu at close to the copy rate,
     * where cuBLAS's small-M tiles reach 1.1-3.0 TB/s (bench/RESULTS.md, the kernel profile). */
    if (c->gemm_impl == GA_GEMM_CUBLAS && M <= GA_GEMV_AUTO_MAX_M && ga_gemv_supported(x, w, M, K))
        return ga_gemv(x, w, y, y_f32, M, N, K, c->stream, err);
    const float alpha = 1.0f, beta = 0.0f;
    GA_CUBLAS_CHECK(cublasGemmEx(c->blas, CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, &alpha, w, CUDA_R_16BF,
                                 K, x, CUDA_R_16BF, K, &beta, y, y_f32 ? CUDA_R_32F : CUDA_R_16BF,
                                 N, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    return GA_OK;
}
