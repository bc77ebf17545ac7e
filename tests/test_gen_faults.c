/*
 * Failure paths of the engine under injected allocation failures (issue 11): the test is
 * linked with -Wl,--wrap=calloc,--wrap=realloc,--wrap=free (tests/gen.cmake), so every calloc
 * the library makes goes through __wrap_calloc below, which fails the N-th call when armed and
 * keeps a table of the blocks it handed out. Nothing of this is in the library.
 *  - ga_capture_prepare failing at each of its allocations returns GA_ERR_OOM, leaves the
 *    capture empty and leaks nothing (it leaked the maps already made when a later one failed);
 *  - a session's capturing prefill failing the same way reports GA_ERR_OOM, leaks nothing,
 *    and the next capturing prefill of the same session succeeds.
 */
#include <pthread.h>

#include "core/capture.h"
#include "testutil.h"

void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t size);
void __real_free(void *p);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t size);
void __wrap_free(void *p);

#define MAX_LIVE 4096
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static int fail_at; /* fail the fail_at-th calloc from now (0: never) */
static int n_calls; /* callocs since the last arm() */
static bool tracking;
static void *live[MAX_LIVE];
static int n_live;

static void arm(int k) {
    pthread_mutex_lock(&mu);
    fail_at = k;
    n_calls = 0;
    tracking = true;
    n_live = 0;
    pthread_mutex_unlock(&mu);
}

/* Callocs made since arm() and not freed; stops tracking. */
static int disarm(void) {
    pthread_mutex_lock(&mu);
    tracking = false;
    fail_at = 0;
    int n = n_live;
    pthread_mutex_unlock(&mu);
    return n;
}

static void forget_locked(void *p) {
    for (int i = 0; i < n_live; i++)
        if (live[i] == p) {
            live[i] = live[--n_live];
            return;
        }
}

void *__wrap_calloc(size_t n, size_t size) {
    pthread_mutex_lock(&mu);
    bool fail = tracking && fail_at > 0 && ++n_calls == fail_at;
    pthread_mutex_unlock(&mu);
    if (fail) return NULL;
    void *p = __real_calloc(n, size);
    pthread_mutex_lock(&mu);
    if (p && tracking && n_live < MAX_LIVE) live[n_live++] = p;
    pthread_mutex_unlock(&mu);
    return p;
}

void *__wrap_realloc(void *p, size_t size) {
    void *q = __real_realloc(p, size);
    pthread_mutex_lock(&mu);
    bool was = false;
    for (int i = 0; p && q && i < n_live; i++)
        if (live[i] == p) {
            live[i] = q;
            was = true;
        }
    (void)was;
    pthread_mutex_unlock(&mu);
    return q;
}

void __wrap_free(void *p) {
    if (p) {
        pthread_mutex_lock(&mu);
        forget_locked(p);
        pthread_mutex_unlock(&mu);
    }
    __real_free(p);
}

#define L 5

static void test_capture_prepare(void) {
    const bool sel[L] = {true, false, true, true, false}; /* 3 maps: 2 + 3 callocs in all */
    ga_err err = {{0}};
    int failures = 0;
    for (int k = 1; k <= 8; k++) {
        ga_attn_capture cap = {.layers = sel, .head = -1, .max_res = 4};
        arm(k);
        ga_status st = ga_capture_prepare(&cap, L, 9, &err);
        if (st == GA_OK) {
            CHECK(cap.maps && cap.metrics && cap.maps[0] && !cap.maps[1] && cap.res == 4);
            ga_attn_capture_free(&cap);
            CHECK_MSG(disarm() == 0, "prepare ok at k=%d: free left blocks", k);
            CHECK_MSG(k > 5, "calloc %d of 5 failed but prepare returned OK", k);
            continue;
        }
        failures++;
        int leaked = disarm();
        CHECK_MSG(st == GA_ERR_OOM, "k=%d: %s", k, ga_status_name(st));
        CHECK_MSG(leaked == 0, "capture prepare failing at calloc %d leaked %d blocks", k, leaked);
        CHECK(!cap.maps && !cap.metrics && cap.n_layers_alloc == 0);
        CHECK(strstr(err.msg, "out of memory") != NULL);
        ga_attn_capture_free(&cap); /* harmless on an empty capture */
    }
    CHECK(failures == 5);
}

static void test_session_capture(const char *tmp) {
    ga_config cfg = {.vocab_size = 64,
                     .hidden_size = 32,
                     .intermediate_size = 48,
                     .n_layers = L,
                     .n_heads = 2,
                     .n_kv_heads = 1,
                     .head_dim = 16,
                     .rms_norm_eps = 1e-6f,
                     .rope_theta = 10000.0,
                     .max_position_embeddings = 64,
                     .tie_word_embeddings = true,
                     .use_qk_norm = true,
                     .gate = GA_GATE_HEADWISE,
                     .bos_token_id = -1};
    ga_write_opts wo = {.seed = 3, .dtype = GA_F32, .init_std = 0.1f, .n_shards = 1};
    char *dir = ga_test_path(tmp, "m");
    ga_err err = {{0}};
    ga_model *m = NULL;
    CHECK_OK(ga_model_write_random(dir, &cfg, &wo, &err), &err);
    CHECK_OK(ga_model_load(dir, &m, &err), &err);
    free(dir);
    if (!m) return;
    ga_session_opts so = {.device = GA_DEVICE_CPU, .max_context = 32, .n_threads = 1};
    ga_session *s = NULL;
    CHECK_OK(ga_session_create(m, &so, &s, &err), &err);
    const bool sel[L] = {false, true, true, false, true};
    const int32_t toks[7] = {1, 5, 9, 33, 2, 60, 7};
    for (int k = 1; s && k <= 5; k++) { /* maps, metrics, then the 3 selected layers' maps */
        ga_attn_capture cap = {.layers = sel, .head = -1, .max_res = 8};
        ga_session_reset(s, 0);
        CHECK_OK(ga_session_set_capture(s, &cap, &err), &err);
        arm(k);
        ga_status st = ga_session_forward(s, 0, toks, 7, false, NULL, &err);
        int leaked = disarm();
        CHECK_MSG(st == GA_ERR_OOM, "session capture with calloc %d failing: %s", k,
                  ga_status_name(st));
        CHECK_MSG(leaked == 0, "session capture failing at calloc %d leaked %d blocks", k, leaked);
        CHECK(!cap.maps && !cap.metrics);
        /* The session recovers: the same capture succeeds next time. */
        ga_session_reset(s, 0);
        CHECK_OK(ga_session_set_capture(s, &cap, &err), &err);
        CHECK_OK(ga_session_forward(s, 0, toks, 7, false, NULL, &err), &err);
        CHECK(cap.maps && cap.maps[1] && cap.maps[2] && !cap.maps[0] && cap.res == 7);
        CHECK(cap.metrics && isfinite(cap.metrics[4].gate_mean));
        ga_attn_capture_free(&cap);
    }
    ga_session_free(s);
    ga_model_free(m);
}

int main(void) {
    char *tmp = ga_test_tmpdir("genfaults");
    test_capture_prepare();
    test_session_capture(tmp);
    ga_test_rmtree(tmp);
    free(tmp);
    return ga_test_finish();
}
