/*
 * `gattn tokenize` and `gattn detokenize`: text to token ids and back with a model's
 * tokenizer.json, one text from the command line or many from a JSON-lines file (one JSON
 * string, or one JSON array of ids, per line, so any text, newlines included, fits a line).
 * The JSON lines are read and written here (not with cJSON) because texts may hold U+0000,
 * which C strings cannot carry; the output escaping matches JavaScript's JSON.stringify so
 * the reference tokenizer's output can be compared byte for byte.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "gattn/tokenizer.h"

typedef struct tok_args {
    const char *model, *tokenizer, *file, *text, *tokens;
    bool pieces;
} tok_args;

static void usage_tokenize(FILE *f) {
    fprintf(f,
            "usage: gattn tokenize (--model DIR | --tokenizer FILE) [--pieces] (TEXT | --file F)\n"
            "  --model DIR        model folder with tokenizer.json (+ tokenizer_config.json)\n"
            "  --tokenizer FILE   a tokenizer.json\n"
            "  --pieces           print each token's id and text (with --file: JSON arrays of\n"
            "                     the vocabulary strings) instead of the ids\n"
            "  --file F           JSON lines, one JSON string per line ('-': stdin); prints one\n"
            "                     JSON array of ids per line, in order\n"
            "Prints the ids of TEXT comma-separated (the form --tokens takes). Text must be\n"
            "valid UTF-8. Special tokens written in the text (<|im_start|>) become their ids.\n");
}

static void usage_detokenize(FILE *f) {
    fprintf(f,
            "usage: gattn detokenize (--model DIR | --tokenizer FILE) (--tokens IDS | --file F)\n"
            "  --tokens IDS       comma-separated ids, e.g. 9707,11,1879\n"
            "  --file F           JSON lines, one JSON array of ids per line ('-': stdin); prints\n"
            "                     one JSON string per line\n"
            "Prints the text followed by a newline. Bytes that do not form valid UTF-8 (a\n"
            "sequence cut inside a character) print as U+FFFD.\n");
}

/* Returns -1 on a usage error (printed), 1 for --help, 0 otherwise. */
static int parse_args(const char *cmd, int argc, char **argv, tok_args *a, bool detok) {
    memset(a, 0, sizeof *a);
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        if (!strcmp(o, "--help") || !strcmp(o, "-h")) {
            (detok ? usage_detokenize : usage_tokenize)(stdout);
            return 1;
        } else if (!strcmp(o, "--model")) {
            if (!(a->model = ga_cli_value(cmd, argc, argv, &i))) return -1;
        } else if (!strcmp(o, "--tokenizer")) {
            if (!(a->tokenizer = ga_cli_value(cmd, argc, argv, &i))) return -1;
        } else if (!strcmp(o, "--file")) {
            if (!(a->file = ga_cli_value(cmd, argc, argv, &i))) return -1;
        } else if (detok && !strcmp(o, "--tokens")) {
            if (!(a->tokens = ga_cli_value(cmd, argc, argv, &i))) return -1;
        } else if (!detok && !strcmp(o, "--pieces")) {
            a->pieces = true;
        } else if (!detok && o[0] != '-' && !a->text) {
            a->text = o;
        } else if (!detok && !strcmp(o, "--") && i + 1 < argc && !a->text) {
            a->text = argv[++i];
        } else {
            ga_cli_fail(cmd, "unexpected argument '%s' (gattn %s --help)", o, cmd);
            return -1;
        }
    }
    if (!!a->model + !!a->tokenizer != 1) {
        ga_cli_fail(cmd, "give exactly one of --model DIR or --tokenizer FILE");
        return -1;
    }
    int inputs = detok ? !!a->tokens + !!a->file : !!a->text + !!a->file;
    if (inputs != 1) {
        ga_cli_fail(cmd, detok ? "give exactly one of --tokens IDS or --file F"
                               : "give exactly one of TEXT or --file F");
        return -1;
    }
    return 0;
}

