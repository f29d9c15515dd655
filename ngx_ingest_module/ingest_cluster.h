
/*
 * Copyright (C) ngx_ingest developers
 * SPDX-License-Identifier: BSD-2-Clause
 *
 * Redis Cluster's key slot, for the module and the consumer alike: the
 * CRC16-CCITT (XMODEM) of the key, or of the part between its first '{'
 * and the next '}' when that part is not empty, modulo 16384.
 */

#ifndef _INGEST_CLUSTER_H_INCLUDED_
#define _INGEST_CLUSTER_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>
#include <string.h>


#define INGEST_CLUSTER_SLOTS  16384


static inline unsigned
ingest_cluster_slot(const unsigned char *key, size_t len)
{
    int                   i;
    uint16_t              crc;
    const unsigned char  *open, *close;

    open = memchr(key, '{', len);

    if (open != NULL) {
        close = memchr(open + 1, '}', len - (open + 1 - key));

        if (close != NULL && close > open + 1) {
            key = open + 1;
            len = close - key;
        }
    }

    crc = 0;

    while (len--) {
        crc ^= (uint16_t) (*key++ << 8);

        for (i = 0; i < 8; i++) {
            crc = (crc & 0x8000) ? (uint16_t) ((crc << 1) ^ 0x1021)
                                 : (uint16_t) (crc << 1);
        }
    }

    return crc & (INGEST_CLUSTER_SLOTS - 1);
}


/*
 * Does the key hold a hash tag of its own?  A list without one has its
 * companion keys (the consumer's lock, its heartbeat) named "{list}:..."
 * in a cluster, so that they share the list's slot.
 */

static inline int
ingest_cluster_tagged(const unsigned char *key, size_t len)
{
    const unsigned char  *open;

    open = memchr(key, '{', len);

    return open != NULL && open + 1 < key + len && open[1] != '}'
           && memchr(open + 1, '}', len - (open + 1 - key)) != NULL;
}


#ifdef __HIREDIS_H

/* one range of CLUSTER SLOTS, [start, end, [host, port, id], replicas...] */

typedef struct {
    unsigned              start;
    unsigned              end;
    const char           *host;            /* not NUL-terminated */
    size_t                host_len;
    int                   port;
    size_t                replicas;        /* Redis leaves out failed ones */
} ingest_cluster_range_t;


/* 0, or -1 if the element is not a range as Redis 3 to 7 send it */

static inline int
ingest_cluster_range(const redisReply *range, ingest_cluster_range_t *r)
{
    const redisReply  *master;

    if (range->type != REDIS_REPLY_ARRAY || range->elements < 3
        || range->element[0]->type != REDIS_REPLY_INTEGER
        || range->element[1]->type != REDIS_REPLY_INTEGER
        || range->element[2]->type != REDIS_REPLY_ARRAY
        || range->element[2]->elements < 2)
    {
        return -1;
    }

    master = range->element[2];

    if (master->element[0]->type != REDIS_REPLY_STRING
        || master->element[1]->type != REDIS_REPLY_INTEGER
        || range->element[0]->integer < 0
        || range->element[1]->integer >= INGEST_CLUSTER_SLOTS
        || range->element[0]->integer > range->element[1]->integer)
    {
        return -1;
    }

    r->start = (unsigned) range->element[0]->integer;
    r->end = (unsigned) range->element[1]->integer;
    r->host = master->element[0]->str;
    r->host_len = master->element[0]->len;
    r->port = (int) master->element[1]->integer;
    r->replicas = range->elements - 3;

    return 0;
}

#endif


#endif /* _INGEST_CLUSTER_H_INCLUDED_ */
