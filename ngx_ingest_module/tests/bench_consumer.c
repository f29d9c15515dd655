
/*
 * Copyright (C) ngx_ingest developers
 * SPDX-License-Identifier: BSD-2-Clause
 *
 * The yardsticks of ci/bench's consumer scenario:
 *
 *   bench_consumer plain DB KEYS
 *       the plain C loop the consumer is held against: KEYS distinct keys
 *       upserted into a fresh SQLite file with one prepared statement,
 *       one transaction per 10,000, the consumer's schema and pragmas
 *       (WAL, synchronous=FULL); prints "plain_rows_per_s=N"
 *
 *   bench_consumer push PORT QUEUE KEYS PER_BATCH [SHARDS]
 *       a backlog for the real consumer: KEYS distinct keys as counters
 *       batches of PER_BATCH keys (the module's wire format, producer
 *       "bench", seq 1, 2, ...) pushed onto the Redis list QUEUE; with
 *       SHARDS, each key onto its shard's list QUEUE:{s}, as nginx with
 *       ingest_shards would
 *
 * Keys are "bench:<n>" with value n % 1000 + 1 in both, so the two runs
 * write the same rows.
 */


#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>
#include <sqlite3.h>

#include "../ingest_wire.h"


static double
now_s(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return ts.tv_sec + ts.tv_nsec / 1e9;
}


static int
exec(sqlite3 *db, const char *sql)
{
    char  *err;

    if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) {
        fprintf(stderr, "bench_consumer: %s: %s\n", sql, err);
        sqlite3_free(err);
        return -1;
    }

    return 0;
}


static int
plain(const char *path, long keys)
{
    int            len;
    long           i;
    char           key[32];
    double         t0, t1;
    sqlite3       *db;
    sqlite3_stmt  *st;

    if (sqlite3_open(path, &db) != SQLITE_OK) {
        fprintf(stderr, "bench_consumer: %s: %s\n", path, sqlite3_errmsg(db));
        return 1;
    }

    if (exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                 "CREATE TABLE totals (key TEXT PRIMARY KEY,"
                 " value INTEGER NOT NULL, updated_at INTEGER NOT NULL)"
                 " WITHOUT ROWID")
        != 0)
    {
        return 1;
    }

    if (sqlite3_prepare_v2(db, "INSERT INTO totals (key, value, updated_at)"
                               " VALUES (?1, ?2, ?3) ON CONFLICT (key)"
                               " DO UPDATE SET value = value + excluded.value,"
                               " updated_at = excluded.updated_at",
                           -1, &st, NULL)
        != SQLITE_OK)
    {
        fprintf(stderr, "bench_consumer: %s\n", sqlite3_errmsg(db));
        return 1;
    }

    t0 = now_s();

    for (i = 0; i < keys; i++) {
        if (i % 10000 == 0 && exec(db, "BEGIN") != 0) {
            return 1;
        }

        len = snprintf(key, sizeof(key), "bench:%ld", i);

        sqlite3_bind_text(st, 1, key, len, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, i % 1000 + 1);
        sqlite3_bind_int64(st, 3, (int64_t) time(NULL));

        if (sqlite3_step(st) != SQLITE_DONE) {
            fprintf(stderr, "bench_consumer: %s\n", sqlite3_errmsg(db));
            return 1;
        }

        sqlite3_reset(st);

        if ((i % 10000 == 9999 || i == keys - 1) && exec(db, "COMMIT") != 0) {
            return 1;
        }
    }

    t1 = now_s();

    sqlite3_finalize(st);
    sqlite3_close(db);

    printf("plain_rows_per_s=%.0f plain_seconds=%.3f\n", keys / (t1 - t0),
           t1 - t0);

    return 0;
}


/* the README's shard of a key, written again from its words */

static unsigned
shard_of(const char *key, size_t len, unsigned shards)
{
    uint32_t  h = 2166136261u;

    while (len--) {
        h = (h ^ (unsigned char) *key++) * 16777619u;
    }

    return h % shards;
}


/* BENCH_BUCKETS=1: every key in a bucket of each, as buckets=1m,1h,1d */
static const uint32_t  bench_resolutions[3] = { 60, 3600, 86400 };
static int             bench_buckets;


typedef struct {
    ingest_wire_buf_t  buf;
    ingest_wire_buf_t  bk;               /* BENCH_BUCKETS: the keys again */
    uint64_t           seq;
    long               keys;             /* in the batch being written */
} shard_t;


