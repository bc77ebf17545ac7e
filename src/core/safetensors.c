/*
 * safetensors: memory-mapped reading (single file or shards), in-memory stores, and writing.
 *
 * Layout of a file: u64 little-endian N, N bytes of JSON header, then the data section.
 * The header maps tensor names to {"dtype", "shape", "data_offsets": [begin, end]} with
 * offsets relative to the data section. Everything in it is checked before any byte of
 * tensor data is trusted; see safetensors.h for the list.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "json.h"
#include "path.h"
#include "safetensors.h"

/* A JSON header over 100 MB is not a header (the format's own reference caps it likewise). */
#define MAX_HEADER_BYTES (100u << 20)
#define MAX_NAME_LEN 1024

typedef struct st_file {
    char *path;
    void *map;
    size_t size;
} st_file;

struct ga_store {
    st_file *files;
    int n_files;
    ga_tensor *tensors;
    int n, cap;
    void **owned; /* in-memory buffers, one per tensor (NULL for mapped) */
    int *order;   /* tensor indices sorted by name, for lookups */
    bool sorted;
};

static ga_store *store_new(void) {
    return calloc(1, sizeof(ga_store));
}

ga_store *ga_store_new_memory(void) {
    return store_new();
}

static ga_tensor *store_push(ga_store *s) {
    if (s->n == s->cap) {
        int nc = s->cap ? s->cap * 2 : 64;
        ga_tensor *nt = realloc(s->tensors, (size_t)nc * sizeof *nt);
        if (!nt) return NULL;
        s->tensors = nt;
        void **no = realloc(s->owned, (size_t)nc * sizeof *no);
        if (!no) return NULL;
        s->owned = no;
        s->cap = nc;
    }
    ga_tensor *t = &s->tensors[s->n];
    memset(t, 0, sizeof *t);
    s->owned[s->n] = NULL;
    s->n++;
    s->sorted = false;
    return t;
}

void ga_store_free(ga_store *s) {
    if (!s) return;
    for (int i = 0; i < s->n; i++) {
        free(s->tensors[i].name);
        free(s->owned[i]);
    }
    for (int i = 0; i < s->n_files; i++) {
        if (s->files[i].map) munmap(s->files[i].map, s->files[i].size);
        free(s->files[i].path);
    }
    free(s->files);
    free(s->tensors);
    free(s->owned);
    free(s->order);
    free(s);
}

ga_tensor *ga_store_add_owned(ga_store *s, const char *name, ga_dtype dtype, int ndim,
                              const int64_t *shape) {
    if (ndim < 0 || ndim > GA_MAX_DIMS) return NULL;
    uint64_t numel = 1;
    for (int i = 0; i < ndim; i++)
        numel *= (uint64_t)shape[i];
    uint64_t bytes = numel * ga_dtype_size(dtype);
    void *buf = calloc(1, bytes ? bytes : 1);
    char *nm = strdup(name);
    ga_tensor *t = (buf && nm) ? store_push(s) : NULL;
    if (!t) {
        free(buf);
        free(nm);
        return NULL;
    }
    t->name = nm;
    t->dtype = dtype;
    t->ndim = ndim;
    memcpy(t->shape, shape, (size_t)ndim * sizeof *shape);
    t->data = buf;
    t->nbytes = bytes;
    t->file = "<memory>";
    s->owned[s->n - 1] = buf;
    return t;
}

/* ------------------------------------------------------------------ lookups */

static int cmp_name(const void *a, const void *b, void *ctx) {
    const ga_store *s = ctx;
    return strcmp(s->tensors[*(const int *)a].name, s->tensors[*(const int *)b].name);
}

/* Sorts the name index; returns the first duplicate name or NULL. */
static const char *store_sort(ga_store *s) {
    free(s->order);
    s->order = malloc((size_t)(s->n ? s->n : 1) * sizeof(int));
    if (!s->order) return NULL;
    for (int i = 0; i < s->n; i++)
        s->order[i] = i;
    qsort_r(s->order, (size_t)s->n, sizeof(int), cmp_name, s);
    s->sorted = true;
    for (int i = 1; i < s->n; i++)
        if (!strcmp(s->tensors[s->order[i - 1]].name, s->tensors[s->order[i]].name))
            return s->tensors[s->order[i]].name;
    return NULL;
}

