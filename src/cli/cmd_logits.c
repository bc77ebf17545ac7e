/* gattn logits: next-token logits of a token sequence, one JSON array per position. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void usage(FILE *f) {
    fprintf(f, "usage: gattn logits --model DIR --tokens 3,14,15 [--all] [--device cpu|cuda|auto]\n"
               "                    [--threads N]\n"
               "  Prints one line per position (the last by default, every position with --all),\n"
               "  each a JSON array of vocab_size floats (fp32, shortest round-trip form).\n");
}

int ga_cmd_logits(int argc, char **argv) {
    const char *dir = NULL, *toks = NULL;
    bool all = false;
    ga_session_opts so = {0};
    for (int i = 1; i < argc; i++) {
        const char *v;
        long x;
        if (!strcmp(argv[i], "--model")) {
            if (!(dir = ga_cli_value("logits", argc, argv, &i))) return 1;
        } else if (!strcmp(argv[i], "--tokens")) {
            if (!(toks = ga_cli_value("logits", argc, argv, &i))) return 1;
        } else if (!strcmp(argv[i], "--all")) {
            all = true;
        } else if (!strcmp(argv[i], "--device")) {
            if (!(v = ga_cli_value("logits", argc, argv, &i)) ||
                ga_cli_device("logits", v, &so.device))
                return 1;
        } else if (!strcmp(argv[i], "--threads")) {
            if (!(v = ga_cli_value("logits", argc, argv, &i)) ||
                ga_cli_int("logits", "--threads", v, 1, 1024, &x))
                return 1;
            so.n_threads = (int)x;
        } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else {
            return ga_cli_fail("logits", "unknown argument '%s'", argv[i]);
        }
    }
    if (!dir || !toks) {
        return ga_cli_fail("logits", "--model DIR and --tokens LIST are required");
    }
    int32_t *ids;
    int n;
    if (ga_cli_tokens("logits", "--tokens", toks, &ids, &n)) return 1;
    ga_err err = {{0}};
    ga_model *m = NULL;
    ga_session *s = NULL;
    float *logits = NULL;
    int rc = 1;
    if (ga_model_load(dir, &m, &err)) {
        rc = ga_cli_fail_err("logits", &err);
        goto done;
    }
    const ga_config *c = ga_model_config(m);
    if (n > c->max_position_embeddings) {
        rc = ga_cli_fail("logits", "--tokens: %d tokens exceed max_position_embeddings %d", n,
                         c->max_position_embeddings);
        goto done;
    }
    for (int i = 0; i < n; i++)
        if (ids[i] >= c->vocab_size) {
            rc = ga_cli_fail("logits", "--tokens: token id %d (item %d) is outside [0, %d)", ids[i],
                             i + 1, c->vocab_size);
            goto done;
        }
    so.max_context = n;
    if (ga_session_create(m, &so, &s, &err)) {
        rc = ga_cli_fail_err("logits", &err);
        goto done;
    }
    int rows = all ? n : 1;
    logits = malloc((size_t)rows * c->vocab_size * sizeof(float));
    if (!logits) {
        rc = ga_cli_fail("logits", "out of memory");
        goto done;
    }
    if (ga_session_forward(s, 0, ids, n, all, logits, &err)) {
        rc = ga_cli_fail_err("logits", &err);
        goto done;
    }
    for (int r = 0; r < rows; r++) {
        const float *row = logits + (size_t)r * c->vocab_size;
        putchar('[');
        for (int v = 0; v < c->vocab_size; v++) {
            /* %.9g round-trips any float; JSON has no NaN/Inf, so they are an error. */
            if (!isfinite(row[v])) {
                rc = ga_cli_fail("logits", "non-finite logit at position %d, token %d", r, v);
                goto done;
            }
            printf(v ? ",%.9g" : "%.9g", row[v]);
        }
        puts("]");
    }
    rc = fflush(stdout) == 0 ? 0 : ga_cli_fail("logits", "cannot write to stdout");
done:
    free(logits);
    free(ids);
    ga_session_free(s);
    ga_model_free(m);
    return rc;
}
