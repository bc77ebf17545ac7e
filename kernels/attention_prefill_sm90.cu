/*
 * Causal GQA prefill attention for Hopper (sm_90a): wgmma tensor-core instructions fed by the
 * TMA copy engine, warp-specialised. Called through ga_attention_prefill (attention_prefill.cu),
 * which validates the arguments and picks this path on an sm_90 device for head_dim 128; the
 * portable mma.sync kernel there stays the path for every other card and shape.
 *
 * One CTA owns a 128-row query tile of one query head and 3 warpgroups:
 *  - warpgroup 0, the producer, gives its registers away (setmaxnreg) and one thread issues
 *    the TMA copies: the Q tile once, then K and V tiles of 128 keys into a 2-stage ring, each
 *    stage with a "full" mbarrier (the copy engine counts its bytes in) and an "empty" one
 *    (the consumers release it). K and V have separate barriers so Q K^T can start before V
 *    has landed.
 *  - warpgroups 1 and 2, the consumers, own 64 query rows each. S = Q K^T is one wgmma chain
 *    with Q and K read straight from shared memory (128-byte swizzle, the layout TMA writes);
 *    the online softmax runs on the S accumulators in registers (fp32, base 2, scale folded
 *    into the exponent); P is packed to bf16 in registers and O += P V is a second wgmma chain
 *    with P as the register A operand and V (row-major: keys x dims, i.e. "MN-major") read
 *    from shared memory with the transpose bit.
 *  - Within a consumer the two GEMMs of neighbouring tiles overlap: S_j = Q K_j^T and
 *    O += P_{j-1} V_{j-1} are issued back to back, then the softmax of S_j runs on the CUDA
 *    cores while the tensor cores finish P_{j-1} V_{j-1}. The two consumers also interleave.
 * The epilogue divides by the row sum, multiplies by sigmoid(gate) (headwise or elementwise)
 * and stores bf16, and writes the natural-log lse, exactly as the portable kernel does.
 *
 * Rows past T and keys past pos0+T are zero-filled by TMA (the tensor maps end there), so
 * nothing past the sequence is ever read from memory, and the causal mask covers those keys.
 */
#include <cuda.h> /* CUtensorMap and its enums (types only: the driver is reached via cudart) */
#include <cudaTypedefs.h>
#include <cuda_bf16.h>
#include <math.h>
#include <stdint.h>

#include "attention_common.cuh"
#include "cuda_check.h"
#include "kernels.h"
#include "launch_cache.cuh"

#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define W_SM90A_DEVICE 1
#endif

namespace {
constexpr int W_HD = 128, W_BM = 128, W_BN = 128, W_THREADS = 384;
/* One TMA box: 128 rows x 64 bf16 (the 128-byte swizzle span), 16 KiB. A 128-wide head is
 * two boxes side by side (dims 0-63, 64-127). */
constexpr uint32_t W_BOX = 128 * 64 * 2;
constexpr uint32_t W_TILE = 2 * W_BOX;            /* one Q, K or V tile: 32 KiB */
constexpr uint32_t W_OFF_BAR = W_TILE * 5;        /* Q, 2 K stages, 2 V stages, mbarriers */
constexpr size_t W_SMEM = W_OFF_BAR + 128 + 1024; /* + slack to align the base to 1 KiB */
} // namespace

