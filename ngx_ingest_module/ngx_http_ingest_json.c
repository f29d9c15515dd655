
/*
 * Copyright (C) ngx_ingest developers
 * SPDX-License-Identifier: BSD-2-Clause
 *
 * application/json counters: one object of key -> integer,
 * {"page:home":1,"stock":-2}.  A streaming scanner, not a DOM: keys are
 * unescaped into the key buffer, integers read digit by digit with the
 * JSON grammar (no leading zeros, no '+'); a fraction or an exponent, a
 * string, an object, an array, true, false or null as a value is refused.
 */


#include "ngx_http_ingest_parse.h"
#include "ingest_span.h"
#include "ingest_json.h"


enum {
    sw_start = 0,
    sw_key_or_end,        /* after '{' */
    sw_key,               /* after ',' */
    sw_string,
    sw_escape,
    sw_unicode,           /* \uXXXX digits */
    sw_low_backslash,     /* a high surrogate wants "\uDC00".. */
    sw_low_u,
    sw_colon,
    sw_value,
    sw_number,
    sw_after_value,
    sw_done
};


#define ngx_http_ingest_json_space(ch)                                        \
    ((ch) == ' ' || (ch) == '\t' || (ch) == '\n' || (ch) == '\r')


static int ngx_http_ingest_json_code_point(ngx_http_ingest_parser_t *p,
    off_t at);
static int ngx_http_ingest_json_value_end(ngx_http_ingest_parser_t *p,
    off_t at);
static u_char *ngx_http_ingest_json_pair(ngx_http_ingest_parser_t *p,
    u_char *pos, u_char *last);


