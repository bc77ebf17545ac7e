/*
 * The byte-level mapping of GPT-2 style tokenizers: every byte value is shown as a printable
 * code point (printable Latin-1 bytes as themselves, the other 68 as U+0100.. in byte order),
 * so that BPE pieces are strings without spaces or control characters. The lookup tables are
 * built once (pthread_once) from the definition.
 */
#include <pthread.h>

#include "tok/tok_internal.h"

static bool byte_is_self(uint8_t b) {
    return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
}

uint32_t ga_tok_byte_to_cp(uint8_t b) {
    if (byte_is_self(b)) return b;
    /* Bytes that are not shown as themselves take U+0100 + their rank among such bytes. */
    uint32_t rank = 0;
    for (int x = 0; x < b; x++)
        if (!byte_is_self((uint8_t)x)) rank++;
    return 256 + rank;
}

int ga_tok_cp_to_byte(uint32_t cp) {
    if (cp < 256) return byte_is_self((uint8_t)cp) ? (int)cp : -1;
    if (cp >= 256 + 68) return -1;
    uint32_t rank = cp - 256;
    for (int x = 0; x < 256; x++)
        if (!byte_is_self((uint8_t)x) && rank-- == 0) return x;
    return -1;
}

/* Small tables so the hot path does not recount ranks. */
typedef struct bytemap {
    uint16_t to_cp[256];
    int16_t from_cp[256 + 68];
} bytemap;

static bytemap make_map(void) {
    bytemap m;
    for (int b = 0; b < 256; b++)
        m.to_cp[b] = (uint16_t)ga_tok_byte_to_cp((uint8_t)b);
    for (int c = 0; c < 256 + 68; c++)
        m.from_cp[c] = -1;
    for (int b = 0; b < 256; b++)
        m.from_cp[m.to_cp[b]] = (int16_t)b;
    return m;
}

static bytemap g_map;
static pthread_once_t g_map_once = PTHREAD_ONCE_INIT;
static void init_map(void) {
    g_map = make_map();
}

static const bytemap *the_map(void) {
    pthread_once(&g_map_once, init_map);
    return &g_map;
}

size_t ga_tok_bytes_to_piece(const uint8_t *in, size_t n, char *out) {
    const bytemap *m = the_map();
    size_t o = 0;
    for (size_t i = 0; i < n; i++)
        o += (size_t)ga_utf8_encode(m->to_cp[in[i]], out + o);
    return o;
}

long ga_tok_piece_to_bytes(const char *piece, size_t len, uint8_t *out) {
    const bytemap *m = the_map();
    const uint8_t *s = (const uint8_t *)piece;
    size_t i = 0;
    long o = 0;
    while (i < len) {
        int k = ga_utf8_classify(s + i, len - i);
        if (k <= 0) return -1;
        uint32_t cp;
        ga_utf8_decode(s + i, &cp);
        if (cp >= 256 + 68 || m->from_cp[cp] < 0) return -1;
        out[o++] = (uint8_t)m->from_cp[cp];
        i += (size_t)k;
    }
    return o;
}
