/*
 * File paths and file access shared by the loaders, writers and the CLI.
 *
 * Model files are opened through ga_open_regular: only regular files (a symlink to one is
 * fine: the Hugging Face cache is made of them) are read, so a FIFO, directory or device
 * named config.json or model.safetensors is refused with a message instead of blocking the
 * load or reading endless bytes.
 */
#ifndef GATTN_CORE_PATH_H
#define GATTN_CORE_PATH_H

#include <stddef.h>
#include <stdint.h>

#include "gattn/gattn.h"

/* "dir/name" in a malloc'd string (NULL when out of memory); the caller frees it. */
char *ga_path_join(const char *dir, const char *name);

/* Opens path read-only if it is a regular file after following symlinks; never blocks (a FIFO
 * is refused before it is opened for reading). *fd is the descriptor and *size the file size;
 * errors name the path and say what it is instead ("not a regular file (a FIFO)"). */
ga_status ga_open_regular(const char *path, int *fd, uint64_t *size, ga_err *err);

/* Reads a whole regular file of at most max_bytes into a malloc'd buffer (one extra NUL byte
 * after the end, not counted in *len). */
ga_status ga_read_regular(const char *path, size_t max_bytes, char **out, size_t *len, ga_err *err);

#endif
