/*
 * POST /v1/completions and /v1/chat/completions: a request body becomes a job (prompt ids,
 * sampling, stops), the job is submitted to the scheduler, and the scheduler's callbacks fill
 * it (ids, text, log-probabilities) under the job's lock while the connection's thread turns
 * it into one JSON answer or a stream of server-sent events.
 *
 * Stop strings are matched on the decoded text on the scheduler thread, so generation ends
 * the step a stop string completes; the answer's text ends before the stop string (OpenAI's
 * rule). A stream holds back the last (longest stop - 1) bytes until they cannot start a stop
 * string, so no client ever sees a stop string's beginning.
 */
#define _GNU_SOURCE /* memmem, POLLRDHUP */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "completion.h"

static void job_unref(job *j) {
    pthread_mutex_lock(&j->mu);
    int left = --j->refs;
    pthread_mutex_unlock(&j->mu);
    if (left) return;
    if (j->h) ga_sched_release(j->srv->q, j->h);
    ga_api_request_free(&j->req);
    ga_tok_stream_free(j->ts);
    ga_buf_free(&j->text);
    ga_buf_free(&j->out);
    free(j->prompt);
    free(j->ids);
    free(j->lp);
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->cv);
    __atomic_sub_fetch(&j->srv->live_jobs, 1, __ATOMIC_RELEASE);
    free(j);
}

/* ------------------------------------------------------------------ scheduler callbacks */

/* Cuts the text at the earliest stop string that now appears in it. */
static void check_stops(job *j) {
    const ga_api_request *r = &j->req;
    if (!r->n_stop) return;
    size_t from = j->scan_from >= j->max_stop ? j->scan_from - j->max_stop + 1 : 0;
    size_t best = (size_t)-1;
    for (int i = 0; i < r->n_stop; i++) {
        const char *hit =
            memmem(j->text.p + from, j->text.len - from, r->stop[i], strlen(r->stop[i]));
        if (hit && (size_t)(hit - j->text.p) < best) best = (size_t)(hit - j->text.p);
    }
    j->scan_from = j->text.len;
    if (best != (size_t)-1) {
        j->text.len = best;
        j->text.p[best] = 0;
        j->stop_hit = true;
    }
}

static int on_token(void *user, const ga_sched_token *t) {
    job *j = user;
    pthread_mutex_lock(&j->mu);
    if (j->n_ids == j->cap_ids) {
        int cap = j->cap_ids ? 2 * j->cap_ids : 64;
        int32_t *ids = realloc(j->ids, (size_t)cap * sizeof *ids);
        if (ids) j->ids = ids;
        ga_sched_token *lp = NULL;
        if (ids && j->req.logprobs >= 0 && (lp = realloc(j->lp, (size_t)cap * sizeof *lp)))
            j->lp = lp;
        if (!ids || (j->req.logprobs >= 0 && !lp)) {
            j->oom = true;
            pthread_mutex_unlock(&j->mu);
            return 1;
        }
        j->cap_ids = cap;
    }
    j->ids[j->n_ids] = t->id;
    if (j->lp) j->lp[j->n_ids] = *t;
    j->n_ids++;
    if (j->ts && !j->stop_hit) {
        char *piece;
        size_t n;
        ga_err err;
        if (!ga_tok_stream_push(j->ts, t->id, &piece, &n, &err) && ga_buf_add(&j->text, piece, n))
            j->oom = true;
        check_stops(j);
    }
    int stop = j->stop_hit || j->oom;
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
    return stop;
}

static void on_done(void *user, ga_sched_finish f, const char *msg) {
    job *j = user;
    pthread_mutex_lock(&j->mu);
    if (j->ts && !j->stop_hit) {
        char *piece;
        size_t n;
        ga_err err;
        if (!ga_tok_stream_flush(j->ts, &piece, &n, &err) && ga_buf_add(&j->text, piece, n))
            j->oom = true;
        check_stops(j);
    }
    j->done = true;
    j->finish = j->oom ? GA_FINISH_ERROR : f;
    snprintf(j->err, sizeof j->err, "%s", j->oom ? "out of memory" : msg);
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
    job_unref(j); /* the scheduler's reference */
}

/* ------------------------------------------------------------------ preparing a job */

static uint64_t mix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static int no_tokenizer(ga_api_error *e, const char *param) {
    return ga_api_fail(e, 400, "invalid_request_error", "no_tokenizer", param,
                       "this model folder has no tokenizer.json, so it takes prompts only as "
                       "arrays of token ids ('prompt': [1, 2, 3] on /v1/completions)");
}

