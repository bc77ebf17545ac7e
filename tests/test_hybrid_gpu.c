/*
 * The hybrid CUDA backend (src/cuda/cuda_hybrid*.c, issue 15) against the CPU hybrid backend
 * (itself checked against transformers by test_hybrid_fixtures), gpu label, exit 77 without a
 * GPU. Small in-memory random models (ga_model_random, conditioned as below) for Qwen3.5 dense
 * (split DeltaNet projections, head_dim 64), Qwen3-Next (fused, per-key-head grouped projections,
 * MoE with a shared expert beside a dense layer, head_dim 128, an odd d_v), Qwen3.5-MoE (16
 * experts, norm_topk_prob false) and Qwen3.5 at the released head sizes (head_dim 256, d_k = d_v =
 * 128):
 *   1. one prefill, the logits of every position, GPU vs CPU (one case longer than a prefill
 *      chunk, so the DeltaNet states and the cache carry across chunks);
 *   2. two sequences prefilled to different lengths, then decoded token by token together
 *      (decode_batch of 2), every step's logits vs the CPU's full recompute, with the slot
 *      cache and with a paged one (blocks of 16, sequences interleaved);
 *   3. greedy generation by decode equals greedy by full recompute on the GPU, for every step
 *      whose top-2 gap is not a near-tie;
 *   4. an attention capture (viz): the full-attention layers' pooled maps, first-token shares
 *      and gate statistics vs the CPU's, the linear layers with no map and NaN metrics.
 *   6. forward_multi (three sequences in one call, their rows across a chunk boundary, so one
 *      sequence continues in the next chunk) against separate forwards on the GPU, every
 *      position; then a second call continuing them (last-row logits) and decode steps of all
 *      three, checking the DeltaNet states and caches it leaves;
 *   7. decode graphs and device sampling: two sequences with the same prompt (equal states),
 *      the first decoded by a step run eagerly and captured, the second by its replay: bitwise
 *      equal logits; the same again at the next position (both replays, the staged positions,
 *      slots and tables moved on) against the CPU; greedy decode_sample equal to the argmax of
 *      the twin's logits, and a sampled draw equal on the twins (same stream and position);
 *      where the prompt allows, a decode across the first KV-length bucket (256 keys, a second
 *      graph) against the CPU;
 *   5. where the backends part, if they do: the same model cut to its first d layers, each layer
 *      whole and with its MLP silenced (down projections zeroed: the mixer alone), GPU vs CPU
 *      for d = 1 .. L, printed as a table, so a failing run names the first layer and component
 *      (mixer or MLP) that is off.
 *
 * The models, and why they are not plain random ones (measured 2026-12-02 with the CPU reference
 * run with the GPU's bf16 rounding points inserted, on this machine, no GPU): a random hybrid is
 * ill-conditioned in two places, and the first H200 run (worst rel L2 0.09 .. 0.73) was that,
 * not a bug; the emulation reproduced it to two digits (0.0953 / 0.726 / 0.333 / 0.195 for the
 * four cases against the GPU's 0.0942 / 0.726 / 0.327 / 0.196).
 *  - DeltaNet: with unrelated random q and k projections, q_t . k_s is a near-cancelling sum, so
 *    the delta rule's output o = q^T S is tiny (rms 1e-5 against v's 0.1) and bf16 rounding of the
 *    conv output moves it by up to 40%: rounding only the q/k part of the conv output gives 7e-2
 *    logit error alone. Trained models have q and k that agree where it matters; here the q
 *    projection rows (and their conv taps) are made copies of the k ones, so q = k per token and
 *    the delta rule reads its keys with q . k of order one.
 *  - MoE: the top-k choice is discrete, and a router whose K-th and (K+1)-th experts are within
 *    bf16 noise picks differently on the two backends; the changed row then feeds every later
 *    position through the DeltaNet states and the cache. Scaling the router does not help (the
 *    noise is relative to the router's input, so it scales with the logits). The end-to-end MoE
 *    cases route every token to all experts (top-E: the weights stay the softmax, continuous),
 *    which keeps the device softmax, the sort, the gather, the per-expert GEMMs, the weighted
 *    combine and the shared expert in the path; the top-k selection itself is checked exactly,
 *    on inputs with clear margins, by test_hybrid_ops (ga_moe_route).
 * With both, the emulated bf16 pipeline against the fp32 CPU reference gives a worst row of
 * 3.0e-2 .. 6.7e-2 and a median of 1.6e-2 .. 2.5e-2 over the four cases (4 layers whose
 * zero-centred norms scale by ~2: bf16 noise compounds faster than in the Qwen3 tests). Hence
 * TOL_WORST and TOL_MEDIAN below, about 1.5x those; a real glue bug (a wrong RoPE pairing, gate
 * half, head map, norm weight, row order) moves whole rows by 0.3 or more, and step 5 then says
 * where. The top-1 check stays: the GPU's top-1 within 0.1 standard deviations of the CPU's best.
 * Measured on the H200 (2026-12-02): median 1.6e-2 .. 3.0e-2, worst 2.0e-2 .. 6.0e-2 over every
 * check of the four cases, the layer table growing smoothly from 4.4e-3 (first DeltaNet layer).
 */
