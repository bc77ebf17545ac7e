/*
 * Model files are untrusted input: this test takes a valid model folder and loads thousands
 * of seeded random corruptions of its safetensors file and config.json (bit flips, byte
 * overwrites, truncations, header-length edits, JSON token edits). Each must either be
 * refused with a message (at load, bind or session creation) or run a forward pass that
 * returns GA_OK with all-finite logits, or an error with a message; under the sanitizer build
 * any out-of-bounds read, overflow or leak fails the suite.
 */
#include <sys/stat.h>

#include "core/model.h"
#include "testutil.h"

static char *slurp(const char *p, size_t *n) {
    return ga_test_read_file(p, n);
}

/* What happened to one corrupted model. */
typedef struct outcome {
    int refused;    /* load, bind or session creation failed */
    int ran;        /* forward returned GA_OK with every logit finite */
    int run_failed; /* forward returned an error */
    int silent;     /* a failure without a message */
    int bad_logits; /* forward returned GA_OK with a NaN/Inf (or unwritten) logit */
} outcome;

/* Loads dir and, when that works, creates a CPU session and runs a short forward pass. Every
 * failure must carry a message; a forward that reports success must return finite logits
 * (the buffer is poisoned with NaN first, so an unwritten logit counts as non-finite).
 * Returns 1 when the model loaded. */
static int try_load(const char *dir, outcome *o) {
    ga_err e = {{0}};
    ga_model *m = NULL;
    ga_status st = ga_model_load(dir, &m, &e);
    if (st != GA_OK) {
        o->refused++;
        o->silent += e.msg[0] == 0;
        return 0;
    }
    ga_session_opts so = {.device = GA_DEVICE_CPU, .max_context = 4, .n_threads = 1};
    ga_session *s = NULL;
    e.msg[0] = 0;
    st = ga_session_create(m, &so, &s, &e);
    if (st != GA_OK) {
        o->refused++;
        o->silent += e.msg[0] == 0;
        if (!e.msg[0]) fprintf(stderr, "session creation failed without a message\n");
    } else {
        const int V = ga_model_config(m)->vocab_size;
        int32_t ids[2] = {1 % V, 2 % V};
        float *lg = malloc((size_t)V * sizeof(float));
        for (int i = 0; i < V; i++)
            lg[i] = NAN;
        e.msg[0] = 0;
        st = ga_session_forward(s, 0, ids, 2, false, lg, &e);
        if (st != GA_OK) {
            o->run_failed++;
            o->silent += e.msg[0] == 0;
        } else {
            int bad = 0;
            for (int i = 0; i < V; i++)
                bad += !isfinite(lg[i]);
            if (bad) {
                o->bad_logits++;
                fprintf(stderr, "forward returned GA_OK with %d of %d logits non-finite\n", bad, V);
            } else {
                o->ran++;
            }
        }
        free(lg);
        ga_session_free(s);
    }
    ga_model_free(m);
    return 1;
}

