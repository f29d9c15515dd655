
/*
 * Copyright (C) ngx_ingest developers
 * SPDX-License-Identifier: BSD-2-Clause
 *
 * hiredis's async API on nginx's event loop, as hiredis's own
 * adapters/libevent.h puts it on libevent: this file knows hiredis and
 * nginx's events, and nothing of the module.
 */

#ifndef _NGX_HTTP_INGEST_ADAPTER_H_INCLUDED_
#define _NGX_HTTP_INGEST_ADAPTER_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include <hiredis/hiredis.h>
#include <hiredis/async.h>


typedef struct ngx_http_ingest_adapter_s  ngx_http_ingest_adapter_t;

/*
 * hiredis is done with the fd (it closes it right after): called from
 * inside hiredis, so it may record and post, never free or connect.
 */
typedef void (*ngx_http_ingest_adapter_closed_pt)(
    ngx_http_ingest_adapter_t *a);


struct ngx_http_ingest_adapter_s {
    ngx_connection_t                   *conn;    /* NULL: not attached */
    ngx_http_ingest_adapter_closed_pt   closed;
    void                               *data;    /* the owner's */
    unsigned                            writing:1;  /* a posted write */
};


/*
 * ac's fd in nginx's loop, level-triggered (hiredis reads at most 16 KiB
 * a call: with edge-triggered events a longer reply would never raise
 * another).  NGX_ERROR if no connection is free or ac is attached
 * already.  ac->data stays the caller's.
 */
ngx_int_t ngx_http_ingest_adapter_attach(ngx_http_ingest_adapter_t *a,
    redisAsyncContext *ac, ngx_log_t *log);


#endif /* _NGX_HTTP_INGEST_ADAPTER_H_INCLUDED_ */
