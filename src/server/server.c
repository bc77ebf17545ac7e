/*
 * HTTP (see server.h): the libmicrohttpd daemon, the route table, authentication, the body
 * size limit, and the small endpoints (/health, /v1/models, /metrics). The generation
 * endpoints are in completion.c.
 */
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "server_internal.h"

/* ------------------------------------------------------------------ buffers and answers */

int ga_buf_add(ga_buf *b, const void *data, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) return -1;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = 0;
    return 0;
}

int ga_buf_str(ga_buf *b, const char *s) {
    return ga_buf_add(b, s, strlen(s));
}

void ga_buf_free(ga_buf *b) {
    free(b->p);
    *b = (ga_buf){0};
}

enum MHD_Result ga_srv_send(struct MHD_Connection *c, int status, const char *type,
                            const char *body, size_t len) {
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, "Content-Type", type);
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    return ret;
}

enum MHD_Result ga_srv_error(struct MHD_Connection *c, const ga_api_error *e, int retry_s) {
    char *json = ga_api_error_json(e);
    const char *body = json ? json
                            : "{\"error\":{\"message\":\"out of memory\",\"type\":"
                              "\"server_error\",\"param\":null,\"code\":\"oom\"}}";
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    free(json);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, "Content-Type", "application/json");
    if (retry_s > 0) {
        char v[16];
        snprintf(v, sizeof v, "%d", retry_s);
        MHD_add_response_header(r, "Retry-After", v);
    }
    if (e->status == 401) MHD_add_response_header(r, "WWW-Authenticate", "Bearer");
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)e->status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result send_json(struct MHD_Connection *c, cJSON *root) {
    char *s = root ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (!s) {
        ga_api_error e;
        ga_api_fail(&e, 500, "server_error", "out_of_memory", NULL, "out of memory");
        return ga_srv_error(c, &e, 0);
    }
    enum MHD_Result ret = ga_srv_send(c, 200, "application/json", s, strlen(s));
    free(s);
    return ret;
}

/* ------------------------------------------------------------------ small endpoints */

static enum MHD_Result get_models(ga_server *srv, struct MHD_Connection *c) {
    cJSON *root = cJSON_CreateObject(), *data = cJSON_CreateArray(), *m = cJSON_CreateObject();
    if (root && data && m) {
        cJSON_AddStringToObject(root, "object", "list");
        cJSON_AddStringToObject(m, "id", srv->model_name);
        cJSON_AddStringToObject(m, "object", "model");
        cJSON_AddNumberToObject(m, "created", (double)srv->created);
        cJSON_AddStringToObject(m, "owned_by", "gattn");
        cJSON_AddNumberToObject(m, "max_model_len", srv->max_ctx);
        cJSON_AddItemToArray(data, m);
        cJSON_AddItemToObject(root, "data", data);
        return send_json(c, root);
    }
    cJSON_Delete(m);
    cJSON_Delete(data);
    return send_json(c, NULL);
}