#include <math.h>

#include "core/model.h"
#include "testutil.h"
#ifdef GA_HAVE_CUDA
#include "cuda/cuda_hybrid.h"
#endif

#define TOL_WORST 0.1
#define TOL_MEDIAN 4e-2
#define NDIAG 64 /* tokens of step 5's prefills */
#define NDEC 12  /* decode steps */
#define NGEN 16  /* greedy tokens */

typedef struct hcase {
    const char *name;
    const char *json;
    int T; /* prompt of step 1 */
} hcase;

static const hcase k_cases[] = {
    {"qwen3_5 dense",
     "{\"model_type\": \"qwen3_5_text\", \"vocab_size\": 512, \"hidden_size\": 256, "
     "\"intermediate_size\": 512, \"num_hidden_layers\": 4, \"full_attention_interval\": 2, "
     "\"num_attention_heads\": 4, \"num_key_value_heads\": 2, \"head_dim\": 64, "
     "\"linear_num_key_heads\": 2, \"linear_num_value_heads\": 4, \"linear_key_head_dim\": 64, "
     "\"linear_value_head_dim\": 64, \"tie_word_embeddings\": true, "
     "\"max_position_embeddings\": 2048}",
     600},
    {"qwen3_next moe",
     "{\"model_type\": \"qwen3_next\", \"vocab_size\": 512, \"hidden_size\": 256, "
     "\"intermediate_size\": 384, \"num_hidden_layers\": 4, \"full_attention_interval\": 2, "
     "\"num_attention_heads\": 4, \"num_key_value_heads\": 1, \"head_dim\": 128, "
     "\"partial_rotary_factor\": 0.5, \"linear_num_key_heads\": 2, "
     "\"linear_num_value_heads\": 4, \"linear_key_head_dim\": 32, \"linear_value_head_dim\": 48, "
     "\"num_experts\": 8, \"num_experts_per_tok\": 8, \"moe_intermediate_size\": 96, "
     "\"shared_expert_intermediate_size\": 128, \"mlp_only_layers\": [1], "
     "\"max_position_embeddings\": 2048}",
     100},
    {"qwen3_5_moe",
     "{\"model_type\": \"qwen3_5_moe\", \"text_config\": {\"vocab_size\": 512, "
     "\"hidden_size\": 256, \"num_hidden_layers\": 4, \"full_attention_interval\": 4, "
     "\"num_attention_heads\": 8, \"num_key_value_heads\": 2, \"head_dim\": 64, "
     "\"linear_num_key_heads\": 4, \"linear_num_value_heads\": 8, \"linear_key_head_dim\": 32, "
     "\"linear_value_head_dim\": 32, \"num_experts\": 16, \"num_experts_per_tok\": 16, "
     "\"moe_intermediate_size\": 64, \"shared_expert_intermediate_size\": 64, "
     "\"norm_topk_prob\": false, \"max_position_embeddings\": 2048}}",
     100},
    /* the released models' attention and DeltaNet head sizes: head_dim 256 (rotary 64 at the
     * default 0.25), d_k = d_v = 128, 3 linear layers to 1 full */
    {"qwen3_5 hd256",
     "{\"model_type\": \"qwen3_5_text\", \"vocab_size\": 512, \"hidden_size\": 256, "
     "\"intermediate_size\": 512, \"num_hidden_layers\": 4, \"full_attention_interval\": 4, "
     "\"num_attention_heads\": 4, \"num_key_value_heads\": 1, \"head_dim\": 256, "
     "\"linear_num_key_heads\": 1, \"linear_num_value_heads\": 2, \"linear_key_head_dim\": 128, "
     "\"linear_value_head_dim\": 128, \"max_position_embeddings\": 2048}",
     300},
};

static uint64_t rng = 0x4879b21dull;

static ga_session *open_s(const ga_model *m, ga_device dev, int ctx, int batch, int kv_blocks) {
    ga_session_opts o = {.device = dev,
                         .max_context = ctx,
                         .max_batch = batch,
                         .kv_blocks = kv_blocks,
                         .kv_block_size = 16,
                         .cuda_gemm = dev == GA_DEVICE_CUDA ? ga_test_cuda_gemm() : 0};
    ga_session *s = NULL;
    ga_err err = {{0}};
    CHECK_OK(ga_session_create(m, &o, &s, &err), &err);
    if (s) CHECK(ga_session_device(s) == dev);
    return s;
}

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int argmax(const float *x, int n) {
    int b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b]) b = i;
    return b;
}

