/* The test harness behind testutil.h. */
#define _GNU_SOURCE
#include <cjson/cJSON.h>

#include "testutil.h"

#include "core/model.h"

#include <dirent.h>
#include <ftw.h>
#include <sys/stat.h>
#include <stdint.h>
#include <unistd.h>

int ga_t_pass = 0, ga_t_fail = 0;

int ga_test_finish(void) {
    printf("%d passed, %d failed\n", ga_t_pass, ga_t_fail);
    return ga_t_fail == 0 ? 0 : 1;
}

char *ga_test_tmpdir(const char *tag) {
    const char *base = getenv("TMPDIR");
    if (!base || !*base) base = "/tmp";
    size_t n = strlen(base) + strlen(tag) + 32;
    char *p = malloc(n);
    if (!p) return NULL;
    snprintf(p, n, "%s/gattn-%s-XXXXXX", base, tag);
    if (!mkdtemp(p)) {
        free(p);
        return NULL;
    }
    return p;
}

static int rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void ga_test_rmtree(const char *path) {
    if (path) nftw(path, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

char *ga_test_path(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

char *ga_test_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    if (fseek(f, 0, SEEK_END) != 0) {
        fclose(f);
        return NULL;
    }
    long sz = ftell(f);
    rewind(f);
    char *buf = malloc((size_t)sz + 1);
    if (buf && fread(buf, 1, (size_t)sz, f) != (size_t)sz) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) {
        buf[sz] = 0;
        if (len) *len = (size_t)sz;
    }
    return buf;
}

int ga_test_write_file(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(data, 1, len, f);
    return (fclose(f) == 0 && w == len) ? 0 : -1;
}

double ga_test_tol_ratio(const float *a, const float *b, size_t n, double atol, double rtol) {
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(a[i])) return INFINITY;
        double r = fabs((double)a[i] - b[i]) / (atol + rtol * fabs((double)b[i]));
        if (r > worst) worst = r;
    }
    return worst;
}

double ga_test_rel_l2(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(a[i])) return INFINITY;
        double d = (double)a[i] - b[i];
        num += d * d;
        den += (double)b[i] * b[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

uint64_t ga_test_rand_u64(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

float ga_test_rand_normal(uint64_t *s) {
    double u1 = ((ga_test_rand_u64(s) >> 11) + 1.0) * (1.0 / 9007199254740993.0);
    double u2 = (ga_test_rand_u64(s) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2));
}

const char *ga_test_env(const char *name, const char *def) {
    const char *v = getenv(name);
    return (v && *v) ? v : def;
}

bool ga_test_want(int argc, char **argv, const char *sec) {
    if (argc < 2) return true;
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], sec)) return true;
    return false;
}

ga_cuda_gemm_impl ga_test_cuda_gemm(void) {
    const char *v = ga_test_env("GA_CUDA_GEMM", "cublas");
    if (!strcmp(v, "lt")) return GA_CUDA_GEMM_LT;
    if (!strcmp(v, "fallback")) return GA_CUDA_GEMM_FALLBACK;
    if (!strcmp(v, "cublas-only")) return GA_CUDA_GEMM_CUBLAS_ONLY;
    return GA_CUDA_GEMM_CUBLAS;
}

ga_status ga_test_config_parse(const char *json, ga_config *c, ga_err *e) {
    return ga_config_parse(json, strlen(json), "cfg.json", c, e);
}

void ga_test_config_expect_fail(const char *json, ga_status code, const char *needle) {
    ga_config c;
    ga_err e = {{0}};
    ga_status st = ga_test_config_parse(json, &c, &e);
    CHECK_MSG(st == code, "%s -> %s (%s), wanted %s", json, ga_status_name(st), e.msg,
              ga_status_name(code));
    CHECK_MSG(strstr(e.msg, needle) != NULL, "message '%s' lacks '%s'", e.msg, needle);
    CHECK_MSG(strstr(e.msg, "cfg.json") != NULL, "message '%s' does not name the file", e.msg);
}

float *ga_test_json_floats(const struct cJSON *rows, int *n_rows, int width) {
    int R = cJSON_GetArraySize(rows);
    float *out = malloc((size_t)(R ? R : 1) * width * sizeof(float));
    if (!out) return NULL;
    for (int r = 0; r < R; r++) {
        const cJSON *row = cJSON_GetArrayItem(rows, r);
        if (cJSON_GetArraySize(row) != width) {
            free(out);
            return NULL;
        }
        for (int v = 0; v < width; v++)
            out[(size_t)r * width + v] = (float)cJSON_GetArrayItem(row, v)->valuedouble;
    }
    *n_rows = R;
    return out;
}

static bool fixture_listed(const cJSON *cases, const char *name) {
    const cJSON *c;
    cJSON_ArrayForEach(c, cases) {
        if (cJSON_IsString(c) && !strcmp(c->valuestring, name)) return true;
    }
    return false;
}

