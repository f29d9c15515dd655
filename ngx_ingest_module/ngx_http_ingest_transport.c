
/*
 * Copyright (C) ngx_ingest developers
 * SPDX-License-Identifier: BSD-2-Clause
 *
 * What the two transports share: the channels handed over and not yet
 * delivered, one push in flight per channel with a reply deadline of its
 * own, and the backoff before reconnecting or sending again.
 *
 * The push's outcome arrives inside hiredis; these functions then only
 * record it, cancel timers and post the layer above's event.
 */


#include "ngx_http_ingest_transport.h"
#include "ngx_http_ingest_metrics.h"


#define NGX_HTTP_INGEST_BACKOFF_MIN   100
#define NGX_HTTP_INGEST_BACKOFF_MAX   5000


static void ngx_http_ingest_transport_settle(ngx_http_ingest_channel_t *ch);
static void ngx_http_ingest_transport_done(ngx_event_t *ev);
static void ngx_http_ingest_transport_retry(ngx_event_t *ev);
static void ngx_http_ingest_transport_deadline(ngx_event_t *ev);


void
ngx_http_ingest_transport_init(ngx_http_ingest_transport_t *t)
{
    ngx_queue_init(&t->handed);

    t->retry.handler = ngx_http_ingest_transport_retry;
    t->retry.data = t->timer_data;
    t->retry.log = t->log;
    t->retry.cancelable = 1;
}


void
ngx_http_ingest_channel_init(ngx_http_ingest_transport_t *t,
    ngx_http_ingest_channel_t *ch)
{
    ch->transport = t;
    ch->push.data = ch;
    ch->group_max = NGX_HTTP_INGEST_PUSH_MAX_BATCHES;

    ch->deadline.handler = ngx_http_ingest_transport_deadline;
    ch->deadline.data = t->timer_data;
    ch->deadline.log = t->log;
    ch->deadline.cancelable = 1;

    ch->done.handler = ngx_http_ingest_transport_done;
    ch->done.data = ch;
    ch->done.log = t->log;
}


/*
 * ch's batch is the transport's until its delivery has been handled.
 * NGX_OK: push it now; NGX_DECLINED: it is on its way, or delivered and
 * not handled yet, or the transport is closing.
 */

ngx_int_t
ngx_http_ingest_transport_hand(ngx_http_ingest_transport_t *t,
    ngx_http_ingest_channel_t *ch)
{
    if (!ch->handed) {
        ch->handed = 1;
        ch->attempts = 0;
        ngx_queue_insert_tail(&t->handed, &ch->link);
    }

    if (ch->in_flight || ch->done.posted || t->closing) {
        return NGX_DECLINED;
    }

    /* after a failure, the oldest part of the group only */

    if (ch->nbatches > ch->group_max) {
        ch->nbatches = ch->group_max;
    }

    return NGX_OK;
}


/*
 * Exit: forget an outcome not handled yet.  1 if it was a delivery
 * (Redis has the batch).
 */

ngx_uint_t
ngx_http_ingest_channel_cancel(ngx_http_ingest_channel_t *ch)
{
    ngx_uint_t  delivered;

    if (!ch->done.posted) {
        return 0;
    }

    ngx_delete_posted_event(&ch->done);

    if (ch->handed) {
        ch->handed = 0;
        ngx_queue_remove(&ch->link);
    }

    delivered = !ch->refusal;
    ch->refusal = 0;

    return delivered;
}


/* the batch on its way over conn, its reply awaited for ack_timeout */

