/*
 * RoPE scaling (issue 14): config parsing of rope_scaling / rope_parameters, the scaled
 * frequencies and cos/sin tables against values computed here in double from the published
 * formulas (YaRN paper as transformers 5 states it: a ramp over frequency index between the
 * dimensions that turn beta_fast and beta_slow times in the original context; linear
 * interpolation; attention factor 0.1 ln(s) + 1), and the CPU backend past the original length.
 * Shares no code with src/core/rope.c beyond calling it.
 */
#include "testutil.h"

#include "core/rope.h"

#define BASE                                                                                       \
    "\"vocab_size\": 96, \"hidden_size\": 32, \"intermediate_size\": 64, "                         \
    "\"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"max_position_embeddings\": 40960"

static const double PI = 3.14159265358979323846;

static void test_parse(void) {
    ga_config c;
    ga_err e = {{0}};
    /* Qwen3's model card: yarn factor 4 over 32768 */
    CHECK_OK(ga_test_config_parse("{" BASE
                                  ", \"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 4.0, "
                                  "\"original_max_position_embeddings\": 32768}}",
                                  &c, &e),
             &e);
    CHECK(c.rope_scaling.type == GA_ROPE_YARN && c.rope_scaling.factor == 4.0);
    CHECK(c.rope_scaling.original_max_position_embeddings == 32768 && !c.rope_scaling.no_truncate);
    CHECK_MSG(ga_config_max_context(&c) == 131072, "usable %d", ga_config_max_context(&c));
    /* transformers 4's "type" key, linear; no original length: max_position_embeddings */
    CHECK_OK(ga_test_config_parse(
                 "{" BASE ", \"rope_scaling\": {\"type\": \"linear\", \"factor\": 2}}", &c, &e),
             &e);
    CHECK(c.rope_scaling.type == GA_ROPE_LINEAR && ga_config_max_context(&c) == 81920);
    /* transformers 5's rope_parameters with every yarn field */
    CHECK_OK(ga_test_config_parse(
                 "{" BASE ", \"rope_parameters\": {\"rope_type\": \"yarn\", \"rope_theta\": 1e6, "
                 "\"factor\": 8, \"beta_fast\": 16, \"beta_slow\": 2, \"truncate\": false, "
                 "\"mscale\": 1, \"mscale_all_dim\": 0.5, \"attention_factor\": null}, "
                 "\"rope_scaling\": null}",
                 &c, &e),
             &e);
    CHECK(c.rope_scaling.type == GA_ROPE_YARN && c.rope_scaling.beta_fast == 16 &&
          c.rope_scaling.beta_slow == 2 && c.rope_scaling.no_truncate &&
          c.rope_scaling.mscale_all_dim == 0.5 && c.rope_theta == 1e6);
    /* default in either block: no scaling */
    CHECK_OK(ga_test_config_parse("{" BASE ", \"rope_parameters\": {\"rope_theta\": 1e4}}", &c, &e),
             &e);
    CHECK(c.rope_scaling.type == GA_ROPE_DEFAULT && ga_config_max_context(&c) == 40960);
    /* both blocks agreeing is fine */
    CHECK_OK(ga_test_config_parse(
                 "{" BASE ", \"rope_scaling\": {\"rope_type\": \"linear\", \"factor\": 2}, "
                 "\"rope_parameters\": {\"rope_type\": \"linear\", \"factor\": 2}}",
                 &c, &e),
             &e);

    ga_test_config_expect_fail("{" BASE ", \"rope_scaling\": {\"rope_type\": \"yarn\"}}",
                               GA_ERR_FORMAT, "rope_scaling.factor");
    ga_test_config_expect_fail(
        "{" BASE ", \"rope_parameters\": {\"rope_type\": \"linear\", \"factor\": \"2\"}}",
        GA_ERR_FORMAT, "rope_parameters.factor");
    ga_test_config_expect_fail("{" BASE
                               ", \"rope_scaling\": {\"rope_type\": \"linear\", \"factor\": 0}}",
                               GA_ERR_FORMAT, "rope_scaling.factor");
    ga_test_config_expect_fail("{" BASE
                               ", \"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 4, "
                               "\"truncate\": 1}}",
                               GA_ERR_FORMAT, "rope_scaling.truncate");
    ga_test_config_expect_fail("{" BASE
                               ", \"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 4, "
                               "\"original_max_position_embeddings\": 100.5}}",
                               GA_ERR_FORMAT, "original_max_position_embeddings");
    ga_test_config_expect_fail("{" BASE
                               ", \"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 4, "
                               "\"beta_fast\": -1}}",
                               GA_ERR_FORMAT, "rope_scaling.beta_fast");
    ga_test_config_expect_fail("{" BASE
                               ", \"rope_scaling\": {\"rope_type\": \"longrope\", \"factor\": 4}}",
                               GA_ERR_UNSUPPORTED, "longrope");
    ga_test_config_expect_fail(
        "{" BASE ", \"rope_parameters\": {\"rope_type\": \"dynamic\", \"factor\": 4}}",
        GA_ERR_UNSUPPORTED, "dynamic");
    ga_test_config_expect_fail("{" BASE
                               ", \"rope_scaling\": {\"rope_type\": \"linear\", \"factor\": 2}, "
                               "\"rope_parameters\": {\"rope_type\": \"yarn\", \"factor\": 2}}",
                               GA_ERR_FORMAT, "different");
}