bool ga_test_fixture_index(const char *root, int expected,
                           void (*check_case)(const char *root, const char *name, int *ran)) {
    char idx_path[1100];
    snprintf(idx_path, sizeof idx_path, "%s/index.json", root);
    char *txt = ga_test_read_file(idx_path, NULL);
    cJSON *idx = txt ? cJSON_Parse(txt) : NULL;
    CHECK_MSG(idx != NULL, "cannot read %s", idx_path);
    if (idx) {
        const cJSON *cases = cJSON_GetObjectItem(idx, "cases"), *c;
        int n = cJSON_GetArraySize(cases);
        CHECK_MSG(n == expected, "%s lists %d cases, expected %d", idx_path, n, expected);
        /* every folder holding a reference is in the index */
        DIR *d = opendir(root);
        CHECK_MSG(d != NULL, "cannot list %s", root);
        struct dirent *de;
        int folders = 0;
        while (d && (de = readdir(d))) {
            char ref[1400];
            struct stat sb;
            snprintf(ref, sizeof ref, "%s/%s/reference_logits.json", root, de->d_name);
            if (de->d_name[0] == '.' || stat(ref, &sb) != 0) continue;
            folders++;
            CHECK_MSG(fixture_listed(cases, de->d_name), "fixture %s is not listed in %s",
                      de->d_name, idx_path);
        }
        if (d) closedir(d);
        CHECK_MSG(folders == n, "%d fixture folders, %d cases in the index", folders, n);
        cJSON_ArrayForEach(c, cases) {
            int ran = 0;
            CHECK_MSG(cJSON_IsString(c), "%s: a case is not a string", idx_path);
            if (!cJSON_IsString(c)) continue;
            check_case(root, c->valuestring, &ran);
            CHECK_MSG(ran >= 2, "%s: %d sequences compared, wanted 2 or more", c->valuestring, ran);
        }
    }
    bool ok = idx != NULL;
    cJSON_Delete(idx);
    free(txt);
    return ok;
}

float *ga_test_paged_workload(ga_session *s, const int32_t *ids, int T, int V, int steps,
                              float *o) {
    ga_err e = {{0}};
    CHECK_OK(ga_session_forward(s, 1, ids + 3, 7, true, o, &e), &e);
    CHECK_OK(ga_session_forward(s, 0, ids, 11, true, o + (size_t)7 * V, &e), &e);
    CHECK_OK(ga_session_forward(s, 1, ids + 10, 1, false, o + (size_t)18 * V, &e), &e);
    CHECK_OK(ga_session_forward(s, 0, ids + 11, T - 11, true, o + (size_t)19 * V, &e), &e);
    float *d = o + (size_t)(19 + T - 11) * V;
    CHECK_OK(ga_session_forward(s, 2, ids + 20, 2, false, NULL, &e), &e);
    for (int step = 0; step < steps; step++) {
        int seqs[3] = {2, 0, 1};
        int32_t tk[3] = {ids[step], ids[step + 1], ids[step + 2]};
        CHECK_OK(ga_session_decode_batch(s, seqs, tk, 3, d + (size_t)step * 3 * V, &e), &e);
    }
    return d + (size_t)steps * 3 * V;
}

ga_model *ga_test_model_2l(int hd, ga_gate_mode gate, int max_pos) {
    ga_config c = {.vocab_size = 1000,
                   .hidden_size = 256,
                   .intermediate_size = 512,
                   .n_layers = 2,
                   .n_heads = 4,
                   .n_kv_heads = 2,
                   .head_dim = hd,
                   .rms_norm_eps = 1e-6f,
                   .rope_theta = 1e4,
                   .max_position_embeddings = max_pos,
                   .tie_word_embeddings = true,
                   .use_qk_norm = true,
                   .gate = gate,
                   .bos_token_id = -1};
    ga_err e = {{0}};
    ga_model *m = NULL;
    CHECK_OK(ga_model_random(&c, 11, GA_BF16, &m, &e), &e);
    return m;
}

ga_model *ga_test_model_std(const ga_config *c, uint64_t seed, float std) {
    ga_err e = {{0}};
    ga_store *st = NULL;
    CHECK_OK(ga_model_random_store(c, seed, GA_BF16, std, &st, &e), &e);
    ga_model *m = st ? calloc(1, sizeof *m) : NULL;
    if (!m) {
        ga_store_free(st);
        return NULL;
    }
    m->cfg = *c;
    m->name = strdup("test");
    m->store = st;
    if (ga_model_bind(m, &e)) {
        CHECK_MSG(0, "ga_model_bind: %s", e.msg);
        ga_model_free(m);
        return NULL;
    }
    return m;
}

int ga_test_on_tok(void *user, int index, int32_t token) {
    ga_test_tok_sink *g = user;
    if (g->n[index] < 64) g->tok[index][g->n[index]++] = token;
    return 0;
}

int ga_test_on_tok_alone(void *user, int index, int32_t token) {
    (void)index;
    return ga_test_on_tok(user, 3, token);
}
