/*
 * Temperature / top-k / top-p sampling on the device, one block per row of fp32 logits,
 * implementing src/engine/sampler.h's ga_sample_host exactly:
 *   p_i = expf((l_i - max) / T) (NaN -> 0), candidates ordered by (p desc, id asc), the first
 *   k kept (top_k 0 or >= vocab: all), then the shortest prefix whose running double sum
 *   reaches top_p * kept (0 < top_p < 1), then u = uniform(seed, stream, pos + 1) * kept' and
 *   the first candidate whose running sum exceeds u (the last one if rounding leaves none).
 *
 * The order (p desc, id asc) is that of the 64-bit key (bits(p) << 32) | (2^32-1 - id)
 * descending (p >= 0, so its float bits order like its value), and keys are unique. Two
 * paths:
 *  - k <= TK_SMALL (top-k sampling as used in practice): a radix select by counts finds the
 *    k-th key, the k candidates are gathered and sorted in shared memory, and one thread
 *    runs the host's loop over them in the host's order, so sums round identically;
 *  - larger k: radix descents over the key weighted by mass find the top-p cut and the
 *    drawn token without sorting; sums are then formed per bucket in another order than the
 *    host's, so a draw within ~1e-15 (relative) of a boundary may pick the neighbour.
 * Numerics: (l - max) and the division use round-to-nearest intrinsics (immune to
 * --use_fast_math), and exp is taken in double and rounded to float: equal to a correctly
 * rounded expf; glibc's expf (< 0.502 ulp) can differ in the last bit for rare inputs, which
 * moves a boundary by ~1e-7 of one token's probability. Those are the documented ties.
 */
#include <cuda_runtime.h>
#include <math.h>

#include "cuda_check.h"
#include "kernels.h"

#define TK_THREADS 512
#define TK_SMALL 1024
#define TK_NONE 0xFFFFFFFFFFFFFFFFull

typedef unsigned long long u64;

__device__ __forceinline__ double tk_uniform(u64 seed, u64 stream, u64 pos) {
    // Same bits as ga_sample_uniform (sampler.c): splitmix64 of a mix of the three.
    u64 z = seed ^ (stream * 0x9e3779b97f4a7c15ull) ^ (pos * 0xc2b2ae3d27d4eb4full);
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (double)(z >> 11) * (1.0 / 9007199254740992.0);
}

__device__ __forceinline__ float tk_prob(float l, float mx, float t) {
    const float x = __fdiv_rn(__fsub_rn(l, mx), t);
    const float v = (float)exp((double)x);
    return v == v ? v : 0.f; // NaN logits never get picked
}

__device__ __forceinline__ u64 tk_key(float p, int i) {
    return ((u64)__float_as_uint(p) << 32) | (u64)(0xFFFFFFFFu - (unsigned)i);
}
__device__ __forceinline__ float tk_key_p(u64 k) {
    return __uint_as_float((unsigned)(k >> 32));
}
__device__ __forceinline__ int tk_key_id(u64 k) {
    return (int)(0xFFFFFFFFu - (unsigned)(k & 0xFFFFFFFFull));
}

struct TkShared {
    double mass[256];
    unsigned cnt[256];
    double red[TK_THREADS / 32];
    u64 prefix;
    double before;
    int bucket_found;
    unsigned n_cand;
    u64 cand[TK_SMALL];
    float fred[TK_THREADS / 32];
    int ired[TK_THREADS / 32];
};

// Index of the largest logit (lowest index on ties, NaN never wins; 0 when all are NaN),
// as ga_argmax_f32.
__device__ int tk_argmax(const float *row, int V, TkShared &sh) {
    float bv = -INFINITY;
    int bi = 0x7fffffff;
    for (int i = threadIdx.x; i < V; i += blockDim.x) {
        const float v = row[i];
        if (v > bv || (v == bv && i < bi)) {
            bv = v;
            bi = i;
        }
    }
    for (int o = 16; o > 0; o >>= 1) {
        const float ov = __shfl_xor_sync(0xffffffffu, bv, o);
        const int oi = __shfl_xor_sync(0xffffffffu, bi, o);
        if (ov > bv || (ov == bv && oi < bi)) {
            bv = ov;
            bi = oi;
        }
    }
    if ((threadIdx.x & 31) == 0) {
        sh.fred[threadIdx.x >> 5] = bv;
        sh.ired[threadIdx.x >> 5] = bi;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        for (int w = 1; w < (int)(blockDim.x >> 5); w++)
            if (sh.fred[w] > bv || (sh.fred[w] == bv && sh.ired[w] < bi)) {
                bv = sh.fred[w];
                bi = sh.ired[w];
            }
        // ga_argmax_f32 starts from index 0 with -inf and only moves on a strictly larger
        // value: a row of -inf/NaN keeps 0.
        sh.ired[0] = (bv > -INFINITY) ? bi : 0;
    }
    __syncthreads();
    const int r = sh.ired[0];
    __syncthreads();
    return r;
}