#ifdef W_SM90A_DEVICE
constexpr uint32_t W_OFF_Q = 0, W_OFF_K = W_TILE, W_OFF_V = W_TILE * 3;
/* mbarrier slots */
constexpr int W_BAR_Q = 0, W_BAR_FULL_K = 1, W_BAR_FULL_V = 3, W_BAR_EMPTY_K = 5, W_BAR_EMPTY_V = 7;
static __device__ __forceinline__ void w_mbar_init(uint32_t bar, uint32_t count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
}
static __device__ __forceinline__ void w_mbar_expect_tx(uint32_t bar, uint32_t bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes)
                 : "memory");
}
static __device__ __forceinline__ void w_mbar_arrive(uint32_t bar) {
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory");
}
static __device__ __forceinline__ void w_mbar_wait(uint32_t bar, uint32_t parity) {
    asm volatile("{\n.reg .pred p;\nW_WAIT:\n"
                 "mbarrier.try_wait.parity.shared::cta.b64 p, [%0], %1;\n"
                 "@!p bra W_WAIT;\n}\n" ::"r"(bar),
                 "r"(parity)
                 : "memory");
}
/* A 3-d tile (box) of a tensor map into shared memory, completing on mbarrier `bar`. */
static __device__ __forceinline__ void w_tma_load(uint32_t dst, const CUtensorMap *map,
                                                  uint32_t bar, int c0, int c1, int c2) {
    asm volatile("cp.async.bulk.tensor.3d.shared::cluster.global.mbarrier::complete_tx::bytes"
                 " [%0], [%1, {%3, %4, %5}], [%2];\n" ::"r"(dst),
                 "l"(reinterpret_cast<uint64_t>(map)), "r"(bar), "r"(c0), "r"(c1), "r"(c2)
                 : "memory");
}
static __device__ __forceinline__ void w_wgmma_fence(void) {
    asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
}
static __device__ __forceinline__ void w_wgmma_commit(void) {
    asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
}
template <int N> static __device__ __forceinline__ void w_wgmma_wait(void) {
    asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
/* Pins accumulator registers at this point of the program: the compiler may not move their
 * reads or writes across it (it cannot see that wgmma writes them asynchronously). */
static __device__ __forceinline__ void w_pin(float (&d)[64]) {
#pragma unroll
    for (int i = 0; i < 64; i++)
        asm volatile("" : "+f"(d[i])::"memory");
}
/* Shared-memory matrix descriptor, 128-byte swizzle: start address, leading and stride byte
 * offsets (16-byte units). K-major tiles (Q, K): rows of 128 bytes, 8-row groups 1024 bytes
 * apart (SBO); LBO unused. MN-major V: LBO = distance between the two 64-dim boxes, SBO =
 * distance between 8-key groups. */
static __device__ __forceinline__ uint64_t w_desc(uint32_t saddr, uint32_t lbo, uint32_t sbo) {
    return (uint64_t)((saddr & 0x3FFFFu) >> 4) | ((uint64_t)(lbo >> 4) << 16) |
           ((uint64_t)(sbo >> 4) << 32) | (1ull << 62);
}

/* The 64 fp32 accumulators of an m64n128 wgmma: their operand numbers (%0..%63) in the PTX
 * string and their "+f" constraints (d is the accumulator array). */
#define W_D64_STR                                                                                  \
    "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, "   \
    "%20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, "   \
    "%38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, "   \
    "%56, %57, %58, %59, %60, %61, %62, %63"
#define W_D8(i)                                                                                    \
    "+f"(d[i]), "+f"(d[i + 1]), "+f"(d[i + 2]), "+f"(d[i + 3]), "+f"(d[i + 4]), "+f"(d[i + 5]),    \
        "+f"(d[i + 6]), "+f"(d[i + 7])
#define W_D64 W_D8(0), W_D8(8), W_D8(16), W_D8(24), W_D8(32), W_D8(40), W_D8(48), W_D8(56)

/* D (64x128 fp32) (+)= A B with A (64x16, K-major) and B (16x128, K-major) in shared memory. */
static __device__ __forceinline__ void w_wgmma_ss(float (&d)[64], uint64_t da, uint64_t db,
                                                  int accumulate) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {" W_D64_STR
                 "}, %64, %65, p, 1, 1, 0, 0;\n}\n"
                 : W_D64
                 : "l"(da), "l"(db), "r"(accumulate));
}

