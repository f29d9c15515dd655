
/*
 * Copyright (C) ngx_ingest developers
 *
 * hiredis's async API on nginx's event loop (NGINX-HIREDIS.md, design A).
 *
 * - The fd is registered level-triggered: hiredis reads at most 16 KiB per
 *   call, and with an edge-triggered registration leftover replies would
 *   never raise another event.
 * - hiredis owns the fd and closes it: the cleanup hook only unregisters
 *   it and gives the ngx_connection_t back.
 * - Nothing here frees or reconnects from inside a hiredis callback: the
 *   callbacks record what happened and arm timers; timers and posted
 *   events do the rest.
 * - A NULL reply means "unknown": the batch is kept and sent again, with
 *   the same producer and seq, so the consumer can skip a duplicate.
 * - hiredis 0.14 has no timeouts: connect and reply deadlines are our own.
 */


#include "ngx_http_ingest_module.h"


#define NGX_HTTP_INGEST_BACKOFF_MIN   100
#define NGX_HTTP_INGEST_BACKOFF_MAX   5000


static void ngx_http_ingest_redis_attach(ngx_http_ingest_worker_t *w,
    redisAsyncContext *ac);
static void ngx_http_ingest_redis_add_read(void *data);
static void ngx_http_ingest_redis_del_read(void *data);
static void ngx_http_ingest_redis_add_write(void *data);
static void ngx_http_ingest_redis_del_write(void *data);
static void ngx_http_ingest_redis_cleanup(void *data);
static void ngx_http_ingest_redis_read_handler(ngx_event_t *ev);
static void ngx_http_ingest_redis_write_handler(ngx_event_t *ev);
static void ngx_http_ingest_redis_connected(const redisAsyncContext *ac,
    int status);
static void ngx_http_ingest_redis_disconnected(const redisAsyncContext *ac,
    int status);
static void ngx_http_ingest_redis_reply(redisAsyncContext *ac, void *r,
    void *privdata);
static void ngx_http_ingest_redis_lost(ngx_http_ingest_worker_t *w,
    const char *why);
static void ngx_http_ingest_redis_retry_handler(ngx_event_t *ev);
static void ngx_http_ingest_redis_timeout_handler(ngx_event_t *ev);



void
ngx_http_ingest_redis_connect(ngx_http_ingest_worker_t *w)
{
    redisAsyncContext            *ac;
    ngx_http_ingest_main_conf_t  *imcf;

    if (w->ac != NULL || w->exiting) {
        return;
    }

    imcf = w->imcf;

    if (w->retry_timer.handler == NULL) {
        w->retry_timer.handler = ngx_http_ingest_redis_retry_handler;
        w->retry_timer.data = &w->timer_conn;
        w->retry_timer.log = w->log;
        w->retry_timer.cancelable = 1;

        w->connect_timer.handler = ngx_http_ingest_redis_timeout_handler;
        w->connect_timer.data = &w->timer_conn;
        w->connect_timer.log = w->log;
        w->connect_timer.cancelable = 1;

        w->ack_timer.handler = imcf->cluster
                               ? ngx_http_ingest_cluster_timeout
                               : ngx_http_ingest_redis_timeout_handler;
        w->ack_timer.data = &w->timer_conn;
        w->ack_timer.log = w->log;
        w->ack_timer.cancelable = 1;
    }

    if (imcf->cluster) {
        ngx_http_ingest_cluster_retry(w);
        return;
    }

    if (imcf->redis_port) {
        ac = redisAsyncConnect((char *) imcf->redis_host, imcf->redis_port);

    } else {
        ac = redisAsyncConnectUnix((char *) imcf->redis_host);
    }

    if (ac == NULL) {
        ngx_http_ingest_redis_lost(w, "out of memory");
        return;
    }

    if (ac->err) {
        /* failed at once (e.g. no such unix socket): hiredis closed it */
        ngx_http_ingest_redis_lost(w, ac->errstr);
        redisAsyncFree(ac);
        return;
    }

    ngx_http_ingest_redis_attach(w, ac);

    if (w->conn == NULL) {
        redisAsyncFree(ac);
        ngx_http_ingest_redis_lost(w, "no free connection");
        return;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, w->log, 0,
                   "ingest redis connecting, fd:%d", ac->c.fd);

    ngx_add_timer(&w->connect_timer, imcf->connect_timeout);

    /* commands may be queued before the connection completes */

    ngx_http_ingest_redis_send_all(w);
}


/*
 * The hooks first, the connect callback last: setting it asks for a
 * write event, which must land in nginx's loop.
 */

