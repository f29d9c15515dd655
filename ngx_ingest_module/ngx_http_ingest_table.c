
/*
 * Copyright (C) ngx_ingest developers
 * SPDX-License-Identifier: BSD-2-Clause
 */


#include <stdlib.h>
#include <string.h>

#include "ngx_http_ingest_table.h"


#define NGX_HTTP_INGEST_TABLE_SLOTS   1024          /* initial capacity */
#define NGX_HTTP_INGEST_TABLE_PRESIZE 65536         /* at most, up front */
#define NGX_HTTP_INGEST_BLOCK_SIZE    (64 * 1024)
#define NGX_HTTP_INGEST_KEEP_BYTES    (1024 * 1024)   /* arena kept on reset */


static ngx_http_ingest_entry_t *ngx_http_ingest_table_slot(
    ngx_http_ingest_table_t *t, uint64_t hash, u_char *key, size_t len);
static int ngx_http_ingest_table_grow(ngx_http_ingest_table_t *t);
static u_char *ngx_http_ingest_table_copy(ngx_http_ingest_table_t *t,
    u_char *key, size_t len);


/*
 * A table made for "keys" keys (ingest_flush_keys: a cut empties it at
 * that many) gets its working size at once, so that a worker's memory
 * does not step up the first time a burst fills it; past 64k slots it
 * grows as it goes.
 */

int
ngx_http_ingest_table_init(ngx_http_ingest_table_t *t, size_t keys)
{
    size_t  n;

    memset(t, 0, sizeof(ngx_http_ingest_table_t));

    n = ngx_http_ingest_table_size(keys) / sizeof(ngx_http_ingest_entry_t);

    t->slots = calloc(n, sizeof(ngx_http_ingest_entry_t));
    if (t->slots == NULL) {
        return NGX_HTTP_INGEST_TABLE_NOMEM;
    }

    t->mask = n - 1;
    t->memory = n * sizeof(ngx_http_ingest_entry_t);

    return NGX_HTTP_INGEST_TABLE_OK;
}


size_t
ngx_http_ingest_table_size(size_t keys)
{
    size_t  n;

    for (n = NGX_HTTP_INGEST_TABLE_SLOTS;
         n * 3 < keys * 4 && n < NGX_HTTP_INGEST_TABLE_PRESIZE;
         n *= 2)
    {
        /* void */
    }

    return n * sizeof(ngx_http_ingest_entry_t);
}


void
ngx_http_ingest_table_free(ngx_http_ingest_table_t *t)
{
    ngx_http_ingest_block_t  *b, *next;

    for (b = t->blocks; b; b = next) {
        next = b->next;
        free(b);
    }

    for (b = t->spare; b; b = next) {
        next = b->next;
        free(b);
    }

    free(t->slots);
    memset(t, 0, sizeof(ngx_http_ingest_table_t));
}


/*
 * Every key goes at once.  Arena blocks are kept, empty, up to 1 MB in
 * all, so that the next round reuses them rather than going back to
 * malloc (and the worker's memory stays level); the rest are freed.
 */

void
ngx_http_ingest_table_reset(ngx_http_ingest_table_t *t)
{
    ngx_http_ingest_block_t  *b, *next;

    if (t->nkeys) {
        memset(t->slots, 0, (t->mask + 1) * sizeof(ngx_http_ingest_entry_t));
    }

    t->nkeys = 0;
    t->key_bytes = 0;

    if (t->blocks == NULL) {
        return;
    }

    for (b = t->blocks->next; b; b = next) {
        next = b->next;

        if (t->blocks->size + t->spare_bytes + b->size
            <= NGX_HTTP_INGEST_KEEP_BYTES)
        {
            b->used = 0;
            b->next = t->spare;
            t->spare = b;
            t->spare_bytes += b->size;
            continue;
        }

        t->memory -= sizeof(ngx_http_ingest_block_t) + b->size;
        free(b);
    }

    t->blocks->next = NULL;
    t->blocks->used = 0;
}


