/*
 * What a generation request gets back (see completion.h): the OpenAI completion and chat
 * completion objects, their log-probabilities and token ids, and the server-sent events of a
 * stream, which hold back text that could still begin a stop string.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "completion.h"

/* ------------------------------------------------------------------ answers */

static const char *finish_str(ga_sched_finish f) {
    return f == GA_FINISH_STOP        ? "stop"
           : f == GA_FINISH_LENGTH    ? "length"
           : f == GA_FINISH_CANCELLED ? "abort"
                                      : "error";
}

static char *token_str(const job *j, int32_t id) {
    char *s = NULL;
    size_t n;
    ga_err err;
    if (j->srv->tok && !ga_tok_decode(j->srv->tok, &id, 1, &s, &n, &err)) return s;
    char buf[32];
    snprintf(buf, sizeof buf, "token_id:%d", id);
    return strdup(buf);
}

static cJSON *bytes_of(const char *s) {
    cJSON *a = cJSON_CreateArray();
    for (const unsigned char *p = (const unsigned char *)s; a && *p; p++)
        cJSON_AddItemToArray(a, cJSON_CreateNumber(*p));
    return a;
}

/* Log-probabilities of ids [a, b) in the endpoint's shape. */
static cJSON *logprobs_json(job *j, int a, int b) {
    if (j->req.logprobs < 0 || !j->lp) return cJSON_CreateNull();
    cJSON *o = cJSON_CreateObject();
    if (j->req.kind == GA_API_CHAT) {
        cJSON *content = cJSON_AddArrayToObject(o, "content");
        for (int i = a; i < b; i++) {
            const ga_sched_token *t = &j->lp[i];
            cJSON *e = cJSON_CreateObject();
            char *s = token_str(j, t->id);
            cJSON_AddStringToObject(e, "token", s ? s : "");
            cJSON_AddNumberToObject(e, "logprob", t->logprob);
            cJSON_AddItemToObject(e, "bytes", bytes_of(s ? s : ""));
            free(s);
            cJSON *top = cJSON_AddArrayToObject(e, "top_logprobs");
            for (int k = 0; k < t->n_top; k++) {
                cJSON *te = cJSON_CreateObject();
                char *ts = token_str(j, t->top_ids[k]);
                cJSON_AddStringToObject(te, "token", ts ? ts : "");
                cJSON_AddNumberToObject(te, "logprob", t->top_logprobs[k]);
                cJSON_AddItemToObject(te, "bytes", bytes_of(ts ? ts : ""));
                free(ts);
                cJSON_AddItemToArray(top, te);
            }
            cJSON_AddItemToArray(content, e);
        }
        return o;
    }
    cJSON *toks = cJSON_AddArrayToObject(o, "tokens");
    cJSON *lps = cJSON_AddArrayToObject(o, "token_logprobs");
    cJSON *tops = cJSON_AddArrayToObject(o, "top_logprobs");
    cJSON *offs = cJSON_AddArrayToObject(o, "text_offset");
    for (int i = a; i < b; i++) {
        const ga_sched_token *t = &j->lp[i];
        char *s = token_str(j, t->id);
        cJSON_AddItemToArray(toks, cJSON_CreateString(s ? s : ""));
        cJSON_AddItemToArray(lps, cJSON_CreateNumber(t->logprob));
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)j->lp_offset));
        j->lp_offset += s ? (long)strlen(s) : 0;
        free(s);
        cJSON *top = cJSON_CreateObject();
        for (int k = 0; k < t->n_top; k++) {
            char *ts = token_str(j, t->top_ids[k]);
            cJSON_AddNumberToObject(top, ts ? ts : "", t->top_logprobs[k]);
            free(ts);
        }
        cJSON_AddItemToArray(tops, top);
    }
    return o;
}

static cJSON *ids_json(const int32_t *ids, int n) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; a && i < n; i++)
        cJSON_AddItemToArray(a, cJSON_CreateNumber(ids[i]));
    return a;
}

static cJSON *usage_json(const job *j) {
    cJSON *u = cJSON_CreateObject();
    cJSON_AddNumberToObject(u, "prompt_tokens", j->n_prompt);
    cJSON_AddNumberToObject(u, "completion_tokens", j->n_ids);
    cJSON_AddNumberToObject(u, "total_tokens", j->n_prompt + j->n_ids);
    return u;
}

static bool want_ids(const job *j) {
    return j->req.return_token_ids || !j->srv->tok; /* ids are all a tokenizer-less model has */
}

static cJSON *envelope(const job *j, const char *object) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "id", j->id);
    cJSON_AddStringToObject(root, "object", object);
    cJSON_AddNumberToObject(root, "created", (double)j->created);
    cJSON_AddStringToObject(root, "model", j->srv->model_name);
    return root;
}

/* The whole answer of a request that is done (plain JSON). */
cJSON *ga_job_full_answer(job *j) {
    bool chat = j->req.kind == GA_API_CHAT;
    cJSON *root = envelope(j, chat ? "chat.completion" : "text_completion");
    cJSON *choices = cJSON_AddArrayToObject(root, "choices");
    cJSON *c = cJSON_CreateObject();
    cJSON_AddNumberToObject(c, "index", 0);
    if (chat) {
        cJSON *msg = cJSON_AddObjectToObject(c, "message");
        cJSON_AddStringToObject(msg, "role", "assistant");
        cJSON_AddStringToObject(msg, "content", j->text.p ? j->text.p : "");
    } else {
        cJSON_AddStringToObject(c, "text", j->text.p ? j->text.p : "");
    }
    cJSON_AddItemToObject(c, "logprobs", logprobs_json(j, 0, j->n_ids));
    cJSON_AddStringToObject(c, "finish_reason", finish_str(j->finish));
    if (want_ids(j)) {
        cJSON_AddItemToObject(c, "prompt_token_ids", ids_json(j->prompt, j->n_prompt));
        cJSON_AddItemToObject(c, "token_ids", ids_json(j->ids, j->n_ids));
        cJSON_AddItemToObject(root, "prompt_token_ids", ids_json(j->prompt, j->n_prompt));
    }
    cJSON_AddItemToArray(choices, c);
    cJSON_AddItemToObject(root, "usage", usage_json(j));
    return root;
}

