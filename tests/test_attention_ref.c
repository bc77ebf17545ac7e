/* The naive double-precision attention reference and bf16 helpers of test_attention. */
#include "test_attention_ref.h"

#include <math.h>
#include <string.h>

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

static double ta_sigmoid(double x) {
    return 1.0 / (1.0 + exp(-x));
}

void ta_ref_attend(const uint16_t *q, const uint16_t *k, const uint16_t *v, int n_keys, int hd,
                   double scale, const uint16_t *gate, ga_gate_mode mode, float *out, double *lse,
                   double *p) {
    double qd[256];
    for (int d = 0; d < hd; d++)
        qd[d] = ta_bf2f(q[d]);
    double mx = -INFINITY;
    for (int j = 0; j < n_keys; j++) {
        const uint16_t *kj = k + (size_t)j * hd;
        double s = 0.0;
        for (int d = 0; d < hd; d++)
            s += qd[d] * ta_bf2f(kj[d]);
        p[j] = s * scale;
        if (p[j] > mx) mx = p[j];
    }
    double l = 0.0;
    for (int j = 0; j < n_keys; j++) {
        p[j] = exp(p[j] - mx);
        l += p[j];
    }
    double acc[256];
    for (int d = 0; d < hd; d++)
        acc[d] = 0.0;
    for (int j = 0; j < n_keys; j++) {
        p[j] /= l;
        const uint16_t *vj = v ? v + (size_t)j * hd : NULL;
        if (vj)
            for (int d = 0; d < hd; d++)
                acc[d] += p[j] * ta_bf2f(vj[d]);
    }
    for (int d = 0; d < hd && out; d++) {
        double g = 1.0;
        if (mode == GA_GATE_HEADWISE) g = ta_sigmoid(ta_bf2f(gate[0]));
        if (mode == GA_GATE_ELEMENTWISE) g = ta_sigmoid(ta_bf2f(gate[d]));
        out[d] = (float)(acc[d] * g);
    }
    if (lse) *lse = mx + log(l);
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
