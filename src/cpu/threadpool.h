/*
 * A small fork-join thread pool for the CPU backend: ga_pool_run(pool, fn, ctx, n) calls
 * fn(ctx, i) for i in [0, n) across the workers and the calling thread, and returns when all
 * are done. Workers are created once per backend, so a forward pass creates no threads.
 */
#ifndef GATTN_CPU_THREADPOOL_H
#define GATTN_CPU_THREADPOOL_H

typedef struct ga_pool ga_pool;
typedef void (*ga_task_fn)(void *ctx, int i);

/* n_threads total (including the caller); 0 -> number of online cores. NULL on failure. */
ga_pool *ga_pool_create(int n_threads);
void ga_pool_free(ga_pool *p);
int ga_pool_threads(const ga_pool *p);
void ga_pool_run(ga_pool *p, ga_task_fn fn, void *ctx, int n);

#endif
