/*
 * The line plot: a title (and a smaller subtitle) over one framed plot of several series
 * against shared, evenly spaced x positions (gattn perplexity puts its power-of-two position
 * buckets there, which makes the axis a log2 axis), with a linear y axis of round ticks,
 * light grid lines, anti-aliased lines of 2 pixels, a marker at every point, axis captions,
 * and a legend to the right of the plot (outside it, so it never hides a point).
 *
 * It looks like the heatmap figure (figure.c): the same margins, font, ink and grey, and the
 * same order of work: everything is measured in the figure's font first, then the canvas is
 * made exactly as large as its contents and everything is drawn on it.
 *
 * A value that is NaN or infinite is not a point: no marker, and the line breaks there
 * (matplotlib's behaviour), so an empty bucket never draws a line to a made-up value.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "viz.h"

#define MARGIN 28
#define TITLE_SIZE 2
#define TICK 4
#define TICK_GAP 3
#define PAD 12          /* between the frame and the outermost points: markers stay inside */
#define PLOT_H 360      /* data rectangle height */
#define PLOT_W_MIN 480  /* data rectangle width, at least */
#define PLOT_W_MAX 1200 /* wider than this, x labels are turned upright instead */
#define LINE_HALF 1.0   /* half the line width, pixels */
#define MARK_R 4        /* marker radius */
#define LEGEND_GAP 20   /* between the frame and the legend box */
#define LEGEND_PAD 8    /* inside the legend box */
#define LEGEND_KEY 28   /* the line sample in a legend row */
#define MAX_Y_TICKS 12
#define Y_STEPS 8 /* y ticks: at most this many steps between them */

static const ga_rgb WHITE = {255, 255, 255};
static const ga_rgb INK = {38, 38, 38};     /* as figure.c: matplotlib's #262626 */
static const ga_rgb GREY = {110, 110, 110}; /* subtitle and captions */
static const ga_rgb GRID = {229, 229, 229}; /* grid lines, under everything */
static const ga_rgb LEGEND_EDGE = {204, 204, 204};

/* matplotlib's default colour cycle (tab10) */
static const ga_rgb PALETTE[10] = {
    {31, 119, 180}, {255, 127, 14},  {44, 160, 44},   {214, 39, 40},  {148, 103, 189},
    {140, 86, 75},  {227, 119, 194}, {127, 127, 127}, {188, 189, 34}, {23, 190, 207},
};

ga_rgb ga_plot_palette(int i) {
    return PALETTE[(i % 10 + 10) % 10];
}

/* ---------------------------------------------------------------- drawing primitives */

static double clampd(double v, double lo, double hi) {
    return v < lo ? lo : v > hi ? hi : v;
}

/* A line segment of half-width LINE_HALF, each pixel's coverage from its centre's distance
 * to the segment (a one-pixel ramp at the edge), blended in; limited to the clip box. */
static void draw_segment(ga_canvas *c, double x0, double y0, double x1, double y1, ga_rgb col,
                         const int clip[4]) {
    const double r = LINE_HALF + 0.5;
    int bx0 = (int)floor(fmin(x0, x1) - r), bx1 = (int)ceil(fmax(x0, x1) + r);
    int by0 = (int)floor(fmin(y0, y1) - r), by1 = (int)ceil(fmax(y0, y1) + r);
    if (bx0 < clip[0]) bx0 = clip[0];
    if (by0 < clip[1]) by0 = clip[1];
    if (bx1 > clip[2]) bx1 = clip[2];
    if (by1 > clip[3]) by1 = clip[3];
    const double dx = x1 - x0, dy = y1 - y0, len2 = dx * dx + dy * dy;
    for (int y = by0; y <= by1; y++)
        for (int x = bx0; x <= bx1; x++) {
            double t = len2 > 0 ? ((x - x0) * dx + (y - y0) * dy) / len2 : 0.0;
            t = clampd(t, 0.0, 1.0);
            const double ex = x - (x0 + t * dx), ey = y - (y0 + t * dy);
            const double cov = clampd(LINE_HALF + 0.5 - sqrt(ex * ex + ey * ey), 0.0, 1.0);
            if (cov > 0) ga_canvas_blend(c, x, y, col, (int)lround(cov * 255));
        }
}

/* Whether (dx, dy) from a marker's centre is inside the marker's shape of radius r. */
static int in_marker(int marker, double dx, double dy, double r) {
    switch (marker % GA_PLOT_MARKERS) {
    case GA_MARK_SQUARE:
        return fabs(dx) <= r * 0.85 && fabs(dy) <= r * 0.85;
    case GA_MARK_TRIANGLE: /* pointing up: apex at -r, base at +0.75r */
        return dy <= 0.75 * r && dy >= -r && fabs(dx) <= (dy + r) * 0.66;
    case GA_MARK_DIAMOND:
        return fabs(dx) + fabs(dy) <= r * 1.2;
    default:
        return dx * dx + dy * dy <= r * r;
    }
}

