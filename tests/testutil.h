/*
 * A tiny test harness: CHECK-style macros that count passes and failures, a closing line
 * "N passed, N failed" that ctest's log shows, helpers for temp dirs and for comparing float
 * arrays with atol + rtol*|ref| and relative L2 error, and the GPU skip convention (exit 77).
 */
#ifndef GATTN_TESTUTIL_H
#define GATTN_TESTUTIL_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gattn/gattn.h"

extern int ga_t_pass, ga_t_fail;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (cond) {                                                                                \
            ga_t_pass++;                                                                           \
        } else {                                                                                   \
            ga_t_fail++;                                                                           \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);               \
        }                                                                                          \
    } while (0)

#define CHECK_MSG(cond, ...)                                                                       \
    do {                                                                                           \
        if (cond) {                                                                                \
            ga_t_pass++;                                                                           \
        } else {                                                                                   \
            ga_t_fail++;                                                                           \
            fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond);               \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
        }                                                                                          \
    } while (0)

/* Checks that a call returned GA_OK, printing the error message otherwise. */
#define CHECK_OK(call, errp)                                                                       \
    do {                                                                                           \
        ga_status st_ = (call);                                                                    \
        CHECK_MSG(st_ == GA_OK, "%s -> %s: %s", #call, ga_status_name(st_), (errp)->msg);          \
    } while (0)

/* Prints the closing line and returns the exit code. */
int ga_test_finish(void);

/* Makes a fresh temporary directory (mkdtemp under $TMPDIR or /tmp). Caller frees. */
char *ga_test_tmpdir(const char *tag);
/* rm -rf */
void ga_test_rmtree(const char *path);
/* Joins a directory and a name into a malloc'd string. */
char *ga_test_path(const char *dir, const char *name);
/* Reads a whole file; NULL on failure. */
char *ga_test_read_file(const char *path, size_t *len);
int ga_test_write_file(const char *path, const void *data, size_t len);

/* max |a-b| / (atol + rtol*|b|) over n; > 1 means out of tolerance. NaN/Inf in a -> INFINITY */
double ga_test_tol_ratio(const float *a, const float *b, size_t n, double atol, double rtol);
/* ||a-b||_2 / ||b||_2 (INFINITY if a has a NaN/Inf) */
double ga_test_rel_l2(const float *a, const float *b, size_t n);

/* A small deterministic RNG for test inputs (splitmix64). */
uint64_t ga_test_rand_u64(uint64_t *state);
float ga_test_rand_normal(uint64_t *state);

/* Test sections: true when argv names sec, or when no section is named (run them all). */
bool ga_test_want(int argc, char **argv, const char *sec);

/* Environment variable or default. */
const char *ga_test_env(const char *name, const char *def);

/* config.json text parsed as the file "cfg.json" (the config tests' inputs are strings). */
ga_status ga_test_config_parse(const char *json, ga_config *c, ga_err *e);
/* Parses json and checks it fails with `code` and a one-line message that contains `needle`
 * and names the file. */
void ga_test_config_expect_fail(const char *json, ga_status code, const char *needle);

/* A JSON array of rows (arrays of width numbers) as malloc'd floats, row-major, *n_rows set;
 * NULL when a row has another width (reference logits of the transformers fixtures). */
struct cJSON;
float *ga_test_json_floats(const struct cJSON *rows, int *n_rows, int width);

/* The fixture index ROOT/index.json of a transformers fixture set: it must list exactly
 * `expected` cases, every ROOT/NAME/reference_logits.json folder must be listed, and each case
 * is run through check_case (ran: the sequences it compared, 2 or more wanted). Returns
 * whether the index could be read (the caller then prints its summary). */
bool ga_test_fixture_index(const char *root, int expected,
                           void (*check_case)(const char *root, const char *name, int *ran));

/* An in-memory model of configuration c (taken as it is: tiny shapes allowed) with
 * ga_model_random_store's bf16 weights of the given init scale (ga_model_random uses 0.02;
 * the CPU-path tests use 0.3 so that attention and gates spread). NULL after a failed check. */
ga_model *ga_test_model_std(const ga_config *c, uint64_t seed, float std);

/* A 2-layer Qwen3 of hidden 256 (4 query / 2 KV heads of head_dim hd, intermediate 512, vocab
 * 1000, tied, q/k norm, theta 1e4) with ga_model_random's default bf16 init, seed 11: the model
 * of the batch-invariance and paged-vs-slots tests (test_determ, test_multi_paged). NULL (and a
 * failed check) if it cannot be made. */
ga_model *ga_test_model_2l(int hd, ga_gate_mode gate, int max_pos);

/* Whether n floats are the same bits (paged == slot results, replays, resets). */
static inline bool ga_test_same_bits(const float *a, const float *b, size_t n) {
    return memcmp(a, b, n * sizeof(float)) == 0;
}

/* Tokens generated per prompt index, up to 4 prompts of 64 (the paged-cache tests' sinks):
 * ga_test_on_tok is a ga_generate(_batch) token callback appending to user's row `index`;
 * ga_test_on_tok_alone appends to row 3 whatever the index (a single prompt beside a batch). */
typedef struct ga_test_tok_sink {
    int32_t tok[4][64];
    int n[4];
} ga_test_tok_sink;
int ga_test_on_tok(void *user, int index, int32_t token);
int ga_test_on_tok_alone(void *user, int index, int32_t token);

/* The paged-cache tests' call sequence on an empty session of 3 or more sequences, with
 * ids[0..T) (T >= 23 and > steps + 2): prefills in chunks crossing block boundaries, sequence 1
 * first (so sequence 0's blocks are not the lowest ids), then `steps` batched decode steps
 * growing sequences 2, 0 and 1 across block boundaries together. o receives
 * 19 + (T - 11) + 3 * steps rows of V logits; returns the end of them. */
float *ga_test_paged_workload(ga_session *s, const int32_t *ids, int T, int V, int steps, float *o);

/* The CUDA GEMM the GPU tests run with: $GA_CUDA_GEMM (cublas, cublas-only, lt or fallback;
 * tools/gpu_check.sh reruns a crashed test with the others), default cublas. */
ga_cuda_gemm_impl ga_test_cuda_gemm(void);

/* Returns 77 (skip) from the calling test when no usable GPU is present. */
#define GA_REQUIRE_GPU()                                                                           \
    do {                                                                                           \
        if (!ga_cuda_available()) {                                                                \
            printf("no CUDA GPU: skipped\n");                                                      \
            return 77;                                                                             \
        }                                                                                          \
    } while (0)

#endif
