/*
 * Whole-model long context on CUDA against the CPU backend (issue 14): a small model trained
 * (randomly) for 4096 positions, stretched by YaRN x32 to a usable 131072
 * (ga_model_set_rope_scaling), so every position past 4096 runs on the scaled frequencies and
 * the attention factor.
 *
 * Sections (argv; none: all but `128k` and `selfcheck`):
 *  - `32k`: prefill 32768 tokens with all-positions logits on CUDA and on the CPU, compared
 *    at every 1024th row and the last 64 by rel L2 <= 2e-2 per row (the bf16 tolerance of
 *    test_cuda_model), then 16 decode steps on both (every row compared). Two models:
 *    head_dim 64 headwise and head_dim 128 elementwise.
 *  - `paged`: the same 32k prefill + 16 decode steps on a paged CUDA session (blocks of 16)
 *    equal the slot session's logits bit for bit (test_multi_paged established it at short
 *    lengths: the paged path writes the same K/V and reads it in the same order); then
 *    ga_session_forward_multi of 4 sequences of 8192 tokens vs 4 separate forwards on a twin
 *    session (slots and paged), rel L2 <= 2e-2 (other GEMM M, so not bitwise by design), and
 *    one batched decode step of the 4 after each.
 *  - `128k` (label slow): prefill 131056 tokens + 16 decode steps (131072 positions, the whole
 *    usable context) on CUDA and the CPU, head_dim 64 baseline (so every gate mode runs in
 *    some case), rows every 1024th and the last 64. One layer (2 heads / 1 KV head), so that
 *    the CPU half stays near a minute: its prefill is attention-bound, T^2 * hd * heads *
 *    layers * 2 flops = 2.2e12 per layer here, 16x a 32k prefill.
 *  - `selfcheck` (CPU only; not registered, run by hand): every section's code at 1/16 of the
 *    lengths with the CPU backend standing in for CUDA, where every comparison must be exactly
 *    0 (CPU vs CPU, paged vs slots and forward_multi vs separate are bitwise on the CPU
 *    backend). It checks the harness itself: rows paired wrongly or a buffer left unwritten
 *    (NaN-poisoned) fails there.
 *
 * Each part prints its wall time, and each CPU run is preceded by an estimate (a prefill of
 * 1/8 of its length, times 64). Measured on a 2-core machine at 1/16 scale (selfcheck): the
 * CPU backend runs this attention at ~7 GFLOP/s on 2 busy cores; at ~60 GFLOP/s on 16 cores
 * the 32k CPU prefills take ~10 s (hd 64) and ~20 s (hd 128), the 128k one ~40-80 s. The CUDA
 * parts take well under a second each, apart from session setup.
 */
#include <time.h>

#include "testutil.h"

#define TOL_L2 2e-2
#define N_DEC 16
#define ROW_STRIDE 1024
#define ROW_TAIL 64

/* The device under test (CUDA; the CPU in `selfcheck`) and the tolerance against the CPU. */
static ga_device g_dut = GA_DEVICE_CUDA;
static double g_tol = TOL_L2;
static int g_quick; /* selfcheck: lengths / 16 */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static const char *dev_name(ga_device d) {
    return d == GA_DEVICE_CUDA ? "cuda" : "cpu";
}

static ga_model *make(int layers, int heads, int hd, ga_gate_mode gate) {
    ga_config c = {.vocab_size = 512,
                   .hidden_size = 128,
                   .intermediate_size = 256,
                   .n_layers = layers,
                   .n_heads = heads,
                   .n_kv_heads = 1,
                   .head_dim = hd,
                   .rms_norm_eps = 1e-6f,
                   .rope_theta = 1e4,
                   .max_position_embeddings = 4096,
                   .use_qk_norm = true,
                   .gate = gate,
                   .torch_dtype = GA_BF16,
                   .bos_token_id = -1};
    ga_model *m = NULL;
    ga_err e = {{0}};
    CHECK_OK(ga_model_random(&c, 23, GA_BF16, &m, &e), &e);
    if (!m) return NULL;
    const ga_rope_scaling rs = {.type = GA_ROPE_YARN, .factor = 32};
    CHECK_OK(ga_model_set_rope_scaling(m, &rs, &e), &e);
    const int usable = ga_config_max_context(ga_model_config(m));
    CHECK_MSG(usable == 131072, "yarn x32 over 4096: usable context %d, want 131072", usable);
    return m;
}

