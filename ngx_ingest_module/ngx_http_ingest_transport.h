
/*
 * Copyright (C) ngx_ingest developers
 * SPDX-License-Identifier: BSD-2-Clause
 *
 * How a worker hands batches to Redis: a table of operations with two
 * implementations, one server (ngx_http_ingest_redis.c) and a Redis
 * Cluster (ngx_http_ingest_cluster.c).  module.c picks one at start;
 * nothing above this header knows which.
 *
 * A channel is one Redis list.  The layer above hands it a group of
 * batches at a time (send): one, or the oldest that wait, up to
 * ch->group_max and NGX_HTTP_INGEST_PUSH_MAX_BYTES, to go in one RPUSH.
 * From then on the transport owns the delivery: it sends the group,
 * sends it again with the same bytes after a lost connection or a
 * refusal, and follows redirections, until Redis has it.  Then it calls
 * the channel's "delivered" from a posted event; nothing above is called
 * from inside hiredis.  The group stays handed over (and is not sent
 * again) until "delivered" has run; ch->nbatches then says how many of
 * the oldest it held.
 *
 * Whether Redis takes a group may depend on its size (maxmemory counts
 * the command's arguments, a slow link times a long one out while its
 * bytes still arrive): each push that fails halves ch->group_max, down
 * to one batch, and a resend sends only that many of the group's oldest
 * (the same bytes, in order: what Redis had already is skipped by the
 * consumer); each delivery doubles it again.  A group never stalls a
 * list that its batches one by one would not.
 *
 * A channel with a "refused" callback gets back a batch that Redis
 * refuses for what it is (ngx_http_ingest_push_refused_batch), the same
 * way; without one, such a batch is sent again after the backoff like
 * any other refusal.
 */

#ifndef _NGX_HTTP_INGEST_TRANSPORT_H_INCLUDED_
#define _NGX_HTTP_INGEST_TRANSPORT_H_INCLUDED_


#include "ngx_http_ingest_module.h"
#include "ngx_http_ingest_conn.h"
#include "ngx_http_ingest_push.h"


#define NGX_HTTP_INGEST_MAX_NODES   64       /* of a cluster */


typedef struct ngx_http_ingest_transport_s  ngx_http_ingest_transport_t;


typedef struct ngx_http_ingest_channel_s  ngx_http_ingest_channel_t;

/* Redis has the channel's batch: run from a posted event, never earlier */
typedef void (*ngx_http_ingest_delivered_pt)(ngx_http_ingest_channel_t *ch);

/* Redis will not take it (why: ch->push.error), from a posted event */
typedef void (*ngx_http_ingest_refused_pt)(ngx_http_ingest_channel_t *ch);


struct ngx_http_ingest_channel_s {
    /* the layer above's */
    ngx_str_t                   name;          /* the Redis list */
    ngx_str_t                   batches[NGX_HTTP_INGEST_PUSH_MAX_BATCHES];
    ngx_uint_t                  nbatches;      /* handed over by send */
    ngx_uint_t                  group_max;     /* the transport's say */
    ngx_http_ingest_delivered_pt  delivered;
    ngx_http_ingest_refused_pt  refused;       /* NULL: retried */
    void                       *data;

    /* the transport's */
    ngx_http_ingest_transport_t *transport;
    ngx_event_t                 done;          /* posted: the outcome */
    ngx_http_ingest_push_t      push;
    ngx_http_ingest_conn_t     *conn;          /* the push went there */
    ngx_event_t                 deadline;      /* for its reply */
    ngx_queue_t                 link;          /* in t->handed */
    ngx_msec_t                  sent_at;
    ngx_uint_t                  attempts;
    ngx_uint_t                  ask;           /* cluster: ASK this node */
    unsigned                    handed:1;
    unsigned                    in_flight:1;
    unsigned                    refusal:1;     /* done: "refused" */
    unsigned                    failing:1;     /* said once, until it
                                                  goes through */
    ngx_uint_t                  failures;      /* since it was said */
};


/*
 * The exit path's blocking connections, as a transport keeps them:
 * one per node (a standalone server is node 0), and the nodes that
 * could not be reached (not tried again); why: the last failure, as a C
 * string for the log.
 */

