/*
 * The engine's attention capture (ga_session_set_capture + a prefill) against references:
 *  - full-resolution maps (head mean and one head) and the per-layer metrics of the CPU
 *    backend equal an independent naive double-precision forward (viz_naive.c), for the
 *    baseline, headwise and elementwise variants; rows sum to 1, zeros above the diagonal;
 *  - a long prompt (T = 600) pooled to 64 x 64: every pooled row sums to 1, the mean of the
 *    rows it covers, and equals the host pooling (ga_attn_pool) of the naive map;
 *  - the metrics of the gated reference fixtures (tests/fixtures, made by transformers, whose
 *    gates spread: 9-17% lie below 0.1) against the same reference, exactly up to the one
 *    gate that float rounding may put on the other side of 0.1; random test models have
 *    gates near 0.5, so only these catch a wrong threshold in gate_below_0_1;
 *  - with the argument "gpu": the CUDA backend's maps and metrics equal the CPU backend's
 *    within bf16 tolerance (exit 77 without a GPU).
 */
#include <math.h>
#include <string.h>

#include "testutil.h"
#include "viz/viz.h"
#include "viz_naive.h"

static ga_config tiny_config(ga_gate_mode gate) {
    ga_config c = {.vocab_size = 256,
                   .hidden_size = 64,
                   .intermediate_size = 96,
                   .n_layers = 3,
                   .n_heads = 4,
                   .n_kv_heads = 2,
                   .head_dim = 64,
                   .rms_norm_eps = 1e-6f,
                   .rope_theta = 1000000.0,
                   .max_position_embeddings = 4096,
                   .tie_word_embeddings = true,
                   .use_qk_norm = true,
                   .gate = gate,
                   .bos_token_id = -1};
    return c;
}

/* Runs one captured prefill; cap->layers, head, max_res are set by the caller. */
static ga_status capture(const ga_model *m, ga_device dev, const int32_t *ids, int T,
                         ga_attn_capture *cap, ga_err *err) {
    ga_session_opts so = {.device = dev, .max_context = T, .max_batch = 1};
    ga_session *s = NULL;
    ga_status st = ga_session_create(m, &so, &s, err);
    if (!st) st = ga_session_set_capture(s, cap, err);
    if (!st) st = ga_session_forward(s, 0, ids, T, false, NULL, err);
    ga_session_free(s);
    return st;
}

static void random_ids(int32_t *ids, int T, int vocab, uint64_t seed) {
    for (int i = 0; i < T; i++)
        ids[i] = (int32_t)(ga_test_rand_u64(&seed) % (uint64_t)vocab);
}

/* Rows sum to 1 and everything above the diagonal is exactly 0. */
static void check_causal_rows(const float *map, int T, const char *what) {
    double worst = 0;
    int above = 0;
    for (int q = 0; q < T; q++) {
        double s = 0;
        for (int k = 0; k < T; k++) {
            s += map[(size_t)q * T + k];
            if (k > q && map[(size_t)q * T + k] != 0.0f) above++;
        }
        if (fabs(s - 1.0) > worst) worst = fabs(s - 1.0);
    }
    CHECK_MSG(worst < 1e-5, "%s: row sum off by %g", what, worst);
    CHECK_MSG(above == 0, "%s: %d nonzero entries above the diagonal", what, above);
}

