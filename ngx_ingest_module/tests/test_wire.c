
/*
 * Copyright (C) ngx_ingest developers
 * SPDX-License-Identifier: BSD-2-Clause
 *
 * The batch format: what the module writes, the consumer reads back
 * exactly (int64 edges, escapes, UTF-8); the shared fixtures in
 * t/fixtures/wire decode (ok-*) or are refused (bad-*), as the consumer
 * would treat them.
 */


#include <dirent.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "../ingest_wire_decode.h"


static char *
slurp(const char *path, size_t *len)
{
    FILE  *f;
    char  *data;
    long   n;

    f = fopen(path, "rb");
    if (f == NULL) {
        return NULL;
    }

    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);

    data = malloc(n ? n : 1);

    if (data != NULL && fread(data, 1, n, f) != (size_t) n) {
        free(data);
        data = NULL;
    }

    fclose(f);
    *len = n;

    return data;
}


static void
roundtrip(void)
{
    int                   ok;
    char                  err[128], *copy;
    size_t                i;
    ingest_wire_buf_t     b;
    ingest_wire_batch_t   batch;

    static const struct {
        const char  *key;
        int64_t      value;
    } counts[] = {
        { "page:home", 118 },
        { "stock", -2 },
        { "max", INT64_MAX },
        { "min", INT64_MIN },
        { "quote\"back\\slash", 0 },
        { "tab\tnew\nline\x01", 7 },
        { "\xc3\xa9\xf0\x9f\x98\x80", 9007199254740993LL },
    };

    memset(&b, 0, sizeof(b));

    ok = ingest_wire_counters_begin(&b, 1, "host/12/345", 42,
                                    1763769600123LL)
         == INGEST_WIRE_OK;

    for (i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
        ok &= ingest_wire_counters_add(&b,
                                       (const unsigned char *) counts[i].key,
                                       strlen(counts[i].key), counts[i].value)
              == INGEST_WIRE_OK;
    }

    ok &= ingest_wire_counters_end(&b, NULL) == INGEST_WIRE_OK;

    tap_ok(ok, "encode a batch of %zu counts", i);
    tap_diag("%.*s", (int) b.len, b.data);

    /* an exact-size heap copy, so ASan sees a read past the end */

    copy = malloc(b.len);
    memcpy(copy, b.data, b.len);

    if (!tap_ok(ingest_wire_decode(copy, b.len, &batch, err, sizeof(err))
                == INGEST_WIRE_OK, "decode it")) {
        tap_diag("%s", err);
        free(copy);
        ingest_wire_buf_free(&b);
        return;
    }

    tap_ok(batch.version == 1 && batch.kind == INGEST_WIRE_KIND_COUNTERS
           && strcmp(batch.producer, "host/12/345") == 0 && batch.seq == 42
           && batch.ts == 1763769600123LL, "header fields survive");

    ok = batch.ncounts == sizeof(counts) / sizeof(counts[0]);

    for (i = 0; ok && i < batch.ncounts; i++) {
        ok = batch.counts[i].len == strlen(counts[i].key)
             && memcmp(batch.counts[i].key, counts[i].key,
                       batch.counts[i].len) == 0
             && batch.counts[i].value == counts[i].value;
    }

    tap_ok(ok, "every key and value survives exactly");

    ingest_wire_batch_free(&batch);
    free(copy);

    /* an empty batch, and one reused buffer */

    ok = ingest_wire_counters_begin(&b, 1, "p", 1, 0) == INGEST_WIRE_OK
         && ingest_wire_counters_end(&b, NULL) == INGEST_WIRE_OK
         && ingest_wire_decode(b.data, b.len, &batch, err, sizeof(err))
            == INGEST_WIRE_OK
         && batch.ncounts == 0;

    tap_ok(ok, "an empty batch, in a reused buffer");

    ingest_wire_batch_free(&batch);
    ingest_wire_buf_free(&b);
}


/* version 2: idempotent requests kept apart from the summed counts */

