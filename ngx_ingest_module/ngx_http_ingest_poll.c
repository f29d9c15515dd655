
/*
 * Copyright (C) ngx_ingest developers
 * SPDX-License-Identifier: BSD-2-Clause
 *
 * LLEN <list>, GET <list>:heartbeat and LLEN <list>:dead (the batches its
 * consumer refused) for each list, each where its key lives (in a
 * cluster, on that key's master); the poll ends with the last reply.
 * The replies only write the zone; whoever waits for the poll learns of
 * its end through a posted event.
 */


#include "ngx_http_ingest_poll.h"
#include "ngx_http_ingest_metrics.h"


/* what a reply answers: list i's n is ASKED * i + one of these */
#define NGX_HTTP_INGEST_POLL_DEPTH       0
#define NGX_HTTP_INGEST_POLL_HEARTBEAT   1
#define NGX_HTTP_INGEST_POLL_DEAD        2
#define NGX_HTTP_INGEST_POLL_ASKED       3


typedef struct {
    ngx_http_ingest_transport_t  *transport;
    ngx_str_t                    *lists;
    ngx_uint_t                    nlists;
    ngx_log_t                    *log;
    ngx_event_t                   timer;       /* worker 0, every period */
    ngx_event_t                  *done;        /* posted at the end */
    ngx_uint_t                    pending;     /* replies to come */
    unsigned                      polling:1;
} ngx_http_ingest_poll_t;


static ngx_http_ingest_poll_t  *ngx_http_ingest_poller;


static void ngx_http_ingest_poll_handler(ngx_event_t *ev);
static void ngx_http_ingest_poll_send(ngx_http_ingest_poll_t *pl,
    const char *command, u_char *key, size_t len, ngx_uint_t n);
static void ngx_http_ingest_poll_reply(redisAsyncContext *ac, void *r,
    void *privdata);
static ngx_int_t ngx_http_ingest_heartbeat_field(u_char *p, u_char *last,
    const char *name, int64_t *value);


ngx_int_t
ngx_http_ingest_poll_init(ngx_cycle_t *cycle, ngx_http_ingest_transport_t *t)
{
    ngx_http_ingest_poll_t  *pl;

    if (ngx_http_ingest_stats == NULL) {
        return NGX_OK;
    }

    pl = ngx_pcalloc(cycle->pool, sizeof(ngx_http_ingest_poll_t));
    if (pl == NULL) {
        return NGX_ERROR;
    }

    pl->transport = t;
    pl->lists = t->imcf->queues.elts;
    pl->nlists = ngx_min(t->imcf->queues.nelts, NGX_HTTP_INGEST_MAX_QUEUES);
    pl->log = cycle->log;

    pl->timer.handler = ngx_http_ingest_poll_handler;
    pl->timer.data = t->timer_data;
    pl->timer.log = pl->log;
    pl->timer.cancelable = 1;

    ngx_http_ingest_poller = pl;

    if (ngx_process != NGX_PROCESS_WORKER || ngx_worker == 0) {
        ngx_add_timer(&pl->timer, 10);
    }

    return NGX_OK;
}


void
ngx_http_ingest_poll_exit(void)
{
    ngx_http_ingest_poll_t  *pl;

    pl = ngx_http_ingest_poller;

    if (pl == NULL) {
        return;
    }

    if (pl->timer.timer_set) {
        ngx_del_timer(&pl->timer);
    }

    ngx_http_ingest_poller = NULL;
}


static void
ngx_http_ingest_poll_handler(ngx_event_t *ev)
{
    ngx_http_ingest_poll_t  *pl;

    pl = ngx_http_ingest_poller;

    if (pl->transport->closing) {
        return;
    }

    (void) ngx_http_ingest_poll(NULL);

    ngx_add_timer(&pl->timer, NGX_HTTP_INGEST_POLL_PERIOD);
}


ngx_int_t
ngx_http_ingest_poll(ngx_event_t *done)
{
    u_char                        key[512], *p;
    ngx_uint_t                    i;
    ngx_http_ingest_poll_t       *pl;
    ngx_http_ingest_transport_t  *t;

    pl = ngx_http_ingest_poller;

    if (pl == NULL) {
        return NGX_DECLINED;
    }

    if (done != NULL) {
        pl->done = done;
    }

    if (pl->polling) {
        return NGX_OK;
    }

    t = pl->transport;

    if (!t->connected || t->closing) {
        return NGX_DECLINED;
    }

    pl->pending = 0;

    for (i = 0; i < pl->nlists; i++) {
        ngx_http_ingest_poll_send(pl, "LLEN", pl->lists[i].data,
                                  pl->lists[i].len,
                                  NGX_HTTP_INGEST_POLL_ASKED * i
                                  + NGX_HTTP_INGEST_POLL_DEPTH);

        p = t->ops->companion(t, key, sizeof(key), &pl->lists[i],
                              "heartbeat");

        ngx_http_ingest_poll_send(pl, "GET", key, p - key,
                                  NGX_HTTP_INGEST_POLL_ASKED * i
                                  + NGX_HTTP_INGEST_POLL_HEARTBEAT);

        p = t->ops->companion(t, key, sizeof(key), &pl->lists[i], "dead");

        ngx_http_ingest_poll_send(pl, "LLEN", key, p - key,
                                  NGX_HTTP_INGEST_POLL_ASKED * i
                                  + NGX_HTTP_INGEST_POLL_DEAD);
    }

    if (pl->pending == 0) {
        return NGX_DECLINED;
    }

    pl->polling = 1;

    return NGX_OK;
}


