/* Strict JSON parsing for the model files (see json.h). */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

/* Copies up to 48 bytes of s[0, n) into buf for a message, '?' for anything unprintable. */
static const char *printable(const char *s, size_t n, char *buf, size_t cap) {
    size_t o = 0;
    for (size_t i = 0; i < n && o + 4 < cap && i < 48; i++)
        buf[o++] = (s[i] >= 0x20 && s[i] < 0x7f && s[i] != '"') ? s[i] : '?';
    if (n > 48 && o + 4 < cap) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o] = 0;
    return buf;
}

/* Lexical pass over text already accepted by cJSON (so strings are well delimited): refuses a
 * \u0000 escape or a raw control byte inside any string, and a control byte between tokens
 * other than JSON's whitespace. */
static ga_status check_strings(const char *t, size_t len, const char *path, const char *what,
                               ga_err *err) {
    bool in = false;
    size_t start = 0;
    char show[64];
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)t[i];
        if (!in) {
            if (ch == '"') {
                in = true;
                start = i + 1;
            } else if (ch < 0x20 && ch != '\t' && ch != '\n' && ch != '\r') {
                /* cJSON skips every byte <= 0x20 between tokens; JSON allows four. */
                return ga_err_set(err, GA_ERR_FORMAT,
                                  "%s: %s%scontrol byte 0x%02x outside a string (offset %zu)", path,
                                  what ? what : "", what ? ": " : "", ch, i);
            }
            continue;
        }
        if (ch == '"') {
            in = false;
        } else if (ch == '\\') {
            if (i + 1 < len && t[i + 1] == 'u' && i + 5 < len && !memcmp(t + i + 2, "0000", 4))
                return ga_err_set(err, GA_ERR_FORMAT,
                                  "%s: %s%s\\u0000 (NUL) inside a JSON string starting "
                                  "\"%s\"; names and values may not contain NUL",
                                  path, what ? what : "", what ? ": " : "",
                                  printable(t + start, i - start, show, sizeof show));
            i++; /* skip the escaped character (a \uXXXX's digits are plain characters) */
        } else if (ch < 0x20) {
            return ga_err_set(err, GA_ERR_FORMAT,
                              "%s: %s%sraw control byte 0x%02x inside a JSON string "
                              "starting \"%s\" (offset %zu)",
                              path, what ? what : "", what ? ": " : "", ch,
                              printable(t + start, i - start, show, sizeof show), i);
        }
    }
    return GA_OK;
}

static int cmp_key(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Where a value sits, for messages: "model.vocab", "added_tokens[3]", "" for the top level. */
static void child_where(char *out, size_t cap, const char *parent, const cJSON *item, int index) {
    char show[64];
    if (item->string) printable(item->string, strlen(item->string), show, sizeof show);
    if (!parent[0]) {
        if (item->string)
            snprintf(out, cap, "%s", show);
        else
            snprintf(out, cap, "[%d]", index);
    } else if (item->string) {
        snprintf(out, cap, "%.120s.%s", parent, show);
    } else {
        snprintf(out, cap, "%.120s[%d]", parent, index);
    }
}

/* Refuses a key that appears twice in any object of the tree, naming the key and where the
 * object sits. Sorting the keys keeps this O(n log n) for a safetensors header of many
 * thousands of tensors or a tokenizer's vocabulary of 151,643 entries. */
static ga_status check_dups(const cJSON *node, const char *where, const char *path,
                            const char *what, ga_err *err) {
    if (!cJSON_IsObject(node) && !cJSON_IsArray(node)) return GA_OK;
    const cJSON *c;
    if (cJSON_IsObject(node)) {
        size_t n = 0;
        cJSON_ArrayForEach(c, node) n++;
        if (n > 1) {
            const char **keys = malloc(n * sizeof *keys);
            if (!keys) return ga_err_set(err, GA_ERR_OOM, "%s: out of memory", path);
            size_t k = 0;
            cJSON_ArrayForEach(c, node) keys[k++] = c->string;
            qsort(keys, n, sizeof *keys, cmp_key);
            const char *dup = NULL;
            for (size_t i = 1; i < n && !dup; i++)
                if (!strcmp(keys[i - 1], keys[i])) dup = keys[i];
            ga_status st = GA_OK;
            if (dup) {
                char show[64];
                printable(dup, strlen(dup), show, sizeof show);
                st = ga_err_set(err, GA_ERR_FORMAT,
                                "%s: %s%skey \"%s\" appears twice %s%s%s (refused: readers "
                                "disagree on which one counts)",
                                path, what ? what : "", what ? ": " : "", show,
                                where[0] ? "in \"" : "at the top level", where,
                                where[0] ? "\"" : "");
            }
            free(keys);
            if (st) return st;
        }
    }
    int i = 0;
    cJSON_ArrayForEach(c, node) {
        if (cJSON_IsObject(c) || cJSON_IsArray(c)) {
            char sub[200];
            child_where(sub, sizeof sub, where, c, i);
            ga_status st = check_dups(c, sub, path, what, err);
            if (st) return st;
        }
        i++;
    }
    return GA_OK;
}

ga_status ga_json_parse_strict(const char *text, size_t len, const char *path, const char *what,
                               cJSON **out, ga_err *err) {
    *out = NULL;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!root)
        return ga_err_set(err, GA_ERR_FORMAT, "%s: %s%snot valid JSON", path, what ? what : "",
                          what ? " is " : "");
    ga_status st = GA_OK;
    size_t used = (size_t)(end - text);
    for (size_t i = used; i < len && !st; i++)
        if (text[i] != ' ' && text[i] != '\t' && text[i] != '\n' && text[i] != '\r')
            st = ga_err_set(err, GA_ERR_FORMAT,
                            "%s: %s%strailing bytes after the JSON value (at offset %zu of "
                            "%zu); only whitespace may follow it",
                            path, what ? what : "", what ? ": " : "", i, len);
    if (!st) st = check_strings(text, used, path, what, err);
    if (!st) st = check_dups(root, "", path, what, err);
    if (st) {
        cJSON_Delete(root);
        return st;
    }
    *out = root;
    return GA_OK;
}
