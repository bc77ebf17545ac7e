/*
 * Request parsing (see request.h). Every field is checked for its JSON type and range; a
 * wrong one is a 400 naming the field. Fields this server does not implement are refused
 * when they would change the result (n > 1, echo, penalties, logit_bias, suffix) rather than
 * silently ignored; fields that do not (user, ...) are ignored.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "request.h"

int ga_api_fail(ga_api_error *e, int status, const char *type, const char *code, const char *param,
                const char *fmt, ...) {
    e->status = status;
    e->type = type;
    e->code = code;
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return -1;
}

#define BAD(e, param, code, ...)                                                                   \
    ga_api_fail((e), 400, "invalid_request_error", (code), (param), __VA_ARGS__)

char *ga_api_error_json(const ga_api_error *e) {
    cJSON *root = cJSON_CreateObject(), *o = cJSON_CreateObject();
    if (!root || !o) {
        cJSON_Delete(root);
        cJSON_Delete(o);
        return NULL;
    }
    cJSON_AddItemToObject(root, "error", o);
    cJSON_AddStringToObject(o, "message", e->msg);
    cJSON_AddStringToObject(o, "type", e->type ? e->type : "invalid_request_error");
    if (e->param[0])
        cJSON_AddStringToObject(o, "param", e->param);
    else
        cJSON_AddNullToObject(o, "param");
    cJSON_AddStringToObject(o, "code", e->code ? e->code : "error");
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return s;
}

void ga_api_request_free(ga_api_request *r) {
    if (!r) return;
    free(r->model);
    free(r->prompt);
    free(r->prompt_ids);
    for (int i = 0; i < r->n_messages; i++) {
        free(r->roles[i]);
        free(r->contents[i]);
    }
    free(r->roles);
    free(r->contents);
    for (int i = 0; i < r->n_stop; i++)
        free(r->stop[i]);
    memset(r, 0, sizeof *r);
}

static const char *type_name(const cJSON *v) {
    if (cJSON_IsNull(v)) return "null";
    if (cJSON_IsBool(v)) return "a boolean";
    if (cJSON_IsNumber(v)) return "a number";
    if (cJSON_IsString(v)) return "a string";
    if (cJSON_IsArray(v)) return "an array";
    return "an object";
}

static bool is_int(const cJSON *v, double lo, double hi) {
    return cJSON_IsNumber(v) && isfinite(v->valuedouble) &&
           v->valuedouble == floor(v->valuedouble) && v->valuedouble >= lo && v->valuedouble <= hi;
}

/* The field, or NULL when absent or null (OpenAI clients send null for "not given"). */
static const cJSON *field(const cJSON *root, const char *name) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, name);
    return cJSON_IsNull(v) ? NULL : v;
}

static int get_bool(const cJSON *root, const char *name, bool *out, ga_api_error *e) {
    const cJSON *v = field(root, name);
    if (!v) return 0;
    if (!cJSON_IsBool(v))
        return BAD(e, name, "invalid_type", "'%s' must be a boolean, not %s", name, type_name(v));
    *out = cJSON_IsTrue(v);
    return 0;
}

static int get_int(const cJSON *root, const char *name, double lo, double hi, int *out,
                   ga_api_error *e) {
    const cJSON *v = field(root, name);
    if (!v) return 0;
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || !isfinite(v->valuedouble))
        return BAD(e, name, "invalid_type", "'%s' must be an integer, not %s", name,
                   cJSON_IsNumber(v) ? "a fraction" : type_name(v));
    if (!is_int(v, lo, hi))
        return BAD(e, name, "invalid_value", "'%s' is %g, outside [%.0f, %.0f]", name,
                   v->valuedouble, lo, hi);
    *out = (int)v->valuedouble;
    return 0;
}

static int get_num(const cJSON *root, const char *name, double lo, double hi, bool lo_open,
                   double *out, ga_api_error *e) {
    const cJSON *v = field(root, name);
    if (!v) return 0;
    if (!cJSON_IsNumber(v))
        return BAD(e, name, "invalid_type", "'%s' must be a number, not %s", name, type_name(v));
    double x = v->valuedouble;
    if (!isfinite(x) || x < lo || x > hi || (lo_open && x == lo))
        return BAD(e, name, "invalid_value", "'%s' is %g, outside %c%g, %g]", name, x,
                   lo_open ? '(' : '[', lo, hi);
    *out = x;
    return 0;
}

static char *dup_str(const char *s) {
    return strdup(s ? s : "");
}