ngx_int_t
ngx_http_ingest_transport_push(ngx_http_ingest_transport_t *t,
    ngx_http_ingest_channel_t *ch, ngx_http_ingest_conn_t *conn,
    ngx_uint_t asking, ngx_uint_t replicas, ngx_http_ingest_push_done_pt done)
{
    ngx_http_ingest_push_t  *p;

    p = &ch->push;

    p->list = ch->name;
    p->batches = ch->batches;
    p->nbatches = ch->nbatches;
    p->asking = asking;
    p->replicas = replicas;
    p->wait = t->imcf->ack_timeout / 2;
    p->done = done;

    if (ngx_http_ingest_push(conn->ac, p) != NGX_OK) {
        /* the context is going away: sent again on the next */
        return NGX_ERROR;
    }

    ch->conn = conn;
    ch->in_flight = 1;
    ch->sent_at = ngx_current_msec;

    if (ch->attempts++) {
        ngx_http_ingest_stat_add(batches_retried, ch->nbatches);
    }

    ngx_add_timer(&ch->deadline, t->imcf->ack_timeout);

    ngx_log_debug4(NGX_LOG_DEBUG_HTTP, t->log, 0,
                   "ingest %ui batches, the first of %uz bytes, sent to "
                   "\"%V\" on \"%V\"", ch->nbatches, ch->batches[0].len,
                   &ch->name, &conn->name);

    return NGX_OK;
}


/*
 * Redis has ch's batch (inside hiredis): the layer above learns from a
 * posted event, and until then the batch stays handed over.
 */

void
ngx_http_ingest_transport_delivered(ngx_http_ingest_transport_t *t,
    ngx_http_ingest_channel_t *ch)
{
    ngx_http_ingest_transport_settle(ch);

    ch->group_max = ngx_min(2 * ch->group_max,
                            NGX_HTTP_INGEST_PUSH_MAX_BATCHES);
    t->backoff = 0;

    if (ch->failing) {
        ngx_log_error(NGX_LOG_NOTICE, t->log, 0,
                      "ingest redis RPUSH to \"%V\" goes through again, "
                      "after %ui failures", &ch->name, ch->failures);
        ch->failing = 0;
        ch->failures = 0;
    }

    ngx_http_ingest_metrics_flushed(ngx_current_msec - ch->sent_at,
                                    ch->nbatches);

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, t->log, 0,
                   "ingest %ui batches delivered to \"%V\" in %Mms",
                   ch->nbatches, &ch->name, ngx_current_msec - ch->sent_at);

    ngx_post_event(&ch->done, &ngx_posted_events);
}


/*
 * Redis answered ch's RPUSH with an error that is no refusal of the batch
 * (NOPERM for a list outside the user's keys, OOM, MISCONF ...): the batch
 * is kept and retried; said once, until an RPUSH of the list goes
 * through, since every retry would say it again (and other lists'
 * deliveries keep the retries frequent).
 */

void
ngx_http_ingest_transport_failed(ngx_http_ingest_transport_t *t,
    ngx_http_ingest_channel_t *ch, ngx_uint_t level)
{
    ch->failures++;

    if (ch->failing) {
        ngx_log_debug3(NGX_LOG_DEBUG_HTTP, t->log, 0,
                       "ingest redis RPUSH to \"%V\" failed again (%ui): "
                       "%*s", &ch->name, ch->failures,
                       ngx_http_ingest_push_error(&ch->push));
        return;
    }

    ch->failing = 1;

    ngx_log_error(level, t->log, 0,
                  "ingest redis RPUSH to \"%V\" failed: %*s, batch kept "
                  "for retry (said once until it goes through)", &ch->name,
                  ngx_http_ingest_push_error(&ch->push));
}


/*
 * Redis refused ch's batch (inside hiredis, its push returned): a channel
 * that takes refusals of the batch itself gets it back from a posted
 * event.  NGX_DECLINED: the transport keeps it, to send it again.
 */

ngx_int_t
ngx_http_ingest_transport_refused(ngx_http_ingest_transport_t *t,
    ngx_http_ingest_channel_t *ch)
{
    if (ch->refused == NULL || !ngx_http_ingest_push_refused_batch(&ch->push))
    {
        return NGX_DECLINED;
    }

    ch->refusal = 1;
    ngx_post_event(&ch->done, &ngx_posted_events);

    return NGX_OK;
}


