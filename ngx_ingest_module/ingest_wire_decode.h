
/*
 * Copyright (C) ngx_ingest developers
 * SPDX-License-Identifier: BSD-2-Clause
 *
 * Reading batches (the format is described in ingest_wire.h): the
 * consumer's side.  The nginx module only writes, and does not link this.
 */

#ifndef _INGEST_WIRE_DECODE_H_INCLUDED_
#define _INGEST_WIRE_DECODE_H_INCLUDED_


#include "ingest_wire.h"


/*
 * A count: of a key's total, or (version 3) of its bucket of resolution
 * seconds that starts at start (Unix seconds).
 */

typedef struct {
    const char               *key;         /* UTF-8, not NUL-terminated */
    size_t                    len;
    int64_t                   value;
    uint32_t                  resolution;  /* 0: the total */
    int64_t                   start;
} ingest_wire_count_t;


/*
 * An idempotent request: its counts, totals and buckets, are
 * batch->counts[first, first + n)
 */

typedef struct {
    const char               *id;
    size_t                    id_len;
    size_t                    first;
    size_t                    n;
} ingest_wire_request_t;


/*
 * A value of a row: strings unescaped; numbers as their JSON text and
 * converted (an INT's value in i, and in d as well; a REAL's in d).
 */

typedef struct {
    int                       type;        /* INGEST_WIRE_INT ... NULL */
    const char               *s;
    size_t                    len;
    int64_t                   i;
    double                    d;
} ingest_wire_value_t;


/* a decoded batch; free it with ingest_wire_batch_free() */

typedef struct {
    int                       version;
    int                       kind;
    char                      producer[INGEST_WIRE_MAX_PRODUCER];
    uint64_t                  seq;
    int64_t                   ts;
    ingest_wire_count_t      *counts;      /* summed, then the requests' */
    size_t                    ncounts;     /* the summed ones (totals and
                                              buckets) */
    size_t                    nbuckets;    /* of all, those of buckets */
    size_t                    ntotal;      /* all of them */
    size_t                    counts_cap;
    ingest_wire_request_t    *requests;
    size_t                    nrequests;
    char                     *strings;     /* unescaped keys live here */
    size_t                    strings_used;

    /* records */
    char                      table[INGEST_WIRE_MAX_NAME + 1];
    size_t                    ncolumns;
    size_t                    ntypes;
    char                      columns[INGEST_WIRE_MAX_COLUMNS]
                                     [INGEST_WIRE_MAX_NAME + 1];
    int                       types[INGEST_WIRE_MAX_COLUMNS];
    ingest_wire_value_t      *values;      /* nrows * ncolumns */
    size_t                    nrows;
} ingest_wire_batch_t;


int ingest_wire_decode(const char *data, size_t len, ingest_wire_batch_t *batch,
    char *err, size_t errlen);
void ingest_wire_batch_free(ingest_wire_batch_t *batch);


#endif /* _INGEST_WIRE_DECODE_H_INCLUDED_ */
