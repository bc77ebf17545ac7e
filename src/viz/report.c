/*
 * Reports of a capture: the attention-sink metrics as a console table, metrics.csv and
 * metrics.json (one object per layer, layers 1-based, gate fields empty / null where the
 * model has no gate; a layer's note, e.g. a hybrid model's "linear attention: no attention
 * map", as a last column / a "note" field), and tokens.json with the prompt's ids and token
 * strings.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "viz.h"

static void print_cell(FILE *f, int width, double v) {
    if (isnan(v))
        fprintf(f, "  %*s", width, "-");
    else
        fprintf(f, "  %*.4f", width, v);
}

void ga_metrics_print(FILE *f, const ga_layer_metrics *m, const char *const *notes, int n_layers) {
    fprintf(f, "%5s  %17s  %9s  %14s\n", "layer", "first_token_share", "gate_mean",
            "gate_below_0_1");
    for (int l = 0; l < n_layers; l++) {
        fprintf(f, "%5d", l + 1);
        print_cell(f, 17, m[l].first_token_share);
        print_cell(f, 9, m[l].gate_mean);
        print_cell(f, 14, m[l].gate_below_0_1);
        if (notes && notes[l]) fprintf(f, "  %s", notes[l]);
        fputc('\n', f);
    }
}

static ga_status close_checked(FILE *f, const char *path, int ok, ga_err *err) {
    if (fclose(f) != 0) ok = 0;
    if (!ok) return ga_err_set(err, GA_ERR_IO, "cannot write %s: %s", path, strerror(errno));
    return GA_OK;
}

static void csv_cell(FILE *f, double v) {
    if (isnan(v))
        fputc(',', f);
    else
        fprintf(f, ",%.9g", v);
}

ga_status ga_metrics_write_csv(const char *path, const ga_layer_metrics *m,
                               const char *const *notes, int n_layers, ga_err *err) {
    FILE *f = fopen(path, "w");
    if (!f) return ga_err_set(err, GA_ERR_IO, "cannot write %s: %s", path, strerror(errno));
    fprintf(f, "layer,first_token_share,gate_mean,gate_below_0_1%s\n", notes ? ",note" : "");
    for (int l = 0; l < n_layers; l++) {
        fprintf(f, "%d", l + 1);
        csv_cell(f, m[l].first_token_share);
        csv_cell(f, m[l].gate_mean);
        csv_cell(f, m[l].gate_below_0_1);
        /* notes are the CLI's fixed phrases: no comma or quote to escape */
        if (notes) fprintf(f, ",%s", notes[l] ? notes[l] : "");
        fputc('\n', f);
    }
    return close_checked(f, path, !ferror(f), err);
}

static cJSON *json_number_or_null(double v) {
    return isnan(v) || isinf(v) ? cJSON_CreateNull() : cJSON_CreateNumber(v);
}

/* Prints a cJSON tree to path (with a trailing newline) and frees it. */
static ga_status write_json(const char *path, cJSON *root, ga_err *err) {
    char *text = root ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (!text) return ga_err_set(err, GA_ERR_OOM, "out of memory writing %s", path);
    FILE *f = fopen(path, "w");
    if (!f) {
        cJSON_free(text);
        return ga_err_set(err, GA_ERR_IO, "cannot write %s: %s", path, strerror(errno));
    }
    int ok = fputs(text, f) >= 0 && fputc('\n', f) != EOF;
    cJSON_free(text);
    return close_checked(f, path, ok, err);
}

ga_status ga_metrics_write_json(const char *path, const ga_layer_metrics *m,
                                const char *const *notes, int n_layers, ga_err *err) {
    /* One object a line: compact, and still easy to read and to diff. */
    FILE *f = fopen(path, "w");
    if (!f) return ga_err_set(err, GA_ERR_IO, "cannot write %s: %s", path, strerror(errno));
    int ok = fputs("[", f) >= 0;
    for (int l = 0; ok && l < n_layers; l++) {
        cJSON *o = cJSON_CreateObject();
        char *line = NULL;
        if (o) {
            cJSON_AddNumberToObject(o, "layer", l + 1);
            cJSON_AddItemToObject(o, "first_token_share",
                                  json_number_or_null(m[l].first_token_share));
            cJSON_AddItemToObject(o, "gate_mean", json_number_or_null(m[l].gate_mean));
            cJSON_AddItemToObject(o, "gate_below_0_1", json_number_or_null(m[l].gate_below_0_1));
            if (notes && notes[l]) cJSON_AddStringToObject(o, "note", notes[l]);
            line = cJSON_PrintUnformatted(o);
        }
        cJSON_Delete(o);
        if (!line) {
            fclose(f);
            return ga_err_set(err, GA_ERR_OOM, "out of memory writing %s", path);
        }
        ok = fprintf(f, "%s\n  %s", l ? "," : "", line) > 0;
        cJSON_free(line);
    }
    if (ok) ok = fputs("\n]\n", f) >= 0;
    return close_checked(f, path, ok, err);
}

ga_status ga_tokens_write_json(const char *path, const int32_t *ids, char *const *tokens, int n,
                               ga_err *err) {
    cJSON *root = cJSON_CreateObject();
    cJSON *jid = cJSON_CreateArray(), *jtok = cJSON_CreateArray();
    if (!root || !jid || !jtok) {
        cJSON_Delete(root);
        cJSON_Delete(jid);
        cJSON_Delete(jtok);
        return ga_err_set(err, GA_ERR_OOM, "out of memory writing %s", path);
    }
    cJSON_AddItemToObject(root, "ids", jid);
    cJSON_AddItemToObject(root, "tokens", jtok);
    for (int i = 0; i < n; i++) {
        cJSON_AddItemToArray(jid, cJSON_CreateNumber(ids[i]));
        cJSON_AddItemToArray(jtok, cJSON_CreateString(tokens[i] ? tokens[i] : ""));
    }
    return write_json(path, root, err);
}
