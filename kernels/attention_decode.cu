/*
 * Decode attention (ga_attention_decode): one new query token per row against a long KV
 * cache, split over the KV length (flash-decoding) so that a single sequence still fills the
 * GPU, with the sigmoid output gate applied where the result is stored. One kernel: the
 * splits are combined by the last CTA to finish, not by a second launch.
 *
 * Decode reads every cached K and V byte once and does almost no arithmetic per byte, so the
 * goal is the memory system's streaming rate. The design, and why:
 *  - Grid (B, n_kv * n_slabs, splits). A slab is up to DC_GS = 8 of the G query heads that
 *    share a KV head: they are the 8 columns of one m16n8k16 tile, so K and V are read once
 *    per slab (G > 8 is rare; each further slab re-reads K/V).
 *  - `splits` is chosen on the host to fill about one wave (SM count x CTAs per SM), from B,
 *    max_kv_len and the shapes only, never from the device-side kv_lens: decode steps are
 *    captured in CUDA graphs once per KV-length bucket and replayed as the sequences grow.
 *    Inside the kernel ns = min(splits, chunks of the row) CTAs take part (the others exit
 *    at once), so a short row uses fewer, not emptier, CTAs.
 *  - The ns CTAs of a unit take its chunks interleaved (CTA sp: chunks sp, sp + ns, ..), a
 *    fixed assignment, so each launch sums the same keys in the same order and results are
 *    bitwise reproducible (greedy decoding gives the same text run after run). Measured on
 *    an H200 (B = 1, 32k keys), CTAs stream at rates far enough apart that the last one
 *    finishes ~30% after the average one; claiming chunks dynamically from an atomic
 *    counter cut the kernel by ~11% with L2 cleaned by a read pass, made no difference in
 *    bench_attention (2846 against 2828 GB/s), and makes the summation order, hence the
 *    last bit, vary between runs. That variant stays a compile-time knob (GA_DC_DYNAMIC=1).
 *  - Each CTA walks its chunks of 64 keys through a DC_NST = 3 stage cp.async
 *    pipeline (K and V of a chunk per stage, 32 KiB at hd 128): two chunks are in flight
 *    while one is used, about 128 KiB per SM with 2 CTAs. Of 2-5 stages and 1-2 CTAs per SM
 *    this was the fastest on an H200 (one CTA per SM, even with 4-5 stages, was 20-25%
 *    slower). Keys past the row are zero-filled. hd 256 (Qwen3.5 / Qwen3-Next) keeps those
 *    bytes with 32-key chunks and 2 warps (dc_shape; not yet timed on an H200).
 *  - Tensor cores (mma.sync m16n8k16, bf16 in, fp32 accumulate) instead of the CUDA-core dot
 *    products first planned: at 3.4 TB/s an SM receives a 64-key hd-128 chunk every ~2.5k
 *    cycles per CTA pair, and scalar scores (16 lanes per key, shuffle reductions) plus a
 *    scalar P V for 8 heads cost ~1.5-2k instructions per warp per chunk with only 8 warps
 *    per SM to hide latency; the MMA form costs ~250. S = Q K^T uses Q as the A operand
 *    (rows 0..7 the slab's heads, rows 8..15 zero: the waste is cheap), which leaves S with
 *    the heads in rows, exactly the B fragment P^T of O^T = V^T P^T; the PV product then
 *    has the head dims in the 16 rows and the 8 heads in the columns, no padding.
 *  - Each warp owns 16 of every chunk's keys and keeps its own online softmax (running
 *    max and sum per head, base 2 with the scale folded in) and O^T accumulators, so the
 *    per-chunk softmax needs no shared-memory round trip and no extra barrier; the
 *    warps are merged once, at the end, through shared memory.
 *  - Shared rows are XOR-swizzled in 16-byte units (chunk c of row r at c ^ (r % 8)), so
 *    ldmatrix and the cp.async stores are conflict-free without padding: 3 stages stay at
 *    96 KiB (hd 128 and 256), which fits 2 CTAs per SM on sm_90 and the 99 KiB sm_86/89
 *    limit.
 *  - Fused combine: each CTA writes its split's (max, sum, unnormalised acc) per head to
 *    `work`, fences, and takes a ticket on a per-(row, KV head, slab) counter; the CTA that
 *    draws the last ticket reads the ns partials from L2 (__ldcg: never a stale L1 line),
 *    merges them with the usual rescaling, gates, stores bf16 and resets the ticket and the
 *    claim counter, so every launch (and graph replay) starts from zero. A row with one
 *    CTA skips `work` and the counters.
 *  - Paged KV cache (block_table non-NULL): each 16-byte copy of a key row looks its block
 *    up in the row's table (one cached int load and a division per key row per chunk); a
 *    key row is hd contiguous elements in either layout, so the pipeline, the swizzle and
 *    the summation order are unchanged and paged results equal slot results bitwise.
 */
#include <cuda_bf16.h>
#include <math.h>
#include <stdint.h>

#include "attention_common.cuh"
#include "cuda_check.h"
#include "kernels.h"
#include "launch_cache.cuh"

/* cp.async pipeline stages. A compile-time knob only so alternatives can be timed (-D);
 * shared memory per CTA is DC_NST x 2 x CH x hd x 2 bytes. */
