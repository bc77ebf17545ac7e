/*
 * The CPU emulator's scheduler (tools/gdn_emu): runs a kernel's blocks one after another, each
 * block's threads as ucontext coroutines on this host thread. A thread runs until it reaches
 * __syncthreads (a block barrier), a warp shuffle (a warp barrier) or its end; a barrier opens
 * when every thread of its group that has not returned is waiting at it. Between barriers the
 * threads run in the order emu_set_order picks (forward, reverse, or a seeded shuffle): a read
 * of another thread's write with no barrier between them gives different results under two
 * orders, which is how the harness finds a race between phases. A barrier that can never open
 * (divergent __syncthreads) aborts.
 */
#include "emu.h"

#include <stdio.h>
#include <stdlib.h>
#include <ucontext.h>

#include <vector>

#undef threadIdx
#undef blockIdx
#undef blockDim
#undef gridDim

namespace emu {
dim3 threadIdx, blockIdx, blockDim, gridDim;

enum { RUN, AT_BLOCK, AT_WARP, DONE };
struct thr {
    ucontext_t ctx;
    int st;
    float shfl;
};

static const size_t STACK = 256 << 10;
static std::vector<thr> th;
static std::vector<char> stacks;
static ucontext_t sched;
static int cur, order_mode;
static unsigned order_seed = 1;
static void (*body_fn)(void *);
static void *body_arg;
static cudaError_t err_state = cudaSuccess;

static void set_idx(int t) {
    const unsigned bx = blockDim.x, by = blockDim.y;
    threadIdx = dim3(t % bx, (t / bx) % by, t / (bx * by));
}

static void trampoline() {
    body_fn(body_arg);
    th[cur].st = DONE;
    swapcontext(&th[cur].ctx, &sched);
}

static void wait(int st) {
    th[cur].st = st;
    swapcontext(&th[cur].ctx, &sched);
    set_idx(cur); // the scheduler ran others meanwhile
}

void syncthreads() {
    wait(AT_BLOCK);
}

float shfl_xor(float v, int o) {
    th[cur].shfl = v;
    wait(AT_WARP);
    const int src = (cur & ~31) | ((cur & 31) ^ o);
    const float r = th[src].shfl;
    wait(AT_WARP); // nobody overwrites its slot before every lane has read
    return r;
}

cudaError_t last_error(bool clear) {
    cudaError_t e = err_state;
    if (clear) err_state = cudaSuccess;
    return e;
}

static void run_block(int n) {
    std::vector<int> ord(n);
    for (int i = 0; i < n; i++)
        ord[i] = order_mode == 1 ? n - 1 - i : i;
    for (int i = 0; i < n; i++) {
        getcontext(&th[i].ctx);
        th[i].ctx.uc_stack.ss_sp = &stacks[(size_t)i * STACK];
        th[i].ctx.uc_stack.ss_size = STACK;
        th[i].ctx.uc_link = NULL;
        th[i].st = RUN;
        makecontext(&th[i].ctx, trampoline, 0);
    }
    for (;;) {
        if (order_mode == 2) // a fresh shuffle per phase
            for (int i = n - 1; i > 0; i--) {
                order_seed = order_seed * 1103515245u + 12345u;
                std::swap(ord[i], ord[(order_seed >> 8) % (unsigned)(i + 1)]);
            }
        bool ran = false;
        for (int k = 0; k < n; k++) {
            const int i = ord[k];
            if (th[i].st != RUN) continue;
            cur = i;
            set_idx(i);
            swapcontext(&sched, &th[i].ctx);
            ran = true;
        }
        if (ran) continue;
        // nobody runnable: open warp barriers whose live lanes all wait, else the block barrier
        bool opened = false;
        for (int w = 0; w < n; w += 32) {
            bool all = true, any = false;
            for (int i = w; i < n && i < w + 32; i++) {
                if (th[i].st == DONE) continue;
                any = true;
                all = all && th[i].st == AT_WARP;
            }
            if (any && all) {
                for (int i = w; i < n && i < w + 32; i++)
                    if (th[i].st == AT_WARP) th[i].st = RUN;
                opened = true;
            }
        }
        if (opened) continue;
        int live = 0, at_block = 0;
        for (int i = 0; i < n; i++) {
            live += th[i].st != DONE;
            at_block += th[i].st == AT_BLOCK;
        }
        if (!live) return;
        if (at_block == live) {
            for (int i = 0; i < n; i++)
                if (th[i].st == AT_BLOCK) th[i].st = RUN;
            continue;
        }
        fprintf(stderr, "emu: deadlock in block (%u, %u, %u): threads at different barriers\n",
                blockIdx.x, blockIdx.y, blockIdx.z);
        abort();
    }
}

void run_grid(dim3 grid, dim3 block, void (*body)(void *), void *arg) {
    const int n = (int)(block.x * block.y * block.z);
    if (n < 1 || n > 1024 || !grid.x || !grid.y || !grid.z || grid.y > 65535 || grid.z > 65535) {
        err_state = cudaErrorInvalidValue;
        return;
    }
    if (th.size() < (size_t)n) {
        th.resize(n);
        stacks.resize((size_t)n * STACK);
    }
    body_fn = body;
    body_arg = arg;
    blockDim = block;
    gridDim = grid;
    for (unsigned z = 0; z < grid.z; z++)
        for (unsigned y = 0; y < grid.y; y++)
            for (unsigned x = 0; x < grid.x; x++) {
                blockIdx = dim3(x, y, z);
                run_block(n);
            }
}
} // namespace emu

void emu_set_order(int mode, unsigned seed) {
    emu::order_mode = mode;
    emu::order_seed = seed;
}
