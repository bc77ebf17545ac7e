/*
 * ga_session_forward_multi and the paged KV cache through whole sessions.
 *
 * Section `cpu` (CPU suite): forward_multi on the CPU backend (the session's per-sequence
 * fallback) equals separate forwards bit for bit, in slot and paged mode, with and without
 * all_positions and with the LM head skipped; its error paths (duplicate sequences, empty
 * spans, too long, out of blocks) fail with the right status having changed nothing.
 *
 * Section `gpu` (label gpu, exit 77 without a GPU), on a random model (hd 64 and hd 128):
 *  - CUDA paged logits (block sizes 16, 32, 64; chunked prefills crossing blocks, sequences'
 *    blocks interleaved, batched decode) equal CUDA slot logits bit for bit: the paged path
 *    writes the same K/V values, the prefill attends over a gathered copy with the slot
 *    stride and the decode kernel loads the same key rows in the same order;
 *  - CUDA paged vs the CPU backend's paged: rel L2 <= 2e-2 per row (the bf16 tolerance of
 *    test_cuda_model);
 *  - CUDA forward_multi vs CUDA separate forwards and vs the CPU's forward_multi: rel L2 <=
 *    2e-2 (its GEMMs have other M, so cuBLAS may pick other kernels and bf16 activations
 *    round differently; not bitwise by design), in slot and paged mode, with a pass of more
 *    rows than one prefill chunk (512) so a sequence straddles two chunks;
 *  - greedy decode_sample in paged mode gives the ids of slot mode;
 *  - out of blocks through the session: GA_ERR_NO_CACHE, nothing changed, then usable;
 *  - paged_init refusals: block size 8 (GA_ERR_UNSUPPORTED), an impossible pool (GA_ERR_OOM).
 */
#include "testutil.h"

#include "core/model.h"

#define TOL_L2 2e-2 /* test_cuda_model's bound, for the same ga_model_random init */

static ga_session *open_s(const ga_model *m, ga_device dev, int max_ctx, int kv_blocks, int bs) {
    ga_session_opts so = {.device = dev,
                          .max_context = max_ctx,
                          .max_batch = 4,
                          .n_threads = 2,
                          .kv_blocks = kv_blocks,
                          .kv_block_size = bs,
                          .cuda_gemm = dev == GA_DEVICE_CUDA ? ga_test_cuda_gemm() : 0};
    ga_err e = {{0}};
    ga_session *s = NULL;
    CHECK_OK(ga_session_create(m, &so, &s, &e), &e);
    return s;
}

static float *nanbuf(size_t n) {
    float *p = malloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++)
        p[i] = NAN;
    return p;
}

static int32_t tok(int i, int V) {
    return (int32_t)((i * 37 + 11) % V);
}

/* Worst per-row rel L2 of a against b (rows of V). */
#ifdef GA_HAVE_CUDA
static double worst_l2(const float *a, const float *b, int rows, int V) {
    double w = 0;
    for (int r = 0; r < rows; r++) {
        double e = ga_test_rel_l2(a + (size_t)r * V, b + (size_t)r * V, (size_t)V);
        if (!(e <= w)) w = e;
    }
    return w;
}
#endif

/* A multi pass of 3 sequences (two continuing earlier prompts) vs the same work as separate
 * forwards on a twin session. lens: the pass's spans; pre: tokens each sequence has first. */
typedef struct multi_out {
    float *all, *last; /* forward_multi logits: all positions; last rows (2nd pass) */
    float *sep_all, *sep_last;
    int total;
} multi_out;

