
/*
 * Copyright (C) ngx_ingest developers
 * SPDX-License-Identifier: BSD-2-Clause
 *
 * Writing batches: what the module links.  Reading them is in
 * ingest_wire_decode.c, which only the consumer and the tests need.
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest_wire.h"
#include "ingest_span.h"


static int ingest_wire_reserve(ingest_wire_buf_t *b, size_t n);
static void ingest_wire_put_array(ingest_wire_buf_t *b, const char *open,
    const ingest_wire_buf_t *elements);
static char *ingest_wire_write_int(char *p, int64_t v);
static char *ingest_wire_write_string(char *p, const unsigned char *s,
    size_t len);

int
ingest_wire_counters_begin(ingest_wire_buf_t *b, int version,
    const char *producer, uint64_t seq, int64_t ts)
{
    char    *p;
    size_t   plen;

    plen = strlen(producer);

    b->len = 0;
    b->count = 0;

    if (ingest_wire_reserve(b, 96 + plen * 6) != INGEST_WIRE_OK) {
        return INGEST_WIRE_NOMEM;
    }

    p = b->data;
    p += sprintf(p, "{\"v\":%d,\"kind\":\"counters\",\"producer\":",
                 version);
    p = ingest_wire_write_string(p, (const unsigned char *) producer, plen);
    p += sprintf(p, ",\"seq\":%llu,\"ts\":", (unsigned long long) seq);
    p = ingest_wire_write_int(p, ts);
    memcpy(p, ",\"counts\":{", 11);
    p += 11;

    b->len = p - b->data;

    return INGEST_WIRE_OK;
}


int
ingest_wire_counters_add(ingest_wire_buf_t *b, const unsigned char *key,
    size_t len, int64_t value)
{
    char  *p;

    /* worst case: a separator, \u00XX per byte, quotes, colon, 20 digits */

    if (ingest_wire_reserve(b, 1 + len * 6 + 3 + 20) != INGEST_WIRE_OK) {
        return INGEST_WIRE_NOMEM;
    }

    p = b->data + b->len;

    if (b->count++) {
        *p++ = ',';
    }

    p = ingest_wire_write_string(p, key, len);
    *p++ = ':';
    p = ingest_wire_write_int(p, value);

    b->len = p - b->data;

    return INGEST_WIRE_OK;
}


int
ingest_wire_counters_end(ingest_wire_buf_t *b,
    const ingest_wire_buf_t *requests)
{
    return ingest_wire_counters_end_buckets(b, NULL, requests);
}


int
ingest_wire_counters_end_buckets(ingest_wire_buf_t *b,
    const ingest_wire_buf_t *buckets, const ingest_wire_buf_t *requests)
{
    size_t  n, nb;

    n = (requests != NULL) ? requests->len : 0;
    nb = (buckets != NULL) ? buckets->len : 0;

    if (ingest_wire_reserve(b, n + nb + 32) != INGEST_WIRE_OK) {
        return INGEST_WIRE_NOMEM;
    }

    b->data[b->len++] = '}';

    if (nb) {
        ingest_wire_put_array(b, ",\"buckets\":[", buckets);
    }

    if (n) {
        ingest_wire_put_array(b, ",\"requests\":[", requests);
    }

    b->data[b->len++] = '}';

    return INGEST_WIRE_OK;
}


/* open (',"name":[') and the elements' text, then ']': room reserved */

static void
ingest_wire_put_array(ingest_wire_buf_t *b, const char *open,
    const ingest_wire_buf_t *elements)
{
    size_t  len;

    len = strlen(open);
    memcpy(b->data + b->len, open, len);
    b->len += len;
    memcpy(b->data + b->len, elements->data, elements->len);
    b->len += elements->len;
    b->data[b->len++] = ']';
}


int
ingest_wire_request_begin(ingest_wire_buf_t *b, const unsigned char *id,
    size_t len)
{
    char  *p;

    if (ingest_wire_reserve(b, 1 + len * 6 + 24) != INGEST_WIRE_OK) {
        return INGEST_WIRE_NOMEM;
    }

    p = b->data + b->len;

    if (b->len) {
        *p++ = ',';
    }

    memcpy(p, "{\"id\":", 6);
    p = ingest_wire_write_string(p + 6, id, len);
    memcpy(p, ",\"counts\":{", 11);
    p += 11;

    b->len = p - b->data;
    b->count = 0;

    return INGEST_WIRE_OK;
}


