
/*
 * Copyright (C) ngx_ingest developers
 * SPDX-License-Identifier: BSD-2-Clause
 *
 * Reading batches.  The reader is a small strict JSON scanner of its own
 * rather than cJSON: cJSON keeps numbers as doubles, which are exact only
 * up to 2^53, and counts are signed 64-bit sums.
 */


#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest_wire_decode.h"
#include "ingest_json.h"


#define ingest_wire_digits(p, end)                                            \
    while ((p) < (end) && *(p) >= '0' && *(p) <= '9') {                       \
        (p)++;                                                                \
    }


typedef struct {
    const char               *p;
    const char               *end;
    const char               *start;
    char                     *err;
    size_t                    errlen;
} ingest_wire_reader_t;


static int ingest_wire_fail(ingest_wire_reader_t *r, const char *what);
static void ingest_wire_space(ingest_wire_reader_t *r);
static int ingest_wire_expect(ingest_wire_reader_t *r, char ch);
static int ingest_wire_closes(ingest_wire_reader_t *r, char close);
static int ingest_wire_next(ingest_wire_reader_t *r, char close);
static void *ingest_wire_bounded(ingest_wire_reader_t *r, size_t min_len,
    size_t size, size_t *cap);
static int ingest_wire_string(ingest_wire_reader_t *r, char *out,
    size_t cap, size_t *len);
static int ingest_wire_utf8(const unsigned char *p, size_t len);
static int ingest_wire_int(ingest_wire_reader_t *r, int64_t *v);
static int ingest_wire_skip(ingest_wire_reader_t *r, int depth);
static int ingest_wire_number(ingest_wire_reader_t *r, int *integer);
static int ingest_wire_convert(ingest_wire_value_t *v, int integer);
static int ingest_wire_member(ingest_wire_reader_t *r, char *name,
    size_t size);
static int ingest_wire_members(ingest_wire_reader_t *r,
    ingest_wire_batch_t *batch, int version_only);
static unsigned ingest_wire_member_bit(const char *name, int version);
static int ingest_wire_counts(ingest_wire_reader_t *r,
    ingest_wire_batch_t *batch);
static int ingest_wire_buckets(ingest_wire_reader_t *r,
    ingest_wire_batch_t *batch);
static int ingest_wire_requests(ingest_wire_reader_t *r,
    ingest_wire_batch_t *batch);
static int ingest_wire_names(ingest_wire_reader_t *r,
    ingest_wire_batch_t *batch, int columns);
static int ingest_wire_rows(ingest_wire_reader_t *r,
    ingest_wire_batch_t *batch);


int
ingest_wire_decode(const char *data, size_t len, ingest_wire_batch_t *batch,
    char *err, size_t errlen)
{
    ingest_wire_reader_t  r;

    memset(batch, 0, sizeof(ingest_wire_batch_t));

    r.start = data;
    r.end = data + len;
    r.err = err;
    r.errlen = errlen;

    if (errlen) {
        err[0] = '\0';
    }

    if (len > INGEST_WIRE_MAX_BATCH) {
        if (errlen) {
            snprintf(err, errlen, "a batch of %zu bytes, over the %d a "
                     "reader takes", len, INGEST_WIRE_MAX_BATCH);
        }

        return INGEST_WIRE_ERROR;
    }

    /*
     * The version is read first, alone, so that a batch of a newer
     * version is refused as such rather than as malformed.
     */

    r.p = data;

    if (ingest_wire_members(&r, batch, 1) != INGEST_WIRE_OK) {
        return INGEST_WIRE_ERROR;
    }

    if (batch->version < INGEST_WIRE_VERSION_PLAIN
        || batch->version > INGEST_WIRE_VERSION)
    {
        if (errlen) {
            snprintf(err, errlen, "unsupported batch version %d",
                     batch->version);
        }

        return INGEST_WIRE_ERROR;
    }

    /* unescaped strings are never longer than their JSON text */

    batch->strings = malloc(len ? len : 1);
    if (batch->strings == NULL) {
        return INGEST_WIRE_NOMEM;
    }

    r.p = data;

    if (ingest_wire_members(&r, batch, 0) != INGEST_WIRE_OK) {
        ingest_wire_batch_free(batch);
        return INGEST_WIRE_ERROR;
    }

    return INGEST_WIRE_OK;
}


void
ingest_wire_batch_free(ingest_wire_batch_t *batch)
{
    free(batch->counts);
    free(batch->requests);
    free(batch->strings);
    free(batch->values);
    batch->values = NULL;
    batch->nrows = 0;
    batch->counts = NULL;
    batch->requests = NULL;
    batch->strings = NULL;
    batch->ncounts = 0;
    batch->ntotal = 0;
    batch->nbuckets = 0;
    batch->nrequests = 0;
}


#define INGEST_WIRE_HAVE_V         0x01
#define INGEST_WIRE_HAVE_KIND      0x02
#define INGEST_WIRE_HAVE_PRODUCER  0x04
#define INGEST_WIRE_HAVE_SEQ       0x08
#define INGEST_WIRE_HAVE_TS        0x10
#define INGEST_WIRE_HAVE_COUNTS    0x20
#define INGEST_WIRE_HAVE_ALL       0x3f
#define INGEST_WIRE_HAVE_TABLE     0x40
#define INGEST_WIRE_HAVE_COLUMNS   0x80
#define INGEST_WIRE_HAVE_TYPES     0x100
#define INGEST_WIRE_HAVE_ROWS      0x200
#define INGEST_WIRE_HAVE_RECORDS   (0x1f | 0x3c0)
#define INGEST_WIRE_HAVE_REQUESTS  0x400
#define INGEST_WIRE_HAVE_BUCKETS   0x800


