
/*
 * Copyright (C) ngx_ingest developers
 *
 * The batch format, version 1: one Redis list element per batch, a JSON
 * object readable with redis-cli LRANGE.  The module writes batches and
 * the consumer reads them, both through this file and nothing else.
 *
 *   {"v":1,"kind":"counters","producer":"<host>/<pid>/<start-ns>",
 *    "seq":42,"ts":1763769600123,"counts":{"page:home":118,"stock":-2}}
 *
 *   v         format version; a reader refuses one it does not know
 *   kind      "counters" (records batches come with the records endpoint)
 *   producer  unique per worker life: the consumer's dedup identity
 *   seq       1, 2, 3 ... per producer and list, in list order
 *   ts        milliseconds since the epoch when the batch was cut
 *   counts    key -> signed 64-bit sum, exact (never through a double)
 *
 * Plain C: no nginx headers, no allocation but malloc/realloc/free.
 */

#ifndef _INGEST_WIRE_H_INCLUDED_
#define _INGEST_WIRE_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


#define INGEST_WIRE_VERSION          1

#define INGEST_WIRE_COUNTERS_QUEUE   "ingest:counters"
#define INGEST_WIRE_RECORDS_QUEUE    "ingest:records"

#define INGEST_WIRE_KIND_COUNTERS    1

#define INGEST_WIRE_MAX_PRODUCER     256     /* bytes, with the NUL */
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


typedef struct {
    const char               *key;         /* UTF-8, not NUL-terminated */
    size_t                    len;
    int64_t                   value;
} ingest_wire_count_t;


/* a decoded batch; free it with ingest_wire_batch_free() */

typedef struct {
    int                       version;
    int                       kind;
    char                      producer[INGEST_WIRE_MAX_PRODUCER];
    uint64_t                  seq;
    int64_t                   ts;
    ingest_wire_count_t      *counts;
    size_t                    ncounts;
    char                     *strings;     /* unescaped keys live here */
} ingest_wire_batch_t;


int ingest_wire_counters_begin(ingest_wire_buf_t *b, const char *producer,
    uint64_t seq, int64_t ts);
int ingest_wire_counters_add(ingest_wire_buf_t *b, const unsigned char *key,
    size_t len, int64_t value);
int ingest_wire_counters_end(ingest_wire_buf_t *b);
void ingest_wire_buf_free(ingest_wire_buf_t *b);

int ingest_wire_decode(const char *data, size_t len, ingest_wire_batch_t *batch,
    char *err, size_t errlen);
void ingest_wire_batch_free(ingest_wire_batch_t *batch);


#endif /* _INGEST_WIRE_H_INCLUDED_ */
