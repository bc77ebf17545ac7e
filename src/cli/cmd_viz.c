/*
 * `gattn viz`: attention heatmaps and attention-sink metrics of one prompt.
 *
 * Runs one prefill with an attention capture attached (the backend's own attention path
 * records pooled maps for the selected layers and metrics for every layer), draws the maps
 * as a grid of viridis heatmaps, prints the metrics table, and with --dump writes the raw
 * maps (.npy), the tokens and the metrics for plotting elsewhere.
 *
 * Default layers: 1, 7, 21, 28 (the seed demo's choice for 28-layer Qwen3 models) when the
 * model has at least 28 layers; otherwise min(4, n_layers) evenly spread layers,
 * 1 + round(i * (L - 1) / (k - 1)) for i = 0..k-1 (L=2: 1,2; L=4: 1,2,3,4; L=8: 1,3,6,8).
 *
 * Hybrid models (Qwen3-Next, Qwen3.5/3.6): only the full-attention layers have an attention
 * map. The default picks up to 4 of them evenly spread by the same rule over their list; a
 * linear-attention (Gated DeltaNet) layer named in --layers gets a panel that says "linear
 * attention: no attention map", and every linear layer carries that note in the metrics table,
 * metrics.csv and metrics.json (its metrics are empty: no softmax, no gate).
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "cli_figure.h"
#include "core/path.h"
#include "gattn/tokenizer.h"
#include "viz/viz.h"

#define CMD "viz"
#define DEFAULT_MAX_RES 128 /* blocks per axis in the picture; cells stay >= 2 pixels */
#define MAX_PICTURE_RES 1024
#define MAX_DUMP_TOKENS 4096 /* a dump is T x T floats per layer: 64 MiB at 4096 */
#define LABEL_CAP 64
#define NO_MAP_NOTE "linear attention: no attention map"

/* --color-scale: linear | log | p99 */
static int parse_scale(const char *cmd, const ga_opt *o, const char *v) {
    if (ga_color_scale_parse(v, (ga_color_scale *)o->dst))
        return ga_cli_usage(cmd, "%s: '%s' is not linear, log or p99", o->name, v), -1;
    return 0;
}

typedef struct viz_args {
    const char *model, *prompt, *out, *dump, *font;
    ga_cli_ids tokens, layers;
    int head; /* -1: mean */
    ga_color_scale scale;
    int max_res;
    ga_device device;
    ga_cuda_gemm_impl cuda_gemm;
    ga_cuda_weights cuda_weights;
    ga_cli_rope rope;
} viz_args;