int
ingest_wire_request_end(ingest_wire_buf_t *b)
{
    return ingest_wire_request_end_buckets(b, NULL);
}


int
ingest_wire_request_end_buckets(ingest_wire_buf_t *b,
    const ingest_wire_buf_t *buckets)
{
    size_t  nb;

    nb = (buckets != NULL) ? buckets->len : 0;

    if (ingest_wire_reserve(b, nb + 16) != INGEST_WIRE_OK) {
        return INGEST_WIRE_NOMEM;
    }

    b->data[b->len++] = '}';

    if (nb) {
        ingest_wire_put_array(b, ",\"buckets\":[", buckets);
    }

    b->data[b->len++] = '}';

    return INGEST_WIRE_OK;
}


int
ingest_wire_bucket_begin(ingest_wire_buf_t *b, const uint32_t *resolutions,
    size_t n, int64_t start)
{
    char    *p;
    size_t   i;

    if (ingest_wire_reserve(b, 1 + 2 + n * 11 + 1 + 20 + 3) != INGEST_WIRE_OK)
    {
        return INGEST_WIRE_NOMEM;
    }

    p = b->data + b->len;

    if (b->len) {
        *p++ = ',';
    }

    *p++ = '[';
    *p++ = '[';

    for (i = 0; i < n; i++) {
        p += sprintf(p, i ? ",%u" : "%u", (unsigned) resolutions[i]);
    }

    *p++ = ']';
    *p++ = ',';
    p = ingest_wire_write_int(p, start);
    *p++ = ',';
    *p++ = '{';

    b->len = p - b->data;
    b->count = 0;

    return INGEST_WIRE_OK;
}


int
ingest_wire_bucket_end(ingest_wire_buf_t *b)
{
    if (ingest_wire_reserve(b, 2) != INGEST_WIRE_OK) {
        return INGEST_WIRE_NOMEM;
    }

    b->data[b->len++] = '}';
    b->data[b->len++] = ']';

    return INGEST_WIRE_OK;
}


int64_t
ingest_wire_duration(const char *text, size_t len)
{
    size_t   i;
    int64_t  n, unit;

    if (len < 2) {
        return -1;
    }

    switch (text[len - 1]) {
    case 's': unit = 1; break;
    case 'm': unit = 60; break;
    case 'h': unit = 3600; break;
    case 'd': unit = 86400; break;
    default: return -1;
    }

    n = 0;

    for (i = 0; i < len - 1; i++) {
        if (text[i] < '0' || text[i] > '9' || n > 100000000) {
            return -1;
        }

        n = n * 10 + (text[i] - '0');
    }

    return n * unit;
}


int
ingest_wire_valid_resolution(int64_t resolution)
{
    return resolution >= 1 && resolution <= INGEST_WIRE_MAX_RESOLUTION
           && INGEST_WIRE_MAX_RESOLUTION % resolution == 0;
}


const char  *ingest_wire_type_names[4] = { "int", "real", "text", "bool" };


int
ingest_wire_valid_name(const char *name, size_t len)
{
    size_t  i;

    if (len == 0 || len > INGEST_WIRE_MAX_NAME
        || (name[0] >= '0' && name[0] <= '9'))
    {
        return 0;
    }

    for (i = 0; i < len; i++) {
        if (!((name[i] >= 'a' && name[i] <= 'z')
              || (name[i] >= 'A' && name[i] <= 'Z')
              || (name[i] >= '0' && name[i] <= '9') || name[i] == '_'))
        {
            return 0;
        }
    }

    return 1;
}


