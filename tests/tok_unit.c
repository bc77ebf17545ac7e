/*
 * Tokenizer unit tests that need no reference install: the synthetic tokenizer writer (ids at
 * their specified places, round trips, determinism), streaming decode of characters split
 * across tokens, U+FFFD placement for invalid bytes, token labels, the chat template,
 * invalid UTF-8 input, added-token flags on a hand-made tokenizer whose ids are worked out by
 * hand, and malformed tokenizer.json / tokenizer_config.json files.
 */
#include <stdint.h>

#include "gattn/tokenizer.h"
#include "testutil.h"

static char *g_tmp;

static bool ids_eq(const int32_t *a, int na, const int32_t *b, int nb) {
    return na == nb && (na == 0 || !memcmp(a, b, sizeof(int32_t) * (size_t)na));
}

/* Checks that s[0..n) is complete, valid UTF-8 (no partial character). */
static bool valid_utf8(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        int k = u[i] < 0x80                   ? 1
                : u[i] >= 0xC2 && u[i] < 0xE0 ? 2
                : u[i] >= 0xE0 && u[i] < 0xF0 ? 3
                : u[i] >= 0xF0 && u[i] < 0xF5 ? 4
                                              : 0;
        if (!k || i + (size_t)k > n) return false;
        for (int j = 1; j < k; j++)
            if ((u[i + (size_t)j] & 0xC0) != 0x80) return false;
        i += (size_t)k;
    }
    return true;
}

static ga_tokenizer *synthetic(int vocab, const char *name) {
    char *dir = ga_test_path(g_tmp, name);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", dir);
    CHECK(system(cmd) == 0);
    ga_err err = {{0}};
    ga_tokenizer *t = NULL;
    CHECK_OK(ga_tok_write_synthetic(dir, vocab, &err), &err);
    CHECK_OK(ga_tok_load_dir(dir, &t, &err), &err);
    free(dir);
    return t;
}

static void test_synthetic(void) {
    static const int sizes[] = {259, 300, 1000, 5000};
    for (int s = 0; s < 4; s++) {
        int V = sizes[s];
        char name[32];
        snprintf(name, sizeof name, "syn%d", V);
        ga_tokenizer *t = synthetic(V, name);
        if (!t) continue;
        CHECK(ga_tok_vocab_size(t) == V);
        CHECK(ga_tok_special_id(t, "<|endoftext|>") == V - 3);
        CHECK(ga_tok_special_id(t, "<|im_start|>") == V - 2);
        CHECK(ga_tok_special_id(t, "<|im_end|>") == V - 1);
        CHECK(ga_tok_special_id(t, "<|nope|>") == -1);
        CHECK(ga_tok_eos_id(t) == V - 1);
        CHECK(ga_tok_pad_id(t) == V - 3);
        CHECK(ga_tok_bos_id(t) == -1);
        for (int i = 0; i < V; i++)
            CHECK_MSG(ga_tok_piece(t, i) != NULL, "gap at id %d", i);
        CHECK(ga_tok_piece(t, V) == NULL && ga_tok_piece(t, -1) == NULL);
        /* byte tokens in byte order: each printable ASCII character alone encodes to itself */
        ga_err err = {{0}};
        for (int b = 0x21; b < 0x7f; b++) {
            char c = (char)b;
            int32_t *ids;
            int n;
            CHECK_OK(ga_tok_encode(t, &c, 1, &ids, &n, &err), &err);
            CHECK_MSG(n == 1 && ids[0] == b, "byte %d -> %d ids, first %d", b, n, n ? ids[0] : -1);
            free(ids);
        }
        CHECK(!strcmp(ga_tok_piece(t, ' '), "\xc4\xa0")); /* 'Ġ' */
        /* round trip, specials included */
        const char *text = "<|im_start|>user\nThe model's answer: 42 tokens, naïve café 你好 😀\t\n"
                           "  int main(void) { return 0; }<|im_end|>\n<|endoftext|>";
        int32_t *ids;
        int n;
        CHECK_OK(ga_tok_encode(t, text, strlen(text), &ids, &n, &err), &err);
        CHECK(n > 0 && ids[0] == V - 2 && ids[n - 1] == V - 3);
        for (int i = 0; i < n; i++)
            CHECK(ids[i] >= 0 && ids[i] < V);
        if (V >= 1000) CHECK(n < (int)strlen(text) / 2); /* merges were learned */
        char *back;
        size_t len;
        CHECK_OK(ga_tok_decode(t, ids, n, &back, &len, &err), &err);
        CHECK(back && len == strlen(text) && !strcmp(back, text));
        free(back);
        free(ids);
        ga_tok_free(t);
    }
    /* determinism: two writes give identical files */
    ga_err err = {{0}};
    char *a = ga_test_path(g_tmp, "det_a"), *b = ga_test_path(g_tmp, "det_b");
    char cmd[700];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' '%s'", a, b);
    CHECK(system(cmd) == 0);
    CHECK_OK(ga_tok_write_synthetic(a, 777, &err), &err);
    CHECK_OK(ga_tok_write_synthetic(b, 777, &err), &err);
    snprintf(cmd, sizeof cmd,
             "cmp -s '%s/tokenizer.json' '%s/tokenizer.json' && "
             "cmp -s '%s/tokenizer_config.json' '%s/tokenizer_config.json'",
             a, b, a, b);
    CHECK(system(cmd) == 0);
    CHECK(ga_tok_write_synthetic(a, 258, &err) == GA_ERR_ARG);
    CHECK(ga_tok_write_synthetic(a, -5, &err) == GA_ERR_ARG);
    CHECK(ga_tok_write_synthetic("/nonexistent/dir/x", 300, &err) == GA_ERR_IO);
    free(a);
    free(b);
}

