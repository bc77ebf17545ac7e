/*
 * A generation request in flight (a "job"), shared by completion.c (its life: parsing into a
 * job, the scheduler's callbacks, waiting, the endpoint) and completion_answer.c (what is
 * written back: one JSON answer, or server-sent events as the job progresses).
 */
#ifndef GATTN_SERVER_COMPLETION_H
#define GATTN_SERVER_COMPLETION_H

#include <cjson/cJSON.h>

#include "server_internal.h"

typedef struct job {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int refs; /* the connection's and, once submitted, the scheduler's; under mu */
    ga_server *srv;
    ga_api_request req;
    struct MHD_Connection *conn;
    int fd;
    ga_sched_req *h;
    char id[48];
    long created;
    int32_t *prompt;
    int n_prompt, max_tokens;
    size_t max_stop; /* longest stop string */
    /* filled by the scheduler thread, under mu */
    ga_tok_stream *ts;
    ga_buf text;
    size_t scan_from;
    int32_t *ids;
    ga_sched_token *lp; /* per id when logprobs were asked */
    int n_ids, cap_ids;
    bool done, stop_hit, oom;
    ga_sched_finish finish;
    char err[256];
    /* the connection's thread */
    size_t text_sent;
    int ids_sent;
    long lp_offset; /* completions logprobs: text_offset of the next token */
    bool started, ended;
    ga_buf out;
    size_t out_off;
} job;

/* The whole answer of a finished job (NULL when out of memory). Under j->mu. */
cJSON *ga_job_full_answer(job *j);
/* Appends the events the job's progress allows to j->out; nonzero when out of memory.
 * Under j->mu. */
int ga_job_stream_events(job *j);

#endif
