/*
 * gattn perplexity: the NLL and perplexity of a text under one or more models, per context
 * length, with the mean NLL by position bucket inside the window (where extrapolation past the
 * training length shows). The window recipe and the math are src/engine/perplexity.c; this
 * file reads the inputs, runs every (model, context) and prints the side-by-side table, JSON,
 * CSV and the plot of NLL by position (src/viz/lineplot.c).
 *
 * --batch N: N windows go to the session together (ga_session_forward_multi), their rows
 * sharing each weight GEMM where the backend implements it; the numbers are those of --batch 1
 * (bit for bit on the CPU backend, see perplexity.h).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "cli_figure.h"
#include "core/path.h"
#include "engine/perplexity.h"
#include "gattn/tokenizer.h"

#define C "perplexity"
#define MAX_MODELS 16
#define MAX_INPUT_BYTES (1ull << 32)

typedef struct model_list {
    const char *dir[MAX_MODELS];
    int n;
} model_list;

static int parse_model(const char *cmd, const ga_opt *o, const char *v) {
    model_list *l = o->dst;
    if (l->n == MAX_MODELS)
        return ga_cli_usage(cmd, "%s: at most %d models", o->name, MAX_MODELS), -1;
    l->dir[l->n++] = v;
    return 0;
}

typedef struct ppl_args {
    model_list models;
    const char *file, *tokens_file, *json, *csv, *plot, *font;
    ga_cli_ids contexts;
    int stride, batch, threads;
    long max_tokens;
    ga_device device;
    ga_cuda_gemm_impl cuda_gemm;
    int prefill_chunk;
    ga_cuda_weights cuda_weights;
    ga_cli_rope rope;
    ga_cli_tp tp;
} ppl_args;

/* One model's results: contexts x ga_ppl_result. */
typedef struct model_run {
    char *name;
    char rope[128];
    ga_ppl_result *res;
} model_run;

/* ------------------------------------------------------------------ inputs */

/* Token ids separated by whitespace and/or commas (a comma needs an id on each side: "1,,2"
 * and a leading or trailing comma are errors, as in --tokens); errors name the file and the
 * item. */
static int read_ids(const char *path, int32_t **out, int64_t *n_out) {
    ga_err err = {{0}};
    char *buf;
    size_t len;
    if (ga_read_regular(path, MAX_INPUT_BYTES, &buf, &len, &err)) return ga_cli_fail_err(C, &err);
    int64_t cap = 1024, n = 0;
    int32_t *ids = malloc((size_t)cap * sizeof *ids);
    int rc = ids ? 0 : ga_cli_fail(C, "out of memory");
    bool after_id = false, after_comma = false;
    for (size_t i = 0; i < len && !rc;) {
        char ch = buf[i];
        if (ch == ',') {
            if (!after_id) {
                rc = ga_cli_fail(
                    C, "%s: item %lld is empty (a comma at offset %zu with no id before it)", path,
                    (long long)n + 1, i);
                break;
            }
            after_id = false;
            after_comma = true;
            i++;
            continue;
        }
        if (ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r') {
            i++;
            continue;
        }
        if (ch < '0' || ch > '9') {
            rc = ga_cli_fail(C, "%s: item %lld is not a token id (byte '%c' at offset %zu)", path,
                             (long long)n + 1, ch >= 32 && ch < 127 ? ch : '?', i);
            break;
        }
        int64_t v = 0;
        while (i < len && buf[i] >= '0' && buf[i] <= '9' && v <= INT32_MAX)
            v = v * 10 + (buf[i++] - '0');
        if (v > INT32_MAX || (i < len && buf[i] >= '0' && buf[i] <= '9')) {
            rc =
                ga_cli_fail(C, "%s: item %lld is too large for a token id", path, (long long)n + 1);
            break;
        }
        if (n == cap) {
            int32_t *g = realloc(ids, (size_t)(cap *= 2) * sizeof *ids);
            if (!g) {
                rc = ga_cli_fail(C, "out of memory");
                break;
            }
            ids = g;
        }
        ids[n++] = (int32_t)v;
        after_id = true;
        after_comma = false;
    }
    if (!rc && after_comma)
        rc = ga_cli_fail(C, "%s: a comma after the last id (item %lld is empty)", path,
                         (long long)n + 1);
    free(buf);
    if (rc) {
        free(ids);
        return rc;
    }
    *out = ids;
    *n_out = n;
    return 0;
}