/* ------------------------------------------------------------------ reference math */

typedef struct ref_case {
    const char *name;
    int dim;
    double base;
    ga_rope_scaling rs;
    int max_pos;
} ref_case;

/* The scaled inverse frequencies and cos/sin factor, from the formulas as published:
 * theta_i = base^(-2i/d); the number of turns dimension pair i makes over the original context
 * L is r_i = L theta_i / (2 pi). YaRN keeps theta_i where r_i > beta_fast (high frequencies,
 * extrapolation), takes theta_i / s where r_i < beta_slow (interpolation) and blends linearly
 * over the pair index in between; transformers rounds the two boundary indices outwards
 * (truncate) and clamps them to [0, d-1]. */
static double ref_inv(const ref_case *k, int i, double *attn) {
    const double theta = 1.0 / pow(k->base, (2.0 * i) / k->dim);
    const ga_rope_scaling *rs = &k->rs;
    *attn = 1;
    if (rs->type == GA_ROPE_LINEAR) return theta / rs->factor;
    if (rs->type != GA_ROPE_YARN) return theta;
    const double s = rs->factor;
    const double L =
        rs->original_max_position_embeddings ? rs->original_max_position_embeddings : k->max_pos;
    const double bf = rs->beta_fast ? rs->beta_fast : 32, bs = rs->beta_slow ? rs->beta_slow : 1;
    /* the (fractional) pair index at which r_i == beta: L base^(-2i/d) / (2 pi) = beta */
    double i_fast = 0.5 * k->dim * log(L / (2 * PI * bf)) / log(k->base);
    double i_slow = 0.5 * k->dim * log(L / (2 * PI * bs)) / log(k->base);
    if (!rs->no_truncate) {
        i_fast = floor(i_fast);
        i_slow = ceil(i_slow);
    }
    i_fast = fmax(i_fast, 0);
    i_slow = fmin(i_slow, k->dim - 1);
    if (i_slow == i_fast) i_slow += 0.001;
    double w = (i - i_fast) / (i_slow - i_fast); /* 0: extrapolate, 1: interpolate */
    w = fmin(fmax(w, 0), 1);
    const double ms = s <= 1 ? 1 : 1 + 0.1 * log(s);
    if (rs->attention_factor > 0)
        *attn = rs->attention_factor;
    else if (rs->mscale > 0 && rs->mscale_all_dim > 0)
        *attn = (s <= 1 ? 1 : 1 + 0.1 * rs->mscale * log(s)) /
                (s <= 1 ? 1 : 1 + 0.1 * rs->mscale_all_dim * log(s));
    else
        *attn = ms;
    return theta * (1 - w) + theta / s * w;
}

static void test_tables(void) {
    const ref_case cases[] = {
        {"yarn s=8 L=256 d=64",
         64,
         1e4,
         {.type = GA_ROPE_YARN, .factor = 8, .original_max_position_embeddings = 256},
         256},
        {"yarn untruncated, betas",
         64,
         1e4,
         {.type = GA_ROPE_YARN,
          .factor = 4,
          .original_max_position_embeddings = 512,
          .beta_fast = 8,
          .beta_slow = 2,
          .no_truncate = true},
         512},
        {"yarn mscale ratio",
         16,
         1e6,
         {.type = GA_ROPE_YARN, .factor = 16, .mscale = 0.707, .mscale_all_dim = 1.0},
         64},
        {"yarn explicit attention_factor",
         128,
         1e6,
         {.type = GA_ROPE_YARN,
          .factor = 2,
          .attention_factor = 0.9,
          .original_max_position_embeddings = 1024},
         4096},
        {"linear s=4", 32, 1e4, {.type = GA_ROPE_LINEAR, .factor = 4}, 128},
        {"default", 16, 1e4, {.type = GA_ROPE_DEFAULT}, 128},
    };
    const int n_pos = 3000; /* past every case's original length */
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        const ref_case *rc = &cases[k];
        ga_config c = {.head_dim = rc->dim,
                       .rope_theta = rc->base,
                       .max_position_embeddings = rc->max_pos,
                       .rope_scaling = rc->rs};
        ga_err e = {{0}};
        CHECK_OK(ga_rope_scaling_check(&c, &rc->rs, rc->name, &e), &e);
        float *ct = NULL, *st = NULL;
        CHECK_OK(ga_rope_tables(&c, rc->dim, n_pos, &ct, &st, &e), &e);
        if (!ct) continue;
        const int h = rc->dim / 2;
        double worst = 0;
        for (int i = 0; i < h; i++) {
            double attn;
            const double inv = ref_inv(rc, i, &attn);
            for (int p = 0; p < n_pos; p++) {
                const double a = p * inv;
                worst = fmax(worst, fabs(ct[(size_t)p * h + i] - attn * cos(a)));
                worst = fmax(worst, fabs(st[(size_t)p * h + i] - attn * sin(a)));
            }
        }
        /* fp32 rounding of values up to ~1.3, plus the angle's double rounding at p ~ 3000 */
        CHECK_MSG(worst < 3e-7, "%s: cos/sin table off by %.3g", rc->name, worst);
        printf("%-32s max |table - reference| %.2e\n", rc->name, worst);
        free(ct);
        free(st);
    }
}