static void multi_vs_separate(const ga_model *m, ga_session *a, ga_session *b, const int *lens,
                              const int *pre, multi_out *o) {
    const int V = m->cfg.vocab_size, ns = 3;
    const int seqs[3] = {2, 0, 3};
    int off[4] = {0};
    for (int i = 0; i < ns; i++)
        off[i + 1] = off[i] + lens[i];
    const int total = off[ns];
    o->total = total;
    int32_t *ids = malloc((size_t)total * sizeof *ids);
    for (int i = 0; i < total; i++)
        ids[i] = tok(i, V);
    ga_err e = {{0}};
    for (int i = 0; i < ns; i++) /* earlier prompts, the same on both sessions */
        if (pre[i]) {
            int32_t p[64];
            for (int k = 0; k < pre[i]; k++)
                p[k] = tok(k + 7 * i, V);
            CHECK_OK(ga_session_forward(a, seqs[i], p, pre[i], false, NULL, &e), &e);
            CHECK_OK(ga_session_forward(b, seqs[i], p, pre[i], false, NULL, &e), &e);
        }
    o->all = nanbuf((size_t)total * V);
    o->sep_all = nanbuf((size_t)total * V);
    CHECK_OK(ga_session_forward_multi(a, ns, seqs, ids, off, true, o->all, &e), &e);
    for (int i = 0; i < ns; i++)
        CHECK_OK(ga_session_forward(b, seqs[i], ids + off[i], lens[i], true,
                                    o->sep_all + (size_t)off[i] * V, &e),
                 &e);
    /* a second pass: last rows only, then one with no LM head */
    o->last = nanbuf((size_t)ns * V);
    o->sep_last = nanbuf((size_t)ns * V);
    const int off2[4] = {0, 5, 6, 9};
    CHECK_OK(ga_session_forward_multi(a, ns, seqs, ids, off2, false, o->last, &e), &e);
    for (int i = 0; i < ns; i++)
        CHECK_OK(ga_session_forward(b, seqs[i], ids + off2[i], off2[i + 1] - off2[i], false,
                                    o->sep_last + (size_t)i * V, &e),
                 &e);
    const int seqs1[1] = {0}, off3[2] = {0, 4};
    CHECK_OK(ga_session_forward_multi(a, 1, seqs1, ids, off3, false, NULL, &e), &e);
    CHECK_OK(ga_session_forward(b, 0, ids, 4, false, NULL, &e), &e);
    for (int i = 0; i < ns; i++)
        CHECK(ga_session_seq_len(a, seqs[i]) == ga_session_seq_len(b, seqs[i]));
    free(ids);
}

static void multi_free(multi_out *o) {
    free(o->all), free(o->last), free(o->sep_all), free(o->sep_last);
}

/* ---------------------------------------------------------------- CPU section */
static void cpu_errors(const ga_model *m) {
    const int V = m->cfg.vocab_size;
    int32_t ids[200];
    for (int i = 0; i < 200; i++)
        ids[i] = tok(i, V);
    /* 7 blocks of 16 tokens */
    ga_session *s = open_s(m, GA_DEVICE_CPU, 96, 7, 16);
    if (!s) return;
    ga_err e = {{0}};
    CHECK_OK(ga_session_forward(s, 1, ids, 20, false, NULL, &e), &e); /* 2 blocks */
    ga_kv_info k0;
    ga_session_kv_info(s, &k0);
    CHECK(k0.blocks_free == 5);
    {
        const int seqs[2] = {0, 0}, off[3] = {0, 3, 5};
        CHECK(ga_session_forward_multi(s, 2, seqs, ids, off, false, NULL, &e) == GA_ERR_ARG);
        CHECK_MSG(strstr(e.msg, "twice") != NULL, "%s", e.msg);
    }
    {
        const int seqs[2] = {0, 2}, off[3] = {0, 3, 3};
        CHECK(ga_session_forward_multi(s, 2, seqs, ids, off, false, NULL, &e) == GA_ERR_ARG);
        CHECK_MSG(strstr(e.msg, "no tokens") != NULL, "%s", e.msg);
    }
    {
        const int seqs[2] = {0, 1}, off[3] = {0, 3, 3 + 80}; /* 20 + 80 > 96 */
        CHECK(ga_session_forward_multi(s, 2, seqs, ids, off, false, NULL, &e) == GA_ERR_ARG);
        CHECK_MSG(strstr(e.msg, "exceed") != NULL, "%s", e.msg);
    }
    {
        const int seqs[1] = {0}, off[2] = {1, 3};
        CHECK(ga_session_forward_multi(s, 1, seqs, ids, off, false, NULL, &e) == GA_ERR_ARG);
    }
    {
        const int seqs[1] = {9}, off[2] = {0, 3};
        CHECK(ga_session_forward_multi(s, 1, seqs, ids, off, false, NULL, &e) == GA_ERR_ARG);
    }
    {
        const int seqs[1] = {0}, off[2] = {0, 3};
        int32_t bad[3] = {1, V, 2};
        CHECK(ga_session_forward_multi(s, 1, seqs, bad, off, false, NULL, &e) == GA_ERR_ARG);
    }
    {
        /* 3 + 3 blocks needed, 5 free: all or nothing */
        const int seqs[2] = {0, 2}, off[3] = {0, 40, 80};
        CHECK(ga_session_forward_multi(s, 2, seqs, ids, off, false, NULL, &e) == GA_ERR_NO_CACHE);
        CHECK_MSG(strstr(e.msg, "blocks") != NULL, "%s", e.msg);
    }
    ga_kv_info k1;
    ga_session_kv_info(s, &k1);
    CHECK_MSG(k1.blocks_free == k0.blocks_free, "a failed call took blocks (%d -> %d free)",
              k0.blocks_free, k1.blocks_free);
    CHECK(ga_session_seq_len(s, 0) == 0 && ga_session_seq_len(s, 1) == 20 &&
          ga_session_seq_len(s, 2) == 0);
    /* and the session still works: exactly the free blocks */
    const int seqs[2] = {0, 2}, off[3] = {0, 40, 80 - 8};
    CHECK_OK(ga_session_forward_multi(s, 2, seqs, ids, off, false, NULL, &e), &e);
    ga_session_kv_info(s, &k1);
    CHECK(k1.blocks_free == 0);
    ga_session_free(s);
}