static double row_sd(const float *x, int n) {
    double mean = 0, var = 0;
    for (int i = 0; i < n; i++)
        mean += x[i];
    mean /= n;
    for (int i = 0; i < n; i++)
        var += (x[i] - mean) * (x[i] - mean);
    return sqrt(var / n);
}

/* The median and worst relative L2 of GPU rows against CPU rows, top-1 counts. */
typedef struct row_stats {
    double median, worst;
    int agree, far, bad;
} row_stats;

static row_stats row_compare(const float *gpu, const float *cpu, int rows, int V) {
    row_stats st = {0};
    double *e = malloc((size_t)rows * sizeof *e);
    for (int r = 0; r < rows; r++) {
        const float *g = gpu + (size_t)r * V, *c = cpu + (size_t)r * V;
        for (int i = 0; i < V; i++)
            st.bad += !isfinite(g[i]);
        e[r] = ga_test_rel_l2(g, c, (size_t)V);
        if (isnan(e[r])) e[r] = INFINITY;
        st.worst = e[r] > st.worst ? e[r] : st.worst;
        const int ga = argmax(g, V), ca = argmax(c, V);
        st.agree += ga == ca;
        st.far += c[ca] - c[ga] > 0.1 * row_sd(c, V);
    }
    qsort(e, (size_t)rows, sizeof *e, cmp_double);
    st.median = e[rows / 2];
    free(e);
    return st;
}

/* GPU rows against CPU rows: median and worst relative L2, the top-1 check, no NaN/Inf. */
static void compare(const char *what, const float *gpu, const float *cpu, int rows, int V) {
    const row_stats st = row_compare(gpu, cpu, rows, V);
    printf("  %-40s rows %4d  rel L2 median %.3e worst %.3e  top-1 agree %d/%d\n", what, rows,
           st.median, st.worst, st.agree, rows);
    CHECK_MSG(st.bad == 0, "%s: %d non-finite GPU logits", what, st.bad);
    CHECK_MSG(st.median <= TOL_MEDIAN, "%s: median rel L2 %.3e > %.1e", what, st.median,
              TOL_MEDIAN);
    CHECK_MSG(st.worst <= TOL_WORST, "%s: worst rel L2 %.3e > %.1e", what, st.worst, TOL_WORST);
    CHECK_MSG(st.far == 0, "%s: %d rows whose GPU top-1 is far from the CPU's best", what, st.far);
}

/* 2: sequences 0 and 1 prefilled to p0 / p1 tokens of a / b, then NDEC steps of both in one
 * decode_batch; each step vs the CPU's rows (ca / cb: all positions of a / b). The sequences'
 * prefills are split in two so the paged cache interleaves their blocks. */
static void prefill_then_decode(const char *what, ga_session *s, const int32_t *a, int p0,
                                const int32_t *b, int p1, const float *ca, const float *cb, int V) {
    ga_err err = {{0}};
    float *two = malloc(2 * (size_t)V * sizeof *two);
    float *ga = malloc((size_t)NDEC * V * sizeof *ga), *gb = malloc((size_t)NDEC * V * sizeof *gb);
    float *ra = malloc((size_t)NDEC * V * sizeof *ra), *rb = malloc((size_t)NDEC * V * sizeof *rb);
    ga_session_reset(s, 0);
    ga_session_reset(s, 1);
    CHECK_OK(ga_session_forward(s, 0, a, p0 / 2, false, NULL, &err), &err);
    CHECK_OK(ga_session_forward(s, 1, b, p1 / 2, false, NULL, &err), &err);
    CHECK_OK(ga_session_forward(s, 0, a + p0 / 2, p0 - p0 / 2, false, NULL, &err), &err);
    CHECK_OK(ga_session_forward(s, 1, b + p1 / 2, p1 - p1 / 2, false, NULL, &err), &err);
    for (int k = 0; k < NDEC; k++) {
        const int seqs[2] = {0, 1};
        const int32_t tk[2] = {a[p0 + k], b[p1 + k]};
        for (int i = 0; i < 2 * V; i++)
            two[i] = NAN;
        CHECK_OK(ga_session_decode_batch(s, seqs, tk, 2, two, &err), &err);
        memcpy(ga + (size_t)k * V, two, (size_t)V * sizeof *two);
        memcpy(gb + (size_t)k * V, two + V, (size_t)V * sizeof *two);
        memcpy(ra + (size_t)k * V, ca + (size_t)(p0 + k) * V, (size_t)V * sizeof *ra);
        memcpy(rb + (size_t)k * V, cb + (size_t)(p1 + k) * V, (size_t)V * sizeof *rb);
    }
    char w[128];
    snprintf(w, sizeof w, "%s seq 0 (from %d)", what, p0);
    compare(w, ga, ra, NDEC, V);
    snprintf(w, sizeof w, "%s seq 1 (from %d)", what, p1);
    compare(w, gb, rb, NDEC, V);
    free(two), free(ga), free(gb), free(ra), free(rb);
}

