/* Tensor views: element counts, dtype conversions (FP8 dequantisation included) and shape
 * strings. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "tensor.h"

int64_t ga_tensor_numel(const ga_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++)
        n *= t->shape[i];
    return n;
}

/* IEEE half -> float, exact (including subnormals, inf and NaN). */
float ga_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu, u;
    if (exp == 0) {
        if (man == 0) {
            u = sign;
        } else { /* subnormal: renormalise */
            int e = -1;
            do {
                e++;
                man <<= 1;
            } while (!(man & 0x400u));
            u = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ffu) << 13);
        }
    } else if (exp == 31) {
        u = sign | 0x7f800000u | (man << 13);
    } else {
        u = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* float -> IEEE half, round to nearest even; overflow to inf. */
uint16_t ga_f32_to_f16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    uint32_t sign = (u >> 16) & 0x8000u;
    uint32_t absu = u & 0x7fffffffu;
    if (absu > 0x7f800000u) return (uint16_t)(sign | 0x7e00u);
    if (absu >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* rounds to >= 65520: inf */
    if (absu < 0x38800000u) {                                   /* subnormal half or zero */
        if (absu < 0x33000000u) return (uint16_t)sign;
        uint32_t e = absu >> 23, man = (absu & 0x7fffffu) | 0x800000u;
        uint32_t shift = 126 - e; /* 14..24 */
        uint32_t half = man >> shift, rem = man & ((1u << shift) - 1), mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1))) half++;
        return (uint16_t)(sign | half);
    }
    uint32_t r = absu + 0xfffu + ((absu >> 13) & 1u);
    return (uint16_t)(sign | ((r - 0x38000000u) >> 13));
}

/* Every e4m3 code's value, from the OCP 8-bit floating point specification (v1.0, E4M3):
 * exponent field 0 is subnormal (m / 8 * 2^-6), otherwise (1 + m / 8) * 2^(e - 7); 0x7f and
 * 0xff are NaN. tests/test_fp8.c checks each entry against the bit fields. */
