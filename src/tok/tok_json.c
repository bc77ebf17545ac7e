/*
 * Reads tokenizer.json and tokenizer_config.json into a ga_tokenizer. Every field is
 * untrusted: types, id ranges, duplicate ids or strings, merges naming tokens that are not in
 * the vocabulary, and pipeline steps other than the byte-level BPE ones Qwen uses are each a
 * clean error naming the file and the field.
 */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "tok/tok_internal.h"

#define FMT_ERR(...) ga_err_set(err, GA_ERR_FORMAT, __VA_ARGS__)
#define UNSUP_ERR(...) ga_err_set(err, GA_ERR_UNSUPPORTED, __VA_ARGS__)

/* Optional boolean: absent or null -> def; another type is an error. */
static int get_bool(const cJSON *obj, const char *key, bool def, bool *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v || cJSON_IsNull(v)) {
        *out = def;
        return 0;
    }
    if (!cJSON_IsBool(v)) return -1;
    *out = cJSON_IsTrue(v);
    return 0;
}

static bool is_absent(const cJSON *v) {
    return !v || cJSON_IsNull(v);
}

/* A JSON number that is an integer in [0, GA_TOK_MAX_ID). */
static int get_id(const cJSON *v, int32_t *out) {
    if (!cJSON_IsNumber(v)) return -1;
    double d = v->valuedouble;
    if (!(d >= 0 && d < GA_TOK_MAX_ID) || d != (double)(int32_t)d) return -1;
    *out = (int32_t)d;
    return 0;
}

static const char *type_of(const cJSON *obj) {
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(obj, "type");
    return cJSON_IsString(t) ? t->valuestring : NULL;
}

static ga_status parse_normalizer(ga_tokenizer *t, const cJSON *n, ga_err *err) {
    if (is_absent(n)) return GA_OK;
    const char *type = cJSON_IsObject(n) ? type_of(n) : NULL;
    if (!type) return FMT_ERR("%s: normalizer: expected an object with a string \"type\"", t->path);
    if (!strcmp(type, "NFC")) {
        t->nfc = true;
        return GA_OK;
    }
    if (!strcmp(type, "Sequence")) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(n, "normalizers");
        if (!cJSON_IsArray(list))
            return FMT_ERR("%s: normalizer.normalizers: expected an array", t->path);
        const cJSON *e;
        cJSON_ArrayForEach(e, list) {
            ga_status st = parse_normalizer(t, e, err);
            if (st) return st;
        }
        return GA_OK;
    }
    return UNSUP_ERR("%s: normalizer type '%s' is not supported (NFC only)", t->path, type);
}

static ga_status parse_bytelevel(ga_tokenizer *t, const cJSON *o, const char *where, ga_err *err) {
    bool aps, regex;
    if (get_bool(o, "add_prefix_space", false, &aps) || get_bool(o, "use_regex", true, &regex))
        return FMT_ERR("%s: %s: add_prefix_space/use_regex must be booleans", t->path, where);
    if (aps) return UNSUP_ERR("%s: %s: add_prefix_space=true is not supported", t->path, where);
    /* use_regex=true would apply GPT-2's built-in pattern: only pre-tokenizers that carry
     * their regex in the file (a Split step) are supported. */
    if (regex && !strcmp(where, "pre_tokenizer"))
        return UNSUP_ERR("%s: %s: ByteLevel with use_regex=true is not supported", t->path, where);
    return GA_OK;
}

