
/*
 * Copyright (C) ngx_ingest developers
 * SPDX-License-Identifier: BSD-2-Clause
 *
 * The counters body parsers, fed bytes directly.  Every case is parsed
 * whole and split at every possible point (and byte by byte), since nginx
 * may hand a body over in any number of buffers; the outcome must be the
 * same each time.
 */


#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "../ngx_http_ingest_parse.h"


#define MAX_KEY  16


typedef struct {
    char      out[4096];
    size_t    len;
} collect_t;


typedef struct {
    unsigned     kind;
    const char  *body;
    const char  *expect;       /* "k=v;k=v;" or "ERR:<error>@<at>" */
} parse_case_t;


static int
collect_pair(void *data, u_char *key, size_t len, int64_t value)
{
    collect_t  *c = data;

    c->len += snprintf(c->out + c->len, sizeof(c->out) - c->len,
                       "%.*s=%lld;", (int) len, (char *) key,
                       (long long) value);
    return 0;
}


/* splits: 0 whole; n > 0 one split at byte n; -1 byte by byte */

static void
run(unsigned kind, const char *body, size_t blen, long split, char *result,
    size_t rlen)
{
    size_t                    i;
    u_char                    key[MAX_KEY];
    u_char                   *copy;
    collect_t                 c;
    ngx_http_ingest_parser_t  p;

    c.len = 0;
    c.out[0] = '\0';

    /* a heap copy of each piece, so ASan sees any read past its end */

    copy = malloc(blen + 1);
    memcpy(copy, body, blen);

    ngx_http_ingest_parse_init(&p, kind, key, sizeof(key), collect_pair, &c);

    if (split == 0) {
        ngx_http_ingest_parse(&p, copy, copy + blen);

    } else if (split > 0) {
        ngx_http_ingest_parse(&p, copy, copy + split);
        ngx_http_ingest_parse(&p, copy + split, copy + blen);

    } else {
        for (i = 0; i < blen; i++) {
            u_char  *one = malloc(1);

            *one = copy[i];
            ngx_http_ingest_parse(&p, one, one + 1);
            free(one);
        }
    }

    ngx_http_ingest_parse_finish(&p);
    free(copy);

    if (p.error) {
        snprintf(result, rlen, "ERR:%s@%lld", p.error, (long long) p.error_at);

    } else {
        snprintf(result, rlen, "%s", c.out);
    }
}


