/*
 * A per-device value that a launcher computes once (kernel attributes set, an occupancy
 * query) instead of on every launch. Decode steps replayed from a CUDA graph never pay for
 * those calls, but the eager launches do: a mixed serving step (decode rows and a prompt in
 * one pass) launches the decode attention once a layer, and cudaFuncSetAttribute plus
 * cudaOccupancyMaxActiveBlocksPerMultiprocessor on each of them is host time the GPU waits
 * for. Function attributes are per device, so the cache is indexed by the current device;
 * two threads racing on an empty entry both do the set-up (harmless: the same attributes and
 * the same answer), which is why relaxed atomics suffice.
 */
#ifndef GATTN_LAUNCH_CACHE_CUH
#define GATTN_LAUNCH_CACHE_CUH

#include <atomic>

#include <cuda_runtime.h>

#define GA_DEV_CACHE_N 64 /* devices a process may use; beyond it: no caching, same results */

/* Zero means "not set yet": a function-local static of this type is zero-initialised. */
struct ga_dev_cache {
    std::atomic<int> v[GA_DEV_CACHE_N];
};

/* The cached value for the current device (0 when none), and the device in *dev (-1 when the
 * runtime cannot tell, which then only skips the cache). */
static inline int ga_dev_cache_get(ga_dev_cache &c, int *dev) {
    if (cudaGetDevice(dev) != cudaSuccess || *dev < 0 || *dev >= GA_DEV_CACHE_N) {
        *dev = -1;
        return 0;
    }
    return c.v[*dev].load(std::memory_order_relaxed);
}

static inline void ga_dev_cache_put(ga_dev_cache &c, int dev, int value) {
    if (dev >= 0) c.v[dev].store(value, std::memory_order_relaxed);
}

#endif
