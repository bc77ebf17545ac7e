/*
 * The prefill chunk as a setting (ga_session_opts.prefill_chunk; issue 12): the CUDA backend
 * runs a prompt in passes of that many rows, with no synchronisation between passes, and the
 * result must not depend on it beyond the rounding of GEMMs of another height.
 *
 * Section cpu (every build): the session's check of the option (negative and too large
 * refused with a message naming it, 0 and the bounds taken) and that the CPU backend, which
 * ignores it, gives the same logits whatever it is.
 *
 * Section gpu (label gpu, exit 77 without a GPU): one 2,500-token prompt prefilled with
 * passes of 64, 300 (not a power of two), 512 and 2048 rows (2048: a pass taller than the
 * logits scratch, whose LM head runs in blocks), each through the backend itself so that the
 * test can see the pass height it took and read the KV cache back:
 *  - every position's logits against the CPU reference (rel L2 <= 2e-2, as test_cuda_model);
 *  - deterministic mode (the plain GEMM: every row's arithmetic is its own): logits and the
 *    whole KV cache bitwise the same for every pass height, and the last-row-only prefill,
 *    a prefill split into two calls and a multi-sequence prefill of three prefixes (pieces
 *    that straddle passes, and a piece's row of the block tables holding another sequence in
 *    the next pass) bitwise equal to the rows of the whole prefill;
 *  - the default mode (cuBLAS picks kernels by height): the same comparisons within 2e-2;
 *  - the same with a paged cache whose blocks are interleaved between sequences.
 * Without the double-buffered staging, a pass's pinned tokens, rows and tables could be
 * rewritten by the next pass before their copies ran, which the multi-sequence prefill with
 * 64-row passes would show as wrong rows.
 */
#include <stdint.h>

#include "testutil.h"

#ifdef GA_HAVE_CUDA
#include <cuda_runtime.h>

#include "core/backend.h"
#include "cuda/cuda_internal.h"
#include "cuda_testutil.h"
#endif

static uint64_t rng = 0x5eed0c4c0ffeeull;

static ga_model *make_model(ga_gate_mode gate, int hd, bool tied, bool bias) {
    ga_config c = {.vocab_size = 1000,
                   .hidden_size = 256,
                   .intermediate_size = 512,
                   .n_layers = 3,
                   .n_heads = 4,
                   .n_kv_heads = 2,
                   .head_dim = hd,
                   .rms_norm_eps = 1e-6f,
                   .rope_theta = 1e6,
                   .max_position_embeddings = 1 << 16,
                   .tie_word_embeddings = tied,
                   .use_qk_norm = true,
                   .attention_bias = bias,
                   .o_bias = bias,
                   .gate = gate,
                   .torch_dtype = GA_BF16,
                   .n_eos = 1,
                   .eos_token_ids = {999},
                   .bos_token_id = -1};
    ga_err e = {{0}};
    ga_model *m = NULL;
    CHECK_OK(ga_model_random(&c, 21, GA_BF16, &m, &e), &e);
    return m;
}

/* ------------------------------------------------------------------ cpu: the option */

