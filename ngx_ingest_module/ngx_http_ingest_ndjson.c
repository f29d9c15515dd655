
/*
 * Copyright (C) ngx_ingest developers
 * SPDX-License-Identifier: BSD-2-Clause
 */


#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ngx_http_ingest_ndjson.h"
#include "ngx_http_ingest_parse.h"
#include "ingest_json.h"
#include "ingest_span.h"


/*
 * A field's value with data NULL: len 0 not seen yet, SEEN_NULL a null,
 * one of the others why the line is invalid (BAD_TYPE: not of the
 * field's type).
 */
#define NGX_HTTP_INGEST_SEEN_NULL   ((size_t) -1)
#define NGX_HTTP_INGEST_BAD_TYPE    ((size_t) -2)
#define NGX_HTTP_INGEST_BAD_RANGE   ((size_t) -3)
#define NGX_HTTP_INGEST_BAD_NUL     ((size_t) -4)


#define ngx_http_ingest_space(ch)                                             \
    ((ch) == ' ' || (ch) == '\t' || (ch) == '\n' || (ch) == '\r')


typedef struct {
    u_char                   *p;
    u_char                   *last;
    const char               *error;
    unsigned                  nul:1;       /* a string held "\u0000" */
} ngx_http_ingest_scan_t;


static int ngx_http_ingest_scan_value(ngx_http_ingest_scan_t *s, int depth,
    int *kind, int *integer);
static int ngx_http_ingest_scan_string(ngx_http_ingest_scan_t *s,
    int *escaped);
static int ngx_http_ingest_scan_digits(ngx_http_ingest_scan_t *s);
static int ngx_http_ingest_scan_number(ngx_http_ingest_scan_t *s,
    int *integer);
static int ngx_http_ingest_scan_hex4(ngx_http_ingest_scan_t *s,
    unsigned *cp);
static int ngx_http_ingest_real_in_range(u_char *p, u_char *last);
static int ngx_http_ingest_name_is(const ngx_http_ingest_field_t *f,
    u_char *name, size_t len, int escaped, int ignore_case);


enum {
    kind_object = 0,
    kind_array,
    kind_string,
    kind_number,
    kind_bool,
    kind_null
};


static const char  *ngx_http_ingest_type_errors[] = {
    "is not an integer",
    "is not a number",
    "is not a string",
    "is not a boolean"
};


