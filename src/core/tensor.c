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

const char *ga_shape_str(int ndim, const int64_t *shape, char *buf, size_t cap) {
    size_t o = 0;
    o += (size_t)snprintf(buf + o, cap - o, "(");
    for (int i = 0; i < ndim && o < cap; i++)
        o += (size_t)snprintf(buf + o, cap - o, i ? ", %lld" : "%lld", (long long)shape[i]);
    if (o < cap) snprintf(buf + o, cap - o, ")");
    return buf;
}