static const parse_case_t  cases[] = {

    /* form */
    { NGX_HTTP_INGEST_FORM, "a=1&b=2", "a=1;b=2;" },
    { NGX_HTTP_INGEST_FORM, "a=1&a=2", "a=1;a=2;" },
    { NGX_HTTP_INGEST_FORM, "page%3Ahome=1&stock=-2",
      "page:home=1;stock=-2;" },
    { NGX_HTTP_INGEST_FORM, "a+b=%2D5", "a b=-5;" },
    { NGX_HTTP_INGEST_FORM, "%c3%a9=007", "\xc3\xa9=7;" },
    { NGX_HTTP_INGEST_FORM, "a=9223372036854775807", "a=9223372036854775807;" },
    { NGX_HTTP_INGEST_FORM, "a=9223372036854775808",
      "ERR:integer out of range@20" },
    { NGX_HTTP_INGEST_FORM, "a=-9223372036854775808",
      "a=-9223372036854775808;" },
    { NGX_HTTP_INGEST_FORM, "a=-9223372036854775809",
      "ERR:integer out of range@21" },
    { NGX_HTTP_INGEST_FORM, "", "ERR:empty body@0" },
    { NGX_HTTP_INGEST_FORM, "=1", "ERR:empty key@0" },
    { NGX_HTTP_INGEST_FORM, "a=", "ERR:empty value@2" },
    { NGX_HTTP_INGEST_FORM, "a=1&&b=2", "ERR:empty pair@4" },
    { NGX_HTTP_INGEST_FORM, "&a=1", "ERR:empty pair@0" },
    { NGX_HTTP_INGEST_FORM, "a=1&", "ERR:empty pair@4" },
    { NGX_HTTP_INGEST_FORM, "a", "ERR:missing '='@1" },
    { NGX_HTTP_INGEST_FORM, "a&b=1", "ERR:missing '='@1" },
    { NGX_HTTP_INGEST_FORM, "a=1=2", "ERR:unexpected '='@3" },
    { NGX_HTTP_INGEST_FORM, "a=%zz", "ERR:invalid percent escape@2" },
    { NGX_HTTP_INGEST_FORM, "a=1%", "ERR:invalid percent escape@3" },
    { NGX_HTTP_INGEST_FORM, "a=1%4", "ERR:invalid percent escape@3" },
    { NGX_HTTP_INGEST_FORM, "+", "ERR:missing '='@1" },
    { NGX_HTTP_INGEST_FORM, "a=+1", "ERR:invalid integer@2" },
    { NGX_HTTP_INGEST_FORM, "a=1x", "ERR:invalid integer@3" },
    { NGX_HTTP_INGEST_FORM, "a=-", "ERR:invalid integer@3" },
    { NGX_HTTP_INGEST_FORM, "a=--1", "ERR:invalid integer@3" },
    { NGX_HTTP_INGEST_FORM, "a=1.5", "ERR:invalid integer@3" },
    { NGX_HTTP_INGEST_FORM, "0123456789abcdef=1", "0123456789abcdef=1;" },
    { NGX_HTTP_INGEST_FORM, "0123456789abcdefg=1", "ERR:key too long@16" },
    { NGX_HTTP_INGEST_FORM, "%ff=1", "ERR:invalid UTF-8 in key@0" },
    { NGX_HTTP_INGEST_FORM, "%c3=1", "ERR:invalid UTF-8 in key@3" },
    { NGX_HTTP_INGEST_FORM, "%c0%80=1", "ERR:invalid UTF-8 in key@0" },
    { NGX_HTTP_INGEST_FORM, "%ed%a0%80=1", "ERR:invalid UTF-8 in key@3" },
    { NGX_HTTP_INGEST_FORM, "%f4%90%80%80=1", "ERR:invalid UTF-8 in key@3" },
    { NGX_HTTP_INGEST_FORM, "%f0%9f%98%80=1", "\xf0\x9f\x98\x80=1;" },
    { NGX_HTTP_INGEST_FORM, "a%0ab=1", "ERR:control character in key@1" },
    { NGX_HTTP_INGEST_FORM, "a%7f=1", "ERR:control character in key@1" },
    { NGX_HTTP_INGEST_FORM, "a%26b=1", "a&b=1;" },

    /* key_value */
    { NGX_HTTP_INGEST_KEY_VALUE, "key=test1&value=1", "test1=1;" },
    { NGX_HTTP_INGEST_KEY_VALUE, "value=-3&key=a%20b", "a b=-3;" },
    { NGX_HTTP_INGEST_KEY_VALUE, "key=a", "ERR:missing field \"value\"@5" },
    { NGX_HTTP_INGEST_KEY_VALUE, "value=1", "ERR:missing field \"key\"@7" },
    { NGX_HTTP_INGEST_KEY_VALUE, "key=a&key=b&value=1",
      "ERR:duplicate field \"key\"@6" },
    { NGX_HTTP_INGEST_KEY_VALUE, "key=a&value=1&value=2",
      "ERR:duplicate field \"value\"@14" },
    { NGX_HTTP_INGEST_KEY_VALUE, "key=a&value=1&extra=2",
      "ERR:unknown field@14" },
    { NGX_HTTP_INGEST_KEY_VALUE, "key=&value=1", "ERR:empty key@4" },
    { NGX_HTTP_INGEST_KEY_VALUE, "key=a&value=", "ERR:empty value@12" },
    { NGX_HTTP_INGEST_KEY_VALUE, "key=a&value=x", "ERR:invalid integer@12" },
    { NGX_HTTP_INGEST_KEY_VALUE, "=a", "ERR:empty key@0" },
    { NGX_HTTP_INGEST_KEY_VALUE, "k%65y=x&value=2", "x=2;" },

    /* json */
    { NGX_HTTP_INGEST_JSON, "{\"a\":1,\"b\":-2}", "a=1;b=-2;" },
    { NGX_HTTP_INGEST_JSON, " {\n\"a\" : 1 ,\r\n\t\"a\":2 } \n", "a=1;a=2;" },
    { NGX_HTTP_INGEST_JSON, "{}", "" },
    { NGX_HTTP_INGEST_JSON, "{\"page:home\":0}", "page:home=0;" },
    { NGX_HTTP_INGEST_JSON, "{\"a\\\"b\\\\c\\/\":1}", "a\"b\\c/=1;" },
    { NGX_HTTP_INGEST_JSON, "{\"\\u00e9\\ud83d\\ude00\":1}",
      "\xc3\xa9\xf0\x9f\x98\x80=1;" },
    { NGX_HTTP_INGEST_JSON, "{\"a\":-0}", "a=0;" },
    { NGX_HTTP_INGEST_JSON, "{\"a\":9223372036854775807}",
      "a=9223372036854775807;" },
    { NGX_HTTP_INGEST_JSON, "{\"a\":-9223372036854775808}",
      "a=-9223372036854775808;" },
    { NGX_HTTP_INGEST_JSON, "{\"a\":9223372036854775808}",
      "ERR:integer out of range@23" },
    { NGX_HTTP_INGEST_JSON, "", "ERR:empty body@0" },
    { NGX_HTTP_INGEST_JSON, "  ", "ERR:expected '{'@2" },
    { NGX_HTTP_INGEST_JSON, "[1]", "ERR:expected '{'@0" },
    { NGX_HTTP_INGEST_JSON, "{\"a\":1", "ERR:unterminated object@6" },
    { NGX_HTTP_INGEST_JSON, "{\"a\":1,}", "ERR:expected string key@7" },
    { NGX_HTTP_INGEST_JSON, "{\"a\" 1}", "ERR:expected ':'@5" },
    { NGX_HTTP_INGEST_JSON, "{\"a\":1 2}", "ERR:expected ',' or '}'@7" },
    { NGX_HTTP_INGEST_JSON, "{\"a\":1.5}", "ERR:value is not an integer@6" },
    { NGX_HTTP_INGEST_JSON, "{\"a\":1e3}", "ERR:value is not an integer@6" },
    { NGX_HTTP_INGEST_JSON, "{\"a\":\"1\"}",
      "ERR:value is not an integer@5" },
    { NGX_HTTP_INGEST_JSON, "{\"a\":true}",
      "ERR:value is not an integer@5" },
    { NGX_HTTP_INGEST_JSON, "{\"a\":null}",
      "ERR:value is not an integer@5" },
    { NGX_HTTP_INGEST_JSON, "{\"a\":01}", "ERR:invalid integer@6" },
    { NGX_HTTP_INGEST_JSON, "{\"a\":+1}", "ERR:invalid JSON@5" },
    { NGX_HTTP_INGEST_JSON, "{\"a\":-}", "ERR:invalid integer@6" },
    { NGX_HTTP_INGEST_JSON, "{\"a\":1}x", "ERR:trailing data after object@7" },
    { NGX_HTTP_INGEST_JSON, "{\"\":1}", "ERR:empty key@2" },
    { NGX_HTTP_INGEST_JSON, "{\"a\\x\":1}", "ERR:invalid escape@3" },
    { NGX_HTTP_INGEST_JSON, "{\"a\\n\":1}",
      "ERR:control character in key@3" },
    { NGX_HTTP_INGEST_JSON, "{\"a\\u0000\":1}",
      "ERR:control character in key@3" },
    { NGX_HTTP_INGEST_JSON, "{\"\\ud800\":1}", "ERR:invalid UTF-8 in key@8" },
    { NGX_HTTP_INGEST_JSON, "{\"\\udc00\":1}", "ERR:invalid UTF-8 in key@2" },
    { NGX_HTTP_INGEST_JSON, "{\"\\u12g4\":1}", "ERR:invalid escape@2" },
    { NGX_HTTP_INGEST_JSON, "{\"\xff\":1}", "ERR:invalid UTF-8 in key@2" },
    { NGX_HTTP_INGEST_JSON, "{\"0123456789abcdefg\":1}",
      "ERR:key too long@18" },
};


