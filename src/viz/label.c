/*
 * Tick labels from token text. A token's leading space is most of what tells " s" from "s"
 * and " gating" from "gating", and a token of spaces only would otherwise be blank, so each
 * space becomes a visible marker (U+2423, as tokenizers show "Ġ" or "▁"), and the newline and
 * tab escapes that ga_tok_token_text writes become arrows. Everything else passes through:
 * valid UTF-8 characters as themselves, bytes of a partial character as their \xNN escape.
 */
#include <string.h>

#include "viz.h"

#define MARK_SPACE "\xe2\x90\xa3"   /* U+2423 OPEN BOX */
#define MARK_NEWLINE "\xe2\x86\xb5" /* U+21B5 DOWNWARDS ARROW WITH CORNER LEFTWARDS */
#define MARK_TAB "\xe2\x87\xa5"     /* U+21E5 RIGHTWARDS ARROW TO BAR */

/* Length of the UTF-8 character starting at s (1 for a stray byte). */
static size_t char_len(const char *s) {
    size_t n = 1;
    if ((unsigned char)s[0] >= 0xc0)
        while (s[n] && ((unsigned char)s[n] & 0xc0) == 0x80 && n < 4)
            n++;
    return n;
}

void ga_viz_token_label(const char *text, char *out, size_t cap) {
    if (!cap) return;
    size_t o = 0;
    out[0] = 0;
    if (!text || !*text) text = "\"\""; /* an empty token is still something to point at */
    for (const char *s = text; *s;) {
        const char *piece = s;
        size_t in = char_len(s), len = in;
        if (*s == ' ') {
            piece = MARK_SPACE;
            len = 3;
        } else if (s[0] == '\\' && s[1] == 'n') {
            piece = MARK_NEWLINE;
            len = 3;
            in = 2;
        } else if (s[0] == '\\' && s[1] == 't') {
            piece = MARK_TAB;
            len = 3;
            in = 2;
        }
        if (o + len >= cap) break;
        memcpy(out + o, piece, len);
        o += len;
        s += in;
    }
    out[o] = 0;
}