static void test_option(void) {
    ga_model *m = make_model(GA_GATE_HEADWISE, 16, true, false);
    if (!m) return;
    const int V = ga_model_config(m)->vocab_size, T = 37;
    int32_t tok[37];
    for (int i = 0; i < T; i++)
        tok[i] = (int32_t)(ga_test_rand_u64(&rng) % (uint64_t)V);
    const struct {
        int chunk;
        bool ok;
    } cases[] = {{-1, false}, {-512, false}, {GA_PREFILL_CHUNK_MAX + 1, false}, {0, true},
                 {1, true},   {7, true},     {GA_PREFILL_CHUNK_MAX, true}};
    float *ref = malloc((size_t)V * sizeof(float)), *got = malloc((size_t)V * sizeof(float));
    bool have_ref = false;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ga_session_opts o = {.device = GA_DEVICE_CPU,
                             .max_context = 64,
                             .n_threads = 2,
                             .prefill_chunk = cases[i].chunk};
        ga_session *s = NULL;
        ga_err e = {{0}};
        ga_status st = ga_session_create(m, &o, &s, &e);
        if (!cases[i].ok) {
            char want[32];
            snprintf(want, sizeof want, "prefill_chunk %d", cases[i].chunk);
            printf("prefill_chunk %d: %s: %s\n", cases[i].chunk, ga_status_name(st), e.msg);
            CHECK_MSG(st == GA_ERR_ARG && s == NULL, "prefill_chunk %d accepted", cases[i].chunk);
            CHECK_MSG(strstr(e.msg, want) != NULL, "the error does not name '%s': %s", want, e.msg);
            ga_session_free(s);
            continue;
        }
        CHECK_OK(st, &e);
        if (!s) continue;
        /* The CPU backend ignores the setting: the same logits, bit for bit. */
        CHECK_OK(ga_session_forward(s, 0, tok, T, false, have_ref ? got : ref, &e), &e);
        if (have_ref)
            CHECK_MSG(!memcmp(got, ref, (size_t)V * sizeof(float)),
                      "CPU logits differ with prefill_chunk %d", cases[i].chunk);
        have_ref = true;
        ga_session_free(s);
    }
    free(ref);
    free(got);
    ga_model_free(m);
}

/* ------------------------------------------------------------------ gpu: pass heights */
#ifdef GA_HAVE_CUDA

#define T_PROMPT 2500
#define CTX 4096
#define BATCH 4
#define BS 16
#define TOL_L2 2e-2
static const int chunks[] = {512, 64, 300, 2048}; /* the first is the reference */
#define N_CHUNKS ((int)(sizeof chunks / sizeof chunks[0]))
/* The multi-sequence prefill: three prefixes of the prompt, in sequences 3, 0 and 1. */
static const int multi_len[3] = {700, 50, 1750}, multi_seq[3] = {3, 0, 1};

/* What one backend produced for the prompt. */
typedef struct run {
    float *all;       /* (T, V) every position */
    float *last;      /* (V) the last-row-only prefill */
    float *split;     /* (T - P, V) rows P.. of a prefill in two calls (P, then the rest) */
    float *multi;     /* (3, V) each prefix's last row, from one forward_multi */
    float *multi_all; /* (sum multi_len, V) forward_multi with every position */
    uint16_t *kv;     /* (L, 2, n_kv, T, hd) bf16: sequence 2's cache after the whole prefill */
    size_t kv_elems;
    int rows, logit_rows; /* the scratch the backend made */
} run;

static void run_free(run *r) {
    free(r->all), free(r->last), free(r->split), free(r->multi), free(r->multi_all), free(r->kv);
    memset(r, 0, sizeof *r);
}

#define SPLIT_P 1000

/* Block b of sequence s in the paged test: the four sequences' blocks interleaved, in reverse
 * within each (so neither block order nor sequence order is the pool's). */
static int32_t block_of(int s, int b, int max_blocks) {
    return (int32_t)((max_blocks - 1 - b) * BATCH + (s + 1) % BATCH);
}

/* Sequence seq's K and V of positions [0, T) for every layer, read back from the cache. */
static void read_kv(const ga_cuda *c, int seq, int T, const int32_t *const *tables, uint16_t *out) {
    const int L = c->cfg.n_layers, nkv = c->cfg.n_kv_heads, hd = c->cfg.head_dim;
    uint16_t *o = out;
    for (int l = 0; l < L; l++)
        for (int kv = 0; kv < 2; kv++) {
            const uint16_t *base = kv ? ga_cuda_vcache(c, l) : ga_cuda_kcache(c, l);
            for (int h = 0; h < nkv; h++) {
                if (!c->paged) {
                    const uint16_t *src = base + ((size_t)seq * nkv + h) * c->max_context * hd;
                    CU(cudaMemcpy(o, src, (size_t)T * hd * 2, cudaMemcpyDeviceToHost));
                    o += (size_t)T * hd;
                    continue;
                }
                for (int p0 = 0; p0 < T; p0 += c->block_size) {
                    const int n = T - p0 < c->block_size ? T - p0 : c->block_size;
                    const size_t blk = (size_t)tables[seq][p0 / c->block_size];
                    const uint16_t *src = base + ((blk * nkv + h) * c->block_size) * hd;
                    CU(cudaMemcpy(o, src, (size_t)n * hd * 2, cudaMemcpyDeviceToHost));
                    o += (size_t)n * hd;
                }
            }
        }
}