/* 0 to go on, else the exit code (0 after --help). */
static int parse_args(int argc, char **argv, viz_args *a) {
    *a = (viz_args){.head = -1, .max_res = DEFAULT_MAX_RES, .device = GA_DEVICE_AUTO};
    char dump_help[160], res_help[160];
    snprintf(dump_help, sizeof dump_help,
             "also write layer_N.npy (float32 [T,T]), tokens.json, metrics.csv\n"
             "and metrics.json into DIR (T <= %d; an earlier dump there is replaced)",
             MAX_DUMP_TOKENS);
    snprintf(res_help, sizeof res_help,
             "pool maps to at most N x N blocks in the picture (default %d,\nat most %d)",
             DEFAULT_MAX_RES, MAX_PICTURE_RES);
    ga_opt opts[] = {
        GA_O_STR("--model", &a->model, "DIR", "Hugging Face model folder (required)"),
        GA_O_STR("--prompt", &a->prompt, "TEXT", "text to tokenize (needs tokenizer.json in DIR)"),
        GA_O_LIST("--tokens", &a->tokens, 0, INT32_MAX, "token ids", "IDS",
                  "token ids instead of text, e.g. 3,14,15"),
        GA_O_LIST("--layers", &a->layers, 1, INT32_MAX, "layer numbers", "LIST",
                  "1-based layers to draw (default 1,7,21,28, or up to 4\n"
                  "evenly spread layers of a smaller model)"),
        GA_O_INT("--head", &a->head, 0, INT_MAX, "N",
                 "draw query head N (0-based) instead of the mean over heads"),
        GA_O_STR("--out", &a->out, "PATH",
                 "picture to write, .png or .jpg/.jpeg\n"
                 "(default {model}_selected_layer_attention_maps.png)"),
        GA_O_STR("--dump", &a->dump, "DIR", dump_help),
        GA_O_CUSTOM("--color-scale", parse_scale, &a->scale, "S",
                    "linear (default), log, or p99 (linear up to the 99th\n"
                    "percentile, above it the top colour): log and p99 show the\n"
                    "rest of a map that the first key's column dominates"),
        GA_O_STR("--font", &a->font, "PATH", GA_CLI_FONT_HELP),
        GA_O_DEVICE(&a->device),
        GA_O_CUDA_GEMM(&a->cuda_gemm),
        GA_O_WEIGHTS_DTYPE(&a->cuda_weights),
        GA_O_INT("--max-res", &a->max_res, 1, MAX_PICTURE_RES, "N", res_help),
        GA_ROPE_OPTS(&a->rope),
    };
    ga_cli_spec spec = {
        .cmd = CMD,
        .usage = "--model DIR (--prompt TEXT | --tokens 3,14,15) [options]",
        .about = "Draws head-averaged attention maps of selected layers as a grid of heatmaps\n"
                 "(PNG) and prints attention-sink metrics for every layer.\n",
        .opts = opts,
        .n_opts = GA_N_OPTS(opts)};
    int rc = ga_cli_parse(&spec, argc, argv);
    if (!rc && !a->model) rc = ga_cli_usage(CMD, "--model DIR is required");
    if (!rc && !a->prompt == !a->tokens.v)
        rc = ga_cli_usage(CMD, "give exactly one of --prompt TEXT and --tokens LIST");
    if (!rc && a->layers.v) {
        for (int i = 0; i < a->layers.n && !rc; i++)
            for (int j = 0; j < i && !rc; j++)
                if (a->layers.v[i] == a->layers.v[j])
                    rc = ga_cli_usage(CMD, "--layers: layer %d given twice", (int)a->layers.v[i]);
    }
    ga_image_format fmt;
    ga_err ferr;
    struct stat ost;
    if (!rc && a->out && stat(a->out, &ost) == 0 && S_ISDIR(ost.st_mode))
        rc = ga_cli_usage(CMD, "--out: %s is a directory", a->out);
    if (!rc && a->out && ga_image_format_of(a->out, &fmt, &ferr))
        rc = ga_cli_usage(CMD, "--out %s", ferr.msg);
    if (!rc) rc = ga_cli_rope_check(&spec, &a->rope);
    if (rc) {
        free(a->tokens.v);
        free(a->layers.v);
        a->tokens.v = a->layers.v = NULL;
        return ga_cli_parse_exit(rc);
    }
    return 0;
}

/* Fills sel (n_layers flags) from --layers or the default rule; returns the count or -1.
 * linear: NULL, or n_layers flags of the layers that have no attention map (the default skips
 * them). */
static int select_layers(const ga_cli_ids *list, int L, const unsigned char *linear, bool *sel) {
    memset(sel, 0, (size_t)L * sizeof *sel);
    int count = 0;
    if (list->v) {
        for (int i = 0; i < list->n; i++) {
            if (list->v[i] > L) {
                ga_cli_fail(CMD, "--layers: layer %d outside 1..%d (layers are 1-based)",
                            (int)list->v[i], L);
                return -1;
            }
            sel[list->v[i] - 1] = true;
            count++;
        }
        return count;
    }
    if (linear) { /* up to 4 full-attention layers, evenly spread over their list */
        int full[GA_MAX_LAYERS], n = 0;
        for (int l = 0; l < L && n < GA_MAX_LAYERS; l++)
            if (!linear[l]) full[n++] = l;
        int k = n < 4 ? n : 4;
        for (int i = 0; i < k; i++) {
            int at = k == 1 ? 0 : (int)lround((double)i * (n - 1) / (k - 1));
            if (!sel[full[at]]) count++;
            sel[full[at]] = true;
        }
        if (!count) ga_cli_fail(CMD, "the model has no full-attention layer to draw");
        return count ? count : -1;
    }
    if (L >= 28) {
        static const int paper[4] = {1, 7, 21, 28};
        for (int i = 0; i < 4; i++)
            sel[paper[i] - 1] = true;
        return 4;
    }
    int k = L < 4 ? L : 4;
    for (int i = 0; i < k; i++) {
        int layer = k == 1 ? 1 : 1 + (int)lround((double)i * (L - 1) / (k - 1));
        if (!sel[layer - 1]) count++;
        sel[layer - 1] = true;
    }
    return count;
}

