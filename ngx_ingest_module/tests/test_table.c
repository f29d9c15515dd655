
/*
 * Copyright (C) ngx_ingest developers
 * SPDX-License-Identifier: BSD-2-Clause
 *
 * The pending table against a plain array model: random adds and undos
 * (the undo path of a refused request) over enough keys to grow the table
 * several times, then reset and reuse.
 */


#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "../ngx_http_ingest_table.h"


#define NKEYS  5000


typedef struct {
    char      key[32];
    size_t    len;
    int64_t   value;
    int       present;
} model_t;


static model_t  model[NKEYS];


static int
check_model(ngx_http_ingest_table_t *t)
{
    size_t                    i, n;
    ngx_http_ingest_entry_t  *e;

    n = 0;

    for (i = 0; i < NKEYS; i++) {
        e = ngx_http_ingest_table_find(t, (u_char *) model[i].key,
                                       model[i].len);

        if (model[i].present) {
            n++;

            if (e == NULL || e->value != model[i].value) {
                tap_diag("key %s: expected %lld", model[i].key,
                         (long long) model[i].value);
                return 0;
            }

        } else if (e != NULL) {
            tap_diag("key %s present, expected absent", model[i].key);
            return 0;
        }
    }

    return n == t->nkeys;
}


/* what the table holds, counted from its parts: slots, blocks, spares */

static size_t
held(ngx_http_ingest_table_t *t)
{
    size_t                    n;
    ngx_http_ingest_block_t  *b;

    n = (t->mask + 1) * sizeof(ngx_http_ingest_entry_t);

    for (b = t->blocks; b; b = b->next) {
        n += sizeof(ngx_http_ingest_block_t) + b->size;
    }

    for (b = t->spare; b; b = b->next) {
        n += sizeof(ngx_http_ingest_block_t) + b->size;
    }

    return n;
}


int
main(void)
{
    int                       created, rc, ok;
    size_t                    i, k, round;
    int64_t                   delta;
    ngx_http_ingest_table_t   t;
    ngx_http_ingest_entry_t  *e;

    srand(42);

    tap_ok(ngx_http_ingest_table_init(&t, 0) == NGX_HTTP_INGEST_TABLE_OK,
           "init");

    for (i = 0; i < NKEYS; i++) {
        model[i].len = snprintf(model[i].key, sizeof(model[i].key),
                                "key:%zu", i * 7919);
    }

    for (round = 0; round < 3; round++) {
        ok = 1;

        for (i = 0; i < 40000; i++) {
            k = rand() % NKEYS;
            delta = (rand() % 20001) - 10000;

            rc = ngx_http_ingest_table_add(&t, (u_char *) model[k].key,
                                           model[k].len, delta, &created);

            if (rc != NGX_HTTP_INGEST_TABLE_OK
                || created != !model[k].present)
            {
                ok = 0;
                break;
            }

            if (rand() % 4 == 0) {
                /* a refused request: take it back */
                ngx_http_ingest_table_undo(&t, (u_char *) model[k].key,
                                           model[k].len, delta, created);
                continue;
            }

            model[k].value += delta;
            model[k].present = 1;
        }

        tap_ok(ok, "round %zu: 40000 random adds and undos", round);
        tap_ok(check_model(&t), "round %zu: the table equals the model",
               round);
        tap_ok((t.mask + 1) * 3 >= 4 * t.nkeys,
               "round %zu: load factor <= 3/4", round);

        ngx_http_ingest_table_reset(&t);
        memset(model, 0, sizeof(model));

        for (i = 0; i < NKEYS; i++) {
            model[i].len = snprintf(model[i].key, sizeof(model[i].key),
                                    "key:%zu", i * 7919 + round);
        }

        tap_ok(t.nkeys == 0 && t.key_bytes == 0, "round %zu: reset",
               round);
    }

    /* overflow is refused and leaves the sum as it was */

    rc = ngx_http_ingest_table_add(&t, (u_char *) "x", 1, INT64_MAX,
                                   &created);
    tap_ok(rc == NGX_HTTP_INGEST_TABLE_OK && created, "add INT64_MAX");

    rc = ngx_http_ingest_table_add(&t, (u_char *) "x", 1, 1, &created);
    e = ngx_http_ingest_table_find(&t, (u_char *) "x", 1);
    tap_ok(rc == NGX_HTTP_INGEST_TABLE_OVERFLOW, "INT64_MAX + 1 overflows");
    tap_ok(e != NULL && e->value == INT64_MAX, "and leaves INT64_MAX");

    rc = ngx_http_ingest_table_add(&t, (u_char *) "y", 1, INT64_MIN,
                                   &created);
    rc |= ngx_http_ingest_table_add(&t, (u_char *) "y", 1, -1, &created);
    e = ngx_http_ingest_table_find(&t, (u_char *) "y", 1);
    tap_ok(rc == NGX_HTTP_INGEST_TABLE_OVERFLOW && e->value == INT64_MIN,
           "INT64_MIN - 1 overflows and leaves INT64_MIN");

    /* undo of a non-created key with INT64_MIN must not trap */

    rc = ngx_http_ingest_table_add(&t, (u_char *) "z", 1, 5, &created);
    rc |= ngx_http_ingest_table_add(&t, (u_char *) "z", 1, INT64_MIN,
                                    &created);
    ngx_http_ingest_table_undo(&t, (u_char *) "z", 1, INT64_MIN, created);
    e = ngx_http_ingest_table_find(&t, (u_char *) "z", 1);
    tap_ok(rc == 0 && e != NULL && e->value == 5, "undo of INT64_MIN");

    /* a key larger than an arena block */

    {
        u_char  *big = malloc(100000);

        memset(big, 'k', 100000);
        rc = ngx_http_ingest_table_add(&t, big, 100000, 3, &created);
        e = ngx_http_ingest_table_find(&t, big, 100000);
        tap_ok(rc == 0 && e != NULL && e->value == 3, "a 100000-byte key");
        free(big);
    }

    {
        size_t  n;

        n = held(&t);
        tap_ok(t.memory == n, "memory counts slots and blocks (%zu)", n);

        ngx_http_ingest_table_reset(&t);

        n = held(&t);
        tap_ok(t.memory == n, "and after a reset (%zu)", n);
        tap_ok(t.spare_bytes + t.blocks->size <= 1024 * 1024,
               "at most 1 MB of arena kept (%zu)",
               t.spare_bytes + t.blocks->size);
    }

    ngx_http_ingest_table_free(&t);

    /* sized for ingest_flush_keys up front; arena blocks reused */

    {
        char      key[48];
        size_t    i, round, mask, memory;

        rc = ngx_http_ingest_table_init(&t, 10000);
        tap_ok(rc == NGX_HTTP_INGEST_TABLE_OK && t.mask + 1 == 16384,
               "10000 keys: 16384 slots at once (%zu)", t.mask + 1);

        mask = t.mask;
        memory = 0;

        for (round = 0; round < 5; round++) {
            for (i = 0; i < 10000; i++) {
                snprintf(key, sizeof(key), "%zu-%032zu", round, i);
                rc = ngx_http_ingest_table_add(&t, (u_char *) key,
                                               strlen(key), 1, &created);
            }

            if (round == 0) {
                memory = t.memory;
            }

            ngx_http_ingest_table_reset(&t);
        }

        tap_ok(rc == 0 && t.mask == mask && t.memory == memory,
               "five rounds of 10000 keys: no growth, same memory (%zu)",
               t.memory);

        ngx_http_ingest_table_free(&t);
    }

    return tap_done();
}
