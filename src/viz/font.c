/*
 * Text for the figures, in one of two fonts behind one interface (a NULL ga_font is the
 * built-in one):
 *  - a TrueType font read from a file (DejaVu Sans from fonts-dejavu-core by default, chosen
 *    by the CLI) and rasterised anti-aliased with stb_truetype (Debian's libstb carries the
 *    implementation); characters the font lacks draw as its .notdef box;
 *  - the embedded bitmap font: 95 printable ASCII glyphs drawn for this project on a 5x7
 *    grid (caps and x-height in rows 0-6, descenders in rows 7-8), one byte a row with bit 4
 *    the leftmost column, plus the label markers (U+2423 open box for a space, U+21B5 for a
 *    newline, U+21E5 for a tab, U+00B7, U+2265). Anything else (another multibyte
 *    character, a control byte, an invalid sequence) draws as an empty box, so a label
 *    never silently loses a character.
 * Text is drawn left to right, or rotated 90 degrees counter-clockwise for the x-axis tick
 * labels, at size 1 (labels) or 2 (titles).
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <stb/stb_truetype.h>

#include "viz.h"

static const uint8_t GLYPHS[95][GA_FONT_HEIGHT] = {
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}, /* space */
    {0x04, 0x04, 0x04, 0x04, 0x04, 0x00, 0x04, 0x00, 0x00}, /* ! */
    {0x0a, 0x0a, 0x0a, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}, /* " */
    {0x0a, 0x0a, 0x1f, 0x0a, 0x1f, 0x0a, 0x0a, 0x00, 0x00}, /* # */
    {0x04, 0x0f, 0x14, 0x0e, 0x05, 0x1e, 0x04, 0x00, 0x00}, /* $ */
    {0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03, 0x00, 0x00}, /* % */
    {0x0c, 0x12, 0x14, 0x08, 0x15, 0x12, 0x0d, 0x00, 0x00}, /* & */
    {0x04, 0x04, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}, /* quote */
    {0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02, 0x00, 0x00}, /* ( */
    {0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08, 0x00, 0x00}, /* ) */
    {0x00, 0x04, 0x15, 0x0e, 0x15, 0x04, 0x00, 0x00, 0x00}, /* * */
    {0x00, 0x04, 0x04, 0x1f, 0x04, 0x04, 0x00, 0x00, 0x00}, /* + */
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x0c, 0x04, 0x08, 0x00}, /* , */
    {0x00, 0x00, 0x00, 0x1f, 0x00, 0x00, 0x00, 0x00, 0x00}, /* - */
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x0c, 0x0c, 0x00, 0x00}, /* . */
    {0x01, 0x01, 0x02, 0x04, 0x08, 0x10, 0x10, 0x00, 0x00}, /* / */
    {0x0e, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0e, 0x00, 0x00}, /* 0 */
    {0x04, 0x0c, 0x04, 0x04, 0x04, 0x04, 0x0e, 0x00, 0x00}, /* 1 */
    {0x0e, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1f, 0x00, 0x00}, /* 2 */
    {0x1f, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0e, 0x00, 0x00}, /* 3 */
    {0x02, 0x06, 0x0a, 0x12, 0x1f, 0x02, 0x02, 0x00, 0x00}, /* 4 */
    {0x1f, 0x10, 0x1e, 0x01, 0x01, 0x11, 0x0e, 0x00, 0x00}, /* 5 */
    {0x06, 0x08, 0x10, 0x1e, 0x11, 0x11, 0x0e, 0x00, 0x00}, /* 6 */
    {0x1f, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08, 0x00, 0x00}, /* 7 */
    {0x0e, 0x11, 0x11, 0x0e, 0x11, 0x11, 0x0e, 0x00, 0x00}, /* 8 */
    {0x0e, 0x11, 0x11, 0x0f, 0x01, 0x02, 0x0c, 0x00, 0x00}, /* 9 */
    {0x00, 0x0c, 0x0c, 0x00, 0x0c, 0x0c, 0x00, 0x00, 0x00}, /* : */
    {0x00, 0x0c, 0x0c, 0x00, 0x0c, 0x04, 0x08, 0x00, 0x00}, /* ; */
    {0x02, 0x04, 0x08, 0x10, 0x08, 0x04, 0x02, 0x00, 0x00}, /* < */
    {0x00, 0x00, 0x1f, 0x00, 0x1f, 0x00, 0x00, 0x00, 0x00}, /* = */
    {0x08, 0x04, 0x02, 0x01, 0x02, 0x04, 0x08, 0x00, 0x00}, /* > */
    {0x0e, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04, 0x00, 0x00}, /* ? */
    {0x0e, 0x11, 0x17, 0x15, 0x17, 0x10, 0x0f, 0x00, 0x00}, /* @ */
    {0x0e, 0x11, 0x11, 0x1f, 0x11, 0x11, 0x11, 0x00, 0x00}, /* A */
    {0x1e, 0x11, 0x11, 0x1e, 0x11, 0x11, 0x1e, 0x00, 0x00}, /* B */
    {0x0e, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0e, 0x00, 0x00}, /* C */
    {0x1c, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1c, 0x00, 0x00}, /* D */
    {0x1f, 0x10, 0x10, 0x1e, 0x10, 0x10, 0x1f, 0x00, 0x00}, /* E */
    {0x1f, 0x10, 0x10, 0x1e, 0x10, 0x10, 0x10, 0x00, 0x00}, /* F */
    {0x0e, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0f, 0x00, 0x00}, /* G */
    {0x11, 0x11, 0x11, 0x1f, 0x11, 0x11, 0x11, 0x00, 0x00}, /* H */
    {0x0e, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0e, 0x00, 0x00}, /* I */
    {0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0c, 0x00, 0x00}, /* J */
    {0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11, 0x00, 0x00}, /* K */
    {0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1f, 0x00, 0x00}, /* L */
    {0x11, 0x1b, 0x15, 0x15, 0x11, 0x11, 0x11, 0x00, 0x00}, /* M */
    {0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11, 0x00, 0x00}, /* N */
    {0x0e, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e, 0x00, 0x00}, /* O */
    {0x1e, 0x11, 0x11, 0x1e, 0x10, 0x10, 0x10, 0x00, 0x00}, /* P */
    {0x0e, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0d, 0x00, 0x00}, /* Q */
    {0x1e, 0x11, 0x11, 0x1e, 0x14, 0x12, 0x11, 0x00, 0x00}, /* R */
    {0x0f, 0x10, 0x10, 0x0e, 0x01, 0x01, 0x1e, 0x00, 0x00}, /* S */
    {0x1f, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x00, 0x00}, /* T */
    {0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e, 0x00, 0x00}, /* U */
    {0x11, 0x11, 0x11, 0x11, 0x11, 0x0a, 0x04, 0x00, 0x00}, /* V */
    {0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0a, 0x00, 0x00}, /* W */
    {0x11, 0x11, 0x0a, 0x04, 0x0a, 0x11, 0x11, 0x00, 0x00}, /* X */
    {0x11, 0x11, 0x0a, 0x04, 0x04, 0x04, 0x04, 0x00, 0x00}, /* Y */
    {0x1f, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1f, 0x00, 0x00}, /* Z */
    {0x0e, 0x08, 0x08, 0x08, 0x08, 0x08, 0x0e, 0x00, 0x00}, /* [ */
    {0x10, 0x10, 0x08, 0x04, 0x02, 0x01, 0x01, 0x00, 0x00}, /* backslash */
    {0x0e, 0x02, 0x02, 0x02, 0x02, 0x02, 0x0e, 0x00, 0x00}, /* ] */
    {0x04, 0x0a, 0x11, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}, /* ^ */
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1f, 0x00}, /* _ */
    {0x08, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}, /* ` */
    {0x00, 0x00, 0x0e, 0x01, 0x0f, 0x11, 0x0f, 0x00, 0x00}, /* a */
    {0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x1e, 0x00, 0x00}, /* b */
    {0x00, 0x00, 0x0e, 0x10, 0x10, 0x11, 0x0e, 0x00, 0x00}, /* c */
    {0x01, 0x01, 0x0d, 0x13, 0x11, 0x11, 0x0f, 0x00, 0x00}, /* d */
    {0x00, 0x00, 0x0e, 0x11, 0x1f, 0x10, 0x0e, 0x00, 0x00}, /* e */
    {0x06, 0x09, 0x08, 0x1c, 0x08, 0x08, 0x08, 0x00, 0x00}, /* f */
    {0x00, 0x00, 0x0f, 0x11, 0x11, 0x11, 0x0f, 0x01, 0x0e}, /* g */
    {0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x11, 0x00, 0x00}, /* h */
    {0x04, 0x00, 0x0c, 0x04, 0x04, 0x04, 0x0e, 0x00, 0x00}, /* i */
    {0x02, 0x00, 0x06, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0c}, /* j */
    {0x10, 0x10, 0x12, 0x14, 0x18, 0x14, 0x12, 0x00, 0x00}, /* k */
    {0x0c, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0e, 0x00, 0x00}, /* l */
    {0x00, 0x00, 0x1a, 0x15, 0x15, 0x15, 0x15, 0x00, 0x00}, /* m */
    {0x00, 0x00, 0x16, 0x19, 0x11, 0x11, 0x11, 0x00, 0x00}, /* n */
    {0x00, 0x00, 0x0e, 0x11, 0x11, 0x11, 0x0e, 0x00, 0x00}, /* o */
    {0x00, 0x00, 0x1e, 0x11, 0x11, 0x11, 0x1e, 0x10, 0x10}, /* p */
    {0x00, 0x00, 0x0f, 0x11, 0x11, 0x11, 0x0f, 0x01, 0x01}, /* q */
    {0x00, 0x00, 0x16, 0x19, 0x10, 0x10, 0x10, 0x00, 0x00}, /* r */
    {0x00, 0x00, 0x0f, 0x10, 0x0e, 0x01, 0x1e, 0x00, 0x00}, /* s */
    {0x08, 0x08, 0x1c, 0x08, 0x08, 0x09, 0x06, 0x00, 0x00}, /* t */
    {0x00, 0x00, 0x11, 0x11, 0x11, 0x13, 0x0d, 0x00, 0x00}, /* u */
    {0x00, 0x00, 0x11, 0x11, 0x11, 0x0a, 0x04, 0x00, 0x00}, /* v */
    {0x00, 0x00, 0x11, 0x11, 0x15, 0x15, 0x0a, 0x00, 0x00}, /* w */
    {0x00, 0x00, 0x11, 0x0a, 0x04, 0x0a, 0x11, 0x00, 0x00}, /* x */
    {0x00, 0x00, 0x11, 0x11, 0x11, 0x11, 0x0f, 0x01, 0x0e}, /* y */
    {0x00, 0x00, 0x1f, 0x02, 0x04, 0x08, 0x1f, 0x00, 0x00}, /* z */
    {0x03, 0x04, 0x04, 0x08, 0x04, 0x04, 0x03, 0x00, 0x00}, /* { */
    {0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x00}, /* | */
    {0x18, 0x04, 0x04, 0x02, 0x04, 0x04, 0x18, 0x00, 0x00}, /* } */
    {0x00, 0x00, 0x08, 0x15, 0x02, 0x00, 0x00, 0x00, 0x00}, /* ~ */
};

