
/*
 * Copyright (C) ngx_ingest developers
 * SPDX-License-Identifier: BSD-2-Clause
 *
 * Waiting for Redis's acknowledgements.  Every request of one flush
 * waits for the same RPUSH (a group commit).  The wait's timer is not
 * cancelable, so a graceful shutdown answers every waiting request
 * before the worker goes.  An answer is sent from a posted event (the
 * flush layer's "delivered") or a timer, never from inside hiredis.
 */


#include "ngx_http_ingest_ack.h"
#include "ngx_http_ingest_reply.h"


/*
 * Requests answered 504 since acknowledgements stopped coming: the first
 * is logged, the others counted, and the count logged when they resume.
 */
static ngx_uint_t  ngx_http_ingest_ack_late;


static void ngx_http_ingest_ack_release_body(ngx_http_request_t *r);
static void ngx_http_ingest_acked(ngx_http_ingest_waiter_t *wt);
static void ngx_http_ingest_ack_timeout(ngx_event_t *ev);
static void ngx_http_ingest_ack_cleanup(void *data);
static void ngx_http_ingest_ack_answer(ngx_http_ingest_await_t *aw,
    ngx_uint_t status);


ngx_int_t
ngx_http_ingest_await(ngx_http_request_t *r, ngx_http_ingest_await_t *aw,
    ngx_http_ingest_queue_t **qs, ngx_uint_t n, ngx_msec_t timeout)
{
    ngx_uint_t              i;
    ngx_pool_cleanup_t     *cln;
    ngx_http_ingest_ack_t  *ack;

    if (n == 1) {
        aw->acks = &aw->one;

    } else {
        aw->acks = ngx_palloc(r->pool, n * sizeof(ngx_http_ingest_ack_t));
        if (aw->acks == NULL) {
            return NGX_ERROR;
        }
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    aw->request = r;
    aw->nacks = n;
    aw->pending = n;

    cln->handler = ngx_http_ingest_ack_cleanup;
    cln->data = aw;

    for (i = 0; i < n; i++) {
        ack = &aw->acks[i];
        ack->await = aw;
        ack->q = qs[i];
        ack->waiter.handler = ngx_http_ingest_acked;
        ngx_http_ingest_flush_wait(qs[i], &ack->waiter);
    }

    /* data is the connection, as nginx's debug log expects of a timer */

    ngx_memzero(&aw->timer, sizeof(ngx_event_t));
    aw->timer.handler = ngx_http_ingest_ack_timeout;
    aw->timer.data = r->connection;
    aw->timer.log = r->connection->log;

    ngx_add_timer(&aw->timer, timeout);

    /* a client that goes away is noticed, and its request freed */
    r->read_event_handler = ngx_http_test_reading;

    ngx_http_ingest_ack_release_body(r);

    return NGX_OK;
}


/*
 * What the request added is in the worker's tables: while it waits it
 * needs its body no more.  nginx frees a pool's large allocations one by
 * one: the body's buffers are such (a view into the header buffer, or a
 * second view of a freed one, is simply not found).
 */

static void
ngx_http_ingest_ack_release_body(ngx_http_request_t *r)
{
    ngx_chain_t                *cl;
    ngx_http_request_body_t    *rb;

    rb = r->request_body;

    if (rb == NULL || r->reading_body) {
        return;
    }

    for (cl = rb->bufs; cl; cl = cl->next) {
        if (cl->buf->start != NULL && !cl->buf->in_file) {
            (void) ngx_pfree(r->pool, cl->buf->start);
        }
    }

    if (rb->buf != NULL && rb->buf->start != NULL) {
        (void) ngx_pfree(r->pool, rb->buf->start);
    }

    rb->bufs = NULL;
    rb->buf = NULL;
}


/* one of the batches is in Redis: the last one answers */

static void
ngx_http_ingest_acked(ngx_http_ingest_waiter_t *wt)
{
    ngx_http_ingest_ack_t  *ack;

    ack = (ngx_http_ingest_ack_t *)
              ((u_char *) wt - offsetof(ngx_http_ingest_ack_t, waiter));

    if (ngx_http_ingest_ack_late) {
        ngx_log_error(NGX_LOG_NOTICE, ack->await->timer.log, 0,
                      "ingest acknowledgements are back: %ui requests "
                      "were answered 504 meanwhile",
                      ngx_http_ingest_ack_late);
        ngx_http_ingest_ack_late = 0;
    }

    if (--ack->await->pending == 0) {
        ngx_http_ingest_ack_answer(ack->await, NGX_HTTP_NO_CONTENT);
    }
}


static void
ngx_http_ingest_ack_timeout(ngx_event_t *ev)
{
    ngx_uint_t                i;
    ngx_http_ingest_await_t  *aw;

    aw = (ngx_http_ingest_await_t *)
             ((u_char *) ev - offsetof(ngx_http_ingest_await_t, timer));

    if (ngx_http_ingest_ack_late++ == 0) {
        for (i = 0; i < aw->nacks; i++) {
            if (aw->acks[i].waiter.waiting) {
                ngx_log_error(NGX_LOG_WARN, ev->log, 0,
                              "ingest batch seq %uL of \"%V\" not "
                              "acknowledged by Redis within "
                              "ingest_ack_timeout: answering 504 (logged "
                              "once until acknowledgements come back)",
                              aw->acks[i].waiter.seq, &aw->acks[i].q->name);
                break;
            }
        }
    }

    ngx_http_ingest_ack_answer(aw, NGX_HTTP_GATEWAY_TIME_OUT);
}


static void
ngx_http_ingest_ack_cleanup(void *data)
{
    ngx_http_ingest_await_t  *aw = data;

    ngx_uint_t  i;

    for (i = 0; i < aw->nacks; i++) {
        ngx_http_ingest_flush_unwait(&aw->acks[i].waiter);
    }

    if (aw->timer.timer_set) {
        ngx_del_timer(&aw->timer);
    }
}


static void
ngx_http_ingest_ack_answer(ngx_http_ingest_await_t *aw, ngx_uint_t status)
{
    ngx_int_t            rc;
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = aw->request;
    c = r->connection;

    ngx_http_ingest_ack_cleanup(aw);

    r->read_event_handler = ngx_http_block_reading;

    if (status == NGX_HTTP_NO_CONTENT && aw->answer != NULL) {
        /* records: the answer with its counts, prepared before the wait */
        rc = ngx_http_ingest_send(r, NGX_HTTP_OK, "application/json",
                                  aw->answer);

    } else if (status == NGX_HTTP_NO_CONTENT) {
        rc = ngx_http_ingest_send_no_content(r);

    } else {
        rc = ngx_http_ingest_send_json(r, status,
                                        "not acknowledged by Redis in time; "
                                        "the increments may or may not be "
                                        "counted", -1);
    }

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}
