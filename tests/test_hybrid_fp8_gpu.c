/*
 * FP8 hybrid folders on the hybrid CUDA backend (issue 15 item 4), gpu label, exit 77 without a
 * GPU. Small random Qwen3.5 dense, Qwen3-Next MoE (a shared expert, one dense layer, the fused
 * per-key-head DeltaNet projections) and Qwen3.5-MoE (vision-language wrapper) folders written by
 * ga_model_write_random as FP8 (e4m3, block scales of 128, 64 and 32 on shapes that are not
 * multiples of them), each also rewritten in the layout Qwen's FP8 releases have (the DeltaNet
 * b / a projections, the router and shared_expert_gate stored BF16, so [b | a] becomes its own
 * bf16 matrix beside the FP8 [q | k | v | z]). Each folder runs in two sessions: the weights kept
 * as FP8 on the device (cuda_weights FP8) and dequantised to bf16 at upload (BF16). Every product
 * reads the same bf16 weight values either way (FP8 GEMV forms, the FP8 expert GEMM, dequantise
 * before cuBLAS), so the logits must be bitwise equal, not close:
 *   1. a prefill, the logits of every position (GEMMs of 40 rows: dequantise + cuBLAS; experts
 *      with 1-2 rows: the FP8 GEMV);
 *   2. three sequences prefilled to different lengths, then decode steps of 1, 2 and 3 rows
 *      (the FP8 GEMV at 1-2 rows, dequantise + cuBLAS at 3, the FP8 expert GEMM on the device
 *      for every MoE step, eager and replayed from a captured graph), every step's logits;
 *   3. the backend's own record: with FP8 every projection and the experts hold FP8 (a scale
 *      table is set), the router, shared_expert_gate and a released folder's [b | a] stay bf16,
 *      and the weight bytes its memory check counted are those of the folder's tensors: bf16
 *      matrices and fp32 vectors, less, with FP8, a byte a weight minus the fp32 scales and a
 *      4-byte row-table entry a row for each FP8 matrix it keeps (what gattn info counts);
 *   4. cuda_weights FP8 on a folder without FP8 weights: refused naming it.
 * A silent fallback to bf16 would pass 1 and 2 trivially: 3 is what rules that out.
 */
#include <math.h>
#include <string.h>

#include "core/model.h"
#include "core/safetensors.h"
#include "cuda/cuda_hybrid_internal.h"
#include "testutil.h"

#define NDEC 6

typedef struct fcase {
    const char *name;
    const char *json;
    int block;
} fcase;

static const fcase k_cases[] = {
    {"qwen3_5 dense, blocks of 128",
     "{\"model_type\": \"qwen3_5_text\", \"vocab_size\": 512, \"hidden_size\": 256, "
     "\"intermediate_size\": 320, \"num_hidden_layers\": 4, \"full_attention_interval\": 2, "
     "\"num_attention_heads\": 4, \"num_key_value_heads\": 2, \"head_dim\": 64, "
     "\"linear_num_key_heads\": 2, \"linear_num_value_heads\": 4, \"linear_key_head_dim\": 64, "
     "\"linear_value_head_dim\": 48, \"tie_word_embeddings\": true, "
     "\"max_position_embeddings\": 2048}",
     128},
    {"qwen3_next moe, blocks of 64",
     "{\"model_type\": \"qwen3_next\", \"vocab_size\": 512, \"hidden_size\": 256, "
     "\"intermediate_size\": 384, \"num_hidden_layers\": 4, \"full_attention_interval\": 2, "
     "\"num_attention_heads\": 4, \"num_key_value_heads\": 1, \"head_dim\": 128, "
     "\"partial_rotary_factor\": 0.5, \"linear_num_key_heads\": 2, "
     "\"linear_num_value_heads\": 4, \"linear_key_head_dim\": 32, \"linear_value_head_dim\": 48, "
     "\"num_experts\": 8, \"num_experts_per_tok\": 2, \"moe_intermediate_size\": 96, "
     "\"shared_expert_intermediate_size\": 128, \"mlp_only_layers\": [1], "
     "\"max_position_embeddings\": 2048}",
     64},
    {"qwen3_5_moe, blocks of 32",
     "{\"model_type\": \"qwen3_5_moe\", \"text_config\": {\"vocab_size\": 512, "
     "\"hidden_size\": 256, \"num_hidden_layers\": 4, \"full_attention_interval\": 4, "
     "\"num_attention_heads\": 8, \"num_key_value_heads\": 2, \"head_dim\": 64, "
     "\"linear_num_key_heads\": 4, \"linear_num_value_heads\": 8, \"linear_key_head_dim\": 32, "
     "\"linear_value_head_dim\": 32, \"num_experts\": 16, \"num_experts_per_tok\": 4, "
     "\"moe_intermediate_size\": 72, \"shared_expert_intermediate_size\": 64, "
     "\"norm_topk_prob\": false, \"max_position_embeddings\": 2048}}",
     32},
};

