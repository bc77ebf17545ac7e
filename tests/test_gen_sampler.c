/*
 * The host sampler (src/engine/sampler.c):
 *  - ga_sample_host equals a reference written from the definition here, sharing no code
 *    or loop with the sampler (softmax at T, a full sort of ids by (p desc, id asc), top-k,
 *    the top-p set in closed form, the draw by binary search of cumulative masses) on random
 *    rows with exact ties, NaN and -inf, for many parameter sets (this covers the partial
 *    top-k selection, which must give the full sort's order);
 *  - exactly on the top-p boundary (exact masses) the prefix stops at the token that reaches
 *    top_p, by reference and by frequency;
 *  - sampled frequencies match the renormalised probabilities the definition implies
 *    (computed by hand here for small rows), so the draw is a real sample;
 *  - ga_sample_uniform is in [0, 1) with mean 1/2 and depends on each of its inputs;
 *  - greedy cases and ga_argmax_f32's tie and NaN rules.
 */
#include "engine/sampler.h"
#include "testutil.h"

/* The reference shares no code or loop shape with sampler.c: it states the definition of
 * sampler.h on index arrays in double, with the top-p set taken by its closed form and the draw
 * by a binary search of the cumulative masses. */
static const double *ref_p; /* for ref_order_cmp */

/* Candidate order: larger probability first, then the lower id. */
static int ref_order_cmp(const void *a, const void *b) {
    const int i = *(const int *)a, j = *(const int *)b;
    if (ref_p[i] != ref_p[j]) return ref_p[i] > ref_p[j] ? -1 : 1;
    return i < j ? -1 : 1;
}

static int32_t ref_argmax(const float *l, int n) {
    int best = -1;
    for (int i = 0; i < n; i++) /* first of the largest non-NaN values */
        if (!isnan(l[i]) && (best < 0 || l[i] > l[best])) best = i;
    return best < 0 ? 0 : best;
}

static int32_t ref_sample(const float *l, int n, const ga_sampling *sp, uint64_t stream,
                          uint64_t pos) {
    if (sp->temperature <= 0.0f || sp->top_k == 1) return ref_argmax(l, n);
    /* p_i = expf((l_i - max) / T) in fp32 (the documented numerics; NaN -> 0), held in double */
    const float mx = l[ref_argmax(l, n)];
    double *p = malloc((size_t)n * sizeof *p);
    int *order = malloc((size_t)n * sizeof *order);
    double *before = malloc(((size_t)n + 1) * sizeof *before); /* mass ranked before r */
    for (int i = 0; i < n; i++) {
        const float v = expf((l[i] - mx) / sp->temperature);
        p[i] = isnan(v) ? 0.0 : (double)v;
        order[i] = i;
    }
    ref_p = p;
    qsort(order, (size_t)n, sizeof *order, ref_order_cmp);
    before[0] = 0;
    for (int r = 0; r < n; r++)
        before[r + 1] = before[r] + p[order[r]];
    const int K = (sp->top_k > 0 && sp->top_k < n) ? sp->top_k : n;
    /* top-p: the smallest prefix of the top K whose mass reaches top_p of theirs is exactly the
     * ranks whose mass before them is still below that threshold. */
    int M = K;
    if (sp->top_p > 0.0f && sp->top_p < 1.0f) {
        const double thr = (double)sp->top_p * before[K];
        M = 0;
        for (int r = 0; r < K; r++)
            M += before[r] < thr;
        if (M == 0) M = 1;
    }
    /* Inverse CDF over the kept ranks: the first rank r whose cumulative mass exceeds u. */
    const double u = ga_sample_uniform(sp->seed, stream, pos) * before[M];
    int lo = 0, hi = M - 1; /* smallest r in [0, M-1] with before[r + 1] > u, else M - 1 */
    while (lo < hi) {
        const int mid = (lo + hi) / 2;
        if (before[mid + 1] > u)
            hi = mid;
        else
            lo = mid + 1;
    }
    const int32_t r = order[lo];
    free(p);
    free(order);
    free(before);
    return r;
}

static void test_against_reference(void) {
    const int sizes[] = {1, 2, 7, 300, 5000};
    const ga_sampling cases[] = {{0.0f, 0, 1.0f, 1},    {1.0f, 0, 1.0f, 2},     {0.7f, 40, 0.9f, 3},
                                 {1.5f, 5, 1.0f, 4},    {2.0f, 0, 0.5f, 5},     {0.3f, 1, 0.9f, 6},
                                 {1.0f, 299, 0.99f, 7}, {1.0f, 3000, 0.95f, 8}, {4.0f, 2, 0.1f, 9}};
    uint64_t st = 42;
    int bad = 0, total = 0;
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        int n = sizes[si];
        float *l = malloc((size_t)n * sizeof *l);
        void *scratch = malloc(ga_sample_scratch_bytes(n));
        for (int row = 0; row < 12; row++) {
            for (int i = 0; i < n; i++)
                l[i] = 2.0f * ga_test_rand_normal(&st);
            if (n > 4 && row % 2) { /* exact ties, a NaN and a -inf */
                for (int t = 0; t < 6; t++)
                    l[ga_test_rand_u64(&st) % n] = 3.0f;
                l[ga_test_rand_u64(&st) % n] = NAN;
                l[ga_test_rand_u64(&st) % n] = -INFINITY;
            }
            for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++)
                for (uint64_t pos = 0; pos < 8; pos++) {
                    int32_t got = ga_sample_host(l, n, &cases[ci], 3 + row, pos * 977, scratch);
                    int32_t want = ref_sample(l, n, &cases[ci], 3 + row, pos * 977);
                    bad += got != want;
                    total++;
                }
        }
        free(l);
        free(scratch);
    }
    CHECK_MSG(bad == 0, "%d of %d draws differ from the reference", bad, total);
}