/* True for the names a dump writes: layer_N.npy, tokens.json, metrics.csv, metrics.json. */
static bool is_dump_file(const char *name) {
    if (!strcmp(name, "tokens.json") || !strcmp(name, "metrics.csv") ||
        !strcmp(name, "metrics.json"))
        return true;
    int layer, len = 0;
    return sscanf(name, "layer_%d.npy%n", &layer, &len) == 1 && (size_t)len == strlen(name) &&
           isdigit((unsigned char)name[6]);
}

/* Removes an earlier dump's files from dir, so that it holds exactly the new run (a longer
 * earlier run would leave its layer_N.npy of another shape beside the new tokens.json).
 * Other files are kept. */
static int clear_old_dump(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return ga_cli_fail(CMD, "--dump: cannot read %s: %s", dir, strerror(errno));
    int rc = 0;
    struct dirent *e;
    while (!rc && (e = readdir(d))) {
        if (!is_dump_file(e->d_name)) continue;
        char *p = ga_path_join(dir, e->d_name);
        if (!p)
            rc = ga_cli_fail(CMD, "out of memory");
        else if (unlink(p) != 0 && errno != ENOENT)
            rc = ga_cli_fail(CMD, "--dump: cannot remove the earlier %s: %s", p, strerror(errno));
        free(p);
    }
    closedir(d);
    return rc;
}

/* Creates the dump folder (one level) if missing and checks it is a writable folder. */
static int prepare_dump_dir(const char *dir) {
    struct stat st;
    if (stat(dir, &st) != 0) {
        if (mkdir(dir, 0777) != 0)
            return ga_cli_fail(CMD, "--dump: cannot create %s: %s", dir, strerror(errno));
    } else if (!S_ISDIR(st.st_mode)) {
        return ga_cli_fail(CMD, "--dump: %s exists and is not a directory", dir);
    }
    if (access(dir, W_OK | X_OK) != 0)
        return ga_cli_fail(CMD, "--dump: cannot write into %s: %s", dir, strerror(errno));
    return 0;
}

/* The prompt's token ids and one printable label per token (the ids themselves when the
 * model has no tokenizer). Returns 0 or the exit code. */
static int get_tokens(const viz_args *a, const ga_config *cfg, int32_t **ids, int *n,
                      char ***labels) {
    ga_err err = {{0}};
    ga_tokenizer *tok = NULL;
    char *tj = ga_path_join(a->model, "tokenizer.json");
    if (!tj) return ga_cli_fail(CMD, "out of memory");
    bool have_tok = access(tj, F_OK) == 0;
    free(tj);
    if (a->prompt && !have_tok)
        return ga_cli_fail(CMD,
                           "%s has no tokenizer.json, so --prompt cannot be tokenized; give "
                           "token ids with --tokens",
                           a->model);
    if (have_tok && ga_tok_load_dir(a->model, &tok, &err)) {
        if (a->prompt) return ga_cli_fail_err(CMD, &err);
        tok = NULL; /* --tokens still works; the labels fall back to ids */
        fprintf(stderr, "gattn viz: warning: tokenizer not usable for labels: %s\n", err.msg);
    }
    if (a->prompt) {
        if (ga_tok_encode(tok, a->prompt, strlen(a->prompt), ids, n, &err)) {
            ga_tok_free(tok);
            return ga_cli_fail_err(CMD, &err);
        }
    } else {
        *n = a->tokens.n;
        if (!(*ids = malloc((size_t)*n * sizeof **ids))) {
            ga_tok_free(tok);
            return ga_cli_fail(CMD, "out of memory");
        }
        memcpy(*ids, a->tokens.v, (size_t)*n * sizeof **ids);
    }
    int rc = 0;
    if (*n < 1) rc = ga_cli_fail(CMD, "the prompt has no tokens");
    for (int i = 0; !rc && i < *n; i++)
        if ((*ids)[i] >= cfg->vocab_size)
            rc = ga_cli_fail(CMD, "token id %d outside the vocabulary (size %d)", (int)(*ids)[i],
                             cfg->vocab_size);
    *labels = rc ? NULL : calloc((size_t)*n, sizeof **labels);
    if (!rc && !*labels) rc = ga_cli_fail(CMD, "out of memory");
    for (int i = 0; !rc && i < *n; i++) {
        (*labels)[i] = malloc(LABEL_CAP);
        if (!(*labels)[i]) {
            rc = ga_cli_fail(CMD, "out of memory");
            break;
        }
        if (!tok || ga_tok_token_text(tok, (*ids)[i], (*labels)[i], LABEL_CAP) < 0)
            snprintf((*labels)[i], LABEL_CAP, "%d", (int)(*ids)[i]);
    }
    ga_tok_free(tok);
    if (rc) {
        free(*ids);
        *ids = NULL;
    }
    return rc;
}