static void cpu_section(void) {
    ga_model *m = ga_test_model_2l(16, GA_GATE_HEADWISE, 256);
    if (!m) return;
    const int V = m->cfg.vocab_size;
    for (int paged = 0; paged < 2; paged++) {
        const int lens[3] = {13, 40, 1}, pre[3] = {0, 9, 17};
        ga_session *a = open_s(m, GA_DEVICE_CPU, 96, paged ? 24 : 0, 16);
        ga_session *b = open_s(m, GA_DEVICE_CPU, 96, paged ? 24 : 0, 16);
        if (!a || !b) break;
        multi_out o;
        multi_vs_separate(m, a, b, lens, pre, &o);
        CHECK_MSG(!memcmp(o.all, o.sep_all, (size_t)o.total * V * 4),
                  "cpu %s: forward_multi all-positions logits differ from separate forwards",
                  paged ? "paged" : "slots");
        CHECK_MSG(!memcmp(o.last, o.sep_last, (size_t)3 * V * 4),
                  "cpu %s: forward_multi last-row logits differ from separate forwards",
                  paged ? "paged" : "slots");
        multi_free(&o);
        ga_session_free(a);
        ga_session_free(b);
    }
    cpu_errors(m);
    ga_model_free(m);
}

/* ---------------------------------------------------------------- GPU section */
#ifdef GA_HAVE_CUDA
/* The call sequence of test_paged.c's test_equal: prefills in chunks crossing blocks,
 * sequence 1 first (so 0's blocks are not the lowest ids), batched decode growing all three
 * across block boundaries together. Returns the logits (rows x V), rows in *rows. */
static float *script(const ga_model *m, ga_session *s, int *rows) {
    const int V = m->cfg.vocab_size, T = 141;
    int32_t ids[141];
    for (int i = 0; i < T; i++)
        ids[i] = tok(i, V);
    const int n = 7 + 11 + 1 + (T - 11) + 3 * 40;
    *rows = n;
    float *o = nanbuf((size_t)n * V);
    ga_test_paged_workload(s, ids, T, V, 40, o);
    return o;
}

