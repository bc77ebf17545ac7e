/*
 * Strict JSON for the tokenizer files. cJSON is lenient where leniency changes meaning:
 * it stops reading after the first value (trailing bytes ignored), it keeps a string's text
 * only up to a NUL ("abc\u0000def" binds as "abc"), and it keeps every duplicate key while
 * lookups take the first (Python's json, which transformers reads tokenizer_config.json with,
 * takes the last; Hugging Face's Rust tokenizers refuse a repeated field of a struct and keep
 * the last of a repeated vocabulary entry). So on top of cJSON's parse this refuses, each with
 * an error naming the file and where: anything but whitespace after the value, a \u0000
 * escape or a raw control byte (which JSON forbids) inside a string or between tokens, and a
 * key that appears twice in one object.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

#include "tok/tok_internal.h"

#define FMT_ERR(...) ga_err_set(err, GA_ERR_FORMAT, __VA_ARGS__)

static bool json_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Scans the text of one value cJSON accepted, s[0..n), for what cJSON lets through inside
 * strings. Outside strings cJSON itself has checked the syntax. */
static ga_status check_strings(const char *path, const char *s, size_t n, ga_err *err) {
    bool in = false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!in) {
            /* cJSON skips any byte <= 0x20 between tokens; JSON allows four */
            if (c < 0x20 && !json_space((char)c))
                return FMT_ERR("%s: byte %zu: control byte 0x%02x outside a string", path, i, c);
            in = c == '"';
            continue;
        }
        if (c == '"') {
            in = false;
        } else if (c < 0x20) {
            return FMT_ERR("%s: byte %zu: raw control byte 0x%02x inside a JSON string", path, i,
                           c);
        } else if (c == '\\' && i + 1 < n) {
            i++;
            if (s[i] != 'u' || i + 4 >= n) continue;
            int v = 0;
            for (int k = 1; k <= 4; k++) {
                int h = hexval(s[i + k]);
                v = v * 16 + (h < 0 ? 1 : h); /* a bad digit is cJSON's error, never NUL */
            }
            if (v == 0)
                return FMT_ERR("%s: byte %zu: \\u0000 (NUL) inside a JSON string is refused", path,
                               i - 1);
            i += 4;
        }
    }
    return GA_OK;
}

/* Where a value sits, for messages: "model.vocab", "added_tokens[3]", "the top level". */
static void child_path(char *out, size_t cap, const char *parent, const cJSON *item, int index) {
    if (!parent[0]) {
        if (item->string)
            snprintf(out, cap, "%.60s", item->string);
        else
            snprintf(out, cap, "[%d]", index);
    } else if (item->string) {
        snprintf(out, cap, "%.120s.%.60s", parent, item->string);
    } else {
        snprintf(out, cap, "%.120s[%d]", parent, index);
    }
}

/* Objects with more keys than this are checked through a hash map, smaller ones pairwise. */
#define PAIRWISE_MAX 16

static ga_status check_keys(const char *path, const cJSON *v, const char *where, ga_err *err) {
    if (!cJSON_IsObject(v) && !cJSON_IsArray(v)) return GA_OK;
    if (cJSON_IsObject(v)) {
        int count = cJSON_GetArraySize(v);
        const char *dup = NULL;
        if (count <= PAIRWISE_MAX) {
            for (const cJSON *a = v->child; a && !dup; a = a->next)
                for (const cJSON *b = a->next; b && !dup; b = b->next)
                    if (!strcmp(a->string, b->string)) dup = a->string;
        } else {
            ga_strmap m;
            ga_status st = ga_strmap_init(&m, (uint32_t)count, err);
            if (st) return st;
            for (const cJSON *a = v->child; a && !dup; a = a->next) {
                int32_t prev = ga_strmap_put(&m, a->string, (uint32_t)strlen(a->string), 0);
                if (prev == -2) {
                    ga_strmap_free(&m);
                    return ga_err_set(err, GA_ERR_OOM, "%s: out of memory", path);
                }
                if (prev >= 0) dup = a->string;
            }
            ga_strmap_free(&m);
        }
        if (dup)
            return FMT_ERR("%s: key '%.80s' appears twice in %s (refused: JSON readers disagree "
                           "on which one counts)",
                           path, dup, where[0] ? where : "the top level");
    }
    int i = 0;
    for (const cJSON *c = v->child; c; c = c->next, i++) {
        if (!cJSON_IsObject(c) && !cJSON_IsArray(c)) continue;
        char sub[200];
        child_path(sub, sizeof sub, where, c, i);
        ga_status st = check_keys(path, c, sub, err);
        if (st) return st;
    }
    return GA_OK;
}

ga_status ga_tok_json_parse(const char *path, const char *text, size_t len, cJSON **out,
                            ga_err *err) {
    *out = NULL;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!root) return FMT_ERR("%s: not valid JSON", path);
    size_t used = end ? (size_t)(end - text) : len;
    ga_status st = GA_OK;
    for (size_t i = used; i < len && !st; i++)
        if (!json_space(text[i]))
            st = FMT_ERR("%s: trailing bytes after the JSON value, at byte %zu", path, i);
    if (!st) st = check_strings(path, text, used, err);
    if (!st) st = check_keys(path, root, "", err);
    if (st) {
        cJSON_Delete(root);
        return st;
    }
    *out = root;
    return GA_OK;
}
