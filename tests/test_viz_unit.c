/*
 * Unit tests of the visualisation pieces on synthetic inputs (no model): the viridis table
 * against the colour map's published hex values, a figure's PNG decoded with stb_image (size,
 * colours at chosen cells and colour-bar ends, white margins, drawn labels), the font's
 * measurements and rotation, pooling on handcrafted matrices with
 * exact expected numbers, the .npy header and data byte for byte, and the metrics/tokens
 * files parsed back.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <stb/stb_image.h>

#include "testutil.h"
#include "viz/viz.h"

static int rgb_eq(ga_rgb c, unsigned hex) {
    return c.r == ((hex >> 16) & 0xff) && c.g == ((hex >> 8) & 0xff) && c.b == (hex & 0xff);
}

static ga_rgb px_at(const unsigned char *img, int w, int x, int y) {
    const unsigned char *p = img + ((size_t)y * w + x) * 3;
    return (ga_rgb){p[0], p[1], p[2]};
}

static void test_viridis(void) {
    /* matplotlib's viridis: #440154 at 0, #21918c at the middle level, #fde725 at 1 */
    CHECK(rgb_eq(ga_viridis(0.0), 0x440154));
    CHECK(rgb_eq(ga_viridis_level(128), 0x21918c));
    CHECK(rgb_eq(ga_viridis(0.5), 0x21918c));
    CHECK(rgb_eq(ga_viridis(1.0), 0xfde725));
    CHECK(rgb_eq(ga_viridis(2.0), 0xfde725));
    CHECK(rgb_eq(ga_viridis(-1.0), 0x440154));
    CHECK(rgb_eq(ga_viridis(NAN), 0x440154));
    /* level = floor(t * 256): 1/256 is the first step */
    CHECK(rgb_eq(ga_viridis(0.999 / 256), 0x440154));
    CHECK(!rgb_eq(ga_viridis(1.001 / 256), 0x440154));
}

static void test_font(void) {
    CHECK(ga_font_text_len(NULL, "", 1) == 0);
    CHECK(ga_font_text_len(NULL, "abc", 1) == 3 * GA_FONT_ADVANCE - 1);
    CHECK(ga_font_text_len(NULL, "abc", 2) == 2 * (3 * GA_FONT_ADVANCE - 1));
    CHECK(ga_font_glyphs("caf\xc3\xa9") == 4);   /* é is one (box) glyph */
    CHECK(ga_font_glyphs("\xe2\x96\x81x") == 2); /* U+2581 then x */
    CHECK(ga_font_glyphs("a\xff"
                         "b") == 3);                     /* an invalid byte is one box */
    CHECK(ga_font_glyph(0xe9) == ga_font_glyph(0x2581)); /* the box */
    CHECK(ga_font_glyph('A') != ga_font_glyph(0x2581));
    int lit = 0;
    for (int r = 0; r < GA_FONT_HEIGHT; r++)
        lit += ga_font_glyph('A')[r] != 0;
    CHECK(lit == 7);                                                 /* caps use rows 0-6 */
    CHECK(ga_font_glyph('g')[8] != 0 && ga_font_glyph('a')[8] == 0); /* descenders */
    /* the label markers have glyphs of their own in the bitmap font */
    const uint32_t marks[3] = {0x2423, 0x21b5, 0x21e5};
    for (int i = 0; i < 3; i++)
        CHECK(ga_font_glyph(marks[i]) != ga_font_glyph(0xe9) &&
              ga_font_glyph(marks[i]) != ga_font_glyph(' '));

    /* Rotated text: "L" drawn upwards from (10, 30) covers x in [10, 17), y in [25, 30),
     * with the L's foot (its bottom row, glyph row 6) in column 16 along the whole length. */
    ga_canvas c;
    ga_err err;
    CHECK_OK(ga_canvas_create(40, 40, (ga_rgb){255, 255, 255}, &c, &err), &err);
    ga_font_draw(NULL, &c, 10, 30, "L", 1, GA_TEXT_UP, (ga_rgb){0, 0, 0});
    int inside = 0, outside = 0;
    for (int y = 0; y < 40; y++)
        for (int x = 0; x < 40; x++) {
            int black = c.px[(y * 40 + x) * 3] == 0;
            if (x >= 10 && x < 17 && y >= 25 && y < 30)
                inside += black;
            else
                outside += black;
        }
    CHECK(outside == 0);
    CHECK(inside == 11); /* the L has 7 + 4 pixels */
    for (int y = 25; y < 30; y++)
        CHECK(c.px[(y * 40 + 16) * 3] == 0);
    ga_canvas_free(&c);
}

