/*
 * File paths shared by the loaders, writers and the CLI.
 */
#ifndef GATTN_CORE_PATH_H
#define GATTN_CORE_PATH_H

/* "dir/name" in a malloc'd string (NULL when out of memory); the caller frees it. */
char *ga_path_join(const char *dir, const char *name);

#endif
