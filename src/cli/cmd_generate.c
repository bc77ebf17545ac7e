/*
 * gattn generate: text (or ids) from a prompt, streamed to stdout as it is produced, or one
 * JSON line per prompt of a batch file with batched decoding. Speeds go to stderr.
 */
#include <cjson/cJSON.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "gattn/tokenizer.h"
#include "engine/generate.h"

static const char *C = "generate";

static void usage(FILE *f) {
    fprintf(
        f,
        "usage: gattn generate --model DIR (--prompt TEXT | --tokens 3,14,15 | --batch-file FILE)\n"
        "         [-n 256] [--temp 0] [--top-k 0] [--top-p 1] [--seed 1] [--chat] [--ids]\n"
        "         [--device cpu|cuda|auto] [--max-context N] [--max-batch 32] [--threads N]\n"
        "  Streams the generated text to stdout (a newline is added only on a terminal) and\n"
        "  prints prefill and decode speeds on stderr. Stops at an end-of-sequence token\n"
        "  (config eos_token_id, <|im_end|>, <|endoftext|>) or after -n tokens.\n"
        "  --temp 0 (the default) is greedy and reproducible; --temp T > 0 samples from the\n"
        "  softmax at T restricted to the --top-k most likely tokens (0: all) and then to\n"
        "  the smallest set reaching --top-p of their mass; --seed makes draws reproducible.\n"
        "  --chat wraps the prompt in the Qwen chat template (user turn). --ids prints the\n"
        "  generated ids comma-separated on one line instead of text.\n"
        "  --batch-file FILE: one JSON string (a prompt) per line; prints one JSON object per\n"
        "  line in input order, {\"index\": i, \"ids\": [...], \"text\": \"...\"}, generating\n"
        "  up to --max-batch prompts at once with batched decoding.\n"
        "  --max-context: KV cache length per sequence (default: longest prompt + n, at\n"
        "  most the model's max_position_embeddings).\n");
}

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

/* ------------------------------------------------------------------ output callbacks */

typedef struct stream_out {
    ga_tok_stream *ts; /* NULL with --ids */
    int count;
    ga_err err;
    bool failed;
    bool ends_newline;
} stream_out;

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
        fwrite(txt, 1, len, stdout);
        if (len) o->ends_newline = txt[len - 1] == '\n';
    }
    o->count++;
    fflush(stdout);
    return 0;
}

typedef struct batch_out {
    int32_t **ids; /* per prompt of the chunk, capacity max_new each */
    int *n;
} batch_out;

