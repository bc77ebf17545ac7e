/* Shared helpers of the CLI: error lines and strict parsing of option values. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int ga_cli_fail(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "gattn %s: error: ", cmd);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

int ga_cli_fail_err(const char *cmd, const ga_err *err) {
    return ga_cli_fail(cmd, "%s", err->msg);
}

const char *ga_cli_value(const char *cmd, int argc, char **argv, int *i) {
    if (*i + 1 >= argc) {
        ga_cli_fail(cmd, "option %s needs a value", argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

int ga_cli_int(const char *cmd, const char *opt, const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno == ERANGE || v < lo || v > hi) {
        ga_cli_fail(cmd, "%s: '%s' is not an integer in [%ld, %ld]", opt, s, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

int ga_cli_float(const char *cmd, const char *opt, const char *s, double lo, double hi,
                 double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (!*s || *end || errno == ERANGE || !isfinite(v) || v < lo || v > hi) {
        ga_cli_fail(cmd, "%s: '%s' is not a number in [%g, %g]", opt, s, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

int ga_cli_tokens(const char *cmd, const char *opt, const char *s, int32_t **ids, int *n) {
    *ids = NULL;
    *n = 0;
    size_t cap = 1;
    for (const char *p = s; *p; p++)
        cap += *p == ',';
    int32_t *v = malloc(cap * sizeof *v);
    if (!v) {
        ga_cli_fail(cmd, "out of memory");
        return -1;
    }
    int k = 0;
    const char *p = s;
    for (;;) {
        while (*p == ' ')
            p++;
        const char *start = p;
        long long x = 0;
        while (*p >= '0' && *p <= '9') {
            x = x * 10 + (*p - '0');
            if (x > INT32_MAX) break;
            p++;
        }
        while (*p == ' ')
            p++;
        if (p == start || x > INT32_MAX || (*p && *p != ',')) {
            free(v);
            ga_cli_fail(cmd, "%s: '%s' is not a comma-separated list of token ids (item %d)", opt,
                        s, k + 1);
            return -1;
        }
        v[k++] = (int32_t)x;
        if (!*p) break;
        p++;
    }
    *ids = v;
    *n = k;
    return 0;
}

int ga_cli_device(const char *cmd, const char *s, ga_device *out) {
    if (!strcmp(s, "cpu"))
        *out = GA_DEVICE_CPU;
    else if (!strcmp(s, "cuda") || !strcmp(s, "gpu"))
        *out = GA_DEVICE_CUDA;
    else if (!strcmp(s, "auto"))
        *out = GA_DEVICE_AUTO;
    else {
        ga_cli_fail(cmd, "--device: '%s' is not cpu, cuda or auto", s);
        return -1;
    }
    return 0;
}
