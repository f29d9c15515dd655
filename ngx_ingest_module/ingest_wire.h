
/*
 * Copyright (C) ngx_ingest developers
 * SPDX-License-Identifier: BSD-2-Clause
 *
 * The batch format, version 1: one Redis list element per batch, a JSON
 * object readable with redis-cli LRANGE.  The module writes batches and
 * the consumer reads them, both through this file and nothing else.
 *
 *   {"v":1,"kind":"counters","producer":"<host>/<pid>/<start-ns>",
 *    "seq":42,"ts":1763769600123,"counts":{"page:home":118,"stock":-2}}
 *
 * Version 2 is version 1 plus "requests": the requests that came with an
 * Idempotency-Key, kept apart from the summed counts so that the consumer
 * can apply each at most once, whichever batch and worker it came in:
 *
 *   {"v":2,...,"counts":{...},
 *    "requests":[{"id":"<Idempotency-Key>","counts":{"a":1}}, ...]}
 *
 * A records batch (version 1) carries rows for one table:
 *
 *   {"v":1,"kind":"records","producer":...,"seq":43,"ts":...,
 *    "table":"trips","columns":["vendorid","total_amount"],
 *    "types":["int","real"],"rows":[[2,9.95],[1,null]]}
 *
 * Version 3 adds "buckets": the same increments again, for the time
 * buckets of the resolutions the location keeps (ingest_counters
 * buckets=1m,1h,1d).  Each element is [resolutions in seconds, a time in
 * Unix seconds (UTC), counts]: its counts go to the bucket of each
 * resolution that holds that time, its start the time floored to the
 * resolution.  The module sums once per key and step (the arrival
 * floored to a step every resolution is a multiple of), not once per
 * resolution; a request with an Idempotency-Key carries its own:
 *
 *   {"v":3,...,"counts":{"a":3},
 *    "buckets":[[[60,3600],1764675600,{"a":1}],
 *               [[60,3600],1764675660,{"a":2}]],
 *    "requests":[{"id":"..","counts":{"b":1},
 *                 "buckets":[[[60,3600],1764675661,{"b":1}]]}]}
 *
 * (a:1 and a:2 go to two minutes and to the same hour).
 *
 * The module writes version 2 only when a batch has such requests, and 3
 * only when it has buckets, so a consumer that knows an older version
 * refuses them instead of dropping them.
 *
 *   v         format version; a reader refuses one it does not know
 *   kind      "counters" (records batches come with the records endpoint)
 *   producer  unique per worker life: the consumer's dedup identity
 *   seq       1, 2, 3 ... per producer and list, in list order
 *   ts        milliseconds since the epoch when the batch was cut
 *   counts    key -> signed 64-bit sum, exact (never through a double)
 *   requests  (v2) [{"id":..., "counts":{...}}], each applied at most once
 *   buckets   (v3) [[[resolution, ...], time, {...}], ...]; 1 to 7
 *             resolutions, each from 1 s to a day and dividing a day (so
 *             buckets line up with days), none twice; time >= 0
 *
 * Plain C: no nginx headers, no allocation but malloc/realloc/free.
 */

#ifndef _INGEST_WIRE_H_INCLUDED_
#define _INGEST_WIRE_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


#define INGEST_WIRE_VERSION          3       /* the newest known */
#define INGEST_WIRE_VERSION_REQUESTS 2       /* "requests", no "buckets" */
#define INGEST_WIRE_VERSION_PLAIN    1       /* no "requests" */

/*
 * The longest batch a reader takes: the module writes at most 1 MB (a
 * cut makes several), so a longer one is no producer's; refused unread,
 * it cannot make the reader hold many times its size (version 3 expands
 * each count once per resolution)
 */
#define INGEST_WIRE_MAX_BATCH        (2 * 1024 * 1024)

#define INGEST_WIRE_MAX_RESOLUTION   86400   /* seconds: a day */
#define INGEST_WIRE_MAX_RESOLUTIONS  7       /* in one bucket element */

#define INGEST_WIRE_COUNTERS_QUEUE   "ingest:counters"
#define INGEST_WIRE_RECORDS_QUEUE    "ingest:records"

