/*
 * What the subcommands that draw pictures (viz, perplexity --plot) share: the font the figure
 * is drawn in, chosen the same way everywhere, and the check that the picture can be written,
 * made before any model runs so that a bad path fails in a second, not after the run.
 */
#ifndef GATTN_CLI_FIGURE_H
#define GATTN_CLI_FIGURE_H

#include <stdbool.h>

#include "viz/viz.h"

/* fonts-dejavu-core's file; --font or GATTN_FONT name another, the bitmap font is the
 * fallback when neither is given and this one is missing */
#define GA_CLI_DEFAULT_FONT "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
#define GA_CLI_FONT_HELP                                                                           \
    "TrueType font for the text (default $GATTN_FONT, else\n" GA_CLI_DEFAULT_FONT ";\n"            \
    "the built-in bitmap font when that is missing)"

/* The figure's font: opt (--font), else $GATTN_FONT, else GA_CLI_DEFAULT_FONT. A font that was
 * asked for must load (error line naming --font or GATTN_FONT, returns 1); the default may be
 * missing: *font NULL (the bitmap font) and *missing_default set, so that the caller prints
 * ga_cli_font_note when it draws (an error before that stays the only line on stderr). */
int ga_cli_font_load(const char *cmd, const char *opt, ga_font **font, bool *missing_default);
/* The one-line notice that the default font is missing. */
void ga_cli_font_note(const char *cmd);

/* 0 when path can be written as a file (an existing writable file, or a new name in a
 * writable directory); else an error line "OPT: ..." and 1. */
int ga_cli_check_writable(const char *cmd, const char *opt, const char *path);

#endif
