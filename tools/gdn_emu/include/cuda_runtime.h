/*
 * The CPU emulator's stand-in for <cuda_runtime.h> (tools/gdn_emu): the few types, qualifiers
 * and intrinsics the delta-rule kernels use, with every CUDA thread of a block run as a ucontext
 * coroutine on one host thread (emu.cpp). Kernel launches are rewritten by the build from
 * `k<<<grid, block, smem, stream>>>(args)` to `EMU_LAUNCH(k, grid, block, smem, stream)(args)`.
 * __shared__ variables become function statics: one block runs at a time, so they are the
 * block's shared memory.
 */
#ifndef GA_EMU_CUDA_RUNTIME_H
#define GA_EMU_CUDA_RUNTIME_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include <algorithm>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static
#define __align__(n) __attribute__((aligned(n)))

struct dim3 {
    unsigned x, y, z;
    dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct alignas(16) float4 {
    float x, y, z, w;
};
typedef struct emu_stream *cudaStream_t;
typedef enum {
    cudaSuccess = 0,
    cudaErrorMemoryAllocation = 2,
    cudaErrorInvalidValue = 1
} cudaError_t;

namespace emu {
extern dim3 threadIdx, blockIdx, blockDim, gridDim;
void syncthreads();
float shfl_xor(float v, int o);
cudaError_t last_error(bool clear);
void run_grid(dim3 grid, dim3 block, void (*body)(void *), void *arg);

/* A launch: the kernel and its arguments bound (copied, as CUDA copies them), then run block
 * by block. */
template <typename K> struct launch {
    K *k;
    dim3 grid, block;
    template <typename... A> void operator()(A... args) {
        auto call = [&]() { k(args...); };
        run_grid(
            grid, block, [](void *p) { (*static_cast<decltype(call) *>(p))(); }, &call);
    }
};
template <typename K> launch<K> make_launch(K *k, dim3 g, dim3 b) {
    return launch<K>{k, g, b};
}
} // namespace emu

#define threadIdx emu::threadIdx
#define blockIdx emu::blockIdx
#define blockDim emu::blockDim
#define gridDim emu::gridDim
#define EMU_LAUNCH(k, g, b, smem, stream) emu::make_launch(k, dim3(g), dim3(b))

static inline void __syncthreads() {
    emu::syncthreads();
}
static inline float __shfl_xor_sync(unsigned, float v, int o) {
    return emu::shfl_xor(v, o);
}
static inline float emu_expf(float x) { // glibc declares its own __expf
    return expf(x);
}
#define __expf emu_expf
static inline float rsqrtf(float x) {
    return 1.f / sqrtf(x);
}
using std::max;
using std::min;

static inline cudaError_t cudaGetLastError() {
    return emu::last_error(true);
}
static inline cudaError_t cudaPeekAtLastError() {
    return emu::last_error(false);
}
static inline const char *cudaGetErrorName(cudaError_t e) {
    return e == cudaSuccess ? "cudaSuccess" : "cudaErrorEmulated";
}

#endif