typedef struct {
    redisContext               *conns[NGX_HTTP_INGEST_MAX_NODES];
    u_char                      failed[NGX_HTTP_INGEST_MAX_NODES];
    ngx_msec_t                  timeout;
    u_char                      why[NGX_HTTP_INGEST_PUSH_ERROR_LEN];
} ngx_http_ingest_sync_t;


typedef struct {
    const char  *name;

    /* the transport's state, allocated from pool; no connection yet */
    ngx_int_t  (*init)(ngx_http_ingest_transport_t *t, ngx_pool_t *pool);

    /* connect, or reconnect, what is needed, and send what waits */
    void       (*connect)(ngx_http_ingest_transport_t *t);

    /* hand ch->batches over; they are on their way until ch->delivered */
    void       (*send)(ngx_http_ingest_transport_t *t,
                       ngx_http_ingest_channel_t *ch);

    /* where a command on key goes: a connected context, or NULL */
    redisAsyncContext *(*route)(ngx_http_ingest_transport_t *t,
                                const u_char *key, size_t len);

    /*
     * "<list>:<suffix>" (the consumer's lock, its heartbeat, its
     * dead-letter list): where the consumer keeps it, in the list's slot
     * in a cluster.
     */
    u_char    *(*companion)(ngx_http_ingest_transport_t *t, u_char *buf,
                            size_t size, ngx_str_t *list, const char *suffix);

    /* the blocking twin of send, for exit_process: p->result says */
    void       (*send_sync)(ngx_http_ingest_transport_t *t,
                            ngx_http_ingest_sync_t *s,
                            ngx_http_ingest_push_t *p);
    void       (*sync_end)(ngx_http_ingest_transport_t *t,
                           ngx_http_ingest_sync_t *s);

    /* graceful: once every reply is in; else at once (replies: NULL) */
    void       (*close)(ngx_http_ingest_transport_t *t,
                        ngx_uint_t graceful);
} ngx_http_ingest_transport_ops_t;


struct ngx_http_ingest_transport_s {
    const ngx_http_ingest_transport_ops_t  *ops;
    void                                   *state;     /* the ops' own */
    ngx_http_ingest_main_conf_t            *imcf;
    ngx_log_t                              *log;
    void                                   *timer_data;

    ngx_queue_t                             handed;    /* channels */
    ngx_event_t                             retry;     /* backoff timer */
    ngx_msec_t                              backoff;

    unsigned                                connected:1;
    unsigned                                closing:1; /* no new sends */
};


extern const ngx_http_ingest_transport_ops_t  ngx_http_ingest_redis_transport;
extern const ngx_http_ingest_transport_ops_t
    ngx_http_ingest_cluster_transport;


/* what both transports share (ngx_http_ingest_transport.c) */

void ngx_http_ingest_transport_init(ngx_http_ingest_transport_t *t);
void ngx_http_ingest_channel_init(ngx_http_ingest_transport_t *t,
    ngx_http_ingest_channel_t *ch);
ngx_int_t ngx_http_ingest_transport_hand(ngx_http_ingest_transport_t *t,
    ngx_http_ingest_channel_t *ch);
ngx_uint_t ngx_http_ingest_channel_cancel(ngx_http_ingest_channel_t *ch);
ngx_int_t ngx_http_ingest_transport_push(ngx_http_ingest_transport_t *t,
    ngx_http_ingest_channel_t *ch, ngx_http_ingest_conn_t *conn,
    ngx_uint_t asking, ngx_uint_t replicas,
    ngx_http_ingest_push_done_pt done);
void ngx_http_ingest_transport_delivered(ngx_http_ingest_transport_t *t,
    ngx_http_ingest_channel_t *ch);
void ngx_http_ingest_transport_failed(ngx_http_ingest_transport_t *t,
    ngx_http_ingest_channel_t *ch, ngx_uint_t level);
ngx_int_t ngx_http_ingest_transport_refused(ngx_http_ingest_transport_t *t,
    ngx_http_ingest_channel_t *ch);
void ngx_http_ingest_transport_returned(ngx_http_ingest_transport_t *t,
    ngx_http_ingest_channel_t *ch);
void ngx_http_ingest_transport_resend(ngx_http_ingest_transport_t *t);
void ngx_http_ingest_transport_schedule(ngx_http_ingest_transport_t *t);
void ngx_http_ingest_transport_connected(ngx_http_ingest_transport_t *t,
    ngx_uint_t connected);


#endif /* _NGX_HTTP_INGEST_TRANSPORT_H_INCLUDED_ */