static ga_session *open_s(const ga_model *m, ga_device d, int ctx, int batch, int kv_blocks) {
    ga_session_opts o = {.device = d,
                         .max_context = ctx,
                         .max_batch = batch,
                         .kv_blocks = kv_blocks,
                         .kv_block_size = kv_blocks ? 16 : 0,
                         .cuda_gemm = d == GA_DEVICE_CUDA ? ga_test_cuda_gemm() : 0};
    ga_session *s = NULL;
    ga_err e = {{0}};
    ga_status st = ga_session_create(m, &o, &s, &e);
    CHECK_MSG(st == GA_OK, "%s session (ctx %d, batch %d, blocks %d): %s", dev_name(d), ctx, batch,
              kv_blocks, e.msg);
    if (s && kv_blocks) {
        ga_kv_info ki;
        ga_session_kv_info(s, &ki);
        CHECK_MSG(ki.paged && !ki.paged_refused && ki.blocks_total == kv_blocks,
                  "%s session is not paged (refused %d, %d blocks)", dev_name(d), ki.paged_refused,
                  ki.blocks_total);
    }
    return s;
}

static float *nanbuf(size_t n) {
    float *p = malloc(n * sizeof *p);
    if (!p) {
        fprintf(stderr, "out of host memory (%zu floats)\n", n);
        exit(1);
    }
    for (size_t i = 0; i < n; i++)
        p[i] = NAN;
    return p;
}

static int32_t *tokens(int n, int V, uint64_t seed) {
    int32_t *t = malloc((size_t)n * sizeof *t);
    for (int i = 0; i < n; i++)
        t[i] = (int32_t)(ga_test_rand_u64(&seed) % (uint64_t)V);
    return t;
}

/* Blocks of 16 for n tokens of each of ns sequences. */
static int blocks_for(int n, int ns) {
    return ns * ((n + 15) / 16);
}

/* One run: prefill T tokens (all-positions logits into pre, T x V), then N_DEC single decode
 * steps feeding tok[T..T+N_DEC) (logits into dec, N_DEC x V). Returns the prefill time. */
typedef struct run_out {
    float *pre, *dec;
    double t_pre, t_dec;
} run_out;

static bool run_one(const ga_model *m, ga_device d, int kv_blocks, const int32_t *tok, int T,
                    run_out *o) {
    const int V = ga_model_config(m)->vocab_size;
    o->pre = nanbuf((size_t)T * V);
    o->dec = nanbuf((size_t)N_DEC * V);
    o->t_pre = o->t_dec = 0;
    ga_session *s = open_s(m, d, T + N_DEC, 1, kv_blocks);
    if (!s) return false;
    ga_err e = {{0}};
    double t0 = now_s();
    ga_status st = ga_session_forward(s, 0, tok, T, true, o->pre, &e);
    CHECK_MSG(st == GA_OK, "%s prefill of %d: %s", dev_name(d), T, e.msg);
    o->t_pre = now_s() - t0;
    t0 = now_s();
    for (int i = 0; i < N_DEC && st == GA_OK; i++) {
        int seq = 0;
        st = ga_session_decode_batch(s, &seq, tok + T + i, 1, o->dec + (size_t)i * V, &e);
        CHECK_MSG(st == GA_OK, "%s decode step %d at %d: %s", dev_name(d), i, T + i, e.msg);
    }
    o->t_dec = now_s() - t0;
    if (st == GA_OK) CHECK(ga_session_seq_len(s, 0) == T + N_DEC);
    ga_session_free(s);
    return st == GA_OK;
}

static void run_free(run_out *o) {
    free(o->pre), free(o->dec);
}

/* Worst per-row rel L2 of a against b over rows 0, stride, 2*stride, ... and the last `tail`
 * (all rows when stride is 1); *n_rows gets the number compared. */
static double worst_rows(const float *a, const float *b, int rows, int V, int stride, int tail,
                         int *n_rows) {
    double w = 0;
    int n = 0;
    for (int r = 0; r < rows; r++) {
        if (r % stride && r < rows - tail) continue;
        double e = ga_test_rel_l2(a + (size_t)r * V, b + (size_t)r * V, (size_t)V);
        if (!(e <= w)) w = e; /* NaN/Inf (INFINITY from rel_l2) sticks */
        n++;
    }
    if (n_rows) *n_rows = n;
    return w;
}

/* Rows of a and b that are not bit for bit equal. */
static size_t rows_differing(const float *a, const float *b, int rows, int V) {
    size_t d = 0;
    for (int r = 0; r < rows; r++)
        d += memcmp(a + (size_t)r * V, b + (size_t)r * V, (size_t)V * sizeof(float)) != 0;
    return d;
}

/* ---------------------------------------------------------------- dut vs CPU */

/* A CPU prefill of T/8 tokens on the same model, extrapolated quadratically (the CPU's prefill
 * at these lengths is attention-bound): the estimate printed before the long CPU run, so a log
 * cut off by a timeout still says what to expect. Costs 1/64 of the run it predicts. */
