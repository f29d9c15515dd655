
/*
 * Copyright (C) ngx_ingest developers
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


#endif /* _INGEST_CLUSTER_H_INCLUDED_ */
