/*
 * The request parser's fuzz harness (tests/fuzz/fuzz_request.c) run once over its seed corpus
 * in the normal (and the sanitizer) build, so the invariants it checks hold in every CI run,
 * not only in the libFuzzer build.
 */
#include <dirent.h>
#include <stdio.h>

#include "fuzz/fuzz_request.c"

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    DIR *d = opendir(argv[1]);
    if (!d) {
        fprintf(stderr, "cannot open %s\n", argv[1]);
        return 1;
    }
    int n = 0;
    struct dirent *ent;
    while ((ent = readdir(d))) {
        if (ent->d_name[0] == '.') continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", argv[1], ent->d_name);
        FILE *f = fopen(path, "rb");
        if (!f) return 1;
        static char buf[1 << 16];
        size_t len = fread(buf, 1, sizeof buf, f);
        fclose(f);
        LLVMFuzzerTestOneInput((const uint8_t *)buf, len);
        n++;
    }
    closedir(d);
    printf("%d corpus files parsed\n", n);
    return n > 0 ? 0 : 1;
}