static int
push_batch(redisContext *rc, const char *queue, unsigned shards, unsigned n,
    shard_t *sh)
{
    char         name[256];
    redisReply  *reply;

    if ((bench_buckets && ingest_wire_bucket_end(&sh->bk) != INGEST_WIRE_OK)
        || ingest_wire_counters_end_buckets(&sh->buf,
                                            bench_buckets ? &sh->bk : NULL,
                                            NULL)
           != INGEST_WIRE_OK)
    {
        return -1;
    }

    sh->bk.len = 0;

    if (shards > 1) {
        snprintf(name, sizeof(name), "%s:{%u}", queue, n);

    } else {
        snprintf(name, sizeof(name), "%s", queue);
    }

    reply = redisCommand(rc, "RPUSH %s %b", name, sh->buf.data, sh->buf.len);
    if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
        fprintf(stderr, "bench_consumer: RPUSH failed\n");
        return -1;
    }

    freeReplyObject(reply);
    sh->keys = 0;

    return 0;
}


static int
push(int port, const char *queue, long keys, long per_batch,
    unsigned shards)
{
    int            len;
    long           i;
    char           key[32];
    unsigned       n;
    uint64_t       batches;
    shard_t       *sh, *all;
    redisReply    *reply;
    redisContext  *rc;

    rc = redisConnect("127.0.0.1", port);
    if (rc == NULL || rc->err) {
        fprintf(stderr, "bench_consumer: cannot connect to Redis\n");
        return 1;
    }

    /* a Redis with users (ci/lib.sh): the default user's, as redis-cli */

    if (getenv("REDISCLI_AUTH") != NULL) {
        reply = redisCommand(rc, "AUTH %s", getenv("REDISCLI_AUTH"));

        if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
            fprintf(stderr, "bench_consumer: AUTH failed\n");
            return 1;
        }

        freeReplyObject(reply);
    }

    all = calloc(shards, sizeof(shard_t));
    if (all == NULL) {
        return 1;
    }

    for (i = 0; i < keys; i++) {
        len = snprintf(key, sizeof(key), "bench:%ld", i);
        n = shards > 1 ? shard_of(key, len, shards) : 0;
        sh = &all[n];

        if (sh->keys == 0
            && ingest_wire_counters_begin(&sh->buf, bench_buckets ? 3 : 1,
                                          "bench", ++sh->seq,
                                          (int64_t) time(NULL) * 1000)
               != INGEST_WIRE_OK)
        {
            return 1;
        }

        if (bench_buckets && sh->keys == 0
            && ingest_wire_bucket_begin(&sh->bk, bench_resolutions, 3,
                                        time(NULL) - time(NULL) % 60)
               != INGEST_WIRE_OK)
        {
            return 1;
        }

        if (ingest_wire_counters_add(&sh->buf, (unsigned char *) key, len,
                                     i % 1000 + 1)
            != INGEST_WIRE_OK)
        {
            return 1;
        }

        if (bench_buckets
            && ingest_wire_counters_add(&sh->bk, (unsigned char *) key, len,
                                        i % 1000 + 1)
               != INGEST_WIRE_OK)
        {
            return 1;
        }

        if (++sh->keys == per_batch
            && push_batch(rc, queue, shards, n, sh) != 0)
        {
            return 1;
        }
    }

    batches = 0;

    for (n = 0; n < shards; n++) {
        if (all[n].keys && push_batch(rc, queue, shards, n, &all[n]) != 0) {
            return 1;
        }

        batches += all[n].seq;
        free(all[n].buf.data);

        free(all[n].bk.data);
    }

    free(all);
    redisFree(rc);

    printf("pushed %lu batches, %ld keys, %u lists\n",
           (unsigned long) batches, keys, shards);

    return 0;
}


int
main(int argc, char **argv)
{
    bench_buckets = (getenv("BENCH_BUCKETS") != NULL);

    if (argc == 4 && strcmp(argv[1], "plain") == 0) {
        return plain(argv[2], atol(argv[3]));
    }

    if ((argc == 6 || argc == 7) && strcmp(argv[1], "push") == 0
        && atol(argv[5]) > 0 && (argc == 6 || atoi(argv[6]) > 0))
    {
        return push(atoi(argv[2]), argv[3], atol(argv[4]), atol(argv[5]),
                    argc == 7 ? (unsigned) atoi(argv[6]) : 1);
    }

    fprintf(stderr, "usage: bench_consumer plain DB KEYS\n"
                    "       bench_consumer push PORT QUEUE KEYS PER_BATCH "
                    "[SHARDS]\n");

    return 1;
}
