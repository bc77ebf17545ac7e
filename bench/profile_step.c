/*
 * One prefill or one decode step of a random-weight model at the paper's 1.7B shape, bracketed
 * by cudaProfilerStart/Stop so that `ncu --profile-from-start off --graph-profiling node`
 * profiles exactly that step's kernels (each kernel node of the replayed decode graph on its
 * own). Before the profiled step it times the same step host-side over --steps repetitions
 * (synchronous: decode_sample returns the ids), so the table tools/gpu_profile.sh prints can
 * set the sum of kernel times against the wall time of a step: the difference is launch gaps
 * and host work. Measured, never asserted.
 *
 *   profile_step --mode decode|prefill [--variant baseline|headwise|elementwise]
 *                [--batch B] [--depth D] [--prefill P] [--steps N]
 *                [--gemm default|cublas-only|lt|fallback]
 */
#define _GNU_SOURCE
#include <cuda_profiler_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/presets.h"
#include "gattn/gattn.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int die(const char *what, const ga_err *e) {
    fprintf(stderr, "profile_step: error: %s: %s\n", what, e->msg);
    return 1;
}

static int usage(const char *msg) {
    fprintf(stderr, "profile_step: error: %s\n", msg);
    return 2;
}

int main(int argc, char **argv) {
    const char *mode = "decode", *variant = "baseline";
    long batch = 1, depth = 0, prefill = 2048, steps = 50;
    ga_cuda_gemm_impl gemm = GA_CUDA_GEMM_CUBLAS;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) return usage("every option takes a value");
        char *end = NULL;
        long n = strtol(v, &end, 10);
        bool num_ok = *v && !*end && n >= 0 && n <= (1L << 20);
        if (!strcmp(o, "--mode"))
            mode = v;
        else if (!strcmp(o, "--variant"))
            variant = v;
        else if (!strcmp(o, "--gemm") && !strcmp(v, "default"))
            gemm = GA_CUDA_GEMM_CUBLAS;
        else if (!strcmp(o, "--gemm") && !strcmp(v, "cublas-only"))
            gemm = GA_CUDA_GEMM_CUBLAS_ONLY;
        else if (!strcmp(o, "--gemm") && !strcmp(v, "lt"))
            gemm = GA_CUDA_GEMM_LT;
        else if (!strcmp(o, "--gemm") && !strcmp(v, "fallback"))
            gemm = GA_CUDA_GEMM_FALLBACK;
        else if (!strcmp(o, "--batch") && num_ok && n >= 1 && n <= 256)
            batch = n;
        else if (!strcmp(o, "--depth") && num_ok)
            depth = n;
        else if (!strcmp(o, "--prefill") && num_ok && n >= 1)
            prefill = n;
        else if (!strcmp(o, "--steps") && num_ok && n >= 1)
            steps = n;
        else
            return usage("unknown option or bad value (see the comment at the top of the file)");
        i++;
    }
    bool decode = !strcmp(mode, "decode");
    if (!decode && strcmp(mode, "prefill")) return usage("--mode is decode or prefill");
    ga_gate_mode gate;
    if (ga_variant_parse(variant, &gate)) return usage("--variant is " GA_VARIANT_NAMES);
    if (!ga_cuda_available()) {
        printf("no CUDA GPU: nothing measured\n");
        return 77;
    }
    /* The paper's 1.7B shape, from the one preset table (src/cli/presets.c). */
    ga_config c = ga_preset_find("paper-1.7b")->shape;
    c.gate = gate;
    ga_err err = {{0}};
    ga_model *m = NULL;
    if (ga_model_random(&c, 42, GA_BF16, &m, &err)) return die("random model", &err);
    int ctx = (int)(decode ? depth + steps + 16 : prefill) + 8;
    ga_session_opts o = {
        .device = GA_DEVICE_CUDA, .max_context = ctx, .max_batch = (int)batch, .cuda_gemm = gemm};
    ga_session *s = NULL;
    if (ga_session_create(m, &o, &s, &err)) return die("session", &err);
    long ntok = decode ? (depth > 0 ? depth : 1) : prefill;
    int32_t *tok = malloc((size_t)ntok * sizeof *tok);
    int *seqs = malloc((size_t)batch * sizeof *seqs);
    int32_t *next = malloc((size_t)batch * sizeof *next);
    if (!tok || !seqs || !next) return usage("out of memory");
    for (long i = 0; i < ntok; i++)
        tok[i] = (int32_t)((i * 7919u + 13) % (unsigned)c.vocab_size);
    double per = 0;
    if (!decode) {
        for (long r = 0; r <= steps; r++) { /* r = 0: warm-up */
            ga_session_reset(s, 0);
            double a = now_s();
            if (ga_session_forward(s, 0, tok, (int)prefill, false, NULL, &err))
                return die("prefill", &err);
            if (r) per += (now_s() - a) / (double)steps;
        }
        ga_session_reset(s, 0);
        cudaProfilerStart();
        if (ga_session_forward(s, 0, tok, (int)prefill, false, NULL, &err))
            return die("prefill", &err);
        cudaProfilerStop();
        printf("prefill %ld tokens: %.3f ms per prefill (host clock, mean of %ld)\n", prefill,
               1e3 * per, steps);
    } else {
        for (int i = 0; i < batch; i++) {
            seqs[i] = i;
            next[i] = (int32_t)(i + 1);
            if (ga_session_forward(s, i, tok, (int)ntok, false, NULL, &err))
                return die("prompt", &err);
        }
        for (int w = 0; w < 3; w++) /* warm-up: the first step captures the graph */
            if (ga_session_decode_sample(s, seqs, next, (int)batch, NULL, NULL, next, &err))
                return die("decode", &err);
        double a = now_s();
        for (long st = 0; st < steps; st++)
            if (ga_session_decode_sample(s, seqs, next, (int)batch, NULL, NULL, next, &err))
                return die("decode", &err);
        per = (now_s() - a) / (double)steps;
        cudaProfilerStart();
        if (ga_session_decode_sample(s, seqs, next, (int)batch, NULL, NULL, next, &err))
            return die("decode", &err);
        cudaProfilerStop();
        printf("decode batch %ld depth %ld: %.4f ms per step (host clock, mean of %ld), %.1f "
               "tokens/s\n",
               batch, ga_session_seq_len(s, 0) - 1L, 1e3 * per, steps, (double)batch / per);
    }
    printf("step_ms %.6f\n", 1e3 * per);
    ga_session_free(s);
    ga_model_free(m);
    free(tok);
    free(seqs);
    free(next);
    return 0;
}