static void
ngx_http_ingest_redis_attach(ngx_http_ingest_worker_t *w,
    redisAsyncContext *ac)
{
    ngx_connection_t  *c;

    c = ngx_http_ingest_redis_wrap(w, ac, w, ngx_http_ingest_redis_cleanup);
    if (c == NULL) {
        return;
    }

    w->ac = ac;
    w->conn = c;

    redisAsyncSetConnectCallback(ac, ngx_http_ingest_redis_connected);
    redisAsyncSetDisconnectCallback(ac, ngx_http_ingest_redis_disconnected);
}


/*
 * ac's fd as an nginx connection, with hiredis's event hooks; data is
 * what ac->data is (the worker, or a cluster node), cleanup what runs
 * when hiredis is done with the fd.  NULL if no connection is free.
 */

ngx_connection_t *
ngx_http_ingest_redis_wrap(ngx_http_ingest_worker_t *w,
    redisAsyncContext *ac, void *data, void (*cleanup)(void *))
{
    ngx_connection_t  *c;

    c = ngx_get_connection(ac->c.fd, w->log);
    if (c == NULL) {
        return NULL;
    }

    c->data = ac;
    c->read->handler = ngx_http_ingest_redis_read_handler;
    c->write->handler = ngx_http_ingest_redis_write_handler;
    c->read->log = w->log;
    c->write->log = w->log;

    /*
     * Idle: when a graceful shutdown begins, nginx calls the read handler
     * with c->close set, and the worker drains instead of dropping.
     */

    c->idle = 1;

    ac->data = data;
    ac->ev.data = c;
    ac->ev.addRead = ngx_http_ingest_redis_add_read;
    ac->ev.delRead = ngx_http_ingest_redis_del_read;
    ac->ev.addWrite = ngx_http_ingest_redis_add_write;
    ac->ev.delWrite = ngx_http_ingest_redis_del_write;
    ac->ev.cleanup = cleanup;

    return c;
}


static void
ngx_http_ingest_redis_add_read(void *data)
{
    ngx_connection_t  *c = data;

    if (!c->read->active) {
        (void) ngx_add_event(c->read, NGX_READ_EVENT, NGX_LEVEL_EVENT);
    }
}


static void
ngx_http_ingest_redis_del_read(void *data)
{
    ngx_connection_t  *c = data;

    if (c->read->active) {
        (void) ngx_del_event(c->read, NGX_READ_EVENT, NGX_LEVEL_EVENT);
    }
}


static void
ngx_http_ingest_redis_add_write(void *data)
{
    ngx_connection_t  *c = data;

    if (!c->write->active) {
        (void) ngx_add_event(c->write, NGX_WRITE_EVENT, NGX_LEVEL_EVENT);
    }
}


static void
ngx_http_ingest_redis_del_write(void *data)
{
    ngx_connection_t  *c = data;

    if (c->write->active) {
        (void) ngx_del_event(c->write, NGX_WRITE_EVENT, NGX_LEVEL_EVENT);
    }
}


/* hiredis is done with the fd and closes it right after this returns */

static void
ngx_http_ingest_redis_cleanup(void *data)
{
    ngx_connection_t          *c = data;
    ngx_http_ingest_worker_t  *w;

    w = ngx_http_ingest_worker;

    ngx_http_ingest_redis_release(c);

    if (w != NULL) {
        w->ac = NULL;
        w->conn = NULL;
        w->connected = 0;

        if (w->connect_timer.timer_set) {
            ngx_del_timer(&w->connect_timer);
        }

        if (w->ack_timer.timer_set) {
            ngx_del_timer(&w->ack_timer);
        }
    }
}


/* c out of nginx's loop and back to the free list; hiredis closes the fd */

void
ngx_http_ingest_redis_release(ngx_connection_t *c)
{
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
}


static void
ngx_http_ingest_redis_read_handler(ngx_event_t *ev)
{
    ngx_connection_t          *c;
    ngx_http_ingest_worker_t  *w;

    c = ev->data;
    w = ngx_http_ingest_worker;

    if (c->close) {
        c->close = 0;

        if (c->error) {
            /* worker_shutdown_timeout: give up, exit_process takes over */
            ngx_http_ingest_redis_close(w);
            return;
        }

        /* a graceful shutdown (quit, reload) has begun */
        c->idle = 0;
        ngx_http_ingest_flush_drain(w);
        return;
    }

    /* ac and c may be freed inside: touch neither afterwards */
    redisAsyncHandleRead(c->data);
}


static void
ngx_http_ingest_redis_write_handler(ngx_event_t *ev)
{
    ngx_connection_t  *c;

    c = ev->data;

    redisAsyncHandleWrite(c->data);
}


