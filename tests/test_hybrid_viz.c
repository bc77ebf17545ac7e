/*
 * Attention capture (gattn viz) on hybrid models, CPU backend (issue 15). A random in-memory
 * Qwen3.5 model whose layer 1 is full attention (layer_types: full, linear, linear, full, linear)
 * is prefilled with a capture attached, and:
 *   - layer 1's T x T map (head mean, and one head), first-token share and gate statistics equal
 *     a float64 recomputation written here from the model definition, with weights read by name
 *     from the tensor store (embedding, zero-centred input norm, q_proj's per-head [query | gate]
 *     rows, zero-centred q/k norms, rotate-half RoPE on the first head_dim * 0.5 dimensions,
 *     causal softmax of q k^T / sqrt(head_dim), sigmoid of every gate value);
 *   - a pooled capture (max_res < T) equals the recomputed map pooled as gattn.h defines it;
 *   - layer 4 (full attention behind two DeltaNet layers) has a map whose rows sum to 1, causal
 *     (zero above the diagonal), and metrics in range; the linear layers have no map (NULL) and
 *     NaN metrics, even where the layer selection asked for one;
 *   - the capture does not change the logits.
 */
#include <math.h>

#include "core/model.h"
#include "core/safetensors.h"
#include "cpu/cpu_hybrid.h"
#include "testutil.h"

#define T 11
#define NH 4
#define NKV 2
#define HD 16
#define HID 32
#define RD 8 /* HD * partial_rotary_factor 0.5 */
#define THETA 10000.0
#define EPS 1e-6

static const char k_cfg[] =
    "{\"model_type\": \"qwen3_5_text\", \"vocab_size\": 60, \"hidden_size\": 32, "
    "\"intermediate_size\": 40, \"num_hidden_layers\": 5, \"num_attention_heads\": 4, "
    "\"num_key_value_heads\": 2, \"head_dim\": 16, \"linear_num_key_heads\": 2, "
    "\"linear_num_value_heads\": 4, \"linear_key_head_dim\": 8, \"linear_value_head_dim\": 8, "
    "\"layer_types\": [\"full_attention\", \"linear_attention\", \"linear_attention\", "
    "\"full_attention\", \"linear_attention\"], \"rms_norm_eps\": 1e-6, "
    "\"rope_parameters\": {\"rope_type\": \"default\", \"rope_theta\": 10000.0, "
    "\"partial_rotary_factor\": 0.5}, \"max_position_embeddings\": 64}";

static const int32_t k_ids[T] = {3, 1, 4, 1, 5, 9, 2, 6, 53, 5, 8};

static double *read_w(const ga_model *m, const char *name, int64_t want) {
    const ga_tensor *t = ga_store_find(m->store, name);
    CHECK_MSG(t && ga_tensor_numel(t) == want, "tensor %s", name);
    if (!t || ga_tensor_numel(t) != want) return NULL;
    float *f = malloc((size_t)want * sizeof *f);
    double *d = malloc((size_t)want * sizeof *d);
    ga_tensor_read_f32(t, 0, want, f);
    for (int64_t i = 0; i < want; i++)
        d[i] = f[i];
    free(f);
    return d;
}

/* x * rsqrt(mean(x^2) + eps) * (1 + w), in place */
static void norm_zc(double *x, const double *w, int n) {
    double ss = 0;
    for (int i = 0; i < n; i++)
        ss += x[i] * x[i];
    double r = 1.0 / sqrt(ss / n + EPS);
    for (int i = 0; i < n; i++)
        x[i] = x[i] * r * (1.0 + w[i]);
}

static void rope(double *v, int pos) {
    for (int i = 0; i < RD / 2; i++) {
        double ang = pos * pow(THETA, -2.0 * i / RD), a = v[i], b = v[i + RD / 2];
        v[i] = a * cos(ang) - b * sin(ang);
        v[i + RD / 2] = b * cos(ang) + a * sin(ang);
    }
}

typedef struct naive {
    double p[NH][T][T]; /* query, key */
    double gate_mean, gate_low, first;
} naive;

