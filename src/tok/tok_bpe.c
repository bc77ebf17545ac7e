/*
 * Byte-pair merging of one pre-tokenized word, in id space: the word starts as the ids of its
 * single-byte tokens, and the pair with the lowest merge rank (leftmost on ties, as Hugging
 * Face does) is merged until no ranked pair is left. Candidates sit in a binary min-heap keyed
 * by (rank, position) and are checked for staleness when popped, so a word of n bytes costs
 * O(n log n). A per-call word cache (raw bytes -> ids) skips repeated words entirely; it
 * lives in the encode context, so a loaded tokenizer stays immutable and shareable.
 */
#include <stdlib.h>
#include <string.h>

#include "tok/tok_internal.h"

/* Words longer than this are rare and seldom repeat; they skip the cache. */
#define CACHE_MAX_WORD 64
/* Slots: about one per 8 bytes of text, from 256 up to 2^18 (6 MiB), so a short prompt does
 * not pay for a big table and a long text keeps most of its distinct words. */
#define CACHE_MIN_SLOTS (1u << 8)
#define CACHE_MAX_SLOTS (1u << 18)

void ga_tok_ctx_init(ga_tok_ctx *c, const ga_tokenizer *t) {
    memset(c, 0, sizeof *c);
    c->t = t;
}

void ga_tok_ctx_free(ga_tok_ctx *c) {
    free(c->ids);
    free(c->sym);
    free(c->heap);
    free(c->slots);
    free(c->keys);
    free(c->cids);
    /* the regex state is freed by ga_tok_ctx_free_regex (tok_pretok.c) */
}

static int grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 0;
    size_t nc = *cap ? *cap : 64;
    while (nc < need)
        nc *= 2;
    void *q = realloc(*p, nc * elem);
    if (!q) return -1;
    *p = q;
    *cap = nc;
    return 0;
}

ga_status ga_tok_push_id(ga_tok_ctx *c, int32_t id, ga_err *err) {
    if (c->n == c->cap && grow((void **)&c->ids, &c->cap, c->n + 1, sizeof(int32_t)))
        return ga_err_set(err, GA_ERR_OOM, "out of memory for token ids");
    c->ids[c->n++] = id;
    return GA_OK;
}

static bool cand_less(const ga_tok_cand *a, const ga_tok_cand *b) {
    return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

static void heap_push(ga_tok_cand *h, size_t *n, ga_tok_cand x) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!cand_less(&x, &h[p])) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = x;
}

static ga_tok_cand heap_pop(ga_tok_cand *h, size_t *n) {
    ga_tok_cand top = h[0], x = h[--*n];
    size_t i = 0, m = *n;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, s = i;
        const ga_tok_cand *best = &x;
        if (l < m && cand_less(&h[l], best)) s = l, best = &h[l];
        if (r < m && cand_less(&h[r], best)) s = r;
        if (s == i) break;
        h[i] = h[s];
        i = s;
    }
    if (m) h[i] = x;
    return top;
}

static void add_cand(const ga_tokenizer *t, ga_tok_sym *sym, int32_t pos, ga_tok_cand *h,
                     size_t *hn) {
    int32_t right = sym[pos].next;
    if (right < 0) return;
    int32_t merged;
    int32_t rank = ga_pairmap_get(&t->merges, sym[pos].id, sym[right].id, &merged);
    if (rank < 0) return;
    heap_push(h, hn, (ga_tok_cand){rank, pos, sym[pos].id, right, sym[right].id, merged});
}

ga_status ga_tok_bpe_word_nocache(ga_tok_ctx *c, const uint8_t *w, size_t n, ga_err *err) {
    const ga_tokenizer *t = c->t;
    if (grow((void **)&c->sym, &c->sym_cap, n, sizeof(ga_tok_sym)) ||
        grow((void **)&c->heap, &c->heap_cap, 2 * n + 2, sizeof(ga_tok_cand)))
        return ga_err_set(err, GA_ERR_OOM, "out of memory for a %zu-byte word", n);
    ga_tok_sym *sym = c->sym;
    int32_t m = 0;
    for (size_t i = 0; i < n; i++) {
        /* A byte with no token becomes unk, or is dropped when there is no unk token (what
         * Hugging Face's BPE does); Qwen's vocabulary has all 256. */
        int32_t id = t->byte_id[w[i]] >= 0 ? t->byte_id[w[i]] : t->unk_id;
        if (id < 0) continue;
        sym[m] = (ga_tok_sym){id, m - 1, -1};
        if (m > 0) sym[m - 1].next = m;
        m++;
    }
    if (m == 0) return GA_OK;
    size_t hn = 0;
    for (int32_t i = 0; i + 1 < m; i++)
        add_cand(t, sym, i, c->heap, &hn);
    /* Each merge removes one symbol and pushes at most two candidates (room is made for
     * them just before), so the heap holds at most 3m entries over the whole word. */
    while (hn > 0) {
        ga_tok_cand top = heap_pop(c->heap, &hn);
        ga_tok_sym *l = &sym[top.pos];
        if (l->id != top.left_id || l->next != top.right_pos ||
            sym[top.right_pos].id != top.right_id)
            continue; /* stale: one side has merged with something else since */
        int32_t r = top.right_pos;
        l->id = top.merged;
        l->next = sym[r].next;
        if (l->next >= 0) sym[l->next].prev = top.pos;
        sym[r].id = -1;
        if (grow((void **)&c->heap, &c->heap_cap, hn + 2, sizeof(ga_tok_cand)))
            return ga_err_set(err, GA_ERR_OOM, "out of memory for a %zu-byte word", n);
        if (l->prev >= 0) add_cand(t, sym, l->prev, c->heap, &hn);
        add_cand(t, sym, top.pos, c->heap, &hn);
    }
    for (int32_t i = 0; i >= 0; i = sym[i].next) {
        ga_status st = ga_tok_push_id(c, sym[i].id, err);
        if (st) return st;
    }
    return GA_OK;
}

