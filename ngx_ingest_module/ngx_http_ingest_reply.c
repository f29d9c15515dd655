
/*
 * Copyright (C) ngx_ingest developers
 * SPDX-License-Identifier: BSD-2-Clause
 *
 * Answers: every ingest location ends in ngx_http_ingest_send(), with
 * a JSON body, or in a 204.
 */


#include "ngx_http_ingest_reply.h"


static ngx_int_t ngx_http_ingest_refuse(ngx_http_request_t *r,
    ngx_uint_t status, char *header, char *value, const char *error);


/* a refusal: the body discarded (or already read), a header, a JSON error */

static ngx_int_t
ngx_http_ingest_refuse(ngx_http_request_t *r, ngx_uint_t status,
    char *header, char *value, const char *error)
{
    ngx_int_t         rc;
    ngx_table_elt_t  *h;

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    h->key.data = (u_char *) header;
    h->key.len = ngx_strlen(header);
    h->value.data = (u_char *) value;
    h->value.len = ngx_strlen(value);

    return ngx_http_ingest_send_json(r, status, error, -1);
}


/* 405 with Allow */

ngx_int_t
ngx_http_ingest_not_allowed(ngx_http_request_t *r, char *allowed)
{
    return ngx_http_ingest_refuse(r, NGX_HTTP_NOT_ALLOWED, "Allow", allowed,
                                  "method not allowed");
}


/* 503 with Retry-After: the worker holds all it may until Redis takes some */

ngx_int_t
ngx_http_ingest_send_full(ngx_http_request_t *r)
{
    return ngx_http_ingest_refuse(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                  "Retry-After", "1",
                                  "pending limit reached, Redis is not "
                                  "taking batches as fast as they come; "
                                  "retry later");
}


/* 413: refused alone, whatever Redis does; the worker holds nothing of it */

ngx_int_t
ngx_http_ingest_send_too_large(ngx_http_request_t *r)
{
    return ngx_http_ingest_send_json(r, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                     "request needs more than "
                                     "ingest_max_pending", -1);
}


/* {"error":"<what>","at":<offset>}, "at" left out when at < 0 */

ngx_int_t
ngx_http_ingest_send_json(ngx_http_request_t *r, ngx_uint_t status,
    const char *error, off_t at)
{
    size_t      len;
    u_char     *p;
    ngx_buf_t  *b;

    len = ngx_strlen(error);

    b = ngx_create_temp_buf(r->pool,
                            sizeof("{\"error\":\"\",\"at\":}\n") - 1
                            + NGX_OFF_T_LEN
                            + ngx_http_ingest_json_escaped((u_char *) error,
                                                           len));
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_cpymem(b->last, "{\"error\":\"", sizeof("{\"error\":\"") - 1);
    p = ngx_http_ingest_json_escape(p, (u_char *) error, len);

    if (at >= 0) {
        p = ngx_sprintf(p, "\",\"at\":%O}\n", at);

    } else {
        p = ngx_cpymem(p, "\"}\n", 3);
    }

    b->last = p;

    return ngx_http_ingest_send(r, status, "application/json", b);
}


/* 204, no body: a counters request accepted */

ngx_int_t
ngx_http_ingest_send_no_content(ngx_http_request_t *r)
{
    r->headers_out.status = NGX_HTTP_NO_CONTENT;
    r->headers_out.content_length_n = 0;
    r->header_only = 1;

    return ngx_http_send_header(r);
}


/* a status, a Content-Type and a body in one buffer: every answer's end */

ngx_int_t
ngx_http_ingest_send(ngx_http_request_t *r, ngx_uint_t status,
    const char *type, ngx_buf_t *b)
{
    ngx_int_t    rc;
    ngx_chain_t  out;

    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    r->headers_out.status = status;
    r->headers_out.content_length_n = b->last - b->pos;
    r->headers_out.content_type.data = (u_char *) type;
    r->headers_out.content_type.len = ngx_strlen(type);
    r->headers_out.content_type_len = r->headers_out.content_type.len;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


/* JSON string escaping of raw bytes: quotes, backslashes, controls */

size_t
ngx_http_ingest_json_escaped(const u_char *s, size_t len)
{
    size_t  i, n;

    for (i = 0, n = len; i < len; i++) {
        if (s[i] == '"' || s[i] == '\\') {
            n++;

        } else if (s[i] < 0x20) {
            n += 5;
        }
    }

    return n;
}


u_char *
ngx_http_ingest_json_escape(u_char *p, const u_char *s, size_t len)
{
    size_t              i;
    static const char   hex[] = "0123456789abcdef";

    for (i = 0; i < len; i++) {
        if (s[i] == '"' || s[i] == '\\') {
            *p++ = '\\';
            *p++ = s[i];

        } else if (s[i] < 0x20) {
            p = ngx_cpymem(p, "\\u00", 4);
            *p++ = hex[s[i] >> 4];
            *p++ = hex[s[i] & 0xf];

        } else {
            *p++ = s[i];
        }
    }

    return p;
}