/*
 * Eight bytes at a time, each word mixed in with a multiply, then a
 * final avalanche so the low bits (the slot) depend on every byte.  The
 * last word overlaps the one before it rather than being padded, and a
 * key under 8 bytes is read as two overlapping halves: no byte loop and
 * no variable-length copy.  A uuid key costs five multiplies instead of
 * FNV-1a's thirty-six.
 *
 * 0 marks an empty slot, so the top bit is set: FNV-1a's "| 1" here
 * used to leave every even slot without a home, halving the table.
 */

#define NGX_HTTP_INGEST_HASH_M1  0x9e3779b97f4a7c15ULL
#define NGX_HTTP_INGEST_HASH_M2  0xbf58476d1ce4e5b9ULL
#define NGX_HTTP_INGEST_HASH_M3  0x94d049bb133111ebULL

#define ngx_http_ingest_hash_mix(h, w)                                        \
    h = ((h) ^ (w)) * NGX_HTTP_INGEST_HASH_M1;                                \
    h ^= (h) >> 31

uint64_t
ngx_http_ingest_hash(u_char *key, size_t len)
{
    uint32_t  lo, hi;
    uint64_t  h, w;

    h = (uint64_t) len * NGX_HTTP_INGEST_HASH_M1;

    if (len >= 8) {
        for ( /* void */ ; len > 8; key += 8, len -= 8) {
            memcpy(&w, key, 8);
            ngx_http_ingest_hash_mix(h, w);
        }

        memcpy(&w, key + len - 8, 8);
        ngx_http_ingest_hash_mix(h, w);

    } else if (len >= 4) {
        memcpy(&lo, key, 4);
        memcpy(&hi, key + len - 4, 4);
        w = (uint64_t) hi << 32 | lo;
        ngx_http_ingest_hash_mix(h, w);

    } else if (len) {
        w = (uint64_t) key[0] << 16 | (uint64_t) key[len / 2] << 8
            | key[len - 1];
        ngx_http_ingest_hash_mix(h, w);
    }

    /* splitmix64's finaliser */

    h ^= h >> 30;
    h *= NGX_HTTP_INGEST_HASH_M2;
    h ^= h >> 27;
    h *= NGX_HTTP_INGEST_HASH_M3;
    h ^= h >> 31;

    return h | 0x8000000000000000ULL;
}


int
ngx_http_ingest_table_add(ngx_http_ingest_table_t *t, u_char *key,
    size_t len, int64_t delta, int *created)
{
    int64_t                   sum;
    uint64_t                  hash;
    ngx_http_ingest_entry_t  *e;

    hash = ngx_http_ingest_hash(key, len);
    e = ngx_http_ingest_table_slot(t, hash, key, len);

    if (e->hash) {
        *created = 0;

        /* the sum is stored only when it fits: a refusal changes nothing */

        if (__builtin_add_overflow(e->value, delta, &sum)) {
            return NGX_HTTP_INGEST_TABLE_OVERFLOW;
        }

        e->value = sum;

        return NGX_HTTP_INGEST_TABLE_OK;
    }

    /*
     * Keep the load factor at or under 3/4: linear probing is still
     * short there, and the default 10000 keys of a cut fit 16k slots
     * (512 KB, a core's L2 cache on this machine) rather than 32k.
     */

    if ((t->nkeys + 1) * 4 > (t->mask + 1) * 3) {
        if (ngx_http_ingest_table_grow(t) != NGX_HTTP_INGEST_TABLE_OK) {
            return NGX_HTTP_INGEST_TABLE_NOMEM;
        }

        e = ngx_http_ingest_table_slot(t, hash, key, len);
    }

    e->key = ngx_http_ingest_table_copy(t, key, len);
    if (e->key == NULL) {
        return NGX_HTTP_INGEST_TABLE_NOMEM;
    }

    e->hash = hash;
    e->len = len;
    e->value = delta;

    t->nkeys++;
    t->key_bytes += len;
    *created = 1;

    return NGX_HTTP_INGEST_TABLE_OK;
}