static void test_cpu_vs_naive(ga_gate_mode gate) {
    ga_err err;
    ga_config cfg = tiny_config(gate);
    ga_model *m = NULL;
    CHECK_OK(ga_model_random(&cfg, 7 + (uint64_t)gate, GA_F32, &m, &err), &err);
    if (!m) return;
    enum { T = 23 };
    int32_t ids[T];
    random_ids(ids, T, cfg.vocab_size, 11);
    naive_out ref;
    CHECK(naive_forward(m, ids, T, &ref) == 0);

    bool all[3] = {true, true, true};
    for (int head = -1; head < cfg.n_heads; head += 3) { /* the mean, then heads 2 */
        ga_attn_capture cap = {.layers = all, .head = head, .max_res = T};
        CHECK_OK(capture(m, GA_DEVICE_CPU, ids, T, &cap, &err), &err);
        CHECK(cap.res == T && cap.n_tokens == T && cap.maps && cap.metrics);
        for (int l = 0; cap.maps && l < cfg.n_layers; l++) {
            float *want = naive_map(&ref, l, head);
            double r = ga_test_tol_ratio(cap.maps[l], want, (size_t)T * T, 1e-5, 1e-4);
            CHECK_MSG(r <= 1.0, "%s layer %d head %d: map vs naive ratio %g",
                      ga_gate_mode_name(gate), l + 1, head, r);
            char what[64];
            snprintf(what, sizeof what, "%s layer %d", ga_gate_mode_name(gate), l + 1);
            check_causal_rows(cap.maps[l], T, what);
            free(want);

            /* metrics: the sink share over all heads, gate statistics over all gates */
            double share = 0;
            for (int h = 0; h < cfg.n_heads; h++)
                for (int q = 1; q < T; q++)
                    share += ref.probs[l][((size_t)h * T + q) * T];
            share /= (double)cfg.n_heads * (T - 1);
            CHECK_MSG(fabs(cap.metrics[l].first_token_share - share) < 1e-6,
                      "layer %d share %.9f vs naive %.9f", l + 1, cap.metrics[l].first_token_share,
                      share);
            if (gate == GA_GATE_NONE) {
                CHECK(isnan(cap.metrics[l].gate_mean) && isnan(cap.metrics[l].gate_below_0_1));
            } else {
                size_t n = (size_t)T * ref.gate_dim;
                double mean = 0, below = 0;
                for (size_t i = 0; i < n; i++) {
                    mean += ref.gates[l][i];
                    below += ref.gates[l][i] < 0.1;
                }
                mean /= (double)n;
                below /= (double)n;
                CHECK_MSG(fabs(cap.metrics[l].gate_mean - mean) < 1e-6, "gate mean %g vs %g",
                          cap.metrics[l].gate_mean, mean);
                /* a gate within float rounding of 0.1 may land on either side */
                CHECK(fabs(cap.metrics[l].gate_below_0_1 - below) <= 1.0 / (double)n + 1e-12);
            }
        }
        ga_attn_capture_free(&cap);
    }
    /* unselected layers have no map; metrics exist for all */
    bool only_mid[3] = {false, true, false};
    ga_attn_capture cap = {.layers = only_mid, .head = -1, .max_res = 8};
    CHECK_OK(capture(m, GA_DEVICE_CPU, ids, T, &cap, &err), &err);
    if (cap.maps) {
        CHECK(!cap.maps[0] && cap.maps[1] && !cap.maps[2]);
        CHECK(cap.res == 8);
        CHECK(!isnan(cap.metrics[0].first_token_share) && !isnan(cap.metrics[2].first_token_share));
    }
    ga_attn_capture_free(&cap);
    naive_free(&ref);
    ga_model_free(m);
}

/* The reference metrics of layer l from the naive forward's double-precision probabilities
 * and gates, written from their definitions in gattn.h. */
static void naive_metrics(const naive_out *ref, int l, double *share, double *mean, double *below) {
    int T = ref->T;
    double s = 0;
    for (int h = 0; h < ref->n_heads; h++)
        for (int q = 1; q < T; q++)
            s += ref->probs[l][((size_t)h * T + q) * T];
    *share = T > 1 ? s / ((double)ref->n_heads * (T - 1)) : NAN;
    *mean = *below = NAN;
    if (!ref->gates || !ref->gates[l]) return;
    size_t n = (size_t)T * ref->gate_dim;
    double m = 0, b = 0;
    for (size_t i = 0; i < n; i++) {
        m += ref->gates[l][i];
        b += ref->gates[l][i] < 0.1;
    }
    *mean = m / (double)n;
    *below = b / (double)n;
}

/* Gated fixtures: share, gate mean and the share of gates below 0.1 of every layer equal the
 * naive reference. The test first checks that the fixture's gates really spread around 0.1
 * (some below 0.1, and some between 0.1 and 0.2), so a threshold moved in either direction
 * changes the count by many gates, not by the one that rounding allows. */