static int load(const char *cmd, const tok_args *a, ga_tokenizer **t) {
    ga_err err = {{0}};
    ga_status st =
        a->model ? ga_tok_load_dir(a->model, t, &err) : ga_tok_load(a->tokenizer, t, &err);
    return st ? ga_cli_fail_err(cmd, &err) : 0;
}

/* ------------------------------------------------------------ JSON strings */

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

/* Parses a line holding one JSON string (whitespace around allowed) into out (same capacity
 * as the line: unescaping never grows). Returns the byte length or -1 with *why set. */
static long parse_json_string(const char *s, size_t n, char *out, const char **why) {
    size_t i = 0;
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r'))
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
        const char *simple = strchr("\"\\/bfnrt", e);
        if (e && simple) {
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
        o += put_utf8(cp, out + o);
    }
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r'))
        i++;
    if (i != n) return *why = "text after the string", -1;
    return o;
}

/* Writes s as a JSON string the way JSON.stringify does: \" \\ \b \f \n \r \t, other
 * control characters as \u00xx, everything else (valid UTF-8 here) as it is. */
static void put_json_string(FILE *f, const char *s, size_t n) {
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

/* ------------------------------------------------------------ tokenize */

static void print_ids(const int32_t *ids, int n, const char *open, const char *close) {
    fputs(open, stdout);
    for (int i = 0; i < n; i++)
        printf(i ? ",%d" : "%d", (int)ids[i]);
    fputs(close, stdout);
}

static int tokenize_file(const char *cmd, const ga_tokenizer *t, const tok_args *a) {
    FILE *f = strcmp(a->file, "-") ? fopen(a->file, "rb") : stdin;
    if (!f) return ga_cli_fail(cmd, "%s: cannot open", a->file);
    char *line = NULL, *text = NULL;
    size_t cap = 0, text_cap = 0;
    ssize_t len;
    int rc = 0;
    long lineno = 0;
    while (!rc && (len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        if (len > 0 && line[len - 1] == '\n') len--;
        if ((size_t)len + 1 > text_cap) {
            free(text);
            text_cap = (size_t)len + 1;
            if (!(text = malloc(text_cap))) {
                rc = ga_cli_fail(cmd, "out of memory");
                break;
            }
        }
        const char *why = NULL;
        long n = parse_json_string(line, (size_t)len, text, &why);
        if (n < 0) {
            rc = ga_cli_fail(cmd, "%s:%ld: %s", a->file, lineno, why);
            break;
        }
        int32_t *ids;
        int nid;
        ga_err err = {{0}};
        if (ga_tok_encode(t, text, (size_t)n, &ids, &nid, &err)) {
            rc = ga_cli_fail(cmd, "%s:%ld: %s", a->file, lineno, err.msg);
            break;
        }
        if (a->pieces) {
            putchar('[');
            for (int i = 0; i < nid; i++) {
                if (i) putchar(',');
                const char *p = ga_tok_piece(t, ids[i]);
                put_json_string(stdout, p, strlen(p));
            }
            puts("]");
        } else {
            print_ids(ids, nid, "[", "]\n");
        }
        free(ids);
    }
    if (!rc && ferror(f)) rc = ga_cli_fail(cmd, "%s: read error", a->file);
    if (f != stdin) fclose(f);
    free(line);
    free(text);
    return rc;
}

int ga_cmd_tokenize(int argc, char **argv) {
    const char *cmd = "tokenize";
    tok_args a;
    int p = parse_args(cmd, argc, argv, &a, false);
    if (p) return p < 0 ? 2 : 0;
    ga_tokenizer *t;
    if (load(cmd, &a, &t)) return 1;
    int rc = 0;
    if (a.file) {
        rc = tokenize_file(cmd, t, &a);
    } else {
        int32_t *ids;
        int n;
        ga_err err = {{0}};
        if (ga_tok_encode(t, a.text, strlen(a.text), &ids, &n, &err)) {
            rc = ga_cli_fail_err(cmd, &err);
        } else {
            if (a.pieces) {
                char label[512];
                for (int i = 0; i < n; i++) {
                    ga_tok_token_text(t, ids[i], label, sizeof label);
                    printf("%d\t%s\n", (int)ids[i], label);
                }
            } else {
                print_ids(ids, n, "", "\n");
            }
            free(ids);
        }
    }
    if (!rc && fflush(stdout)) rc = ga_cli_fail(cmd, "writing the output failed");
    ga_tok_free(t);
    return rc;
}

/* ------------------------------------------------------------ detokenize */

/* One JSON array of ids per line -> malloc'd ids. Returns -1 with *why set. */
static int parse_id_array(const char *line, int32_t **ids, int *n, const char **why) {
    cJSON *arr = cJSON_Parse(line);
    *ids = NULL;
    *n = 0;
    if (!cJSON_IsArray(arr)) {
        cJSON_Delete(arr);
        return *why = "expected a JSON array of token ids", -1;
    }
    int k = cJSON_GetArraySize(arr);
    int32_t *v = malloc(sizeof(int32_t) * (size_t)(k ? k : 1));
    if (!v) {
        cJSON_Delete(arr);
        return *why = "out of memory", -1;
    }
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, arr) {
        double d = cJSON_IsNumber(e) ? e->valuedouble : -1;
        if (!(d >= 0 && d <= INT32_MAX) || d != (double)(int32_t)d) {
            free(v);
            cJSON_Delete(arr);
            return *why = "token ids must be integers in [0, 2^31)", -1;
        }
        v[i++] = (int32_t)d;
    }
    cJSON_Delete(arr);
    *ids = v;
    *n = k;
    return 0;
}

static int detokenize_file(const char *cmd, const ga_tokenizer *t, const char *path) {
    FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!f) return ga_cli_fail(cmd, "%s: cannot open", path);
    char *line = NULL;
    size_t cap = 0;
    long lineno = 0;
    int rc = 0;
    while (!rc && getline(&line, &cap, f) >= 0) {
        lineno++;
        const char *why = NULL;
        int32_t *ids;
        int n;
        if (parse_id_array(line, &ids, &n, &why)) {
            rc = ga_cli_fail(cmd, "%s:%ld: %s", path, lineno, why);
            break;
        }
        char *text;
        size_t len;
        ga_err err = {{0}};
        if (ga_tok_decode(t, ids, n, &text, &len, &err)) {
            rc = ga_cli_fail(cmd, "%s:%ld: %s", path, lineno, err.msg);
        } else {
            put_json_string(stdout, text, len);
            putchar('\n');
            free(text);
        }
        free(ids);
    }
    if (!rc && ferror(f)) rc = ga_cli_fail(cmd, "%s: read error", path);
    if (f != stdin) fclose(f);
    free(line);
    return rc;
}

int ga_cmd_detokenize(int argc, char **argv) {
    const char *cmd = "detokenize";
    tok_args a;
    int p = parse_args(cmd, argc, argv, &a, true);
    if (p) return p < 0 ? 2 : 0;
    int32_t *ids = NULL;
    int n = 0;
    if (a.tokens && ga_cli_tokens(cmd, "--tokens", a.tokens, &ids, &n)) return 2;
    ga_tokenizer *t;
    if (load(cmd, &a, &t)) {
        free(ids);
        return 1;
    }
    int rc = 0;
    if (a.file) {
        rc = detokenize_file(cmd, t, a.file);
    } else {
        char *text;
        size_t len;
        ga_err err = {{0}};
        if (ga_tok_decode(t, ids, n, &text, &len, &err)) {
            rc = ga_cli_fail_err(cmd, &err);
        } else {
            fwrite(text, 1, len, stdout);
            putchar('\n');
            free(text);
        }
    }
    if (!rc && fflush(stdout)) rc = ga_cli_fail(cmd, "writing the output failed");
    free(ids);
    ga_tok_free(t);
    return rc;
}
