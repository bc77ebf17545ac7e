/* The attention reference (the CPU backend's op) and bf16 helpers of test_attention. */
#include "test_attention_ref.h"

#include <math.h>
#include <string.h>

#include "cpu/cpu_attention.h"
#include "testutil.h"

uint16_t ta_f2bf(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fc0u;
    u += 0x7fffu + ((u >> 16) & 1u); /* round half to even */
    return (uint16_t)(u >> 16);
}

float ta_bf2f(uint16_t b) {
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

void ta_fill_bf16(uint16_t *dst, size_t n, float std, uint64_t *rng) {
    for (size_t i = 0; i < n; i++)
        dst[i] = ta_f2bf(std * ga_test_rand_normal(rng));
}

void ta_fill_u16(uint16_t *dst, size_t n, uint16_t v) {
    for (size_t i = 0; i < n; i++)
        dst[i] = v;
}

void ta_ref_attend(const uint16_t *q, const uint16_t *k, const uint16_t *v, int n_keys, int hd,
                   double scale, const uint16_t *gate, ga_gate_mode mode, float *out, double *lse,
                   double *p) {
    /* The CPU backend's own attention row (src/cpu/cpu_attention.c), on the same bf16 values
     * widened to fp32: the one host statement of attention the kernels are held to. Its fp32
     * arithmetic (~1e-6 relative, the sum of exponentials in double) is far inside the bf16
     * tolerances below. A NULL v (the probabilities alone) reads zeros. */
    const size_t nk = (size_t)(n_keys > 0 ? n_keys : 1);
    float *qf = malloc((size_t)hd * sizeof *qf), *kf = malloc(nk * hd * sizeof *kf);
    float *vf = calloc(nk * hd, sizeof *vf), *pf = malloc(nk * sizeof *pf);
    float *of = malloc((size_t)hd * sizeof *of), gf[256];
    if (!qf || !kf || !vf || !pf || !of) {
        fprintf(stderr, "ta_ref_attend: out of memory\n");
        exit(1);
    }
    for (int d = 0; d < hd; d++)
        qf[d] = ta_bf2f(q[d]);
    for (size_t i = 0; i < (size_t)n_keys * hd; i++) {
        kf[i] = ta_bf2f(k[i]);
        if (v) vf[i] = ta_bf2f(v[i]);
    }
    const int ng = mode == GA_GATE_HEADWISE ? 1 : mode == GA_GATE_ELEMENTWISE ? hd : 0;
    for (int d = 0; d < ng; d++)
        gf[d] = ta_bf2f(gate[d]);
    double l = ga_cpu_attend(qf, kf, vf, n_keys, hd, (float)scale, ng ? gf : NULL, mode, of, pf);
    for (int j = 0; j < n_keys; j++)
        p[j] = pf[j];
    if (out) memcpy(out, of, (size_t)hd * sizeof *out);
    if (lse) *lse = l;
    free(qf), free(kf), free(vf), free(pf), free(of);
}

size_t ta_count_nonfinite_bf16(const uint16_t *a, size_t n) {
    size_t bad = 0;
    for (size_t i = 0; i < n; i++)
        bad += (a[i] & 0x7f80u) == 0x7f80u;
    return bad;
}

size_t ta_count_nonfinite_f32(const float *a, size_t n) {
    size_t bad = 0;
    for (size_t i = 0; i < n; i++)
        bad += !isfinite(a[i]);
    return bad;
}