static void cache_clear(ga_tok_ctx *c) {
    memset(c->slots, 0, sizeof(ga_tok_cache_slot) * c->slot_cap);
    c->slot_count = 0;
    c->keys_len = 0;
    c->cids_len = 0;
}

ga_status ga_tok_bpe_word(ga_tok_ctx *c, const uint8_t *w, size_t n, ga_err *err) {
    if (n == 1) { /* one byte: no merge possible */
        int32_t id = c->t->byte_id[w[0]] >= 0 ? c->t->byte_id[w[0]] : c->t->unk_id;
        return id >= 0 ? ga_tok_push_id(c, id, err) : GA_OK;
    }
    if (n > CACHE_MAX_WORD) return ga_tok_bpe_word_nocache(c, w, n, err);
    if (!c->slots) {
        uint32_t cap = CACHE_MIN_SLOTS;
        while (cap < CACHE_MAX_SLOTS && cap < c->text_len / 8)
            cap <<= 1;
        c->slots = calloc(cap, sizeof(ga_tok_cache_slot));
        if (!c->slots) return ga_tok_bpe_word_nocache(c, w, n, err);
        c->slot_cap = cap;
    }
    /* hash 0 marks an empty slot */
    uint64_t h = ga_tok_hash_bytes(w, n) | 1;
    uint32_t mask = c->slot_cap - 1, i = (uint32_t)h & mask;
    for (; c->slots[i].hash; i = (i + 1) & mask) {
        ga_tok_cache_slot *s = &c->slots[i];
        if (s->hash == h && s->key_len == n && !memcmp(c->keys + s->key_off, w, n)) {
            if (!s->n_ids) return GA_OK; /* a word of dropped bytes: c->ids may be NULL */
            if (grow((void **)&c->ids, &c->cap, c->n + s->n_ids, sizeof(int32_t)))
                return ga_err_set(err, GA_ERR_OOM, "out of memory for token ids");
            memcpy(c->ids + c->n, c->cids + s->ids_off, s->n_ids * sizeof(int32_t));
            c->n += s->n_ids;
            return GA_OK;
        }
    }
    size_t before = c->n;
    ga_status st = ga_tok_bpe_word_nocache(c, w, n, err);
    if (st) return st;
    size_t k = c->n - before;
    /* Keep the table at most half full and the pools bounded; a full cache starts over. */
    if ((c->slot_count + 1) * 2 > c->slot_cap || c->keys_len + n > (size_t)c->slot_cap * 16) {
        cache_clear(c);
        for (i = (uint32_t)h & mask; c->slots[i].hash; i = (i + 1) & mask) {
        }
    }
    if (grow((void **)&c->keys, &c->keys_cap, c->keys_len + n, 1) ||
        grow((void **)&c->cids, &c->cids_cap, c->cids_len + k, sizeof(int32_t)))
        return GA_OK; /* the cache is only an optimisation */
    memcpy(c->keys + c->keys_len, w, n);
    /* k is 0 when every byte was dropped (no byte token, no unk): then c->ids and c->cids
     * may both still be NULL, which memcpy must not see even for 0 bytes. */
    if (k) memcpy(c->cids + c->cids_len, c->ids + before, k * sizeof(int32_t));
    c->slots[i] = (ga_tok_cache_slot){h, (uint32_t)c->keys_len, (uint32_t)n, (uint32_t)c->cids_len,
                                      (uint32_t)k};
    c->keys_len += n;
    c->cids_len += k;
    c->slot_count++;
    return GA_OK;
}