/* A 4x4 panel with known values and a second one on another scale; checks the decoded PNG. */
static void test_png(void) {
    ga_err err;
    const float a[16] = {1.0f, 0, 0, 0, 0.5f, 0.5f, 0, 0, 0.25f, 0.25f, 0.5f, 0, 0, 0, 0, 1.0f};
    float b[16];
    for (int i = 0; i < 16; i++)
        b[i] = 0.25f + 0.5f * a[i]; /* own scale: 0.25 .. 0.75 */
    ga_fig_panel panels[2] = {{"Layer 1", a, 4, NULL}, {"Layer 2", b, 4, NULL}};
    char *labels[4] = {"The", " cat", " sat", "."};
    ga_figure f = {"test: attention", "4 tokens", panels,         2, labels, "key",
                   "query",           NULL,       GA_SCALE_LINEAR};
    ga_canvas c;
    ga_fig_rect r[2];
    CHECK_OK(ga_figure_render(&f, &c, r, &err), &err);
    char *dir = ga_test_tmpdir("viz_png");
    char *path = ga_test_path(dir, "fig.png");
    CHECK_OK(ga_canvas_write(&c, path, &err), &err);

    int w = 0, h = 0, comp = 0;
    unsigned char *img = stbi_load(path, &w, &h, &comp, 3);
    CHECK(img != NULL);
    if (!img) goto out;
    CHECK(w == c.w && h == c.h);
    CHECK(comp == 3);
    CHECK(memcmp(img, c.px, (size_t)w * h * 3) == 0);
    /* two panels side by side, square heatmaps of square cells */
    CHECK(r[0].side == 4 * r[0].cell && r[0].cell >= 40);
    CHECK(r[1].y == r[0].y && r[1].x > r[0].x + r[0].side);
    CHECK(w > r[1].bar_x + 16 && h > r[0].y + r[0].side);
    for (int p = 0; p < 2; p++) {
        int cs = r[p].cell;
        /* centre pixel of cell (i, j) */
#define CELL(i, j) px_at(img, w, r[p].x + (j)*cs + cs / 2, r[p].y + (i)*cs + cs / 2)
        CHECK(rgb_eq(CELL(0, 0), 0xfde725)); /* the maximum */
        CHECK(rgb_eq(CELL(0, 1), 0x440154)); /* the minimum */
        CHECK(rgb_eq(CELL(1, 0), 0x21918c)); /* halfway */
        CHECK(rgb_eq(CELL(3, 3), 0xfde725));
        CHECK(rgb_eq(CELL(2, 3), 0x440154));
#undef CELL
        /* cell edges: the pixel just inside the cell's corner has the cell's colour */
        CHECK(rgb_eq(px_at(img, w, r[p].x + cs, r[p].y + cs), 0x21918c)); /* cell (1,1) */
        /* colour bar: top row is the maximum's colour, bottom row the minimum's */
        CHECK(rgb_eq(px_at(img, w, r[p].bar_x + 8, r[p].y), 0xfde725));
        CHECK(rgb_eq(px_at(img, w, r[p].bar_x + 8, r[p].y + r[p].side - 1), 0x440154));
        /* the heatmap's frame is dark */
        ga_rgb fr = px_at(img, w, r[p].x - 1, r[p].y + 5);
        CHECK(fr.r < 80 && fr.g < 80 && fr.b < 80);
        /* y tick labels: dark pixels in the band left of the first row */
        int ink = 0;
        for (int x = 0; x < r[p].x - 6; x++)
            for (int y = r[p].y; y < r[p].y + r[p].cell; y++)
                ink += px_at(img, w, x, y).r < 128;
        CHECK(ink > 10);
        /* x tick labels: dark pixels below the first column */
        ink = 0;
        for (int x = r[p].x; x < r[p].x + r[p].cell; x++)
            for (int y = r[p].y + r[p].side + 2; y < h; y++)
                ink += px_at(img, w, x, y).r < 128;
        CHECK(ink > 10);
    }
    /* white margins */
    ga_rgb corner = px_at(img, w, 0, 0), far = px_at(img, w, w - 1, h - 1);
    CHECK(rgb_eq(corner, 0xffffff) && rgb_eq(far, 0xffffff));
    stbi_image_free(img);

    /* one panel and many panels lay out too; many blocks thin the labels */
    float *big = calloc(200 * 200, sizeof *big);
    char **many = calloc(200, sizeof *many);
    for (int i = 0; i < 200; i++) {
        big[i * 200 + i / 2] = 1.0f;
        many[i] = "tok";
    }
    ga_fig_panel one = {"Layer 3", big, 200, NULL};
    ga_figure g = {"one", NULL, &one, 1, many, NULL, NULL, NULL, GA_SCALE_LINEAR};
    ga_canvas c2;
    CHECK_OK(ga_figure_render(&g, &c2, r, &err), &err);
    CHECK(r[0].cell == 1 && r[0].side == 200);
    ga_canvas_free(&c2);
    ga_fig_panel six[6] = {one, one, one, one, one, one};
    g.panels = six;
    g.n_panels = 6;
    ga_fig_rect r6[6];
    CHECK_OK(ga_figure_render(&g, &c2, r6, &err), &err);
    CHECK(r6[2].y == r6[0].y && r6[3].y > r6[0].y); /* 3 columns, 2 rows */
    ga_canvas_free(&c2);
    free(big);
    free(many);
    /* an unwritable path is an error, not a crash */
    CHECK(ga_canvas_write(&c, "/nonexistent-dir/x.png", &err) == GA_ERR_IO);
out:
    ga_canvas_free(&c);
    ga_test_rmtree(dir);
    free(path);
    free(dir);
}