/* D (64x128 fp32) += A B with A (64x16) in registers and B (16x128, MN-major) in shared memory. */
static __device__ __forceinline__ void w_wgmma_rs(float (&d)[64], const uint32_t (&a)[4],
                                                  uint64_t db) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {" W_D64_STR
                 "}, {%64, %65, %66, %67}, %68, p, 1, 1, 1;\n}\n"
                 : W_D64
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(1));
}

/* The online-softmax step on one 64x128 S tile of a consumer warpgroup. The thread holds
 * rows ra and ra+8, columns 8j + 2c + {0,1} of n-block j (the wgmma accumulator layout).
 * Masks keys past each row's causal limit when `mask`, updates the running max/sum, returns
 * the O correction factors and packs P into the A fragments of O += P V: fragment kc covers
 * keys 16kc..16kc+15 = n-blocks 2kc and 2kc+1. */
static __device__ __forceinline__ void w_softmax(float (&s)[64], uint32_t (&p)[32],
                                                 float (&m_run)[2], float (&l_run)[2],
                                                 float (&corr)[2], bool mask, int k0, int lim_a,
                                                 float scale_log2) {
    const int c4 = threadIdx.x & 3;
    if (mask) {
#pragma unroll
        for (int i = 0; i < 64; i++) {
            int key = k0 + (i >> 2) * 8 + 2 * c4 + (i & 1);
            int lim = lim_a + ((i >> 1) & 1) * 8; /* last visible key of the row */
            if (key > lim) s[i] = -INFINITY;
        }
    }
#pragma unroll
    for (int r = 0; r < 2; r++) {
        float mx = -INFINITY;
#pragma unroll
        for (int j = 0; j < 16; j++)
            mx = fmaxf(mx, fmaxf(s[4 * j + 2 * r], s[4 * j + 2 * r + 1]));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        float m_new = fmaxf(m_run[r], mx * scale_log2); /* scale > 0 */
        /* a row with no visible key yet keeps -inf: subtract 0 so exp2 gives 0, not NaN */
        float m_use = m_new == -INFINITY ? 0.0f : m_new;
        corr[r] = exp2f(m_run[r] - m_use);
        m_run[r] = m_new;
        float rs = 0.0f;
#pragma unroll
        for (int j = 0; j < 16; j++) {
            float p0 = exp2f(fmaf(s[4 * j + 2 * r], scale_log2, -m_use));
            float p1 = exp2f(fmaf(s[4 * j + 2 * r + 1], scale_log2, -m_use));
            s[4 * j + 2 * r] = p0;
            s[4 * j + 2 * r + 1] = p1;
            rs += p0 + p1;
        }
        l_run[r] = l_run[r] * corr[r] + rs;
    }
#pragma unroll
    for (int kc = 0; kc < 8; kc++) {
        p[4 * kc + 0] = ga_pack_bf16(s[8 * kc + 0], s[8 * kc + 1]);
        p[4 * kc + 1] = ga_pack_bf16(s[8 * kc + 2], s[8 * kc + 3]);
        p[4 * kc + 2] = ga_pack_bf16(s[8 * kc + 4], s[8 * kc + 5]);
        p[4 * kc + 3] = ga_pack_bf16(s[8 * kc + 6], s[8 * kc + 7]);
    }
}

/* S = Q K^T for one 64-row slab: 8 k-steps of 16 dims; steps 0-3 read the first 64-dim box,
 * 4-7 the second. Within a box a step advances the start address by 32 bytes (the swizzle is
 * applied by the hardware on absolute addresses, so the 1 KiB-aligned boxes stay valid). */
static __device__ __forceinline__ void w_issue_qk(float (&s)[64], uint32_t q_slab,
                                                  uint32_t k_tile) {
#pragma unroll
    for (int kk = 0; kk < 8; kk++) {
        uint32_t off = (kk >> 2) * W_BOX + (kk & 3) * 32;
        w_wgmma_ss(s, w_desc(q_slab + off, 16, 1024), w_desc(k_tile + off, 16, 1024), kk > 0);
    }
}

