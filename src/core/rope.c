/*
 * RoPE scaling: the frequencies and the cos/sin scale of each rope type, the usable context,
 * the check of a scaling against a config, and the cos/sin tables (rope.h).
 *
 * The formulas are those of transformers 5's modeling_rope_utils, reimplemented here from the
 * functions named at each type (not copied); they work in double where transformers works in
 * fp32. Two points where transformers versions differ, and what gattn does:
 *  - yarn with original_max_position_embeddings: transformers 4.4x-4.5x replaced `factor` by
 *    max_position_embeddings / original_max_position_embeddings; transformers 5 uses `factor`
 *    as given (and that ratio only when factor is null). gattn follows transformers 5.
 *  - "dynamic" NTK: transformers recomputes the base from the length of each forward call and
 *    keeps it in the rotary module between calls, so a key's rotation depends on how the text
 *    was split into calls (a prefill of 5000 tokens and the same tokens fed 4000 + 1000 differ)
 *    and on the calls before. No KV cache can reproduce that, so the type is refused with that
 *    reason rather than approximated (config.c, cli).
 */
#include <math.h>
#include <stdlib.h>

#include "model.h"
#include "rope.h"

#define MAX_POSITIONS (1 << 24)

const char *ga_rope_type_name(ga_rope_type t) {
    switch (t) {
    case GA_ROPE_LINEAR:
        return "linear";
    case GA_ROPE_YARN:
        return "yarn";
    default:
        return "default";
    }
}

static int original_max(const ga_config *c) {
    int o = c->rope_scaling.original_max_position_embeddings;
    return o > 0 ? o : c->max_position_embeddings;
}

int ga_config_max_context(const ga_config *c) {
    const ga_rope_scaling *rs = &c->rope_scaling;
    if (rs->type == GA_ROPE_DEFAULT) return c->max_position_embeddings;
    double ext = floor(rs->factor * original_max(c));
    if (ext > MAX_POSITIONS) ext = MAX_POSITIONS;
    return ext > c->max_position_embeddings ? (int)ext : c->max_position_embeddings;
}

ga_status ga_rope_scaling_check(const ga_config *c, const ga_rope_scaling *rs, const char *what,
                                ga_err *err) {
    if (rs->type == GA_ROPE_DEFAULT) return GA_OK;
    if (rs->type != GA_ROPE_LINEAR && rs->type != GA_ROPE_YARN)
        return ga_err_set(err, GA_ERR_ARG, "%s: unknown rope type %d", what, (int)rs->type);
    if (!isfinite(rs->factor) || rs->factor <= 0 || rs->factor > 1e6)
        return ga_err_set(err, GA_ERR_ARG, "%s: factor %g is not in (0, 1e6]", what, rs->factor);
    if (rs->original_max_position_embeddings < 0 ||
        rs->original_max_position_embeddings > MAX_POSITIONS)
        return ga_err_set(err, GA_ERR_ARG,
                          "%s: original_max_position_embeddings %d is not in [1, %d]", what,
                          rs->original_max_position_embeddings, MAX_POSITIONS);
    if (rs->type == GA_ROPE_YARN) {
        const double v[5] = {rs->beta_fast, rs->beta_slow, rs->attention_factor, rs->mscale,
                             rs->mscale_all_dim};
        const char *n[5] = {"beta_fast", "beta_slow", "attention_factor", "mscale",
                            "mscale_all_dim"};
        for (int i = 0; i < 5; i++)
            if (!isfinite(v[i]) || v[i] < 0 || v[i] > 1e6)
                return ga_err_set(err, GA_ERR_ARG, "%s: %s %g is not in [0, 1e6]", what, n[i],
                                  v[i]);
    }
    (void)c;
    return GA_OK;
}

ga_status ga_model_set_rope_scaling(ga_model *m, const ga_rope_scaling *rs, ga_err *err) {
    ga_status st = ga_rope_scaling_check(&m->cfg, rs, "RoPE scaling", err);
    if (st) return st;
    m->cfg.rope_scaling = *rs;
    return GA_OK;
}

