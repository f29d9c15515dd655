
/*
 * Copyright (C) ngx_ingest developers
 *
 * When pending increments become batches, and what happens at exit.
 *
 * A list's table is cut into a batch
 *   - ingest_flush_interval after its first key arrived (a cancelable
 *     timer: it never holds back an idle worker's exit), unless an older
 *     batch still waits for Redis: then the table goes on adding up, and
 *     is cut when that batch is acknowledged;
 *   - as soon as it holds ingest_flush_keys keys, whatever waits;
 *   - at once when a graceful shutdown begins, and in exit_process.
 * Cut batches wait in the list's backlog, oldest first, and only the
 * oldest is sent: batch n+1 never leaves before n is acknowledged, so a
 * producer's batches enter the list in seq order (DESIGN.md).
 *
 * Memory: the tables and the backlogs of a worker together stay under
 * ingest_max_pending; past it, the handler answers 503.
 */


#include "ngx_http_ingest_module.h"


#define NGX_HTTP_INGEST_EXIT_TIMEOUT   300         /* ms, per step */


static void ngx_http_ingest_flush_handler(ngx_event_t *ev);
static void ngx_http_ingest_drain_handler(ngx_event_t *ev);
static void ngx_http_ingest_disconnect_handler(ngx_event_t *ev);
static ngx_int_t ngx_http_ingest_flush_cut(ngx_http_ingest_worker_t *w,
    ngx_http_ingest_queue_t *q);
static ngx_int_t ngx_http_ingest_flush_cut_counters(
    ngx_http_ingest_worker_t *w, ngx_http_ingest_queue_t *q);
static ngx_int_t ngx_http_ingest_flush_cut_records(
    ngx_http_ingest_worker_t *w, ngx_http_ingest_queue_t *q,
    ngx_http_ingest_rows_t *t);
static void ngx_http_ingest_flush_enqueue(ngx_http_ingest_queue_t *q,
    ngx_http_ingest_batch_t *b);
static void ngx_http_ingest_flush_try(ngx_http_ingest_worker_t *w,
    ngx_http_ingest_queue_t *q);
static void ngx_http_ingest_flush_free(ngx_http_ingest_worker_t *w,
    ngx_http_ingest_queue_t *q, ngx_http_ingest_batch_t *b);
static ngx_uint_t ngx_http_ingest_flush_idle(ngx_http_ingest_worker_t *w);
static void ngx_http_ingest_flush_sync(ngx_http_ingest_worker_t *w);


ngx_int_t
ngx_http_ingest_flush_init(ngx_http_ingest_worker_t *w)
{
    ngx_uint_t  i;

    w->timer_conn.fd = (ngx_socket_t) -1;

    w->flush_timer.handler = ngx_http_ingest_flush_handler;
    w->flush_timer.data = &w->timer_conn;
    w->flush_timer.log = w->log;
    w->flush_timer.cancelable = 1;

    w->drain_timer.handler = ngx_http_ingest_drain_handler;
    w->drain_timer.data = &w->timer_conn;
    w->drain_timer.log = w->log;

    w->disconnect_event.handler = ngx_http_ingest_disconnect_handler;
    w->disconnect_event.data = &w->timer_conn;
    w->disconnect_event.log = w->log;

    for (i = 0; i < w->nqueues; i++) {
        ngx_queue_init(&w->queues[i].backlog);
        ngx_queue_init(&w->queues[i].waiting);
    }

    return NGX_OK;
}


ngx_http_ingest_batch_t *
ngx_http_ingest_flush_oldest(ngx_http_ingest_queue_t *q)
{
    if (ngx_queue_empty(&q->backlog)) {
        return NULL;
    }

    return ngx_queue_data(ngx_queue_head(&q->backlog),
                          ngx_http_ingest_batch_t, link);
}


/* bytes a worker holds for Redis: tables and cut batches */

size_t
ngx_http_ingest_flush_pending(ngx_http_ingest_worker_t *w)
{
    size_t      n;
    ngx_uint_t  i;

    n = 0;

    for (i = 0; i < w->nqueues; i++) {
        n += w->queues[i].table.memory + w->queues[i].backlog_bytes
             + w->queues[i].keyed.cap + w->queues[i].rows_bytes;
    }

    return n;
}


/* a request's increments entered q's table */

