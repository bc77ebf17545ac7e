/*
 * `gattn viz --dump` end to end: the CLI writes small random models (gattn write-model), then
 * draws and dumps them; the test checks every dumped layer_N.npy against attention
 * probabilities recomputed by an independent naive forward from the same model folder, the
 * metrics.json/metrics.csv values against the same reference, tokens.json against the ids
 * (and the tokenizer's encoding for --prompt), and that the PNG decodes. Also the default
 * output name, JPEG output for --out x.jpg, and that a full disk (/dev/full) or an unknown
 * extension is an error, not "wrote".
 */
#include <math.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <stb/stb_image.h>

#include "gattn/tokenizer.h"
#include "testutil.h"
#include "viz/viz.h"
#include "viz_naive.h"

static const char *cli;

static int run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int run(const char *fmt, ...) {
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    if (rc != 0) fprintf(stderr, "command failed (%d): %s\n", rc, cmd);
    return rc;
}

static cJSON *read_json(const char *dir, const char *name) {
    char *p = ga_test_path(dir, name);
    size_t len;
    char *text = ga_test_read_file(p, &len);
    cJSON *j = text ? cJSON_Parse(text) : NULL;
    free(text);
    free(p);
    return j;
}

/* Checks the dump in `dump` of model folder `mdir` for tokens ids (T) and layers sel. */
static void check_dump(const char *mdir, const char *dump, const int32_t *ids, int T,
                       const bool *sel, double *gates_below) {
    ga_err err;
    ga_model *m = NULL;
    CHECK_OK(ga_model_load(mdir, &m, &err), &err);
    if (!m) return;
    const ga_config *c = ga_model_config(m);
    naive_out ref;
    CHECK(naive_forward(m, ids, T, &ref) == 0);
    for (int l = 0; l < c->n_layers; l++) {
        char name[32];
        snprintf(name, sizeof name, "layer_%d.npy", l + 1);
        char *p = ga_test_path(dump, name);
        if (!sel[l]) {
            CHECK_MSG(access(p, F_OK) != 0, "%s written for an unselected layer", name);
            free(p);
            continue;
        }
        float *got = NULL;
        int64_t rows = 0, cols = 0;
        CHECK_OK(ga_npy_read_f32(p, &got, &rows, &cols, &err), &err);
        CHECK(rows == T && cols == T);
        if (got && rows == T && cols == T) {
            float *want = naive_map(&ref, l, -1);
            double r = ga_test_tol_ratio(got, want, (size_t)T * T, 1e-5, 1e-4);
            CHECK_MSG(r <= 1.0, "%s vs naive: ratio %g", p, r);
            for (int q = 0; q < T; q++) {
                double s = 0;
                for (int k = 0; k < T; k++) {
                    s += got[(size_t)q * T + k];
                    if (k > q) CHECK(got[(size_t)q * T + k] == 0.0f);
                }
                CHECK(fabs(s - 1.0) < 1e-5);
            }
            free(want);
        }
        free(got);
        free(p);
    }
    /* metrics.json: every layer, 1-based, values as the reference */
    cJSON *mj = read_json(dump, "metrics.json");
    CHECK(cJSON_IsArray(mj) && cJSON_GetArraySize(mj) == c->n_layers);
    for (int l = 0; cJSON_GetArraySize(mj) == c->n_layers && l < c->n_layers; l++) {
        cJSON *o = cJSON_GetArrayItem(mj, l);
        CHECK(cJSON_GetObjectItem(o, "layer")->valuedouble == l + 1);
        double share = 0;
        for (int h = 0; h < c->n_heads; h++)
            for (int q = 1; q < T; q++)
                share += ref.probs[l][((size_t)h * T + q) * T];
        share /= (double)c->n_heads * (T - 1);
        cJSON *js = cJSON_GetObjectItem(o, "first_token_share");
        CHECK(cJSON_IsNumber(js) && fabs(js->valuedouble - share) < 1e-6);
        cJSON *gm = cJSON_GetObjectItem(o, "gate_mean"),
              *gb = cJSON_GetObjectItem(o, "gate_below_0_1");
        if (c->gate == GA_GATE_NONE) {
            CHECK(cJSON_IsNull(gm) && cJSON_IsNull(gb));
        } else {
            double mean = 0, below = 0;
            size_t n = (size_t)T * ref.gate_dim;
            for (size_t i = 0; i < n; i++) {
                mean += ref.gates[l][i];
                below += ref.gates[l][i] < 0.1;
            }
            CHECK(cJSON_IsNumber(gm) && fabs(gm->valuedouble - mean / (double)n) < 1e-6);
            /* one gate within float rounding of 0.1 may land on the other side */
            CHECK_MSG(cJSON_IsNumber(gb) &&
                          fabs(gb->valuedouble - below / (double)n) <= 1.0 / (double)n + 1e-12,
                      "%s layer %d: gate_below_0_1 %g vs naive %g", mdir, l + 1,
                      cJSON_IsNumber(gb) ? gb->valuedouble : NAN, below / (double)n);
            *gates_below += below;
        }
    }
    cJSON_Delete(mj);
    /* metrics.csv: header plus one line per layer */
    char *csvp = ga_test_path(dump, "metrics.csv");
    size_t len;
    char *csv = ga_test_read_file(csvp, &len);
    int lines = 0;
    for (size_t i = 0; csv && i < len; i++)
        lines += csv[i] == '\n';
    CHECK(csv && !strncmp(csv, "layer,first_token_share,gate_mean,gate_below_0_1\n", 49));
    CHECK(lines == c->n_layers + 1);
    free(csv);
    free(csvp);
    /* tokens.json */
    cJSON *tj = read_json(dump, "tokens.json");
    cJSON *ji = cJSON_GetObjectItem(tj, "ids"), *jt = cJSON_GetObjectItem(tj, "tokens");
    CHECK(cJSON_GetArraySize(ji) == T && cJSON_GetArraySize(jt) == T);
    for (int i = 0; cJSON_GetArraySize(ji) == T && i < T; i++) {
        CHECK(cJSON_GetArrayItem(ji, i)->valuedouble == ids[i]);
        CHECK(cJSON_IsString(cJSON_GetArrayItem(jt, i)));
    }
    cJSON_Delete(tj);
    naive_free(&ref);
    ga_model_free(m);
}