static int
ingest_wire_members(ingest_wire_reader_t *r, ingest_wire_batch_t *batch,
    int version_only)
{
    int          rc;
    char         name[16], kind[16];
    size_t       len;
    int64_t      v;
    unsigned     have, bit;
    const char  *rows_at, *counts_at, *requests_at, *buckets_at, *at;

    have = 0;
    rows_at = NULL;
    counts_at = NULL;
    requests_at = NULL;
    buckets_at = NULL;

    ingest_wire_space(r);

    if (ingest_wire_expect(r, '{') != INGEST_WIRE_OK) {
        return INGEST_WIRE_ERROR;
    }

    if (ingest_wire_closes(r, '}')) {
        goto done;
    }

    for ( ;; ) {
        if (ingest_wire_member(r, name, sizeof(name)) != INGEST_WIRE_OK) {
            return INGEST_WIRE_ERROR;
        }

        bit = ingest_wire_member_bit(name, batch->version);

        if (have & bit) {
            return ingest_wire_fail(r, "a member given twice");
        }

        have |= bit;

        if (strcmp(name, "v") == 0) {
            if (ingest_wire_int(r, &v) != INGEST_WIRE_OK) {
                return INGEST_WIRE_ERROR;
            }

            batch->version = (v > 0 && v < 1000000) ? (int) v : -1;

        } else if (version_only) {
            if (ingest_wire_skip(r, 0) != INGEST_WIRE_OK) {
                return INGEST_WIRE_ERROR;
            }

        } else if (strcmp(name, "kind") == 0) {
            if (ingest_wire_string(r, kind, sizeof(kind) - 1, &len)
                != INGEST_WIRE_OK)
            {
                return INGEST_WIRE_ERROR;
            }

            kind[len < sizeof(kind) ? len : 0] = '\0';

            if (strcmp(kind, "counters") == 0) {
                batch->kind = INGEST_WIRE_KIND_COUNTERS;

            } else if (strcmp(kind, "records") == 0) {
                batch->kind = INGEST_WIRE_KIND_RECORDS;

            } else {
                return ingest_wire_fail(r, "unknown batch kind");
            }

        } else if (strcmp(name, "producer") == 0) {
            at = r->p;

            if (ingest_wire_string(r, batch->producer,
                                   INGEST_WIRE_MAX_PRODUCER - 1, &len)
                != INGEST_WIRE_OK)
            {
                return INGEST_WIRE_ERROR;
            }

            if (len == 0 || len >= INGEST_WIRE_MAX_PRODUCER
                || memchr(batch->producer, '\0', len) != NULL)
            {
                return ingest_wire_fail(r, "invalid producer");
            }

            /*
             * The producer goes into every table of the store, and into
             * dead_batches when the batch is refused: a name PostgreSQL
             * would refuse there (and SQLite keep as bytes no reader
             * expects) makes the batch one that cannot be read.
             */

            if (!ingest_wire_utf8((const unsigned char *) batch->producer,
                                  len))
            {
                r->p = at;
                return ingest_wire_fail(r, "producer is not UTF-8");
            }

            batch->producer[len] = '\0';

        } else if (strcmp(name, "seq") == 0) {
            if (ingest_wire_int(r, &v) != INGEST_WIRE_OK) {
                return INGEST_WIRE_ERROR;
            }

            if (v < 1) {
                return ingest_wire_fail(r, "seq must be positive");
            }

            batch->seq = (uint64_t) v;

        } else if (strcmp(name, "ts") == 0) {
            if (ingest_wire_int(r, &batch->ts) != INGEST_WIRE_OK) {
                return INGEST_WIRE_ERROR;
            }

        } else if (strcmp(name, "counts") == 0) {
            /* read after the loop, before the requests' counts */
            counts_at = r->p;

            if (ingest_wire_skip(r, 0) != INGEST_WIRE_OK) {
                return INGEST_WIRE_ERROR;
            }

        } else if (strcmp(name, "table") == 0) {
            if (ingest_wire_string(r, batch->table, INGEST_WIRE_MAX_NAME,
                                   &len)
                != INGEST_WIRE_OK)
            {
                return INGEST_WIRE_ERROR;
            }

            if (!ingest_wire_valid_name(batch->table, len)) {
                return ingest_wire_fail(r, "invalid table name");
            }

            batch->table[len] = '\0';

        } else if (strcmp(name, "columns") == 0 || strcmp(name, "types") == 0)
        {
            if (ingest_wire_names(r, batch, name[0] == 'c') != INGEST_WIRE_OK)
            {
                return INGEST_WIRE_ERROR;
            }

        } else if (strcmp(name, "rows") == 0) {
            rows_at = r->p;

            /* read once the columns are known: skip for now */
            if (ingest_wire_skip(r, 0) != INGEST_WIRE_OK) {
                return INGEST_WIRE_ERROR;
            }

        } else if (bit == INGEST_WIRE_HAVE_REQUESTS) {
            requests_at = r->p;

            if (ingest_wire_skip(r, 0) != INGEST_WIRE_OK) {
                return INGEST_WIRE_ERROR;
            }

        } else if (bit == INGEST_WIRE_HAVE_BUCKETS) {
            buckets_at = r->p;

            if (ingest_wire_skip(r, 0) != INGEST_WIRE_OK) {
                return INGEST_WIRE_ERROR;
            }

        } else if (ingest_wire_skip(r, 0) != INGEST_WIRE_OK) {
            return INGEST_WIRE_ERROR;
        }

        rc = ingest_wire_next(r, '}');

        if (rc == 1) {
            continue;
        }

        if (rc != INGEST_WIRE_OK) {
            return INGEST_WIRE_ERROR;
        }

        break;
    }

done:

    ingest_wire_space(r);

    if (r->p != r->end) {
        return ingest_wire_fail(r, "trailing data after batch");
    }

    if (version_only) {
        if (!(have & INGEST_WIRE_HAVE_V)) {
            return ingest_wire_fail(r, "no \"v\" in batch");
        }

        return INGEST_WIRE_OK;
    }

    if (batch->kind == INGEST_WIRE_KIND_RECORDS) {
        if ((have & INGEST_WIRE_HAVE_RECORDS) != INGEST_WIRE_HAVE_RECORDS) {
            return ingest_wire_fail(r, "records batch lacks a member");
        }

        if (batch->ncolumns != batch->ntypes) {
            return ingest_wire_fail(r, "columns and types differ in number");
        }

        r->p = rows_at;

        return ingest_wire_rows(r, batch);
    }

    if ((have & ~(INGEST_WIRE_HAVE_REQUESTS | INGEST_WIRE_HAVE_BUCKETS))
        != INGEST_WIRE_HAVE_ALL)
    {
        return ingest_wire_fail(r, "batch lacks a required member");
    }

    /*
     * In this order whatever the members' order: the summed counts and
     * buckets, then each request's own, after them in batch->counts.
     */

    r->p = counts_at;

    if (ingest_wire_counts(r, batch) != INGEST_WIRE_OK) {
        return INGEST_WIRE_ERROR;
    }

    if (buckets_at != NULL) {
        r->p = buckets_at;

        if (ingest_wire_buckets(r, batch) != INGEST_WIRE_OK) {
            return INGEST_WIRE_ERROR;
        }
    }

    batch->ncounts = batch->ntotal;

    if (requests_at != NULL) {
        r->p = requests_at;
        return ingest_wire_requests(r, batch);
    }

    return INGEST_WIRE_OK;
}