/* The synthetic tokenizer's ids 0..255 are the bytes, which makes byte-level tests exact. */
static void test_decode_lossy(const ga_tokenizer *t) {
    static const struct {
        int n;
        int32_t ids[6];
        const char *want;
    } cases[] = {
        {2,
         {0xE4, 'A'},
         "\xEF\xBF\xBD"
         "A"},
        {3, {0xF0, 0x9F, 0x98}, "\xEF\xBF\xBD"},                         /* truncated at end */
        {2, {0xC0, 0x80}, "\xEF\xBF\xBD\xEF\xBF\xBD"},                   /* overlong lead */
        {3, {0xED, 0xA0, 0x80}, "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"}, /* surrogate */
        {4, {0xF0, 0x9F, 0x98, 0x80}, "\xF0\x9F\x98\x80"},
        {5,
         {0xE4, 0xBD, 0xA0, 0xFF, 'x'},
         "\xE4\xBD\xA0\xEF\xBF\xBD"
         "x"},
        {0, {0}, ""},
    };
    ga_err err = {{0}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *s;
        size_t len;
        CHECK_OK(ga_tok_decode(t, cases[i].ids, cases[i].n, &s, &len, &err), &err);
        CHECK_MSG(s && len == strlen(cases[i].want) && !strcmp(s, cases[i].want), "case %zu", i);
        free(s);
    }
    char *s = (char *)1;
    int32_t bad[2] = {5, ga_tok_vocab_size(t)};
    CHECK(ga_tok_decode(t, bad, 2, &s, NULL, &err) == GA_ERR_ARG && s == NULL);
    CHECK(strstr(err.msg, "position 1") != NULL);
    bad[1] = -1;
    CHECK(ga_tok_decode(t, bad, 2, &s, NULL, &err) == GA_ERR_ARG);
}

static void test_stream(const ga_tokenizer *t) {
    ga_err err = {{0}};
    ga_tok_stream *s = ga_tok_stream_new(t);
    CHECK(s != NULL);
    char *out;
    size_t n;
    /* "你" = E4 BD A0 pushed byte by byte: nothing until the last byte */
    CHECK_OK(ga_tok_stream_push(s, 'a', &out, &n, &err), &err);
    CHECK(n == 1 && !strcmp(out, "a"));
    CHECK_OK(ga_tok_stream_push(s, 0xE4, &out, &n, &err), &err);
    CHECK(n == 0 && out[0] == 0);
    CHECK_OK(ga_tok_stream_push(s, 0xBD, &out, &n, &err), &err);
    CHECK(n == 0);
    CHECK_OK(ga_tok_stream_push(s, 0xA0, &out, &n, &err), &err);
    CHECK(n == 3 && !memcmp(out, "\xE4\xBD\xA0", 3));
    /* an unfinished character at the end flushes as one U+FFFD */
    CHECK_OK(ga_tok_stream_push(s, 0xF0, &out, &n, &err), &err);
    CHECK_OK(ga_tok_stream_push(s, 0x9F, &out, &n, &err), &err);
    CHECK(n == 0);
    CHECK_OK(ga_tok_stream_flush(s, &out, &n, &err), &err);
    CHECK(n == 3 && !memcmp(out, "\xEF\xBF\xBD", 3));
    CHECK_OK(ga_tok_stream_flush(s, &out, &n, &err), &err);
    CHECK(n == 0);
    /* a hopeless byte comes out at once, and the next character is not lost */
    CHECK_OK(ga_tok_stream_push(s, 0xE4, &out, &n, &err), &err);
    CHECK_OK(ga_tok_stream_push(s, 'z', &out, &n, &err), &err);
    CHECK(n == 4 && !memcmp(out, "\xEF\xBF\xBDz", 4));
    CHECK(ga_tok_stream_push(s, ga_tok_vocab_size(t), &out, &n, &err) == GA_ERR_ARG);

    /* random id sequences: every chunk is valid UTF-8 and the chunks add up to decode() */
    uint64_t rng = 12345;
    int V = ga_tok_vocab_size(t);
    for (int trial = 0; trial < 300; trial++) {
        int32_t ids[40];
        int m = 1 + (int)(ga_test_rand_u64(&rng) % 40);
        for (int i = 0; i < m; i++) {
            uint64_t r = ga_test_rand_u64(&rng);
            /* mostly high bytes, so characters straddle tokens often */
            ids[i] = (int32_t)(r % 4 ? 0x80 + (r >> 8) % 0x78 : (r >> 8) % (uint64_t)V);
        }
        char *whole;
        size_t wl;
        CHECK_OK(ga_tok_decode(t, ids, m, &whole, &wl, &err), &err);
        char *acc = malloc(wl + 64);
        size_t al = 0;
        bool chunks_ok = true;
        for (int i = 0; i <= m; i++) {
            ga_status st = i < m ? ga_tok_stream_push(s, ids[i], &out, &n, &err)
                                 : ga_tok_stream_flush(s, &out, &n, &err);
            if (st || al + n > wl) {
                chunks_ok = false;
                break;
            }
            chunks_ok &= valid_utf8(out, n);
            memcpy(acc + al, out, n);
            al += n;
        }
        CHECK_MSG(chunks_ok && al == wl && !memcmp(acc, whole, wl), "trial %d", trial);
        free(acc);
        free(whole);
    }
    ga_tok_stream_free(s);
    ga_tok_stream_free(NULL);
}