static const float e4m3_table[256] = {
    0.0f,         0.001953125f,  0.00390625f,  0.005859375f,  0.0078125f,   0.009765625f,
    0.01171875f,  0.013671875f,  0.015625f,    0.017578125f,  0.01953125f,  0.021484375f,
    0.0234375f,   0.025390625f,  0.02734375f,  0.029296875f,  0.03125f,     0.03515625f,
    0.0390625f,   0.04296875f,   0.046875f,    0.05078125f,   0.0546875f,   0.05859375f,
    0.0625f,      0.0703125f,    0.078125f,    0.0859375f,    0.09375f,     0.1015625f,
    0.109375f,    0.1171875f,    0.125f,       0.140625f,     0.15625f,     0.171875f,
    0.1875f,      0.203125f,     0.21875f,     0.234375f,     0.25f,        0.28125f,
    0.3125f,      0.34375f,      0.375f,       0.40625f,      0.4375f,      0.46875f,
    0.5f,         0.5625f,       0.625f,       0.6875f,       0.75f,        0.8125f,
    0.875f,       0.9375f,       1.0f,         1.125f,        1.25f,        1.375f,
    1.5f,         1.625f,        1.75f,        1.875f,        2.0f,         2.25f,
    2.5f,         2.75f,         3.0f,         3.25f,         3.5f,         3.75f,
    4.0f,         4.5f,          5.0f,         5.5f,          6.0f,         6.5f,
    7.0f,         7.5f,          8.0f,         9.0f,          10.0f,        11.0f,
    12.0f,        13.0f,         14.0f,        15.0f,         16.0f,        18.0f,
    20.0f,        22.0f,         24.0f,        26.0f,         28.0f,        30.0f,
    32.0f,        36.0f,         40.0f,        44.0f,         48.0f,        52.0f,
    56.0f,        60.0f,         64.0f,        72.0f,         80.0f,        88.0f,
    96.0f,        104.0f,        112.0f,       120.0f,        128.0f,       144.0f,
    160.0f,       176.0f,        192.0f,       208.0f,        224.0f,       240.0f,
    256.0f,       288.0f,        320.0f,       352.0f,        384.0f,       416.0f,
    448.0f,       NAN,           -0.0f,        -0.001953125f, -0.00390625f, -0.005859375f,
    -0.0078125f,  -0.009765625f, -0.01171875f, -0.013671875f, -0.015625f,   -0.017578125f,
    -0.01953125f, -0.021484375f, -0.0234375f,  -0.025390625f, -0.02734375f, -0.029296875f,
    -0.03125f,    -0.03515625f,  -0.0390625f,  -0.04296875f,  -0.046875f,   -0.05078125f,
    -0.0546875f,  -0.05859375f,  -0.0625f,     -0.0703125f,   -0.078125f,   -0.0859375f,
    -0.09375f,    -0.1015625f,   -0.109375f,   -0.1171875f,   -0.125f,      -0.140625f,
    -0.15625f,    -0.171875f,    -0.1875f,     -0.203125f,    -0.21875f,    -0.234375f,
    -0.25f,       -0.28125f,     -0.3125f,     -0.34375f,     -0.375f,      -0.40625f,
    -0.4375f,     -0.46875f,     -0.5f,        -0.5625f,      -0.625f,      -0.6875f,
    -0.75f,       -0.8125f,      -0.875f,      -0.9375f,      -1.0f,        -1.125f,
    -1.25f,       -1.375f,       -1.5f,        -1.625f,       -1.75f,       -1.875f,
    -2.0f,        -2.25f,        -2.5f,        -2.75f,        -3.0f,        -3.25f,
    -3.5f,        -3.75f,        -4.0f,        -4.5f,         -5.0f,        -5.5f,
    -6.0f,        -6.5f,         -7.0f,        -7.5f,         -8.0f,        -9.0f,
    -10.0f,       -11.0f,        -12.0f,       -13.0f,        -14.0f,       -15.0f,
    -16.0f,       -18.0f,        -20.0f,       -22.0f,        -24.0f,       -26.0f,
    -28.0f,       -30.0f,        -32.0f,       -36.0f,        -40.0f,       -44.0f,
    -48.0f,       -52.0f,        -56.0f,       -60.0f,        -64.0f,       -72.0f,
    -80.0f,       -88.0f,        -96.0f,       -104.0f,       -112.0f,      -120.0f,
    -128.0f,      -144.0f,       -160.0f,      -176.0f,       -192.0f,      -208.0f,
    -224.0f,      -240.0f,       -256.0f,      -288.0f,       -320.0f,      -352.0f,
    -384.0f,      -416.0f,       -448.0f,      NAN,
};

float ga_e4m3_to_f32(uint8_t b) {
    return e4m3_table[b];
}

uint8_t ga_f32_to_e4m3(float f) {
    if (isnan(f)) return 0x7f;
    const uint8_t sign = signbit(f) ? 0x80 : 0;
    const float a = fabsf(f);
    /* Codes 0..126 are the non-negative finite values in increasing order: find the pair that
     * brackets a and take the nearer, the even code (mantissa LSB 0) on a tie. */
    if (a >= 448.0f) return sign | 0x7e;
    int lo = 0, hi = 126; /* e4m3_table[lo] <= a < e4m3_table[hi] */
    while (hi - lo > 1) {
        const int mid = (lo + hi) / 2;
        if (e4m3_table[mid] <= a)
            lo = mid;
        else
            hi = mid;
    }
    const float dlo = a - e4m3_table[lo], dhi = e4m3_table[hi] - a;
    const int code = dlo < dhi ? lo : dhi < dlo ? hi : (lo & 1) ? hi : lo;
    return sign | (uint8_t)code;
}

/* Dequantised F8_E4M3 values: each run stays within one row and one block column, so a scale
 * is read once per run. */