/* the outcome handled, outside hiredis: the channel takes a new batch */

static void
ngx_http_ingest_transport_done(ngx_event_t *ev)
{
    ngx_http_ingest_channel_t  *ch = ev->data;

    if (ch->handed) {
        ch->handed = 0;
        ngx_queue_remove(&ch->link);
    }

    if (ch->refusal) {
        ch->refusal = 0;
        ch->refused(ch);
        return;
    }

    ch->delivered(ch);
}


/*
 * ch's push failed (no reply, a refusal, a redirection, too few
 * replicas): it stays handed, to be sent again, and the next push of
 * the channel carries at most half as many batches.
 */

void
ngx_http_ingest_transport_returned(ngx_http_ingest_transport_t *t,
    ngx_http_ingest_channel_t *ch)
{
    ngx_http_ingest_transport_settle(ch);

    ch->group_max = ngx_max(ch->nbatches / 2, 1);
}


/* no push in flight for ch any more */

static void
ngx_http_ingest_transport_settle(ngx_http_ingest_channel_t *ch)
{
    ch->in_flight = 0;
    ch->conn = NULL;

    if (ch->deadline.timer_set) {
        ngx_del_timer(&ch->deadline);
    }
}


/* every handed channel without a push in flight, pushed again */

void
ngx_http_ingest_transport_resend(ngx_http_ingest_transport_t *t)
{
    ngx_queue_t                *q;
    ngx_http_ingest_channel_t  *ch;

    for (q = ngx_queue_head(&t->handed);
         q != ngx_queue_sentinel(&t->handed);
         q = ngx_queue_next(q))
    {
        ch = ngx_queue_data(q, ngx_http_ingest_channel_t, link);

        if (!ch->in_flight && !ch->done.posted) {
            t->ops->send(t, ch);
        }
    }
}


/* reconnect, or resend what was refused, after a capped backoff */

void
ngx_http_ingest_transport_schedule(ngx_http_ingest_transport_t *t)
{
    ngx_msec_t  delay;

    if (t->closing || t->retry.timer_set) {
        return;
    }

    if (t->backoff == 0) {
        t->backoff = NGX_HTTP_INGEST_BACKOFF_MIN;
    }

    /* jitter, so that workers do not knock all at once */
    delay = t->backoff + ngx_random() % (t->backoff / 4 + 1);

    t->backoff = ngx_min(t->backoff * 2, NGX_HTTP_INGEST_BACKOFF_MAX);

    ngx_add_timer(&t->retry, delay);
}


void
ngx_http_ingest_transport_connected(ngx_http_ingest_transport_t *t,
    ngx_uint_t connected)
{
    t->connected = connected ? 1 : 0;
    ngx_http_ingest_metrics_connected(connected);
}


static void
ngx_http_ingest_transport_retry(ngx_event_t *ev)
{
    ngx_http_ingest_transport_t  *t;

    t = (ngx_http_ingest_transport_t *)
            ((u_char *) ev - offsetof(ngx_http_ingest_transport_t, retry));

    t->ops->connect(t);
}


/*
 * A reply that takes too long: the connection it is awaited on is
 * dropped (its other replies come back NULL) and the batch goes again.
 */

static void
ngx_http_ingest_transport_deadline(ngx_event_t *ev)
{
    ngx_http_ingest_conn_t     *conn;
    ngx_http_ingest_channel_t  *ch;

    ch = (ngx_http_ingest_channel_t *)
             ((u_char *) ev - offsetof(ngx_http_ingest_channel_t, deadline));

    conn = ch->conn;

    ngx_log_error(NGX_LOG_WARN, ev->log, 0,
                  "ingest %s \"%V\" reply timed out", conn->kind,
                  &conn->name);

    /* not a hiredis callback: freeing here is safe */
    ngx_http_ingest_conn_close(conn, "timed out");
}
