/*
 * What the op harness (test_backend_ops.c, every op against the CPU backend's own op) does not
 * cover: the weight conversion kernels (convert.cu) bit for bit against the host's
 * ga_f32_to_bf16 / ga_f16_to_f32 with special values, and the embedding's contract for a token
 * outside the vocabulary (a NaN row, not a read past the table). Output buffers are poisoned
 * before every launch. GA_TEST_QUICK=1 (set under compute-sanitizer) drops the largest shapes.
 */
#include <cuda_runtime.h>
#include <stdint.h>

#include "core/tensor.h"
#include "cuda_test_diag.h"
#include "kernels.h"
#include "cuda_testutil.h"
#include "testutil.h"

static char phase_buf[192];
#define PHASE(...)                                                                                 \
    do {                                                                                           \
        snprintf(phase_buf, sizeof phase_buf, __VA_ARGS__);                                        \
        ga_diag_phase = phase_buf;                                                                 \
    } while (0)

static uint64_t rng = 0x5eed1234abcdull;
static int quick;

static void *hmalloc(size_t bytes) {
    void *p = malloc(bytes ? bytes : 16);
    if (!p) exit(1);
    return p;
}
static void fill_bf16(uint16_t *h, float *f, size_t n, float scale) {
    for (size_t i = 0; i < n; i++) {
        h[i] = ga_f32_to_bf16(ga_test_rand_normal(&rng) * scale);
        if (f) f[i] = ga_bf16_to_f32(h[i]);
    }
}

/* ------------------------------------------------------------------ embedding */
static void test_embed(int T, int dim, int vocab) {
    PHASE("embed T %d dim %d", T, dim);
    uint16_t *tab = hmalloc((size_t)vocab * dim * 2);
    fill_bf16(tab, NULL, (size_t)vocab * dim, 1.f);
    int32_t *tok = hmalloc(T * 4);
    for (int t = 0; t < T; t++)
        tok[t] = (int32_t)(ga_test_rand_u64(&rng) % vocab);
    tok[T - 1] = vocab - 1;    // the last row of the table
    if (T > 2) tok[1] = vocab; // out of range: a NaN row, not a read past the table
    void *dtab = dmalloc((size_t)vocab * dim * 2);
    int32_t *dtok = dmalloc(T * 4);
    float *dx = dmalloc((size_t)T * dim * 4), *x = hmalloc((size_t)T * dim * 4);
    up(dtab, tab, (size_t)vocab * dim * 2), up(dtok, tok, T * 4);
    poison(dx, (size_t)T * dim * 4);
    ga_err err = {{0}};
    CHECK_OK(ga_embed(dtok, dtab, dx, T, dim, vocab, 0, &err), &err);
    CU(cudaDeviceSynchronize());
    down(x, dx, (size_t)T * dim * 4);
    int bad = 0;
    for (int t = 0; t < T; t++)
        for (int i = 0; i < dim; i++) {
            float v = x[(size_t)t * dim + i];
            if (tok[t] >= vocab)
                bad += !isnan(v);
            else
                bad += memcmp(&v, &(float){ga_bf16_to_f32(tab[(size_t)tok[t] * dim + i])}, 4) != 0;
        }
    CHECK_MSG(bad == 0, "embed T %d dim %d: %d wrong elements", T, dim, bad);
    cudaFree(dtab), cudaFree(dtok), cudaFree(dx);
    free(tab), free(tok), free(x);
}

/* ------------------------------------------------------------------ conversion */
static void test_convert(ga_dtype dt, int64_t n) {
    PHASE("convert dtype %d n %lld", (int)dt, (long long)n);
    size_t esz = ga_dtype_size(dt);
    uint8_t *src = hmalloc((size_t)n * esz);
    uint16_t *want = hmalloc((size_t)n * 2), *got = hmalloc((size_t)n * 2);
    const float specials[] = {0.f, -0.f, INFINITY, -INFINITY, NAN, 1e-40f, 3.3895e38f, 65504.f};
    for (int64_t i = 0; i < n; i++) {
        float f = i < 8 ? specials[i] : ga_test_rand_normal(&rng) * 100.f;
        if (dt == GA_F32) {
            memcpy(src + i * 4, &f, 4);
            want[i] = ga_f32_to_bf16(f);
        } else {
            uint16_t h = ga_f32_to_f16(f);
            memcpy(src + i * 2, &h, 2);
            want[i] = ga_f32_to_bf16(ga_f16_to_f32(h));
        }
    }
    void *ds = dmalloc((size_t)n * esz), *dd = dmalloc((size_t)n * 2);
    up(ds, src, (size_t)n * esz);
    poison(dd, (size_t)n * 2);
    ga_err err = {{0}};
    CHECK_OK(ga_convert_to_bf16(ds, dt, dd, n, 0, &err), &err);
    CU(cudaDeviceSynchronize());
    down(got, dd, (size_t)n * 2);
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
        bool wn = (want[i] & 0x7fff) > 0x7f80, gn = (got[i] & 0x7fff) > 0x7f80;
        bad += wn ? !gn : got[i] != want[i]; // any NaN payload is a NaN
    }
    CHECK_MSG(bad == 0, "convert %s n %lld: %lld elements differ", ga_dtype_name(dt), (long long)n,
              (long long)bad);
    cudaFree(ds), cudaFree(dd);
    free(src), free(want), free(got);
}

/* Sections run as separate ctest entries (so one crash cannot hide the others); no argument
 * runs them all (the compute-sanitizer pass); see ga_test_want. */
int main(int argc, char **argv) {
    ga_diag_install();
    GA_REQUIRE_GPU();
    quick = atoi(ga_test_env("GA_TEST_QUICK", "0"));

    if (ga_test_want(argc, argv, "embed")) {
        printf("== embed\n");
        test_embed(1, 64, 1000);
        test_embed(7, 100, 1000); // not a multiple of 8: scalar path
        test_embed(1000, 1024, 1000);
    }

    if (ga_test_want(argc, argv, "convert")) {
        printf("== convert\n");
        test_convert(GA_F32, 1);
        test_convert(GA_F32, 1000);
        test_convert(GA_F16, 1000);
        test_convert(GA_F32, quick ? 100003 : (1 << 20) + 3);
        test_convert(GA_F16, quick ? 100003 : (1 << 20) + 3);
    }

    PHASE("exit");
    CU(cudaDeviceSynchronize());
    return ga_test_finish();
}
