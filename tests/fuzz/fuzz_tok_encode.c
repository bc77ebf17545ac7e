/*
 * Fuzzes encoding: the input is the text, encoded with the fixed small tokenizer in
 * tests/data/tok_small (Qwen's pipeline: added tokens, NFC, Qwen's Split regex, byte-level
 * BPE over all 256 bytes). Invalid UTF-8 must be refused; valid text must encode, the ids must
 * be in the vocabulary, and decoding them must give the text back when no special token or
 * NFC change is involved (every byte has a token, so nothing may be lost or reordered), and
 * must equal the streaming decode of the same ids.
 */
#include "fuzz_util.h"
#include "gattn/tokenizer.h"

static ga_tokenizer *tok;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Bytes below 0xCC hold no character NFC changes (see tok_encode.c), and no '<' means no
 * added token of tok_small can match. */
static bool plain_text(const uint8_t *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] >= 0xCC || s[i] == '<') return false;
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    ga_err err = {{0}};
    if (!tok && ga_tok_load_dir(GA_FUZZ_TEST_DATA "/tok_small", &tok, &err) != GA_OK) {
        fprintf(stderr, "cannot load tok_small: %s\n", err.msg);
        abort();
    }
    int32_t *ids = NULL;
    int n = -1;
    ga_status st = ga_tok_encode(tok, (const char *)data, size, &ids, &n, &err);
    if (st != GA_OK) {
        if (st != GA_ERR_ARG || ids || n != 0 || !strstr(err.msg, "UTF-8")) abort();
        return 0;
    }
    int vs = ga_tok_vocab_size(tok);
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= vs || !ga_tok_piece(tok, ids[i])) abort();
    char *back = NULL;
    size_t len = 0;
    if (ga_tok_decode(tok, ids, n, &back, &len, &err) != GA_OK) abort();
    if (plain_text(data, size) && (len != size || memcmp(back, data, size))) abort();
    /* streaming decode gives the same bytes */
    ga_tok_stream *s = ga_tok_stream_new(tok);
    if (!s) abort();
    size_t at = 0;
    for (int i = 0; i <= n; i++) {
        char *out;
        size_t k;
        st = i < n ? ga_tok_stream_push(s, ids[i], &out, &k, &err)
                   : ga_tok_stream_flush(s, &out, &k, &err);
        if (st != GA_OK || at + k > len || memcmp(back + at, out, k)) abort();
        at += k;
    }
    if (at != len) abort();
    ga_tok_stream_free(s);
    free(back);
    free(ids);
    return 0;
}
