/*
 * `gattn tokenize` and `gattn detokenize`: text to token ids and back with a model's
 * tokenizer.json, one text from the command line or many from a JSON-lines file (one JSON
 * string, or one JSON array of ids, per line, so any text, newlines included, fits a line).
 * The JSON lines are read and written by jsonl.c (texts may hold U+0000, which C strings
 * cannot carry); its output escaping matches JavaScript's JSON.stringify so the reference
 * tokenizer's output can be compared byte for byte.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "gattn/tokenizer.h"
#include "jsonl.h"

typedef struct tok_args {
    const char *model, *tokenizer, *file, *text;
    ga_cli_ids tokens;
    bool pieces;
} tok_args;

/* Returns 0 to go on, else the exit code (0 after --help). */
static int parse_args(const char *cmd, int argc, char **argv, tok_args *a, bool detok) {
    memset(a, 0, sizeof *a);
    ga_opt common[] = {
        GA_O_STR("--model", &a->model, "DIR",
                 "model folder with tokenizer.json (+ tokenizer_config.json)"),
        GA_O_STR("--tokenizer", &a->tokenizer, "FILE", "a tokenizer.json"),
        GA_O_STR("--file", &a->file, "F",
                 detok ? "JSON lines, one JSON array of ids per line ('-': stdin);\n"
                         "prints one JSON string per line"
                       : "JSON lines, one JSON string per line ('-': stdin); prints\n"
                         "one JSON array of ids per line, in order"),
        detok ? (ga_opt)GA_O_LIST("--tokens", &a->tokens, 0, INT32_MAX, "token ids", "IDS",
                                  "comma-separated ids, e.g. 9707,11,1879")
              : (ga_opt)GA_O_FLAG("--pieces", &a->pieces,
                                  "print each token's id and text (with --file: JSON arrays\n"
                                  "of the vocabulary strings) instead of the ids"),
    };
    ga_cli_spec spec = {
        .cmd = cmd,
        .usage = detok ? "(--model DIR | --tokenizer FILE) (--tokens IDS | --file F)"
                       : "(--model DIR | --tokenizer FILE) [--pieces] (TEXT | --file F)",
        .about = detok
                     ? "Prints the text followed by a newline. Bytes that do not form valid UTF-8\n"
                       "(a sequence cut inside a character) print as U+FFFD.\n"
                     : "Prints the ids of TEXT comma-separated (the form --tokens takes). Text\n"
                       "must be valid UTF-8. Special tokens written in the text (<|im_start|>)\n"
                       "become their ids. A TEXT that starts with '-' goes after '--'.\n",
        .opts = common,
        .n_opts = GA_N_OPTS(common),
        .positional = detok ? NULL : &a->text};
    int rc = ga_cli_parse(&spec, argc, argv);
    if (!rc && !!a->model + !!a->tokenizer != 1)
        rc = ga_cli_usage(cmd, "give exactly one of --model DIR or --tokenizer FILE");
    int inputs = detok ? !!a->tokens.v + !!a->file : !!a->text + !!a->file;
    if (!rc && inputs != 1)
        rc = ga_cli_usage(cmd, detok ? "give exactly one of --tokens IDS or --file F"
                                     : "give exactly one of TEXT or --file F");
    if (rc) {
        free(a->tokens.v);
        a->tokens.v = NULL;
        return ga_cli_parse_exit(rc);
    }
    return 0;
}

static int load(const char *cmd, const tok_args *a, ga_tokenizer **t) {
    ga_err err = {{0}};
    ga_status st =
        a->model ? ga_tok_load_dir(a->model, t, &err) : ga_tok_load(a->tokenizer, t, &err);
    return st ? ga_cli_fail_err(cmd, &err) : 0;
}

/* ------------------------------------------------------------ tokenize */

static void print_ids(const int32_t *ids, int n) {
    for (int i = 0; i < n; i++)
        printf(i ? ",%d" : "%d", (int)ids[i]);
    putchar('\n');
}

/* Runs each line of a JSON-lines file through line_fn; errors name the file and line. */
typedef int (*line_fn)(const char *cmd, const ga_tokenizer *t, const tok_args *a, const char *line,
                       size_t len, const char **why, ga_err *err);

