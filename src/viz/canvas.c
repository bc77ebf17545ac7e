/*
 * The canvas: an RGB8 raster that the figure is drawn on, and its PNG output through
 * stb_image_write (Debian's libstb carries the implementation, so no IMPLEMENTATION define).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

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

ga_status ga_canvas_write_png(const ga_canvas *c, const char *path, ga_err *err) {
    /* stb reports failure without a reason; probing the path first gives the user one. */
    FILE *f = fopen(path, "wb");
    if (!f) return ga_err_set(err, GA_ERR_IO, "cannot write %s: %s", path, strerror(errno));
    fclose(f);
    if (!stbi_write_png(path, c->w, c->h, 3, c->px, c->w * 3))
        return ga_err_set(err, GA_ERR_IO, "cannot write PNG %s", path);
    return GA_OK;
}
