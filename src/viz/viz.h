/*
 * Visualisation of attention: the pieces `gattn viz` is built from, each in its own file.
 *   canvas.c    an RGB8 raster with rectangles, lines and PNG/JPEG output (stb_image_write)
 *   font.c      an embedded 5x7 bitmap font (plus descenders), drawn upright or rotated
 *   colormap.c  the viridis colour map
 *   figure.c    the figure layout: a grid of heatmap panels with axes, labels, colour bars
 *   attn_math.c pooling of attention maps (a full-resolution capture down to the picture's)
 *   npy.c       the .npy writer (and reader, for tests and tools)
 *   report.c    the metrics table, metrics.csv / metrics.json and tokens.json
 * Nothing here touches a model or a backend; the CLI (src/cli/cmd_viz.c) wires them up.
 */
#ifndef GATTN_VIZ_H
#define GATTN_VIZ_H

#include <stdint.h>
#include <stdio.h>

#include "gattn/gattn.h"

/* ---------------------------------------------------------------- canvas */

typedef struct ga_rgb {
    uint8_t r, g, b;
} ga_rgb;

typedef struct ga_canvas {
    int w, h;
    uint8_t *px; /* (h, w, 3) row-major RGB */
} ga_canvas;

/* A w x h canvas filled with `bg`; limits the size so w*h*3 cannot overflow. */
ga_status ga_canvas_create(int w, int h, ga_rgb bg, ga_canvas *out, ga_err *err);
void ga_canvas_free(ga_canvas *c);
/* Clipped to the canvas: drawing off the edge is not an error. */
void ga_canvas_fill(ga_canvas *c, int x, int y, int w, int h, ga_rgb col);
void ga_canvas_put(ga_canvas *c, int x, int y, ga_rgb col);
/* 1-pixel rectangle outline around the w x h box at (x, y) (drawn just outside it). */
void ga_canvas_frame(ga_canvas *c, int x, int y, int w, int h, ga_rgb col);
typedef enum ga_image_format { GA_IMAGE_PNG, GA_IMAGE_JPEG } ga_image_format;
/* The format a path's extension names: .png, or .jpg / .jpeg (any case); anything else is
 * GA_ERR_ARG naming the path. */
ga_status ga_image_format_of(const char *path, ga_image_format *fmt, ga_err *err);
/* Writes the canvas as PNG or JPEG (quality 95) by the path's extension; a failed write
 * (a full disk, an I/O error on close) is GA_ERR_IO naming the path. */
ga_status ga_canvas_write(const ga_canvas *c, const char *path, ga_err *err);

/* ---------------------------------------------------------------- font */

#define GA_FONT_ADVANCE 6 /* pixels per character at scale 1 (5 glyph columns + 1 gap) */
#define GA_FONT_ASCENT 7  /* cap height */
#define GA_FONT_HEIGHT 9  /* cap height + 2 descender rows */

typedef enum ga_text_dir {
    GA_TEXT_RIGHT = 0, /* normal text; (x, y) is the top-left of the first glyph cell */
    GA_TEXT_UP = 1,    /* rotated 90 degrees counter-clockwise, read bottom to top; (x, y) is
                          the bottom-left of the first glyph (text grows upwards) */
} ga_text_dir;

/* Number of glyphs a UTF-8 string draws as (each multibyte character is one box glyph). */
int ga_font_glyphs(const char *s);
/* Length in pixels along the text direction at `scale`. */
int ga_font_text_len(const char *s, int scale);
void ga_font_draw(ga_canvas *c, int x, int y, const char *s, int scale, ga_text_dir dir,
                  ga_rgb col);
/* The 9 rows of a character's glyph (bit 4 = leftmost column); non-ASCII gets the box. */
const uint8_t *ga_font_glyph(uint32_t codepoint);

/* ---------------------------------------------------------------- colour map */

/* viridis at t in [0, 1] (clamped; NaN maps to the lowest colour), 256 levels as in
 * matplotlib: level = min(255, floor(t * 256)). */
ga_rgb ga_viridis(double t);
ga_rgb ga_viridis_level(int level);

/* ---------------------------------------------------------------- figure */

typedef struct ga_fig_panel {
    const char *title; /* "Layer 7" */
    const float *map;  /* (res, res) row = query block, column = key block */
    int res;
} ga_fig_panel;

typedef struct ga_figure {
    const char *title;    /* the figure's title line */
    const char *subtitle; /* a smaller second line, or NULL */
    const ga_fig_panel *panels;
    int n_panels;
    /* labels[i] names block i of every panel's axes (res entries); NULL for no labels */
    char *const *labels;
    const char *x_axis; /* axis captions, e.g. "key" / "query" (NULL: none) */
    const char *y_axis;
} ga_figure;

/* Where a panel's heatmap landed: top-left pixel, cell size, side (= cell * res). */
typedef struct ga_fig_rect {
    int x, y, cell, side;
    int bar_x; /* left edge of its colour bar (same y and height as the heatmap) */
} ga_fig_rect;

/* Lays the panels out in a grid (1..3 in one row, 4 as 2 x 2, more in ceil(sqrt(n))
 * columns), each a square heatmap of square cells with its own colour scale (data min to
 * data max), tick labels thinned to what fits, and a colour bar. rects (n_panels entries,
 * or NULL) receives where each heatmap was drawn. */
ga_status ga_figure_render(const ga_figure *f, ga_canvas *out, ga_fig_rect *rects, ga_err *err);

/* ---------------------------------------------------------------- attention maths */

/* Block-mean pooling of a (T, T) attention matrix to (res, res), the definition in gattn.h:
 * out[bi][bj] = sum over keys in bj of the mean over queries in bi; block b covers
 * positions [b*T/res, (b+1)*T/res). Requires 1 <= res <= T. */
ga_status ga_attn_pool(const float *p, int T, int res, float *out, ga_err *err);

/* ---------------------------------------------------------------- npy */

/* Writes a float32 C-order array of shape (rows, cols) as .npy (format 1.0). */
ga_status ga_npy_write_f32(const char *path, const float *data, int64_t rows, int64_t cols,
                           ga_err *err);
/* Reads a 2-D little-endian float32 C-order .npy; *data is malloc'd. */
ga_status ga_npy_read_f32(const char *path, float **data, int64_t *rows, int64_t *cols,
                          ga_err *err);

/* ---------------------------------------------------------------- report */

/* The metrics table of all layers: layer, first_token_share, gate_mean, gate_below_0_1
 * ("-" where a value is NaN, i.e. gates of a baseline model). */
void ga_metrics_print(FILE *f, const ga_layer_metrics *m, int n_layers);
/* metrics.csv (empty fields for NaN) and metrics.json (null for NaN), layers 1-based. */
ga_status ga_metrics_write_csv(const char *path, const ga_layer_metrics *m, int n_layers,
                               ga_err *err);
ga_status ga_metrics_write_json(const char *path, const ga_layer_metrics *m, int n_layers,
                                ga_err *err);
/* tokens.json: {"ids": [...], "tokens": [...]}. */
ga_status ga_tokens_write_json(const char *path, const int32_t *ids, char *const *tokens, int n,
                               ga_err *err);

#endif
