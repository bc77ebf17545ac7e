/*
 * FP8 checkpoints (issue 15 item 4): the e4m3 table against the OCP bit fields, rounding into
 * e4m3, dequantisation through the tensor readers with block scales (square and non-square
 * blocks, sizes that are not multiples of the block), NaN/Inf after scaling, every binding
 * error (missing scale, wrong scale shape, scale dtype, F8_E5M2, quantization_config problems,
 * F8 without quantization_config, a scale beside a non-F8 weight).
 *
 * With `--dequantise SRC DST` it is instead the tool of tests/test_fp8_cli.sh: it writes DST,
 * the model of the FP8 folder SRC with every weight as F32, dequantised here from the stored
 * bytes by this file's own decoder (bit fields, not the library's table) and the scales read
 * from the file, and SRC's config.json without quantization_config. That folder's logits must
 * equal SRC's bitwise: both backends see the same fp32 (or bf16) weights.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "core/model.h"
#include "testutil.h"

static char *g_dir;

/* e4m3 from its bit fields (OCP 8-bit floating point specification v1.0, E4M3): bias 7,
 * exponent field 0 subnormal, S.1111.111 NaN, no infinities. */
static float e4m3_ref(uint8_t b) {
    const int s = b >> 7, e = (b >> 3) & 15, m = b & 7;
    if (e == 15 && m == 7) return NAN;
    const double mag = e == 0 ? ldexp(m, -9) : ldexp(8 + m, e - 10);
    return (float)(s ? -mag : mag);
}

static void test_table(void) {
    int same = 0;
    for (int b = 0; b < 256; b++) {
        const float v = ga_e4m3_to_f32((uint8_t)b), r = e4m3_ref((uint8_t)b);
        uint32_t uv, ur;
        memcpy(&uv, &v, 4);
        memcpy(&ur, &r, 4);
        const bool ok = isnan(r) ? isnan(v) : uv == ur; /* bitwise: -0 is -0 */
        same += ok;
        if (!ok) fprintf(stderr, "e4m3 0x%02x: table %a, bit fields %a\n", b, v, r);
    }
    CHECK_MSG(same == 256, "%d of 256 e4m3 values agree", same);
    CHECK(ga_e4m3_to_f32(0x7e) == 448.0f && ga_e4m3_to_f32(0xfe) == -448.0f);
    CHECK(isnan(ga_e4m3_to_f32(0x7f)) && isnan(ga_e4m3_to_f32(0xff)));
    CHECK(ga_e4m3_to_f32(0x01) == ldexpf(1, -9)); /* smallest subnormal */
    CHECK(ga_e4m3_to_f32(0x08) == ldexpf(1, -6)); /* smallest normal */
    int finite = 0;
    for (int b = 0; b < 256; b++)
        finite += isfinite(ga_e4m3_to_f32((uint8_t)b));
    CHECK(finite == 254); /* e4m3fn: no infinities, two NaNs */
}

static void test_round(void) {
    int back = 0, ties = 0, near = 0;
    for (int b = 0; b < 256; b++) {
        const float v = e4m3_ref((uint8_t)b);
        if (isnan(v)) continue;
        back += ga_f32_to_e4m3(v) == b;
    }
    CHECK_MSG(back == 254, "%d of 254 finite codes round-trip", back);
    /* Midpoints go to the even code; just off a midpoint goes to the nearer one. */
    for (int k = 0; k < 126; k++) {
        const float lo = e4m3_ref((uint8_t)k), hi = e4m3_ref((uint8_t)(k + 1));
        const float mid = (lo + hi) / 2; /* exact: the values have 4 significant bits */
        ties += ga_f32_to_e4m3(mid) == ((k & 1) ? k + 1 : k);
        near += ga_f32_to_e4m3(nextafterf(mid, 0)) == k &&
                ga_f32_to_e4m3(nextafterf(mid, 1e9f)) == k + 1;
        near += ga_f32_to_e4m3(-nextafterf(mid, 0)) == (0x80 | k);
    }
    CHECK_MSG(ties == 126, "%d of 126 midpoints round to even", ties);
    CHECK_MSG(near == 252, "%d of 252 near-midpoint cases", near);
    CHECK(ga_f32_to_e4m3(1000.0f) == 0x7e && ga_f32_to_e4m3(-1e30f) == 0xfe); /* saturates */
    CHECK(ga_f32_to_e4m3(INFINITY) == 0x7e);
    CHECK((ga_f32_to_e4m3(NAN) & 0x7f) == 0x7f);
    CHECK(ga_f32_to_e4m3(1e-10f) == 0 && ga_f32_to_e4m3(-1e-10f) == 0x80);
}

