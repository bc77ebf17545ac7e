/* JSON lines: the line reader, the two line parsers and the string writer (jsonl.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "jsonl.h"

int ga_jsonl_open(ga_jsonl *r, const char *path) {
    memset(r, 0, sizeof *r);
    r->is_stdin = !strcmp(path, "-");
    r->f = r->is_stdin ? stdin : fopen(path, "rb");
    return r->f ? 0 : -1;
}

long ga_jsonl_next(ga_jsonl *r, const char **line) {
    ssize_t len = getline(&r->line, &r->cap, r->f);
    if (len < 0) return -1;
    r->lineno++;
    if (len > 0 && r->line[len - 1] == '\n') len--;
    *line = r->line;
    return (long)len;
}

int ga_jsonl_close(ga_jsonl *r) {
    int rc = r->f && ferror(r->f) ? -1 : 0;
    if (r->f && !r->is_stdin) fclose(r->f);
    free(r->line);
    memset(r, 0, sizeof *r);
    return rc;
}

static bool is_ws(char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

bool ga_json_blank(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!is_ws(s[i])) return false;
    return true;
}

static int hex4(const char *p, unsigned *v) {
    *v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0) return -1;
        *v = *v * 16 + (unsigned)d;
    }
    return 0;
}

static int put_utf8(unsigned cp, char *o) {
    if (cp < 0x80) return o[0] = (char)cp, 1;
    if (cp < 0x800) return o[0] = (char)(0xC0 | cp >> 6), o[1] = (char)(0x80 | (cp & 63)), 2;
    if (cp < 0x10000)
        return o[0] = (char)(0xE0 | cp >> 12), o[1] = (char)(0x80 | (cp >> 6 & 63)),
               o[2] = (char)(0x80 | (cp & 63)), 3;
    return o[0] = (char)(0xF0 | cp >> 18), o[1] = (char)(0x80 | (cp >> 12 & 63)),
           o[2] = (char)(0x80 | (cp >> 6 & 63)), o[3] = (char)(0x80 | (cp & 63)), 4;
}

long ga_json_parse_string(const char *s, size_t n, char *out, const char **why) {
    size_t i = 0;
    while (i < n && is_ws(s[i]))
        i++;
    if (i == n || s[i] != '"') return *why = "expected a JSON string", -1;
    i++;
    long o = 0;
    for (;;) {
        if (i >= n) return *why = "unterminated string", -1;
        unsigned char c = (unsigned char)s[i++];
        if (c == '"') break;
        if (c < 0x20) return *why = "raw control character in string", -1;
        if (c != '\\') {
            out[o++] = (char)c;
            continue;
        }
        if (i >= n) return *why = "unterminated escape", -1;
        char e = s[i++];
        const char *simple = e ? strchr("\"\\/bfnrt", e) : NULL;
        if (simple) {
            out[o++] = "\"\\/\b\f\n\r\t"[simple - "\"\\/bfnrt"];
            continue;
        }
        unsigned cp, lo;
        if (e != 'u' || i + 4 > n || hex4(s + i, &cp)) return *why = "bad escape", -1;
        i += 4;
        if (cp >= 0xDC00 && cp <= 0xDFFF) return *why = "lone low surrogate", -1;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (i + 6 > n || s[i] != '\\' || s[i + 1] != 'u' || hex4(s + i + 2, &lo) ||
                lo < 0xDC00 || lo > 0xDFFF)
                return *why = "lone high surrogate", -1;
            i += 6;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        }
        /* \uXXXX is 6 bytes in, at most 3 out; a surrogate pair 12 in, 4 out */
        o += put_utf8(cp, out + o);
    }
    while (i < n && is_ws(s[i]))
        i++;
    if (i != n) return *why = "text after the JSON string (one value per line)", -1;
    return o;
}

int ga_json_parse_ids(const char *s, size_t n, int32_t **ids, int *n_ids, const char **why) {
    *ids = NULL;
    *n_ids = 0;
    size_t i = 0;
    while (i < n && is_ws(s[i]))
        i++;
    if (i == n || s[i] != '[') return *why = "expected a JSON array of token ids", -1;
    i++;
    size_t cap = 1; /* ids <= commas + 1 */
    for (size_t k = i; k < n; k++)
        cap += s[k] == ',';
    int32_t *v = malloc(cap * sizeof *v);
    if (!v) return *why = "out of memory", -1;
    int k = 0;
    while (i < n && is_ws(s[i]))
        i++;
    if (i < n && s[i] == ']') {
        i++;
    } else {
        for (;;) {
            while (i < n && is_ws(s[i]))
                i++;
            /* a JSON integer without sign, fraction or exponent, no leading zeros */
            size_t start = i;
            long long x = 0;
            while (i < n && s[i] >= '0' && s[i] <= '9' && x <= INT32_MAX)
                x = x * 10 + (s[i++] - '0');
            bool digits = i > start, lead0 = i - start > 1 && s[start] == '0';
            bool more = i < n &&
                        (s[i] == '.' || s[i] == 'e' || s[i] == 'E' || (s[i] >= '0' && s[i] <= '9'));
            if (!digits || lead0 || more || x > INT32_MAX) {
                free(v);
                return *why = i == n    ? "unterminated array"
                              : !digits ? "expected a token id"
                                        : "token ids must be integers in [0, 2^31)",
                       -1;
            }
            v[k++] = (int32_t)x;
            while (i < n && is_ws(s[i]))
                i++;
            if (i < n && s[i] == ',') {
                i++;
                continue;
            }
            if (i < n && s[i] == ']') {
                i++;
                break;
            }
            free(v);
            return *why = i < n ? "expected ',' or ']' in the array" : "unterminated array", -1;
        }
    }
    while (i < n && is_ws(s[i]))
        i++;
    if (i != n) {
        free(v);
        return *why = "text after the JSON array (one value per line)", -1;
    }
    if (k == 0) {
        free(v);
        v = NULL;
    }
    *ids = v;
    *n_ids = k;
    return 0;
}

void ga_json_write_string(FILE *f, const char *s, size_t n) {
    fputc('"', f);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *esc = c == '"'    ? "\\\""
                          : c == '\\' ? "\\\\"
                          : c == '\b' ? "\\b"
                          : c == '\f' ? "\\f"
                          : c == '\n' ? "\\n"
                          : c == '\r' ? "\\r"
                          : c == '\t' ? "\\t"
                                      : NULL;
        if (esc)
            fputs(esc, f);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

void ga_json_write_ids(FILE *f, const int32_t *ids, int n) {
    fputc('[', f);
    for (int i = 0; i < n; i++)
        fprintf(f, i ? ",%d" : "%d", (int)ids[i]);
    fputc(']', f);
}
