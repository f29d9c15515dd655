
/*
 * Copyright (C) ngx_ingest developers
 * SPDX-License-Identifier: BSD-2-Clause
 *
 * application/x-www-form-urlencoded counters: "k1=v1&k2=v2", '+' is a
 * space and %XX a byte, in keys and values alike; only a raw '&' or '='
 * separates.  With key_value, the original incrementor's body instead:
 * "key=<k>&value=<v>", both fields once, in any order.
 */


#include <string.h>

#include "ngx_http_ingest_parse.h"
#include "ingest_span.h"


/* a key's bytes that stand for themselves: visible ASCII but & = % + */

#define ngx_http_ingest_form_span(pos, end)                                   \
    ingest_span(pos, end, 0x21, 0x7e, '&', '=', '%', '+')

#define ngx_http_ingest_form_is(pos, name)                                    \
    (memcmp(pos, name, sizeof(name) - 1) == 0)


enum {
    sw_pair_start = 0,
    sw_name,
    sw_value
};


enum {
    target_key = 0,       /* form name: a counter key */
    target_field,         /* key_value name: "key" or "value" */
    target_number,        /* form value, or key_value's "value" */
    target_kv_key         /* key_value's "key" */
};


static u_char *ngx_http_ingest_form_run(u_char *pos, u_char *last,
    u_char *buf, size_t *len, size_t cap);
static u_char *ngx_http_ingest_form_pairs(ngx_http_ingest_parser_t *p,
    u_char *pos, u_char *last, off_t at);
static int ngx_http_ingest_form_decoded(ngx_http_ingest_parser_t *p,
    u_char ch, off_t at);
static int ngx_http_ingest_form_name_end(ngx_http_ingest_parser_t *p,
    off_t at);
static int ngx_http_ingest_form_value_end(ngx_http_ingest_parser_t *p,
    off_t at);


int
ngx_http_ingest_form_parse(ngx_http_ingest_parser_t *p, u_char *pos,
    u_char *last)
{
    int      v;
    u_char   ch, *start;
    off_t    at, base;

    /*
     * The body offset is base + (pos - start) rather than a field stored
     * at every byte: p->offset is written back once the chunk is parsed
     * (after an error, p->error_at is what counts).
     */

    start = pos;
    base = p->offset;

    for ( /* void */ ; pos < last; pos++) {

        if (p->state == sw_pair_start && p->hex_count == 0) {
            pos = ngx_http_ingest_form_pairs(p, pos, last,
                                             base + (pos - start));
            if (pos == last) {
                break;
            }
        }

        /*
         * Fast paths for the common bytes: plain ASCII in a key (a form
         * name, key_value's "key", or key_value's field name) and digits
         * in a value, all but the last byte of a run, which takes the
         * general path below with its checks and offsets.  A key's run
         * is found first and copied once.
         */

        if (p->hex_count == 0) {
            if (p->utf8_need == 0
                && ((p->state == sw_name
                     && p->kind != NGX_HTTP_INGEST_KEY_VALUE)
                    || (p->state == sw_value
                        && p->target == target_kv_key)))
            {
                pos = ngx_http_ingest_form_run(pos, last, p->key,
                                               &p->key_len, p->max_key_len);

            } else if (p->state == sw_name
                       && p->kind == NGX_HTTP_INGEST_KEY_VALUE)
            {
                /* key_value's field name: it fits p->name or is unknown */

                pos = ngx_http_ingest_form_run(pos, last, p->name,
                                               &p->name_len, sizeof(p->name));

            } else if (p->state == sw_value && p->target == target_number) {
                while (pos + 1 < last && *pos >= '0' && *pos <= '9'
                       && p->magnitude < 922337203685477580ULL
                       && !(p->digits && p->leading_zero))
                {
                    if (!p->digits) {
                        p->leading_zero = (*pos == '0');
                        p->digits = 1;
                    }

                    p->magnitude = p->magnitude * 10 + (*pos++ - '0');
                }
            }
        }

        ch = *pos;
        at = base + (pos - start);

        if (p->hex_count) {
            v = ngx_http_ingest_hex_value(ch);

            if (v < 0) {
                return ngx_http_ingest_parse_fail(p, "invalid percent escape",
                                                  at - p->hex_count);
            }

            if (p->hex_count == 1) {
                p->hex = (u_char) v;
                p->hex_count = 2;
                continue;
            }

            p->hex_count = 0;

            if (ngx_http_ingest_form_decoded(p, (u_char) (p->hex * 16 + v),
                                             at - 2)
                != NGX_HTTP_INGEST_PARSE_OK)
            {
                return NGX_HTTP_INGEST_PARSE_ERROR;
            }

            continue;
        }

        switch (ch) {

        case '&':
            if (p->state == sw_pair_start) {
                return ngx_http_ingest_parse_fail(p, "empty pair", at);
            }

            if (p->state == sw_name) {
                return ngx_http_ingest_parse_fail(p, "missing '='", at);
            }

            if (ngx_http_ingest_form_value_end(p, at)
                != NGX_HTTP_INGEST_PARSE_OK)
            {
                return NGX_HTTP_INGEST_PARSE_ERROR;
            }

            p->state = sw_pair_start;
            continue;

        case '=':
            if (p->state == sw_value) {
                return ngx_http_ingest_parse_fail(p, "unexpected '='", at);
            }

            if (p->state == sw_pair_start) {
                p->pair_at = at;
            }

            if (ngx_http_ingest_form_name_end(p, at)
                != NGX_HTTP_INGEST_PARSE_OK)
            {
                return NGX_HTTP_INGEST_PARSE_ERROR;
            }

            p->state = sw_value;
            continue;

        case '%':
            if (p->state == sw_pair_start) {
                p->state = sw_name;
                p->pair_at = at;
            }

            p->hex_count = 1;
            continue;

        case '+':
            ch = ' ';
            break;

        default:
            break;
        }

        if (ngx_http_ingest_form_decoded(p, ch, at)
            != NGX_HTTP_INGEST_PARSE_OK)
        {
            return NGX_HTTP_INGEST_PARSE_ERROR;
        }
    }

    p->offset = base + (last - start);

    return NGX_HTTP_INGEST_PARSE_OK;
}


