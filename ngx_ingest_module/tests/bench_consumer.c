
/*
 * Copyright (C) ngx_ingest developers
 *
 * The yardsticks of ci/bench's consumer scenario:
 *
 *   bench_consumer plain DB KEYS
 *       the plain C loop the consumer is held against: KEYS distinct keys
 *       upserted into a fresh SQLite file with one prepared statement,
 *       one transaction per 10,000, the consumer's schema and pragmas
 *       (WAL, synchronous=FULL); prints "plain_rows_per_s=N"
 *
 *   bench_consumer push PORT QUEUE KEYS PER_BATCH
 *       a backlog for the real consumer: KEYS distinct keys as counters
 *       batches of PER_BATCH keys (the module's wire format, producer
 *       "bench", seq 1, 2, ...) pushed onto the Redis list QUEUE
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


static int
push(int port, const char *queue, long keys, long per_batch)
{
    int                len;
    long               i;
    char               key[32];
    uint64_t           seq;
    redisReply        *reply;
    redisContext      *rc;
    ingest_wire_buf_t  b;

    rc = redisConnect("127.0.0.1", port);
    if (rc == NULL || rc->err) {
        fprintf(stderr, "bench_consumer: cannot connect to Redis\n");
        return 1;
    }

    memset(&b, 0, sizeof(ingest_wire_buf_t));
    seq = 0;

    for (i = 0; i < keys; /* void */) {
        if (ingest_wire_counters_begin(&b, 1, "bench", ++seq,
                                       (int64_t) time(NULL) * 1000)
            != INGEST_WIRE_OK)
        {
            return 1;
        }

        do {
            len = snprintf(key, sizeof(key), "bench:%ld", i);

            if (ingest_wire_counters_add(&b, (unsigned char *) key, len,
                                         i % 1000 + 1)
                != INGEST_WIRE_OK)
            {
                return 1;
            }

            i++;

        } while (i < keys && i % per_batch != 0);

        if (ingest_wire_counters_end(&b, NULL) != INGEST_WIRE_OK) {
            return 1;
        }

        reply = redisCommand(rc, "RPUSH %s %b", queue, b.data, b.len);
        if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
            fprintf(stderr, "bench_consumer: RPUSH failed\n");
            return 1;
        }

        freeReplyObject(reply);
    }

    free(b.data);
    redisFree(rc);

    printf("pushed %lu batches, %ld keys\n", (unsigned long) seq, keys);

    return 0;
}


int
main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "plain") == 0) {
        return plain(argv[2], atol(argv[3]));
    }

    if (argc == 6 && strcmp(argv[1], "push") == 0) {
        return push(atoi(argv[2]), argv[3], atol(argv[4]), atol(argv[5]));
    }

    fprintf(stderr, "usage: bench_consumer plain DB KEYS\n"
                    "       bench_consumer push PORT QUEUE KEYS PER_BATCH\n");

    return 1;
}
