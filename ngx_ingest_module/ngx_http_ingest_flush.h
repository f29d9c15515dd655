
/*
 * Copyright (C) ngx_ingest developers
 * SPDX-License-Identifier: BSD-2-Clause
 *
 * What a worker holds for Redis, and when it becomes batches: each
 * Redis list's pending sums and rows, the batches cut from them, and the
 * worker's life around them (start, a graceful drain, the exit path).
 * Batches leave through the transport (ngx_http_ingest_transport.h),
 * one at a time per list.
 */

#ifndef _NGX_HTTP_INGEST_FLUSH_H_INCLUDED_
#define _NGX_HTTP_INGEST_FLUSH_H_INCLUDED_


#include "ngx_http_ingest_module.h"
#include "ngx_http_ingest_table.h"
#include "ngx_http_ingest_transport.h"
#include "ingest_wire.h"


/* a batch cut from a list, waiting for Redis */

typedef struct {
    ngx_queue_t               link;            /* in its list's backlog */
    ingest_wire_buf_t         buf;
    uint64_t                  seq;
    ngx_uint_t                keys;
} ngx_http_ingest_batch_t;


/* rows of one records table waiting to be cut into a records batch */

typedef struct {
    ngx_http_ingest_records_conf_t  *conf;
    ingest_wire_buf_t         rows;            /* "[..],[..]" */
    ngx_uint_t                nrows;
} ngx_http_ingest_rows_t;


typedef struct ngx_http_ingest_waiter_s  ngx_http_ingest_waiter_t;

/*
 * Someone (a request with ingest_ack redis) waits for a list's batch
 * seq: handler runs once Redis has it, from a posted event.
 */

struct ngx_http_ingest_waiter_s {
    ngx_queue_t               link;            /* in q->waiting */
    uint64_t                  seq;
    void                    (*handler)(ngx_http_ingest_waiter_t *wt);
    unsigned                  waiting:1;
};


/*
 * One Redis list as a worker sees it: the sums and rows still adding
 * up, and the batches cut from them, oldest first.  Only the oldest is
 * ever handed to the transport, so they enter the list in seq order.
 */

typedef struct {
    ngx_str_t                 name;
    ngx_http_ingest_channel_t channel;         /* to the transport */
    ngx_http_ingest_table_t   sums;            /* pending increments */
    ngx_http_ingest_table_t   buckets;         /* the same, per time
                                                  bucket (bucket keys) */
    unsigned                  keyed_buckets:1; /* a keyed request has */
    ngx_queue_t               backlog;         /* ngx_http_ingest_batch_t */
    ngx_uint_t                nbatches;
    size_t                    backlog_bytes;   /* of the batches' data */
    uint64_t                  seq;             /* of the last batch cut */
    ngx_queue_t               waiting;         /* waiters, by seq */
    ingest_wire_buf_t         keyed;           /* Idempotency-Key requests */
    ngx_uint_t                nkeyed;
    ngx_http_ingest_rows_t   *row_sets;        /* records, per table */
    ngx_uint_t                nrow_sets;
    ngx_uint_t                nrows;           /* in all of them */
    size_t                    rows_bytes;
    unsigned                  due:1;           /* cut as soon as allowed */
    unsigned                  awaited:1;       /* a request waits: due at
                                                  the group commit */
} ngx_http_ingest_queue_t;


/*
 * A bucket key, in q->buckets: the bucket set (1 byte, an index in
 * imcf->bucket_sets) and the step's start (8 bytes, big-endian: the
 * arrival floored to the set's step), then the key.  An increment is
 * summed once per step and goes, at the consumer, to the bucket of each
 * resolution of the set that holds the step: a sum never mixes two
 * buckets, whenever the list is cut.
 */

#define NGX_HTTP_INGEST_BUCKET_PREFIX  9

/* the 9 bytes a step key of set and start begins with, at buf */

static ngx_inline void
ngx_http_ingest_bucket_prefix(u_char *buf, ngx_uint_t set, int64_t start)
{
    ngx_uint_t  i;
    uint64_t    s;

    buf[0] = (u_char) set;
    s = (uint64_t) start;

    for (i = 0; i < 8; i++) {
        buf[1 + i] = (u_char) (s >> (56 - 8 * i));
    }
}


static ngx_inline void
ngx_http_ingest_bucket_of(const u_char *bkey, ngx_uint_t *set,
    int64_t *start)
{
    ngx_uint_t  i;
    uint64_t    s;

    *set = bkey[0];
    s = 0;

    for (i = 0; i < 8; i++) {
        s = (s << 8) | bkey[1 + i];
    }

    *start = (int64_t) s;
}