static const uint8_t BOX[GA_FONT_HEIGHT] = {0x1f, 0x11, 0x11, 0x11, 0x11, 0x11, 0x1f, 0x00, 0x00};

/* The few non-ASCII characters the labels use as markers. */
static const struct {
    uint32_t cp;
    uint8_t rows[GA_FONT_HEIGHT];
} EXTRA[] = {
    {0x2423, {0x00, 0x00, 0x00, 0x00, 0x00, 0x11, 0x1f, 0x00, 0x00}}, /* open box: space */
    {0x21b5, {0x01, 0x01, 0x05, 0x09, 0x1f, 0x08, 0x04, 0x00, 0x00}}, /* return arrow */
    {0x21e5, {0x00, 0x05, 0x03, 0x1f, 0x03, 0x05, 0x00, 0x00, 0x00}}, /* tab arrow */
    {0x00b7, {0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00}}, /* middle dot */
    {0x2265, {0x08, 0x04, 0x02, 0x04, 0x08, 0x00, 0x1e, 0x00, 0x00}}, /* >= */
};

const uint8_t *ga_font_glyph(uint32_t cp) {
    if (cp >= 32 && cp < 127) return GLYPHS[cp - 32];
    for (size_t i = 0; i < sizeof EXTRA / sizeof *EXTRA; i++)
        if (EXTRA[i].cp == cp) return EXTRA[i].rows;
    return BOX;
}

