/* Writers of `gattn bench` results: markdown on stdout, CSV and JSON files (bench_report.h). */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bench_report.h"
#include "cli.h"

void ga_bench_overheads(ga_bench_report *r) {
    for (int i = 0; i < r->n_rows; i++) {
        ga_bench_row *x = &r->rows[i];
        x->overhead_pct = NAN;
        if (!strcmp(x->variant, "baseline")) continue;
        for (int j = 0; j < r->n_rows; j++) {
            const ga_bench_row *b = &r->rows[j];
            if (!strcmp(b->variant, "baseline") && !strcmp(b->test, x->test) &&
                b->batch == x->batch && b->depth == x->depth && b->tokens == x->tokens &&
                b->mean_ms > 0) {
                x->overhead_pct = (x->mean_ms / b->mean_ms - 1.0) * 100.0;
                break;
            }
        }
    }
}

static void shape_line(const ga_bench_report *r, FILE *f) {
    const ga_config *c = &r->shape;
    fprintf(f,
            "model %s: %d layers, hidden %d, %d/%d heads, head_dim %d, intermediate %d, vocab %d, "
            "%s embeddings, weights %s%s\n",
            r->model, c->n_layers, c->hidden_size, c->n_heads, c->n_kv_heads, c->head_dim,
            c->intermediate_size, c->vocab_size, c->tie_word_embeddings ? "tied" : "untied",
            ga_dtype_name(r->dtype), r->fp8_fast ? " (--fp8-math fast)" : "");
    if (c->rope_scaling.type != GA_ROPE_DEFAULT) {
        char buf[160];
        fprintf(f, "RoPE scaling %s, usable context %d\n", ga_cli_rope_describe(c, buf, sizeof buf),
                ga_config_max_context(c));
    }
}

