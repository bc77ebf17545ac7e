/*
 * UTF-8 helpers for the tokenizer: strict validation (Unicode table 3-7: no overlong forms,
 * no surrogates, nothing past U+10FFFF), the "maximal subpart" classification that decides
 * where a U+FFFD goes when decoding bytes that are not valid UTF-8 (the same policy as
 * Rust's from_utf8_lossy, which Hugging Face's decoder uses), and Unicode whitespace.
 */
#include <utf8proc.h>

#include "tok/tok_internal.h"

/* Allowed range of the second byte for each lead byte; the others are always 80..BF. */
static int seq_len(uint8_t b, uint8_t *lo, uint8_t *hi) {
    *lo = 0x80;
    *hi = 0xBF;
    if (b < 0x80) return 1;
    if (b < 0xC2) return -1;
    if (b < 0xE0) return 2;
    if (b < 0xF0) {
        if (b == 0xE0) *lo = 0xA0;
        if (b == 0xED) *hi = 0x9F; /* surrogates */
        return 3;
    }
    if (b < 0xF5) {
        if (b == 0xF0) *lo = 0x90;
        if (b == 0xF4) *hi = 0x8F; /* > U+10FFFF */
        return 4;
    }
    return -1;
}

int ga_utf8_classify(const uint8_t *s, size_t n) {
    uint8_t lo, hi;
    int len = seq_len(s[0], &lo, &hi);
    if (len < 0) return -1;
    for (int i = 1; i < len; i++) {
        if ((size_t)i >= n) return 0;
        uint8_t c = s[i];
        if (i == 1 ? (c < lo || c > hi) : (c < 0x80 || c > 0xBF)) return -i;
    }
    return len;
}

size_t ga_utf8_valid_prefix(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        int k = ga_utf8_classify(s + i, n - i);
        if (k <= 0) return i;
        i += (size_t)k;
    }
    return n;
}

int ga_utf8_decode(const uint8_t *s, uint32_t *cp) {
    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    if (s[0] < 0xE0) {
        *cp = ((uint32_t)(s[0] & 0x1F) << 6) | (s[1] & 0x3F);
        return 2;
    }
    if (s[0] < 0xF0) {
        *cp = ((uint32_t)(s[0] & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
        return 3;
    }
    *cp = ((uint32_t)(s[0] & 0x07) << 18) | ((uint32_t)(s[1] & 0x3F) << 12) |
          ((uint32_t)(s[2] & 0x3F) << 6) | (s[3] & 0x3F);
    return 4;
}

int ga_utf8_encode(uint32_t cp, char *out) {
    uint8_t *o = (uint8_t *)out;
    if (cp < 0x80) {
        o[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (uint8_t)(0xC0 | (cp >> 6));
        o[1] = (uint8_t)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (uint8_t)(0xE0 | (cp >> 12));
        o[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (uint8_t)(0xF0 | (cp >> 18));
    o[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}

size_t ga_utf8_lossy(const uint8_t *s, size_t n, char *out) {
    size_t i = 0, o = 0;
    while (i < n) {
        int k = ga_utf8_classify(s + i, n - i);
        if (k > 0) {
            for (int j = 0; j < k; j++)
                out[o++] = (char)s[i + (size_t)j];
            i += (size_t)k;
        } else {
            /* k == 0: a truncated character at the very end is one invalid subpart too */
            size_t bad = k < 0 ? (size_t)-k : n - i;
            out[o++] = (char)0xEF;
            out[o++] = (char)0xBF;
            out[o++] = (char)0xBD;
            i += bad;
        }
    }
    return o;
}

/* Unicode White_Space (what Rust's char::is_whitespace tests, used for lstrip/rstrip). */
bool ga_tok_is_space_cp(uint32_t cp) {
    if (cp == ' ' || (cp >= 0x09 && cp <= 0x0D) || cp == 0x85 || cp == 0xA0) return true;
    if (cp < 0x1680) return false;
    utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
    return c == UTF8PROC_CATEGORY_ZS || c == UTF8PROC_CATEGORY_ZL || c == UTF8PROC_CATEGORY_ZP;
}