static void test_labels(const ga_tokenizer *t) {
    char buf[64];
    CHECK(ga_tok_token_text(t, 0xE4, buf, sizeof buf) == 4 && !strcmp(buf, "\\xe4"));
    CHECK(ga_tok_token_text(t, '\n', buf, sizeof buf) == 2 && !strcmp(buf, "\\n"));
    CHECK(ga_tok_token_text(t, 0x1b, buf, sizeof buf) == 4 && !strcmp(buf, "\\x1b"));
    CHECK(ga_tok_token_text(t, 'q', buf, sizeof buf) == 1 && !strcmp(buf, "q"));
    int V = ga_tok_vocab_size(t);
    CHECK(ga_tok_token_text(t, V - 1, buf, sizeof buf) == 10 && !strcmp(buf, "<|im_end|>"));
    CHECK(ga_tok_token_text(t, V - 1, buf, 5) == 4 && !strcmp(buf, "<|im"));
    CHECK(ga_tok_token_text(t, 0xE4, buf, 4) == 0 && !strcmp(buf, "")); /* \xe4 does not fit */
    CHECK(ga_tok_token_text(t, V, buf, sizeof buf) == -1 && buf[0] == 0);
    CHECK(ga_tok_token_text(t, -3, buf, sizeof buf) == -1);
}

static void test_chat(const ga_tokenizer *t) {
    ga_err err = {{0}};
    const char *roles[] = {"system", "user"};
    const char *contents[] = {"You are helpful.", "Hi\nthere"};
    char *s;
    CHECK_OK(ga_tok_chat_format(roles, contents, 2, &s, &err), &err);
    CHECK(s && !strcmp(s, "<|im_start|>system\nYou are helpful.<|im_end|>\n"
                          "<|im_start|>user\nHi\nthere<|im_end|>\n<|im_start|>assistant\n"));
    int32_t *ids;
    int n;
    CHECK_OK(ga_tok_encode(t, s, strlen(s), &ids, &n, &err), &err);
    int V = ga_tok_vocab_size(t), starts = 0, ends = 0;
    for (int i = 0; i < n; i++)
        starts += ids[i] == V - 2, ends += ids[i] == V - 1;
    CHECK(starts == 3 && ends == 2 && ids[0] == V - 2);
    free(ids);
    free(s);
    CHECK_OK(ga_tok_chat_format(NULL, NULL, 0, &s, &err), &err);
    CHECK(s && !strcmp(s, "<|im_start|>assistant\n"));
    free(s);
    const char *bad_roles[] = {"us\ner"};
    CHECK(ga_tok_chat_format(bad_roles, contents, 1, &s, &err) == GA_ERR_ARG && !s);
    const char *null_c[] = {NULL};
    CHECK(ga_tok_chat_format(roles, null_c, 1, &s, &err) == GA_ERR_ARG);
    CHECK(ga_tok_chat_format(roles, contents, -1, &s, &err) == GA_ERR_ARG);
}

