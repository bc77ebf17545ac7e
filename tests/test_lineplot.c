/*
 * The line plot (src/viz/lineplot.c) on synthetic series, checked on its pixels: each point's
 * marker in the series' colour where the documented mapping (ga_plot_area) puts it, the line
 * between points, no pixel of a series' colour away from its polyline or its legend row, NaN
 * and infinite values skipped with the line broken there, the legend, white margins all round
 * (nothing drawn off the canvas), one series, many series, constant and extreme values,
 * upright x labels, bad arguments, and a PNG written and decoded again. Every case runs with
 * the bitmap font and, when installed, DejaVu Sans.
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <stb/stb_image.h>

#include "testutil.h"
#include "viz/viz.h"

#define TTF "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"

static const ga_font *g_font;

static ga_rgb px(const ga_canvas *c, int x, int y) {
    const uint8_t *p = c->px + ((size_t)y * c->w + x) * 3;
    return (ga_rgb){p[0], p[1], p[2]};
}

static int same(ga_rgb a, ga_rgb b) {
    return a.r == b.r && a.g == b.g && a.b == b.b;
}

/* The mapping as ga_plot_area's comment states it, written out here again from the numbers. */
static double want_x(const ga_plot_area *a, int n_x, int i) {
    return n_x > 1 ? a->x + (double)i * (a->w - 1) / (n_x - 1) : a->x + (a->w - 1) / 2;
}
static double want_y(const ga_plot_area *a, double v) {
    return a->y + (a->y_hi - v) / (a->y_hi - a->y_lo) * (a->h - 1);
}

/* A pixel of exactly colour c within r pixels of (x, y). */
static int near(const ga_canvas *cv, double x, double y, int r, ga_rgb c) {
    for (int dy = -r; dy <= r; dy++)
        for (int dx = -r; dx <= r; dx++) {
            int X = (int)lround(x) + dx, Y = (int)lround(y) + dy;
            if (X >= 0 && Y >= 0 && X < cv->w && Y < cv->h && same(px(cv, X, Y), c)) return 1;
        }
    return 0;
}

static double seg_dist(double px_, double py_, double x0, double y0, double x1, double y1) {
    double dx = x1 - x0, dy = y1 - y0, l2 = dx * dx + dy * dy;
    double t = l2 > 0 ? ((px_ - x0) * dx + (py_ - y0) * dy) / l2 : 0;
    t = t < 0 ? 0 : t > 1 ? 1 : t;
    double ex = px_ - x0 - t * dx, ey = py_ - y0 - t * dy;
    return sqrt(ex * ex + ey * ey);
}

/* Every pixel of series s's exact colour is in the legend box or within 6 pixels (a marker's
 * radius and a bit) of a finite point or a segment between two finite neighbours. */
static int stray_pixels(const ga_canvas *c, const ga_plot_area *a, const ga_lineplot *p, int s) {
    const ga_plot_series *se = &p->series[s];
    int stray = 0;
    for (int y = 0; y < c->h; y++)
        for (int x = 0; x < c->w; x++) {
            if (!same(px(c, x, y), se->color)) continue;
            if (x >= a->legend_x && x < a->legend_x + a->legend_w && y >= a->legend_y &&
                y < a->legend_y + a->legend_h)
                continue;
            double best = INFINITY;
            for (int i = 0; i < se->n; i++) {
                if (!isfinite(se->y[i])) continue;
                double x0 = want_x(a, p->n_x, i), y0 = want_y(a, se->y[i]);
                double d = seg_dist(x, y, x0, y0, x0, y0);
                if (i + 1 < se->n && isfinite(se->y[i + 1]))
                    d = fmin(d, seg_dist(x, y, x0, y0, want_x(a, p->n_x, i + 1),
                                         want_y(a, se->y[i + 1])));
                best = fmin(best, d);
            }
            if (best > 6) stray++;
        }
    return stray;
}

/* The outer band of the canvas is white: everything was laid out inside it. */
static int border_white(const ga_canvas *c, int band) {
    for (int y = 0; y < c->h; y++)
        for (int x = 0; x < c->w; x++) {
            if (x >= band && y >= band && x < c->w - band && y < c->h - band) continue;
            if (!same(px(c, x, y), (ga_rgb){255, 255, 255})) return 0;
        }
    return 1;
}

static int legend_has(const ga_canvas *c, const ga_plot_area *a, ga_rgb col) {
    for (int y = a->legend_y; y < a->legend_y + a->legend_h; y++)
        for (int x = a->legend_x; x < a->legend_x + a->legend_w; x++)
            if (same(px(c, x, y), col)) return 1;
    return 0;
}

