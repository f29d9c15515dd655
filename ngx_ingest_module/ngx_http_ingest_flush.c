
/*
 * Copyright (C) ngx_ingest developers
 * SPDX-License-Identifier: BSD-2-Clause
 *
 * When pending increments become batches, and what happens at exit.
 *
 * A list's sums (and rows) are cut into a batch
 *   - ingest_flush_interval after the first key arrived (a cancelable
 *     timer: it never holds back an idle worker's exit), unless an older
 *     batch still waits for Redis: then the sums go on adding up, and are
 *     cut when that batch is delivered;
 *   - as soon as they hold ingest_flush_keys keys, whatever waits;
 *   - at once when a graceful shutdown begins, and in exit_process.
 * Cut batches wait in the list's backlog, oldest first, and only the
 * oldest is handed to the transport: batch n+1 never leaves before n is
 * in Redis, so a producer's batches enter the list in seq order, the
 * order the consumer relies on (docs/design.md).
 *
 * The transport tells of a delivery through the channel's posted event;
 * a graceful shutdown is learnt from an idle "watcher" connection, which
 * nginx closes when the shutdown begins (and again, with an error, at
 * worker_shutdown_timeout), whatever state Redis is in.
 *
 * Memory: the sums, rows and backlogs of a worker together stay under
 * ingest_max_pending; past it, requests are answered 503.
 */


#include "ngx_http_ingest_flush.h"
#include "ngx_http_ingest_spool.h"
#include "ngx_http_ingest_replay.h"
#include "ngx_http_ingest_metrics.h"


#define NGX_HTTP_INGEST_EXIT_TIMEOUT   300         /* ms, per step */

/*
 * ms for all the exit path's sends: after a TERM nginx's master kills
 * the workers still there 1.5 s later, and the spool must be written
 * before; after a QUIT, worker_shutdown_timeout is the operator's bound.
 */
#define NGX_HTTP_INGEST_EXIT_BUDGET    500


ngx_http_ingest_worker_t  *ngx_http_ingest_worker;


static ngx_int_t ngx_http_ingest_flush_queues(ngx_http_ingest_worker_t *w,
    ngx_cycle_t *cycle);
static ngx_int_t ngx_http_ingest_flush_watch(ngx_http_ingest_worker_t *w);
static void ngx_http_ingest_flush_watcher(ngx_event_t *ev);
static void ngx_http_ingest_flush_handler(ngx_event_t *ev);
static void ngx_http_ingest_flush_commit(ngx_event_t *ev);
static void ngx_http_ingest_flush_retarget(ngx_http_ingest_queue_t *q,
    uint64_t first, uint64_t target);
static void ngx_http_ingest_flush_delivered(ngx_http_ingest_channel_t *ch);
static void ngx_http_ingest_drain(ngx_http_ingest_worker_t *w);
static void ngx_http_ingest_drain_handler(ngx_event_t *ev);
static void ngx_http_ingest_drained(ngx_http_ingest_worker_t *w);
static void ngx_http_ingest_flush_try(ngx_http_ingest_worker_t *w,
    ngx_http_ingest_queue_t *q);
static void ngx_http_ingest_flush_hand(ngx_http_ingest_worker_t *w,
    ngx_http_ingest_queue_t *q);
static ngx_uint_t ngx_http_ingest_flush_group(ngx_http_ingest_queue_t *q,
    ngx_str_t *group, ngx_uint_t max);
static void ngx_http_ingest_flush_retire(ngx_http_ingest_worker_t *w,
    ngx_http_ingest_queue_t *q, ngx_uint_t n);
static ngx_int_t ngx_http_ingest_flush_cut(ngx_http_ingest_worker_t *w,
    ngx_http_ingest_queue_t *q);
static ngx_int_t ngx_http_ingest_flush_cut_counters(
    ngx_http_ingest_worker_t *w, ngx_http_ingest_queue_t *q);
static ngx_int_t ngx_http_ingest_flush_cut_records(
    ngx_http_ingest_worker_t *w, ngx_http_ingest_queue_t *q,
    ngx_http_ingest_rows_t *t);
static void ngx_http_ingest_flush_enqueue(ngx_http_ingest_worker_t *w,
    ngx_http_ingest_queue_t *q, ngx_queue_t *cut);
static ngx_int_t ngx_http_ingest_flush_cut_buckets(
    ngx_http_ingest_worker_t *w, ngx_http_ingest_queue_t *q,
    ngx_http_ingest_bucket_cursor_t *bc, ingest_wire_buf_t *bk, size_t room,
    ngx_uint_t first);
static ngx_uint_t ngx_http_ingest_flush_group_of(
    ngx_http_ingest_bucket_cursor_t *bc, ngx_http_ingest_entry_t *e,
    uint64_t *raw);
static char *ngx_http_ingest_flush_value(char *p, char *end);
static ngx_uint_t ngx_http_ingest_cut_n(ngx_queue_t *cut);
static void ngx_http_ingest_flush_drop(ngx_http_ingest_batch_t *b);
static void ngx_http_ingest_flush_uncut(ngx_queue_t *cut);
static ngx_http_ingest_batch_t *ngx_http_ingest_flush_oldest(
    ngx_http_ingest_queue_t *q);
static void ngx_http_ingest_flush_free(ngx_http_ingest_worker_t *w,
    ngx_http_ingest_queue_t *q, ngx_http_ingest_batch_t *b);
static void ngx_http_ingest_flush_metrics(ngx_http_ingest_worker_t *w);
static ngx_uint_t ngx_http_ingest_flush_idle(ngx_http_ingest_worker_t *w);
static void ngx_http_ingest_flush_unfull(ngx_http_ingest_worker_t *w);
static void ngx_http_ingest_flush_sync(ngx_http_ingest_worker_t *w);
static ngx_int_t ngx_http_ingest_flush_spool(ngx_http_ingest_worker_t *w,
    ngx_http_ingest_queue_t *q, ngx_http_ingest_spool_file_t *f,
    ngx_http_ingest_batch_t *b, ngx_str_t *batch);


/*
 * The worker's state, its lists, and the transport (ops: the standalone
 * or the cluster one), which starts connecting.
 */

