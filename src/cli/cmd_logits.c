/* gattn logits: next-token logits of a token sequence, one JSON array per position. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>

#include "cli.h"

int ga_cmd_logits(int argc, char **argv) {
    const char *dir = NULL;
    ga_cli_ids toks = {0};
    bool all = false;
    ga_session_opts so = {0};
    ga_cli_rope rope = {0};
    ga_cli_tp tp = {0};
    ga_opt opts[] = {
        GA_O_STR("--model", &dir, "DIR", "the model folder (required)"),
        GA_O_LIST("--tokens", &toks, 0, INT32_MAX, "token ids", "IDS",
                  "the token ids, comma-separated (required)"),
        GA_O_FLAG("--all", &all, "print every position, not only the last"),
        GA_O_DEVICE(&so.device),
        GA_O_CUDA_GEMM(&so.cuda_gemm),
        GA_O_PREFILL_CHUNK(&so.prefill_chunk),
        GA_O_WEIGHTS_DTYPE(&so.cuda_weights),
        GA_O_FP8_MATH(&so.fp8_math),
        GA_TP_OPTS(&tp),
        GA_O_INT("--threads", &so.n_threads, 1, 1024, "N", "CPU threads (default: all cores)"),
        GA_ROPE_OPTS(&rope),
    };
    ga_cli_spec spec = {
        .cmd = "logits",
        .usage = "--model DIR --tokens 3,14,15 [--all] [--device D] [--threads N]",
        .about = "Prints one line per position (the last by default, every position with --all),\n"
                 "each a JSON array of vocab_size floats (fp32, shortest round-trip form).\n",
        .opts = opts,
        .n_opts = GA_N_OPTS(opts)};
    int rc = ga_cli_parse(&spec, argc, argv);
    const int tp_rc = ga_cli_tp_check(&spec, &tp);
    if (!rc) rc = tp_rc;
    if (!rc && (!dir || !toks.v))
        rc = ga_cli_usage("logits", "--model DIR and --tokens LIST are required");
    if (!rc) rc = ga_cli_rope_check(&spec, &rope);
    ga_cli_tp_set(&tp, &so);
    if (rc) {
        free(toks.v);
        return ga_cli_parse_exit(rc);
    }
    int32_t *ids = toks.v;
    int n = toks.n;
    ga_err err = {{0}};
    ga_model *m = NULL;
    ga_session *s = NULL;
    float *logits = NULL;
    rc = 1;
    if (ga_model_load(dir, &m, &err)) {
        rc = ga_cli_fail_err("logits", &err);
        goto done;
    }
    if ((rc = ga_cli_rope_apply(spec.cmd, &rope, m))) goto done;
    rc = 1;
    const ga_config *c = ga_model_config(m);
    if (n > ga_config_max_context(c)) {
        rc = ga_cli_fail("logits", "--tokens: %d tokens exceed the model's %s %d", n,
                         ga_cli_context_bound(c), ga_config_max_context(c));
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
    /* JSON has no NaN/Inf: they are an error, found before anything is printed. */
    for (size_t i = 0; i < (size_t)rows * c->vocab_size; i++)
        if (!isfinite(logits[i])) {
            rc = ga_cli_fail("logits", "non-finite logit at position %d, token %d",
                             (int)(i / c->vocab_size), (int)(i % c->vocab_size));
            goto done;
        }
    for (int r = 0; r < rows; r++) {
        const float *row = logits + (size_t)r * c->vocab_size;
        putchar('[');
        for (int v = 0; v < c->vocab_size; v++)
            printf(v ? ",%.9g" : "%.9g", row[v]); /* %.9g round-trips any float */
        puts("]");
    }
    rc = ga_cli_finish_stdout("logits");
done:
    free(logits);
    free(ids);
    ga_session_free(s);
    ga_model_free(m);
    return rc;
}