#ifndef GA_DC_NST
#define GA_DC_NST 3
#endif
#define DC_NST GA_DC_NST
/* The CTA's shape per head dim: CH keys per pipeline chunk, CH / 16 warps (THREADS) of 16
 * keys each. hd 64 and 128: 64-key chunks, 4 warps. hd 256: 32-key chunks, 2 warps, so a
 * stage stays 32 KiB (as at hd 128) and 3 stages 96 KiB: 2 CTAs per SM on sm_90 with the
 * same bytes in flight per SM as hd 128 (2 CTAs x 2 chunks x 32 KiB), and under the 99 KiB
 * per block of sm_86/89. 64-key chunks at hd 256 would need 192 KiB (1 CTA per SM on sm_90,
 * which was 20-25% slower at hd 128, and over sm_80's 163 KiB). The 2 warps do the same
 * MMAs per byte as hd 128's 4 (twice the head dims per key, half the keys per chunk). */
template <int HD> struct dc_shape {
    static constexpr int CH = HD == 256 ? 32 : 64;
    static constexpr int THREADS = 2 * CH;
    static constexpr int WARPS = THREADS / 32;
    static_assert(WARPS * 16 == CH, "each warp takes 16 keys of a chunk");
};
#define DC_GS 8 /* query heads per slab: the n = 8 columns of the MMA */
/* At most one split (CTA of a unit) per DC_MIN_KEYS keys of max_kv_len (2 chunks at hd
 * 64/128, 4 at hd 256): fewer keys per CTA leave its pipeline nothing to overlap and add a
 * partial to combine. It also bounds the workspace without asking the device, so its size is
 * a pure function of the shapes (the same for every head dim). */
#define DC_MIN_KEYS 128
#define DC_FULL 0xffffffffu
/* Waves of CTAs a decode launch aims at by default (ga_attn_decode_args.waves overrides). */
#ifndef GA_DC_WAVES
#define GA_DC_WAVES 1
#endif
#define DC_MAX_WAVES 64 /* far past any useful value; keeps SMs x CTAs x waves in an int */
/* 1: CTAs claim chunks from an atomic counter (not bitwise reproducible); 0: fixed
 * interleaved shares (the default; see the head comment). */
#ifndef GA_DC_DYNAMIC
#define GA_DC_DYNAMIC 0
#endif

/* How K/V are brought through L2. They are read exactly once per step, so they are loaded
 * evict-first (they displace each other rather than whatever else L2 holds) with the
 * 256-byte L2 prefetch (a K/V row at hd 128 is 256 contiguous bytes). 0: the normal policy;
 * 1: evict-first; 2: evict-first + 256-byte prefetch. Measured on an H200 (bench_attention,
 * B = 1, L2 flushed by a 256 MiB memset before each call), 32k / 4k keys: 2834 / 1147 GB/s,
 * 2941 / 1165, 2952 / 1183. A compile-time knob so tools/gpu_attn.sh can time them. */
#ifndef GA_DC_L2HINT
#define GA_DC_L2HINT 2
#endif
static __device__ __forceinline__ uint64_t dc_stream_policy(void) {
    uint64_t pol = 0;
#if GA_DC_L2HINT
    asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;\n" : "=l"(pol));
#endif
    return pol;
}
/* ga_cp_async16 (16 bytes, zero-filled past src_bytes) with the L2 policy above. */
static __device__ __forceinline__ void dc_cp_async16(void *smem, const void *gmem, int src_bytes,
                                                     uint64_t pol) {
#if GA_DC_L2HINT == 2
    asm volatile(
        "cp.async.cg.shared.global.L2::cache_hint.L2::256B [%0], [%1], 16, %2, %3;\n" ::"r"(
            ga_smem_addr(smem)),
        "l"(gmem), "r"(src_bytes), "l"(pol)
        : "memory");
#elif GA_DC_L2HINT == 1
    asm volatile("cp.async.cg.shared.global.L2::cache_hint [%0], [%1], 16, %2, %3;\n" ::"r"(
                     ga_smem_addr(smem)),
                 "l"(gmem), "r"(src_bytes), "l"(pol)
                 : "memory");
#else
    (void)pol;
    ga_cp_async16(smem, gmem, src_bytes);
#endif
}

template <int HD> static constexpr size_t dc_smem_bytes(void) {
    return (size_t)DC_NST * 2 * dc_shape<HD>::CH * HD * sizeof(__nv_bfloat16);
}

static int dc_max_splits(int max_kv_len) {
    return GA_CEIL_DIV(max_kv_len, DC_MIN_KEYS);
}

/* About one full wave: slots (SMs x resident CTAs per SM) over the B x units CTAs of one
 * split, clamped to [1, dc_max_splits]. Host-side sizes only (see the head comment). */
static int dc_splits(int slots, int B, int units, int max_kv_len) {
    const int64_t ctas = (int64_t)B * units;
    const int64_t s = ((int64_t)slots + ctas - 1) / ctas;
    const int smax = dc_max_splits(max_kv_len) < 65535 ? dc_max_splits(max_kv_len) : 65535;
    return s < 1 ? 1 : s > smax ? smax : (int)s;
}

/* The row's usable length: kv_lens[b] clamped to [0, the cache], so a bad length can never
 * read outside the cache (the session validates lengths beforehand). */
static __device__ __forceinline__ int dc_row_len(const int *kv_lens, int b, int kv_stride) {
    return min(max(kv_lens[b], 0), kv_stride);
}