static void check_png(const char *path) {
    int w = 0, h = 0, comp = 0;
    unsigned char *img = stbi_load(path, &w, &h, &comp, 3);
    CHECK_MSG(img != NULL, "%s does not decode", path);
    CHECK(w > 200 && h > 200);
    stbi_image_free(img);
}

/* With a GPU: `--device cuda` dumps equal `--device cpu` dumps within bf16 tolerance. */
static int gpu_vs_cpu(void) {
    GA_REQUIRE_GPU();
    char *dir = ga_test_tmpdir("viz_dump_gpu");
    const char *variants[3] = {"baseline", "headwise", "elementwise"};
    for (int v = 0; v < 3; v++) {
        char mdir[512], dcpu[512], dgpu[512];
        snprintf(mdir, sizeof mdir, "%s/m-%s", dir, variants[v]);
        snprintf(dcpu, sizeof dcpu, "%s/cpu-%s", dir, variants[v]);
        snprintf(dgpu, sizeof dgpu, "%s/gpu-%s", dir, variants[v]);
        CHECK(run("'%s' write-model --out '%s' --variant %s --layers 4 --hidden 128 --heads 4 "
                  "--kv-heads 2 --head-dim 64 --intermediate 256 --vocab 2048 --dtype bf16 "
                  "--seed 9 >/dev/null",
                  cli, mdir, variants[v]) == 0);
        for (int d = 0; d < 2; d++)
            CHECK(run("cd '%s' && '%s' viz --model '%s' --tokens $(seq -s, 1 7 1500) "
                      "--device %s --dump '%s' >/dev/null",
                      dir, cli, mdir, d ? "cuda" : "cpu", d ? dgpu : dcpu) == 0);
        for (int l = 1; l <= 4; l++) {
            char name[32];
            snprintf(name, sizeof name, "layer_%d.npy", l);
            char *pc = ga_test_path(dcpu, name), *pg = ga_test_path(dgpu, name);
            float *a = NULL, *b = NULL;
            int64_t ra = 0, ca = 0, rb = 0, cb = 0;
            ga_err err;
            CHECK_OK(ga_npy_read_f32(pc, &a, &ra, &ca, &err), &err);
            CHECK_OK(ga_npy_read_f32(pg, &b, &rb, &cb, &err), &err);
            CHECK(ra == rb && ca == cb && ra == 215);
            if (a && b && ra == rb && ca == cb) {
                double r = ga_test_tol_ratio(b, a, (size_t)ra * ca, 1e-2, 2e-2);
                CHECK_MSG(r <= 1.0, "%s %s: GPU vs CPU dump ratio %g", variants[v], name, r);
            }
            free(a);
            free(b);
            free(pc);
            free(pg);
        }
        cJSON *mc = read_json(dcpu, "metrics.json"), *mg = read_json(dgpu, "metrics.json");
        CHECK(cJSON_GetArraySize(mc) == 4 && cJSON_GetArraySize(mg) == 4);
        for (int l = 0; cJSON_GetArraySize(mc) == 4 && cJSON_GetArraySize(mg) == 4 && l < 4; l++) {
            cJSON *a = cJSON_GetObjectItem(cJSON_GetArrayItem(mc, l), "first_token_share");
            cJSON *b = cJSON_GetObjectItem(cJSON_GetArrayItem(mg, l), "first_token_share");
            CHECK(cJSON_IsNumber(a) && cJSON_IsNumber(b) &&
                  fabs(a->valuedouble - b->valuedouble) < 1e-2);
        }
        cJSON_Delete(mc);
        cJSON_Delete(mg);
    }
    ga_test_rmtree(dir);
    free(dir);
    return ga_test_finish();
}