static float *nan_rows(int rows, int V) {
    float *p = malloc((size_t)rows * V * sizeof(float));
    for (size_t i = 0; p && i < (size_t)rows * V; i++)
        p[i] = NAN;
    return p;
}

/* One backend with passes of `chunk` rows: the prompt every way run describes. */
static bool run_backend(const ga_model *m, int chunk, bool det, bool paged, const int32_t *tok,
                        run *r) {
    const int V = ga_model_config(m)->vocab_size, T = T_PROMPT;
    ga_session_opts o = {.device = GA_DEVICE_CUDA,
                         .prefill_chunk = chunk,
                         .deterministic = det,
                         .cuda_gemm = det ? GA_CUDA_GEMM_CUBLAS : ga_test_cuda_gemm()};
    if (paged) o.kv_blocks = 1; /* the backend skips its slot cache; paged_init sizes it */
    ga_backend *b = NULL;
    ga_err e = {{0}};
    memset(r, 0, sizeof *r);
    CHECK_OK(ga_cuda_backend_create(m, &o, CTX, BATCH, &b, &e), &e);
    if (!b) return false;
    ga_cuda *c = b->impl;
    const int max_blocks = (CTX + BS - 1) / BS;
    int32_t *tab_mem = malloc((size_t)BATCH * max_blocks * sizeof(int32_t));
    const int32_t *tables[BATCH];
    for (int s = 0; s < BATCH; s++) {
        for (int k = 0; k < max_blocks; k++)
            tab_mem[(size_t)s * max_blocks + k] = block_of(s, k, max_blocks);
        tables[s] = tab_mem + (size_t)s * max_blocks;
    }
    if (paged) {
        ga_status st = b->paged_init(b, BATCH * max_blocks, BS, tables, &e);
        CHECK_OK(st, &e);
        if (st) {
            free(tab_mem);
            b->free(b);
            return false;
        }
    }

    /* The setting took effect: the pass height and the scratch it sized. */
    r->rows = c->sc.rows;
    r->logit_rows = c->sc.logit_rows;
    const int want_rows = chunk > BATCH ? chunk : BATCH;
    CHECK_MSG(c->prefill_chunk == chunk && c->sc.rows == want_rows,
              "prefill_chunk %d: the backend's pass is %d rows, its scratch %d", chunk,
              c->prefill_chunk, c->sc.rows);
    CHECK_MSG(c->sc.logit_rows == (want_rows < GA_CUDA_LOGIT_ROWS ? want_rows : GA_CUDA_LOGIT_ROWS),
              "prefill_chunk %d: %d rows of logits scratch", chunk, c->sc.logit_rows);

    r->all = nan_rows(T, V);
    r->last = nan_rows(1, V);
    r->split = nan_rows(T - SPLIT_P, V);
    r->multi = nan_rows(3, V);
    int mt = multi_len[0] + multi_len[1] + multi_len[2];
    r->multi_all = nan_rows(mt, V);
    const ga_config *cfg = ga_model_config(m);
    r->kv_elems = (size_t)cfg->n_layers * 2 * cfg->n_kv_heads * T * cfg->head_dim;
    r->kv = malloc(r->kv_elems * sizeof(uint16_t));
    int32_t *mtok = malloc((size_t)mt * sizeof(int32_t));
    int off[4] = {0};
    for (int i = 0; i < 3; i++) {
        memcpy(mtok + off[i], tok, (size_t)multi_len[i] * sizeof(int32_t));
        off[i + 1] = off[i] + multi_len[i];
    }
    const int zeros[3] = {0, 0, 0};
    bool ok = true;
#define STEP(call)                                                                                 \
    do {                                                                                           \
        ga_status st_ = (call);                                                                    \
        CHECK_MSG(st_ == GA_OK, "chunk %d %s: %s: %s", chunk, #call, ga_status_name(st_), e.msg);  \
        if (st_) ok = false;                                                                       \
    } while (0)
    STEP(b->forward(b, 2, 0, tok, T, true, r->all, NULL, &e));
    if (ok) read_kv(c, 2, T, tables, r->kv);
    if (ok) STEP(b->forward(b, 1, 0, tok, T, false, r->last, NULL, &e));
    if (ok) STEP(b->forward(b, 0, 0, tok, SPLIT_P, false, NULL, NULL, &e));
    if (ok) STEP(b->forward(b, 0, SPLIT_P, tok + SPLIT_P, T - SPLIT_P, true, r->split, NULL, &e));
    if (ok) STEP(b->forward_multi(b, 3, multi_seq, zeros, mtok, off, false, r->multi, &e));
    if (ok) STEP(b->forward_multi(b, 3, multi_seq, zeros, mtok, off, true, r->multi_all, &e));
#undef STEP
    free(mtok);
    free(tab_mem);
    b->free(b);
    return ok;
}

/* Row-wise comparison: bitwise when exact, else the worst row's relative L2 <= TOL_L2. */
static void compare(const char *what, const float *got, const float *want, int rows, int V,
                    bool exact) {
    if (exact) {
        int bad = 0, first = -1;
        for (int r = 0; r < rows; r++)
            if (memcmp(got + (size_t)r * V, want + (size_t)r * V, (size_t)V * sizeof(float))) {
                if (first < 0) first = r;
                bad++;
            }
        printf("  %-52s rows %4d  bitwise: %d differ\n", what, rows, bad);
        CHECK_MSG(bad == 0, "%s: %d of %d rows differ (first %d)", what, bad, rows, first);
        return;
    }
    double worst = 0;
    for (int r = 0; r < rows; r++) {
        double x = ga_test_rel_l2(got + (size_t)r * V, want + (size_t)r * V, (size_t)V);
        if (!(x <= worst)) worst = x; /* NaN sticks */
    }
    printf("  %-52s rows %4d  worst rel L2 %.3e\n", what, rows, worst);
    CHECK_MSG(worst <= TOL_L2, "%s: rel L2 %.3e > %.1e", what, worst, TOL_L2);
}

static float bf16_f(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static void compare_kv(const char *what, const uint16_t *got, const uint16_t *want, size_t n,
                       bool exact) {
    if (exact) {
        size_t bad = 0;
        for (size_t i = 0; i < n; i++)
            bad += got[i] != want[i];
        printf("  %-52s %zu bf16 values, bitwise: %zu differ\n", what, n, bad);
        CHECK_MSG(bad == 0, "%s: %zu of %zu KV values differ", what, bad, n);
        return;
    }
    float *a = malloc(n * sizeof(float)), *b = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        a[i] = bf16_f(got[i]), b[i] = bf16_f(want[i]);
    double e = ga_test_rel_l2(a, b, n);
    printf("  %-52s %zu bf16 values, rel L2 %.3e\n", what, n, e);
    CHECK_MSG(e <= TOL_L2, "%s: KV rel L2 %.3e", what, e);
    free(a), free(b);
}

static void test_heights(const char *name, ga_model *m, const float *cpu, const int32_t *tok) {
    const int V = ga_model_config(m)->vocab_size, T = T_PROMPT;
    for (int paged = 0; paged < 2; paged++)
        for (int det = 1; det >= 0; det--) {
            printf("%s, %s cache, %s mode\n", name, paged ? "paged" : "slot",
                   det ? "deterministic" : "default");
            run ref = {0};
            for (int k = 0; k < N_CHUNKS; k++) {
                run r;
                if (!run_backend(m, chunks[k], det, paged, tok, &r)) {
                    run_free(&r);
                    continue;
                }
                char what[128];
                snprintf(what, sizeof what, "pass %d: every position vs CPU", chunks[k]);
                compare(what, r.all, cpu, T, V, false);
                /* Against the whole prefill of the same backend: the same rows. */
                snprintf(what, sizeof what, "pass %d: last row only vs whole", chunks[k]);
                compare(what, r.last, r.all + (size_t)(T - 1) * V, 1, V, det);
                snprintf(what, sizeof what, "pass %d: %d + %d in two calls vs whole", chunks[k],
                         SPLIT_P, T - SPLIT_P);
                compare(what, r.split, r.all + (size_t)SPLIT_P * V, T - SPLIT_P, V, det);
                for (int i = 0; i < 3; i++) {
                    snprintf(what, sizeof what, "pass %d: multi, prefix %d's last row", chunks[k],
                             multi_len[i]);
                    compare(what, r.multi + (size_t)i * V, r.all + (size_t)(multi_len[i] - 1) * V,
                            1, V, det);
                }
                for (int i = 0, o = 0; i < 3; o += multi_len[i], i++) {
                    snprintf(what, sizeof what, "pass %d: multi, every row of prefix %d", chunks[k],
                             multi_len[i]);
                    compare(what, r.multi_all + (size_t)o * V, r.all, multi_len[i], V, det);
                }
                if (k == 0) {
                    ref = r;
                    continue;
                }
                if (!ref.all) { /* the reference run failed (reported) */
                    run_free(&r);
                    continue;
                }
                /* Against the reference pass height: GEMM-height rounding only. */
                snprintf(what, sizeof what, "pass %d vs %d: every position", chunks[k], chunks[0]);
                compare(what, r.all, ref.all, T, V, det);
                snprintf(what, sizeof what, "pass %d vs %d: KV cache", chunks[k], chunks[0]);
                compare_kv(what, r.kv, ref.kv, r.kv_elems, det);
                run_free(&r);
            }
            run_free(&ref);
        }
}

static void test_gpu(void) {
    const struct {
        const char *name;
        ga_gate_mode gate;
        int hd;
        bool tied, bias;
    } vs[] = {{"elementwise hd128 untied bias", GA_GATE_ELEMENTWISE, 128, false, true},
              {"baseline hd64 tied", GA_GATE_NONE, 64, true, false}};
    for (size_t v = 0; v < sizeof vs / sizeof vs[0]; v++) {
        ga_model *m = make_model(vs[v].gate, vs[v].hd, vs[v].tied, vs[v].bias);
        if (!m) continue;
        const int V = ga_model_config(m)->vocab_size, T = T_PROMPT;
        int32_t *tok = malloc((size_t)T * sizeof(int32_t));
        for (int i = 0; i < T; i++)
            tok[i] = (int32_t)(ga_test_rand_u64(&rng) % (uint64_t)V);
        /* The CPU reference (fp32, shares no code with the GPU path). */
        float *cpu = nan_rows(T, V);
        ga_session_opts o = {.device = GA_DEVICE_CPU, .max_context = T};
        ga_session *s = NULL;
        ga_err e = {{0}};
        CHECK_OK(ga_session_create(m, &o, &s, &e), &e);
        if (s) CHECK_OK(ga_session_forward(s, 0, tok, T, true, cpu, &e), &e);
        ga_session_free(s);
        test_heights(vs[v].name, m, cpu, tok);
        free(cpu);
        free(tok);
        ga_model_free(m);
    }
}
#endif

/* Sections: cpu (every build), gpu (CUDA builds; 77 without a GPU); none runs both. */
int main(int argc, char **argv) {
    if (ga_test_want(argc, argv, "cpu")) test_option();
#ifdef GA_HAVE_CUDA
    if (ga_test_want(argc, argv, "gpu")) {
        if (!ga_cuda_available()) {
            printf("no CUDA GPU: gpu section skipped\n");
            if (argc > 1) return 77;
        } else {
            test_gpu();
        }
    }
#endif
    return ga_test_finish();
}