const ga_tensor *ga_store_find(const ga_store *s, const char *name) {
    if (!s->sorted) store_sort((ga_store *)s);
    if (!s->order) return NULL;
    int lo = 0, hi = s->n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        int c = strcmp(s->tensors[s->order[mid]].name, name);
        if (c == 0) return &s->tensors[s->order[mid]];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return NULL;
}

int ga_store_count(const ga_store *s) {
    return s->n;
}

const ga_tensor *ga_store_at(const ga_store *s, int i) {
    return (i >= 0 && i < s->n) ? &s->tensors[i] : NULL;
}

/* ------------------------------------------------------------------ header parsing */

static int parse_dtype(const char *s, ga_dtype *out) {
    if (!strcmp(s, "F32"))
        *out = GA_F32;
    else if (!strcmp(s, "F16"))
        *out = GA_F16;
    else if (!strcmp(s, "BF16"))
        *out = GA_BF16;
    else if (!strcmp(s, "F8_E4M3"))
        *out = GA_F8_E4M3;
    else
        return -1;
    return 0;
}

/* Reads a JSON number that must be a non-negative integer below 2^53 (exact in a double). */
static int json_u64(const cJSON *it, uint64_t *out) {
    if (!cJSON_IsNumber(it)) return -1;
    double v = it->valuedouble;
    if (!isfinite(v) || v < 0 || v != floor(v) || v > 9007199254740992.0) return -1;
    *out = (uint64_t)v;
    return 0;
}

typedef struct span {
    uint64_t begin, end;
    int idx;
} span;

static int cmp_span(const void *a, const void *b) {
    const span *x = a, *y = b;
    return x->begin < y->begin   ? -1
           : x->begin > y->begin ? 1
                                 : (x->end > y->end) - (x->end < y->end);
}