/* The output format follows the extension; a full disk or an unknown extension is an error
 * naming the path, never a silent success. */
static void test_image_write(void) {
    ga_err err;
    ga_canvas c;
    CHECK_OK(ga_canvas_create(40, 30, (ga_rgb){200, 30, 60}, &c, &err), &err);
    if (!c.px) return;
    char *dir = ga_test_tmpdir("viz_write");
    const char *names[4] = {"a.png", "b.jpg", "c.JPEG", "d.PNG"};
    const unsigned char png_magic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    for (int i = 0; i < 4; i++) {
        char *p = ga_test_path(dir, names[i]);
        CHECK_OK(ga_canvas_write(&c, p, &err), &err);
        size_t len = 0;
        unsigned char *b = (unsigned char *)ga_test_read_file(p, &len);
        int png = i == 0 || i == 3;
        if (png)
            CHECK_MSG(b && len > 8 && !memcmp(b, png_magic, 8), "%s is not a PNG", names[i]);
        else /* JPEG: SOI marker, then the JFIF APP0 segment */
            CHECK_MSG(b && len > 4 && b[0] == 0xff && b[1] == 0xd8 && b[len - 2] == 0xff &&
                          b[len - 1] == 0xd9,
                      "%s is not a JPEG", names[i]);
        int w = 0, h = 0, comp = 0;
        unsigned char *img = stbi_load(p, &w, &h, &comp, 3);
        CHECK(img && w == 40 && h == 30);
        if (img) { /* JPEG is lossy: within a few levels of the colour */
            int tol = png ? 0 : 6;
            CHECK(abs(img[0] - 200) <= tol && abs(img[1] - 30) <= tol && abs(img[2] - 60) <= tol);
        }
        stbi_image_free(img);
        free(b);
        free(p);
    }
    /* a full device: the write fails, with the path in the message */
    if (access("/dev/full", W_OK) == 0) {
        ga_canvas big;
        CHECK_OK(ga_canvas_create(800, 800, (ga_rgb){1, 2, 3}, &big, &err), &err);
        /* /dev/full has no extension; a symlink named .png to it does */
        char *link = ga_test_path(dir, "full.png");
        CHECK(symlink("/dev/full", link) == 0);
        err.msg[0] = 0;
        CHECK(ga_canvas_write(&big, link, &err) == GA_ERR_IO);
        CHECK_MSG(strstr(err.msg, link) && strstr(err.msg, "No space"), "message: %s", err.msg);
        ga_canvas_free(&big);
        free(link);
    }
    /* other extensions are refused before anything is written */
    const char *bad[5] = {"x.gif", "x", "x.png.txt", "dir.png/x", ".jpgx"};
    for (int i = 0; i < 5; i++) {
        char *p = ga_test_path(dir, bad[i]);
        err.msg[0] = 0;
        CHECK_MSG(ga_canvas_write(&c, p, &err) == GA_ERR_ARG, "%s accepted", bad[i]);
        CHECK(strstr(err.msg, p) != NULL);
        CHECK(access(p, F_OK) != 0);
        free(p);
    }
    ga_image_format fmt;
    CHECK(ga_image_format_of("pic.jpeg", &fmt, &err) == GA_OK && fmt == GA_IMAGE_JPEG);
    CHECK(ga_image_format_of("a.jpg/pic.png", &fmt, &err) == GA_OK && fmt == GA_IMAGE_PNG);
    ga_canvas_free(&c);
    ga_test_rmtree(dir);
    free(dir);
}