/* Body -> job fields and prompt ids; 0, or -1 with e set. */
static int prepare(job *j, ga_api_kind kind, const char *body, size_t len, ga_api_error *e) {
    ga_server *srv = j->srv;
    ga_api_request *r = &j->req;
    if (ga_api_request_parse(kind, body, len, r, e)) return -1;
    if (r->model && strcmp(r->model, srv->model_name))
        return ga_api_fail(e, 404, "invalid_request_error", "model_not_found", "model",
                           "the model '%.100s' does not exist here (this server serves '%.100s')",
                           r->model, srv->model_name);
    ga_err err = {{0}};
    const char *param = kind == GA_API_CHAT ? "messages" : "prompt";
    if (r->prompt_ids) {
        j->prompt = r->prompt_ids;
        j->n_prompt = r->n_prompt_ids;
        r->prompt_ids = NULL;
        r->n_prompt_ids = 0;
    } else {
        if (!srv->tok) return no_tokenizer(e, param);
        char *text = r->prompt, *chat = NULL;
        if (kind == GA_API_CHAT) {
            if (ga_tok_chat_format((const char *const *)r->roles, (const char *const *)r->contents,
                                   r->n_messages, &chat, &err))
                return ga_api_fail(e, 400, "invalid_request_error", "invalid_value", param, "%s",
                                   err.msg);
            text = chat;
        }
        ga_status st = ga_tok_encode(srv->tok, text, strlen(text), &j->prompt, &j->n_prompt, &err);
        free(chat);
        if (st)
            return ga_api_fail(e, st == GA_ERR_OOM ? 500 : 400, "invalid_request_error",
                               "invalid_value", param, "%s: %s", param, err.msg);
    }
    int V = ga_model_config(srv->m)->vocab_size;
    if (j->n_prompt < 1)
        return ga_api_fail(e, 400, "invalid_request_error", "invalid_value", param,
                           "the prompt is empty (0 tokens)");
    for (int i = 0; i < j->n_prompt; i++)
        if (j->prompt[i] >= V)
            return ga_api_fail(e, 400, "invalid_request_error", "invalid_value", param,
                               "token id %d at position %d is outside the vocabulary [0, %d)",
                               j->prompt[i], i, V);
    int ctx = srv->max_ctx;
    if (j->n_prompt >= ctx)
        return ga_api_fail(e, 400, "invalid_request_error", "context_length_exceeded", param,
                           "the prompt has %d tokens; the context is %d tokens, and at least one "
                           "must be left to generate",
                           j->n_prompt, ctx);
    if (r->max_tokens >= 0) {
        if ((int64_t)j->n_prompt + r->max_tokens > ctx)
            return ga_api_fail(e, 400, "invalid_request_error", "context_length_exceeded",
                               "max_tokens",
                               "the prompt (%d tokens) plus max_tokens (%d) exceed the context of "
                               "%d tokens",
                               j->n_prompt, r->max_tokens, ctx);
        j->max_tokens = r->max_tokens;
    } else {
        /* OpenAI's defaults: 16 for completions, the rest of the context for chat. */
        j->max_tokens = ctx - j->n_prompt;
        if (kind == GA_API_COMPLETIONS && j->max_tokens > 16) j->max_tokens = 16;
    }
    for (int i = 0; i < r->n_stop; i++)
        if (strlen(r->stop[i]) > j->max_stop) j->max_stop = strlen(r->stop[i]);
    if (srv->tok && !(j->ts = ga_tok_stream_new(srv->tok)))
        return ga_api_fail(e, 500, "server_error", "out_of_memory", NULL, "out of memory");
    return 0;
}

/* ------------------------------------------------------------------ waiting */

/* True when the client has closed its end (so nobody is left to answer). */
static bool hung_up(const job *j) {
    if (j->fd < 0) return false;
    struct pollfd p = {.fd = j->fd, .events = POLLRDHUP};
    return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL));
}

/* Waits (under j->mu) up to one tick for the scheduler; cancels the request when the client
 * is gone. Returns true when the client is gone. */
