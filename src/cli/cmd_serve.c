/*
 * gattn serve: the OpenAI-compatible HTTP server (src/server) over a continuous-batching
 * scheduler (src/engine/scheduler.c) on one session. Prints exactly one line on stdout,
 * "listening on http://HOST:PORT", once it accepts requests; everything else goes to stderr.
 * SIGINT/SIGTERM: stop accepting, let requests in flight finish for up to --shutdown-timeout
 * seconds, cancel the rest, exit 0.
 */
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "core/path.h"
#include "engine/generate.h"
#include "engine/scheduler.h"
#include "gattn/tokenizer.h"
#include "server/server.h"

static const char *C = "serve";

typedef struct serve_args {
    const char *dir, *host, *api_key, *name;
    long port, max_batch, max_context, prefill_chunk, max_queue, max_body, threads;
    long kv_blocks, kv_block_size;
    double shutdown_s, kv_memory_gib, prefill_share;
    ga_device device;
    ga_cuda_gemm_impl cuda_gemm;
    ga_cuda_weights cuda_weights;
    ga_fp8_math fp8_math;
    bool deterministic, separate_prefill;
    ga_cli_rope rope;
    ga_cli_tp tp;
} serve_args;

static int parse_args(int argc, char **argv, serve_args *a) {
    *a = (serve_args){.host = "127.0.0.1",
                      .port = 8000,
                      .max_batch = 16,
                      .prefill_chunk = 512,
                      .max_queue = 256,
                      .max_body = 4 << 20,
                      .shutdown_s = 10,
                      .prefill_share = 1};
    ga_opt opts[] = {
        GA_O_STR("--model", &a->dir, "DIR", "the model folder (required)"),
        GA_O_STR("--host", &a->host, "ADDR", "address to listen on (default 127.0.0.1)"),
        GA_O_LONG("--port", &a->port, 0, 65535, "N", "TCP port (default 8000; 0: a free one)"),
        GA_O_DEVICE(&a->device),
        GA_O_CUDA_GEMM(&a->cuda_gemm),
        GA_O_WEIGHTS_DTYPE(&a->cuda_weights),
        GA_O_FP8_MATH(&a->fp8_math),
        GA_O_DETERMINISTIC(&a->deterministic),
        GA_TP_OPTS(&a->tp),
        GA_ROPE_OPTS(&a->rope),
        GA_O_LONG("--max-batch", &a->max_batch, 1, 4096, "N",
                  "sequences decoded together: the cache's slots (default 16)"),
        GA_O_LONG("--max-context", &a->max_context, 1, 1 << 24, "N",
                  "tokens per sequence, prompt + completion (default: the model's\n"
                  "max_position_embeddings, at most 4096)"),
        GA_O_LONG("--kv-blocks", &a->kv_blocks, 1, 1 << 24, "N",
                  "a paged KV cache of N blocks, taken as sequences grow (CPU;\n"
                  "default: a slot of --max-context tokens per sequence)"),
        GA_O_FLOAT("--kv-memory", &a->kv_memory_gib, 1e-9, 1 << 20, "GIB",
                   "a paged KV cache of this many GiB (instead of --kv-blocks)"),
        GA_O_LONG("--kv-block-size", &a->kv_block_size, 1, 4096, "N",
                  "tokens per block of the paged cache (default 16)"),
        GA_O_STR("--api-key", &a->api_key, "KEY",
                 "require 'Authorization: Bearer KEY' on /v1/ routes"),
        GA_O_STR("--served-model-name", &a->name, "NAME",
                 "the model's name in the API (default: the folder's name)"),
        GA_O_LONG("--prefill-chunk", &a->prefill_chunk, 1, GA_PREFILL_CHUNK_MAX, "N",
                  "rows of a scheduler step: prompt tokens, all requests together,\n"
                  "plus the decode rows in a mixed step (default 512)"),
        GA_O_FLAG("--separate-prefill", &a->separate_prefill,
                  "run prompts as passes of their own after each decode step, not\n"
                  "in the decode step's pass (mixed steps: CUDA Qwen3 on one GPU, CPU)"),
        GA_O_FLOAT("--prefill-share", &a->prefill_share, 0, 1000, "X",
                   "separate prefill passes only (--separate-prefill, hybrid models,\n"
                   "--tp): while requests decode, a step's prefill takes at most X\n"
                   "times the decode step's time, so their next token waits at most\n"
                   "about (1 + X) steps (default 1; 0: the whole --prefill-chunk every\n"
                   "step)"),
        GA_O_LONG("--max-queue", &a->max_queue, 1, 1 << 20, "N",
                  "requests waiting for a slot at most; more get 429 (default 256)"),
        GA_O_LONG("--max-body", &a->max_body, 64, 1L << 30, "BYTES",
                  "request body size limit; larger gets 413 (default 4 MiB)"),
        GA_O_LONG("--threads", &a->threads, 1, 1024, "N", "CPU threads (default: all cores)"),
        GA_O_FLOAT("--shutdown-timeout", &a->shutdown_s, 0, 3600, "S",
                   "on SIGINT/SIGTERM, wait S seconds for requests in flight\n"
                   "before cancelling them (default 10)"),
    };
    ga_cli_spec spec = {
        .cmd = C,
        .usage = "--model DIR [options]",
        .about = "Serves the model over HTTP with the OpenAI API: POST /v1/completions,\n"
                 "POST /v1/chat/completions (streaming with \"stream\": true), GET /v1/models,\n"
                 "GET /health and GET /metrics (Prometheus). Requests are batched continuously:\n"
                 "each joins the running batch at the next step and leaves when it is done.\n"
                 "Prints 'listening on http://HOST:PORT' on stdout when ready.\n",
        .opts = opts,
        .n_opts = GA_N_OPTS(opts)};
    int rc = ga_cli_parse(&spec, argc, argv);
    const int tp_rc = ga_cli_tp_check(&spec, &a->tp);
    if (rc == GA_CLI_HELP) return -1;
    if (rc) return rc;
    if (tp_rc) return tp_rc;
    if (!a->dir) return ga_cli_usage(C, "--model DIR is required");
    if (a->api_key && !a->api_key[0]) return ga_cli_usage(C, "--api-key: the key is empty");
    if (ga_cli_rope_check(&spec, &a->rope)) return GA_EXIT_USAGE;
    if (a->kv_blocks && a->kv_memory_gib > 0)
        return ga_cli_usage(C, "--kv-blocks and --kv-memory both size the cache: give one");
    if (a->kv_block_size && !a->kv_blocks && !(a->kv_memory_gib > 0))
        return ga_cli_usage(C, "--kv-block-size needs --kv-blocks or --kv-memory");
    return 0;
}