static uint64_t g_rng = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(void) {
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (uint32_t)(g_rng >> 11);
}

/* The readers against an independent dequantisation, for (rows, cols) in (bh, bw) blocks and
 * a scale tensor of dtype sdt. Reads at random offsets and lengths, so runs cross block and
 * row boundaries. */
static void check_reader(int64_t rows, int64_t cols, int bh, int bw, ga_dtype sdt) {
    ga_store *s = ga_store_new_memory();
    const int64_t shp[2] = {rows, cols};
    const int64_t sshp[2] = {(rows + bh - 1) / bh, (cols + bw - 1) / bw};
    ga_tensor *w = ga_store_add_owned(s, "w.weight", GA_F8_E4M3, 2, shp);
    ga_tensor *sc = ga_store_add_owned(s, "w.weight_scale_inv", sdt, 2, sshp);
    w = (ga_tensor *)ga_store_find(s, "w.weight");
    uint8_t *q = (uint8_t *)w->data;
    for (int64_t i = 0; i < rows * cols; i++) {
        q[i] = (uint8_t)rnd();
        if ((q[i] & 0x7f) == 0x7f) q[i] ^= 1; /* no NaN codes here */
    }
    float *sref = malloc((size_t)(sshp[0] * sshp[1]) * sizeof(float));
    for (int64_t i = 0; i < sshp[0] * sshp[1]; i++) {
        float v = ldexpf(1.0f + (float)(rnd() % 256) / 256.0f, -(int)(rnd() % 12));
        if (sdt == GA_F32) {
            memcpy((uint8_t *)sc->data + 4 * i, &v, 4);
        } else {
            const uint16_t h = sdt == GA_BF16 ? ga_f32_to_bf16(v) : ga_f32_to_f16(v);
            v = sdt == GA_BF16 ? ga_bf16_to_f32(h) : ga_f16_to_f32(h); /* exact for these */
            memcpy((uint8_t *)sc->data + 2 * i, &h, 2);
        }
        sref[i] = v;
    }
    ga_err err = {{0}};
    const int blk[2] = {bh, bw};
    CHECK_OK(ga_store_bind_fp8(s, blk, "<memory>", &err), &err);
    w = (ga_tensor *)ga_store_find(s, "w.weight");
    const int64_t n = rows * cols;
    float *ref = malloc((size_t)n * sizeof(float)), *got = malloc((size_t)n * sizeof(float));
    uint16_t *gotb = malloc((size_t)n * sizeof(uint16_t));
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < cols; j++)
            ref[i * cols + j] = e4m3_ref(q[i * cols + j]) * sref[(i / bh) * sshp[1] + j / bw];
    int bad = 0, badb = 0;
    for (int trial = 0; trial < 40; trial++) {
        const int64_t first = trial == 0 ? 0 : (int64_t)(rnd() % (uint32_t)n);
        const int64_t len = trial == 0 ? n : 1 + (int64_t)(rnd() % (uint32_t)(n - first));
        for (int64_t i = 0; i < len; i++)
            got[i] = NAN;
        ga_tensor_read_f32(w, first, len, got);
        ga_tensor_read_bf16(w, first, len, gotb);
        for (int64_t i = 0; i < len; i++) {
            bad += memcmp(&got[i], &ref[first + i], 4) != 0;
            badb += gotb[i] != ga_f32_to_bf16(ref[first + i]);
        }
    }
    CHECK_MSG(bad == 0 && badb == 0,
              "(%lld, %lld) in %dx%d blocks, %s scales: %d f32, %d bf16 "
              "values differ",
              (long long)rows, (long long)cols, bh, bw, ga_dtype_name(sdt), bad, badb);
    CHECK(ga_tensor_find_nonfinite(w, 0, n, true) == -1);

    /* A finite code times a scale too large: infinite after scaling, refused by index. */
    const int64_t at = n - 1 - (int64_t)(rnd() % (uint32_t)(n < 50 ? n : 50));
    const int64_t r = at / cols, c = at % cols, si = (r / bh) * sshp[1] + c / bw;
    q[at] = 0x7e; /* 448 */
    const float huge = 1e37f;
    if (sdt == GA_F32) {
        memcpy((uint8_t *)sc->data + 4 * si, &huge, 4);
        int64_t first_bad = -1; /* the first element of that block with a nonzero code */
        for (int64_t i = 0; i < n && first_bad < 0; i++)
            if ((i / cols) / bh * sshp[1] + (i % cols) / bw == si && (q[i] & 0x7f) != 0)
                first_bad = i;
        const int64_t found = ga_tensor_find_nonfinite(w, 0, n, false);
        CHECK_MSG(found >= 0 && found <= at, "infinite product found at %lld (block from %lld)",
                  (long long)found, (long long)first_bad);
        if (found >= 0) {
            float v;
            ga_tensor_read_f32(w, found, 1, &v);
            CHECK(isinf(v) || fabsf(v) >= 3.38953139e38f);
            ga_tensor_nonfinite_err(w, found, &err);
            CHECK_MSG(strstr(err.msg, "w.weight_scale_inv") && strstr(err.msg, "\"w.weight\""),
                      "%s", err.msg);
        }
    }
    free(ref);
    free(got);
    free(gotb);
    free(sref);
    ga_store_free(s);
}

