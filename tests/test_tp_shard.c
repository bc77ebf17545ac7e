/*
 * Tensor parallelism's split on the host (src/core/tp_shard.c), CPU only:
 *  - each rank's slices of q_proj (queries and gate rows), q_bias, k/v, o_proj, gate/up and
 *    down_proj hold exactly the elements a naive per-head walk of the full model names: for
 *    every local head of the rank's config, its query and gate rows located with the shard
 *    config's gate layout equal the global head's rows located with the full config's (all
 *    three variants, G = 1, 2, 4, N = 1, 2, 4), so a rank is an ordinary model of its config;
 *  - the sharded layer maths: the attention block of one token (softmax over one key is 1,
 *    so a head's output is sigmoid(gate) * its KV head's v) and the SwiGLU MLP computed per
 *    rank with its slices and summed over ranks equal the full model's, fp32, tight tolerance;
 *  - configs that do not divide, and N out of range, are refused with one line naming them.
 */
#include <math.h>
#include <string.h>

#include "core/gate_layout.h"
#include "core/tensor.h"
#include "core/tp_shard.h"
#include "testutil.h"

static float at(const ga_tensor *t, int64_t r, int64_t c) {
    float f;
    const int64_t cols = t->ndim == 2 ? t->shape[1] : 0;
    ga_tensor_read_f32(t, r * cols + c, 1, &f);
    return f;
}

static float at1(const ga_tensor *t, int64_t i) {
    float f;
    ga_tensor_read_f32(t, i, 1, &f);
    return f;
}

static bool row_eq(const ga_tensor *a, int64_t ra, const ga_tensor *b, int64_t rb, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (at(a, ra, i) != at(b, rb, i)) return false;
    return true;
}

static ga_config make_cfg(ga_gate_mode gate, int nh, int nkv, int hd, bool bias) {
    ga_config c = {.vocab_size = 64,
                   .hidden_size = 32,
                   .intermediate_size = 48,
                   .n_layers = 2,
                   .n_heads = nh,
                   .n_kv_heads = nkv,
                   .head_dim = hd,
                   .rms_norm_eps = 1e-6f,
                   .rope_theta = 1e6,
                   .max_position_embeddings = 1024,
                   .use_qk_norm = true,
                   .attention_bias = bias,
                   .o_bias = bias,
                   .gate = gate,
                   .torch_dtype = GA_BF16,
                   .n_eos = 1,
                   .eos_token_ids = {1},
                   .bos_token_id = -1};
    return c;
}

/* Every element of rank r's slices against the full model, by a per-head walk. */
static void check_slices(const ga_model *m, const ga_model *s, int n, int r, const char *what) {
    const ga_config *c = ga_model_config(m), *sc = ga_model_config(s);
    const ga_gate_layout L = ga_gate_layout_of(c), SL = ga_gate_layout_of(sc);
    const int H = c->hidden_size, hd = c->head_dim, nhl = c->n_heads / n, nkl = c->n_kv_heads / n;
    const int Il = c->intermediate_size / n;
    CHECK_MSG(sc->n_heads == nhl && sc->n_kv_heads == nkl && sc->intermediate_size == Il,
              "%s: rank config %d/%d/%d", what, sc->n_heads, sc->n_kv_heads, sc->intermediate_size);
    for (int l = 0; l < c->n_layers; l++) {
        const ga_layer_w *fw = &m->layers[l], *sw = &s->layers[l];
        CHECK_MSG(sw->q_proj->shape[0] == ga_config_q_rows(sc) && sw->q_proj->shape[1] == H,
                  "%s: q_proj slice %lld x %lld, config says %d rows", what,
                  (long long)sw->q_proj->shape[0], (long long)sw->q_proj->shape[1],
                  ga_config_q_rows(sc));
        int bad = 0;
        for (int hl = 0; hl < nhl; hl++) {
            const int h = r * nhl + hl; /* the global head */
            for (int d = 0; d < hd; d++) {
                bad += !row_eq(sw->q_proj, (int64_t)ga_gate_layout_q_off(&SL, hl) + d, fw->q_proj,
                               (int64_t)ga_gate_layout_q_off(&L, h) + d, H);
                if (fw->q_bias)
                    bad += at1(sw->q_bias, (int64_t)ga_gate_layout_q_off(&SL, hl) + d) !=
                           at1(fw->q_bias, (int64_t)ga_gate_layout_q_off(&L, h) + d);
                /* o_proj: every output row, the head's input columns */
                for (int o = 0; o < H; o++)
                    bad += at(sw->o_proj, o, (int64_t)hl * hd + d) !=
                           at(fw->o_proj, o, (int64_t)h * hd + d);
            }
            for (int e = 0; e < L.per_head; e++) {
                bad += !row_eq(sw->q_proj, (int64_t)ga_gate_layout_gate_off(&SL, hl) + e,
                               fw->q_proj, (int64_t)ga_gate_layout_gate_off(&L, h) + e, H);
                if (fw->q_bias)
                    bad += at1(sw->q_bias, (int64_t)ga_gate_layout_gate_off(&SL, hl) + e) !=
                           at1(fw->q_bias, (int64_t)ga_gate_layout_gate_off(&L, h) + e);
            }
            /* GQA: the local head reads the local KV head that holds its global KV head */
            CHECK(r * nkl + ga_gate_layout_kv_head(&SL, hl) == ga_gate_layout_kv_head(&L, h));
        }
        for (int jl = 0; jl < nkl; jl++)
            for (int d = 0; d < hd; d++) {
                const int64_t rl = (int64_t)jl * hd + d, rg = (int64_t)(r * nkl + jl) * hd + d;
                bad += !row_eq(sw->k_proj, rl, fw->k_proj, rg, H);
                bad += !row_eq(sw->v_proj, rl, fw->v_proj, rg, H);
                if (fw->k_bias) {
                    bad += at1(sw->k_bias, rl) != at1(fw->k_bias, rg);
                    bad += at1(sw->v_bias, rl) != at1(fw->v_bias, rg);
                }
            }
        for (int i = 0; i < Il; i++) {
            bad += !row_eq(sw->gate_proj, i, fw->gate_proj, (int64_t)r * Il + i, H);
            bad += !row_eq(sw->up_proj, i, fw->up_proj, (int64_t)r * Il + i, H);
            for (int o = 0; o < H; o++)
                bad += at(sw->down_proj, o, i) != at(fw->down_proj, o, (int64_t)r * Il + i);
        }
        /* replicated: the same views */
        bad += sw->input_norm != fw->input_norm || sw->post_norm != fw->post_norm ||
               sw->q_norm != fw->q_norm || sw->k_norm != fw->k_norm || sw->o_bias != fw->o_bias;
        CHECK_MSG(bad == 0, "%s rank %d layer %d: %d elements differ from the per-head walk", what,
                  r, l, bad);
    }
    CHECK(s->embed == m->embed && s->final_norm == m->final_norm && s->lm_head == m->lm_head);
}