static void test_fixture_metrics(const char *name) {
    ga_err err;
    char *dir = ga_test_path(ga_test_env("GA_FIXTURES", "tests/fixtures"), name);
    ga_model *m = NULL;
    CHECK_OK(ga_model_load(dir, &m, &err), &err);
    free(dir);
    if (!m) return;
    const ga_config *c = ga_model_config(m);
    enum { T = 41 };
    int32_t ids[T];
    random_ids(ids, T, c->vocab_size, 29);
    naive_out ref;
    CHECK(naive_forward(m, ids, T, &ref) == 0);
    bool *all = malloc((size_t)c->n_layers * sizeof *all);
    for (int l = 0; l < c->n_layers; l++)
        all[l] = true;
    ga_attn_capture cap = {.layers = all, .head = -1, .max_res = 8};
    CHECK_OK(capture(m, GA_DEVICE_CPU, ids, T, &cap, &err), &err);
    size_t n = (size_t)T * ref.gate_dim, low = 0, mid = 0;
    for (int l = 0; ref.gates && l < c->n_layers; l++)
        for (size_t i = 0; i < n; i++) {
            low += ref.gates[l][i] < 0.1;
            mid += ref.gates[l][i] >= 0.1 && ref.gates[l][i] < 0.2;
        }
    CHECK_MSG(low >= 4 && mid >= 4,
              "%s: gates do not spread (%zu below 0.1, %zu in [0.1, 0.2) of %zu a layer)", name,
              low, mid, n);
    for (int l = 0; cap.metrics && ref.gates && l < c->n_layers; l++) {
        double share, mean, below;
        naive_metrics(&ref, l, &share, &mean, &below);
        const ga_layer_metrics *mt = &cap.metrics[l];
        CHECK_MSG(fabs(mt->first_token_share - share) < 1e-6, "%s layer %d share %.9f vs %.9f",
                  name, l + 1, mt->first_token_share, share);
        CHECK_MSG(fabs(mt->gate_mean - mean) < 1e-6, "%s layer %d gate mean %.9f vs %.9f", name,
                  l + 1, mt->gate_mean, mean);
        /* one gate within float rounding of 0.1 may land on the other side */
        CHECK_MSG(fabs(mt->gate_below_0_1 - below) <= 1.0 / (double)n + 1e-12,
                  "%s layer %d gate_below_0_1 %.6f vs %.6f (%zu gates)", name, l + 1,
                  mt->gate_below_0_1, below, n);
    }
    ga_attn_capture_free(&cap);
    free(all);
    naive_free(&ref);
    ga_model_free(m);
}

/* T = 600 pooled to 64: rows sum to 1 and match the host pooling of the naive map. */
static void test_long_pooled(void) {
    ga_err err;
    ga_config cfg = tiny_config(GA_GATE_HEADWISE);
    cfg.n_layers = 2;
    ga_model *m = NULL;
    CHECK_OK(ga_model_random(&cfg, 5, GA_F32, &m, &err), &err);
    if (!m) return;
    enum { T = 600, RES = 64 };
    int32_t *ids = malloc(T * sizeof *ids);
    random_ids(ids, T, cfg.vocab_size, 3);
    naive_out ref;
    CHECK(naive_forward(m, ids, T, &ref) == 0);
    bool all[2] = {true, true};
    ga_attn_capture cap = {.layers = all, .head = -1, .max_res = RES};
    CHECK_OK(capture(m, GA_DEVICE_CPU, ids, T, &cap, &err), &err);
    CHECK(cap.res == RES && cap.n_tokens == T);
    float *pooled = malloc((size_t)RES * RES * sizeof *pooled);
    for (int l = 0; cap.maps && l < 2; l++) {
        float *full = naive_map(&ref, l, -1);
        CHECK_OK(ga_attn_pool(full, T, RES, pooled, &err), &err);
        double r = ga_test_tol_ratio(cap.maps[l], pooled, (size_t)RES * RES, 1e-6, 1e-4);
        CHECK_MSG(r <= 1.0, "layer %d pooled vs naive ratio %g", l + 1, r);
        for (int bi = 0; bi < RES; bi++) {
            /* the mean of the full rows' sums over the rows the block covers */
            double want = 0;
            int rows = 0;
            for (int q = 0; q < T; q++) {
                if ((int64_t)q * RES / T != bi) continue;
                double s = 0;
                for (int k = 0; k < T; k++)
                    s += full[(size_t)q * T + k];
                want += s;
                rows++;
            }
            want /= rows;
            double got = 0;
            for (int bj = 0; bj < RES; bj++)
                got += cap.maps[l][(size_t)bi * RES + bj];
            CHECK_MSG(fabs(got - want) < 1e-5 && fabs(got - 1.0) < 1e-5,
                      "layer %d block row %d sums to %.8f (rows it covers: %.8f)", l + 1, bi, got,
                      want);
            /* causal: blocks entirely above the diagonal are empty */
            for (int bj = bi + 1; bj < RES; bj++)
                CHECK(cap.maps[l][(size_t)bi * RES + bj] == 0.0f);
        }
        free(full);
    }
    free(pooled);
    ga_attn_capture_free(&cap);
    naive_free(&ref);
    free(ids);
    ga_model_free(m);
}

