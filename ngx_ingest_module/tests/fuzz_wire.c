
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


/*
 * counts[first, first + n) written again: the totals into counts, the
 * buckets (runs of one resolution and start) into buckets; in order[]
 * the entries as a decoder reads them back, totals first.
 */

static void
encode_range(const ingest_wire_batch_t *one, size_t first, size_t n,
    ingest_wire_buf_t *counts, ingest_wire_buf_t *buckets, size_t *order,
    size_t *norder)
{
    size_t                      i;
    int                         open;
    const ingest_wire_count_t  *c, *prev;

    for (i = first; i < first + n; i++) {
        c = &one->counts[i];

        if (c->resolution == 0) {
            if (ingest_wire_counters_add(counts, (const unsigned char *) c->key,
                                         c->len, c->value)
                != INGEST_WIRE_OK)
            {
                abort();
            }

            order[(*norder)++] = i;
        }
    }

    open = 0;
    prev = NULL;

    for (i = first; i < first + n; i++) {
        c = &one->counts[i];

        if (c->resolution == 0) {
            continue;
        }

        /* one resolution an element: it decodes to the same entries */

        if (prev == NULL || prev->resolution != c->resolution
            || prev->start != c->start)
        {
            if ((open && ingest_wire_bucket_end(buckets) != INGEST_WIRE_OK)
                || ingest_wire_bucket_begin(buckets, &c->resolution, 1,
                                            c->start)
                   != INGEST_WIRE_OK)
            {
                abort();
            }

            open = 1;
        }

        if (ingest_wire_counters_add(buckets, (const unsigned char *) c->key,
                                     c->len, c->value)
            != INGEST_WIRE_OK)
        {
            abort();
        }

        order[(*norder)++] = i;
        prev = c;
    }

    if (open && ingest_wire_bucket_end(buckets) != INGEST_WIRE_OK) {
        abort();
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char                 err[128];
    size_t               i, j, norder, *order;
    ingest_wire_buf_t    b, reqs, bk, rbk;
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

    order = malloc((one.ntotal + 1) * sizeof(size_t));
    if (order == NULL) {
        abort();
    }

    norder = 0;

    memset(&b, 0, sizeof(b));
    memset(&reqs, 0, sizeof(reqs));
    memset(&bk, 0, sizeof(bk));
    memset(&rbk, 0, sizeof(rbk));

    if (ingest_wire_counters_begin(&b, one.version, one.producer, one.seq,
                                   one.ts)
        != INGEST_WIRE_OK)
    {
        abort();
    }

    /* the summed counts and buckets; the requests' own come in reqs */

    encode_range(&one, 0, one.ncounts, &b, &bk, order, &norder);

    for (i = 0; i < one.nrequests; i++) {
        if (ingest_wire_request_begin(&reqs,
                                      (const unsigned char *)
                                          one.requests[i].id,
                                      one.requests[i].id_len)
            != INGEST_WIRE_OK)
        {
            abort();
        }

        rbk.len = 0;

        encode_range(&one, one.requests[i].first, one.requests[i].n, &reqs,
                     &rbk, order, &norder);

        if (ingest_wire_request_end_buckets(&reqs, rbk.len ? &rbk : NULL)
            != INGEST_WIRE_OK)
        {
            abort();
        }
    }

    if (norder != one.ntotal) {
        abort();
    }

    if (ingest_wire_counters_end_buckets(&b, bk.len ? &bk : NULL,
                                         one.nrequests ? &reqs : NULL)
           != INGEST_WIRE_OK
        || ingest_wire_decode(b.data, b.len, &two, err, sizeof(err))
           != INGEST_WIRE_OK
        || two.ncounts != one.ncounts || two.ntotal != one.ntotal
        || two.nbuckets != one.nbuckets
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
        j = order[i];

        if (one.counts[j].len != two.counts[i].len
            || memcmp(one.counts[j].key, two.counts[i].key,
                      one.counts[j].len) != 0
            || one.counts[j].value != two.counts[i].value
            || one.counts[j].resolution != two.counts[i].resolution
            || one.counts[j].start != two.counts[i].start)
        {
            abort();
        }
    }

    free(order);
    ingest_wire_batch_free(&one);
    ingest_wire_batch_free(&two);
    ingest_wire_buf_free(&b);
    ingest_wire_buf_free(&reqs);
    ingest_wire_buf_free(&bk);
    ingest_wire_buf_free(&rbk);

    return 0;
}
