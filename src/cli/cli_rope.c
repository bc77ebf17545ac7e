/*
 * The --rope-* option group (cli.h): one parser, one set of checks and one description of the
 * RoPE scaling in force for every command that runs a model. The library side is
 * ga_model_set_rope_scaling; nothing here re-derives the math (core/rope.c does).
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "core/rope.h"

int ga_cli_parse_rope_type(const char *cmd, const ga_opt *o, const char *v) {
    static const char *ok[] = {"default", "none", "linear", "yarn"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (!strcmp(v, ok[i])) {
            *(const char **)o->dst = ok[i];
            return 0;
        }
    if (!strcmp(v, "dynamic"))
        return ga_cli_usage(cmd,
                            "%s: dynamic NTK is not supported: transformers recomputes its "
                            "frequencies per forward call, which a KV cache cannot reproduce "
                            "(use yarn or linear)",
                            o->name),
               -1;
    return ga_cli_usage(cmd, "%s: '%s' is not yarn, linear or default", o->name, v), -1;
}

static bool scaled(const ga_cli_rope *r) {
    return r->type && (!strcmp(r->type, "yarn") || !strcmp(r->type, "linear"));
}

int ga_cli_rope_check(const ga_cli_spec *spec, const ga_cli_rope *r) {
    const bool f = ga_cli_opt(spec, "--rope-factor")->given;
    const bool o = ga_cli_opt(spec, "--rope-original-max")->given;
    if (!r->type && (f || o))
        return ga_cli_usage(spec->cmd, "%s needs --rope-scaling yarn|linear",
                            f ? "--rope-factor" : "--rope-original-max");
    if (r->type && scaled(r) && !f)
        return ga_cli_usage(spec->cmd, "--rope-scaling %s needs --rope-factor F", r->type);
    if (r->type && !scaled(r) && (f || o))
        return ga_cli_usage(spec->cmd,
                            "--rope-scaling %s takes no --rope-factor or "
                            "--rope-original-max",
                            r->type);
    return 0;
}

int ga_cli_rope_apply(const char *cmd, const ga_cli_rope *r, ga_model *m) {
    if (!r->type) return 0;
    ga_rope_scaling rs = {.type = !strcmp(r->type, "yarn")     ? GA_ROPE_YARN
                                  : !strcmp(r->type, "linear") ? GA_ROPE_LINEAR
                                                               : GA_ROPE_DEFAULT};
    if (rs.type != GA_ROPE_DEFAULT) {
        rs.factor = r->factor;
        rs.original_max_position_embeddings = r->original_max;
    }
    ga_err err = {{0}};
    if (ga_model_set_rope_scaling(m, &rs, &err)) return ga_cli_fail_err(cmd, &err);
    return 0;
}

const char *ga_cli_rope_describe(const ga_config *c, char *buf, size_t n) {
    const ga_rope_scaling *rs = &c->rope_scaling;
    if (rs->type == GA_ROPE_DEFAULT) {
        snprintf(buf, n, "none");
        return buf;
    }
    const int orig = rs->original_max_position_embeddings ? rs->original_max_position_embeddings
                                                          : c->max_position_embeddings;
    int len = snprintf(buf, n, "%s x%g over %d", ga_rope_type_name(rs->type), rs->factor, orig);
    if (rs->type == GA_ROPE_YARN && len > 0 && (size_t)len < n) {
        double inv[1], attn;
        ga_rope_freqs(c, 2, inv, &attn); /* the attention factor does not depend on the dim */
        snprintf(buf + len, n - (size_t)len, " (attention factor %.4g)", attn);
    }
    return buf;
}

const char *ga_cli_context_bound(const ga_config *c) {
    return c->rope_scaling.type == GA_ROPE_DEFAULT ? "max_position_embeddings"
                                                   : "usable context with its RoPE scaling";
}
