/*
 * The CUDA backend's RoPE tables with scaling equal the CPU backend's (issue 14): a yarn and a
 * linear model past their original length, every position of a prefill and the decode steps
 * after it, CUDA against CPU within the bf16 tolerance of test_cuda_model. The tables are
 * only visible through the logits, so a table the GPU built differently (unscaled, or without
 * yarn's attention factor) shows as a rel L2 far above the tolerance.
 */
#include "testutil.h"

#define TOL_L2 2e-2

static ga_session *open_s(const ga_model *m, ga_device d, int ctx) {
    ga_session_opts o = {
        .device = d, .max_context = ctx, .max_batch = 1, .cuda_gemm = ga_test_cuda_gemm()};
    ga_session *s = NULL;
    ga_err e = {{0}};
    ga_status st = ga_session_create(m, &o, &s, &e);
    CHECK_MSG(st == GA_OK, "session on %s: %s", d == GA_DEVICE_CUDA ? "cuda" : "cpu", e.msg);
    return s;
}

static void run(const char *name, ga_rope_scaling rs) {
    ga_config c = {.vocab_size = 512,
                   .hidden_size = 128,
                   .intermediate_size = 256,
                   .n_layers = 2,
                   .n_heads = 4,
                   .n_kv_heads = 2,
                   .head_dim = 64,
                   .rms_norm_eps = 1e-6f,
                   .rope_theta = 1e4,
                   .max_position_embeddings = 128,
                   .use_qk_norm = true,
                   .gate = GA_GATE_HEADWISE,
                   .torch_dtype = GA_BF16,
                   .bos_token_id = -1,
                   .rope_scaling = rs};
    ga_model *m = NULL;
    ga_err e = {{0}};
    CHECK_OK(ga_model_random(&c, 11, GA_BF16, &m, &e), &e);
    if (!m) return;
    const int T = 480, P = 400, V = c.vocab_size; /* past the original 128 */
    ga_session *cpu = open_s(m, GA_DEVICE_CPU, T), *gpu = open_s(m, GA_DEVICE_CUDA, T);
    int32_t *tok = malloc(T * sizeof *tok);
    float *lc = malloc((size_t)T * V * sizeof(float)), *lg = malloc((size_t)T * V * sizeof(float));
    uint64_t r = 3;
    for (int i = 0; i < T; i++)
        tok[i] = (int32_t)(ga_test_rand_u64(&r) % V);
    for (size_t i = 0; i < (size_t)T * V; i++)
        lg[i] = NAN;
    if (cpu && gpu) {
        CHECK_OK(ga_session_forward(cpu, 0, tok, T, true, lc, &e), &e);
        CHECK_OK(ga_session_forward(gpu, 0, tok, P, true, lg, &e), &e);
        for (int t = P; t < T; t++) {
            int seq = 0;
            CHECK_OK(ga_session_decode_batch(gpu, &seq, tok + t, 1, lg + (size_t)t * V, &e), &e);
        }
        double worst = 0;
        for (int t = 0; t < T; t++)
            worst = fmax(worst, ga_test_rel_l2(lg + (size_t)t * V, lc + (size_t)t * V, V));
        printf("%-24s %d positions (prefill %d + decode), worst rel L2 %.3e\n", name, T, P, worst);
        CHECK_MSG(worst <= TOL_L2, "%s: CUDA vs CPU rel L2 %.3e > %.1e", name, worst, TOL_L2);
    }
    free(tok);
    free(lc);
    free(lg);
    ga_session_free(cpu);
    ga_session_free(gpu);
    ga_model_free(m);
}

int main(void) {
    GA_REQUIRE_GPU();
    run("yarn x4 over 128", (ga_rope_scaling){.type = GA_ROPE_YARN, .factor = 4});
    run("linear x4", (ga_rope_scaling){.type = GA_ROPE_LINEAR, .factor = 4});
    return ga_test_finish();
}
