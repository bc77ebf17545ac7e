/*
 * The device sampler (kernels/sampling_topk.cu, gpu label) against the host definition
 * ga_sample_host on fresh random logits: for every row the same token, for greedy, top-k
 * (the shared-memory path, up to its 1024-candidate limit and across it), top-p over the
 * whole vocabulary (the radix path) and combinations, with exact ties, NaN and -inf logits
 * planted in the rows; and the same tokens on a second launch. Output ids are poisoned.
 */
#include <cuda_runtime.h>

#include "engine/sampler.h"
#include "kernels.h"
#include "testutil.h"

#define ROWS 24

static void run_case(int V, ga_sampling sp, bool greedy_null, uint64_t seed) {
    uint64_t st = seed;
    float *h = malloc((size_t)ROWS * V * sizeof *h);
    uint64_t streams[ROWS];
    int pos[ROWS];
    for (int r = 0; r < ROWS; r++) {
        float *row = h + (size_t)r * V;
        for (int i = 0; i < V; i++)
            row[i] = 2.5f * ga_test_rand_normal(&st);
        /* exact ties among the likely tokens, and bad values the sampler must skip */
        for (int t = 0; t < 8; t++) {
            int a = (int)(ga_test_rand_u64(&st) % (uint64_t)V);
            int b = (int)(ga_test_rand_u64(&st) % (uint64_t)V);
            row[b] = row[a] = 6.0f + 0.25f * (float)(t % 3);
        }
        row[ga_test_rand_u64(&st) % (uint64_t)V] = NAN;
        row[ga_test_rand_u64(&st) % (uint64_t)V] = -INFINITY;
        streams[r] = ga_test_rand_u64(&st);
        pos[r] = (int)(ga_test_rand_u64(&st) % 100000);
    }
    float *d_logits = NULL, *d_scratch = NULL;
    uint64_t *d_streams = NULL;
    int *d_pos = NULL;
    int32_t *d_out = NULL, out[ROWS], out2[ROWS];
    bool ok =
        cudaMalloc((void **)&d_logits, (size_t)ROWS * V * sizeof(float)) == cudaSuccess &&
        cudaMalloc((void **)&d_scratch, ga_sample_topk_scratch_bytes(ROWS, V)) == cudaSuccess &&
        cudaMalloc((void **)&d_streams, sizeof streams) == cudaSuccess &&
        cudaMalloc((void **)&d_pos, sizeof pos) == cudaSuccess &&
        cudaMalloc((void **)&d_out, sizeof out) == cudaSuccess;
    CHECK(ok);
    ok = ok &&
         cudaMemcpy(d_logits, h, (size_t)ROWS * V * sizeof(float), cudaMemcpyHostToDevice) ==
             cudaSuccess &&
         cudaMemcpy(d_streams, streams, sizeof streams, cudaMemcpyHostToDevice) == cudaSuccess &&
         cudaMemcpy(d_pos, pos, sizeof pos, cudaMemcpyHostToDevice) == cudaSuccess;
    ga_err err = {{0}};
    for (int rep = 0; ok && rep < 2; rep++) {
        int32_t *dst = rep ? out2 : out;
        CHECK(cudaMemset(d_out, 0xff, sizeof out) == cudaSuccess); /* poison: id -1 */
        CHECK_OK(ga_sample_topk(d_logits, ROWS, V, greedy_null ? NULL : &sp, d_streams, d_pos,
                                d_scratch, d_out, 0, &err),
                 &err);
        CHECK(cudaMemcpy(dst, d_out, sizeof out, cudaMemcpyDeviceToHost) == cudaSuccess);
    }
    if (ok) {
        void *scratch = malloc(ga_sample_scratch_bytes(V));
        int bad = 0;
        for (int r = 0; r < ROWS; r++) {
            int32_t want = ga_sample_host(h + (size_t)r * V, V, greedy_null ? NULL : &sp,
                                          streams[r], (uint64_t)pos[r] + 1, scratch);
            if (out[r] != want) {
                bad++;
                fprintf(stderr, "V %d T %g k %d p %g row %d: device %d, host %d\n", V,
                        (double)sp.temperature, sp.top_k, (double)sp.top_p, r, out[r], want);
            }
            CHECK(out2[r] == out[r]);
        }
        CHECK_MSG(bad == 0, "%d of %d rows differ", bad, ROWS);
        free(scratch);
    }
    cudaFree(d_logits);
    cudaFree(d_scratch);
    cudaFree(d_streams);
    cudaFree(d_pos);
    cudaFree(d_out);
    free(h);
}

int main(void) {
    GA_REQUIRE_GPU();
    const int vocabs[] = {257, 5000, 151936};
    const ga_sampling cases[] = {
        {0.0f, 0, 1.0f, 1},        /* greedy */
        {0.7f, 1, 0.9f, 2},        /* top-k 1 = greedy */
        {0.7f, 40, 0.9f, 3},       /* the usual: shared-memory path */
        {1.0f, 40, 1.0f, 4},       /* top-k only */
        {1.3f, 1024, 0.95f, 5},    /* largest shared-memory k */
        {1.3f, 1025, 0.95f, 6},    /* smallest radix-path k */
        {1.0f, 0, 1.0f, 7},        /* plain softmax over everything */
        {2.0f, 0, 0.8f, 8},        /* top-p over everything */
        {0.3f, 0, 0.5f, 9},        /* sharp distribution, small nucleus */
        {5.0f, 100000, 0.99f, 10}, /* k beyond the vocabulary for small V */
    };
    for (size_t v = 0; v < sizeof vocabs / sizeof vocabs[0]; v++)
        for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
            run_case(vocabs[v], cases[c], false, 1000 * v + c);
    run_case(5000, cases[2], true, 99); /* sp NULL: greedy */
    return ga_test_finish();
}