static void
ngx_http_ingest_redis_connected(const redisAsyncContext *ac, int status)
{
    ngx_http_ingest_worker_t  *w = ac->data;

    if (status != REDIS_OK) {
        /* hiredis frees the context after this returns */
        ngx_http_ingest_redis_lost(w, ac->errstr);
        return;
    }

    if (w->connect_timer.timer_set) {
        ngx_del_timer(&w->connect_timer);
    }

    w->connected = 1;
    w->backoff = 0;

    if (w->slot != NULL) {
        w->slot->connected = 1;
    }

    if (w->down) {
        w->down = 0;
        ngx_http_ingest_stat_add(reconnects, 1);
        ngx_log_error(NGX_LOG_NOTICE, w->log, 0,
                      "ingest redis \"%V\" connection restored",
                      &w->imcf->redis);
    }

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, w->log, 0,
                   "ingest redis connected");
}


static void
ngx_http_ingest_redis_disconnected(const redisAsyncContext *ac, int status)
{
    ngx_http_ingest_worker_t  *w = ac->data;

    if (w->exiting) {
        return;
    }

    ngx_http_ingest_redis_lost(w, status == REDIS_OK ? "closed"
                                                     : ac->errstr);
}


/*
 * Called with the connection gone or going: log once per transition,
 * and come back later.
 */

static void
ngx_http_ingest_redis_lost(ngx_http_ingest_worker_t *w, const char *why)
{
    ngx_uint_t  i;

    w->connected = 0;

    if (w->slot != NULL) {
        w->slot->connected = 0;
    }

    for (i = 0; i < w->nqueues; i++) {
        w->queues[i].sent = 0;
    }

    if (!w->down && !w->exiting) {
        w->down = 1;
        ngx_log_error(NGX_LOG_WARN, w->log, 0,
                      "ingest redis \"%V\" connection lost: %s",
                      &w->imcf->redis, why);
    }

    ngx_http_ingest_redis_schedule(w);
}


/* reconnect, or resend what was refused, after a capped backoff */

void
ngx_http_ingest_redis_schedule(ngx_http_ingest_worker_t *w)
{
    ngx_msec_t  delay;

    if (w->exiting || w->retry_timer.timer_set) {
        return;
    }

    if (w->backoff == 0) {
        w->backoff = NGX_HTTP_INGEST_BACKOFF_MIN;
    }

    /* jitter, so that workers do not knock all at once */
    delay = w->backoff + ngx_random() % (w->backoff / 4 + 1);

    w->backoff = ngx_min(w->backoff * 2, NGX_HTTP_INGEST_BACKOFF_MAX);

    ngx_add_timer(&w->retry_timer, delay);
}


static void
ngx_http_ingest_redis_retry_handler(ngx_event_t *ev)
{
    ngx_http_ingest_worker_t  *w;

    w = ngx_http_ingest_worker;

    if (w->cluster != NULL) {
        ngx_http_ingest_cluster_retry(w);
        return;
    }

    if (w->ac == NULL) {
        ngx_http_ingest_redis_connect(w);
        return;
    }

    ngx_http_ingest_redis_send_all(w);
}


/* a connect or a reply that takes too long: start over */

static void
ngx_http_ingest_redis_timeout_handler(ngx_event_t *ev)
{
    ngx_http_ingest_worker_t  *w;

    w = ngx_http_ingest_worker;

    ngx_log_error(NGX_LOG_WARN, w->log, 0, "ingest redis \"%V\" %s timed out",
                  &w->imcf->redis,
                  ev == &w->connect_timer ? "connect" : "reply");

    /* not a hiredis callback: freeing here is safe */
    ngx_http_ingest_redis_close(w);

    ngx_http_ingest_redis_lost(w, "timed out");
}


void
ngx_http_ingest_redis_close(ngx_http_ingest_worker_t *w)
{
    redisAsyncContext  *ac;

    if (w->cluster != NULL) {
        ngx_http_ingest_cluster_close(w, 0);
        return;
    }

    ac = w->ac;

    if (ac == NULL) {
        return;
    }

    /* pending replies are called back with NULL: their batches stay */
    redisAsyncFree(ac);
}


void
ngx_http_ingest_redis_send_all(ngx_http_ingest_worker_t *w)
{
    ngx_uint_t  i;

    for (i = 0; i < w->nqueues; i++) {
        ngx_http_ingest_redis_send(w, &w->queues[i]);
    }
}


/* the arguments of RPUSH <list> <batch>, for every path that sends one */

void
ngx_http_ingest_redis_rpush(ngx_str_t *list, ingest_wire_buf_t *buf,
    const char **argv, size_t *argvlen)
{
    argv[0] = "RPUSH";
    argvlen[0] = 5;
    argv[1] = (const char *) list->data;
    argvlen[1] = list->len;
    argv[2] = buf->data;
    argvlen[2] = buf->len;
}