/* one command of the poll, where key lives; n says what its reply is */

static void
ngx_http_ingest_poll_send(ngx_http_ingest_poll_t *pl, const char *command,
    u_char *key, size_t len, ngx_uint_t n)
{
    const char         *argv[2];
    size_t              argvlen[2];
    redisAsyncContext  *ac;

    ac = pl->transport->ops->route(pl->transport, key, len);

    argv[0] = command;
    argvlen[0] = ngx_strlen(command);
    argv[1] = (const char *) key;
    argvlen[1] = len;

    if (ac != NULL
        && redisAsyncCommandArgv(ac, ngx_http_ingest_poll_reply,
                                 (void *) (uintptr_t) n, 2, argv, argvlen)
           == REDIS_OK)
    {
        pl->pending++;
    }
}


static void
ngx_http_ingest_poll_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    int64_t                        v;
    u_char                        *p, *last;
    ngx_uint_t                     n;
    redisReply                    *reply = r;
    ngx_http_ingest_poll_t        *pl;
    ngx_http_ingest_list_stats_t  *ls;

    n = (uintptr_t) privdata;
    pl = ngx_http_ingest_poller;

    /* the poll's last reply: whoever waits for it learns, not from here */

    if (pl != NULL && pl->pending && --pl->pending == 0) {
        pl->polling = 0;

        if (pl->done != NULL) {
            ngx_post_event(pl->done, &ngx_posted_events);
            pl->done = NULL;
        }
    }

    if (reply == NULL || ngx_http_ingest_stats == NULL) {
        return;
    }

    ls = &ngx_http_ingest_stats->queues[n / NGX_HTTP_INGEST_POLL_ASKED];

    switch (n % NGX_HTTP_INGEST_POLL_ASKED) {

    case NGX_HTTP_INGEST_POLL_DEPTH:
        if (reply->type == REDIS_REPLY_INTEGER) {
            ls->depth = (ngx_atomic_uint_t) reply->integer;
            ls->polled_at = ngx_current_msec;
        }

        return;

    case NGX_HTTP_INGEST_POLL_DEAD:
        if (reply->type == REDIS_REPLY_INTEGER) {
            ls->dead = (ngx_atomic_uint_t) reply->integer;
        }

        return;
    }

    if (reply->type != REDIS_REPLY_STRING) {
        return;
    }

    /*
     * {"ts":..,"batches":..,"rows":..,"bucket_rows":..,"last_commit":..,
     * "lag_ms":..}
     */

    p = (u_char *) reply->str;
    last = p + reply->len;

    if (ngx_http_ingest_heartbeat_field(p, last, "ts", &v) == NGX_OK) {
        ls->hb_ts = (ngx_atomic_uint_t) v;
    }

    if (ngx_http_ingest_heartbeat_field(p, last, "batches", &v) == NGX_OK) {
        ls->hb_batches = (ngx_atomic_uint_t) v;
    }

    if (ngx_http_ingest_heartbeat_field(p, last, "rows", &v) == NGX_OK) {
        ls->hb_rows = (ngx_atomic_uint_t) v;
    }

    /* a consumer older than buckets says nothing of them: 0 */
    ls->hb_bucket_rows =
        (ngx_http_ingest_heartbeat_field(p, last, "bucket_rows", &v)
         == NGX_OK)
        ? (ngx_atomic_uint_t) v : 0;

    if (ngx_http_ingest_heartbeat_field(p, last, "last_commit", &v)
        == NGX_OK)
    {
        ls->hb_commit = (ngx_atomic_uint_t) v;
    }

    if (ngx_http_ingest_heartbeat_field(p, last, "lag_ms", &v) == NGX_OK) {
        ls->hb_lag_ms = (ngx_atomic_uint_t) v;
    }
}


static ngx_int_t
ngx_http_ingest_heartbeat_field(u_char *p, u_char *last, const char *name,
    int64_t *value)
{
    size_t   len;
    int64_t  v;

    len = ngx_strlen(name);

    for ( /* void */ ; p + len + 3 < last; p++) {
        if (p[0] == '"' && ngx_strncmp(p + 1, name, len) == 0
            && p[len + 1] == '"' && p[len + 2] == ':')
        {
            p += len + 3;
            v = 0;

            if (p == last || *p < '0' || *p > '9') {
                return NGX_ERROR;
            }

            while (p < last && *p >= '0' && *p <= '9' && v < INT64_MAX / 10)
            {
                v = v * 10 + (*p++ - '0');
            }

            *value = v;
            return NGX_OK;
        }
    }

    return NGX_ERROR;
}