static int parse_prompt(const cJSON *root, ga_api_request *r, ga_api_error *e) {
    const cJSON *p = field(root, "prompt");
    if (!p) return BAD(e, "prompt", "missing_field", "'prompt' is required");
    /* A batch of one ([["text"]] or [[1,2,3]]) is the same request as its element. */
    if (cJSON_IsArray(p) && cJSON_GetArraySize(p) == 1 &&
        (cJSON_IsString(p->child) || cJSON_IsArray(p->child)))
        p = p->child;
    if (cJSON_IsString(p)) {
        if (!(r->prompt = dup_str(p->valuestring)))
            return ga_api_fail(e, 500, "server_error", "out_of_memory", NULL, "out of memory");
        return 0;
    }
    if (!cJSON_IsArray(p))
        return BAD(e, "prompt", "invalid_type",
                   "'prompt' must be a string or an array of token ids, not %s", type_name(p));
    int n = cJSON_GetArraySize(p);
    if (n == 0) return BAD(e, "prompt", "invalid_value", "'prompt' is an empty array");
    if (!(r->prompt_ids = malloc((size_t)n * sizeof *r->prompt_ids)))
        return ga_api_fail(e, 500, "server_error", "out_of_memory", NULL, "out of memory");
    int i = 0;
    for (const cJSON *v = p->child; v; v = v->next, i++) {
        if (cJSON_IsString(v) || cJSON_IsArray(v))
            return BAD(e, "prompt", "invalid_value",
                       "'prompt' holds several prompts; this server takes one per request");
        if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble))
            return BAD(e, "prompt", "invalid_type",
                       "'prompt'[%d] must be an integer token id, not %s", i,
                       cJSON_IsNumber(v) ? "a fraction" : type_name(v));
        if (!is_int(v, 0, INT32_MAX))
            return BAD(e, "prompt", "invalid_value", "'prompt'[%d] = %g is not a token id", i,
                       v->valuedouble);
        r->prompt_ids[i] = (int32_t)v->valuedouble;
    }
    r->n_prompt_ids = n;
    return 0;
}

/* content: a string, or an array of {"type": "text", "text": "..."} parts (joined). */
static int message_text(const cJSON *c, int i, char **out, ga_api_error *e) {
    char param[32];
    snprintf(param, sizeof param, "messages[%d].content", i);
    if (cJSON_IsString(c)) {
        *out = dup_str(c->valuestring);
    } else if (cJSON_IsArray(c)) {
        size_t total = 1;
        for (const cJSON *part = c->child; part; part = part->next) {
            const cJSON *t = cJSON_GetObjectItemCaseSensitive(part, "type");
            const cJSON *x = cJSON_GetObjectItemCaseSensitive(part, "text");
            if (!cJSON_IsObject(part) || !cJSON_IsString(t) || strcmp(t->valuestring, "text") ||
                !cJSON_IsString(x))
                return BAD(e, param, "invalid_value",
                           "'%s' parts must be {\"type\": \"text\", \"text\": string}; only text "
                           "input is supported",
                           param);
            total += strlen(x->valuestring);
        }
        if ((*out = malloc(total))) {
            (*out)[0] = 0;
            for (const cJSON *part = c->child; part; part = part->next)
                strcat(*out, cJSON_GetObjectItemCaseSensitive(part, "text")->valuestring);
        }
    } else {
        return BAD(e, param, "invalid_type",
                   "'%s' must be a string or an array of text parts, not %s", param, type_name(c));
    }
    if (!*out) return ga_api_fail(e, 500, "server_error", "out_of_memory", NULL, "out of memory");
    return 0;
}

static int parse_messages(const cJSON *root, ga_api_request *r, ga_api_error *e) {
    const cJSON *m = field(root, "messages");
    if (!m) return BAD(e, "messages", "missing_field", "'messages' is required");
    if (!cJSON_IsArray(m))
        return BAD(e, "messages", "invalid_type", "'messages' must be an array, not %s",
                   type_name(m));
    int n = cJSON_GetArraySize(m);
    if (n == 0) return BAD(e, "messages", "invalid_value", "'messages' is empty");
    r->roles = calloc((size_t)n, sizeof *r->roles);
    r->contents = calloc((size_t)n, sizeof *r->contents);
    if (!r->roles || !r->contents)
        return ga_api_fail(e, 500, "server_error", "out_of_memory", NULL, "out of memory");
    int i = 0;
    for (const cJSON *v = m->child; v; v = v->next, i++) {
        char param[32];
        snprintf(param, sizeof param, "messages[%d]", i);
        if (!cJSON_IsObject(v))
            return BAD(e, param, "invalid_type", "'%s' must be an object, not %s", param,
                       type_name(v));
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(v, "role");
        if (!cJSON_IsString(role) || !role->valuestring[0] || strchr(role->valuestring, '\n'))
            return BAD(e, param, "invalid_value", "'%s.role' must be a non-empty one-line string",
                       param);
        r->n_messages = i + 1; /* from here on the entry is freed with the request */
        if (!(r->roles[i] = dup_str(role->valuestring)))
            return ga_api_fail(e, 500, "server_error", "out_of_memory", NULL, "out of memory");
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(v, "content");
        if (!c) return BAD(e, param, "missing_field", "'%s.content' is required", param);
        if (message_text(c, i, &r->contents[i], e)) return -1;
    }
    return 0;
}

