
/*
 * Copyright (C) ngx_ingest developers
 * SPDX-License-Identifier: BSD-2-Clause
 *
 * How every ingest location answers: a status with a JSON body (or
 * none), refusals that discard the body first, and JSON string escaping
 * of raw bytes.
 */

#ifndef _NGX_HTTP_INGEST_REPLY_H_INCLUDED_
#define _NGX_HTTP_INGEST_REPLY_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


/* a status, a Content-Type and a body in one buffer */
ngx_int_t ngx_http_ingest_send(ngx_http_request_t *r, ngx_uint_t status,
    const char *type, ngx_buf_t *b);

/* {"error":"<what>","at":<offset>}, "at" left out when at < 0 */
ngx_int_t ngx_http_ingest_send_json(ngx_http_request_t *r, ngx_uint_t status,
    const char *error, off_t at);

/* 204, no body */
ngx_int_t ngx_http_ingest_send_no_content(ngx_http_request_t *r);

/* 405 with Allow */
ngx_int_t ngx_http_ingest_not_allowed(ngx_http_request_t *r, char *allowed);

/* 503 with Retry-After: the worker holds all it may for Redis */
ngx_int_t ngx_http_ingest_send_full(ngx_http_request_t *r);

/* 413: one request needs more than the worker may hold for Redis */
ngx_int_t ngx_http_ingest_send_too_large(ngx_http_request_t *r);

/* JSON string escaping: quotes, backslashes, controls */
size_t ngx_http_ingest_json_escaped(const u_char *s, size_t len);
u_char *ngx_http_ingest_json_escape(u_char *p, const u_char *s, size_t len);


#endif /* _NGX_HTTP_INGEST_REPLY_H_INCLUDED_ */