ga_status ga_store_parse_header(ga_store *s, const char *path, const char *hdr, uint64_t hdr_len,
                                const uint8_t *data, uint64_t data_len, ga_err *err) {
    cJSON *root;
    ga_status st =
        ga_json_parse_strict(hdr, (size_t)hdr_len, path, "safetensors header", &root, err);
    if (st) return st;
    int first = s->n;
    if (!cJSON_IsObject(root)) {
        st = ga_err_set(err, GA_ERR_FORMAT, "%s: safetensors header must be a JSON object", path);
        goto done;
    }
    const cJSON *e;
    cJSON_ArrayForEach(e, root) {
        const char *name = e->string;
        if (!strcmp(name, "__metadata__")) {
            if (!cJSON_IsObject(e)) {
                st = ga_err_set(err, GA_ERR_FORMAT, "%s: __metadata__ must be an object", path);
                goto done;
            }
            continue;
        }
        size_t nlen = strlen(name);
        if (nlen == 0 || nlen > MAX_NAME_LEN) {
            st = ga_err_set(err, GA_ERR_FORMAT, "%s: tensor name of length %zu is invalid", path,
                            nlen);
            goto done;
        }
        if (!cJSON_IsObject(e)) {
            st = ga_err_set(err, GA_ERR_FORMAT, "%s: tensor \"%s\": entry must be an object", path,
                            name);
            goto done;
        }
        const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
        const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
        const cJSON *off = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
        ga_dtype dtype;
        if (!cJSON_IsString(dt)) {
            st = ga_err_set(err, GA_ERR_FORMAT, "%s: tensor \"%s\": missing dtype", path, name);
            goto done;
        }
        if (parse_dtype(dt->valuestring, &dtype)) {
            st = ga_err_set(err, GA_ERR_UNSUPPORTED,
                            "%s: tensor \"%s\": dtype %s is not supported (F32, F16, BF16, and "
                            "F8_E4M3 with block scales)",
                            path, name, dt->valuestring);
            goto done;
        }
        if (!cJSON_IsArray(sh)) {
            st = ga_err_set(err, GA_ERR_FORMAT, "%s: tensor \"%s\": missing shape", path, name);
            goto done;
        }
        int ndim = cJSON_GetArraySize(sh);
        if (ndim > GA_MAX_DIMS) {
            st = ga_err_set(err, GA_ERR_FORMAT, "%s: tensor \"%s\": %d dimensions (at most %d)",
                            path, name, ndim, GA_MAX_DIMS);
            goto done;
        }
        int64_t shape[GA_MAX_DIMS] = {0};
        uint64_t numel = 1;
        for (int d = 0; d < ndim; d++) {
            uint64_t v;
            if (json_u64(cJSON_GetArrayItem(sh, d), &v) || v > (1ull << 40)) {
                st = ga_err_set(err, GA_ERR_FORMAT, "%s: tensor \"%s\": bad shape entry %d", path,
                                name, d);
                goto done;
            }
            shape[d] = (int64_t)v;
            /* Overflow guard: each factor < 2^40 and the running product checked below 2^60. */
            if (v && numel > (1ull << 60) / v) {
                st = ga_err_set(err, GA_ERR_FORMAT, "%s: tensor \"%s\": shape too large", path,
                                name);
                goto done;
            }
            numel *= v;
        }
        uint64_t b, en;
        if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2 ||
            json_u64(cJSON_GetArrayItem(off, 0), &b) || json_u64(cJSON_GetArrayItem(off, 1), &en)) {
            st = ga_err_set(err, GA_ERR_FORMAT,
                            "%s: tensor \"%s\": data_offsets must be [begin, end]", path, name);
            goto done;
        }
        if (b > en || en > data_len) {
            st = ga_err_set(err, GA_ERR_FORMAT,
                            "%s: tensor \"%s\": data_offsets [%llu, %llu] outside the data "
                            "section of %llu bytes",
                            path, name, (unsigned long long)b, (unsigned long long)en,
                            (unsigned long long)data_len);
            goto done;
        }
        uint64_t want = numel * ga_dtype_size(dtype);
        if (en - b != want) {
            char sbuf[96];
            st = ga_err_set(err, GA_ERR_FORMAT,
                            "%s: tensor \"%s\": %s %s needs %llu bytes, data_offsets span %llu",
                            path, name, dt->valuestring,
                            ga_shape_str(ndim, shape, sbuf, sizeof sbuf), (unsigned long long)want,
                            (unsigned long long)(en - b));
            goto done;
        }
        ga_tensor *t = store_push(s);
        char *nm = strdup(name);
        if (!t || !nm) {
            free(nm);
            if (t) s->n--;
            st = ga_err_set(err, GA_ERR_OOM, "%s: out of memory", path);
            goto done;
        }
        t->name = nm;
        t->dtype = dtype;
        t->ndim = ndim;
        memcpy(t->shape, shape, sizeof shape);
        t->data = data + b;
        t->nbytes = want;
        t->file = path;
    }
    /* No two tensors of this file may share bytes. */
    int cnt = s->n - first;
    if (cnt > 1) {
        span *sp = malloc((size_t)cnt * sizeof *sp);
        if (!sp) {
            st = ga_err_set(err, GA_ERR_OOM, "%s: out of memory", path);
            goto done;
        }
        for (int i = 0; i < cnt; i++) {
            const ga_tensor *t = &s->tensors[first + i];
            sp[i].begin = (uint64_t)((const uint8_t *)t->data - data);
            sp[i].end = sp[i].begin + t->nbytes;
            sp[i].idx = first + i;
        }
        qsort(sp, (size_t)cnt, sizeof *sp, cmp_span);
        /* Sweep in order of begin, remembering the non-empty span reaching furthest. */
        int far = -1;
        for (int i = 0; i < cnt; i++) {
            if (sp[i].end == sp[i].begin) continue; /* empty tensors own no bytes */
            if (far >= 0 && sp[i].begin < sp[far].end) {
                st = ga_err_set(err, GA_ERR_FORMAT, "%s: tensors \"%s\" and \"%s\" overlap", path,
                                s->tensors[sp[far].idx].name, s->tensors[sp[i].idx].name);
                break;
            }
            if (far < 0 || sp[i].end > sp[far].end) far = i;
        }
        free(sp);
    }
done:
    cJSON_Delete(root);
    return st;
}

/* ------------------------------------------------------------------ files */