ngx_int_t
ngx_http_ingest_flush_init(ngx_cycle_t *cycle,
    ngx_http_ingest_main_conf_t *imcf,
    const ngx_http_ingest_transport_ops_t *ops)
{
    struct timespec               ts;
    ngx_http_ingest_worker_t     *w;
    ngx_http_ingest_transport_t  *t;

    w = ngx_pcalloc(cycle->pool, sizeof(ngx_http_ingest_worker_t));
    t = ngx_pcalloc(cycle->pool, sizeof(ngx_http_ingest_transport_t));

    if (w == NULL || t == NULL) {
        return NGX_ERROR;
    }

    w->imcf = imcf;
    w->log = cycle->log;
    w->transport = t;
    w->timer_conn.fd = (ngx_socket_t) -1;

    w->flush_timer.handler = ngx_http_ingest_flush_handler;
    w->flush_timer.data = &w->timer_conn;
    w->flush_timer.log = w->log;
    w->flush_timer.cancelable = 1;

    w->drain_timer.handler = ngx_http_ingest_drain_handler;
    w->drain_timer.data = &w->timer_conn;
    w->drain_timer.log = w->log;

    w->commit.handler = ngx_http_ingest_flush_commit;
    w->commit.data = &w->timer_conn;
    w->commit.log = w->log;

    /* host/pid/start-ns: no two worker lives share it, even after reboot */

    (void) clock_gettime(CLOCK_REALTIME, &ts);

    ngx_snprintf((u_char *) w->producer, sizeof(w->producer) - 1,
                 "%V/%P/%uL%Z", &cycle->hostname, ngx_pid,
                 (uint64_t) ts.tv_sec * 1000000000 + ts.tv_nsec);

    t->ops = ops;
    t->imcf = imcf;
    t->log = w->log;
    t->timer_data = &w->timer_conn;

    ngx_http_ingest_transport_init(t);

    if (ops->init(t, cycle->pool) != NGX_OK
        || ngx_http_ingest_flush_queues(w, cycle) != NGX_OK
        || ngx_http_ingest_flush_watch(w) != NGX_OK)
    {
        return NGX_ERROR;
    }

    ngx_http_ingest_worker = w;

    ops->connect(t);

    return NGX_OK;
}


/* each Redis list: its sums, its records tables' rows, its channel */

static ngx_int_t
ngx_http_ingest_flush_queues(ngx_http_ingest_worker_t *w, ngx_cycle_t *cycle)
{
    ngx_str_t                        *names;
    ngx_uint_t                        i, n;
    ngx_http_ingest_queue_t          *q;
    ngx_http_ingest_records_conf_t  **rc;

    w->nqueues = w->imcf->queues.nelts;

    w->queues = ngx_pcalloc(cycle->pool,
                            w->nqueues * sizeof(ngx_http_ingest_queue_t));
    if (w->queues == NULL) {
        return NGX_ERROR;
    }

    names = w->imcf->queues.elts;

    for (i = 0; i < w->nqueues; i++) {
        q = &w->queues[i];

        q->name = names[i];
        ngx_queue_init(&q->backlog);
        ngx_queue_init(&q->waiting);

        if (ngx_http_ingest_table_init(&q->sums, w->imcf->flush_keys)
            != NGX_HTTP_INGEST_TABLE_OK
            || ngx_http_ingest_table_init(&q->buckets, 0)
               != NGX_HTTP_INGEST_TABLE_OK)
        {
            return NGX_ERROR;
        }

        q->channel.name = q->name;
        q->channel.data = q;
        q->channel.delivered = ngx_http_ingest_flush_delivered;

        ngx_http_ingest_channel_init(w->transport, &q->channel);
    }

    rc = w->imcf->tables.elts;

    for (i = 0; i < w->imcf->tables.nelts; i++) {
        q = ngx_http_ingest_list_queue(w, rc[i]->queue);
        q->nrow_sets = ngx_max(q->nrow_sets, rc[i]->rows_index + 1);
    }

    for (i = 0; i < w->nqueues; i++) {
        q = &w->queues[i];

        if (q->nrow_sets == 0) {
            continue;
        }

        n = q->nrow_sets * sizeof(ngx_http_ingest_rows_t);

        q->row_sets = ngx_pcalloc(cycle->pool, n);
        if (q->row_sets == NULL) {
            return NGX_ERROR;
        }
    }

    for (i = 0; i < w->imcf->tables.nelts; i++) {
        n = rc[i]->rows_index;
        ngx_http_ingest_list_queue(w, rc[i]->queue)->row_sets[n].conf = rc[i];
    }

    return NGX_OK;
}


/*
 * The watcher: an idle connection without a socket (as lua-nginx-module
 * keeps for its timers), which nginx "closes" when a graceful shutdown
 * begins and again at worker_shutdown_timeout.  It tells the worker
 * whether or not it has a Redis connection at that moment.
 */

static ngx_int_t
ngx_http_ingest_flush_watch(ngx_http_ingest_worker_t *w)
{
    ngx_connection_t  *c;

    c = ngx_get_connection(0, w->log);
    if (c == NULL) {
        return NGX_ERROR;
    }

    c->fd = (ngx_socket_t) -2;
    c->idle = 1;
    c->data = w;
    c->read->handler = ngx_http_ingest_flush_watcher;
    c->read->log = w->log;
    c->write->log = w->log;

    w->watcher = c;

    return NGX_OK;
}


static void
ngx_http_ingest_flush_watcher(ngx_event_t *ev)
{
    ngx_connection_t          *c;
    ngx_http_ingest_worker_t  *w;

    c = ev->data;
    w = c->data;

    if (!c->close) {
        return;
    }

    c->close = 0;

    if (!c->error) {
        /* quit, reload: send everything, wait for Redis (bounded) */
        c->idle = 0;
        ngx_http_ingest_drain(w);
        return;
    }

    /* worker_shutdown_timeout: give up; exit_process takes over */

    c->error = 0;

    ngx_log_error(NGX_LOG_WARN, w->log, 0,
                  "ingest stops draining at worker_shutdown_timeout");

    w->exiting = 1;

    if (w->drain_timer.timer_set) {
        ngx_del_timer(&w->drain_timer);
    }

    w->transport->ops->close(w->transport, 0);
}


/* what the list holds that its oldest batch waits for */

static ngx_http_ingest_batch_t *
ngx_http_ingest_flush_oldest(ngx_http_ingest_queue_t *q)
{
    if (ngx_queue_empty(&q->backlog)) {
        return NULL;
    }

    return ngx_queue_data(ngx_queue_head(&q->backlog),
                          ngx_http_ingest_batch_t, link);
}


/*
 * Bytes that wait for Redis: the keys and entries of the sums, the
 * Idempotency-Key requests and rows not cut yet, and the cut batches.
 * Not the capacity kept for the next ones (the tables are sized up
 * front, and keep their arenas): that never falls, and refusing on it
 * would refuse for good.
 */