/* Element offset of 8-element chunk c of row r in a swizzled (rows, HD) bf16 tile. */
template <int HD> static __device__ __forceinline__ int dc_swz(int r, int c) {
    return r * HD + ((c ^ (r & 7)) << 3);
}

/* A partial softmax result over some keys: max m (scaled base-2 scores), sum l and the
 * unnormalised output columns a, both relative to 2^m. No keys: m = -inf, l = 0, a = 0. */
struct dc_part {
    float m, l;
    float4 a;
};

static __device__ __forceinline__ dc_part dc_part_empty(void) {
    dc_part p;
    p.m = -INFINITY;
    p.l = 0.0f;
    p.a = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    return p;
}

/* p <- p merged with the partial (m, l, a): both rescaled to the larger max. An empty side
 * contributes nothing, and two empty sides stay empty (no -inf - -inf). */
static __device__ __forceinline__ void dc_merge(dc_part &p, float m, float l, float4 a) {
    const float mn = fmaxf(p.m, m);
    const float mu = mn == -INFINITY ? 0.0f : mn;
    const float c = exp2f(p.m - mu), w = exp2f(m - mu);
    p.l = p.l * c + l * w;
    p.a.x = p.a.x * c + a.x * w;
    p.a.y = p.a.y * c + a.y * w;
    p.a.z = p.a.z * c + a.z * w;
    p.a.w = p.a.w * c + a.w * w;
    p.m = mn;
}

/* Gated bf16 store of out[d..d+3] = acc * inv * sigmoid(gate) of head h of row b. */
template <int HD>
static __device__ __forceinline__ void dc_store(__nv_bfloat16 *out, const __nv_bfloat16 *gate,
                                                int gate_mode, int b, int h, int n_heads, int d,
                                                float4 acc, float inv) {
    const float2 g0 = ga_gate_pair(gate, gate_mode, b, h, n_heads, HD, d);
    const float2 g1 = ga_gate_pair(gate, gate_mode, b, h, n_heads, HD, d + 2);
    uint32_t *o = reinterpret_cast<uint32_t *>(out + ((int64_t)b * n_heads + h) * HD + d);
    o[0] = ga_pack_bf16(acc.x * inv * g0.x, acc.y * inv * g0.y);
    o[1] = ga_pack_bf16(acc.z * inv * g1.x, acc.w * inv * g1.y);
}

/* Merges into p the splits s0, s0 + step, .. < ns of 4 columns of one head (acc and ml
 * point at split 0): CB splits' loads are all issued before any is used, so a batch costs
 * one L2 latency, not CB. L2 reads (__ldcg): the other CTAs' partials, never a stale L1. */
template <int CB>
static __device__ __forceinline__ void
dc_merge_splits(dc_part &p, const float *acc, const float *ml, int hd, int s0, int step, int ns) {
    for (int sb = s0; sb < ns; sb += CB * step) {
        float2 mv[CB];
        float4 av[CB];
#pragma unroll
        for (int j = 0; j < CB; j++) {
            const int s = sb + j * step;
            mv[j] = make_float2(-INFINITY, 0.0f);
            av[j] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
            if (s < ns) {
                mv[j] = __ldcg(reinterpret_cast<const float2 *>(ml + 2 * s));
                av[j] = __ldcg(reinterpret_cast<const float4 *>(acc + (int64_t)s * hd));
            }
        }
#pragma unroll
        for (int j = 0; j < CB; j++)
            dc_merge(p, mv[j].x, mv[j].y, av[j]);
    }
}

/* work_acc: (B, n_heads, splits, HD) and work_ml: (B, n_heads, splits, 2) = (max, sum), fp32;
 * only the splits s < ns of a row are written and read. */
