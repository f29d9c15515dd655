
/*
 * Copyright (C) ngx_ingest developers
 * SPDX-License-Identifier: BSD-2-Clause
 *
 * hiredis owns the fd and closes it: the cleanup hook only takes it out
 * of nginx's loop and gives the ngx_connection_t back.  After
 * redisAsyncHandleRead() or redisAsyncHandleWrite() neither the context
 * nor the connection is touched: either may be gone (the adapter, which
 * its owner keeps for the worker's life, may be).
 *
 * A Redis connection is never idle to nginx: a graceful shutdown leaves
 * it alone, and worker_shutdown_timeout's close is ignored here, since
 * the module decides when its connections go (they may still be
 * delivering what the worker holds).
 */


#include "ngx_http_ingest_adapter.h"


static void ngx_http_ingest_adapter_add_read(void *data);
static void ngx_http_ingest_adapter_del_read(void *data);
static void ngx_http_ingest_adapter_add_write(void *data);
static void ngx_http_ingest_adapter_del_write(void *data);
static void ngx_http_ingest_adapter_cleanup(void *data);
static void ngx_http_ingest_adapter_read(ngx_event_t *ev);
static void ngx_http_ingest_adapter_write(ngx_event_t *ev);


ngx_int_t
ngx_http_ingest_adapter_attach(ngx_http_ingest_adapter_t *a,
    redisAsyncContext *ac, ngx_log_t *log)
{
    ngx_connection_t  *c;

    if (ac->ev.data != NULL) {
        return NGX_ERROR;
    }

    c = ngx_get_connection(ac->c.fd, log);
    if (c == NULL) {
        return NGX_ERROR;
    }

    c->data = ac;
    c->read->handler = ngx_http_ingest_adapter_read;
    c->write->handler = ngx_http_ingest_adapter_write;
    c->read->log = log;
    c->write->log = log;

    a->conn = c;

    ac->ev.data = a;
    ac->ev.addRead = ngx_http_ingest_adapter_add_read;
    ac->ev.delRead = ngx_http_ingest_adapter_del_read;
    ac->ev.addWrite = ngx_http_ingest_adapter_add_write;
    ac->ev.delWrite = ngx_http_ingest_adapter_del_write;
    ac->ev.cleanup = ngx_http_ingest_adapter_cleanup;

    return NGX_OK;
}


static void
ngx_http_ingest_adapter_add_read(void *data)
{
    ngx_http_ingest_adapter_t  *a = data;

    if (!a->conn->read->active) {
        (void) ngx_add_event(a->conn->read, NGX_READ_EVENT, NGX_LEVEL_EVENT);
    }
}


static void
ngx_http_ingest_adapter_del_read(void *data)
{
    ngx_http_ingest_adapter_t  *a = data;

    if (a->conn->read->active) {
        (void) ngx_del_event(a->conn->read, NGX_READ_EVENT, NGX_LEVEL_EVENT);
    }
}


/*
 * hiredis has queued a command.  On a connected socket it is written from
 * a posted event, in this turn of the loop, rather than after epoll says
 * "writable" on the next: an acknowledged request waits a round trip to
 * Redis, not a turn of the loop more and two epoll_ctl calls.  Only what
 * that write leaves behind (a full socket buffer), and a connect in
 * progress (hiredis 0.14 would take it for done), wait for epoll.
 */

static void
ngx_http_ingest_adapter_add_write(void *data)
{
    ngx_http_ingest_adapter_t  *a = data;

    redisAsyncContext  *ac;

    if (a->conn->write->active || a->conn->write->posted) {
        return;
    }

    ac = a->conn->data;

    if (a->writing || !(ac->c.flags & REDIS_CONNECTED)) {
        (void) ngx_add_event(a->conn->write, NGX_WRITE_EVENT,
                             NGX_LEVEL_EVENT);
        return;
    }

    ngx_post_event(a->conn->write, &ngx_posted_events);
}


static void
ngx_http_ingest_adapter_del_write(void *data)
{
    ngx_http_ingest_adapter_t  *a = data;

    if (a->conn->write->active) {
        (void) ngx_del_event(a->conn->write, NGX_WRITE_EVENT,
                             NGX_LEVEL_EVENT);
    }
}


/* hiredis is done with the fd and closes it right after this returns */

static void
ngx_http_ingest_adapter_cleanup(void *data)
{
    ngx_http_ingest_adapter_t  *a = data;

    ngx_connection_t  *c;

    c = a->conn;

    if (c == NULL) {
        return;
    }

    a->conn = NULL;

    /* a real EPOLL_CTL_DEL: hiredis, not nginx, closes the fd */

    if (c->read->active) {
        (void) ngx_del_event(c->read, NGX_READ_EVENT, NGX_LEVEL_EVENT);
    }

    if (c->write->active) {
        (void) ngx_del_event(c->write, NGX_WRITE_EVENT, NGX_LEVEL_EVENT);
    }

    if (c->read->posted) {
        ngx_delete_posted_event(c->read);
    }

    if (c->write->posted) {
        ngx_delete_posted_event(c->write);
    }

    if (c->read->timer_set) {
        ngx_del_timer(c->read);
    }

    if (c->write->timer_set) {
        ngx_del_timer(c->write);
    }

    c->read->closed = 1;
    c->write->closed = 1;

    ngx_free_connection(c);

    /* stale events of this epoll_wait batch see fd -1 and are skipped */
    c->fd = (ngx_socket_t) -1;

    if (a->closed != NULL) {
        a->closed(a);
    }
}


static void
ngx_http_ingest_adapter_read(ngx_event_t *ev)
{
    ngx_connection_t  *c;

    c = ev->data;

    if (c->close) {
        /* worker_shutdown_timeout: the connection's owner decides */
        c->close = 0;
        return;
    }

    /* the context and c may be freed inside: touch neither afterwards */
    redisAsyncHandleRead(c->data);
}


static void
ngx_http_ingest_adapter_write(ngx_event_t *ev)
{
    ngx_connection_t           *c;
    redisAsyncContext          *ac;
    ngx_http_ingest_adapter_t  *a;

    c = ev->data;
    ac = c->data;

    /* the adapter outlives the context: its owner keeps it */
    a = ac->ev.data;

    a->writing = 1;
    redisAsyncHandleWrite(ac);
    a->writing = 0;
}
