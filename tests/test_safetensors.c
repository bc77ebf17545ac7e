/*
 * safetensors reading and model binding against hand-made files: a valid round trip, and
 * every malformed case (truncation, header past the end, bad JSON, offsets out of range,
 * wrong byte spans, overlaps, unsupported dtypes, duplicates, shard index problems, missing
 * tensors, wrong shapes). Each must fail with a message naming the file and the tensor.
 */
#include <signal.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/model.h"
#include "testutil.h"

static char *g_dir;

/* Writes a safetensors file from hl bytes of header and a data section of data_len bytes. */
static char *write_raw_n(const char *name, const char *hdr, size_t hl, size_t data_len,
                         int64_t len_override) {
    char *p = ga_test_path(g_dir, name);
    uint64_t n = len_override >= 0 ? (uint64_t)len_override : hl;
    size_t total = 8 + hl + data_len;
    uint8_t *buf = calloc(1, total);
    for (int i = 0; i < 8; i++)
        buf[i] = (uint8_t)(n >> (8 * i));
    memcpy(buf + 8, hdr, hl);
    for (size_t i = 0; i < data_len; i++)
        buf[8 + hl + i] = (uint8_t)i;
    ga_test_write_file(p, buf, total);
    free(buf);
    return p;
}

static char *write_raw(const char *name, const char *hdr, size_t data_len, int64_t len_override) {
    return write_raw_n(name, hdr, strlen(hdr), data_len, len_override);
}

static void expect_open_fail(const char *name, const char *hdr, size_t data_len,
                             int64_t len_override, ga_status code, const char *needle) {
    char *p = write_raw(name, hdr, data_len, len_override);
    ga_store *s = NULL;
    ga_err e = {{0}};
    ga_status st = ga_store_open_file(p, &s, &e);
    CHECK_MSG(st == code, "%s: got %s (%s), wanted %s", name, ga_status_name(st), e.msg,
              ga_status_name(code));
    CHECK_MSG(s == NULL, "%s: store returned on failure", name);
    CHECK_MSG(strstr(e.msg, p) != NULL, "%s: message '%s' does not name the file", name, e.msg);
    CHECK_MSG(strstr(e.msg, needle) != NULL, "%s: message '%s' lacks '%s'", name, e.msg, needle);
    ga_store_free(s);
    free(p);
}

static void test_roundtrip(void) {
    ga_store *mem = ga_store_new_memory();
    int64_t s1[2] = {3, 5}, s2[1] = {7}, s3[1] = {4};
    ga_tensor *a = ga_store_add_owned(mem, "a.weight", GA_F32, 2, s1);
    ga_tensor *b = ga_store_add_owned(mem, "b.weight", GA_BF16, 1, s2);
    ga_tensor *c = ga_store_add_owned(mem, "c.weight", GA_F16, 1, s3);
    CHECK(a && b && c);
    for (int i = 0; i < 15; i++)
        ((float *)a->data)[i] = (float)i * 0.5f - 3.0f;
    for (int i = 0; i < 7; i++)
        ((uint16_t *)b->data)[i] = ga_f32_to_bf16((float)i + 0.25f);
    for (int i = 0; i < 4; i++)
        ((uint16_t *)c->data)[i] = ga_f32_to_f16((float)i / 3.0f);
    const ga_tensor *all[3] = {a, b, c};
    char *p = ga_test_path(g_dir, "ok.safetensors");
    ga_err e = {{0}};
    CHECK_OK(ga_safetensors_write(p, all, 3, &e), &e);
    ga_store *s = NULL;
    CHECK_OK(ga_store_open_file(p, &s, &e), &e);
    if (s) {
        CHECK(ga_store_count(s) == 3);
        const ga_tensor *ra = ga_store_find(s, "a.weight"), *rb = ga_store_find(s, "b.weight");
        const ga_tensor *rc = ga_store_find(s, "c.weight");
        CHECK(ra && rb && rc && !ga_store_find(s, "zzz"));
        if (ra && rb && rc) {
            CHECK(ra->dtype == GA_F32 && ra->ndim == 2 && ra->shape[0] == 3 && ra->shape[1] == 5);
            float f[15];
            ga_tensor_read_f32(ra, 0, 15, f);
            CHECK(f[0] == -3.0f && f[14] == 4.0f);
            ga_tensor_read_f32(rb, 0, 7, f);
            CHECK(f[6] == 6.25f);
            ga_tensor_read_f32(rc, 0, 4, f);
            CHECK(fabsf(f[1] - 1.0f / 3.0f) < 1e-3f && f[0] == 0.0f);
        }
    }
    ga_store_free(s);
    ga_store_free(mem);
    free(p);
}

