/*
 * gattn generate: text (or ids) from a prompt, streamed to stdout as it is produced, or one
 * JSON line per prompt of a batch file with batched decoding. Speeds go to stderr.
 *
 * The pieces, in the order they run: parse_args (the option table), load (model and, when it
 * is needed or present, tokenizer), get_prompts (--prompt / --tokens / --batch-file to ids),
 * choose_context, open_session, then run_single (streamed) or run_batch (chunks of
 * --max-batch prompts, printed in input order).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "core/path.h"
#include "gattn/tokenizer.h"
#include "engine/generate.h"
#include "jsonl.h"

static const char *C = "generate";

/* ------------------------------------------------------------------ loading progress bar */

static void progress_bar(void *user, float done) {
    int *last = user;
    int pct = (int)(done * 100.0f + 0.5f);
    if (pct == *last) return;
    *last = pct;
    char bar[41];
    int fill = pct * 40 / 100;
    for (int i = 0; i < 40; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[40] = 0;
    fprintf(stderr, "\rloading weights [%s] %3d%%", bar, pct);
    fflush(stderr);
}

/* ------------------------------------------------------------------ arguments */

typedef struct gen_args {
    const char *dir, *prompt, *batch_file;
    ga_cli_ids tokens;
    long n, seed, top_k, max_context, max_batch, threads;
    double temp, top_p;
    bool chat, ids;
    ga_device device;
    ga_cuda_gemm_impl cuda_gemm;
    ga_cuda_weights cuda_weights;
    ga_fp8_math fp8_math;
    bool deterministic;
    int prefill_chunk;
    ga_cli_rope rope;
    ga_cli_tp tp;
} gen_args;

/* 0 to go on, else the exit code (0 after --help). */
static int parse_args(int argc, char **argv, gen_args *a) {
    *a = (gen_args){.n = 256, .seed = 1, .top_p = 1.0, .max_batch = 32};
    ga_opt opts[] = {
        GA_O_STR("--model", &a->dir, "DIR", "the model folder (required)"),
        GA_O_STR("--prompt", &a->prompt, "TEXT", "the prompt text"),
        GA_O_LIST("--tokens", &a->tokens, 0, INT32_MAX, "token ids", "IDS",
                  "the prompt as token ids, comma-separated"),
        GA_O_STR("--batch-file", &a->batch_file, "FILE",
                 "one JSON string (a prompt) per line; blank lines are skipped"),
        {.name = "--n-tokens",
         .alias = "-n",
         .type = GA_OPT_LONG,
         .dst = &a->n,
         .lo = 1,
         .hi = 1 << 24,
         .meta = "N",
         .help = "generate at most N tokens (default 256)"},
        GA_O_FLOAT("--temp", &a->temp, 0, 100, "T", "temperature (default 0: greedy)"),
        GA_O_LONG("--top-k", &a->top_k, 0, 1 << 24, "K", "sample from the K most likely (0: all)"),
        GA_O_FLOAT("--top-p", &a->top_p, 0, 1, "P", "nucleus mass in (0, 1] (default 1)"),
        GA_O_LONG("--seed", &a->seed, 0, LONG_MAX, "N", "sampling seed (default 1)"),
        GA_O_FLAG("--chat", &a->chat, "wrap the prompt in the Qwen chat template (user turn)"),
        GA_O_FLAG("--ids", &a->ids, "print the generated ids comma-separated, not text"),
        GA_O_DEVICE(&a->device),
        GA_O_CUDA_GEMM(&a->cuda_gemm),
        GA_O_WEIGHTS_DTYPE(&a->cuda_weights),
        GA_O_FP8_MATH(&a->fp8_math),
        GA_O_DETERMINISTIC(&a->deterministic),
        GA_O_PREFILL_CHUNK(&a->prefill_chunk),
        GA_TP_OPTS(&a->tp),
        GA_O_LONG("--max-context", &a->max_context, 1, 1 << 24, "N",
                  "KV cache length per sequence (default: longest prompt + n,\n"
                  "at most the model's usable context)"),
        GA_O_LONG("--max-batch", &a->max_batch, 1, 4096, "N",
                  "prompts decoded together with --batch-file (default 32)"),
        GA_O_LONG("--threads", &a->threads, 1, 1024, "N", "CPU threads (default: all cores)"),
        GA_ROPE_OPTS(&a->rope),
    };
    opts[5].alias = "--temperature";
    ga_cli_spec spec = {
        .cmd = C,
        .usage = "--model DIR (--prompt TEXT | --tokens 3,14,15 | --batch-file FILE) [options]",
        .about =
            "Streams the generated text to stdout (a newline is added only on a terminal) and\n"
            "prints prefill and decode speeds on stderr. Stops at an end-of-sequence token\n"
            "(config eos_token_id, <|im_end|>, <|endoftext|>) or after -n tokens.\n"
            "--temp 0 (the default) is greedy and reproducible; --temp T > 0 samples from the\n"
            "softmax at T restricted to the --top-k most likely tokens (0: all) and then to\n"
            "the smallest set reaching --top-p of their mass; --seed makes draws reproducible.\n"
            "--batch-file FILE prints one JSON object per line in input order,\n"
            "{\"index\": i, \"ids\": [...], \"text\": \"...\"}, generating up to --max-batch\n"
            "prompts at once with batched decoding.\n",
        .opts = opts,
        .n_opts = GA_N_OPTS(opts)};
    int rc = ga_cli_parse(&spec, argc, argv);
    const int tp_rc = ga_cli_tp_check(&spec, &a->tp);
    if (!rc) rc = tp_rc;
    if (rc) goto fail;
    rc = GA_EXIT_USAGE;
    if (a->top_p <= 0) {
        ga_cli_usage(C, "--top-p: must be in (0, 1]");
        goto fail;
    }
    if (!a->dir) {
        ga_cli_usage(C, "--model DIR is required");
        goto fail;
    }
    if (!!a->prompt + !!a->tokens.v + !!a->batch_file != 1) {
        ga_cli_usage(C, "give exactly one of --prompt, --tokens and --batch-file");
        goto fail;
    }
    if (a->chat && a->tokens.v) {
        ga_cli_usage(C, "--chat needs a text prompt, not --tokens");
        goto fail;
    }
    if (a->ids && a->batch_file) {
        ga_cli_usage(C, "--ids does not apply to --batch-file (its output has the ids)");
        goto fail;
    }
    if (ga_cli_rope_check(&spec, &a->rope)) goto fail;
    return 0;
fail:
    free(a->tokens.v);
    a->tokens.v = NULL;
    return ga_cli_parse_exit(rc);
}

/* ------------------------------------------------------------------ prompts */

typedef struct prompt {
    char *text; /* may hold NUL bytes (a \u0000 in the batch file): use len */
    size_t len;
    long lineno; /* in the batch file; 0 for --prompt */
} prompt;

typedef struct gen_run {
    const gen_args *a;
    ga_model *m;
    const ga_config *c;
    ga_tokenizer *tok; /* NULL when neither needed nor present */
    ga_session *s;
    int n_prompts;
    int32_t **ids; /* per prompt */
    int *len;
    int longest;
    long ctx;
} gen_run;

/* Reads one JSON string per line (blank lines skipped) into *out. */
static int read_batch_file(const char *path, prompt **out, int *n_out) {
    ga_jsonl r;
    if (ga_jsonl_open(&r, path))
        return ga_cli_fail(C, "--batch-file: cannot open '%s': %s", path, strerror(errno));
    prompt *v = NULL;
    int n = 0, cap = 0, rc = 0;
    const char *line;
    long len;
    while (!rc && (len = ga_jsonl_next(&r, &line)) >= 0) {
        if (ga_json_blank(line, (size_t)len)) continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            prompt *nv = realloc(v, (size_t)cap * sizeof *v);
            if (!nv) {
                rc = ga_cli_fail(C, "out of memory");
                break;
            }
            v = nv;
        }
        const char *why = NULL;
        prompt *p = &v[n];
        p->lineno = r.lineno;
        if (!(p->text = malloc((size_t)len + 1))) {
            rc = ga_cli_fail(C, "out of memory");
            break;
        }
        long tl = ga_json_parse_string(line, (size_t)len, p->text, &why);
        if (tl < 0) {
            free(p->text);
            rc = ga_cli_fail(C, "--batch-file: %s:%ld: not a JSON string: %s", path, r.lineno, why);
            break;
        }
        p->len = (size_t)tl;
        n++;
    }
    if (ga_jsonl_close(&r) && !rc) rc = ga_cli_fail(C, "--batch-file: %s: read error", path);
    if (!rc && n == 0) rc = ga_cli_fail(C, "--batch-file: '%s' holds no prompts", path);
    if (rc) {
        for (int i = 0; i < n; i++)
            free(v[i].text);
        free(v);
        return rc;
    }
    *out = v;
    *n_out = n;
    return 0;
}

