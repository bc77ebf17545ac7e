/*
 * JSON lines, read and written in one place for the whole CLI (tokenize --file,
 * detokenize --file, generate --batch-file and the JSON the commands print).
 *
 * A line holds exactly one JSON value, with JSON whitespace around it and nothing else:
 * `"xyz" garbage`, `"p""q"`, `[72,105] garbage` and `[72][105]` are errors. Strings are
 * carried with their length, never as C strings, so a text holding U+0000 (`\u0000`) is kept
 * whole on the way in and on the way out (cJSON's strings stop at the first NUL, which is
 * why it is not used here).
 */
#ifndef GATTN_CLI_JSONL_H
#define GATTN_CLI_JSONL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct ga_jsonl {
    FILE *f;
    char *line; /* getline's buffer */
    size_t cap;
    long lineno; /* of the line last returned, 1-based */
    bool is_stdin;
} ga_jsonl;

/* Opens path for reading ("-": stdin); 0, or -1 with errno set. */
int ga_jsonl_open(ga_jsonl *r, const char *path);
/* The next line without its "\n" in *line (it may hold NUL bytes: use the length); returns
 * the length, or -1 at the end of the input or on a read error (ga_jsonl_close says which). */
long ga_jsonl_next(ga_jsonl *r, const char **line);
/* Closes (not stdin) and frees; returns -1 when a read error happened, else 0. */
int ga_jsonl_close(ga_jsonl *r);

/* True when s[0..n) is only JSON whitespace. */
bool ga_json_blank(const char *s, size_t n);
/* s[0..n) holds exactly one JSON string: its bytes go to out (room for n bytes: unescaping
 * never grows) and the length is returned, or -1 with *why set to the reason. The bytes are
 * what the escapes say, not checked as UTF-8 (the tokenizer does that). */
long ga_json_parse_string(const char *s, size_t n, char *out, const char **why);
/* s[0..n) holds exactly one JSON array of integers in [0, 2^31): malloc'd ids (NULL for
 * an empty array) and their count; 0, or -1 with *why set. */
int ga_json_parse_ids(const char *s, size_t n, int32_t **ids, int *n_ids, const char **why);

/* Writes s[0..n) as a JSON string the way JSON.stringify does: \" \\ \b \f \n \r \t, other
 * control characters (NUL included) as \u00xx, every other byte as it is. */
void ga_json_write_string(FILE *f, const char *s, size_t n);
/* Writes ids as a JSON array, "[1,2,3]". */
void ga_json_write_ids(FILE *f, const int32_t *ids, int n);

#endif
