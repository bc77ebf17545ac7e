/*
 * Helpers for libFuzzer harnesses (tests/fuzz/fuzz_<name>.c). A harness that needs files (a
 * model folder, a tokenizer.json) writes them into ga_fuzz_dir(): one directory per process,
 * made on first use under $TMPDIR (run.sh points that at a scratch dir it deletes, so a crash
 * leaves nothing behind) and removed at a normal exit. Inputs are reused files in place, so
 * a harness overwrites or removes what the previous input wrote.
 */
#ifndef GATTN_FUZZ_UTIL_H
#define GATTN_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

static char *ga_fuzz_dir_path;

static void ga_fuzz_dir_cleanup(void) {
    ga_test_rmtree(ga_fuzz_dir_path);
    free(ga_fuzz_dir_path);
    ga_fuzz_dir_path = NULL;
}

/* The per-process scratch directory; aborts when it cannot be made (a broken setup, not a
 * finding). */
static inline const char *ga_fuzz_dir(void) {
    if (!ga_fuzz_dir_path) {
        ga_fuzz_dir_path = ga_test_tmpdir("fuzz");
        if (!ga_fuzz_dir_path) {
            perror("ga_fuzz_dir: mkdtemp");
            abort();
        }
        atexit(ga_fuzz_dir_cleanup);
    }
    return ga_fuzz_dir_path;
}

/* dir/name, malloc'd (dir: ga_fuzz_dir() or a folder in it); aborts when out of memory. */
static inline char *ga_fuzz_path(const char *dir, const char *name) {
    char *p = ga_test_path(dir, name);
    if (!p) abort();
    return p;
}

/* Writes data to dir/name, replacing it; aborts on an I/O error. */
static inline void ga_fuzz_write(const char *dir, const char *name, const void *data, size_t n) {
    char *p = ga_fuzz_path(dir, name);
    if (ga_test_write_file(p, data, n) != 0) {
        perror(p);
        abort();
    }
    free(p);
}

/* Removes dir/name if it is there (a file the previous input wrote). */
static inline void ga_fuzz_remove(const char *dir, const char *name) {
    char *p = ga_fuzz_path(dir, name);
    unlink(p);
    free(p);
}

/* Splits an input at the first occurrence of sep: [data, *n1) and [after sep, end). Returns 0
 * when sep is absent (then the whole input is the first part and the second is empty). */
static inline int ga_fuzz_split(const uint8_t *data, size_t n, const char *sep, size_t *n1,
                                const uint8_t **part2, size_t *n2) {
    size_t k = strlen(sep);
    for (size_t i = 0; k && i + k <= n; i++) {
        if (!memcmp(data + i, sep, k)) {
            *n1 = i;
            *part2 = data + i + k;
            *n2 = n - i - k;
            return 1;
        }
    }
    *n1 = n;
    *part2 = data + n;
    *n2 = 0;
    return 0;
}

#endif