static void test_dtype_conversions(void) {
    /* f16: exact round trips of representable values, subnormals, overflow, NaN */
    float vals[] = {0.0f, -0.0f, 1.0f, -2.5f, 65504.0f, 6.103515625e-05f, 5.9604645e-08f, 0.1f};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        float back = ga_f16_to_f32(ga_f32_to_f16(vals[i]));
        CHECK_MSG(fabsf(back - vals[i]) <= fabsf(vals[i]) * 1e-3f, "%g -> %g", vals[i], back);
    }
    CHECK(isinf(ga_f16_to_f32(ga_f32_to_f16(1e6f))));
    CHECK(isnan(ga_f16_to_f32(ga_f32_to_f16(NAN))));
    /* bf16: round to nearest even */
    CHECK(ga_f32_to_bf16(1.0f) == 0x3f80);
    CHECK(ga_bf16_to_f32(ga_f32_to_bf16(1.00390625f)) == 1.0f);      /* tie -> even */
    CHECK(ga_bf16_to_f32(ga_f32_to_bf16(1.01171875f)) == 1.015625f); /* tie -> even (up) */
    CHECK(isnan(ga_bf16_to_f32(ga_f32_to_bf16(NAN))));
}

/* ga_tensor_find_nonfinite / ga_f32_find_nonfinite: every dtype, hits inside and at the
 * edges of the 64-value scan blocks, and the bf16-overflow option. */
