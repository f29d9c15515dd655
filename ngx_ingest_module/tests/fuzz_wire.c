
/*
 * Copyright (C) ngx_ingest developers
 * SPDX-License-Identifier: BSD-2-Clause
 *
 * libFuzzer target for the batch decoder: no input crashes it or reads
 * past its end, and a batch it accepts, written again by the encoder,
 * decodes to the same thing.
 */


#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../ingest_wire_decode.h"


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char                 err[128];
    size_t               i;
    size_t               j;
    ingest_wire_buf_t    b, reqs;
    ingest_wire_batch_t  one, two;

    if (ingest_wire_decode((const char *) data, size, &one, err, sizeof(err))
        != INGEST_WIRE_OK)
    {
        return 0;
    }

    if (one.kind == INGEST_WIRE_KIND_RECORDS) {
        /* rows are checked by decoding; re-encoding is the module's */
        ingest_wire_batch_free(&one);
        return 0;
    }

    memset(&b, 0, sizeof(b));
    memset(&reqs, 0, sizeof(reqs));

    for (i = 0; i < one.nrequests; i++) {
        if (ingest_wire_request_begin(&reqs,
                                      (const unsigned char *)
                                          one.requests[i].id,
                                      one.requests[i].id_len)
            != INGEST_WIRE_OK)
        {
            abort();
        }

        for (j = one.requests[i].first;
             j < one.requests[i].first + one.requests[i].n;
             j++)
        {
            if (ingest_wire_counters_add(&reqs,
                                         (const unsigned char *)
                                             one.counts[j].key,
                                         one.counts[j].len,
                                         one.counts[j].value)
                != INGEST_WIRE_OK)
            {
                abort();
            }
        }

        if (ingest_wire_request_end(&reqs) != INGEST_WIRE_OK) {
            abort();
        }
    }

    if (ingest_wire_counters_begin(&b, one.version, one.producer, one.seq,
                                   one.ts)
        != INGEST_WIRE_OK)
    {
        abort();
    }

    /* the summed counts; the requests' own come in reqs */

    for (i = 0; i < one.ncounts; i++) {
        if (ingest_wire_counters_add(&b,
                                     (const unsigned char *) one.counts[i].key,
                                     one.counts[i].len, one.counts[i].value)
            != INGEST_WIRE_OK)
        {
            abort();
        }
    }

    if (ingest_wire_counters_end(&b, one.nrequests ? &reqs : NULL)
           != INGEST_WIRE_OK
        || ingest_wire_decode(b.data, b.len, &two, err, sizeof(err))
           != INGEST_WIRE_OK
        || two.ncounts != one.ncounts || two.ntotal != one.ntotal
        || two.nrequests != one.nrequests || two.seq != one.seq
        || two.ts != one.ts || strcmp(two.producer, one.producer) != 0)
    {
        abort();
    }

    for (i = 0; i < one.nrequests; i++) {
        if (one.requests[i].id_len != two.requests[i].id_len
            || memcmp(one.requests[i].id, two.requests[i].id,
                      one.requests[i].id_len) != 0
            || one.requests[i].n != two.requests[i].n)
        {
            abort();
        }
    }

    for (i = 0; i < one.ntotal; i++) {
        if (one.counts[i].len != two.counts[i].len
            || memcmp(one.counts[i].key, two.counts[i].key,
                      one.counts[i].len) != 0
            || one.counts[i].value != two.counts[i].value)
        {
            abort();
        }
    }

    ingest_wire_batch_free(&one);
    ingest_wire_batch_free(&two);
    ingest_wire_buf_free(&b);
    ingest_wire_buf_free(&reqs);

    return 0;
}