static ga_status map_file(ga_store *s, const char *path, ga_err *err) {
    st_file *nf = realloc(s->files, (size_t)(s->n_files + 1) * sizeof *nf);
    if (!nf) return ga_err_set(err, GA_ERR_OOM, "%s: out of memory", path);
    s->files = nf;
    st_file *f = &s->files[s->n_files];
    memset(f, 0, sizeof *f);
    f->path = strdup(path);
    if (!f->path) return ga_err_set(err, GA_ERR_OOM, "%s: out of memory", path);
    s->n_files++;
    int fd;
    uint64_t fsize;
    ga_status st = ga_open_regular(path, &fd, &fsize, err);
    if (st) return st;
    if (fsize < 8) {
        close(fd);
        return ga_err_set(err, GA_ERR_FORMAT,
                          "%s: %llu bytes, too short for a safetensors header (8-byte length)",
                          path, (unsigned long long)fsize);
    }
    f->size = (size_t)fsize;
    void *m = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED)
        return ga_err_set(err, GA_ERR_IO, "%s: mmap failed: %s", path, strerror(errno));
    f->map = m;
    const uint8_t *p = m;
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--)
        n = (n << 8) | p[i]; /* little-endian regardless of host */
    /* A file that is not safetensors at all has a first 8 bytes that read as an impossible
     * length and no '{' at byte 8 (every header is a JSON object). Describe it in words: that
     * length would be a meaningless number. */
    bool bad_len = n > f->size - 8 || n > MAX_HEADER_BYTES;
    if (bad_len && f->size > 8 && p[8] != '{') {
        bool text = true;
        char shown[9];
        for (int i = 0; i < 8; i++) {
            text &= (p[i] >= 0x20 && p[i] < 0x7f) || p[i] == '\n' || p[i] == '\t' || p[i] == '\r';
            shown[i] = (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '"') ? (char)p[i] : '?';
        }
        shown[8] = 0;
        if (text)
            return ga_err_set(err, GA_ERR_FORMAT,
                              "%s: not a safetensors file: expected an 8-byte header length and a "
                              "JSON header starting with '{', found text (\"%s...\")",
                              path, shown);
        return ga_err_set(err, GA_ERR_FORMAT,
                          "%s: not a safetensors file: expected an 8-byte header length and a "
                          "JSON header starting with '{', found binary data (bytes %02x %02x "
                          "%02x %02x ...)",
                          path, p[0], p[1], p[2], p[3]);
    }
    if (n > f->size - 8)
        return ga_err_set(err, GA_ERR_FORMAT,
                          "%s: truncated: the header length (%llu bytes) runs past the end of the "
                          "file (%zu bytes)",
                          path, (unsigned long long)n, f->size);
    if (n > MAX_HEADER_BYTES)
        return ga_err_set(err, GA_ERR_FORMAT, "%s: header length %llu exceeds %u bytes", path,
                          (unsigned long long)n, MAX_HEADER_BYTES);
    if (n < 2) return ga_err_set(err, GA_ERR_FORMAT, "%s: empty safetensors header", path);
    return ga_store_parse_header(s, f->path, (const char *)p + 8, n, p + 8 + n, f->size - 8 - n,
                                 err);
}

static ga_status check_unique(ga_store *s, const char *where, ga_err *err) {
    const char *dup = store_sort(s);
    if (!s->order) return ga_err_set(err, GA_ERR_OOM, "%s: out of memory", where);
    if (dup) return ga_err_set(err, GA_ERR_FORMAT, "%s: tensor \"%s\" appears twice", where, dup);
    return GA_OK;
}

ga_status ga_store_open_file(const char *path, ga_store **out, ga_err *err) {
    *out = NULL;
    ga_store *s = store_new();
    if (!s) return ga_err_set(err, GA_ERR_OOM, "out of memory");
    ga_status st = map_file(s, path, err);
    if (!st) st = check_unique(s, path, err);
    if (st) {
        ga_store_free(s);
        return st;
    }
    *out = s;
    return GA_OK;
}