int main(int argc, char **argv) {
    char *dir = ga_test_tmpdir("fuzz");
    ga_config c = {.vocab_size = 40,
                   .hidden_size = 16,
                   .intermediate_size = 24,
                   .n_layers = 1,
                   .n_heads = 2,
                   .n_kv_heads = 1,
                   .head_dim = 8,
                   .rms_norm_eps = 1e-6f,
                   .rope_theta = 1e4,
                   .max_position_embeddings = 16,
                   .use_qk_norm = true,
                   .tie_word_embeddings = true,
                   .gate = GA_GATE_ELEMENTWISE,
                   .bos_token_id = -1};
    ga_write_opts wo = {.seed = 5, .dtype = GA_BF16, .n_shards = 1};
    /* "fp8" (tests/fp8.cmake): F8_E4M3 projections with 8x8 block scales, so corruptions also
     * reach quantization_config and the scale binding. */
    if (argc > 1 && !strcmp(argv[1], "fp8"))
        wo = (ga_write_opts){.seed = 5, .dtype = GA_F8_E4M3, .fp8_block = 8, .n_shards = 1};
    ga_err e = {{0}};
    CHECK_OK(ga_model_write_random(dir, &c, &wo, &e), &e);
    char *st_path = ga_test_path(dir, "model.safetensors");
    char *cfg_path = ga_test_path(dir, "config.json");
    size_t st_len = 0, cfg_len = 0;
    char *st_orig = slurp(st_path, &st_len), *cfg_orig = slurp(cfg_path, &cfg_len);
    CHECK(st_orig && cfg_orig && st_len > 64);
    outcome o = {0};
    CHECK(try_load(dir, &o) == 1 && o.ran == 1); /* the clean model loads and runs */
    o = (outcome){0};
    uint64_t rng = 2024;
    const int N = (int)strtol(ga_test_env("GA_FUZZ_N", "6000"), NULL, 10);
    char *buf = malloc(st_len + cfg_len + 64);
    uint64_t hdr_len = 0;
    for (int i = 0; i < 8; i++)
        hdr_len |= (uint64_t)(uint8_t)st_orig[i] << (8 * i);
    for (int it = 0; it < N && st_orig && cfg_orig; it++) {
        uint64_t r = ga_test_rand_u64(&rng);
        bool on_cfg = (r & 7) == 0;
        const char *orig = on_cfg ? cfg_orig : st_orig;
        size_t len = on_cfg ? cfg_len : st_len, n = len;
        memcpy(buf, orig, len);
        /* Most mutations target the header (or the JSON), where the parser lives. */
        size_t span = on_cfg ? len : (size_t)(8 + hdr_len);
        switch ((r >> 3) % 6) {
        case 0: /* flip a few bits */
            for (int k = 0; k < 1 + (int)((r >> 8) % 4); k++) {
                size_t p = ga_test_rand_u64(&rng) % span;
                buf[p] ^= (char)(1u << (ga_test_rand_u64(&rng) % 8));
            }
            break;
        case 1: /* overwrite with a digit, quote, bracket or comma */
            for (int k = 0; k < 1 + (int)((r >> 8) % 3); k++)
                buf[ga_test_rand_u64(&rng) % span] =
                    "0123456789\"[]{},:-e."[ga_test_rand_u64(&rng) % 20];
            break;
        case 2: /* truncate */
            n = ga_test_rand_u64(&rng) % len;
            break;
        case 3: /* header length field: small deltas and wild values */
            if (!on_cfg) {
                uint64_t v = hdr_len;
                int64_t d = (int64_t)(ga_test_rand_u64(&rng) % 64) - 32;
                v = (r >> 40) & 1 ? (uint64_t)((int64_t)v + d) : ga_test_rand_u64(&rng);
                for (int b = 0; b < 8; b++)
                    buf[b] = (char)(v >> (8 * b));
            } else {
                n = len / 2;
            }
            break;
        case 4: { /* change one number in the JSON by a digit */
            size_t start = on_cfg ? 0 : 8;
            for (int tries = 0; tries < 50; tries++) {
                size_t p = start + ga_test_rand_u64(&rng) % (span - start);
                if (buf[p] >= '0' && buf[p] <= '9') {
                    buf[p] = (char)('0' + ga_test_rand_u64(&rng) % 10);
                    break;
                }
            }
            break;
        }
        default: /* append garbage (valid for the data section, never for config) */
            for (int k = 0; k < 16; k++)
                buf[n++] = (char)ga_test_rand_u64(&rng);
            break;
        }
        ga_test_write_file(on_cfg ? cfg_path : st_path, buf, n);
        try_load(dir, &o);
        ga_test_write_file(on_cfg ? cfg_path : st_path, orig, len);
    }
    CHECK_MSG(o.silent == 0, "%d failures had no message", o.silent);
    CHECK_MSG(o.bad_logits == 0, "%d forwards reported success with non-finite logits",
              o.bad_logits);
    CHECK(o.refused > N / 4); /* the mutations do hit the parser */
    CHECK(o.ran > N / 20);    /* and enough corrupted-but-valid models reach the forward */
    printf("%d mutations: %d refused with a message, %d ran with finite logits, %d forwards "
           "failed with a message\n",
           N, o.refused, o.ran, o.run_failed);
    free(buf);
    free(st_orig);
    free(cfg_orig);
    free(st_path);
    free(cfg_path);
    ga_test_rmtree(dir);
    free(dir);
    return ga_test_finish();
}