/*
 * A run of plain bytes from pos appended to buf (*len of cap used), all
 * but the chunk's last byte, and no further than buf has room: what
 * stops the run takes the byte path, with its checks and offsets.
 * Returns where the byte path goes on.
 */

static u_char *
ngx_http_ingest_form_run(u_char *pos, u_char *last, u_char *buf,
    size_t *len, size_t cap)
{
    size_t   n;
    u_char  *end;

    end = last - 1;

    if ((size_t) (end - pos) > cap - *len) {
        end = pos + (cap - *len);
    }

    n = ngx_http_ingest_form_span(pos, end);

    memcpy(buf + *len, pos, n);
    *len += n;

    return pos + n;
}


/*
 * The common pairs whole: "name=-123&" with a plain name and at most 18
 * digits (no overflow possible), or in key_value "key=<plain>&" and
 * "value=-123&".  Each such pair goes straight to pair(), with the key
 * still in the body's buffer.  A pair the chunk cuts short (the body's
 * last pair, mostly) is left in the very state the byte-by-byte path
 * would leave it in; anything else (escapes, UTF-8, errors, long numbers)
 * returns where the pair began, for the general path to take it from
 * there.  Returns where the general path goes on.
 */

static u_char *
ngx_http_ingest_form_pairs(ngx_http_ingest_parser_t *p, u_char *pos,
    u_char *last, off_t at)
{
    u_char    *q, *key, *digits;
    size_t     len;
    int64_t    value;
    unsigned   target, negative;
    uint64_t   m;

    while (pos < last) {
        q = pos;
        p->pair_at = at;

        if (p->kind == NGX_HTTP_INGEST_KEY_VALUE) {
            if (last - q >= 4 && ngx_http_ingest_form_is(q, "key=")
                && !p->have_key)
            {
                target = target_kv_key;
                q += 4;

            } else if (last - q >= 6 && ngx_http_ingest_form_is(q, "value=")
                       && !p->have_value)
            {
                target = target_number;
                q += 6;

            } else {
                return pos;
            }

            key = q;
            len = 0;

        } else {
            target = target_number;
            key = q;
            len = ngx_http_ingest_form_span(q, last);

            if (len == 0 || len > p->max_key_len) {
                return pos;
            }

            q += len;

            if (q == last || *q != '=') {
                return pos;
            }

            q++;
        }

        if (target == target_kv_key) {
            len = ngx_http_ingest_form_span(q, last);

            if (len == 0 || len > p->max_key_len) {
                return pos;
            }

            key = q;
            q += len;

            if (q == last) {
                /* cut short: as if read byte by byte */
                memcpy(p->key, key, len);
                p->key_len = len;
                p->state = sw_value;
                p->target = target_kv_key;
                return last;
            }

            if (*q != '&') {
                return pos;
            }

            p->key_len = len;
            memcpy(p->key, key, len);
            p->have_key = 1;

            goto next;
        }

        q = ngx_http_ingest_short_number(q, last, &negative, &digits, &m);

        if (q == digits) {
            return pos;
        }

        if (q == last) {
            /* cut short: as if read byte by byte */
            if (p->kind != NGX_HTTP_INGEST_KEY_VALUE) {
                memcpy(p->key, key, len);
                p->key_len = len;
            }

            p->state = sw_value;
            p->target = target_number;
            p->magnitude = m;
            p->negative = negative;
            p->digits = 1;
            p->leading_zero = (*digits == '0');
            return last;
        }

        if (*q != '&') {
            return pos;
        }

        value = negative ? (int64_t) (0 - m) : (int64_t) m;

        if (p->kind == NGX_HTTP_INGEST_KEY_VALUE) {
            p->kv_value = value;
            p->have_value = 1;

        } else {
            if (p->pair(p->data, key, len, value) != 0) {
                return pos;
            }

            p->pairs++;
        }

    next:

        /* past the '&': the next pair begins */

        q++;
        at += q - pos;
        pos = q;
    }

    return pos;
}