static int on_batch_token(void *user, int index, int32_t t) {
    batch_out *b = user;
    b->ids[index][b->n[index]++] = t;
    return 0;
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

/* ------------------------------------------------------------------ batch file */

/* Reads one JSON string per line (blank lines skipped). */
static int read_batch_file(const char *path, char ***out, int *n_out) {
    FILE *f = fopen(path, "r");
    if (!f) return ga_cli_fail(C, "--batch-file: cannot open '%s'", path);
    char **v = NULL;
    int n = 0, cap = 0, lineno = 0, rc = 0;
    char *line = NULL;
    size_t lcap = 0;
    ssize_t len;
    while ((len = getline(&line, &lcap, f)) >= 0) {
        lineno++;
        bool blank = true;
        for (ssize_t i = 0; i < len; i++)
            if (line[i] != ' ' && line[i] != '\t' && line[i] != '\n' && line[i] != '\r')
                blank = false;
        if (blank) continue;
        if ((ssize_t)strlen(line) != len) {
            rc = ga_cli_fail(C, "--batch-file: %s:%d: NUL byte in line", path, lineno);
            break;
        }
        cJSON *j = cJSON_ParseWithLength(line, (size_t)len);
        if (!j || !cJSON_IsString(j)) {
            cJSON_Delete(j);
            rc = ga_cli_fail(C, "--batch-file: %s:%d: not a JSON string", path, lineno);
            break;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            char **nv = realloc(v, (size_t)cap * sizeof *v);
            if (!nv) {
                cJSON_Delete(j);
                rc = ga_cli_fail(C, "out of memory");
                break;
            }
            v = nv;
        }
        v[n] = strdup(j->valuestring);
        cJSON_Delete(j);
        if (!v[n]) {
            rc = ga_cli_fail(C, "out of memory");
            break;
        }
        n++;
    }
    free(line);
    fclose(f);
    if (!rc && n == 0) rc = ga_cli_fail(C, "--batch-file: '%s' holds no prompts", path);
    if (rc) {
        for (int i = 0; i < n; i++)
            free(v[i]);
        free(v);
        return rc;
    }
    *out = v;
    *n_out = n;
    return 0;
}

/* Prints {"index": i, "ids": [...], "text": "..."} for each prompt of a finished chunk. */
static int print_chunk(const ga_tokenizer *tok, int first, int n, int32_t **ids,
                       const int *counts) {
    for (int i = 0; i < n; i++) {
        ga_err err = {{0}};
        char *text = NULL;
        size_t tl;
        if (ga_tok_decode(tok, ids[i], counts[i], &text, &tl, &err))
            return ga_cli_fail_err(C, &err);
        cJSON *o = cJSON_CreateObject();
        cJSON *arr = cJSON_CreateArray();
        bool ok = o && arr;
        for (int k = 0; ok && k < counts[i]; k++) {
            cJSON *x = cJSON_CreateNumber(ids[i][k]);
            ok = x && cJSON_AddItemToArray(arr, x);
        }
        ok = ok && cJSON_AddNumberToObject(o, "index", first + i) &&
             cJSON_AddItemToObject(o, "ids", arr);
        if (!ok) cJSON_Delete(arr);
        arr = NULL;
        char *s = ok && cJSON_AddStringToObject(o, "text", text) ? cJSON_PrintUnformatted(o) : NULL;
        free(text);
        cJSON_Delete(o);
        if (!s) return ga_cli_fail(C, "out of memory");
        printf("%s\n", s);
        free(s);
    }
    fflush(stdout);
    return 0;
}

/* ------------------------------------------------------------------ the command */

typedef struct gen_args {
    const char *dir, *prompt, *tokens, *batch_file;
    long n, seed, top_k, max_context, max_batch, threads;
    double temp, top_p;
    bool chat, ids;
    ga_device device;
} gen_args;

static int parse_args(int argc, char **argv, gen_args *a) {
    *a = (gen_args){.n = 256, .seed = 1, .top_p = 1.0, .max_batch = 32};
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *v;
        struct {
            const char *flag;
            long *dst, lo, hi;
        } ints[] = {{"-n", &a->n, 1, 1 << 24},
                    {"--seed", &a->seed, 0, LONG_MAX},
                    {"--top-k", &a->top_k, 0, 1 << 24},
                    {"--max-context", &a->max_context, 1, 1 << 24},
                    {"--max-batch", &a->max_batch, 1, 4096},
                    {"--threads", &a->threads, 1, 1024}};
        bool done = false;
        for (size_t k = 0; k < sizeof ints / sizeof ints[0] && !done; k++) {
            if (strcmp(o, ints[k].flag) && !(k == 0 && !strcmp(o, "--n-tokens"))) continue;
            if (!(v = ga_cli_value(C, argc, argv, &i)) ||
                ga_cli_int(C, o, v, ints[k].lo, ints[k].hi, ints[k].dst))
                return 1;
            done = true;
        }
        if (done) continue;
        if (!strcmp(o, "--model")) {
            if (!(a->dir = ga_cli_value(C, argc, argv, &i))) return 1;
        } else if (!strcmp(o, "--prompt")) {
            if (!(a->prompt = ga_cli_value(C, argc, argv, &i))) return 1;
        } else if (!strcmp(o, "--tokens")) {
            if (!(a->tokens = ga_cli_value(C, argc, argv, &i))) return 1;
        } else if (!strcmp(o, "--batch-file")) {
            if (!(a->batch_file = ga_cli_value(C, argc, argv, &i))) return 1;
        } else if (!strcmp(o, "--temp") || !strcmp(o, "--temperature")) {
            if (!(v = ga_cli_value(C, argc, argv, &i)) || ga_cli_float(C, o, v, 0, 100, &a->temp))
                return 1;
        } else if (!strcmp(o, "--top-p")) {
            if (!(v = ga_cli_value(C, argc, argv, &i)) || ga_cli_float(C, o, v, 0, 1, &a->top_p))
                return 1;
            if (a->top_p <= 0) return ga_cli_fail(C, "--top-p: must be in (0, 1]");
        } else if (!strcmp(o, "--device")) {
            if (!(v = ga_cli_value(C, argc, argv, &i)) || ga_cli_device(C, v, &a->device)) return 1;
        } else if (!strcmp(o, "--chat")) {
            a->chat = true;
        } else if (!strcmp(o, "--ids")) {
            a->ids = true;
        } else if (!strcmp(o, "--help") || !strcmp(o, "-h")) {
            usage(stdout);
            return -1;
        } else {
            return ga_cli_fail(C, "unknown argument '%s' (gattn generate --help)", o);
        }
    }
    if (!a->dir) return ga_cli_fail(C, "--model DIR is required");
    int sources = !!a->prompt + !!a->tokens + !!a->batch_file;
    if (sources != 1)
        return ga_cli_fail(C, "give exactly one of --prompt, --tokens and --batch-file");
    if (a->chat && a->tokens) return ga_cli_fail(C, "--chat needs a text prompt, not --tokens");
    if (a->ids && a->batch_file)
        return ga_cli_fail(C, "--ids does not apply to --batch-file (its output has the ids)");
    return 0;
}