static ga_status parse_split(ga_tokenizer *t, const cJSON *o, ga_err *err) {
    if (t->split) return UNSUP_ERR("%s: pre_tokenizer: more than one Split step", t->path);
    const cJSON *pat = cJSON_GetObjectItemCaseSensitive(o, "pattern");
    if (!cJSON_IsObject(pat))
        return FMT_ERR("%s: pre_tokenizer Split: missing \"pattern\"", t->path);
    const cJSON *re = cJSON_GetObjectItemCaseSensitive(pat, "Regex");
    const cJSON *lit = cJSON_GetObjectItemCaseSensitive(pat, "String");
    const cJSON *beh = cJSON_GetObjectItemCaseSensitive(o, "behavior");
    bool invert;
    if (!cJSON_IsString(beh))
        return FMT_ERR("%s: pre_tokenizer Split: missing \"behavior\"", t->path);
    if (get_bool(o, "invert", false, &invert))
        return FMT_ERR("%s: pre_tokenizer Split: \"invert\" must be a boolean", t->path);
    if (invert) return UNSUP_ERR("%s: pre_tokenizer Split: invert=true is not supported", t->path);
    if (!strcmp(beh->valuestring, "Isolated"))
        t->behavior = GA_SPLIT_ISOLATED;
    else if (!strcmp(beh->valuestring, "Removed"))
        t->behavior = GA_SPLIT_REMOVED;
    else
        return UNSUP_ERR("%s: pre_tokenizer Split: behavior '%s' is not supported", t->path,
                         beh->valuestring);
    ga_status st;
    if (cJSON_IsString(re)) {
        st = ga_tok_compile_regex(t, re->valuestring, strlen(re->valuestring), err);
    } else if (cJSON_IsString(lit)) {
        /* A literal: quote it with \Q..\E; a literal holding \E is split around it. */
        size_t n = strlen(lit->valuestring);
        char *q = malloc(n * 6 + 8);
        if (!q) return ga_err_set(err, GA_ERR_OOM, "out of memory");
        size_t o2 = 0;
        q[o2++] = '\\', q[o2++] = 'Q';
        for (size_t i = 0; i < n; i++) {
            if (lit->valuestring[i] == '\\' && lit->valuestring[i + 1] == 'E') {
                memcpy(q + o2, "\\E\\\\\\Q", 6);
                o2 += 6;
                continue;
            }
            q[o2++] = lit->valuestring[i];
        }
        q[o2++] = '\\', q[o2++] = 'E';
        st = ga_tok_compile_regex(t, q, o2, err);
        free(q);
    } else {
        return FMT_ERR("%s: pre_tokenizer Split: pattern needs a string \"Regex\" or \"String\"",
                       t->path);
    }
    if (st) return st;
    t->split = true;
    return GA_OK;
}

static ga_status parse_pretok(ga_tokenizer *t, const cJSON *p, bool *bytelevel, ga_err *err) {
    const char *type = cJSON_IsObject(p) ? type_of(p) : NULL;
    if (!type)
        return FMT_ERR("%s: pre_tokenizer: expected an object with a string \"type\"", t->path);
    if (!strcmp(type, "Sequence")) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(p, "pretokenizers");
        if (!cJSON_IsArray(list))
            return FMT_ERR("%s: pre_tokenizer.pretokenizers: expected an array", t->path);
        const cJSON *e;
        cJSON_ArrayForEach(e, list) {
            ga_status st = parse_pretok(t, e, bytelevel, err);
            if (st) return st;
        }
        return GA_OK;
    }
    if (*bytelevel)
        return UNSUP_ERR("%s: pre_tokenizer: a step after ByteLevel is not supported", t->path);
    if (!strcmp(type, "Split")) return parse_split(t, p, err);
    if (!strcmp(type, "ByteLevel")) {
        *bytelevel = true;
        return parse_bytelevel(t, p, "pre_tokenizer", err);
    }
    return UNSUP_ERR("%s: pre_tokenizer type '%s' is not supported", t->path, type);
}

static ga_status parse_pipeline(ga_tokenizer *t, const cJSON *root, ga_err *err) {
    ga_status st = parse_normalizer(t, cJSON_GetObjectItemCaseSensitive(root, "normalizer"), err);
    if (st) return st;
    const cJSON *pre = cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer");
    if (is_absent(pre))
        return UNSUP_ERR("%s: no pre_tokenizer (byte-level BPE needs one)", t->path);
    bool bytelevel = false;
    if ((st = parse_pretok(t, pre, &bytelevel, err))) return st;
    if (!bytelevel)
        return UNSUP_ERR("%s: pre_tokenizer has no ByteLevel step (only byte-level BPE is "
                         "supported)",
                         t->path);
    const cJSON *dec = cJSON_GetObjectItemCaseSensitive(root, "decoder");
    const char *dtype = cJSON_IsObject(dec) ? type_of(dec) : NULL;
    if (!dtype) return FMT_ERR("%s: decoder: expected an object with a string \"type\"", t->path);
    if (strcmp(dtype, "ByteLevel"))
        return UNSUP_ERR("%s: decoder type '%s' is not supported (ByteLevel only)", t->path, dtype);
    const cJSON *post = cJSON_GetObjectItemCaseSensitive(root, "post_processor");
    if (!is_absent(post)) {
        const char *ptype = cJSON_IsObject(post) ? type_of(post) : NULL;
        if (!ptype)
            return FMT_ERR("%s: post_processor: expected an object with a string \"type\"",
                           t->path);
        /* ByteLevel post-processing only fixes offsets; anything that adds tokens
         * (TemplateProcessing, ...) would change the ids, so it is refused. */
        if (strcmp(ptype, "ByteLevel"))
            return UNSUP_ERR("%s: post_processor type '%s' is not supported", t->path, ptype);
    }
    return GA_OK;
}

