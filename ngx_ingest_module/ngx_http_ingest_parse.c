
/*
 * Copyright (C) ngx_ingest developers
 * SPDX-License-Identifier: BSD-2-Clause
 *
 * What the counters body formats share: the rules of a key (length, UTF-8,
 * no control characters), the rules of a value (decimal, signed 64-bit,
 * overflow caught before it happens) and the first error, with its offset.
 */


#include "ngx_http_ingest_parse.h"


void
ngx_http_ingest_parse_init(ngx_http_ingest_parser_t *p, unsigned kind,
    u_char *key_buf, size_t max_key_len, ngx_http_ingest_pair_pt pair,
    void *data)
{
    static const ngx_http_ingest_parser_t  zero;

    *p = zero;

    p->kind = kind;
    p->key = key_buf;
    p->max_key_len = max_key_len;
    p->pair = pair;
    p->data = data;
    p->error_at = -1;
}


int
ngx_http_ingest_parse(ngx_http_ingest_parser_t *p, u_char *pos, u_char *last)
{
    if (p->error != NULL) {
        return NGX_HTTP_INGEST_PARSE_ERROR;
    }

    if (p->kind == NGX_HTTP_INGEST_JSON) {
        return ngx_http_ingest_json_parse(p, pos, last);
    }

    return ngx_http_ingest_form_parse(p, pos, last);
}


int
ngx_http_ingest_parse_finish(ngx_http_ingest_parser_t *p)
{
    if (p->error != NULL) {
        return NGX_HTTP_INGEST_PARSE_ERROR;
    }

    if (p->offset == 0) {
        return ngx_http_ingest_parse_fail(p, "empty body", 0);
    }

    if (p->kind == NGX_HTTP_INGEST_JSON) {
        return ngx_http_ingest_json_finish(p);
    }

    return ngx_http_ingest_form_finish(p);
}


int
ngx_http_ingest_parse_fail(ngx_http_ingest_parser_t *p, const char *what,
    off_t at)
{
    if (p->error == NULL) {
        p->error = what;
        p->error_at = at;
    }

    return NGX_HTTP_INGEST_PARSE_ERROR;
}


/*
 * One decoded byte of a key.  UTF-8 is checked as it comes (RFC 3629:
 * no overlong forms, no surrogates, nothing above U+10FFFF), so the whole
 * key never has to be seen at once.
 */

int
ngx_http_ingest_key_byte(ngx_http_ingest_parser_t *p, u_char ch, off_t at)
{
    if (p->key_len == p->max_key_len) {
        return ngx_http_ingest_parse_fail(p, "key too long", at);
    }

    if (p->utf8_need) {
        if (ch < p->utf8_lo || ch > p->utf8_hi) {
            return ngx_http_ingest_parse_fail(p, "invalid UTF-8 in key", at);
        }

        p->utf8_need--;
        p->utf8_lo = 0x80;
        p->utf8_hi = 0xbf;

    } else if (ch < 0x80) {
        if (ch < 0x20 || ch == 0x7f) {
            return ngx_http_ingest_parse_fail(p, "control character in key",
                                              at);
        }

    } else {
        p->utf8_lo = 0x80;
        p->utf8_hi = 0xbf;

        if (ch >= 0xc2 && ch <= 0xdf) {
            p->utf8_need = 1;

        } else if (ch >= 0xe0 && ch <= 0xef) {
            p->utf8_need = 2;

            if (ch == 0xe0) {
                p->utf8_lo = 0xa0;            /* overlong */

            } else if (ch == 0xed) {
                p->utf8_hi = 0x9f;            /* surrogates */
            }

        } else if (ch >= 0xf0 && ch <= 0xf4) {
            p->utf8_need = 3;

            if (ch == 0xf0) {
                p->utf8_lo = 0x90;            /* overlong */

            } else if (ch == 0xf4) {
                p->utf8_hi = 0x8f;            /* above U+10FFFF */
            }

        } else {
            return ngx_http_ingest_parse_fail(p, "invalid UTF-8 in key", at);
        }
    }

    p->key[p->key_len++] = ch;

    return NGX_HTTP_INGEST_PARSE_OK;
}


int
ngx_http_ingest_key_end(ngx_http_ingest_parser_t *p, off_t at)
{
    if (p->utf8_need) {
        return ngx_http_ingest_parse_fail(p, "invalid UTF-8 in key", at);
    }

    if (p->key_len == 0) {
        return ngx_http_ingest_parse_fail(p, "empty key", at);
    }

    return NGX_HTTP_INGEST_PARSE_OK;
}


/*
 * One decoded byte of a decimal integer: an optional '-' and digits.
 * The magnitude is checked before it grows, so it never wraps: up to
 * 2^63 - 1 for a positive value and 2^63 for a negative one.
 */

int
ngx_http_ingest_number_byte(ngx_http_ingest_parser_t *p, u_char ch, off_t at)
{
    uint64_t  limit, d;

    if (ch == '-' && !p->digits && !p->negative) {
        p->negative = 1;
        return NGX_HTTP_INGEST_PARSE_OK;
    }

    if (ch < '0' || ch > '9') {
        return ngx_http_ingest_parse_fail(p, "invalid integer", at);
    }

    if (!p->digits) {
        p->leading_zero = (ch == '0');
    }

    d = ch - '0';
    limit = p->negative ? (uint64_t) INT64_MAX + 1 : (uint64_t) INT64_MAX;

    if (p->magnitude > (limit - d) / 10) {
        return ngx_http_ingest_parse_fail(p, "integer out of range", at);
    }

    p->magnitude = p->magnitude * 10 + d;
    p->digits = 1;

    return NGX_HTTP_INGEST_PARSE_OK;
}


int
ngx_http_ingest_number_end(ngx_http_ingest_parser_t *p, int64_t *value,
    off_t at)
{
    if (!p->digits) {
        return ngx_http_ingest_parse_fail(p, p->negative ? "invalid integer"
                                                         : "empty value", at);
    }

    if (p->negative) {
        /* -(2^63) has no positive twin: negate in unsigned arithmetic */
        *value = (int64_t) (0 - p->magnitude);

    } else {
        *value = (int64_t) p->magnitude;
    }

    p->magnitude = 0;
    p->negative = 0;
    p->digits = 0;
    p->leading_zero = 0;

    return NGX_HTTP_INGEST_PARSE_OK;
}


int
ngx_http_ingest_hex_value(u_char ch)
{
    if (ch >= '0' && ch <= '9') {
        return ch - '0';
    }

    ch |= 0x20;

    if (ch >= 'a' && ch <= 'f') {
        return ch - 'a' + 10;
    }

    return -1;
}