static float sigm(float x) {
    return 1.0f / (1.0f + expf(-x));
}

/* One token's attention block output (before o_bias) with the config's layout: out (H) +=
 * Wo . concat_h(sigmoid(gate_h) * v_kv(h)). With one key, softmax is 1 and q/k drop out. */
static void attn_t1(const ga_model *m, int l, const float *x, double *out) {
    const ga_config *c = ga_model_config(m);
    const ga_layer_w *w = &m->layers[l];
    const ga_gate_layout L = ga_gate_layout_of(c);
    const int H = c->hidden_size, hd = c->head_dim, nh = c->n_heads;
    const int q_rows = ga_config_q_rows(c), kv = c->n_kv_heads * hd;
    float *q = calloc((size_t)q_rows, 4), *v = calloc((size_t)kv, 4),
          *a = calloc((size_t)nh * hd, 4);
    for (int r = 0; r < q_rows; r++) {
        double s = w->q_bias ? at1(w->q_bias, r) : 0;
        for (int k = 0; k < H; k++)
            s += (double)at(w->q_proj, r, k) * x[k];
        q[r] = (float)s;
    }
    for (int r = 0; r < kv; r++) {
        double s = w->v_bias ? at1(w->v_bias, r) : 0;
        for (int k = 0; k < H; k++)
            s += (double)at(w->v_proj, r, k) * x[k];
        v[r] = (float)s;
    }
    for (int h = 0; h < nh; h++)
        for (int d = 0; d < hd; d++) {
            float g = 1.0f;
            if (L.per_head == 1) g = sigm(q[ga_gate_layout_gate_off(&L, h)]);
            if (L.per_head == hd) g = sigm(q[ga_gate_layout_gate_off(&L, h) + d]);
            a[h * hd + d] = g * v[ga_gate_layout_kv_head(&L, h) * hd + d];
        }
    for (int o = 0; o < H; o++) {
        double s = 0;
        for (int k = 0; k < nh * hd; k++)
            s += (double)at(w->o_proj, o, k) * a[k];
        out[o] += s;
    }
    free(q);
    free(v);
    free(a);
}

static void mlp(const ga_model *m, int l, const float *x, double *out) {
    const ga_config *c = ga_model_config(m);
    const ga_layer_w *w = &m->layers[l];
    const int H = c->hidden_size, I = c->intermediate_size;
    float *act = calloc((size_t)I, 4);
    for (int i = 0; i < I; i++) {
        double g = 0, u = 0;
        for (int k = 0; k < H; k++) {
            g += (double)at(w->gate_proj, i, k) * x[k];
            u += (double)at(w->up_proj, i, k) * x[k];
        }
        act[i] = (float)(g / (1.0 + exp(-g)) * u);
    }
    for (int o = 0; o < H; o++) {
        double s = 0;
        for (int i = 0; i < I; i++)
            s += (double)at(w->down_proj, o, i) * act[i];
        out[o] += s;
    }
    free(act);
}

