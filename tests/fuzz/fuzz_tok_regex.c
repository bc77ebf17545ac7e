/*
 * Fuzzes the Split pre-tokenizer: PCRE2 compiling a pattern read from a file, and the loop
 * that cuts text with it (empty matches, gaps, the match limits that grow with the text).
 * Input: one byte of options (bit 0: behavior Removed instead of Isolated), then the pattern
 * up to the first newline, then the text. The pattern replaces the regex of the small
 * tokenizer in tests/data/tok_small, with its NFC step and added tokens switched off, so the
 * text reaches the splitter as it is. A pattern PCRE2 refuses, or one that exceeds the limits
 * on this text, must fail with a message; otherwise, with Isolated, decoding the ids must give
 * the text back exactly (the pieces and the gaps between them cover every byte once, and
 * every byte has a token), and with Removed, at most the text's length.
 */
#include "fuzz_util.h"
#include "gattn/tokenizer.h"
#include "tok/tok_internal.h"

static ga_tokenizer *tok;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    ga_err err = {{0}};
    if (!tok) {
        if (ga_tok_load_dir(GA_FUZZ_TEST_DATA "/tok_small", &tok, &err) != GA_OK) {
            fprintf(stderr, "cannot load tok_small: %s\n", err.msg);
            abort();
        }
        tok->nfc = false;
        tok->n_added = 0;
        memset(tok->added_first, 0, sizeof tok->added_first);
    }
    if (size < 1) return 0;
    size_t plen, tlen;
    const uint8_t *text;
    ga_fuzz_split(data + 1, size - 1, "\n", &plen, &text, &tlen);
    if (ga_tok_compile_regex(tok, (const char *)data + 1, plen, &err) != GA_OK) {
        if (!strstr(err.msg, "regex")) abort();
        return 0;
    }
    tok->behavior = (data[0] & 1) ? GA_SPLIT_REMOVED : GA_SPLIT_ISOLATED;
    int32_t *ids = NULL;
    int n = 0;
    ga_status st = ga_tok_encode(tok, (const char *)text, tlen, &ids, &n, &err);
    if (st != GA_OK) {
        if (ids || !(strstr(err.msg, "UTF-8") || strstr(err.msg, "regex"))) abort();
        return 0;
    }
    char *back = NULL;
    size_t len = 0;
    if (ga_tok_decode(tok, ids, n, &back, &len, &err) != GA_OK) abort();
    if (tok->behavior == GA_SPLIT_ISOLATED ? (len != tlen || memcmp(back, text, tlen)) : len > tlen)
        abort();
    free(back);
    free(ids);
    return 0;
}
