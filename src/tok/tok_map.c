/*
 * The tokenizer's hash maps: piece string -> id (vocabulary and added tokens) and
 * (left id, right id) -> (rank, merged id), the merge-rank lookup that keeps BPE from ever
 * scanning the merge list. Both are open addressing with linear probing at load <= 1/2.
 */
#include <stdlib.h>
#include <string.h>

#include "tok/tok_internal.h"

/* 64-bit FNV-1a folded through a multiply: cheap, and good enough for token strings. */
uint64_t ga_tok_hash_bytes(const void *p, size_t n) {
    const uint8_t *s = p;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 0x100000001b3ull;
    return h ^ (h >> 29);
}

static uint32_t pow2_at_least(uint32_t n) {
    uint32_t c = 16;
    while (c < n)
        c <<= 1;
    return c;
}

ga_status ga_strmap_init(ga_strmap *m, uint32_t expected, ga_err *err) {
    memset(m, 0, sizeof *m);
    if (expected > (1u << 28)) return ga_err_set(err, GA_ERR_ARG, "string map too large");
    m->cap = pow2_at_least(expected * 2 + 1);
    m->ids = malloc(sizeof(int32_t) * m->cap);
    m->keys = calloc(m->cap, sizeof(char *));
    m->key_lens = calloc(m->cap, sizeof(uint32_t));
    if (!m->ids || !m->keys || !m->key_lens) {
        ga_strmap_free(m);
        return ga_err_set(err, GA_ERR_OOM, "out of memory for the token map");
    }
    memset(m->ids, 0xff, sizeof(int32_t) * m->cap);
    return GA_OK;
}

void ga_strmap_free(ga_strmap *m) {
    free(m->ids);
    free(m->keys);
    free(m->key_lens);
    memset(m, 0, sizeof *m);
}

static int grow_strmap(ga_strmap *m) {
    ga_strmap n;
    if (ga_strmap_init(&n, m->cap, NULL) != GA_OK) return -1;
    for (uint32_t i = 0; i < m->cap; i++)
        if (m->ids[i] >= 0) ga_strmap_put(&n, m->keys[i], m->key_lens[i], m->ids[i]);
    ga_strmap_free(m);
    *m = n;
    return 0;
}

int32_t ga_strmap_put(ga_strmap *m, const char *key, uint32_t len, int32_t id) {
    if ((m->count + 1) * 2 > m->cap && grow_strmap(m) != 0) return -2;
    uint32_t mask = m->cap - 1;
    uint32_t h = (uint32_t)ga_tok_hash_bytes(key, len) & mask;
    while (m->ids[h] >= 0) {
        if (m->key_lens[h] == len && !memcmp(m->keys[h], key, len)) return m->ids[h];
        h = (h + 1) & mask;
    }
    m->ids[h] = id;
    m->keys[h] = key;
    m->key_lens[h] = len;
    m->count++;
    return -1;
}

int32_t ga_strmap_get(const ga_strmap *m, const char *key, uint32_t len) {
    if (!m->cap) return -1;
    uint32_t mask = m->cap - 1;
    uint32_t h = (uint32_t)ga_tok_hash_bytes(key, len) & mask;
    while (m->ids[h] >= 0) {
        if (m->key_lens[h] == len && !memcmp(m->keys[h], key, len)) return m->ids[h];
        h = (h + 1) & mask;
    }
    return -1;
}

ga_status ga_pairmap_init(ga_pairmap *m, uint32_t expected, ga_err *err) {
    memset(m, 0, sizeof *m);
    if (expected > (1u << 28)) return ga_err_set(err, GA_ERR_ARG, "merge map too large");
    m->cap = pow2_at_least(expected * 2 + 1);
    m->keys = calloc(m->cap, sizeof(uint64_t));
    m->rank = malloc(sizeof(int32_t) * m->cap);
    m->merged = malloc(sizeof(int32_t) * m->cap);
    if (!m->keys || !m->rank || !m->merged) {
        ga_pairmap_free(m);
        return ga_err_set(err, GA_ERR_OOM, "out of memory for the merge map");
    }
    return GA_OK;
}

void ga_pairmap_free(ga_pairmap *m) {
    free(m->keys);
    free(m->rank);
    free(m->merged);
    memset(m, 0, sizeof *m);
}

/* The caller sizes the map for all merges up front, so it never needs to grow. */
void ga_pairmap_put(ga_pairmap *m, int32_t left, int32_t right, int32_t rank, int32_t merged) {
    uint64_t key = (((uint64_t)(uint32_t)left << 32) | (uint32_t)right) + 1;
    uint32_t mask = m->cap - 1;
    uint32_t h = (uint32_t)((key * 0x9E3779B97F4A7C15ull) >> 32) & mask;
    while (m->keys[h] != 0 && m->keys[h] != key)
        h = (h + 1) & mask;
    if (m->keys[h] == 0) m->count++;
    m->keys[h] = key;
    m->rank[h] = rank;
    m->merged[h] = merged;
}
