
/*
 * Copyright (C) ngx_ingest developers
 * SPDX-License-Identifier: BSD-2-Clause
 *
 * Whole-server numbers in a shared memory zone: every worker adds to the
 * same counters, and the status endpoint (ngx_http_ingest_status.c)
 * reads them, whatever worker answers.  Only atomics live in the zone
 * (no locks), so a worker that dies mid-update can corrupt nothing.
 *
 * A leaf: every layer may count here, and this file calls none of them.
 */

#ifndef _NGX_HTTP_INGEST_METRICS_H_INCLUDED_
#define _NGX_HTTP_INGEST_METRICS_H_INCLUDED_


#include "ngx_http_ingest_module.h"


#define NGX_HTTP_INGEST_MAX_ENDPOINTS   32
#define NGX_HTTP_INGEST_MAX_QUEUES      64
#define NGX_HTTP_INGEST_MAX_WORKERS     64
#define NGX_HTTP_INGEST_CODES           11   /* see ngx_http_ingest_codes */
#define NGX_HTTP_INGEST_BUCKETS         9    /* flush duration histogram */


/* what one worker holds: claimed at its start, given back at its exit */

typedef struct {
    ngx_atomic_t              pid;             /* 0: free */
    ngx_atomic_t              keys;            /* pending, not yet cut */
    ngx_atomic_t              bytes;           /* tables and backlogs */
    ngx_atomic_t              connected;       /* to Redis */
    ngx_atomic_t              denied;          /* its login refused */
} ngx_http_ingest_worker_stats_t;


/* one Redis list, as worker 0's poll last saw it */

typedef struct {
    ngx_atomic_t              depth;           /* LLEN */
    ngx_atomic_t              dead;            /* LLEN of <list>:dead */
    ngx_atomic_t              polled_at;       /* ms */
    ngx_atomic_t              hb_ts;           /* the consumer's heartbeat */
    ngx_atomic_t              hb_batches;
    ngx_atomic_t              hb_rows;
    ngx_atomic_t              hb_bucket_rows;  /* buckets= rows written */
    ngx_atomic_t              hb_commit;       /* ms of its last commit */
    ngx_atomic_t              hb_lag_ms;
} ngx_http_ingest_list_stats_t;


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
    ngx_atomic_t              spool_files;     /* as the replay last saw */
    ngx_atomic_t              spool_aside;     /* malformed or refused */
    ngx_http_ingest_worker_stats_t  workers[NGX_HTTP_INGEST_MAX_WORKERS];
    ngx_http_ingest_list_stats_t    queues[NGX_HTTP_INGEST_MAX_QUEUES];
} ngx_http_ingest_stats_t;


/* NULL until the zone is mapped (and without any ingest endpoint) */
extern ngx_http_ingest_stats_t  *ngx_http_ingest_stats;


#define ngx_http_ingest_stat_add(field, n)                                    \
    if (ngx_http_ingest_stats) {                                              \
        (void) ngx_atomic_fetch_add(&ngx_http_ingest_stats->field, n);        \
    }


/* the status codes counted (the last, 0, stands for all others) */
extern const ngx_uint_t  ngx_http_ingest_codes[NGX_HTTP_INGEST_CODES];

/* upper bounds of the flush duration buckets, in milliseconds */
extern const ngx_msec_t  ngx_http_ingest_buckets[NGX_HTTP_INGEST_BUCKETS];


/*
 * Configuration: the zone (when any ingest location is configured), the
 * locations whose requests are counted by status, and the log-phase
 * handler that counts them (nginx's own 413 included).
 */
ngx_int_t ngx_http_ingest_metrics_zone(ngx_conf_t *cf);
ngx_int_t ngx_http_ingest_metrics_endpoint(ngx_conf_t *cf,
    ngx_http_ingest_loc_conf_t *ilcf);
ngx_int_t ngx_http_ingest_metrics_postconf(ngx_conf_t *cf);

/* the worker's own numbers */
void ngx_http_ingest_metrics_claim(ngx_log_t *log);
void ngx_http_ingest_metrics_release(void);
void ngx_http_ingest_metrics_pending(ngx_uint_t keys, size_t bytes);
void ngx_http_ingest_metrics_connected(ngx_uint_t connected);
void ngx_http_ingest_metrics_denied(ngx_uint_t denied);

/* the spool's files, as a scan of its directory found them */
void ngx_http_ingest_metrics_spool(ngx_uint_t files, ngx_uint_t aside);

/* an RPUSH of n batches Redis acknowledged ms after it was sent */
void ngx_http_ingest_metrics_flushed(ngx_msec_t ms, ngx_uint_t n);


#endif /* _NGX_HTTP_INGEST_METRICS_H_INCLUDED_ */
