
/*
 * Copyright (C) ngx_ingest developers
 * SPDX-License-Identifier: BSD-2-Clause
 *
 * The standalone transport: one connection to one Redis server (a host
 * and port, or a unix socket), on nginx's loop.
 *
 * - A batch goes only on a connection that is up: logged in, and its
 *   PING answered (a batch queued behind a refused login would run as
 *   whatever user Redis left the connection with).
 * - A refused RPUSH (OOM, LOADING, READONLY, MISCONF ...) keeps its
 *   batch, which goes again after the backoff (the spool's channel takes
 *   back one refused for what it is); a lost connection is
 *   opened again after the backoff, and what it carried goes again with
 *   the same bytes.
 */


#include "ngx_http_ingest_transport.h"
#include "ngx_http_ingest_metrics.h"


typedef struct {
    ngx_http_ingest_conn_t    conn;
} ngx_http_ingest_redis_t;


static void ngx_http_ingest_redis_changed(ngx_event_t *ev);
static void ngx_http_ingest_redis_pushed(ngx_http_ingest_push_t *p);


static ngx_int_t
ngx_http_ingest_redis_init(ngx_http_ingest_transport_t *t, ngx_pool_t *pool)
{
    ngx_http_ingest_redis_t  *rs;

    rs = ngx_pcalloc(pool, sizeof(ngx_http_ingest_redis_t));
    if (rs == NULL) {
        return NGX_ERROR;
    }

    rs->conn.kind = "redis";
    rs->conn.name = t->imcf->redis;
    rs->conn.host = t->imcf->redis_host;
    rs->conn.port = t->imcf->redis_port;
    rs->conn.connect_timeout = t->imcf->connect_timeout;
    rs->conn.auth = &t->imcf->auth;
    rs->conn.log = t->log;
    rs->conn.changed.handler = ngx_http_ingest_redis_changed;
    rs->conn.changed.data = t;

    ngx_http_ingest_conn_init(&rs->conn, t->timer_data);

    t->state = rs;

    return NGX_OK;
}


/* (re)open the connection if need be, and send what waits on it */

static void
ngx_http_ingest_redis_connect(ngx_http_ingest_transport_t *t)
{
    ngx_http_ingest_redis_t  *rs = t->state;

    if (t->closing) {
        return;
    }

    if (ngx_http_ingest_conn_open(&rs->conn) != NGX_OK) {
        /* its "changed" event brings the backoff */
        return;
    }

    ngx_http_ingest_transport_resend(t);
}


static void
ngx_http_ingest_redis_send(ngx_http_ingest_transport_t *t,
    ngx_http_ingest_channel_t *ch)
{
    ngx_http_ingest_redis_t  *rs = t->state;

    if (ngx_http_ingest_transport_hand(t, ch) != NGX_OK
        || !rs->conn.connected)
    {
        /* it goes once the connection is up ("changed") */
        return;
    }

    (void) ngx_http_ingest_transport_push(t, ch, &rs->conn, 0, 0,
                                          ngx_http_ingest_redis_pushed);
}


/* the outcome of a push, inside hiredis */

static void
ngx_http_ingest_redis_pushed(ngx_http_ingest_push_t *p)
{
    ngx_http_ingest_channel_t    *ch = p->data;
    ngx_http_ingest_transport_t  *t = ch->transport;

    if (p->result == NGX_HTTP_INGEST_PUSH_DELIVERED) {
        ngx_http_ingest_transport_delivered(t, ch);
        return;
    }

    ngx_http_ingest_transport_returned(t, ch);

    if (p->result == NGX_HTTP_INGEST_PUSH_LOST) {
        /* the connection is going: its loss brings the retry */
        return;
    }

    ngx_http_ingest_stat_add(batches_failed, ch->nbatches);

    if (ngx_http_ingest_transport_refused(t, ch) == NGX_OK) {
        /* the channel takes it back and says so */
        return;
    }

    ngx_http_ingest_transport_failed(t, ch, NGX_LOG_ERR);

    ngx_http_ingest_transport_schedule(t);
}


/* the connection came or went (a posted event) */

