/*
 * The figure layout: a title (and a smaller subtitle) over a grid of panels, each a square
 * heatmap of square cells (query rows top to bottom, key columns left to right) with its
 * title, token labels on both axes (vertical ones under the x axis), each centred on its tick
 * and thinned so that labels never overlap, axis captions, and a colour bar with ticks on its
 * right. Each panel has its own colour scale over its own values: linear (data minimum to
 * maximum, like matplotlib's imshow default), log10, or linear capped at the 99th percentile.
 *
 * Everything is measured first (label widths, colour-bar label widths) in the figure's font
 * and then drawn, so the canvas is exactly as large as its contents plus margins.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "viz.h"

#define MARGIN 28       /* white border around everything */
#define HEAT_TARGET 360 /* heatmap side the cell size aims for, in pixels */
#define LABEL_MAX 14    /* characters of a tick label before it is shortened with ".." */
#define TICK 4          /* tick mark length */
#define TICK_GAP 3      /* between tick mark and its label */
#define TITLE_SIZE 2
#define PANEL_GAP_X 48
#define PANEL_GAP_Y 36
#define CBAR_GAP 14
#define CBAR_W 16
#define MAX_TICKS 16
#define LOG_RANGE 1e-4 /* the log scale spans at most four decades below the maximum */

static const ga_rgb WHITE = {255, 255, 255};
static const ga_rgb INK = {38, 38, 38};        /* matplotlib's default text colour, #262626 */
static const ga_rgb GREY = {110, 110, 110};    /* subtitle and captions */
static const ga_rgb NOTE_BG = {225, 225, 225}; /* a panel without a map */

const char *ga_color_scale_name(ga_color_scale s) {
    return s == GA_SCALE_LOG ? "log" : s == GA_SCALE_P99 ? "p99" : "linear";
}

int ga_color_scale_parse(const char *name, ga_color_scale *out) {
    for (int s = GA_SCALE_LINEAR; s <= GA_SCALE_P99; s++)
        if (!strcmp(name, ga_color_scale_name((ga_color_scale)s))) {
            *out = (ga_color_scale)s;
            return 0;
        }
    return -1;
}

/* Shortens a label to LABEL_MAX characters; returns a malloc'd string. */
static char *short_label(const char *s) {
    int n = ga_font_glyphs(s);
    if (n <= LABEL_MAX) return strdup(s);
    /* Copy whole UTF-8 characters up to LABEL_MAX - 2 glyphs, then "..". */
    size_t cut = 0;
    int glyphs = 0;
    while (s[cut] && glyphs < LABEL_MAX - 2) {
        size_t step = 1;
        while (s[cut + step] && ((unsigned char)s[cut + step] & 0xc0) == 0x80)
            step++;
        cut += step;
        glyphs++;
    }
    char *out = malloc(cut + 3);
    if (!out) return NULL;
    memcpy(out, s, cut);
    memcpy(out + cut, "..", 3);
    return out;
}

/* Formats a colour-bar value compactly ("0", "0.25", "0.833", "1.2e-05"). */
static void fmt_value(char *buf, size_t cap, double v) {
    if (fabs(v) < 5e-13) v = 0.0;
    snprintf(buf, cap, "%.3g", v);
}

typedef struct cbar_tick {
    double v;
    char text[32];
} cbar_tick;

typedef struct panel_geom {
    int cell, side;       /* cell size and heatmap side in pixels */
    int step;             /* label every step-th block */
    ga_color_scale scale; /* as asked, or linear where the values do not allow it */
    double lo, hi;        /* the values at the bottom and top of the colour bar */
    cbar_tick ticks[MAX_TICKS];
    int n_ticks, tick_w; /* widest colour-bar label (or its caption) */
    const char *caption; /* under the colour bar: which scale, when not linear */
} panel_geom;

/* Where value v falls on the colour bar, 0 (bottom) to 1 (top), clamped; NaN -> 0. */
static double scale_pos(const panel_geom *g, double v) {
    if (!(v == v)) return 0.0;
    double t;
    if (g->scale == GA_SCALE_LOG)
        t = v <= g->lo ? 0.0 : log(v / g->lo) / log(g->hi / g->lo);
    else
        t = g->hi > g->lo ? (v - g->lo) / (g->hi - g->lo) : 0.0;
    return t < 0.0 ? 0.0 : t > 1.0 ? 1.0 : t;
}

