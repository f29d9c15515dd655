
/*
 * Copyright (C) ngx_ingest developers
 *
 * libFuzzer target for the batch decoder: no input crashes it or reads
 * past its end, and a batch it accepts, written again by the encoder,
 * decodes to the same thing.
 */


#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../ingest_wire.h"


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char                 err[128];
    size_t               i;
    ingest_wire_buf_t    b;
    ingest_wire_batch_t  one, two;

    if (ingest_wire_decode((const char *) data, size, &one, err, sizeof(err))
        != INGEST_WIRE_OK)
    {
        return 0;
    }

    memset(&b, 0, sizeof(b));

    if (ingest_wire_counters_begin(&b, one.producer, one.seq, one.ts)
        != INGEST_WIRE_OK)
    {
        abort();
    }

    for (i = 0; i < one.ncounts; i++) {
        if (ingest_wire_counters_add(&b,
                                     (const unsigned char *) one.counts[i].key,
                                     one.counts[i].len, one.counts[i].value)
            != INGEST_WIRE_OK)
        {
            abort();
        }
    }

    if (ingest_wire_counters_end(&b) != INGEST_WIRE_OK
        || ingest_wire_decode(b.data, b.len, &two, err, sizeof(err))
           != INGEST_WIRE_OK
        || two.ncounts != one.ncounts || two.seq != one.seq
        || two.ts != one.ts || strcmp(two.producer, one.producer) != 0)
    {
        abort();
    }

    for (i = 0; i < one.ncounts; i++) {
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

    return 0;
}