static void gpu_paged_equal(const ga_model *m, int bs, const char *tag) {
    const int V = m->cfg.vocab_size, ctx = 256;
    const int nblk = 4 * ((ctx + bs - 1) / bs);
    ga_session *slot = open_s(m, GA_DEVICE_CUDA, ctx, 0, 0);
    ga_session *pg = open_s(m, GA_DEVICE_CUDA, ctx, nblk, bs);
    ga_session *cpu = open_s(m, GA_DEVICE_CPU, ctx, nblk, bs);
    if (!slot || !pg || !cpu) goto done;
    ga_kv_info ki;
    ga_session_kv_info(pg, &ki);
    CHECK_MSG(ki.paged && !ki.paged_refused && ki.block_size == bs && ki.blocks_total == nblk,
              "%s bs %d: CUDA session is not paged (refused %d)", tag, bs, ki.paged_refused);
    int n0, n1, n2;
    float *a = script(m, slot, &n0), *b = script(m, pg, &n1), *c = script(m, cpu, &n2);
    size_t diff = 0;
    for (size_t i = 0; i < (size_t)n0 * V; i++)
        diff += memcmp(a + i, b + i, 4) != 0;
    CHECK_MSG(diff == 0, "%s bs %d: %zu of %zu paged logits differ from slots (rel L2 %.3e)", tag,
              bs, diff, (size_t)n0 * V, worst_l2(b, a, n0, V));
    double w = worst_l2(b, c, n0, V);
    printf("%-28s bs %d: paged == slots bitwise, vs CPU paged rel L2 %.3e\n", tag, bs, w);
    CHECK_MSG(w <= TOL_L2, "%s bs %d: CUDA paged vs CPU paged rel L2 %.3e", tag, bs, w);
    free(a), free(b), free(c);
done:
    ga_session_free(slot), ga_session_free(pg), ga_session_free(cpu);
}

static void gpu_multi(const ga_model *m, int paged, const char *tag) {
    const int V = m->cfg.vocab_size, ctx = 600, bs = 32;
    const int nblk = paged ? 4 * (ctx / bs + 1) : 0;
    /* 300 + 280 + 40 = 620 rows: more than a 512-row chunk */
    const int lens[3] = {300, 280, 40}, pre[3] = {0, 33, 17};
    ga_session *a = open_s(m, GA_DEVICE_CUDA, ctx, nblk, bs);
    ga_session *b = open_s(m, GA_DEVICE_CUDA, ctx, nblk, bs);
    ga_session *c = open_s(m, GA_DEVICE_CPU, ctx, nblk, bs);
    ga_session *d = open_s(m, GA_DEVICE_CPU, ctx, nblk, bs);
    if (a && b && c && d) {
        multi_out g, h;
        multi_vs_separate(m, a, b, lens, pre, &g);
        multi_vs_separate(m, c, d, lens, pre, &h);
        double w1 = worst_l2(g.all, g.sep_all, g.total, V), w2 = worst_l2(g.last, g.sep_last, 3, V);
        double w3 = worst_l2(g.all, h.all, g.total, V), w4 = worst_l2(g.last, h.last, 3, V);
        printf("%-28s %s: multi vs separate %.3e / %.3e, vs CPU %.3e / %.3e\n", tag,
               paged ? "paged" : "slots", w1, w2, w3, w4);
        CHECK_MSG(w1 <= TOL_L2 && w2 <= TOL_L2, "%s: CUDA forward_multi vs separate %.3e / %.3e",
                  tag, w1, w2);
        CHECK_MSG(w3 <= TOL_L2 && w4 <= TOL_L2, "%s: CUDA forward_multi vs CPU %.3e / %.3e", tag,
                  w3, w4);
        multi_free(&g), multi_free(&h);
    }
    ga_session_free(a), ga_session_free(b), ga_session_free(c), ga_session_free(d);
}