/* 3: greedy by decode vs greedy by recompute (a full prefill of prompt + the decoded tokens so
 * far), both on the GPU. Every recompute sees the decode's own prefix, so a step whose top-2 gap
 * is a near-tie (under 0.02 standard deviations: bf16 may order it either way) is skipped
 * without losing the steps after it. */
static void greedy(ga_session *s, const int32_t *prompt, int np, int V) {
    ga_err err = {{0}};
    int32_t seq[64];
    float *l = malloc((size_t)V * sizeof *l);
    memcpy(seq, prompt, (size_t)np * sizeof *seq);
    ga_session_reset(s, 0);
    CHECK_OK(ga_session_forward(s, 0, seq, np, false, l, &err), &err);
    for (int k = 0; k < NGEN; k++) {
        seq[np + k] = argmax(l, V);
        const int sq = 0;
        if (k + 1 < NGEN) CHECK_OK(ga_session_decode_batch(s, &sq, &seq[np + k], 1, l, &err), &err);
    }
    int compared = 0;
    for (int k = 0; k < NGEN; k++) {
        ga_session_reset(s, 0);
        CHECK_OK(ga_session_forward(s, 0, seq, np + k, false, l, &err), &err);
        const int top = argmax(l, V);
        float second = -INFINITY;
        for (int i = 0; i < V; i++)
            if (i != top && l[i] > second) second = l[i];
        if (l[top] - second < 0.02 * row_sd(l, V)) continue; /* a near-tie */
        CHECK_MSG(top == seq[np + k], "greedy step %d: decode chose %d, recompute %d", k,
                  seq[np + k], top);
        compared++;
    }
    printf("  %-40s %d of %d greedy tokens equal to recompute\n", "greedy", compared, NGEN);
    CHECK_MSG(compared >= NGEN / 2, "too few well-separated greedy steps (%d)", compared);
    free(l);
}

/* 4: the capture of a Tc-token prefill on both backends, every layer asked for a map. */
static void capture(ga_session *gpu, ga_session *cpu, const ga_config *c, const int32_t *tok) {
    const int Tc = 50, L = c->n_layers;
    ga_err err = {{0}};
    bool layers[16];
    for (int l = 0; l < L && l < 16; l++)
        layers[l] = true;
    ga_attn_capture cg = {.layers = layers, .head = -1, .max_res = 16};
    ga_attn_capture cc = cg;
    ga_session_reset(gpu, 0);
    ga_session_reset(cpu, 0);
    CHECK_OK(ga_session_set_capture(gpu, &cg, &err), &err);
    CHECK_OK(ga_session_set_capture(cpu, &cc, &err), &err);
    CHECK_OK(ga_session_forward(gpu, 0, tok, Tc, false, NULL, &err), &err);
    CHECK_OK(ga_session_forward(cpu, 0, tok, Tc, false, NULL, &err), &err);
    if (!cg.maps || !cc.maps || !cg.metrics || !cc.metrics) {
        CHECK_MSG(0, "capture outputs missing");
    } else {
        CHECK(cg.res == cc.res && cg.n_tokens == Tc);
        double wm = 0;
        for (int l = 0; l < L; l++) {
            const bool lin = c->hybrid.layer_is_linear[l];
            const ga_layer_metrics *a = &cg.metrics[l], *b = &cc.metrics[l];
            CHECK_MSG((cg.maps[l] == NULL) == lin, "layer %d: map %p, linear %d", l,
                      (void *)cg.maps[l], lin);
            if (lin) {
                CHECK(isnan(a->first_token_share) && isnan(a->gate_mean) &&
                      isnan(a->gate_below_0_1));
                continue;
            }
            if (cg.maps[l] && cc.maps[l]) {
                /* twice the Qwen3 viz test's bounds (5e-3 + 5e-2 relative): a full layer's q
                 * and k here carry the bf16 drift of the DeltaNet layers before it (the
                 * per-layer table: 1.1e-2 median at the first attention layer, against ~4e-3
                 * for a Qwen3 layer); measured on the H200 at the old bounds: ratios 0.29 to
                 * 1.14 over the four models. */
                const double r =
                    ga_test_tol_ratio(cg.maps[l], cc.maps[l], (size_t)cg.res * cg.res, 1e-2, 1e-1);
                wm = r > wm ? r : wm;
            }
            CHECK_MSG(fabs(a->first_token_share - b->first_token_share) <= 1e-2 &&
                          fabs(a->gate_mean - b->gate_mean) <= 5e-3 &&
                          fabs(a->gate_below_0_1 - b->gate_below_0_1) <= 1e-2,
                      "layer %d: first share %.5f/%.5f, gate mean %.5f/%.5f, below %.5f/%.5f", l,
                      a->first_token_share, b->first_token_share, a->gate_mean, b->gate_mean,
                      a->gate_below_0_1, b->gate_below_0_1);
        }
        printf("  %-40s map tolerance ratio %.3f\n", "capture", wm);
        CHECK_MSG(wm <= 1, "capture maps differ from the CPU's (ratio %.3f)", wm);
    }
    ga_attn_capture_free(&cg);
    ga_attn_capture_free(&cc);
}

