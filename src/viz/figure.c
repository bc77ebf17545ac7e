/*
 * The figure layout: a title (and a smaller subtitle) over a grid of panels, each a square
 * heatmap of square cells (query rows top to bottom, key columns left to right) with its
 * title, token labels on both axes (vertical ones under the x axis), thinned so that labels
 * never overlap, axis captions, and a colour bar with ticks on its right. Each panel has its
 * own colour scale, data minimum to data maximum, like matplotlib's imshow default.
 *
 * Everything is measured first (label widths, colour-bar label widths) and then drawn, so
 * the canvas is exactly as large as its contents plus margins.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "viz.h"

#define MARGIN 28       /* white border around everything */
#define HEAT_TARGET 360 /* heatmap side the cell size aims for, in pixels */
#define LABEL_MAX 14    /* glyphs of a tick label before it is shortened with ".." */
#define TICK 4          /* tick mark length */
#define TICK_GAP 3      /* between tick mark and its label */
#define LINE_PITCH 11   /* minimum distance between neighbouring labels */
#define TITLE_SCALE 2
#define PANEL_GAP_X 48
#define PANEL_GAP_Y 36
#define CBAR_GAP 14
#define CBAR_W 16

static const ga_rgb WHITE = {255, 255, 255};
static const ga_rgb INK = {38, 38, 38};     /* matplotlib's default text colour, #262626 */
static const ga_rgb GREY = {110, 110, 110}; /* subtitle and captions */

/* Shortens a label to LABEL_MAX glyphs; returns a malloc'd string. */
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
    char text[24];
} cbar_tick;

/* Ticks for a colour bar of `len` pixels over [lo, hi]: always lo and hi, plus the round
 * values (1, 2 or 5 times a power of ten) in between that keep LINE_PITCH from the others. */
static int cbar_ticks(double lo, double hi, int len, cbar_tick *out, int cap) {
    int n = 0;
    out[n].v = lo;
    fmt_value(out[n].text, sizeof out[n].text, lo);
    n++;
    if (hi > lo) {
        out[n].v = hi;
        fmt_value(out[n].text, sizeof out[n].text, hi);
        n++;
        double raw = (hi - lo) / 4.0, p10 = pow(10.0, floor(log10(raw))), step = p10;
        if (raw / p10 >= 5.0)
            step = 5.0 * p10;
        else if (raw / p10 >= 2.0)
            step = 2.0 * p10;
        for (double v = ceil(lo / step) * step; v < hi && n < cap; v += step) {
            double px = (v - lo) / (hi - lo) * len;
            int clear = 1;
            for (int i = 0; i < n; i++)
                if (fabs((out[i].v - lo) / (hi - lo) * len - px) < LINE_PITCH + 1) clear = 0;
            if (!clear) continue;
            out[n].v = v;
            fmt_value(out[n].text, sizeof out[n].text, v);
            n++;
        }
    }
    return n;
}

typedef struct panel_geom {
    int cell, side; /* cell size and heatmap side in pixels */
    int step;       /* label every step-th block */
    double lo, hi;  /* colour scale */
    cbar_tick ticks[12];
    int n_ticks, tick_w; /* widest colour-bar label */
} panel_geom;

typedef struct fig_geom {
    int ylab_w, xlab_h; /* widest y label, longest x label (same labels on both axes) */
    int title_h, caption_h;
    int panel_w, panel_h;
    int cols, rows;
    int head_h; /* figure title block */
    int width, height;
} fig_geom;

