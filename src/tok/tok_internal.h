/*
 * Internals of the tokenizer shared by the src/tok files: the loaded tokenizer struct, the hash
 * maps behind the vocabulary and merge-rank lookups, the byte-level mapping, UTF-8 helpers
 * and the per-call encode scratch space. Not part of the public API (tests may use it).
 */
#ifndef GATTN_TOK_INTERNAL_H
#define GATTN_TOK_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gattn/tokenizer.h"

/* Largest id accepted from a file: bounds every per-id allocation a hostile file can cause. */
#define GA_TOK_MAX_ID (1 << 24)

/* ------------------------------------------------------------ hash maps (tok_map.c) */

/* String -> id, open addressing. Keys are not copied: the caller keeps them alive. */
typedef struct ga_strmap {
    uint32_t cap; /* power of two, 0 when empty */
    uint32_t count;
    int32_t *ids;       /* cap slots, -1 = empty */
    const char **keys;  /* cap slots */
    uint32_t *key_lens; /* cap slots */
} ga_strmap;

ga_status ga_strmap_init(ga_strmap *m, uint32_t expected, ga_err *err);
void ga_strmap_free(ga_strmap *m);
/* Inserts key -> id; returns the id already stored under key (and leaves it) or -1. */
int32_t ga_strmap_put(ga_strmap *m, const char *key, uint32_t len, int32_t id);
int32_t ga_strmap_get(const ga_strmap *m, const char *key, uint32_t len);

/* (left id, right id) -> (rank, merged id): the merge-rank lookup, one probe per pair. */
typedef struct ga_pairmap {
    uint32_t cap; /* power of two */
    uint32_t count;
    uint64_t *keys; /* (left << 32 | right) + 1; 0 = empty */
    int32_t *rank;
    int32_t *merged;
} ga_pairmap;

ga_status ga_pairmap_init(ga_pairmap *m, uint32_t expected, ga_err *err);
void ga_pairmap_free(ga_pairmap *m);
/* Inserts or overwrites (a later duplicate merge wins, as in Hugging Face's loader). */
void ga_pairmap_put(ga_pairmap *m, int32_t left, int32_t right, int32_t rank, int32_t merged);
/* Returns the rank (or -1) and writes the merged id. */
static inline int32_t ga_pairmap_get(const ga_pairmap *m, int32_t left, int32_t right,
                                     int32_t *merged) {
    uint64_t key = (((uint64_t)(uint32_t)left << 32) | (uint32_t)right) + 1;
    uint32_t mask = m->cap - 1;
    uint32_t h = (uint32_t)((key * 0x9E3779B97F4A7C15ull) >> 32) & mask;
    for (;;) {
        uint64_t k = m->keys[h];
        if (k == key) {
            *merged = m->merged[h];
            return m->rank[h];
        }
        if (k == 0) return -1;
        h = (h + 1) & mask;
    }
}

uint64_t ga_tok_hash_bytes(const void *p, size_t n);

/* ------------------------------------------------------------ byte-level map (tok_bytes.c) */

/* GPT-2's bijection between the 256 byte values and printable code points. */
uint32_t ga_tok_byte_to_cp(uint8_t b);
/* -1 when cp is not one of the 256 images. */
int ga_tok_cp_to_byte(uint32_t cp);
/* Byte-level form of raw bytes: UTF-8 of the mapped code points (2 bytes max each).
 * out must hold 2*n bytes; returns the length written. */
size_t ga_tok_bytes_to_piece(const uint8_t *in, size_t n, char *out);
/* Inverse for one piece: writes the raw bytes (at most len) and returns their count, or -1
 * when a character is not a byte-level image (the caller then uses the piece's own bytes,
 * as Hugging Face's ByteLevel decoder does). */
long ga_tok_piece_to_bytes(const char *piece, size_t len, uint8_t *out);

/* ------------------------------------------------------------ UTF-8 (tok_utf8.c) */

/* Length of the valid UTF-8 prefix of s (== n when all valid). */
size_t ga_utf8_valid_prefix(const uint8_t *s, size_t n);
/* Decodes one code point from valid UTF-8; returns its byte length. */
int ga_utf8_decode(const uint8_t *s, uint32_t *cp);
int ga_utf8_encode(uint32_t cp, char *out);
/* Classifies the start of s[0..n): returns the length of a complete valid character (> 0),
 * 0 when s is a valid but incomplete prefix of one, or -k when the first k bytes are a
 * maximal invalid subpart (to be replaced by one U+FFFD). n >= 1. */
int ga_utf8_classify(const uint8_t *s, size_t n);
/* Appends s with invalid subparts replaced by U+FFFD (EF BF BD) into out (cap >= 3*n);
 * returns bytes written. */
size_t ga_utf8_lossy(const uint8_t *s, size_t n, char *out);
bool ga_tok_is_space_cp(uint32_t cp);