static void test_invalid_utf8(const ga_tokenizer *t) {
    static const struct {
        const char *s;
        size_t n, off;
    } bad[] = {
        {"\xff", 1, 0},
        {"ab\xc0\xaf", 4, 2},       /* overlong '/' */
        {"x\xed\xa0\x80", 4, 1},    /* UTF-16 surrogate */
        {"\xf4\x90\x80\x80", 4, 0}, /* above U+10FFFF */
        {"abc\xe4\xbd", 5, 3},      /* truncated */
        {"ok \x80 no", 7, 3},       /* stray continuation byte */
        {"\xe0\x80\x80", 3, 0},     /* overlong 3-byte */
    };
    ga_err err = {{0}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int32_t *ids = (int32_t *)1;
        int n = 7;
        ga_status st = ga_tok_encode(t, bad[i].s, bad[i].n, &ids, &n, &err);
        char want[64];
        snprintf(want, sizeof want, "byte offset %zu", bad[i].off);
        CHECK_MSG(st == GA_ERR_ARG && ids == NULL && n == 0 && strstr(err.msg, want),
                  "case %zu: %s", i, err.msg);
    }
    /* U+0000 is valid UTF-8 and encodes like any other byte */
    int32_t *ids;
    int n;
    CHECK_OK(ga_tok_encode(t, "a\0b", 3, &ids, &n, &err), &err);
    CHECK(n == 3 && ids[0] == 'a' && ids[1] == 0 && ids[2] == 'b');
    free(ids);
    CHECK_OK(ga_tok_encode(t, "", 0, &ids, &n, &err), &err);
    CHECK(n == 0 && ids != NULL);
    free(ids);
}

/* ------------------------------------------------------------ hand-made tokenizer */

/* Vocabulary a=0 b=1 ab=2 Ġ=3 é(c3 a9 as byte-level "Ã©")=7 ... with pre-tokenizer \s+|\S+
 * so expected ids can be worked out by hand. */
#define BASE_MODEL                                                                                 \
    "\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2, \"\\u0120\": 3, "   \
    "\"\\u00c3\": 8, \"\\u00a9\": 9}, \"merges\": [\"a b\"]}"
#define BASE_PIPE                                                                                  \
    "\"normalizer\": {\"type\": \"NFC\"}, \"pre_tokenizer\": {\"type\": \"Sequence\", "            \
    "\"pretokenizers\": [{\"type\": \"Split\", \"pattern\": {\"Regex\": \"\\\\s+|\\\\S+\"}, "      \
    "\"behavior\": \"Isolated\", \"invert\": false}, {\"type\": \"ByteLevel\", "                   \
    "\"add_prefix_space\": false, \"use_regex\": false}]}, \"decoder\": {\"type\": "               \
    "\"ByteLevel\"}"
#define BASE_ADDED                                                                                 \
    "\"added_tokens\": [{\"id\": 4, \"content\": \"<s>\", \"special\": true}, "                    \
    "{\"id\": 5, \"content\": \"<m>\", \"lstrip\": true, \"rstrip\": true, \"special\": true}, "   \
    "{\"id\": 6, \"content\": \"zz\", \"single_word\": true, \"normalized\": false}, "             \
    "{\"id\": 7, \"content\": \"\\u00e9\", \"normalized\": true}]"

static ga_status load_text(const char *json, ga_tokenizer **t, ga_err *err) {
    char *p = ga_test_path(g_tmp, "tokenizer.json");
    ga_test_write_file(p, json, strlen(json));
    ga_status st = ga_tok_load(p, t, err);
    free(p);
    return st;
}

static void expect_ids(const ga_tokenizer *t, const char *text, const int32_t *want, int nw) {
    ga_err err = {{0}};
    int32_t *ids;
    int n;
    CHECK_OK(ga_tok_encode(t, text, strlen(text), &ids, &n, &err), &err);
    bool ok = ids_eq(ids, n, want, nw);
    CHECK_MSG(ok, "'%s': got %d ids (first %d)", text, n, n ? ids[0] : -1);
    free(ids);
}