int
ngx_http_ingest_ndjson_line(const ngx_http_ingest_record_conf_t *conf,
    u_char *p, u_char *last, ngx_http_ingest_value_t *values,
    const char **error)
{
    int                       kind, integer, escaped, ok;
    size_t                    i;
    u_char                   *name, *value;
    size_t                    name_len;
    ngx_http_ingest_scan_t    s;
    const ngx_http_ingest_field_t  *f;
    static char               msg[160];

    for (i = 0; i < conf->nfields; i++) {
        values[i].data = NULL;
        values[i].len = 0;
    }

    s.p = p;
    s.last = last;
    s.error = NULL;

    while (s.p < s.last && ngx_http_ingest_space(*s.p)) {
        s.p++;
    }

    if (s.p == s.last) {
        *error = "blank line";
        return -1;
    }

    if (*s.p != '{') {
        /* a valid JSON value that is not an object is its own mistake */
        if (ngx_http_ingest_scan_value(&s, 0, &kind, &integer) == 0) {
            while (s.p < s.last && ngx_http_ingest_space(*s.p)) {
                s.p++;
            }

            *error = (s.p == s.last) ? "not an object" : "invalid JSON";
            return -1;
        }

        *error = s.error ? s.error : "invalid JSON";
        return -1;
    }

    s.p++;

    while (s.p < s.last && ngx_http_ingest_space(*s.p)) {
        s.p++;
    }

    if (s.p < s.last && *s.p == '}') {
        s.p++;
        goto end;
    }

    for ( ;; ) {
        while (s.p < s.last && ngx_http_ingest_space(*s.p)) {
            s.p++;
        }

        if (s.p == s.last || *s.p != '"') {
            *error = "invalid JSON";
            return -1;
        }

        name = s.p + 1;

        if (ngx_http_ingest_scan_string(&s, &escaped) != 0) {
            *error = s.error;
            return -1;
        }

        name_len = s.p - 1 - name;

        while (s.p < s.last && ngx_http_ingest_space(*s.p)) {
            s.p++;
        }

        if (s.p == s.last || *s.p != ':') {
            *error = "invalid JSON";
            return -1;
        }

        s.p++;

        while (s.p < s.last && ngx_http_ingest_space(*s.p)) {
            s.p++;
        }

        value = s.p;
        s.nul = 0;

        if (ngx_http_ingest_scan_value(&s, 1, &kind, &integer) != 0) {
            *error = s.error ? s.error : "invalid JSON";
            return -1;
        }

        /* a configured field?  the first occurrence counts, as in cJSON */

        for (i = 0; i < conf->nfields; i++) {
            f = &conf->fields[i];

            if (!ngx_http_ingest_name_is(f, name, name_len, escaped,
                                         conf->ignore_case))
            {
                continue;
            }

            /* seen before: the first occurrence counts, even a null */

            if (values[i].data != NULL || values[i].len != 0) {
                break;
            }

            if (kind == kind_null) {
                values[i].len = NGX_HTTP_INGEST_SEEN_NULL;
                break;
            }

            switch (f->type) {
            case NGX_HTTP_INGEST_INT:
                ok = (kind == kind_number && integer);
                break;
            case NGX_HTTP_INGEST_REAL:
                ok = (kind == kind_number);
                break;
            case NGX_HTTP_INGEST_TEXT:
                ok = (kind == kind_string);
                break;
            default:
                ok = (kind == kind_bool);
                break;
            }

            if (!ok) {
                /* the line is checked to its end first: bad JSON wins */
                values[i].len = NGX_HTTP_INGEST_BAD_TYPE;
                break;
            }

            /*
             * Valid only what every store keeps exactly: SQLite would
             * keep an infinity and cut a text at a NUL, PostgreSQL
             * refuses both.
             */

            if (f->type == NGX_HTTP_INGEST_REAL
                && !ngx_http_ingest_real_in_range(value, s.p))
            {
                values[i].len = NGX_HTTP_INGEST_BAD_RANGE;
                break;
            }

            if (f->type == NGX_HTTP_INGEST_TEXT && s.nul) {
                values[i].len = NGX_HTTP_INGEST_BAD_NUL;
                break;
            }

            if (kind == kind_string) {
                values[i].data = value + 1;
                values[i].len = s.p - value - 2;

            } else {
                values[i].data = value;
                values[i].len = s.p - value;
            }

            break;
        }

        while (s.p < s.last && ngx_http_ingest_space(*s.p)) {
            s.p++;
        }

        if (s.p < s.last && *s.p == ',') {
            s.p++;
            continue;
        }

        if (s.p < s.last && *s.p == '}') {
            s.p++;
            break;
        }

        *error = "invalid JSON";
        return -1;
    }

end:

    while (s.p < s.last && ngx_http_ingest_space(*s.p)) {
        s.p++;
    }

    if (s.p != s.last) {
        *error = "invalid JSON";
        return -1;
    }

    for (i = 0; i < conf->nfields; i++) {
        f = &conf->fields[i];

        if (values[i].data == NULL
            && values[i].len >= NGX_HTTP_INGEST_BAD_NUL
            && values[i].len != NGX_HTTP_INGEST_SEEN_NULL)
        {
            (void) snprintf(msg, sizeof(msg), "field \"%.*s\" %s",
                            (int) (f->len < 64 ? f->len : 64), f->name,
                            values[i].len == NGX_HTTP_INGEST_BAD_RANGE
                            ? "is out of range"
                            : values[i].len == NGX_HTTP_INGEST_BAD_NUL
                            ? "holds a NUL character"
                            : ngx_http_ingest_type_errors[f->type]);
            *error = msg;
            return -1;
        }

        if (values[i].data == NULL && values[i].len) {
            values[i].len = 0;              /* a null: absent */
        }

        if (values[i].data == NULL && f->required) {
            (void) snprintf(msg, sizeof(msg),
                            "required field \"%.*s\" is missing",
                            (int) (f->len < 64 ? f->len : 64), f->name);
            *error = msg;
            return -1;
        }
    }

    return 0;
}


/*
 * Does the number (JSON's grammar, checked already) fit a double without
 * turning into an infinity or, from a non-zero text, into zero?  The
 * rule PostgreSQL's double precision input applies; a subnormal number
 * is kept.
 */

static int
ngx_http_ingest_real_in_range(u_char *p, u_char *last)
{
    char    buf[64], *text;
    int     ok;
    double  d;
    size_t  len;

    len = last - p;
    text = (len < sizeof(buf)) ? buf : malloc(len + 1);

    if (text == NULL) {
        return 0;
    }

    memcpy(text, p, len);
    text[len] = '\0';

    errno = 0;
    d = strtod(text, NULL);

    ok = !(errno == ERANGE && (d == 0.0 || isinf(d)));

    if (text != buf) {
        free(text);
    }

    return ok;
}