/* Token text to tick label: spaces, newlines and tabs become visible marks. */
static void test_token_label(void) {
    const char *cases[][2] = {
        {" gating", "\xe2\x90\xa3gating"},
        {"s", "s"},
        {" s", "\xe2\x90\xa3s"},
        {"   ", "\xe2\x90\xa3\xe2\x90\xa3\xe2\x90\xa3"},
        {"\\n", "\xe2\x86\xb5"},
        {"\\n\\n", "\xe2\x86\xb5\xe2\x86\xb5"},
        {"\\t", "\xe2\x87\xa5"},
        {"caf\xc3\xa9", "caf\xc3\xa9"}, /* valid UTF-8 stays as it is */
        {"\xe6\x97\xa5\xe6\x9c\xac", "\xe6\x97\xa5\xe6\x9c\xac"},
        {"\\xc3", "\\xc3"}, /* part of a character: its byte */
        {"", "\"\""},
    };
    char out[64];
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        ga_viz_token_label(cases[i][0], out, sizeof out);
        CHECK_MSG(!strcmp(out, cases[i][1]), "label of '%s' is '%s', want '%s'", cases[i][0], out,
                  cases[i][1]);
    }
    /* a short buffer cuts between whole characters */
    ga_viz_token_label(" ab", out, 5);
    CHECK(!strcmp(out, "\xe2\x90\xa3"
                       "a"));
    ga_viz_token_label("  ", out, 6);
    CHECK(!strcmp(out, "\xe2\x90\xa3"));
}

static const char *dejavu(void) {
    const char *p = ga_test_env("GATTN_FONT", "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf");
    return access(p, R_OK) == 0 ? p : NULL;
}

/* The TrueType path: loads, measures, draws anti-aliased text inside its box (upright and
 * rotated), tells a leading space marker apart, and refuses files that are not fonts. */