int main(int argc, char **argv) {
    cli = ga_test_env("GA_CLI", "gattn");
    if (argc > 1 && !strcmp(argv[1], "gpu")) return gpu_vs_cpu();
    char *dir = ga_test_tmpdir("viz_dump");
    double below = 0; /* gates below 0.1 the reference counted */
    const char *variants[3] = {"baseline", "headwise", "elementwise"};
    for (int v = 0; v < 3; v++) {
        char mdir[512], dump[512], png[512];
        snprintf(mdir, sizeof mdir, "%s/m-%s", dir, variants[v]);
        snprintf(dump, sizeof dump, "%s/dump-%s", dir, variants[v]);
        snprintf(png, sizeof png, "%s/%s.png", dir, variants[v]);
        CHECK(run("'%s' write-model --out '%s' --variant %s --layers 3 --hidden 64 --heads 4 "
                  "--kv-heads 2 --head-dim 16 --intermediate 96 --vocab 300 --seed %d "
                  "--tokenizer >/dev/null",
                  cli, mdir, variants[v], 3 + v) == 0);
        /* token ids */
        const int32_t ids[19] = {3,  14, 15, 92, 65, 35, 89, 79, 32, 38,
                                 46, 26, 43, 38, 32, 79, 50, 28, 8};
        bool sel[3] = {true, false, true};
        CHECK(run("'%s' viz --model '%s' --tokens 3,14,15,92,65,35,89,79,32,38,46,26,43,38,32,"
                  "79,50,28,8 --layers 1,3 --device cpu --out '%s' --dump '%s' >/dev/null",
                  cli, mdir, png, dump) == 0);
        check_dump(mdir, dump, ids, 19, sel, &below);
        check_png(png);

        /* text prompt through the model's tokenizer, default layers (all 3 of a 3-layer model) */
        snprintf(dump, sizeof dump, "%s/dump-prompt-%s", dir, variants[v]);
        const char *prompt = "Sparse gating mechanism mitigates attention sink.";
        CHECK(run("'%s' viz --model '%s' --prompt '%s' --device cpu --out '%s' --dump '%s' "
                  ">/dev/null",
                  cli, mdir, prompt, png, dump) == 0);
        ga_tokenizer *tok = NULL;
        ga_err err;
        CHECK_OK(ga_tok_load_dir(mdir, &tok, &err), &err);
        int32_t *pids = NULL;
        int n = 0;
        if (tok) CHECK_OK(ga_tok_encode(tok, prompt, strlen(prompt), &pids, &n, &err), &err);
        bool all[3] = {true, true, true};
        if (pids && n > 1) check_dump(mdir, dump, pids, n, all, &below);
        free(pids);
        ga_tok_free(tok);
    }
    /* A model made by transformers whose gates spread (random models have gates near 0.5,
     * so their share below 0.1 is 0 in engine and reference alike): the dumped
     * gate_below_0_1 must equal the reference where it is not trivially 0. */
    {
        char *mdir =
            ga_test_path(ga_test_env("GA_FIXTURES", "tests/fixtures"), "elementwise_g2_untied");
        char dump[512];
        snprintf(dump, sizeof dump, "%s/dump-fixture", dir);
        const int32_t ids[12] = {5, 17, 94, 3, 3, 60, 41, 88, 12, 0, 71, 33};
        bool all[2] = {true, true};
        CHECK(run("'%s' viz --model '%s' --tokens 5,17,94,3,3,60,41,88,12,0,71,33 --device cpu "
                  "--out '%s/fixture.png' --dump '%s' >/dev/null",
                  cli, mdir, dir, dump) == 0);
        below = 0;
        check_dump(mdir, dump, ids, 12, all, &below);
        CHECK_MSG(below >= 10, "the fixture has only %g gates below 0.1", below);
        free(mdir);
    }
    /* --out: the extension picks the format; a full disk and an unknown extension fail with
     * the path named, and nothing claims to have been written */
    {
        char jpg[512], full[512], gif[512], log[512];
        snprintf(jpg, sizeof jpg, "%s/pic.jpg", dir);
        snprintf(full, sizeof full, "%s/full.png", dir);
        snprintf(gif, sizeof gif, "%s/pic.gif", dir);
        snprintf(log, sizeof log, "%s/out.log", dir);
        CHECK(run("'%s' viz --model '%s/m-headwise' --tokens 1,2,3 --device cpu --out '%s' "
                  ">/dev/null",
                  cli, dir, jpg) == 0);
        size_t len = 0;
        unsigned char *b = (unsigned char *)ga_test_read_file(jpg, &len);
        CHECK_MSG(b && len > 4 && b[0] == 0xff && b[1] == 0xd8, "%s is not a JPEG", jpg);
        free(b);
        check_png(jpg); /* stb_image decodes JPEG too: the picture is whole */
        if (access("/dev/full", W_OK) == 0 && symlink("/dev/full", full) == 0) {
            CHECK(run("'%s' viz --model '%s/m-headwise' --tokens 1,2,3 --device cpu --out '%s' "
                      ">'%s' 2>&1",
                      cli, dir, full, log) != 0);
            char *text = ga_test_read_file(log, &len);
            CHECK_MSG(text && strstr(text, full) && strstr(text, "No space") &&
                          !strstr(text, "wrote"),
                      "output: %s", text ? text : "(none)");
            free(text);
        }
        CHECK(run("'%s' viz --model '%s/m-headwise' --tokens 1,2,3 --device cpu --out '%s' "
                  ">'%s' 2>&1",
                  cli, dir, gif, log) != 0);
        char *text = ga_test_read_file(log, &len);
        CHECK_MSG(text && strstr(text, "--out") && strstr(text, gif) && strstr(text, ".jpg"),
                  "output: %s", text ? text : "(none)");
        free(text);
        CHECK(access(gif, F_OK) != 0);
    }
    /* --color-scale and --font: a known scale draws, an unknown one or a font that does not
     * load is an error naming the option */
    {
        char pic[512], log[512];
        snprintf(pic, sizeof pic, "%s/scale.png", dir);
        snprintf(log, sizeof log, "%s/scale.log", dir);
        const char *scales[2] = {"log", "p99"};
        for (int i = 0; i < 2; i++) {
            CHECK(run("'%s' viz --model '%s/m-headwise' --tokens 1,2,3,4,5 --device cpu "
                      "--color-scale %s --out '%s' >/dev/null",
                      cli, dir, scales[i], pic) == 0);
            check_png(pic);
        }
        const char *bad[3][2] = {{"--color-scale sqrt", "--color-scale"},
                                 {"--font /nonexistent/f.ttf", "--font"},
                                 {"--font /dev/null", "--font"}};
        for (int i = 0; i < 3; i++) {
            CHECK(run("'%s' viz --model '%s/m-headwise' --tokens 1,2 --device cpu %s --out '%s' "
                      ">'%s' 2>&1",
                      cli, dir, bad[i][0], pic, log) != 0);
            size_t len;
            char *text = ga_test_read_file(log, &len);
            CHECK_MSG(text && strstr(text, bad[i][1]), "%s: %s", bad[i][0], text ? text : "");
            free(text);
        }
    }
    /* default output name, in the current directory */
    CHECK(run("cd '%s' && '%s' viz --model m-headwise --tokens 1,2,3,4 --device cpu >/dev/null",
              dir, cli) == 0);
    char *def = ga_test_path(dir, "m-headwise_selected_layer_attention_maps.png");
    check_png(def);
    free(def);
    ga_test_rmtree(dir);
    free(dir);
    return ga_test_finish();
}