int
ngx_http_ingest_json_parse(ngx_http_ingest_parser_t *p, u_char *pos,
    u_char *last)
{
    int      v;
    u_char   ch, *q;
    off_t    at;

    for ( /* void */ ; pos < last; pos++, p->offset++) {

        if ((p->state == sw_key || p->state == sw_key_or_end) && *pos == '"') {
            q = ngx_http_ingest_json_pair(p, pos, last);

            if (q != pos) {
                p->offset += q - pos;
                pos = q;
                p->state = sw_after_value;
            }
        }

        ch = *pos;
        at = p->offset;

        switch (p->state) {

        case sw_start:
            if (ngx_http_ingest_json_space(ch)) {
                break;
            }

            if (ch != '{') {
                return ngx_http_ingest_parse_fail(p, "expected '{'", at);
            }

            p->state = sw_key_or_end;
            break;

        case sw_key_or_end:
        case sw_key:
            if (ngx_http_ingest_json_space(ch)) {
                break;
            }

            if (ch == '}' && p->state == sw_key_or_end) {
                p->state = sw_done;
                break;
            }

            if (ch != '"') {
                return ngx_http_ingest_parse_fail(p, "expected string key",
                                                  at);
            }

            p->pair_at = at;
            p->key_len = 0;
            p->state = sw_string;
            break;

        case sw_string:
            if (ch == '"') {
                if (ngx_http_ingest_key_end(p, at) != NGX_HTTP_INGEST_PARSE_OK)
                {
                    return NGX_HTTP_INGEST_PARSE_ERROR;
                }

                p->state = sw_colon;
                break;
            }

            if (ch == '\\') {
                p->state = sw_escape;
                break;
            }

            if (ngx_http_ingest_key_byte(p, ch, at)
                != NGX_HTTP_INGEST_PARSE_OK)
            {
                return NGX_HTTP_INGEST_PARSE_ERROR;
            }

            break;

        case sw_escape:
            if (ch == 'u') {
                p->hex_count = 0;
                p->code_point = 0;
                p->state = sw_unicode;
                continue;
            }

            v = ingest_json_unescape(ch);

            if (v < 0) {
                return ngx_http_ingest_parse_fail(p, "invalid escape", at - 1);
            }

            if (ngx_http_ingest_key_byte(p, v, at - 1)
                != NGX_HTTP_INGEST_PARSE_OK)
            {
                return NGX_HTTP_INGEST_PARSE_ERROR;
            }

            p->state = sw_string;
            break;

        case sw_unicode:
            v = ngx_http_ingest_hex_value(ch);

            if (v < 0) {
                return ngx_http_ingest_parse_fail(p, "invalid escape",
                                                  at - 2 - p->hex_count);
            }

            p->code_point = p->code_point * 16 + v;

            if (++p->hex_count < 4) {
                break;
            }

            if (ngx_http_ingest_json_code_point(p, at - 5)
                != NGX_HTTP_INGEST_PARSE_OK)
            {
                return NGX_HTTP_INGEST_PARSE_ERROR;
            }

            break;

        case sw_low_backslash:
            if (ch != '\\') {
                return ngx_http_ingest_parse_fail(p, "invalid UTF-8 in key",
                                                  at);
            }

            p->state = sw_low_u;
            break;

        case sw_low_u:
            if (ch != 'u') {
                return ngx_http_ingest_parse_fail(p, "invalid UTF-8 in key",
                                                  at - 1);
            }

            p->hex_count = 0;
            p->code_point = 0;
            p->state = sw_unicode;
            break;

        case sw_colon:
            if (ngx_http_ingest_json_space(ch)) {
                break;
            }

            if (ch != ':') {
                return ngx_http_ingest_parse_fail(p, "expected ':'", at);
            }

            p->state = sw_value;
            break;

        case sw_value:
            if (ngx_http_ingest_json_space(ch)) {
                break;
            }

            if (ch == '-' || (ch >= '0' && ch <= '9')) {
                if (ngx_http_ingest_number_byte(p, ch, at)
                    != NGX_HTTP_INGEST_PARSE_OK)
                {
                    return NGX_HTTP_INGEST_PARSE_ERROR;
                }

                p->state = sw_number;
                break;
            }

            if (ch == '"' || ch == '{' || ch == '[' || ch == 't' || ch == 'f'
                || ch == 'n')
            {
                return ngx_http_ingest_parse_fail(p,
                                                  "value is not an integer",
                                                  at);
            }

            return ngx_http_ingest_parse_fail(p, "invalid JSON", at);

        case sw_number:
            if (ch >= '0' && ch <= '9') {
                if (p->leading_zero) {
                    return ngx_http_ingest_parse_fail(p, "invalid integer",
                                                      at);
                }

                if (ngx_http_ingest_number_byte(p, ch, at)
                    != NGX_HTTP_INGEST_PARSE_OK)
                {
                    return NGX_HTTP_INGEST_PARSE_ERROR;
                }

                break;
            }

            if (ch == '.' || ch == 'e' || ch == 'E') {
                if (!p->digits) {
                    return ngx_http_ingest_parse_fail(p, "invalid integer",
                                                      at);
                }

                return ngx_http_ingest_parse_fail(p,
                                                  "value is not an integer",
                                                  at);
            }

            if (ngx_http_ingest_json_value_end(p, at)
                != NGX_HTTP_INGEST_PARSE_OK)
            {
                return NGX_HTTP_INGEST_PARSE_ERROR;
            }

            p->state = sw_after_value;

            /* fall through */

        case sw_after_value:
            if (ngx_http_ingest_json_space(ch)) {
                break;
            }

            if (ch == ',') {
                p->state = sw_key;
                break;
            }

            if (ch == '}') {
                p->state = sw_done;
                break;
            }

            return ngx_http_ingest_parse_fail(p, "expected ',' or '}'", at);

        default: /* sw_done */
            if (ngx_http_ingest_json_space(ch)) {
                break;
            }

            return ngx_http_ingest_parse_fail(p, "trailing data after object",
                                              at);
        }
    }

    return NGX_HTTP_INGEST_PARSE_OK;
}


int
ngx_http_ingest_json_finish(ngx_http_ingest_parser_t *p)
{
    if (p->state == sw_done) {
        return NGX_HTTP_INGEST_PARSE_OK;
    }

    if (p->state == sw_start) {
        return ngx_http_ingest_parse_fail(p, "expected '{'", p->offset);
    }

    return ngx_http_ingest_parse_fail(p, "unterminated object", p->offset);
}


/*
 * A complete \uXXXX: surrogate pairs are joined, a lone half refused,
 * and the code point goes into the key as UTF-8, where the key rules
 * (no control characters) apply to it as to a raw byte.
 */

