/*
 * Benchmark of the attention kernels on the GPU (not run by ctest):
 *  - prefill: causal bf16, 16 query heads, 8 KV heads, head_dim 128, batch 1, T = 1k, 4k,
 *    16k; ungated baseline vs headwise vs elementwise gate (the gate fused in the epilogue).
 *    TFLOP/s counts the causal half: 4 * T^2 * hd * heads / 2.
 *  - decode: one token against 4k and 32k cached tokens, batch 1, same heads; GB/s of K+V read.
 *  - the device-to-device copy bandwidth (read + write bytes) as the ceiling for decode.
 * Each figure is the median of repeats after warm-up, with L2 flushed (a 256 MiB memset)
 * before every timed call. Prints a markdown table. PyTorch's SDPA on the same shapes:
 * tools/bench_attention_torch.py.
 *
 * usage: bench_attention [--reps N] [--only prefill|decode] [--sweep]
 *   --sweep: also time decode with CTAs for 2-4 waves of the GPU (the split-count knob)
 *   --flush read: flush L2 by reading 256 MiB (clean lines, as after a decode step's weight
 *                 reads) instead of zeroing it (dirty lines, written back during the call)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime.h>

#include "bench_ceiling.h"
#include "kernels.h"

#define BA_CUDA(call)                                                                              \
    do {                                                                                           \
        cudaError_t e_ = (call);                                                                   \
        if (e_ != cudaSuccess) {                                                                   \
            fprintf(stderr, "bench_attention: %s failed at %s:%d: %s\n", #call, __FILE__,          \
                    __LINE__, cudaGetErrorString(e_));                                             \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)
#define BA_OK(call)                                                                                \
    do {                                                                                           \
        ga_err err_ = {{0}};                                                                       \
        if ((call) != GA_OK) {                                                                     \
            fprintf(stderr, "bench_attention: %s: %s\n", #call, err_.msg);                         \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

#define BA_FLUSH_BYTES ((size_t)256 << 20)
#define BA_HEADS 16
#define BA_KV 8
#define BA_HD 128

typedef struct ba_ctx {
    int n_sm;
    int flush_read; /* flush L2 by reading the buffer (clean lines) instead of a memset */
    unsigned *sink; /* the read flush's output word */
    cudaStream_t st;
    cudaEvent_t e0, e1;
    void *flush;
} ba_ctx;

static uint16_t ba_f2bf(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

/* Fills n bf16 with N(0, std^2) values: a 1M-value random block, tiled. */
static void ba_fill(void *dev, size_t n, float std, uint64_t seed) {
    const size_t blk = (size_t)1 << 20;
    uint16_t *h = malloc(blk * 2);
    uint64_t s = seed;
    for (size_t i = 0; i < blk; i += 2) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        double u1 = ((s >> 11) + 1.0) / 9007199254740993.0;
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        double u2 = (s >> 11) / 9007199254740992.0;
        double r = sqrt(-2.0 * log(u1));
        h[i] = ba_f2bf((float)(std * r * cos(2 * M_PI * u2)));
        h[i + 1] = ba_f2bf((float)(std * r * sin(2 * M_PI * u2)));
    }
    for (size_t off = 0; off < n; off += blk) {
        size_t m = n - off < blk ? n - off : blk;
        BA_CUDA(cudaMemcpy((uint16_t *)dev + off, h, m * 2, cudaMemcpyHostToDevice));
    }
    free(h);
}