/*
 * The bit of a known member, 0 for one to skip: "requests" is known
 * from version 2 on, "buckets" from version 3.
 */

static unsigned
ingest_wire_member_bit(const char *name, int version)
{
    static const struct {
        const char  *name;
        unsigned     bit;
    } members[] = {
        { "v", INGEST_WIRE_HAVE_V },
        { "kind", INGEST_WIRE_HAVE_KIND },
        { "producer", INGEST_WIRE_HAVE_PRODUCER },
        { "seq", INGEST_WIRE_HAVE_SEQ },
        { "ts", INGEST_WIRE_HAVE_TS },
        { "counts", INGEST_WIRE_HAVE_COUNTS },
        { "table", INGEST_WIRE_HAVE_TABLE },
        { "columns", INGEST_WIRE_HAVE_COLUMNS },
        { "types", INGEST_WIRE_HAVE_TYPES },
        { "rows", INGEST_WIRE_HAVE_ROWS },
        { "requests", INGEST_WIRE_HAVE_REQUESTS },
        { "buckets", INGEST_WIRE_HAVE_BUCKETS }
    };

    size_t  i;

    for (i = 0; i < sizeof(members) / sizeof(members[0]); i++) {
        if (strcmp(name, members[i].name) == 0) {
            if ((members[i].bit == INGEST_WIRE_HAVE_REQUESTS && version < 2)
                || (members[i].bit == INGEST_WIRE_HAVE_BUCKETS && version < 3))
            {
                return 0;
            }

            return members[i].bit;
        }
    }

    return 0;
}


/* a counts object, appended to batch->counts[ntotal..] */

static int
ingest_wire_counts(ingest_wire_reader_t *r, ingest_wire_batch_t *batch)
{
    int                   rc;
    char                 *out;
    size_t                len;
    ingest_wire_count_t  *c, *counts;

    if (ingest_wire_expect(r, '{') != INGEST_WIRE_OK) {
        return INGEST_WIRE_ERROR;
    }

    /* a count takes at least 6 bytes ("":0,), which bounds the array */

    if (batch->counts == NULL) {
        batch->counts_cap = (r->end - r->start) / 6 + 1;

        batch->counts = malloc(batch->counts_cap
                               * sizeof(ingest_wire_count_t));
        if (batch->counts == NULL) {
            return ingest_wire_fail(r, "out of memory");
        }
    }

    counts = batch->counts;
    out = batch->strings + batch->strings_used;

    if (ingest_wire_closes(r, '}')) {
        return INGEST_WIRE_OK;
    }

    for ( ;; ) {
        if (batch->ntotal == batch->counts_cap) {
            /* only buckets' resolutions take more than the text bounds */
            counts = realloc(batch->counts, 2 * batch->counts_cap
                                            * sizeof(ingest_wire_count_t));
            if (counts == NULL) {
                return ingest_wire_fail(r, "out of memory");
            }

            batch->counts = counts;
            batch->counts_cap *= 2;
        }

        c = &counts[batch->ntotal];

        ingest_wire_space(r);

        if (ingest_wire_string(r, out, (size_t) -1, &len) != INGEST_WIRE_OK) {
            return INGEST_WIRE_ERROR;
        }

        if (len == 0) {
            return ingest_wire_fail(r, "empty key in counts");
        }

        if (memchr(out, '\0', len) != NULL) {
            return ingest_wire_fail(r, "a NUL character in a key");
        }

        c->key = out;
        c->len = len;
        c->resolution = 0;
        c->start = 0;
        out += len;
        batch->strings_used += len;

        ingest_wire_space(r);

        if (ingest_wire_expect(r, ':') != INGEST_WIRE_OK) {
            return INGEST_WIRE_ERROR;
        }

        ingest_wire_space(r);

        if (ingest_wire_int(r, &c->value) != INGEST_WIRE_OK) {
            return INGEST_WIRE_ERROR;
        }

        batch->ntotal++;

        rc = ingest_wire_next(r, '}');

        if (rc != 1) {
            return rc;
        }
    }
}