template <int HD>
__global__ void __launch_bounds__(dc_shape<HD>::THREADS, HD == 64 ? 4 : 2)
    k_attn_decode(const __nv_bfloat16 *__restrict__ q, const __nv_bfloat16 *__restrict__ k_cache,
                  const __nv_bfloat16 *__restrict__ v_cache, const int *__restrict__ slots,
                  const int *__restrict__ kv_lens, const __nv_bfloat16 *__restrict__ gate,
                  __nv_bfloat16 *__restrict__ out, float *__restrict__ work_acc,
                  float *__restrict__ work_ml, unsigned *__restrict__ counters, int n_heads,
                  int n_kv, int G, int n_slabs, int kv_stride, int gate_mode, float scale_log2,
                  const int *__restrict__ tables, int tab_stride, int block_size, int len_cap) {
    constexpr int CH = dc_shape<HD>::CH, NTHR = dc_shape<HD>::THREADS, NW = dc_shape<HD>::WARPS;
    constexpr int CPR = HD / 8;        /* 16-byte chunks per row */
    constexpr int RSTEP = NTHR / CPR;  /* rows between one thread's copies */
    constexpr int KC = HD / 16;        /* k-steps of Q K^T; also the 16-dim m-tiles of V^T P^T */
    constexpr int STAGE = 2 * CH * HD; /* K then V of one chunk, bf16 elements */
    constexpr int OP = HD + 4; /* fp32 row pitch of the merge buffer (conflict-free stores) */
    constexpr int Q4 = HD / 4; /* float4 columns of a head */
    static_assert(RSTEP >= 1 && CH % RSTEP == 0, "a chunk is a whole number of copy rounds");
    static_assert((NW * DC_GS * OP + 2 * NW * DC_GS) * sizeof(float) <= dc_smem_bytes<HD>(),
                  "the merge buffer reuses the pipeline stages");
    extern __shared__ __align__(16) unsigned char dc_smem[];
    __nv_bfloat16 *sKV = reinterpret_cast<__nv_bfloat16 *>(dc_smem);
    __shared__ int s_last;

    const int b = blockIdx.x, hk = blockIdx.y / n_slabs, slab = blockIdx.y % n_slabs;
    const int sp = blockIdx.z, splits = gridDim.z;
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
    const int g = lane >> 2, c4 = lane & 3; /* MMA fragment row / column pair */
    const int h0 = hk * G + slab * DC_GS;   /* first query head of the slab */
    const int gs = min(DC_GS, G - slab * DC_GS);
    const int len = dc_row_len(kv_lens, b, len_cap);
    if (len == 0) { /* an empty row (rejected upstream) stores zeros rather than garbage */
        if (sp == 0) {
            uint32_t *ob = reinterpret_cast<uint32_t *>(out + ((int64_t)b * n_heads + h0) * HD);
            for (int i = tid; i < gs * HD / 2; i += NTHR)
                ob[i] = 0u;
        }
        return;
    }
    /* The ns CTAs of a unit (row, KV head, slab) share its nch chunks of CH keys: CTA sp
     * takes chunks sp, sp + ns, .. (or, with GA_DC_DYNAMIC, only its first DC_NST-1 of
     * those and then claims one at a time from the unit's work counter; see the head
     * comment). Softmax partials do not care which keys they cover. A chunk index < 0 ends
     * the sequence (it stays < 0). */
    const int nch = GA_CEIL_DIV(len, CH);
    const int ns = min(splits, nch); /* CTAs taking part, each with at least one chunk */
    if (sp >= ns) return;
    const int64_t cidx = (int64_t)b * gridDim.y + blockIdx.y;
    unsigned *ticket = counters + 2 * cidx, *claim = ticket + 1;
    const int dyn0 = (DC_NST - 1) * ns; /* first dynamically claimed chunk */
    auto fixed_chunk = [&](int j) { return sp + j * ns < nch ? sp + j * ns : -1; };
    /* Slots: the row's keys are contiguous from base. Paged: key j sits in block
     * tab[j / block_size] at row j % block_size, (block, KV head) tiles of block_size keys. */
    const int *tab = tables ? tables + (int64_t)b * tab_stride : nullptr;
    const int64_t base = tab ? 0 : ((int64_t)slots[b] * n_kv + hk) * kv_stride * HD;
    const __nv_bfloat16 *kb = k_cache + base;
    const __nv_bfloat16 *vb = v_cache + base;
    auto key_off = [&](int key) -> int64_t {
        if (!tab) return (int64_t)key * HD;
        const int blk = __ldg(tab + key / block_size);
        return (((int64_t)blk * n_kv + hk) * block_size + key % block_size) * HD;
    };

    /* Chunk c -> stage `st`. A thread copies the same 16-byte column of rows lr, lr + RSTEP,
     * ..; keys at or past len are zero-filled, not read. When RSTEP is a multiple of 8
     * (hd 64, 128) those rows share their swizzle, so one offset serves them all; at hd 256
     * (RSTEP 2) each row's is computed (unrolled: 4 distinct XORs). */
    const int lr = tid / CPR, lc = tid % CPR;
    const uint64_t l2pol = dc_stream_policy();
    const int dst0 = dc_swz<HD>(lr, lc);
    auto load_chunk = [&](int c, int st) {
        __nv_bfloat16 *sK = sKV + st * STAGE;
        __nv_bfloat16 *sV = sK + CH * HD;
        const int key0 = c * CH + lr;
#pragma unroll
        for (int j = 0; j < CH / RSTEP; j++) {
            const int key = key0 + j * RSTEP;
            const bool ok = key < len;
            const int64_t src = ok ? key_off(key) + lc * 8 : 0;
            if constexpr (RSTEP % 8 == 0) {
                dc_cp_async16(sK + dst0 + j * RSTEP * HD, kb + src, ok ? 16 : 0, l2pol);
                dc_cp_async16(sV + dst0 + j * RSTEP * HD, vb + src, ok ? 16 : 0, l2pol);
            } else {
                const int dst = dc_swz<HD>(lr + j * RSTEP, lc);
                dc_cp_async16(sK + dst, kb + src, ok ? 16 : 0, l2pol);
                dc_cp_async16(sV + dst, vb + src, ok ? 16 : 0, l2pol);
            }
        }
    };
    /* The claimed chunk indices pass through a ring in shared memory: the chunk of
     * iteration i sits in s_ring[i % (DC_NST + 1)], written by thread 0 one iteration
     * before its loads are issued (NST + 1 slots: the slot it overwrites belongs to the
     * chunk of the previous iteration, which every thread has finished with). */
    __shared__ int s_ring[DC_NST + 1];
    /* Claims the chunk of iteration j (>= DC_NST-1) if the sequence has not ended; an
     * atomic's result is only stored after this iteration's math, so its latency hides. */
    auto claim_next = [&](int j, bool more) -> int { /* the chunk of iteration j */
                                                     if (!more) return -1;
                                                     if (!GA_DC_DYNAMIC || ns == 1)
                                                         return fixed_chunk(j);
                                                     const unsigned v = atomicAdd(claim, 1u);
                                                     return (int64_t)dyn0 + v < nch ? dyn0 + (int)v
                                                                                    : -1;
    };
    int next = 0; /* thread 0: the chunk of the iteration after next */
    if (tid == 0) next = claim_next(DC_NST - 1, fixed_chunk(DC_NST - 2) >= 0);
#pragma unroll
    for (int j = 0; j < DC_NST - 1; j++) {
        const int c = fixed_chunk(j);
        if (c >= 0) load_chunk(c, j);
        ga_cp_async_commit(); /* possibly empty: one group per iteration, always */
    }
    if (tid == 0) s_ring[(DC_NST - 1) % (DC_NST + 1)] = next;

    /* Q as the A fragment (rows = heads, cols = dims): a0 (head g, dims 16kc + 2c4, +1),
     * a2 (head g, dims 16kc + 8 + 2c4, +1); rows 8..15 (a1, a3) and heads past the slab are
     * zero. bf16 as given: the scale is applied to the fp32 scores. */
    uint32_t qf[KC][2];
    {
        const uint32_t *qrow = reinterpret_cast<const uint32_t *>(
            q + ((int64_t)b * n_heads + h0 + min(g, gs - 1)) * HD);
#pragma unroll
        for (int kc = 0; kc < KC; kc++) {
            qf[kc][0] = g < gs ? qrow[kc * 8 + c4] : 0u;
            qf[kc][1] = g < gs ? qrow[kc * 8 + 4 + c4] : 0u;
        }
    }

    /* O^T accumulators: o[mt] = (dims 16mt + g, 16mt + g + 8) x (heads 2c4, 2c4 + 1). */
    float o[KC][4];
#pragma unroll
    for (int mt = 0; mt < KC; mt++)
        o[mt][0] = o[mt][1] = o[mt][2] = o[mt][3] = 0.0f;
    float m_run = -INFINITY; /* head g: running max of the scaled base-2 scores */
    float l_run = 0.0f;      /* head g: this lane's share of the running sum */

    /* ldmatrix row addresses: lanes 8m..8m+7 address matrix m = (keys +0..7 | +8..15) x
     * (dims +0..7 | +8..15) as keys +8*(m/2), dims +8*(m%2). The same addresses serve K
     * (plain: the B fragments of two 8-key n-tiles) and V (transposed: the A fragment of
     * V^T). lrow % 8 == lane % 8 is the row's swizzle. */
    const int lrow = warp * 16 + (lane & 7) + ((lane >> 4) << 3);
    const int lhalf = (lane >> 3) & 1;

    for (int i = 0;; i++) {
        ga_cp_async_wait<DC_NST - 2>(); /* this thread's copies of chunk i have landed */
        __syncthreads(); /* everyone's have; and stage (i-1) % DC_NST is no longer read */
        const int c = i < DC_NST - 1 ? fixed_chunk(i) : s_ring[i % (DC_NST + 1)];
        if (c < 0) break; /* the same for every thread: read after the barrier */
        const int cn = s_ring[(i + DC_NST - 1) % (DC_NST + 1)];
        if (cn >= 0) load_chunk(cn, (i + DC_NST - 1) % DC_NST);
        ga_cp_async_commit();
        if (tid == 0) next = claim_next(i + DC_NST, cn >= 0);

        const __nv_bfloat16 *sK = sKV + (i % DC_NST) * STAGE;
        const __nv_bfloat16 *sV = sK + CH * HD;

        /* S = Q K^T for this warp's 16 keys: s[nt][0..1] = head g, keys 8nt + 2c4, +1
         * (s[nt][2..3] are the zero rows 8..15). */
        float s[2][4] = {{0.0f, 0.0f, 0.0f, 0.0f}, {0.0f, 0.0f, 0.0f, 0.0f}};
#pragma unroll
        for (int kc = 0; kc < KC; kc++) {
            uint32_t kf[4];
            ga_ldmatrix_x4(kf, sK + dc_swz<HD>(lrow, 2 * kc + lhalf));
            const uint32_t a[4] = {qf[kc][0], 0u, qf[kc][1], 0u};
            ga_mma_bf16(s[0], a, kf[0], kf[1]);
            ga_mma_bf16(s[1], a, kf[2], kf[3]);
        }
        const int key = c * CH + warp * 16 + 2 * c4;
#pragma unroll
        for (int nt = 0; nt < 2; nt++)
#pragma unroll
            for (int e = 0; e < 2; e++)
                if (key + 8 * nt + e >= len) s[nt][e] = -INFINITY;

        /* Online softmax of head g over these 16 keys; its 4 lanes (a quad) agree on the max.
         * A warp whose keys are all past the end keeps m = -inf: subtract 0 then, so exp2
         * gives 0 instead of NaN. */
        float mx = fmaxf(fmaxf(s[0][0], s[0][1]), fmaxf(s[1][0], s[1][1]));
        mx = fmaxf(mx, __shfl_xor_sync(DC_FULL, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(DC_FULL, mx, 2));
        const float m_new = fmaxf(m_run, mx * scale_log2); /* scale > 0 */
        const float m_use = m_new == -INFINITY ? 0.0f : m_new;
        const float alpha = exp2f(m_run - m_use);
        m_run = m_new;
        float p[2][2];
#pragma unroll
        for (int nt = 0; nt < 2; nt++)
#pragma unroll
            for (int e = 0; e < 2; e++)
                p[nt][e] = exp2f(fmaf(s[nt][e], scale_log2, -m_use));
        l_run = l_run * alpha + ((p[0][0] + p[0][1]) + (p[1][0] + p[1][1]));

        /* The accumulator columns are heads 2c4 and 2c4+1, whose alphas sit in lanes 8c4
         * and 8c4 + 4 (fragment rows g = 2c4, 2c4 + 1). */
        const float a_lo = __shfl_sync(DC_FULL, alpha, 8 * c4);
        const float a_hi = __shfl_sync(DC_FULL, alpha, 8 * c4 + 4);
        /* O^T += V^T P^T: the S fragment of head g is already P^T's B fragment (b0 keys
         * 2c4, +1 of n-tile 0; b1 of n-tile 1). P is rounded to bf16 for the MMA. */
        const uint32_t pb0 = ga_pack_bf16(p[0][0], p[0][1]);
        const uint32_t pb1 = ga_pack_bf16(p[1][0], p[1][1]);
#pragma unroll
        for (int mt = 0; mt < KC; mt++) {
            uint32_t vf[4];
            ga_ldmatrix_x4_trans(vf, sV + dc_swz<HD>(lrow, 2 * mt + lhalf));
            o[mt][0] *= a_lo;
            o[mt][1] *= a_hi;
            o[mt][2] *= a_lo;
            o[mt][3] *= a_hi;
            ga_mma_bf16(o[mt], vf, pb0, pb1);
        }
        if (tid == 0) s_ring[(i + DC_NST) % (DC_NST + 1)] = next;
    }

    /* Merge the warps through shared memory (the stages, now free). */
    ga_cp_async_wait<0>();
    __syncthreads();
    float *sO = reinterpret_cast<float *>(dc_smem); /* (NW, DC_GS, OP) */
    float *sM = sO + NW * DC_GS * OP;               /* (NW, DC_GS) */
    float *sL = sM + NW * DC_GS;                    /* (NW, DC_GS) */
    {
        float l = l_run;
        l += __shfl_xor_sync(DC_FULL, l, 1);
        l += __shfl_xor_sync(DC_FULL, l, 2);
        if (c4 == 0) {
            sM[warp * DC_GS + g] = m_run;
            sL[warp * DC_GS + g] = l;
        }
        float *ow = sO + warp * DC_GS * OP;
#pragma unroll
        for (int mt = 0; mt < KC; mt++) {
            ow[2 * c4 * OP + 16 * mt + g] = o[mt][0];
            ow[(2 * c4 + 1) * OP + 16 * mt + g] = o[mt][1];
            ow[2 * c4 * OP + 16 * mt + 8 + g] = o[mt][2];
            ow[(2 * c4 + 1) * OP + 16 * mt + 8 + g] = o[mt][3];
        }
    }
    __syncthreads();

    const bool direct = ns == 1; /* the only split of its row: store the output now */
    const int64_t row0 = (int64_t)b * n_heads + h0; /* (row, head) index of head 0 */
    for (int it = tid; it < gs * Q4; it += NTHR) {
        const int r = it / Q4, d = (it % Q4) * 4;
        float M = -INFINITY;
#pragma unroll
        for (int w = 0; w < NW; w++)
            M = fmaxf(M, sM[w * DC_GS + r]);
        const float Mu = M == -INFINITY ? 0.0f : M;
        float L = 0.0f;
        float4 acc = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
#pragma unroll
        for (int w = 0; w < NW; w++) {
            const float e = exp2f(sM[w * DC_GS + r] - Mu);
            const float4 v = *reinterpret_cast<const float4 *>(sO + (w * DC_GS + r) * OP + d);
            L += e * sL[w * DC_GS + r];
            acc.x += e * v.x;
            acc.y += e * v.y;
            acc.z += e * v.z;
            acc.w += e * v.w;
        }
        if (direct) {
            dc_store<HD>(out, gate, gate_mode, b, h0 + r, n_heads, d, acc,
                         L > 0.0f ? 1.0f / L : 0.0f);
        } else {
            const int64_t part = (row0 + r) * splits + sp;
            *reinterpret_cast<float4 *>(work_acc + part * HD + d) = acc;
            if (d == 0) *reinterpret_cast<float2 *>(work_ml + part * 2) = make_float2(M, L);
        }
    }
    if (direct) return;

    /* Publish this split, then take a ticket; the ns-th arrival combines. The barrier
     * orders every thread's stores before thread 0's fence and ticket (release), and the
     * last CTA's thread 0 fences after its ticket before the barrier that lets the others
     * read (acquire): the pattern of cooperative groups' grid sync. */
    __syncthreads();
    if (tid == 0) {
        __threadfence();
        const unsigned t = atomicAdd(ticket, 1u);
        s_last = t == (unsigned)(ns - 1);
        if (s_last) { /* all ns arrived, so no claim is in flight: zero for the next launch */
            *ticket = 0u;
            *claim = 0u;
            __threadfence();
        }
    }
    __syncthreads();
    if (!s_last) return;

    /* out = sum_s 2^(m_s - M) acc_s / sum_s 2^(m_s - M) l_s. Each thread merges its share
     * of the splits online (dc_merge: no global max needed first, so a single batch of
     * loads), and with few heads the splits are also spread over ng groups of threads that
     * are merged in shared memory: no thread walks the ns splits one L2 latency at a time. */
    const int items = gs * Q4;
    const int ng = items >= NTHR ? 1 : NTHR / items;
    if (ng == 1) {
        for (int it = tid; it < items; it += NTHR) {
            const int r = it / Q4, d = (it % Q4) * 4;
            dc_part p = dc_part_empty();
            dc_merge_splits<HD == 64 ? 8 : 32>(p, work_acc + (row0 + r) * splits * HD + d,
                                               work_ml + (row0 + r) * splits * 2, HD, 0, 1, ns);
            dc_store<HD>(out, gate, gate_mode, b, h0 + r, n_heads, d, p.a,
                         p.l > 0.0f ? 1.0f / p.l : 0.0f);
        }
    } else {
        float4 *sCa = reinterpret_cast<float4 *>(dc_smem); /* (ng, items) */
        float2 *sCml = reinterpret_cast<float2 *>(sCa + NTHR);
        const int grp = tid / items, it = tid % items;
        const int r = it / Q4, d = (it % Q4) * 4;
        dc_part p = dc_part_empty();
        if (grp < ng)
            dc_merge_splits<HD == 64 ? 8 : 32>(p, work_acc + (row0 + r) * splits * HD + d,
                                               work_ml + (row0 + r) * splits * 2, HD, grp, ng, ns);
        sCa[tid] = p.a;
        sCml[tid] = make_float2(p.m, p.l);
        __syncthreads();
        if (tid < items) {
            for (int j = 1; j < ng; j++) {
                const float2 v = sCml[j * items + tid];
                dc_merge(p, v.x, v.y, sCa[j * items + tid]);
            }
            dc_store<HD>(out, gate, gate_mode, b, h0 + r, n_heads, d, p.a,
                         p.l > 0.0f ? 1.0f / p.l : 0.0f);
        }
    }
}

extern "C" size_t ga_attention_decode_workspace(int B, int n_heads, int hd, int max_kv_len) {
    if (B < 1 || n_heads < 1 || hd < 1 || max_kv_len < 1) return 0;
    return (size_t)B * n_heads * dc_max_splits(max_kv_len) * (hd + 2) * sizeof(float);
}

extern "C" size_t ga_attention_decode_workspace_fixed(int B, int n_heads, int hd, int splits) {
    if (B < 1 || n_heads < 1 || hd < 1 || splits < 1 || splits > 65535) return 0;
    return (size_t)B * n_heads * splits * (hd + 2) * sizeof(float);
}

extern "C" size_t ga_attention_decode_counters(int B, int n_heads, int n_kv_heads) {
    if (B < 1 || n_heads < 1 || n_kv_heads < 1 || n_heads % n_kv_heads != 0) return 0;
    /* per (row, KV head, slab): the arrival ticket and the chunk claim counter */
    return (size_t)B * n_kv_heads * GA_CEIL_DIV(n_heads / n_kv_heads, DC_GS) * 2 * sizeof(unsigned);
}

static int dc_misaligned(const void *p, uintptr_t align) {
    return ((uintptr_t)p & (align - 1)) != 0;
}

template <int HD>
static ga_status dc_launch(const ga_attn_decode_args *a, int G, int n_slabs, cudaStream_t stream,
                           ga_err *err) {
    auto kern = k_attn_decode<HD>;
    constexpr size_t smem = dc_smem_bytes<HD>();
    const int n_sm = a->devinfo->n_sm, optin = a->devinfo->smem_optin;
    int per_sm = 0;
    if (smem > (size_t)optin)
        return ga_err_set(err, GA_ERR_UNSUPPORTED,
                          "attention decode: needs %zu bytes of shared memory per block, the GPU "
                          "allows %d",
                          smem, optin);
    /* Over the 48 KiB default: opt in, and ask for the largest shared-memory carveout (L1 is
     * of no use here: cp.async.cg bypasses it). Function attributes, not stream operations,
     * so this is legal while a graph is being captured. Done once per device and kernel
     * (launch_cache.cuh: eager mixed serving steps launch this once a layer). */
    static ga_dev_cache setup;
    int dev = -1;
    per_sm = ga_dev_cache_get(setup, &dev);
    if (per_sm < 1) {
        GA_CUDA_CHECK(
            cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
        GA_CUDA_CHECK(cudaFuncSetAttribute(kern, cudaFuncAttributePreferredSharedMemoryCarveout,
                                           (int)cudaSharedmemCarveoutMaxShared));
        GA_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kern,
                                                                    dc_shape<HD>::THREADS, smem));
        if (per_sm < 1) per_sm = 1;
        ga_dev_cache_put(setup, dev, per_sm);
    }
    const int units = a->n_kv_heads * n_slabs;
    const int waves = a->waves > 0 ? a->waves : GA_DC_WAVES;
    /* Batch-invariant mode: a split count that no batch size, bucket or device changes. The
     * kernel gives a row ns = min(splits, its chunks) CTAs with a fixed chunk assignment and
     * combine order, so the row's sums then follow from its own length alone. */
    const int splits = a->fixed_splits > 0
                           ? a->fixed_splits
                           : dc_splits(n_sm * per_sm * waves, a->B, units, a->max_kv_len);
    float *work_acc = a->work;
    float *work_ml = a->work + (size_t)a->B * a->n_heads * splits * HD;
    const dim3 grid(a->B, units, splits);
    kern<<<grid, dc_shape<HD>::THREADS, smem, stream>>>(
        (const __nv_bfloat16 *)a->q, (const __nv_bfloat16 *)a->k_cache,
        (const __nv_bfloat16 *)a->v_cache, a->slots, a->kv_lens, (const __nv_bfloat16 *)a->gate,
        (__nv_bfloat16 *)a->out, work_acc, work_ml, a->counters, a->n_heads, a->n_kv_heads, G,
        n_slabs, a->kv_stride, (int)a->gate_mode, a->scale * GA_LOG2E, a->block_table,
        a->table_stride, a->block_size,
        a->block_table ? a->table_stride * a->block_size : a->kv_stride);
    GA_CUDA_CHECK_LAUNCH();
    return GA_OK;
}