/* Layer 1 (index 0) of the model from its weights: attention probabilities and gate values. */
static int naive_layer0(const ga_model *m, naive *o) {
    double *emb = read_w(m, "model.embed_tokens.weight", 60 * HID);
    double *win = read_w(m, "model.layers.0.input_layernorm.weight", HID);
    double *wq = read_w(m, "model.layers.0.self_attn.q_proj.weight", NH * 2 * HD * HID);
    double *wk = read_w(m, "model.layers.0.self_attn.k_proj.weight", NKV * HD * HID);
    double *qn = read_w(m, "model.layers.0.self_attn.q_norm.weight", HD);
    double *kn = read_w(m, "model.layers.0.self_attn.k_norm.weight", HD);
    if (!emb || !win || !wq || !wk || !qn || !kn) return -1;
    static double q[T][NH][HD], k[T][NKV][HD], g[T][NH][HD];
    for (int t = 0; t < T; t++) {
        double h[HID];
        for (int i = 0; i < HID; i++)
            h[i] = emb[k_ids[t] * HID + i];
        norm_zc(h, win, HID);
        for (int r = 0; r < NH * 2 * HD; r++) { /* head r / (2 HD): [query | gate] */
            double s = 0;
            for (int i = 0; i < HID; i++)
                s += wq[r * HID + i] * h[i];
            int head = r / (2 * HD), d = r % (2 * HD);
            if (d < HD)
                q[t][head][d] = s;
            else
                g[t][head][d - HD] = s;
        }
        for (int r = 0; r < NKV * HD; r++) {
            double s = 0;
            for (int i = 0; i < HID; i++)
                s += wk[r * HID + i] * h[i];
            k[t][r / HD][r % HD] = s;
        }
        for (int hh = 0; hh < NH; hh++) {
            norm_zc(q[t][hh], qn, HD);
            rope(q[t][hh], t);
        }
        for (int hh = 0; hh < NKV; hh++) {
            norm_zc(k[t][hh], kn, HD);
            rope(k[t][hh], t);
        }
    }
    double first = 0, gs = 0, glow = 0;
    for (int hh = 0; hh < NH; hh++)
        for (int i = 0; i < T; i++) {
            double sc[T], mx = -INFINITY, sum = 0;
            for (int j = 0; j <= i; j++) {
                double s = 0;
                for (int d = 0; d < HD; d++)
                    s += q[i][hh][d] * k[j][hh / (NH / NKV)][d];
                sc[j] = s / sqrt((double)HD);
                mx = fmax(mx, sc[j]);
            }
            for (int j = 0; j <= i; j++)
                sum += exp(sc[j] - mx);
            for (int j = 0; j < T; j++)
                o->p[hh][i][j] = j <= i ? exp(sc[j] - mx) / sum : 0.0;
            if (i > 0) first += o->p[hh][i][0];
            for (int d = 0; d < HD; d++) {
                double sg = 1.0 / (1.0 + exp(-g[i][hh][d]));
                gs += sg;
                glow += sg < 0.1;
            }
        }
    o->first = first / (NH * (T - 1));
    o->gate_mean = gs / (T * NH * HD);
    o->gate_low = glow / (T * NH * HD);
    free(emb), free(win), free(wq), free(wk), free(qn), free(kn);
    return 0;
}

/* The head mean (head < 0) or one head, pooled to res as gattn.h defines the capture. */
static void naive_pooled(const naive *o, int head, int res, double *out) {
    memset(out, 0, sizeof(double) * res * res);
    for (int bi = 0; bi < res; bi++) {
        int cnt = 0;
        for (int i = 0; i < T; i++)
            cnt += i * res / T == bi;
        for (int i = 0; i < T; i++) {
            if (i * res / T != bi) continue;
            for (int j = 0; j < T; j++) {
                double v = 0;
                for (int hh = 0; hh < NH; hh++)
                    if (head < 0 || head == hh) v += o->p[hh][i][j];
                out[bi * res + j * res / T] += v / (head < 0 ? NH : 1) / cnt;
            }
        }
    }
}

static double max_diff(const float *got, const double *want, int n) {
    double d = 0;
    for (int i = 0; i < n; i++)
        d = fmax(d, isfinite(got[i]) ? fabs(got[i] - want[i]) : INFINITY);
    return d;
}

/* One capturing prefill; returns the session's logits of the last token in logits. */
static void capture(ga_model *m, int head, int max_res, const bool *layers, ga_attn_capture *cap,
                    float *logits) {
    ga_err e = {{0}};
    ga_session_opts so = {.device = GA_DEVICE_CPU, .max_context = T, .max_batch = 1};
    ga_session *s = NULL;
    CHECK_OK(ga_session_create(m, &so, &s, &e), &e);
    if (!s) return;
    *cap = (ga_attn_capture){.layers = layers, .head = head, .max_res = max_res};
    CHECK_OK(ga_session_set_capture(s, cap, &e), &e);
    CHECK_OK(ga_session_forward(s, 0, k_ids, T, false, logits, &e), &e);
    ga_session_free(s);
}