static ga_status open_sharded(ga_store *s, const char *dir, const char *index_path, ga_err *err) {
    char *buf;
    size_t sz;
    ga_status st = ga_read_regular(index_path, 64u << 20, &buf, &sz, err);
    if (st) return st;
    cJSON *root;
    st = ga_json_parse_strict(buf, sz, index_path, NULL, &root, err);
    free(buf);
    if (st) return st;
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!cJSON_IsObject(wm)) {
        st = ga_err_set(err, GA_ERR_FORMAT, "%s: missing \"weight_map\" object", index_path);
        goto done;
    }
    /* Open each distinct shard once, in order of first mention. */
    const cJSON *e;
    cJSON_ArrayForEach(e, wm) {
        if (!cJSON_IsString(e)) {
            st = ga_err_set(err, GA_ERR_FORMAT, "%s: weight_map[\"%s\"] must be a file name",
                            index_path, e->string);
            goto done;
        }
        const char *fn = e->valuestring;
        /* Shard names come from an untrusted file: keep them inside the model folder. */
        if (!*fn || strchr(fn, '/') || !strcmp(fn, "..") || !strcmp(fn, ".")) {
            st = ga_err_set(err, GA_ERR_FORMAT, "%s: shard name \"%s\" is not a plain file name",
                            index_path, fn);
            goto done;
        }
        char *path = ga_path_join(dir, fn);
        if (!path) {
            st = ga_err_set(err, GA_ERR_OOM, "out of memory");
            goto done;
        }
        bool seen = false;
        for (int i = 0; i < s->n_files; i++)
            seen |= !strcmp(s->files[i].path, path);
        if (!seen) st = map_file(s, path, err);
        free(path);
        if (st) goto done;
    }
    if ((st = check_unique(s, dir, err))) goto done;
    /* Every tensor the index names must be in the shard it names. */
    cJSON_ArrayForEach(e, wm) {
        const ga_tensor *t = ga_store_find(s, e->string);
        char *path = ga_path_join(dir, e->valuestring);
        bool ok = t && path && !strcmp(t->file, path);
        free(path);
        if (!ok) {
            st = ga_err_set(err, GA_ERR_FORMAT, "%s: tensor \"%s\" is not in %s as the index says",
                            index_path, e->string, e->valuestring);
            goto done;
        }
    }
done:
    cJSON_Delete(root);
    return st;
}

ga_status ga_store_open_dir(const char *dir, ga_store **out, ga_err *err) {
    *out = NULL;
    char *single = ga_path_join(dir, "model.safetensors");
    char *index = ga_path_join(dir, "model.safetensors.index.json");
    ga_status st;
    if (!single || !index) {
        st = ga_err_set(err, GA_ERR_OOM, "out of memory");
        goto done;
    }
    ga_store *s = store_new();
    if (!s) {
        st = ga_err_set(err, GA_ERR_OOM, "out of memory");
        goto done;
    }
    if (access(single, F_OK) == 0) {
        st = map_file(s, single, err);
        if (!st) st = check_unique(s, single, err);
    } else if (access(index, F_OK) == 0) {
        st = open_sharded(s, dir, index, err);
    } else {
        st = ga_err_set(err, GA_ERR_IO,
                        "%s: no model.safetensors or model.safetensors.index.json in the folder",
                        dir);
    }
    if (st)
        ga_store_free(s);
    else
        *out = s;
done:
    free(single);
    free(index);
    return st;
}

/* ------------------------------------------------------------------ FP8 block scales */

/* "<file>: " prefix of a tensor's messages. */
static const char *file_of(const ga_tensor *t) {
    return t->file ? t->file : "<memory>";
}

