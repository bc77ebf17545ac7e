/*
 * Batch-invariant sessions (ga_session_opts.deterministic; issue 13): a sequence's logits are
 * bitwise the same decoded alone as decoded in batches of 3, 8 and 17 beside other sequences
 * at other lengths (other KV-length buckets, a longer max_context), and its prompt's logits
 * the same prefilled whole as in chunks shared with other sequences (ga_session_forward_multi).
 * Section gpu (label gpu, exit 77 without a GPU): the CUDA backend at head_dim 64 and 128
 * (the Hopper prefill kernel on an H200), slot and paged caches; the same script in the
 * default mode is run too and whether it differs is printed (cuBLAS, the GEMV and the
 * bucket-dependent decode split make it differ: information, not a check). Section cpu: the
 * CPU backend, which is batch-invariant in either mode, takes the option and passes the same
 * script (smaller).
 */
#include "testutil.h"

#include "core/model.h"

typedef struct script {
    int ctx_alone, ctx_batch; /* the two sessions' max_context */
    int prompt;               /* the target's prompt */
    int chunks[3];            /* ... prefilled in these pieces beside others (sum = prompt) */
    int n_other;              /* other sequences: ids != TGT, lengths from other_len() */
    int long_other;           /* one other this long (a larger KV bucket than the target's) */
    int steps;                /* decode steps compared */
} script;

#define TGT 5 /* the target's sequence id in the batched session */
#define MAXB 20

static ga_session *open_s(const ga_model *m, ga_device dev, bool det, int ctx, int max_batch,
                          int kv_blocks) {
    ga_session_opts so = {.device = dev,
                          .max_context = ctx,
                          .max_batch = max_batch,
                          .n_threads = 2,
                          .kv_blocks = kv_blocks,
                          .kv_block_size = kv_blocks ? 16 : 0,
                          .deterministic = det};
    ga_err e = {{0}};
    ga_session *s = NULL;
    CHECK_OK(ga_session_create(m, &so, &s, &e), &e);
    return s;
}

static int32_t tok(int i, int salt) {
    return (int32_t)(((unsigned)i * 2654435761u + (unsigned)salt * 40503u) % 1000u);
}

/* The target's token at position i: its prompt, then the scripted decode inputs. */
static int32_t ttok(int i) {
    return tok(i, 7);
}

static int other_len(const script *sc, int k) {
    return k == 0 ? sc->long_other : 1 + (k * 61) % (sc->prompt + 40);
}

/* Alone: the target's prompt prefilled whole, then steps single-row decodes. Returns
 * (1 + steps) rows of logits: the prompt's last token, then each step's. */
static float *run_alone(const ga_model *m, ga_device dev, bool det, bool paged, const script *sc) {
    const int V = m->cfg.vocab_size;
    ga_session *s =
        open_s(m, dev, det, sc->ctx_alone, 1, paged ? (sc->ctx_alone + 15) / 16 + 1 : 0);
    if (!s) return NULL;
    float *out = calloc((size_t)(1 + sc->steps) * V, sizeof(float));
    int32_t *p = malloc((size_t)sc->prompt * sizeof *p);
    for (int i = 0; i < sc->prompt; i++)
        p[i] = ttok(i);
    ga_err e = {{0}};
    CHECK_OK(ga_session_forward(s, 0, p, sc->prompt, false, out, &e), &e);
    for (int t = 0; t < sc->steps; t++) {
        const int seq = 0;
        const int32_t x = ttok(sc->prompt + t);
        CHECK_OK(ga_session_decode_batch(s, &seq, &x, 1, out + (size_t)(1 + t) * V, &e), &e);
    }
    free(p);
    ga_session_free(s);
    return out;
}

/* Batched: the others prefilled first, the target's prompt in sc->chunks pieces each shared
 * with two others' continuations in one forward_multi, then steps decodes in batches of
 * 3, 8, 17 (and 1), the target at a different row each time. Returns the target's rows as
 * run_alone does. */
static float *run_batched(const ga_model *m, ga_device dev, bool det, bool paged,
                          const script *sc) {
    const int V = m->cfg.vocab_size;
    ga_session *s = open_s(m, dev, det, sc->ctx_batch, MAXB, paged ? 1536 : 0);
    if (!s) return NULL;
    ga_err e = {{0}};
    float *out = calloc((size_t)(1 + sc->steps) * V, sizeof(float));
    float *lg = malloc((size_t)MAXB * V * sizeof(float));
    int32_t *buf = malloc((size_t)(sc->ctx_batch + 64) * sizeof *buf);
    int others[MAXB], no = 0;
    for (int id = 0; id < MAXB && no < sc->n_other; id++)
        if (id != TGT) others[no++] = id;
    for (int k = 0; k < no; k++) { /* the others, whole */
        const int n = other_len(sc, k);
        for (int i = 0; i < n; i++)
            buf[i] = tok(i, 100 + others[k]);
        CHECK_OK(ga_session_forward(s, others[k], buf, n, false, NULL, &e), &e);
    }
    /* The target's prompt in pieces; each piece beside 7 tokens of two others. */
    int done = 0;
    for (int c = 0; c < 3; c++) {
        const int n = sc->chunks[c];
        const int seqs[3] = {others[(2 * c + 1) % no], TGT, others[(2 * c + 2) % no]};
        int off[4] = {0, 7, 7 + n, 14 + n};
        for (int j = 0; j < 3; j++) {
            const int seq = seqs[j], len = ga_session_seq_len(s, seq);
            for (int i = off[j]; i < off[j + 1]; i++)
                buf[i] = seq == TGT ? ttok(done + i - off[j]) : tok(len + i - off[j], 100 + seq);
        }
        CHECK_OK(ga_session_forward_multi(s, 3, seqs, buf, off, false, lg, &e), &e);
        done += n;
    }
    CHECK(done == sc->prompt);
    memcpy(out, lg + V, (size_t)V * sizeof(float)); /* row 1: the target's last prompt token */
    static const int sizes[] = {3, 8, 17, 1};
    for (int t = 0; t < sc->steps; t++) {
        int nb = sizes[t % 4];
        if (nb > no + 1) nb = no + 1;
        const int at = t % nb; /* the target's row */
        int seqs[MAXB];
        int32_t x[MAXB];
        for (int r = 0, k = t; r < nb; r++) {
            if (r == at) {
                seqs[r] = TGT;
                x[r] = ttok(sc->prompt + t);
            } else {
                seqs[r] = others[k++ % no];
                x[r] = tok(ga_session_seq_len(s, seqs[r]), 100 + seqs[r]);
            }
        }
        CHECK_OK(ga_session_decode_batch(s, seqs, x, nb, lg, &e), &e);
        memcpy(out + (size_t)(1 + t) * V, lg + (size_t)at * V, (size_t)V * sizeof(float));
    }
    free(buf);
    free(lg);
    ga_session_free(s);
    return out;
}

