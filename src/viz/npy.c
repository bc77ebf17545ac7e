/*
 * .npy files (NumPy format 1.0): the magic "\x93NUMPY", version 1.0, a little-endian uint16
 * header length, then a Python dict literal padded with spaces and ended by '\n' so that the
 * data starts on a 64-byte boundary, then the raw little-endian float32 data in C order.
 * The reader accepts what the writer writes (and version 2.0 headers): 2-D '<f4' C order.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "viz.h"

#define NPY_ALIGN 64

ga_status ga_npy_write_f32(const char *path, const float *data, int64_t rows, int64_t cols,
                           ga_err *err) {
    if (rows < 0 || cols < 0)
        return ga_err_set(err, GA_ERR_ARG, "bad .npy shape (%" PRId64 ", %" PRId64 ")", rows, cols);
    char dict[160];
    int n =
        snprintf(dict, sizeof dict,
                 "{'descr': '<f4', 'fortran_order': False, 'shape': (%" PRId64 ", %" PRId64 "), }",
                 rows, cols);
    /* 10 bytes of preamble + dict + padding + '\n' must be a multiple of 64. */
    int total = 10 + n + 1;
    int pad = (NPY_ALIGN - total % NPY_ALIGN) % NPY_ALIGN;
    int hlen = n + pad + 1;
    char head[10 + 160 + NPY_ALIGN];
    memcpy(head, "\x93NUMPY\x01\x00", 8);
    head[8] = (char)(hlen & 0xff);
    head[9] = (char)(hlen >> 8);
    memcpy(head + 10, dict, (size_t)n);
    memset(head + 10 + n, ' ', (size_t)pad);
    head[10 + n + pad] = '\n';

    FILE *f = fopen(path, "wb");
    if (!f) return ga_err_set(err, GA_ERR_IO, "cannot write %s: %s", path, strerror(errno));
    size_t count = (size_t)rows * (size_t)cols;
    /* The machines we build for are little-endian, like '<f4'; floats go out as they are. */
    int ok = fwrite(head, 1, (size_t)(10 + hlen), f) == (size_t)(10 + hlen) &&
             (count == 0 || fwrite(data, sizeof(float), count, f) == count);
    if (fclose(f) != 0) ok = 0;
    if (!ok) return ga_err_set(err, GA_ERR_IO, "cannot write %s: %s", path, strerror(errno));
    return GA_OK;
}

/* Finds `'key':` in the header dict and returns the text after it (skipping spaces). */
static const char *dict_value(const char *h, const char *key) {
    char pat[40];
    snprintf(pat, sizeof pat, "'%s':", key);
    const char *p = strstr(h, pat);
    if (!p) return NULL;
    p += strlen(pat);
    while (*p == ' ')
        p++;
    return p;
}

ga_status ga_npy_read_f32(const char *path, float **data, int64_t *rows, int64_t *cols,
                          ga_err *err) {
    *data = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return ga_err_set(err, GA_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    ga_status st = GA_OK;
    char *h = NULL;
    uint8_t pre[12];
    if (fread(pre, 1, 10, f) != 10 || memcmp(pre, "\x93NUMPY", 6) != 0) {
        st = ga_err_set(err, GA_ERR_FORMAT, "%s: not a .npy file", path);
        goto done;
    }
    uint32_t hlen;
    size_t pre_len = 10;
    if (pre[6] == 1) {
        hlen = (uint32_t)pre[8] | (uint32_t)pre[9] << 8;
    } else if (pre[6] == 2 || pre[6] == 3) {
        if (fread(pre + 10, 1, 2, f) != 2) {
            st = ga_err_set(err, GA_ERR_FORMAT, "%s: truncated header", path);
            goto done;
        }
        hlen = (uint32_t)pre[8] | (uint32_t)pre[9] << 8 | (uint32_t)pre[10] << 16 |
               (uint32_t)pre[11] << 24;
        pre_len = 12;
    } else {
        st = ga_err_set(err, GA_ERR_FORMAT, "%s: unsupported .npy version %d", path, pre[6]);
        goto done;
    }
    if (hlen > 65536 || (pre_len + hlen) % 16 != 0) {
        st = ga_err_set(err, GA_ERR_FORMAT, "%s: bad header length %u", path, hlen);
        goto done;
    }
    h = malloc(hlen + 1);
    if (!h || fread(h, 1, hlen, f) != hlen) {
        st = ga_err_set(err, GA_ERR_FORMAT, "%s: truncated header", path);
        goto done;
    }
    h[hlen] = 0;
    const char *d = dict_value(h, "descr"), *fo = dict_value(h, "fortran_order"),
               *sh = dict_value(h, "shape");
    long long r, c;
    if (!d || strncmp(d, "'<f4'", 5) != 0 || !fo || strncmp(fo, "False", 5) != 0 || !sh ||
        sscanf(sh, "(%lld, %lld)", &r, &c) != 2 || r < 0 || c < 0 || r > (1 << 20) ||
        c > (1 << 20)) {
        st = ga_err_set(err, GA_ERR_FORMAT, "%s: expected a 2-D '<f4' C-order array", path);
        goto done;
    }
    size_t count = (size_t)r * (size_t)c;
    *data = malloc(count ? count * sizeof(float) : 1);
    if (!*data) {
        st = ga_err_set(err, GA_ERR_OOM, "%s: out of memory", path);
        goto done;
    }
    if (fread(*data, sizeof(float), count, f) != count || fgetc(f) != EOF) {
        st = ga_err_set(err, GA_ERR_FORMAT, "%s: data size does not match shape (%lld, %lld)", path,
                        r, c);
        free(*data);
        *data = NULL;
        goto done;
    }
    *rows = r;
    *cols = c;
done:
    free(h);
    fclose(f);
    return st;
}