/* Decodes one UTF-8 character at s (non-empty) and returns its length in bytes. Malformed
 * input is consumed a byte at a time; the caller draws those as boxes too. */
static int next_char(const char *s, uint32_t *cp) {
    const uint8_t *u = (const uint8_t *)s;
    int len = u[0] < 0x80             ? 1
              : (u[0] & 0xe0) == 0xc0 ? 2
              : (u[0] & 0xf0) == 0xe0 ? 3
              : (u[0] & 0xf8) == 0xf0 ? 4
                                      : 0;
    if (len == 0) {
        *cp = 0xfffd;
        return 1;
    }
    uint32_t v = len == 1 ? u[0] : (uint32_t)(u[0] & (0x7f >> len));
    for (int i = 1; i < len; i++) {
        if ((u[i] & 0xc0) != 0x80) { /* truncated sequence (also stops at the NUL) */
            *cp = 0xfffd;
            return i;
        }
        v = (v << 6) | (u[i] & 0x3f);
    }
    *cp = v;
    return len;
}

int ga_font_glyphs(const char *s) {
    int n = 0;
    uint32_t cp;
    while (*s) {
        s += next_char(s, &cp);
        n++;
    }
    return n;
}

/* ---------------------------------------------------------------- TrueType */

#define GA_FONT_FILE_MAX (64 << 20) /* far above any text font; bounds what we read */
#define GLYPH_BUF 96                /* side of the largest glyph raster at our sizes */