/* Turns a text prompt into ids (chat-wrapped with --chat); where names it in errors. */
static int encode_prompt(const ga_tokenizer *tok, const prompt *p, bool chat, const char *where,
                         int32_t **ids, int *n) {
    ga_err err = {{0}};
    char *wrapped = NULL;
    const char *text = p->text;
    size_t len = p->len;
    if (chat) {
        /* The chat template works on C strings: a NUL would cut the prompt, so refuse it. */
        if (memchr(text, 0, len))
            return ga_cli_fail(C, "%s: --chat cannot carry a prompt holding U+0000", where);
        const char *role = "user";
        if (ga_tok_chat_format(&role, &text, 1, &wrapped, &err))
            return ga_cli_fail(C, "%s: %s", where, err.msg);
        text = wrapped;
        len = strlen(wrapped);
    }
    ga_status st = ga_tok_encode(tok, text, len, ids, n, &err);
    free(wrapped);
    if (st) return ga_cli_fail(C, "%s: %s", where, err.msg);
    if (*n == 0) {
        free(*ids);
        *ids = NULL;
        return ga_cli_fail(C, "%s: the prompt is empty (no tokens)", where);
    }
    return 0;
}

/* Fills r->ids / r->len / r->longest from --prompt, --tokens or the batch file. */
static int get_prompts(gen_run *r) {
    const gen_args *a = r->a;
    prompt *texts = NULL;
    prompt one = {(char *)a->prompt, a->prompt ? strlen(a->prompt) : 0, 0};
    int rc = 0;
    r->n_prompts = 1;
    if (a->batch_file && (rc = read_batch_file(a->batch_file, &texts, &r->n_prompts))) return rc;
    r->ids = calloc((size_t)r->n_prompts, sizeof *r->ids);
    r->len = calloc((size_t)r->n_prompts, sizeof *r->len);
    if (!r->ids || !r->len) rc = ga_cli_fail(C, "out of memory");
    for (int i = 0; !rc && i < r->n_prompts; i++) {
        char where[64] = "--prompt";
        if (texts) snprintf(where, sizeof where, "--batch-file line %ld", texts[i].lineno);
        if (a->tokens.v) {
            r->ids[0] = a->tokens.v; /* owned by r from here */
            r->len[0] = a->tokens.n;
            snprintf(where, sizeof where, "--tokens");
        } else if ((rc = encode_prompt(r->tok, texts ? &texts[i] : &one, a->chat, where, &r->ids[i],
                                       &r->len[i]))) {
            break;
        }
        for (int k = 0; !rc && k < r->len[i]; k++)
            if (r->ids[i][k] >= r->c->vocab_size)
                rc = ga_cli_fail(C, "%s: token id %d is outside the model's vocabulary [0, %d)",
                                 where, r->ids[i][k], r->c->vocab_size);
        if (r->len[i] > r->longest) r->longest = r->len[i];
    }
    if (texts)
        for (int i = 0; i < r->n_prompts; i++)
            free(texts[i].text);
    free(texts);
    return rc;
}

