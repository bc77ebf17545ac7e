/*
 * What server.c (HTTP, routing, the small endpoints) and completion.c (the two generation
 * endpoints) share: the server struct, a growable byte buffer and the answer helpers.
 */
#ifndef GATTN_SERVER_INTERNAL_H
#define GATTN_SERVER_INTERNAL_H

#include <microhttpd.h>
#include <pthread.h>

#include "request.h"
#include "server.h"

struct ga_server {
    ga_server_opts o;
    char *host, *api_key, *model_name; /* own copies */
    const ga_model *m;
    const ga_tokenizer *tok;
    ga_sched *q;
    ga_gen_opts stops;
    int max_ctx, port;
    struct MHD_Daemon *d;
    unsigned long long next_id; /* for response ids; atomic */
    int live_jobs;              /* generation requests not yet answered in full; atomic */
    long created;               /* server start, the models' "created" */
};

typedef struct ga_buf {
    char *p;
    size_t len, cap;
} ga_buf;
/* Appends; -1 when out of memory (the buffer is unchanged). */
int ga_buf_add(ga_buf *b, const void *data, size_t n);
int ga_buf_str(ga_buf *b, const char *s);
void ga_buf_free(ga_buf *b);

/* Queues a JSON error answer (and Retry-After when retry_s > 0). */
enum MHD_Result ga_srv_error(struct MHD_Connection *c, const ga_api_error *e, int retry_s);
/* Queues a body of the given content type (copied). */
enum MHD_Result ga_srv_send(struct MHD_Connection *c, int status, const char *type,
                            const char *body, size_t len);

/* The generation endpoints (completion.c): body is the whole request body. */
enum MHD_Result ga_srv_generate(ga_server *srv, struct MHD_Connection *c, ga_api_kind kind,
                                const char *body, size_t len);

#endif
