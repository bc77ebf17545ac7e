/*
 * libFuzzer harness of gattn serve's request parser (src/server/request.c): any bytes as the
 * body of /v1/completions and of /v1/chat/completions. A body that parses must give a request
 * within the checked ranges; one that does not must give a 400/500 with a message, and its
 * error object must be valid JSON.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude -Isrc \
 *     tests/fuzz/fuzz_request.c -lcjson -lm -o fuzz_request && ./fuzz_request
 * tests/fuzz/corpus/request
 *
 * request.c is part of the gattn_server library, not of libgattn, so it is compiled in here.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/server/request.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(ga_api_kind kind, const char *body, size_t size) {
    ga_api_request r;
    ga_api_error e = {0};
    if (ga_api_request_parse(kind, body, size, &r, &e) == 0) {
        if (kind == GA_API_COMPLETIONS && !!r.prompt == !!r.prompt_ids) abort();
        if (r.prompt_ids && r.n_prompt_ids < 1) abort();
        for (int i = 0; i < r.n_prompt_ids; i++)
            if (r.prompt_ids[i] < 0) abort();
        if (kind == GA_API_CHAT && r.n_messages < 1) abort();
        for (int i = 0; i < r.n_messages; i++)
            if (!r.roles[i] || !r.roles[i][0] || !r.contents[i]) abort();
        if (!isfinite(r.temperature) || r.temperature < 0) abort();
        if (!(r.top_p > 0 && r.top_p <= 1) || r.top_k < 0) abort();
        if (r.max_tokens != -1 && r.max_tokens < 1) abort();
        if (r.logprobs < -1 || r.logprobs > GA_API_MAX_TOP) abort();
        if (r.n_stop < 0 || r.n_stop > GA_API_MAX_STOP) abort();
        for (int i = 0; i < r.n_stop; i++)
            if (!r.stop[i] || !r.stop[i][0]) abort();
        ga_api_request_free(&r);
        return;
    }
    if ((e.status != 400 && e.status != 500) || !e.msg[0] || !e.type || !e.code) abort();
    char *json = ga_api_error_json(&e);
    if (json) {
        cJSON *back = cJSON_Parse(json);
        if (!back) abort();
        cJSON_Delete(back);
        free(json);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    check(GA_API_COMPLETIONS, (const char *)data, size);
    check(GA_API_CHAT, (const char *)data, size);
    return 0;
}
