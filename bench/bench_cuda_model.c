/*
 * End-to-end CUDA backend throughput on a random-weight model of a published shape (no files):
 * prefill tokens/s at several prompt lengths, and decode tokens/s at several batch sizes with
 * the step time and the bandwidth it implies (bf16 weights + KV read per step) next to it.
 * Warms up, repeats, reports mean and range. Measured, never asserted.
 *
 *   bench_cuda_model [--preset qwen3-0.6b|paper-1.7b] [--variant baseline|headwise|elementwise]
 *                    [--reps N]
 *
 * The shapes and variant names are gattn's own (src/cli/presets.c, shared with `gattn
 * write-model` and `gattn bench`); a name it does not know is an error (exit 2), never a
 * silent default.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/presets.h"
#include "gattn/gattn.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int die(const char *what, const ga_err *e) {
    fprintf(stderr, "bench_cuda_model: error: %s: %s\n", what, e->msg);
    return 1;
}

int main(int argc, char **argv) {
    const char *preset = "qwen3-0.6b", *variant = "headwise";
    int reps = 5;
    for (int i = 1; i < argc; i += 2) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        char *end = NULL;
        if (!v || (strcmp(o, "--preset") && strcmp(o, "--variant") && strcmp(o, "--reps"))) {
            fprintf(stderr, "bench_cuda_model: error: %s '%s'\n",
                    v ? "unknown option" : "missing value or unknown option", o);
            return 2;
        }
        if (!strcmp(o, "--preset")) preset = v;
        if (!strcmp(o, "--variant")) variant = v;
        if (!strcmp(o, "--reps") && ((reps = (int)strtol(v, &end, 10)) < 1 || *end)) {
            fprintf(stderr, "bench_cuda_model: error: --reps: '%s' is not a positive integer\n", v);
            return 2;
        }
    }
    const ga_preset *p = ga_preset_find(preset);
    ga_gate_mode gate;
    if (!p) {
        fprintf(stderr, "bench_cuda_model: error: --preset: '%s' is not %s\n", preset,
                ga_preset_names());
        return 2;
    }
    if (ga_variant_parse(variant, &gate)) {
        fprintf(stderr, "bench_cuda_model: error: --variant: '%s' is not %s\n", variant,
                GA_VARIANT_NAMES);
        return 2;
    }
    if (!ga_cuda_available()) {
        printf("no CUDA GPU: nothing measured\n");
        return 0;
    }
    ga_config c = p->shape;
    c.gate = gate;
    c.torch_dtype = GA_BF16;
    c.n_eos = 1;
    c.eos_token_ids[0] = 151645;
    ga_err err = {{0}};
    ga_model *m = NULL;
    double t0 = now_s();
    if (ga_model_random(&c, 42, GA_BF16, &m, &err)) return die("random model", &err);
    const int ctx = 4096 + 256, maxb = 8;
    ga_session_opts o = {.device = GA_DEVICE_CUDA, .max_context = ctx, .max_batch = maxb};
    ga_session *s = NULL;
    if (ga_session_create(m, &o, &s, &err)) return die("session", &err);
    double wbytes = (double)ga_config_param_count(&c) * 2;
    printf("model: %s shape, %s gate, %.3g params, bf16 weights %.2f GB, upload %.1f s, "
           "device %s\n",
           p->name, ga_gate_mode_name(c.gate), (double)ga_config_param_count(&c), wbytes / 1e9,
           now_s() - t0, ga_session_device_name(s));

    int32_t *tok = malloc(4096 * sizeof *tok);
    float *logits = malloc((size_t)maxb * c.vocab_size * sizeof(float));
    for (int i = 0; i < 4096; i++)
        tok[i] = (int32_t)((i * 7919u + 13) % (unsigned)c.vocab_size);

    printf("\n| prefill tokens | mean ms | min ms | max ms | tokens/s |\n|---|---|---|---|---|\n");
    const int Ts[] = {128, 512, 2048, 4096};
    for (int k = 0; k < 4; k++) {
        double sum = 0, lo = 1e30, hi = 0;
        for (int r = -1; r < reps; r++) { // r = -1: warm-up
            ga_session_reset(s, 0);
            double a = now_s();
            if (ga_session_forward(s, 0, tok, Ts[k], false, logits, &err))
                return die("prefill", &err);
            double d = now_s() - a;
            if (r < 0) continue;
            sum += d, lo = d < lo ? d : lo, hi = d > hi ? d : hi;
        }
        printf("| %d | %.2f | %.2f | %.2f | %.0f |\n", Ts[k], 1e3 * sum / reps, 1e3 * lo, 1e3 * hi,
               Ts[k] * reps / sum);
    }

    printf("\n| decode batch | context | mean ms/step | tokens/s | weights+KV GB/s |\n"
           "|---|---|---|---|---|\n");
    const int Bs[] = {1, 4, 8}, ctxs[] = {512, 4096};
    const int steps = 64;
    for (int ci = 0; ci < 2; ci++)
        for (int bi = 0; bi < 3; bi++) {
            const int B = Bs[bi], P = ctxs[ci] - steps - 2;
            int seqs[8];
            for (int i = 0; i < B; i++) {
                seqs[i] = i;
                ga_session_reset(s, i);
                if (ga_session_forward(s, i, tok, P, false, NULL, &err)) return die("prompt", &err);
            }
            int32_t next[8] = {0};
            for (int w = 0; w < 2; w++) // warm-up: the first step captures the graph
                if (ga_session_decode_batch(s, seqs, next, B, logits, &err))
                    return die("decode", &err);
            double a = now_s();
            for (int st = 0; st < steps; st++) {
                for (int i = 0; i < B; i++)
                    next[i] = (int32_t)((st * 31 + i) % c.vocab_size);
                if (ga_session_decode_batch(s, seqs, next, B, logits, &err))
                    return die("decode", &err);
            }
            double d = (now_s() - a) / steps;
            // Bytes a step must read: every weight once plus each sequence's K and V so far.
            double kv =
                (double)B * (P + 2 + steps / 2) * c.n_layers * 2 * c.n_kv_heads * c.head_dim * 2;
            printf("| %d | %d | %.3f | %.0f | %.0f |\n", B, ctxs[ci], 1e3 * d, B / d,
                   (wbytes + kv) / d / 1e9);
        }
    ga_session_free(s);
    ga_model_free(m);
    free(tok);
    free(logits);
    return 0;
}