/* Checks the BPE model's scalar options. */
static ga_status parse_model_opts(ga_tokenizer *t, const cJSON *m, ga_err *err) {
    const char *type = type_of(m);
    if (!type) return FMT_ERR("%s: model: missing string \"type\"", t->path);
    if (strcmp(type, "BPE"))
        return UNSUP_ERR("%s: model type '%s' is not supported (BPE only)", t->path, type);
    const cJSON *drop = cJSON_GetObjectItemCaseSensitive(m, "dropout");
    if (!is_absent(drop) && !(cJSON_IsNumber(drop) && drop->valuedouble == 0))
        return UNSUP_ERR("%s: model.dropout must be null (BPE dropout is not supported)", t->path);
    static const char *const empty_strs[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int i = 0; i < 2; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(m, empty_strs[i]);
        if (is_absent(v)) continue;
        if (!cJSON_IsString(v))
            return FMT_ERR("%s: model.%s must be a string or null", t->path, empty_strs[i]);
        if (v->valuestring[0])
            return UNSUP_ERR("%s: model.%s is not supported", t->path, empty_strs[i]);
    }
    static const char *const false_flags[] = {"byte_fallback", "ignore_merges"};
    for (int i = 0; i < 2; i++) {
        bool b;
        if (get_bool(m, false_flags[i], false, &b))
            return FMT_ERR("%s: model.%s must be a boolean", t->path, false_flags[i]);
        if (b) return UNSUP_ERR("%s: model.%s=true is not supported", t->path, false_flags[i]);
    }
    bool fuse;
    if (get_bool(m, "fuse_unk", false, &fuse))
        return FMT_ERR("%s: model.fuse_unk must be a boolean", t->path);
    return GA_OK;
}