int
ngx_http_ingest_form_finish(ngx_http_ingest_parser_t *p)
{
    if (p->hex_count) {
        return ngx_http_ingest_parse_fail(p, "invalid percent escape",
                                          p->offset - p->hex_count);
    }

    switch (p->state) {

    case sw_pair_start:
        /* the body ended with '&' */
        return ngx_http_ingest_parse_fail(p, "empty pair", p->offset);

    case sw_name:
        return ngx_http_ingest_parse_fail(p, "missing '='", p->offset);

    default: /* sw_value */
        if (ngx_http_ingest_form_value_end(p, p->offset)
            != NGX_HTTP_INGEST_PARSE_OK)
        {
            return NGX_HTTP_INGEST_PARSE_ERROR;
        }
    }

    if (p->kind != NGX_HTTP_INGEST_KEY_VALUE) {
        return NGX_HTTP_INGEST_PARSE_OK;
    }

    if (!p->have_key) {
        return ngx_http_ingest_parse_fail(p, "missing field \"key\"",
                                          p->offset);
    }

    if (!p->have_value) {
        return ngx_http_ingest_parse_fail(p, "missing field \"value\"",
                                          p->offset);
    }

    if (p->pair(p->data, p->key, p->key_len, p->kv_value) != 0) {
        return ngx_http_ingest_parse_fail(p, "cannot store pair", p->offset);
    }

    p->pairs++;

    return NGX_HTTP_INGEST_PARSE_OK;
}


static int
ngx_http_ingest_form_decoded(ngx_http_ingest_parser_t *p, u_char ch, off_t at)
{
    if (p->state == sw_pair_start) {
        p->state = sw_name;
        p->pair_at = at;
    }

    if (p->state == sw_name) {
        if (p->kind == NGX_HTTP_INGEST_KEY_VALUE) {
            if (p->name_len == sizeof(p->name)) {
                return ngx_http_ingest_parse_fail(p, "unknown field",
                                                  p->pair_at);
            }

            p->name[p->name_len++] = ch;
            return NGX_HTTP_INGEST_PARSE_OK;
        }

        return ngx_http_ingest_key_byte(p, ch, at);
    }

    if (p->target == target_kv_key) {
        return ngx_http_ingest_key_byte(p, ch, at);
    }

    return ngx_http_ingest_number_byte(p, ch, at);
}


static int
ngx_http_ingest_form_name_end(ngx_http_ingest_parser_t *p, off_t at)
{
    if (p->kind != NGX_HTTP_INGEST_KEY_VALUE) {
        p->target = target_number;
        return ngx_http_ingest_key_end(p, at);
    }

    if (p->name_len == 3 && p->name[0] == 'k' && p->name[1] == 'e'
        && p->name[2] == 'y')
    {
        if (p->have_key) {
            return ngx_http_ingest_parse_fail(p, "duplicate field \"key\"",
                                              p->pair_at);
        }

        p->target = target_kv_key;

    } else if (p->name_len == 5 && p->name[0] == 'v' && p->name[1] == 'a'
               && p->name[2] == 'l' && p->name[3] == 'u' && p->name[4] == 'e')
    {
        if (p->have_value) {
            return ngx_http_ingest_parse_fail(p, "duplicate field \"value\"",
                                              p->pair_at);
        }

        p->target = target_number;

    } else if (p->name_len == 0) {
        return ngx_http_ingest_parse_fail(p, "empty key", at);

    } else {
        return ngx_http_ingest_parse_fail(p, "unknown field", p->pair_at);
    }

    p->name_len = 0;

    return NGX_HTTP_INGEST_PARSE_OK;
}


static int
ngx_http_ingest_form_value_end(ngx_http_ingest_parser_t *p, off_t at)
{
    int64_t  value;

    if (p->kind == NGX_HTTP_INGEST_KEY_VALUE) {

        if (p->target == target_kv_key) {
            if (ngx_http_ingest_key_end(p, at) != NGX_HTTP_INGEST_PARSE_OK) {
                return NGX_HTTP_INGEST_PARSE_ERROR;
            }

            p->have_key = 1;
            return NGX_HTTP_INGEST_PARSE_OK;
        }

        if (ngx_http_ingest_number_end(p, &p->kv_value, at)
            != NGX_HTTP_INGEST_PARSE_OK)
        {
            return NGX_HTTP_INGEST_PARSE_ERROR;
        }

        p->have_value = 1;
        return NGX_HTTP_INGEST_PARSE_OK;
    }

    if (ngx_http_ingest_number_end(p, &value, at) != NGX_HTTP_INGEST_PARSE_OK) {
        return NGX_HTTP_INGEST_PARSE_ERROR;
    }

    if (p->pair(p->data, p->key, p->key_len, value) != 0) {
        return ngx_http_ingest_parse_fail(p, "cannot store pair", at);
    }

    p->pairs++;
    p->key_len = 0;

    return NGX_HTTP_INGEST_PARSE_OK;
}
