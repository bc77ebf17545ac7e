/* File paths and regular-file access (see path.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "path.h"

char *ga_path_join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, b + 1);
    return p;
}

static const char *kind(mode_t m) {
    return S_ISDIR(m)    ? "a directory"
           : S_ISFIFO(m) ? "a FIFO"
           : S_ISCHR(m)  ? "a character device"
           : S_ISBLK(m)  ? "a block device"
           : S_ISSOCK(m) ? "a socket"
                         : "not a plain file";
}

ga_status ga_open_regular(const char *path, int *fd, uint64_t *size, ga_err *err) {
    *fd = -1;
    *size = 0;
    /* stat first: opening a FIFO for reading would wait for a writer, and opening some devices
     * has effects of its own. */
    struct stat sb;
    if (stat(path, &sb) != 0)
        return ga_err_set(err, GA_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (!S_ISREG(sb.st_mode))
        return ga_err_set(err, GA_ERR_IO, "%s: not a regular file (%s)", path, kind(sb.st_mode));
    /* O_NONBLOCK in case the path was swapped for a FIFO since the stat; fstat decides. */
    int f = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (f < 0) return ga_err_set(err, GA_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (fstat(f, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(f);
        return ga_err_set(err, GA_ERR_IO, "%s: not a regular file", path);
    }
    int fl = fcntl(f, F_GETFL);
    if (fl >= 0) (void)fcntl(f, F_SETFL, fl & ~O_NONBLOCK);
    *fd = f;
    *size = (uint64_t)sb.st_size;
    return GA_OK;
}

ga_status ga_read_regular(const char *path, size_t max_bytes, char **out, size_t *len,
                          ga_err *err) {
    *out = NULL;
    *len = 0;
    int fd;
    uint64_t size;
    ga_status st = ga_open_regular(path, &fd, &size, err);
    if (st) return st;
    if (size > max_bytes) {
        close(fd);
        return ga_err_set(err, GA_ERR_FORMAT, "%s: %llu bytes, larger than the %zu allowed", path,
                          (unsigned long long)size, max_bytes);
    }
    char *buf = malloc((size_t)size + 1);
    if (!buf) {
        close(fd);
        return ga_err_set(err, GA_ERR_OOM, "%s: out of memory", path);
    }
    size_t got = 0;
    int e = 0;
    while (got < size) {
        ssize_t r = read(fd, buf + got, (size_t)size - got);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) e = errno;
        if (r <= 0) break; /* a read error, or the file shrank while we read it */
        got += (size_t)r;
    }
    close(fd);
    if (got != size) {
        free(buf);
        return ga_err_set(err, GA_ERR_IO, "%s: read error after %zu of %llu bytes: %s", path, got,
                          (unsigned long long)size, e ? strerror(e) : "the file shrank");
    }
    buf[got] = 0;
    *out = buf;
    *len = got;
    return GA_OK;
}
