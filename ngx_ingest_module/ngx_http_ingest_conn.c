
/*
 * Copyright (C) ngx_ingest developers
 * SPDX-License-Identifier: BSD-2-Clause
 *
 * hiredis's connect and disconnect callbacks run inside hiredis: they
 * only note the new state, log it and post the owner's event.  A context
 * is freed only by ngx_http_ingest_conn_close(), from a timer or a
 * posted event.
 *
 * The login (AUTH, SELECT) is queued as soon as the context exists, so
 * that it goes before any command an owner queues while connecting; a
 * refused login is logged once, at error, until a login succeeds.
 */


#include "ngx_http_ingest_conn.h"
#include "ngx_http_ingest_metrics.h"


static void ngx_http_ingest_conn_connected(const redisAsyncContext *ac,
    int status);
static void ngx_http_ingest_conn_disconnected(const redisAsyncContext *ac,
    int status);
static ngx_int_t ngx_http_ingest_conn_login(ngx_http_ingest_conn_t *c);
static void ngx_http_ingest_conn_ready(redisAsyncContext *ac, void *r,
    void *privdata);
static ngx_uint_t ngx_http_ingest_conn_denial(const char *error);
static void ngx_http_ingest_conn_said(u_char *dst, size_t size,
    ngx_http_ingest_auth_t *auth, const char *str, size_t len);
static ngx_uint_t ngx_http_ingest_conn_sync_failed(redisContext *rc,
    redisReply *reply, ngx_http_ingest_auth_t *auth, u_char *said,
    size_t size);
static void ngx_http_ingest_conn_refused(ngx_event_t *ev);
static void ngx_http_ingest_conn_closed(ngx_http_ingest_adapter_t *a);
static void ngx_http_ingest_conn_lost(ngx_http_ingest_conn_t *c,
    const char *why);
static void ngx_http_ingest_conn_timeout(ngx_event_t *ev);


void
ngx_http_ingest_conn_init(ngx_http_ingest_conn_t *c, void *timer_data)
{
    c->connect_timer.handler = ngx_http_ingest_conn_timeout;
    c->connect_timer.data = timer_data;
    c->connect_timer.log = c->log;
    c->connect_timer.cancelable = 1;

    c->changed.log = c->log;

    c->refused.handler = ngx_http_ingest_conn_refused;
    c->refused.data = c;
    c->refused.log = c->log;

    c->adapter.closed = ngx_http_ingest_conn_closed;
    c->adapter.data = c;
}


ngx_int_t
ngx_http_ingest_conn_open(ngx_http_ingest_conn_t *c)
{
    redisAsyncContext  *ac;

    if (c->ac != NULL) {
        return NGX_OK;
    }

    c->quiet = 0;

    if (c->port) {
        ac = redisAsyncConnect((char *) c->host, c->port);

    } else {
        ac = redisAsyncConnectUnix((char *) c->host);
    }

    if (ac == NULL) {
        ngx_http_ingest_conn_lost(c, "out of memory");
        return NGX_ERROR;
    }

    if (ac->err) {
        /* failed at once (e.g. no such unix socket): hiredis closed it */
        ngx_http_ingest_conn_lost(c, ac->errstr);
        redisAsyncFree(ac);
        return NGX_ERROR;
    }

    ac->data = c;

    if (ngx_http_ingest_adapter_attach(&c->adapter, ac, c->log) != NGX_OK) {
        redisAsyncFree(ac);
        ngx_http_ingest_conn_lost(c, "no free connection");
        return NGX_ERROR;
    }

    c->ac = ac;

    /* the hooks first, the callbacks last: this asks for a write event */

    redisAsyncSetConnectCallback(ac, ngx_http_ingest_conn_connected);
    redisAsyncSetDisconnectCallback(ac, ngx_http_ingest_conn_disconnected);

    if (ngx_http_ingest_conn_login(c) != NGX_OK) {
        ngx_http_ingest_conn_close(c, "cannot queue the login");
        return NGX_ERROR;
    }

    ngx_add_timer(&c->connect_timer, c->connect_timeout);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "ingest redis \"%V\" connecting, fd:%d", &c->name,
                   ac->c.fd);

    return NGX_OK;
}