static void test_ttf(void) {
    ga_err err;
    ga_font *f = NULL;
    char *dir = ga_test_tmpdir("viz_font");
    /* not fonts: a missing file, a folder, a text file, a truncated font */
    char *txt = ga_test_path(dir, "not-a-font.ttf");
    CHECK(ga_test_write_file(txt, "hello, this is not a font at all\n", 33) == 0);
    err.msg[0] = 0;
    CHECK(ga_font_load("/nonexistent/x.ttf", &f, &err) == GA_ERR_IO && !f);
    CHECK(strstr(err.msg, "/nonexistent/x.ttf") != NULL);
    CHECK(ga_font_load(dir, &f, &err) == GA_ERR_IO && !f);
    err.msg[0] = 0;
    CHECK(ga_font_load(txt, &f, &err) == GA_ERR_FORMAT && !f);
    CHECK(strstr(err.msg, txt) != NULL);
    const char *path = dejavu();
    if (!path) {
        printf("no DejaVu Sans (fonts-dejavu-core): TrueType drawing not tested\n");
        goto out;
    }
    size_t len = 0;
    char *font = ga_test_read_file(path, &len);
    for (size_t cut = 12; font && cut < len; cut = cut * 3 + 1) {
        CHECK(ga_test_write_file(txt, font, cut) == 0);
        CHECK_MSG(ga_font_load(txt, &f, &err) == GA_ERR_FORMAT && !f, "a font cut to %zu bytes",
                  cut);
        ga_font_free(f);
        f = NULL;
    }
    free(font);
    CHECK_OK(ga_font_load(path, &f, &err), &err);
    if (!f) goto out;
    int h = ga_font_height(f, 1), mid = ga_font_mid(f, 1);
    CHECK(h >= 12 && h <= 16 && mid > 2 && mid < h && ga_font_height(f, 2) > h);
    int w_s = ga_font_text_len(f, "s", 1);
    int w_sp = ga_font_text_len(f, "\xe2\x90\xa3s", 1);
    CHECK(w_s > 2 && w_sp > w_s + 3); /* the marker takes room of its own */
    CHECK(ga_font_text_len(f, "caf\xc3\xa9", 1) > ga_font_text_len(f, "caf", 1));

    ga_canvas c;
    CHECK_OK(ga_canvas_create(120, 120, (ga_rgb){255, 255, 255}, &c, &err), &err);
    if (c.px) {
        /* upright: ink only inside the text box, and some of it partial (anti-aliased) */
        const char *s = "Gate \xc3\xa9\xe2\x90\xa3";
        int w = ga_font_text_len(f, s, 1);
        ga_font_draw(f, &c, 10, 10, s, 1, GA_TEXT_RIGHT, (ga_rgb){0, 0, 0});
        int in = 0, out = 0, grey = 0;
        for (int y = 0; y < 120; y++)
            for (int x = 0; x < 120; x++) {
                int v = c.px[(y * 120 + x) * 3];
                int inside = x >= 10 && x < 10 + w + 1 && y >= 10 && y < 10 + h;
                if (v < 255) inside ? in++ : out++;
                grey += v > 40 && v < 215;
            }
        CHECK(in > 30 && out == 0 && grey > 10);
        /* rotated: the same text read upwards from (60, 110) stays in its box */
        ga_canvas_fill(&c, 0, 0, 120, 120, (ga_rgb){255, 255, 255});
        ga_font_draw(f, &c, 60, 110, s, 1, GA_TEXT_UP, (ga_rgb){0, 0, 0});
        in = out = 0;
        for (int y = 0; y < 120; y++)
            for (int x = 0; x < 120; x++) {
                int inside = x >= 60 && x < 60 + h && y >= 110 - w - 1 && y < 110;
                if (c.px[(y * 120 + x) * 3] < 255) inside ? in++ : out++;
            }
        CHECK(in > 30 && out == 0);
    }
    ga_canvas_free(&c);
    /* a whole figure renders in the font */
    float map[4] = {1, 0, 0.5f, 0.5f};
    ga_fig_panel pan = {"Layer 1", map, 2, NULL};
    char *labels[2] = {"\xe2\x90\xa3gating", "caf\xc3\xa9"};
    ga_figure fig = {"title", "sub", &pan, 1, labels, "key", "query", f, GA_SCALE_LINEAR};
    CHECK_OK(ga_figure_render(&fig, &c, NULL, &err), &err);
    ga_canvas_free(&c);
out:
    ga_font_free(f);
    ga_test_rmtree(dir);
    free(txt);
    free(dir);
}