/* "columns":["a","b"] or "types":["int","text"] */

static int
ingest_wire_names(ingest_wire_reader_t *r, ingest_wire_batch_t *batch,
    int columns)
{
    int      t, rc;
    char     name[INGEST_WIRE_MAX_NAME + 1];
    size_t   len, n;

    if (ingest_wire_expect(r, '[') != INGEST_WIRE_OK) {
        return INGEST_WIRE_ERROR;
    }

    n = 0;
    ingest_wire_space(r);

    if (r->p < r->end && *r->p == ']') {
        return ingest_wire_fail(r, "no columns");
    }

    for ( ;; ) {
        if (n == INGEST_WIRE_MAX_COLUMNS) {
            return ingest_wire_fail(r, "too many columns");
        }

        ingest_wire_space(r);

        if (ingest_wire_string(r, name, INGEST_WIRE_MAX_NAME, &len)
            != INGEST_WIRE_OK)
        {
            return INGEST_WIRE_ERROR;
        }

        if (len > INGEST_WIRE_MAX_NAME) {
            return ingest_wire_fail(r, "name too long");
        }

        name[len] = '\0';

        if (columns) {
            if (!ingest_wire_valid_name(name, len)) {
                return ingest_wire_fail(r, "invalid column name");
            }

            memcpy(batch->columns[n], name, len + 1);

        } else {
            for (t = 0; t < 4; t++) {
                if (strcmp(name, ingest_wire_type_names[t]) == 0) {
                    break;
                }
            }

            if (t == 4) {
                return ingest_wire_fail(r, "unknown column type");
            }

            batch->types[n] = t;
        }

        n++;

        rc = ingest_wire_next(r, ']');

        if (rc == 1) {
            continue;
        }

        if (rc != INGEST_WIRE_OK) {
            return INGEST_WIRE_ERROR;
        }

        break;
    }

    if (columns) {
        batch->ncolumns = n;

    } else {
        batch->ntypes = n;
    }

    return INGEST_WIRE_OK;
}


/* "rows":[[v,...],...]: scalars only, as many as there are columns */

static int
ingest_wire_rows(ingest_wire_reader_t *r, ingest_wire_batch_t *batch)
{
    int                   rc, integer;
    char                 *out;
    size_t                cap, col, len;
    const char           *start;
    ingest_wire_value_t  *v;

    if (ingest_wire_expect(r, '[') != INGEST_WIRE_OK) {
        return INGEST_WIRE_ERROR;
    }

    /* a value takes at least 2 bytes ("0,") */

    batch->values = ingest_wire_bounded(r, 2, sizeof(ingest_wire_value_t),
                                        &cap);
    if (batch->values == NULL) {
        return INGEST_WIRE_ERROR;
    }

    if (ingest_wire_closes(r, ']')) {
        return INGEST_WIRE_OK;
    }

    for ( ;; ) {
        ingest_wire_space(r);

        if (ingest_wire_expect(r, '[') != INGEST_WIRE_OK) {
            return INGEST_WIRE_ERROR;
        }

        for (col = 0; col < batch->ncolumns; col++) {
            if (batch->nrows * batch->ncolumns + col >= cap) {
                return ingest_wire_fail(r, "too many values");
            }

            v = &batch->values[batch->nrows * batch->ncolumns + col];

            ingest_wire_space(r);

            if (r->p == r->end) {
                return ingest_wire_fail(r, "unterminated row");
            }

            if (*r->p == '"') {
                out = batch->strings + batch->strings_used;

                if (ingest_wire_string(r, out, (size_t) -1, &len)
                    != INGEST_WIRE_OK)
                {
                    return INGEST_WIRE_ERROR;
                }

                if (memchr(out, '\0', len) != NULL) {
                    return ingest_wire_fail(r, "a NUL character in text");
                }

                v->type = INGEST_WIRE_TEXT;
                v->s = out;
                v->len = len;
                batch->strings_used += len;

            } else if (*r->p == 'n' || *r->p == 't' || *r->p == 'f') {
                start = r->p;

                if (ingest_wire_skip(r, 0) != INGEST_WIRE_OK) {
                    return INGEST_WIRE_ERROR;
                }

                v->type = (*start == 'n') ? INGEST_WIRE_NULL
                                          : INGEST_WIRE_BOOL;
                v->s = start;
                v->len = r->p - start;

            } else if (*r->p == '-' || (*r->p >= '0' && *r->p <= '9')) {
                start = r->p;

                if (ingest_wire_number(r, &integer) != INGEST_WIRE_OK) {
                    return INGEST_WIRE_ERROR;
                }

                /* the number's text, NUL-terminated for the conversion */
                out = batch->strings + batch->strings_used;
                len = r->p - start;
                memcpy(out, start, len);
                out[len] = '\0';
                batch->strings_used += len + 1;

                v->s = out;
                v->len = len;

                if (ingest_wire_convert(v, integer) != INGEST_WIRE_OK) {
                    r->p = start;
                    return ingest_wire_fail(r, "a number out of range");
                }

            } else {
                return ingest_wire_fail(r, "a row value must be a scalar");
            }

            ingest_wire_space(r);

            if (col + 1 < batch->ncolumns
                && ingest_wire_expect(r, ',') != INGEST_WIRE_OK)
            {
                return INGEST_WIRE_ERROR;
            }
        }

        ingest_wire_space(r);

        if (ingest_wire_expect(r, ']') != INGEST_WIRE_OK) {
            return ingest_wire_fail(r, "a row has too many values");
        }

        batch->nrows++;

        rc = ingest_wire_next(r, ']');

        if (rc != 1) {
            return rc;
        }
    }
}


