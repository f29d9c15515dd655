
/*
 * Copyright (C) ngx_ingest developers
 * SPDX-License-Identifier: BSD-2-Clause
 *
 * The pending table: one per worker and list, key -> int64 sum, added to in
 * place between two flushes.  Open addressing with linear probing over a
 * power-of-two array; keys are copied into arena blocks that a reset
 * recycles, so a flush frees every key at once and the hot path allocates
 * nothing once the table has grown to its working size.
 *
 * Plain C (malloc) rather than an ngx_pool_t, so that the unit tests and
 * the sanitizer builds exercise exactly the code the worker runs.
 */

#ifndef _NGX_HTTP_INGEST_TABLE_H_INCLUDED_
#define _NGX_HTTP_INGEST_TABLE_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>


#define NGX_HTTP_INGEST_TABLE_OK         0
#define NGX_HTTP_INGEST_TABLE_OVERFLOW   1   /* the sum would not fit */
#define NGX_HTTP_INGEST_TABLE_NOMEM      2


typedef struct {
    uint64_t                  hash;        /* 0 marks a free slot */
    u_char                   *key;
    size_t                    len;
    int64_t                   value;
} ngx_http_ingest_entry_t;


typedef struct ngx_http_ingest_block_s  ngx_http_ingest_block_t;

struct ngx_http_ingest_block_s {
    ngx_http_ingest_block_t  *next;
    size_t                    size;        /* bytes after this header */
    size_t                    used;
};


typedef struct {
    ngx_http_ingest_entry_t  *slots;
    size_t                    mask;        /* capacity - 1 */
    size_t                    nkeys;
    size_t                    key_bytes;   /* sum of the keys' lengths */
    size_t                    memory;      /* slots and arena blocks held */
    ngx_http_ingest_block_t  *blocks;      /* the first is kept on reset */
    ngx_http_ingest_block_t  *spare;       /* empty ones kept for reuse */
    size_t                    spare_bytes;
} ngx_http_ingest_table_t;


int ngx_http_ingest_table_init(ngx_http_ingest_table_t *t, size_t keys);

/* the slots a table made for "keys" keys takes up front, in bytes */
size_t ngx_http_ingest_table_size(size_t keys);

/* what a table holds: its keys' entries and bytes, not its capacity */
#define ngx_http_ingest_table_data(t)                                         \
    ((t)->nkeys * sizeof(ngx_http_ingest_entry_t) + (t)->key_bytes)
void ngx_http_ingest_table_free(ngx_http_ingest_table_t *t);
void ngx_http_ingest_table_reset(ngx_http_ingest_table_t *t);

/*
 * Adds delta to key's sum, creating the key with delta if absent.
 * *created tells which, so that a failed request can be undone exactly.
 */
int ngx_http_ingest_table_add(ngx_http_ingest_table_t *t, u_char *key,
    size_t len, int64_t delta, int *created);

/* Reverts one successful add: subtracts delta, drops a created key. */
void ngx_http_ingest_table_undo(ngx_http_ingest_table_t *t, u_char *key,
    size_t len, int64_t delta, int created);

ngx_http_ingest_entry_t *ngx_http_ingest_table_find(
    ngx_http_ingest_table_t *t, u_char *key, size_t len);

uint64_t ngx_http_ingest_hash(u_char *key, size_t len);


#endif /* _NGX_HTTP_INGEST_TABLE_H_INCLUDED_ */