static void free_labels(char **labels, int n) {
    if (!labels) return;
    for (int i = 0; i < n; i++)
        free(labels[i]);
    free(labels);
}

/* Writes layer_N.npy for the selected layers, tokens.json, metrics.csv and metrics.json. */
static int write_dump(const char *dir, const ga_attn_capture *cap, const bool *sel,
                      const char *const *notes, int L, const int32_t *ids, char *const *labels,
                      int T) {
    ga_err err = {{0}};
    char name[64];
    ga_status st = GA_OK;
    for (int l = 0; !st && l < L; l++) {
        if (!sel[l] || !cap->maps[l]) continue; /* no map: the note in metrics.* says why */
        snprintf(name, sizeof name, "layer_%d.npy", l + 1);
        char *p = ga_path_join(dir, name);
        st = p ? ga_npy_write_f32(p, cap->maps[l], T, T, &err)
               : ga_err_set(&err, GA_ERR_OOM, "out of memory");
        free(p);
    }
    const char *files[3] = {"tokens.json", "metrics.csv", "metrics.json"};
    for (int f = 0; !st && f < 3; f++) {
        char *p = ga_path_join(dir, files[f]);
        if (!p) {
            st = ga_err_set(&err, GA_ERR_OOM, "out of memory");
            break;
        }
        if (f == 0) st = ga_tokens_write_json(p, ids, labels, T, &err);
        if (f == 1) st = ga_metrics_write_csv(p, cap->metrics, notes, L, &err);
        if (f == 2) st = ga_metrics_write_json(p, cap->metrics, notes, L, &err);
        free(p);
    }
    return st ? ga_cli_fail_err(CMD, &err) : 0;
}