/*
 * A row's number, converted once, here, with its end and errno checked:
 * an integer within int64 (INGEST_WIRE_INT), or a real (an integer too
 * big for int64 is one) that is neither an infinity nor a zero from a
 * non-zero text, the range every store keeps.
 */

static int
ingest_wire_convert(ingest_wire_value_t *v, int integer)
{
    char  *end;

    if (integer) {
        errno = 0;
        v->i = strtoll(v->s, &end, 10);

        if (errno == 0 && end == v->s + v->len) {
            v->type = INGEST_WIRE_INT;
            v->d = (double) v->i;
            return INGEST_WIRE_OK;
        }
    }

    errno = 0;
    v->d = strtod(v->s, &end);

    if (end != v->s + v->len
        || (errno == ERANGE && (v->d == 0.0 || isinf(v->d))))
    {
        return INGEST_WIRE_ERROR;
    }

    v->type = INGEST_WIRE_REAL;

    return INGEST_WIRE_OK;
}


/*
 * A member's name and the colon after it, spaces around: name gets it
 * NUL-terminated, or "" when it is longer than any name we know.
 */

static int
ingest_wire_member(ingest_wire_reader_t *r, char *name, size_t size)
{
    size_t  len;

    ingest_wire_space(r);

    if (ingest_wire_string(r, name, size - 1, &len) != INGEST_WIRE_OK) {
        return INGEST_WIRE_ERROR;
    }

    name[len < size ? len : 0] = '\0';

    ingest_wire_space(r);

    if (ingest_wire_expect(r, ':') != INGEST_WIRE_OK) {
        return INGEST_WIRE_ERROR;
    }

    ingest_wire_space(r);

    return INGEST_WIRE_OK;
}


/*
 * "buckets":[[[<resolution>,...],<time>,{counts}], ...]: each element's
 * counts appended to batch->counts[ntotal..] once per resolution, each
 * marked with its bucket (the time floored to the resolution)
 */

static int
ingest_wire_buckets(ingest_wire_reader_t *r, ingest_wire_batch_t *batch)
{
    int                   rc;
    size_t                first, i, j, n, k, cap;
    int64_t               res[INGEST_WIRE_MAX_RESOLUTIONS], v, start;
    const char           *at;
    ingest_wire_count_t  *counts;

    ingest_wire_space(r);

    if (ingest_wire_expect(r, '[') != INGEST_WIRE_OK) {
        return INGEST_WIRE_ERROR;
    }

    if (ingest_wire_closes(r, ']')) {
        return INGEST_WIRE_OK;
    }

    for ( ;; ) {
        ingest_wire_space(r);

        if (ingest_wire_expect(r, '[') != INGEST_WIRE_OK) {
            return INGEST_WIRE_ERROR;
        }

        /* the resolutions: 1 to 7, each valid, none twice */

        ingest_wire_space(r);
        at = r->p;

        if (ingest_wire_expect(r, '[') != INGEST_WIRE_OK) {
            return INGEST_WIRE_ERROR;
        }

        n = 0;

        if (!ingest_wire_closes(r, ']')) {
            for ( ;; ) {
                ingest_wire_space(r);

                if (ingest_wire_int(r, &v) != INGEST_WIRE_OK) {
                    return INGEST_WIRE_ERROR;
                }

                for (j = 0; j < n && res[j] != v; j++) { /* void */ }

                if (n == INGEST_WIRE_MAX_RESOLUTIONS
                    || !ingest_wire_valid_resolution(v) || j < n)
                {
                    n = 0;
                    break;
                }

                res[n++] = v;

                rc = ingest_wire_next(r, ']');

                if (rc == INGEST_WIRE_OK) {
                    break;
                }

                if (rc != 1) {
                    return INGEST_WIRE_ERROR;
                }
            }
        }

        /* none, or one that is no resolution, twice or an eighth */

        if (n == 0) {
            r->p = at;
            return ingest_wire_fail(r, "invalid bucket resolutions: 1 to 7, "
                                       "each of 1 to 86400 s dividing a day, "
                                       "none twice");
        }

        ingest_wire_space(r);

        if (ingest_wire_expect(r, ',') != INGEST_WIRE_OK) {
            return INGEST_WIRE_ERROR;
        }

        ingest_wire_space(r);
        at = r->p;

        if (ingest_wire_int(r, &start) != INGEST_WIRE_OK) {
            return INGEST_WIRE_ERROR;
        }

        if (start < 0) {
            r->p = at;
            return ingest_wire_fail(r, "invalid bucket time: negative");
        }

        ingest_wire_space(r);

        if (ingest_wire_expect(r, ',') != INGEST_WIRE_OK) {
            return INGEST_WIRE_ERROR;
        }

        ingest_wire_space(r);

        first = batch->ntotal;

        if (ingest_wire_counts(r, batch) != INGEST_WIRE_OK) {
            return INGEST_WIRE_ERROR;
        }

        /* the counts once more for each further resolution */

        k = batch->ntotal - first;

        if (batch->ntotal + (n - 1) * k > batch->counts_cap) {
            cap = batch->ntotal + (n - 1) * k;
            cap = (cap < 2 * batch->counts_cap) ? 2 * batch->counts_cap : cap;

            counts = realloc(batch->counts, cap * sizeof(ingest_wire_count_t));
            if (counts == NULL) {
                return ingest_wire_fail(r, "out of memory");
            }

            batch->counts = counts;
            batch->counts_cap = cap;
        }

        for (j = 0; j < n; j++) {
            for (i = 0; i < k; i++) {
                counts = &batch->counts[j ? batch->ntotal + i
                                          : first + i];

                if (j) {
                    *counts = batch->counts[first + i];
                }

                counts->resolution = (uint32_t) res[j];
                counts->start = start - start % res[j];
            }

            if (j) {
                batch->ntotal += k;
            }
        }

        batch->nbuckets += n * k;

        ingest_wire_space(r);

        if (ingest_wire_expect(r, ']') != INGEST_WIRE_OK) {
            return INGEST_WIRE_ERROR;
        }

        rc = ingest_wire_next(r, ']');

        if (rc != 1) {
            return rc;
        }
    }
}


