/*
 * libFuzzer harness (issue 10 item 17): a model folder from fuzzed bytes, loaded, and when it
 * loads, one small forward on the CPU backend.
 *
 * Framing of an input (simple, so mutations stay meaningful):
 *   u32 little-endian L, then L bytes of config.json, then the rest is model.safetensors.
 * L larger than what follows is clamped (everything is config, the safetensors file is
 * empty). The seed corpus in tests/fuzz/corpus/model/ holds tiny valid models from
 * `gattn write-model` framed this way (tests/fuzz/make_model_corpus.sh remakes them).
 *
 * Beyond "no crash, no sanitizer report", the harness enforces the library's contract and
 * aborts (a finding) when it is broken: every failure writes a message into ga_err, and a
 * forward that returns GA_OK gives finite logits (the buffer is NaN-poisoned first). Models
 * whose parameter count passes MAX_PARAMS are loaded and bound but not run, so that one
 * execution stays fast; the loader itself is never spared any input.
 *
 * Build by hand (until the fuzz CMake support lands): a CPU-only libgattn compiled by clang
 * with -fsanitize=address,undefined,fuzzer-no-link, then
 *   clang -fsanitize=fuzzer,address,undefined -Iinclude -Isrc tests/fuzz/fuzz_model.c \
 *     build-fuzz/libgattn.a -lcjson -lpcre2-8 -lm -lpthread -o fuzz_model
 *   ./fuzz_model -max_len=65536 tests/fuzz/corpus/model
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gattn/gattn.h"

#define MAX_PARAMS 2000000

static char g_dir[256], g_cfg[300], g_st[300];

static void write_all(const char *path, const uint8_t *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) abort(); /* the harness's own setup, not a finding about gattn */
    if (n && fwrite(p, 1, n, f) != n) abort();
    if (fclose(f) != 0) abort();
}

/* A broken contract: print what and abort, so libFuzzer keeps the input. */
static void finding(const char *what, const ga_err *e) {
    fprintf(stderr, "fuzz_model: %s (message: \"%s\")\n", what, e ? e->msg : "");
    abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(g_dir, sizeof g_dir, "%s/gattn-fuzz-model-XXXXXX", base);
    if (!mkdtemp(g_dir)) abort();
    snprintf(g_cfg, sizeof g_cfg, "%s/config.json", g_dir);
    snprintf(g_st, sizeof g_st, "%s/model.safetensors", g_dir);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 4) return 0;
    uint32_t L = (uint32_t)data[0] | (uint32_t)data[1] << 8 | (uint32_t)data[2] << 16 |
                 (uint32_t)data[3] << 24;
    size_t rest = size - 4, cl = L < rest ? L : rest;
    write_all(g_cfg, data + 4, cl);
    write_all(g_st, data + 4 + cl, rest - cl);

    ga_err e = {{0}};
    ga_model *m = NULL;
    if (ga_model_load(g_dir, &m, &e) != GA_OK) {
        if (!e.msg[0]) finding("load failed without a message", &e);
        return 0;
    }
    const ga_config *c = ga_model_config(m);
    if (ga_config_param_count(c) <= MAX_PARAMS) {
        ga_session_opts so = {.device = GA_DEVICE_CPU, .max_context = 4, .n_threads = 1};
        ga_session *s = NULL;
        e.msg[0] = 0;
        if (ga_session_create(m, &so, &s, &e) != GA_OK) {
            if (!e.msg[0]) finding("session creation failed without a message", &e);
        } else {
            const int V = c->vocab_size;
            int32_t ids[3] = {0, (int32_t)(1 % V), (int32_t)(V - 1)};
            float *lg = malloc((size_t)V * sizeof(float));
            if (!lg) abort();
            for (int i = 0; i < V; i++)
                lg[i] = NAN;
            e.msg[0] = 0;
            if (ga_session_forward(s, 0, ids, 3, false, lg, &e) != GA_OK) {
                if (!e.msg[0]) finding("forward failed without a message", &e);
            } else {
                for (int i = 0; i < V; i++)
                    if (!isfinite(lg[i]))
                        finding("forward returned GA_OK with a non-finite logit", &e);
            }
            free(lg);
            ga_session_free(s);
        }
    }
    ga_model_free(m);
    return 0;
}