size_t
ngx_http_ingest_flush_pending(ngx_http_ingest_worker_t *w)
{
    size_t                    n;
    ngx_uint_t                i;
    ngx_http_ingest_queue_t  *q;

    n = 0;

    for (i = 0; i < w->nqueues; i++) {
        q = &w->queues[i];
        n += ngx_http_ingest_table_data(&q->sums)
             + ngx_http_ingest_table_data(&q->buckets) + q->backlog_bytes
             + q->keyed.len + q->rows_bytes;
    }

    return n;
}


/*
 * Past ingest_max_pending requests are refused (503) until what waits
 * falls under half of it, whatever makes it fall; one request that needs
 * more than all of it is refused alone (413), and changes nothing.
 */

ngx_int_t
ngx_http_ingest_flush_admit(ngx_http_ingest_worker_t *w, size_t need,
    ngx_log_t *log)
{
    size_t  pending, max;

    max = w->imcf->max_pending;

    if (need > max) {
        ngx_log_error(NGX_LOG_INFO, log, 0,
                      "ingest request needs %uz bytes, more than "
                      "ingest_max_pending (%uz): answering 413", need, max);
        return NGX_DECLINED;
    }

    pending = ngx_http_ingest_flush_pending(w);

    if (w->full && pending < max / 2) {
        ngx_http_ingest_flush_unfull(w);
    }

    if (!w->full && pending + need <= max) {
        return NGX_OK;
    }

    if (!w->full) {
        w->full = 1;
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "ingest pending memory reached ingest_max_pending "
                      "(%uz bytes): Redis is not taking batches as fast "
                      "as they come; answering 503 until half of it is sent",
                      max);
    }

    return NGX_BUSY;
}


static void
ngx_http_ingest_flush_unfull(ngx_http_ingest_worker_t *w)
{
    w->full = 0;
    ngx_log_error(NGX_LOG_WARN, w->log, 0,
                  "ingest pending memory below half of ingest_max_pending "
                  "again: accepting requests");
}


/* a request's increments or rows entered q */

void
ngx_http_ingest_flush_added(ngx_http_ingest_worker_t *w,
    ngx_http_ingest_queue_t *q)
{
    /*
     * The status zone's pending figures, once per millisecond of event
     * loop at most, not per request; every cut refreshes them as well.
     */

    if (w->metrics_msec != ngx_current_msec) {
        w->metrics_msec = ngx_current_msec;
        ngx_http_ingest_flush_metrics(w);
    }

    /* cut at half a batch's bytes too: Redis likes its values small */

    if (ngx_http_ingest_queue_pending(q) >= w->imcf->flush_keys
        || ngx_http_ingest_queue_bytes(q) >= NGX_HTTP_INGEST_MAX_BATCH / 2
        || w->draining)
    {
        q->due = 1;
        ngx_http_ingest_flush_try(w, q);
        return;
    }

    if (!w->flush_timer.timer_set) {
        ngx_add_timer(&w->flush_timer, w->imcf->flush_interval);
    }
}


/*
 * A request waits for what it added to q to be in Redis: the batch its
 * sums will be cut into, the next one (or, if a cut at a threshold took
 * them already, the last one cut).
 *
 * Group commit: a waiting request never waits for the flush timer.  Its
 * list is cut and sent once the requests of this turn of the event loop
 * have been read (a posted event), if no batch of the list is in flight;
 * while one is, the arrivals add up and leave together the moment it is
 * acknowledged (ngx_http_ingest_flush_delivered() cuts a due list).
 */

void
ngx_http_ingest_flush_wait(ngx_http_ingest_queue_t *q,
    ngx_http_ingest_waiter_t *wt)
{
    ngx_http_ingest_worker_t  *w;

    w = ngx_http_ingest_worker;

    wt->seq = ngx_http_ingest_queue_pending(q) ? q->seq + 1 : q->seq;
    wt->waiting = 1;
    ngx_queue_insert_tail(&q->waiting, &wt->link);

    if (!ngx_http_ingest_queue_pending(q) || w->exiting) {
        return;
    }

    q->awaited = 1;

    if (!w->commit.posted) {
        ngx_post_event(&w->commit, &ngx_posted_events);
    }
}


/* the group commit: every list a request waits on is cut if it may be */

static void
ngx_http_ingest_flush_commit(ngx_event_t *ev)
{
    ngx_uint_t                 i;
    ngx_http_ingest_queue_t   *q;
    ngx_http_ingest_worker_t  *w;

    w = ngx_http_ingest_worker;

    if (w == NULL || w->exiting) {
        return;
    }

    for (i = 0; i < w->nqueues; i++) {
        q = &w->queues[i];

        if (!q->awaited) {
            continue;
        }

        q->awaited = 0;
        q->due = 1;

        /* with a batch in flight, "due" has it cut once that one is acked */
        ngx_http_ingest_flush_try(w, q);
    }
}


/*
 * A cut made batches first..q->seq: those waiting for "the next batch"
 * (first) wait for the last of them, since their sums may be in any;
 * after a cut that failed half way, for the next cut.
 */

static void
ngx_http_ingest_flush_retarget(ngx_http_ingest_queue_t *q, uint64_t first,
    uint64_t target)
{
    ngx_queue_t               *link;
    ngx_http_ingest_waiter_t  *wt;

    for (link = ngx_queue_last(&q->waiting);
         link != ngx_queue_sentinel(&q->waiting);
         link = ngx_queue_prev(link))
    {
        wt = ngx_queue_data(link, ngx_http_ingest_waiter_t, link);

        if (wt->seq != first) {
            break;
        }

        wt->seq = target;
    }
}


void
ngx_http_ingest_flush_unwait(ngx_http_ingest_waiter_t *wt)
{
    if (wt->waiting) {
        wt->waiting = 0;
        ngx_queue_remove(&wt->link);
    }
}


/* the transport delivered q's oldest batches (from a posted event) */