/* Qwen3's published case (d 128, theta 1e6, yarn 4 over 32768): the ramp runs from pair
 * index 23 to 40 (turns 32 and 1 in 32768 positions, rounded outwards), so pairs up to 23 keep
 * their frequency and pairs from 40 are divided by 4; cos/sin carry 1 + 0.1 ln 4. */
static void test_qwen3_case(void) {
    ga_config c = {.head_dim = 128,
                   .rope_theta = 1e6,
                   .max_position_embeddings = 40960,
                   .rope_scaling = {.type = GA_ROPE_YARN,
                                    .factor = 4,
                                    .original_max_position_embeddings = 32768}};
    double inv[64], attn;
    ga_rope_freqs(&c, 128, inv, &attn);
    CHECK_MSG(fabs(attn - 1.1386294361119891) < 1e-12, "attention factor %.17g", attn);
    int kept = 0, divided = 0;
    for (int i = 0; i < 64; i++) {
        const double theta = pow(1e6, -i / 64.0);
        if (fabs(inv[i] / theta - 1) < 1e-12) kept++;
        if (fabs(inv[i] * 4 / theta - 1) < 1e-12) divided++;
        if (i <= 23) CHECK_MSG(fabs(inv[i] / theta - 1) < 1e-12, "pair %d not kept", i);
        if (i >= 40) CHECK_MSG(fabs(inv[i] * 4 / theta - 1) < 1e-12, "pair %d not divided", i);
    }
    CHECK_MSG(kept == 24 && divided == 24, "kept %d, divided %d", kept, divided);
    CHECK(ga_config_max_context(&c) == 131072);
}

/* Linear: position p at factor f is position p/f unscaled, exactly where p/f is an integer. */
static void test_linear_identity(void) {
    ga_config c0 = {.head_dim = 64, .rope_theta = 1e6, .max_position_embeddings = 4096};
    ga_config c4 = c0;
    c4.rope_scaling = (ga_rope_scaling){.type = GA_ROPE_LINEAR, .factor = 4};
    ga_err e = {{0}};
    float *c0t = NULL, *s0t = NULL, *c4t = NULL, *s4t = NULL;
    CHECK_OK(ga_rope_tables(&c0, 64, 4096, &c0t, &s0t, &e), &e);
    CHECK_OK(ga_rope_tables(&c4, 64, 16384, &c4t, &s4t, &e), &e);
    if (!c0t || !c4t) return;
    double worst = 0, differ = 0;
    for (int p = 0; p < 4096; p++)
        for (int i = 0; i < 32; i++) {
            worst = fmax(worst, fabs(c4t[(size_t)4 * p * 32 + i] - c0t[(size_t)p * 32 + i]));
            worst = fmax(worst, fabs(s4t[(size_t)4 * p * 32 + i] - s0t[(size_t)p * 32 + i]));
            differ = fmax(differ, fabs(c4t[(size_t)p * 32 + i] - c0t[(size_t)p * 32 + i]));
        }
    CHECK_MSG(worst < 1e-6, "linear x4 row 4p vs unscaled row p: %.3g", worst);
    CHECK_MSG(differ > 0.1, "linear scaling left the table unchanged (%.3g)", differ);
    free(c0t);
    free(s0t);
    free(c4t);
    free(s4t);
}

/* ------------------------------------------------------------------ the CPU backend */

