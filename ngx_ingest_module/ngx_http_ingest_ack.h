
/*
 * Copyright (C) ngx_ingest developers
 * SPDX-License-Identifier: BSD-2-Clause
 *
 * ingest_ack redis: a request answered once Redis has the batches that
 * hold what it added (one per list or shard it touched), or 504 after
 * ingest_ack_timeout.
 */

#ifndef _NGX_HTTP_INGEST_ACK_H_INCLUDED_
#define _NGX_HTTP_INGEST_ACK_H_INCLUDED_


#include "ngx_http_ingest_flush.h"


typedef struct ngx_http_ingest_await_s  ngx_http_ingest_await_t;


/* one batch of one list awaited */

typedef struct {
    ngx_http_ingest_waiter_t    waiter;      /* in q->waiting */
    ngx_http_ingest_await_t    *await;
    ngx_http_ingest_queue_t    *q;
} ngx_http_ingest_ack_t;


struct ngx_http_ingest_await_s {
    ngx_http_request_t         *request;
    ngx_http_ingest_ack_t      *acks;
    ngx_uint_t                  nacks;
    ngx_uint_t                  pending;     /* acks still awaited */
    ngx_http_ingest_ack_t       one;         /* the ack of one list */
    ngx_event_t                 timer;
    ngx_buf_t                  *answer;      /* a 200 body; NULL: 204 */
};


/*
 * The request waits for the next batch of each of the n (distinct)
 * lists in qs: call it before the request's additions are handed to
 * the flush layer, so that "the next batch" holds them.  NGX_ERROR:
 * nothing waits, answer 500.
 */
ngx_int_t ngx_http_ingest_await(ngx_http_request_t *r,
    ngx_http_ingest_await_t *aw, ngx_http_ingest_queue_t **qs, ngx_uint_t n,
    ngx_msec_t timeout);


#endif /* _NGX_HTTP_INGEST_ACK_H_INCLUDED_ */