/* ------------------------------------------------------------ the tokenizer */

typedef struct ga_tok_added {
    const char *content; /* points into the tokenizer's string blob */
    uint32_t len;
    int32_t id;
    bool special, lstrip, rstrip, single_word, normalized;
} ga_tok_added;

typedef enum ga_tok_split_behavior {
    GA_SPLIT_ISOLATED = 0, /* matches and the text between them are pieces */
    GA_SPLIT_REMOVED = 1,  /* only the text between matches */
} ga_tok_split_behavior;

struct ga_tokenizer {
    char *path; /* for messages */
    int vocab_size;
    /* per id (vocab_size entries); a gap has piece NULL and bytes_len -1 */
    const char **piece; /* token string as in the file */
    uint32_t *piece_len;
    uint32_t *bytes_off; /* decoded bytes in bytes_blob */
    int32_t *bytes_len;
    uint8_t *is_added;
    char *str_blob; /* pieces and added-token contents */
    uint8_t *bytes_blob;

    ga_strmap pieces; /* piece string -> id (model vocab and added tokens) */
    ga_pairmap merges;
    int n_merges;
    int32_t byte_id[256]; /* id of each single-byte token, -1 if absent */
    int32_t unk_id;       /* -1: unknown bytes are dropped, as HF does without unk_token */

    bool nfc;   /* normalizer */
    bool split; /* has a Split pre-tokenizer */
    ga_tok_split_behavior behavior;
    void *re; /* pcre2_code_8 * */
    bool re_jit;

    ga_tok_added *added;
    int n_added;
    uint8_t added_first[256]; /* first bytes of any added token's content */

    int32_t eos_id, bos_id, pad_id;
};

/* tok_json.c: parses tokenizer.json text into t (path already set). */
ga_status ga_tok_parse_json(ga_tokenizer *t, const char *text, size_t len, ga_err *err);
/* tok_json.c: applies a tokenizer_config.json. */
ga_status ga_tok_parse_config(ga_tokenizer *t, const char *path, const char *text, size_t len,
                              ga_err *err);
/* tok_pretok.c */
ga_status ga_tok_compile_regex(ga_tokenizer *t, const char *pattern, size_t len, ga_err *err);
void ga_tok_free_regex(ga_tokenizer *t);

/* ------------------------------------------------------------ encode scratch (tok_bpe.c) */

typedef struct ga_tok_sym {
    int32_t id;
    int32_t prev, next; /* indices in the word, -1 at the ends */
} ga_tok_sym;

typedef struct ga_tok_cand {
    int32_t rank;
    int32_t pos; /* left symbol index: ties go to the leftmost pair */
    int32_t left_id, right_pos, right_id, merged;
} ga_tok_cand;

typedef struct ga_tok_cache_slot {
    uint64_t hash;
    uint32_t key_off, key_len;
    uint32_t ids_off, n_ids;
} ga_tok_cache_slot;

typedef struct ga_tok_ctx {
    const ga_tokenizer *t;
    int32_t *ids; /* output */
    size_t n, cap;
    ga_tok_sym *sym;
    size_t sym_cap;
    ga_tok_cand *heap;
    size_t heap_cap;
    /* word cache: raw word bytes -> ids, cleared when full */
    ga_tok_cache_slot *slots;
    uint32_t slot_cap, slot_count;
    size_t text_len; /* sizes the cache: short texts get a small one */
    uint8_t *keys;
    size_t keys_len, keys_cap;
    int32_t *cids;
    size_t cids_len, cids_cap;
    void *md;   /* pcre2_match_data_8 * */
    void *mctx; /* pcre2_match_context_8 *: the per-call limits */
} ga_tok_ctx;

void ga_tok_ctx_init(ga_tok_ctx *c, const ga_tokenizer *t);
void ga_tok_ctx_free(ga_tok_ctx *c);
ga_status ga_tok_push_id(ga_tok_ctx *c, int32_t id, ga_err *err);
/* BPE of one pre-tokenized word (raw bytes), appending ids to c->ids; uses the cache. */
ga_status ga_tok_bpe_word(ga_tok_ctx *c, const uint8_t *w, size_t n, ga_err *err);
/* BPE without the cache (tests compare it with a naive implementation). */
ga_status ga_tok_bpe_word_nocache(ga_tok_ctx *c, const uint8_t *w, size_t n, ga_err *err);
/* tok_pretok.c: splits normalized text with the regex and runs BPE on each piece. */
ga_status ga_tok_encode_plain(ga_tok_ctx *c, const char *s, size_t n, ga_err *err);
/* tok_pretok.c: frees the regex match state ga_tok_encode_plain made in c. */
void ga_tok_ctx_free_regex(ga_tok_ctx *c);

#endif