/* "requests":[{"id":"...","counts":{...}}, ...] */

static int
ingest_wire_requests(ingest_wire_reader_t *r, ingest_wire_batch_t *batch)
{
    int                    rc;
    char                   name[16];
    size_t                 cap;
    unsigned               have;
    ingest_wire_request_t  *q;

    if (ingest_wire_expect(r, '[') != INGEST_WIRE_OK) {
        return INGEST_WIRE_ERROR;
    }

    /* a request takes at least 20 bytes ({"id":"","counts":{}}) */

    batch->requests = ingest_wire_bounded(r, 20,
                                          sizeof(ingest_wire_request_t), &cap);
    if (batch->requests == NULL) {
        return INGEST_WIRE_ERROR;
    }

    if (ingest_wire_closes(r, ']')) {
        return INGEST_WIRE_OK;
    }

    for ( ;; ) {
        if (batch->nrequests == cap) {
            return ingest_wire_fail(r, "too many requests");
        }

        q = &batch->requests[batch->nrequests];
        q->first = batch->ntotal;
        have = 0;

        ingest_wire_space(r);

        if (ingest_wire_expect(r, '{') != INGEST_WIRE_OK) {
            return INGEST_WIRE_ERROR;
        }

        for ( ;; ) {
            if (ingest_wire_member(r, name, sizeof(name)) != INGEST_WIRE_OK) {
                return INGEST_WIRE_ERROR;
            }

            if ((strcmp(name, "id") == 0 && (have & 1))
                || (strcmp(name, "counts") == 0 && (have & 2))
                || (strcmp(name, "buckets") == 0 && (have & 4)))
            {
                return ingest_wire_fail(r, "a member given twice");
            }

            if (strcmp(name, "id") == 0) {
                q->id = batch->strings + batch->strings_used;

                if (ingest_wire_string(r, batch->strings
                                          + batch->strings_used,
                                       (size_t) -1, &q->id_len)
                    != INGEST_WIRE_OK)
                {
                    return INGEST_WIRE_ERROR;
                }

                if (q->id_len == 0 || q->id_len > INGEST_WIRE_MAX_ID) {
                    return ingest_wire_fail(r, "invalid request id");
                }

                batch->strings_used += q->id_len;
                have |= 1;

            } else if (strcmp(name, "counts") == 0) {
                /* counts and buckets both append: the range stays whole */

                if (ingest_wire_counts(r, batch) != INGEST_WIRE_OK) {
                    return INGEST_WIRE_ERROR;
                }

                have |= 2;

            } else if (strcmp(name, "buckets") == 0 && batch->version >= 3) {
                if (ingest_wire_buckets(r, batch) != INGEST_WIRE_OK) {
                    return INGEST_WIRE_ERROR;
                }

                have |= 4;

            } else if (ingest_wire_skip(r, 0) != INGEST_WIRE_OK) {
                return INGEST_WIRE_ERROR;
            }

            rc = ingest_wire_next(r, '}');

            if (rc == 1) {
                continue;
            }

            if (rc != INGEST_WIRE_OK) {
                return INGEST_WIRE_ERROR;
            }

            break;
        }

        if ((have & 3) != 3) {
            return ingest_wire_fail(r, "request lacks \"id\" or \"counts\"");
        }

        q->n = batch->ntotal - q->first;
        batch->nrequests++;

        rc = ingest_wire_next(r, ']');

        if (rc != 1) {
            return rc;
        }
    }
}


static int
ingest_wire_fail(ingest_wire_reader_t *r, const char *what)
{
    if (r->errlen && r->err[0] == '\0') {
        snprintf(r->err, r->errlen, "%s at byte %ld", what,
                 (long) (r->p - r->start));
    }

    return INGEST_WIRE_ERROR;
}


static void
ingest_wire_space(ingest_wire_reader_t *r)
{
    while (r->p < r->end
           && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n'
               || *r->p == '\r'))
    {
        r->p++;
    }
}