static void read_f8(const ga_tensor *t, int64_t first, int64_t n, float *dst) {
    const uint8_t *p = (const uint8_t *)t->data;
    const ga_tensor *sc = t->scale_inv;
    if (!sc || t->ndim != 2 || t->shape[1] <= 0) { /* unbound: the raw e4m3 values */
        for (int64_t i = 0; i < n; i++)
            dst[i] = e4m3_table[p[first + i]];
        return;
    }
    const int64_t cols = t->shape[1], bh = t->block[0], bw = t->block[1];
    const int64_t scols = sc->shape[1];
    int64_t i = 0;
    while (i < n) {
        const int64_t idx = first + i, r = idx / cols, c = idx % cols;
        const int64_t block_end = (c / bw + 1) * bw;
        int64_t run = (block_end < cols ? block_end : cols) - c;
        if (run > n - i) run = n - i;
        float s;
        ga_tensor_read_f32(sc, (r / bh) * scols + c / bw, 1, &s);
        for (int64_t k = 0; k < run; k++)
            dst[i + k] = e4m3_table[p[idx + k]] * s;
        i += run;
    }
}

void ga_tensor_read_f32(const ga_tensor *t, int64_t first, int64_t n, float *dst) {
    const uint8_t *p = (const uint8_t *)t->data + (size_t)first * ga_dtype_size(t->dtype);
    switch (t->dtype) {
    case GA_F32:
        memcpy(dst, p, (size_t)n * 4);
        break; /* mapped data may be unaligned */
    case GA_BF16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            dst[i] = ga_bf16_to_f32(h);
        }
        break;
    case GA_F16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            dst[i] = ga_f16_to_f32(h);
        }
        break;
    case GA_F8_E4M3:
        read_f8(t, first, n, dst);
        break;
    }
}

void ga_tensor_read_bf16(const ga_tensor *t, int64_t first, int64_t n, uint16_t *dst) {
    const uint8_t *p = (const uint8_t *)t->data + (size_t)first * ga_dtype_size(t->dtype);
    switch (t->dtype) {
    case GA_BF16:
        memcpy(dst, p, (size_t)n * 2);
        break;
    case GA_F32:
        for (int64_t i = 0; i < n; i++) {
            float f;
            memcpy(&f, p + 4 * i, 4);
            dst[i] = ga_f32_to_bf16(f);
        }
        break;
    case GA_F16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            dst[i] = ga_f32_to_bf16(ga_f16_to_f32(h));
        }
        break;
    case GA_F8_E4M3: /* through fp32: the bf16 of the fp32 product, as the f32 path rounds it */
        for (int64_t i = 0; i < n;) {
            float f[256];
            const int64_t m = n - i < 256 ? n - i : 256;
            read_f8(t, first + i, m, f);
            for (int64_t k = 0; k < m; k++)
                dst[i + k] = ga_f32_to_bf16(f[k]);
            i += m;
        }
        break;
    }
}

/* The scans test a block of 64 values with no early exit (so the compiler vectorises it)
 * and look for the exact index only in a block that has a hit: ~4x faster than a
 * value-at-a-time loop, which matters when the scan is the only host pass (CUDA uploads). */
#define SCAN_BLOCK 64

static int64_t find_u32(const uint8_t *p, int64_t n, uint32_t lim) {
    int64_t i = 0;
    for (; i + SCAN_BLOCK <= n; i += SCAN_BLOCK) {
        uint32_t blk[SCAN_BLOCK];
        memcpy(blk, p + 4 * i, sizeof blk); /* mapped data may be unaligned */
        unsigned any = 0;
        for (int k = 0; k < SCAN_BLOCK; k++)
            any |= (blk[k] & 0x7fffffffu) >= lim;
        if (any) break;
    }
    for (; i < n; i++) {
        uint32_t u;
        memcpy(&u, p + 4 * i, 4);
        if ((u & 0x7fffffffu) >= lim) return i;
    }
    return -1;
}

/* exp: the all-ones exponent field of the 16-bit format. */
static int64_t find_u16(const uint8_t *p, int64_t n, uint16_t exp) {
    int64_t i = 0;
    for (; i + SCAN_BLOCK <= n; i += SCAN_BLOCK) {
        uint16_t blk[SCAN_BLOCK];
        memcpy(blk, p + 2 * i, sizeof blk);
        unsigned any = 0;
        for (int k = 0; k < SCAN_BLOCK; k++)
            any |= (blk[k] & exp) == exp;
        if (any) break;
    }
    for (; i < n; i++) {
        uint16_t h;
        memcpy(&h, p + 2 * i, 2);
        if ((h & exp) == exp) return i;
    }
    return -1;
}