int main(void) {
    ga_err e = {{0}};
    ga_config c;
    CHECK_OK(ga_test_config_parse(k_cfg, &c, &e), &e);
    CHECK(c.hybrid.rotary_dim == RD && c.rope_theta == THETA && c.hybrid.layer_is_linear[1] &&
          !c.hybrid.layer_is_linear[0] && !c.hybrid.layer_is_linear[3]);
    ga_model *m = NULL;
    CHECK_OK(ga_model_random(&c, 11, GA_F32, &m, &e), &e);
    if (!m) return ga_test_finish();
    static naive nv;
    if (naive_layer0(m, &nv)) return ga_test_finish();
    const int V = c.vocab_size;
    float *plain = malloc(sizeof(float) * V), *with = malloc(sizeof(float) * V);
    {
        ga_session_opts so = {.device = GA_DEVICE_CPU, .max_context = T, .max_batch = 1};
        ga_session *s = NULL;
        CHECK_OK(ga_session_create(m, &so, &s, &e), &e);
        if (s) CHECK_OK(ga_session_forward(s, 0, k_ids, T, false, plain, &e), &e);
        ga_session_free(s);
    }
    bool all[5] = {true, true, true, true, true};
    double want[T * T];
    for (int head = -1; head < NH; head += 2) { /* the mean, heads 1 and 3 */
        ga_attn_capture cap;
        capture(m, head, T, all, &cap, with);
        if (!cap.maps) continue;
        CHECK(cap.res == T && cap.n_tokens == T);
        CHECK_MSG(!memcmp(plain, with, sizeof(float) * V), "the capture changed the logits");
        naive_pooled(&nv, head, T, want);
        double d = max_diff(cap.maps[0], want, T * T);
        CHECK_MSG(d < 2e-5, "head %d: layer 1 map differs from float64 softmax(q k^T) by %.3g",
                  head, d);
        CHECK_MSG(fabs(cap.metrics[0].first_token_share - nv.first) < 1e-5,
                  "first share %.9g vs %.9g", cap.metrics[0].first_token_share, nv.first);
        CHECK_MSG(fabs(cap.metrics[0].gate_mean - nv.gate_mean) < 1e-5, "gate mean %.9g vs %.9g",
                  cap.metrics[0].gate_mean, nv.gate_mean);
        /* a gate value within float rounding of 0.1 could flip; none is this close here */
        CHECK_MSG(fabs(cap.metrics[0].gate_below_0_1 - nv.gate_low) < 1e-9,
                  "gate below 0.1 %.9g vs %.9g", cap.metrics[0].gate_below_0_1, nv.gate_low);
        /* layer 4: a distribution per row, causal; metrics in range */
        const float *m4 = cap.maps[3];
        CHECK(m4 != NULL);
        for (int i = 0; m4 && i < T; i++) {
            double sum = 0;
            for (int j = 0; j < T; j++) {
                sum += m4[i * T + j];
                CHECK_MSG(j <= i || m4[i * T + j] == 0.0f, "layer 4 attends ahead: (%d, %d)", i, j);
            }
            CHECK_MSG(fabs(sum - 1.0) < 1e-5, "layer 4 row %d sums to %.9g", i, sum);
        }
        const ga_layer_metrics *q4 = &cap.metrics[3];
        CHECK(q4->first_token_share > 0 && q4->first_token_share < 1 && q4->gate_mean > 0 &&
              q4->gate_mean < 1 && q4->gate_below_0_1 >= 0 && q4->gate_below_0_1 <= 1);
        if (head < 0) CHECK(fabs(q4->first_token_share - 1.0) > 1e-3); /* not a constant */
        for (int l = 1; l < 5; l++) {
            if (l == 3) continue;
            CHECK_MSG(cap.maps[l] == NULL, "linear layer %d has a map", l + 1);
            CHECK(isnan(cap.metrics[l].first_token_share) && isnan(cap.metrics[l].gate_mean) &&
                  isnan(cap.metrics[l].gate_below_0_1));
        }
        ga_attn_capture_free(&cap);
    }
    /* pooled: 11 tokens into 4 blocks, only layer 1 asked for */
    bool only1[5] = {true, false, false, false, false};
    ga_attn_capture cap;
    capture(m, -1, 4, only1, &cap, with);
    if (cap.maps) {
        CHECK(cap.res == 4 && cap.maps[3] == NULL && !isnan(cap.metrics[3].gate_mean));
        naive_pooled(&nv, -1, 4, want);
        double d = max_diff(cap.maps[0], want, 16);
        CHECK_MSG(d < 2e-5, "pooled layer 1 map differs by %.3g", d);
    }
    ga_attn_capture_free(&cap);
    free(plain), free(with);
    ga_model_free(m);
    /* attn_output_gate false: a q_proj without the gate half, which the forward (and its gate
     * statistics) would read past; the binding refuses it, and so does the forward itself for a
     * caller that gives it weights directly */
    char ng[sizeof k_cfg + 40];
    snprintf(ng, sizeof ng, "%.*s, \"attn_output_gate\": false}", (int)sizeof k_cfg - 2, k_cfg);
    CHECK_OK(ga_test_config_parse(ng, &c, &e), &e);
    CHECK(ga_hyb_check(&c, &e) == GA_ERR_UNSUPPORTED && strstr(e.msg, "attn_output_gate false"));
    return ga_test_finish();
}
