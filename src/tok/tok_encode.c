/*
 * Encoding, the whole pipeline: reject invalid UTF-8; cut out added tokens matched on the raw
 * text (those with normalized=false), honouring lstrip/rstrip/single_word; NFC-normalize the
 * text between them; cut out added tokens with normalized=true from that; split the rest with
 * the pre-tokenizer regex and merge each piece with BPE.
 */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "tok/tok_internal.h"

/* Code point ending just before s[i] (s[0..i) valid UTF-8). */
static uint32_t cp_before(const char *s, size_t i) {
    size_t j = i - 1;
    while (j > 0 && ((uint8_t)s[j] & 0xC0) == 0x80)
        j--;
    uint32_t cp;
    ga_utf8_decode((const uint8_t *)s + j, &cp);
    return cp;
}

static bool is_word_cp(uint32_t cp) {
    if (cp == '_') return true;
    utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)cp);
    return (k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_LO) ||
           (k >= UTF8PROC_CATEGORY_ND && k <= UTF8PROC_CATEGORY_NO);
}

/* Leftmost, then longest, added token (of the given normalized kind) in s[from..n). */
static const ga_tok_added *find_added(const ga_tokenizer *t, const char *s, size_t n, size_t from,
                                      bool normalized, size_t *at) {
    for (size_t i = from; i < n; i++) {
        if (!t->added_first[(uint8_t)s[i]]) continue;
        const ga_tok_added *best = NULL;
        for (int k = 0; k < t->n_added; k++) {
            const ga_tok_added *a = &t->added[k];
            if (a->normalized != normalized || a->len > n - i || (best && a->len <= best->len))
                continue;
            if (memcmp(s + i, a->content, a->len)) continue;
            if (a->single_word) {
                uint32_t cp;
                if (i > 0 && is_word_cp(cp_before(s, i))) continue;
                if (i + a->len < n) {
                    ga_utf8_decode((const uint8_t *)s + i + a->len, &cp);
                    if (is_word_cp(cp)) continue;
                }
            }
            best = a;
        }
        if (best) {
            *at = i;
            return best;
        }
    }
    return NULL;
}

static size_t trim_end(const char *s, size_t a, size_t b) {
    while (b > a) {
        size_t j = b - 1;
        while (j > a && ((uint8_t)s[j] & 0xC0) == 0x80)
            j--;
        uint32_t cp;
        ga_utf8_decode((const uint8_t *)s + j, &cp);
        if (!ga_tok_is_space_cp(cp)) break;
        b = j;
    }
    return b;
}

static size_t trim_start(const char *s, size_t a, size_t b) {
    while (a < b) {
        uint32_t cp;
        int k = ga_utf8_decode((const uint8_t *)s + a, &cp);
        if (!ga_tok_is_space_cp(cp)) break;
        a += (size_t)k;
    }
    return a;
}

static ga_status encode_normalized(ga_tok_ctx *c, const char *s, size_t n, ga_err *err);

/* Text below U+0300 holds no combining mark and no character NFC changes, so the (costly)
 * normalization is skipped when every byte is below 0xCC, the lead byte of U+0300. */
static bool nfc_needed(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if ((uint8_t)s[i] >= 0xCC) return true;
    return false;
}

static ga_status encode_raw_section(ga_tok_ctx *c, const char *s, size_t n, ga_err *err) {
    if (!n) return GA_OK;
    if (!c->t->nfc || !nfc_needed(s, n)) return encode_normalized(c, s, n, err);
    utf8proc_uint8_t *dst = NULL;
    utf8proc_ssize_t m = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &dst,
                                      UTF8PROC_STABLE | UTF8PROC_COMPOSE);
    if (m < 0) {
        free(dst);
        return ga_err_set(err, m == UTF8PROC_ERROR_NOMEM ? GA_ERR_OOM : GA_ERR_ARG,
                          "NFC normalization failed: %s", utf8proc_errmsg(m));
    }
    ga_status st = encode_normalized(c, (const char *)dst, (size_t)m, err);
    free(dst);
    return st;
}

/* Splits s on added tokens of one kind; the text between goes to `next`. */
static ga_status split_added(ga_tok_ctx *c, const char *s, size_t n, bool normalized,
                             ga_status (*next)(ga_tok_ctx *, const char *, size_t, ga_err *),
                             ga_err *err) {
    const ga_tokenizer *t = c->t;
    size_t pos = 0, at = 0;
    bool strip_next = false;
    for (;;) {
        const ga_tok_added *a = find_added(t, s, n, pos, normalized, &at);
        size_t end = a ? at : n;
        size_t b = pos;
        if (strip_next) b = trim_start(s, pos, end);
        if (a && a->lstrip) end = trim_end(s, b, end);
        ga_status st = next(c, s + b, end - b, err);
        if (st) return st;
        if (!a) return GA_OK;
        if ((st = ga_tok_push_id(c, a->id, err))) return st;
        pos = at + a->len;
        strip_next = a->rstrip;
    }
}

static ga_status encode_normalized(ga_tok_ctx *c, const char *s, size_t n, ga_err *err) {
    if (!n) return GA_OK;
    return split_added(c, s, n, true, ga_tok_encode_plain, err);
}

ga_status ga_tok_encode(const ga_tokenizer *t, const char *text, size_t len, int32_t **ids, int *n,
                        ga_err *err) {
    *ids = NULL;
    *n = 0;
    if (!text && len) return ga_err_set(err, GA_ERR_ARG, "encode: NULL text");
    if (len > (size_t)INT32_MAX / 2)
        return ga_err_set(err, GA_ERR_ARG, "encode: text of %zu bytes is too long", len);
    size_t valid = ga_utf8_valid_prefix((const uint8_t *)text, len);
    if (valid != len)
        return ga_err_set(err, GA_ERR_ARG, "encode: invalid UTF-8 at byte offset %zu (0x%02x)",
                          valid, (uint8_t)text[valid]);
    ga_tok_ctx c;
    ga_tok_ctx_init(&c, t);
    c.text_len = len;
    ga_status st = split_added(&c, text, len, false, encode_raw_section, err);
    if (!st && !c.ids && !(c.ids = malloc(sizeof(int32_t)))) /* never NULL on success */
        st = ga_err_set(err, GA_ERR_OOM, "out of memory");
    ga_tok_ctx_free_regex(&c);
    if (st) {
        ga_tok_ctx_free(&c);
        return st;
    }
    *ids = c.ids;
    *n = (int)c.n;
    c.ids = NULL;
    ga_tok_ctx_free(&c);
    return GA_OK;
}
