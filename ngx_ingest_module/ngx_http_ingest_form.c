
/*
 * Copyright (C) ngx_ingest developers
 *
 * application/x-www-form-urlencoded counters: "k1=v1&k2=v2", '+' is a
 * space and %XX a byte, in keys and values alike; only a raw '&' or '='
 * separates.  With key_value, the original incrementor's body instead:
 * "key=<k>&value=<v>", both fields once, in any order.
 */


#include "ngx_http_ingest_parse.h"


/* a key's bytes that stand for themselves: visible ASCII but & = % + */

static const u_char  ngx_http_ingest_form_plain[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 0, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0
};


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
    int     v;
    u_char  ch;
    off_t   at;

    for ( /* void */ ; pos < last; pos++, p->offset++) {

        /*
         * Fast paths for the common bytes: plain ASCII in a key (a form
         * name, or key_value's "key") and digits in a value, all but the
         * last byte of a run, which takes the general path below with
         * its checks and offsets.
         */

        if (p->hex_count == 0) {
            if (p->utf8_need == 0
                && ((p->state == sw_name
                     && p->kind != NGX_HTTP_INGEST_KEY_VALUE)
                    || (p->state == sw_value
                        && p->target == target_kv_key)))
            {
                while (pos + 1 < last && ngx_http_ingest_form_plain[*pos]
                       && p->key_len < p->max_key_len)
                {
                    p->key[p->key_len++] = *pos++;
                    p->offset++;
                }

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
                    p->offset++;
                }
            }
        }

        ch = *pos;
        at = p->offset;

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

    return NGX_HTTP_INGEST_PARSE_OK;
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