extern "C" ga_status ga_attention_decode(const ga_attn_decode_args *a, cudaStream_t stream,
                                         ga_err *err) {
    if (!a || !a->q || !a->k_cache || !a->v_cache || (!a->slots && !a->block_table) ||
        !a->kv_lens || !a->out || !a->work)
        return ga_err_set(err, GA_ERR_ARG, "attention decode: NULL tensor");
    if (a->B < 1 || a->n_heads < 1 || a->n_kv_heads < 1 || a->max_kv_len < 1)
        return ga_err_set(err, GA_ERR_ARG,
                          "attention decode: bad sizes B=%d n_heads=%d n_kv_heads=%d "
                          "max_kv_len=%d",
                          a->B, a->n_heads, a->n_kv_heads, a->max_kv_len);
    if (a->n_heads % a->n_kv_heads != 0)
        return ga_err_set(err, GA_ERR_ARG,
                          "attention decode: n_heads %d is not a multiple of n_kv_heads %d",
                          a->n_heads, a->n_kv_heads);
    if (a->hd != 64 && a->hd != 128 && a->hd != 256)
        return ga_err_set(err, GA_ERR_UNSUPPORTED,
                          "attention decode: head_dim %d (supported: 64, 128, 256)", a->hd);
    if (a->block_table && (a->block_size < 1 || a->table_stride < 1 ||
                           (int64_t)a->table_stride * a->block_size > INT32_MAX ||
                           a->max_kv_len > a->table_stride * a->block_size))
        return ga_err_set(err, GA_ERR_ARG,
                          "attention decode: paged block_size %d x table_stride %d does not "
                          "hold max_kv_len %d",
                          a->block_size, a->table_stride, a->max_kv_len);
    if (!a->block_table && a->max_kv_len > a->kv_stride)
        return ga_err_set(err, GA_ERR_ARG,
                          "attention decode: max_kv_len %d exceeds the cache length %d",
                          a->max_kv_len, a->kv_stride);
    if (a->gate_mode != GA_GATE_NONE && a->gate_mode != GA_GATE_HEADWISE &&
        a->gate_mode != GA_GATE_ELEMENTWISE)
        return ga_err_set(err, GA_ERR_ARG, "attention decode: bad gate mode %d", (int)a->gate_mode);
    if ((a->gate_mode != GA_GATE_NONE) != (a->gate != NULL))
        return ga_err_set(err, GA_ERR_ARG,
                          "attention decode: gate must be given exactly when gate_mode != none");
    if (!(a->scale > 0.0f) || !isfinite(a->scale))
        return ga_err_set(err, GA_ERR_ARG, "attention decode: bad scale %g", (double)a->scale);
    if (a->waves < 0 || a->waves > DC_MAX_WAVES)
        return ga_err_set(err, GA_ERR_ARG, "attention decode: waves %d (0 = default, at most %d)",
                          a->waves, DC_MAX_WAVES);
    if (a->fixed_splits < 0 || a->fixed_splits > 65535)
        return ga_err_set(err, GA_ERR_ARG,
                          "attention decode: fixed_splits %d (0 = off, at most 65535)",
                          a->fixed_splits);
    if (!a->counters)
        return ga_err_set(err, GA_ERR_ARG,
                          "attention decode: NULL counters (ga_attention_decode_counters)");
    if (dc_misaligned(a->k_cache, 16) || dc_misaligned(a->v_cache, 16) || dc_misaligned(a->q, 4) ||
        dc_misaligned(a->out, 4) || dc_misaligned(a->gate, 4) || dc_misaligned(a->work, 16) ||
        dc_misaligned(a->counters, 4))
        return ga_err_set(err, GA_ERR_ARG,
                          "attention decode: caches/work must be 16-byte aligned, "
                          "q/out/gate/counters 4-byte");
    const int G = a->n_heads / a->n_kv_heads;
    const int n_slabs = GA_CEIL_DIV(G, DC_GS);
    if ((int64_t)a->n_kv_heads * n_slabs > 65535)
        return ga_err_set(err, GA_ERR_UNSUPPORTED, "attention decode: grid too large");
    /* The device's attributes come with the args (queried once by the backend); a caller
     * without them (a test, a bench) pays for one query here. Not while a graph is captured:
     * the backend always passes them. */
    ga_attn_decode_args own;
    ga_cuda_devinfo queried;
    if (!a->devinfo) {
        ga_status st = ga_cuda_devinfo_query(&queried, err);
        if (st) return st;
        own = *a;
        own.devinfo = &queried;
        a = &own;
    }
    if (a->hd == 64) return dc_launch<64>(a, G, n_slabs, stream, err);
    if (a->hd == 128) return dc_launch<128>(a, G, n_slabs, stream, err);
    return dc_launch<256>(a, G, n_slabs, stream, err);
}
