/*
 * The OpenAI-compatible HTTP server: libmicrohttpd for HTTP, cJSON for the bodies, and a
 * ga_sched (src/engine/scheduler.h) that owns the session and batches every request.
 *
 * Threads: libmicrohttpd runs one thread per connection (MHD_USE_THREAD_PER_CONNECTION with
 * its internal accept thread). A request's thread parses and checks the body, submits it to
 * the scheduler and then blocks on the request's own condition variable: for a plain answer
 * until the request is done, for a stream (server-sent events) inside the response's content
 * callback until the next tokens arrive. Blocking is what that mode allows and makes the code
 * a straight line; the cost, a thread per open connection, is bounded by max_connections.
 * While it waits, the thread polls its socket for a hang-up, so a client that goes away frees
 * its sequence within one wait tick (50 ms) even before the next token is written.
 */
#ifndef GATTN_SERVER_SERVER_H
#define GATTN_SERVER_SERVER_H

#include "engine/generate.h"
#include "engine/scheduler.h"
#include "gattn/tokenizer.h"

typedef struct ga_server_opts {
    const char *host;       /* numeric or a name getaddrinfo resolves ("127.0.0.1") */
    int port;               /* 0: any free port (see ga_server_port) */
    const char *api_key;    /* NULL: no authentication */
    const char *model_name; /* served name (/v1/models, the "model" field) */
    size_t max_body;        /* bytes of a request body at most (larger: 413) */
    int max_connections;    /* open connections at most (0: 512) */
    int max_context;        /* the session's context (prompt + max_tokens at most) */
} ga_server_opts;

typedef struct ga_server ga_server;

/* Binds and starts serving. m, tok (NULL: token-id prompts only) and q must outlive the
 * server; q must be started. stops holds the stop ids every request gets (EOS and the chat
 * end tokens). */
ga_status ga_server_start(const ga_server_opts *o, const ga_model *m, const ga_tokenizer *tok,
                          ga_sched *q, const ga_gen_opts *stops, ga_server **out, ga_err *err);
int ga_server_port(const ga_server *srv);
/* Stops accepting connections (those open are still served). */
void ga_server_quiesce(ga_server *srv);
/* Closes every connection and frees the server (after ga_sched_stop, so no request waits). */
void ga_server_stop(ga_server *srv);

#endif