static void test_handmade(void) {
    ga_err err = {{0}};
    ga_tokenizer *t = NULL;
    CHECK_OK(load_text("{" BASE_MODEL ", " BASE_ADDED ", " BASE_PIPE "}", &t, &err), &err);
    if (!t) return;
    CHECK(ga_tok_vocab_size(t) == 10);
    expect_ids(t, "ab a b<s>", (int32_t[]){2, 3, 0, 3, 1, 4}, 6);
    expect_ids(t, "abc", (int32_t[]){2}, 1); /* 'c' has no token and there is no unk: dropped */
    expect_ids(t, "a  <m>  b", (int32_t[]){0, 5, 1}, 3); /* lstrip + rstrip eat the spaces */
    expect_ids(t, "a zz b", (int32_t[]){0, 3, 6, 3, 1}, 5);
    expect_ids(t, "azz", (int32_t[]){0}, 1); /* single_word: not inside a word */
    /* normalized=true: matched after NFC, so the decomposed form finds it too */
    expect_ids(t, "\xc3\xa9", (int32_t[]){7}, 1);
    expect_ids(t, "e\xcc\x81", (int32_t[]){7}, 1);
    expect_ids(t, "<s><s>", (int32_t[]){4, 4}, 2);
    CHECK(ga_tok_special_id(t, "<s>") == 4 && ga_tok_special_id(t, "zz") == 6);
    CHECK(ga_tok_eos_id(t) == -1);
    char *s;
    size_t len;
    CHECK_OK(ga_tok_decode(t, (int32_t[]){2, 3, 4, 8, 9}, 5, &s, &len, &err), &err);
    CHECK(s && !strcmp(s, "ab <s>\xc3\xa9"));
    free(s);
    ga_tok_free(t);
}

/* A tokenizer with no single-byte tokens and no unk_token (issue 10, item 15): every byte is
 * dropped, so words BPE to no ids at all, and the word cache stores and replays empty id
 * lists. This passed a NULL pointer to memcpy (UBSan, the sanitizer build of this test). */
static void test_no_byte_tokens(void) {
    ga_err err = {{0}};
    ga_tokenizer *t = NULL;
    CHECK_OK(load_text("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"ab\": 0}, \"merges\": []}, "
                       "\"pre_tokenizer\": {\"type\": \"ByteLevel\", \"use_regex\": false}, "
                       "\"decoder\": {\"type\": \"ByteLevel\"}}",
                       &t, &err),
             &err);
    if (!t) return;
    expect_ids(t, "xy", NULL, 0);
    expect_ids(t, "ab", NULL, 0); /* "ab" is a token, but no byte of it is one to merge from */
    ga_tok_free(t);
    /* the same through the word cache (a Split pre-tokenizer cuts words, repeats hit) */
    CHECK_OK(
        load_text(
            "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"ab\": 0}, \"merges\": []}, " BASE_PIPE
            "}",
            &t, &err),
        &err);
    if (!t) return;
    expect_ids(t, "xy xy xy", NULL, 0);
    ga_tok_free(t);
}

/* The regex limits grow with the text (item 14) but must still stop a pattern with
 * exponential backtracking, quickly and with an error, on short and on long text. */
static void test_regex_bound(void) {
    ga_err err = {{0}};
    ga_tokenizer *t = NULL;
    CHECK_OK(load_text("{" BASE_MODEL ", \"pre_tokenizer\": {\"type\": \"Sequence\", "
                       "\"pretokenizers\": [{\"type\": \"Split\", \"pattern\": {\"Regex\": "
                       "\"(a|aa)+b|\\\\s\"}, \"behavior\": \"Isolated\"}, {\"type\": "
                       "\"ByteLevel\", \"use_regex\": false}]}, \"decoder\": {\"type\": "
                       "\"ByteLevel\"}}",
                       &t, &err),
             &err);
    if (!t) return;
    expect_ids(t, "aab a", (int32_t[]){0, 2, 3, 0}, 4);
    static const size_t lens[] = {60, 1 << 20};
    for (int k = 0; k < 2; k++) {
        size_t n = lens[k];
        char *s = malloc(n + 1);
        if (!s) continue;
        memset(s, 'a', n);
        s[n] = 0;
        int32_t *ids = NULL;
        int nid = -1;
        ga_status st = ga_tok_encode(t, s, n, &ids, &nid, &err);
        CHECK_MSG(st == GA_ERR_UNSUPPORTED && strstr(err.msg, "limit exceeded") && !ids && nid == 0,
                  "%zu a's: %s: %s", n, ga_status_name(st), err.msg);
        free(ids);
        free(s);
    }
    ga_tok_free(t);
}

/* ------------------------------------------------------------ malformed files */