/* O += P V: 8 k-steps of 16 keys, each 16 keys x 128 dims of V = 2 KiB further. */
static __device__ __forceinline__ void w_issue_pv(float (&o)[64], const uint32_t (&p)[32],
                                                  uint32_t v_tile) {
#pragma unroll
    for (int kc = 0; kc < 8; kc++) {
        const uint32_t a[4] = {p[4 * kc], p[4 * kc + 1], p[4 * kc + 2], p[4 * kc + 3]};
        w_wgmma_rs(o, a, w_desc(v_tile + kc * 2048, W_BOX, 1024));
    }
}
#endif /* W_SM90A_DEVICE */

__global__ void __launch_bounds__(W_THREADS, 1)
    k_attn_prefill_sm90(const __grid_constant__ CUtensorMap tm_q,
                        const __grid_constant__ CUtensorMap tm_k,
                        const __grid_constant__ CUtensorMap tm_v,
                        const __nv_bfloat16 *__restrict__ gate, __nv_bfloat16 *__restrict__ out,
                        float *__restrict__ lse, int T, int pos0, int n_heads, int G, int gate_mode,
                        float scale_log2) {
#ifdef W_SM90A_DEVICE
    extern __shared__ unsigned char w_smem[];
    const uint32_t base = (ga_smem_addr(w_smem) + 1023u) & ~1023u; /* swizzle atoms: 1 KiB */
    const uint32_t bar = base + W_OFF_BAR;
    auto bar_at = [&](int i) { return bar + 8u * (uint32_t)i; };

    /* Heads vary fastest and the latest (longest) query tiles go first: the first wave holds
     * the heaviest CTAs, and the G heads sharing a KV head run side by side (K/V from L2). */
    const int h = blockIdx.x;
    const int qt = gridDim.y - 1 - blockIdx.y;
    const int hk = h / G;
    const int m0 = qt * W_BM;
    const int q_end = min(m0 + W_BM, T);
    const int n_kt = (pos0 + q_end + W_BN - 1) / W_BN; /* key tiles some row here can see */
    const int wg = threadIdx.x / 128;

    if (threadIdx.x == 0) {
        w_mbar_init(bar_at(W_BAR_Q), 1);
        for (int s = 0; s < 2; s++) {
            w_mbar_init(bar_at(W_BAR_FULL_K + s), 1);
            w_mbar_init(bar_at(W_BAR_FULL_V + s), 1);
            w_mbar_init(bar_at(W_BAR_EMPTY_K + s), 8); /* one arrival per consumer warp */
            w_mbar_init(bar_at(W_BAR_EMPTY_V + s), 8);
        }
        asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
        asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
    }
    __syncthreads();

    if (wg == 0) {
        /* Producer: 24 registers are plenty for one thread's address arithmetic. */
        asm volatile("setmaxnreg.dec.sync.aligned.u32 24;\n");
        if (threadIdx.x == 0) {
            w_mbar_expect_tx(bar_at(W_BAR_Q), W_TILE);
            w_tma_load(base + W_OFF_Q, &tm_q, bar_at(W_BAR_Q), 0, h, m0);
            w_tma_load(base + W_OFF_Q + W_BOX, &tm_q, bar_at(W_BAR_Q), 64, h, m0);
            for (int kt = 0; kt < n_kt; kt++) {
                const int s = kt & 1;
                const uint32_t par = ((kt >> 1) - 1) & 1; /* phase of the previous use */
                if (kt >= 2) w_mbar_wait(bar_at(W_BAR_EMPTY_K + s), par);
                w_mbar_expect_tx(bar_at(W_BAR_FULL_K + s), W_TILE);
                const uint32_t kd = base + W_OFF_K + s * W_TILE;
                w_tma_load(kd, &tm_k, bar_at(W_BAR_FULL_K + s), 0, kt * W_BN, hk);
                w_tma_load(kd + W_BOX, &tm_k, bar_at(W_BAR_FULL_K + s), 64, kt * W_BN, hk);
                if (kt >= 2) w_mbar_wait(bar_at(W_BAR_EMPTY_V + s), par);
                w_mbar_expect_tx(bar_at(W_BAR_FULL_V + s), W_TILE);
                const uint32_t vd = base + W_OFF_V + s * W_TILE;
                w_tma_load(vd, &tm_v, bar_at(W_BAR_FULL_V + s), 0, kt * W_BN, hk);
                w_tma_load(vd + W_BOX, &tm_v, bar_at(W_BAR_FULL_V + s), 64, kt * W_BN, hk);
            }
        }
        return;
    }

    /* Consumers: 64 query rows each. */
    asm volatile("setmaxnreg.inc.sync.aligned.u32 240;\n");
    const int cw = wg - 1;
    const int warp = (threadIdx.x / 32) & 3, lane = threadIdx.x & 31;
    const int g = lane >> 2, c4 = lane & 3;
    const int row0 = m0 + cw * 64;                          /* first row of this warpgroup */
    const int ra = row0 + warp * 16 + g;                    /* this thread's rows: ra, ra + 8 */
    const uint32_t q_slab = base + W_OFF_Q + cw * 64 * 128; /* 64 rows x 128 B into each box */
    const bool arrive = lane == 0;

    float o[64], s[64];
    uint32_t p[32], p2[32];
#pragma unroll
    for (int i = 0; i < 64; i++)
        o[i] = 0.0f;
    float m_run[2] = {-INFINITY, -INFINITY}, l_run[2] = {0.0f, 0.0f}, corr[2];

    w_mbar_wait(bar_at(W_BAR_Q), 0);

    /* Tile 0: S_0, then its softmax (nothing to overlap with yet). */
    w_mbar_wait(bar_at(W_BAR_FULL_K), 0);
    w_wgmma_fence();
    w_issue_qk(s, q_slab, base + W_OFF_K);
    w_wgmma_commit();
    w_wgmma_wait<0>();
    w_pin(s);
    if (arrive) w_mbar_arrive(bar_at(W_BAR_EMPTY_K));
    /* A tile needs the causal mask when its last key lies past the first row's limit. */
    w_softmax(s, p, m_run, l_run, corr, W_BN - 1 > pos0 + row0, 0, pos0 + ra, scale_log2);

    /* Steady state: tile kt's S and tile kt-1's PV in flight together. P alternates between
     * two register sets (no copies: a register that a wgmma reads must not be rewritten by
     * ordinary instructions inside its pipeline stage, or ptxas serialises the wgmmas). */
    auto step = [&](int kt, uint32_t(&p_cur)[32], uint32_t(&p_nxt)[32]) {
        const int sk = kt & 1, sv = (kt - 1) & 1;
        w_mbar_wait(bar_at(W_BAR_FULL_K + sk), (kt >> 1) & 1);
        w_mbar_wait(bar_at(W_BAR_FULL_V + sv), ((kt - 1) >> 1) & 1);
        w_wgmma_fence();
        w_issue_qk(s, q_slab, base + W_OFF_K + sk * W_TILE);
        w_wgmma_commit();
        w_issue_pv(o, p_cur, base + W_OFF_V + sv * W_TILE);
        w_wgmma_commit();
        w_wgmma_wait<1>(); /* S_kt done; P_{kt-1} V_{kt-1} may still run */
        w_pin(s);
        if (arrive) w_mbar_arrive(bar_at(W_BAR_EMPTY_K + sk));
        const int k0 = kt * W_BN;
        w_softmax(s, p_nxt, m_run, l_run, corr, k0 + W_BN - 1 > pos0 + row0, k0, pos0 + ra,
                  scale_log2);
        w_wgmma_wait<0>();
        w_pin(o);
        if (arrive) w_mbar_arrive(bar_at(W_BAR_EMPTY_V + sv));
#pragma unroll
        for (int i = 0; i < 64; i++)
            o[i] *= corr[(i >> 1) & 1];
    };
    auto last_pv = [&](uint32_t(&p_cur)[32]) {
        const int sv = (n_kt - 1) & 1;
        w_mbar_wait(bar_at(W_BAR_FULL_V + sv), ((n_kt - 1) >> 1) & 1);
        w_wgmma_fence();
        w_issue_pv(o, p_cur, base + W_OFF_V + sv * W_TILE);
        w_wgmma_commit();
        w_wgmma_wait<0>();
        w_pin(o);
    };
    for (int kt = 1; kt < n_kt; kt += 2) {
        step(kt, p, p2);
        if (kt + 1 < n_kt) step(kt + 1, p2, p);
    }
    if ((n_kt - 1) & 1) { /* tile n_kt-1's P sits in the set of its parity */
        last_pv(p2);
    } else {
        last_pv(p);
    }

    /* Epilogue: normalise, gate, store bf16, write lse. */
#pragma unroll
    for (int r = 0; r < 2; r++) {
        float l = l_run[r];
        l += __shfl_xor_sync(0xffffffffu, l, 1);
        l += __shfl_xor_sync(0xffffffffu, l, 2);
        const int t = ra + 8 * r;
        if (t >= T) continue;
        const float inv = l > 0.0f ? 1.0f / l : 0.0f;
        __nv_bfloat16 *orow = out + ((int64_t)t * n_heads + h) * W_HD;
#pragma unroll
        for (int j = 0; j < 16; j++) {
            const int d = j * 8 + 2 * c4;
            float2 gv = ga_gate_pair(gate, gate_mode, t, h, n_heads, W_HD, d);
            *reinterpret_cast<uint32_t *>(orow + d) =
                ga_pack_bf16(o[4 * j + 2 * r] * inv * gv.x, o[4 * j + 2 * r + 1] * inv * gv.y);
        }
        if (lse && c4 == 0) lse[(int64_t)h * T + t] = (m_run[r] + __log2f(l)) * GA_LN2;
    }
#else
    __trap(); /* not built for sm_90a: the launcher never selects this kernel then */
#endif
}

