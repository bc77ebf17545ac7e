/*
 * The chunked gated delta rule's kernels (kernels/gdn_chunk.cu version 1, gdn_chunk_v2.cu
 * version 2) run on the CPU under the emulator (emu.cpp), through the real launcher
 * ga_gdn_delta_chunked, against T recurrent steps of the CPU reference op ga_hyb_delta_step
 * (src/cpu/cpu_hybrid.c). Catches before any device time: wrong indexing, a missed tile edge
 * (T off the chunk, dv off the column tiles, dk 16 and 256), unwritten outputs (NaN-poisoned
 * o and scratch), and races between barrier phases (every launch repeated with the threads run
 * in reverse and in shuffled order: the results must be bit-identical). What it cannot catch:
 * anything the device adds (fast-math exp, shared-memory limits, warp-synchronous assumptions
 * beyond __shfl_xor_sync), so the GPU test (test_gdn_ops chunk) stays the word on the device.
 * Tolerances are test_gdn_ops.c's (its comment there says why).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <string>
#include <vector>

#include <cuda_bf16.h>

#include "emu.h"
#include "gdn.h"
extern "C" {
#include "cpu/cpu_hybrid.h"
}

#define TOL_BF16_OUT 2.5e-3
#define TOL_STATE 1e-4

static unsigned long long rng = 0x5eed1234ull;
static int fails, passes;

static float urand(void) { // uniform in [-1, 1)
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rng >> 40) * (1.0 / (1 << 23))) - 1.f;
}
static uint16_t to_bf16(float f) {
    return __float2bfloat16_rn(f).x;
}
static float from_bf16(uint16_t h) {
    __nv_bfloat16 b;
    b.x = h;
    return __bfloat162float(b);
}
static double rel_l2(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        const double d = (double)a[i] - b[i];
        num += d * d;
        den += (double)b[i] * b[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}
static void report(const char *what, double err, double tol) {
    const bool ok = isfinite(err) && err <= tol;
    printf("%-72s err %-10.3g tol %-8.2g %s\n", what, err, tol, ok ? "PASS" : "FAIL");
    fflush(stdout);
    ok ? passes++ : fails++;
}

struct dcase {
    int T, Hk, Hv, dk, dv, slow;
};

/* One launch of impl under thread order `order`: o (widened) and the state it leaves. */
static void run(const dcase &c, int impl, int order, const std::vector<uint16_t> &qkv,
                const std::vector<uint16_t> &ab, const std::vector<float> &A_log,
                const std::vector<float> &dtb, const std::vector<float> &st0, int qs, int abs_,
                std::vector<float> &o, std::vector<float> &st) {
    const int kd = c.Hk * c.dk, vd = c.Hv * c.dv;
    const size_t work_bytes = ga_gdn_chunk_workspace(c.T, c.Hk, c.Hv, c.dk, c.dv);
    std::vector<float> work(work_bytes / 4, NAN); // the scratch must be written before it is read
    std::vector<uint16_t> ob((size_t)c.T * vd, 0x7fc0); // NaN: an unwritten output fails
    st = st0;
    ga_gdn_delta_args a = {};
    a.q = qkv.data();
    a.k = qkv.data() + kd;
    a.v = qkv.data() + 2 * kd;
    a.b = ab.data();
    a.a = ab.data() + c.Hv; // Qwen3-Next's [b | a] order in one row
    a.A_log = A_log.data();
    a.dt_bias = dtb.data();
    a.state = st.data();
    a.slots = NULL;
    a.o = ob.data();
    a.B = 1;
    a.T = c.T;
    a.Hk = c.Hk;
    a.Hv = c.Hv;
    a.dk = c.dk;
    a.dv = c.dv;
    a.qkv_stride = qs;
    a.ab_stride = abs_;
    a.o_stride = vd;
    a.chunk_impl = impl;
    emu_set_order(order, 7u + (unsigned)order);
    ga_err e = {};
    if (ga_gdn_delta_chunked(&a, work.data(), work_bytes, NULL, &e) != GA_OK) {
        printf("ga_gdn_delta_chunked: %s\n", e.msg);
        fails++;
    }
    o.resize(ob.size());
    for (size_t i = 0; i < ob.size(); i++)
        o[i] = from_bf16(ob[i]);
}