/* does a member name (raw JSON text, maybe with escapes) name field f? */

static int
ngx_http_ingest_name_is(const ngx_http_ingest_field_t *f, u_char *name,
    size_t len, int escaped, int ignore_case)
{
    size_t  i;
    u_char  a, b;

    if (escaped) {
        /* rare: configured names are [A-Za-z0-9_], escapes never match */
        return 0;
    }

    if (len != f->len) {
        return 0;
    }

    if (!ignore_case) {
        return memcmp(name, f->name, len) == 0;
    }

    for (i = 0; i < len; i++) {
        a = name[i];
        b = f->name[i];

        if (a >= 'A' && a <= 'Z') {
            a |= 0x20;
        }

        if (b >= 'A' && b <= 'Z') {
            b |= 0x20;
        }

        if (a != b) {
            return 0;
        }
    }

    return 1;
}


static int
ngx_http_ingest_scan_value(ngx_http_ingest_scan_t *s, int depth, int *kind,
    int *integer)
{
    int      k, i, escaped;
    u_char   close;
    size_t   n;

    if (depth > NGX_HTTP_INGEST_MAX_DEPTH) {
        s->error = "nested too deep";
        return -1;
    }

    if (s->p == s->last) {
        s->error = "invalid JSON";
        return -1;
    }

    switch (*s->p) {

    case '"':
        *kind = kind_string;
        return ngx_http_ingest_scan_string(s, &escaped);

    case '{':
    case '[':
        *kind = (*s->p == '{') ? kind_object : kind_array;
        close = (*s->p == '{') ? '}' : ']';
        s->p++;

        while (s->p < s->last && ngx_http_ingest_space(*s->p)) {
            s->p++;
        }

        if (s->p < s->last && *s->p == close) {
            s->p++;
            return 0;
        }

        for ( ;; ) {
            while (s->p < s->last && ngx_http_ingest_space(*s->p)) {
                s->p++;
            }

            if (close == '}') {
                if (s->p == s->last || *s->p != '"'
                    || ngx_http_ingest_scan_string(s, &escaped) != 0)
                {
                    if (s->error == NULL) {
                        s->error = "invalid JSON";
                    }
                    return -1;
                }

                while (s->p < s->last && ngx_http_ingest_space(*s->p)) {
                    s->p++;
                }

                if (s->p == s->last || *s->p != ':') {
                    s->error = "invalid JSON";
                    return -1;
                }

                s->p++;

                while (s->p < s->last && ngx_http_ingest_space(*s->p)) {
                    s->p++;
                }
            }

            if (ngx_http_ingest_scan_value(s, depth + 1, &k, &i) != 0) {
                return -1;
            }

            while (s->p < s->last && ngx_http_ingest_space(*s->p)) {
                s->p++;
            }

            if (s->p < s->last && *s->p == ',') {
                s->p++;
                continue;
            }

            if (s->p < s->last && *s->p == close) {
                s->p++;
                return 0;
            }

            s->error = "invalid JSON";
            return -1;
        }

    case 't':
    case 'f':
    case 'n':
        if (*s->p == 'n') {
            *kind = kind_null;
            n = 4;

            if ((size_t) (s->last - s->p) < n
                || memcmp(s->p, "null", 4) != 0)
            {
                s->error = "invalid JSON";
                return -1;
            }

        } else {
            *kind = kind_bool;
            n = (*s->p == 't') ? 4 : 5;

            if ((size_t) (s->last - s->p) < n
                || memcmp(s->p, (*s->p == 't') ? "true" : "false", n) != 0)
            {
                s->error = "invalid JSON";
                return -1;
            }
        }

        s->p += n;
        return 0;

    default:
        *kind = kind_number;
        return ngx_http_ingest_scan_number(s, integer);
    }
}


/* a string from its opening quote: escapes and UTF-8 checked */