static void panel_measure(const ga_fig_panel *p, panel_geom *g) {
    g->cell = HEAT_TARGET / p->res > 0 ? HEAT_TARGET / p->res : 1;
    g->side = g->cell * p->res;
    g->step = (LINE_PITCH + g->cell - 1) / g->cell;
    size_t n = (size_t)p->res * (size_t)p->res;
    double lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(p->map[i])) continue;
        if (p->map[i] < lo) lo = p->map[i];
        if (p->map[i] > hi) hi = p->map[i];
    }
    if (!(lo <= hi)) lo = hi = 0.0; /* no finite value at all */
    /* A constant map (one token: p = 1) gets a scale from 0, else it would show as the
     * lowest colour with a single tick. */
    if (hi == lo) {
        if (lo > 0)
            lo = 0.0;
        else if (lo < 0)
            hi = 0.0;
        else
            hi = 1.0;
    }
    g->lo = lo;
    g->hi = hi;
    g->n_ticks = cbar_ticks(lo, hi, g->side, g->ticks, 12);
    g->tick_w = 0;
    for (int i = 0; i < g->n_ticks; i++) {
        int w = ga_font_text_len(g->ticks[i].text, 1);
        if (w > g->tick_w) g->tick_w = w;
    }
}

static void draw_panel(ga_canvas *c, const ga_figure *f, const ga_fig_panel *p, const panel_geom *g,
                       char *const *labels, const fig_geom *fg, int x0, int y0, ga_fig_rect *rect) {
    int hx = x0 + fg->caption_h + fg->ylab_w + TICK_GAP + TICK; /* heatmap origin */
    int hy = y0 + fg->title_h;
    int S = g->side, cell = g->cell;
    if (rect) *rect = (ga_fig_rect){hx, hy, cell, S, hx + S + CBAR_GAP};

    /* title, centred over the heatmap */
    int tw = ga_font_text_len(p->title, TITLE_SCALE);
    ga_font_draw(c, hx + (S - tw) / 2, y0, p->title, TITLE_SCALE, GA_TEXT_RIGHT, INK);

    /* cells */
    double span = g->hi - g->lo;
    for (int i = 0; i < p->res; i++)
        for (int j = 0; j < p->res; j++) {
            double v = p->map[(size_t)i * p->res + j];
            double t = span > 0 ? (v - g->lo) / span : 0.0;
            ga_canvas_fill(c, hx + j * cell, hy + i * cell, cell, cell, ga_viridis(t));
        }
    ga_canvas_frame(c, hx, hy, S, S, INK);

    /* tick labels: y on the left (right-aligned), x below (rotated, ending at the axis) */
    for (int i = 0; labels && i < p->res; i += g->step) {
        const char *s = labels[i];
        int mid = i * cell + cell / 2;
        int w = ga_font_text_len(s, 1);
        ga_canvas_fill(c, hx - 1 - TICK, hy + mid, TICK, 1, INK);
        ga_font_draw(c, hx - 1 - TICK - TICK_GAP - w, hy + mid - GA_FONT_ASCENT / 2, s, 1,
                     GA_TEXT_RIGHT, INK);
        ga_canvas_fill(c, hx + mid, hy + S + 1, 1, TICK, INK);
        ga_font_draw(c, hx + mid - GA_FONT_ASCENT / 2, hy + S + 1 + TICK + TICK_GAP + w, s, 1,
                     GA_TEXT_UP, INK);
    }
    /* axis captions */
    if (f->x_axis) {
        int w = ga_font_text_len(f->x_axis, 1);
        ga_font_draw(c, hx + (S - w) / 2, hy + S + 1 + TICK + TICK_GAP + fg->xlab_h + 6, f->x_axis,
                     1, GA_TEXT_RIGHT, GREY);
    }
    if (f->y_axis) {
        int w = ga_font_text_len(f->y_axis, 1);
        ga_font_draw(c, x0, hy + (S + w) / 2, f->y_axis, 1, GA_TEXT_UP, GREY);
    }

    /* colour bar: top = hi, bottom = lo, one colour per pixel row */
    int bx = hx + S + CBAR_GAP;
    for (int y = 0; y < S; y++) {
        double t = 1.0 - (y + 0.5) / S;
        ga_canvas_fill(c, bx, hy + y, CBAR_W, 1, ga_viridis(t));
    }
    ga_canvas_frame(c, bx, hy, CBAR_W, S, INK);
    for (int i = 0; i < g->n_ticks; i++) {
        double u = span > 0 ? (g->ticks[i].v - g->lo) / span : 0.0;
        int y = hy + S - 1 - (int)lround(u * (S - 1));
        ga_canvas_fill(c, bx + CBAR_W + 1, y, TICK, 1, INK);
        ga_font_draw(c, bx + CBAR_W + 1 + TICK + TICK_GAP, y - GA_FONT_ASCENT / 2, g->ticks[i].text,
                     1, GA_TEXT_RIGHT, INK);
    }
}