/* Dark (text) pixels in the legend right of the line samples. */
static int legend_text(const ga_canvas *c, const ga_plot_area *a) {
    int n = 0;
    for (int y = a->legend_y; y < a->legend_y + a->legend_h; y++)
        for (int x = a->legend_x + 40; x < a->legend_x + a->legend_w; x++) {
            ga_rgb p = px(c, x, y);
            n += p.r < 120 && p.g < 120 && p.b < 120;
        }
    return n;
}

static char *LABELS[5] = {"1", "2-3", "4-7", "8-15", "16-31"};

static void test_one_series(void) {
    const double y[4] = {7.0, 6.0, 5.5, 5.2};
    ga_plot_series s = {.label = "model, ctx 32", .y = y, .n = 4, .color = {31, 119, 180}};
    ga_lineplot p = {.title = "NLL by position",
                     .subtitle = "text.txt",
                     .x_axis = "position in the window (log2 scale)",
                     .y_axis = "mean NLL (nats)",
                     .x_labels = LABELS,
                     .n_x = 4,
                     .series = &s,
                     .n_series = 1,
                     .font = g_font};
    ga_canvas c;
    ga_plot_area a;
    ga_err err = {{0}};
    CHECK_OK(ga_lineplot_render(&p, &c, &a, &err), &err);
    if (!c.px) return;
    CHECK(a.y_lo <= 5.2 && a.y_hi >= 7.0 && a.y_hi - a.y_lo < 4);
    CHECK(a.y_ticks >= 3 && a.y_ticks <= 9);
    CHECK(a.x >= 0 && a.y >= 0 && a.x + a.w <= c.w && a.y + a.h <= c.h);
    for (int i = 0; i < 4; i++) {
        CHECK(ga_plot_x(&a, 4, i) == (int)lround(want_x(&a, 4, i)));
        CHECK(abs(ga_plot_y(&a, y[i]) - (int)lround(want_y(&a, y[i]))) <= 1);
        CHECK_MSG(near(&c, want_x(&a, 4, i), want_y(&a, y[i]), 1, s.color), "point %d", i);
        if (i < 3) /* the line through the middle of each segment */
            CHECK_MSG(near(&c, (want_x(&a, 4, i) + want_x(&a, 4, i + 1)) / 2,
                           (want_y(&a, y[i]) + want_y(&a, y[i + 1])) / 2, 1, s.color),
                      "segment %d", i);
    }
    /* higher NLL is higher on the picture; first point left of the last */
    CHECK(ga_plot_y(&a, 7.0) < ga_plot_y(&a, 5.2));
    CHECK(ga_plot_x(&a, 4, 0) < ga_plot_x(&a, 4, 3));
    CHECK(stray_pixels(&c, &a, &p, 0) == 0);
    CHECK(legend_has(&c, &a, s.color));
    CHECK(legend_text(&c, &a) > 20);
    CHECK(a.legend_x > a.x + a.w); /* outside the data, to its right */
    CHECK(border_white(&c, 10));
    /* the PNG decodes to the same pixels */
    char *dir = ga_test_tmpdir("lineplot");
    char *path = ga_test_path(dir, "p.png");
    CHECK_OK(ga_canvas_write(&c, path, &err), &err);
    int w = 0, h = 0, n = 0;
    unsigned char *img = stbi_load(path, &w, &h, &n, 3);
    CHECK(img && w == c.w && h == c.h && !memcmp(img, c.px, (size_t)w * h * 3));
    stbi_image_free(img);
    ga_test_rmtree(dir);
    free(path);
    free(dir);
    ga_canvas_free(&c);
}