static int add_event(job *j, cJSON *root) {
    char *s = root ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    int rc = !s || ga_buf_str(&j->out, "data: ") || ga_buf_str(&j->out, s) ||
             ga_buf_str(&j->out, "\n\n");
    free(s);
    return rc ? -1 : 0;
}

/* Text that may be sent: all of it once done, else all but what could still begin a stop
 * string, cut at a character boundary. */
static size_t safe_len(const job *j) {
    size_t n = j->text.len;
    if (j->done || !j->max_stop) return n;
    n = n > j->max_stop - 1 ? n - (j->max_stop - 1) : 0;
    while (n > j->text_sent && ((unsigned char)j->text.p[n] & 0xC0) == 0x80)
        n--;
    return n < j->text_sent ? j->text_sent : n;
}

/* Appends the events the job's progress allows to j->out (under j->mu). */
int ga_job_stream_events(job *j) {
    bool chat = j->req.kind == GA_API_CHAT;
    const char *object = chat ? "chat.completion.chunk" : "text_completion";
    int rc = 0;
    if (!j->started) {
        j->started = true;
        if (chat) {
            cJSON *root = envelope(j, object);
            cJSON *c = cJSON_CreateObject();
            cJSON_AddNumberToObject(c, "index", 0);
            cJSON *d = cJSON_AddObjectToObject(c, "delta");
            cJSON_AddStringToObject(d, "role", "assistant");
            cJSON_AddStringToObject(d, "content", "");
            cJSON_AddNullToObject(c, "logprobs");
            cJSON_AddNullToObject(c, "finish_reason");
            cJSON_AddItemToArray(cJSON_AddArrayToObject(root, "choices"), c);
            if (want_ids(j))
                cJSON_AddItemToObject(root, "prompt_token_ids", ids_json(j->prompt, j->n_prompt));
            rc |= add_event(j, root);
        }
    }
    size_t safe = safe_len(j);
    bool new_ids = j->n_ids > j->ids_sent && (want_ids(j) || j->req.logprobs >= 0);
    if (safe > j->text_sent || new_ids) {
        cJSON *root = envelope(j, object);
        cJSON *c = cJSON_CreateObject();
        cJSON_AddNumberToObject(c, "index", 0);
        char save = j->text.p ? j->text.p[safe] : 0;
        if (j->text.p) j->text.p[safe] = 0;
        const char *delta = j->text.p ? j->text.p + j->text_sent : "";
        if (chat)
            cJSON_AddStringToObject(cJSON_AddObjectToObject(c, "delta"), "content", delta);
        else
            cJSON_AddStringToObject(c, "text", delta);
        if (j->text.p) j->text.p[safe] = save;
        cJSON_AddItemToObject(c, "logprobs", logprobs_json(j, j->ids_sent, j->n_ids));
        cJSON_AddNullToObject(c, "finish_reason");
        if (want_ids(j))
            cJSON_AddItemToObject(c, "token_ids",
                                  ids_json(j->ids + j->ids_sent, j->n_ids - j->ids_sent));
        cJSON_AddItemToArray(cJSON_AddArrayToObject(root, "choices"), c);
        if (!chat && want_ids(j) && j->ids_sent == 0)
            cJSON_AddItemToObject(root, "prompt_token_ids", ids_json(j->prompt, j->n_prompt));
        rc |= add_event(j, root);
        j->text_sent = safe;
        j->ids_sent = j->n_ids;
    }
    if (j->done) {
        if (j->finish == GA_FINISH_ERROR) {
            ga_api_error e;
            ga_api_fail(&e, 500, "server_error", "generation_failed", NULL, "%s", j->err);
            char *s = ga_api_error_json(&e);
            rc |= !s || ga_buf_str(&j->out, "data: ") || ga_buf_str(&j->out, s) ||
                  ga_buf_str(&j->out, "\n\n");
            free(s);
        } else {
            cJSON *root = envelope(j, object);
            cJSON *c = cJSON_CreateObject();
            cJSON_AddNumberToObject(c, "index", 0);
            if (chat)
                cJSON_AddObjectToObject(c, "delta");
            else
                cJSON_AddStringToObject(c, "text", "");
            cJSON_AddNullToObject(c, "logprobs");
            cJSON_AddStringToObject(c, "finish_reason", finish_str(j->finish));
            cJSON_AddItemToArray(cJSON_AddArrayToObject(root, "choices"), c);
            rc |= add_event(j, root);
            if (j->req.include_usage) {
                root = envelope(j, object);
                cJSON_AddArrayToObject(root, "choices");
                cJSON_AddItemToObject(root, "usage", usage_json(j));
                rc |= add_event(j, root);
            }
        }
        rc |= ga_buf_str(&j->out, "data: [DONE]\n\n");
        j->ended = true;
    }
    return rc ? -1 : 0;
}