static void test_nonfinite_scan(void) {
    enum { N = 300 };
    int64_t shape[1] = {N};
    ga_store *mem = ga_store_new_memory();
    ga_tensor *f = ga_store_add_owned(mem, "f", GA_F32, 1, shape);
    ga_tensor *b = ga_store_add_owned(mem, "b", GA_BF16, 1, shape);
    ga_tensor *h = ga_store_add_owned(mem, "h", GA_F16, 1, shape);
    CHECK(f && b && h);
    if (!f || !b || !h) return;
    float *fv = (float *)f->data;
    uint16_t *bv = (uint16_t *)b->data, *hv = (uint16_t *)h->data;
    const float bad[3] = {NAN, INFINITY, -INFINITY};
    const int64_t at[6] = {0, 1, 63, 64, 200, N - 1};
    for (int i = 0; i < N; i++) {
        fv[i] = (float)(i - 150) * 1e3f;
        bv[i] = ga_f32_to_bf16(fv[i]);
        hv[i] = ga_f32_to_f16(fv[i] / 1e3f);
    }
    CHECK(ga_tensor_find_nonfinite(f, 0, N, true) == -1);
    CHECK(ga_tensor_find_nonfinite(b, 0, N, true) == -1);
    CHECK(ga_tensor_find_nonfinite(h, 0, N, true) == -1);
    CHECK(ga_f32_find_nonfinite(fv, N) == -1);
    for (int k = 0; k < 6; k++)
        for (int j = 0; j < 3; j++) {
            int64_t i = at[k];
            float of = fv[i];
            uint16_t ob = bv[i], oh = hv[i];
            fv[i] = bad[j];
            bv[i] = ga_f32_to_bf16(bad[j]);
            hv[i] = ga_f32_to_f16(bad[j]);
            CHECK_MSG(ga_tensor_find_nonfinite(f, 0, N, false) == i, "f32 %g at %lld", bad[j],
                      (long long)i);
            CHECK_MSG(ga_tensor_find_nonfinite(b, 0, N, false) == i, "bf16 %g at %lld", bad[j],
                      (long long)i);
            CHECK_MSG(ga_tensor_find_nonfinite(h, 0, N, false) == i, "f16 %g at %lld", bad[j],
                      (long long)i);
            CHECK(ga_f32_find_nonfinite(fv, N) == i);
            /* a window that starts after the bad value does not see it; indices stay absolute */
            CHECK(ga_tensor_find_nonfinite(b, i + 1, N - i - 1, false) == -1);
            if (i > 0) CHECK(ga_tensor_find_nonfinite(b, 1, N - 1, false) == i);
            fv[i] = of;
            bv[i] = ob;
            hv[i] = oh;
        }
    /* 3.4e38 is a finite float but rounds to bf16 infinity: flagged only for bf16 uploads */
    fv[77] = 3.4e38f;
    CHECK(ga_tensor_find_nonfinite(f, 0, N, false) == -1);
    CHECK(ga_tensor_find_nonfinite(f, 0, N, true) == 77);
    fv[77] = 3.38e38f; /* rounds to the largest finite bf16 */
    CHECK(ga_tensor_find_nonfinite(f, 0, N, true) == -1);
    ga_err e = {{0}};
    fv[77] = NAN;
    CHECK(ga_tensor_nonfinite_err(f, 77, &e) == GA_ERR_FORMAT);
    CHECK_MSG(strstr(e.msg, "tensor \"f\"") && strstr(e.msg, "element 77 is NaN"), "%s", e.msg);
    ga_store_free(mem);
}

