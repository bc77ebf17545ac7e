/*
 * Fuzzes loading a tokenizer folder: tokenizer.json + tokenizer_config.json, written from one
 * input split at the first "\n--config--\n" line (no separator: no tokenizer_config.json).
 * Both are untrusted model files: every input must either load or fail with a message that
 * names the file. A tokenizer that loads is then used: every piece and label, an encode of
 * a fixed text with special-token, NFC and byte-level cases, and the decode of those ids,
 * which must succeed.
 */
#include "fuzz_util.h"
#include "gattn/tokenizer.h"

#define SEP "\n--config--\n"

static const char TEXT[] = "Hello, world! It's 42.\n\t  <|im_start|>user\ncaf\xc3\xa9 e\xcc\x81 "
                           "\xe4\xbd\xa0\xe5\xa5\xbd \xf0\x9f\x98\x80<|im_end|>\r\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *dir = ga_fuzz_dir();
    size_t n1, n2;
    const uint8_t *cfg;
    int has_cfg = ga_fuzz_split(data, size, SEP, &n1, &cfg, &n2);
    ga_fuzz_write(dir, "tokenizer.json", data, n1);
    if (has_cfg)
        ga_fuzz_write(dir, "tokenizer_config.json", cfg, n2);
    else
        ga_fuzz_remove(dir, "tokenizer_config.json");

    ga_err err = {{0}};
    ga_tokenizer *t = NULL;
    ga_status st = ga_tok_load_dir(dir, &t, &err);
    if (st != GA_OK) {
        /* a refusal is fine, but it must say which file */
        if (t || !err.msg[0] || !strstr(err.msg, "tokenizer")) abort();
        return 0;
    }
    int vs = ga_tok_vocab_size(t);
    char label[64];
    for (int32_t id = -1; id <= vs; id++) {
        const char *p = ga_tok_piece(t, id);
        if (p) (void)strlen(p);
        ga_tok_token_text(t, id, label, sizeof label);
    }
    int32_t *ids = NULL;
    int n = 0;
    if (ga_tok_encode(t, TEXT, sizeof TEXT - 1, &ids, &n, &err) == GA_OK) {
        char *back = NULL;
        size_t len = 0;
        if (ga_tok_decode(t, ids, n, &back, &len, &err) != GA_OK) abort();
        free(back);
    }
    free(ids);
    ga_tok_free(t);
    return 0;
}