/* ------------------------------------------------------------------ binding errors */

/* A store of one F8 weight (4, 6) and a scale of the given dtype and shape (sdt < 0: none). */
static ga_status bind_case(ga_dtype wdt, int sdt, int64_t s0, int64_t s1, const int blk[2],
                           ga_err *err) {
    ga_store *s = ga_store_new_memory();
    const int64_t shp[2] = {4, 6}, sshp[2] = {s0, s1};
    ga_store_add_owned(s, "model.layers.0.mlp.up_proj.weight", wdt, 2, shp);
    if (sdt >= 0)
        ga_store_add_owned(s, "model.layers.0.mlp.up_proj.weight_scale_inv", (ga_dtype)sdt, 2,
                           sshp);
    ga_status st = ga_store_bind_fp8(s, blk, "/models/m", err);
    ga_store_free(s);
    return st;
}

static void test_bind_errors(void) {
    ga_err err = {{0}};
    const int b128[2] = {128, 128}, b4x4[2] = {4, 4}, none[2] = {0, 0};
    CHECK_OK(bind_case(GA_F8_E4M3, GA_F32, 1, 1, b128, &err), &err);
    CHECK_OK(bind_case(GA_F8_E4M3, GA_BF16, 1, 2, b4x4, &err), &err);
    /* missing scale */
    CHECK(bind_case(GA_F8_E4M3, -1, 0, 0, b128, &err) == GA_ERR_SHAPE);
    CHECK_MSG(strstr(err.msg, "\"model.layers.0.mlp.up_proj.weight\"") &&
                  strstr(err.msg, "\"model.layers.0.mlp.up_proj.weight_scale_inv\"") &&
                  strstr(err.msg, "missing") && strstr(err.msg, "(1, 1)"),
              "%s", err.msg);
    /* wrong shape: 4x4 blocks of (4, 6) are (1, 2) */
    CHECK(bind_case(GA_F8_E4M3, GA_F32, 1, 1, b4x4, &err) == GA_ERR_SHAPE);
    CHECK_MSG(strstr(err.msg, "expected shape (1, 2), found (1, 1)") &&
                  strstr(err.msg, "up_proj.weight_scale_inv") && strstr(err.msg, "4x4"),
              "%s", err.msg);
    CHECK(bind_case(GA_F8_E4M3, GA_F32, 2, 1, b128, &err) == GA_ERR_SHAPE);
    CHECK_MSG(strstr(err.msg, "expected shape (1, 1), found (2, 1)"), "%s", err.msg);
    /* scale dtype */
    CHECK(bind_case(GA_F8_E4M3, GA_F8_E4M3, 1, 1, b128, &err) == GA_ERR_FORMAT);
    CHECK_MSG(strstr(err.msg, "are F8_E4M3; expected F32, BF16 or F16") &&
                  strstr(err.msg, "\"model.layers.0.mlp.up_proj.weight\""),
              "%s", err.msg);
    /* F8 in a folder whose config is not quantised */
    CHECK(bind_case(GA_F8_E4M3, GA_F32, 1, 1, none, &err) == GA_ERR_FORMAT);
    CHECK_MSG(strstr(err.msg, "is F8_E4M3, but /models/m/config.json has no quantization_config"),
              "%s", err.msg);
    /* a scale beside a weight that is not F8 */
    CHECK(bind_case(GA_BF16, GA_F32, 1, 1, b128, &err) == GA_ERR_FORMAT);
    CHECK_MSG(strstr(err.msg, "is BF16, yet block scales") && strstr(err.msg, "_scale_inv"), "%s",
              err.msg);
    /* F8 that is not a matrix */
    ga_store *s = ga_store_new_memory();
    const int64_t v[1] = {8};
    ga_store_add_owned(s, "model.norm.weight", GA_F8_E4M3, 1, v);
    CHECK(ga_store_bind_fp8(s, b128, "m", &err) == GA_ERR_UNSUPPORTED);
    CHECK_MSG(strstr(err.msg, "\"model.norm.weight\"") && strstr(err.msg, "2-D"), "%s", err.msg);
    ga_store_free(s);
}

