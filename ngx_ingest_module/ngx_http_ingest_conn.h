
/*
 * Copyright (C) ngx_ingest developers
 * SPDX-License-Identifier: BSD-2-Clause
 *
 * One async connection to one Redis server (the standalone server, or a
 * node of a cluster): opened with a deadline of its own (hiredis 0.14 has
 * none), closed on purpose or lost, and its loss and its return each
 * logged once.  It counts as connected only once a first command (PING)
 * has an answer: a server that accepts and closes, or answers only
 * errors, is not "restored".  Whoever owns it learns of a change through
 * a posted event, never from inside hiredis.
 */

#ifndef _NGX_HTTP_INGEST_CONN_H_INCLUDED_
#define _NGX_HTTP_INGEST_CONN_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_http_ingest_adapter.h"


/*
 * How a connection logs in, before anything else: AUTH (with a user, or
 * the default user), then SELECT.  Nothing when the password is empty
 * and db is 0.  The password is never logged.
 */

typedef struct {
    ngx_str_t                   user;      /* empty: the default user */
    ngx_str_t                   password;  /* empty: no AUTH */
    ngx_uint_t                  db;
} ngx_http_ingest_auth_t;


typedef struct {
    const char                 *kind;      /* "redis", for logs */
    ngx_str_t                   name;      /* the address, for logs */
    u_char                     *host;      /* numeric address, or a path */
    int                         port;      /* 0: a unix socket */
    ngx_msec_t                  connect_timeout;
    ngx_http_ingest_auth_t     *auth;      /* NULL: none */
    ngx_log_t                  *log;

    redisAsyncContext          *ac;        /* NULL: none */
    ngx_http_ingest_adapter_t   adapter;
    ngx_event_t                 connect_timer;

    /* posted when it is connected, or lost: the owner's handler */
    ngx_event_t                 changed;

    /* posted to drop a connection whose first command was refused */
    ngx_event_t                 refused;
    u_char                      error[128];

    unsigned                    connected:1;
    unsigned                    down:1;     /* "lost" was logged */
    unsigned                    quiet:1;    /* closed on purpose */
    unsigned                    denied:1;   /* the login was refused */
} ngx_http_ingest_conn_t;


/*
 * kind, name, host, port, log, connect_timeout and changed's handler
 * and data are the owner's to set; timer_data is what the connect timer's data
 * points to (nginx's debug log reads a connection's fd there).
 */
void ngx_http_ingest_conn_init(ngx_http_ingest_conn_t *c, void *timer_data);

/* NGX_OK: connecting (commands may be queued); NGX_ERROR: lost already */
ngx_int_t ngx_http_ingest_conn_open(ngx_http_ingest_conn_t *c);

/*
 * Close now (not from inside hiredis): pending replies come back NULL.
 * why: logged as the reason of a loss; NULL for a close on purpose.
 */
void ngx_http_ingest_conn_close(ngx_http_ingest_conn_t *c, const char *why);

/* close once every reply is in */
void ngx_http_ingest_conn_disconnect(ngx_http_ingest_conn_t *c);

/*
 * The exit path's blocking twin of the login: NGX_OK, or NGX_ERROR with
 * why (a C string naming the user, never the password).
 */
ngx_int_t ngx_http_ingest_conn_sync_login(redisContext *rc,
    ngx_http_ingest_auth_t *auth, u_char *why, size_t size);

#define NGX_HTTP_INGEST_USER_LEN   160

/* "user \"x\"" or "the default user", for logs (cut at 160 bytes) */
u_char *ngx_http_ingest_conn_user(u_char *buf, size_t size,
    ngx_http_ingest_auth_t *auth);


#endif /* _NGX_HTTP_INGEST_CONN_H_INCLUDED_ */