/* Exactly on the top-p boundary: four tokens at the maximum (p = expf(0) = 1 exactly), the
 * rest -inf or NaN, so the prefix masses 1, 2, 3, 4 are exact and top_p 0.5 / 0.75 reaches
 * the threshold exactly at 2 / 3 tokens: those tokens and no more are drawn (a `>` for the
 * `>=` would keep one more). */
static void test_top_p_boundary(void) {
    const float l[9] = {-INFINITY, 0.0f, NAN, 0.0f, -INFINITY, 0.0f, 0.0f, -INFINITY, -INFINITY};
    const int ids[4] = {1, 3, 5, 6}; /* candidate order: equal p, lower id first */
    void *scratch = malloc(ga_sample_scratch_bytes(9));
    const float tops[2] = {0.5f, 0.75f};
    for (int c = 0; c < 2; c++) {
        const int keep = c ? 3 : 2;
        ga_sampling sp = {1.0f, 0, tops[c], 17};
        int counts[9] = {0}, bad = 0;
        enum { DRAWS = 20000 };
        for (int d = 0; d < DRAWS; d++) {
            int32_t t = ga_sample_host(l, 9, &sp, 4, (uint64_t)d, scratch);
            bad += t != ref_sample(l, 9, &sp, 4, (uint64_t)d);
            counts[t]++;
        }
        CHECK_MSG(bad == 0, "top_p %g: %d draws differ from the reference", (double)tops[c], bad);
        for (int k = 0; k < 4; k++) {
            const double f = (double)counts[ids[k]] / DRAWS, want = k < keep ? 1.0 / keep : 0.0;
            CHECK_MSG(fabs(f - want) < 0.02, "top_p %g: token %d frequency %.4f, want %.4f",
                      (double)tops[c], ids[k], f, want);
        }
    }
    free(scratch);
}

/* Draws at many positions and compares frequencies with the expected distribution. */
static void check_freq(const float *l, int n, const ga_sampling *sp, const double *want) {
    enum { DRAWS = 60000 };
    int counts[16] = {0};
    void *scratch = malloc(ga_sample_scratch_bytes(n));
    for (int d = 0; d < DRAWS; d++)
        counts[ga_sample_host(l, n, sp, 9, (uint64_t)d, scratch)]++;
    free(scratch);
    for (int i = 0; i < n; i++) {
        double f = (double)counts[i] / DRAWS;
        /* binomial std <= 0.002 at this count: 0.01 is 5 sigma */
        CHECK_MSG(fabs(f - want[i]) < 0.01, "T %g k %d p %g token %d: frequency %.4f, want %.4f",
                  (double)sp->temperature, sp->top_k, (double)sp->top_p, i, f, want[i]);
    }
}

static void test_frequencies(void) {
    /* probabilities 0.4, 0.3, 0.15, 0.1, 0.05 at T = 1 */
    const double p[5] = {0.4, 0.3, 0.15, 0.1, 0.05};
    float l[5];
    for (int i = 0; i < 5; i++)
        l[i] = (float)log(p[i]);
    ga_sampling all = {1.0f, 0, 1.0f, 5};
    check_freq(l, 5, &all, p);
    ga_sampling k2 = {1.0f, 2, 1.0f, 6}; /* top-2, renormalised: 4/7, 3/7 */
    const double w2[5] = {0.4 / 0.7, 0.3 / 0.7, 0, 0, 0};
    check_freq(l, 5, &k2, w2);
    ga_sampling p8 = {1.0f, 0, 0.8f, 7}; /* 0.4+0.3 < 0.8 <= 0.85: first three */
    const double w3[5] = {0.4 / 0.85, 0.3 / 0.85, 0.15 / 0.85, 0, 0};
    check_freq(l, 5, &p8, w3);
    ga_sampling t2 = {2.0f, 0, 1.0f, 8}; /* T = 2: p^(1/2), renormalised */
    double w4[5], z = 0;
    for (int i = 0; i < 5; i++)
        z += w4[i] = sqrt(p[i]);
    for (int i = 0; i < 5; i++)
        w4[i] /= z;
    check_freq(l, 5, &t2, w4);
}

static void test_uniform_and_argmax(void) {
    double sum = 0, mn = 1, mx = 0;
    for (uint64_t i = 0; i < 100000; i++) {
        double u = ga_sample_uniform(1, 2, i);
        sum += u;
        mn = u < mn ? u : mn;
        mx = u > mx ? u : mx;
    }
    CHECK(mn >= 0.0 && mx < 1.0);
    CHECK(fabs(sum / 100000 - 0.5) < 0.005);
    double u0 = ga_sample_uniform(1, 2, 3);
    CHECK(u0 == ga_sample_uniform(1, 2, 3));
    CHECK(u0 != ga_sample_uniform(2, 2, 3) && u0 != ga_sample_uniform(1, 3, 3) &&
          u0 != ga_sample_uniform(1, 2, 4));
    const float a[] = {NAN, 1.0f, 5.0f, 5.0f, -INFINITY};
    CHECK(ga_argmax_f32(a, 5) == 2);
    const float b[] = {NAN, NAN};
    CHECK(ga_argmax_f32(b, 2) == 0);
    void *scratch = malloc(ga_sample_scratch_bytes(5));
    CHECK(ga_sample_host(a, 5, NULL, 0, 0, scratch) == 2);
    ga_sampling k1 = {5.0f, 1, 0.5f, 1};
    CHECK(ga_sample_host(a, 5, &k1, 0, 0, scratch) == 2);
    free(scratch);
}

int main(void) {
    test_against_reference();
    test_top_p_boundary();
    test_frequencies();
    test_uniform_and_argmax();
    return ga_test_finish();
}