static int parse_stop(const cJSON *root, ga_api_request *r, ga_api_error *e) {
    const cJSON *s = field(root, "stop");
    if (!s) return 0;
    if (cJSON_IsString(s)) {
        if (!s->valuestring[0]) return BAD(e, "stop", "invalid_value", "'stop' is empty");
        r->stop[r->n_stop++] = dup_str(s->valuestring);
        return r->stop[0]
                   ? 0
                   : ga_api_fail(e, 500, "server_error", "out_of_memory", NULL, "out of memory");
    }
    if (!cJSON_IsArray(s))
        return BAD(e, "stop", "invalid_type",
                   "'stop' must be a string or an array of strings, not %s", type_name(s));
    if (cJSON_GetArraySize(s) > GA_API_MAX_STOP)
        return BAD(e, "stop", "invalid_value", "'stop' has more than %d strings", GA_API_MAX_STOP);
    for (const cJSON *v = s->child; v; v = v->next) {
        if (!cJSON_IsString(v) || !v->valuestring[0])
            return BAD(e, "stop", "invalid_value", "'stop' entries must be non-empty strings");
        if (!(r->stop[r->n_stop] = dup_str(v->valuestring)))
            return ga_api_fail(e, 500, "server_error", "out_of_memory", NULL, "out of memory");
        r->n_stop++;
    }
    return 0;
}

/* Refuses fields that would change the answer in ways this server does not implement. */
static int refuse_unsupported(const cJSON *root, ga_api_error *e) {
    static const char *zero_num[] = {"presence_penalty", "frequency_penalty"};
    for (size_t i = 0; i < sizeof zero_num / sizeof *zero_num; i++) {
        const cJSON *v = field(root, zero_num[i]);
        if (!v) continue;
        if (!cJSON_IsNumber(v))
            return BAD(e, zero_num[i], "invalid_type", "'%s' must be a number, not %s", zero_num[i],
                       type_name(v));
        if (v->valuedouble != 0)
            return BAD(e, zero_num[i], "unsupported", "'%s' other than 0 is not supported",
                       zero_num[i]);
    }
    const cJSON *lb = field(root, "logit_bias");
    if (lb && (!cJSON_IsObject(lb) || lb->child))
        return BAD(e, "logit_bias", "unsupported", "'logit_bias' is not supported");
    const cJSON *sfx = field(root, "suffix");
    if (sfx) return BAD(e, "suffix", "unsupported", "'suffix' is not supported");
    const cJSON *bo = field(root, "best_of");
    if (bo && !is_int(bo, 1, 1))
        return BAD(e, "best_of", "unsupported", "'best_of' must be 1 (the only value supported)");
    return 0;
}

/* "\u0000" would reach the prompt as a C string cut short: refuse it rather than drop text. */
static bool has_nul_escape(const char *s, size_t len) {
    for (size_t i = 0; i + 6 <= len; i++) {
        if (s[i] != '\\') continue;
        if (s[i + 1] == 'u' && s[i + 2] == '0' && s[i + 3] == '0' && s[i + 4] == '0' &&
            s[i + 5] == '0')
            return true;
        i++; /* skip the escaped character ("\\\\" included) */
    }
    return false;
}