static void check_sum(const ga_model *m, ga_model *const *ranks, int n, const char *what) {
    const int H = ga_model_config(m)->hidden_size;
    uint64_t rng = 77;
    float *x = malloc((size_t)H * 4);
    double *full = calloc((size_t)H, 8), *sum = calloc((size_t)H, 8);
    for (int k = 0; k < H; k++)
        x[k] = ga_test_rand_normal(&rng);
    for (int pass = 0; pass < 2; pass++) {
        memset(full, 0, (size_t)H * 8);
        memset(sum, 0, (size_t)H * 8);
        (pass ? mlp : attn_t1)(m, 1, x, full);
        for (int r = 0; r < n; r++)
            (pass ? mlp : attn_t1)(ranks[r], 1, x, sum);
        double e = 0, ref = 0;
        for (int o = 0; o < H; o++) {
            e += (sum[o] - full[o]) * (sum[o] - full[o]);
            ref += full[o] * full[o];
        }
        CHECK_MSG(ref > 0 && sqrt(e / ref) < 1e-6, "%s: %s summed over %d ranks: rel L2 %.3e", what,
                  pass ? "MLP" : "attention block", n, sqrt(e / ref));
    }
    free(x);
    free(full);
    free(sum);
}

static void test_split(ga_gate_mode gate, int nh, int nkv, int hd, bool bias, int n) {
    char what[96];
    snprintf(what, sizeof what, "%s nh %d nkv %d hd %d%s tp %d", ga_gate_mode_name(gate), nh, nkv,
             hd, bias ? " bias" : "", n);
    ga_config c = make_cfg(gate, nh, nkv, hd, bias);
    ga_model *m = NULL;
    ga_err err = {{0}};
    CHECK_OK(ga_model_random(&c, 99, GA_BF16, &m, &err), &err);
    if (!m) return;
    ga_model *ranks[GA_TP_MAX] = {0};
    for (int r = 0; r < n; r++) {
        CHECK_OK(ga_tp_model(m, n, r, &ranks[r], &err), &err);
        if (!ranks[r]) goto done;
        check_slices(m, ranks[r], n, r, what);
    }
    check_sum(m, ranks, n, what);
    /* the per-rank device bytes (gattn info --tp) against the slices themselves */
    for (int r = 0; r < n; r++) {
        const ga_model *s = ranks[r];
        uint64_t want = 2 * (uint64_t)ga_tensor_numel(s->embed);
        if (r == 0 && s->lm_head != s->embed) want += 2 * (uint64_t)ga_tensor_numel(s->lm_head);
        for (int l = 0; l < c.n_layers; l++) {
            const ga_layer_w *w = &s->layers[l];
            const ga_tensor *mats[] = {w->q_proj,    w->k_proj,  w->v_proj,   w->o_proj,
                                       w->gate_proj, w->up_proj, w->down_proj};
            for (int i = 0; i < 7; i++)
                want += 2 * (uint64_t)ga_tensor_numel(mats[i]);
        }
        want += 4 * (uint64_t)c.hidden_size * (2 * (uint64_t)c.n_layers + 1);
        CHECK_MSG(ga_tp_rank_weight_bytes(&c, n, r) == want,
                  "%s rank %d: %llu weight bytes, want %llu", what, r,
                  (unsigned long long)ga_tp_rank_weight_bytes(&c, n, r), (unsigned long long)want);
    }
done:
    for (int r = 0; r < n; r++)
        ga_tp_model_free(ranks[r]);
    ga_model_free(m);
}

static void expect_refused(int nh, int nkv, int inter, int n, const char *needle) {
    ga_config c = make_cfg(GA_GATE_HEADWISE, nh, nkv, 8, false);
    c.intermediate_size = inter;
    ga_tp_shard sh;
    ga_err err = {{0}};
    ga_status st = ga_tp_shard_of(&c, n, 0, &sh, &err);
    CHECK_MSG(st == GA_ERR_ARG, "tp %d of %d/%d/%d: status %d", n, nh, nkv, inter, (int)st);
    CHECK_MSG(strstr(err.msg, needle) && !strchr(err.msg, '\n'),
              "tp %d: message \"%s\" lacks \"%s\"", n, err.msg, needle);
}

int main(void) {
    const ga_gate_mode modes[] = {GA_GATE_NONE, GA_GATE_HEADWISE, GA_GATE_ELEMENTWISE};
    for (int g = 0; g < 3; g++) {
        test_split(modes[g], 8, 8, 8, false, 2);  /* G = 1 */
        test_split(modes[g], 8, 4, 8, true, 2);   /* G = 2, biases */
        test_split(modes[g], 16, 4, 4, false, 4); /* G = 4 */
        test_split(modes[g], 8, 4, 8, true, 4);   /* one KV head a rank */
        test_split(modes[g], 8, 2, 8, false, 1);  /* N = 1: the model itself */
    }
    expect_refused(8, 4, 48, 3,
                   "heads (8), KV heads (4) and intermediate size (48) divisible by 3");
    expect_refused(8, 2, 48, 4, "KV heads (2)");
    expect_refused(8, 4, 50, 4, "intermediate size (50)");
    expect_refused(8, 4, 48, 0, "1 to 8");
    expect_refused(16, 16, 48, 9, "1 to 8");
    return ga_test_finish();
}