/* RPUSH the queue's oldest batch, unless there is none or it is on its way */

void
ngx_http_ingest_redis_send(ngx_http_ingest_worker_t *w,
    ngx_http_ingest_queue_t *q)
{
    const char               *argv[3];
    size_t                    argvlen[3];
    ngx_http_ingest_batch_t  *b;

    if (w->cluster != NULL) {
        ngx_http_ingest_cluster_send(w, q);
        return;
    }

    b = ngx_http_ingest_flush_oldest(q);

    if (w->ac == NULL || b == NULL || q->sent) {
        return;
    }

    ngx_http_ingest_redis_rpush(&q->name, &b->buf, argv, argvlen);

    if (redisAsyncCommandArgv(w->ac, ngx_http_ingest_redis_reply, q, 3, argv,
                              argvlen)
        != REDIS_OK)
    {
        /* disconnecting: the batch goes on the next connection */
        return;
    }

    ngx_http_ingest_redis_sent(w, q, b);
}


/* b, q's oldest batch, is on its way: its reply is now awaited */

void
ngx_http_ingest_redis_sent(ngx_http_ingest_worker_t *w,
    ngx_http_ingest_queue_t *q, ngx_http_ingest_batch_t *b)
{
    q->sent = 1;
    q->sent_at = ngx_current_msec;

    if (b->attempts++) {
        ngx_http_ingest_stat_add(batches_retried, 1);
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, w->log, 0,
                   "ingest batch seq:%uL keys:%ui sent to \"%V\"",
                   b->seq, b->keys, &q->name);

    ngx_http_ingest_redis_arm_ack(w);
}


static void
ngx_http_ingest_redis_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    redisReply                *reply = r;
    ngx_http_ingest_batch_t   *b;
    ngx_http_ingest_queue_t   *q = privdata;
    ngx_http_ingest_worker_t  *w = ac->data;

    if (reply == NULL) {
        /*
         * The connection is going away; Redis may or may not have run
         * the RPUSH.  The batch is sent again as it is.
         */
        q->sent = 0;
        return;
    }

    b = ngx_http_ingest_flush_oldest(q);

    if (reply->type != REDIS_REPLY_INTEGER) {
        /* OOM, LOADING, READONLY, MISCONF ...: Redis did not take it */
        q->sent = 0;
        ngx_http_ingest_stat_add(batches_failed, 1);

        ngx_log_error(NGX_LOG_ERR, w->log, 0,
                      "ingest redis RPUSH to \"%V\" failed: %*s, "
                      "batch seq %uL kept for retry", &q->name,
                      (size_t) (reply->type == REDIS_REPLY_ERROR
                                ? reply->len : 0),
                      reply->str, b ? b->seq : 0);

        ngx_http_ingest_redis_schedule(w);
        ngx_http_ingest_redis_arm_ack(w);
        return;
    }

    w->backoff = 0;

    ngx_http_ingest_redis_acked(w, q);
}


/* q's oldest batch is in Redis (and, in a cluster, on its replicas) */

void
ngx_http_ingest_redis_acked(ngx_http_ingest_worker_t *w,
    ngx_http_ingest_queue_t *q)
{
    ngx_http_ingest_batch_t  *b;

    b = ngx_http_ingest_flush_oldest(q);

    ngx_log_debug4(NGX_LOG_DEBUG_HTTP, w->log, 0,
                   "ingest batch seq:%uL keys:%ui acked by \"%V\" in %Mms",
                   b ? b->seq : 0, b ? b->keys : 0, &q->name,
                   ngx_current_msec - q->sent_at);

    q->sent = 0;

    ngx_http_ingest_status_flushed(ngx_current_msec - q->sent_at);

    ngx_http_ingest_redis_arm_ack(w);
    ngx_http_ingest_flush_acked(w, q);
}


/* the reply deadline runs while any batch waits for its reply */

void
ngx_http_ingest_redis_arm_ack(ngx_http_ingest_worker_t *w)
{
    ngx_uint_t  i;

    for (i = 0; i < w->nqueues; i++) {
        if (w->queues[i].sent) {
            if (!w->ack_timer.timer_set) {
                ngx_add_timer(&w->ack_timer, w->imcf->ack_timeout);
            }

            return;
        }
    }

    if (w->ack_timer.timer_set) {
        ngx_del_timer(&w->ack_timer);
    }
}


/* where a command on key goes: the one connection, or key's master */

redisAsyncContext *
ngx_http_ingest_redis_ctx(ngx_http_ingest_worker_t *w, const u_char *key,
    size_t len)
{
    if (w->cluster != NULL) {
        return ngx_http_ingest_cluster_ctx(w, key, len);
    }

    return w->connected ? w->ac : NULL;
}