/* The safetensors reader: F8_E4M3 accepted (1 byte an element), F8_E5M2 refused by name. */
static void test_reader_dtypes(void) {
    const char *hdr[2] = {
        "{\"a.weight\":{\"dtype\":\"F8_E4M3\",\"shape\":[2,3],\"data_offsets\":[0,6]}}",
        "{\"b.weight\":{\"dtype\":\"F8_E5M2\",\"shape\":[2,3],\"data_offsets\":[0,6]}}"};
    for (int k = 0; k < 2; k++) {
        char *p = ga_test_path(g_dir, k ? "e5m2.safetensors" : "e4m3.safetensors");
        const size_t hl = strlen(hdr[k]);
        uint8_t *buf = calloc(1, 8 + hl + 6);
        for (int i = 0; i < 8; i++)
            buf[i] = (uint8_t)((uint64_t)hl >> (8 * i));
        memcpy(buf + 8, hdr[k], hl);
        ga_test_write_file(p, buf, 8 + hl + 6);
        ga_store *s = NULL;
        ga_err err = {{0}};
        ga_status st = ga_store_open_file(p, &s, &err);
        if (k == 0) {
            CHECK_OK(st, &err);
            const ga_tensor *t = s ? ga_store_find(s, "a.weight") : NULL;
            CHECK(t && t->dtype == GA_F8_E4M3 && t->nbytes == 6);
        } else {
            CHECK(st == GA_ERR_UNSUPPORTED);
            CHECK_MSG(strstr(err.msg, "\"b.weight\": dtype F8_E5M2 is not supported") &&
                          strstr(err.msg, p),
                      "%s", err.msg);
        }
        ga_store_free(s);
        free(buf);
        free(p);
    }
}

/* ------------------------------------------------------------------ quantization_config */