void
ngx_http_ingest_conn_close(ngx_http_ingest_conn_t *c, const char *why)
{
    if (c->refused.posted) {
        ngx_delete_posted_event(&c->refused);
    }

    if (why != NULL) {
        ngx_http_ingest_conn_lost(c, why);

    } else {
        c->quiet = 1;
        c->connected = 0;
    }

    if (c->ac != NULL) {
        /* pending replies are called back with NULL */
        redisAsyncFree(c->ac);
    }
}


void
ngx_http_ingest_conn_disconnect(ngx_http_ingest_conn_t *c)
{
    if (c->ac == NULL) {
        return;
    }

    c->quiet = 1;
    redisAsyncDisconnect(c->ac);
}


static void
ngx_http_ingest_conn_connected(const redisAsyncContext *ac, int status)
{
    ngx_http_ingest_conn_t  *c = ac->data;

    if (status != REDIS_OK) {
        /* hiredis frees the context after this returns */
        ngx_http_ingest_conn_lost(c, ac->errstr);
        return;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "ingest redis \"%V\" connected, asking", &c->name);

    /*
     * The TCP connection is not a Redis that works: a server that
     * accepts and closes (max clients, protected mode, a proxy) or that
     * answers with errors is not.  The connect deadline runs until the
     * first answer.
     */

    if (redisAsyncCommand((redisAsyncContext *) ac, ngx_http_ingest_conn_ready,
                          c, "PING")
        != REDIS_OK)
    {
        ngx_http_ingest_conn_lost(c, "cannot send PING");
    }
}


/* AUTH and SELECT, first in the queue; their answers go to "ready" */

