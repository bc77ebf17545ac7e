/*
 * libFuzzer harness of the CLI's JSON-lines reader (src/cli/jsonl.c): every line of the input
 * goes through both line parsers; what parses must survive a round trip through the writer
 * unchanged (a string with its NUL bytes, an id array), and what does not parse must say why.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude -Isrc \
 *     tests/fuzz/fuzz_jsonl.c -o fuzz_jsonl && ./fuzz_jsonl tests/fuzz/corpus/jsonl
 *
 * jsonl.c is part of the gattn program, not of libgattn, so it is compiled in here.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/cli/jsonl.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_line(const char *s, size_t n) {
    const char *why = NULL;
    char *out = malloc(n + 1);
    if (!out) return;
    long len = ga_json_parse_string(s, n, out, &why);
    if (len < 0 && !why) abort();
    if (len > (long)n) abort(); /* unescaping never grows */
    if (len >= 0) {
        char *buf = NULL;
        size_t bl = 0;
        FILE *f = open_memstream(&buf, &bl);
        if (f) {
            ga_json_write_string(f, out, (size_t)len);
            fclose(f);
            char *back = malloc(bl + 1);
            long len2 = back ? ga_json_parse_string(buf, bl, back, &why) : len;
            if (back && (len2 != len || memcmp(back, out, (size_t)len))) abort();
            free(back);
            free(buf);
        }
    }
    free(out);
    int32_t *ids = NULL;
    int k = 0;
    why = NULL;
    if (ga_json_parse_ids(s, n, &ids, &k, &why) == 0) {
        char *buf = NULL;
        size_t bl = 0;
        FILE *f = open_memstream(&buf, &bl);
        if (f) {
            ga_json_write_ids(f, ids, k);
            fclose(f);
            int32_t *ids2 = NULL;
            int k2 = 0;
            if (ga_json_parse_ids(buf, bl, &ids2, &k2, &why) || k2 != k ||
                (k && memcmp(ids, ids2, (size_t)k * sizeof *ids)))
                abort();
            free(ids2);
            free(buf);
        }
        for (int i = 0; i < k; i++)
            if (ids[i] < 0) abort();
        free(ids);
    } else if (!why) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* the lines, as ga_jsonl_next hands them out (without the "\n") */
    const char *s = (const char *)data, *end = s + size;
    while (s < end) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        size_t n = nl ? (size_t)(nl - s) : (size_t)(end - s);
        check_line(s, n);
        s += n + (nl != NULL);
    }
    return 0;
}