/* ---------------------------------------------------------------- host side */

/* cuTensorMapEncodeTiled, looked up once through the runtime (no libcuda link needed). */
static PFN_cuTensorMapEncodeTiled_v12000 w_encode_fn(ga_err *err) {
    static PFN_cuTensorMapEncodeTiled_v12000 fn; /* process-wide, immutable once set */
    if (fn) return fn;
    void *p = NULL;
    cudaDriverEntryPointQueryResult q;
    cudaError_t e = cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &p, 12000,
                                                     cudaEnableDefault, &q);
    if (e != cudaSuccess || q != cudaDriverEntryPointSuccess || !p) {
        ga_err_set(err, GA_ERR_CUDA, "attention prefill: cuTensorMapEncodeTiled unavailable (%s)",
                   cudaGetErrorString(e));
        return NULL;
    }
    fn = (PFN_cuTensorMapEncodeTiled_v12000)p;
    return fn;
}

/* A 3-d bf16 tensor map (dims innermost first, strides in bytes of dims 1 and 2) read in
 * boxes of 64 x b1 x b2 with the 128-byte swizzle; reads outside dims are zero-filled. */
static ga_status w_make_map(CUtensorMap *m, const void *ptr, uint64_t d0, uint64_t d1, uint64_t d2,
                            uint64_t s1, uint64_t s2, uint32_t b1, uint32_t b2, const char *what,
                            ga_err *err) {
    PFN_cuTensorMapEncodeTiled_v12000 enc = w_encode_fn(err);
    if (!enc) return GA_ERR_CUDA;
    const cuuint64_t dims[3] = {d0, d1, d2};
    const cuuint64_t strides[2] = {s1, s2};
    const cuuint32_t box[3] = {64, b1, b2};
    const cuuint32_t estr[3] = {1, 1, 1};
    CUresult r = enc(m, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 3, const_cast<void *>(ptr), dims, strides,
                     box, estr, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                     CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
    if (r != CUDA_SUCCESS)
        return ga_err_set(err, GA_ERR_CUDA, "attention prefill: tensor map of %s rejected (%d)",
                          what, (int)r);
    return GA_OK;
}

extern "C" int ga_attention_prefill_sm90_usable_on(const ga_cuda_devinfo *d, int hd) {
#ifdef GA_BUILD_SM90A
    return hd == W_HD && d && d->cc_major == 9 && d->cc_minor == 0;
#else
    (void)d;
    (void)hd;
    return 0;
#endif
}

extern "C" int ga_attention_prefill_sm90_usable(int hd) {
    ga_cuda_devinfo d;
    ga_err ignored;
    return ga_cuda_devinfo_query(&d, &ignored) == GA_OK &&
           ga_attention_prefill_sm90_usable_on(&d, hd);
}

/* Arguments are validated by ga_attention_prefill before it gets here. */
extern "C" ga_status ga_attention_prefill_sm90(const ga_attn_prefill_args *a, cudaStream_t stream,
                                               ga_err *err) {
    ga_cuda_devinfo own;
    if (!a->devinfo) {
        ga_status st = ga_cuda_devinfo_query(&own, err);
        if (st) return st;
    }
    if (!ga_attention_prefill_sm90_usable_on(a->devinfo ? a->devinfo : &own, a->hd))
        return ga_err_set(err, GA_ERR_UNSUPPORTED,
                          "attention prefill: the Hopper path needs an sm_90 device, an sm_90a "
                          "build and head_dim 128 (have head_dim %d)",
                          a->hd);
    if ((a->T + W_BM - 1) / W_BM > 65535)
        return ga_err_set(err, GA_ERR_UNSUPPORTED, "attention prefill: T %d too long", a->T);
    const uint64_t hd = W_HD, e = 2;
    CUtensorMap mq, mk, mv;
    ga_status st;
    if ((st = w_make_map(&mq, a->q, hd, (uint64_t)a->n_heads, (uint64_t)a->T, hd * e,
                         (uint64_t)a->n_heads * hd * e, 1, W_BM, "q", err)))
        return st;
    /* K and V end at the last key any row sees: TMA zero-fills past it, so stale or
     * uninitialised cache rows are never read. */
    const uint64_t kv_end = (uint64_t)a->pos0 + (uint64_t)a->T;
    const uint64_t hstride = (uint64_t)a->kv_stride * hd * e;
    if ((st = w_make_map(&mk, a->k, hd, kv_end, (uint64_t)a->n_kv_heads, hd * e, hstride, W_BN, 1,
                         "k", err)))
        return st;
    if ((st = w_make_map(&mv, a->v, hd, kv_end, (uint64_t)a->n_kv_heads, hd * e, hstride, W_BN, 1,
                         "v", err)))
        return st;
    static ga_dev_cache setup; /* the opt-in once per device (launch_cache.cuh) */
    int dev = -1;
    if (!ga_dev_cache_get(setup, &dev)) {
        GA_CUDA_CHECK(cudaFuncSetAttribute(
            k_attn_prefill_sm90, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)W_SMEM));
        ga_dev_cache_put(setup, dev, 1);
    }
    dim3 grid(a->n_heads, (a->T + W_BM - 1) / W_BM);
    k_attn_prefill_sm90<<<grid, W_THREADS, W_SMEM, stream>>>(
        mq, mk, mv, (const __nv_bfloat16 *)a->gate, (__nv_bfloat16 *)a->out, a->lse, a->T, a->pos0,
        a->n_heads, a->n_heads / a->n_kv_heads, (int)a->gate_mode, a->scale * GA_LOG2E);
    GA_CUDA_CHECK_LAUNCH();
    return GA_OK;
}
