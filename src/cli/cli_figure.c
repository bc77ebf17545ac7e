/*
 * The font and output-path handling that gattn viz and gattn perplexity --plot share
 * (cli_figure.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "cli_figure.h"

int ga_cli_font_load(const char *cmd, const char *opt, ga_font **font, bool *missing_default) {
    const char *env = getenv("GATTN_FONT");
    const char *path = opt ? opt : env && *env ? env : GA_CLI_DEFAULT_FONT;
    ga_err err = {{0}};
    *font = NULL;
    *missing_default = false;
    if (!opt && !(env && *env) && access(path, F_OK) != 0) {
        *missing_default = true;
        return 0;
    }
    if (ga_font_load(path, font, &err))
        return ga_cli_fail(cmd, "%s: %s",
                           opt           ? "--font"
                           : env && *env ? "GATTN_FONT"
                                         : "font",
                           err.msg);
    return 0;
}

void ga_cli_font_note(const char *cmd) {
    fprintf(stderr,
            "gattn %s: note: no font at %s (Debian: fonts-dejavu-core); using the "
            "built-in bitmap font\n",
            cmd, GA_CLI_DEFAULT_FONT);
}

int ga_cli_check_writable(const char *cmd, const char *opt, const char *path) {
    if (access(path, F_OK) == 0) {
        struct stat st;
        if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
            return ga_cli_fail(cmd, "%s: %s is a directory", opt, path);
        if (access(path, W_OK) != 0)
            return ga_cli_fail(cmd, "%s: cannot write %s: %s", opt, path, strerror(errno));
        return 0;
    }
    char *dir = strdup(path);
    if (!dir) return ga_cli_fail(cmd, "out of memory");
    char *slash = strrchr(dir, '/');
    const char *d = slash ? (slash == dir ? "/" : (*slash = 0, dir)) : ".";
    int rc = 0;
    if (access(d, W_OK | X_OK) != 0)
        rc = ga_cli_fail(cmd, "%s: cannot write %s: directory %s: %s", opt, path, d,
                         strerror(errno));
    free(dir);
    return rc;
}