int
ingest_wire_records_begin(ingest_wire_buf_t *b, const char *producer,
    uint64_t seq, int64_t ts, const char *table, size_t ncolumns,
    const char *const *columns, const int *types)
{
    char    *p;
    size_t   i, n;

    n = 128 + strlen(producer) * 6 + strlen(table);

    for (i = 0; i < ncolumns; i++) {
        n += strlen(columns[i]) + 16;
    }

    b->len = 0;
    b->count = 0;

    if (ingest_wire_reserve(b, n) != INGEST_WIRE_OK) {
        return INGEST_WIRE_NOMEM;
    }

    p = b->data;
    p += sprintf(p, "{\"v\":%d,\"kind\":\"records\",\"producer\":",
                 INGEST_WIRE_VERSION_PLAIN);
    p = ingest_wire_write_string(p, (const unsigned char *) producer,
                                 strlen(producer));
    p += sprintf(p, ",\"seq\":%llu,\"ts\":", (unsigned long long) seq);
    p = ingest_wire_write_int(p, ts);
    p += sprintf(p, ",\"table\":\"%s\",\"columns\":[", table);

    for (i = 0; i < ncolumns; i++) {
        p += sprintf(p, "%s\"%s\"", i ? "," : "", columns[i]);
    }

    p += sprintf(p, "],\"types\":[");

    for (i = 0; i < ncolumns; i++) {
        p += sprintf(p, "%s\"%s\"", i ? "," : "",
                     ingest_wire_type_names[types[i]]);
    }

    p += sprintf(p, "],\"rows\":[");

    b->len = p - b->data;

    return INGEST_WIRE_OK;
}


int
ingest_wire_records_end(ingest_wire_buf_t *b, const ingest_wire_buf_t *rows)
{
    if (ingest_wire_reserve(b, rows->len + 2) != INGEST_WIRE_OK) {
        return INGEST_WIRE_NOMEM;
    }

    memcpy(b->data + b->len, rows->data, rows->len);
    b->len += rows->len;
    b->data[b->len++] = ']';
    b->data[b->len++] = '}';

    return INGEST_WIRE_OK;
}


char *
ingest_wire_buf_reserve(ingest_wire_buf_t *b, size_t n)
{
    if (ingest_wire_reserve(b, n) != INGEST_WIRE_OK) {
        return NULL;
    }

    return b->data + b->len;
}


void
ingest_wire_buf_free(ingest_wire_buf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->count = 0;
}


static int
ingest_wire_reserve(ingest_wire_buf_t *b, size_t n)
{
    char    *data;
    size_t   cap;

    if (b->cap - b->len >= n) {
        return INGEST_WIRE_OK;
    }

    cap = b->cap ? b->cap : 4096;

    while (cap - b->len < n) {
        cap *= 2;
    }

    data = realloc(b->data, cap);
    if (data == NULL) {
        return INGEST_WIRE_NOMEM;
    }

    b->data = data;
    b->cap = cap;

    return INGEST_WIRE_OK;
}


static char *
ingest_wire_write_int(char *p, int64_t v)
{
    char      tmp[20], *t;
    uint64_t  m;

    if (v < 0) {
        *p++ = '-';
        m = 0 - (uint64_t) v;

    } else {
        m = (uint64_t) v;
    }

    t = tmp + sizeof(tmp);

    do {
        *--t = (char) ('0' + m % 10);
        m /= 10;
    } while (m);

    memcpy(p, t, tmp + sizeof(tmp) - t);

    return p + (tmp + sizeof(tmp) - t);
}


static char *
ingest_wire_write_string(char *p, const unsigned char *s, size_t len)
{
    size_t              i, run;
    static const char   hex[] = "0123456789abcdef";

    *p++ = '"';

    for (i = 0; i < len; /* void */) {

        /* a run of bytes that need no escape goes in one copy */

        /* bytes that need no escape: all but controls, '"' and '\\' */

        run = i + ingest_span(s + i, s + len, 0x20, 0xff, '"', '\\', '"',
                              '"');

        if (run > i) {
            memcpy(p, s + i, run - i);
            p += run - i;
            i = run;
            continue;
        }

        if (s[i] == '"' || s[i] == '\\') {
            *p++ = '\\';
            *p++ = (char) s[i];

        } else {
            *p++ = '\\';
            *p++ = 'u';
            *p++ = '0';
            *p++ = '0';
            *p++ = hex[s[i] >> 4];
            *p++ = hex[s[i] & 0xf];
        }

        i++;
    }

    *p++ = '"';

    return p;
}