/* Allocates the per-id arrays and the string blob, then fills the model vocabulary. */
static ga_status load_vocab(ga_tokenizer *t, const cJSON *vocab, const cJSON *added, ga_err *err) {
    int n = 0;
    int32_t max_id = -1;
    size_t chars = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, vocab) {
        int32_t id;
        if (get_id(e, &id))
            return FMT_ERR("%s: model.vocab['%.80s']: id must be an integer in [0, %d)", t->path,
                           e->string, GA_TOK_MAX_ID);
        if (id > max_id) max_id = id;
        chars += strlen(e->string) + 1;
        n++;
    }
    int i = 0;
    cJSON_ArrayForEach(e, added) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "id");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(e, "content");
        int32_t v;
        if (!cJSON_IsObject(e) || get_id(id, &v))
            return FMT_ERR("%s: added_tokens[%d]: \"id\" must be an integer in [0, %d)", t->path, i,
                           GA_TOK_MAX_ID);
        if (!cJSON_IsString(content) || !content->valuestring[0])
            return FMT_ERR("%s: added_tokens[%d]: \"content\" must be a non-empty string", t->path,
                           i);
        if (v > max_id) max_id = v;
        chars += strlen(content->valuestring) + 1;
        i++;
    }
    if (max_id < 0) return FMT_ERR("%s: model.vocab is empty", t->path);
    t->vocab_size = max_id + 1;
    size_t vs = (size_t)t->vocab_size;
    t->piece = calloc(vs, sizeof(char *));
    t->piece_len = calloc(vs, sizeof(uint32_t));
    t->bytes_off = calloc(vs, sizeof(uint32_t));
    t->bytes_len = malloc(vs * sizeof(int32_t));
    t->is_added = calloc(vs, 1);
    t->str_blob = malloc(chars + 1);
    t->bytes_blob = malloc(chars + 1);
    if (!t->piece || !t->piece_len || !t->bytes_off || !t->bytes_len || !t->is_added ||
        !t->str_blob || !t->bytes_blob)
        return ga_err_set(err, GA_ERR_OOM, "%s: out of memory for %d tokens", t->path, max_id + 1);
    for (size_t k = 0; k < vs; k++)
        t->bytes_len[k] = -1;
    ga_status st = ga_strmap_init(&t->pieces, (uint32_t)(n + i), err);
    if (st) return st;

    size_t so = 0, bo = 0;
    cJSON_ArrayForEach(e, vocab) {
        int32_t id = (int32_t)e->valuedouble;
        size_t len = strlen(e->string);
        if (t->piece[id])
            return FMT_ERR("%s: model.vocab: id %d is given to both '%.80s' and '%.80s'", t->path,
                           id, t->piece[id], e->string);
        char *p = memcpy(t->str_blob + so, e->string, len + 1);
        so += len + 1;
        int32_t prev = ga_strmap_put(&t->pieces, p, (uint32_t)len, id);
        if (prev == -2) return ga_err_set(err, GA_ERR_OOM, "out of memory");
        if (prev >= 0) return FMT_ERR("%s: model.vocab: token '%.80s' appears twice", t->path, p);
        t->piece[id] = p;
        t->piece_len[id] = (uint32_t)len;
        long nb = ga_tok_piece_to_bytes(p, len, t->bytes_blob + bo);
        if (nb < 0) { /* not a byte-level string: decodes as its own text */
            memcpy(t->bytes_blob + bo, p, len);
            nb = (long)len;
        }
        t->bytes_off[id] = (uint32_t)bo;
        t->bytes_len[id] = (int32_t)nb;
        bo += (size_t)nb;
    }
    /* Added-token strings go after the vocabulary's in the same blobs. */
    t->added = calloc((size_t)i + 1, sizeof(ga_tok_added));
    if (!t->added) return ga_err_set(err, GA_ERR_OOM, "out of memory");
    i = 0;
    cJSON_ArrayForEach(e, added) {
        ga_tok_added *a = &t->added[i];
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(e, "content");
        a->id = (int32_t)cJSON_GetObjectItemCaseSensitive(e, "id")->valuedouble;
        a->len = (uint32_t)strlen(content->valuestring);
        bool special;
        if (get_bool(e, "special", false, &special) || get_bool(e, "lstrip", false, &a->lstrip) ||
            get_bool(e, "rstrip", false, &a->rstrip) ||
            get_bool(e, "single_word", false, &a->single_word) ||
            get_bool(e, "normalized", !special, &a->normalized))
            return FMT_ERR("%s: added_tokens[%d]: special/lstrip/rstrip/single_word/normalized "
                           "must be booleans",
                           t->path, i);
        a->special = special;
        const char *c = content->valuestring;
        if (ga_utf8_valid_prefix((const uint8_t *)c, a->len) != a->len)
            return FMT_ERR("%s: added_tokens[%d]: content is not valid UTF-8", t->path, i);
        int32_t other = ga_strmap_get(&t->pieces, c, a->len);
        if (t->piece[a->id]) {
            /* Listing a vocabulary token again as an added token is allowed (same id). */
            if (strcmp(t->piece[a->id], c))
                return FMT_ERR("%s: added_tokens[%d]: id %d is already the token '%.80s'", t->path,
                               i, a->id, t->piece[a->id]);
            a->content = t->piece[a->id];
        } else if (other >= 0) {
            return FMT_ERR("%s: added_tokens[%d]: '%.80s' already has id %d", t->path, i, c, other);
        } else {
            char *p = memcpy(t->str_blob + so, c, a->len + 1);
            so += a->len + 1;
            if (ga_strmap_put(&t->pieces, p, a->len, a->id) == -2)
                return ga_err_set(err, GA_ERR_OOM, "out of memory");
            a->content = p;
            t->piece[a->id] = p;
            t->piece_len[a->id] = a->len;
            long nb = ga_tok_piece_to_bytes(p, a->len, t->bytes_blob + bo);
            if (nb < 0) {
                memcpy(t->bytes_blob + bo, p, a->len);
                nb = (long)a->len;
            }
            t->bytes_off[a->id] = (uint32_t)bo;
            t->bytes_len[a->id] = (int32_t)nb;
            bo += (size_t)nb;
        }
        if (t->is_added[a->id])
            return FMT_ERR("%s: added_tokens[%d]: id %d is listed twice", t->path, i, a->id);
        t->is_added[a->id] = 1;
        t->added_first[(uint8_t)c[0]] = 1;
        i++;
    }
    t->n_added = i;
    return GA_OK;
}