static uint64_t rng = 0x66703868796272ull;

static bool ends_with(const char *s, const char *suffix) {
    const size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

/* What Qwen's FP8 releases keep bf16 (modules_to_not_convert) among the 2-D weights. */
static bool released_bf16(const char *name) {
    return ends_with(name, "in_proj_a.weight") || ends_with(name, "in_proj_b.weight") ||
           ends_with(name, "in_proj_ba.weight") || ends_with(name, "mlp.gate.weight") ||
           ends_with(name, "shared_expert_gate.weight");
}

/* dir's model.safetensors rewritten with the released_bf16 tensors stored as BF16 (their
 * dequantised values) and without their scales. */
static void release_layout(const char *dir, int block) {
    ga_err err = {{0}};
    char *path = ga_test_path(dir, "model.safetensors"), *tmp = ga_test_path(dir, "new.tmp");
    ga_store *src = NULL, *dst = ga_store_new_memory();
    const int blk[2] = {block, block};
    CHECK_OK(ga_store_open_file(path, &src, &err), &err);
    if (src) CHECK_OK(ga_store_bind_fp8(src, blk, dir, &err), &err);
    int n = 0;
    for (int i = 0; src && dst && i < ga_store_count(src); i++) {
        const ga_tensor *t = ga_store_at(src, i);
        char base[512];
        snprintf(base, sizeof base, "%s", t->name);
        if (ends_with(base, "_scale_inv")) base[strlen(base) - strlen("_scale_inv")] = 0;
        const bool conv = released_bf16(base) && t->dtype == GA_F8_E4M3;
        if (released_bf16(base) && ends_with(t->name, "_scale_inv")) continue;
        ga_tensor *d =
            ga_store_add_owned(dst, t->name, conv ? GA_BF16 : t->dtype, t->ndim, t->shape);
        CHECK(d != NULL);
        if (!d) break;
        if (conv)
            ga_tensor_read_bf16(t, 0, ga_tensor_numel(t), (uint16_t *)d->data);
        else
            memcpy((void *)d->data, t->data, t->nbytes);
        n += conv;
    }
    CHECK_MSG(n > 0, "%s: no tensor to keep bf16", dir);
    const ga_tensor **all = malloc((size_t)ga_store_count(dst) * sizeof *all);
    for (int i = 0; i < ga_store_count(dst); i++)
        all[i] = ga_store_at(dst, i);
    CHECK_OK(ga_safetensors_write(tmp, all, ga_store_count(dst), &err), &err);
    ga_store_free(src);
    ga_store_free(dst);
    CHECK(rename(tmp, path) == 0);
    free(all), free(path), free(tmp);
}

static ga_session *open_s(const ga_model *m, ga_cuda_weights wd) {
    const ga_session_opts o = {.device = GA_DEVICE_CUDA,
                               .max_context = 64,
                               .max_batch = 3,
                               .cuda_gemm = ga_test_cuda_gemm(),
                               .cuda_weights = wd};
    ga_session *s = NULL;
    ga_err err = {{0}};
    CHECK_OK(ga_session_create(m, &o, &s, &err), &err);
    return s;
}

static void same(const char *what, const float *a, const float *b, size_t n) {
    size_t differ = 0, bad = 0;
    for (size_t i = 0; i < n; i++) {
        differ += memcmp(a + i, b + i, sizeof *a) != 0;
        bad += !isfinite(a[i]);
    }
    printf("    %-44s %zu of %zu logits differ, %zu non-finite\n", what, differ, n, bad);
    CHECK_MSG(differ == 0 && bad == 0, "%s: %zu of %zu logits differ (FP8 vs bf16), %zu non-finite",
              what, differ, n, bad);
}

/* 3: the weight bytes of the folder's text tensors on the device: bf16 matrices and fp32
 * vectors, and with keep_fp8 every FP8 matrix but the router and shared_expert_gate at a byte a
 * weight plus its fp32 scales and 4 bytes a row. */
static uint64_t expected_bytes(const ga_model *m, bool keep_fp8) {
    uint64_t b = 0;
    for (int i = 0; i < ga_store_count(m->store); i++) {
        const ga_tensor *t = ga_store_at(m->store, i);
        if (ends_with(t->name, "_scale_inv")) continue;
        const uint64_t n = (uint64_t)ga_tensor_numel(t);
        if (keep_fp8 && t->dtype == GA_F8_E4M3 && !ends_with(t->name, "mlp.gate.weight") &&
            !ends_with(t->name, "shared_expert_gate.weight"))
            b += n + 4 * (uint64_t)ga_tensor_numel(t->scale_inv) + 4 * (uint64_t)t->shape[0];
        else
            b += (t->ndim == 2 ? 2 : 4) * n;
    }
    return b;
}

/* 3: the device layout of the FP8 session (h8) and of the bf16 one (h16). */
static void layout(const ga_model *m, const ga_cuda_hyb *h8, const ga_cuda_hyb *h16,
                   bool released) {
    int missing = 0, wrong = 0;
    for (int l = 0; l < h8->cfg.n_layers; l++) {
        const hyb_dlayer *d = &h8->L[l], *e = &h16->L[l];
        const ga_f8_scales *want[] = {
            d->w_qkv ? &d->f8_qkv : NULL,       d->w_o ? &d->f8_o : NULL,
            d->w_in ? &d->f8_in : NULL,         d->w_out ? &d->f8_out : NULL,
            d->w_gu ? &d->f8_gu : NULL,         d->w_down ? &d->f8_down : NULL,
            d->w_exp_gu ? &d->f8_exp_gu : NULL, d->w_exp_down ? &d->f8_exp_down : NULL,
            d->w_sh_gu ? &d->f8_sh_gu : NULL,   d->w_sh_down ? &d->f8_sh_down : NULL};
        for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
            missing += want[i] && !want[i]->scale;
        const ga_f8_scales *none[] = {&e->f8_qkv,   &e->f8_o,      &e->f8_in,     &e->f8_out,
                                      &e->f8_gu,    &e->f8_down,   &e->f8_exp_gu, &e->f8_exp_down,
                                      &e->f8_sh_gu, &e->f8_sh_down};
        for (size_t i = 0; i < sizeof none / sizeof none[0]; i++)
            wrong += none[i]->scale != NULL;
        /* the released layout splits [b | a] off in both sessions; a folder with FP8 b / a
         * keeps them stacked */
        if (h8->cfg.hybrid.layer_is_linear[l])
            wrong += (d->w_ba != NULL) != released || (e->w_ba != NULL) != released;
    }
    printf("    FP8 session: %d matrices not FP8; layout mismatches %d; weights %.2f MiB (bf16 "
           "session %.2f MiB)\n",
           missing, wrong, h8->g.weight_bytes / 1048576.0, h16->g.weight_bytes / 1048576.0);
    CHECK_MSG(missing == 0, "%d projections are not FP8 in the FP8 session", missing);
    CHECK_MSG(wrong == 0, "%d layout mismatches (FP8 in the bf16 session, w_ba)", wrong);
    const uint64_t e8 = expected_bytes(m, true), e16 = expected_bytes(m, false);
    CHECK_MSG(h8->g.weight_bytes == e8 && h16->g.weight_bytes == e16,
              "weight bytes counted: FP8 %llu (the tensors: %llu), bf16 %llu (%llu)",
              (unsigned long long)h8->g.weight_bytes, (unsigned long long)e8,
              (unsigned long long)h16->g.weight_bytes, (unsigned long long)e16);
    /* the embedding (512 x 256, bf16 both ways) keeps it above half */
    CHECK_MSG(h8->g.weight_bytes < 0.75 * h16->g.weight_bytes && h8->g.f8_tmp && !h16->g.f8_tmp &&
                  h16->g.f8_tmp_elems == 0,
              "FP8 session: %llu weight bytes against %llu as bf16",
              (unsigned long long)h8->g.weight_bytes, (unsigned long long)h16->g.weight_bytes);
}

static void run_folder(const char *dir, bool released) {
    ga_err err = {{0}};
    ga_model *m = NULL;
    CHECK_OK(ga_model_load(dir, &m, &err), &err);
    if (!m) return;
    ga_session *s8 = open_s(m, GA_CUDA_WEIGHTS_FP8), *s16 = open_s(m, GA_CUDA_WEIGHTS_BF16);
    const int V = ga_model_config(m)->vocab_size, T = 40;
    const int len[3] = {5, 9, 13};
    int32_t tok[40];
    for (int i = 0; i < T; i++)
        tok[i] = (int32_t)(ga_test_rand_u64(&rng) % (uint64_t)V);
    float *a = malloc((size_t)T * V * sizeof *a), *b = malloc((size_t)T * V * sizeof *b);
    for (int pass = 0; s8 && s16 && pass < 2; pass++) {
        ga_session *s = pass ? s16 : s8;
        float *out = pass ? b : a;
        for (size_t i = 0; i < (size_t)T * V; i++)
            out[i] = NAN;
        CHECK_OK(ga_session_forward(s, 0, tok, T, true, out, &err), &err); /* 1 */
        ga_session_reset(s, 0);
    }
    if (s8 && s16) same("prefill, every position", a, b, (size_t)T * V);
    /* 2: prefill three sequences, then steps of 1, 2 and 3 rows (NDEC of each) */
    for (int pass = 0; s8 && s16 && pass < 2; pass++) {
        ga_session *s = pass ? s16 : s8;
        float *out = pass ? b : a;
        for (int q = 0; q < 3; q++)
            CHECK_OK(ga_session_forward(s, q, tok + 7 * q, len[q], false, NULL, &err), &err);
        size_t at = 0;
        for (int nb = 1; nb <= 3; nb++)
            for (int k = 0; k < NDEC; k++) {
                const int seqs[3] = {0, 1, 2};
                int32_t t[3];
                for (int q = 0; q < nb; q++)
                    t[q] = tok[(7 * q + 11 * k + nb) % T];
                CHECK_OK(ga_session_decode_batch(s, seqs, t, nb, out + at, &err), &err);
                at += (size_t)nb * V;
            }
    }
    if (s8 && s16) same("decode steps of 1, 2 and 3 rows", a, b, (size_t)6 * NDEC * V);
    /* 3: the backends' own record (a session's backend is created the same way here) */
    ga_backend *b8 = NULL, *b16 = NULL;
    const ga_session_opts o8 = {.device = GA_DEVICE_CUDA, .cuda_weights = GA_CUDA_WEIGHTS_FP8};
    const ga_session_opts o16 = {.device = GA_DEVICE_CUDA, .cuda_weights = GA_CUDA_WEIGHTS_BF16};
    CHECK_OK(ga_cuda_hybrid_backend_create(m, &o8, 64, 1, &b8, &err), &err);
    CHECK_OK(ga_cuda_hybrid_backend_create(m, &o16, 64, 1, &b16, &err), &err);
    if (b8 && b16) layout(m, b8->impl, b16->impl, released);
    if (b8) b8->free(b8);
    if (b16) b16->free(b16);
    free(a), free(b);
    ga_session_free(s8);
    ga_session_free(s16);
    ga_model_free(m);
}

static void run_case(const fcase *fc) {
    printf("%s\n", fc->name);
    ga_err err = {{0}};
    ga_config cfg;
    CHECK_OK(ga_test_config_parse(fc->json, &cfg, &err), &err);
    char *dir = ga_test_tmpdir("hybfp8");
    const ga_write_opts wo = {
        .seed = 7, .dtype = GA_F8_E4M3, .fp8_block = fc->block, .n_shards = 1};
    CHECK_OK(ga_model_write_random(dir, &cfg, &wo, &err), &err);
    printf("  every projection FP8 (write-model --dtype fp8)\n");
    run_folder(dir, false);
    release_layout(dir, fc->block);
    printf("  the released layout (b / a, router, shared_expert_gate bf16)\n");
    run_folder(dir, true);
    ga_test_rmtree(dir);
    free(dir);
}

int main(void) {
    GA_REQUIRE_GPU();
    for (size_t i = 0; i < sizeof k_cases / sizeof k_cases[0]; i++)
        run_case(&k_cases[i]);
    /* 4: FP8 asked for on a folder without FP8 weights */
    ga_err err = {{0}};
    ga_config cfg;
    CHECK_OK(ga_test_config_parse(k_cases[0].json, &cfg, &err), &err);
    char *dir = ga_test_tmpdir("hybbf16");
    const ga_write_opts wo = {.seed = 7, .dtype = GA_BF16, .n_shards = 1};
    ga_model *m = NULL;
    CHECK_OK(ga_model_write_random(dir, &cfg, &wo, &err), &err);
    CHECK_OK(ga_model_load(dir, &m, &err), &err);
    if (m) {
        const ga_session_opts o = {.device = GA_DEVICE_CUDA, .cuda_weights = GA_CUDA_WEIGHTS_FP8};
        ga_session *s = NULL;
        CHECK(ga_session_create(m, &o, &s, &err) == GA_ERR_ARG);
        CHECK_MSG(strstr(err.msg, "FP8 weights on the device asked for") != NULL, "%s", err.msg);
        ga_session_free(s);
        ga_model_free(m);
    }
    ga_test_rmtree(dir);
    free(dir);
    return ga_test_finish();
}
