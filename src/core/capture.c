/*
 * The attention capture's host outputs (ga_attn_capture in gattn.h): allocation for one
 * prefill and release. Both backends fill what is allocated here, and the session (engine)
 * prepares it before a capturing prefill, so it sits below them in core.
 */
#include <math.h>
#include <stdlib.h>

#include "capture.h"

ga_status ga_capture_prepare(ga_attn_capture *cap, int n_layers, int n_tokens, ga_err *err) {
    ga_attn_capture_free(cap);
    cap->n_tokens = n_tokens;
    cap->res = n_tokens < cap->max_res ? n_tokens : cap->max_res;
    cap->maps = calloc((size_t)n_layers, sizeof *cap->maps);
    cap->metrics = calloc((size_t)n_layers, sizeof *cap->metrics);
    /* Set before the maps are made, so the free below also releases those made before a
     * failing one. */
    if (cap->maps) cap->n_layers_alloc = n_layers;
    if (!cap->maps || !cap->metrics) goto oom;
    for (int l = 0; l < n_layers; l++) {
        cap->metrics[l].first_token_share = NAN;
        cap->metrics[l].gate_mean = NAN;
        cap->metrics[l].gate_below_0_1 = NAN;
        if (cap->layers[l]) {
            cap->maps[l] = calloc((size_t)cap->res * cap->res, sizeof(float));
            if (!cap->maps[l]) goto oom;
        }
    }
    return GA_OK;
oom:
    ga_attn_capture_free(cap);
    return ga_err_set(err, GA_ERR_OOM, "attention capture: out of memory for %d maps of %dx%d",
                      n_layers, cap->res, cap->res);
}

void ga_attn_capture_free(ga_attn_capture *cap) {
    if (!cap) return;
    if (cap->maps)
        for (int l = 0; l < cap->n_layers_alloc; l++)
            free(cap->maps[l]);
    free(cap->maps);
    free(cap->metrics);
    cap->maps = NULL;
    cap->metrics = NULL;
    cap->n_layers_alloc = 0;
}