static void
ngx_http_ingest_flush_delivered(ngx_http_ingest_channel_t *ch)
{
    ngx_uint_t                 i;
    ngx_queue_t               *link;
    ngx_http_ingest_batch_t   *b;
    ngx_http_ingest_queue_t   *q;
    ngx_http_ingest_waiter_t  *wt;
    ngx_http_ingest_worker_t  *w;

    q = ch->data;
    w = ngx_http_ingest_worker;

    /* the group is the oldest batches, in order: find its last */

    b = NULL;
    link = ngx_queue_head(&q->backlog);

    for (i = 0; i < ch->nbatches; i++) {
        if (link == ngx_queue_sentinel(&q->backlog)) {
            b = NULL;
            break;
        }

        b = ngx_queue_data(link, ngx_http_ingest_batch_t, link);

        if ((u_char *) b->buf.data != ch->batches[i].data) {
            b = NULL;
            break;
        }

        link = ngx_queue_next(link);
    }

    if (b == NULL) {
        /* only the oldest are ever handed over: this cannot happen */
        ngx_log_error(NGX_LOG_ALERT, w->log, 0,
                      "ingest delivery of batches of \"%V\" that are not "
                      "its oldest, ignored", &q->name);
        return;
    }

    /* those waiting for these batches (ingest_ack redis) are answered */

    while (!ngx_queue_empty(&q->waiting)) {
        link = ngx_queue_head(&q->waiting);
        wt = ngx_queue_data(link, ngx_http_ingest_waiter_t, link);

        if (wt->seq > b->seq) {
            break;
        }

        ngx_http_ingest_flush_unwait(wt);
        wt->handler(wt);
    }

    ngx_http_ingest_flush_retire(w, q, ch->nbatches);

    if (w->exiting) {
        return;
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

    ngx_http_ingest_flush_hand(w, q);
    ngx_http_ingest_flush_metrics(w);

    if (w->draining && ngx_http_ingest_flush_idle(w)) {
        ngx_http_ingest_drained(w);
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
     * While an older batch waits, the sums below ingest_flush_keys go
     * on adding up: Redis gets fewer, fuller batches when it is slow.
     */

    if (!ngx_queue_empty(&q->backlog)
        && ngx_http_ingest_queue_pending(q) < w->imcf->flush_keys
        && ngx_http_ingest_queue_bytes(q) < NGX_HTTP_INGEST_MAX_BATCH / 2
        && !w->draining && !w->exiting)
    {
        return;
    }

    if (ngx_http_ingest_flush_cut(w, q) != NGX_OK) {
        /* what is pending is kept whole; the timer tries again */
        if (!w->flush_timer.timer_set && !w->exiting) {
            ngx_add_timer(&w->flush_timer, w->imcf->flush_interval);
        }

        return;
    }

    q->due = 0;

    ngx_http_ingest_flush_metrics(w);
    ngx_http_ingest_flush_hand(w, q);
}


/* the oldest batch to the transport, unless it has it already */

static void
ngx_http_ingest_flush_hand(ngx_http_ingest_worker_t *w,
    ngx_http_ingest_queue_t *q)
{
    ngx_http_ingest_batch_t  *b;

    b = ngx_http_ingest_flush_oldest(q);

    if (b == NULL || q->channel.handed || w->exiting) {
        return;
    }

    q->channel.nbatches = ngx_http_ingest_flush_group(q, q->channel.batches,
                                                      q->channel.group_max);

    ngx_log_debug4(NGX_LOG_DEBUG_HTTP, w->log, 0,
                   "ingest batch seq:%uL keys:%ui of \"%V\" handed over, "
                   "%ui in all", b->seq, b->keys, &q->name,
                   q->channel.nbatches);

    w->transport->ops->send(w->transport, &q->channel);
}


/*
 * The oldest batches of q as one RPUSH's values, into group: at least
 * one, at most max (the transport's group_max) and, past the first,
 * NGX_HTTP_INGEST_PUSH_MAX_BYTES.  A backlog of small batches (Redis
 * slow or back from an outage, a drain at reload) then costs a round
 * trip per group, not per batch.  Their number.
 */

static ngx_uint_t
ngx_http_ingest_flush_group(ngx_http_ingest_queue_t *q, ngx_str_t *group,
    ngx_uint_t max)
{
    size_t                    bytes;
    ngx_uint_t                n;
    ngx_queue_t              *link;
    ngx_http_ingest_batch_t  *b;

    n = 0;
    bytes = 0;

    for (link = ngx_queue_head(&q->backlog);
         link != ngx_queue_sentinel(&q->backlog) && n < max;
         link = ngx_queue_next(link))
    {
        b = ngx_queue_data(link, ngx_http_ingest_batch_t, link);

        if (n && bytes + b->buf.len > NGX_HTTP_INGEST_PUSH_MAX_BYTES) {
            break;
        }

        group[n].data = (u_char *) b->buf.data;
        group[n].len = b->buf.len;
        bytes += b->buf.len;
        n++;
    }

    return n;
}


/* q's n oldest batches are in Redis */

static void
ngx_http_ingest_flush_retire(ngx_http_ingest_worker_t *w,
    ngx_http_ingest_queue_t *q, ngx_uint_t n)
{
    ngx_http_ingest_batch_t  *b;

    while (n-- && (b = ngx_http_ingest_flush_oldest(q)) != NULL) {
        ngx_log_debug4(NGX_LOG_DEBUG_HTTP, w->log, 0,
                       "ingest batch seq:%uL keys:%ui acked by \"%V\", "
                       "%ui more cut", b->seq, b->keys, &q->name,
                       q->nbatches - 1);

        ngx_http_ingest_flush_free(w, q, b);
    }
}


/* what the list holds becomes its newest batches, each the next seq */

static ngx_int_t
ngx_http_ingest_flush_cut(ngx_http_ingest_worker_t *w,
    ngx_http_ingest_queue_t *q)
{
    uint64_t    before;
    ngx_int_t   rc;
    ngx_uint_t  i;

    before = q->seq;
    rc = NGX_OK;

    if ((q->sums.nkeys || q->nkeyed)
        && ngx_http_ingest_flush_cut_counters(w, q) != NGX_OK)
    {
        rc = NGX_ERROR;
    }

    for (i = 0; rc == NGX_OK && i < q->nrow_sets; i++) {
        if (q->row_sets[i].nrows
            && ngx_http_ingest_flush_cut_records(w, q, &q->row_sets[i])
               != NGX_OK)
        {
            rc = NGX_ERROR;
        }
    }

    if (q->seq != before) {
        ngx_http_ingest_flush_retarget(q, before + 1,
                                       rc == NGX_OK ? q->seq : q->seq + 1);
    }

    return rc;
}


/* the batches of a cut join the list's backlog, each the next seq */

static void
ngx_http_ingest_flush_enqueue(ngx_http_ingest_worker_t *w,
    ngx_http_ingest_queue_t *q, ngx_queue_t *cut)
{
    ngx_queue_t              *l;
    ngx_http_ingest_batch_t  *b;

    while (!ngx_queue_empty(cut)) {
        l = ngx_queue_head(cut);
        ngx_queue_remove(l);

        b = ngx_queue_data(l, ngx_http_ingest_batch_t, link);
        b->seq = ++q->seq;

        ngx_queue_insert_tail(&q->backlog, &b->link);
        q->nbatches++;
        q->backlog_bytes += b->buf.len;

        ngx_log_debug4(NGX_LOG_DEBUG_HTTP, w->log, 0,
                       "ingest batch seq:%uL keys:%ui bytes:%uz cut for "
                       "\"%V\"", b->seq, b->keys, b->buf.len, &q->name);
    }
}


/*
 * One table's rows become records batches, each under
 * NGX_HTTP_INGEST_MAX_BATCH with its header (64 long column names take
 * some 5k): the rows ("[..],[..]", each under half of it) are cut where
 * one ends.  Made whole or not at all.
 */

static ngx_int_t
ngx_http_ingest_flush_cut_records(ngx_http_ingest_worker_t *w,
    ngx_http_ingest_queue_t *q, ngx_http_ingest_rows_t *t)
{
    char                     *p, *end, *start, *last;
    size_t                    room;
    uint64_t                  seq;
    ngx_uint_t                n;
    ngx_time_t               *tp;
    ngx_queue_t               cut;
    ingest_wire_buf_t         slice;
    ngx_http_ingest_batch_t  *b;

    ngx_queue_init(&cut);

    tp = ngx_timeofday();
    p = t->rows.data;
    end = p + t->rows.len;
    n = 0;

    while (p < end) {

        seq = q->seq + 1 + ngx_http_ingest_cut_n(&cut);

        b = ngx_calloc(sizeof(ngx_http_ingest_batch_t), w->log);

        if (b == NULL
            || ingest_wire_records_begin(&b->buf, w->producer, seq,
                                         (int64_t) tp->sec * 1000 + tp->msec,
                                         (const char *) t->conf->table.data,
                                         t->conf->record.nfields,
                                         t->conf->columns, t->conf->types)
               != INGEST_WIRE_OK)
        {
            goto nomem;
        }

        /* the rows that fit after the header: the last whole one */

        room = NGX_HTTP_INGEST_MAX_BATCH - 16 - b->buf.len;

        start = p;
        last = p;
        n = 0;

        while (p < end) {
            p = ngx_http_ingest_flush_value(p, end);

            if ((size_t) (p - start) > room && last > start) {
                break;
            }

            n++;
            last = p;

            if (p < end) {
                p++;                                /* the ',' */
            }
        }

        slice.data = start;
        slice.len = last - start;

        if (ingest_wire_records_end(&b->buf, &slice) != INGEST_WIRE_OK) {
            goto nomem;
        }

        b->keys = n;
        ngx_queue_insert_tail(&cut, &b->link);

        p = (last < end) ? last + 1 : end;
    }

    ngx_http_ingest_flush_enqueue(w, q, &cut);

    q->nrows -= t->nrows;
    q->rows_bytes -= t->rows.len;
    t->nrows = 0;
    t->rows.len = 0;
    t->rows.count = 0;

    return NGX_OK;

nomem:

    ngx_log_error(NGX_LOG_ALERT, w->log, 0,
                  "ingest cannot allocate a batch of %ui rows for \"%V\"",
                  t->nrows, &q->name);

    ngx_http_ingest_flush_drop(b);
    ngx_http_ingest_flush_uncut(&cut);

    return NGX_ERROR;
}


/*
 * Past the JSON array or object that begins at p: a row ([1,"a",null])
 * or a request ({"id":"k","counts":{"a":1}}), as the encoder wrote it.
 */

static char *
ngx_http_ingest_flush_value(char *p, char *end)
{
    ngx_uint_t  depth, in_string;

    depth = 0;
    in_string = 0;

    for ( /* void */ ; p < end; p++) {
        if (in_string) {
            if (*p == '\\') {
                p++;

            } else if (*p == '"') {
                in_string = 0;
            }

            continue;
        }

        switch (*p) {

        case '"':
            in_string = 1;
            break;

        case '[':
        case '{':
            depth++;
            break;

        case ']':
        case '}':
            if (--depth == 0) {
                return p + 1;
            }

            break;
        }
    }

    return end;
}


/*
 * The pending sums and Idempotency-Key requests become the newest
 * batches, each under NGX_HTTP_INGEST_MAX_BATCH: whole requests go first,
 * up to half a batch (version 2 only in a batch that has any), and the
 * sums fill the rest, and the next batches.  Made whole or not at all:
 * the sums are reset only then.
 */

static ngx_int_t
ngx_http_ingest_flush_cut_counters(ngx_http_ingest_worker_t *w,
    ngx_http_ingest_queue_t *q)
{
    int                       version;
    char                     *p, *end, *next;
    size_t                    i, len, room;
    ngx_uint_t                nreq;
    ngx_time_t               *tp;
    ngx_queue_t               cut;
    ingest_wire_buf_t         requests, bk;
    ngx_http_ingest_entry_t  *e;
    ngx_http_ingest_batch_t  *b;
    ngx_http_ingest_bucket_cursor_t  bc;

    ngx_queue_init(&cut);
    ngx_memzero(&bk, sizeof(ingest_wire_buf_t));
    ngx_memzero(&bc, sizeof(ngx_http_ingest_bucket_cursor_t));

    tp = ngx_timeofday();
    i = 0;
    p = q->keyed.data;
    end = p + q->keyed.len;

    /* version 3 wherever buckets may be, the requests' own included */
    version = (q->buckets.nkeys || q->keyed_buckets)
              ? INGEST_WIRE_VERSION : 0;

    do {
        b = NULL;

        /* the requests that fit half a batch (each one does) */

        ngx_memzero(&requests, sizeof(ingest_wire_buf_t));
        requests.data = p;
        nreq = 0;

        while (p < end) {
            next = ngx_http_ingest_flush_value(p, end);

            if ((size_t) (next - requests.data) > NGX_HTTP_INGEST_MAX_BATCH / 2
                && nreq)
            {
                break;
            }

            nreq++;
            requests.len = next - requests.data;
            p = (next < end) ? next + 1 : end;      /* past the ',' */
        }

        room = NGX_HTTP_INGEST_MAX_BATCH - 4096 - requests.len;

        b = ngx_calloc(sizeof(ngx_http_ingest_batch_t), w->log);
        if (b == NULL) {
            goto nomem;
        }

        if (ingest_wire_counters_begin(&b->buf,
                                       version ? version
                                       : nreq ? INGEST_WIRE_VERSION_REQUESTS
                                              : INGEST_WIRE_VERSION_PLAIN,
                                       w->producer,
                                       q->seq + 1 + ngx_http_ingest_cut_n(&cut),
                                       (int64_t) tp->sec * 1000 + tp->msec)
            != INGEST_WIRE_OK)
        {
            goto nomem;
        }

        for ( /* void */ ; i <= q->sums.mask; i++) {
            e = &q->sums.slots[i];

            if (e->hash == 0) {
                continue;
            }

            len = b->buf.len;

            if (ingest_wire_counters_add(&b->buf, e->key, e->len, e->value)
                != INGEST_WIRE_OK)
            {
                goto nomem;
            }

            if (b->buf.len > room && (b->buf.count > 1 || nreq)) {
                /* the next batch's first count */
                b->buf.len = len;
                b->buf.count--;
                break;
            }

            b->keys++;
        }

        /* the buckets, once the sums are all in, in the room left */

        bk.len = 0;

        if (i > q->sums.mask
            && ngx_http_ingest_flush_cut_buckets(w, q, &bc, &bk,
                                                 room - b->buf.len,
                                                 b->buf.count == 0 && !nreq)
               != NGX_OK)
        {
            goto nomem;
        }

        if (ingest_wire_counters_end_buckets(&b->buf, bk.len ? &bk : NULL,
                                             nreq ? &requests : NULL)
            != INGEST_WIRE_OK)
        {
            goto nomem;
        }

        b->keys += nreq;

        ngx_queue_insert_tail(&cut, &b->link);

    } while (i <= q->sums.mask || p < end || !bc.done);

    ngx_http_ingest_flush_enqueue(w, q, &cut);

    q->keyed.len = 0;
    q->keyed.count = 0;
    q->nkeyed = 0;
    q->keyed_buckets = 0;

    ngx_http_ingest_table_reset(&q->sums);
    ngx_http_ingest_table_reset(&q->buckets);
    ingest_wire_buf_free(&bk);

    return NGX_OK;

nomem:

    ngx_log_error(NGX_LOG_ALERT, w->log, 0,
                  "ingest cannot allocate a batch of %uz keys for \"%V\"",
                  q->sums.nkeys, &q->name);

    ngx_http_ingest_flush_drop(b);
    ngx_http_ingest_flush_uncut(&cut);
    ingest_wire_buf_free(&bk);

    return NGX_ERROR;
}


/*
 * The pending buckets of q into bk, one element ([resolutions, step's
 * start, {..}]) per bucket set and step, from where the cursor stands,
 * while they fit room (at least one count when first: a batch holds
 * something).  The (set, step) pairs are found first, by a pass over the
 * table: they are few (a cut spans a step or two); past
 * NGX_HTTP_INGEST_BUCKET_GROUPS, the rest go a count per element.
 */

static ngx_int_t
ngx_http_ingest_flush_cut_buckets(ngx_http_ingest_worker_t *w,
    ngx_http_ingest_queue_t *q, ngx_http_ingest_bucket_cursor_t *bc,
    ingest_wire_buf_t *bk, size_t room, ngx_uint_t first)
{
    size_t                         need, i;
    int64_t                        start;
    uint64_t                       raw;
    ngx_uint_t                     g, open, n, set;
    ngx_http_ingest_entry_t       *e;
    ngx_http_ingest_bucket_set_t  *sets;

    sets = w->imcf->bucket_sets.elts;

    /* a (set, step) pair is compared as its key's first 9 bytes */

    if (!bc->grouped) {
        bc->grouped = 1;
        bc->ngroups = 0;
        bc->overflow = 0;

        for (i = 0; i <= q->buckets.mask; i++) {
            e = &q->buckets.slots[i];

            if (e->hash == 0) {
                continue;
            }

            g = ngx_http_ingest_flush_group_of(bc, e, &raw);

            if (g == bc->ngroups) {
                if (bc->ngroups == NGX_HTTP_INGEST_BUCKET_GROUPS) {
                    bc->overflow = 1;
                    continue;
                }

                bc->groups[bc->ngroups].raw = raw;
                bc->groups[bc->ngroups].set = e->key[0];
                bc->ngroups++;
            }
        }

        /* a last pass, for what did not get a group of its own */
        bc->npasses = bc->ngroups + bc->overflow;
    }

    n = 0;

    for ( /* void */ ; bc->pass < bc->npasses; bc->pass++, bc->slot = 0) {
        open = 0;

        for ( /* void */ ; bc->slot <= q->buckets.mask; bc->slot++) {
            e = &q->buckets.slots[bc->slot];

            if (e->hash == 0) {
                continue;
            }

            /* this pass's group; the last pass: what no group holds */

            g = ngx_http_ingest_flush_group_of(bc, e, &raw);

            if (g != (bc->pass < bc->ngroups ? bc->pass : bc->ngroups)) {
                continue;
            }

            /*
             * What this count may take, its element's opening and closing
             * too, escapes at their worst: past the room, the element
             * closes here and the count opens the next batch's.
             */

            need = (open && bc->pass < bc->ngroups ? 0 : 120)
                   + (e->len - NGX_HTTP_INGEST_BUCKET_PREFIX) * 6 + 26;

            if (bk->len + need > room && (n || !first)) {
                if (open && ingest_wire_bucket_end(bk) != INGEST_WIRE_OK) {
                    return NGX_ERROR;
                }

                return NGX_OK;
            }

            if (!open || bc->pass >= bc->ngroups) {
                ngx_http_ingest_bucket_of(e->key, &set, &start);

                if ((open && ingest_wire_bucket_end(bk) != INGEST_WIRE_OK)
                    || ingest_wire_bucket_begin(bk, sets[set].resolutions,
                                                sets[set].n, start)
                       != INGEST_WIRE_OK)
                {
                    return NGX_ERROR;
                }
            }

            open = 1;

            if (ingest_wire_counters_add(bk,
                                         e->key + NGX_HTTP_INGEST_BUCKET_PREFIX,
                                         e->len - NGX_HTTP_INGEST_BUCKET_PREFIX,
                                         e->value)
                != INGEST_WIRE_OK)
            {
                return NGX_ERROR;
            }

            n++;
        }

        if (open && ingest_wire_bucket_end(bk) != INGEST_WIRE_OK) {
            return NGX_ERROR;
        }
    }

    bc->done = 1;

    return NGX_OK;
}


/* the group of e's (set, step), its key's first 9 bytes: ngroups if none */

static ngx_uint_t
ngx_http_ingest_flush_group_of(ngx_http_ingest_bucket_cursor_t *bc,
    ngx_http_ingest_entry_t *e, uint64_t *raw)
{
    ngx_uint_t  g;

    ngx_memcpy(raw, e->key + 1, 8);

    for (g = 0; g < bc->ngroups; g++) {
        if (bc->groups[g].raw == *raw && bc->groups[g].set == e->key[0]) {
            break;
        }
    }

    return g;
}


/* how many batches a cut has made so far */

static ngx_uint_t
ngx_http_ingest_cut_n(ngx_queue_t *cut)
{
    ngx_uint_t    n;
    ngx_queue_t  *l;

    n = 0;

    for (l = ngx_queue_head(cut); l != ngx_queue_sentinel(cut);
         l = ngx_queue_next(l))
    {
        n++;
    }

    return n;
}


static void
ngx_http_ingest_flush_drop(ngx_http_ingest_batch_t *b)
{
    if (b != NULL) {
        ingest_wire_buf_free(&b->buf);
        ngx_free(b);
    }
}


/* a cut that failed: the batches it made go, nothing was taken */

static void
ngx_http_ingest_flush_uncut(ngx_queue_t *cut)
{
    ngx_queue_t  *l;

    while (!ngx_queue_empty(cut)) {
        l = ngx_queue_head(cut);
        ngx_queue_remove(l);
        ngx_http_ingest_flush_drop(ngx_queue_data(l, ngx_http_ingest_batch_t,
                                                  link));
    }
}


static void
ngx_http_ingest_flush_free(ngx_http_ingest_worker_t *w,
    ngx_http_ingest_queue_t *q, ngx_http_ingest_batch_t *b)
{
    ngx_queue_remove(&b->link);
    q->nbatches--;
    q->backlog_bytes -= b->buf.len;

    ingest_wire_buf_free(&b->buf);
    ngx_free(b);

    if (w->full
        && ngx_http_ingest_flush_pending(w) < w->imcf->max_pending / 2)
    {
        ngx_http_ingest_flush_unfull(w);
    }
}


/* the worker's pending keys and bytes, for the status zone */

static void
ngx_http_ingest_flush_metrics(ngx_http_ingest_worker_t *w)
{
    ngx_uint_t  i, keys;

    keys = 0;

    for (i = 0; i < w->nqueues; i++) {
        keys += ngx_http_ingest_queue_pending(&w->queues[i]);
    }

    ngx_http_ingest_metrics_pending(keys, ngx_http_ingest_flush_pending(w));
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

static void
ngx_http_ingest_drain(ngx_http_ingest_worker_t *w)
{
    ngx_uint_t  i;

    if (w->draining || w->exiting) {
        return;
    }

    w->draining = 1;

    if (w->flush_timer.timer_set) {
        ngx_del_timer(&w->flush_timer);
    }

    /* the next nginx's worker 0 replays the spool from now on */
    ngx_http_ingest_replay_stop();

    if (ngx_http_ingest_flush_idle(w)) {
        ngx_http_ingest_drained(w);
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
    w->transport->ops->close(w->transport, 0);
}


/* all delivered: the connections close once their replies are in */

static void
ngx_http_ingest_drained(ngx_http_ingest_worker_t *w)
{
    if (w->drain_timer.timer_set) {
        ngx_del_timer(&w->drain_timer);
    }

    ngx_log_error(NGX_LOG_INFO, w->log, 0, "ingest drained");

    w->exiting = 1;
    w->transport->ops->close(w->transport, 1);
}


/*
 * exit_process: the event loop is gone.  Whatever is not in Redis yet
 * goes there now over a blocking connection with short timeouts, oldest
 * batch first and several to an RPUSH (a resend keeps its seq: a
 * duplicate is skipped), then the rest as the next seq.  What Redis
 * cannot take goes to the spool, in the same order, when there is one.
 */

void
ngx_http_ingest_flush_exit(void)
{
    ngx_uint_t                 i, j;
    ngx_http_ingest_worker_t  *w;

    w = ngx_http_ingest_worker;

    if (w == NULL) {
        return;
    }

    w->exiting = 1;

    if (w->flush_timer.timer_set) {
        ngx_del_timer(&w->flush_timer);
    }

    if (w->commit.posted) {
        ngx_delete_posted_event(&w->commit);
    }

    if (w->drain_timer.timer_set) {
        ngx_del_timer(&w->drain_timer);
    }

    w->transport->ops->close(w->transport, 0);

    for (i = 0; i < w->nqueues; i++) {
        if (ngx_http_ingest_channel_cancel(&w->queues[i].channel)) {
            /* in Redis: their delivery was not handled yet, but they are */
            ngx_http_ingest_flush_retire(w, &w->queues[i],
                                         w->queues[i].channel.nbatches);
        }
    }

    if (!ngx_http_ingest_flush_idle(w)) {
        ngx_http_ingest_flush_sync(w);
    }

    for (i = 0; i < w->nqueues; i++) {
        while (w->queues[i].nbatches) {
            ngx_http_ingest_flush_free(w, &w->queues[i],
                                 ngx_http_ingest_flush_oldest(&w->queues[i]));
        }

        ngx_http_ingest_table_free(&w->queues[i].sums);
        ngx_http_ingest_table_free(&w->queues[i].buckets);
        ingest_wire_buf_free(&w->queues[i].keyed);

        for (j = 0; j < w->queues[i].nrow_sets; j++) {
            ingest_wire_buf_free(&w->queues[i].row_sets[j].rows);
        }
    }

    if (w->watcher != NULL) {
        /* it never had a socket: nothing to close */
        w->watcher->fd = 0;
        ngx_free_connection(w->watcher);
        w->watcher->fd = (ngx_socket_t) -1;
        w->watcher = NULL;
    }

    ngx_http_ingest_worker = NULL;
}


static void
ngx_http_ingest_flush_sync(ngx_http_ingest_worker_t *w)
{
    uint64_t                       first, last;
    ngx_str_t                      group[NGX_HTTP_INGEST_PUSH_MAX_BATCHES];
    ngx_uint_t                     i, k, spooled, lost, unspooled, stop, late,
                                   flushed, max;
    ngx_msec_t                     deadline;
    ngx_http_ingest_push_t         p;
    ngx_http_ingest_sync_t         s;
    ngx_http_ingest_batch_t       *b;
    ngx_http_ingest_queue_t       *q;
    ngx_http_ingest_transport_t   *t;
    ngx_http_ingest_spool_file_t   f;

    t = w->transport;

    ngx_memzero(&s, sizeof(ngx_http_ingest_sync_t));
    s.timeout = NGX_HTTP_INGEST_EXIT_TIMEOUT;

    ngx_memzero(&p, sizeof(ngx_http_ingest_push_t));

    ngx_time_update();
    deadline = ngx_current_msec + NGX_HTTP_INGEST_EXIT_BUDGET;
    late = 0;

    for (i = 0; i < w->nqueues; i++) {
        q = &w->queues[i];

        /*
         * What is still adding up last, under the next seq; what cannot be
         * made a batch (no memory) is lost, and said so.
         */

        if (ngx_http_ingest_queue_pending(q)
            && ngx_http_ingest_flush_cut(w, q) != NGX_OK)
        {
            ngx_log_error(NGX_LOG_ERR, w->log, 0,
                          "ingest lost %ui keys of \"%V\" at exit: their "
                          "batch cannot be allocated",
                          ngx_http_ingest_queue_pending(q), &q->name);
        }

        /*
         * Once a batch is not in Redis, none after it goes there: the
         * consumer would take the later one and skip this one as old
         * when the spool brings it.  The rest go to one spool file.
         */

        spooled = 0;
        lost = 0;
        unspooled = 0;
        stop = 0;
        f.fd = -1;
        f.failed = 0;

        max = q->channel.group_max;

        while ((b = ngx_http_ingest_flush_oldest(q)) != NULL) {
            first = b->seq;
            p.result = NGX_HTTP_INGEST_PUSH_LOST;
            p.list = q->name;
            p.batches = group;
            p.nbatches = ngx_http_ingest_flush_group(q, group, max);

            if (!stop && !late) {
                ngx_time_update();

                if ((ngx_msec_int_t) (ngx_current_msec - deadline) >= 0) {
                    late = 1;
                    ngx_snprintf(s.why, sizeof(s.why) - 1,
                                 "the exit's %d ms for Redis ran out%Z",
                                 NGX_HTTP_INGEST_EXIT_BUDGET);
                }
            }

            if (!stop && !late) {
                t->ops->send_sync(t, &s, &p);

                if (p.result != NGX_HTTP_INGEST_PUSH_DELIVERED
                    && p.nbatches > 1)
                {
                    /* it may be the group's size: half of it again */
                    max = p.nbatches / 2;
                    continue;
                }

                stop = (p.result != NGX_HTTP_INGEST_PUSH_DELIVERED);
            }

            if (p.result == NGX_HTTP_INGEST_PUSH_REFUSED) {
                ngx_log_error(NGX_LOG_ERR, w->log, 0,
                              "ingest redis RPUSH to \"%V\" failed at "
                              "exit: %*s", &q->name,
                              ngx_http_ingest_push_error(&p));

                ngx_cpystrn(s.why, (u_char *) "redis refused the batch",
                            sizeof(s.why));

            } else if (p.result == NGX_HTTP_INGEST_PUSH_UNSAFE) {
                ngx_snprintf(s.why, sizeof(s.why) - 1,
                             "it reached %L of %ui replicas in time%Z",
                             p.replicated, p.replicas);
            }

            flushed = 0;
            last = first;

            for (k = 0; k < p.nbatches; k++) {
                b = ngx_http_ingest_flush_oldest(q);

                if (p.result == NGX_HTTP_INGEST_PUSH_DELIVERED) {
                    flushed += b->keys;

                } else if (w->imcf->spool == NULL) {
                    lost += b->keys;

                } else if (ngx_http_ingest_flush_spool(w, q, &f, b,
                                                       &group[k])
                           == NGX_OK)
                {
                    spooled += b->keys;

                } else {
                    /* the disk is full, say: the file keeps what it holds */
                    unspooled += b->keys;

                    if (f.fd == -1) {
                        unspooled += spooled;
                        spooled = 0;
                    }
                }

                last = b->seq;
                ngx_http_ingest_flush_free(w, q, b);
            }

            if (p.result != NGX_HTTP_INGEST_PUSH_DELIVERED) {
                continue;
            }

            if (first == last) {
                ngx_log_error(NGX_LOG_INFO, w->log, 0,
                              "ingest flushed %ui keys to \"%V\" at exit "
                              "(batch seq %uL)", flushed, &q->name, first);

            } else {
                ngx_log_error(NGX_LOG_INFO, w->log, 0,
                              "ingest flushed %ui keys to \"%V\" at exit "
                              "(batches seq %uL to %uL)", flushed, &q->name,
                              first, last);
            }
        }

        if (f.fd != -1 && ngx_http_ingest_spool_close(&f, f.batches > 0)
                          != NGX_OK)
        {
            unspooled += spooled;
            spooled = 0;
        }

        if (spooled) {
            ngx_log_error(NGX_LOG_WARN, w->log, 0,
                          "ingest spooled %ui keys of \"%V\" at exit "
                          "(batches up to seq %uL): %s", spooled, &q->name,
                          q->seq, s.why);
        }

        if (lost) {
            ngx_log_error(NGX_LOG_ERR, w->log, 0,
                          "ingest lost %ui keys of \"%V\" at exit "
                          "(batches up to seq %uL): %s", lost, &q->name,
                          q->seq, s.why);
        }

        if (unspooled) {
            ngx_log_error(NGX_LOG_ERR, w->log, 0,
                          "ingest lost %ui keys of \"%V\" at exit "
                          "(batches up to seq %uL): the spool could not "
                          "take them", unspooled, &q->name, q->seq);
        }
    }

    t->ops->sync_end(t, &s);
}


/*
 * b goes to q's spool file at exit, opened with the first.  NGX_ERROR:
 * b is not in it, nor will the batches after b be (the file, while open,
 * keeps those before; the caller closes it).
 */

static ngx_int_t
ngx_http_ingest_flush_spool(ngx_http_ingest_worker_t *w,
    ngx_http_ingest_queue_t *q, ngx_http_ingest_spool_file_t *f,
    ngx_http_ingest_batch_t *b, ngx_str_t *batch)
{
    if (f->failed) {
        return NGX_ERROR;
    }

    if (f->fd == -1
        && ngx_http_ingest_spool_open(f, &w->imcf->spool->name, w->producer,
                                      &q->name, b->seq, w->log)
           != NGX_OK)
    {
        f->failed = 1;
        return NGX_ERROR;
    }

    if (ngx_http_ingest_spool_append(f, batch) != NGX_OK) {
        /* a full disk, say: the file keeps the batches before b */
        f->failed = 1;
        return NGX_ERROR;
    }

    return NGX_OK;
}