void
ngx_http_ingest_flush_added(ngx_http_ingest_worker_t *w,
    ngx_http_ingest_queue_t *q)
{
    /*
     * The status zone's pending figures, once per millisecond of event
     * loop at most, not per request; every cut refreshes them as well.
     */

    if (w->status_msec != ngx_current_msec) {
        w->status_msec = ngx_current_msec;
        ngx_http_ingest_status_pending(w);
    }

    /* rows are cut at 1 MB of JSON: Redis likes its values small */

    if (ngx_http_ingest_queue_pending(q) >= w->imcf->flush_keys
        || q->rows_bytes >= 1024 * 1024 || w->draining)
    {
        q->due = 1;
        ngx_http_ingest_flush_try(w, q);
        return;
    }

    if (!w->flush_timer.timer_set) {
        ngx_add_timer(&w->flush_timer, w->imcf->flush_interval);
    }
}


/* q's oldest batch is in Redis */

void
ngx_http_ingest_flush_acked(ngx_http_ingest_worker_t *w,
    ngx_http_ingest_queue_t *q)
{
    ngx_http_ingest_batch_t  *b;

    b = ngx_http_ingest_flush_oldest(q);

    if (b != NULL) {
        /* requests waiting for this batch (ingest_ack redis) get a 204 */
        ngx_http_ingest_wake(q, b->seq);
        ngx_http_ingest_flush_free(w, q, b);
    }

    if (q->due || ngx_http_ingest_queue_pending(q) >= w->imcf->flush_keys
        || w->draining)
    {
        ngx_http_ingest_flush_try(w, q);

    } else if (ngx_http_ingest_queue_pending(q)
               && !w->flush_timer.timer_set)
    {
        ngx_add_timer(&w->flush_timer, w->imcf->flush_interval);
    }

    ngx_http_ingest_redis_send(w, q);
    ngx_http_ingest_status_pending(w);

    if (w->draining && ngx_http_ingest_flush_idle(w)) {
        /* all acknowledged: close cleanly, outside hiredis's callback */
        ngx_post_event(&w->disconnect_event, &ngx_posted_events);
    }
}


static void
ngx_http_ingest_flush_handler(ngx_event_t *ev)
{
    ngx_uint_t                 i;
    ngx_http_ingest_worker_t  *w;

    w = ngx_http_ingest_worker;

    for (i = 0; i < w->nqueues; i++) {
        if (ngx_http_ingest_queue_pending(&w->queues[i])) {
            w->queues[i].due = 1;
            ngx_http_ingest_flush_try(w, &w->queues[i]);
        }
    }
}


static void
ngx_http_ingest_flush_try(ngx_http_ingest_worker_t *w,
    ngx_http_ingest_queue_t *q)
{
    if (ngx_http_ingest_queue_pending(q) == 0) {
        q->due = 0;
        return;
    }

    /*
     * While an older batch waits, a table below ingest_flush_keys goes
     * on adding up: Redis gets fewer, fuller batches when it is slow.
     */

    if (!ngx_queue_empty(&q->backlog)
        && ngx_http_ingest_queue_pending(q) < w->imcf->flush_keys
        && q->rows_bytes < 1024 * 1024
        && !w->draining && !w->exiting)
    {
        return;
    }

    if (ngx_http_ingest_flush_cut(w, q) != NGX_OK) {
        /* the table is kept whole; the timer tries again */
        if (!w->flush_timer.timer_set && !w->exiting) {
            ngx_add_timer(&w->flush_timer, w->imcf->flush_interval);
        }

        return;
    }

    q->due = 0;

    ngx_http_ingest_status_pending(w);
    ngx_http_ingest_redis_send(w, q);
}


/* what the list holds becomes its newest batches, each the next seq */