static void test_malformed(void) {
    const char *T1 = "\"t\": {\"dtype\": \"F32\", \"shape\": [2, 2], \"data_offsets\": [0, 16]}";
    char hdr[512];
    /* too short for a length */
    char *p = ga_test_path(g_dir, "short.safetensors");
    ga_test_write_file(p, "abc", 3);
    ga_store *s = NULL;
    ga_err e = {{0}};
    CHECK(ga_store_open_file(p, &s, &e) == GA_ERR_FORMAT && strstr(e.msg, "too short"));
    free(p);
    snprintf(hdr, sizeof hdr, "{%s}", T1);
    expect_open_fail("len_past_end.safetensors", hdr, 16, 1 << 20, GA_ERR_FORMAT, "past the end");
    expect_open_fail("len_huge.safetensors", hdr, 16, INT64_MAX, GA_ERR_FORMAT, "past the end");
    expect_open_fail("bad_json.safetensors", "{\"t\": {\"dtype\": ", 16, -1, GA_ERR_FORMAT, "JSON");
    expect_open_fail("not_obj.safetensors", "[1,2,3]", 16, -1, GA_ERR_FORMAT, "object");
    expect_open_fail("truncated_data.safetensors", hdr, 10, -1, GA_ERR_FORMAT, "outside the data");
    expect_open_fail("off_range.safetensors",
                     "{\"t\": {\"dtype\": \"F32\", \"shape\": [2, 2], \"data_offsets\": [8, 24]}}",
                     16, -1, GA_ERR_FORMAT, "outside the data");
    expect_open_fail("off_reversed.safetensors",
                     "{\"t\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [8, 4]}}", 16,
                     -1, GA_ERR_FORMAT, "\"t\"");
    expect_open_fail("span.safetensors",
                     "{\"t\": {\"dtype\": \"F32\", \"shape\": [2, 3], \"data_offsets\": [0, 16]}}",
                     16, -1, GA_ERR_FORMAT, "needs 24 bytes");
    expect_open_fail("overlap.safetensors",
                     "{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}, "
                     "\"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [4, 12]}}",
                     16, -1, GA_ERR_FORMAT, "overlap");
    expect_open_fail("dtype.safetensors",
                     "{\"t\": {\"dtype\": \"I64\", \"shape\": [2], \"data_offsets\": [0, 16]}}", 16,
                     -1, GA_ERR_UNSUPPORTED, "I64");
    expect_open_fail("neg_shape.safetensors",
                     "{\"t\": {\"dtype\": \"F32\", \"shape\": [-2], \"data_offsets\": [0, 8]}}", 16,
                     -1, GA_ERR_FORMAT, "shape");
    expect_open_fail(
        "five_dims.safetensors",
        "{\"t\": {\"dtype\": \"F32\", \"shape\": [1,1,1,1,1], \"data_offsets\": [0, 4]}}", 16, -1,
        GA_ERR_FORMAT, "dimensions");
    expect_open_fail("huge_shape.safetensors",
                     "{\"t\": {\"dtype\": \"F32\", \"shape\": [1099511627776, 1099511627776], "
                     "\"data_offsets\": [0, 4]}}",
                     16, -1, GA_ERR_FORMAT, "shape");
    expect_open_fail("no_offsets.safetensors", "{\"t\": {\"dtype\": \"F32\", \"shape\": [1]}}", 16,
                     -1, GA_ERR_FORMAT, "data_offsets");
    expect_open_fail("dup.safetensors",
                     "{\"t\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}, "
                     "\"t\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]}}",
                     16, -1, GA_ERR_FORMAT, "twice");
    expect_open_fail("frac_off.safetensors",
                     "{\"t\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0.5, 4.5]}}",
                     16, -1, GA_ERR_FORMAT, "data_offsets");
    /* Strict JSON (issue 10 item 5): duplicates at any depth, NUL in names and values, and
     * bytes after the header JSON other than the whitespace padding are refused. */
    expect_open_fail("dup_nested.safetensors",
                     "{\"t\": {\"dtype\": \"F32\", \"dtype\": \"I64\", \"shape\": [1], "
                     "\"data_offsets\": [0, 4]}}",
                     16, -1, GA_ERR_FORMAT, "key \"dtype\" appears twice in \"t\"");
    expect_open_fail(
        "nul_name.safetensors",
        "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}, "
        "\"model.embed_tokens.weight\\u0000evil\": {\"dtype\": \"F32\", \"shape\": [1], "
        "\"data_offsets\": [4, 8]}}",
        16, -1, GA_ERR_FORMAT, "NUL) inside a JSON string starting \"model.embed_tokens.weight\"");
    expect_open_fail(
        "nul_dtype.safetensors",
        "{\"t\": {\"dtype\": \"F32\\u0000\", \"shape\": [1], \"data_offsets\": [0, 4]}}", 16, -1,
        GA_ERR_FORMAT, "NUL");
    expect_open_fail("trailing.safetensors",
                     "{\"t\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}x  ",
                     16, -1, GA_ERR_FORMAT, "after the JSON value");
    expect_open_fail("trailing_obj.safetensors",
                     "{\"t\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}"
                     "{\"u\": {}}",
                     16, -1, GA_ERR_FORMAT, "after the JSON value");
    {
        static const char raw[] = "{\"t\\u0041\0evil\": {\"dtype\": \"F32\", \"shape\": [1], "
                                  "\"data_offsets\": [0, 4]}}";
        char *rp = write_raw_n("raw_nul.safetensors", raw, sizeof raw - 1, 16, -1);
        CHECK(ga_store_open_file(rp, &s, &e) == GA_ERR_FORMAT && s == NULL);
        CHECK_MSG(strstr(e.msg, rp) && strstr(e.msg, "raw control byte 0x00"), "raw NUL: %s",
                  e.msg);
        free(rp);
    }
    { /* space padding inside the header length is the format's own and is accepted */
        char *pp = write_raw("padded.safetensors",
                             "{\"t\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": "
                             "[0, 4]}}       ",
                             4, -1);
        CHECK_OK(ga_store_open_file(pp, &s, &e), &e);
        ga_store_free(s);
        s = NULL;
        free(pp);
    }
    /* A file that is not safetensors is described in words, not by its first bytes read as a
     * number ("this is " is 2338328219631577204 as a little-endian u64). */
    {
        char *tp = ga_test_path(g_dir, "text.safetensors");
        const char *txt = "this is not a model, just some text\n";
        ga_test_write_file(tp, txt, strlen(txt));
        CHECK(ga_store_open_file(tp, &s, &e) == GA_ERR_FORMAT);
        CHECK_MSG(strstr(e.msg, tp) && strstr(e.msg, "not a safetensors file") &&
                      strstr(e.msg, "text") && !strstr(e.msg, "2338328219631577204"),
                  "text file: %s", e.msg);
        free(tp);
        static const uint8_t gz[16] = {0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00,
                                       0x00, 0x03, 0xab, 0xae, 0x05, 0x00, 0x43, 0xbf};
        char *zp = ga_test_path(g_dir, "gz.safetensors");
        ga_test_write_file(zp, gz, sizeof gz);
        CHECK(ga_store_open_file(zp, &s, &e) == GA_ERR_FORMAT);
        CHECK_MSG(strstr(e.msg, "not a safetensors file") && !strstr(e.msg, "559903"),
                  "gzip file: %s", e.msg);
        free(zp);
    }
    /* valid with metadata and an empty tensor sharing an offset */
    char *ok = write_raw("meta.safetensors",
                         "{\"__metadata__\": {\"format\": \"pt\"}, \"e\": {\"dtype\": \"F32\", "
                         "\"shape\": [0], \"data_offsets\": [4, 4]}, \"t\": {\"dtype\": \"F32\", "
                         "\"shape\": [2], \"data_offsets\": [0, 8]}}",
                         8, -1);
    CHECK_OK(ga_store_open_file(ok, &s, &e), &e);
    ga_store_free(s);
    free(ok);
}