/* "a b" (tokenizers < 0.20) or ["a", "b"]. */
static int merge_parts(const cJSON *m, char *buf, size_t cap, const char **l, const char **r) {
    if (cJSON_IsString(m)) {
        const char *s = m->valuestring;
        const char *sp = strchr(s, ' ');
        if (!sp || strchr(sp + 1, ' ') || sp == s || !sp[1]) return -1;
        size_t n = (size_t)(sp - s);
        if (n + 1 > cap) return -1;
        memcpy(buf, s, n);
        buf[n] = 0;
        *l = buf;
        *r = sp + 1;
        return 0;
    }
    if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2) {
        const cJSON *a = cJSON_GetArrayItem(m, 0), *b = cJSON_GetArrayItem(m, 1);
        if (!cJSON_IsString(a) || !cJSON_IsString(b)) return -1;
        *l = a->valuestring;
        *r = b->valuestring;
        return 0;
    }
    return -1;
}

static ga_status load_merges(ga_tokenizer *t, const cJSON *merges, ga_err *err) {
    int n = cJSON_GetArraySize(merges);
    ga_status st = ga_pairmap_init(&t->merges, (uint32_t)n, err);
    if (st) return st;
    char left[1024], both[2048];
    const cJSON *m;
    int rank = 0;
    cJSON_ArrayForEach(m, merges) {
        const char *l, *r;
        if (merge_parts(m, left, sizeof left, &l, &r))
            return FMT_ERR("%s: model.merges[%d]: expected \"left right\" or [left, right]",
                           t->path, rank);
        size_t ll = strlen(l), rl = strlen(r);
        int32_t li = ga_strmap_get(&t->pieces, l, (uint32_t)ll);
        int32_t ri = ga_strmap_get(&t->pieces, r, (uint32_t)rl);
        if (li < 0 || ri < 0 || t->is_added[li] || t->is_added[ri])
            return FMT_ERR("%s: model.merges[%d]: token '%.80s' is not in model.vocab", t->path,
                           rank, li < 0 || t->is_added[li] ? l : r);
        if (ll + rl >= sizeof both)
            return FMT_ERR("%s: model.merges[%d]: tokens too long", t->path, rank);
        memcpy(both, l, ll);
        memcpy(both + ll, r, rl);
        int32_t mi = ga_strmap_get(&t->pieces, both, (uint32_t)(ll + rl));
        if (mi < 0 || t->is_added[mi])
            return FMT_ERR("%s: model.merges[%d]: merged token '%.80s%.80s' is not in "
                           "model.vocab",
                           t->path, rank, l, r);
        ga_pairmap_put(&t->merges, li, ri, rank, mi);
        rank++;
    }
    t->n_merges = rank;
    return GA_OK;
}