static int each_line(const char *cmd, const ga_tokenizer *t, const tok_args *a, line_fn fn) {
    ga_jsonl r;
    if (ga_jsonl_open(&r, a->file))
        return ga_cli_fail(cmd, "%s: cannot open: %s", a->file, strerror(errno));
    const char *line;
    long len;
    int rc = 0;
    while (!rc && (len = ga_jsonl_next(&r, &line)) >= 0) {
        const char *why = NULL;
        ga_err err = {{0}};
        if (fn(cmd, t, a, line, (size_t)len, &why, &err))
            rc = ga_cli_fail(cmd, "%s:%ld: %s", a->file, r.lineno, why ? why : err.msg);
    }
    if (ga_jsonl_close(&r) && !rc) rc = ga_cli_fail(cmd, "%s: read error", a->file);
    return rc;
}

static int tokenize_line(const char *cmd, const ga_tokenizer *t, const tok_args *a,
                         const char *line, size_t len, const char **why, ga_err *err) {
    char *text = malloc(len + 1);
    if (!text) return *why = "out of memory", -1;
    long n = ga_json_parse_string(line, len, text, why);
    int32_t *ids = NULL;
    int nid = 0;
    int rc = n < 0 || ga_tok_encode(t, text, (size_t)n, &ids, &nid, err) ? -1 : 0;
    free(text);
    if (rc) return rc;
    if (a->pieces) {
        putchar('[');
        for (int i = 0; i < nid; i++) {
            if (i) putchar(',');
            const char *p = ga_tok_piece(t, ids[i]);
            ga_json_write_string(stdout, p, strlen(p));
        }
        puts("]");
    } else {
        ga_json_write_ids(stdout, ids, nid);
        putchar('\n');
    }
    free(ids);
    return 0;
}

int ga_cmd_tokenize(int argc, char **argv) {
    const char *cmd = "tokenize";
    tok_args a;
    int rc = parse_args(cmd, argc, argv, &a, false);
    if (rc || (!a.model && !a.tokenizer)) return rc;
    ga_tokenizer *t;
    if (load(cmd, &a, &t)) return GA_EXIT_FAIL;
    if (a.file) {
        rc = each_line(cmd, t, &a, tokenize_line);
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
                print_ids(ids, n);
            }
            free(ids);
        }
    }
    if (!rc) rc = ga_cli_finish_stdout(cmd);
    ga_tok_free(t);
    return rc;
}

/* ------------------------------------------------------------ detokenize */

static int detokenize_line(const char *cmd, const ga_tokenizer *t, const tok_args *a,
                           const char *line, size_t len, const char **why, ga_err *err) {
    int32_t *ids;
    int n;
    if (ga_json_parse_ids(line, len, &ids, &n, why)) return -1;
    char *text;
    size_t tl;
    ga_status st = ga_tok_decode(t, ids, n, &text, &tl, err);
    free(ids);
    if (st) return -1;
    ga_json_write_string(stdout, text, tl);
    putchar('\n');
    free(text);
    return 0;
}

int ga_cmd_detokenize(int argc, char **argv) {
    const char *cmd = "detokenize";
    tok_args a;
    int rc = parse_args(cmd, argc, argv, &a, true);
    if (rc || (!a.model && !a.tokenizer)) return rc;
    ga_tokenizer *t;
    if (load(cmd, &a, &t)) {
        free(a.tokens.v);
        return GA_EXIT_FAIL;
    }
    if (a.file) {
        rc = each_line(cmd, t, &a, detokenize_line);
    } else {
        char *text;
        size_t len;
        ga_err err = {{0}};
        if (ga_tok_decode(t, a.tokens.v, a.tokens.n, &text, &len, &err)) {
            rc = ga_cli_fail_err(cmd, &err);
        } else {
            fwrite(text, 1, len, stdout);
            putchar('\n');
            free(text);
        }
    }
    if (!rc) rc = ga_cli_finish_stdout(cmd);
    free(a.tokens.v);
    ga_tok_free(t);
    return rc;
}