static void gpu_sample_and_limits(const ga_model *m) {
    const int V = m->cfg.vocab_size;
    int32_t out[2][3][30];
    for (int k = 0; k < 2; k++) {
        ga_session *s = open_s(m, GA_DEVICE_CUDA, 128, k ? 14 : 0, 16);
        if (!s) return;
        ga_err e = {{0}};
        int32_t p[20];
        for (int i = 0; i < 20; i++)
            p[i] = tok(i, V);
        int seqs[3] = {0, 1, 2};
        int32_t cur[3] = {p[0], p[1], p[2]};
        CHECK_OK(ga_session_forward(s, 0, p, 20, false, NULL, &e), &e);
        CHECK_OK(ga_session_forward(s, 1, p + 3, 5, false, NULL, &e), &e);
        CHECK_OK(ga_session_forward(s, 2, p + 1, 15, false, NULL, &e), &e);
        for (int step = 0; step < 30; step++) {
            int32_t next[3];
            CHECK_OK(ga_session_decode_sample(s, seqs, cur, 3, NULL, NULL, next, &e), &e);
            for (int i = 0; i < 3; i++)
                out[k][i][step] = cur[i] = next[i];
        }
        if (k) { /* 14 blocks, 4 + 3 + 3 held after decoding: ask for one token more than the rest
                  */
            ga_kv_info k0, k1;
            ga_session_kv_info(s, &k0);
            const int len3 = ga_session_seq_len(s, 3);
            int32_t big[128];
            for (int i = 0; i < 128; i++)
                big[i] = tok(i, V);
            const int need = 16 * k0.blocks_free + 1;
            CHECK(ga_session_forward(s, 3, big, need, false, NULL, &e) == GA_ERR_NO_CACHE);
            ga_session_kv_info(s, &k1);
            CHECK(k1.blocks_free == k0.blocks_free && ga_session_seq_len(s, 3) == len3);
            ga_session_reset(s, 0);
            CHECK_OK(ga_session_forward(s, 3, big, need, false, NULL, &e), &e);
        }
        ga_session_free(s);
    }
    CHECK_MSG(!memcmp(out[0], out[1], sizeof out[0]), "greedy decode_sample: paged ids differ");

    /* paged_init refusals: one line each */
    ga_session_opts so = {
        .device = GA_DEVICE_CUDA, .max_context = 64, .kv_blocks = 8, .kv_block_size = 8};
    ga_session *s = NULL;
    ga_err e = {{0}};
    ga_status st = ga_session_create(m, &so, &s, &e);
    CHECK_MSG(st == GA_ERR_UNSUPPORTED && strstr(e.msg, "block") && !strchr(e.msg, '\n'),
              "block size 8: %s (%s)", ga_status_name(st), e.msg);
    ga_session_free(s);
    so.kv_block_size = 64;
    so.kv_blocks = 1 << 24; /* 2^30 tokens: a TiB-sized pool */
    s = NULL;
    st = ga_session_create(m, &so, &s, &e);
    CHECK_MSG(st == GA_ERR_OOM && !strchr(e.msg, '\n'), "huge pool: %s (%s)", ga_status_name(st),
              e.msg);
    ga_session_free(s);
}

static int gpu_section(void) {
    if (!ga_cuda_available()) {
        printf("no CUDA GPU: skipped\n");
        return 77;
    }
    static const ga_gate_mode modes[] = {GA_GATE_NONE, GA_GATE_HEADWISE, GA_GATE_ELEMENTWISE};
    for (int hd = 64; hd <= 128; hd += 64)
        for (int mi = 0; mi < 3; mi++) {
            ga_model *m = ga_test_model_2l(hd, modes[mi], 1024);
            if (!m) continue;
            char tag[64];
            snprintf(tag, sizeof tag, "hd %d %s", hd, ga_gate_mode_name(modes[mi]));
            for (int bs = 16; bs <= 64; bs *= 2)
                gpu_paged_equal(m, bs, tag);
            gpu_multi(m, 0, tag);
            gpu_multi(m, 1, tag);
            if (hd == 64 && mi == 1) gpu_sample_and_limits(m);
            ga_model_free(m);
        }
    return 0;
}
#endif

int main(int argc, char **argv) {
    if (ga_test_want(argc, argv, "cpu")) cpu_section();
    if (argc > 1 && !strcmp(argv[1], "gpu")) {
#ifdef GA_HAVE_CUDA
        int r = gpu_section();
        if (r) return r;
#else
        printf("built without CUDA: skipped\n");
        return 77;
#endif
    }
    return ga_test_finish();
}