static double cpu_estimate(const ga_model *m, int T) {
    const int V = ga_model_config(m)->vocab_size, n = T / 8;
    int32_t *tok = tokens(n, V, 99);
    ga_session *s = open_s(m, GA_DEVICE_CPU, n, 1, 0);
    double est = 0;
    if (s) {
        ga_err e = {{0}};
        double t0 = now_s();
        CHECK_OK(ga_session_forward(s, 0, tok, n, false, NULL, &e), &e);
        const double t = now_s() - t0;
        est = t * 64;
        printf("  calibration: CPU prefill of %d tokens %.2f s -> %d tokens ~%.0f s\n", n, t, T,
               est);
    }
    ga_session_free(s);
    free(tok);
    return est;
}

static void long_vs_cpu(const char *name, int layers, int hd, ga_gate_mode gate, int T) {
    ga_model *m = make(layers, 2, hd, gate);
    if (!m) return;
    const int V = ga_model_config(m)->vocab_size;
    int32_t *tok = tokens(T + N_DEC, V, 7 + (uint64_t)T);
    printf("%s: %d layers, 2 heads / 1 KV head, hd %d %s, prefill %d + %d decode steps, yarn x32 "
           "over 4096\n",
           name, layers, hd, ga_gate_mode_name(gate), T, N_DEC);
    cpu_estimate(m, T);
    run_out g, c;
    bool ok = run_one(m, g_dut, 0, tok, T, &g);
    printf("  %-4s prefill %.2f s, %d decode steps %.3f s\n", dev_name(g_dut), g.t_pre, N_DEC,
           g.t_dec);
    ok = run_one(m, GA_DEVICE_CPU, 0, tok, T, &c) && ok;
    printf("  cpu  prefill %.2f s, %d decode steps %.3f s\n", c.t_pre, N_DEC, c.t_dec);
    if (ok) {
        int nr = 0;
        double wp = worst_rows(g.pre, c.pre, T, V, ROW_STRIDE, ROW_TAIL, &nr);
        double wd = worst_rows(g.dec, c.dec, N_DEC, V, 1, 0, NULL);
        printf("  %s vs cpu: prefill worst rel L2 %.3e over %d rows, decode %.3e over %d\n",
               dev_name(g_dut), wp, nr, wd, N_DEC);
        CHECK_MSG(wp <= g_tol, "%s: prefill %s vs CPU rel L2 %.3e > %.1e", name, dev_name(g_dut),
                  wp, g_tol);
        CHECK_MSG(wd <= g_tol, "%s: decode %s vs CPU rel L2 %.3e > %.1e", name, dev_name(g_dut), wd,
                  g_tol);
    }
    run_free(&g), run_free(&c);
    free(tok);
    ga_model_free(m);
}

/* ---------------------------------------------------------------- paged and forward_multi */

static void paged_vs_slots(const ga_model *m, const char *name, int T) {
    const int V = ga_model_config(m)->vocab_size;
    int32_t *tok = tokens(T + N_DEC, V, 5 + (uint64_t)T);
    run_out a, b;
    bool ok = run_one(m, g_dut, 0, tok, T, &a);
    ok = run_one(m, g_dut, blocks_for(T + N_DEC, 1) + 1, tok, T, &b) && ok;
    printf("  %s slots prefill %.2f s / paged %.2f s; decode %.3f / %.3f s\n", dev_name(g_dut),
           a.t_pre, b.t_pre, a.t_dec, b.t_dec);
    if (ok) {
        size_t dp = rows_differing(b.pre, a.pre, T, V), dd = rows_differing(b.dec, a.dec, N_DEC, V);
        printf("  paged vs slots: %zu of %d prefill rows, %zu of %d decode rows differ\n", dp, T,
               dd, N_DEC);
        CHECK_MSG(
            dp == 0 && dd == 0,
            "%s: paged != slots bitwise (%zu prefill rows, %zu decode rows; worst rel L2 %.3e "
            "/ %.3e)",
            name, dp, dd, worst_rows(b.pre, a.pre, T, V, 1, 0, NULL),
            worst_rows(b.dec, a.dec, N_DEC, V, 1, 0, NULL));
        /* NaN-poisoned buffers: equal bits could still be two unwritten rows */
        CHECK_MSG(worst_rows(a.pre, a.pre, T, V, 1, 0, NULL) == 0,
                  "%s: a prefill row is not finite", name);
    }
    run_free(&a), run_free(&b);
    free(tok);
}

/* forward_multi of 4 sequences of n tokens each vs the same spans as 4 separate forwards on a
 * twin session, then one batched decode step of the 4 on each. */