/* Draws the selected maps (pooled to pic_res) and writes the PNG. */
static int draw(const viz_args *a, const ga_model *m, const char *name, const ga_attn_capture *cap,
                const bool *sel, int n_sel, char *const *tok_labels, const char *out,
                const char *device_name, const ga_font *font) {
    const ga_config *cfg = ga_model_config(m);
    int L = cfg->n_layers, T = cap->n_tokens;
    int res = T < a->max_res ? T : a->max_res;
    ga_err err = {{0}};
    int rc = 0;
    ga_fig_panel *panels = calloc((size_t)n_sel, sizeof *panels);
    float **pooled = calloc((size_t)n_sel, sizeof *pooled);
    char(*titles)[32] = calloc((size_t)n_sel, sizeof *titles);
    char **labels = calloc((size_t)res, sizeof *labels);
    if (!panels || !pooled || !titles || !labels) {
        rc = ga_cli_fail(CMD, "out of memory");
        goto done;
    }
    int k = 0;
    for (int l = 0; l < L; l++) {
        if (!sel[l]) continue;
        const float *map = cap->maps[l];
        if (map &&
            cap->res != res) { /* a full-resolution capture (for --dump) pooled for the picture */
            pooled[k] = malloc((size_t)res * res * sizeof(float));
            if (!pooled[k]) {
                rc = ga_cli_fail(CMD, "out of memory");
                goto done;
            }
            if (ga_attn_pool(cap->maps[l], T, res, pooled[k], &err)) {
                rc = ga_cli_fail_err(CMD, &err);
                goto done;
            }
            map = pooled[k];
        }
        snprintf(titles[k], sizeof titles[k], "Layer %d", l + 1);
        panels[k] = (ga_fig_panel){titles[k], map, res, map ? NULL : NO_MAP_NOTE};
        k++;
    }
    /* Block b starts at the first position p with p * res / T == b; a pooled block is
     * labelled with that position and its token. */
    for (int b = 0, p = 0; b < res; b++) {
        while ((int64_t)p * res / T < b)
            p++;
        labels[b] = malloc(3 * LABEL_CAP + 16);
        if (!labels[b]) {
            rc = ga_cli_fail(CMD, "out of memory");
            goto done;
        }
        char shown[3 * LABEL_CAP]; /* a marker takes 3 bytes for 1 */
        ga_viz_token_label(tok_labels[p], shown, sizeof shown);
        if (res == T)
            snprintf(labels[b], 3 * LABEL_CAP + 16, "%s", shown);
        else
            snprintf(labels[b], 3 * LABEL_CAP + 16, "%d %s", p, shown);
    }
    char title[256], subtitle[256], scale_note[40] = "";
    if (a->scale != GA_SCALE_LINEAR)
        snprintf(scale_note, sizeof scale_note, ", %s colour scale", ga_color_scale_name(a->scale));
    if (a->head >= 0)
        snprintf(title, sizeof title, "%s: attention of head %d", name, a->head);
    else
        snprintf(title, sizeof title, "%s: attention, mean over %d heads", name, cfg->n_heads);
    if (res == T)
        snprintf(subtitle, sizeof subtitle, "%s attention, %d token%s, %s%s",
                 ga_gate_mode_name(cfg->gate), T, T == 1 ? "" : "s", device_name, scale_note);
    else
        snprintf(subtitle, sizeof subtitle,
                 "%s attention, %d tokens pooled to %d x %d blocks (block mean), %s%s",
                 ga_gate_mode_name(cfg->gate), T, res, res, device_name, scale_note);
    ga_figure fig = {title,
                     subtitle,
                     panels,
                     n_sel,
                     labels,
                     res == T ? "key" : "key (first position of block)",
                     res == T ? "query" : "query (first position of block)",
                     font,
                     a->scale};
    ga_canvas canvas;
    if (ga_figure_render(&fig, &canvas, NULL, &err) || ga_canvas_write(&canvas, out, &err)) {
        ga_canvas_free(&canvas);
        rc = ga_cli_fail_err(CMD, &err);
        goto done;
    }
    ga_canvas_free(&canvas);
done:
    for (int i = 0; pooled && i < n_sel; i++)
        free(pooled[i]);
    free(pooled);
    free(panels);
    free(titles);
    free_labels(labels, labels ? res : 0);
    return rc;
}