/* where a cut stands in a list's buckets, from one batch to the next */

#define NGX_HTTP_INGEST_BUCKET_GROUPS  32

typedef struct {
    struct {
        uint64_t              raw;         /* the key's start bytes */
        u_char                set;
    }                         groups[NGX_HTTP_INGEST_BUCKET_GROUPS];
    ngx_uint_t                ngroups;
    ngx_uint_t                npasses;     /* groups, and one for the rest */
    ngx_uint_t                pass;
    size_t                    slot;
    unsigned                  grouped:1;
    unsigned                  overflow:1;  /* more than groups hold */
    unsigned                  done:1;
} ngx_http_ingest_bucket_cursor_t;


/* what a list holds that is not cut yet */
#define ngx_http_ingest_queue_pending(q)                                      \
    ((q)->sums.nkeys + (q)->nkeyed + (q)->nrows)


/*
 * A batch stays under 1 MB, the least Redis can be set to take in one
 * value (proto-max-bulk-len): a cut makes several batches if need be, so
 * an Idempotency-Key request's entry and a row must stay under half of
 * it (a key is at most 64k).
 */
#define NGX_HTTP_INGEST_MAX_BATCH    (1024 * 1024)

/* about the bytes of the batches a list's pending would make */
#define ngx_http_ingest_queue_bytes(q)                                        \
    ((q)->sums.key_bytes + 24 * (q)->sums.nkeys + (q)->keyed.len             \
     + (q)->buckets.key_bytes + 16 * (q)->buckets.nkeys + (q)->rows_bytes)


/*
 * Everything a worker keeps between requests.  There is exactly one,
 * made by ngx_http_ingest_flush_init() in init_process and gone with
 * ngx_http_ingest_flush_exit() in exit_process.
 */

typedef struct {
    ngx_http_ingest_main_conf_t  *imcf;
    ngx_log_t                    *log;
    ngx_http_ingest_queue_t      *queues;
    ngx_uint_t                    nqueues;
    ngx_http_ingest_transport_t  *transport;

    ngx_event_t                   flush_timer;     /* cancelable */
    ngx_event_t                   drain_timer;     /* non-cancelable */
    ngx_event_t                   commit;      /* posted: the group commit */
    ngx_connection_t             *watcher;     /* tells of a shutdown */
    ngx_connection_t              timer_conn;  /* data of the timers */
    ngx_msec_t                    metrics_msec;    /* last refresh */

    unsigned                      draining:1;  /* graceful exit began */
    unsigned                      exiting:1;   /* nothing more is sent */
    unsigned                      full:1;      /* max_pending was hit */

    char                          producer[INGEST_WIRE_MAX_PRODUCER];
} ngx_http_ingest_worker_t;


/* the worker state: set in init_process, cleared in exit_process */
extern ngx_http_ingest_worker_t  *ngx_http_ingest_worker;


/* list i of the directives, and the Redis list of its first shard */
#define ngx_http_ingest_list_queue(w, i)                                      \
    (&(w)->queues[ngx_http_ingest_list((w)->imcf, i)->first])


ngx_int_t ngx_http_ingest_flush_init(ngx_cycle_t *cycle,
    ngx_http_ingest_main_conf_t *imcf,
    const ngx_http_ingest_transport_ops_t *ops);
void ngx_http_ingest_flush_exit(void);

/* a request's increments or rows entered q */
void ngx_http_ingest_flush_added(ngx_http_ingest_worker_t *w,
    ngx_http_ingest_queue_t *q);

/*
 * May a request that needs this many more bytes be taken?  NGX_OK;
 * NGX_BUSY (logged once per episode): answer 503; NGX_DECLINED: it needs
 * more than ingest_max_pending itself, answer 413.
 */
ngx_int_t ngx_http_ingest_flush_admit(ngx_http_ingest_worker_t *w,
    size_t need, ngx_log_t *log);

/* bytes the worker holds for Redis */
size_t ngx_http_ingest_flush_pending(ngx_http_ingest_worker_t *w);

/* wt waits for q's next batch (the one that holds what was added last) */
void ngx_http_ingest_flush_wait(ngx_http_ingest_queue_t *q,
    ngx_http_ingest_waiter_t *wt);
void ngx_http_ingest_flush_unwait(ngx_http_ingest_waiter_t *wt);


#endif /* _NGX_HTTP_INGEST_FLUSH_H_INCLUDED_ */
