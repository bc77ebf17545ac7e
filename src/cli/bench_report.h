/*
 * Results of `gattn bench` (cmd_bench.c measures, bench_report.c writes): one row per
 * measured configuration, one entry per configuration that was skipped, and the writers for
 * the markdown table, CSV and JSON.
 */
#ifndef GATTN_CLI_BENCH_REPORT_H
#define GATTN_CLI_BENCH_REPORT_H

#include <stdio.h>

#include "gattn/gattn.h"

typedef struct ga_bench_row {
    char variant[16]; /* baseline | headwise | elementwise */
    const char *test; /* "prefill" | "decode" */
    int batch;        /* sequences decoded together (1 for prefill) */
    int depth;        /* nominal context depth (decode): the cache is filled to it */
    int timed_from;   /* context length before the first timed token: depth > 0 rows keep
                       * growing across warm-up and timed repetitions, so it is past depth */
    int depth_end;    /* context length after the last timed token */
    int tokens;       /* prompt length (prefill) or tokens per sequence (decode) */
    int reps;
    double mean_ms, min_ms, max_ms, std_ms; /* per repetition */
    double tokens_per_s;                    /* batch * tokens / mean */
    double gb_per_s;                        /* weight + KV bytes read / mean */
    double tflop_per_s;
    double overhead_pct; /* mean vs baseline's same row, NAN when none */
    double peak_mem_gib; /* device memory in use (cudaMemGetInfo), NAN on the CPU */
} ga_bench_row;

typedef struct ga_bench_skip {
    char variant[16];
    const char *test;
    int batch, depth, tokens;
    char reason[200];
} ga_bench_skip;

typedef struct ga_bench_report {
    const char *commit, *device, *model; /* model: "random" or the folder */
    ga_config shape;
    ga_dtype dtype;
    bool fp8_fast; /* --fp8-math fast (ga_session_opts.fp8_math) */
    int warmup, reps;
    int prefill_chunk; /* the CUDA backend's prompt tokens per prefill pass */
    ga_bench_row *rows;
    int n_rows;
    ga_bench_skip *skips;
    int n_skips;
} ga_bench_report;

/* Fills overhead_pct of every gated row from the baseline row with the same test, batch,
 * depth and tokens. */
void ga_bench_overheads(ga_bench_report *r);
void ga_bench_write_markdown(const ga_bench_report *r, FILE *f);
/* 0 on success; -1 when the file cannot be written (errno set). */
int ga_bench_write_csv(const ga_bench_report *r, const char *path);
int ga_bench_write_json(const ga_bench_report *r, const char *path);

#endif