__device__ double tk_block_sum(double v, TkShared &sh) {
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    if ((threadIdx.x & 31) == 0) sh.red[threadIdx.x >> 5] = v;
    __syncthreads();
    if (threadIdx.x == 0) {
        double s = 0;
        for (int w = 0; w < (int)(blockDim.x >> 5); w++)
            s += sh.red[w];
        sh.red[0] = s;
    }
    __syncthreads();
    const double s = sh.red[0];
    __syncthreads();
    return s;
}

// The key of rank `rank` (1-based) in descending order among all keys (a radix select on
// counts, 8 bits a level). Every row element has a key, so the rank always exists.
__device__ u64 tk_select_rank(const float *p, int V, unsigned rank, TkShared &sh) {
    if (threadIdx.x == 0) sh.prefix = 0;
    unsigned before = 0; // meaningful in thread 0
    for (int shift = 56; shift >= 0; shift -= 8) {
        for (int d = threadIdx.x; d < 256; d += blockDim.x)
            sh.cnt[d] = 0;
        __syncthreads();
        const u64 prefix = sh.prefix;
        for (int base = 0; base < V; base += blockDim.x) {
            const int i = base + threadIdx.x;
            unsigned d = 256;
            if (i < V) {
                const u64 k = tk_key(p[i], i);
                if (shift == 56 || ((k ^ prefix) >> (shift + 8)) == 0)
                    d = (unsigned)(k >> shift) & 255u;
            }
            // Most keys share their top digits: count them once per warp, not per lane.
            const unsigned peers = __match_any_sync(0xffffffffu, d);
            if (d < 256 && (threadIdx.x & 31) == (unsigned)(__ffs(peers) - 1))
                atomicAdd(&sh.cnt[d], (unsigned)__popc(peers));
        }
        __syncthreads();
        if (threadIdx.x == 0) {
            int d = 255;
            for (; d > 0; d--) {
                if (before + sh.cnt[d] >= rank) break;
                before += sh.cnt[d];
            }
            sh.prefix = prefix | ((u64)d << shift);
        }
        __syncthreads();
    }
    const u64 r = sh.prefix;
    __syncthreads();
    return r;
}

// The first key (descending) among keys >= lo whose running mass, inclusive, is >= target
// (strict == false) or > target (strict == true); when rounding leaves none, the last key
// >= lo. *incl gets the running mass through the chosen key. A radix descent on mass: at
// each level the buckets of the current prefix are scanned from the top digit down.
__device__ u64 tk_select_mass(const float *p, int V, u64 lo, double target, bool strict,
                              double *incl, TkShared &sh) {
    if (threadIdx.x == 0) {
        sh.prefix = 0;
        sh.before = 0;
    }
    for (int shift = 56; shift >= 0; shift -= 8) {
        for (int d = threadIdx.x; d < 256; d += blockDim.x) {
            sh.mass[d] = 0;
            sh.cnt[d] = 0;
        }
        __syncthreads();
        const u64 prefix = sh.prefix;
        for (int i = threadIdx.x; i < V; i += blockDim.x) {
            const float pi = p[i];
            const u64 k = tk_key(pi, i);
            if (k < lo) continue;
            if (shift != 56 && ((k ^ prefix) >> (shift + 8)) != 0) continue;
            const unsigned d = (unsigned)(k >> shift) & 255u;
            atomicAdd(&sh.mass[d], (double)pi);
            atomicAdd(&sh.cnt[d], 1u);
        }
        __syncthreads();
        if (threadIdx.x == 0) {
            double before = sh.before;
            int pick = -1, last = -1;
            for (int d = 255; d >= 0; d--) {
                if (!sh.cnt[d]) continue;
                last = d;
                const double acc = before + sh.mass[d];
                if (strict ? acc > target : acc >= target) {
                    pick = d;
                    break;
                }
                before = acc;
            }
            if (pick < 0 && last < 0) {
                pick = 0; // unreachable: the range always holds a key
            } else if (pick < 0) {
                // None reaches the target: continue into the last bucket, whose last key is
                // the last key of the range (the host's fallback).
                pick = last;
                before -= sh.mass[last];
                target = INFINITY; // from here on, always descend to the last key
            }
            sh.before = before;
            sh.prefix = prefix | ((u64)pick << shift);
            sh.bucket_found = isinf(target) ? 0 : 1;
        }
        __syncthreads();
        if (!sh.bucket_found) target = INFINITY;
        __syncthreads();
    }
    const u64 r = sh.prefix;
    *incl = sh.before + (double)tk_key_p(r);
    __syncthreads();
    return r;
}