static ga_session *open_cpu(const ga_model *m, int ctx, ga_err *e) {
    ga_session_opts o = {.device = GA_DEVICE_CPU, .max_context = ctx, .n_threads = 2};
    ga_session *s = NULL;
    if (ga_session_create(m, &o, &s, e)) return NULL;
    return s;
}

static void test_backend(void) {
    ga_config cfg = {.vocab_size = 96,
                     .hidden_size = 32,
                     .intermediate_size = 64,
                     .n_layers = 2,
                     .n_heads = 4,
                     .n_kv_heads = 2,
                     .head_dim = 16,
                     .rms_norm_eps = 1e-6f,
                     .rope_theta = 1e4,
                     .max_position_embeddings = 64,
                     .use_qk_norm = true,
                     .gate = GA_GATE_ELEMENTWISE,
                     .torch_dtype = GA_F32,
                     .bos_token_id = -1};
    ga_model *m = NULL;
    ga_err e = {{0}};
    CHECK_OK(ga_model_random(&cfg, 99, GA_F32, &m, &e), &e);
    if (!m) return;
    const int V = 96, T = 240, P = 150;
    /* unscaled: 240 tokens exceed max_position_embeddings 64 */
    ga_session *s = open_cpu(m, T, &e);
    CHECK_MSG(!s && strstr(e.msg, "max_position_embeddings"), "unscaled ctx %d: '%s'", T, e.msg);
    ga_session_free(s);
    int32_t tok[240];
    uint64_t rng = 5;
    for (int i = 0; i < T; i++)
        tok[i] = (int32_t)(ga_test_rand_u64(&rng) % V);
    float *ref = malloc((size_t)T * V * sizeof(float)), *yl = malloc((size_t)T * V * sizeof(float));
    float step[96];
    s = open_cpu(m, 60, &e);
    CHECK_OK(s ? GA_OK : GA_ERR_ARG, &e);
    if (s) CHECK_OK(ga_session_forward(s, 0, tok, 60, true, ref, &e), &e);
    ga_session_free(s);

    /* a bad override leaves the model as it was */
    ga_rope_scaling bad = {.type = GA_ROPE_YARN, .factor = -1};
    CHECK(ga_model_set_rope_scaling(m, &bad, &e) == GA_ERR_ARG && strstr(e.msg, "factor"));
    CHECK(ga_model_config(m)->rope_scaling.type == GA_ROPE_DEFAULT);

    ga_rope_scaling y = {.type = GA_ROPE_YARN, .factor = 4, .original_max_position_embeddings = 64};
    CHECK_OK(ga_model_set_rope_scaling(m, &y, &e), &e);
    CHECK(ga_config_max_context(ga_model_config(m)) == 256);
    s = open_cpu(m, T, &e);
    CHECK_MSG(s != NULL, "yarn ctx %d: %s", T, e.msg);
    if (s) {
        CHECK_OK(ga_session_forward(s, 0, tok, T, true, yl, &e), &e);
        int bad_n = 0;
        for (size_t i = 0; i < (size_t)T * V; i++)
            bad_n += !isfinite(yl[i]);
        CHECK_MSG(bad_n == 0, "%d non-finite logits past the original length", bad_n);
        /* position 0 has angle 0 and one key: unchanged; later ones must move */
        CHECK(ga_test_rel_l2(yl, ref, V) < 1e-5);
        double moved = 0;
        for (int p = 1; p < 60; p++)
            moved = fmax(moved, ga_test_rel_l2(yl + (size_t)p * V, ref + (size_t)p * V, V));
        CHECK_MSG(moved > 1e-3, "yarn logits equal the unscaled ones (%.3g)", moved);
        /* prefill + decode past the original length equals the full prefill */
        ga_session_reset(s, 0);
        CHECK_OK(ga_session_forward(s, 0, tok, P, false, step, &e), &e);
        double worst = ga_test_rel_l2(step, yl + (size_t)(P - 1) * V, V);
        for (int t = P; t < T; t++) {
            int seq = 0;
            CHECK_OK(ga_session_decode_batch(s, &seq, tok + t, 1, step, &e), &e);
            worst = fmax(worst, ga_test_rel_l2(step, yl + (size_t)t * V, V));
        }
        CHECK_MSG(worst < 1e-5, "yarn decode vs prefill rel L2 %.3g", worst);
        ga_session_free(s);
    }
    s = open_cpu(m, 257, &e);
    CHECK_MSG(!s && strstr(e.msg, "256"), "ctx 257 with yarn x4 over 64: '%s'", e.msg);
    ga_session_free(s);
    free(ref);
    free(yl);
    ga_model_free(m);
}

int main(void) {
    test_parse();
    test_tables();
    test_qwen3_case();
    test_linear_identity();
    test_backend();
    return ga_test_finish();
}
