/*
 * The OpenAI request bodies: JSON text -> a checked request struct, and the JSON error object
 * every failure is answered with. Pure functions of the body (no model, no tokenizer), so the
 * parser is fuzzed alone (tests/fuzz/fuzz_request.c); checks that need the model (vocabulary,
 * context, model name) happen in the server after parsing.
 */
#ifndef GATTN_SERVER_REQUEST_H
#define GATTN_SERVER_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GA_API_MAX_STOP 16
#define GA_API_MAX_TOP 20

typedef enum ga_api_kind { GA_API_COMPLETIONS = 0, GA_API_CHAT = 1 } ga_api_kind;

typedef struct ga_api_request {
    ga_api_kind kind;
    char *model; /* NULL when absent */
    /* completions: exactly one of prompt (text) and prompt_ids */
    char *prompt;
    int32_t *prompt_ids; /* each in [0, INT32_MAX]; the vocabulary is checked later */
    int n_prompt_ids;
    /* chat */
    int n_messages;
    char **roles, **contents;
    int max_tokens; /* -1: not given */
    double temperature, top_p;
    int top_k; /* 0: all */
    bool has_seed;
    uint64_t seed;
    int n_stop;
    char *stop[GA_API_MAX_STOP];
    bool stream, include_usage;
    int logprobs; /* -1: none; else the number of top alternatives (0..GA_API_MAX_TOP) */
    bool return_token_ids;
    bool ignore_eos; /* vLLM's extension: the model's end-of-sequence ids do not stop it */
} ga_api_request;

/* An error answer: HTTP status, OpenAI error type, a short code, the field, a message. */
typedef struct ga_api_error {
    int status;
    const char *type; /* "invalid_request_error", ... */
    const char *code; /* "invalid_type", "invalid_value", ... */
    char param[48];   /* the field, or "" */
    char msg[320];
} ga_api_error;

/* Sets e and returns -1. */
int ga_api_fail(ga_api_error *e, int status, const char *type, const char *code, const char *param,
                const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* Parses a body of len bytes (need not be NUL-terminated). 0, or -1 with e set (status 400).
 * On success the caller frees out with ga_api_request_free; on failure nothing is held. */
int ga_api_request_parse(ga_api_kind kind, const char *body, size_t len, ga_api_request *out,
                         ga_api_error *e);
void ga_api_request_free(ga_api_request *r);

/* {"error": {"message", "type", "param", "code"}} as a malloc'd string (NULL: no memory). */
char *ga_api_error_json(const ga_api_error *e);

#endif
