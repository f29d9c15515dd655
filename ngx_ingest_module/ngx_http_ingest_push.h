
/*
 * Copyright (C) ngx_ingest developers
 * SPDX-License-Identifier: BSD-2-Clause
 *
 * One durable push of a batch to a Redis list, the same way on every
 * path (a worker's send, the spool's replay, the blocking exit path):
 *
 *   [ASKING]        when a cluster node said ASK
 *   RPUSH list batch [batch ...]
 *   [WAIT n ms]     when n replicas must hold it before it counts
 *
 * Several batches of one list go in one RPUSH, oldest first, when more
 * than one waits: Redis appends them all or none, and a backlog drains
 * in a round trip per group instead of one per batch.
 *
 * The outcome is known with the last reply: delivered, refused (an
 * error reply, kept word for word), in the master alone (WAIT said fewer
 * than n), or lost (no reply: Redis may or may not have it, so the batch
 * is sent again with its identity and the consumer skips a copy).
 */

#ifndef _NGX_HTTP_INGEST_PUSH_H_INCLUDED_
#define _NGX_HTTP_INGEST_PUSH_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include <hiredis/hiredis.h>
#include <hiredis/async.h>


#define NGX_HTTP_INGEST_PUSH_DELIVERED   0
#define NGX_HTTP_INGEST_PUSH_LOST        1   /* no reply: fate unknown */
#define NGX_HTTP_INGEST_PUSH_REFUSED     2   /* an error reply */
#define NGX_HTTP_INGEST_PUSH_UNSAFE      3   /* on too few replicas */

#define NGX_HTTP_INGEST_PUSH_ERROR_LEN   128

/*
 * The most batches one RPUSH carries, and their most bytes together past
 * the first: no more than one full batch (1 MB), so that a group asks no
 * more of Redis's memory, of the link and of the reply timeout than a
 * single batch may.
 */
#define NGX_HTTP_INGEST_PUSH_MAX_BATCHES 64
#define NGX_HTTP_INGEST_PUSH_MAX_BYTES   (1024 * 1024)


typedef struct ngx_http_ingest_push_s  ngx_http_ingest_push_t;

/*
 * The outcome of an async push: called from inside hiredis (its reply
 * callback), so it may record, arm timers and post events, never free a
 * context nor connect.
 */
typedef void (*ngx_http_ingest_push_done_pt)(ngx_http_ingest_push_t *p);


struct ngx_http_ingest_push_s {
    ngx_str_t                     list;
    ngx_str_t                    *batches;      /* oldest first */
    ngx_uint_t                    nbatches;     /* 1 to MAX_BATCHES */
    ngx_uint_t                    asking;       /* ASKING first */
    ngx_uint_t                    replicas;     /* WAIT for; 0: no WAIT */
    ngx_msec_t                    wait;         /* WAIT's own timeout */

    ngx_http_ingest_push_done_pt  done;
    void                         *data;

    /* the outcome */
    ngx_uint_t                    result;
    long long                     replicated;   /* WAIT's answer */
    u_char                        error[NGX_HTTP_INGEST_PUSH_ERROR_LEN];
    size_t                        error_len;

    unsigned                      pushed:1;     /* RPUSH's reply: ok */
    unsigned                      waits:1;      /* a WAIT follows */
};


/*
 * Queues the commands on ac; NGX_OK: p->done() runs once, with the
 * outcome, and p must live until then.  NGX_ERROR: nothing was queued
 * (the context is going away).
 */
ngx_int_t ngx_http_ingest_push(redisAsyncContext *ac,
    ngx_http_ingest_push_t *p);

/* the blocking twin, for the exit path: the outcome in p->result */
void ngx_http_ingest_push_sync(redisContext *rc, ngx_http_ingest_push_t *p);

/*
 * A refusal about this batch or its list (WRONGTYPE, a bulk too long, an
 * unknown error) rather than about the server's state (OOM, LOADING,
 * READONLY, MISCONF, BUSY, CLUSTERDOWN, ...), which passes and refuses
 * every batch alike: 1 for the first kind.
 */
ngx_uint_t ngx_http_ingest_push_refused_batch(ngx_http_ingest_push_t *p);

/* the reply's error text, for logs: "%*s" with error_len, error */
#define ngx_http_ingest_push_error(p)  (p)->error_len, (p)->error


#endif /* _NGX_HTTP_INGEST_PUSH_H_INCLUDED_ */