static void
ngx_http_ingest_redis_changed(ngx_event_t *ev)
{
    ngx_http_ingest_transport_t  *t = ev->data;
    ngx_http_ingest_redis_t      *rs = t->state;

    ngx_http_ingest_transport_connected(t, rs->conn.connected);

    if (!rs->conn.connected) {
        ngx_http_ingest_transport_schedule(t);
        return;
    }

    /* what was handed while connecting goes now */
    ngx_http_ingest_transport_resend(t);
}


static redisAsyncContext *
ngx_http_ingest_redis_route(ngx_http_ingest_transport_t *t,
    const u_char *key, size_t len)
{
    ngx_http_ingest_redis_t  *rs = t->state;

    return rs->conn.connected ? rs->conn.ac : NULL;
}


static u_char *
ngx_http_ingest_redis_companion(ngx_http_ingest_transport_t *t, u_char *buf,
    size_t size, ngx_str_t *list, const char *suffix)
{
    return ngx_snprintf(buf, size, "%V:%s", list, suffix);
}


static void
ngx_http_ingest_redis_send_sync(ngx_http_ingest_transport_t *t,
    ngx_http_ingest_sync_t *s, ngx_http_ingest_push_t *p)
{
    redisContext             *rc;
    struct timeval            tv;
    ngx_http_ingest_redis_t  *rs = t->state;

    p->result = NGX_HTTP_INGEST_PUSH_LOST;
    p->asking = 0;
    p->replicas = 0;

    if (s->failed[0]) {
        return;
    }

    rc = s->conns[0];

    if (rc == NULL) {
        tv.tv_sec = s->timeout / 1000;
        tv.tv_usec = (s->timeout % 1000) * 1000;

        if (rs->conn.port) {
            rc = redisConnectWithTimeout((char *) rs->conn.host,
                                         rs->conn.port, tv);

        } else {
            rc = redisConnectUnixWithTimeout((char *) rs->conn.host, tv);
        }

        if (rc == NULL || rc->err || redisSetTimeout(rc, tv) != REDIS_OK) {
            ngx_cpystrn(s->why, (u_char *) (rc == NULL ? "out of memory"
                                            : rc->err ? rc->errstr
                                            : "cannot set timeout"),
                        sizeof(s->why));
            s->failed[0] = 1;

            if (rc != NULL) {
                redisFree(rc);
            }

            return;
        }

        if (ngx_http_ingest_conn_sync_login(rc, &t->imcf->auth, s->why,
                                            sizeof(s->why))
            != NGX_OK)
        {
            s->failed[0] = 1;
            redisFree(rc);
            return;
        }

        s->conns[0] = rc;
    }

    ngx_http_ingest_push_sync(rc, p);

    if (p->result == NGX_HTTP_INGEST_PUSH_LOST) {
        ngx_cpystrn(s->why, (u_char *) rc->errstr, sizeof(s->why));
        s->failed[0] = 1;
        redisFree(rc);
        s->conns[0] = NULL;
    }
}


static void
ngx_http_ingest_redis_sync_end(ngx_http_ingest_transport_t *t,
    ngx_http_ingest_sync_t *s)
{
    if (s->conns[0] != NULL) {
        redisFree(s->conns[0]);
        s->conns[0] = NULL;
    }
}


static void
ngx_http_ingest_redis_close(ngx_http_ingest_transport_t *t,
    ngx_uint_t graceful)
{
    ngx_http_ingest_redis_t  *rs = t->state;

    t->closing = 1;

    if (t->retry.timer_set) {
        ngx_del_timer(&t->retry);
    }

    if (graceful) {
        ngx_http_ingest_conn_disconnect(&rs->conn);

    } else {
        ngx_http_ingest_conn_close(&rs->conn, NULL);
    }

    if (rs->conn.changed.posted) {
        ngx_delete_posted_event(&rs->conn.changed);
    }

    ngx_http_ingest_transport_connected(t, 0);
}


/* the operations; each is defined above */

const ngx_http_ingest_transport_ops_t  ngx_http_ingest_redis_transport = {
    "redis",
    ngx_http_ingest_redis_init,
    ngx_http_ingest_redis_connect,
    ngx_http_ingest_redis_send,
    ngx_http_ingest_redis_route,
    ngx_http_ingest_redis_companion,
    ngx_http_ingest_redis_send_sync,
    ngx_http_ingest_redis_sync_end,
    ngx_http_ingest_redis_close
};