struct ga_font {
    unsigned char *data;
    stbtt_fontinfo info;
    float scale[2]; /* pixels per font unit at size 1 and 2 */
    int ascent_u;   /* ascent in font units (baseline below the box top) */
    int height_u;   /* ascent - descent */
    int cap_u;      /* height of 'H' */
};

/* Pixel heights (ascent to descent) of the two sizes: 13 px labels, 21 px titles. */
static const float PIXEL_HEIGHT[2] = {13.0f, 21.0f};

static uint32_t be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* stb_truetype reads tables at the offsets the file names without checking them, and
 * asserts on a character map it does not know. This keeps it to files whose table
 * directory lies inside the file with every table inside the file too, and whose chosen
 * character map has a format it reads. (Offsets inside the tables are still trusted: the
 * font is a file the user names, not model input.) */
static int font_directory_ok(const unsigned char *d, size_t n) {
    if (n < 12) return 0;
    uint32_t tag = be32(d);
    if (tag != 0x00010000u && tag != 0x74727565u /* "true" */ && tag != 0x4f54544fu /* OTTO */)
        return 0;
    size_t tables = (size_t)d[4] << 8 | d[5];
    if (tables == 0 || 12 + 16 * tables > n) return 0;
    for (size_t i = 0; i < tables; i++) {
        const unsigned char *r = d + 12 + 16 * i;
        uint64_t off = be32(r + 8), len = be32(r + 12);
        if (off + len > n) return 0;
    }
    return 1;
}

static int cmap_ok(const stbtt_fontinfo *fi, size_t n) {
    if (fi->index_map <= 0 || (size_t)fi->index_map + 4 > n) return 0;
    int fmt = fi->data[fi->index_map] << 8 | fi->data[fi->index_map + 1];
    return fmt == 0 || fmt == 4 || fmt == 6 || fmt == 12 || fmt == 13;
}