/* GPU rows against GPU rows that should differ by GEMM-height rounding only (the fp32 sums of
 * another cuBLAS kernel, a DeltaNet piece's chunks of 64 starting elsewhere): compare's checks
 * plus a worst row within TOL_SAME, a third of TOL_WORST (a row of the wrong sequence, slot or
 * position is off by 0.3 or more). */
#define TOL_SAME 3e-2
static void compare_same(const char *what, const float *got, const float *ref, int rows, int V) {
    compare(what, got, ref, rows, V);
    const row_stats st = row_compare(got, ref, rows, V);
    CHECK_MSG(st.worst <= TOL_SAME, "%s: worst rel L2 %.3e > %.1e", what, st.worst, TOL_SAME);
}

/* 6: forward_multi of three sequences (a, b, a shifted) vs separate forwards, all positions,
 * lengths summing past the scratch's rows; then a continuation (last rows) and decode steps. */
static void multi(ga_session *mul, ga_session *sep, const int32_t *a, const int32_t *b, int T,
                  int V) {
    ga_err err = {{0}};
    const int n[3] = {T * 3 / 4, T / 2, 7}, seqs[3] = {0, 1, 2};
    const int32_t *src[3] = {a, b, a + 3};
    const int total = n[0] + n[1] + n[2];
    int32_t *tok = malloc((size_t)total * sizeof *tok);
    int off[4] = {0};
    for (int i = 0; i < 3; i++) {
        memcpy(tok + off[i], src[i], (size_t)n[i] * sizeof *tok);
        off[i + 1] = off[i] + n[i];
    }
    float *gm = malloc((size_t)total * V * sizeof *gm),
          *gs = malloc((size_t)total * V * sizeof *gs);
    for (size_t i = 0; i < (size_t)total * V; i++)
        gm[i] = gs[i] = NAN;
    for (int i = 0; i < 3; i++) {
        ga_session_reset(mul, i);
        ga_session_reset(sep, i);
    }
    CHECK_OK(ga_session_forward_multi(mul, 3, seqs, tok, off, true, gm, &err), &err);
    for (int i = 0; i < 3; i++)
        CHECK_OK(
            ga_session_forward(sep, i, tok + off[i], n[i], true, gs + (size_t)off[i] * V, &err),
            &err);
    char w[96];
    snprintf(w, sizeof w, "forward_multi %d+%d+%d vs separate", n[0], n[1], n[2]);
    compare_same(w, gm, gs, total, V);
    /* continuation: 4, 1 and 6 more tokens, last rows */
    const int m[3] = {4, 1, 6};
    int off2[4] = {0};
    for (int i = 0; i < 3; i++) {
        memcpy(tok + off2[i], src[i] + n[i], (size_t)m[i] * sizeof *tok);
        off2[i + 1] = off2[i] + m[i];
    }
    CHECK_OK(ga_session_forward_multi(mul, 3, seqs, tok, off2, false, gm, &err), &err);
    for (int i = 0; i < 3; i++)
        CHECK_OK(ga_session_forward(sep, i, tok + off2[i], m[i], false, gs + (size_t)i * V, &err),
                 &err);
    compare_same("forward_multi continued, last rows", gm, gs, 3, V);
    /* decode steps of all three on both */
    const int steps = 4;
    for (int k = 0; k < steps; k++) {
        int32_t t3[3];
        for (int i = 0; i < 3; i++)
            t3[i] = src[i][n[i] + m[i] + k];
        CHECK_OK(ga_session_decode_batch(mul, seqs, t3, 3, gm + (size_t)k * 3 * V, &err), &err);
        CHECK_OK(ga_session_decode_batch(sep, seqs, t3, 3, gs + (size_t)k * 3 * V, &err), &err);
    }
    compare_same("decode after forward_multi", gm, gs, 3 * steps, V);
    free(tok), free(gm), free(gs);
}

