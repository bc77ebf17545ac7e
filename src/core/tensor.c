/* Tensor views: element counts, dtype conversions and shape strings. */
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
    }
    return i < 0 ? -1 : first + i;
}

ga_status ga_tensor_nonfinite_err(const ga_tensor *t, int64_t idx, ga_err *err) {
    float v = 0;
    ga_tensor_read_f32(t, idx, 1, &v);
    uint32_t u;
    memcpy(&u, &v, 4);
    char what[64];
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
