/*
 * lcpp_logits: llama.cpp's logits for given token ids, printed as `gattn logits` prints its own
 * (one line per position, a JSON array of vocab floats), so tests/test_lcpp.sh can compare an
 * independent implementation of the baseline model with gattn's. Built against a llama.cpp
 * build by tools/bench_llamacpp.sh (never by our CMake: llama.cpp is not part of this tree).
 *
 *   lcpp_logits MODEL.gguf 3,14,15 [--all] [--ngl N]
 *
 * The K/V cache is f32 (llama.cpp's default is f16) so the cache adds no rounding of its own:
 * what differs from gattn is then only the matmuls' activation precision.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llama.h"

static void quiet(enum ggml_log_level level, const char *text, void *user) {
    (void)user;
    if (level == GGML_LOG_LEVEL_ERROR) fputs(text, stderr);
}

static int parse_tokens(const char *s, llama_token **out) {
    int n = 1;
    for (const char *p = s; *p; p++)
        n += *p == ',';
    llama_token *t = malloc((size_t)n * sizeof *t);
    if (!t) return -1;
    for (int i = 0; i < n; i++) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || (*end != ',' && *end != '\0') || v < 0 || v > 0x7fffffff) {
            free(t);
            return -1;
        }
        t[i] = (llama_token)v;
        s = end + (*end == ',');
    }
    *out = t;
    return n;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: lcpp_logits MODEL.gguf IDS [--all] [--ngl N]\n");
        return 2;
    }
    int all = 0, ngl = 0;
    for (int i = 3; i < argc; i++) {
        if (!strcmp(argv[i], "--all"))
            all = 1;
        else if (!strcmp(argv[i], "--ngl") && i + 1 < argc)
            ngl = atoi(argv[++i]);
        else {
            fprintf(stderr, "lcpp_logits: unknown argument %s\n", argv[i]);
            return 2;
        }
    }
    llama_token *tok;
    const int n = parse_tokens(argv[2], &tok);
    if (n < 0) {
        fprintf(stderr, "lcpp_logits: bad token list %s\n", argv[2]);
        return 2;
    }
    llama_log_set(quiet, NULL);
    llama_backend_init();
    struct llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = ngl;
    struct llama_model *model = llama_model_load_from_file(argv[1], mp);
    if (!model) {
        fprintf(stderr, "lcpp_logits: cannot load %s\n", argv[1]);
        return 1;
    }
    const int n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(model));
    for (int i = 0; i < n; i++)
        if (tok[i] >= n_vocab) {
            fprintf(stderr, "lcpp_logits: token %d >= vocab %d\n", tok[i], n_vocab);
            return 2;
        }
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = cp.n_batch = cp.n_ubatch = (uint32_t)(n < 64 ? 64 : n);
    cp.type_k = cp.type_v = GGML_TYPE_F32;
    cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
    struct llama_context *ctx = llama_init_from_model(model, cp);
    if (!ctx) {
        fprintf(stderr, "lcpp_logits: cannot create a context\n");
        return 1;
    }
    struct llama_batch b = llama_batch_init(n, 0, 1);
    for (int i = 0; i < n; i++) {
        b.token[i] = tok[i];
        b.pos[i] = i;
        b.n_seq_id[i] = 1;
        b.seq_id[i][0] = 0;
        b.logits[i] = (int8_t)(all || i == n - 1);
    }
    b.n_tokens = n;
    if (llama_decode(ctx, b) != 0) {
        fprintf(stderr, "lcpp_logits: llama_decode failed\n");
        return 1;
    }
    for (int i = all ? 0 : n - 1; i < n; i++) {
        const float *l = llama_get_logits_ith(ctx, i);
        putchar('[');
        for (int v = 0; v < n_vocab; v++)
            printf(v ? ",%.9g" : "%.9g", (double)l[v]);
        puts("]");
    }
    llama_batch_free(b);
    llama_free(ctx);
    llama_model_free(model);
    llama_backend_free();
    free(tok);
    return 0;
}