static void test_malformed(void) {
    static const struct {
        const char *json;
        ga_status want;
        const char *msg;
    } cases[] = {
        {"", GA_ERR_FORMAT, "not valid JSON"},
        {"{\"model\": ", GA_ERR_FORMAT, "not valid JSON"},
        {"[1, 2]", GA_ERR_FORMAT, "expected a JSON object"},
        {"{" BASE_PIPE "}", GA_ERR_FORMAT, "\"model\""},
        {"{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}, \"merges\": []}, " BASE_PIPE "}",
         GA_ERR_UNSUPPORTED, "WordPiece"},
        {"{\"model\": {\"vocab\": {\"a\": 0}, \"merges\": []}, " BASE_PIPE "}", GA_ERR_FORMAT,
         "type"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": [], \"merges\": []}, " BASE_PIPE "}",
         GA_ERR_FORMAT, "model.vocab"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": \"0\"}, \"merges\": []}, " BASE_PIPE
         "}",
         GA_ERR_FORMAT, "model.vocab['a']"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": -1}, \"merges\": []}, " BASE_PIPE "}",
         GA_ERR_FORMAT, "model.vocab['a']"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 1.5}, \"merges\": []}, " BASE_PIPE "}",
         GA_ERR_FORMAT, "integer"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 1e12}, \"merges\": []}, " BASE_PIPE
         "}",
         GA_ERR_FORMAT, "integer"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {}, \"merges\": []}, " BASE_PIPE "}",
         GA_ERR_FORMAT, "empty"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 0}, \"merges\": "
         "[]}, " BASE_PIPE "}",
         GA_ERR_FORMAT, "id 0 is given to both"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"a\": 1}, \"merges\": "
         "[]}, " BASE_PIPE "}",
         GA_ERR_FORMAT, "appears twice"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": {}}, " BASE_PIPE "}",
         GA_ERR_FORMAT, "model.merges"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"ab\": 1}, \"merges\": "
         "[\"a b\"]}, " BASE_PIPE "}",
         GA_ERR_FORMAT, "token 'b' is not in model.vocab"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": "
         "[[\"a\", \"b\"]]}, " BASE_PIPE "}",
         GA_ERR_FORMAT, "merged token 'ab'"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [\"ab\"]}, " BASE_PIPE
         "}",
         GA_ERR_FORMAT, "merges[0]"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [[\"a\", \"a\", "
         "\"a\"]]}, " BASE_PIPE "}",
         GA_ERR_FORMAT, "merges[0]"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [7]}, " BASE_PIPE "}",
         GA_ERR_FORMAT, "merges[0]"},
        {"{" BASE_MODEL ", \"added_tokens\": {}, " BASE_PIPE "}", GA_ERR_FORMAT, "added_tokens"},
        {"{" BASE_MODEL ", \"added_tokens\": [{\"content\": \"<s>\"}], " BASE_PIPE "}",
         GA_ERR_FORMAT, "added_tokens[0]"},
        {"{" BASE_MODEL ", \"added_tokens\": [{\"id\": 4, \"content\": \"\"}], " BASE_PIPE "}",
         GA_ERR_FORMAT, "content"},
        {"{" BASE_MODEL ", \"added_tokens\": [{\"id\": 0, \"content\": \"<s>\"}], " BASE_PIPE "}",
         GA_ERR_FORMAT, "id 0 is already the token 'a'"},
        {"{" BASE_MODEL ", \"added_tokens\": [{\"id\": 4, \"content\": \"<s>\"}, {\"id\": 5, "
         "\"content\": \"<s>\"}], " BASE_PIPE "}",
         GA_ERR_FORMAT, "already has id 4"},
        {"{" BASE_MODEL
         ", \"added_tokens\": [{\"id\": 4, \"content\": \"<s>\", \"special\": 1}], " BASE_PIPE "}",
         GA_ERR_FORMAT, "booleans"},
        {"{" BASE_MODEL ", \"normalizer\": {\"type\": \"Lowercase\"}, \"pre_tokenizer\": "
         "{\"type\": \"ByteLevel\", \"use_regex\": false}, \"decoder\": {\"type\": "
         "\"ByteLevel\"}}",
         GA_ERR_UNSUPPORTED, "Lowercase"},
        {"{" BASE_MODEL ", \"decoder\": {\"type\": \"ByteLevel\"}}", GA_ERR_UNSUPPORTED,
         "no pre_tokenizer"},
        {"{" BASE_MODEL ", \"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"Regex\": "
         "\"(\"}, \"behavior\": \"Isolated\"}, \"decoder\": {\"type\": \"ByteLevel\"}}",
         GA_ERR_FORMAT, "regex"},
        {"{" BASE_MODEL ", \"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"Regex\": "
         "\"a\"}, \"behavior\": \"Contiguous\"}, \"decoder\": {\"type\": \"ByteLevel\"}}",
         GA_ERR_UNSUPPORTED, "Contiguous"},
        {"{" BASE_MODEL ", \"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"Regex\": "
         "\"a\"}, \"behavior\": \"Isolated\"}, \"decoder\": {\"type\": \"ByteLevel\"}}",
         GA_ERR_UNSUPPORTED, "no ByteLevel"},
        {"{" BASE_MODEL ", \"pre_tokenizer\": {\"type\": \"ByteLevel\"}, \"decoder\": {\"type\": "
         "\"ByteLevel\"}}",
         GA_ERR_UNSUPPORTED, "use_regex"},
        {"{" BASE_MODEL ", \"pre_tokenizer\": {\"type\": \"Whitespace\"}, \"decoder\": {\"type\": "
         "\"ByteLevel\"}}",
         GA_ERR_UNSUPPORTED, "Whitespace"},
        {"{" BASE_MODEL ", \"pre_tokenizer\": {\"type\": \"ByteLevel\", \"use_regex\": false}}",
         GA_ERR_FORMAT, "decoder"},
        {"{" BASE_MODEL ", \"pre_tokenizer\": {\"type\": \"ByteLevel\", \"use_regex\": false}, "
         "\"decoder\": {\"type\": \"WordPiece\"}}",
         GA_ERR_UNSUPPORTED, "WordPiece"},
        {"{" BASE_MODEL ", " BASE_PIPE ", \"post_processor\": {\"type\": "
         "\"TemplateProcessing\"}}",
         GA_ERR_UNSUPPORTED, "TemplateProcessing"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [], "
         "\"byte_fallback\": true}, " BASE_PIPE "}",
         GA_ERR_UNSUPPORTED, "byte_fallback"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [], "
         "\"dropout\": 0.1}, " BASE_PIPE "}",
         GA_ERR_UNSUPPORTED, "dropout"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [], "
         "\"unk_token\": \"<unk>\"}, " BASE_PIPE "}",
         GA_ERR_FORMAT, "unk_token"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [], "
         "\"end_of_word_suffix\": \"</w>\"}, " BASE_PIPE "}",
         GA_ERR_UNSUPPORTED, "end_of_word_suffix"},
        /* strict JSON (issue 10, item 5): one value, no NUL in strings, no duplicate keys */
        {"{" BASE_MODEL ", " BASE_PIPE "} x", GA_ERR_FORMAT, "trailing bytes after the JSON value"},
        {"{" BASE_MODEL ", " BASE_PIPE "}{}", GA_ERR_FORMAT, "trailing bytes"},
        {"{" BASE_MODEL ", " BASE_PIPE "}\n\"x\"", GA_ERR_FORMAT, "trailing bytes"},
        {"{" BASE_MODEL
         ", \"added_tokens\": [{\"id\": 4, \"content\": \"abc\\u0000def\"}], " BASE_PIPE "}",
         GA_ERR_FORMAT, "\\u0000 (NUL) inside a JSON string"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\\u0000b\": 0}, \"merges\": "
         "[]}, " BASE_PIPE "}",
         GA_ERR_FORMAT, "NUL"},
        {"{" BASE_MODEL ", \"added_tokens\": [{\"id\": 4, \"content\": \"a\tb\"}], " BASE_PIPE "}",
         GA_ERR_FORMAT, "raw control byte 0x09 inside a JSON string"},
        {"{\x01" BASE_MODEL ", " BASE_PIPE "}", GA_ERR_FORMAT,
         "control byte 0x01 outside a string"},
        {"{" BASE_MODEL ", " BASE_PIPE ", \"model\": {}}", GA_ERR_FORMAT,
         "key \"model\" appears twice at the top level"},
        {"{" BASE_MODEL
         ", \"added_tokens\": [{\"id\": 4, \"content\": \"<s>\", \"id\": 5}], " BASE_PIPE "}",
         GA_ERR_FORMAT, "key \"id\" appears twice in \"added_tokens[0]\""},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [], \"type\": "
         "\"BPE\"}, " BASE_PIPE "}",
         GA_ERR_FORMAT, "key \"type\" appears twice in \"model\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ga_err err = {{0}};
        ga_tokenizer *t = (ga_tokenizer *)1;
        ga_status st = load_text(cases[i].json, &t, &err);
        CHECK_MSG(st == cases[i].want && t == NULL && strstr(err.msg, cases[i].msg) &&
                      strstr(err.msg, "tokenizer.json"),
                  "case %zu: got %s: %s", i, ga_status_name(st), err.msg);
    }
    /* Accepted: trailing whitespace, and a backslash before "u0000" that is itself escaped
     * (the token is the 7 characters \u0000, no NUL). */
    {
        ga_err err = {{0}};
        ga_tokenizer *t = NULL;
        CHECK_OK(load_text("{" BASE_MODEL ", \"added_tokens\": [{\"id\": 4, \"content\": "
                           "\"\\\\u0000\"}], " BASE_PIPE "} \n\t\r\n",
                           &t, &err),
                 &err);
        CHECK(t && ga_tok_special_id(t, "\\u0000") == 4);
        ga_tok_free(t);
    }
    /* A duplicate among many keys (the hash-map path): 40 vocabulary entries, one twice. */
    {
        char json[4096];
        int o = snprintf(json, sizeof json, "{\"model\": {\"type\": \"BPE\", \"vocab\": {");
        for (int k = 0; k < 40; k++)
            o += snprintf(json + o, sizeof json - (size_t)o, "\"t%d\": %d, ", k == 33 ? 7 : k, k);
        snprintf(json + o, sizeof json - (size_t)o, "\"end\": 40}, \"merges\": []}, %s}",
                 BASE_PIPE);
        ga_err err = {{0}};
        ga_tokenizer *t = (ga_tokenizer *)1;
        CHECK(load_text(json, &t, &err) == GA_ERR_FORMAT && !t);
        CHECK_MSG(strstr(err.msg, "key \"t7\" appears twice in \"model.vocab\""), "%s", err.msg);
    }
    /* files that are not there or not files */
    ga_err err = {{0}};
    ga_tokenizer *t;
    CHECK(ga_tok_load("/nonexistent/tokenizer.json", &t, &err) == GA_ERR_IO && !t);
    CHECK(strstr(err.msg, "/nonexistent/tokenizer.json") != NULL);
    CHECK(ga_tok_load(g_tmp, &t, &err) == GA_ERR_IO);
    CHECK(ga_tok_load_dir("/nonexistent", &t, &err) == GA_ERR_IO);

    /* tokenizer_config.json must agree with tokenizer.json */
    static const struct {
        const char *json, *msg;
    } configs[] = {
        {"[]", "expected a JSON object"},
        {"{\"eos_token\": \"<nope>\"}", "eos_token '<nope>'"},
        {"{\"eos_token\": 5}", "eos_token must be"},
        {"{\"added_tokens_decoder\": {\"4\": {\"content\": \"<t>\"}}}", "does not match"},
        {"{\"added_tokens_decoder\": {\"x\": {\"content\": \"<s>\"}}}", "added_tokens_decoder"},
        {"{\"added_tokens_decoder\": {\"99\": {\"content\": \"<s>\"}}}", "does not match"},
        {"{\"eos_token\": \"<m>\", \"eos_token\": \"<s>\"}",
         "key \"eos_token\" appears twice at the top level"},
        {"{\"eos_token\": \"<m>\\u0000x\"}", "NUL"},
        {"{\"eos_token\": \"<m>\"} {}", "trailing bytes"},
        {"{\"added_tokens_decoder\": {\"4\": {\"content\": \"<s>\"}, \"4\": {\"content\": "
         "\"<s>\"}}}",
         "key \"4\" appears twice in \"added_tokens_decoder\""},
    };
    char *dir = ga_test_path(g_tmp, "cfg");
    char cmd[600];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", dir);
    CHECK(system(cmd) == 0);
    char *tj = ga_test_path(dir, "tokenizer.json"),
         *tc = ga_test_path(dir, "tokenizer_config.json");
    const char *good = "{" BASE_MODEL ", " BASE_ADDED ", " BASE_PIPE "}";
    ga_test_write_file(tj, good, strlen(good));
    for (size_t i = 0; i < sizeof configs / sizeof configs[0]; i++) {
        ga_test_write_file(tc, configs[i].json, strlen(configs[i].json));
        ga_status st = ga_tok_load_dir(dir, &t, &err);
        CHECK_MSG(st == GA_ERR_FORMAT && !t && strstr(err.msg, configs[i].msg) &&
                      strstr(err.msg, "tokenizer_config.json"),
                  "config %zu: %s", i, err.msg);
    }
    const char *ok = "{\"eos_token\": {\"content\": \"<m>\"}, \"bos_token\": \"<s>\", "
                     "\"pad_token\": null, \"added_tokens_decoder\": {\"4\": {\"content\": "
                     "\"<s>\"}}}";
    ga_test_write_file(tc, ok, strlen(ok));
    CHECK_OK(ga_tok_load_dir(dir, &t, &err), &err);
    CHECK(t && ga_tok_eos_id(t) == 5 && ga_tok_bos_id(t) == 4 && ga_tok_pad_id(t) == -1);
    ga_tok_free(t);
    free(tj);
    free(tc);
    free(dir);
}

int main(void) {
    g_tmp = ga_test_tmpdir("tok");
    if (!g_tmp) {
        fprintf(stderr, "cannot make a temp dir\n");
        return 1;
    }
    test_synthetic();
    ga_tokenizer *t = synthetic(600, "syn600");
    if (t) {
        test_decode_lossy(t);
        test_stream(t);
        test_labels(t);
        test_chat(t);
        test_invalid_utf8(t);
        ga_tok_free(t);
    }
    test_handmade();
    test_no_byte_tokens();
    test_regex_bound();
    test_malformed();
    ga_test_rmtree(g_tmp);
    free(g_tmp);
    return ga_test_finish();
}