void
ngx_http_ingest_table_undo(ngx_http_ingest_table_t *t, u_char *key,
    size_t len, int64_t delta, int created)
{
    size_t                    i, j, home;
    ngx_http_ingest_entry_t  *e;

    e = ngx_http_ingest_table_find(t, key, len);
    if (e == NULL) {
        return;
    }

    if (!created) {
        /* exact inverse of the add that succeeded, so it cannot wrap */
        e->value = (int64_t) ((uint64_t) e->value - (uint64_t) delta);
        return;
    }

    /* backward-shift deletion keeps every probe chain unbroken */

    i = e - t->slots;
    t->nkeys--;
    t->key_bytes -= len;

    for ( ;; ) {
        t->slots[i].hash = 0;
        j = i;

        for ( ;; ) {
            j = (j + 1) & t->mask;

            if (t->slots[j].hash == 0) {
                return;
            }

            home = t->slots[j].hash & t->mask;

            /* may the entry at j move to i? only if home is not in (i, j] */

            if (i <= j ? (home <= i || home > j) : (home <= i && home > j)) {
                break;
            }
        }

        t->slots[i] = t->slots[j];
        i = j;
    }
}


ngx_http_ingest_entry_t *
ngx_http_ingest_table_find(ngx_http_ingest_table_t *t, u_char *key,
    size_t len)
{
    ngx_http_ingest_entry_t  *e;

    e = ngx_http_ingest_table_slot(t, ngx_http_ingest_hash(key, len), key,
                                   len);

    return e->hash ? e : NULL;
}


/* the slot holding key, or the free slot where it would go */

static ngx_http_ingest_entry_t *
ngx_http_ingest_table_slot(ngx_http_ingest_table_t *t, uint64_t hash,
    u_char *key, size_t len)
{
    size_t                    i;
    ngx_http_ingest_entry_t  *e;

    for (i = hash & t->mask; /* void */ ; i = (i + 1) & t->mask) {
        e = &t->slots[i];

        if (e->hash == 0) {
            return e;
        }

        if (e->hash == hash && e->len == len
            && memcmp(e->key, key, len) == 0)
        {
            return e;
        }
    }
}


static int
ngx_http_ingest_table_grow(ngx_http_ingest_table_t *t)
{
    size_t                    i, j, n;
    ngx_http_ingest_entry_t  *slots, *e;

    n = (t->mask + 1) * 2;

    slots = calloc(n, sizeof(ngx_http_ingest_entry_t));
    if (slots == NULL) {
        return NGX_HTTP_INGEST_TABLE_NOMEM;
    }

    for (i = 0; i <= t->mask; i++) {
        e = &t->slots[i];

        if (e->hash == 0) {
            continue;
        }

        for (j = e->hash & (n - 1); slots[j].hash; j = (j + 1) & (n - 1)) {
            /* void */
        }

        slots[j] = *e;
    }

    free(t->slots);
    t->slots = slots;
    t->mask = n - 1;
    t->memory += (n / 2) * sizeof(ngx_http_ingest_entry_t);

    return NGX_HTTP_INGEST_TABLE_OK;
}


static u_char *
ngx_http_ingest_table_copy(ngx_http_ingest_table_t *t, u_char *key,
    size_t len)
{
    size_t                    size;
    u_char                   *p;
    ngx_http_ingest_block_t  *b;

    b = t->blocks;

    if (b == NULL || b->size - b->used < len) {

        if (t->spare != NULL && t->spare->size >= len) {
            b = t->spare;
            t->spare = b->next;
            t->spare_bytes -= b->size;

        } else {
            size = len > NGX_HTTP_INGEST_BLOCK_SIZE
                   ? len : NGX_HTTP_INGEST_BLOCK_SIZE;

            b = malloc(sizeof(ngx_http_ingest_block_t) + size);
            if (b == NULL) {
                return NULL;
            }

            b->size = size;
            b->used = 0;
            t->memory += sizeof(ngx_http_ingest_block_t) + size;
        }

        /* the newest block goes first, so the hot path checks one block */

        b->next = t->blocks;
        t->blocks = b;
    }

    p = (u_char *) (b + 1) + b->used;
    b->used += len;

    if (len) {
        memcpy(p, key, len);
    }

    return p;
}
