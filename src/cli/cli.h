/*
 * The `gattn` command-line program: one file per subcommand (cmd_*.c), each exporting
 * `int ga_cmd_NAME(int argc, char **argv)` (argv[0] is the subcommand name) that returns the
 * process exit code, plus shared argument helpers (cli_common.c). Errors are one line on
 * stderr, "gattn NAME: error: ...", naming the argument or file, and a nonzero exit.
 */
#ifndef GATTN_CLI_H
#define GATTN_CLI_H

#include "gattn/gattn.h"

typedef struct ga_cmd {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} ga_cmd;

int ga_cmd_info(int argc, char **argv);
int ga_cmd_logits(int argc, char **argv);
int ga_cmd_write_model(int argc, char **argv);
int ga_cmd_tokenize(int argc, char **argv);
int ga_cmd_detokenize(int argc, char **argv);
int ga_cmd_viz(int argc, char **argv);
int ga_cmd_generate(int argc, char **argv);
int ga_cmd_bench(int argc, char **argv);

/* Prints "gattn CMD: error: <msg>" to stderr and returns 1 (use: return ga_cli_fail(...)). */
int ga_cli_fail(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Same for a library error. */
int ga_cli_fail_err(const char *cmd, const ga_err *err);

/* Option parsing: returns the value following argv[*i] (advancing *i) or NULL with an error
 * printed when it is missing. */
const char *ga_cli_value(const char *cmd, int argc, char **argv, int *i);
/* Strict integer / float parsing of an option value; 0 on success, -1 (error printed). */
int ga_cli_int(const char *cmd, const char *opt, const char *s, long lo, long hi, long *out);
int ga_cli_float(const char *cmd, const char *opt, const char *s, double lo, double hi,
                 double *out);
/* "3,14,15" -> malloc'd ids; rejects empty items, non-digits, values outside [0, INT32_MAX]. */
int ga_cli_tokens(const char *cmd, const char *opt, const char *s, int32_t **ids, int *n);
/* "cpu" | "cuda" | "auto" */
int ga_cli_device(const char *cmd, const char *s, ga_device *out);

#endif