/* A map that key 0 dominates: linear shows the rest as the lowest colours, log and p99 show
 * it; each bar's ends are the scale's ends. */
static void test_color_scales(void) {
    ga_err err;
    enum { R = 20 };
    float map[R * R];
    for (int i = 0; i < R; i++)
        for (int j = 0; j < R; j++)
            map[i * R + j] = j > i ? 0.0f : j == 0 ? 0.9f : 0.1f / (float)(i + 1) / (j + 1);
    ga_color_scale sc;
    CHECK(ga_color_scale_parse("log", &sc) == 0 && sc == GA_SCALE_LOG);
    CHECK(ga_color_scale_parse("p99", &sc) == 0 && sc == GA_SCALE_P99);
    CHECK(ga_color_scale_parse("linear", &sc) == 0 && sc == GA_SCALE_LINEAR);
    CHECK(ga_color_scale_parse("Log", &sc) == -1 && ga_color_scale_parse("", &sc) == -1);
    CHECK(!strcmp(ga_color_scale_name(GA_SCALE_P99), "p99"));
    int level[3]; /* the viridis level of cell (10, 5), value 0.1/11/6 = 0.0015 */
    for (int s = 0; s < 3; s++) {
        ga_fig_panel pan = {"Layer 1", map, R, NULL};
        ga_figure fig = {"t", NULL, &pan, 1, NULL, NULL, NULL, NULL, (ga_color_scale)s};
        ga_canvas c;
        ga_fig_rect r;
        CHECK_OK(ga_figure_render(&fig, &c, &r, &err), &err);
        if (!c.px) return;
        int x = r.x + 5 * r.cell + r.cell / 2, y = r.y + 10 * r.cell + r.cell / 2;
        const uint8_t *p = c.px + ((size_t)y * c.w + x) * 3;
        level[s] = -1;
        for (int l = 0; l < 256; l++) {
            ga_rgb v = ga_viridis_level(l);
            if (v.r == p[0] && v.g == p[1] && v.b == p[2]) level[s] = l;
        }
        /* the column of key 0 is the top colour in every scale (p99 caps at or below it) */
        int x0 = r.x + r.cell / 2;
        const uint8_t *q = c.px + ((size_t)y * c.w + x0) * 3;
        ga_rgb top = ga_viridis(1.0);
        CHECK(q[0] == top.r && q[1] == top.g && q[2] == top.b);
        ga_canvas_free(&c);
    }
    CHECK_MSG(level[0] >= 0 && level[0] <= 1, "linear level %d", level[0]);
    /* log: from the smallest positive value 0.1/20/20 = 2.5e-4 to 0.9; 0.1/11/6 lies at
     * log(0.001515/2.5e-4)/log(0.9/2.5e-4) = 0.2199 of the bar: level floor(0.2199*256) */
    CHECK_MSG(level[1] == 56, "log level %d", level[1]);
    /* p99 of 400 cells (210 below the diagonal, 20 of them 0.9): the cap is 0.9 (the column
     * of key 0 is 5% of the cells), so p99 falls back to the linear scale here */
    CHECK_MSG(level[2] == level[0], "p99 level %d", level[2]);
    /* a map whose largest values are fewer than 1% of the cells: p99 lifts the rest */
    float big[100 * 100];
    for (int i = 0; i < 100 * 100; i++)
        big[i] = i < 50 ? 1.0f : 0.01f * (float)(i % 7);
    ga_fig_panel pan = {"Layer 1", big, 100, NULL};
    ga_figure fig = {"t", NULL, &pan, 1, NULL, NULL, NULL, NULL, GA_SCALE_P99};
    ga_canvas c;
    ga_fig_rect r;
    CHECK_OK(ga_figure_render(&fig, &c, &r, &err), &err);
    if (c.px) {
        /* cell (99, 4) holds 0.06 (the cap, the 99th percentile): the top colour */
        int x = r.x + 4 * r.cell + r.cell / 2, y = r.y + 99 * r.cell + r.cell / 2;
        const uint8_t *p = c.px + ((size_t)y * c.w + x) * 3;
        ga_rgb top = ga_viridis(1.0);
        CHECK(p[0] == top.r && p[1] == top.g && p[2] == top.b);
    }
    ga_canvas_free(&c);
}