/* A filled marker, its coverage from 4 x 4 samples a pixel. */
static void draw_marker(ga_canvas *c, double cx, double cy, int marker, ga_rgb col) {
    const double r = MARK_R + 0.5;
    for (int y = (int)floor(cy - r - 1); y <= (int)ceil(cy + r + 1); y++)
        for (int x = (int)floor(cx - r - 1); x <= (int)ceil(cx + r + 1); x++) {
            int hits = 0;
            for (int s = 0; s < 16; s++)
                hits += in_marker(marker, x - cx + ((s & 3) + 0.5) / 4 - 0.5,
                                  y - cy + ((s >> 2) + 0.5) / 4 - 0.5, r);
            if (hits) ga_canvas_blend(c, x, y, col, hits * 255 / 16);
        }
}

/* ---------------------------------------------------------------- y axis */

typedef struct y_axis {
    double lo, hi;
    double ticks[MAX_Y_TICKS];
    char text[MAX_Y_TICKS][32];
    int n;
} y_axis;

/* Position of v between lo (0) and hi (1), computed on halves so that a range near DBL_MAX
 * does not overflow to infinity. */
static double y_frac(const y_axis *a, double v) {
    return (v * 0.5 - a->lo * 0.5) / (a->hi * 0.5 - a->lo * 0.5);
}

/* The y range from the finite values, widened to round ticks; a constant series gets a range
 * around its value, no values 0..1. */
static void y_axis_make(const ga_lineplot *p, y_axis *a) {
    double lo = INFINITY, hi = -INFINITY;
    for (int s = 0; s < p->n_series; s++)
        for (int i = 0; i < p->series[s].n; i++) {
            const double v = p->series[s].y[i];
            if (!isfinite(v)) continue;
            if (v < lo) lo = v;
            if (v > hi) hi = v;
        }
    if (!(lo <= hi)) lo = 0.0, hi = 1.0;
    if (!(hi * 0.5 - lo * 0.5 > fmax(fabs(lo), fabs(hi)) * 1e-12)) {
        const double d = fmax(0.5, fabs(lo) * 0.05);
        lo -= d;
        hi += d;
    }
    a->lo = lo;
    a->hi = hi;
    a->n = 0;
    /* the smallest of 1, 2, 2.5, 5 times a power of ten that spans the range in at most
     * Y_STEPS steps (matplotlib's MaxNLocator idea) */
    const double raw = (hi * 0.5 - lo * 0.5) / (Y_STEPS * 0.5); /* without overflow */
    const double p10 = pow(10.0, floor(log10(raw)));
    static const double NICE[7] = {1, 2, 2.5, 5, 10, 20, 25};
    double step = 0, tlo = 0, thi = 0;
    for (int i = 0; i < 7; i++) {
        step = NICE[i] * p10;
        tlo = floor(lo / step) * step;
        thi = ceil(hi / step) * step;
        if ((thi - tlo) / step < Y_STEPS + 0.5) break;
    }
    if (isfinite(step) && step > 0 && isfinite(tlo) && isfinite(thi) &&
        (thi - tlo) / step < Y_STEPS + 0.5) {
        a->lo = tlo;
        a->hi = thi;
        /* decimals enough to tell neighbouring ticks apart, for moderate magnitudes */
        int dec = 0;
        while (dec < 7 &&
               fabs(step * pow(10, dec) - round(step * pow(10, dec))) > 1e-6 * step * pow(10, dec))
            dec++;
        const int plain = fmax(fabs(tlo), fabs(thi)) < 1e6 && dec <= 6;
        const int n = (int)lround((thi - tlo) / step);
        for (int k = 0; k <= n && a->n < MAX_Y_TICKS; k++) {
            double v = tlo + k * step;
            if (fabs(v) < step * 1e-9) v = 0.0;
            a->ticks[a->n] = v;
            if (plain)
                snprintf(a->text[a->n], sizeof a->text[0], "%.*f", dec, v);
            else
                snprintf(a->text[a->n], sizeof a->text[0], "%.3g", v);
            a->n++;
        }
        return;
    }
    /* an extreme range: the two ends only */
    a->ticks[0] = lo;
    a->ticks[1] = hi;
    snprintf(a->text[0], sizeof a->text[0], "%.3g", lo);
    snprintf(a->text[1], sizeof a->text[1], "%.3g", hi);
    a->n = 2;
}

/* ---------------------------------------------------------------- the plot */

int ga_plot_x(const ga_plot_area *a, int n_x, int i) {
    if (n_x <= 1) return a->x + (a->w - 1) / 2;
    return a->x + (int)lround((double)i * (a->w - 1) / (n_x - 1));
}