static ga_status parse_q(const char *q, ga_config *c, ga_err *err) {
    char json[1024];
    snprintf(json, sizeof json,
             "{\"model_type\":\"qwen3\",\"vocab_size\":64,\"hidden_size\":32,"
             "\"intermediate_size\":48,\"num_hidden_layers\":1,\"num_attention_heads\":4,"
             "\"num_key_value_heads\":2,\"head_dim\":8%s%s}",
             q ? ",\"quantization_config\":" : "", q ? q : "");
    return ga_config_parse(json, strlen(json), "cfg.json", c, err);
}

static void test_config(void) {
    ga_config c;
    ga_err err = {{0}};
    CHECK_OK(parse_q(NULL, &c, &err), &err);
    CHECK(c.fp8_block[0] == 0 && c.fp8_block[1] == 0);
    CHECK_OK(parse_q("{\"quant_method\":\"fp8\",\"fmt\":\"e4m3\",\"activation_scheme\":"
                     "\"dynamic\",\"weight_block_size\":[128,128],\"modules_to_not_convert\":"
                     "[\"lm_head\"]}",
                     &c, &err),
             &err);
    CHECK(c.fp8_block[0] == 128 && c.fp8_block[1] == 128);
    CHECK_OK(parse_q("{\"quant_method\":\"fp8\"}", &c, &err), &err);
    CHECK(c.fp8_block[0] == 128 && c.fp8_block[1] == 128);
    CHECK_OK(parse_q("{\"quant_method\":\"fp8\",\"weight_block_size\":[64,32]}", &c, &err), &err);
    CHECK(c.fp8_block[0] == 64 && c.fp8_block[1] == 32);
    CHECK_OK(parse_q("null", &c, &err), &err);
    CHECK(c.fp8_block[0] == 0);
    static const struct {
        const char *q, *needle;
        ga_status st;
    } bad[] = {
        {"{\"quant_method\":\"gptq\",\"bits\":4}", "quant_method \"gptq\" is not supported",
         GA_ERR_UNSUPPORTED},
        {"{\"quant_method\":\"awq\"}", "quant_method \"awq\" is not supported", GA_ERR_UNSUPPORTED},
        {"{\"quant_method\":\"fp8\",\"fmt\":\"e5m2\"}", "fmt e5m2 is not supported",
         GA_ERR_UNSUPPORTED},
        {"{\"quant_method\":\"fp8\",\"activation_scheme\":\"static\"}",
         "activation_scheme static is not supported", GA_ERR_UNSUPPORTED},
        {"{\"quant_method\":\"fp8\",\"weight_block_size\":[128]}", "weight_block_size",
         GA_ERR_FORMAT},
        {"{\"quant_method\":\"fp8\",\"weight_block_size\":[0,128]}", "weight_block_size",
         GA_ERR_FORMAT},
        {"{\"quant_method\":\"fp8\",\"weight_block_size\":[1.5,128]}", "weight_block_size",
         GA_ERR_FORMAT},
        {"{\"fmt\":\"e4m3\"}", "quant_method", GA_ERR_FORMAT},
        {"[1]", "must be an object", GA_ERR_FORMAT},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ga_status st = parse_q(bad[i].q, &c, &err);
        CHECK_MSG(st == bad[i].st && strstr(err.msg, bad[i].needle) && strstr(err.msg, "cfg.json"),
                  "%s -> %s: %s", bad[i].q, ga_status_name(st), err.msg);
    }
}

/* ------------------------------------------------------------------ --dequantise */

