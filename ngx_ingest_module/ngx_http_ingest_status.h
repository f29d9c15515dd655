
/*
 * Copyright (C) ngx_ingest developers
 *
 * Whole-server numbers in a shared memory zone: every worker adds to the
 * same counters, and the status endpoint reads them, whatever worker
 * answers.  Only atomics live in the zone (no locks), so a worker that
 * dies mid-update can corrupt nothing.
 */

#ifndef _NGX_HTTP_INGEST_STATUS_H_INCLUDED_
#define _NGX_HTTP_INGEST_STATUS_H_INCLUDED_


#define NGX_HTTP_INGEST_MAX_ENDPOINTS   32
#define NGX_HTTP_INGEST_MAX_QUEUES      64
#define NGX_HTTP_INGEST_MAX_WORKERS     64
#define NGX_HTTP_INGEST_CODES           11   /* see ngx_http_ingest_codes */
#define NGX_HTTP_INGEST_BUCKETS         9    /* flush duration histogram */


typedef struct {
    ngx_atomic_t              pid;             /* 0: free */
    ngx_atomic_t              keys;            /* pending, not yet cut */
    ngx_atomic_t              bytes;           /* tables and backlogs */
    ngx_atomic_t              connected;       /* to Redis */
} ngx_http_ingest_worker_slot_t;


typedef struct {
    ngx_atomic_t              depth;           /* LLEN */
    ngx_atomic_t              polled_at;       /* ms */
    ngx_atomic_t              hb_ts;           /* the consumer's heartbeat */
    ngx_atomic_t              hb_batches;
    ngx_atomic_t              hb_rows;
    ngx_atomic_t              hb_commit;       /* ms of its last commit */
    ngx_atomic_t              hb_lag_ms;
} ngx_http_ingest_queue_slot_t;


typedef struct {
    ngx_atomic_t              requests[NGX_HTTP_INGEST_MAX_ENDPOINTS]
                                      [NGX_HTTP_INGEST_CODES];
    ngx_atomic_t              increments;
    ngx_atomic_t              records;
    ngx_atomic_t              batches_flushed;
    ngx_atomic_t              batches_failed;
    ngx_atomic_t              batches_retried;
    ngx_atomic_t              reconnects;
    ngx_atomic_t              flush_buckets[NGX_HTTP_INGEST_BUCKETS];
    ngx_atomic_t              flush_count;
    ngx_atomic_t              flush_sum_ms;
    ngx_http_ingest_worker_slot_t  workers[NGX_HTTP_INGEST_MAX_WORKERS];
    ngx_http_ingest_queue_slot_t   queues[NGX_HTTP_INGEST_MAX_QUEUES];
} ngx_http_ingest_stats_t;


/* NULL until the zone is mapped (and without any ingest endpoint) */
extern ngx_http_ingest_stats_t  *ngx_http_ingest_stats;


#define ngx_http_ingest_stat_add(field, n)                                    \
    if (ngx_http_ingest_stats) {                                              \
        (void) ngx_atomic_fetch_add(&ngx_http_ingest_stats->field, n);        \
    }


#endif /* _NGX_HTTP_INGEST_STATUS_H_INCLUDED_ */
