/*
 * Decoding ids back to text: whole sequences (bytes that are not valid UTF-8 become U+FFFD,
 * one per maximal invalid subpart, as Hugging Face's errors="replace" decoder does), the
 * streaming decoder that holds back a character split across tokens, and printable labels of
 * single tokens for plots and --pieces.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok/tok_internal.h"

static bool valid_id(const ga_tokenizer *t, int32_t id) {
    return id >= 0 && id < t->vocab_size && t->bytes_len[id] >= 0;
}

ga_status ga_tok_decode(const ga_tokenizer *t, const int32_t *ids, int n, char **text, size_t *len,
                        ga_err *err) {
    *text = NULL;
    if (len) *len = 0;
    if (n < 0 || (n > 0 && !ids)) return ga_err_set(err, GA_ERR_ARG, "decode: bad id array");
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        if (!valid_id(t, ids[i]))
            return ga_err_set(err, GA_ERR_ARG,
                              "decode: id %d at position %d is not a token "
                              "(vocabulary size %d)",
                              (int)ids[i], i, t->vocab_size);
        total += (size_t)t->bytes_len[ids[i]];
    }
    uint8_t *raw = malloc(total + 1);
    char *out = malloc(3 * total + 1);
    if (!raw || !out) {
        free(raw);
        free(out);
        return ga_err_set(err, GA_ERR_OOM, "decode: out of memory for %zu bytes", total);
    }
    size_t o = 0;
    for (int i = 0; i < n; i++) {
        memcpy(raw + o, t->bytes_blob + t->bytes_off[ids[i]], (size_t)t->bytes_len[ids[i]]);
        o += (size_t)t->bytes_len[ids[i]];
    }
    size_t m = ga_utf8_lossy(raw, total, out);
    free(raw);
    out[m] = 0;
    *text = out;
    if (len) *len = m;
    return GA_OK;
}

/* Appends s (n bytes) to buf[*o] if it fits in cap-1; otherwise marks the buffer full. */
static void put(char *buf, int cap, int *o, bool *full, const char *s, int n) {
    if (*full || *o + n > cap - 1) {
        *full = true;
        return;
    }
    memcpy(buf + *o, s, (size_t)n);
    *o += n;
}

int ga_tok_token_text(const ga_tokenizer *t, int32_t id, char *buf, int cap) {
    if (buf && cap > 0) buf[0] = 0;
    if (!t || !buf || cap <= 0) return -1;
    if (!valid_id(t, id)) return -1;
    const uint8_t *s = t->bytes_blob + t->bytes_off[id];
    size_t n = (size_t)t->bytes_len[id];
    int o = 0;
    bool full = false;
    char esc[8];
    for (size_t i = 0; i < n && !full;) {
        int k = ga_utf8_classify(s + i, n - i);
        if (k <= 0) { /* invalid or part of a character: each byte as \xNN */
            size_t bad = k < 0 ? (size_t)-k : n - i;
            for (size_t j = 0; j < bad; j++) {
                snprintf(esc, sizeof esc, "\\x%02x", s[i + j]);
                put(buf, cap, &o, &full, esc, 4);
            }
            i += bad;
            continue;
        }
        uint8_t c = s[i];
        if (c == '\n')
            put(buf, cap, &o, &full, "\\n", 2);
        else if (c == '\t')
            put(buf, cap, &o, &full, "\\t", 2);
        else if (c == '\r')
            put(buf, cap, &o, &full, "\\r", 2);
        else if (c < 0x20 || c == 0x7f) {
            snprintf(esc, sizeof esc, "\\x%02x", c);
            put(buf, cap, &o, &full, esc, 4);
        } else {
            put(buf, cap, &o, &full, (const char *)s + i, k);
        }
        i += (size_t)k;
    }
    buf[o] = 0;
    return o;
}

/* ------------------------------------------------------------ streaming */

struct ga_tok_stream {
    const ga_tokenizer *t;
    uint8_t pending[4]; /* a valid but unfinished character (at most 3 bytes) */
    int npend;
    uint8_t *raw;
    char *out;
    size_t raw_cap, out_cap;
};

ga_tok_stream *ga_tok_stream_new(const ga_tokenizer *t) {
    if (!t) return NULL;
    ga_tok_stream *s = calloc(1, sizeof *s);
    if (s) s->t = t;
    return s;
}

void ga_tok_stream_free(ga_tok_stream *s) {
    if (!s) return;
    free(s->raw);
    free(s->out);
    free(s);
}

static int reserve(ga_tok_stream *s, size_t raw, size_t out) {
    if (raw > s->raw_cap) {
        uint8_t *p = realloc(s->raw, raw);
        if (!p) return -1;
        s->raw = p;
        s->raw_cap = raw;
    }
    if (out > s->out_cap) {
        char *p = realloc(s->out, out);
        if (!p) return -1;
        s->out = p;
        s->out_cap = out;
    }
    return 0;
}

/* Emits every complete or hopeless unit of raw[0..n); keeps an unfinished tail pending
 * unless final. */
static size_t drain(ga_tok_stream *s, size_t n, bool final) {
    size_t i = 0, o = 0;
    s->npend = 0;
    while (i < n) {
        int k = ga_utf8_classify(s->raw + i, n - i);
        if (k == 0 && !final) {
            s->npend = (int)(n - i);
            memcpy(s->pending, s->raw + i, n - i);
            break;
        }
        if (k > 0) {
            memcpy(s->out + o, s->raw + i, (size_t)k);
            o += (size_t)k;
            i += (size_t)k;
        } else {
            memcpy(s->out + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i += k < 0 ? (size_t)-k : n - i;
        }
    }
    s->out[o] = 0;
    return o;
}

ga_status ga_tok_stream_push(ga_tok_stream *s, int32_t id, char **out, size_t *out_len,
                             ga_err *err) {
    *out = NULL;
    *out_len = 0;
    if (!valid_id(s->t, id))
        return ga_err_set(err, GA_ERR_ARG, "decode: id %d is not a token (vocabulary size %d)",
                          (int)id, s->t->vocab_size);
    size_t bl = (size_t)s->t->bytes_len[id], n = (size_t)s->npend + bl;
    if (reserve(s, n + 1, 3 * n + 1)) return ga_err_set(err, GA_ERR_OOM, "decode: out of memory");
    memcpy(s->raw, s->pending, (size_t)s->npend);
    memcpy(s->raw + s->npend, s->t->bytes_blob + s->t->bytes_off[id], bl);
    *out_len = drain(s, n, false);
    *out = s->out;
    return GA_OK;
}

ga_status ga_tok_stream_flush(ga_tok_stream *s, char **out, size_t *out_len, ga_err *err) {
    size_t n = (size_t)s->npend;
    if (reserve(s, n + 1, 3 * n + 1)) return ga_err_set(err, GA_ERR_OOM, "decode: out of memory");
    memcpy(s->raw, s->pending, n);
    *out_len = drain(s, n, true);
    *out = s->out;
    return GA_OK;
}
