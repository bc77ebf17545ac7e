/*
 * The measuring half of `gattn bench` (bench_run.c): the options it runs with, and one
 * variant's prefill and decode rows added to a report (bench_report.h writes it out).
 * cmd_bench.c parses the command line and drives it.
 */
#ifndef GATTN_CLI_BENCH_RUN_H
#define GATTN_CLI_BENCH_RUN_H

#include "bench_report.h"
#include "cli.h"

#define MAX_LIST 16

/* A sorted list of distinct values (prompt lengths, depths, batch sizes). */
typedef struct ga_bench_list {
    int v[MAX_LIST];
    int n;
} ga_bench_list;

typedef struct ga_bench_args {
    const char *model_dir, *csv, *json;
    ga_device device;
    ga_cuda_gemm_impl cuda_gemm;
    int prefill_chunk; /* ga_session_opts.prefill_chunk (0: the default) */
    ga_cuda_weights cuda_weights;
    ga_fp8_math fp8_math; /* ga_session_opts.fp8_math */
    ga_gate_mode variants[3];
    int n_variants;
    ga_bench_list prefill, depths, batches;
    long decode_tokens, reps, warmup, threads;
    ga_config shape;
    ga_cli_rope rope; /* --rope-* overrides, applied to each model */
    ga_cli_tp tp;     /* --tensor-parallel / --tp-devices */
} ga_bench_args;

typedef struct ga_bench_ctx {
    const ga_bench_args *a;
    const ga_model *m;
    const char *variant;
    ga_bench_report *rep;
    int rows_cap, skips_cap;
    double bytes_per_weight;              /* as the backend stores them (KV cache too) */
    double weight_step_bytes;             /* weight bytes a token step reads: matmul_params at
                                             bytes_per_weight, FP8 projections kept as FP8 at ~1 */
    double matmul_params, lm_head_params; /* per token (MoE: active experts only) */
    double attn_layers;              /* layers with softmax attention (hybrids: the full ones) */
    double state_flops, state_bytes; /* per token: Gated DeltaNet recurrent states (hybrids) */
    int32_t *tokens;                 /* scratch ids, long enough for the longest fill */
    float *logits;                   /* vocab */
    ga_err err;
    /* progress: rows measured or skipped so far, of rows_total, since t_start */
    int rows_done, rows_total;
    double t_start;
    bool tty; /* stderr is a terminal: keep a progress line with an ETA at its bottom */
} ga_bench_ctx;

/* Monotonic seconds. */
double ga_bench_now(void);
/* Rows (measured or skipped) that a run of args a makes per variant. */
int ga_bench_rows_per_variant(const ga_bench_args *a);
/* Measures model m (one variant) per b->a and appends its rows and skips to b->rep; sets
 * rep->device on first use. Returns the CLI exit code (0, or 1 with the error printed). */
int ga_bench_run_variant(ga_bench_ctx *b, ga_model *m);

#endif
