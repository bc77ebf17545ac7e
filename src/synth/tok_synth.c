/*
 * Writes a small synthetic byte-level BPE tokenizer in Hugging Face's format, for random
 * demo models: 256 byte tokens, merges learned greedily (most frequent adjacent pair first,
 * ties to the smallest id pair) from the built-in text cut with Qwen's pre-tokenizer regex,
 * deterministic filler merges when the text runs out of pairs, and three special tokens at
 * the top of the vocabulary. The files have the same normalizer / pre-tokenizer / decoder
 * structure as Qwen's, so the ordinary loader reads them.
 */
#include <errno.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok/tok_internal.h"
#include "synth/tok_synth.h"

/* Qwen2/Qwen3's pre-tokenizer pattern, as their tokenizer.json carries it. */
static const char QWEN_REGEX[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+"
    "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

static const char *const SPECIALS[3] = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};

typedef struct synth {
    int n_tok, cap_tok;
    char **tok; /* raw bytes of each token, NUL-terminated (no token holds a NUL byte past
                 * id 0, and lengths are kept separately) */
    uint32_t *len;
    ga_strmap map; /* raw bytes -> id */
    int n_merge, cap_merge;
    int32_t (*merge)[2];
    /* training words: symbol ids, concatenated, with per-word start, length and count */
    int n_words;
    int32_t *syms;
    int *start, *wlen, *count;
} synth;

static void synth_free(synth *s) {
    for (int i = 0; i < s->n_tok; i++)
        free(s->tok[i]);
    free(s->tok);
    free(s->len);
    ga_strmap_free(&s->map);
    free(s->merge);
    free(s->syms);
    free(s->start);
    free(s->wlen);
    free(s->count);
}

/* Adds token bytes (copied); returns its id, the existing id, or -2 when out of memory. */
static int32_t add_token(synth *s, const char *b, uint32_t n) {
    int32_t have = ga_strmap_get(&s->map, b, n);
    if (have >= 0) return have;
    if (s->n_tok == s->cap_tok) {
        int nc = s->cap_tok ? 2 * s->cap_tok : 1024;
        char **t = realloc(s->tok, sizeof(char *) * (size_t)nc);
        if (!t) return -2;
        s->tok = t;
        uint32_t *l = realloc(s->len, sizeof(uint32_t) * (size_t)nc);
        if (!l) return -2;
        s->len = l;
        s->cap_tok = nc;
    }
    char *c = malloc(n + 1);
    if (!c) return -2;
    memcpy(c, b, n);
    c[n] = 0;
    s->tok[s->n_tok] = c;
    s->len[s->n_tok] = n;
    if (ga_strmap_put(&s->map, c, n, s->n_tok) == -2) return -2;
    return s->n_tok++;
}

static int add_merge(synth *s, int32_t a, int32_t b) {
    if (s->n_merge == s->cap_merge) {
        int nc = s->cap_merge ? 2 * s->cap_merge : 1024;
        void *p = realloc(s->merge, sizeof *s->merge * (size_t)nc);
        if (!p) return -1;
        s->merge = p;
        s->cap_merge = nc;
    }
    s->merge[s->n_merge][0] = a;
    s->merge[s->n_merge][1] = b;
    s->n_merge++;
    return 0;
}

/* Cuts the built-in text into words with the regex and counts each distinct word. */
static ga_status load_words(synth *s, ga_err *err) {
    const char *text = ga_tok_synth_text;
    size_t n = strlen(text);
    int code;
    PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)QWEN_REGEX, PCRE2_ZERO_TERMINATED,
                                   PCRE2_UTF | PCRE2_UCP, &code, &off, NULL);
    pcre2_match_data *md = re ? pcre2_match_data_create_from_pattern(re, NULL) : NULL;
    ga_strmap words;
    s->syms = malloc(sizeof(int32_t) * n);
    s->start = malloc(sizeof(int) * n);
    s->wlen = malloc(sizeof(int) * n);
    s->count = calloc(n, sizeof(int));
    ga_status st = ga_strmap_init(&words, 1024, err);
    if (st || !re || !md || !s->syms || !s->start || !s->wlen || !s->count) {
        if (!st) ga_strmap_free(&words);
        pcre2_match_data_free(md);
        pcre2_code_free(re);
        return st ? st : ga_err_set(err, GA_ERR_OOM, "synthetic tokenizer: setup failed");
    }
    size_t pos = 0;
    int nsym = 0;
    while (pos < n && pcre2_match(re, (PCRE2_SPTR)text, n, pos, 0, md, NULL) > 0) {
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        const char *w = text + ov[0];
        uint32_t wl = (uint32_t)(ov[1] - ov[0]);
        pos = ov[1];
        int32_t k = ga_strmap_get(&words, w, wl);
        if (k < 0) {
            k = s->n_words++;
            ga_strmap_put(&words, w, wl, k);
            s->start[k] = nsym;
            s->wlen[k] = (int)wl;
            for (uint32_t i = 0; i < wl; i++)
                s->syms[nsym++] = (uint8_t)w[i];
        }
        s->count[k]++;
    }
    ga_strmap_free(&words);
    pcre2_match_data_free(md);
    pcre2_code_free(re);
    return GA_OK;
}