/* A model folder with a config and one safetensors file from a store, for binding tests. */
static char *model_dir_with(const char *name, const ga_config *c, ga_store *st) {
    char *d = ga_test_path(g_dir, name);
    mkdir(d, 0755);
    char *cfg = ga_config_to_json(c);
    char *cp = ga_test_path(d, "config.json");
    ga_test_write_file(cp, cfg, strlen(cfg));
    int n = ga_store_count(st);
    const ga_tensor **all = malloc((size_t)n * sizeof *all);
    for (int i = 0; i < n; i++)
        all[i] = ga_store_at(st, i);
    char *sp = ga_test_path(d, "model.safetensors");
    ga_err e;
    ga_safetensors_write(sp, all, n, &e);
    free(all);
    free(sp);
    free(cp);
    free(cfg);
    return d;
}

static void test_binding(void) {
    ga_config c = {.vocab_size = 50,
                   .hidden_size = 16,
                   .intermediate_size = 24,
                   .n_layers = 2,
                   .n_heads = 4,
                   .n_kv_heads = 2,
                   .head_dim = 8,
                   .rms_norm_eps = 1e-6f,
                   .rope_theta = 1e4,
                   .max_position_embeddings = 64,
                   .use_qk_norm = true,
                   .gate = GA_GATE_HEADWISE,
                   .tie_word_embeddings = true,
                   .bos_token_id = -1};
    ga_err e = {{0}};
    ga_model *m = NULL;
    /* a good folder */
    ga_store *st = NULL;
    CHECK_OK(ga_model_random_store(&c, 1, GA_F32, 0.1f, &st, &e), &e);
    char *good = model_dir_with("good", &c, st);
    CHECK_OK(ga_model_load(good, &m, &e), &e);
    if (m) {
        CHECK(m->layers[1].q_proj->shape[0] == 4 * 8 + 4);
        CHECK(!strcmp(ga_model_name(m), "good"));
    }
    ga_model_free(m);
    /* the same weights under a config that says elementwise: q_proj has the wrong shape */
    ga_config ew = c;
    ew.gate = GA_GATE_ELEMENTWISE;
    char *wrong = model_dir_with("wrong_shape", &ew, st);
    CHECK(ga_model_load(wrong, &m, &e) == GA_ERR_SHAPE);
    CHECK_MSG(strstr(e.msg, "model.layers.0.self_attn.q_proj.weight") &&
                  strstr(e.msg, "(64, 16)") && strstr(e.msg, "(36, 16)"),
              "message: %s", e.msg);
    /* untied config without lm_head: missing tensor */
    ga_config ut = c;
    ut.tie_word_embeddings = false;
    char *missing = model_dir_with("missing", &ut, st);
    CHECK(ga_model_load(missing, &m, &e) == GA_ERR_SHAPE);
    CHECK_MSG(strstr(e.msg, "missing tensor \"lm_head.weight\"") && strstr(e.msg, "missing"),
              "message: %s", e.msg);
    /* no weights at all */
    char *empty = ga_test_path(g_dir, "empty");
    mkdir(empty, 0755);
    char *cfg = ga_config_to_json(&c);
    char *cp = ga_test_path(empty, "config.json");
    ga_test_write_file(cp, cfg, strlen(cfg));
    CHECK(ga_model_load(empty, &m, &e) == GA_ERR_IO && strstr(e.msg, "no model.safetensors"));
    /* sharded: path traversal, missing shard, index pointing at the wrong shard */
    char *idx = ga_test_path(empty, "model.safetensors.index.json");
    const char *bad_idx[] = {
        "{\"weight_map\": {\"model.norm.weight\": \"../good/model.safetensors\"}}",
        "{\"weight_map\": {\"model.norm.weight\": \"model-00001-of-00002.safetensors\"}}",
        "{\"weight_map\": 3}",
        "{\"weight_map\": {\"model.norm.weight\": 7}}",
    };
    const char *needles[] = {"plain file name", "cannot open", "weight_map", "file name"};
    for (int i = 0; i < 4; i++) {
        ga_test_write_file(idx, bad_idx[i], strlen(bad_idx[i]));
        ga_status r = ga_model_load(empty, &m, &e);
        CHECK_MSG(r != GA_OK && strstr(e.msg, needles[i]), "index %d: %s", i, e.msg);
    }
    /* a real shard, but the index claims a tensor it does not hold */
    char *gs = ga_test_path(good, "model.safetensors");
    char *sh = ga_test_path(empty, "shard.safetensors");
    size_t len;
    char *bytes = ga_test_read_file(gs, &len);
    ga_test_write_file(sh, bytes, len);
    const char *claim = "{\"weight_map\": {\"model.norm.weight\": \"shard.safetensors\", "
                        "\"not.a.tensor\": \"shard.safetensors\"}}";
    ga_test_write_file(idx, claim, strlen(claim));
    CHECK(ga_model_load(empty, &m, &e) == GA_ERR_FORMAT && strstr(e.msg, "not.a.tensor"));
    /* and the valid sharded form of the same file loads */
    const char *fine = "{\"weight_map\": {\"model.norm.weight\": \"shard.safetensors\"}}";
    ga_test_write_file(idx, fine, strlen(fine));
    CHECK_OK(ga_model_load(empty, &m, &e), &e);
    ga_model_free(m);
    m = NULL;
    /* The index is strict JSON too: a duplicate tensor, a NUL in a shard name (it once opened
     * "shard.safetensors" for "shard.safetensors\u0000x"), trailing bytes. */
    const char *strict_idx[] = {
        "{\"weight_map\": {\"model.norm.weight\": \"shard.safetensors\", \"model.norm.weight\": "
        "\"other.safetensors\"}}",
        "{\"weight_map\": {\"model.norm.weight\": \"shard.safetensors\\u0000x\"}}",
        "{\"weight_map\": {\"model.norm.weight\": \"shard.safetensors\"}} x",
    };
    const char *strict_needles[] = {"key \"model.norm.weight\" appears twice in \"weight_map\"",
                                    "(NUL) inside a JSON string", "after the JSON value"};
    for (int i = 0; i < 3; i++) {
        ga_test_write_file(idx, strict_idx[i], strlen(strict_idx[i]));
        ga_status r = ga_model_load(empty, &m, &e);
        CHECK_MSG(r == GA_ERR_FORMAT && strstr(e.msg, strict_needles[i]) && strstr(e.msg, idx),
                  "strict index %d: %s", i, e.msg);
        ga_model_free(m);
        m = NULL;
    }
    /* Only regular files (issue 10 item 9): a FIFO named like a model file is refused, never
     * waited on (the alarm kills a regression that blocks), and a folder of symlinks to
     * regular files, as the Hugging Face cache lays them out, loads. */
    {
        char *ff = ga_test_path(g_dir, "fifo");
        mkdir(ff, 0755);
        char *fcfg = ga_test_path(ff, "config.json"), *fst = ga_test_path(ff, "model.safetensors");
        char *fidx = ga_test_path(ff, "model.safetensors.index.json");
        char *gcfg = ga_test_path(good, "config.json");
        CHECK(symlink(gcfg, fcfg) == 0);
        CHECK(mkfifo(fst, 0600) == 0);
        alarm(20);
        CHECK(ga_model_load(ff, &m, &e) == GA_ERR_IO);
        CHECK_MSG(strstr(e.msg, fst) && strstr(e.msg, "not a regular file (a FIFO)"), "fifo: %s",
                  e.msg);
        unlink(fst);
        CHECK(mkfifo(fidx, 0600) == 0);
        CHECK(ga_model_load(ff, &m, &e) == GA_ERR_IO);
        CHECK_MSG(strstr(e.msg, fidx) && strstr(e.msg, "not a regular file"), "fifo index: %s",
                  e.msg);
        unlink(fidx);
        CHECK(mkdir(fst, 0755) == 0); /* a directory named model.safetensors */
        CHECK(ga_model_load(ff, &m, &e) == GA_ERR_IO);
        CHECK_MSG(strstr(e.msg, "not a regular file (a directory)"), "dir: %s", e.msg);
        rmdir(fst);
        unlink(fcfg);
        CHECK(mkfifo(fcfg, 0600) == 0);
        CHECK(ga_model_load(ff, &m, &e) == GA_ERR_IO);
        CHECK_MSG(strstr(e.msg, fcfg) && strstr(e.msg, "not a regular file"), "fifo config: %s",
                  e.msg);
        alarm(0);
        unlink(fcfg);
        char *gst = ga_test_path(good, "model.safetensors");
        CHECK(symlink(gcfg, fcfg) == 0 && symlink(gst, fst) == 0);
        CHECK_OK(ga_model_load(ff, &m, &e), &e);
        ga_model_free(m);
        m = NULL;
        free(gst);
        free(gcfg);
        free(fidx);
        free(fst);
        free(fcfg);
        free(ff);
    }
    free(bytes);
    free(gs);
    free(sh);
    free(idx);
    free(cp);
    free(cfg);
    free(empty);
    free(missing);
    free(wrong);
    free(good);
    ga_store_free(st);
}

int main(void) {
    g_dir = ga_test_tmpdir("st");
    CHECK(g_dir != NULL);
    if (!g_dir) return ga_test_finish();
    test_roundtrip();
    test_dtype_conversions();
    test_nonfinite_scan();
    test_malformed();
    test_binding();
    ga_test_rmtree(g_dir);
    free(g_dir);
    return ga_test_finish();
}
