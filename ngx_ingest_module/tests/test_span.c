
/*
 * Copyright (C) ngx_ingest developers
 * SPDX-License-Identifier: BSD-2-Clause
 *
 * ingest_span() (SSE2 sixteen bytes at a time, then byte by byte) against
 * a byte-at-a-time model: every length up to 70, a stop byte at every
 * place, and random bytes, for the two sets the project uses.
 */


#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "../ingest_span.h"


typedef struct {
    const char     *name;
    unsigned char   lo, hi, c[4];
} set_t;


static const set_t  sets[] = {
    { "form key", 0x21, 0x7e, { '&', '=', '%', '+' } },
    { "wire string", 0x20, 0xff, { '"', '\\', '"', '"' } },
};


static size_t
model(const set_t *s, const unsigned char *p, size_t len)
{
    size_t  i;

    for (i = 0; i < len; i++) {
        if (p[i] < s->lo || p[i] > s->hi || p[i] == s->c[0]
            || p[i] == s->c[1] || p[i] == s->c[2] || p[i] == s->c[3])
        {
            break;
        }
    }

    return i;
}


static size_t
span(const set_t *s, const unsigned char *p, size_t len)
{
    return ingest_span(p, p + len, s->lo, s->hi, s->c[0], s->c[1], s->c[2],
                       s->c[3]);
}


int
main(void)
{
    int            bad;
    size_t         i, len, at, k;
    const set_t   *s;
    unsigned char  buf[80], stop[] = { 0x00, 0x1f, 0x20, 0x7f, 0x80, 0xff,
                                       '&', '=', '%', '+', '"', '\\' };

    srand(7);

    for (k = 0; k < sizeof(sets) / sizeof(sets[0]); k++) {
        s = &sets[k];
        bad = 0;

        /* a plain run of every length, then each stop byte at each place */

        for (len = 0; len <= 70; len++) {
            memset(buf, 'a', len);

            if (span(s, buf, len) != len) {
                bad++;
            }

            for (at = 0; at < len; at++) {
                for (i = 0; i < sizeof(stop); i++) {
                    memset(buf, 'a', len);
                    buf[at] = stop[i];

                    if (span(s, buf, len) != model(s, buf, len)) {
                        bad++;
                    }
                }
            }
        }

        tap_ok(bad == 0, "%s: every length and stop place", s->name);

        bad = 0;

        for (i = 0; i < 200000; i++) {
            len = rand() % 70;

            for (at = 0; at < len; at++) {
                /* mostly plain bytes, so that runs are long */
                buf[at] = (rand() % 8) ? (unsigned char) ('0' + rand() % 64)
                                       : (unsigned char) rand();
            }

            if (span(s, buf, len) != model(s, buf, len) && bad++ == 0) {
                tap_diag("%s: length %zu: span %zu, model %zu", s->name, len,
                         span(s, buf, len), model(s, buf, len));
            }
        }

        tap_ok(bad == 0, "%s: random bytes", s->name);
    }

    return tap_done();
}