void ga_bench_write_markdown(const ga_bench_report *r, FILE *f) {
    fprintf(f,
            "gattn bench: commit %s, device %s, %d warm-up + %d timed repetitions, prefill "
            "chunk %d\n",
            r->commit, r->device, r->warmup, r->reps, r->prefill_chunk);
    shape_line(r, f);
    fprintf(f, "\n| variant | test | batch | depth | tokens | mean ms | min-max ms | tokens/s "
               "| GB/s | TFLOP/s | vs baseline | device mem GiB |\n");
    fprintf(f, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (int i = 0; i < r->n_rows; i++) {
        const ga_bench_row *x = &r->rows[i];
        char depth[32], ovh[32], mem[32];
        if (!strcmp(x->test, "prefill"))
            snprintf(depth, sizeof depth, "-");
        else if (x->timed_from != x->depth) /* the context the timed tokens ran at */
            snprintf(depth, sizeof depth, "%d..%d", x->timed_from, x->depth_end);
        else
            snprintf(depth, sizeof depth, "%d", x->depth);
        if (isnan(x->overhead_pct))
            snprintf(ovh, sizeof ovh, "-");
        else
            snprintf(ovh, sizeof ovh, "%+.1f%%", x->overhead_pct);
        if (isnan(x->peak_mem_gib))
            snprintf(mem, sizeof mem, "-");
        else
            snprintf(mem, sizeof mem, "%.2f", x->peak_mem_gib);
        fprintf(f, "| %s | %s | %d | %s | %d | %.3f | %.3f-%.3f | %.1f | %.1f | %.2f | %s | %s |\n",
                x->variant, x->test, x->batch, depth, x->tokens, x->mean_ms, x->min_ms, x->max_ms,
                x->tokens_per_s, x->gb_per_s, x->tflop_per_s, ovh, mem);
    }
    for (int i = 0; i < r->n_rows; i++)
        if (strcmp(r->rows[i].test, "prefill") && r->rows[i].timed_from != r->rows[i].depth) {
            fprintf(f, "\ndepth A..B: the cache was filled to the nominal depth (CSV/JSON "
                       "\"depth\"), warm-ups continued from it, and the timed tokens ran from "
                       "context A (\"timed_from\") to B (\"depth_end\").\n");
            break;
        }
    for (int i = 0; i < r->n_skips; i++) {
        const ga_bench_skip *s = &r->skips[i];
        fprintf(f, "%sskipped: %s %s batch %d depth %d tokens %d: %s\n", i ? "" : "\n", s->variant,
                s->test, s->batch, s->depth, s->tokens, s->reason);
    }
}

/* A CSV field that may hold commas or quotes (device names). */
static void csv_str(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static void csv_num(FILE *f, double v, const char *fmt) {
    if (isnan(v)) return; /* empty field */
    fprintf(f, fmt, v);
}

int ga_bench_write_csv(const ga_bench_report *r, const char *path) {
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fprintf(
        f, "commit,device,variant,test,batch,depth,timed_from,depth_end,tokens,reps,mean_ms,min_ms,"
           "max_ms,std_ms,tokens_per_s,gb_per_s,tflop_per_s,overhead_pct,device_mem_gib\n");
    for (int i = 0; i < r->n_rows; i++) {
        const ga_bench_row *x = &r->rows[i];
        csv_str(f, r->commit);
        fputc(',', f);
        csv_str(f, r->device);
        fprintf(f, ",%s,%s,%d,%d,%d,%d,%d,%d,%.6f,%.6f,%.6f,%.6f,%.3f,%.3f,%.4f,", x->variant,
                x->test, x->batch, x->depth, x->timed_from, x->depth_end, x->tokens, x->reps,
                x->mean_ms, x->min_ms, x->max_ms, x->std_ms, x->tokens_per_s, x->gb_per_s,
                x->tflop_per_s);
        csv_num(f, x->overhead_pct, "%.3f");
        fputc(',', f);
        csv_num(f, x->peak_mem_gib, "%.4f");
        fputc('\n', f);
    }
    return fclose(f) ? -1 : 0;
}

static cJSON *num_or_null(double v) {
    return isnan(v) ? cJSON_CreateNull() : cJSON_CreateNumber(v);
}

int ga_bench_write_json(const ga_bench_report *r, const char *path) {
    const ga_config *c = &r->shape;
    cJSON *root = cJSON_CreateObject(), *shape = cJSON_CreateObject();
    cJSON *rows = cJSON_CreateArray(), *skips = cJSON_CreateArray();
    bool ok = root && shape && rows && skips;
    if (ok) {
        cJSON_AddStringToObject(root, "commit", r->commit);
        cJSON_AddStringToObject(root, "device", r->device);
        cJSON_AddStringToObject(root, "model", r->model);
        cJSON_AddStringToObject(root, "weights_dtype", ga_dtype_name(r->dtype));
        cJSON_AddStringToObject(root, "fp8_math", r->fp8_fast ? "fast" : "exact");
        cJSON_AddNumberToObject(root, "warmup", r->warmup);
        cJSON_AddNumberToObject(root, "reps", r->reps);
        cJSON_AddNumberToObject(root, "prefill_chunk", r->prefill_chunk);
        cJSON_AddNumberToObject(shape, "layers", c->n_layers);
        cJSON_AddNumberToObject(shape, "hidden", c->hidden_size);
        cJSON_AddNumberToObject(shape, "heads", c->n_heads);
        cJSON_AddNumberToObject(shape, "kv_heads", c->n_kv_heads);
        cJSON_AddNumberToObject(shape, "head_dim", c->head_dim);
        cJSON_AddNumberToObject(shape, "intermediate", c->intermediate_size);
        cJSON_AddNumberToObject(shape, "vocab", c->vocab_size);
        cJSON_AddBoolToObject(shape, "tied", c->tie_word_embeddings);
        cJSON_AddNumberToObject(shape, "max_position_embeddings", c->max_position_embeddings);
        char buf[160];
        cJSON_AddStringToObject(shape, "rope_scaling", ga_cli_rope_describe(c, buf, sizeof buf));
        cJSON_AddNumberToObject(shape, "usable_context", ga_config_max_context(c));
        cJSON_AddItemToObject(root, "shape", shape);
        shape = NULL;
    }
    for (int i = 0; ok && i < r->n_rows; i++) {
        const ga_bench_row *x = &r->rows[i];
        cJSON *o = cJSON_CreateObject();
        if (!o) {
            ok = false;
            break;
        }
        cJSON_AddStringToObject(o, "variant", x->variant);
        cJSON_AddStringToObject(o, "test", x->test);
        cJSON_AddNumberToObject(o, "batch", x->batch);
        cJSON_AddNumberToObject(o, "depth", x->depth);
        cJSON_AddNumberToObject(o, "timed_from", x->timed_from);
        cJSON_AddNumberToObject(o, "depth_end", x->depth_end);
        cJSON_AddNumberToObject(o, "tokens", x->tokens);
        cJSON_AddNumberToObject(o, "reps", x->reps);
        cJSON_AddNumberToObject(o, "mean_ms", x->mean_ms);
        cJSON_AddNumberToObject(o, "min_ms", x->min_ms);
        cJSON_AddNumberToObject(o, "max_ms", x->max_ms);
        cJSON_AddNumberToObject(o, "std_ms", x->std_ms);
        cJSON_AddNumberToObject(o, "tokens_per_s", x->tokens_per_s);
        cJSON_AddNumberToObject(o, "gb_per_s", x->gb_per_s);
        cJSON_AddNumberToObject(o, "tflop_per_s", x->tflop_per_s);
        cJSON_AddItemToObject(o, "overhead_pct", num_or_null(x->overhead_pct));
        cJSON_AddItemToObject(o, "device_mem_gib", num_or_null(x->peak_mem_gib));
        cJSON_AddItemToArray(rows, o);
    }
    for (int i = 0; ok && i < r->n_skips; i++) {
        const ga_bench_skip *s = &r->skips[i];
        cJSON *o = cJSON_CreateObject();
        if (!o) {
            ok = false;
            break;
        }
        cJSON_AddStringToObject(o, "variant", s->variant);
        cJSON_AddStringToObject(o, "test", s->test);
        cJSON_AddNumberToObject(o, "batch", s->batch);
        cJSON_AddNumberToObject(o, "depth", s->depth);
        cJSON_AddNumberToObject(o, "tokens", s->tokens);
        cJSON_AddStringToObject(o, "reason", s->reason);
        cJSON_AddItemToArray(skips, o);
    }
    if (ok) {
        cJSON_AddItemToObject(root, "rows", rows);
        cJSON_AddItemToObject(root, "skipped", skips);
        rows = skips = NULL;
    }
    char *text = ok ? cJSON_Print(root) : NULL;
    cJSON_Delete(root);
    cJSON_Delete(shape);
    cJSON_Delete(rows);
    cJSON_Delete(skips);
    if (!text) return -1;
    FILE *f = fopen(path, "w");
    int rc = f ? 0 : -1;
    if (f) {
        if (fputs(text, f) < 0 || fputc('\n', f) < 0) rc = -1;
        if (fclose(f)) rc = -1;
    }
    free(text);
    return rc;
}