static void hist_text(ga_buf *b, const char *name, const char *help, const ga_sched_hist *h) {
    char line[256];
    snprintf(line, sizeof line, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    ga_buf_str(b, line);
    uint64_t cum = 0;
    for (int i = 0; i <= GA_SCHED_HIST_BUCKETS; i++) {
        cum += h->count[i];
        if (i < GA_SCHED_HIST_BUCKETS)
            snprintf(line, sizeof line, "%s_bucket{le=\"%g\"} %llu\n", name,
                     ga_sched_hist_bounds[i], (unsigned long long)cum);
        else
            snprintf(line, sizeof line, "%s_bucket{le=\"+Inf\"} %llu\n", name,
                     (unsigned long long)cum);
        ga_buf_str(b, line);
    }
    snprintf(line, sizeof line, "%s_sum %.9g\n%s_count %llu\n", name, h->sum, name,
             (unsigned long long)h->n);
    ga_buf_str(b, line);
}

static void metric(ga_buf *b, const char *name, const char *type, const char *help, double v) {
    char line[320];
    snprintf(line, sizeof line, "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name, help, name, type,
             name, v);
    ga_buf_str(b, line);
}

/* Prometheus text format 0.0.4. */
static enum MHD_Result get_metrics(ga_server *srv, struct MHD_Connection *c) {
    ga_sched_metrics m;
    ga_sched_metrics_get(srv->q, &m);
    ga_buf b = {0};
    metric(&b, "gattn_requests_running", "gauge", "Requests holding a cache slot.", m.running);
    metric(&b, "gattn_requests_waiting", "gauge", "Requests queued for a cache slot.", m.waiting);
    metric(&b, "gattn_cache_slots_used", "gauge", "Sequence slots of the cache in use.",
           m.slots_used);
    metric(&b, "gattn_cache_slots_free", "gauge", "Sequence slots of the cache free.",
           m.slots_free);
    /* Paged cache (gattn serve --kv-blocks / --kv-memory): 0 blocks when slots are used. */
    metric(&b, "gattn_kv_paged", "gauge", "1 when the KV cache is paged, 0 for slots.", m.kv_paged);
    metric(&b, "gattn_kv_blocks_used", "gauge", "KV cache blocks in use.", m.blocks_used);
    metric(&b, "gattn_kv_blocks_free", "gauge", "KV cache blocks free.", m.blocks_free);
    metric(&b, "gattn_preemptions_total", "counter",
           "Requests preempted (blocks freed, recomputed later) when the cache ran out.",
           (double)m.preemptions);
    metric(&b, "gattn_prompt_tokens_total", "counter", "Prompt tokens prefilled.",
           (double)m.prompt_tokens);
    metric(&b, "gattn_generation_tokens_total", "counter", "Tokens generated.",
           (double)m.generated_tokens);
    metric(&b, "gattn_prefill_calls_total", "counter",
           "Prefill passes (one a step, every prefilling request's chunk together).",
           (double)m.prefill_calls);
    metric(&b, "gattn_prefill_sequences_total", "counter",
           "Request chunks in those passes (over gattn_prefill_calls_total: requests a pass).",
           (double)m.prefill_seqs);
    metric(&b, "gattn_prefill_tokens_per_second", "gauge",
           "Prompt tokens per second of prefill time, since start.",
           m.prefill_s > 0 ? (double)m.prompt_tokens / m.prefill_s : 0);
    metric(&b, "gattn_decode_tokens_per_second", "gauge",
           "Tokens per second of decode-step time, since start.",
           m.decode_s > 0 ? (double)m.decode_tokens / m.decode_s : 0);
    /* The engine loop's own time, as counters: a load generator can take differences over
     * its run and tell a busy server (prefill + decode seconds close to the wall time) from
     * one waiting for its clients. */
    metric(&b, "gattn_prefill_seconds_total", "counter", "Wall time in prefill passes.",
           m.prefill_s);
    metric(&b, "gattn_decode_seconds_total", "counter", "Wall time in decode steps.", m.decode_s);
    metric(&b, "gattn_decode_steps_total", "counter", "Decode steps.", (double)m.decode_steps);
    metric(&b, "gattn_prefill_capped_total", "counter",
           "Prefill passes held below --prefill-chunk by --prefill-share (decodes were running).",
           (double)m.prefill_capped);
    metric(&b, "gattn_mixed_steps_total", "counter",
           "Steps that ran decode rows and prompt tokens in one pass (also counted as decode "
           "steps and prefill passes; their time split between the two by rows).",
           (double)m.mixed_steps);
    metric(&b, "gattn_mixed_seconds_total", "counter", "Wall time in mixed steps.", m.mixed_s);
    metric(&b, "gattn_decode_rows_total", "counter",
           "Rows of those steps (over gattn_decode_steps_total: the mean batch).",
           (double)m.decode_tokens);
    char line[160];
    ga_buf_str(&b, "# HELP gattn_requests_finished_total Requests finished, by reason.\n"
                   "# TYPE gattn_requests_finished_total counter\n");
    for (int f = 0; f < 4; f++) {
        snprintf(line, sizeof line, "gattn_requests_finished_total{reason=\"%s\"} %llu\n",
                 ga_sched_finish_name((ga_sched_finish)f),
                 (unsigned long long)m.requests_finished[f]);
        ga_buf_str(&b, line);
    }
    hist_text(&b, "gattn_time_to_first_token_seconds", "Time from arrival to the first token.",
              &m.ttft);
    hist_text(&b, "gattn_inter_token_latency_seconds", "Time between tokens of a request.", &m.itl);
    enum MHD_Result ret;
    if (!b.p) {
        ga_api_error e;
        ga_api_fail(&e, 500, "server_error", "out_of_memory", NULL, "out of memory");
        ret = ga_srv_error(c, &e, 0);
    } else {
        ret = ga_srv_send(c, 200, "text/plain; version=0.0.4; charset=utf-8", b.p, b.len);
    }
    ga_buf_free(&b);
    return ret;
}

/* ------------------------------------------------------------------ routing */

typedef enum route { R_NONE, R_HEALTH, R_MODELS, R_METRICS, R_COMPLETIONS, R_CHAT } route;

static const struct {
    const char *path;
    route r;
    const char *method;
} ROUTES[] = {
    {"/health", R_HEALTH, "GET"},
    {"/v1/models", R_MODELS, "GET"},
    {"/metrics", R_METRICS, "GET"},
    {"/v1/completions", R_COMPLETIONS, "POST"},
    {"/v1/chat/completions", R_CHAT, "POST"},
};

/* Per-connection request state (MHD's con_cls). */
typedef struct conn {
    route r;
    ga_buf body;
    bool too_big;
} conn;

/* Constant-time comparison of the presented key with the configured one. */
static bool key_ok(const ga_server *srv, struct MHD_Connection *c) {
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7)) return false;
    const char *k = h + 7, *want = srv->api_key;
    size_t kl = strlen(k), wl = strlen(want);
    unsigned diff = (unsigned)(kl ^ wl);
    for (size_t i = 0; i < wl; i++)
        diff |= (unsigned)(unsigned char)want[i] ^ (unsigned)(unsigned char)(i < kl ? k[i] : 0);
    return diff == 0;
}