static void case_chunk(const dcase &c) {
    const int kd = c.Hk * c.dk, vd = c.Hv * c.dv, qs = 2 * kd + vd + 8, abs_ = 2 * c.Hv + 3;
    const int r = c.Hv / c.Hk;
    const size_t hs = (size_t)c.dk * c.dv, sn = (size_t)c.Hv * hs;
    std::vector<float> A_log(c.Hv), dtb(c.Hv), st0(sn);
    for (int h = 0; h < c.Hv; h++) {
        A_log[h] = (c.slow ? -4.f : 0.f) + 0.5f * urand();
        dtb[h] = 0.5f * urand();
    }
    dtb[c.Hv - 1] = 25.f; // softplus's linear branch
    for (auto &x : st0)
        x = 0.1f * urand();
    std::vector<uint16_t> qkv((size_t)c.T * qs), ab((size_t)c.T * abs_);
    for (auto &x : qkv)
        x = to_bf16(urand());
    for (auto &x : ab)
        x = to_bf16(1.5f * urand());

    // the reference: T recurrent steps of the CPU op, the per-token prep in double
    std::vector<float> oref((size_t)c.T * vd), sref = st0, qn(c.dk), kn(c.dk);
    const float qscale = (float)(1.0 / sqrt((double)c.dk));
    for (int t = 0; t < c.T; t++) {
        const uint16_t *x = &qkv[(size_t)t * qs], *abr = &ab[(size_t)t * abs_];
        for (int h = 0; h < c.Hv; h++) {
            const int hk = h / r;
            double sq = 0, sk = 0;
            for (int i = 0; i < c.dk; i++) {
                const double a = from_bf16(x[hk * c.dk + i]), b = from_bf16(x[kd + hk * c.dk + i]);
                sq += a * a, sk += b * b;
            }
            const double rq = 1.0 / sqrt(sq + 1e-6), rk = 1.0 / sqrt(sk + 1e-6);
            for (int i = 0; i < c.dk; i++) {
                qn[i] = (float)(from_bf16(x[hk * c.dk + i]) * rq) * qscale;
                kn[i] = (float)(from_bf16(x[kd + hk * c.dk + i]) * rk);
            }
            std::vector<float> v(c.dv);
            for (int j = 0; j < c.dv; j++)
                v[j] = from_bf16(x[2 * kd + h * c.dv + j]);
            const double xa = (double)from_bf16(abr[c.Hv + h]) + dtb[h];
            const double sp = xa > 20.0 ? xa : log1p(exp(xa));
            const float g = (float)(-exp((double)A_log[h]) * sp);
            const float beta = (float)(1.0 / (1.0 + exp(-(double)from_bf16(abr[h]))));
            ga_hyb_delta_step(&sref[h * hs], &oref[(size_t)t * vd + (size_t)h * c.dv], qn.data(),
                              kn.data(), v.data(), g, beta, c.dk, c.dv);
        }
    }
    for (int impl = 1; impl <= 2; impl++) {
        std::vector<float> o, st, o2, st2;
        char what[160];
        snprintf(what, sizeof what, "v%d T %d Hk %d Hv %d dk %d dv %d%s", impl, c.T, c.Hk, c.Hv,
                 c.dk, c.dv, c.slow ? " slow" : "");
        run(c, impl, 0, qkv, ab, A_log, dtb, st0, qs, abs_, o, st);
        std::string w(what);
        report((w + ": o").c_str(), rel_l2(o.data(), oref.data(), o.size()), TOL_BF16_OUT);
        report((w + ": state").c_str(), rel_l2(st.data(), sref.data(), sn), TOL_STATE);
        for (int order = 1; order <= 2; order++) {
            run(c, impl, order, qkv, ab, A_log, dtb, st0, qs, abs_, o2, st2);
            const bool same = !memcmp(o.data(), o2.data(), o.size() * 4) &&
                              !memcmp(st.data(), st2.data(), sn * 4);
            report(
                (w + (order == 1 ? ": reversed threads identical" : ": shuffled threads identical"))
                    .c_str(),
                same ? 0.0 : 1.0, 0.0);
        }
    }
}

int main(int argc, char **argv) {
    const bool quick = argc > 1 && !strcmp(argv[1], "quick");
    // chunk edges (T 1, 63, 64, 65, 129), dv off the tiles, dk 16 .. 256, Hv / Hk 1 .. 3
    const dcase cases[] = {
        {1, 2, 4, 64, 64, 0},    {63, 1, 2, 32, 48, 1},   {65, 2, 2, 16, 16, 0},
        {129, 1, 3, 16, 20, 1},  {200, 2, 4, 32, 100, 1}, {70, 1, 1, 256, 40, 1},
        {64, 1, 2, 128, 128, 1}, {150, 1, 1, 64, 33, 0},
    };
    for (const dcase &c : cases) {
        case_chunk(c);
        if (quick) break;
    }
    printf("%d passed, %d failed\n", passes, fails);
    return fails ? 1 : 0;
}
