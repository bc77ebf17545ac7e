/* Shared helpers of the CLI: error lines, the stdout check, strict parsing of option values. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "core/model.h"

static void vline(const char *cmd, const char *fmt, va_list ap) {
    fprintf(stderr, "gattn %s: error: ", cmd);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

int ga_cli_fail(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vline(cmd, fmt, ap);
    va_end(ap);
    return GA_EXIT_FAIL;
}

int ga_cli_usage(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vline(cmd, fmt, ap);
    va_end(ap);
    return GA_EXIT_USAGE;
}

int ga_cli_fail_err(const char *cmd, const ga_err *err) {
    return ga_cli_fail(cmd, "%s", err->msg);
}

int ga_cli_finish_stdout(const char *cmd) {
    /* fflush reports the write that failed now; ferror one that failed earlier (a
     * line-buffered terminal flushes as it goes). errno is that of the last failure. */
    errno = 0;
    if (fflush(stdout) != 0 || ferror(stdout))
        return ga_cli_fail(cmd, "cannot write to stdout: %s",
                           errno ? strerror(errno) : "write error");
    return GA_EXIT_OK;
}

int ga_cli_int(const char *cmd, const char *opt, const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno == ERANGE || v < lo || v > hi) {
        ga_cli_usage(cmd, "%s: '%s' is not an integer in [%ld, %ld]", opt, s, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

int ga_cli_float(const char *cmd, const char *opt, const char *s, double lo, double hi,
                 double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (!*s || *end || errno == ERANGE || !isfinite(v) || v < lo || v > hi) {
        ga_cli_usage(cmd, "%s: '%s' is not a number in [%g, %g]", opt, s, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

int ga_cli_list(const char *cmd, const char *opt, const char *what, const char *s, int32_t **ids,
                int *n) {
    *ids = NULL;
    *n = 0;
    size_t cap = 1;
    for (const char *p = s; *p; p++)
        cap += *p == ',';
    int32_t *v = malloc(cap * sizeof *v);
    if (!v) {
        ga_cli_fail(cmd, "out of memory");
        return -1;
    }
    int k = 0;
    const char *p = s;
    for (;;) {
        while (*p == ' ')
            p++;
        const char *start = p;
        long long x = 0;
        while (*p >= '0' && *p <= '9') {
            x = x * 10 + (*p - '0');
            if (x > INT32_MAX) break;
            p++;
        }
        while (*p == ' ')
            p++;
        if (p == start || x > INT32_MAX || (*p && *p != ',')) {
            free(v);
            ga_cli_usage(cmd, "%s: '%s' is not a comma-separated list of %s (item %d)", opt, s,
                         what, k + 1);
            return -1;
        }
        v[k++] = (int32_t)x;
        if (!*p) break;
        p++;
    }
    *ids = v;
    *n = k;
    return 0;
}

int ga_cli_device(const char *cmd, const char *opt, const char *s, ga_device *out) {
    if (!strcmp(s, "cpu"))
        *out = GA_DEVICE_CPU;
    else if (!strcmp(s, "cuda") || !strcmp(s, "gpu"))
        *out = GA_DEVICE_CUDA;
    else if (!strcmp(s, "auto"))
        *out = GA_DEVICE_AUTO;
    else {
        ga_cli_usage(cmd, "%s: '%s' is not cpu, cuda or auto", opt, s);
        return -1;
    }
    return 0;
}

int ga_cli_parse_cuda_gemm(const char *cmd, const ga_opt *o, const char *v) {
    static const struct {
        const char *name;
        ga_cuda_gemm_impl impl;
    } impls[] = {{"cublas", GA_CUDA_GEMM_CUBLAS},
                 {"cublas-only", GA_CUDA_GEMM_CUBLAS_ONLY},
                 {"lt", GA_CUDA_GEMM_LT},
                 {"fallback", GA_CUDA_GEMM_FALLBACK}};
    for (size_t i = 0; i < sizeof impls / sizeof impls[0]; i++)
        if (!strcmp(v, impls[i].name)) {
            *(ga_cuda_gemm_impl *)o->dst = impls[i].impl;
            return 0;
        }
    ga_cli_usage(cmd, "%s: '%s' is not cublas, cublas-only, lt or fallback", o->name, v);
    return -1;
}

/* GPU bytes a Qwen3 FP8 folder saves with its projections kept as FP8: one byte a weight
 * instead of two, less the fp32 block scales and the row-to-scale table that come with them.
 * The choice of src/cuda/cuda_weights.c (f8_kept), per tensor: F8_E4M3 with bound scales of a
 * power-of-two width >= 8 along K, K a multiple of 8. */
/* Whether the CUDA backends keep a bound tensor as FP8 (cuda_weights.c, cuda_hybrid_weights.c:
 * block scales of a power-of-two width >= 8, K a multiple of 8). */
static bool f8_kept(const ga_tensor *t) {
    const int b = t ? t->block[1] : 0;
    return t && t->dtype == GA_F8_E4M3 && t->scale_inv && b >= 8 && !(b & (b - 1)) &&
           t->ndim == 2 && t->shape[1] % 8 == 0;
}

/* Device bytes of an FP8 matrix (rows, cols) in (b0, b1) blocks: the codes, the fp32 scales
 * and a 4-byte row-table entry a row. */
static uint64_t f8_bytes(int64_t rows, int64_t cols, int b0, int b1) {
    return (uint64_t)(rows * cols) +
           4ull * (uint64_t)((rows + b0 - 1) / b0) * ((cols + b1 - 1) / b1) + 4ull * (uint64_t)rows;
}

static bool ends_with(const char *s, const char *suffix) {
    const size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

typedef struct hyb_count {
    const ga_model *m;
    bool keep_fp8, per_token;
    double bytes;
} hyb_count;

static ga_status hyb_count_one(void *vctx, const char *name, int ndim, const int64_t *shape,
                               ga_err *err) {
    (void)err;
    hyb_count *hc = vctx;
    const ga_config *c = ga_model_config(hc->m);
    const ga_tensor *t = ga_store_find(hc->m->store, name);
    int64_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= shape[i];
    /* the backend's bf16 ones whatever the folder stores: the tables, the router and the
     * shared expert's gate (a few columns) */
    const bool never = ndim != 2 || ends_with(name, "embed_tokens.weight") ||
                       !strcmp(name, "lm_head.weight") || ends_with(name, "mlp.gate.weight") ||
                       ends_with(name, "shared_expert_gate.weight");
    bool fp8 = false;
    int b0 = c->fp8_block[0], b1 = c->fp8_block[1];
    if (!never && hc->keep_fp8 && t && t->ndim == 2 && t->shape[0] == shape[0] &&
        t->shape[1] == shape[1]) {
        fp8 = f8_kept(t);
        if (fp8) b0 = t->block[0], b1 = t->block[1];
    } else if (!never && hc->keep_fp8 && !t) {
        /* not in the folder (a config-only folder): as Qwen's FP8 releases store it, the
         * DeltaNet a / b projections bf16 (modules_to_not_convert) and the rest FP8 */
        fp8 = b0 > 0 && b1 >= 8 && !(b1 & (b1 - 1)) && shape[1] % 8 == 0 &&
              !ends_with(name, "in_proj_a.weight") && !ends_with(name, "in_proj_b.weight") &&
              !ends_with(name, "in_proj_ba.weight");
    }
    double b = fp8 ? (double)f8_bytes(shape[0], shape[1], b0, b1) : (ndim == 2 ? 2.0 : 4.0) * n;
    /* a decode step runs top-k of the E routed experts per token */
    if (hc->per_token && strstr(name, ".mlp.experts."))
        b *= (double)c->hybrid.num_experts_per_tok / c->hybrid.num_experts;
    hc->bytes += b;
    return GA_OK;
}

double ga_cli_hybrid_gpu_bytes(const ga_model *m, bool keep_fp8, bool per_token) {
    hyb_count hc = {.m = m, .keep_fp8 = keep_fp8, .per_token = per_token};
    ga_err err = {{0}};
    if (ga_model_config(m)->arch == GA_ARCH_QWEN3 ||
        ga_model_hyb_visit(ga_model_config(m), hyb_count_one, &hc, &err))
        return 0;
    return hc.bytes;
}

int64_t ga_cli_fp8_saving(const ga_model *m, bool per_token) {
    const ga_config *c = ga_model_config(m);
    if (c->arch != GA_ARCH_QWEN3)
        return (int64_t)(ga_cli_hybrid_gpu_bytes(m, false, per_token) -
                         ga_cli_hybrid_gpu_bytes(m, true, per_token));
    int64_t saved = 0;
    for (int l = 0; l < c->n_layers; l++) {
        const ga_layer_w *w = &m->layers[l];
        const ga_tensor *t[7] = {w->q_proj,    w->k_proj,  w->v_proj,   w->o_proj,
                                 w->gate_proj, w->up_proj, w->down_proj};
        for (int i = 0; i < 7; i++) {
            if (!f8_kept(t[i])) continue;
            saved +=
                ga_tensor_numel(t[i]) - 4 * ga_tensor_numel(t[i]->scale_inv) - 4 * t[i]->shape[0];
        }
    }
    return saved;
}

int ga_cli_parse_weights_dtype(const char *cmd, const ga_opt *o, const char *v) {
    if (!strcmp(v, "fp8"))
        *(ga_cuda_weights *)o->dst = GA_CUDA_WEIGHTS_FP8;
    else if (!strcmp(v, "bf16"))
        *(ga_cuda_weights *)o->dst = GA_CUDA_WEIGHTS_BF16;
    else {
        ga_cli_usage(cmd, "%s: '%s' is not fp8 or bf16", o->name, v);
        return -1;
    }
    return 0;
}

int ga_cli_parse_fp8_math(const char *cmd, const ga_opt *o, const char *v) {
    if (!strcmp(v, "exact"))
        *(ga_fp8_math *)o->dst = GA_FP8_MATH_EXACT;
    else if (!strcmp(v, "fast"))
        *(ga_fp8_math *)o->dst = GA_FP8_MATH_FAST;
    else {
        ga_cli_usage(cmd, "%s: '%s' is not exact or fast", o->name, v);
        return -1;
    }
    return 0;
}

int ga_cli_tp_check(const ga_cli_spec *spec, ga_cli_tp *t) {
    const int nd = t->devices.n;
    int rc = GA_EXIT_OK;
    if (nd && !t->n)
        rc = ga_cli_usage(spec->cmd, "--tp-devices needs --tensor-parallel N");
    else if (nd && nd != t->n)
        rc = ga_cli_usage(spec->cmd, "--tp-devices names %d devices for --tensor-parallel %d", nd,
                          t->n);
    t->n_dev = rc ? 0 : nd;
    for (int i = 0; i < t->n_dev; i++)
        t->dev[i] = t->devices.v[i];
    free(t->devices.v);
    t->devices.v = NULL;
    t->devices.n = 0;
    return rc;
}

void ga_cli_tp_set(const ga_cli_tp *t, ga_session_opts *so) {
    const bool on = t->n > 1;
    so->tensor_parallel = on ? t->n : 0;
    so->n_tp_devices = on ? t->n_dev : 0;
    for (int i = 0; i < so->n_tp_devices; i++)
        so->tp_devices[i] = t->dev[i];
}

int ga_cli_shape_apply(const ga_cli_spec *spec, const ga_config *over, ga_config *c, bool *any) {
    static const struct {
        const char *name;
        size_t off;
    } fields[] = {
        {"--layers", offsetof(ga_config, n_layers)},
        {"--hidden", offsetof(ga_config, hidden_size)},
        {"--intermediate", offsetof(ga_config, intermediate_size)},
        {"--heads", offsetof(ga_config, n_heads)},
        {"--kv-heads", offsetof(ga_config, n_kv_heads)},
        {"--head-dim", offsetof(ga_config, head_dim)},
        {"--vocab", offsetof(ga_config, vocab_size)},
        {"--max-pos", offsetof(ga_config, max_position_embeddings)},
    };
    *any = false;
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        const ga_opt *o = ga_cli_opt(spec, fields[i].name);
        if (!o || !o->given) continue;
        memcpy((char *)c + fields[i].off, (const char *)over + fields[i].off, sizeof(int));
        *any = true;
    }
    if (c->n_heads % c->n_kv_heads)
        return ga_cli_usage(spec->cmd, "--heads %d is not a multiple of --kv-heads %d", c->n_heads,
                            c->n_kv_heads);
    if (c->head_dim % 2)
        return ga_cli_usage(spec->cmd, "--head-dim %d must be even (RoPE)", c->head_dim);
    return 0;
}