int64_t ga_f32_find_nonfinite(const float *x, int64_t n) {
    return find_u32((const uint8_t *)x, n, 0x7f800000u);
}

int64_t ga_tensor_find_nonfinite(const ga_tensor *t, int64_t first, int64_t n, bool bf16_range) {
    const uint8_t *p = (const uint8_t *)t->data + (size_t)first * ga_dtype_size(t->dtype);
    int64_t i = -1;
    switch (t->dtype) {
    case GA_F32: /* 0x7f7f8000 and above round (to nearest even) to bf16 infinity */
        i = find_u32(p, n, bf16_range ? 0x7f7f8000u : 0x7f800000u);
        break;
    case GA_BF16:
        i = find_u16(p, n, 0x7f80u);
        break;
    case GA_F16:
        i = find_u16(p, n, 0x7c00u);
        break;
    case GA_F8_E4M3: /* the dequantised values: a finite code times a huge scale overflows */
        for (int64_t j = 0; j < n && i < 0;) {
            float f[256];
            const int64_t m = n - j < 256 ? n - j : 256;
            read_f8(t, first + j, m, f);
            const int64_t k =
                find_u32((const uint8_t *)f, m, bf16_range ? 0x7f7f8000u : 0x7f800000u);
            if (k >= 0) i = j + k;
            j += m;
        }
        break;
    }
    return i < 0 ? -1 : first + i;
}

ga_status ga_tensor_nonfinite_err(const ga_tensor *t, int64_t idx, ga_err *err) {
    float v = 0;
    ga_tensor_read_f32(t, idx, 1, &v);
    uint32_t u;
    memcpy(&u, &v, 4);
    char what[1280];
    if ((u & 0x7fffffffu) > 0x7f800000u)
        snprintf(what, sizeof what, "NaN");
    else if ((u & 0x7fffffffu) == 0x7f800000u)
        snprintf(what, sizeof what, "%sinf", u >> 31 ? "-" : "+");
    else
        snprintf(what, sizeof what, "%g, beyond the range of bf16 (the GPU's weight type)", v);
    char where[64] = "";
    if (t->ndim == 2 && t->shape[1] > 0)
        snprintf(where, sizeof where, " (row %lld, column %lld)", (long long)(idx / t->shape[1]),
                 (long long)(idx % t->shape[1]));
    if (t->dtype == GA_F8_E4M3 && t->scale_inv) {
        /* Say which of the two stored numbers made it: the e4m3 code or its block scale. */
        const uint8_t code = ((const uint8_t *)t->data)[idx];
        const int64_t r = idx / t->shape[1], c = idx % t->shape[1];
        float s = 0;
        ga_tensor_read_f32(t->scale_inv,
                           (r / t->block[0]) * t->scale_inv->shape[1] + c / t->block[1], 1, &s);
        size_t o = strlen(what);
        snprintf(what + o, sizeof what - o, " (e4m3 0x%02x = %g times %s %g)", code,
                 (double)ga_e4m3_to_f32(code), t->scale_inv->name, (double)s);
    }
    return ga_err_set(err, GA_ERR_FORMAT,
                      "%s: tensor \"%s\": element %lld%s is %s; a model's weights must be finite",
                      t->file ? t->file : "<memory>", t->name, (long long)idx, where, what);
}

const char *ga_shape_str(int ndim, const int64_t *shape, char *buf, size_t cap) {
    size_t o = 0;
    o += (size_t)snprintf(buf + o, cap - o, "(");
    for (int i = 0; i < ndim && o < cap; i++)
        o += (size_t)snprintf(buf + o, cap - o, i ? ", %lld" : "%lld", (long long)shape[i]);
    if (o < cap) snprintf(buf + o, cap - o, ")");
    return buf;
}