static enum MHD_Result fail(struct MHD_Connection *c, int status, const char *type,
                            const char *code, const char *fmt, const char *arg) {
    ga_api_error e;
    ga_api_fail(&e, status, type, code, NULL, fmt, arg);
    return ga_srv_error(c, &e, 0);
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url,
                               const char *method, const char *version, const char *upload,
                               size_t *upload_size, void **con_cls) {
    ga_server *srv = cls;
    conn *st = *con_cls;
    if (!st) {
        /* First call: headers only. Route, method, key and declared size are decided here,
         * before any of the body is read. */
        if (!(st = calloc(1, sizeof *st))) return MHD_NO;
        *con_cls = st;
        size_t i;
        for (i = 0; i < sizeof ROUTES / sizeof *ROUTES; i++)
            if (!strcmp(url, ROUTES[i].path)) break;
        if (i == sizeof ROUTES / sizeof *ROUTES)
            return fail(c, 404, "not_found_error", "not_found", "no route %s", url);
        if (strcmp(method, ROUTES[i].method)) {
            ga_api_error e;
            ga_api_fail(&e, 405, "invalid_request_error", "method_not_allowed", NULL,
                        "%s %s: method not allowed (use %s)", method, url, ROUTES[i].method);
            char *json = ga_api_error_json(&e);
            struct MHD_Response *r = MHD_create_response_from_buffer(
                json ? strlen(json) : 0, json ? json : (void *)"", MHD_RESPMEM_MUST_COPY);
            free(json);
            if (!r) return MHD_NO;
            MHD_add_response_header(r, "Content-Type", "application/json");
            MHD_add_response_header(r, "Allow", ROUTES[i].method);
            enum MHD_Result ret = MHD_queue_response(c, 405, r);
            MHD_destroy_response(r);
            return ret;
        }
        st->r = ROUTES[i].r;
        if (srv->api_key && !strncmp(url, "/v1/", 4) && !key_ok(srv, c))
            return fail(c, 401, "authentication_error", "invalid_api_key",
                        "missing or wrong API key (send 'Authorization: Bearer KEY')%s", "");
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > srv->o.max_body) {
            char lim[32];
            snprintf(lim, sizeof lim, "%zu", srv->o.max_body);
            return fail(c, 413, "invalid_request_error", "request_too_large",
                        "the request body is larger than the limit of %s bytes", lim);
        }
        return MHD_YES;
    }
    if (*upload_size) {
        /* A chunked body has no Content-Length: the limit is checked as it arrives, and
         * what is past it is read and dropped so the answer can still be sent. */
        if (!st->too_big && st->body.len + *upload_size > srv->o.max_body) st->too_big = true;
        if (!st->too_big && ga_buf_add(&st->body, upload, *upload_size)) return MHD_NO;
        *upload_size = 0;
        return MHD_YES;
    }
    if (st->too_big) {
        char lim[32];
        snprintf(lim, sizeof lim, "%zu", srv->o.max_body);
        return fail(c, 413, "invalid_request_error", "request_too_large",
                    "the request body is larger than the limit of %s bytes", lim);
    }
    switch (st->r) {
    case R_HEALTH:
        return ga_srv_send(c, 200, "application/json", "{\"status\":\"ok\"}", 15);
    case R_MODELS:
        return get_models(srv, c);
    case R_METRICS:
        return get_metrics(srv, c);
    case R_COMPLETIONS:
        return ga_srv_generate(srv, c, GA_API_COMPLETIONS, st->body.p, st->body.len);
    case R_CHAT:
        return ga_srv_generate(srv, c, GA_API_CHAT, st->body.p, st->body.len);
    case R_NONE:
        break;
    }
    return MHD_NO;
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
                      enum MHD_RequestTerminationCode why) {
    conn *st = *con_cls;
    if (!st) return;
    ga_buf_free(&st->body);
    free(st);
    *con_cls = NULL;
}