/* One greedy step: the most frequent adjacent pair over all words; 0 when none is left. */
static int best_pair(const synth *s, ga_pairmap *counts, int32_t *ba, int32_t *bb) {
    memset(counts->keys, 0, sizeof(uint64_t) * counts->cap);
    counts->count = 0;
    int best = 0;
    for (int w = 0; w < s->n_words; w++) {
        const int32_t *x = s->syms + s->start[w];
        for (int i = 0; i + 1 < s->wlen[w]; i++) {
            int32_t dummy, c = ga_pairmap_get(counts, x[i], x[i + 1], &dummy);
            c = (c < 0 ? 0 : c) + s->count[w];
            ga_pairmap_put(counts, x[i], x[i + 1], c, 0);
            if (c > best || (c == best && (x[i] < *ba || (x[i] == *ba && x[i + 1] < *bb)))) {
                best = c;
                *ba = x[i];
                *bb = x[i + 1];
            }
        }
    }
    return best;
}

static void apply_merge(synth *s, int32_t a, int32_t b, int32_t m) {
    for (int w = 0; w < s->n_words; w++) {
        int32_t *x = s->syms + s->start[w];
        int o = 0;
        for (int i = 0; i < s->wlen[w]; i++) {
            if (i + 1 < s->wlen[w] && x[i] == a && x[i + 1] == b) {
                x[o++] = m;
                i++;
            } else {
                x[o++] = x[i];
            }
        }
        s->wlen[w] = o;
    }
}

static ga_status train(synth *s, int n_target, ga_err *err) {
    ga_status st = ga_strmap_init(&s->map, (uint32_t)n_target, err);
    if (st) return st;
    for (int b = 0; b < 256; b++)
        if (add_token(s, (const char *)&(char){(char)b}, 1) < 0)
            return ga_err_set(err, GA_ERR_OOM, "synthetic tokenizer: out of memory");
    if ((st = load_words(s, err))) return st;
    ga_pairmap counts;
    if ((st = ga_pairmap_init(&counts, (uint32_t)strlen(ga_tok_synth_text), err))) return st;
    char buf[4096];
    while (s->n_tok < n_target) {
        int32_t a = INT32_MAX, b = INT32_MAX;
        if (!best_pair(s, &counts, &a, &b)) break;
        if (s->len[a] + s->len[b] > sizeof buf) break;
        memcpy(buf, s->tok[a], s->len[a]);
        memcpy(buf + s->len[a], s->tok[b], s->len[b]);
        int32_t m = add_token(s, buf, s->len[a] + s->len[b]);
        if (m < 0 || add_merge(s, a, b)) {
            ga_pairmap_free(&counts);
            return ga_err_set(err, GA_ERR_OOM, "synthetic tokenizer: out of memory");
        }
        apply_merge(s, a, b, m);
    }
    ga_pairmap_free(&counts);
    /* Filler: existing token + printable ASCII byte, in id order, skipping strings that
     * already exist, until the vocabulary is full. Each is a valid merge of two tokens. */
    for (int32_t a = 0; s->n_tok < n_target; a++) {
        for (int b = ' '; b <= '~' && s->n_tok < n_target; b++) {
            if (s->len[a] + 1 > sizeof buf) continue;
            memcpy(buf, s->tok[a], s->len[a]);
            buf[s->len[a]] = (char)b;
            if (ga_strmap_get(&s->map, buf, s->len[a] + 1) >= 0) continue;
            int32_t m = add_token(s, buf, s->len[a] + 1);
            if (m < 0 || add_merge(s, a, b))
                return ga_err_set(err, GA_ERR_OOM, "synthetic tokenizer: out of memory");
        }
    }
    return GA_OK;
}

/* A token's byte-level piece as a JSON string body (pieces are printable: only " and \ need
 * escaping). */
static void put_piece(FILE *f, const synth *s, int32_t id) {
    char piece[2 * 4096 + 1];
    size_t n = ga_tok_bytes_to_piece((const uint8_t *)s->tok[id], s->len[id], piece);
    fputc('"', f);
    for (size_t i = 0; i < n; i++) {
        if (piece[i] == '"' || piece[i] == '\\') fputc('\\', f);
        fputc(piece[i], f);
    }
    fputc('"', f);
}

static void put_regex(FILE *f) {
    fputc('"', f);
    for (const char *p = QWEN_REGEX; *p; p++) {
        if (*p == '"' || *p == '\\') fputc('\\', f);
        fputc(*p, f);
    }
    fputc('"', f);
}