static int
ngx_http_ingest_scan_string(ngx_http_ingest_scan_t *s, int *escaped)
{
    size_t    n;
    u_char    ch;
    unsigned  cp;

    *escaped = 0;
    s->p++;

    while (s->p < s->last) {

        /* most of a string is plain ASCII: sixteen bytes a step */

        s->p += ingest_span(s->p, s->last, 0x20, 0x7f, '"', '\\', '"', '"');

        if (s->p == s->last) {
            break;
        }

        ch = *s->p++;

        if (ch == '"') {
            return 0;
        }

        if (ch < 0x20) {
            s->error = "invalid JSON";
            return -1;
        }

        if (ch == '\\') {
            *escaped = 1;

            if (s->p == s->last) {
                break;
            }

            ch = *s->p++;

            switch (ch) {
            case '"': case '\\': case '/': case 'b': case 'f': case 'n':
            case 'r': case 't':
                continue;

            case 'u':
                if (ngx_http_ingest_scan_hex4(s, &cp) != 0) {
                    return -1;
                }

                if (cp == 0) {
                    s->nul = 1;
                }

                /* a lone surrogate is not a character */

                if (cp >= 0xdc00 && cp <= 0xdfff) {
                    s->error = "invalid UTF-8";
                    return -1;
                }

                if (cp >= 0xd800 && cp <= 0xdbff) {
                    if (s->last - s->p < 6 || s->p[0] != '\\'
                        || s->p[1] != 'u')
                    {
                        s->error = "invalid UTF-8";
                        return -1;
                    }

                    s->p += 2;

                    if (ngx_http_ingest_scan_hex4(s, &cp) != 0) {
                        return -1;
                    }

                    if (cp < 0xdc00 || cp > 0xdfff) {
                        s->error = "invalid UTF-8";
                        return -1;
                    }
                }

                continue;

            default:
                s->error = "invalid JSON";
                return -1;
            }
        }

        if (ch < 0x80) {
            continue;
        }

        /* UTF-8: the whole sequence the lead byte begins */

        n = ingest_json_utf8_seq(s->p - 1, s->last - s->p + 1);

        if (n == 0) {
            s->error = "invalid UTF-8";
            return -1;
        }

        s->p += n - 1;
    }

    s->error = "invalid JSON";
    return -1;
}


/* the four hex digits of a \uXXXX escape */

static int
ngx_http_ingest_scan_hex4(ngx_http_ingest_scan_t *s, unsigned *cp)
{
    int  i, v;

    if (s->last - s->p < 4) {
        s->error = "invalid JSON";
        return -1;
    }

    *cp = 0;

    for (i = 0; i < 4; i++) {
        v = ngx_http_ingest_hex_value(*s->p++);

        if (v < 0) {
            s->error = "invalid JSON";
            return -1;
        }

        *cp = *cp * 16 + v;
    }

    return 0;
}


/* one digit or more: a fraction's or an exponent's */

static int
ngx_http_ingest_scan_digits(ngx_http_ingest_scan_t *s)
{
    if (s->p == s->last || *s->p < '0' || *s->p > '9') {
        s->error = "invalid JSON";
        return -1;
    }

    while (s->p < s->last && *s->p >= '0' && *s->p <= '9') {
        s->p++;
    }

    return 0;
}


/*
 * A number in JSON's grammar.  *integer: no fraction, no exponent, and
 * within the signed 64-bit range.
 */

static int
ngx_http_ingest_scan_number(ngx_http_ingest_scan_t *s, int *integer)
{
    int       negative;
    uint64_t  m, limit;

    negative = 0;
    m = 0;
    *integer = 1;

    if (*s->p == '-') {
        negative = 1;
        s->p++;
    }

    if (s->p == s->last || *s->p < '0' || *s->p > '9') {
        s->error = "invalid JSON";
        return -1;
    }

    limit = negative ? (uint64_t) INT64_MAX + 1 : (uint64_t) INT64_MAX;

    if (*s->p == '0') {
        s->p++;

    } else {
        while (s->p < s->last && *s->p >= '0' && *s->p <= '9') {
            if (m > (limit - (*s->p - '0')) / 10) {
                *integer = 0;       /* valid JSON, too big for int */
            }

            m = m * 10 + (*s->p - '0');
            s->p++;
        }
    }

    if (s->p < s->last && *s->p == '.') {
        *integer = 0;
        s->p++;

        if (ngx_http_ingest_scan_digits(s) != 0) {
            return -1;
        }
    }

    if (s->p < s->last && (*s->p == 'e' || *s->p == 'E')) {
        *integer = 0;
        s->p++;

        if (s->p < s->last && (*s->p == '+' || *s->p == '-')) {
            s->p++;
        }

        if (ngx_http_ingest_scan_digits(s) != 0) {
            return -1;
        }
    }

    return 0;
}