/* the body as a TAP-safe name: control bytes as \xNN */

static const char *
printable(const char *body)
{
    size_t       n;
    static char  buf[1024];

    for (n = 0; *body && n < sizeof(buf) - 5; body++) {
        if ((unsigned char) *body < 0x20 || *body == '#') {
            n += snprintf(buf + n, 5, "\\x%02x", (unsigned char) *body);

        } else {
            buf[n++] = *body;
        }
    }

    buf[n] = '\0';

    return buf;
}


int
main(void)
{
    char         whole[4096], other[4096];
    long         split;
    size_t       i, len;
    int          same;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        len = strlen(cases[i].body);

        run(cases[i].kind, cases[i].body, len, 0, whole, sizeof(whole));

        if (!tap_ok(strcmp(whole, cases[i].expect) == 0,
                    "kind %u \"%s\"", cases[i].kind,
                    printable(cases[i].body)))
        {
            tap_diag("got      %s", whole);
            tap_diag("expected %s", cases[i].expect);
        }

        same = 1;

        for (split = -1; split < (long) len; split++) {
            if (split == 0) {
                continue;
            }

            run(cases[i].kind, cases[i].body, len, split, other,
                sizeof(other));

            if (strcmp(whole, other) != 0) {
                tap_diag("split %ld gave %s", split, other);
                same = 0;
            }
        }

        tap_ok(same, "kind %u \"%s\" the same at every split",
               cases[i].kind, printable(cases[i].body));
    }

    return tap_done();
}
