/* config.json parsing: defaults, derived sizes, and every malformed or unsupported case. */
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

#include "core/model.h"

#define BASE                                                                                       \
    "\"vocab_size\": 96, \"hidden_size\": 32, \"intermediate_size\": 64, "                         \
    "\"num_hidden_layers\": 2, \"num_attention_heads\": 4"

int main(void) {
    ga_config c;
    ga_err e = {{0}};
    /* defaults */
    CHECK_OK(ga_test_config_parse("{" BASE "}", &c, &e), &e);
    CHECK(c.n_kv_heads == 4 && c.head_dim == 8 && c.use_qk_norm && !c.tie_word_embeddings);
    CHECK(c.gate == GA_GATE_NONE && c.rope_theta == 10000.0 &&
          fabsf(c.rms_norm_eps - 1e-6f) < 1e-12f);
    CHECK(ga_config_q_rows(&c) == 32 && ga_config_gate_dim(&c) == 0);
    /* gates and derived q_proj rows, head_dim independent of hidden */
    CHECK_OK(ga_test_config_parse("{" BASE ", \"num_key_value_heads\": 2, \"head_dim\": 16, "
                                  "\"headwise_attn_output_gate\": true}",
                                  &c, &e),
             &e);
    CHECK(c.gate == GA_GATE_HEADWISE && ga_config_q_rows(&c) == 4 * 16 + 4);
    CHECK_OK(ga_test_config_parse("{" BASE
                                  ", \"head_dim\": 16, \"elementwise_attn_output_gate\": true, "
                                  "\"headwise_attn_output_gate\": false}",
                                  &c, &e),
             &e);
    CHECK(c.gate == GA_GATE_ELEMENTWISE && ga_config_q_rows(&c) == 2 * 4 * 16);
    /* rope in transformers 5 style, eos lists, dtype, biases */
    CHECK_OK(ga_test_config_parse(
                 "{" BASE ", \"rope_parameters\": {\"rope_type\": \"default\", \"rope_theta\": "
                 "1000000}, \"eos_token_id\": [5, 7], \"torch_dtype\": \"float32\", "
                 "\"attention_bias\": true, \"rope_scaling\": null}",
                 &c, &e),
             &e);
    CHECK(c.rope_theta == 1e6 && c.n_eos == 2 && c.eos_token_ids[1] == 7 &&
          c.torch_dtype == GA_F32);
    CHECK(c.attention_bias && c.o_bias);
    CHECK_OK(ga_test_config_parse("{" BASE ", \"qkv_bias\": true, \"dtype\": \"float16\"}", &c, &e),
             &e);
    CHECK(c.attention_bias && !c.o_bias && c.torch_dtype == GA_F16);

    /* malformed */
    ga_test_config_expect_fail("{" BASE, GA_ERR_FORMAT, "JSON");
    ga_test_config_expect_fail("[1, 2]", GA_ERR_FORMAT, "object");
    ga_test_config_expect_fail("{\"hidden_size\": 32}", GA_ERR_FORMAT, "vocab_size");
    ga_test_config_expect_fail("{" BASE ", \"num_key_value_heads\": 3}", GA_ERR_FORMAT, "multiple");
    ga_test_config_expect_fail(
        "{\"vocab_size\": \"96\", \"hidden_size\": 32, \"intermediate_size\": 64, "
        "\"num_hidden_layers\": 2, \"num_attention_heads\": 4}",
        GA_ERR_FORMAT, "vocab_size");
    ga_test_config_expect_fail(
        "{\"vocab_size\": 96.5, \"hidden_size\": 32, \"intermediate_size\": 64, "
        "\"num_hidden_layers\": 2, \"num_attention_heads\": 4}",
        GA_ERR_FORMAT, "vocab_size");
    ga_test_config_expect_fail(
        "{\"vocab_size\": -1, \"hidden_size\": 32, \"intermediate_size\": 64, "
        "\"num_hidden_layers\": 2, \"num_attention_heads\": 4}",
        GA_ERR_FORMAT, "vocab_size");
    ga_test_config_expect_fail(
        "{\"vocab_size\": 1e300, \"hidden_size\": 32, \"intermediate_size\": 64, "
        "\"num_hidden_layers\": 2, \"num_attention_heads\": 4}",
        GA_ERR_FORMAT, "vocab_size");
    ga_test_config_expect_fail("{" BASE ", \"headwise_attn_output_gate\": true, "
                               "\"elementwise_attn_output_gate\": true}",
                               GA_ERR_FORMAT, "both");
    ga_test_config_expect_fail("{" BASE ", \"headwise_attn_output_gate\": 1}", GA_ERR_FORMAT,
                               "headwise_attn_output_gate");
    ga_test_config_expect_fail("{" BASE ", \"head_dim\": 7}", GA_ERR_FORMAT, "even");
    ga_test_config_expect_fail(
        "{\"vocab_size\": 96, \"hidden_size\": 30, \"intermediate_size\": 64, "
        "\"num_hidden_layers\": 2, \"num_attention_heads\": 4}",
        GA_ERR_FORMAT, "head_dim");
    /* (the scaling types that are supported: tests/test_rope.c) */
    ga_test_config_expect_fail("{" BASE
                               ", \"rope_scaling\": {\"rope_type\": \"dynamic\", \"factor\": 4}}",
                               GA_ERR_UNSUPPORTED, "dynamic");
    ga_test_config_expect_fail("{" BASE ", \"rope_scaling\": {\"factor\": 4}}", GA_ERR_FORMAT,
                               "rope_scaling.rope_type");
    ga_test_config_expect_fail("{" BASE ", \"rope_parameters\": {\"rope_type\": \"llama3\"}}",
                               GA_ERR_UNSUPPORTED, "llama3");
    ga_test_config_expect_fail("{" BASE
                               ", \"rope_theta\": 10000, \"rope_parameters\": {\"rope_type\": "
                               "\"default\", \"rope_theta\": 500}}",
                               GA_ERR_FORMAT, "disagrees");
    ga_test_config_expect_fail("{" BASE ", \"rope_theta\": -1}", GA_ERR_FORMAT, "rope_theta");
    ga_test_config_expect_fail("{" BASE ", \"hidden_act\": \"gelu\"}", GA_ERR_UNSUPPORTED, "gelu");
    ga_test_config_expect_fail("{" BASE ", \"torch_dtype\": \"int8\"}", GA_ERR_UNSUPPORTED, "int8");
    ga_test_config_expect_fail("{" BASE ", \"eos_token_id\": 96}", GA_ERR_FORMAT, "eos_token_id");
    ga_test_config_expect_fail("{" BASE ", \"use_sliding_window\": true}", GA_ERR_UNSUPPORTED,
                               "sliding");
    ga_test_config_expect_fail("{" BASE ", \"rms_norm_eps\": 0}", GA_ERR_FORMAT, "rms_norm_eps");
    ga_test_config_expect_fail("{" BASE ", \"max_position_embeddings\": 0}", GA_ERR_FORMAT,
                               "max_position_embeddings");

    /* Strict JSON (issue 10 item 5): Python's json keeps the last of two equal keys and cJSON
     * the first, so a duplicate is refused at any depth, naming the key. */
    ga_test_config_expect_fail("{" BASE ", \"hidden_size\": 64}", GA_ERR_FORMAT,
                               "key \"hidden_size\" appears twice");
    ga_test_config_expect_fail(
        "{" BASE ", \"rope_parameters\": {\"rope_type\": \"default\", \"rope_theta\": "
        "1e6, \"rope_theta\": 5e5}}",
        GA_ERR_FORMAT, "key \"rope_theta\" appears twice in \"rope_parameters\"");
    /* A NUL in a string, escaped or raw, is refused instead of read as the text before it. */
    ga_test_config_expect_fail("{" BASE ", \"hidden_act\": \"silu\\u0000gelu\"}", GA_ERR_FORMAT,
                               "NUL");
    ga_test_config_expect_fail("{" BASE ", \"torch_dtype\\u0000x\": \"float32\"}", GA_ERR_FORMAT,
                               "NUL");
    {
        static const char raw[] = "{" BASE ", \"hidden_act\": \"silu\0gelu\"}";
        CHECK(ga_config_parse(raw, sizeof raw - 1, "cfg.json", &c, &e) == GA_ERR_FORMAT);
        CHECK_MSG(strstr(e.msg, "control byte") && strstr(e.msg, "cfg.json"), "raw NUL: %s", e.msg);
    }
    ga_test_config_expect_fail("{" BASE ", \"hidden_act\": \"si\tlu\"}", GA_ERR_FORMAT,
                               "control byte");
    /* Nothing but whitespace may follow the value; a trailing newline is normal. */
    ga_test_config_expect_fail("{" BASE "} x", GA_ERR_FORMAT, "after the JSON value");
    ga_test_config_expect_fail("{" BASE "}{\"vocab_size\": 5}", GA_ERR_FORMAT,
                               "after the JSON value");
    {
        static const char nul_after[] = "{" BASE "}\n\0";
        CHECK(ga_config_parse(nul_after, sizeof nul_after - 1, "cfg.json", &c, &e) ==
              GA_ERR_FORMAT);
    }
    CHECK_OK(ga_test_config_parse("\n {" BASE "}\r\n\t \n", &c, &e), &e);
    /* An escaped character that merely looks like a NUL escape is fine. */
    CHECK_OK(
        ga_test_config_parse("{" BASE ", \"note\": \"\\\\u0000 is how JSON writes NUL\"}", &c, &e),
        &e);

    /* file-level errors */
    CHECK(ga_config_load("/nonexistent/config.json", &c, &e) == GA_ERR_IO);
    CHECK(strstr(e.msg, "/nonexistent/config.json") != NULL);
    /* Only regular files (issue 10 item 9): a FIFO must be refused, never waited on. The alarm
     * kills the test if a regression blocks in open(). Symlinks to regular files are fine. */
    {
        char *dir = ga_test_tmpdir("cfg");
        char *fifo = ga_test_path(dir, "config.json"), *sub = ga_test_path(dir, "sub");
        char *real = ga_test_path(dir, "real.json"), *link = ga_test_path(sub, "config.json");
        CHECK(mkfifo(fifo, 0600) == 0);
        alarm(20);
        CHECK(ga_config_load(fifo, &c, &e) == GA_ERR_IO);
        alarm(0);
        CHECK_MSG(strstr(e.msg, fifo) && strstr(e.msg, "not a regular file"), "fifo: %s", e.msg);
        CHECK(mkdir(sub, 0700) == 0);
        CHECK(ga_config_load(sub, &c, &e) == GA_ERR_IO);
        CHECK_MSG(strstr(e.msg, "not a regular file (a directory)"), "dir: %s", e.msg);
        const char *good = "{" BASE "}\n";
        ga_test_write_file(real, good, strlen(good));
        CHECK(symlink("../real.json", link) == 0);
        CHECK_OK(ga_config_load(link, &c, &e), &e);
        CHECK(c.vocab_size == 96);
        ga_test_rmtree(dir);
        free(fifo);
        free(sub);
        free(real);
        free(link);
        free(dir);
    }

    /* the writer's JSON is accepted back unchanged */
    ga_config w = {.vocab_size = 300,
                   .hidden_size = 64,
                   .intermediate_size = 96,
                   .n_layers = 3,
                   .n_heads = 8,
                   .n_kv_heads = 2,
                   .head_dim = 16,
                   .rms_norm_eps = 1e-5f,
                   .rope_theta = 5e5,
                   .max_position_embeddings = 512,
                   .use_qk_norm = true,
                   .gate = GA_GATE_ELEMENTWISE,
                   .torch_dtype = GA_BF16,
                   .n_eos = 1,
                   .eos_token_ids = {299},
                   .bos_token_id = -1};
    char *json = ga_config_to_json(&w);
    CHECK(json != NULL);
    if (json) {
        CHECK_OK(ga_test_config_parse(json, &c, &e), &e);
        CHECK(c.vocab_size == 300 && c.n_kv_heads == 2 && c.head_dim == 16 &&
              c.gate == GA_GATE_ELEMENTWISE);
        CHECK(c.rope_theta == 5e5 && c.max_position_embeddings == 512 && c.eos_token_ids[0] == 299);
        free(json);
    }
    return ga_test_finish();
}