ga_status ga_store_bind_fp8(ga_store *s, const int block[2], const char *where, ga_err *err) {
    const char suffix[] = "_scale_inv";
    for (int i = 0; i < s->n; i++) {
        ga_tensor *t = &s->tensors[i];
        const size_t len = strlen(t->name);
        if (t->dtype != GA_F8_E4M3) {
            /* A scale beside a weight that is not FP8 means the folder is not what its config
             * says: refuse rather than silently ignore the scale. */
            if (len <= sizeof suffix - 1 || strcmp(t->name + len - (sizeof suffix - 1), suffix))
                continue;
            char base[MAX_NAME_LEN + 1];
            snprintf(base, sizeof base, "%.*s", (int)(len - (sizeof suffix - 1)), t->name);
            const ga_tensor *w = ga_store_find(s, base);
            if (w && w->dtype != GA_F8_E4M3)
                return ga_err_set(err, GA_ERR_FORMAT,
                                  "%s: tensor \"%s\" is %s, yet block scales \"%s\" come with it "
                                  "(only F8_E4M3 weights have scales)",
                                  file_of(w), base, ga_dtype_name(w->dtype), t->name);
            continue;
        }
        if (block[0] <= 0)
            return ga_err_set(err, GA_ERR_FORMAT,
                              "%s: tensor \"%s\" is F8_E4M3, but %s/config.json has no "
                              "quantization_config {\"quant_method\": \"fp8\"} saying how to "
                              "scale it",
                              file_of(t), t->name, where);
        char sb[96];
        ga_shape_str(t->ndim, t->shape, sb, sizeof sb);
        if (t->ndim != 2)
            return ga_err_set(err, GA_ERR_UNSUPPORTED,
                              "%s: tensor \"%s\": F8_E4M3 %s: only matrices (2-D) are supported "
                              "in FP8",
                              file_of(t), t->name, sb);
        char sname[MAX_NAME_LEN + sizeof suffix];
        snprintf(sname, sizeof sname, "%s%s", t->name, suffix);
        const int64_t want[2] = {(t->shape[0] + block[0] - 1) / block[0],
                                 (t->shape[1] + block[1] - 1) / block[1]};
        char wb[96], fb[96];
        ga_shape_str(2, want, wb, sizeof wb);
        const ga_tensor *sc = ga_store_find(s, sname);
        if (!sc)
            return ga_err_set(err, GA_ERR_SHAPE,
                              "%s: tensor \"%s\" is F8_E4M3 but its block scales \"%s\" (shape "
                              "%s) are missing",
                              file_of(t), t->name, sname, wb);
        if (sc->dtype == GA_F8_E4M3)
            return ga_err_set(err, GA_ERR_FORMAT,
                              "%s: block scales \"%s\" of \"%s\" are F8_E4M3; expected F32, BF16 "
                              "or F16",
                              file_of(sc), sname, t->name);
        if (sc->ndim != 2 || sc->shape[0] != want[0] || sc->shape[1] != want[1])
            return ga_err_set(err, GA_ERR_SHAPE,
                              "%s: block scales \"%s\" of \"%s\" %s in %dx%d blocks: expected "
                              "shape %s, found %s",
                              file_of(sc), sname, t->name, sb, block[0], block[1], wb,
                              ga_shape_str(sc->ndim, sc->shape, fb, sizeof fb));
        t->scale_inv = sc;
        t->block[0] = block[0];
        t->block[1] = block[1];
    }
    return GA_OK;
}

/* ------------------------------------------------------------------ writing */

ga_status ga_safetensors_write(const char *path, const ga_tensor *const *tensors, int n,
                               ga_err *err) {
    cJSON *root = cJSON_CreateObject();
    cJSON *meta = cJSON_AddObjectToObject(root, "__metadata__");
    cJSON_AddStringToObject(meta, "format", "pt");
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        const ga_tensor *t = tensors[i];
        cJSON *e = cJSON_AddObjectToObject(root, t->name);
        cJSON_AddStringToObject(e, "dtype", ga_dtype_name(t->dtype));
        cJSON *sh = cJSON_AddArrayToObject(e, "shape");
        for (int d = 0; d < t->ndim; d++)
            cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)t->shape[d]));
        cJSON *o = cJSON_AddArrayToObject(e, "data_offsets");
        cJSON_AddItemToArray(o, cJSON_CreateNumber((double)off));
        cJSON_AddItemToArray(o, cJSON_CreateNumber((double)(off + t->nbytes)));
        off += t->nbytes;
    }
    char *hdr = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!hdr) return ga_err_set(err, GA_ERR_OOM, "%s: out of memory", path);
    /* Pad the header with spaces so the data section starts 8-byte aligned. */
    size_t hl = strlen(hdr), padded = (hl + 7) & ~(size_t)7;
    FILE *f = fopen(path, "wb");
    if (!f) {
        free(hdr);
        return ga_err_set(err, GA_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    }
    uint8_t len8[8];
    for (int i = 0; i < 8; i++)
        len8[i] = (uint8_t)((uint64_t)padded >> (8 * i));
    bool ok = fwrite(len8, 1, 8, f) == 8 && fwrite(hdr, 1, hl, f) == hl;
    for (size_t i = hl; ok && i < padded; i++)
        ok = fputc(' ', f) != EOF;
    free(hdr);
    for (int i = 0; ok && i < n; i++)
        ok = fwrite(tensors[i]->data, 1, tensors[i]->nbytes, f) == tensors[i]->nbytes;
    if (fclose(f) != 0) ok = false;
    if (!ok) return ga_err_set(err, GA_ERR_IO, "%s: write failed", path);
    return GA_OK;
}