/* Rows of the two runs that differ in any bit; prints the first. */
static int differing_rows(const float *a, const float *b, int rows, int V, const char *tag) {
    int n = 0;
    for (int r = 0; r < rows; r++)
        if (memcmp(a + (size_t)r * V, b + (size_t)r * V, (size_t)V * sizeof(float))) {
            if (!n) {
                int j = 0;
                while (a[(size_t)r * V + j] == b[(size_t)r * V + j])
                    j++;
                printf("  %s: row %d (%s) first differs at logit %d: %.9g vs %.9g\n", tag, r,
                       r ? "decode step" : "prompt", j, (double)a[(size_t)r * V + j],
                       (double)b[(size_t)r * V + j]);
            }
            n++;
        }
    return n;
}

static void compare(const ga_model *m, ga_device dev, bool paged, const script *sc,
                    const char *name) {
    const int V = m->cfg.vocab_size, rows = 1 + sc->steps;
    for (int det = 1; det >= 0; det--) {
        char tag[128];
        snprintf(tag, sizeof tag, "%s hd %d %s %s", name, m->cfg.head_dim,
                 paged ? "paged" : "slots", det ? "deterministic" : "default");
        float *a = run_alone(m, dev, det, paged, sc);
        float *b = run_batched(m, dev, det, paged, sc);
        if (!a || !b) {
            CHECK_MSG(false, "%s: a session failed", tag);
        } else {
            const int n = differing_rows(a, b, rows, V, tag);
            if (det)
                CHECK_MSG(n == 0, "%s: %d of %d rows differ bitwise between alone and batched", tag,
                          n, rows);
            else
                printf("  %s: %d of %d rows differ (information only)\n", tag, n, rows);
        }
        free(a);
        free(b);
        if (dev == GA_DEVICE_CPU) break; /* the CPU's default mode is the same arithmetic */
    }
}

static void cpu_section(void) {
    ga_model *m = ga_test_model_2l(16, GA_GATE_ELEMENTWISE, 512);
    if (!m) return;
    const script sc = {.ctx_alone = 100,
                       .ctx_batch = 300,
                       .prompt = 60,
                       .chunks = {13, 30, 17},
                       .n_other = 17,
                       .long_other = 200,
                       .steps = 9};
    compare(m, GA_DEVICE_CPU, false, &sc, "cpu");
    compare(m, GA_DEVICE_CPU, true, &sc, "cpu");
    ga_model_free(m);
}

#ifdef GA_HAVE_CUDA
static int gpu_section(void) {
    if (!ga_cuda_available()) {
        printf("no CUDA GPU: skipped\n");
        return 77;
    }
    /* The target crosses the first KV bucket (256) while decoding and is prefilled in
     * pieces that cross the prefill kernels' key tiles (64 / 128) and query tiles; one other
     * sequence puts the batch in the 2048 bucket; the alone session has a shorter context. */
    const script sc = {.ctx_alone = 400,
                       .ctx_batch = 2048,
                       .prompt = 300,
                       .chunks = {37, 128, 135},
                       .n_other = 19,
                       .long_other = 1500,
                       .steps = 40};
    for (int hd = 64; hd <= 128; hd += 64) {
        ga_model *m = ga_test_model_2l(hd, GA_GATE_ELEMENTWISE, 4096);
        if (!m) continue;
        compare(m, GA_DEVICE_CUDA, false, &sc, "cuda");
        compare(m, GA_DEVICE_CUDA, true, &sc, "cuda");
        ga_model_free(m);
    }
    /* deterministic takes the plain GEMM: another explicit choice is refused */
    ga_model *m = ga_test_model_2l(64, GA_GATE_ELEMENTWISE, 512);
    if (m) {
        ga_session_opts so = {.device = GA_DEVICE_CUDA,
                              .max_context = 64,
                              .deterministic = true,
                              .cuda_gemm = GA_CUDA_GEMM_LT};
        ga_err e = {{0}};
        ga_session *s = NULL;
        ga_status st = ga_session_create(m, &so, &s, &e);
        CHECK_MSG(st == GA_ERR_ARG && strstr(e.msg, "deterministic"), "deterministic + lt: %s: %s",
                  ga_status_name(st), e.msg);
        ga_session_free(s);
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