static void test_nan_breaks_line(void) {
    const double a_y[5] = {7.0, NAN, 5.0, 6.0, INFINITY};
    const double b_y[3] = {NAN, NAN, NAN}; /* an empty series: legend only */
    ga_plot_series s[2] = {
        {.label = "gappy", .y = a_y, .n = 5, .color = {214, 39, 40}, .marker = GA_MARK_SQUARE},
        {.label = "empty", .y = b_y, .n = 3, .color = {44, 160, 44}, .marker = GA_MARK_DIAMOND},
    };
    ga_lineplot p = {.x_labels = LABELS, .n_x = 5, .series = s, .n_series = 2, .font = g_font};
    ga_canvas c;
    ga_plot_area a;
    ga_err err = {{0}};
    CHECK_OK(ga_lineplot_render(&p, &c, &a, &err), &err);
    if (!c.px) return;
    CHECK(a.y_lo <= 5.0 && a.y_hi >= 7.0 && isfinite(a.y_hi));
    /* no marker and no line in the column of the missing value (a line from point 0 to 2
     * would cross it), nor right of point 3 (the infinite one) */
    int col1 = ga_plot_x(&a, 5, 1), hits = 0;
    for (int y = a.y - 12; y < a.y + a.h + 12; y++)
        for (int dx = -1; dx <= 1; dx++)
            hits += same(px(&c, col1 + dx, y), s[0].color);
    CHECK_MSG(hits == 0, "%d pixels at the NaN's column", hits);
    int col4 = ga_plot_x(&a, 5, 4);
    hits = 0;
    for (int y = a.y - 12; y < a.y + a.h + 12; y++)
        for (int x = (ga_plot_x(&a, 5, 3) + col4) / 2; x <= col4 + 8; x++)
            hits += same(px(&c, x, y), s[0].color);
    CHECK_MSG(hits == 0, "%d pixels towards the infinite value", hits);
    CHECK(near(&c, want_x(&a, 5, 0), want_y(&a, 7.0), 1, s[0].color));
    CHECK(near(&c, want_x(&a, 5, 2), want_y(&a, 5.0), 1, s[0].color));
    CHECK(near(&c, (want_x(&a, 5, 2) + want_x(&a, 5, 3)) / 2, want_y(&a, 5.5), 1, s[0].color));
    CHECK(stray_pixels(&c, &a, &p, 0) == 0);
    CHECK(stray_pixels(&c, &a, &p, 1) == 0); /* nothing of it outside the legend */
    CHECK(legend_has(&c, &a, s[0].color) && legend_has(&c, &a, s[1].color));
    CHECK(border_white(&c, 10));
    ga_canvas_free(&c);
}

static void test_many_series(void) {
    enum { NS = 24, NX = 5 };
    static double y[NS][NX];
    ga_plot_series s[NS];
    char names[NS][32];
    for (int k = 0; k < NS; k++) {
        for (int i = 0; i < NX; i++)
            y[k][i] = 2.0 + k * 0.5 + 0.1 * i; /* apart by more than a marker's height */
        snprintf(names[k], sizeof names[k], "series number %d", k);
        /* distinct colours that blending with white or grey cannot produce exactly */
        s[k] = (ga_plot_series){.label = names[k],
                                .y = y[k],
                                .n = NX,
                                .color = {(uint8_t)(10 * k), (uint8_t)(200 - 5 * k), 3},
                                .marker = k};
    }
    ga_lineplot p = {.title = "many",
                     .x_labels = LABELS,
                     .n_x = NX,
                     .series = s,
                     .n_series = NS,
                     .font = g_font};
    ga_canvas c;
    ga_plot_area a;
    ga_err err = {{0}};
    CHECK_OK(ga_lineplot_render(&p, &c, &a, &err), &err);
    if (!c.px) return;
    CHECK(a.legend_y + a.legend_h + 10 <= c.h); /* the legend grew the canvas */
    for (int k = 0; k < NS; k++) {
        CHECK_MSG(legend_has(&c, &a, s[k].color), "legend row %d", k);
        CHECK_MSG(near(&c, want_x(&a, NX, NX - 1), want_y(&a, y[k][NX - 1]), 1, s[k].color),
                  "series %d last point", k);
        CHECK_MSG(stray_pixels(&c, &a, &p, k) == 0, "series %d", k);
    }
    CHECK(border_white(&c, 10));
    ga_canvas_free(&c);
}

static void test_ranges(void) {
    ga_err err = {{0}};
    ga_canvas c;
    ga_plot_area a;
    /* a constant series: a real range around it */
    const double k[3] = {6.9, 6.9, 6.9};
    ga_plot_series s = {.label = "flat", .y = k, .n = 3, .color = {1, 2, 3}};
    ga_lineplot p = {.n_x = 3, .series = &s, .n_series = 1, .font = g_font};
    CHECK_OK(ga_lineplot_render(&p, &c, &a, &err), &err);
    CHECK(a.y_lo < 6.9 && a.y_hi > 6.9 && a.y_ticks >= 3);
    if (c.px) CHECK(near(&c, want_x(&a, 3, 1), want_y(&a, 6.9), 1, s.color));
    ga_canvas_free(&c);
    /* extremes near the limits of double: every point still inside the data rectangle */
    const double e[4] = {1e300, -1e300, 1e-300, -DBL_MAX};
    s.y = e;
    s.n = 4;
    p.n_x = 4;
    CHECK_OK(ga_lineplot_render(&p, &c, &a, &err), &err);
    for (int i = 0; c.px && i < 4; i++) {
        int py = ga_plot_y(&a, e[i]);
        CHECK_MSG(py >= a.y && py <= a.y + a.h - 1, "value %g at row %d", e[i], py);
    }
    if (c.px) CHECK(border_white(&c, 10));
    ga_canvas_free(&c);
    /* one x position: the point in the middle */
    const double one[1] = {3.0};
    s.y = one;
    s.n = 1;
    p.n_x = 1;
    CHECK_OK(ga_lineplot_render(&p, &c, &a, &err), &err);
    if (c.px) CHECK(near(&c, a.x + (a.w - 1) / 2, want_y(&a, 3.0), 1, s.color));
    ga_canvas_free(&c);
}

