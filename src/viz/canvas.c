/*
 * The canvas: an RGB8 raster that the figure is drawn on, and its PNG or JPEG output
 * through stb_image_write (Debian's libstb carries the implementation, so no
 * IMPLEMENTATION define), encoded in memory and written to the file with every write checked.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <stb/stb_image_write.h>

#include "viz.h"

/* 16k x 16k is far beyond any figure we lay out and keeps w*h*3 well inside int and size_t. */
#define GA_CANVAS_MAX 16384

ga_status ga_canvas_create(int w, int h, ga_rgb bg, ga_canvas *out, ga_err *err) {
    out->w = out->h = 0;
    out->px = NULL;
    if (w < 1 || h < 1 || w > GA_CANVAS_MAX || h > GA_CANVAS_MAX)
        return ga_err_set(err, GA_ERR_ARG, "figure size %dx%d is outside 1..%d pixels", w, h,
                          GA_CANVAS_MAX);
    size_t n = (size_t)w * (size_t)h;
    uint8_t *px = malloc(n * 3);
    if (!px) return ga_err_set(err, GA_ERR_OOM, "out of memory for a %dx%d figure", w, h);
    for (size_t i = 0; i < n; i++) {
        px[3 * i] = bg.r;
        px[3 * i + 1] = bg.g;
        px[3 * i + 2] = bg.b;
    }
    out->w = w;
    out->h = h;
    out->px = px;
    return GA_OK;
}

void ga_canvas_free(ga_canvas *c) {
    if (!c) return;
    free(c->px);
    c->px = NULL;
    c->w = c->h = 0;
}

void ga_canvas_put(ga_canvas *c, int x, int y, ga_rgb col) {
    if (x < 0 || y < 0 || x >= c->w || y >= c->h) return;
    uint8_t *p = c->px + ((size_t)y * (size_t)c->w + (size_t)x) * 3;
    p[0] = col.r;
    p[1] = col.g;
    p[2] = col.b;
}

void ga_canvas_blend(ga_canvas *c, int x, int y, ga_rgb col, int alpha) {
    if (x < 0 || y < 0 || x >= c->w || y >= c->h) return;
    uint8_t *p = c->px + ((size_t)y * (size_t)c->w + (size_t)x) * 3;
    const uint8_t v[3] = {col.r, col.g, col.b};
    for (int i = 0; i < 3; i++)
        p[i] = (uint8_t)((p[i] * (255 - alpha) + v[i] * alpha + 127) / 255);
}

void ga_canvas_fill(ga_canvas *c, int x, int y, int w, int h, ga_rgb col) {
    int x0 = x < 0 ? 0 : x, y0 = y < 0 ? 0 : y;
    int x1 = x + w > c->w ? c->w : x + w, y1 = y + h > c->h ? c->h : y + h;
    for (int yy = y0; yy < y1; yy++) {
        uint8_t *p = c->px + ((size_t)yy * (size_t)c->w + (size_t)x0) * 3;
        for (int xx = x0; xx < x1; xx++, p += 3) {
            p[0] = col.r;
            p[1] = col.g;
            p[2] = col.b;
        }
    }
}

void ga_canvas_frame(ga_canvas *c, int x, int y, int w, int h, ga_rgb col) {
    ga_canvas_fill(c, x - 1, y - 1, w + 2, 1, col);
    ga_canvas_fill(c, x - 1, y + h, w + 2, 1, col);
    ga_canvas_fill(c, x - 1, y, 1, h, col);
    ga_canvas_fill(c, x + w, y, 1, h, col);
}

ga_status ga_image_format_of(const char *path, ga_image_format *fmt, ga_err *err) {
    const char *slash = strrchr(path, '/');
    const char *dot = strrchr(slash ? slash + 1 : path, '.');
    if (dot && !strcasecmp(dot, ".png")) {
        *fmt = GA_IMAGE_PNG;
        return GA_OK;
    }
    if (dot && (!strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg"))) {
        *fmt = GA_IMAGE_JPEG;
        return GA_OK;
    }
    return ga_err_set(err, GA_ERR_ARG, "%s: the name must end in .png, .jpg or .jpeg", path);
}

/* The encoded image, grown as stb hands over pieces. */
typedef struct mem_sink {
    uint8_t *p;
    size_t n, cap;
    int oom;
} mem_sink;

static void sink_write(void *ctx, void *data, int size) {
    mem_sink *m = ctx;
    if (m->oom || size <= 0) return;
    if (m->n + (size_t)size > m->cap) {
        size_t cap = m->cap ? m->cap : 1 << 16;
        while (cap < m->n + (size_t)size)
            cap *= 2;
        uint8_t *p = realloc(m->p, cap);
        if (!p) {
            m->oom = 1;
            return;
        }
        m->p = p;
        m->cap = cap;
    }
    memcpy(m->p + m->n, data, (size_t)size);
    m->n += (size_t)size;
}

ga_status ga_canvas_write(const ga_canvas *c, const char *path, ga_err *err) {
    ga_image_format fmt;
    ga_status st = ga_image_format_of(path, &fmt, err);
    if (st) return st;
    /* stb's file writers ignore fwrite/fclose failures (a full disk "succeeds"), so the
     * image is encoded into memory and written here with every step checked. */
    mem_sink m = {0};
    int ok = fmt == GA_IMAGE_PNG
                 ? stbi_write_png_to_func(sink_write, &m, c->w, c->h, 3, c->px, c->w * 3)
                 : stbi_write_jpg_to_func(sink_write, &m, c->w, c->h, 3, c->px, 95);
    if (!ok || m.oom || m.n == 0) {
        free(m.p);
        return ga_err_set(err, m.oom ? GA_ERR_OOM : GA_ERR_IO, "cannot encode %s (%dx%d %s)", path,
                          c->w, c->h, fmt == GA_IMAGE_PNG ? "PNG" : "JPEG");
    }
    FILE *f = fopen(path, "wb");
    if (!f) {
        free(m.p);
        return ga_err_set(err, GA_ERR_IO, "cannot write %s: %s", path, strerror(errno));
    }
    int e = 0;
    if (fwrite(m.p, 1, m.n, f) != m.n || fflush(f) != 0) e = errno ? errno : EIO;
    if (fclose(f) != 0 && !e) e = errno ? errno : EIO;
    free(m.p);
    if (e) return ga_err_set(err, GA_ERR_IO, "cannot write %s: %s", path, strerror(e));
    return GA_OK;
}
