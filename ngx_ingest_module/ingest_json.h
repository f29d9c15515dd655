
/*
 * Copyright (C) ngx_ingest developers
 * SPDX-License-Identifier: BSD-2-Clause
 *
 * What JSON's readers share, module and consumer alike: plain C.
 */

#ifndef _INGEST_JSON_H_INCLUDED_
#define _INGEST_JSON_H_INCLUDED_


#include <stddef.h>


/*
 * The byte a one-character escape stands for ("\n" is '\n'), or -1 when
 * "\<ch>" is no such escape ("\u" has four hex digits of its own).
 */

static inline int
ingest_json_unescape(unsigned char ch)
{
    switch (ch) {
    case '"':
    case '\\':
    case '/':
        return ch;
    case 'b':
        return '\b';
    case 'f':
        return '\f';
    case 'n':
        return '\n';
    case 'r':
        return '\r';
    case 't':
        return '\t';
    default:
        return -1;
    }
}


/*
 * The length of the UTF-8 sequence at p (p[0] >= 0x80, avail bytes from
 * p on) as RFC 3629 has it, and PostgreSQL takes it: no overlong form, no
 * surrogate, nothing past U+10FFFF; 0 if it is no such sequence.
 */

static inline size_t
ingest_json_utf8_seq(const unsigned char *p, size_t avail)
{
    size_t         i, need;
    unsigned char  lo, hi;

    /* the lead byte sets the count and the second byte's bounds */

    lo = 0x80;
    hi = 0xbf;

    if (p[0] >= 0xc2 && p[0] <= 0xdf) {
        need = 1;

    } else if (p[0] >= 0xe0 && p[0] <= 0xef) {
        need = 2;
        lo = (p[0] == 0xe0) ? 0xa0 : 0x80;
        hi = (p[0] == 0xed) ? 0x9f : 0xbf;

    } else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
        need = 3;
        lo = (p[0] == 0xf0) ? 0x90 : 0x80;
        hi = (p[0] == 0xf4) ? 0x8f : 0xbf;

    } else {
        return 0;
    }

    if (avail <= need || p[1] < lo || p[1] > hi) {
        return 0;
    }

    for (i = 2; i <= need; i++) {
        if (p[i] < 0x80 || p[i] > 0xbf) {
            return 0;
        }
    }

    return need + 1;
}


#endif /* _INGEST_JSON_H_INCLUDED_ */