/* 17 buckets up to 131071 do not fit side by side: labels stand upright, the plot stays
 * within its maximum width, everything inside the canvas. */
static void test_upright_labels(void) {
    enum { NX = 17 };
    char *lab[NX], buf[NX][32];
    double y[NX];
    for (int b = 0; b < NX; b++) {
        snprintf(buf[b], sizeof buf[b], "%d-%d", 1 << b, (2 << b) - 1);
        lab[b] = buf[b];
        y[b] = 1.4 + 2.16 * b / (NX - 1); /* 1.4 .. 3.56: once only its two ends had ticks */
    }
    ga_plot_series s = {.label = "x", .y = y, .n = NX, .color = {9, 99, 199}};
    ga_lineplot p = {.x_labels = lab,
                     .x_axis = "position",
                     .n_x = NX,
                     .series = &s,
                     .n_series = 1,
                     .font = g_font};
    ga_canvas c;
    ga_plot_area a;
    ga_err err = {{0}};
    CHECK_OK(ga_lineplot_render(&p, &c, &a, &err), &err);
    if (!c.px) return;
    CHECK(a.w <= 1200);
    CHECK_MSG(a.y_ticks >= 3 && a.y_ticks <= 9, "%d y ticks over %g..%g", a.y_ticks, a.y_lo,
              a.y_hi);
    CHECK(c.h > a.y + a.h + 60); /* room for the upright labels below the plot */
    CHECK(stray_pixels(&c, &a, &p, 0) == 0);
    CHECK(border_white(&c, 10));
    ga_canvas_free(&c);
}

/* A wide last x label, centred on its tick past the frame, ends before the legend starts. */
static void test_label_clear_of_legend(void) {
    char *lab[2] = {"1", "a rather long last label, wider than the gap"};
    const double y[2] = {1, 2};
    ga_plot_series s = {.label = "x", .y = y, .n = 2, .color = {9, 99, 199}};
    ga_lineplot p = {.x_labels = lab, .n_x = 2, .series = &s, .n_series = 1, .font = g_font};
    ga_canvas c;
    ga_plot_area a;
    ga_err err = {{0}};
    CHECK_OK(ga_lineplot_render(&p, &c, &a, &err), &err);
    const int end = ga_plot_x(&a, 2, 1) + ga_font_text_len(g_font, lab[1], 1) / 2 + 1;
    CHECK_MSG(end < a.legend_x, "label ends at %d, legend starts at %d", end, a.legend_x);
    ga_canvas_free(&c);
}

static void test_bad_args(void) {
    const double y[2] = {1, 2};
    ga_plot_series s = {.label = "a", .y = y, .n = 2};
    ga_canvas c;
    ga_err err = {{0}};
    ga_lineplot p = {.n_x = 0, .series = &s, .n_series = 1};
    CHECK(ga_lineplot_render(&p, &c, NULL, &err) == GA_ERR_ARG && !c.px);
    p.n_x = 2;
    p.n_series = 0;
    CHECK(ga_lineplot_render(&p, &c, NULL, &err) == GA_ERR_ARG && !c.px);
    p.n_series = 1;
    p.n_x = 1; /* the series has more values than x positions */
    CHECK(ga_lineplot_render(&p, &c, NULL, &err) == GA_ERR_ARG && strstr(err.msg, "series 0"));
}

int main(void) {
    ga_font *ttf = NULL;
    ga_err err = {{0}};
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) {
            if (access(TTF, R_OK) != 0 || ga_font_load(TTF, &ttf, &err)) {
                printf("no %s: TrueType pass skipped\n", TTF);
                break;
            }
            g_font = ttf;
        }
        test_one_series();
        test_nan_breaks_line();
        test_many_series();
        test_ranges();
        test_upright_labels();
        test_label_clear_of_legend();
        test_bad_args();
    }
    ga_font_free(ttf);
    return ga_test_finish();
}
