
/*
 * Copyright (C) ngx_ingest developers
 * SPDX-License-Identifier: BSD-2-Clause
 *
 * How far a run of "plain" bytes goes: the bytes within [lo, hi] that are
 * none of up to four special bytes.  Keys are mostly such runs (uuids,
 * names), so the form parser and the batch writer skip them sixteen
 * bytes at a time with SSE2 (every x86-64 has it) instead of one table
 * look-up per byte.  Plain C, shared by the module and the consumer.
 */

#ifndef _INGEST_SPAN_H_INCLUDED_
#define _INGEST_SPAN_H_INCLUDED_


#include <stddef.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif


/* give a special twice (or a byte outside [lo, hi]) to use fewer */

static inline size_t
ingest_span(const unsigned char *p, const unsigned char *end,
    unsigned char lo, unsigned char hi, unsigned char c1, unsigned char c2,
    unsigned char c3, unsigned char c4)
{
    const unsigned char  *s;

    s = p;

#if defined(__SSE2__)
    {
        unsigned  bad;
        __m128i   v, t, ok, base, range, s1, s2, s3, s4;

        base = _mm_set1_epi8((char) lo);
        range = _mm_set1_epi8((char) (hi - lo));
        s1 = _mm_set1_epi8((char) c1);
        s2 = _mm_set1_epi8((char) c2);
        s3 = _mm_set1_epi8((char) c3);
        s4 = _mm_set1_epi8((char) c4);

        while (end - s >= 16) {
            v = _mm_loadu_si128((const __m128i *) s);

            /* lo <= byte <= hi  <=>  max(byte - lo, hi - lo) == hi - lo */

            t = _mm_sub_epi8(v, base);
            ok = _mm_cmpeq_epi8(_mm_max_epu8(t, range), range);

            t = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, s1),
                                          _mm_cmpeq_epi8(v, s2)),
                             _mm_or_si128(_mm_cmpeq_epi8(v, s3),
                                          _mm_cmpeq_epi8(v, s4)));

            bad = ~(unsigned) _mm_movemask_epi8(_mm_andnot_si128(t, ok))
                  & 0xffff;

            if (bad) {
                return (size_t) (s - p) + (size_t) __builtin_ctz(bad);
            }

            s += 16;
        }
    }
#endif

    while (s < end && *s >= lo && *s <= hi
           && *s != c1 && *s != c2 && *s != c3 && *s != c4)
    {
        s++;
    }

    return (size_t) (s - p);
}


#endif /* _INGEST_SPAN_H_INCLUDED_ */