static ngx_int_t
ngx_http_ingest_flush_cut(ngx_http_ingest_worker_t *w,
    ngx_http_ingest_queue_t *q)
{
    ngx_uint_t  i;

    if ((q->table.nkeys || q->nkeyed)
        && ngx_http_ingest_flush_cut_counters(w, q) != NGX_OK)
    {
        return NGX_ERROR;
    }

    for (i = 0; i < q->ntables; i++) {
        if (q->tables[i].nrows
            && ngx_http_ingest_flush_cut_records(w, q, &q->tables[i])
               != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static void
ngx_http_ingest_flush_enqueue(ngx_http_ingest_queue_t *q,
    ngx_http_ingest_batch_t *b)
{
    b->seq = ++q->seq;

    ngx_queue_insert_tail(&q->backlog, &b->link);
    q->nbatches++;
    q->backlog_bytes += b->buf.cap;
}


/* one table's rows become a records batch */

static ngx_int_t
ngx_http_ingest_flush_cut_records(ngx_http_ingest_worker_t *w,
    ngx_http_ingest_queue_t *q, ngx_http_ingest_rows_t *t)
{
    ngx_time_t               *tp;
    ngx_http_ingest_batch_t  *b;

    b = ngx_calloc(sizeof(ngx_http_ingest_batch_t), w->log);
    if (b == NULL) {
        return NGX_ERROR;
    }

    tp = ngx_timeofday();

    if (ingest_wire_records_begin(&b->buf, w->producer, q->seq + 1,
                                  (int64_t) tp->sec * 1000 + tp->msec,
                                  (const char *) t->conf->table.data,
                                  t->conf->record.nfields, t->conf->columns,
                                  t->conf->types)
        != INGEST_WIRE_OK
        || ingest_wire_records_end(&b->buf, &t->rows) != INGEST_WIRE_OK)
    {
        ngx_log_error(NGX_LOG_ALERT, w->log, 0,
                      "ingest cannot allocate a batch of %ui rows for "
                      "\"%V\"", t->nrows, &q->name);
        ingest_wire_buf_free(&b->buf);
        ngx_free(b);
        return NGX_ERROR;
    }

    b->keys = t->nrows;
    ngx_http_ingest_flush_enqueue(q, b);

    q->nrows -= t->nrows;
    q->rows_bytes -= t->rows.len;
    t->nrows = 0;
    t->rows.len = 0;
    t->rows.count = 0;

    ngx_log_debug4(NGX_LOG_DEBUG_HTTP, w->log, 0,
                   "ingest batch seq:%uL rows:%ui bytes:%uz cut for \"%V\"",
                   b->seq, b->keys, b->buf.len, &q->name);

    return NGX_OK;
}


/* the pending table becomes the newest batch, under the next seq */

static ngx_int_t
ngx_http_ingest_flush_cut_counters(ngx_http_ingest_worker_t *w,
    ngx_http_ingest_queue_t *q)
{
    size_t                    i;
    ngx_time_t               *tp;
    ngx_http_ingest_entry_t  *e;
    ngx_http_ingest_batch_t  *b;

    b = ngx_calloc(sizeof(ngx_http_ingest_batch_t), w->log);
    if (b == NULL) {
        goto nomem;
    }

    tp = ngx_timeofday();

    /* version 2 only when it carries requests with an Idempotency-Key */

    if (ingest_wire_counters_begin(&b->buf,
                                   q->nkeyed ? INGEST_WIRE_VERSION
                                             : INGEST_WIRE_VERSION_PLAIN,
                                   w->producer, q->seq + 1,
                                   (int64_t) tp->sec * 1000 + tp->msec)
        != INGEST_WIRE_OK)
    {
        goto nomem;
    }

    for (i = 0; i <= q->table.mask; i++) {
        e = &q->table.slots[i];

        if (e->hash == 0) {
            continue;
        }

        if (ingest_wire_counters_add(&b->buf, e->key, e->len, e->value)
            != INGEST_WIRE_OK)
        {
            goto nomem;
        }
    }

    if (ingest_wire_counters_end(&b->buf, q->nkeyed ? &q->keyed : NULL)
        != INGEST_WIRE_OK)
    {
        goto nomem;
    }

    b->keys = q->table.nkeys + q->nkeyed;
    ngx_http_ingest_flush_enqueue(q, b);

    q->keyed.len = 0;
    q->keyed.count = 0;
    q->nkeyed = 0;

    ngx_http_ingest_table_reset(&q->table);

    ngx_log_debug4(NGX_LOG_DEBUG_HTTP, w->log, 0,
                   "ingest batch seq:%uL keys:%ui bytes:%uz cut for \"%V\"",
                   b->seq, b->keys, b->buf.len, &q->name);

    return NGX_OK;

nomem:

    ngx_log_error(NGX_LOG_ALERT, w->log, 0,
                  "ingest cannot allocate a batch of %uz keys for \"%V\"",
                  q->table.nkeys, &q->name);

    if (b != NULL) {
        ingest_wire_buf_free(&b->buf);
        ngx_free(b);
    }

    return NGX_ERROR;
}


static void
ngx_http_ingest_flush_free(ngx_http_ingest_worker_t *w,
    ngx_http_ingest_queue_t *q, ngx_http_ingest_batch_t *b)
{
    ngx_queue_remove(&b->link);
    q->nbatches--;
    q->backlog_bytes -= b->buf.cap;
    q->sent = 0;

    ingest_wire_buf_free(&b->buf);
    ngx_free(b);

    if (w->full
        && ngx_http_ingest_flush_pending(w) < w->imcf->max_pending / 2)
    {
        w->full = 0;
        ngx_log_error(NGX_LOG_WARN, w->log, 0,
                      "ingest pending memory below half of "
                      "ingest_max_pending again: accepting requests");
    }
}


static ngx_uint_t
ngx_http_ingest_flush_idle(ngx_http_ingest_worker_t *w)
{
    ngx_uint_t  i;

    for (i = 0; i < w->nqueues; i++) {
        if (w->queues[i].nbatches
            || ngx_http_ingest_queue_pending(&w->queues[i]))
        {
            return 0;
        }
    }

    return 1;
}


/*
 * A graceful shutdown (quit, reload) began: send everything now, and
 * hold the worker with a non-cancelable timer until Redis has it all,
 * or until ingest_drain_timeout; what is left then goes through
 * exit_process.
 */

void
ngx_http_ingest_flush_drain(ngx_http_ingest_worker_t *w)
{
    ngx_uint_t  i;

    if (w->draining) {
        /* each of a cluster's connections tells */
        return;
    }

    w->draining = 1;

    if (w->flush_timer.timer_set) {
        ngx_del_timer(&w->flush_timer);
    }

    if (ngx_http_ingest_flush_idle(w)) {
        ngx_post_event(&w->disconnect_event, &ngx_posted_events);
        return;
    }

    ngx_log_error(NGX_LOG_INFO, w->log, 0,
                  "ingest draining pending batches before exit");

    for (i = 0; i < w->nqueues; i++) {
        w->queues[i].due = 1;
        ngx_http_ingest_flush_try(w, &w->queues[i]);
    }

    ngx_add_timer(&w->drain_timer, w->imcf->drain_timeout);
}


static void
ngx_http_ingest_drain_handler(ngx_event_t *ev)
{
    ngx_http_ingest_worker_t  *w;

    w = ngx_http_ingest_worker;

    ngx_log_error(NGX_LOG_WARN, w->log, 0,
                  "ingest drain timed out after %Mms",
                  w->imcf->drain_timeout);

    /* exit_process makes the last, blocking attempt */
    w->exiting = 1;
    ngx_http_ingest_redis_close(w);
}


static void
ngx_http_ingest_disconnect_handler(ngx_event_t *ev)
{
    ngx_http_ingest_worker_t  *w;

    w = ngx_http_ingest_worker;

    if (!ngx_http_ingest_flush_idle(w)) {
        return;
    }

    if (w->drain_timer.timer_set) {
        ngx_del_timer(&w->drain_timer);
    }

    ngx_log_error(NGX_LOG_INFO, w->log, 0, "ingest drained");

    w->exiting = 1;

    if (w->cluster != NULL) {
        ngx_http_ingest_cluster_close(w, 1);

    } else if (w->ac != NULL) {
        redisAsyncDisconnect(w->ac);
    }
}


/*
 * exit_process: the event loop is gone.  Whatever is not in Redis yet
 * goes there now over a blocking connection with short timeouts, oldest
 * batch first (a resend keeps its seq: a duplicate is skipped), then the
 * rest of the table as the next seq.  What Redis cannot take goes to the
 * spool, in the same order, when there is one.
 */

void
ngx_http_ingest_flush_exit(ngx_http_ingest_worker_t *w)
{
    ngx_uint_t  i;

    w->exiting = 1;

    if (w->flush_timer.timer_set) {
        ngx_del_timer(&w->flush_timer);
    }

    if (w->retry_timer.timer_set) {
        ngx_del_timer(&w->retry_timer);
    }

    if (w->drain_timer.timer_set) {
        ngx_del_timer(&w->drain_timer);
    }

    if (w->spool_timer.timer_set) {
        ngx_del_timer(&w->spool_timer);
    }

    if (w->disconnect_event.posted) {
        ngx_delete_posted_event(&w->disconnect_event);
    }

    ngx_http_ingest_redis_close(w);

    for (i = 0; i < w->nqueues; i++) {
        w->queues[i].sent = 0;
    }

    if (!ngx_http_ingest_flush_idle(w)) {
        ngx_http_ingest_flush_sync(w);
    }

    for (i = 0; i < w->nqueues; i++) {
        while (w->queues[i].nbatches) {
            ngx_http_ingest_flush_free(w, &w->queues[i],
                                 ngx_http_ingest_flush_oldest(&w->queues[i]));
        }
    }
}


static void
ngx_http_ingest_flush_sync(ngx_http_ingest_worker_t *w)
{
    int                       ok;
    const char               *argv[3], *why;
    size_t                    argvlen[3];
    ngx_uint_t                i, spooled, lost, replicas;
    redisReply               *reply;
    redisContext             *rc, *nodes[NGX_HTTP_INGEST_MAX_NODES];
    struct timeval            tv;
    ngx_http_ingest_batch_t  *b;
    ngx_http_ingest_queue_t  *q;

    tv.tv_sec = 0;
    tv.tv_usec = NGX_HTTP_INGEST_EXIT_TIMEOUT * 1000;

    if (w->cluster != NULL) {
        /* per list, its master's connection: see below */
        ngx_memzero(nodes, sizeof(nodes));
        rc = NULL;

    } else if (w->imcf->redis_port) {
        rc = redisConnectWithTimeout((char *) w->imcf->redis_host,
                                     w->imcf->redis_port, tv);

    } else {
        rc = redisConnectUnixWithTimeout((char *) w->imcf->redis_host, tv);
    }

    why = NULL;

    if (w->cluster != NULL) {
        /* void */

    } else if (rc == NULL) {
        why = "out of memory";

    } else if (rc->err) {
        why = rc->errstr;

    } else if (redisSetTimeout(rc, tv) != REDIS_OK) {
        why = "cannot set timeout";
    }

    for (i = 0; i < w->nqueues; i++) {
        q = &w->queues[i];

        if (w->cluster != NULL) {
            rc = ngx_http_ingest_cluster_sync(w, q, nodes, tv);
            why = (rc == NULL) ? "the list's master is unreachable" : NULL;
        }

        /* the table last, under the next seq */

        if (ngx_http_ingest_queue_pending(q)) {
            (void) ngx_http_ingest_flush_cut(w, q);
        }

        spooled = 0;
        lost = 0;

        while ((b = ngx_http_ingest_flush_oldest(q)) != NULL) {
            ok = 0;

            if (why == NULL) {
                ngx_http_ingest_redis_rpush(&q->name, &b->buf, argv,
                                            argvlen);

                reply = redisCommandArgv(rc, 3, argv, argvlen);

                if (reply != NULL && reply->type == REDIS_REPLY_INTEGER
                    && w->cluster != NULL
                    && (replicas = ngx_http_ingest_cluster_wait_for(w,
                                                                 q->slot)))
                {
                    /* on a replica too, or a failover could lose it */
                    freeReplyObject(reply);
                    reply = redisCommand(rc, "WAIT %u %u",
                                         (unsigned) replicas,
                                         NGX_HTTP_INGEST_EXIT_TIMEOUT);

                    if (reply != NULL
                        && (reply->type != REDIS_REPLY_INTEGER
                            || reply->integer < (long long) replicas))
                    {
                        reply->type = REDIS_REPLY_NIL;
                    }
                }

                if (reply == NULL) {
                    why = rc->errstr;

                } else {
                    ok = (reply->type == REDIS_REPLY_INTEGER);

                    if (!ok) {
                        ngx_log_error(NGX_LOG_ERR, w->log, 0,
                                      "ingest redis RPUSH to \"%V\" failed "
                                      "at exit: %*s", &q->name,
                                      (size_t) (reply->type
                                                == REDIS_REPLY_ERROR
                                                ? reply->len : 0),
                                      reply->str);

                        /* what Redis refuses now, it refuses next too */
                        why = "redis refused the batch";
                    }

                    freeReplyObject(reply);
                }
            }

            if (ok) {
                ngx_log_error(NGX_LOG_INFO, w->log, 0,
                              "ingest flushed %ui keys to \"%V\" at exit "
                              "(batch seq %uL)", b->keys, &q->name, b->seq);

            } else if (w->imcf->spool != NULL
                       && ngx_http_ingest_spool_write(w, q, b) == NGX_OK)
            {
                spooled += b->keys;

            } else {
                lost += b->keys;
            }

            ngx_http_ingest_flush_free(w, q, b);
        }

        if (spooled) {
            ngx_log_error(NGX_LOG_WARN, w->log, 0,
                          "ingest spooled %ui keys of \"%V\" at exit "
                          "(batches up to seq %uL): %s", spooled, &q->name,
                          q->seq, why);
        }

        if (lost) {
            ngx_log_error(NGX_LOG_ERR, w->log, 0,
                          "ingest lost %ui keys of \"%V\" at exit "
                          "(batches up to seq %uL): %s", lost, &q->name,
                          q->seq, why);
        }
    }

    if (w->cluster != NULL) {
        for (i = 0; i < NGX_HTTP_INGEST_MAX_NODES; i++) {
            if (nodes[i] != NULL) {
                redisFree(nodes[i]);
            }
        }

    } else if (rc != NULL) {
        redisFree(rc);
    }
}
