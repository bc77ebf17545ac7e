/*
 * Loading and freeing a tokenizer, and the small accessors (vocabulary size, pieces, added
 * token ids, the eos/bos/pad ids named by tokenizer_config.json).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/path.h"
#include "tok/tok_internal.h"

/* Whole file into memory; a tokenizer.json is tens of MB at most, 1 GiB is refused. */
static ga_status read_all(const char *path, char **out, size_t *len, ga_err *err) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return ga_err_set(err, GA_ERR_IO, "%s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(f);
        return ga_err_set(err, GA_ERR_IO, "%s: not a regular file", path);
    }
    if (sb.st_size > (off_t)1 << 30) {
        fclose(f);
        return ga_err_set(err, GA_ERR_FORMAT, "%s: file too large (%lld bytes)", path,
                          (long long)sb.st_size);
    }
    size_t n = (size_t)sb.st_size;
    char *buf = malloc(n + 1);
    if (!buf) {
        fclose(f);
        return ga_err_set(err, GA_ERR_OOM, "%s: out of memory", path);
    }
    size_t got = fread(buf, 1, n, f);
    int bad = ferror(f);
    fclose(f);
    if (got != n || bad) {
        free(buf);
        return ga_err_set(err, GA_ERR_IO, "%s: read failed", path);
    }
    buf[n] = 0;
    *out = buf;
    *len = n;
    return GA_OK;
}

ga_status ga_tok_load(const char *path, ga_tokenizer **out, ga_err *err) {
    *out = NULL;
    if (!path) return ga_err_set(err, GA_ERR_ARG, "tokenizer path is NULL");
    ga_tokenizer *t = calloc(1, sizeof *t);
    if (!t || !(t->path = strdup(path))) {
        free(t);
        return ga_err_set(err, GA_ERR_OOM, "out of memory");
    }
    t->eos_id = t->bos_id = t->pad_id = t->unk_id = -1;
    char *text;
    size_t len;
    ga_status st = read_all(path, &text, &len, err);
    if (!st) {
        st = ga_tok_parse_json(t, text, len, err);
        free(text);
    }
    if (st) {
        ga_tok_free(t);
        return st;
    }
    *out = t;
    return GA_OK;
}

ga_status ga_tok_load_dir(const char *dir, ga_tokenizer **out, ga_err *err) {
    *out = NULL;
    if (!dir) return ga_err_set(err, GA_ERR_ARG, "model directory is NULL");
    char *tj = ga_path_join(dir, "tokenizer.json"),
         *tc = ga_path_join(dir, "tokenizer_config.json");
    ga_status st = GA_OK;
    if (!tj || !tc) st = ga_err_set(err, GA_ERR_OOM, "out of memory");
    ga_tokenizer *t = NULL;
    if (!st) st = ga_tok_load(tj, &t, err);
    struct stat sb;
    if (!st && stat(tc, &sb) == 0) {
        char *text;
        size_t len;
        st = read_all(tc, &text, &len, err);
        if (!st) {
            st = ga_tok_parse_config(t, tc, text, len, err);
            free(text);
        }
    }
    free(tj);
    free(tc);
    if (st) {
        ga_tok_free(t);
        return st;
    }
    *out = t;
    return GA_OK;
}

void ga_tok_free(ga_tokenizer *t) {
    if (!t) return;
    ga_tok_free_regex(t);
    ga_strmap_free(&t->pieces);
    ga_pairmap_free(&t->merges);
    free(t->piece);
    free(t->piece_len);
    free(t->bytes_off);
    free(t->bytes_len);
    free(t->is_added);
    free(t->str_blob);
    free(t->bytes_blob);
    free(t->added);
    free(t->path);
    free(t);
}

int ga_tok_vocab_size(const ga_tokenizer *t) {
    return t ? t->vocab_size : 0;
}

const char *ga_tok_piece(const ga_tokenizer *t, int32_t id) {
    if (!t || id < 0 || id >= t->vocab_size) return NULL;
    return t->piece[id];
}

int32_t ga_tok_special_id(const ga_tokenizer *t, const char *content) {
    if (!t || !content) return -1;
    size_t n = strlen(content);
    for (int i = 0; i < t->n_added; i++)
        if (t->added[i].len == n && !memcmp(t->added[i].content, content, n)) return t->added[i].id;
    return -1;
}

int32_t ga_tok_eos_id(const ga_tokenizer *t) {
    return t ? t->eos_id : -1;
}
int32_t ga_tok_bos_id(const ga_tokenizer *t) {
    return t ? t->bos_id : -1;
}
int32_t ga_tok_pad_id(const ga_tokenizer *t) {
    return t ? t->pad_id : -1;
}