static int tokenize_file(const char *dir, const char *path, int32_t **out, int64_t *n_out) {
    ga_err err = {{0}};
    char *text;
    size_t len;
    ga_tokenizer *tok = NULL;
    if (ga_read_regular(path, MAX_INPUT_BYTES, &text, &len, &err)) return ga_cli_fail_err(C, &err);
    int rc = 0, n = 0;
    if (ga_tok_load_dir(dir, &tok, &err))
        rc = ga_cli_fail_err(C, &err);
    else if (ga_tok_encode(tok, text, len, out, &n, &err))
        rc = ga_cli_fail(C, "%s: %s", path, err.msg); /* the text file, not the tokenizer */
    *n_out = n;
    ga_tok_free(tok);
    free(text);
    return rc;
}

/* ------------------------------------------------------------------ progress */

typedef struct progress {
    const char *what;
    struct timespec t0;
    double last;
} progress;

static double now_s(const struct timespec *t0) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) + (t.tv_nsec - t0->tv_nsec) * 1e-9;
}

static void on_progress(void *user, int64_t scored, int64_t total) {
    progress *p = user;
    const double el = now_s(&p->t0);
    if (scored < total && el - p->last < 0.2) return;
    p->last = el;
    const double rate = el > 0 ? scored / el : 0;
    const double eta = rate > 0 ? (total - scored) / rate : 0;
    char bar[31];
    const int fill = total ? (int)(30 * scored / total) : 30;
    for (int i = 0; i < 30; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[30] = 0;
    fprintf(stderr, "\r%s [%s] %lld/%lld tokens, %.0f tok/s, ETA %.0fs  ", p->what, bar,
            (long long)scored, (long long)total, rate, eta);
    if (scored == total) fputc('\n', stderr);
    fflush(stderr);
}

/* ------------------------------------------------------------------ one model */

static int run_model(const ppl_args *a, const char *dir, const int32_t *shared_ids,
                     int64_t shared_n, model_run *mr) {
    ga_err err = {{0}};
    ga_model *m = NULL;
    ga_session *s = NULL;
    int32_t *own = NULL;
    int64_t n = shared_n;
    const int32_t *ids = shared_ids;
    int rc = 1, maxc = 0;
    if (ga_model_load(dir, &m, &err)) return ga_cli_fail_err(C, &err);
    if ((rc = ga_cli_rope_apply(C, &a->rope, m))) goto done;
    rc = 1;
    if (!(mr->name = strdup(ga_model_name(m)))) {
        rc = ga_cli_fail(C, "out of memory");
        goto done;
    }
    const ga_config *c = ga_model_config(m);
    ga_cli_rope_describe(c, mr->rope, sizeof mr->rope);
    if (a->file) {
        if ((rc = tokenize_file(dir, a->file, &own, &n))) goto done;
        rc = 1;
        ids = own;
    }
    if (a->max_tokens && n > a->max_tokens) n = a->max_tokens;
    const char *src = a->file ? a->file : a->tokens_file;
    if (n < 2) {
        rc = ga_cli_fail(C, "%s: the text has %lld token%s; perplexity needs at least 2", src,
                         (long long)n, n == 1 ? "" : "s");
        goto done;
    }
    for (int64_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= c->vocab_size) {
            rc = ga_cli_fail(C, "%s: token id %d (item %lld) is outside %s's vocabulary [0, %d)",
                             src, (int)ids[i], (long long)i + 1, mr->name, c->vocab_size);
            goto done;
        }
    const int usable = ga_config_max_context(c);
    for (int k = 0; k < a->contexts.n; k++) {
        if (a->contexts.v[k] > usable) {
            rc = ga_cli_fail(C,
                             "--context %d exceeds %s's usable context of %d tokens "
                             "(max_position_embeddings %d, RoPE scaling %s)",
                             (int)a->contexts.v[k], mr->name, usable, c->max_position_embeddings,
                             mr->rope);
            goto done;
        }
        if (a->contexts.v[k] > maxc) maxc = a->contexts.v[k];
    }
    if ((int64_t)maxc > n) maxc = (int)n; /* no window is longer than the text */
    ga_session_opts so = {.device = a->device,
                          .max_context = maxc,
                          .max_batch = a->batch,
                          .n_threads = a->threads,
                          .cuda_gemm = a->cuda_gemm,
                          .prefill_chunk = a->prefill_chunk,
                          .cuda_weights = a->cuda_weights};
    ga_cli_tp_set(&a->tp, &so);
    if (ga_session_create(m, &so, &s, &err)) {
        rc = ga_cli_fail_err(C, &err);
        goto done;
    }
    if (!(mr->res = calloc((size_t)a->contexts.n, sizeof *mr->res))) {
        rc = ga_cli_fail(C, "out of memory");
        goto done;
    }
    for (int k = 0; k < a->contexts.n; k++) {
        int ctx = a->contexts.v[k];
        char what[160];
        snprintf(what, sizeof what, "%s ctx %d", mr->name, ctx);
        progress pr = {.what = what};
        clock_gettime(CLOCK_MONOTONIC, &pr.t0);
        ga_ppl_opts po = {
            .context = ctx > n ? (int)n : ctx, .stride = a->stride, .batch = a->batch};
        if (po.stride > po.context) po.stride = po.context;
        if (isatty(STDERR_FILENO)) {
            po.progress = on_progress;
            po.progress_user = &pr;
        }
        if (ga_perplexity(m, s, ids, n, &po, &mr->res[k], &err)) {
            rc = ga_cli_fail(C, "%s, context %d: %s", mr->name, ctx, err.msg);
            goto done;
        }
    }
    rc = 0;
done:
    free(own);
    ga_session_free(s);
    ga_model_free(m);
    return rc;
}

/* ------------------------------------------------------------------ output */

static void bucket_range(int b, int ctx, int *lo, int *hi) {
    *lo = 1 << b;
    *hi = (1 << (b + 1)) - 1;
    if (*hi > ctx - 1) *hi = ctx - 1;
}

static void print_table(const ppl_args *a, const model_run *mr, int nm) {
    printf("%-10s", "context");
    for (int j = 0; j < nm; j++)
        printf("  %-28.28s", mr[j].name);
    printf("\n%-10s", "");
    for (int j = 0; j < nm; j++)
        printf("  %10s %8s %8s", "tokens", "nll", "ppl");
    putchar('\n');
    for (int k = 0; k < a->contexts.n; k++) {
        printf("%-10d", (int)a->contexts.v[k]);
        for (int j = 0; j < nm; j++) {
            const ga_ppl_result *r = &mr[j].res[k];
            printf("  %10lld %8.4f %8.3f", (long long)r->tokens, r->nll, r->ppl);
        }
        putchar('\n');
    }
    for (int k = 0; k < a->contexts.n; k++) {
        const int ctx = a->contexts.v[k];
        printf("\nmean NLL by position in the window, context %d%s\n", ctx,
               a->stride ? " (sliding)" : "");
        printf("%-14s", "positions");
        for (int j = 0; j < nm; j++)
            printf("  %-20.20s", mr[j].name);
        putchar('\n');
        int nb = 0;
        for (int j = 0; j < nm; j++)
            if (mr[j].res[k].n_buckets > nb) nb = mr[j].res[k].n_buckets;
        for (int b = 0; b < nb; b++) {
            int lo, hi;
            bucket_range(b, mr[0].res[k].context, &lo, &hi);
            char lab[32];
            snprintf(lab, sizeof lab, "%d-%d", lo, hi);
            printf("%-14s", lab);
            for (int j = 0; j < nm; j++) {
                const ga_ppl_result *r = &mr[j].res[k];
                if (b < r->n_buckets && r->bucket_tokens[b])
                    printf("  %20.4f", r->bucket_nll[b]);
                else
                    printf("  %20s", "-");
            }
            putchar('\n');
        }
    }
}

static int write_json(const ppl_args *a, const model_run *mr, int nm) {
    cJSON *root = cJSON_CreateObject(), *models = cJSON_AddArrayToObject(root, "models");
    cJSON_AddNumberToObject(root, "stride", a->stride);
    for (int j = 0; j < nm; j++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToArray(models, o);
        cJSON_AddStringToObject(o, "model", mr[j].name);
        cJSON_AddStringToObject(o, "dir", a->models.dir[j]);
        cJSON_AddStringToObject(o, "rope_scaling", mr[j].rope);
        cJSON *rs = cJSON_AddArrayToObject(o, "results");
        for (int k = 0; k < a->contexts.n; k++) {
            const ga_ppl_result *r = &mr[j].res[k];
            cJSON *e = cJSON_CreateObject();
            cJSON_AddItemToArray(rs, e);
            cJSON_AddNumberToObject(e, "context", a->contexts.v[k]);
            cJSON_AddNumberToObject(e, "tokens", (double)r->tokens);
            cJSON_AddNumberToObject(e, "nll", r->nll);
            cJSON_AddNumberToObject(e, "ppl", r->ppl);
            cJSON *bs = cJSON_AddArrayToObject(e, "buckets");
            for (int b = 0; b < r->n_buckets; b++) {
                int lo, hi;
                bucket_range(b, r->context, &lo, &hi);
                cJSON *be = cJSON_CreateObject();
                cJSON_AddItemToArray(bs, be);
                cJSON_AddNumberToObject(be, "from", lo);
                cJSON_AddNumberToObject(be, "to", hi);
                cJSON_AddNumberToObject(be, "tokens", (double)r->bucket_tokens[b]);
                if (r->bucket_tokens[b])
                    cJSON_AddNumberToObject(be, "nll", r->bucket_nll[b]);
                else
                    cJSON_AddNullToObject(be, "nll");
            }
        }
    }
    char *txt = cJSON_Print(root);
    cJSON_Delete(root);
    if (!txt) return ga_cli_fail(C, "out of memory");
    FILE *f = fopen(a->json, "w");
    int rc = 0;
    if (!f || fputs(txt, f) < 0 || fputc('\n', f) < 0) rc = 1;
    if (f && fclose(f)) rc = 1;
    free(txt);
    return rc ? ga_cli_fail(C, "--json %s: cannot write the file", a->json) : 0;
}

static int write_csv(const ppl_args *a, const model_run *mr, int nm) {
    FILE *f = fopen(a->csv, "w");
    if (!f) return ga_cli_fail(C, "--csv %s: cannot create the file", a->csv);
    fprintf(f, "model,context,stride,positions,tokens,nll,ppl\n");
    for (int j = 0; j < nm; j++)
        for (int k = 0; k < a->contexts.n; k++) {
            const ga_ppl_result *r = &mr[j].res[k];
            const int ctx = a->contexts.v[k];
            fprintf(f, "%s,%d,%d,all,%lld,%.9g,%.9g\n", mr[j].name, ctx, a->stride,
                    (long long)r->tokens, r->nll, r->ppl);
            for (int b = 0; b < r->n_buckets; b++) {
                if (!r->bucket_tokens[b]) continue;
                int lo, hi;
                bucket_range(b, r->context, &lo, &hi);
                fprintf(f, "%s,%d,%d,%d-%d,%lld,%.9g,%.9g\n", mr[j].name, ctx, a->stride, lo, hi,
                        (long long)r->bucket_tokens[b], r->bucket_nll[b], exp(r->bucket_nll[b]));
            }
        }
    if (ferror(f) | fclose(f)) return ga_cli_fail(C, "--csv %s: cannot write the file", a->csv);
    return 0;
}

/* The source's file name without its folders, for the plot's title. */
static const char *base_name(const char *path) {
    const char *slash = strrchr(path, '/');
    return slash && slash[1] ? slash + 1 : path;
}

/* --plot: the mean NLL by position bucket, one line per (model, context): bucket b is at x
 * position b, so the evenly spaced positions make a log2 axis of the window position. Colour
 * per line, marker shape per context. Empty buckets are NaN in the results: no point there. */
static int write_plot(const ppl_args *a, const model_run *mr, int nm, const ga_font *font) {
    const int nc = a->contexts.n, ns = nm * nc;
    int maxc = 2, nx = 1;
    for (int j = 0; j < nm; j++)
        for (int k = 0; k < nc; k++) {
            if (mr[j].res[k].context > maxc) maxc = mr[j].res[k].context;
            if (mr[j].res[k].n_buckets > nx) nx = mr[j].res[k].n_buckets;
        }
    ga_plot_series *series = calloc((size_t)ns, sizeof *series);
    char(*names)[160] = calloc((size_t)ns, sizeof *names);
    char(*xl)[32] = calloc((size_t)nx, sizeof *xl);
    char **xlabels = calloc((size_t)nx, sizeof *xlabels);
    ga_canvas c = {0};
    ga_err err = {{0}};
    int rc = 0;
    if (!series || !names || !xl || !xlabels) {
        rc = ga_cli_fail(C, "out of memory");
        goto done;
    }
    for (int b = 0; b < nx; b++) {
        int lo, hi;
        bucket_range(b, maxc, &lo, &hi);
        if (lo == hi)
            snprintf(xl[b], sizeof xl[b], "%d", lo);
        else
            snprintf(xl[b], sizeof xl[b], "%d-%d", lo, hi);
        xlabels[b] = xl[b];
    }
    for (int j = 0; j < nm; j++)
        for (int k = 0; k < nc; k++) {
            const int i = j * nc + k;
            const ga_ppl_result *r = &mr[j].res[k];
            /* the scaling's type and factor ("yarn x4"), not the rest of its description */
            char rope[sizeof mr[j].rope];
            snprintf(rope, sizeof rope, "%s", mr[j].rope);
            char *over = strstr(rope, " over ");
            if (over) *over = 0;
            if (strcmp(rope, "none"))
                snprintf(names[i], sizeof names[i], "%s, ctx %d (%s)", mr[j].name,
                         (int)a->contexts.v[k], rope);
            else
                snprintf(names[i], sizeof names[i], "%s, ctx %d", mr[j].name,
                         (int)a->contexts.v[k]);
            series[i] = (ga_plot_series){.label = names[i],
                                         .y = r->bucket_nll,
                                         .n = r->n_buckets,
                                         .color = ga_plot_palette(i),
                                         .marker = k};
        }
    char title[300], sub[200];
    snprintf(title, sizeof title, "Mean NLL by position in the window: %s",
             base_name(a->file ? a->file : a->tokens_file));
    if (a->stride)
        snprintf(sub, sizeof sub, "sliding windows, stride %d; each bucket the mean of its tokens",
                 a->stride);
    else
        snprintf(sub, sizeof sub, "windows without overlap; each bucket the mean of its tokens");
    ga_lineplot lp = {.title = title,
                      .subtitle = sub,
                      .x_axis = "position in the window (power-of-two buckets, log2 scale)",
                      .y_axis = "mean NLL (nats)",
                      .x_labels = xlabels,
                      .n_x = nx,
                      .series = series,
                      .n_series = ns,
                      .font = font};
    if (ga_lineplot_render(&lp, &c, NULL, &err) || ga_canvas_write(&c, a->plot, &err))
        rc = ga_cli_fail(C, "--plot: %s", err.msg);
done:
    ga_canvas_free(&c);
    free(series);
    free(names);
    free(xl);
    free(xlabels);
    return rc;
}

/* ------------------------------------------------------------------ command */

int ga_cmd_perplexity(int argc, char **argv) {
    ppl_args a = {.batch = 1};
    ga_opt opts[] = {
        GA_O_CUSTOM("--model", parse_model, &a.models, "DIR",
                    "model folder (required; repeat for several models side by side)"),
        GA_O_STR("--file", &a.file, "TEXT", "UTF-8 text, tokenized with each model's tokenizer"),
        GA_O_STR("--tokens-file", &a.tokens_file, "IDS",
                 "token ids separated by whitespace or commas"),
        GA_O_LIST("--context", &a.contexts, 2, 1 << 24, "context lengths", "C[,C...]",
                  "window lengths (default 2048, or the text's length if shorter)"),
        GA_O_INT("--stride", &a.stride, 1, 1 << 24, "S",
                 "sliding windows every S tokens, scoring their last S (S <= C)"),
        GA_O_LONG("--max-tokens", &a.max_tokens, 2, 1L << 40, "N", "use the first N tokens only"),
        GA_O_INT("--batch", &a.batch, 1, 4096, "N",
                 "windows run together in one forward pass (default 1);\n"
                 "the same numbers, N windows' KV cache"),
        GA_O_DEVICE(&a.device),
        GA_O_CUDA_GEMM(&a.cuda_gemm),
        GA_O_PREFILL_CHUNK(&a.prefill_chunk),
        GA_O_WEIGHTS_DTYPE(&a.cuda_weights),
        GA_TP_OPTS(&a.tp),
        GA_O_INT("--threads", &a.threads, 1, 1024, "N", "CPU threads (default: all cores)"),
        GA_O_STR("--json", &a.json, "FILE", "also write the results as JSON"),
        GA_O_STR("--csv", &a.csv, "FILE", "also write the results as CSV"),
        GA_O_STR("--plot", &a.plot, "PNG",
                 "also draw the mean NLL by position bucket, one line per\n"
                 "model and context (.png, or .jpg/.jpeg)"),
        GA_O_STR("--font", &a.font, "PATH", GA_CLI_FONT_HELP),
        GA_ROPE_OPTS(&a.rope),
    };
    ga_cli_spec spec = {
        .cmd = C,
        .usage = "--model DIR [--model DIR2 ...] (--file TEXT | --tokens-file IDS)\n"
                 "         [--context 2048[,4096,...]] [--stride S] [--max-tokens N] [options]",
        .about =
            "Mean negative log-likelihood (natural log) and perplexity of the text per model and\n"
            "context length, and the mean NLL by position in the window in power-of-two\n"
            "buckets (1-1, 2-3, 4-7, ...). Without --stride, windows of C tokens do not overlap\n"
            "and every token of a window but its first is scored; with --stride S, windows start\n"
            "every S tokens and score their last S tokens (Hugging Face's sliding-window\n"
            "recipe; the first window scores all but its first token). Log-softmax over the\n"
            "full vocabulary from fp32 logits.\n",
        .opts = opts,
        .n_opts = GA_N_OPTS(opts)};
    int rc = ga_cli_parse(&spec, argc, argv);
    const int tp_rc = ga_cli_tp_check(&spec, &a.tp);
    if (!rc) rc = tp_rc;
    if (!rc && !a.models.n) rc = ga_cli_usage(C, "--model DIR is required");
    if (!rc && !a.file == !a.tokens_file)
        rc = ga_cli_usage(C, "give exactly one of --file TEXT and --tokens-file IDS");
    if (!rc && !a.contexts.v) {
        a.contexts.v = malloc(sizeof *a.contexts.v);
        if (!a.contexts.v) return ga_cli_fail(C, "out of memory");
        a.contexts.v[0] = 2048;
        a.contexts.n = 1;
    }
    for (int k = 0; !rc && k < a.contexts.n; k++)
        if (a.stride > a.contexts.v[k])
            rc = ga_cli_usage(C, "--stride %d is longer than --context %d", a.stride,
                              (int)a.contexts.v[k]);
    ga_image_format fmt;
    ga_err ferr;
    if (!rc && a.plot && ga_image_format_of(a.plot, &fmt, &ferr))
        rc = ga_cli_usage(C, "--plot %s", ferr.msg);
    if (!rc && a.font && !a.plot) rc = ga_cli_usage(C, "--font needs --plot");
    if (!rc) rc = ga_cli_rope_check(&spec, &a.rope);
    if (rc) {
        free(a.contexts.v);
        return ga_cli_parse_exit(rc);
    }
    int32_t *ids = NULL;
    int64_t n = 0;
    model_run mr[MAX_MODELS] = {{0}};
    int nm = 0;
    ga_font *font = NULL;
    bool font_missing = false;
    /* a picture that cannot be written fails now, not after the run */
    if (a.plot && ((rc = ga_cli_check_writable(C, "--plot", a.plot)) ||
                   (rc = ga_cli_font_load(C, a.font, &font, &font_missing))))
        goto done;
    if (a.tokens_file && (rc = read_ids(a.tokens_file, &ids, &n))) goto done;
    for (; nm < a.models.n; nm++)
        if ((rc = run_model(&a, a.models.dir[nm], ids, n, &mr[nm]))) {
            nm++;
            goto done;
        }
    /* the files first: a failure to write them leaves stdout empty */
    if (a.json && (rc = write_json(&a, mr, nm))) goto done;
    if (a.csv && (rc = write_csv(&a, mr, nm))) goto done;
    if (a.plot && font_missing) ga_cli_font_note(C);
    if (a.plot && (rc = write_plot(&a, mr, nm, font))) goto done;
    print_table(&a, mr, nm);
    if (a.plot) printf("\nwrote %s\n", a.plot);
    rc = ga_cli_finish_stdout(C);
done:
    for (int j = 0; j < nm; j++) {
        free(mr[j].name);
        free(mr[j].res);
    }
    ga_font_free(font);
    free(ids);
    free(a.contexts.v);
    return rc;
}