static void test_pool(void) {
    ga_err err;
    /* T = 5 uniform causal rows (row q is 1/(q+1) on keys 0..q) pooled to 2 blocks:
     * positions 0-2 and 3-4 (bin = floor(i * 2 / 5)). */
    float p[25] = {0}, out[4] = {-1, -1, -1, -1};
    for (int q = 0; q < 5; q++)
        for (int k = 0; k <= q; k++)
            p[q * 5 + k] = 1.0f / (q + 1);
    CHECK_OK(ga_attn_pool(p, 5, 2, out, &err), &err);
    CHECK(fabsf(out[0] - 1.0f) < 1e-6f);
    CHECK(out[1] == 0.0f);
    CHECK(fabsf(out[2] - (0.75f + 0.6f) / 2) < 1e-6f);
    CHECK(fabsf(out[3] - (0.25f + 0.4f) / 2) < 1e-6f);
    /* res == T is the identity */
    float same[25];
    CHECK_OK(ga_attn_pool(p, 5, 5, same, &err), &err);
    CHECK(memcmp(same, p, sizeof p) == 0);
    /* res = 1: the mean row sum */
    CHECK_OK(ga_attn_pool(p, 5, 1, out, &err), &err);
    CHECK(fabsf(out[0] - 1.0f) < 1e-6f);
    CHECK(ga_attn_pool(p, 5, 6, out, &err) == GA_ERR_ARG);
    CHECK(ga_attn_pool(p, 5, 0, out, &err) == GA_ERR_ARG);
}

static void test_npy(void) {
    ga_err err;
    char *dir = ga_test_tmpdir("viz_npy");
    char *path = ga_test_path(dir, "m.npy");
    float m[15];
    for (int i = 0; i < 15; i++)
        m[i] = (float)i * 0.25f - 1.0f;
    CHECK_OK(ga_npy_write_f32(path, m, 3, 5, &err), &err);
    size_t len = 0;
    char *raw = ga_test_read_file(path, &len);
    CHECK(raw != NULL);
    if (raw) {
        CHECK(memcmp(raw, "\x93NUMPY\x01\x00", 8) == 0);
        size_t hlen = (unsigned char)raw[8] | (size_t)(unsigned char)raw[9] << 8;
        CHECK((10 + hlen) % 64 == 0);
        CHECK(len == 10 + hlen + sizeof m);
        CHECK(raw[10 + hlen - 1] == '\n');
        const char *want = "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 5), }";
        CHECK(strncmp(raw + 10, want, strlen(want)) == 0);
        for (size_t i = 10 + strlen(want); i < 10 + hlen - 1; i++)
            CHECK(raw[i] == ' ');
        CHECK(memcmp(raw + 10 + hlen, m, sizeof m) == 0);
        free(raw);
    }
    float *back = NULL;
    int64_t rows = 0, cols = 0;
    CHECK_OK(ga_npy_read_f32(path, &back, &rows, &cols, &err), &err);
    CHECK(rows == 3 && cols == 5 && back && memcmp(back, m, sizeof m) == 0);
    free(back);
    /* a truncated file is a format error */
    raw = ga_test_read_file(path, &len);
    if (raw) {
        ga_test_write_file(path, raw, len - 4);
        free(raw);
    }
    CHECK(ga_npy_read_f32(path, &back, &rows, &cols, &err) == GA_ERR_FORMAT);
    ga_test_write_file(path, "not numpy", 9);
    CHECK(ga_npy_read_f32(path, &back, &rows, &cols, &err) == GA_ERR_FORMAT);
    /* an empty array is still a valid file */
    CHECK_OK(ga_npy_write_f32(path, m, 0, 0, &err), &err);
    CHECK_OK(ga_npy_read_f32(path, &back, &rows, &cols, &err), &err);
    CHECK(rows == 0 && cols == 0);
    free(back);
    ga_test_rmtree(dir);
    free(path);
    free(dir);
}