static void
requests(void)
{
    int                   ok;
    char                  err[128];
    ingest_wire_buf_t     b, reqs;
    ingest_wire_batch_t   batch;

    memset(&b, 0, sizeof(b));
    memset(&reqs, 0, sizeof(reqs));

    ok = ingest_wire_request_begin(&reqs, (const unsigned char *) "id-1", 4)
         == INGEST_WIRE_OK
         && ingest_wire_counters_add(&reqs, (const unsigned char *) "a", 1, 5)
            == INGEST_WIRE_OK
         && ingest_wire_counters_add(&reqs, (const unsigned char *) "b", 1,
                                     -1) == INGEST_WIRE_OK
         && ingest_wire_request_end(&reqs) == INGEST_WIRE_OK
         && ingest_wire_request_begin(&reqs, (const unsigned char *) "id\"2",
                                      4) == INGEST_WIRE_OK
         && ingest_wire_counters_add(&reqs, (const unsigned char *) "a", 1, 7)
            == INGEST_WIRE_OK
         && ingest_wire_request_end(&reqs) == INGEST_WIRE_OK
         && ingest_wire_counters_begin(&b, 2, "p/1/2", 3, 9) == INGEST_WIRE_OK
         && ingest_wire_counters_add(&b, (const unsigned char *) "s", 1, 100)
            == INGEST_WIRE_OK
         && ingest_wire_counters_end(&b, &reqs) == INGEST_WIRE_OK;

    tap_ok(ok, "encode a version 2 batch with two requests");
    tap_diag("%.*s", (int) b.len, b.data);

    tap_ok(b.len == sizeof("{\"v\":2,\"kind\":\"counters\",\"producer\":"
                           "\"p/1/2\",\"seq\":3,\"ts\":9,\"counts\":"
                           "{\"s\":100},\"requests\":[{\"id\":\"id-1\","
                           "\"counts\":{\"a\":5,\"b\":-1}},{\"id\":"
                           "\"id\\\"2\",\"counts\":{\"a\":7}}]}") - 1
           && memcmp(b.data, "{\"v\":2,\"kind\":\"counters\",\"producer\":"
                     "\"p/1/2\",\"seq\":3,\"ts\":9,\"counts\":"
                     "{\"s\":100},\"requests\":[{\"id\":\"id-1\","
                     "\"counts\":{\"a\":5,\"b\":-1}},{\"id\":"
                     "\"id\\\"2\",\"counts\":{\"a\":7}}]}", b.len) == 0,
           "its exact bytes");

    ok = ingest_wire_decode(b.data, b.len, &batch, err, sizeof(err))
         == INGEST_WIRE_OK;

    if (!tap_ok(ok, "decode it")) {
        tap_diag("%s", err);

    } else {
        tap_ok(batch.version == 2 && batch.ncounts == 1
               && batch.counts[0].value == 100 && batch.nrequests == 2
               && batch.requests[0].id_len == 4
               && memcmp(batch.requests[0].id, "id-1", 4) == 0
               && batch.requests[0].n == 2
               && batch.counts[batch.requests[0].first + 1].value == -1
               && batch.requests[1].id_len == 4
               && memcmp(batch.requests[1].id, "id\"2", 4) == 0
               && batch.requests[1].n == 1
               && batch.counts[batch.requests[1].first].value == 7,
               "the requests come back apart, exactly");

        ingest_wire_batch_free(&batch);
    }

    ingest_wire_buf_free(&b);
    ingest_wire_buf_free(&reqs);
}