ga_status ga_figure_render(const ga_figure *f, ga_canvas *out, ga_fig_rect *rects, ga_err *err) {
    out->px = NULL;
    out->w = out->h = 0;
    if (f->n_panels < 1) return ga_err_set(err, GA_ERR_ARG, "a figure needs at least one panel");
    int res = f->panels[0].res;
    for (int i = 0; i < f->n_panels; i++)
        if (f->panels[i].res != res || res < 1 || !f->panels[i].map)
            return ga_err_set(err, GA_ERR_ARG, "figure panels must share one resolution");

    ga_status st = GA_OK;
    panel_geom *pg = calloc((size_t)f->n_panels, sizeof *pg);
    char **labels = f->labels ? calloc((size_t)res, sizeof *labels) : NULL;
    if (!pg || (f->labels && !labels)) {
        st = ga_err_set(err, GA_ERR_OOM, "out of memory laying out the figure");
        goto done;
    }
    fig_geom fg = {0};
    for (int i = 0; labels && i < res; i++) {
        labels[i] = short_label(f->labels[i] ? f->labels[i] : "");
        if (!labels[i]) {
            st = ga_err_set(err, GA_ERR_OOM, "out of memory laying out the figure");
            goto done;
        }
        int w = ga_font_text_len(labels[i], 1);
        if (w > fg.ylab_w) fg.ylab_w = w;
    }
    fg.xlab_h = fg.ylab_w;
    fg.title_h = GA_FONT_HEIGHT * TITLE_SCALE + 10;
    fg.caption_h = f->x_axis || f->y_axis ? GA_FONT_HEIGHT + 8 : 0;
    int tick_w = 0, side = 0;
    for (int i = 0; i < f->n_panels; i++) {
        panel_measure(&f->panels[i], &pg[i]);
        if (pg[i].tick_w > tick_w) tick_w = pg[i].tick_w;
        side = pg[i].side; /* equal for all: same res */
    }
    fg.panel_w = fg.caption_h + fg.ylab_w + TICK_GAP + TICK + side + CBAR_GAP + CBAR_W + 1 + TICK +
                 TICK_GAP + tick_w;
    fg.panel_h = fg.title_h + side + 1 + TICK + TICK_GAP + fg.xlab_h + fg.caption_h;
    int n = f->n_panels;
    fg.cols = n <= 3 ? n : n == 4 ? 2 : (int)ceil(sqrt((double)n));
    fg.rows = (n + fg.cols - 1) / fg.cols;
    fg.head_h = GA_FONT_HEIGHT * TITLE_SCALE + 8 + (f->subtitle ? GA_FONT_HEIGHT + 8 : 0) + 16;
    fg.width = 2 * MARGIN + fg.cols * fg.panel_w + (fg.cols - 1) * PANEL_GAP_X;
    fg.height = 2 * MARGIN + fg.head_h + fg.rows * fg.panel_h + (fg.rows - 1) * PANEL_GAP_Y;
    int title_w = f->title ? ga_font_text_len(f->title, TITLE_SCALE) : 0;
    if (title_w + 2 * MARGIN > fg.width) fg.width = title_w + 2 * MARGIN;

    st = ga_canvas_create(fg.width, fg.height, WHITE, out, err);
    if (st) goto done;
    int y = MARGIN;
    if (f->title) {
        ga_font_draw(out, (fg.width - title_w) / 2, y, f->title, TITLE_SCALE, GA_TEXT_RIGHT, INK);
        y += GA_FONT_HEIGHT * TITLE_SCALE + 8;
    }
    if (f->subtitle) {
        int w = ga_font_text_len(f->subtitle, 1);
        ga_font_draw(out, (fg.width - w) / 2, y, f->subtitle, 1, GA_TEXT_RIGHT, GREY);
    }
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