static ngx_int_t
ngx_http_ingest_conn_login(ngx_http_ingest_conn_t *c)
{
    int                      rc;
    ngx_http_ingest_auth_t  *auth = c->auth;

    if (auth == NULL) {
        return NGX_OK;
    }

    if (auth->password.len) {
        rc = auth->user.len
             ? redisAsyncCommand(c->ac, ngx_http_ingest_conn_ready, c,
                                 "AUTH %b %b", auth->user.data,
                                 auth->user.len, auth->password.data,
                                 auth->password.len)
             : redisAsyncCommand(c->ac, ngx_http_ingest_conn_ready, c,
                                 "AUTH %b", auth->password.data,
                                 auth->password.len);

        if (rc != REDIS_OK) {
            return NGX_ERROR;
        }
    }

    if (auth->db
        && redisAsyncCommand(c->ac, ngx_http_ingest_conn_ready, c,
                             "SELECT %d", (int) auth->db)
           != REDIS_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * The answers to the login and to the first command, PING (inside
 * hiredis): connected once PING has its answer, which Redis gives only
 * after the login's.
 */

static void
ngx_http_ingest_conn_ready(redisAsyncContext *ac, void *r, void *privdata)
{
    redisReply              *reply = r;
    ngx_http_ingest_conn_t  *c = privdata;

    if (reply == NULL) {
        /* the connection is going: its loss says why */
        return;
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        /*
         * WRONGPASS, LOADING, NOAUTH ...: dropped, from outside hiredis.
         * The first error says why (the PING after a refused AUTH only
         * echoes it).
         */

        if (!c->refused.posted) {
            ngx_http_ingest_conn_said(c->error, sizeof(c->error), c->auth,
                                      reply->str, reply->len);
            ngx_post_event(&c->refused, &ngx_posted_events);
        }

        return;
    }

    if (reply->type != REDIS_REPLY_STATUS
        || ngx_strcmp(reply->str, "PONG") != 0)
    {
        /* AUTH's or SELECT's OK */
        return;
    }

    if (c->refused.posted) {
        /*
         * A refused login leaves the connection logged in as Redis's
         * default user, if that one is on: not a connection to use.
         */
        return;
    }

    if (c->connect_timer.timer_set) {
        ngx_del_timer(&c->connect_timer);
    }

    c->connected = 1;

    if (c->denied) {
        c->denied = 0;
        ngx_http_ingest_metrics_denied(0);
    }

    if (c->down) {
        c->down = 0;
        ngx_http_ingest_stat_add(reconnects, 1);
        ngx_log_error(NGX_LOG_NOTICE, c->log, 0,
                      "ingest %s \"%V\" connection restored", c->kind,
                      &c->name);
    }

    ngx_post_event(&c->changed, &ngx_posted_events);
}


static void
ngx_http_ingest_conn_refused(ngx_event_t *ev)
{
    ngx_http_ingest_conn_t  *c = ev->data;

    u_char  user[NGX_HTTP_INGEST_USER_LEN];

    if (ngx_http_ingest_conn_denial((const char *) c->error)) {

        /* once per state: the credentials are wrong until someone acts */

        if (!c->denied) {
            c->denied = 1;
            ngx_http_ingest_metrics_denied(1);

            ngx_log_error(NGX_LOG_ERR, c->log, 0,
                          "ingest %s \"%V\" refuses the login of %s: %s",
                          c->kind, &c->name,
                          ngx_http_ingest_conn_user(user, sizeof(user),
                                                    c->auth),
                          c->error);
        }

        /* said already: not "lost" as well */
        c->down = 1;
    }

    ngx_http_ingest_conn_close(c, (const char *) c->error);
}


/*
 * An error reply as a log line may show it: a server that does not know
 * AUTH (renamed, or a proxy) echoes the command's arguments, the password
 * among them.  The echo is cut off, and a text that still holds the
 * password is reduced to its first word.
 */

static void
ngx_http_ingest_conn_said(u_char *dst, size_t size,
    ngx_http_ingest_auth_t *auth, const char *str, size_t len)
{
    u_char  *p, *end;

    end = (u_char *) str + len;

    p = ngx_strlcasestrn((u_char *) str, end, (u_char *) ", with args", 11 - 1);
    if (p != NULL) {
        end = p;
    }

    if (auth != NULL && auth->password.len
        && ngx_strlcasestrn((u_char *) str, end, auth->password.data,
                            auth->password.len - 1)
           != NULL)
    {
        for (p = (u_char *) str; p < end && *p != ' '; p++) { /* void */ }
        end = p;

        *ngx_snprintf(dst, size - 1, "%*s (the rest not shown: it holds "
                      "the password)", (size_t) (end - (u_char *) str), str)
            = '\0';
        return;
    }

    *ngx_snprintf(dst, size - 1, "%*s", (size_t) (end - (u_char *) str), str)
        = '\0';
}


/* an error about the credentials or the rights, not the server's state */

static ngx_uint_t
ngx_http_ingest_conn_denial(const char *error)
{
    return ngx_strncmp(error, "WRONGPASS", 9) == 0
           || ngx_strncmp(error, "NOAUTH", 6) == 0
           || ngx_strncmp(error, "NOPERM", 6) == 0
           || ngx_strncmp(error, "ERR invalid password", 20) == 0
           || ngx_strncmp(error, "ERR AUTH", 8) == 0;
}


/*
 * A blocking command's reply, freed: 1 if it failed, and then what the
 * error (or the lost connection) says, fit to log, in said
 */

static ngx_uint_t
ngx_http_ingest_conn_sync_failed(redisContext *rc, redisReply *reply,
    ngx_http_ingest_auth_t *auth, u_char *said, size_t size)
{
    ngx_uint_t  failed;

    failed = (reply == NULL || reply->type == REDIS_REPLY_ERROR);

    if (failed) {
        ngx_http_ingest_conn_said(said, size, auth,
                                  reply ? reply->str : rc->errstr,
                                  reply ? reply->len : ngx_strlen(rc->errstr));
    }

    if (reply != NULL) {
        freeReplyObject(reply);
    }

    return failed;
}


ngx_int_t
ngx_http_ingest_conn_sync_login(redisContext *rc,
    ngx_http_ingest_auth_t *auth, u_char *why, size_t size)
{
    u_char       user[NGX_HTTP_INGEST_USER_LEN], said[128];
    redisReply  *reply;

    if (auth == NULL) {
        return NGX_OK;
    }

    if (auth->password.len) {
        reply = auth->user.len
                ? redisCommand(rc, "AUTH %b %b", auth->user.data,
                               auth->user.len, auth->password.data,
                               auth->password.len)
                : redisCommand(rc, "AUTH %b", auth->password.data,
                               auth->password.len);

        if (ngx_http_ingest_conn_sync_failed(rc, reply, auth, said,
                                             sizeof(said)))
        {
            *ngx_snprintf(why, size - 1, "the login of %s was refused: %s",
                          ngx_http_ingest_conn_user(user, sizeof(user), auth),
                          said) = '\0';
            return NGX_ERROR;
        }
    }

    if (auth->db) {
        reply = redisCommand(rc, "SELECT %d", (int) auth->db);

        if (ngx_http_ingest_conn_sync_failed(rc, reply, auth, said,
                                             sizeof(said)))
        {
            *ngx_snprintf(why, size - 1, "SELECT %ui failed: %s", auth->db,
                          said) = '\0';
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


u_char *
ngx_http_ingest_conn_user(u_char *buf, size_t size,
    ngx_http_ingest_auth_t *auth)
{
    if (auth == NULL || auth->user.len == 0) {
        ngx_cpystrn(buf, (u_char *) "the default user", size);

    } else {
        /* a long name is cut, and the NUL always written */
        *ngx_snprintf(buf, size - 1, "user \"%V\"", &auth->user) = '\0';
    }

    return buf;
}


static void
ngx_http_ingest_conn_disconnected(const redisAsyncContext *ac, int status)
{
    ngx_http_ingest_conn_t  *c = ac->data;

    ngx_http_ingest_conn_lost(c, status == REDIS_OK ? "closed" : ac->errstr);
}


/* hiredis is done with the context: a new one may be opened */

static void
ngx_http_ingest_conn_closed(ngx_http_ingest_adapter_t *a)
{
    ngx_http_ingest_conn_t  *c = a->data;

    c->ac = NULL;
    c->connected = 0;

    if (c->connect_timer.timer_set) {
        ngx_del_timer(&c->connect_timer);
    }
}


/* gone or going: log once per loss (not a close on purpose), tell */

static void
ngx_http_ingest_conn_lost(ngx_http_ingest_conn_t *c, const char *why)
{
    c->connected = 0;

    if (c->quiet) {
        return;
    }

    if (!c->down) {
        c->down = 1;
        ngx_log_error(NGX_LOG_WARN, c->log, 0,
                      "ingest %s \"%V\" connection lost: %s", c->kind,
                      &c->name, why);
    }

    ngx_post_event(&c->changed, &ngx_posted_events);
}


static void
ngx_http_ingest_conn_timeout(ngx_event_t *ev)
{
    ngx_http_ingest_conn_t  *c;

    c = (ngx_http_ingest_conn_t *)
            ((u_char *) ev - offsetof(ngx_http_ingest_conn_t, connect_timer));

    ngx_log_error(NGX_LOG_WARN, c->log, 0,
                  "ingest %s \"%V\" connect timed out", c->kind, &c->name);

    /* not a hiredis callback: freeing here is safe */
    ngx_http_ingest_conn_close(c, "timed out");
}
