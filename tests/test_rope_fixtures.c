/*
 * RoPE-scaled models against Hugging Face transformers (issue 14): tests/fixtures_rope, made by
 * tools/make_fixtures.py on the GPU machine (yarn and linear models, sequences running past
 * original_max_position_embeddings). For each case: gattn's scaled frequencies and cos/sin
 * factor against transformers' own (stored in reference_logits.json as inv_freq and
 * attention_scaling), and the CPU backend's logits at every position, after one prefill and
 * after a prefill of half followed by token-by-token decode, against the float64 reference.
 *
 * Tolerance: transformers rounds inv_freq to fp32 before the float64 forward, gattn keeps it in
 * double; at position p that moves an angle by up to p * inv * 2^-24 rad (3.5e-6 at p = 59),
 * above the 2e-6 of the unscaled fixtures (test_fixtures.c). Measured on the fixtures made with
 * transformers 5.17 (2026-12-02): worst 1.9e-6 (yarn_x4_hd64_bf16, 60 tokens), so TOL = 4e-6
 * covers that bound with headroom. Skips (77) while the folder is absent.
 */
#include <cjson/cJSON.h>

#include "testutil.h"

#include "core/rope.h"

#define TOL 4e-6

static void check_case(const char *root, const char *name) {
    char *dir = ga_test_path(root, name), *rp = ga_test_path(dir, "reference_logits.json");
    size_t len;
    char *txt = ga_test_read_file(rp, &len);
    cJSON *ref = txt ? cJSON_Parse(txt) : NULL;
    CHECK_MSG(ref != NULL, "%s: cannot read %s", name, rp);
    ga_model *m = NULL;
    ga_session *s = NULL;
    ga_err e = {{0}};
    if (!ref) goto done;
    CHECK_OK(ga_model_load(dir, &m, &e), &e);
    if (!m) goto done;
    const ga_config *c = ga_model_config(m);
    CHECK_MSG(c->rope_scaling.type != GA_ROPE_DEFAULT, "%s: config.json is not scaled", name);
    /* frequencies and attention factor against transformers' */
    const cJSON *inv = cJSON_GetObjectItem(ref, "inv_freq");
    const int half = c->head_dim / 2;
    double mine[512], attn;
    ga_rope_freqs(c, c->head_dim, mine, &attn);
    CHECK_MSG(cJSON_GetArraySize(inv) == half, "%s: %d inv_freq, want %d", name,
              cJSON_GetArraySize(inv), half);
    double worst_f = 0;
    for (int i = 0; i < half && i < cJSON_GetArraySize(inv); i++) {
        double t = cJSON_GetArrayItem(inv, i)->valuedouble;
        worst_f = fmax(worst_f, fabs(mine[i] - t) / t);
    }
    CHECK_MSG(worst_f < 2e-7, "%s: inv_freq off by %.3g relative (fp32 rounding is 6e-8)", name,
              worst_f);
    double t_attn = cJSON_GetObjectItem(ref, "attention_scaling")->valuedouble;
    CHECK_MSG(fabs(attn - t_attn) < 1e-6, "%s: attention factor %.9g, transformers %.9g", name,
              attn, t_attn);
    /* logits at every position */
    const cJSON *seqs = cJSON_GetObjectItem(ref, "sequences"),
                *logs = cJSON_GetObjectItem(ref, "logits");
    const int V = c->vocab_size;
    ga_session_opts so = {.device = GA_DEVICE_CPU, .max_context = 64, .n_threads = 2};
    CHECK_OK(ga_session_create(m, &so, &s, &e), &e);
    if (!s) goto done;
    for (int q = 0; q < cJSON_GetArraySize(seqs); q++) {
        const cJSON *sq = cJSON_GetArrayItem(seqs, q), *lq = cJSON_GetArrayItem(logs, q);
        const int T = cJSON_GetArraySize(sq);
        int32_t tok[64];
        float *got = malloc((size_t)T * V * sizeof(float)),
              *want = malloc((size_t)V * sizeof(float));
        for (int t = 0; t < T; t++)
            tok[t] = cJSON_GetArrayItem(sq, t)->valueint;
        ga_session_reset(s, 0);
        CHECK_OK(ga_session_forward(s, 0, tok, T, true, got, &e), &e);
        double worst = 0, worst_dec = 0;
        float step[512];
        ga_session_reset(s, 0);
        const int P = T / 2;
        CHECK_OK(ga_session_forward(s, 0, tok, P, false, step, &e), &e);
        for (int t = 0; t < T; t++) {
            const cJSON *row = cJSON_GetArrayItem(lq, t);
            for (int v = 0; v < V; v++)
                want[v] = (float)cJSON_GetArrayItem(row, v)->valuedouble;
            worst = fmax(worst, ga_test_rel_l2(got + (size_t)t * V, want, V));
            if (t >= P) {
                int seq = 0;
                CHECK_OK(ga_session_decode_batch(s, &seq, tok + t, 1, step, &e), &e);
            }
            if (t == P - 1 || t >= P) worst_dec = fmax(worst_dec, ga_test_rel_l2(step, want, V));
        }
        printf("%-24s seq %d (%2d tokens): prefill rel L2 %.2e, prefill+decode %.2e\n", name, q, T,
               worst, worst_dec);
        CHECK_MSG(worst <= TOL && worst_dec <= TOL, "%s seq %d: rel L2 %.3g / %.3g > %.1g", name, q,
                  worst, worst_dec, TOL);
        free(got);
        free(want);
    }
done:
    ga_session_free(s);
    ga_model_free(m);
    cJSON_Delete(ref);
    free(txt);
    free(rp);
    free(dir);
}

int main(void) {
    const char *fx = ga_test_env("GA_FIXTURES", "tests/fixtures");
    char *root = malloc(strlen(fx) + 16);
    sprintf(root, "%s_rope", fx); /* tests/fixtures -> tests/fixtures_rope */
    char *ip = ga_test_path(root, "index.json");
    size_t len;
    char *txt = ga_test_read_file(ip, &len);
    if (!txt) {
        printf("%s not generated yet (tools/make_fixtures.py on the GPU machine): skipped\n", ip);
        free(ip);
        free(root);
        return 77;
    }
    cJSON *idx = cJSON_Parse(txt);
    const cJSON *cases = idx ? cJSON_GetObjectItem(idx, "cases") : NULL;
    CHECK_MSG(cJSON_GetArraySize(cases) >= 3, "%s lists %d cases", ip, cJSON_GetArraySize(cases));
    const cJSON *it;
    cJSON_ArrayForEach(it, cases) {
        if (cJSON_IsString(it)) check_case(root, it->valuestring);
    }
    cJSON_Delete(idx);
    free(txt);
    free(ip);
    free(root);
    return ga_test_finish();
}
