/*
 * Visualisation of attention: the pieces `gattn viz` is built from, each in its own file.
 *   canvas.c    an RGB8 raster with rectangles, lines and PNG/JPEG output (stb_image_write)
 *   font.c      text in a TrueType font (stb_truetype) or an embedded 5x7 bitmap font
 *   label.c     token text made readable as a tick label (visible space, newline, tab)
 *   colormap.c  the viridis colour map
 *   figure.c    the figure layout: a grid of heatmap panels with axes, labels, colour bars
 *   lineplot.c  the line plot: series over shared x positions, with markers and a legend
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
/* Mixes col into the pixel with coverage alpha (0..255). */
void ga_canvas_blend(ga_canvas *c, int x, int y, ga_rgb col, int alpha);
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

#define GA_FONT_ADVANCE 6 /* bitmap font: pixels per character at size 1 (5 columns + 1 gap) */
#define GA_FONT_ASCENT 7  /* bitmap font: cap height */
#define GA_FONT_HEIGHT 9  /* bitmap font: cap height + 2 descender rows */

/* A TrueType font; every function below takes NULL for the built-in bitmap font. */
typedef struct ga_font ga_font;

typedef enum ga_text_dir {
    GA_TEXT_RIGHT = 0, /* normal text; (x, y) is the top-left of the text box */
    GA_TEXT_UP = 1,    /* rotated 90 degrees counter-clockwise, read bottom to top; (x, y) is
                          the bottom-left of the text box (text grows upwards) */
} ga_text_dir;

/* Reads a TrueType file (a regular file, at most 64 MiB, with an 'H'); errors name the path. */
ga_status ga_font_load(const char *path, ga_font **out, ga_err *err);
void ga_font_free(ga_font *f);
/* Height of the text box at size 1 (labels) or 2 (titles). */
int ga_font_height(const ga_font *f, int size);
/* Offset from the box top to the middle of a capital: the line that sits on a tick. */
int ga_font_mid(const ga_font *f, int size);
/* Length in pixels along the text direction. */
int ga_font_text_len(const ga_font *f, const char *s, int size);
void ga_font_draw(const ga_font *f, ga_canvas *c, int x, int y, const char *s, int size,
                  ga_text_dir dir, ga_rgb col);
/* Bitmap font: number of glyphs a UTF-8 string draws as (each character is one glyph; an
 * invalid byte is one box), and the 9 rows of a character's glyph (bit 4 = leftmost column;
 * characters it lacks get the box). */
int ga_font_glyphs(const char *s);
const uint8_t *ga_font_glyph(uint32_t codepoint);

/* A token's text (as ga_tok_token_text writes it: \n, \t, \r and \xNN escapes) made
 * readable as a tick label: each space as U+2423 (an open box, as tokenizers show "Ġ"),
 * \n as U+21B5, \t as U+21E5, the rest unchanged; an empty token shows as "" (two quotes).
 * Writes at most cap-1 bytes and a NUL, cutting only between whole characters. */
void ga_viz_token_label(const char *text, char *out, size_t cap);

/* ---------------------------------------------------------------- colour map */

/* viridis at t in [0, 1] (clamped; NaN maps to the lowest colour), 256 levels as in
 * matplotlib: level = min(255, floor(t * 256)). */
ga_rgb ga_viridis(double t);
ga_rgb ga_viridis_level(int level);

/* ---------------------------------------------------------------- figure */

typedef struct ga_fig_panel {
    const char *title; /* "Layer 7" */
    const float *map;  /* (res, res) row = query block, column = key block; NULL: no map */
    int res;
    /* Shown in a grey square in place of the heatmap (no colour bar) when map is NULL, e.g.
     * "linear attention: no attention map" for a Gated DeltaNet layer of a hybrid model. */
    const char *note;
} ga_fig_panel;

/* How a panel's values map to colours. Attention maps are often dominated by the first
 * key's column (the sink); the other two scales show the rest of the map. */
typedef enum ga_color_scale {
    GA_SCALE_LINEAR = 0, /* data minimum to data maximum (matplotlib's imshow default) */
    GA_SCALE_LOG = 1,    /* log10, from max(smallest positive value, max * 1e-4) to max;
                            values at or below the bottom get the lowest colour */
    GA_SCALE_P99 = 2,    /* linear from the minimum to the 99th percentile of the panel's
                            values; higher values get the top colour (bar labelled >=) */
} ga_color_scale;

/* "linear", "log", "p99"; ga_color_scale_parse returns -1 for any other name. */
const char *ga_color_scale_name(ga_color_scale s);
int ga_color_scale_parse(const char *name, ga_color_scale *out);