/* ------------------------------------------------------------------ setup */

static int load(gen_run *r) {
    const gen_args *a = r->a;
    ga_err err = {{0}};
    if (ga_model_load(a->dir, &r->m, &err)) return ga_cli_fail_err(C, &err);
    if (ga_cli_rope_apply(C, &a->rope, r->m)) return GA_EXIT_FAIL;
    r->c = ga_model_config(r->m);
    /* The tokenizer: needed for text in or out; otherwise only used for its stop tokens. */
    bool need_tok = !a->tokens.v || !a->ids;
    char *tpath = ga_path_join(a->dir, "tokenizer.json");
    if (!tpath) return ga_cli_fail(C, "out of memory");
    bool have_tok = access(tpath, R_OK) == 0;
    free(tpath);
    if ((need_tok || have_tok) && ga_tok_load_dir(a->dir, &r->tok, &err))
        return ga_cli_fail_err(C, &err);
    return 0;
}

/* The KV length: what the longest prompt plus n needs, unless given. */
static int choose_context(gen_run *r) {
    const gen_args *a = r->a;
    const int maxpos = ga_config_max_context(r->c); /* with the RoPE scaling in force */
    r->ctx = a->max_context;
    if (!r->ctx) r->ctx = (long)r->longest + a->n < maxpos ? (long)r->longest + a->n : maxpos;
    if (r->ctx > maxpos)
        return ga_cli_fail(C, "--max-context %ld exceeds the model's %s %d", r->ctx,
                           ga_cli_context_bound(r->c), maxpos);
    if (r->longest > r->ctx)
        return ga_cli_fail(C, "the prompt has %d tokens, more than the context of %ld tokens%s",
                           r->longest, r->ctx,
                           a->max_context ? " (--max-context)"
                                          : " (max_position_embeddings or the usable context)");
    return 0;
}