static int
ingest_wire_expect(ingest_wire_reader_t *r, char ch)
{
    char  what[16];

    if (r->p < r->end && *r->p == ch) {
        r->p++;
        return INGEST_WIRE_OK;
    }

    snprintf(what, sizeof(what), "expected '%c'", ch);

    return ingest_wire_fail(r, what);
}


/* after an opening bracket: 1 if the closing one follows (and is read) */

/*
 * After a member or an element: a ',' (1: another one follows) or the
 * container's close (INGEST_WIRE_OK: it ends here), spaces around;
 * INGEST_WIRE_ERROR for anything else.
 */

static int
ingest_wire_next(ingest_wire_reader_t *r, char close)
{
    ingest_wire_space(r);

    if (r->p < r->end && *r->p == ',') {
        r->p++;
        return 1;
    }

    return ingest_wire_expect(r, close);
}


static int
ingest_wire_closes(ingest_wire_reader_t *r, char close)
{
    ingest_wire_space(r);

    if (r->p < r->end && *r->p == close) {
        r->p++;
        return 1;
    }

    return 0;
}


/*
 * An array for the elements of what is left to read, each at least
 * min_len bytes of it: *cap of them, which none of a valid batch exceeds.
 */

static void *
ingest_wire_bounded(ingest_wire_reader_t *r, size_t min_len, size_t size,
    size_t *cap)
{
    void  *a;

    *cap = (r->end - r->p) / min_len + 1;

    a = malloc(*cap * size);
    if (a == NULL) {
        ingest_wire_fail(r, "out of memory");
    }

    return a;
}


static int
ingest_wire_hex4(ingest_wire_reader_t *r, unsigned *cp)
{
    int  i, c;

    if (r->end - r->p < 4) {
        return ingest_wire_fail(r, "invalid escape");
    }

    *cp = 0;

    for (i = 0; i < 4; i++) {
        c = (unsigned char) r->p[i];

        if (c >= '0' && c <= '9') {
            c -= '0';

        } else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f') {
            c = (c | 0x20) - 'a' + 10;

        } else {
            return ingest_wire_fail(r, "invalid escape");
        }

        *cp = *cp * 16 + c;
    }

    r->p += 4;

    return INGEST_WIRE_OK;
}


/*
 * 1 if p holds UTF-8 as RFC 3629 has it (and PostgreSQL takes it): no
 * overlong form, no surrogate, nothing past U+10FFFF.  Escapes decode to
 * such UTF-8 already; raw bytes are checked here.
 */

static int
ingest_wire_utf8(const unsigned char *p, size_t len)
{
    size_t  i, n;

    for (i = 0; i < len; i += n) {
        if (p[i] < 0x80) {
            n = 1;
            continue;
        }

        n = ingest_json_utf8_seq(p + i, len - i);

        if (n == 0) {
            return 0;
        }
    }

    return 1;
}


/*
 * A JSON string, unescaped: its first cap bytes go to out (when not NULL),
 * and *len is its whole length, so a caller sees that it was cut.  Raw
 * bytes are copied as they are: the module accepted only valid UTF-8.
 */

#define ingest_wire_put(c)                                                    \
    do {                                                                      \
        if (out != NULL && n < cap) {                                         \
            out[n] = (char) (c);                                              \
        }                                                                     \
        n++;                                                                  \
    } while (0)


static int
ingest_wire_string(ingest_wire_reader_t *r, char *out, size_t cap,
    size_t *len)
{
    int            esc;
    unsigned char  ch;
    unsigned       cp, lo;
    size_t         n;

    if (ingest_wire_expect(r, '"') != INGEST_WIRE_OK) {
        return INGEST_WIRE_ERROR;
    }

    n = 0;

    for ( ;; ) {
        if (r->p == r->end) {
            return ingest_wire_fail(r, "unterminated string");
        }

        ch = (unsigned char) *r->p++;

        if (ch == '"') {
            break;
        }

        if (ch < 0x20) {
            r->p--;
            return ingest_wire_fail(r, "control character in string");
        }

        if (ch != '\\') {
            ingest_wire_put(ch);
            continue;
        }

        if (r->p == r->end) {
            return ingest_wire_fail(r, "unterminated string");
        }

        ch = (unsigned char) *r->p++;

        if (ch != 'u') {
            esc = ingest_json_unescape(ch);

            if (esc < 0) {
                r->p -= 2;
                return ingest_wire_fail(r, "invalid escape");
            }

            ingest_wire_put(esc);
            continue;
        }

        if (ingest_wire_hex4(r, &cp) != INGEST_WIRE_OK) {
            return INGEST_WIRE_ERROR;
        }

        if (cp >= 0xdc00 && cp <= 0xdfff) {
            return ingest_wire_fail(r, "lone surrogate");
        }

        if (cp >= 0xd800 && cp <= 0xdbff) {
            if (r->end - r->p < 2 || r->p[0] != '\\' || r->p[1] != 'u') {
                return ingest_wire_fail(r, "lone surrogate");
            }

            r->p += 2;

            if (ingest_wire_hex4(r, &lo) != INGEST_WIRE_OK) {
                return INGEST_WIRE_ERROR;
            }

            if (lo < 0xdc00 || lo > 0xdfff) {
                return ingest_wire_fail(r, "lone surrogate");
            }

            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        }

        /* the escape is at least as long as its UTF-8 form */

        if (cp < 0x80) {
            ingest_wire_put(cp);

        } else if (cp < 0x800) {
            ingest_wire_put(0xc0 | (cp >> 6));
            ingest_wire_put(0x80 | (cp & 0x3f));

        } else if (cp < 0x10000) {
            ingest_wire_put(0xe0 | (cp >> 12));
            ingest_wire_put(0x80 | ((cp >> 6) & 0x3f));
            ingest_wire_put(0x80 | (cp & 0x3f));

        } else {
            ingest_wire_put(0xf0 | (cp >> 18));
            ingest_wire_put(0x80 | ((cp >> 12) & 0x3f));
            ingest_wire_put(0x80 | ((cp >> 6) & 0x3f));
            ingest_wire_put(0x80 | (cp & 0x3f));
        }
    }

    *len = n;

    return INGEST_WIRE_OK;
}