/* 7: graph capture and replay, device sampling. s must be fresh (no decode step yet), with two
 * sequences. ca: the CPU's logits of every position of a. */
static void graphs(ga_session *s, const int32_t *a, const float *ca, int V) {
    ga_err err = {{0}};
    const int n0 = 20, s0 = 0, s1 = 1;
    float *l0 = malloc((size_t)V * sizeof *l0), *l1 = malloc((size_t)V * sizeof *l1);
    float *g2 = malloc(2 * (size_t)V * sizeof *g2), *c2 = malloc(2 * (size_t)V * sizeof *c2);
    for (int q = 0; q < 2; q++) {
        ga_session_reset(s, q);
        CHECK_OK(ga_session_forward(s, q, a, n0, false, NULL, &err), &err);
    }
    int same = 0;
    for (int k = 0; k < 2; k++) { /* k 0: eager + capture, then replay; k 1: replays */
        for (int i = 0; i < V; i++)
            l0[i] = l1[i] = NAN;
        CHECK_OK(ga_session_decode_batch(s, &s0, &a[n0 + k], 1, l0, &err), &err);
        CHECK_OK(ga_session_decode_batch(s, &s1, &a[n0 + k], 1, l1, &err), &err);
        same += !memcmp(l0, l1, (size_t)V * sizeof *l0);
        memcpy(g2 + (size_t)k * V, l1, (size_t)V * sizeof *l1);
        memcpy(c2 + (size_t)k * V, ca + (size_t)(n0 + k) * V, (size_t)V * sizeof *c2);
    }
    printf("  %-40s %d of 2 steps bitwise equal\n", "graph replay vs eager step", same);
    CHECK_MSG(same == 2, "a replayed decode step differs from the eager one (%d of 2 equal)", same);
    compare("replayed steps vs CPU", g2, c2, 2, V);
    /* greedy on the device vs the twin's logits; a draw at the same stream and position */
    int32_t id = -1, ids[2] = {-1, -1};
    CHECK_OK(ga_session_decode_batch(s, &s0, &a[n0 + 2], 1, l0, &err), &err);
    CHECK_OK(ga_session_decode_sample(s, &s1, &a[n0 + 2], 1, NULL, NULL, &id, &err), &err);
    CHECK_MSG(id == argmax(l0, V), "greedy decode_sample %d, argmax of the twin's logits %d", id,
              argmax(l0, V));
    const ga_sampling sp = {.temperature = 0.8f, .top_k = 40, .top_p = 0.95f, .seed = 7};
    const uint64_t st = 3;
    CHECK_OK(ga_session_decode_sample(s, &s0, &a[n0 + 3], 1, &sp, &st, &ids[0], &err), &err);
    CHECK_OK(ga_session_decode_sample(s, &s1, &a[n0 + 3], 1, &sp, &st, &ids[1], &err), &err);
    CHECK_MSG(ids[0] == ids[1] && ids[0] >= 0 && ids[0] < V, "sampled ids %d / %d", ids[0], ids[1]);
    free(l0), free(l1), free(g2), free(c2);
}

/* The DeltaNet q projection made a copy of the k one (rows and conv taps), the conditioning the
 * header explains. Every tensor of ga_model_random is an owned bf16 buffer. */
static void tie_q_to_k(ga_model *m) {
    const ga_config *c = &m->cfg;
    const ga_hybrid_config *hc = &c->hybrid;
    const size_t H = (size_t)c->hidden_size, dk = (size_t)hc->linear_key_head_dim;
    const size_t Hk = (size_t)hc->linear_num_key_heads, kd = Hk * dk;
    const size_t K = (size_t)hc->linear_conv_kernel_dim;
    for (int l = 0; l < c->n_layers; l++) {
        if (!hc->layer_is_linear[l]) continue;
        const ga_hyb_layer_t *t = &m->hyb[l];
        CHECK(t->conv->dtype == GA_BF16);
        uint16_t *conv = (uint16_t *)t->conv->data;
        memcpy(conv, conv + kd * K, kd * K * 2);
        if (t->in_qkv) {
            CHECK(t->in_qkv->dtype == GA_BF16);
            uint16_t *w = (uint16_t *)t->in_qkv->data;
            memcpy(w, w + kd * H, kd * H * 2);
        } else { /* per key head [q | k | v_r | z_r] */
            CHECK(t->in_qkvz->dtype == GA_BF16);
            const size_t r = (size_t)(hc->linear_num_value_heads / hc->linear_num_key_heads);
            const size_t gq = 2 * dk + 2 * r * (size_t)hc->linear_value_head_dim;
            uint16_t *w = (uint16_t *)t->in_qkvz->data;
            for (size_t h = 0; h < Hk; h++)
                memcpy(w + h * gq * H, w + (h * gq + dk) * H, dk * H * 2);
        }
    }
}