static void multi_vs_separate(const ga_model *m, const char *name, int n, bool paged) {
    enum { NS = 4 };
    const int V = ga_model_config(m)->vocab_size, ctx = n + 1;
    const int kvb = paged ? blocks_for(ctx, NS) : 0;
    int32_t *tok = tokens(NS * n + NS, V, 77);
    const int seqs[NS] = {3, 1, 0, 2};
    int off[NS + 1];
    for (int i = 0; i <= NS; i++)
        off[i] = i * n;
    ga_session *a = open_s(m, g_dut, ctx, NS, kvb), *b = open_s(m, g_dut, ctx, NS, kvb);
    float *la = nanbuf((size_t)NS * n * V), *lb = nanbuf((size_t)NS * n * V);
    float *da = nanbuf((size_t)NS * V), *db = nanbuf((size_t)NS * V);
    if (a && b) {
        ga_err e = {{0}};
        double t0 = now_s();
        ga_status st = ga_session_forward_multi(a, NS, seqs, tok, off, true, la, &e);
        CHECK_MSG(st == GA_OK, "%s: forward_multi: %s", name, e.msg);
        const double t_multi = now_s() - t0;
        t0 = now_s();
        for (int i = 0; i < NS && st == GA_OK; i++) {
            st = ga_session_forward(b, seqs[i], tok + off[i], n, true, lb + (size_t)off[i] * V, &e);
            CHECK_MSG(st == GA_OK, "%s: separate forward %d: %s", name, i, e.msg);
        }
        const double t_sep = now_s() - t0;
        if (st == GA_OK) {
            CHECK_OK(ga_session_decode_batch(a, seqs, tok + NS * n, NS, da, &e), &e);
            CHECK_OK(ga_session_decode_batch(b, seqs, tok + NS * n, NS, db, &e), &e);
            int nr = 0;
            double wp = 0;
            for (int i = 0; i < NS; i++) { /* rows by position within each sequence */
                int k = 0;
                double w = worst_rows(la + (size_t)off[i] * V, lb + (size_t)off[i] * V, n, V,
                                      ROW_STRIDE, ROW_TAIL, &k);
                if (!(w <= wp)) wp = w;
                nr += k;
            }
            double wd = worst_rows(da, db, NS, V, 1, 0, NULL);
            printf("  %s %s: forward_multi %d x %d %.2f s, separate %.2f s; rel L2 %.3e over %d "
                   "rows, decode %.3e\n",
                   dev_name(g_dut), paged ? "paged" : "slots", NS, n, t_multi, t_sep, wp, nr, wd);
            CHECK_MSG(wp <= g_tol && wd <= g_tol,
                      "%s %s: forward_multi vs separate rel L2 %.3e, decode after %.3e", name,
                      paged ? "paged" : "slots", wp, wd);
            for (int i = 0; i < NS; i++)
                CHECK(ga_session_seq_len(a, seqs[i]) == n + 1 &&
                      ga_session_seq_len(b, seqs[i]) == n + 1);
        }
    }
    free(la), free(lb), free(da), free(db);
    ga_session_free(a), ga_session_free(b);
    free(tok);
}

static void paged_section(int T) {
    static const struct {
        int hd;
        ga_gate_mode gate;
    } cases[] = {{64, GA_GATE_HEADWISE}, {128, GA_GATE_ELEMENTWISE}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ga_model *m = make(2, 2, cases[i].hd, cases[i].gate);
        if (!m) continue;
        char name[64];
        snprintf(name, sizeof name, "paged %d hd %d %s", T, cases[i].hd,
                 ga_gate_mode_name(cases[i].gate));
        printf("%s\n", name);
        double t0 = now_s();
        paged_vs_slots(m, name, T);
        multi_vs_separate(m, name, T / 4, false);
        multi_vs_separate(m, name, T / 4, true);
        printf("  %s: %.1f s in all\n", name, now_s() - t0);
        ga_model_free(m);
    }
}

int main(int argc, char **argv) {
    const bool self = argc > 1 && !strcmp(argv[1], "selfcheck");
    if (self) {
        g_dut = GA_DEVICE_CPU;
        g_tol = 0;
        g_quick = 1;
    } else {
        GA_REQUIRE_GPU();
    }
    const int div = g_quick ? 16 : 1;
    const bool all = argc < 2 || self;
    const double t0 = now_s();
    if (all || ga_test_want(argc, argv, "32k")) {
        long_vs_cpu("32k", 2, 64, GA_GATE_HEADWISE, 32768 / div);
        long_vs_cpu("32k", 2, 128, GA_GATE_ELEMENTWISE, 32768 / div);
    }
    if (all || ga_test_want(argc, argv, "paged")) paged_section(32768 / div);
    if (self || (argc > 1 && ga_test_want(argc, argv, "128k")))
        long_vs_cpu("128k", 1, 64, GA_GATE_NONE, 131072 / div - N_DEC);
    printf("total %.1f s\n", now_s() - t0);
    return ga_test_finish();
}