static int dequantise(const char *src, const char *dst) {
    ga_err err = {{0}};
    ga_model *m = NULL;
    if (ga_model_load(src, &m, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    const ga_store *s = m->store;
    ga_store *out = ga_store_new_memory();
    int n_f8 = 0;
    for (int i = 0; i < ga_store_count(s); i++) {
        const ga_tensor *t = ga_store_at(s, i);
        const size_t len = strlen(t->name);
        if (len > 10 && !strcmp(t->name + len - 10, "_scale_inv")) continue;
        ga_tensor *d = ga_store_add_owned(out, t->name, GA_F32, t->ndim, t->shape);
        float *v = (float *)d->data;
        const int64_t n = ga_tensor_numel(t);
        const uint8_t *p = t->data;
        if (t->dtype != GA_F8_E4M3) {
            for (int64_t k = 0; k < n; k++) {
                uint16_t h;
                float f;
                if (t->dtype == GA_F32) {
                    memcpy(&f, p + 4 * k, 4);
                } else {
                    memcpy(&h, p + 2 * k, 2);
                    f = t->dtype == GA_BF16 ? ga_bf16_to_f32(h) : ga_f16_to_f32(h);
                }
                v[k] = f;
            }
            continue;
        }
        /* The scales straight from the file, by the tensor's own name + "_scale_inv". */
        n_f8++;
        char sname[1100];
        snprintf(sname, sizeof sname, "%s_scale_inv", t->name);
        const ga_tensor *sc = ga_store_find(s, sname);
        const int bh = m->cfg.fp8_block[0], bw = m->cfg.fp8_block[1];
        const int64_t cols = t->shape[1], scols = sc->shape[1];
        for (int64_t k = 0; k < n; k++) {
            const int64_t idx = (k / cols) / bh * scols + (k % cols) / bw;
            float f;
            if (sc->dtype == GA_F32) {
                memcpy(&f, (const uint8_t *)sc->data + 4 * idx, 4);
            } else {
                uint16_t h;
                memcpy(&h, (const uint8_t *)sc->data + 2 * idx, 2);
                f = sc->dtype == GA_BF16 ? ga_bf16_to_f32(h) : ga_f16_to_f32(h);
            }
            v[k] = e4m3_ref(p[k]) * f;
        }
    }
    ga_model_free(m);
    int rc = 1;
    char *cfg_src = ga_test_path(src, "config.json"), *cfg_dst = ga_test_path(dst, "config.json");
    char *st_dst = ga_test_path(dst, "model.safetensors");
    size_t clen;
    char *text = ga_test_read_file(cfg_src, &clen);
    cJSON *root = text ? cJSON_Parse(text) : NULL;
    mkdir(dst, 0755);
    if (root && n_f8 > 0) {
        cJSON_DeleteItemFromObjectCaseSensitive(root, "quantization_config");
        cJSON_ReplaceItemInObjectCaseSensitive(root, "torch_dtype", cJSON_CreateString("float32"));
        char *o = cJSON_Print(root);
        const ga_tensor **all = malloc((size_t)ga_store_count(out) * sizeof *all);
        for (int i = 0; i < ga_store_count(out); i++)
            all[i] = ga_store_at(out, i);
        if (o && !ga_test_write_file(cfg_dst, o, strlen(o)) &&
            !ga_safetensors_write(st_dst, all, ga_store_count(out), &err))
            rc = 0;
        free(all);
        free(o);
    }
    if (rc) fprintf(stderr, "dequantise %s -> %s failed (%d F8 tensors)\n", src, dst, n_f8);
    cJSON_Delete(root);
    free(text);
    free(cfg_src);
    free(cfg_dst);
    free(st_dst);
    ga_store_free(out);
    return rc;
}

int main(int argc, char **argv) {
    if (argc == 4 && !strcmp(argv[1], "--dequantise")) return dequantise(argv[2], argv[3]);
    g_dir = ga_test_tmpdir("fp8");
    test_table();
    test_round();
    check_reader(128, 128, 128, 128, GA_F32);
    check_reader(300, 200, 128, 128, GA_F32); /* partial blocks at both edges */
    check_reader(70, 50, 64, 32, GA_BF16);    /* non-square blocks, bf16 scales */
    check_reader(5, 7, 2, 3, GA_F16);
    check_reader(1, 129, 128, 128, GA_F32); /* one row: a (1, n) gate weight */
    test_bind_errors();
    test_reader_dtypes();
    test_config();
    ga_test_rmtree(g_dir);
    free(g_dir);
    return ga_test_finish();
}