/* ------------------------------------------------------------------ start / stop */

ga_status ga_server_start(const ga_server_opts *o, const ga_model *m, const ga_tokenizer *tok,
                          ga_sched *q, const ga_gen_opts *stops, ga_server **out, ga_err *err) {
    *out = NULL;
    const char *host = o->host ? o->host : "127.0.0.1";
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    char port[16];
    snprintf(port, sizeof port, "%d", o->port);
    int gai = getaddrinfo(host, port, &hints, &ai);
    if (gai || !ai)
        return ga_err_set(err, GA_ERR_ARG, "--host '%s': %s", host,
                          gai ? gai_strerror(gai) : "no address");
    ga_server *srv = calloc(1, sizeof *srv);
    if (!srv) {
        freeaddrinfo(ai);
        return ga_err_set(err, GA_ERR_OOM, "out of memory");
    }
    srv->o = *o;
    srv->host = strdup(host);
    srv->api_key = o->api_key ? strdup(o->api_key) : NULL;
    srv->model_name = strdup(o->model_name ? o->model_name : ga_model_name(m));
    srv->m = m;
    srv->tok = tok;
    srv->q = q;
    srv->stops = *stops;
    srv->created = (long)time(NULL);
    if (!srv->o.max_body) srv->o.max_body = 4u << 20;
    if (!srv->o.max_connections) srv->o.max_connections = 512;
    srv->max_ctx = o->max_context;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ITC |
                     MHD_USE_POLL;
    if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    if (!srv->host || (o->api_key && !srv->api_key) || !srv->model_name) {
        freeaddrinfo(ai);
        ga_server_stop(srv);
        return ga_err_set(err, GA_ERR_OOM, "out of memory");
    }
    srv->d =
        MHD_start_daemon(flags, (uint16_t)o->port, NULL, NULL, handler, srv, MHD_OPTION_SOCK_ADDR,
                         ai->ai_addr, MHD_OPTION_NOTIFY_COMPLETED, completed, srv,
                         MHD_OPTION_CONNECTION_LIMIT, (unsigned)srv->o.max_connections,
                         MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)600, MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!srv->d) {
        ga_server_stop(srv);
        return ga_err_set(err, GA_ERR_IO,
                          "cannot listen on %s port %d (in use, or not an "
                          "address of this machine)",
                          host, o->port);
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(srv->d, MHD_DAEMON_INFO_BIND_PORT);
    srv->port = info ? info->port : o->port;
    *out = srv;
    return GA_OK;
}

int ga_server_port(const ga_server *srv) {
    return srv->port;
}

void ga_server_quiesce(ga_server *srv) {
    if (!srv || !srv->d) return;
    MHD_socket fd = MHD_quiesce_daemon(srv->d);
    if (fd != MHD_INVALID_SOCKET) close(fd);
}

void ga_server_stop(ga_server *srv) {
    if (!srv) return;
    /* Stopping the daemon shuts every socket at once: first let the answers of requests that
     * are done (ga_sched_stop has finished them all) reach their clients, streams' last
     * events and [DONE] included; 2 s at most, for a client that does not read. */
    for (int i = 0; i < 200 && __atomic_load_n(&srv->live_jobs, __ATOMIC_ACQUIRE) > 0; i++)
        usleep(10000);
    if (srv->d) MHD_stop_daemon(srv->d);
    free(srv->host);
    free(srv->api_key);
    free(srv->model_name);
    free(srv);
}