/* The down projections of layer l's MLP (dense, every expert's, the shared expert's): zeroed
 * they silence the MLP, so the layer's output is its mixer's alone. */
static int mlp_downs(const ga_model *m, int l, const ga_tensor **out, int cap) {
    const ga_hyb_layer_t *t = &m->hyb[l];
    int n = 0;
    if (t->down && n < cap) out[n++] = t->down;
    if (t->exp_down && n < cap) out[n++] = t->exp_down;
    if (t->sh_down && n < cap) out[n++] = t->sh_down;
    for (int e = 0; t->experts && e < m->cfg.hybrid.num_experts && n < cap; e++)
        out[n++] = t->experts[3 * e + 2];
    return n;
}

/* 5: the model cut to its first d layers (d = 1 .. L), the last one's MLP silenced ("mixer")
 * and whole ("layer"), GPU vs CPU over one prefill of NDIAG tokens. */
static void per_layer(ga_model *m, const int32_t *tok) {
    const ga_config full = m->cfg;
    const int V = full.vocab_size;
    float *cl = malloc((size_t)NDIAG * V * sizeof *cl),
          *gl = malloc((size_t)NDIAG * V * sizeof *gl);
    const char *first_bad = NULL;
    int first_d = 0;
    printf("  per layer (prefill of %d, the model cut after layer d):\n", NDIAG);
    for (int d = 1; d <= full.n_layers; d++) {
        ga_hybrid_config *hc = &m->cfg.hybrid;
        m->cfg.n_layers = d;
        hc->n_linear_layers = hc->n_moe_layers = 0;
        for (int l = 0; l < d; l++) {
            hc->n_linear_layers += hc->layer_is_linear[l] != 0;
            hc->n_moe_layers += hc->layer_is_moe[l] != 0;
        }
        for (int comp = 0; comp < 2; comp++) {
            const ga_tensor *downs[80];
            void *saved[80] = {0};
            const int nd = comp == 0 ? mlp_downs(m, d - 1, downs, 80) : 0;
            for (int i = 0; i < nd; i++) {
                const size_t bytes = (size_t)ga_tensor_numel(downs[i]) * 2;
                saved[i] = malloc(bytes);
                memcpy(saved[i], downs[i]->data, bytes);
                memset((void *)downs[i]->data, 0, bytes);
            }
            ga_session *cpu = open_s(m, GA_DEVICE_CPU, NDIAG + 1, 1, 0);
            ga_session *gpu = open_s(m, GA_DEVICE_CUDA, NDIAG + 1, 1, 0);
            ga_err err = {{0}};
            for (size_t i = 0; i < (size_t)NDIAG * V; i++)
                gl[i] = NAN;
            if (cpu && gpu) {
                CHECK_OK(ga_session_forward(cpu, 0, tok, NDIAG, true, cl, &err), &err);
                CHECK_OK(ga_session_forward(gpu, 0, tok, NDIAG, true, gl, &err), &err);
                const row_stats st = row_compare(gl, cl, NDIAG, V);
                const char *what = comp == 0 ? "mixer" : "layer";
                const char *kind = full.hybrid.layer_is_linear[d - 1] ? "deltanet" : "attention";
                const bool off = st.bad || st.median > TOL_MEDIAN || st.worst > TOL_WORST;
                printf("    layer %d %-9s %-5s rel L2 median %.3e worst %.3e top-1 %d/%d%s\n",
                       d - 1, kind, what, st.median, st.worst, st.agree, NDIAG,
                       off ? "  <- off" : "");
                if (off && !first_bad) first_bad = what, first_d = d;
            }
            ga_session_free(cpu);
            ga_session_free(gpu);
            for (int i = 0; i < nd; i++) {
                memcpy((void *)downs[i]->data, saved[i], (size_t)ga_tensor_numel(downs[i]) * 2);
                free(saved[i]);
            }
        }
    }
    m->cfg = full;
    CHECK_MSG(!first_bad, "the backends part first at layer %d (%s)", first_d - 1,
              first_bad ? first_bad : "");
    free(cl), free(gl);
}