static bool wait_tick(job *j) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 50 * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&j->cv, &j->mu, &ts);
    if (j->done || !hung_up(j)) return false;
    ga_sched_cancel(j->srv->q, j->h);
    return true;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    job *j = cls;
    pthread_mutex_lock(&j->mu);
    for (;;) {
        if (j->out_off < j->out.len) {
            size_t n = j->out.len - j->out_off;
            if (n > max) n = max;
            memcpy(buf, j->out.p + j->out_off, n);
            j->out_off += n;
            if (j->out_off == j->out.len) j->out.len = j->out_off = 0;
            pthread_mutex_unlock(&j->mu);
            return (ssize_t)n;
        }
        if (j->ended) break;
        if (ga_job_stream_events(j)) {
            ga_sched_cancel(j->srv->q, j->h);
            pthread_mutex_unlock(&j->mu);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        if (j->out.len || j->ended) continue;
        if (wait_tick(j)) {
            pthread_mutex_unlock(&j->mu);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
    }
    pthread_mutex_unlock(&j->mu);
    return MHD_CONTENT_READER_END_OF_STREAM;
}

/* The response is gone (sent, or the connection closed): a request still running has no
 * reader left, so it is cancelled and its slot freed at the next step. */
static void stream_free(void *cls) {
    job *j = cls;
    ga_sched_cancel(j->srv->q, j->h);
    job_unref(j);
}

/* ------------------------------------------------------------------ the endpoint */

enum MHD_Result ga_srv_generate(ga_server *srv, struct MHD_Connection *c, ga_api_kind kind,
                                const char *body, size_t len) {
    job *j = calloc(1, sizeof *j);
    ga_api_error e;
    if (!j) {
        ga_api_fail(&e, 500, "server_error", "out_of_memory", NULL, "out of memory");
        return ga_srv_error(c, &e, 0);
    }
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->cv, NULL);
    j->refs = 1;
    j->srv = srv;
    __atomic_add_fetch(&srv->live_jobs, 1, __ATOMIC_RELAXED);
    j->conn = c;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    j->fd = ci ? ci->connect_fd : -1;
    j->created = (long)time(NULL);
    unsigned long long n = __atomic_add_fetch(&srv->next_id, 1, __ATOMIC_RELAXED);
    snprintf(j->id, sizeof j->id, "%s-%llx%llu", kind == GA_API_CHAT ? "chatcmpl" : "cmpl",
             (unsigned long long)srv->created, n);
    if (prepare(j, kind, body, len, &e)) {
        job_unref(j);
        return ga_srv_error(c, &e, 0);
    }
    const ga_api_request *r = &j->req;
    ga_sched_req_opts so = {.prompt = j->prompt,
                            .n_prompt = j->n_prompt,
                            .max_tokens = j->max_tokens,
                            .n_stop = r->ignore_eos ? 0 : srv->stops.n_stop,
                            .logprobs = r->logprobs,
                            .on_token = on_token,
                            .on_done = on_done,
                            .user = j};
    memcpy(so.stop_ids, srv->stops.stop_ids, sizeof so.stop_ids);
    so.sampling =
        (ga_sampling){.temperature = (float)r->temperature,
                      .top_k = r->top_k,
                      .top_p = (float)r->top_p,
                      .seed = r->has_seed ? r->seed : mix64((uint64_t)time(NULL) ^ mix64(n))};
    ga_sched_refusal why;
    ga_err err = {{0}};
    j->refs = 2; /* the scheduler's reference, taken before it can call back */
    ga_status st = ga_sched_submit(srv->q, &so, &j->h, &why, &err);
    if (st || why) {
        j->refs = 1;
        if (st)
            ga_api_fail(&e, 400, "invalid_request_error", "invalid_value", NULL, "%s", err.msg);
        else if (why == GA_SCHED_QUEUE_FULL)
            ga_api_fail(&e, 429, "rate_limit_error", "queue_full", NULL,
                        "too many requests are waiting; try again shortly");
        else
            ga_api_fail(&e, 503, "server_error", "shutting_down", NULL,
                        "the server is shutting down");
        job_unref(j);
        return ga_srv_error(c, &e, st ? 0 : why == GA_SCHED_QUEUE_FULL ? 1 : 5);
    }
    if (r->stream) {
        struct MHD_Response *resp =
            MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, stream_read, j, stream_free);
        if (!resp) {
            stream_free(j);
            return MHD_NO;
        }
        MHD_add_response_header(resp, "Content-Type", "text/event-stream");
        MHD_add_response_header(resp, "Cache-Control", "no-cache");
        enum MHD_Result ret = MHD_queue_response(c, 200, resp);
        MHD_destroy_response(resp);
        return ret;
    }
    pthread_mutex_lock(&j->mu);
    bool gone = false;
    while (!j->done)
        gone = wait_tick(j) || gone;
    pthread_mutex_unlock(&j->mu);
    enum MHD_Result ret = MHD_NO;
    if (gone) {
        /* nobody to answer: close the connection */
    } else if (j->finish == GA_FINISH_ERROR) {
        ga_api_fail(&e, 500, "server_error", "generation_failed", NULL, "%s", j->err);
        ret = ga_srv_error(c, &e, 0);
    } else if (j->finish == GA_FINISH_CANCELLED) {
        ga_api_fail(&e, 503, "server_error", "shutting_down", NULL,
                    "the request was cancelled: the server is shutting down");
        ret = ga_srv_error(c, &e, 5);
    } else {
        cJSON *root = ga_job_full_answer(j);
        char *s = cJSON_PrintUnformatted(root);
        cJSON_Delete(root);
        if (s)
            ret = ga_srv_send(c, 200, "application/json", s, strlen(s));
        else {
            ga_api_fail(&e, 500, "server_error", "out_of_memory", NULL, "out of memory");
            ret = ga_srv_error(c, &e, 0);
        }
        free(s);
    }
    job_unref(j);
    return ret;
}