static int ba_cmp(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* Count of bf16 NaN/Inf in a device buffer (a quick sanity check of the timed output). */
static size_t ba_nonfinite(const void *dev, size_t n) {
    uint16_t *h = malloc(n * 2);
    BA_CUDA(cudaMemcpy(h, dev, n * 2, cudaMemcpyDeviceToHost));
    size_t bad = 0;
    for (size_t i = 0; i < n; i++)
        bad += (h[i] & 0x7f80u) == 0x7f80u;
    free(h);
    return bad;
}

/* One launch of the kernel being timed (the prefill or the decode launcher). */
typedef ga_status (*ba_launch)(const void *args, cudaStream_t stream, ga_err *err);

static ga_status ba_launch_prefill(const void *a, cudaStream_t st, ga_err *err) {
    return ga_attention_prefill(a, st, err);
}

static ga_status ba_launch_decode(const void *a, cudaStream_t st, ga_err *err) {
    return ga_attention_decode(a, st, err);
}

/* The plain read of the decode case's K and V bytes (bench_ceiling.cu). */
typedef struct ba_ceiling_args {
    const void *k, *v;
    size_t bytes; /* of each */
    unsigned *sink;
    int n_sm;
} ba_ceiling_args;

static ga_status ba_launch_ceiling(const void *p, cudaStream_t st, ga_err *err) {
    const ba_ceiling_args *a = p;
    cudaError_t e = ba_read_ceiling(a->k, a->bytes, a->v, a->bytes, a->sink, a->n_sm, 1, st);
    if (e != cudaSuccess)
        return ga_err_set(err, GA_ERR_CUDA, "the read-ceiling kernel: %s", cudaGetErrorString(e));
    return GA_OK;
}

/* Median of reps event-timed launches after 3 warm-ups, with L2 flushed before each. */
static float ba_time(ba_ctx *c, ba_launch launch, const void *args, int reps) {
    float *ms = malloc(sizeof(float) * (size_t)reps);
    for (int i = 0; i < 3; i++)
        BA_OK(launch(args, c->st, &err_));
    for (int i = 0; i < reps; i++) {
        if (c->flush_read)
            BA_CUDA(
                ba_read_ceiling(c->flush, BA_FLUSH_BYTES, c->flush, 0, c->sink, c->n_sm, 0, c->st));
        else
            BA_CUDA(cudaMemsetAsync(c->flush, i & 0xff, BA_FLUSH_BYTES, c->st));
        BA_CUDA(cudaEventRecord(c->e0, c->st));
        BA_OK(launch(args, c->st, &err_));
        BA_CUDA(cudaEventRecord(c->e1, c->st));
        BA_CUDA(cudaEventSynchronize(c->e1));
        BA_CUDA(cudaEventElapsedTime(&ms[i], c->e0, c->e1));
    }
    qsort(ms, (size_t)reps, sizeof(float), ba_cmp);
    float med = ms[reps / 2];
    free(ms);
    return med;
}

static void ba_prefill(ba_ctx *c, int T, int reps) {
    const size_t nq = (size_t)T * BA_HEADS * BA_HD, nkv = (size_t)BA_KV * T * BA_HD;
    void *q, *k, *v, *out, *gh, *ge;
    BA_CUDA(cudaMalloc(&q, nq * 2));
    BA_CUDA(cudaMalloc(&k, nkv * 2));
    BA_CUDA(cudaMalloc(&v, nkv * 2));
    BA_CUDA(cudaMalloc(&out, nq * 2));
    BA_CUDA(cudaMalloc(&gh, (size_t)T * BA_HEADS * 2));
    BA_CUDA(cudaMalloc(&ge, nq * 2));
    ba_fill(q, nq, 1.0f, 1);
    ba_fill(k, nkv, 1.0f, 2);
    ba_fill(v, nkv, 1.0f, 3);
    ba_fill(gh, (size_t)T * BA_HEADS, 2.0f, 4);
    ba_fill(ge, nq, 2.0f, 5);
    const double flops = 4.0 * T * (double)T * BA_HD * BA_HEADS / 2.0;
    static const char *const names[] = {"baseline", "headwise gate", "elementwise gate"};
    static const char *const impls[] = {"auto", "mma.sync", "wgmma+TMA"};
    /* the portable kernel, then the Hopper one where it runs (AUTO picks it there) */
    const int n_impl = ga_attention_prefill_sm90_usable(BA_HD) ? 2 : 1;
    for (int ii = 0; ii < n_impl; ii++)
        for (int mode = 0; mode < 3; mode++) {
            ga_attn_prefill_args a = {.q = q,
                                      .k = k,
                                      .v = v,
                                      .gate = mode == 1   ? gh
                                              : mode == 2 ? ge
                                                          : NULL,
                                      .out = out,
                                      .lse = NULL,
                                      .T = T,
                                      .pos0 = 0,
                                      .n_heads = BA_HEADS,
                                      .n_kv_heads = BA_KV,
                                      .hd = BA_HD,
                                      .kv_stride = T,
                                      .gate_mode = (ga_gate_mode)mode,
                                      .scale = 1.0f / sqrtf((float)BA_HD),
                                      .impl = ii == 0 ? GA_ATTN_IMPL_MMA : GA_ATTN_IMPL_WGMMA};
            BA_CUDA(cudaMemset(out, 0xFF, nq * 2));
            float ms = ba_time(c, ba_launch_prefill, &a, reps);
            size_t bad = ba_nonfinite(out, nq);
            printf("| prefill %s | %d | %s | %.3f | %.1f TFLOP/s |%s\n", impls[a.impl], T,
                   names[mode], ms, flops / (ms * 1e-3) / 1e12, bad ? " NON-FINITE OUTPUT" : "");
        }
    cudaFree(q);
    cudaFree(k);
    cudaFree(v);
    cudaFree(out);
    cudaFree(gh);
    cudaFree(ge);
}

static void ba_decode(ba_ctx *c, int L, int reps, int sweep) {
    const size_t nkv = (size_t)BA_KV * L * BA_HD, nq = (size_t)BA_HEADS * BA_HD;
    void *q, *k, *v, *out, *gh;
    int *slots, *lens;
    float *work;
    unsigned *counters;
    const size_t cbytes = ga_attention_decode_counters(1, BA_HEADS, BA_KV);
    BA_CUDA(cudaMalloc(&q, nq * 2));
    BA_CUDA(cudaMalloc(&k, nkv * 2));
    BA_CUDA(cudaMalloc(&v, nkv * 2));
    BA_CUDA(cudaMalloc(&out, nq * 2));
    BA_CUDA(cudaMalloc(&gh, BA_HEADS * 2));
    BA_CUDA(cudaMalloc((void **)&slots, sizeof(int)));
    BA_CUDA(cudaMalloc((void **)&lens, sizeof(int)));
    BA_CUDA(cudaMalloc((void **)&work, ga_attention_decode_workspace(1, BA_HEADS, BA_HD, L)));
    BA_CUDA(cudaMalloc((void **)&counters, cbytes));
    BA_CUDA(cudaMemset(counters, 0, cbytes)); /* once: every launch leaves them zero */
    ba_fill(q, nq, 1.0f, 6);
    ba_fill(k, nkv, 1.0f, 7);
    ba_fill(v, nkv, 1.0f, 8);
    ba_fill(gh, BA_HEADS, 2.0f, 9);
    int zero = 0;
    BA_CUDA(cudaMemcpy(slots, &zero, sizeof(int), cudaMemcpyHostToDevice));
    BA_CUDA(cudaMemcpy(lens, &L, sizeof(int), cudaMemcpyHostToDevice));
    const double bytes = 2.0 * nkv * 2;
    for (int mode = 0; mode < 2; mode++) {
        ga_attn_decode_args a = {.q = q,
                                 .k_cache = k,
                                 .v_cache = v,
                                 .slots = slots,
                                 .kv_lens = lens,
                                 .gate = mode ? gh : NULL,
                                 .out = out,
                                 .work = work,
                                 .counters = counters,
                                 .B = 1,
                                 .n_heads = BA_HEADS,
                                 .n_kv_heads = BA_KV,
                                 .hd = BA_HD,
                                 .kv_stride = L,
                                 .max_kv_len = L,
                                 .gate_mode = (ga_gate_mode)mode,
                                 .scale = 1.0f / sqrtf((float)BA_HD)};
        BA_CUDA(cudaMemset(out, 0xFF, nq * 2));
        float ms = ba_time(c, ba_launch_decode, &a, reps);
        size_t bad = ba_nonfinite(out, nq);
        printf("| decode | %d | %s | %.4f | %.0f GB/s |%s\n", L,
               mode ? "headwise gate" : "baseline", ms, bytes / (ms * 1e-3) / 1e9,
               bad ? " NON-FINITE OUTPUT" : "");
        /* the split count's alternatives: CTAs for 2, 3 and 4 waves of the GPU */
        for (int w = 2; sweep && mode == 0 && w <= 4; w++) {
            a.waves = w;
            ms = ba_time(c, ba_launch_decode, &a, reps);
            printf("| decode | %d | baseline, %d waves | %.4f | %.0f GB/s |\n", L, w, ms,
                   bytes / (ms * 1e-3) / 1e9);
            a.waves = 0;
        }
    }
    /* The same bytes through a kernel that only reads them: what any decode kernel could
     * reach under this timing method. */
    ba_ceiling_args ca = {
        .k = k, .v = v, .bytes = nkv * 2, .sink = (unsigned *)work, .n_sm = c->n_sm};
    float ms = ba_time(c, ba_launch_ceiling, &ca, reps);
    printf("| read ceiling | %d | plain read of the same K+V bytes | %.4f | %.0f GB/s |\n", L, ms,
           bytes / (ms * 1e-3) / 1e9);
    cudaFree(q);
    cudaFree(k);
    cudaFree(v);
    cudaFree(out);
    cudaFree(gh);
    cudaFree(slots);
    cudaFree(lens);
    cudaFree(work);
    cudaFree(counters);
}

/* Device-to-device copy of 1 GiB: bytes read + written per second, the decode ceiling. */
static void ba_copy(ba_ctx *c) {
    const size_t n = (size_t)1 << 30;
    void *a, *b;
    BA_CUDA(cudaMalloc(&a, n));
    BA_CUDA(cudaMalloc(&b, n));
    BA_CUDA(cudaMemset(a, 1, n));
    float ms[10];
    for (int i = 0; i < 12; i++) {
        BA_CUDA(cudaEventRecord(c->e0, c->st));
        BA_CUDA(cudaMemcpyAsync(b, a, n, cudaMemcpyDeviceToDevice, c->st));
        BA_CUDA(cudaEventRecord(c->e1, c->st));
        BA_CUDA(cudaEventSynchronize(c->e1));
        if (i >= 2) BA_CUDA(cudaEventElapsedTime(&ms[i - 2], c->e0, c->e1));
    }
    qsort(ms, 10, sizeof(float), ba_cmp);
    printf("| copy | 1 GiB | device-to-device (read+write) | %.3f | %.0f GB/s |\n", ms[5],
           2.0 * n / (ms[5] * 1e-3) / 1e9);
    cudaFree(a);
    cudaFree(b);
}

int main(int argc, char **argv) {
    int reps = 20, sweep = 0, flush_read = 0;
    const char *only = "";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc)
            only = argv[++i];
        else if (strcmp(argv[i], "--sweep") == 0)
            sweep = 1;
        else if (strcmp(argv[i], "--flush") == 0 && i + 1 < argc)
            flush_read = strcmp(argv[++i], "read") == 0;
    }
    const int do_prefill = strcmp(only, "decode") != 0, do_decode = strcmp(only, "prefill") != 0;
    if (reps < 1) reps = 1;
    int ndev = 0;
    if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev == 0) {
        printf("bench_attention: no CUDA GPU\n");
        return 77;
    }
    struct cudaDeviceProp prop;
    BA_CUDA(cudaGetDeviceProperties(&prop, 0));
    ba_ctx c = {.n_sm = prop.multiProcessorCount, .flush_read = flush_read};
    BA_CUDA(cudaMalloc((void **)&c.sink, sizeof(unsigned)));
    BA_CUDA(cudaStreamCreate(&c.st));
    BA_CUDA(cudaEventCreate(&c.e0));
    BA_CUDA(cudaEventCreate(&c.e1));
    BA_CUDA(cudaMalloc(&c.flush, BA_FLUSH_BYTES));
    printf("gattn attention kernels on %s (sm_%d%d, %d SMs); heads %d/%d, head_dim %d, batch 1, "
           "median of %d, L2 flushed before each call by %s\n\n",
           prop.name, prop.major, prop.minor, prop.multiProcessorCount, BA_HEADS, BA_KV, BA_HD,
           reps, flush_read ? "reading 256 MiB" : "a 256 MiB memset");
    printf("| kernel | T / cache | variant | ms | rate |\n|---|---|---|---|---|\n");
    if (do_prefill) {
        ba_prefill(&c, 1024, reps);
        ba_prefill(&c, 4096, reps);
        ba_prefill(&c, 16384, reps > 10 ? 10 : reps);
    }
    if (do_decode) {
        ba_decode(&c, 4096, reps, sweep);
        ba_decode(&c, 32768, reps, sweep);
        ba_copy(&c);
    }
    cudaFree(c.flush);
    cudaFree(c.sink);
    cudaEventDestroy(c.e0);
    cudaEventDestroy(c.e1);
    cudaStreamDestroy(c.st);
    return 0;
}