static int parse_fields(const cJSON *root, ga_api_kind kind, ga_api_request *r, ga_api_error *e) {
    const cJSON *model = field(root, "model");
    if (model && !cJSON_IsString(model))
        return BAD(e, "model", "invalid_type", "'model' must be a string, not %s",
                   type_name(model));
    if (model && !(r->model = dup_str(model->valuestring)))
        return ga_api_fail(e, 500, "server_error", "out_of_memory", NULL, "out of memory");
    if (kind == GA_API_COMPLETIONS ? parse_prompt(root, r, e) : parse_messages(root, r, e))
        return -1;
    if (get_int(root, "max_tokens", 1, INT32_MAX, &r->max_tokens, e)) return -1;
    if (kind == GA_API_CHAT &&
        get_int(root, "max_completion_tokens", 1, INT32_MAX, &r->max_tokens, e))
        return -1;
    if (get_num(root, "temperature", 0, 100, false, &r->temperature, e) ||
        get_num(root, "top_p", 0, 1, true, &r->top_p, e) ||
        get_int(root, "top_k", -1, INT32_MAX, &r->top_k, e))
        return -1;
    if (r->top_k < 0) r->top_k = 0; /* -1 means all, as in vLLM */
    const cJSON *seed = field(root, "seed");
    if (seed) {
        if (!cJSON_IsNumber(seed) || seed->valuedouble != floor(seed->valuedouble))
            return BAD(e, "seed", "invalid_type", "'seed' must be an integer, not %s",
                       cJSON_IsNumber(seed) ? "a fraction" : type_name(seed));
        /* Exact in a double up to 2^53; beyond it the JSON number has already been rounded. */
        if (!is_int(seed, -9007199254740992.0, 9007199254740992.0))
            return BAD(e, "seed", "invalid_value", "'seed' must be within +-2^53");
        r->has_seed = true;
        r->seed = (uint64_t)(int64_t)seed->valuedouble;
    }
    int n = 1;
    if (get_int(root, "n", INT32_MIN, INT32_MAX, &n, e)) return -1;
    if (n != 1) return BAD(e, "n", "unsupported", "'n' must be 1 (one choice per request)");
    bool echo = false;
    if (get_bool(root, "echo", &echo, e)) return -1;
    if (echo) return BAD(e, "echo", "unsupported", "'echo' true is not supported");
    if (parse_stop(root, r, e) || get_bool(root, "stream", &r->stream, e) ||
        get_bool(root, "return_token_ids", &r->return_token_ids, e) ||
        get_bool(root, "ignore_eos", &r->ignore_eos, e))
        return -1;
    const cJSON *so = field(root, "stream_options");
    if (so) {
        if (!cJSON_IsObject(so))
            return BAD(e, "stream_options", "invalid_type", "'stream_options' must be an object");
        if (get_bool(so, "include_usage", &r->include_usage, e)) return -1;
    }
    if (kind == GA_API_COMPLETIONS) {
        if (get_int(root, "logprobs", 0, GA_API_MAX_TOP, &r->logprobs, e)) return -1;
    } else {
        bool lp = false;
        int top = 0;
        if (get_bool(root, "logprobs", &lp, e) ||
            get_int(root, "top_logprobs", 0, GA_API_MAX_TOP, &top, e))
            return -1;
        if (field(root, "top_logprobs") && !lp)
            return BAD(e, "top_logprobs", "invalid_value", "'top_logprobs' needs 'logprobs': true");
        if (lp) r->logprobs = top;
    }
    return refuse_unsupported(root, e);
}

int ga_api_request_parse(ga_api_kind kind, const char *body, size_t len, ga_api_request *out,
                         ga_api_error *e) {
    memset(out, 0, sizeof *out);
    out->kind = kind;
    out->max_tokens = -1;
    out->temperature = 1.0; /* OpenAI's defaults */
    out->top_p = 1.0;
    out->logprobs = -1;
    if (!body || len == 0) return BAD(e, NULL, "invalid_json", "the request body is empty");
    if (has_nul_escape(body, len))
        return BAD(e, NULL, "invalid_value", "strings may not contain U+0000");
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(body, len, &end, 0);
    if (!root) {
        size_t at = end && end >= body ? (size_t)(end - body) : 0;
        return BAD(e, NULL, "invalid_json", "the body is not valid JSON (near byte %zu)", at);
    }
    for (const char *p = end; p && p < body + len; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            cJSON_Delete(root);
            return BAD(e, NULL, "invalid_json", "the body has text after the JSON value (byte %zu)",
                       (size_t)(p - body));
        }
    int rc = 0;
    if (!cJSON_IsObject(root))
        rc =
            BAD(e, NULL, "invalid_type", "the body must be a JSON object, not %s", type_name(root));
    else
        rc = parse_fields(root, kind, out, e);
    cJSON_Delete(root);
    if (rc) ga_api_request_free(out);
    return rc;
}