typedef struct ga_figure {
    const char *title;    /* the figure's title line */
    const char *subtitle; /* a smaller second line, or NULL */
    const ga_fig_panel *panels;
    int n_panels;
    /* labels[i] names block i of every panel's axes (res entries); NULL for no labels */
    char *const *labels;
    const char *x_axis; /* axis captions, e.g. "key" / "query" (NULL: none) */
    const char *y_axis;
    const ga_font *font;  /* NULL: the built-in bitmap font */
    ga_color_scale scale; /* every panel's, each over its own values */
} ga_figure;

/* Where a panel's heatmap landed: top-left pixel, cell size, side (= cell * res). */
typedef struct ga_fig_rect {
    int x, y, cell, side;
    int bar_x; /* left edge of its colour bar (same y and height as the heatmap) */
} ga_fig_rect;

/* Lays the panels out in a grid (1..3 in one row, 4 as 2 x 2, more in ceil(sqrt(n))
 * columns), each a square heatmap of square cells with its own colour scale (f->scale over
 * the panel's values), tick labels centred on their ticks and thinned to what fits, and a
 * colour bar. rects (n_panels entries, or NULL) receives where each heatmap was drawn. */
ga_status ga_figure_render(const ga_figure *f, ga_canvas *out, ga_fig_rect *rects, ga_err *err);

/* ---------------------------------------------------------------- line plot */

typedef enum ga_plot_marker {
    GA_MARK_CIRCLE = 0,
    GA_MARK_SQUARE = 1,
    GA_MARK_TRIANGLE = 2,
    GA_MARK_DIAMOND = 3,
} ga_plot_marker;
#define GA_PLOT_MARKERS 4

/* matplotlib's default colour cycle (tab10), colour i % 10. */
ga_rgb ga_plot_palette(int i);

typedef struct ga_plot_series {
    const char *label; /* legend text */
    const double *y;   /* y[i] is the value at x position i; NaN or +-Inf: no point there,
                          and the line breaks (no segment to or from it) */
    int n;             /* values, 0 .. the plot's n_x */
    ga_rgb color;
    int marker; /* ga_plot_marker (taken modulo GA_PLOT_MARKERS) */
} ga_plot_series;

typedef struct ga_lineplot {
    const char *title;    /* the figure's title line, or NULL */
    const char *subtitle; /* a smaller second line, or NULL */
    const char *x_axis;   /* axis captions, or NULL */
    const char *y_axis;
    char *const *x_labels; /* n_x tick labels (NULL, or a NULL entry: none) */
    int n_x;               /* x positions, evenly spaced */
    const ga_plot_series *series;
    int n_series;
    const ga_font *font; /* NULL: the built-in bitmap font */
} ga_lineplot;

/* Where the data landed. x position i is at column ga_plot_x (x for i = 0, x + w - 1 for
 * i = n_x - 1, evenly between; the middle for a single position); value v at row ga_plot_y
 * (y_hi at row y, y_lo at row y + h - 1). The y range holds every finite value, widened to
 * round tick values (1, 2, 2.5 or 5 times a power of ten) at most 8 steps apart. The frame is PAD
 * pixels outside this rectangle, so markers at the ends stay inside it. The legend box is legend_w
 * x legend_h at (legend_x, legend_y). */
typedef struct ga_plot_area {
    int x, y, w, h;
    double y_lo, y_hi;
    int y_ticks; /* labelled y ticks: 2 (the ends, for an extreme range) to 9 */
    int legend_x, legend_y, legend_w, legend_h;
} ga_plot_area;
int ga_plot_x(const ga_plot_area *a, int n_x, int i);
int ga_plot_y(const ga_plot_area *a, double v);

/* Draws the plot onto a new canvas sized to fit it (errors: no x positions, no series, a
 * series longer than n_x, a canvas over ga_canvas_create's limit). area (may be NULL)
 * receives where the data and the legend went. */
ga_status ga_lineplot_render(const ga_lineplot *p, ga_canvas *out, ga_plot_area *area, ga_err *err);

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
 * ("-" where a value is NaN, i.e. gates of a baseline model). notes: NULL, or n_layers
 * entries, each NULL or a phrase printed after the layer's row (no comma or quote in it). */
void ga_metrics_print(FILE *f, const ga_layer_metrics *m, const char *const *notes, int n_layers);
/* metrics.csv (empty fields for NaN; with notes a last "note" column) and metrics.json (null
 * for NaN; with notes a "note" field on the layers that have one), layers 1-based. */
ga_status ga_metrics_write_csv(const char *path, const ga_layer_metrics *m,
                               const char *const *notes, int n_layers, ga_err *err);
ga_status ga_metrics_write_json(const char *path, const ga_layer_metrics *m,
                                const char *const *notes, int n_layers, ga_err *err);
/* tokens.json: {"ids": [...], "tokens": [...]}. */
ga_status ga_tokens_write_json(const char *path, const int32_t *ids, char *const *tokens, int n,
                               ga_err *err);

#endif