/* CUDA capture == CPU capture within bf16 tolerance, full resolution and pooled. */
static void test_gpu_vs_cpu(ga_gate_mode gate) {
    ga_err err;
    ga_config cfg = tiny_config(gate);
    ga_model *m = NULL;
    CHECK_OK(ga_model_random(&cfg, 21 + (uint64_t)gate, GA_BF16, &m, &err), &err);
    if (!m) return;
    const int lengths[2] = {37, 700}, resolutions[2] = {37, 64};
    for (int c = 0; c < 2; c++) {
        int T = lengths[c];
        int32_t *ids = malloc((size_t)T * sizeof *ids);
        random_ids(ids, T, cfg.vocab_size, 17 + (uint64_t)c);
        bool all[3] = {true, true, true};
        for (int head = -1; head <= 1; head += 2) {
            ga_attn_capture cpu = {.layers = all, .head = head, .max_res = resolutions[c]};
            ga_attn_capture gpu = cpu;
            CHECK_OK(capture(m, GA_DEVICE_CPU, ids, T, &cpu, &err), &err);
            CHECK_OK(capture(m, GA_DEVICE_CUDA, ids, T, &gpu, &err), &err);
            CHECK(gpu.res == cpu.res && gpu.n_tokens == T);
            int R = cpu.res;
            for (int l = 0; cpu.maps && gpu.maps && l < cfg.n_layers; l++) {
                double r = ga_test_tol_ratio(gpu.maps[l], cpu.maps[l], (size_t)R * R, 1e-2, 2e-2);
                CHECK_MSG(r <= 1.0, "%s T=%d head %d layer %d: GPU vs CPU ratio %g",
                          ga_gate_mode_name(gate), T, head, l + 1, r);
                for (int q = 0; q < R; q++) {
                    double s = 0;
                    for (int k = 0; k < R; k++)
                        s += gpu.maps[l][(size_t)q * R + k];
                    CHECK_MSG(fabs(s - 1.0) < 1e-2, "GPU row %d sums to %g", q, s);
                }
                CHECK(fabs(gpu.metrics[l].first_token_share - cpu.metrics[l].first_token_share) <
                      1e-2);
                if (gate == GA_GATE_NONE) {
                    CHECK(isnan(gpu.metrics[l].gate_mean));
                } else {
                    CHECK(fabs(gpu.metrics[l].gate_mean - cpu.metrics[l].gate_mean) < 1e-2);
                    CHECK(fabs(gpu.metrics[l].gate_below_0_1 - cpu.metrics[l].gate_below_0_1) <
                          2e-2);
                }
            }
            ga_attn_capture_free(&cpu);
            ga_attn_capture_free(&gpu);
        }
        free(ids);
    }
    ga_model_free(m);
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "gpu")) {
        GA_REQUIRE_GPU();
        for (int g = 0; g < 3; g++)
            test_gpu_vs_cpu((ga_gate_mode)g);
        return ga_test_finish();
    }
    for (int g = 0; g < 3; g++)
        test_cpu_vs_naive((ga_gate_mode)g);
    test_long_pooled();
    const char *gated[] = {"headwise_g1_tied",      "headwise_g2_untied",
                           "headwise_g2_f16",       "elementwise_g1_tied",
                           "elementwise_g2_untied", "elementwise_g4_bias_bf16_sharded"};
    for (size_t i = 0; i < sizeof gated / sizeof *gated; i++)
        test_fixture_metrics(gated[i]);
    return ga_test_finish();
}