__global__ void __launch_bounds__(TK_THREADS)
    k_sample_topk(const float *__restrict__ logits, int V, ga_sampling sp,
                  const uint64_t *__restrict__ streams, const int *__restrict__ pos,
                  float *__restrict__ scratch, int32_t *__restrict__ out) {
    __shared__ TkShared sh;
    const float *row = logits + (size_t)blockIdx.x * V;
    float *p = scratch + (size_t)blockIdx.x * V;
    const float mx = row[tk_argmax(row, V, sh)];
    for (int i = threadIdx.x; i < V; i += blockDim.x)
        p[i] = tk_prob(row[i], mx, sp.temperature);
    __syncthreads();
    const int k = (sp.top_k > 0 && sp.top_k < V) ? sp.top_k : V;
    const bool use_p = sp.top_p > 0.0f && sp.top_p < 1.0f;
    const double u01 = tk_uniform(sp.seed, streams[blockIdx.x], (u64)pos[blockIdx.x] + 1);

    if (k <= TK_SMALL) {
        // Gather the k largest keys, sort them in shared memory, run the host's loop.
        const u64 lo = k < V ? tk_select_rank(p, V, (unsigned)k, sh) : 0;
        if (threadIdx.x == 0) sh.n_cand = 0;
        for (int i = threadIdx.x; i < TK_SMALL; i += blockDim.x)
            sh.cand[i] = 0; // sorts last
        __syncthreads();
        for (int i = threadIdx.x; i < V; i += blockDim.x) {
            const u64 key = tk_key(p[i], i);
            // exactly k keys are >= the k-th (keys are unique)
            if (key >= lo) sh.cand[atomicAdd(&sh.n_cand, 1u)] = key;
        }
        __syncthreads();
        // Bitonic sort, descending, of the first n2 >= k keys (the zero padding sorts last).
        int n2 = 2;
        while (n2 < k)
            n2 <<= 1;
        for (int size = 2; size <= n2; size <<= 1)
            for (int stride = size >> 1; stride > 0; stride >>= 1) {
                for (int i = threadIdx.x; i < n2; i += blockDim.x) {
                    const int j = i ^ stride;
                    if (j > i) {
                        const bool desc = (i & size) == 0;
                        const u64 a = sh.cand[i], b = sh.cand[j];
                        if (desc ? a < b : a > b) {
                            sh.cand[i] = b;
                            sh.cand[j] = a;
                        }
                    }
                }
                __syncthreads();
            }
        if (threadIdx.x == 0) {
            double kept = 0;
            for (int i = 0; i < k; i++)
                kept += tk_key_p(sh.cand[i]);
            int m = k;
            if (use_p) {
                double acc = 0;
                m = 0;
                while (m < k) {
                    acc += tk_key_p(sh.cand[m++]);
                    if (acc >= sp.top_p * kept) break;
                }
                kept = acc;
            }
            const double u = u01 * kept;
            double acc = 0;
            int pick = m - 1;
            for (int i = 0; i < m; i++) {
                acc += tk_key_p(sh.cand[i]);
                if (u < acc) {
                    pick = i;
                    break;
                }
            }
            out[blockIdx.x] = tk_key_id(sh.cand[pick]);
        }
        return;
    }

    // Large k: mass-weighted radix descents, no sort.
    const u64 lo = k < V ? tk_select_rank(p, V, (unsigned)k, sh) : 0;
    double part = 0;
    for (int i = threadIdx.x; i < V; i += blockDim.x)
        if (tk_key(p[i], i) >= lo) part += p[i];
    double kept = tk_block_sum(part, sh);
    u64 lo2 = lo;
    if (use_p) {
        double incl;
        lo2 = tk_select_mass(p, V, lo, (double)sp.top_p * kept, false, &incl, sh);
        kept = incl;
    }
    double incl;
    const u64 pick = tk_select_mass(p, V, lo2, u01 * kept, true, &incl, sh);
    if (threadIdx.x == 0) out[blockIdx.x] = tk_key_id(pick);
}

extern "C" size_t ga_sample_topk_scratch_bytes(int rows, int vocab) {
    return (size_t)(rows > 0 ? rows : 0) * (size_t)(vocab > 0 ? vocab : 0) * sizeof(float);
}

extern "C" ga_status ga_sample_topk(const float *logits, int rows, int vocab, const ga_sampling *sp,
                                    const uint64_t *streams, const int *pos, float *scratch,
                                    int32_t *out, cudaStream_t stream, ga_err *err) {
    if (rows < 0 || vocab <= 0 || !logits || !out)
        return ga_err_set(err, GA_ERR_ARG, "ga_sample_topk: bad arguments (rows %d, vocab %d)",
                          rows, vocab);
    if (rows == 0) return GA_OK;
    // Greedy per the definition: no temperature, or a single candidate.
    if (!sp || !(sp->temperature > 0.0f) || sp->top_k == 1)
        return ga_argmax(logits, rows, vocab, out, stream, err);
    if (!streams || !pos || !scratch)
        return ga_err_set(err, GA_ERR_ARG, "ga_sample_topk: streams, pos and scratch are needed");
    if (sp->top_k < 0 || !(sp->top_p == sp->top_p))
        return ga_err_set(err, GA_ERR_ARG, "ga_sample_topk: top_k %d / top_p %g out of range",
                          sp->top_k, (double)sp->top_p);
    k_sample_topk<<<rows, TK_THREADS, 0, stream>>>(logits, vocab, *sp, streams, pos, scratch, out);
    GA_CUDA_CHECK_LAUNCH();
    return GA_OK;
}