int ga_plot_y(const ga_plot_area *a, double v) {
    y_axis ax = {.lo = a->y_lo, .hi = a->y_hi};
    return a->y + (int)lround((1.0 - y_frac(&ax, v)) * (a->h - 1));
}

ga_status ga_lineplot_render(const ga_lineplot *p, ga_canvas *out, ga_plot_area *area,
                             ga_err *err) {
    out->px = NULL;
    out->w = out->h = 0;
    if (p->n_x < 1) return ga_err_set(err, GA_ERR_ARG, "a line plot needs at least one x position");
    if (p->n_series < 1 || !p->series)
        return ga_err_set(err, GA_ERR_ARG, "a line plot needs at least one series");
    for (int s = 0; s < p->n_series; s++)
        if (p->series[s].n < 0 || p->series[s].n > p->n_x || (p->series[s].n && !p->series[s].y))
            return ga_err_set(err, GA_ERR_ARG, "series %d has %d values for %d x positions", s,
                              p->series[s].n, p->n_x);
    const ga_font *font = p->font;
    const int lh = ga_font_height(font, 1), mid = ga_font_mid(font, 1);

    y_axis ya;
    y_axis_make(p, &ya);
    int ylab_w = 0;
    for (int k = 0; k < ya.n; k++) {
        const int w = ga_font_text_len(font, ya.text[k], 1);
        if (w > ylab_w) ylab_w = w;
    }
    /* x labels: side by side when they fit in a plot up to PLOT_W_MAX wide, else upright
     * (like the heatmap's) and thinned to every step-th so that they never touch */
    int xlab_w = 0;
    for (int i = 0; p->x_labels && i < p->n_x; i++) {
        const int w = p->x_labels[i] ? ga_font_text_len(font, p->x_labels[i], 1) : 0;
        if (w > xlab_w) xlab_w = w;
    }
    const int gaps = p->n_x > 1 ? p->n_x - 1 : 1;
    int data_w = gaps * (xlab_w + 12);
    const int upright = data_w > PLOT_W_MAX;
    if (upright) data_w = gaps * (lh + 4) < PLOT_W_MAX ? gaps * (lh + 4) : PLOT_W_MAX;
    if (data_w < PLOT_W_MIN) data_w = PLOT_W_MIN;
    const double spacing = (double)(data_w - 1) / gaps;
    const int need = upright ? lh + 2 : xlab_w + 8;
    int x_step = spacing >= need ? 1 : (int)ceil(need / spacing);
    const int xlab_h = p->x_labels ? (upright ? xlab_w : lh) : 0;

    /* legend rows: a line sample with its marker, then the label */
    int leg_text_w = 0;
    for (int s = 0; s < p->n_series; s++) {
        const char *l = p->series[s].label ? p->series[s].label : "";
        const int w = ga_font_text_len(font, l, 1);
        if (w > leg_text_w) leg_text_w = w;
    }
    const int row_h = (lh > 2 * MARK_R + 2 ? lh : 2 * MARK_R + 2) + 6;
    const int leg_w = 2 * LEGEND_PAD + LEGEND_KEY + 8 + leg_text_w;
    const int leg_h = 2 * LEGEND_PAD + p->n_series * row_h - 6;

    const int caption_x = p->x_axis ? lh + 8 : 0, caption_y = p->y_axis ? lh + 8 : 0;
    const int title_h = p->title ? ga_font_height(font, TITLE_SIZE) + 8 : 0;
    const int head_h = title_h + (p->subtitle ? lh + 8 : 0) + (p->title || p->subtitle ? 16 : 0);
    const int frame_w = data_w + 2 * PAD, frame_h = PLOT_H + 2 * PAD;
    /* frame's top-left corner (inside its 1-pixel outline) */
    const int fx = MARGIN + caption_y + ylab_w + TICK_GAP + TICK + 1;
    const int fy = MARGIN + head_h;
    /* the last x label, centred on its tick, may reach past the frame: keep it off the legend */
    const int leg_gap =
        !upright && xlab_w / 2 - PAD + 8 > LEGEND_GAP ? xlab_w / 2 - PAD + 8 : LEGEND_GAP;
    int width = fx + frame_w + 1 + leg_gap + leg_w + MARGIN;
    const int plot_bottom = fy + frame_h + 1 + TICK + TICK_GAP + xlab_h + caption_x;
    int height = (plot_bottom > fy + leg_h ? plot_bottom : fy + leg_h) + MARGIN;
    const int title_w = p->title ? ga_font_text_len(font, p->title, TITLE_SIZE) : 0;
    const int sub_w = p->subtitle ? ga_font_text_len(font, p->subtitle, 1) : 0;
    if (title_w + 2 * MARGIN > width) width = title_w + 2 * MARGIN;
    if (sub_w + 2 * MARGIN > width) width = sub_w + 2 * MARGIN;
    ga_status st = ga_canvas_create(width, height, WHITE, out, err);
    if (st) return st;

    ga_plot_area a = {
        .x = fx + PAD, .y = fy + PAD, .w = data_w, .h = PLOT_H, .y_lo = ya.lo, .y_hi = ya.hi};
    a.legend_x = fx + frame_w + 1 + leg_gap;
    a.legend_y = fy;
    a.legend_w = leg_w;
    a.legend_h = leg_h;

    /* title block, centred on the canvas */
    int y = MARGIN;
    if (p->title) {
        ga_font_draw(font, out, (width - title_w) / 2, y, p->title, TITLE_SIZE, GA_TEXT_RIGHT, INK);
        y += title_h;
    }
    if (p->subtitle)
        ga_font_draw(font, out, (width - sub_w) / 2, y, p->subtitle, 1, GA_TEXT_RIGHT, GREY);

    /* grid and ticks: y ticks left of the frame, x ticks below it */
    for (int k = 0; k < ya.n; k++) {
        const int ty = ga_plot_y(&a, ya.ticks[k]);
        ga_canvas_fill(out, fx, ty, frame_w, 1, GRID);
        ga_canvas_fill(out, fx - 1 - TICK, ty, TICK, 1, INK);
        const int w = ga_font_text_len(font, ya.text[k], 1);
        ga_font_draw(font, out, fx - 1 - TICK - TICK_GAP - w, ty - mid, ya.text[k], 1,
                     GA_TEXT_RIGHT, INK);
    }
    for (int i = 0; i < p->n_x; i++) {
        const int tx = ga_plot_x(&a, p->n_x, i);
        ga_canvas_fill(out, tx, fy, 1, frame_h, GRID);
        ga_canvas_fill(out, tx, fy + frame_h + 1, 1, TICK, INK);
        if (!p->x_labels || !p->x_labels[i] || i % x_step) continue;
        const char *s = p->x_labels[i];
        const int w = ga_font_text_len(font, s, 1), ly = fy + frame_h + 1 + TICK + TICK_GAP;
        if (upright)
            ga_font_draw(font, out, tx - mid, ly + w, s, 1, GA_TEXT_UP, INK);
        else
            ga_font_draw(font, out, tx - w / 2, ly, s, 1, GA_TEXT_RIGHT, INK);
    }
    ga_canvas_frame(out, fx, fy, frame_w, frame_h, INK);
    if (p->x_axis) {
        const int w = ga_font_text_len(font, p->x_axis, 1);
        ga_font_draw(font, out, fx + (frame_w - w) / 2, plot_bottom - lh, p->x_axis, 1,
                     GA_TEXT_RIGHT, GREY);
    }
    if (p->y_axis) {
        const int w = ga_font_text_len(font, p->y_axis, 1);
        ga_font_draw(font, out, MARGIN, fy + (frame_h + w) / 2, p->y_axis, 1, GA_TEXT_UP, GREY);
    }

    /* the series: lines first, then markers on top, each series over the one before */
    const int clip[4] = {fx, fy, fx + frame_w - 1, fy + frame_h - 1};
    for (int s = 0; s < p->n_series; s++) {
        const ga_plot_series *se = &p->series[s];
        for (int i = 0; i + 1 < se->n; i++)
            if (isfinite(se->y[i]) && isfinite(se->y[i + 1]))
                draw_segment(out, ga_plot_x(&a, p->n_x, i), ga_plot_y(&a, se->y[i]),
                             ga_plot_x(&a, p->n_x, i + 1), ga_plot_y(&a, se->y[i + 1]), se->color,
                             clip);
        for (int i = 0; i < se->n; i++)
            if (isfinite(se->y[i]))
                draw_marker(out, ga_plot_x(&a, p->n_x, i), ga_plot_y(&a, se->y[i]), se->marker,
                            se->color);
    }

    /* legend */
    ga_canvas_frame(out, a.legend_x, a.legend_y, leg_w, leg_h, LEGEND_EDGE);
    const int full[4] = {0, 0, width - 1, height - 1};
    for (int s = 0; s < p->n_series; s++) {
        const ga_plot_series *se = &p->series[s];
        const int ry = a.legend_y + LEGEND_PAD + s * row_h, cy = ry + (row_h - 6) / 2;
        const int kx = a.legend_x + LEGEND_PAD;
        draw_segment(out, kx, cy, kx + LEGEND_KEY - 1, cy, se->color, full);
        draw_marker(out, kx + LEGEND_KEY / 2, cy, se->marker, se->color);
        ga_font_draw(font, out, kx + LEGEND_KEY + 8, cy - mid, se->label ? se->label : "", 1,
                     GA_TEXT_RIGHT, INK);
    }
    a.y_ticks = ya.n;
    if (area) *area = a;
    return GA_OK;
}