static int
ngx_http_ingest_json_code_point(ngx_http_ingest_parser_t *p, off_t at)
{
    uint32_t  cp;
    u_char    utf8[4];
    size_t    n, i;

    cp = p->code_point;

    if (p->high_surrogate) {
        if (cp < 0xdc00 || cp > 0xdfff) {
            return ngx_http_ingest_parse_fail(p, "invalid UTF-8 in key", at);
        }

        cp = 0x10000 + ((p->high_surrogate - 0xd800) << 10) + (cp - 0xdc00);
        p->high_surrogate = 0;

    } else if (cp >= 0xd800 && cp <= 0xdbff) {
        p->high_surrogate = cp;
        p->state = sw_low_backslash;
        return NGX_HTTP_INGEST_PARSE_OK;

    } else if (cp >= 0xdc00 && cp <= 0xdfff) {
        return ngx_http_ingest_parse_fail(p, "invalid UTF-8 in key", at);
    }

    if (cp < 0x80) {
        utf8[0] = (u_char) cp;
        n = 1;

    } else if (cp < 0x800) {
        utf8[0] = (u_char) (0xc0 | (cp >> 6));
        utf8[1] = (u_char) (0x80 | (cp & 0x3f));
        n = 2;

    } else if (cp < 0x10000) {
        utf8[0] = (u_char) (0xe0 | (cp >> 12));
        utf8[1] = (u_char) (0x80 | ((cp >> 6) & 0x3f));
        utf8[2] = (u_char) (0x80 | (cp & 0x3f));
        n = 3;

    } else {
        utf8[0] = (u_char) (0xf0 | (cp >> 18));
        utf8[1] = (u_char) (0x80 | ((cp >> 12) & 0x3f));
        utf8[2] = (u_char) (0x80 | ((cp >> 6) & 0x3f));
        utf8[3] = (u_char) (0x80 | (cp & 0x3f));
        n = 4;
    }

    for (i = 0; i < n; i++) {
        if (ngx_http_ingest_key_byte(p, utf8[i], at)
            != NGX_HTTP_INGEST_PARSE_OK)
        {
            return NGX_HTTP_INGEST_PARSE_ERROR;
        }
    }

    p->state = sw_string;

    return NGX_HTTP_INGEST_PARSE_OK;
}


/*
 * The common pair whole, from its opening quote: a key of printable
 * ASCII without escapes, ':', and an integer of at most 18 digits that
 * something ends within the chunk (a space, ',' or '}').  It goes
 * straight to pair(), with the key still in the body's buffer, and the
 * scan goes on at the byte after the number, in sw_after_value.  p->offset
 * is pos's offset here, the caller adds what was consumed.  Anything
 * else returns pos, for the byte-by-byte path, which has the errors.
 */

static u_char *
ngx_http_ingest_json_pair(ngx_http_ingest_parser_t *p, u_char *pos,
    u_char *last)
{
    u_char    *q, *key, *digits;
    size_t     len;
    int64_t    value;
    uint64_t   m;
    unsigned   negative;

    key = pos + 1;
    len = ingest_span(key, last, 0x20, 0x7e, '"', '\\', '"', '"');
    q = key + len;

    if (len == 0 || len > p->max_key_len || q == last || *q != '"') {
        return pos;
    }

    for (q++; q < last && ngx_http_ingest_json_space(*q); q++) { /* void */ }

    if (q == last || *q != ':') {
        return pos;
    }

    for (q++; q < last && ngx_http_ingest_json_space(*q); q++) { /* void */ }

    q = ngx_http_ingest_short_number(q, last, &negative, &digits, &m);

    if (q == digits || q == last || (*digits == '0' && q - digits > 1)
        || !(ngx_http_ingest_json_space(*q) || *q == ',' || *q == '}'))
    {
        return pos;
    }

    value = negative ? (int64_t) (0 - m) : (int64_t) m;
    p->pair_at = p->offset;

    if (p->pair(p->data, key, len, value) != 0) {
        return pos;
    }

    p->pairs++;

    return q;
}


static int
ngx_http_ingest_json_value_end(ngx_http_ingest_parser_t *p, off_t at)
{
    int64_t  value;

    if (ngx_http_ingest_number_end(p, &value, at) != NGX_HTTP_INGEST_PARSE_OK) {
        return NGX_HTTP_INGEST_PARSE_ERROR;
    }

    if (p->pair(p->data, p->key, p->key_len, value) != 0) {
        return ngx_http_ingest_parse_fail(p, "cannot store pair", at);
    }

    p->pairs++;

    return NGX_HTTP_INGEST_PARSE_OK;
}