static void
buckets(void)
{
    int                   ok;
    char                  err[128];
    const char           *want;
    uint32_t              mh[2] = { 60, 3600 }, d[1] = { 86400 };
    ingest_wire_buf_t     b, bk, reqs, rbk;
    ingest_wire_batch_t   batch;

    memset(&b, 0, sizeof(b));
    memset(&bk, 0, sizeof(bk));
    memset(&reqs, 0, sizeof(reqs));
    memset(&rbk, 0, sizeof(rbk));

    /* two steps of a minute in one hour; a day of its own */

    ok = ingest_wire_bucket_begin(&bk, mh, 2, 1764675600) == INGEST_WIRE_OK
         && ingest_wire_counters_add(&bk, (const unsigned char *) "a", 1, 1)
            == INGEST_WIRE_OK
         && ingest_wire_counters_add(&bk, (const unsigned char *) "b", 1, -2)
            == INGEST_WIRE_OK
         && ingest_wire_bucket_end(&bk) == INGEST_WIRE_OK
         && ingest_wire_bucket_begin(&bk, mh, 2, 1764675660) == INGEST_WIRE_OK
         && ingest_wire_counters_add(&bk, (const unsigned char *) "a", 1, 1)
            == INGEST_WIRE_OK
         && ingest_wire_bucket_end(&bk) == INGEST_WIRE_OK
         && ingest_wire_bucket_begin(&rbk, d, 1, 1764675661) == INGEST_WIRE_OK
         && ingest_wire_counters_add(&rbk, (const unsigned char *) "c", 1, 4)
            == INGEST_WIRE_OK
         && ingest_wire_bucket_end(&rbk) == INGEST_WIRE_OK
         && ingest_wire_request_begin(&reqs, (const unsigned char *) "r", 1)
            == INGEST_WIRE_OK
         && ingest_wire_counters_add(&reqs, (const unsigned char *) "c", 1, 4)
            == INGEST_WIRE_OK
         && ingest_wire_request_end_buckets(&reqs, &rbk) == INGEST_WIRE_OK
         && ingest_wire_counters_begin(&b, 3, "p", 7, 0) == INGEST_WIRE_OK
         && ingest_wire_counters_add(&b, (const unsigned char *) "a", 1, 2)
            == INGEST_WIRE_OK
         && ingest_wire_counters_add(&b, (const unsigned char *) "b", 1, -2)
            == INGEST_WIRE_OK
         && ingest_wire_counters_end_buckets(&b, &bk, &reqs)
            == INGEST_WIRE_OK;

    tap_ok(ok, "encode a version 3 batch with buckets and a request's");

    want = "{\"v\":3,\"kind\":\"counters\",\"producer\":\"p\",\"seq\":7,"
           "\"ts\":0,\"counts\":{\"a\":2,\"b\":-2},\"buckets\":"
           "[[[60,3600],1764675600,{\"a\":1,\"b\":-2}],[[60,3600],"
           "1764675660,{\"a\":1}]],\"requests\":[{\"id\":\"r\","
           "\"counts\":{\"c\":4},\"buckets\":[[[86400],1764675661,"
           "{\"c\":4}]]}]}";

    tap_ok(b.len == strlen(want) && memcmp(b.data, want, b.len) == 0,
           "its exact bytes");
    tap_diag("%.*s", (int) b.len, b.data);

    ok = ingest_wire_decode(b.data, b.len, &batch, err, sizeof(err))
         == INGEST_WIRE_OK;

    if (!tap_ok(ok, "decode it")) {
        tap_diag("%s", err);

    } else {
        /* totals a, b; then a, b at 60 and at 3600; then a at 60, 3600 */
        tap_ok(batch.version == 3 && batch.ncounts == 8
               && batch.nbuckets == 7
               && batch.counts[0].resolution == 0
               && batch.counts[1].resolution == 0
               && batch.counts[2].resolution == 60
               && batch.counts[2].start == 1764675600
               && batch.counts[2].value == 1
               && batch.counts[3].resolution == 60
               && batch.counts[3].value == -2
               && batch.counts[4].resolution == 3600
               && batch.counts[4].start == 1764673200
               && batch.counts[4].len == 1 && batch.counts[4].key[0] == 'a'
               && batch.counts[5].resolution == 3600
               && batch.counts[5].value == -2
               && batch.counts[6].resolution == 60
               && batch.counts[6].start == 1764675660
               && batch.counts[7].resolution == 3600
               && batch.counts[7].start == 1764673200,
               "the summed totals, then each element's counts once per "
               "resolution, each in its bucket (the time floored)");
        tap_ok(batch.nrequests == 1 && batch.requests[0].n == 2
               && batch.counts[batch.requests[0].first].resolution == 0
               && batch.counts[batch.requests[0].first].value == 4
               && batch.counts[batch.requests[0].first + 1].resolution
                  == 86400
               && batch.counts[batch.requests[0].first + 1].start
                  == 1764633600,
               "the request's total and bucket, in its own range");

        ingest_wire_batch_free(&batch);
    }

    /* a batch over the limit is refused unread, saying so */
    {
        char    *big;
        size_t   len;

        len = INGEST_WIRE_MAX_BATCH + 1;
        big = malloc(len);

        if (big != NULL) {
            memset(big, ' ', len);
            ok = ingest_wire_decode(big, len, &batch, err, sizeof(err))
                 == INGEST_WIRE_ERROR;
            tap_ok(ok && strcmp(err, "a batch of 2097153 bytes, over the "
                                "2097152 a reader takes") == 0,
                   "a batch over 2 MB is refused unread");
            tap_diag("%s", err);
            free(big);
        }
    }

    tap_ok(ingest_wire_valid_resolution(1)
           && ingest_wire_valid_resolution(3600)
           && ingest_wire_valid_resolution(86400)
           && !ingest_wire_valid_resolution(0)
           && !ingest_wire_valid_resolution(7)
           && !ingest_wire_valid_resolution(172800)
           && !ingest_wire_valid_resolution(-60),
           "resolutions divide a day");

    ingest_wire_buf_free(&b);
    ingest_wire_buf_free(&bk);
    ingest_wire_buf_free(&reqs);
    ingest_wire_buf_free(&rbk);
}