#define INGEST_WIRE_KIND_COUNTERS    1
#define INGEST_WIRE_KIND_RECORDS     2

#define INGEST_WIRE_MAX_NAME         64      /* table and column names */
#define INGEST_WIRE_MAX_COLUMNS      64

/* column types and the type of a value in a row */
#define INGEST_WIRE_INT              0
#define INGEST_WIRE_REAL             1
#define INGEST_WIRE_TEXT             2
#define INGEST_WIRE_BOOL             3
#define INGEST_WIRE_NULL             4

#define INGEST_WIRE_MAX_PRODUCER     256     /* bytes, with the NUL */
#define INGEST_WIRE_MAX_ID           255     /* Idempotency-Key bytes */
#define INGEST_WIRE_MAX_DEPTH        32      /* nesting of skipped values */

#define INGEST_WIRE_OK               0
#define INGEST_WIRE_ERROR           -1       /* malformed or unsupported */
#define INGEST_WIRE_NOMEM           -2


/* a batch being written; data is malloc()ed and grows as needed */

typedef struct {
    char                     *data;
    size_t                    len;
    size_t                    cap;
    size_t                    count;       /* counts written so far */
} ingest_wire_buf_t;


int ingest_wire_counters_begin(ingest_wire_buf_t *b, int version,
    const char *producer, uint64_t seq, int64_t ts);
int ingest_wire_counters_add(ingest_wire_buf_t *b, const unsigned char *key,
    size_t len, int64_t value);
int ingest_wire_counters_end(ingest_wire_buf_t *b,
    const ingest_wire_buf_t *requests);

/*
 * The "requests" of version 2 are written into a buffer of their own as
 * they come (request_begin, counters_add..., request_end), and handed to
 * counters_end.
 */
int ingest_wire_request_begin(ingest_wire_buf_t *b, const unsigned char *id,
    size_t len);
int ingest_wire_request_end(ingest_wire_buf_t *b);

/*
 * Version 3's buckets are written into a buffer of their own, a bucket
 * at a time (bucket_begin, counters_add..., bucket_end), and handed to
 * counters_end_buckets, or for a request to request_end_buckets.
 */
int ingest_wire_bucket_begin(ingest_wire_buf_t *b,
    const uint32_t *resolutions, size_t n, int64_t start);
int ingest_wire_bucket_end(ingest_wire_buf_t *b);
int ingest_wire_counters_end_buckets(ingest_wire_buf_t *b,
    const ingest_wire_buf_t *buckets, const ingest_wire_buf_t *requests);
int ingest_wire_request_end_buckets(ingest_wire_buf_t *b,
    const ingest_wire_buf_t *buckets);

/* 1 for a resolution: 1 s to a day, dividing a day */
int ingest_wire_valid_resolution(int64_t resolution);

/*
 * "<digits><unit>", unit s, m, h or d ("1m", "90d"), as buckets=, range
 * reads and --retain write times: seconds, or -1
 */
int64_t ingest_wire_duration(const char *text, size_t len);

/*
 * A records batch: the header, then the rows as JSON text ("[1,\"a\"]"
 * joined by commas), which the module writes as lines are parsed.
 */
int ingest_wire_records_begin(ingest_wire_buf_t *b, const char *producer,
    uint64_t seq, int64_t ts, const char *table, size_t ncolumns,
    const char *const *columns, const int *types);
int ingest_wire_records_end(ingest_wire_buf_t *b,
    const ingest_wire_buf_t *rows);

/* [A-Za-z_][A-Za-z0-9_]*, 1 to INGEST_WIRE_MAX_NAME bytes */
int ingest_wire_valid_name(const char *name, size_t len);

extern const char  *ingest_wire_type_names[4];
void ingest_wire_buf_free(ingest_wire_buf_t *b);

/* room for n more bytes: the end of the data, or NULL */
char *ingest_wire_buf_reserve(ingest_wire_buf_t *b, size_t n);


#endif /* _INGEST_WIRE_H_INCLUDED_ */