int ga_cmd_serve(int argc, char **argv) {
    serve_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc) return rc < 0 ? GA_EXIT_OK : rc; /* -1: --help was printed */
    /* Signals are taken by sigwait below: block them before any thread exists so every
     * thread inherits the mask. A write to a closed socket must not kill the server. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    ga_err err = {{0}};
    ga_model *m = NULL;
    ga_tokenizer *tok = NULL;
    ga_session *s = NULL;
    ga_sched *q = NULL;
    ga_server *srv = NULL;
    rc = GA_EXIT_FAIL;
    if (ga_model_load(a.dir, &m, &err)) {
        ga_cli_fail_err(C, &err);
        goto done;
    }
    if (ga_cli_rope_apply(C, &a.rope, m)) goto done;
    const ga_config *c = ga_model_config(m);
    char *tpath = ga_path_join(a.dir, "tokenizer.json");
    if (!tpath) {
        ga_cli_fail(C, "out of memory");
        goto done;
    }
    bool have_tok = access(tpath, R_OK) == 0;
    free(tpath);
    if (have_tok && ga_tok_load_dir(a.dir, &tok, &err)) {
        ga_cli_fail_err(C, &err);
        goto done;
    }
    if (!have_tok)
        fprintf(stderr, "gattn serve: %s has no tokenizer.json: serving token-id prompts only\n",
                a.dir);
    if (a.max_context > ga_config_max_context(c)) {
        ga_cli_fail(C, "--max-context %ld exceeds the model's %s %d", a.max_context,
                    ga_cli_context_bound(c), ga_config_max_context(c));
        goto done;
    }
    ga_session_opts so = {.device = a.device,
                          .cuda_gemm = a.cuda_gemm,
                          .cuda_weights = a.cuda_weights,
                          .fp8_math = a.fp8_math,
                          .deterministic = a.deterministic,
                          .max_context = (int)a.max_context,
                          .max_batch = (int)a.max_batch,
                          .n_threads = (int)a.threads,
                          .kv_blocks = (int)a.kv_blocks,
                          .kv_memory = (int64_t)(a.kv_memory_gib * 1073741824.0),
                          .kv_block_size = (int)a.kv_block_size,
                          /* The scheduler hands the session at most this many prompt rows a
                           * step (every prefilling request's chunk in one forward_multi), so
                           * the CUDA backend's pass, and its activation buffers, need be no
                           * taller: one step's prefill is one pass. */
                          .prefill_chunk = (int)a.prefill_chunk};
    ga_cli_tp_set(&a.tp, &so);
    if (a.kv_memory_gib > 0 && so.kv_memory < 1) so.kv_memory = 1; /* sized, and too small */
    if (ga_session_create(m, &so, &s, &err)) {
        ga_cli_fail_err(C, &err);
        goto done;
    }
    /* Read what the startup line needs now: once the scheduler thread runs it owns the
     * session, and reading its block counts from here would race with it. */
    ga_kv_info ki;
    ga_session_kv_info(s, &ki);
    ga_sched_opts qo = {.prefill_chunk = (int)a.prefill_chunk,
                        .max_queue = (int)a.max_queue,
                        .prefill_share = a.prefill_share > 0 ? a.prefill_share : -1,
                        .separate_prefill = a.separate_prefill};
    if (ga_sched_create(s, m, &qo, &q, &err) || ga_sched_start(q, &err)) {
        ga_cli_fail_err(C, &err);
        goto done;
    }
    ga_gen_opts stops = {0};
    ga_gen_default_stops(c, tok, &stops);
    ga_server_opts o = {.host = a.host,
                        .port = (int)a.port,
                        .api_key = a.api_key,
                        .model_name = a.name,
                        .max_body = (size_t)a.max_body,
                        .max_context = ga_session_max_context(s)};
    if (ga_server_start(&o, m, tok, q, &stops, &srv, &err)) {
        ga_cli_fail_err(C, &err);
        goto done;
    }
    bool v6 = strchr(a.host, ':') != NULL;
    printf("listening on http://%s%s%s:%d\n", v6 ? "[" : "", a.host, v6 ? "]" : "",
           ga_server_port(srv));
    if (ga_cli_finish_stdout(C)) goto done;
    if (ki.paged)
        fprintf(stderr,
                "gattn serve: %s on %s, up to %d sequences of %d tokens in a paged KV cache of "
                "%d blocks of %d tokens\n",
                ga_model_name(m), ga_session_device_name(s), ga_session_max_batch(s),
                ga_session_max_context(s), ki.blocks_total, ki.block_size);
    else
        fprintf(stderr, "gattn serve: %s on %s, %d slots of %d tokens%s\n", ga_model_name(m),
                ga_session_device_name(s), ga_session_max_batch(s), ga_session_max_context(s),
                ki.paged_refused ? " (this backend has no paged KV cache yet: --kv-blocks / "
                                   "--kv-memory ignored, slots used instead)"
                                 : "");
    /* (the backend's hooks never change: no race with the scheduler thread) */
    if (ga_session_has_step_mixed(s) && !a.separate_prefill)
        fprintf(stderr,
                "gattn serve: mixed steps: decode rows and prompt tokens in one pass, %ld rows a "
                "step\n",
                a.prefill_chunk);
    else
        fprintf(stderr, "gattn serve: prompts in passes of their own after each decode step%s\n",
                a.separate_prefill ? "" : " (this backend has no mixed steps)");
    int sig = 0;
    sigwait(&sigs, &sig);
    fprintf(stderr, "gattn serve: %s: finishing requests in flight (at most %g s)\n",
            sig == SIGINT ? "SIGINT" : "SIGTERM", a.shutdown_s);
    ga_server_quiesce(srv);
    ga_sched_stop(q, a.shutdown_s);
    rc = GA_EXIT_OK;
done:
    ga_server_stop(srv);
    ga_sched_free(q);
    ga_session_free(s);
    ga_tok_free(tok);
    ga_model_free(m);
    return rc;
}