static void test_report(void) {
    ga_err err;
    char *dir = ga_test_tmpdir("viz_report");
    char *csv = ga_test_path(dir, "metrics.csv"), *json = ga_test_path(dir, "metrics.json");
    char *tok = ga_test_path(dir, "tokens.json");
    ga_layer_metrics m[2] = {{0.5, NAN, NAN}, {0.125, 0.25, 0.75}};
    CHECK_OK(ga_metrics_write_csv(csv, m, NULL, 2, &err), &err);
    CHECK_OK(ga_metrics_write_json(json, m, NULL, 2, &err), &err);
    size_t len;
    char *text = ga_test_read_file(csv, &len);
    CHECK(text && !strcmp(text, "layer,first_token_share,gate_mean,gate_below_0_1\n"
                                "1,0.5,,\n2,0.125,0.25,0.75\n"));
    free(text);
    text = ga_test_read_file(json, &len);
    cJSON *root = text ? cJSON_Parse(text) : NULL;
    CHECK(cJSON_IsArray(root) && cJSON_GetArraySize(root) == 2);
    if (cJSON_GetArraySize(root) == 2) {
        cJSON *l1 = cJSON_GetArrayItem(root, 0), *l2 = cJSON_GetArrayItem(root, 1);
        CHECK(cJSON_GetObjectItem(l1, "layer")->valuedouble == 1);
        CHECK(cJSON_GetObjectItem(l1, "first_token_share")->valuedouble == 0.5);
        CHECK(cJSON_IsNull(cJSON_GetObjectItem(l1, "gate_mean")));
        CHECK(cJSON_IsNull(cJSON_GetObjectItem(l1, "gate_below_0_1")));
        CHECK(cJSON_GetObjectItem(l2, "layer")->valuedouble == 2);
        CHECK(cJSON_GetObjectItem(l2, "gate_mean")->valuedouble == 0.25);
        CHECK(cJSON_GetObjectItem(l2, "gate_below_0_1")->valuedouble == 0.75);
    }
    cJSON_Delete(root);
    free(text);

    int32_t ids[3] = {3, 14, 15};
    char *names[3] = {"a", "\"q\"", "\xe2\x96\x81"};
    CHECK_OK(ga_tokens_write_json(tok, ids, names, 3, &err), &err);
    text = ga_test_read_file(tok, &len);
    root = text ? cJSON_Parse(text) : NULL;
    cJSON *ji = cJSON_GetObjectItem(root, "ids"), *jt = cJSON_GetObjectItem(root, "tokens");
    CHECK(cJSON_GetArraySize(ji) == 3 && cJSON_GetArraySize(jt) == 3);
    if (cJSON_GetArraySize(ji) == 3 && cJSON_GetArraySize(jt) == 3) {
        CHECK(cJSON_GetArrayItem(ji, 1)->valuedouble == 14);
        CHECK(!strcmp(cJSON_GetArrayItem(jt, 1)->valuestring, "\"q\""));
        CHECK(!strcmp(cJSON_GetArrayItem(jt, 2)->valuestring, "\xe2\x96\x81"));
    }
    cJSON_Delete(root);
    free(text);

    CHECK(ga_metrics_write_csv("/nonexistent-dir/m.csv", m, NULL, 2, &err) == GA_ERR_IO);
    CHECK(ga_metrics_write_json("/nonexistent-dir/m.json", m, NULL, 2, &err) == GA_ERR_IO);
    ga_test_rmtree(dir);
    free(csv);
    free(json);
    free(tok);
    free(dir);
}

int main(void) {
    test_viridis();
    test_font();
    test_png();
    test_pool();
    test_token_label();
    test_ttf();
    test_color_scales();
    test_image_write();
    test_npy();
    test_report();
    return ga_test_finish();
}