/* an integer in JSON's grammar, exact over the whole int64 range */

static int
ingest_wire_int(ingest_wire_reader_t *r, int64_t *v)
{
    int       negative;
    uint64_t  m, limit, d;

    negative = 0;
    m = 0;

    if (r->p < r->end && *r->p == '-') {
        negative = 1;
        r->p++;
    }

    if (r->p == r->end || *r->p < '0' || *r->p > '9') {
        return ingest_wire_fail(r, "expected an integer");
    }

    if (*r->p == '0' && r->end - r->p > 1 && r->p[1] >= '0' && r->p[1] <= '9')
    {
        return ingest_wire_fail(r, "leading zero");
    }

    limit = negative ? (uint64_t) INT64_MAX + 1 : (uint64_t) INT64_MAX;

    while (r->p < r->end && *r->p >= '0' && *r->p <= '9') {
        d = *r->p - '0';

        if (m > (limit - d) / 10) {
            return ingest_wire_fail(r, "integer out of range");
        }

        m = m * 10 + d;
        r->p++;
    }

    if (r->p < r->end && (*r->p == '.' || *r->p == 'e' || *r->p == 'E')) {
        return ingest_wire_fail(r, "expected an integer");
    }

    *v = negative ? (int64_t) (0 - m) : (int64_t) m;

    return INGEST_WIRE_OK;
}


/*
 * A number in JSON's grammar (no "007", "1-2", "+1", "1."), stepped
 * over; *integer: it has no fraction and no exponent.
 */

static int
ingest_wire_number(ingest_wire_reader_t *r, int *integer)
{
    const char  *p;

    p = r->p;
    *integer = 1;

    if (p < r->end && *p == '-') {
        p++;
    }

    if (p == r->end || *p < '0' || *p > '9') {
        return ingest_wire_fail(r, "expected a value");
    }

    if (*p == '0') {
        p++;

    } else {
        ingest_wire_digits(p, r->end);
    }

    if (p < r->end && *p == '.') {
        *integer = 0;

        if (++p == r->end || *p < '0' || *p > '9') {
            r->p = p;
            return ingest_wire_fail(r, "invalid number");
        }

        ingest_wire_digits(p, r->end);
    }

    if (p < r->end && (*p == 'e' || *p == 'E')) {
        *integer = 0;
        p++;

        if (p < r->end && (*p == '+' || *p == '-')) {
            p++;
        }

        if (p == r->end || *p < '0' || *p > '9') {
            r->p = p;
            return ingest_wire_fail(r, "invalid number");
        }

        ingest_wire_digits(p, r->end);
    }

    if (p < r->end && ((*p >= '0' && *p <= '9') || *p == '-' || *p == '+'
                       || *p == '.' || *p == 'e' || *p == 'E'))
    {
        r->p = p;
        return ingest_wire_fail(r, "invalid number");
    }

    r->p = p;

    return INGEST_WIRE_OK;
}


/* any JSON value, validated and passed over */

static int
ingest_wire_skip(ingest_wire_reader_t *r, int depth)
{
    int          rc, integer;
    char         close;
    size_t       len;
    const char  *lit;

    if (depth > INGEST_WIRE_MAX_DEPTH) {
        return ingest_wire_fail(r, "nested too deep");
    }

    ingest_wire_space(r);

    if (r->p == r->end) {
        return ingest_wire_fail(r, "expected a value");
    }

    switch (*r->p) {

    case '"':
        return ingest_wire_string(r, NULL, 0, &len);

    case '{':
    case '[':
        close = (*r->p == '{') ? '}' : ']';
        r->p++;
        ingest_wire_space(r);

        if (r->p < r->end && *r->p == close) {
            r->p++;
            return INGEST_WIRE_OK;
        }

        for ( ;; ) {
            ingest_wire_space(r);

            if (close == '}') {
                if (ingest_wire_string(r, NULL, 0, &len) != INGEST_WIRE_OK) {
                    return INGEST_WIRE_ERROR;
                }

                ingest_wire_space(r);

                if (ingest_wire_expect(r, ':') != INGEST_WIRE_OK) {
                    return INGEST_WIRE_ERROR;
                }
            }

            if (ingest_wire_skip(r, depth + 1) != INGEST_WIRE_OK) {
                return INGEST_WIRE_ERROR;
            }

            rc = ingest_wire_next(r, close);

            if (rc != 1) {
                return rc;
            }
        }

    case 't':
        lit = "true";
        break;

    case 'f':
        lit = "false";
        break;

    case 'n':
        lit = "null";
        break;

    default:
        return ingest_wire_number(r, &integer);
    }

    len = strlen(lit);

    if ((size_t) (r->end - r->p) < len || memcmp(r->p, lit, len) != 0) {
        return ingest_wire_fail(r, "expected a value");
    }

    r->p += len;

    return INGEST_WIRE_OK;
}