static void write_tokenizer_json(FILE *f, const synth *s, int vocab_size) {
    static const char bl[] =
        "{\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"trim_offsets\": false, "
        "\"use_regex\": false}";
    fprintf(f, "{\n  \"version\": \"1.0\",\n  \"truncation\": null,\n  \"padding\": null,\n"
               "  \"added_tokens\": [\n");
    for (int i = 0; i < 3; i++)
        fprintf(f,
                "    {\"id\": %d, \"content\": \"%s\", \"single_word\": false, \"lstrip\": "
                "false, \"rstrip\": false, \"normalized\": false, \"special\": true}%s\n",
                vocab_size - 3 + i, SPECIALS[i], i < 2 ? "," : "");
    fprintf(f, "  ],\n  \"normalizer\": {\"type\": \"NFC\"},\n  \"pre_tokenizer\": {\"type\": "
               "\"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", \"pattern\": "
               "{\"Regex\": ");
    put_regex(f);
    fprintf(f, "}, \"behavior\": \"Isolated\", \"invert\": false}, %s]},\n", bl);
    fprintf(f, "  \"post_processor\": %s,\n  \"decoder\": %s,\n", bl, bl);
    fprintf(f, "  \"model\": {\n    \"type\": \"BPE\",\n    \"dropout\": null,\n    \"unk_token\": "
               "null,\n    \"continuing_subword_prefix\": \"\",\n    \"end_of_word_suffix\": \"\","
               "\n    \"fuse_unk\": false,\n    \"byte_fallback\": false,\n    \"ignore_merges\": "
               "false,\n    \"vocab\": {\n");
    for (int32_t i = 0; i < s->n_tok; i++) {
        fprintf(f, "      ");
        put_piece(f, s, i);
        fprintf(f, ": %d%s\n", (int)i, i + 1 < s->n_tok ? "," : "");
    }
    fprintf(f, "    },\n    \"merges\": [\n");
    for (int i = 0; i < s->n_merge; i++) {
        fprintf(f, "      [");
        put_piece(f, s, s->merge[i][0]);
        fprintf(f, ", ");
        put_piece(f, s, s->merge[i][1]);
        fprintf(f, "]%s\n", i + 1 < s->n_merge ? "," : "");
    }
    fprintf(f, "    ]\n  }\n}\n");
}

static void write_config_json(FILE *f, int vocab_size) {
    fprintf(f, "{\n  \"add_bos_token\": false,\n  \"add_prefix_space\": false,\n"
               "  \"added_tokens_decoder\": {\n");
    for (int i = 0; i < 3; i++)
        fprintf(f,
                "    \"%d\": {\"content\": \"%s\", \"lstrip\": false, \"normalized\": false, "
                "\"rstrip\": false, \"single_word\": false, \"special\": true}%s\n",
                vocab_size - 3 + i, SPECIALS[i], i < 2 ? "," : "");
    fprintf(f, "  },\n  \"bos_token\": null,\n  \"clean_up_tokenization_spaces\": false,\n"
               "  \"eos_token\": \"<|im_end|>\",\n  \"errors\": \"replace\",\n"
               "  \"model_max_length\": 131072,\n  \"pad_token\": \"<|endoftext|>\",\n"
               "  \"split_special_tokens\": false,\n  \"tokenizer_class\": \"Qwen2Tokenizer\",\n"
               "  \"unk_token\": null\n}\n");
}

static ga_status write_file(const char *dir, const char *name, const synth *s, int vocab_size,
                            ga_err *err) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *path = malloc(n);
    if (!path) return ga_err_set(err, GA_ERR_OOM, "out of memory");
    snprintf(path, n, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) {
        ga_status st = ga_err_set(err, GA_ERR_IO, "%s: %s", path, strerror(errno));
        free(path);
        return st;
    }
    if (s)
        write_tokenizer_json(f, s, vocab_size);
    else
        write_config_json(f, vocab_size);
    int bad = ferror(f);
    bad |= fclose(f);
    ga_status st = bad ? ga_err_set(err, GA_ERR_IO, "%s: write failed", path) : GA_OK;
    free(path);
    return st;
}

ga_status ga_tok_write_synthetic(const char *dir, int vocab_size, ga_err *err) {
    if (!dir) return ga_err_set(err, GA_ERR_ARG, "synthetic tokenizer: directory is NULL");
    if (vocab_size < 259 || vocab_size > (1 << 21))
        return ga_err_set(err, GA_ERR_ARG,
                          "synthetic tokenizer: vocab_size %d is outside "
                          "[259, %d]",
                          vocab_size, 1 << 21);
    synth s;
    memset(&s, 0, sizeof s);
    ga_status st = train(&s, vocab_size - 3, err);
    if (!st) st = write_file(dir, "tokenizer.json", &s, vocab_size, err);
    if (!st) st = write_file(dir, "tokenizer_config.json", NULL, vocab_size, err);
    synth_free(&s);
    return st;
}