static void run_case(const hcase *hc) {
    printf("%s\n", hc->name);
    ga_err err = {{0}};
    ga_config cfg;
    CHECK_OK(ga_test_config_parse(hc->json, &cfg, &err), &err);
    ga_model *m = NULL;
    CHECK_OK(ga_model_random(&cfg, 11, GA_BF16, &m, &err), &err);
    if (!m) return;
    tie_q_to_k(m);
#ifdef GA_HAVE_CUDA
    { /* 6 and 7 run the backend's own forward_multi and decode_sample, not the session's
       * per-sequence and host-sampling fallbacks */
        ga_backend *be = NULL;
        const ga_session_opts o = {.device = GA_DEVICE_CUDA, .cuda_gemm = ga_test_cuda_gemm()};
        CHECK_OK(ga_cuda_hybrid_backend_create(m, &o, 64, 2, &be, &err), &err);
        CHECK_MSG(be && be->forward_multi && be->decode_sample,
                  "the hybrid CUDA backend has no forward_multi / decode_sample");
        if (be) be->free(be);
    }
#endif
    const int V = cfg.vocab_size, T = hc->T, ctx = T + NDEC + 8;
    const int p0 = 37, p1 = 21; /* step 2's prefill lengths; p0 crosses two blocks of 16 */
    int32_t *a = malloc((size_t)T * sizeof *a), *b = malloc((size_t)T * sizeof *b);
    for (int i = 0; i < T; i++) {
        a[i] = (int32_t)(ga_test_rand_u64(&rng) % (uint64_t)V);
        b[i] = (int32_t)(ga_test_rand_u64(&rng) % (uint64_t)V);
    }
    float *ca = malloc((size_t)T * V * sizeof *ca), *cb = malloc((size_t)T * V * sizeof *cb);
    float *g = malloc((size_t)T * V * sizeof *g);
    for (size_t i = 0; i < (size_t)T * V; i++)
        g[i] = NAN;
    ga_session *cpu = open_s(m, GA_DEVICE_CPU, ctx, 1, 0);
    ga_session *gpu = open_s(m, GA_DEVICE_CUDA, ctx, 2, 0);
    ga_session *paged = open_s(m, GA_DEVICE_CUDA, ctx, 2, 2 * (ctx / 16 + 2));
    if (cpu && gpu && paged) {
        /* 1 */
        CHECK_OK(ga_session_forward(cpu, 0, a, T, true, ca, &err), &err);
        ga_session_reset(cpu, 0);
        CHECK_OK(ga_session_forward(cpu, 0, b, p1 + NDEC, true, cb, &err), &err);
        CHECK_OK(ga_session_forward(gpu, 0, a, T, true, g, &err), &err);
        char w[96];
        snprintf(w, sizeof w, "prefill of %d, every position", T);
        compare(w, g, ca, T, V);
        /* 2 */
        prefill_then_decode("slots", gpu, a, p0, b, p1, ca, cb, V);
        prefill_then_decode("paged", paged, a, p0, b, p1, ca, cb, V);
        /* 3 */
        greedy(gpu, a, 8, V);
        /* 4 */
        capture(gpu, cpu, &cfg, a);
    }
    const bool opened = cpu && gpu && paged;
    ga_session_free(gpu);
    ga_session_free(paged);
    if (opened) {
        /* 6, slots and paged */
        for (int pg = 0; pg < 2; pg++) {
            const int blocks = pg ? 3 * (ctx / 16 + 2) : 0;
            ga_session *mul = open_s(m, GA_DEVICE_CUDA, ctx, 3, blocks);
            ga_session *sep = open_s(m, GA_DEVICE_CUDA, ctx, 3, blocks);
            printf("  %s:\n", pg ? "paged" : "slots");
            if (mul && sep) multi(mul, sep, a, b, T, V);
            ga_session_free(mul);
            ga_session_free(sep);
        }
        /* 7, on fresh sessions (no graph yet) */
        for (int pg = 0; pg < 2; pg++) {
            ga_session *s = open_s(m, GA_DEVICE_CUDA, ctx, 2, pg ? 2 * (ctx / 16 + 2) : 0);
            printf("  %s:\n", pg ? "paged" : "slots");
            if (s) graphs(s, a, ca, V);
            if (s && T >= 256 + NDEC) /* across the first bucket: a second graph */
                prefill_then_decode("bucket", s, a, 256 - NDEC / 2, b, p1, ca, cb, V);
            ga_session_free(s);
        }
    }
    ga_session_free(cpu);
    if (opened) per_layer(m, a); /* 5, after the sessions: it edits the weights in place */
    free(a), free(b), free(ca), free(cb), free(g);
    ga_model_free(m);
}

int main(void) {
    GA_REQUIRE_GPU();
    for (size_t i = 0; i < sizeof k_cases / sizeof k_cases[0]; i++)
        run_case(&k_cases[i]);
    return ga_test_finish();
}
