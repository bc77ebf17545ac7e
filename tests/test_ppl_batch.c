/*
 * ga_perplexity with several windows a call (ga_ppl_opts.batch, src/engine/perplexity.c):
 *  - the windows really go together: the progress callback runs once per
 *    ga_session_forward_multi round, so a plan of W windows (each one round long here) reports
 *    W times at batch 1 and ceil(W / B) times at batch B;
 *  - the result does not depend on the batch. On the CPU (argument "cpu") it is bit for bit the
 *    same: the backend computes each row alone, and perplexity.c adds every NLL in an order
 *    that does not depend on the batch (each window in token order, then the windows in plan
 *    order), so any difference is a bug, not rounding. On CUDA (argument "cuda", label gpu)
 *    the multi-sequence hook runs the windows' rows through GEMMs of another height, whose
 *    kernels may accumulate in another order: the NLL may move by float rounding of the
 *    logits, |d nll| <= 1e-4 (the logits' fp32 accumulations differ by ~1e-6 relative; the
 *    NLL of a 300-token vocabulary is ~5, so 1e-4 is a hundred times that and far below any
 *    wrong-window or wrong-position bug, which moves it by ~0.1 or more);
 *  - a batch past the session's sequences is GA_ERR_ARG.
 */
#include <math.h>

#include "engine/perplexity.h"
#include "testutil.h"

static int calls;

static void on_progress(void *user, int64_t scored, int64_t total) {
    (void)user;
    (void)scored;
    (void)total;
    calls++;
}

static bool same(const ga_ppl_result *a, const ga_ppl_result *b, double tol) {
    if (a->tokens != b->tokens || a->n_buckets != b->n_buckets) return false;
    if (tol == 0) return memcmp(a, b, sizeof *a) == 0;
    if (!(fabs(a->nll - b->nll) <= tol)) return false;
    for (int k = 0; k < a->n_buckets; k++)
        if (a->bucket_tokens[k] != b->bucket_tokens[k] ||
            !(fabs(a->bucket_nll[k] - b->bucket_nll[k]) <= tol))
            return false;
    return true;
}

int main(int argc, char **argv) {
    const bool cuda = argc > 1 && !strcmp(argv[1], "cuda");
    if (cuda) GA_REQUIRE_GPU();
    const double tol = cuda ? 1e-4 : 0;
    ga_config cfg = {.vocab_size = 300,
                     .hidden_size = 64,
                     .intermediate_size = 96,
                     .n_layers = 2,
                     .n_heads = 4,
                     .n_kv_heads = 2,
                     .head_dim = 64, /* the CUDA kernels take 64 and 128 */
                     .rms_norm_eps = 1e-6f,
                     .rope_theta = 10000.0,
                     .max_position_embeddings = 256,
                     .tie_word_embeddings = true,
                     .use_qk_norm = true,
                     .gate = GA_GATE_HEADWISE,
                     .bos_token_id = -1};
    ga_write_opts wo = {.seed = 11, .dtype = GA_F32, .init_std = 0.1f, .n_shards = 1};
    char *tmp = ga_test_tmpdir("pplbatch");
    ga_err err = {{0}};
    ga_model *m = NULL;
    ga_session *s = NULL;
    CHECK_OK(ga_model_write_random(tmp, &cfg, &wo, &err), &err);
    CHECK_OK(ga_model_load(tmp, &m, &err), &err);
    ga_session_opts so = {.device = cuda ? GA_DEVICE_CUDA : GA_DEVICE_CPU,
                          .max_context = 32,
                          .max_batch = 5,
                          .n_threads = 1,
                          .cuda_gemm = ga_test_cuda_gemm()};
    if (m) CHECK_OK(ga_session_create(m, &so, &s, &err), &err);
    if (!s) {
        ga_model_free(m);
        return ga_test_finish();
    }
    enum { N = 203 };
    int32_t ids[N];
    uint64_t rng = 5;
    for (int i = 0; i < N; i++)
        ids[i] = (int32_t)(ga_test_rand_u64(&rng) % 300);
    /* (context, stride): windows that do not overlap, sliding ones, a short last window */
    const int plans[][2] = {{16, 0}, {32, 7}, {20, 20}, {2, 1}};
    for (size_t p = 0; p < sizeof plans / sizeof *plans; p++) {
        ga_ppl_opts o = {
            .context = plans[p][0], .stride = plans[p][1], .batch = 1, .progress = on_progress};
        ga_ppl_result r1, rb;
        calls = 0;
        CHECK_OK(ga_perplexity(m, s, ids, N, &o, &r1, &err), &err);
        const int windows = calls; /* one round a window: a window fits one piece here */
        CHECK(r1.tokens == ga_ppl_count(N, o.context, o.stride) && isfinite(r1.nll));
        for (int B = 2; B <= 5; B++) {
            o.batch = B;
            calls = 0;
            memset(&rb, 0xff, sizeof rb);
            CHECK_OK(ga_perplexity(m, s, ids, N, &o, &rb, &err), &err);
            CHECK_MSG(calls == (windows + B - 1) / B,
                      "context %d stride %d batch %d: %d rounds for %d windows", o.context,
                      o.stride, B, calls, windows);
            CHECK_MSG(same(&r1, &rb, tol),
                      "context %d stride %d batch %d: nll %.17g, batch 1 %.17g (%lld, %lld tokens)",
                      o.context, o.stride, B, rb.nll, r1.nll, (long long)rb.tokens,
                      (long long)r1.tokens);
        }
    }
    ga_ppl_opts o = {.context = 16, .batch = 6};
    ga_ppl_result r;
    CHECK(ga_perplexity(m, s, ids, N, &o, &r, &err) == GA_ERR_ARG &&
          strstr(err.msg, "batch 6 exceeds the session's 5 sequences"));
    ga_session_free(s);
    ga_model_free(m);
    ga_test_rmtree(tmp);
    free(tmp);
    return ga_test_finish();
}