static void
fixtures(const char *dir)
{
    int                   rc, good;
    char                  path[1024], err[128], *data;
    size_t                len;
    DIR                  *d;
    struct dirent        *de;
    ingest_wire_batch_t   batch;

    d = opendir(dir);

    if (!tap_ok(d != NULL, "open %s", dir)) {
        return;
    }

    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.') {
            continue;
        }

        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);

        data = slurp(path, &len);
        if (data == NULL) {
            tap_ok(0, "read %s", path);
            continue;
        }

        good = strncmp(de->d_name, "ok-", 3) == 0;

        rc = ingest_wire_decode(data, len, &batch, err, sizeof(err));

        tap_ok(good ? rc == INGEST_WIRE_OK : rc == INGEST_WIRE_ERROR,
               "%s %s%s%s", de->d_name, good ? "decodes" : "is refused",
               rc == INGEST_WIRE_OK ? "" : ": ", err);

        if (rc == INGEST_WIRE_OK) {
            ingest_wire_batch_free(&batch);
        }

        if (strcmp(de->d_name, "bad-version-4.json") == 0) {
            tap_ok(strcmp(err, "unsupported batch version 4") == 0,
                   "a newer version is named as such");
        }

        /*
         * PostgreSQL refuses such a producer in every table, dead_batches
         * too: it must be unreadable here, before any store sees it.
         */

        if (strncmp(de->d_name, "bad-producer-", 13) == 0) {
            tap_ok(strcmp(err, "producer is not UTF-8 at byte 36") == 0,
                   "%s: the producer is named", de->d_name);
        }

        if (strcmp(de->d_name, "ok-producer-utf8.json") == 0 && rc == 0) {
            ingest_wire_decode(data, len, &batch, err, sizeof(err));
            tap_ok(strcmp(batch.producer, "h\xc3\xb4te/\xf0\x9f\x98\x80/"
                          "\xc3\xa9") == 0,
                   "a UTF-8 producer, raw and escaped, is read exactly");
            ingest_wire_batch_free(&batch);
        }

        if (strcmp(de->d_name, "ok-edges.json") == 0 && rc == 0) {
            /* checked again: the batch was freed above */
            ingest_wire_decode(data, len, &batch, err, sizeof(err));
            tap_ok(batch.ncounts == 5
                   && batch.counts[0].value == INT64_MAX
                   && batch.counts[1].value == INT64_MIN
                   && batch.counts[2].len == 5
                   && memcmp(batch.counts[2].key, "q\"b\\s", 5) == 0
                   && batch.counts[3].len == 6
                   && memcmp(batch.counts[3].key,
                             "\xc3\xa9\xf0\x9f\x98\x80", 6) == 0
                   && batch.counts[4].len == 1
                   && batch.counts[4].key[0] == 1,
                   "ok-edges.json values are exact");
            ingest_wire_batch_free(&batch);
        }

        if (strcmp(de->d_name, "ok-requests-before-counts.json") == 0
            && rc == 0)
        {
            ingest_wire_decode(data, len, &batch, err, sizeof(err));
            tap_ok(batch.ncounts == 1 && batch.counts[0].key[0] == 'y'
                   && batch.nrequests == 1 && batch.requests[0].n == 1
                   && batch.requests[0].first == 1
                   && batch.counts[1].key[0] == 'x'
                   && batch.counts[1].value == 5,
                   "requests before counts: no request counted as a sum");
            ingest_wire_batch_free(&batch);
        }

        if (strcmp(de->d_name, "ok-row-number-edges.json") == 0 && rc == 0) {
            ingest_wire_decode(data, len, &batch, err, sizeof(err));
            tap_ok(batch.nrows == 2
                   && batch.values[0].type == INGEST_WIRE_INT
                   && batch.values[0].i == INT64_MIN
                   && batch.values[1].type == INGEST_WIRE_REAL
                   && batch.values[1].d == 1e308
                   && batch.values[2].d > 0
                   && batch.values[3].i == INT64_MAX
                   && batch.values[4].d == 0 && batch.values[5].d == 0,
                   "row numbers are converted exactly");
            ingest_wire_batch_free(&batch);
        }

        free(data);
    }

    closedir(d);
}


int
main(int argc, char **argv)
{
    roundtrip();
    requests();
    buckets();
    fixtures(argc > 1 ? argv[1] : "t/fixtures/wire");

    return tap_done();
}
