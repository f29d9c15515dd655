
/*
 * Copyright (C) ngx_ingest developers
 * SPDX-License-Identifier: BSD-2-Clause
 *
 * What JSON's readers share, module and consumer alike: plain C.
 */

#ifndef _INGEST_JSON_H_INCLUDED_
#define _INGEST_JSON_H_INCLUDED_


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


#endif /* _INGEST_JSON_H_INCLUDED_ */