/* Adds a tick if it keeps `pitch` pixels from the ones already there. */
static void add_tick(panel_geom *g, double v, const char *text, int pitch) {
    if (g->n_ticks >= MAX_TICKS) return;
    double px = scale_pos(g, v) * g->side;
    for (int i = 0; i < g->n_ticks; i++)
        if (fabs(scale_pos(g, g->ticks[i].v) * g->side - px) < pitch) return;
    g->ticks[g->n_ticks].v = v;
    snprintf(g->ticks[g->n_ticks].text, sizeof g->ticks[0].text, "%s", text);
    g->n_ticks++;
}

/* Ticks: always both ends, then round values in between that keep their distance: 1, 2 or
 * 5 times a power of ten on a linear bar, the powers of ten on a log bar. The top of a
 * capped bar reads ">= value": everything above it has that colour too. */
static void make_ticks(panel_geom *g, int pitch) {
    char buf[32], top[40];
    g->n_ticks = 0;
    fmt_value(buf, sizeof buf, g->lo);
    add_tick(g, g->lo, buf, 0);
    if (!(g->hi > g->lo)) return;
    fmt_value(buf, sizeof buf, g->hi);
    snprintf(top, sizeof top, "%s%s", g->scale == GA_SCALE_P99 ? "\xe2\x89\xa5" : "", buf);
    add_tick(g, g->hi, top, pitch);
    if (g->scale == GA_SCALE_LOG) {
        for (double e = ceil(log10(g->lo)); e <= floor(log10(g->hi)); e++) {
            fmt_value(buf, sizeof buf, pow(10.0, e));
            add_tick(g, pow(10.0, e), buf, pitch);
        }
        return;
    }
    double raw = (g->hi - g->lo) / 4.0, p10 = pow(10.0, floor(log10(raw))), step = p10;
    if (raw / p10 >= 5.0)
        step = 5.0 * p10;
    else if (raw / p10 >= 2.0)
        step = 2.0 * p10;
    for (double v = ceil(g->lo / step) * step; v < g->hi; v += step) {
        fmt_value(buf, sizeof buf, v);
        add_tick(g, v, buf, pitch);
    }
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* The colour scale of one panel. Returns -1 when out of memory (for the percentile). */
static int panel_measure(const ga_fig_panel *p, const ga_figure *f, int pitch, panel_geom *g) {
    g->cell = HEAT_TARGET / p->res > 0 ? HEAT_TARGET / p->res : 1;
    g->side = g->cell * p->res;
    g->step = (pitch + g->cell - 1) / g->cell;
    if (!p->map) { /* a note instead of a heatmap: no scale, no colour bar */
        g->lo = 0.0;
        g->hi = 1.0;
        g->scale = GA_SCALE_LINEAR;
        g->caption = NULL;
        g->n_ticks = 0;
        g->tick_w = 0;
        return 0;
    }
    size_t n = (size_t)p->res * (size_t)p->res, finite = 0;
    double lo = INFINITY, hi = -INFINITY, pos = INFINITY;
    for (size_t i = 0; i < n; i++) {
        double v = p->map[i];
        if (!isfinite(v)) continue;
        finite++;
        if (v < lo) lo = v;
        if (v > hi) hi = v;
        if (v > 0 && v < pos) pos = v;
    }
    if (!(lo <= hi)) lo = hi = 0.0; /* no finite value at all */
    g->scale = f->scale;
    g->caption = NULL;
    if (g->scale == GA_SCALE_LOG && hi > 0) {
        lo = pos > hi * LOG_RANGE ? pos : hi * LOG_RANGE;
        if (lo >= hi) g->scale = GA_SCALE_LINEAR; /* one positive value: nothing to spread */
    } else if (g->scale == GA_SCALE_LOG) {
        g->scale = GA_SCALE_LINEAR; /* no positive value */
    }
    if (g->scale == GA_SCALE_P99) {
        float *v = malloc((finite ? finite : 1) * sizeof *v);
        if (!v) return -1;
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            if (isfinite(p->map[i])) v[k++] = p->map[i];
        qsort(v, k, sizeof *v, cmp_float);
        /* the value 99% of the cells are at or below (nearest rank) */
        double cap = k ? v[(size_t)ceil(0.99 * (double)k) - 1] : hi;
        free(v);
        if (cap > lo && cap < hi)
            hi = cap;
        else
            g->scale = GA_SCALE_LINEAR; /* nothing above the cap: the plain scale */
    }
    /* A constant map (one token: p = 1) gets a scale from 0, else it would show as the
     * lowest colour with a single tick. */
    if (g->scale == GA_SCALE_LINEAR && hi == lo) {
        if (lo > 0)
            lo = 0.0;
        else if (lo < 0)
            hi = 0.0;
        else
            hi = 1.0;
    }
    g->lo = lo;
    g->hi = hi;
    if (g->scale == GA_SCALE_LOG) g->caption = "log scale";
    if (g->scale == GA_SCALE_P99) g->caption = "capped at p99";
    make_ticks(g, pitch);
    g->tick_w = 0;
    for (int i = 0; i < g->n_ticks; i++) {
        int w = CBAR_W + 1 + TICK + TICK_GAP + ga_font_text_len(f->font, g->ticks[i].text, 1);
        if (w > g->tick_w) g->tick_w = w;
    }
    if (g->caption) {
        int w = ga_font_text_len(f->font, g->caption, 1);
        if (w > g->tick_w) g->tick_w = w;
    }
    return 0;
}

typedef struct fig_geom {
    int lh, mid;        /* label line height, and its offset to the tick line */
    int ylab_w, xlab_h; /* widest y label, longest x label (same labels on both axes) */
    int title_h, caption_h;
    int panel_w, panel_h;
    int cols, rows;
    int head_h; /* figure title block */
    int width, height;
} fig_geom;

static void draw_panel(ga_canvas *c, const ga_figure *f, const ga_fig_panel *p, const panel_geom *g,
                       char *const *labels, const fig_geom *fg, int x0, int y0, ga_fig_rect *rect) {
    const ga_font *font = f->font;
    int hx = x0 + fg->caption_h + fg->ylab_w + TICK_GAP + TICK; /* heatmap origin */
    int hy = y0 + fg->title_h;
    int S = g->side, cell = g->cell;
    if (rect) *rect = (ga_fig_rect){hx, hy, cell, S, hx + S + CBAR_GAP};

    /* title, centred over the heatmap */
    int tw = ga_font_text_len(font, p->title, TITLE_SIZE);
    ga_font_draw(font, c, hx + (S - tw) / 2, y0, p->title, TITLE_SIZE, GA_TEXT_RIGHT, INK);

    /* cells, or the note on grey where the panel has no map (each ':' ends a line) */
    if (!p->map) {
        ga_canvas_fill(c, hx, hy, S, S, NOTE_BG);
        const char *s = p->note ? p->note : "no map";
        int n_lines = 1;
        for (const char *q = s; *q; q++)
            n_lines += *q == ':';
        int lh = ga_font_height(font, 1) + 4, y = hy + (S - n_lines * lh) / 2;
        while (*s) {
            const char *e = strchr(s, ':');
            size_t len = e ? (size_t)(e - s) + 1 : strlen(s);
            char line[128];
            snprintf(line, sizeof line, "%.*s", (int)len, s);
            int w = ga_font_text_len(font, line, 1);
            ga_font_draw(font, c, hx + (S - w) / 2, y, line, 1, GA_TEXT_RIGHT, INK);
            y += lh;
            s += len;
            while (*s == ' ')
                s++;
        }
    }
    for (int i = 0; p->map && i < p->res; i++)
        for (int j = 0; j < p->res; j++) {
            double t = scale_pos(g, p->map[(size_t)i * p->res + j]);
            ga_canvas_fill(c, hx + j * cell, hy + i * cell, cell, cell, ga_viridis(t));
        }
    ga_canvas_frame(c, hx, hy, S, S, INK);

    /* tick labels: y on the left (right-aligned), x below (rotated, ending at the axis); the
     * middle of a capital sits on the tick, which is at the middle of its cell */
    for (int i = 0; labels && i < p->res; i += g->step) {
        const char *s = labels[i];
        int mid = i * cell + cell / 2;
        int w = ga_font_text_len(font, s, 1);
        ga_canvas_fill(c, hx - 1 - TICK, hy + mid, TICK, 1, INK);
        ga_font_draw(font, c, hx - 1 - TICK - TICK_GAP - w, hy + mid - fg->mid, s, 1, GA_TEXT_RIGHT,
                     INK);
        ga_canvas_fill(c, hx + mid, hy + S + 1, 1, TICK, INK);
        ga_font_draw(font, c, hx + mid - fg->mid, hy + S + 1 + TICK + TICK_GAP + w, s, 1,
                     GA_TEXT_UP, INK);
    }
    /* axis captions */
    if (f->x_axis) {
        int w = ga_font_text_len(font, f->x_axis, 1);
        ga_font_draw(font, c, hx + (S - w) / 2, hy + S + 1 + TICK + TICK_GAP + fg->xlab_h + 6,
                     f->x_axis, 1, GA_TEXT_RIGHT, GREY);
    }
    if (f->y_axis) {
        int w = ga_font_text_len(font, f->y_axis, 1);
        ga_font_draw(font, c, x0, hy + (S + w) / 2, f->y_axis, 1, GA_TEXT_UP, GREY);
    }

    /* colour bar: top = hi, bottom = lo, one colour per pixel row (the bar is the scale's
     * own axis, so a log bar is evenly spaced in log(value)) */
    int bx = hx + S + CBAR_GAP;
    if (!p->map) return;
    for (int y = 0; y < S; y++) {
        double t = 1.0 - (y + 0.5) / S;
        ga_canvas_fill(c, bx, hy + y, CBAR_W, 1, ga_viridis(t));
    }
    ga_canvas_frame(c, bx, hy, CBAR_W, S, INK);
    for (int i = 0; i < g->n_ticks; i++) {
        int y = hy + S - 1 - (int)lround(scale_pos(g, g->ticks[i].v) * (S - 1));
        ga_canvas_fill(c, bx + CBAR_W + 1, y, TICK, 1, INK);
        ga_font_draw(font, c, bx + CBAR_W + 1 + TICK + TICK_GAP, y - fg->mid, g->ticks[i].text, 1,
                     GA_TEXT_RIGHT, INK);
    }
    if (g->caption)
        ga_font_draw(font, c, bx, hy + S + 1 + TICK + TICK_GAP, g->caption, 1, GA_TEXT_RIGHT, GREY);
}

ga_status ga_figure_render(const ga_figure *f, ga_canvas *out, ga_fig_rect *rects, ga_err *err) {
    out->px = NULL;
    out->w = out->h = 0;
    if (f->n_panels < 1) return ga_err_set(err, GA_ERR_ARG, "a figure needs at least one panel");
    int res = f->panels[0].res;
    for (int i = 0; i < f->n_panels; i++)
        if (f->panels[i].res != res || res < 1 || (!f->panels[i].map && !f->panels[i].note))
            return ga_err_set(err, GA_ERR_ARG, "figure panels must share one resolution");
    if ((unsigned)f->scale > GA_SCALE_P99)
        return ga_err_set(err, GA_ERR_ARG, "unknown colour scale %d", (int)f->scale);

    const ga_font *font = f->font;
    ga_status st = GA_OK;
    panel_geom *pg = calloc((size_t)f->n_panels, sizeof *pg);
    char **labels = f->labels ? calloc((size_t)res, sizeof *labels) : NULL;
    if (!pg || (f->labels && !labels)) {
        st = ga_err_set(err, GA_ERR_OOM, "out of memory laying out the figure");
        goto done;
    }
    fig_geom fg = {0};
    fg.lh = ga_font_height(font, 1);
    fg.mid = ga_font_mid(font, 1);
    int pitch = fg.lh + 2; /* labels closer than this would touch */
    /* every panel has the same cells, so the same labels are shown (every step-th) */
    int cell = HEAT_TARGET / res > 0 ? HEAT_TARGET / res : 1, step = (pitch + cell - 1) / cell;
    for (int i = 0; labels && i < res; i++) {
        labels[i] = short_label(f->labels[i] ? f->labels[i] : "");
        if (!labels[i]) {
            st = ga_err_set(err, GA_ERR_OOM, "out of memory laying out the figure");
            goto done;
        }
        int w = i % step ? 0 : ga_font_text_len(font, labels[i], 1);
        if (w > fg.ylab_w) fg.ylab_w = w;
    }
    fg.xlab_h = fg.ylab_w;
    fg.title_h = ga_font_height(font, TITLE_SIZE) + 10;
    fg.caption_h = f->x_axis || f->y_axis ? fg.lh + 8 : 0;
    int tick_w = 0, side = 0, cbar_cap = 0;
    for (int i = 0; i < f->n_panels; i++) {
        if (panel_measure(&f->panels[i], f, pitch, &pg[i])) {
            st = ga_err_set(err, GA_ERR_OOM, "out of memory laying out the figure");
            goto done;
        }
        if (pg[i].tick_w > tick_w) tick_w = pg[i].tick_w;
        if (pg[i].caption) cbar_cap = fg.lh + TICK + TICK_GAP + 2;
        side = pg[i].side; /* equal for all: same res */
    }
    if (fg.xlab_h < cbar_cap) fg.xlab_h = cbar_cap; /* the bar's caption sits beside them */
    fg.panel_w = fg.caption_h + fg.ylab_w + TICK_GAP + TICK + side + CBAR_GAP + tick_w;
    fg.panel_h = fg.title_h + side + 1 + TICK + TICK_GAP + fg.xlab_h + fg.caption_h;
    int n = f->n_panels;
    fg.cols = n <= 3 ? n : n == 4 ? 2 : (int)ceil(sqrt((double)n));
    fg.rows = (n + fg.cols - 1) / fg.cols;
    fg.head_h = ga_font_height(font, TITLE_SIZE) + 8 + (f->subtitle ? fg.lh + 8 : 0) + 16;
    fg.width = 2 * MARGIN + fg.cols * fg.panel_w + (fg.cols - 1) * PANEL_GAP_X;
    fg.height = 2 * MARGIN + fg.head_h + fg.rows * fg.panel_h + (fg.rows - 1) * PANEL_GAP_Y;
    int title_w = f->title ? ga_font_text_len(font, f->title, TITLE_SIZE) : 0;
    int sub_w = f->subtitle ? ga_font_text_len(font, f->subtitle, 1) : 0;
    if (title_w + 2 * MARGIN > fg.width) fg.width = title_w + 2 * MARGIN;
    if (sub_w + 2 * MARGIN > fg.width) fg.width = sub_w + 2 * MARGIN;

    st = ga_canvas_create(fg.width, fg.height, WHITE, out, err);
    if (st) goto done;
    int y = MARGIN;
    if (f->title) {
        ga_font_draw(font, out, (fg.width - title_w) / 2, y, f->title, TITLE_SIZE, GA_TEXT_RIGHT,
                     INK);
        y += ga_font_height(font, TITLE_SIZE) + 8;
    }
    if (f->subtitle)
        ga_font_draw(font, out, (fg.width - sub_w) / 2, y, f->subtitle, 1, GA_TEXT_RIGHT, GREY);
    /* centre the grid when the title made the canvas wider than the panels */
    int grid_w = fg.cols * fg.panel_w + (fg.cols - 1) * PANEL_GAP_X;
    int gx = (fg.width - grid_w) / 2;
    for (int i = 0; i < n; i++) {
        int col = i % fg.cols, row = i / fg.cols;
        draw_panel(out, f, &f->panels[i], &pg[i], labels, &fg,
                   gx + col * (fg.panel_w + PANEL_GAP_X),
                   MARGIN + fg.head_h + row * (fg.panel_h + PANEL_GAP_Y), rects ? &rects[i] : NULL);
    }
done:
    if (labels)
        for (int i = 0; i < res; i++)
            free(labels[i]);
    free(labels);
    free(pg);
    return st;
}