static int open_session(gen_run *r, int batch) {
    ga_err err = {{0}};
    int last_pct = -1;
    bool bar = isatty(2) && ga_model_weight_bytes(r->m) >= (64u << 20);
    ga_session_opts so = {.device = r->a->device,
                          .cuda_gemm = r->a->cuda_gemm,
                          .cuda_weights = r->a->cuda_weights,
                          .fp8_math = r->a->fp8_math,
                          .deterministic = r->a->deterministic,
                          .prefill_chunk = r->a->prefill_chunk,
                          .max_context = (int)r->ctx,
                          .max_batch = batch,
                          .n_threads = (int)r->a->threads};
    ga_cli_tp_set(&r->a->tp, &so);
    if (bar) {
        so.progress = progress_bar;
        so.progress_user = &last_pct;
    }
    ga_status st = ga_session_create(r->m, &so, &r->s, &err);
    if (bar) fprintf(stderr, "\r\033[K");
    return st ? ga_cli_fail_err(C, &err) : 0;
}

static void report_speed(const ga_gen_stats *st, const char *stop) {
    double pf = st->prefill_s > 0 ? (double)st->prompt_tokens / st->prefill_s : 0;
    double dc = st->decode_s > 0 ? (double)st->decode_tokens / st->decode_s : 0;
    fprintf(stderr,
            "gattn generate: prefill %lld tokens in %.1f ms (%.1f tokens/s); decode %lld tokens "
            "in %.1f ms (%.1f tokens/s)%s%s\n",
            (long long)st->prompt_tokens, st->prefill_s * 1e3, pf, (long long)st->decode_tokens,
            st->decode_s * 1e3, dc, stop ? "; stop: " : "", stop ? stop : "");
}

/* ------------------------------------------------------------------ one prompt, streamed */

typedef struct stream_out {
    ga_tok_stream *ts; /* NULL with --ids */
    int count;
    ga_err err;
    bool failed;     /* the detokenizer failed: err says why */
    bool write_fail; /* stdout could not be written: generation stopped */
    bool ends_newline;
} stream_out;

static void emit(stream_out *o, const char *txt, size_t len) {
    fwrite(txt, 1, len, stdout);
    if (len) o->ends_newline = txt[len - 1] == '\n';
}

static int on_stream_token(void *user, int index, int32_t t) {
    stream_out *o = user;
    (void)index;
    if (!o->ts) {
        printf(o->count ? ",%d" : "%d", t);
    } else {
        char *txt;
        size_t len;
        if (ga_tok_stream_push(o->ts, t, &txt, &len, &o->err)) {
            o->failed = true;
            return 1;
        }
        emit(o, txt, len);
    }
    o->count++;
    /* A reader that went away (or a full disk) stops the generation now, not at the end. */
    if (fflush(stdout) != 0 || ferror(stdout)) {
        o->write_fail = true;
        return 1;
    }
    return 0;
}

static int run_single(gen_run *r, const ga_gen_opts *go) {
    const gen_args *a = r->a;
    ga_err err = {{0}};
    ga_gen_stats gs;
    stream_out out = {.ts = NULL};
    if (!a->ids && !(out.ts = ga_tok_stream_new(r->tok))) return ga_cli_fail(C, "out of memory");
    ga_gen_stop why = GA_GEN_STOP_LENGTH;
    ga_status st = ga_generate(r->s, r->m, 0, r->ids[0], r->len[0], go, on_stream_token, &out, &gs,
                               &why, &err);
    if (!st && out.ts && !out.failed && !out.write_fail) {
        char *txt;
        size_t len;
        if (!ga_tok_stream_flush(out.ts, &txt, &len, &out.err))
            emit(&out, txt, len);
        else
            out.failed = true;
    }
    ga_tok_stream_free(out.ts);
    if (a->ids || (isatty(1) && !out.ends_newline)) putchar('\n');
    if (out.failed) return ga_cli_fail_err(C, &out.err);
    if (st) return ga_cli_fail_err(C, &err);
    int rc = ga_cli_finish_stdout(C);
    if (!rc) report_speed(&gs, ga_gen_stop_name(why));
    return rc;
}