ga_status ga_font_load(const char *path, ga_font **out, ga_err *err) {
    *out = NULL;
    struct stat st;
    if (stat(path, &st) != 0)
        return ga_err_set(err, GA_ERR_IO, "font %s: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return ga_err_set(err, GA_ERR_IO, "font %s: not a regular file", path);
    if (st.st_size < 12 || st.st_size > GA_FONT_FILE_MAX)
        return ga_err_set(err, GA_ERR_FORMAT, "font %s: %lld bytes is not a TrueType font", path,
                          (long long)st.st_size);
    FILE *f = fopen(path, "rb");
    if (!f) return ga_err_set(err, GA_ERR_IO, "font %s: %s", path, strerror(errno));
    ga_font *ft = calloc(1, sizeof *ft);
    unsigned char *data = malloc((size_t)st.st_size);
    size_t got = data ? fread(data, 1, (size_t)st.st_size, f) : 0;
    fclose(f);
    if (!ft || !data) {
        free(ft);
        free(data);
        return ga_err_set(err, GA_ERR_OOM, "font %s: out of memory", path);
    }
    ft->data = data;
    /* stb_truetype trusts its input; the checks below keep it to files that look like one
     * complete font (the table directory is checked by stbtt_InitFont). */
    int x0, y0, x1, y1, ascent, descent, gap;
    if (got != (size_t)st.st_size || !font_directory_ok(data, got) ||
        stbtt_GetFontOffsetForIndex(data, 0) != 0 || !stbtt_InitFont(&ft->info, data, 0) ||
        !cmap_ok(&ft->info, got) || !stbtt_FindGlyphIndex(&ft->info, 'H') ||
        !stbtt_GetCodepointBox(&ft->info, 'H', &x0, &y0, &x1, &y1)) {
        ga_font_free(ft);
        return ga_err_set(err, GA_ERR_FORMAT, "font %s: not a TrueType font", path);
    }
    stbtt_GetFontVMetrics(&ft->info, &ascent, &descent, &gap);
    if (ascent <= 0 || descent > 0 || y1 <= 0 || y1 > ascent) {
        ga_font_free(ft);
        return ga_err_set(err, GA_ERR_FORMAT, "font %s: implausible metrics", path);
    }
    ft->ascent_u = ascent;
    ft->height_u = ascent - descent;
    ft->cap_u = y1;
    for (int i = 0; i < 2; i++)
        ft->scale[i] = stbtt_ScaleForPixelHeight(&ft->info, PIXEL_HEIGHT[i]);
    *out = ft;
    return GA_OK;
}

void ga_font_free(ga_font *f) {
    if (!f) return;
    free(f->data);
    free(f);
}

static int size_index(int size) {
    return size >= 2 ? 1 : 0;
}

int ga_font_height(const ga_font *f, int size) {
    if (!f) return GA_FONT_HEIGHT * (size < 1 ? 1 : size);
    return (int)ceilf(f->height_u * f->scale[size_index(size)]);
}

int ga_font_mid(const ga_font *f, int size) {
    if (!f) return GA_FONT_ASCENT * (size < 1 ? 1 : size) / 2;
    float sc = f->scale[size_index(size)];
    return (int)lroundf((f->ascent_u - f->cap_u / 2.0f) * sc);
}

/* Walks the glyphs of s, calling draw (when given) with each glyph's pen position. */
static float ttf_walk(const ga_font *f, const char *s, int size, ga_canvas *c, int x, int y,
                      ga_text_dir dir, ga_rgb col) {
    const stbtt_fontinfo *fi = &f->info;
    float sc = f->scale[size_index(size)];
    int base = (int)lroundf(f->ascent_u * sc);
    float pen = 0.0f;
    int prev = 0;
    uint32_t cp;
    unsigned char buf[GLYPH_BUF * GLYPH_BUF];
    while (*s) {
        s += next_char(s, &cp);
        int g = stbtt_FindGlyphIndex(fi, (int)cp);
        if (prev) pen += sc * stbtt_GetGlyphKernAdvance(fi, prev, g);
        prev = g;
        int adv, lsb;
        stbtt_GetGlyphHMetrics(fi, g, &adv, &lsb);
        if (c) {
            float fx = pen - floorf(pen);
            int x0, y0, x1, y1;
            stbtt_GetGlyphBitmapBoxSubpixel(fi, g, sc, sc, fx, 0.0f, &x0, &y0, &x1, &y1);
            int w = x1 - x0, h = y1 - y0;
            if (w > 0 && h > 0 && w <= GLYPH_BUF && h <= GLYPH_BUF) {
                stbtt_MakeGlyphBitmapSubpixel(fi, buf, w, h, w, sc, sc, fx, 0.0f, g);
                for (int gy = 0; gy < h; gy++)
                    for (int gx = 0; gx < w; gx++) {
                        int a = buf[gy * w + gx];
                        if (!a) continue;
                        int along = (int)floorf(pen) + x0 + gx, across = base + y0 + gy;
                        int px = dir == GA_TEXT_RIGHT ? x + along : x + across;
                        int py = dir == GA_TEXT_RIGHT ? y + across : y - 1 - along;
                        ga_canvas_blend(c, px, py, col, a);
                    }
            }
        }
        pen += sc * adv;
    }
    return pen;
}

int ga_font_text_len(const ga_font *f, const char *s, int size) {
    if (!f) {
        int n = ga_font_glyphs(s);
        /* the gap after the last glyph is not part of the text */
        return n ? (n * GA_FONT_ADVANCE - 1) * (size < 1 ? 1 : size) : 0;
    }
    return (int)ceilf(ttf_walk(f, s, size, NULL, 0, 0, GA_TEXT_RIGHT, (ga_rgb){0, 0, 0}));
}

/* ---------------------------------------------------------------- bitmap */

static int glyph_bit(const uint8_t *g, int x, int y) {
    if (x < 0 || x > 4 || y < 0 || y >= GA_FONT_HEIGHT) return 0;
    return (g[y] >> (4 - x)) & 1;
}

/* Fills one sub-pixel square of size u at (ax, ay) along/across the text direction. */
static void put_unit(ga_canvas *c, int x, int y, int along, int across, int u, ga_text_dir dir,
                     ga_rgb col) {
    if (dir == GA_TEXT_RIGHT)
        ga_canvas_fill(c, x + along, y + across, u, u, col);
    else /* glyph top towards the left, text running upwards from y */
        ga_canvas_fill(c, x + across, y - along - u, u, u, col);
}

void ga_font_draw(const ga_font *f, ga_canvas *c, int x, int y, const char *s, int scale,
                  ga_text_dir dir, ga_rgb col) {
    if (f) {
        ttf_walk(f, s, scale, c, x, y, dir, col);
        return;
    }
    if (scale < 1) scale = 1;
    int pen = 0; /* offset along the text direction, in unscaled pixels */
    uint32_t cp;
    while (*s) {
        s += next_char(s, &cp);
        const uint8_t *g = ga_font_glyph(cp);
        for (int gy = 0; gy < GA_FONT_HEIGHT; gy++) {
            for (int gx = 0; gx < 5; gx++) {
                int p = glyph_bit(g, gx, gy);
                int ax = (pen + gx) * scale, ay = gy * scale;
                if (scale % 2) {
                    if (p) put_unit(c, x, y, ax, ay, scale, dir, col);
                    continue;
                }
                /* Even scales enlarge 2x with pixel-art edge smoothing (the EPX rule): a
                 * quarter of an empty pixel is filled where two lit neighbours meet at a
                 * diagonal, so slanted strokes come out as steps of half the size instead
                 * of blocks. Then each quarter is scale/2 pixels. */
                int up = glyph_bit(g, gx, gy - 1), dn = glyph_bit(g, gx, gy + 1);
                int lf = glyph_bit(g, gx - 1, gy), rt = glyph_bit(g, gx + 1, gy);
                int q[4] = {p, p, p, p}; /* top-left, top-right, bottom-left, bottom-right */
                if (!p) {
                    q[0] = lf && up && !dn && !rt;
                    q[1] = up && rt && !lf && !dn;
                    q[2] = lf && dn && !up && !rt;
                    q[3] = dn && rt && !up && !lf;
                }
                int h = scale / 2;
                for (int k = 0; k < 4; k++)
                    if (q[k]) put_unit(c, x, y, ax + (k & 1) * h, ay + (k >> 1) * h, h, dir, col);
            }
        }
        pen += GA_FONT_ADVANCE;
    }
}
