/*
 * The Split pre-tokenizer: the regular expression read from tokenizer.json, compiled with
 * PCRE2 in UTF + UCP mode (so \s, \p{L}, \p{N} and (?i) follow Unicode, as Hugging Face's
 * Oniguruma does) and JIT-compiled where PCRE2 supports it. Each piece the pattern cuts out
 * goes straight to BPE; there is no intermediate list of pieces.
 */
#include <pcre2.h>
#include <string.h>

#include "tok/tok_internal.h"

ga_status ga_tok_compile_regex(ga_tokenizer *t, const char *pattern, size_t len, ga_err *err) {
    int code;
    PCRE2_SIZE off;
    pcre2_code *re =
        pcre2_compile((PCRE2_SPTR)pattern, len, PCRE2_UTF | PCRE2_UCP, &code, &off, NULL);
    if (!re) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(code, msg, sizeof msg);
        return ga_err_set(err, GA_ERR_FORMAT, "%s: pre_tokenizer regex: %s at offset %zu", t->path,
                          (const char *)msg, (size_t)off);
    }
    ga_tok_free_regex(t);
    t->re = re;
    /* Without JIT (a platform PCRE2 lacks it for) the interpreter gives the same matches. */
    t->re_jit = pcre2_jit_compile(re, PCRE2_JIT_COMPLETE) == 0;
    return GA_OK;
}

void ga_tok_free_regex(ga_tokenizer *t) {
    if (t->re) pcre2_code_free((pcre2_code *)t->re);
    t->re = NULL;
}

static ga_status regex_error(const ga_tokenizer *t, int rc, size_t at, ga_err *err) {
    PCRE2_UCHAR msg[160];
    pcre2_get_error_message(rc, msg, sizeof msg);
    return ga_err_set(err, GA_ERR_UNSUPPORTED, "%s: pre_tokenizer regex failed at byte %zu: %s",
                      t->path, at, (const char *)msg);
}

/*
 * Bounds on one pcre2_match call. PCRE2's defaults (10M backtracking steps, the same depth)
 * refuse legitimate text: on a whitespace run Qwen's pattern first tries \s*[\r\n]+ across the
 * whole run before \s+(?!\S) takes it, about one step per byte (measured with PCRE2 10.42:
 * run + 6 steps under JIT, run + 19 interpreted), so 10M spaces exceeded the limit while
 * Hugging Face tokenizes them. The limits grow with the text still to match instead: a call
 * stays linear in its input, which every sane pattern fits with room to spare, and a
 * pathological pattern (exponential backtracking) is still stopped with an error. The
 * interpreter's heap (used only after the JIT stack runs out) is bounded the same way.
 */
#define MATCH_LIMIT_BASE 10000000u /* PCRE2's default: short texts keep exactly it */
#define MATCH_STEPS_PER_BYTE 8u
#define HEAP_LIMIT_BASE_KIB (256u << 10)
#define HEAP_BYTES_PER_BYTE 16u

static void set_limits(pcre2_match_context *mc, size_t left) {
    uint64_t steps = MATCH_LIMIT_BASE + (uint64_t)MATCH_STEPS_PER_BYTE * left;
    uint64_t heap_kib = HEAP_LIMIT_BASE_KIB + (uint64_t)HEAP_BYTES_PER_BYTE * left / 1024;
    uint32_t lim = steps > UINT32_MAX ? UINT32_MAX : (uint32_t)steps;
    pcre2_set_match_limit(mc, lim);
    pcre2_set_depth_limit(mc, lim);
    pcre2_set_heap_limit(mc, heap_kib > UINT32_MAX ? UINT32_MAX : (uint32_t)heap_kib);
}

void ga_tok_ctx_free_regex(ga_tok_ctx *c) {
    if (c->md) pcre2_match_data_free((pcre2_match_data *)c->md);
    if (c->mctx) pcre2_match_context_free((pcre2_match_context *)c->mctx);
    c->md = c->mctx = NULL;
}

static ga_status piece(ga_tok_ctx *c, const char *s, size_t n, ga_err *err) {
    return n ? ga_tok_bpe_word(c, (const uint8_t *)s, n, err) : GA_OK;
}

/* s is valid UTF-8 (checked once by the caller), so PCRE2's own check is skipped. */
ga_status ga_tok_encode_plain(ga_tok_ctx *c, const char *s, size_t n, ga_err *err) {
    const ga_tokenizer *t = c->t;
    if (!t->split) return piece(c, s, n, err);
    if (!c->md) {
        c->md = pcre2_match_data_create_from_pattern((pcre2_code *)t->re, NULL);
        c->mctx = pcre2_match_context_create(NULL);
        if (!c->md || !c->mctx)
            return ga_err_set(err, GA_ERR_OOM, "out of memory for regex match data");
    }
    pcre2_match_data *md = c->md;
    pcre2_match_context *mc = c->mctx;
    size_t pos = 0, gap = 0; /* gap: start of the text not yet emitted */
    while (pos < n) {
        set_limits(mc, n - pos);
        int rc =
            pcre2_match((pcre2_code *)t->re, (PCRE2_SPTR)s, n, pos, PCRE2_NO_UTF_CHECK, md, mc);
        if (rc == PCRE2_ERROR_JIT_STACKLIMIT) /* deep backtracking: the interpreter copes */
            rc = pcre2_match((pcre2_code *)t->re, (PCRE2_SPTR)s, n, pos,
                             PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, md, mc);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) return regex_error(t, rc, pos, err);
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t ms = ov[0], me = ov[1];
        if (me == ms) { /* empty match: emits nothing, moves on one character */
            pos = ms + 1;
            while (pos < n && ((uint8_t)s[pos] & 0xC0) == 0x80)
                pos++;
            continue;
        }
        ga_status st = GA_OK;
        if (ms > gap) st = piece(c, s + gap, ms - gap, err);
        if (!st && t->behavior == GA_SPLIT_ISOLATED) st = piece(c, s + ms, me - ms, err);
        if (st) return st;
        gap = pos = me;
    }
    return piece(c, s + gap, n - gap, err);
}