/* Turns a text prompt into ids (chat-wrapped with --chat). */
static int encode_prompt(const ga_tokenizer *tok, const char *text, bool chat, int32_t **ids,
                         int *n) {
    ga_err err = {{0}};
    char *wrapped = NULL;
    if (chat) {
        const char *role = "user";
        if (ga_tok_chat_format(&role, &text, 1, &wrapped, &err)) return ga_cli_fail_err(C, &err);
        text = wrapped;
    }
    ga_status st = ga_tok_encode(tok, text, strlen(text), ids, n, &err);
    free(wrapped);
    if (st) return ga_cli_fail_err(C, &err);
    if (*n == 0) {
        free(*ids);
        *ids = NULL;
        return ga_cli_fail(C, "the prompt is empty (no tokens)");
    }
    return 0;
}

int ga_cmd_generate(int argc, char **argv) {
    gen_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc) return rc < 0 ? 0 : rc;

    ga_err err = {{0}};
    ga_model *m = NULL;
    ga_tokenizer *tok = NULL;
    ga_session *s = NULL;
    int n_prompts = 0;
    int32_t **pids = NULL;
    int *plen = NULL;
    char **texts = NULL;
    rc = 1;
    if (ga_model_load(a.dir, &m, &err)) {
        rc = ga_cli_fail_err(C, &err);
        goto done;
    }
    const ga_config *c = ga_model_config(m);
    /* The tokenizer: needed for text in or out; otherwise only used for its stop tokens. */
    bool need_tok = !a.tokens || !a.ids;
    char *tpath = malloc(strlen(a.dir) + 32);
    if (!tpath) goto oom;
    sprintf(tpath, "%s/tokenizer.json", a.dir);
    bool have_tok = access(tpath, R_OK) == 0;
    free(tpath);
    if (need_tok || have_tok) {
        if (ga_tok_load_dir(a.dir, &tok, &err)) {
            rc = ga_cli_fail_err(C, &err);
            goto done;
        }
    }

    /* Prompts */
    if (a.batch_file) {
        if (read_batch_file(a.batch_file, &texts, &n_prompts)) goto done;
    } else {
        n_prompts = 1;
    }
    pids = calloc((size_t)n_prompts, sizeof *pids);
    plen = calloc((size_t)n_prompts, sizeof *plen);
    if (!pids || !plen) goto oom;
    for (int i = 0; i < n_prompts; i++) {
        if (a.tokens) {
            if (ga_cli_tokens(C, "--tokens", a.tokens, &pids[0], &plen[0])) goto done;
        } else if (encode_prompt(tok, texts ? texts[i] : a.prompt, a.chat, &pids[i], &plen[i])) {
            goto done;
        }
        for (int k = 0; k < plen[i]; k++)
            if (pids[i][k] >= c->vocab_size) {
                rc = ga_cli_fail(C, "%s: token id %d is outside the model's vocabulary [0, %d)",
                                 a.tokens ? "--tokens" : "prompt", pids[i][k], c->vocab_size);
                goto done;
            }
    }

    /* Context: what the longest prompt plus n needs, unless given. */
    int longest = 0;
    for (int i = 0; i < n_prompts; i++)
        longest = plen[i] > longest ? plen[i] : longest;
    long ctx = a.max_context;
    if (!ctx) {
        ctx = (long)longest + a.n;
        if (ctx > c->max_position_embeddings) ctx = c->max_position_embeddings;
    }
    if (ctx > c->max_position_embeddings) {
        rc = ga_cli_fail(C, "--max-context %ld exceeds the model's max_position_embeddings %d", ctx,
                         c->max_position_embeddings);
        goto done;
    }
    if (longest > ctx) {
        rc = ga_cli_fail(C, "the prompt has %d tokens, more than the context of %ld tokens%s",
                         longest, ctx,
                         a.max_context ? " (--max-context)" : " (max_position_embeddings)");
        goto done;
    }

    int batch = n_prompts < a.max_batch ? n_prompts : (int)a.max_batch;
    int last_pct = -1;
    bool bar = isatty(2) && ga_model_weight_bytes(m) >= (64u << 20);
    ga_session_opts so = {.device = a.device,
                          .max_context = (int)ctx,
                          .max_batch = batch,
                          .n_threads = (int)a.threads};
    if (bar) {
        so.progress = progress_bar;
        so.progress_user = &last_pct;
    }
    ga_status st = ga_session_create(m, &so, &s, &err);
    if (bar) fprintf(stderr, "\r\033[K");
    if (st) {
        rc = ga_cli_fail_err(C, &err);
        goto done;
    }

    ga_gen_opts go = {.max_new_tokens = (int)a.n,
                      .sampling = {.temperature = (float)a.temp,
                                   .top_k = (int)a.top_k,
                                   .top_p = (float)a.top_p,
                                   .seed = (uint64_t)a.seed}};
    ga_gen_default_stops(c, tok, &go);
    ga_gen_stats gs;

    if (!a.batch_file) {
        stream_out so_out = {.ts = NULL};
        if (!a.ids && !(so_out.ts = ga_tok_stream_new(tok))) goto oom;
        ga_gen_stop why = GA_GEN_STOP_LENGTH;
        st = ga_generate(s, m, 0, pids[0], plen[0], &go, on_stream_token, &so_out, &gs, &why, &err);
        if (!st && so_out.ts) {
            char *txt;
            size_t len;
            if (!ga_tok_stream_flush(so_out.ts, &txt, &len, &so_out.err)) {
                fwrite(txt, 1, len, stdout);
                if (len) so_out.ends_newline = txt[len - 1] == '\n';
            } else {
                so_out.failed = true;
            }
        }
        ga_tok_stream_free(so_out.ts);
        if (a.ids || (isatty(1) && !so_out.ends_newline)) putchar('\n');
        fflush(stdout);
        if (so_out.failed) {
            rc = ga_cli_fail_err(C, &so_out.err);
            goto done;
        }
        if (st) {
            rc = ga_cli_fail_err(C, &err);
            goto done;
        }
        report_speed(&gs, ga_gen_stop_name(why));
        rc = 0;
        goto done;
    }

    /* Batch file: chunks of up to `batch` prompts, printed in input order. */
    ga_gen_stats total = {0};
    int32_t **out_ids = calloc((size_t)batch, sizeof *out_ids);
    int *out_n = calloc((size_t)batch, sizeof *out_n);
    bool ok = out_ids && out_n;
    for (int i = 0; ok && i < batch; i++)
        ok = (out_ids[i] = malloc((size_t)a.n * sizeof **out_ids)) != NULL;
    rc = ok ? 0 : ga_cli_fail(C, "out of memory");
    for (int first = 0; !rc && first < n_prompts; first += batch) {
        int nb = n_prompts - first < batch ? n_prompts - first : batch;
        memset(out_n, 0, (size_t)batch * sizeof *out_n);
        batch_out bo = {out_ids, out_n};
        if (ga_generate_batch(s, m, (const int32_t *const *)pids + first, plen + first, nb, &go,
                              on_batch_token, &bo, &gs, NULL, &err)) {
            rc = ga_cli_fail_err(C, &err);
            break;
        }
        total.prompt_tokens += gs.prompt_tokens;
        total.decode_tokens += gs.decode_tokens;
        total.prefill_s += gs.prefill_s;
        total.decode_s += gs.decode_s;
        rc = print_chunk(tok, first, nb, out_ids, out_n);
    }
    for (int i = 0; out_ids && i < batch; i++)
        free(out_ids[i]);
    free(out_ids);
    free(out_n);
    if (!rc) report_speed(&total, NULL);
    goto done;
oom:
    rc = ga_cli_fail(C, "out of memory");
done:
    if (pids)
        for (int i = 0; i < n_prompts; i++)
            free(pids[i]);
    free(pids);
    free(plen);
    if (texts)
        for (int i = 0; i < n_prompts; i++)
            free(texts[i]);
    free(texts);
    ga_session_free(s);
    ga_tok_free(tok);
    ga_model_free(m);
    return rc;
}