int ga_cmd_viz(int argc, char **argv) {
    viz_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc || !a.model) return rc;

    ga_err err = {{0}};
    ga_model *m = NULL;
    ga_session *s = NULL;
    int32_t *ids = NULL;
    char **tok_labels = NULL;
    bool *sel = NULL;
    char *out = NULL, *name = NULL;
    int T = 0;
    ga_attn_capture cap = {0};
    const char **notes = NULL; /* hybrid: n_layers entries, the note of each linear layer */
    ga_font *font = NULL;
    bool font_missing = false;
    rc = 1;
    if (ga_model_load(a.model, &m, &err)) {
        ga_cli_fail_err(CMD, &err);
        goto done;
    }
    if (ga_cli_rope_apply(CMD, &a.rope, m)) goto done;
    const ga_config *cfg = ga_model_config(m);
    int L = cfg->n_layers;
    if (!(name = strdup(ga_model_name(m)))) {
        ga_cli_fail(CMD, "out of memory");
        goto done;
    }
    if (a.head >= cfg->n_heads) {
        ga_cli_fail(CMD, "--head: head %d outside 0..%d (heads are 0-based)", a.head,
                    cfg->n_heads - 1);
        goto done;
    }
    sel = malloc((size_t)L * sizeof *sel);
    if (!sel) {
        ga_cli_fail(CMD, "out of memory");
        goto done;
    }
    /* hybrid: which layers are linear attention (no map), and their note */
    const unsigned char *linear = cfg->hybrid.n_linear_layers ? cfg->hybrid.layer_is_linear : NULL;
    if (linear && !(notes = calloc((size_t)L, sizeof *notes))) {
        ga_cli_fail(CMD, "out of memory");
        goto done;
    }
    for (int l = 0; linear && l < L; l++)
        notes[l] = linear[l] ? NO_MAP_NOTE : NULL;
    int n_sel = select_layers(&a.layers, L, linear, sel);
    if (n_sel < 0) goto done;
    if (a.out) {
        out = strdup(a.out);
    } else {
        size_t n = strlen(name) + 64;
        out = malloc(n);
        if (out) snprintf(out, n, "%s_selected_layer_attention_maps.png", name);
    }
    if (!out) {
        ga_cli_fail(CMD, "out of memory");
        goto done;
    }
    if (ga_cli_check_writable(CMD, "--out", out)) goto done;
    if (ga_cli_font_load(CMD, a.font, &font, &font_missing)) goto done;
    if (get_tokens(&a, cfg, &ids, &T, &tok_labels)) goto done;
    if (a.dump) {
        if (T > MAX_DUMP_TOKENS) {
            ga_cli_fail(CMD,
                        "--dump: %d tokens is more than %d; a dump holds T x T floats per "
                        "layer (drop --dump, or shorten the prompt)",
                        T, MAX_DUMP_TOKENS);
            goto done;
        }
        if (prepare_dump_dir(a.dump)) goto done;
    }

    ga_session_opts so = {.device = a.device,
                          .cuda_gemm = a.cuda_gemm,
                          .cuda_weights = a.cuda_weights,
                          .max_context = T,
                          .max_batch = 1};
    if (ga_session_create(m, &so, &s, &err)) {
        ga_cli_fail_err(CMD, &err);
        goto done;
    }
    cap.layers = sel;
    cap.head = a.head;
    /* A dump needs the unpooled T x T maps; the picture is then pooled on the host. */
    cap.max_res = a.dump ? T : a.max_res;
    if (ga_session_set_capture(s, &cap, &err) ||
        ga_session_forward(s, 0, ids, T, false, NULL, &err)) {
        ga_cli_fail_err(CMD, &err);
        goto done;
    }
    if (!cap.maps || !cap.metrics || cap.n_tokens != T) {
        ga_cli_fail(CMD, "the backend returned no attention capture");
        goto done;
    }
    if (font_missing) ga_cli_font_note(CMD);
    if (draw(&a, m, name, &cap, sel, n_sel, tok_labels, out, ga_session_device_name(s), font))
        goto done;
    if (a.dump &&
        (clear_old_dump(a.dump) || write_dump(a.dump, &cap, sel, notes, L, ids, tok_labels, T)))
        goto done;

    printf("%s (%s attention, %d tokens, %s)\n", name, ga_gate_mode_name(cfg->gate), T,
           ga_session_device_name(s));
    ga_metrics_print(stdout, cap.metrics, notes, L);
    printf("wrote %s\n", out);
    if (a.dump) printf("wrote layer_N.npy, tokens.json, metrics.csv, metrics.json to %s\n", a.dump);
    rc = ga_cli_finish_stdout(CMD);
done:
    ga_font_free(font);
    free(a.tokens.v);
    free(a.layers.v);
    free(name);
    ga_attn_capture_free(&cap);
    ga_session_free(s);
    ga_model_free(m);
    free_labels(tok_labels, T);
    free(ids);
    free(sel);
    free(notes);
    free(out);
    return rc;
}
