/*
 * The one option parser of every subcommand (cli.h): a table of options per command, each
 * with its name, value type, range and help line; --help is generated from the table, and
 * unknown options, missing values and malformed values are rejected the same way everywhere
 * (one error line, exit code 2).
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "presets.h"

static const ga_opt *find(const ga_cli_spec *s, const char *name, size_t len) {
    for (int i = 0; i < s->n_opts; i++) {
        const ga_opt *o = &s->opts[i];
        if (strlen(o->name) == len && !strncmp(o->name, name, len)) return o;
        if (o->alias && strlen(o->alias) == len && !strncmp(o->alias, name, len)) return o;
    }
    return NULL;
}

const ga_opt *ga_cli_opt(const ga_cli_spec *spec, const char *name) {
    return find(spec, name, strlen(name));
}

/* Stores value v of option o; 0, or -1 with the usage error printed. */
static int store(const char *cmd, ga_opt *o, const char *v) {
    long x;
    double d;
    switch (o->type) {
    case GA_OPT_FLAG:
        *(bool *)o->dst = true;
        return 0;
    case GA_OPT_STR:
        if (!*v) return ga_cli_usage(cmd, "%s: empty value", o->name), -1;
        *(const char **)o->dst = v;
        return 0;
    case GA_OPT_INT:
    case GA_OPT_LONG:
        /* a bound of LONG_MAX does not survive the trip through double: clamp it */
        if (ga_cli_int(cmd, o->name, v, o->lo <= (double)LONG_MIN ? LONG_MIN : (long)o->lo,
                       o->hi >= (double)LONG_MAX ? LONG_MAX : (long)o->hi, &x))
            return -1;
        if (o->type == GA_OPT_INT)
            *(int *)o->dst = (int)x;
        else
            *(long *)o->dst = x;
        return 0;
    case GA_OPT_FLOAT:
        if (ga_cli_float(cmd, o->name, v, o->lo, o->hi, &d)) return -1;
        *(double *)o->dst = d;
        return 0;
    case GA_OPT_DEVICE:
        return ga_cli_device(cmd, o->name, v, o->dst);
    case GA_OPT_VARIANT:
        if (ga_variant_parse(v, o->dst))
            return ga_cli_usage(cmd, "%s: '%s' is not %s", o->name, v, GA_VARIANT_NAMES), -1;
        return 0;
    case GA_OPT_LIST: {
        ga_cli_ids *l = o->dst;
        int32_t *ids;
        int n;
        if (ga_cli_list(cmd, o->name, o->what, v, &ids, &n)) return -1;
        for (int i = 0; i < n; i++)
            if (ids[i] < o->lo || ids[i] > o->hi) {
                ga_cli_usage(cmd, "%s: %d (item %d) is outside [%.0f, %.0f]", o->name, (int)ids[i],
                             i + 1, o->lo, o->hi);
                free(ids);
                return -1;
            }
        free(l->v); /* given twice: the last one counts */
        l->v = ids;
        l->n = n;
        return 0;
    }
    case GA_OPT_CUSTOM:
        return o->parse(cmd, o, v);
    }
    return -1;
}

int ga_cli_parse(ga_cli_spec *s, int argc, char **argv) {
    bool dashdash = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!dashdash && (!strcmp(a, "--help") || !strcmp(a, "-h"))) {
            ga_cli_print_help(s, stdout);
            return GA_CLI_HELP;
        }
        if (!dashdash && !strcmp(a, "--")) {
            dashdash = true;
            continue;
        }
        if (dashdash || a[0] != '-' || !a[1]) { /* "-" alone is a value (stdin), not an option */
            if (!s->positional || *s->positional)
                return ga_cli_usage(s->cmd, "unexpected argument '%s' (gattn %s --help)", a,
                                    s->cmd);
            *s->positional = a;
            continue;
        }
        const char *eq = a[1] == '-' ? strchr(a, '=') : NULL;
        size_t len = eq ? (size_t)(eq - a) : strlen(a);
        ga_opt *o = (ga_opt *)find(s, a, len);
        if (!o)
            return ga_cli_usage(s->cmd, "unknown option '%.*s' (gattn %s --help lists them)",
                                (int)len, a, s->cmd);
        const char *v = NULL;
        if (o->type == GA_OPT_FLAG) {
            if (eq) return ga_cli_usage(s->cmd, "option %s takes no value", o->name);
        } else if (eq) {
            v = eq + 1;
        } else if (i + 1 < argc) {
            v = argv[++i];
        } else {
            return ga_cli_usage(s->cmd, "option %s needs a value (%s)", o->name,
                                o->meta ? o->meta : "");
        }
        if (store(s->cmd, o, v)) return GA_EXIT_USAGE;
        o->given = true;
    }
    return 0;
}

void ga_cli_print_help(const ga_cli_spec *s, FILE *f) {
    fprintf(f, "usage: gattn %s %s\n", s->cmd, s->usage);
    if (s->about) fprintf(f, "%s", s->about);
    fprintf(f, "\noptions:\n");
    for (int i = 0; i < s->n_opts; i++) {
        const ga_opt *o = &s->opts[i];
        char lhs[64];
        snprintf(lhs, sizeof lhs, "%s%s%s%s%s", o->alias ? o->alias : "", o->alias ? ", " : "",
                 o->name, o->meta ? " " : "", o->meta ? o->meta : "");
        /* a help text of several lines: the later ones indented under the first */
        fprintf(f, "  %-22s ", lhs);
        for (const char *h = o->help; *h; h++) {
            fputc(*h, f);
            if (*h == '\n' && h[1]) fprintf(f, "%25s", "");
        }
        fputc('\n', f);
    }
    fprintf(f, "  %-22s %s\n", "-h, --help", "this text");
    if (s->notes) fprintf(f, "\n%s", s->notes);
    fprintf(f, "\nexit codes: 0 success, 1 runtime failure, 2 usage error\n");
}