/* get_mscale of _compute_yarn_parameters: the YaRN paper's sqrt(1/t) = 0.1 ln(s) + 1. */
static double yarn_mscale(double scale, double mscale) {
    return scale <= 1 ? 1.0 : 0.1 * mscale * log(scale) + 1.0;
}

/* find_correction_dim of _compute_yarn_parameters: the dimension index whose wavelength makes
 * n_rot full turns over the original context, i.e. solve orig / (2 pi base^(2d/dim)) = n_rot. */
static double yarn_correction_dim(double n_rot, int dim, double base, int orig) {
    return dim * log(orig / (n_rot * 2 * 3.14159265358979323846)) / (2 * log(base));
}

void ga_rope_freqs(const ga_config *c, int rot_dim, double *inv, double *attn) {
    const ga_rope_scaling *rs = &c->rope_scaling;
    const int half = rot_dim / 2;
    const double base = c->rope_theta;
    *attn = 1.0;
    /* _compute_default_rope_parameters: base^(-2i/dim) */
    for (int i = 0; i < half; i++)
        inv[i] = pow(base, -2.0 * i / rot_dim);
    if (rs->type == GA_ROPE_LINEAR) {
        /* _compute_linear_scaling_rope_parameters: positions p/factor == frequencies/factor */
        for (int i = 0; i < half; i++)
            inv[i] /= rs->factor;
    } else if (rs->type == GA_ROPE_YARN) {
        /* _compute_yarn_parameters */
        const double f = rs->factor;
        if (rs->attention_factor > 0)
            *attn = rs->attention_factor;
        else if (rs->mscale > 0 && rs->mscale_all_dim > 0)
            *attn = yarn_mscale(f, rs->mscale) / yarn_mscale(f, rs->mscale_all_dim);
        else
            *attn = yarn_mscale(f, 1.0);
        /* beta_* "or default": 0 or absent takes the paper's 32 and 1 */
        const double bf = rs->beta_fast > 0 ? rs->beta_fast : 32.0;
        const double bs = rs->beta_slow > 0 ? rs->beta_slow : 1.0;
        const int orig = original_max(c);
        double lo = yarn_correction_dim(bf, rot_dim, base, orig);
        double hi = yarn_correction_dim(bs, rot_dim, base, orig);
        if (!rs->no_truncate) { /* find_correction_range(truncate=True) */
            lo = floor(lo);
            hi = ceil(hi);
        }
        if (lo < 0) lo = 0;
        if (hi > rot_dim - 1) hi = rot_dim - 1;
        if (lo == hi) hi += 0.001; /* linear_ramp_factor's guard against 0/0 */
        for (int i = 0; i < half; i++) {
            double ramp = (i - lo) / (hi - lo);
            ramp = ramp < 0 ? 0 : ramp > 1 ? 1 : ramp;
            /* below lo: extrapolate (the original frequency, many turns in the original
             * context); above hi: interpolate (frequency / factor); a linear blend between */
            const double extra = 1.0 - ramp;
            const double pos_freq = pow(base, 2.0 * i / rot_dim);
            inv[i] = (1.0 / (f * pos_freq)) * (1.0 - extra) + (1.0 / pos_freq) * extra;
        }
    }
}

ga_status ga_rope_tables(const ga_config *c, int rot_dim, int n_pos, float **cos_tab,
                         float **sin_tab, ga_err *err) {
    const int half = rot_dim / 2;
    const size_t n = (size_t)n_pos * half;
    float *ct = malloc(n * sizeof(float)), *st = malloc(n * sizeof(float));
    double *inv = malloc((size_t)half * sizeof(double));
    if (!ct || !st || !inv) {
        free(ct);
        free(st);
        free(inv);
        return ga_err_set(err, GA_ERR_OOM, "out of memory for the RoPE tables (%d positions)",
                          n_pos);
    }
    double attn;
    ga_rope_freqs(c, rot_dim, inv, &attn);
    for (int p = 0; p < n_pos; p++)
        for (int i = 0; i < half; i++) {
            const double a = p * inv[i];
            ct[(size_t)p * half + i] = (float)(attn * cos(a));
            st[(size_t)p * half + i] = (float)(attn * sin(a));
        }
    free(inv);
    *cos_tab = ct;
    *sin_tab = st;
    return GA_OK;
}