/* ------------------------------------------------------------------ a batch file */

typedef struct batch_out {
    int32_t **ids; /* per prompt of the chunk, capacity max_new each */
    int *n;
} batch_out;

static int on_batch_token(void *user, int index, int32_t t) {
    batch_out *b = user;
    b->ids[index][b->n[index]++] = t;
    return 0;
}

/* Prints {"index": i, "ids": [...], "text": "..."} for each prompt of a finished chunk; the
 * text is written with its length, so a decoded NUL byte does not cut it. */
static int print_chunk(const ga_tokenizer *tok, int first, int n, int32_t **ids,
                       const int *counts) {
    for (int i = 0; i < n; i++) {
        ga_err err = {{0}};
        char *text = NULL;
        size_t tl;
        if (ga_tok_decode(tok, ids[i], counts[i], &text, &tl, &err))
            return ga_cli_fail_err(C, &err);
        printf("{\"index\":%d,\"ids\":", first + i);
        ga_json_write_ids(stdout, ids[i], counts[i]);
        fputs(",\"text\":", stdout);
        ga_json_write_string(stdout, text, tl);
        fputs("}\n", stdout);
        free(text);
    }
    return fflush(stdout) != 0 || ferror(stdout) ? ga_cli_finish_stdout(C) : 0;
}

static int run_batch(gen_run *r, ga_gen_opts *go, int batch) {
    ga_err err = {{0}};
    ga_gen_stats gs, total = {0};
    int32_t **out_ids = calloc((size_t)batch, sizeof *out_ids);
    int *out_n = calloc((size_t)batch, sizeof *out_n);
    bool ok = out_ids && out_n;
    for (int i = 0; ok && i < batch; i++)
        ok = (out_ids[i] = malloc((size_t)r->a->n * sizeof **out_ids)) != NULL;
    int rc = ok ? 0 : ga_cli_fail(C, "out of memory");
    for (int first = 0; !rc && first < r->n_prompts; first += batch) {
        int nb = r->n_prompts - first < batch ? r->n_prompts - first : batch;
        memset(out_n, 0, (size_t)batch * sizeof *out_n);
        batch_out bo = {out_ids, out_n};
        if (ga_generate_batch(r->s, r->m, (const int32_t *const *)r->ids + first, r->len + first,
                              nb, go, on_batch_token, &bo, &gs, NULL, &err)) {
            rc = ga_cli_fail_err(C, &err);
            break;
        }
        total.prompt_tokens += gs.prompt_tokens;
        total.decode_tokens += gs.decode_tokens;
        total.prefill_s += gs.prefill_s;
        total.decode_s += gs.decode_s;
        rc = print_chunk(r->tok, first, nb, out_ids, out_n);
    }
    for (int i = 0; out_ids && i < batch; i++)
        free(out_ids[i]);
    free(out_ids);
    free(out_n);
    if (!rc) rc = ga_cli_finish_stdout(C);
    if (!rc) report_speed(&total, NULL);
    return rc;
}

/* ------------------------------------------------------------------ the command */

int ga_cmd_generate(int argc, char **argv) {
    gen_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc || !a.dir) return rc;
    gen_run r = {.a = &a};
    if ((rc = load(&r)) || (rc = get_prompts(&r)) || (rc = choose_context(&r))) goto done;
    int batch = r.n_prompts < a.max_batch ? r.n_prompts : (int)a.max_batch;
    if ((rc = open_session(&r, batch))) goto done;
    ga_gen_opts go = {.max_new_tokens = (int)a.n,
                      .sampling = {.temperature = (float)a.temp,
                                   .top_k = (int)a.top_k,
                                   .top_p = (float)a.top_p,
                                   .seed = (uint64_t)a.seed}};
    ga_gen_default_stops(r.c, r.tok, &go);
    rc = a.batch_file ? run_batch(&r, &go, batch) : run_single(&r, &go);
done:
    if (!r.ids) free(a.tokens.v); /* not yet handed to r */
    for (int i = 0; r.ids && i < r.n_prompts; i++)
        free(r.ids[i]);
    free(r.ids);
    free(r.len);
    ga_session_free(r.s);
    ga_tok_free(r.tok);
    ga_model_free(r.m);
    return rc;
}