ga_status ga_tok_parse_json(ga_tokenizer *t, const char *text, size_t len, ga_err *err) {
    cJSON *root;
    ga_status st = ga_json_parse_strict(text, len, t->path, NULL, &root, err);
    if (st) return st;
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    if (!cJSON_IsObject(root)) {
        st = FMT_ERR("%s: expected a JSON object", t->path);
    } else if (!cJSON_IsObject(model)) {
        st = FMT_ERR("%s: missing object \"model\"", t->path);
    } else if (!is_absent(added) && !cJSON_IsArray(added)) {
        st = FMT_ERR("%s: \"added_tokens\" must be an array", t->path);
    } else if (!cJSON_IsObject(vocab)) {
        st = FMT_ERR("%s: model.vocab must be an object", t->path);
    } else if (!cJSON_IsArray(merges)) {
        st = FMT_ERR("%s: model.merges must be an array", t->path);
    }
    if (!st) st = parse_model_opts(t, model, err);
    if (!st) st = load_vocab(t, vocab, cJSON_IsArray(added) ? added : NULL, err);
    if (!st) st = load_merges(t, merges, err);
    if (!st) {
        t->unk_id = -1;
        const cJSON *unk = cJSON_GetObjectItemCaseSensitive(model, "unk_token");
        if (cJSON_IsString(unk)) {
            t->unk_id =
                ga_strmap_get(&t->pieces, unk->valuestring, (uint32_t)strlen(unk->valuestring));
            if (t->unk_id < 0)
                st = FMT_ERR("%s: model.unk_token '%.80s' is not in the vocabulary", t->path,
                             unk->valuestring);
        } else if (!is_absent(unk)) {
            st = FMT_ERR("%s: model.unk_token must be a string or null", t->path);
        }
    }
    if (!st) {
        for (int b = 0; b < 256; b++) {
            char p[4];
            size_t n = ga_tok_bytes_to_piece((const uint8_t *)&(uint8_t){(uint8_t)b}, 1, p);
            int32_t id = ga_strmap_get(&t->pieces, p, (uint32_t)n);
            t->byte_id[b] = id >= 0 && !t->is_added[id] ? id : -1;
        }
        st = parse_pipeline(t, root, err);
    }
    cJSON_Delete(root);
    return st;
}

/* "eos_token": "<|im_end|>" or {"content": "<|im_end|>", ...} or null. */
static ga_status config_token(ga_tokenizer *t, const char *path, const cJSON *root, const char *key,
                              int32_t *out, ga_err *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    *out = -1;
    if (is_absent(v)) return GA_OK;
    if (cJSON_IsObject(v)) v = cJSON_GetObjectItemCaseSensitive(v, "content");
    if (!cJSON_IsString(v))
        return FMT_ERR("%s: %s must be a string, an object with \"content\", or null", path, key);
    *out = ga_strmap_get(&t->pieces, v->valuestring, (uint32_t)strlen(v->valuestring));
    if (*out < 0) return FMT_ERR("%s: %s '%.80s' is not a token", path, key, v->valuestring);
    return GA_OK;
}

ga_status ga_tok_parse_config(ga_tokenizer *t, const char *path, const char *text, size_t len,
                              ga_err *err) {
    cJSON *root;
    ga_status st = ga_json_parse_strict(text, len, path, NULL, &root, err);
    if (st) return st;
    if (!cJSON_IsObject(root)) st = FMT_ERR("%s: expected a JSON object", path);
    const cJSON *dec = cJSON_GetObjectItemCaseSensitive(root, "added_tokens_decoder");
    if (!st && !is_absent(dec)) {
        if (!cJSON_IsObject(dec)) st = FMT_ERR("%s: added_tokens_decoder must be an object", path);
        const cJSON *e;
        cJSON_ArrayForEach(e, dec) {
            if (st) break;
            char *end;
            long id = strtol(e->string, &end, 10);
            const cJSON *c = cJSON_GetObjectItemCaseSensitive(e, "content");
            if (!e->string[0] || *end || id < 0 || id >= GA_TOK_MAX_ID || !cJSON_IsString(c)) {
                st = FMT_ERR("%s: added_tokens_decoder['%.40s']: expected a token id with a "
                             "string \"content\"",
                             path, e->string);
            } else if (id >= t->vocab_size || !t->piece[id] ||
                       strcmp(t->piece[id], c->valuestring)) {
                st = FMT_ERR("%s: added_tokens_decoder: id %ld '%.80s' does not match "
                             "tokenizer.json",
                             path, id, c->valuestring);
            }
        }
    }
    if (!st) st = config_token(t, path, root, "eos_token", &t->eos_id, err);
    if (!st) st = config_token(t, path, root, "bos_token", &t->bos_id, err);
    if (!st) st = config_token(t, path, root, "pad_token", &t->pad_id, err);
    cJSON_Delete(root);
    return st;
}
