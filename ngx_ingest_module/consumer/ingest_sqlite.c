
/*
 * Copyright (C) ngx_ingest developers
 * SPDX-License-Identifier: BSD-2-Clause
 *
 * The consumer's side of SQLite.  Exactly-once lives here: a batch's
 * counts and the new last_seq of its producer are written in the same
 * transaction, so after a crash anywhere a batch is either wholly applied
 * (and then skipped when read again) or not at all.
 *
 * WAL with synchronous=FULL: the list is trimmed right after COMMIT, so a
 * commit must be on disk when COMMIT returns, power loss included.
 *
 * What a failed statement means: SQLITE_BUSY or SQLITE_LOCKED (another
 * writer past the busy timeout) is passing, the round is read again; a
 * constraint, a value too big or of a type the table refuses, or a total
 * the checked addition refuses is the batch's fault, which is refused;
 * anything else (I/O, a full disk, a corrupt or read-only file) stops
 * the consumer.
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ingest_consumer.h"


#define INGEST_BUSY_TIMEOUT_MS   10000


/*
 * The tables go in under BEGIN IMMEDIATE: consumers of several lists
 * (shards) may share one file and start together, and statements that
 * each take a read lock and then a write lock would rather fail with
 * SQLITE_BUSY at once than wait, since waiting could deadlock.
 */

static const char  ingest_schema[] =
    "BEGIN IMMEDIATE;"
    "CREATE TABLE IF NOT EXISTS totals ("
    "  key TEXT PRIMARY KEY,"
    "  value INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL"
    ") WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS applied ("
    "  producer TEXT NOT NULL,"
    "  queue TEXT NOT NULL,"
    "  last_seq INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL,"
    "  PRIMARY KEY (producer, queue)"
    ");"
    "CREATE TABLE IF NOT EXISTS idempotency ("
    "  id TEXT NOT NULL,"
    "  queue TEXT NOT NULL,"
    "  applied_at INTEGER NOT NULL,"
    "  PRIMARY KEY (id, queue)"
    ") WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS dead_batches ("
    "  producer TEXT NOT NULL,"
    "  queue TEXT NOT NULL,"
    "  seq INTEGER NOT NULL,"
    "  dead_at INTEGER NOT NULL,"
    "  PRIMARY KEY (producer, queue, seq)"
    ") WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS buckets ("
    "  key TEXT NOT NULL,"
    "  resolution INTEGER NOT NULL,"
    "  start INTEGER NOT NULL,"
    "  value INTEGER NOT NULL,"
    "  PRIMARY KEY (key, resolution, start)"
    ") WITHOUT ROWID;"
    /* what --retain expires, oldest first, without a scan */
    "CREATE INDEX IF NOT EXISTS buckets_by_start"
    "  ON buckets (resolution, start);"
    "COMMIT;";


static int ingest_sqlite_open(ingest_consumer_t *ic);
static void ingest_sqlite_close(ingest_consumer_t *ic);
static int ingest_sqlite_begin(ingest_consumer_t *ic);
static int ingest_sqlite_commit(ingest_consumer_t *ic);
static void ingest_sqlite_rollback(ingest_consumer_t *ic);
static int ingest_sqlite_apply(ingest_consumer_t *ic,
    ingest_wire_batch_t *batch, int *skipped);
static int ingest_sqlite_prune(ingest_consumer_t *ic);
static int ingest_sqlite_expire(ingest_consumer_t *ic, int64_t now_s,
    long limit, long *expired);
static int ingest_sqlite_dead(ingest_consumer_t *ic,
    ingest_wire_batch_t *batch);
static void ingest_sqlite_jumped(ingest_consumer_t *ic,
    ingest_wire_batch_t *batch, int64_t last);
static int ingest_sqlite_wal(ingest_consumer_t *ic);
static int ingest_sqlite_prepare(ingest_consumer_t *ic, sqlite3_stmt **stmt,
    const char *sql);
static int ingest_sqlite_done(ingest_consumer_t *ic, sqlite3_stmt *stmt,
    const char *what);
static int ingest_sqlite_failed(ingest_consumer_t *ic, int rc,
    const char *what);
static int ingest_sqlite_counts(ingest_consumer_t *ic,
    ingest_wire_batch_t *batch, size_t first, size_t n, int64_t now);
static int ingest_sqlite_records(ingest_consumer_t *ic,
    ingest_wire_batch_t *batch, int64_t now);
static ingest_table_t *ingest_sqlite_table(ingest_consumer_t *ic,
    ingest_wire_batch_t *batch, int *rc);
static void ingest_sqlite_forget_tables(ingest_consumer_t *ic);
static void ingest_sqlite_checked_add(sqlite3_context *ctx, int argc,
    sqlite3_value **argv);


/*
 * WAL, and FULL sync for this connection.  Turning a new file to WAL
 * takes an exclusive lock that the busy handler does not wait for when
 * another consumer holds the file's first lock: retried here, within
 * the busy timeout.
 */

static int
ingest_sqlite_wal(ingest_consumer_t *ic)
{
    int    rc, waited;
    char  *err;

    for (waited = 0; /* void */ ; waited += 10) {
        err = NULL;
        rc = sqlite3_exec(ic->db, "PRAGMA journal_mode=WAL;"
                                  "PRAGMA synchronous=FULL;",
                          NULL, NULL, &err);

        if (rc == SQLITE_OK) {
            return 0;
        }

        if ((rc != SQLITE_BUSY && rc != SQLITE_LOCKED)
            || waited >= INGEST_BUSY_TIMEOUT_MS)
        {
            ingest_log(INGEST_LOG_ERR, "cannot set up \"%s\": %s",
                       ic->db_path, err ? err : sqlite3_errstr(rc));
            sqlite3_free(err);
            return -1;
        }

        sqlite3_free(err);
        ingest_sleep_ms(10);
    }
}


static int
ingest_sqlite_open(ingest_consumer_t *ic)
{
    int    persist;
    char  *err;

    if (sqlite3_open_v2(ic->db_path, &ic->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL)
        != SQLITE_OK)
    {
        ingest_log(INGEST_LOG_ERR, "cannot open \"%s\": %s", ic->db_path,
                   ic->db ? sqlite3_errmsg(ic->db) : "out of memory");
        return -1;
    }

    sqlite3_busy_timeout(ic->db, INGEST_BUSY_TIMEOUT_MS);

    /*
     * Keep the -wal and -shm files when the consumer closes the file:
     * readers that may read the directory but not write it (nginx's
     * workers in group ingest, /var/lib/ingest 0750) can open a WAL
     * database only while both exist, so without them every read would
     * fail as long as the consumer is stopped.
     */

    persist = 1;
    (void) sqlite3_file_control(ic->db, "main", SQLITE_FCNTL_PERSIST_WAL,
                                &persist);

    if (ingest_sqlite_wal(ic) != 0) {
        return -1;
    }

    if (sqlite3_exec(ic->db, ingest_schema, NULL, NULL, &err) != SQLITE_OK) {
        ingest_log(INGEST_LOG_ERR, "cannot set up \"%s\": %s", ic->db_path,
                   err);
        sqlite3_free(err);
        return -1;
    }

    /* SQLite turns an overflowing integer sum into a REAL: refuse it */

    if (sqlite3_create_function(ic->db, "ingest_checked_add", 2,
                                SQLITE_UTF8 | SQLITE_DETERMINISTIC, ic,
                                ingest_sqlite_checked_add, NULL, NULL)
        != SQLITE_OK)
    {
        ingest_log(INGEST_LOG_ERR, "cannot register a function: %s",
                   sqlite3_errmsg(ic->db));
        return -1;
    }

    if (ingest_sqlite_prepare(ic, &ic->stmt_begin, "BEGIN IMMEDIATE") != 0
        || ingest_sqlite_prepare(ic, &ic->stmt_commit, "COMMIT") != 0
        || ingest_sqlite_prepare(ic, &ic->stmt_rollback, "ROLLBACK") != 0
        || ingest_sqlite_prepare(ic, &ic->stmt_last_seq,
               "SELECT (SELECT last_seq FROM applied"
               " WHERE producer = ?1 AND queue = ?2),"
               " EXISTS (SELECT 1 FROM dead_batches"
               " WHERE producer = ?1 AND queue = ?2 AND seq = ?3)") != 0
        || ingest_sqlite_prepare(ic, &ic->stmt_applied,
               "INSERT INTO applied (producer, queue, last_seq, updated_at)"
               " VALUES (?1, ?2, ?3, ?4)"
               " ON CONFLICT (producer, queue) DO UPDATE"
               " SET last_seq = max(last_seq, excluded.last_seq),"
               " updated_at = excluded.updated_at") != 0
        || ingest_sqlite_prepare(ic, &ic->stmt_total,
               "INSERT INTO totals (key, value, updated_at)"
               " VALUES (?1, ?2, ?3)"
               " ON CONFLICT (key) DO UPDATE"
               " SET value = ingest_checked_add(value, excluded.value),"
               " updated_at = excluded.updated_at") != 0
        || ingest_sqlite_prepare(ic, &ic->stmt_bucket,
               "INSERT INTO buckets (key, resolution, start, value)"
               " VALUES (?1, ?2, ?3, ?4)"
               " ON CONFLICT (key, resolution, start) DO UPDATE"
               " SET value = ingest_checked_add(value, excluded.value)")
           != 0
        || ingest_sqlite_prepare(ic, &ic->stmt_expire,
               "DELETE FROM buckets WHERE (key, resolution, start) IN"
               " (SELECT key, resolution, start FROM buckets"
               " WHERE resolution = ?1 AND start < ?2 LIMIT ?3)") != 0
        || ingest_sqlite_prepare(ic, &ic->stmt_prune,
               "DELETE FROM applied WHERE updated_at < ?1") != 0
        || ingest_sqlite_prepare(ic, &ic->stmt_idem,
               "INSERT INTO idempotency (id, queue, applied_at)"
               " VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING") != 0
        || ingest_sqlite_prepare(ic, &ic->stmt_idem_prune,
               "DELETE FROM idempotency WHERE applied_at < ?1") != 0
        || ingest_sqlite_prepare(ic, &ic->stmt_dead,
               "INSERT INTO dead_batches (producer, queue, seq, dead_at)"
               " VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING") != 0
        || ingest_sqlite_prepare(ic, &ic->stmt_dead_forget,
               "DELETE FROM dead_batches"
               " WHERE producer = ?1 AND queue = ?2 AND seq = ?3") != 0
        || ingest_sqlite_prepare(ic, &ic->stmt_dead_gap,
               "SELECT count(*) FROM dead_batches"
               " WHERE producer = ?1 AND queue = ?2"
               " AND seq > ?3 AND seq < ?4") != 0
        || ingest_sqlite_prepare(ic, &ic->stmt_dead_prune,
               "DELETE FROM dead_batches WHERE dead_at < ?1"
               " AND NOT EXISTS (SELECT 1 FROM applied"
               " WHERE applied.producer = dead_batches.producer"
               " AND applied.queue = dead_batches.queue)") != 0)
    {
        return -1;
    }

    return 0;
}


static void
ingest_sqlite_close(ingest_consumer_t *ic)
{
    ingest_sqlite_forget_tables(ic);

    sqlite3_finalize(ic->stmt_begin);
    sqlite3_finalize(ic->stmt_commit);
    sqlite3_finalize(ic->stmt_rollback);
    sqlite3_finalize(ic->stmt_last_seq);
    sqlite3_finalize(ic->stmt_applied);
    sqlite3_finalize(ic->stmt_total);
    sqlite3_finalize(ic->stmt_bucket);
    sqlite3_finalize(ic->stmt_expire);
    sqlite3_finalize(ic->stmt_prune);
    sqlite3_finalize(ic->stmt_idem);
    sqlite3_finalize(ic->stmt_idem_prune);
    sqlite3_finalize(ic->stmt_dead);
    sqlite3_finalize(ic->stmt_dead_forget);
    sqlite3_finalize(ic->stmt_dead_gap);
    sqlite3_finalize(ic->stmt_dead_prune);

    if (sqlite3_close(ic->db) != SQLITE_OK) {
        ingest_log(INGEST_LOG_WARN, "closing \"%s\": %s", ic->db_path,
                   sqlite3_errmsg(ic->db));
    }

    ic->db = NULL;
}


static int
ingest_sqlite_begin(ingest_consumer_t *ic)
{
    return ingest_sqlite_done(ic, ic->stmt_begin, "BEGIN");
}


static int
ingest_sqlite_commit(ingest_consumer_t *ic)
{
    return ingest_sqlite_done(ic, ic->stmt_commit, "COMMIT");
}


static void
ingest_sqlite_rollback(ingest_consumer_t *ic)
{
    /* a table created in the transaction is gone with it */
    ingest_sqlite_forget_tables(ic);

    if (sqlite3_get_autocommit(ic->db)) {
        return;
    }

    (void) ingest_sqlite_done(ic, ic->stmt_rollback, "ROLLBACK");
}


static void
ingest_sqlite_forget_tables(ingest_consumer_t *ic)
{
    size_t  i;

    for (i = 0; i < ic->ntables; i++) {
        sqlite3_finalize(ic->tables[i].insert);
    }

    ic->ntables = 0;
}


static const char  *ingest_sql_types[4] = {
    "INTEGER", "REAL", "TEXT", "INTEGER"
};


/*
 * The table of a records batch: created on first sight from the batch's
 * columns (plus received_at), or checked against them; a batch whose
 * columns conflict with the table is refused.
 */

static ingest_table_t *
ingest_sqlite_table(ingest_consumer_t *ic, ingest_wire_batch_t *batch,
    int *rc)
{
    char             sql[16384], *p, *end;
    size_t           i, n;
    sqlite3_stmt    *s;
    ingest_table_t  *t;

    *rc = -1;

    if (ingest_table_entry(ic, batch, ingest_sql_types, &t) == 1) {
        *rc = 0;
        return t;
    }

    /* what the table has, if it exists (names were checked: quoting is safe) */

    snprintf(sql, sizeof(sql), "PRAGMA table_info(\"%s\")", t->name);

    if (sqlite3_prepare_v2(ic->db, sql, -1, &s, NULL) != SQLITE_OK) {
        ingest_log(INGEST_LOG_ERR, "%s: %s", sql, sqlite3_errmsg(ic->db));
        return NULL;
    }

    n = 0;

    while ((*rc = sqlite3_step(s)) == SQLITE_ROW) {
        const char  *name = (const char *) sqlite3_column_text(s, 1);
        const char  *type = (const char *) sqlite3_column_text(s, 2);

        if (n == 0) {
            if (name == NULL || strcmp(name, "received_at") != 0) {
                sqlite3_finalize(s);
                goto conflict;
            }

        } else if (n > t->ncolumns || name == NULL || type == NULL
                   || strcmp(name, t->columns[n - 1]) != 0
                   || strcasecmp(type, ingest_sql_types[t->types[n - 1]])
                      != 0)
        {
            sqlite3_finalize(s);
            goto conflict;
        }

        n++;
    }

    sqlite3_finalize(s);

    if (*rc != SQLITE_DONE) {
        *rc = ingest_sqlite_failed(ic, *rc, "reading a table's columns");
        return NULL;
    }

    *rc = -1;

    if (n != 0 && n != t->ncolumns + 1) {
        goto conflict;
    }

    if (n == 0) {
        p = sql;
        end = sql + sizeof(sql);
        p += snprintf(p, end - p, "CREATE TABLE \"%s\" (received_at "
                      "INTEGER NOT NULL", t->name);

        for (i = 0; i < t->ncolumns; i++) {
            p += snprintf(p, end - p, ", \"%s\" %s", t->columns[i],
                          ingest_sql_types[t->types[i]]);
        }

        snprintf(p, end - p, ")");

        if (sqlite3_exec(ic->db, sql, NULL, NULL, NULL) != SQLITE_OK) {
            ingest_log(INGEST_LOG_ERR, "%s: %s", sql, sqlite3_errmsg(ic->db));
            return NULL;
        }

        ingest_log(INGEST_LOG_NOTICE, "created table \"%s\"", t->name);
    }

    p = sql;
    end = sql + sizeof(sql);
    p += snprintf(p, end - p, "INSERT INTO \"%s\" (received_at", t->name);

    for (i = 0; i < t->ncolumns; i++) {
        p += snprintf(p, end - p, ", \"%s\"", t->columns[i]);
    }

    p += snprintf(p, end - p, ") VALUES (?");

    for (i = 0; i < t->ncolumns; i++) {
        p += snprintf(p, end - p, ", ?");
    }

    snprintf(p, end - p, ")");

    if (sqlite3_prepare_v3(ic->db, sql, -1, SQLITE_PREPARE_PERSISTENT,
                           &t->insert, NULL)
        != SQLITE_OK)
    {
        ingest_log(INGEST_LOG_ERR, "%s: %s", sql, sqlite3_errmsg(ic->db));
        return NULL;
    }

    ic->ntables++;
    *rc = 0;

    return t;

conflict:

    *rc = ingest_table_conflict(ic, batch);
    return NULL;
}


/* insert a records batch's rows, with the time they arrived */

static int
ingest_sqlite_records(ingest_consumer_t *ic, ingest_wire_batch_t *batch,
    int64_t now)
{
    int                   rc;
    size_t                row, col;
    sqlite3_stmt         *s;
    ingest_table_t       *t;
    ingest_wire_value_t  *v;

    t = ingest_sqlite_table(ic, batch, &rc);
    if (t == NULL) {
        return rc;
    }

    s = t->insert;

    for (row = 0; row < batch->nrows; row++) {
        sqlite3_bind_int64(s, 1, now);

        for (col = 0; col < batch->ncolumns; col++) {
            v = &batch->values[row * batch->ncolumns + col];
            rc = SQLITE_OK;

            if (v->type == INGEST_WIRE_NULL) {
                rc = sqlite3_bind_null(s, col + 2);

            } else if (t->types[col] == INGEST_WIRE_INT
                       && v->type == INGEST_WIRE_INT)
            {
                rc = sqlite3_bind_int64(s, col + 2, v->i);

            } else if (t->types[col] == INGEST_WIRE_REAL
                       && (v->type == INGEST_WIRE_INT
                           || v->type == INGEST_WIRE_REAL))
            {
                rc = sqlite3_bind_double(s, col + 2, v->d);

            } else if (t->types[col] == INGEST_WIRE_TEXT
                       && v->type == INGEST_WIRE_TEXT)
            {
                rc = sqlite3_bind_text(s, col + 2, v->s, (int) v->len,
                                       SQLITE_STATIC);

            } else if (t->types[col] == INGEST_WIRE_BOOL
                       && v->type == INGEST_WIRE_BOOL)
            {
                rc = sqlite3_bind_int(s, col + 2, v->s[0] == 't');

            } else {
                sqlite3_reset(s);
                sqlite3_clear_bindings(s);
                return ingest_refuse(ic, "row %zu of a batch for \"%s\": "
                                     "column \"%s\" holds a value of "
                                     "another type", row, t->name,
                                     t->columns[col]);
            }

            if (rc != SQLITE_OK) {
                ingest_log(INGEST_LOG_ERR, "binding: %s",
                           sqlite3_errmsg(ic->db));
                return -1;
            }
        }

        rc = ingest_sqlite_done(ic, s, "inserting a row");
        if (rc != 0) {
            return rc;
        }
    }

    ic->keys += batch->nrows;

    return 0;
}


/*
 * Inside the round's transaction: apply batch unless its producer's
 * last_seq on this list already covers it and it is not a dead batch
 * come back.  0, -1, INGEST_STORE_AGAIN or INGEST_STORE_REFUSED.
 */

static int
ingest_sqlite_apply(ingest_consumer_t *ic, ingest_wire_batch_t *batch,
    int *skipped)
{
    int                     rc, dead;
    size_t                  i;
    int64_t                 now, last;
    sqlite3_stmt           *s;
    ingest_wire_request_t  *r;

    *skipped = 0;
    now = ingest_now_ms();

    s = ic->stmt_last_seq;
    sqlite3_bind_text(s, 1, batch->producer, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, ic->queue, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, (int64_t) batch->seq);

    rc = sqlite3_step(s);
    last = (rc == SQLITE_ROW) ? sqlite3_column_int64(s, 0) : 0;
    dead = (rc == SQLITE_ROW) ? sqlite3_column_int(s, 1) : 0;
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);

    if (rc != SQLITE_ROW) {
        return ingest_sqlite_failed(ic, rc, "reading applied");
    }

    if ((uint64_t) last >= batch->seq && !dead) {
        *skipped = 1;
        return 0;
    }

    if (last != 0 && batch->seq > (uint64_t) last + 1) {
        ingest_sqlite_jumped(ic, batch, last);
    }

    if (batch->kind == INGEST_WIRE_KIND_RECORDS) {
        rc = ingest_sqlite_records(ic, batch, now);

    } else {
        rc = ingest_sqlite_counts(ic, batch, 0, batch->ncounts, now);
    }

    if (rc != 0) {
        return rc;
    }

    /*
     * Requests with an Idempotency-Key: each is applied only if its key
     * is new on this list (within the window), in this same transaction.
     */

    for (i = 0; i < batch->nrequests; i++) {
        r = &batch->requests[i];
        s = ic->stmt_idem;

        sqlite3_bind_text(s, 1, r->id, (int) r->id_len, SQLITE_STATIC);
        sqlite3_bind_text(s, 2, ic->queue, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 3, now);

        rc = ingest_sqlite_done(ic, s, "recording an Idempotency-Key");
        if (rc != 0) {
            return rc;
        }

        if (sqlite3_changes(ic->db) == 0) {
            ic->repeats++;
            continue;
        }

        rc = ingest_sqlite_counts(ic, batch, r->first, r->n, now);
        if (rc != 0) {
            return rc;
        }
    }

    /* last_seq never goes back: a requeued batch may be older */

    s = ic->stmt_applied;
    sqlite3_bind_text(s, 1, batch->producer, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, ic->queue, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, (int64_t) batch->seq);
    sqlite3_bind_int64(s, 4, now);

    rc = ingest_sqlite_done(ic, s, "updating applied");
    if (rc != 0) {
        return rc;
    }

    if (!dead) {
        return 0;
    }

    s = ic->stmt_dead_forget;
    sqlite3_bind_text(s, 1, batch->producer, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, ic->queue, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, (int64_t) batch->seq);

    return ingest_sqlite_done(ic, s, "forgetting a dead batch");
}


/*
 * A producer never skips a seq: a jump means something upstream lost a
 * batch, unless the batches in between went to the dead-letter list.
 */

static void
ingest_sqlite_jumped(ingest_consumer_t *ic, ingest_wire_batch_t *batch,
    int64_t last)
{
    int            rc;
    int64_t        dead;
    sqlite3_stmt  *s;

    s = ic->stmt_dead_gap;
    sqlite3_bind_text(s, 1, batch->producer, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, ic->queue, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, last);
    sqlite3_bind_int64(s, 4, (int64_t) batch->seq);

    rc = sqlite3_step(s);
    dead = (rc == SQLITE_ROW) ? sqlite3_column_int64(s, 0) : 0;
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);

    if ((uint64_t) dead == batch->seq - (uint64_t) last - 1) {
        return;
    }

    ingest_log(INGEST_LOG_WARN, "producer \"%s\" jumped from seq %lld "
               "to %llu on \"%s\"", batch->producer, (long long) last,
               (unsigned long long) batch->seq, ic->queue);
}


/* inside a transaction: batch went to the dead-letter list */

static int
ingest_sqlite_dead(ingest_consumer_t *ic, ingest_wire_batch_t *batch)
{
    sqlite3_stmt  *s;

    s = ic->stmt_dead;
    sqlite3_bind_text(s, 1, batch->producer, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, ic->queue, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, (int64_t) batch->seq);
    sqlite3_bind_int64(s, 4, ingest_now_ms());

    return ingest_sqlite_done(ic, s, "recording a dead batch");
}


/*
 * upsert counts[first, first + n) into totals, and those of buckets into
 * buckets, with checked addition
 */

static int
ingest_sqlite_counts(ingest_consumer_t *ic, ingest_wire_batch_t *batch,
    size_t first, size_t n, int64_t now)
{
    int                   rc;
    size_t                i, len, nbuckets;
    sqlite3_stmt         *s;
    ingest_wire_count_t  *c;

    nbuckets = 0;

    for (i = first; i < first + n; i++) {
        c = &batch->counts[i];

        if (c->resolution == 0) {
            s = ic->stmt_total;
            sqlite3_bind_text(s, 1, c->key, (int) c->len, SQLITE_STATIC);
            sqlite3_bind_int64(s, 2, c->value);
            sqlite3_bind_int64(s, 3, now);

            rc = ingest_sqlite_done(ic, s, "updating totals");

        } else {
            s = ic->stmt_bucket;
            sqlite3_bind_text(s, 1, c->key, (int) c->len, SQLITE_STATIC);
            sqlite3_bind_int64(s, 2, c->resolution);
            sqlite3_bind_int64(s, 3, c->start);
            sqlite3_bind_int64(s, 4, c->value);

            rc = ingest_sqlite_done(ic, s, "updating buckets");
            nbuckets += (rc == 0);
        }

        if (rc == INGEST_STORE_REFUSED) {
            len = strlen(ic->refusal);
            snprintf(ic->refusal + len, sizeof(ic->refusal) - len,
                     " (key \"%.*s\")", (int) c->len, c->key);
        }

        if (rc == -1) {
            ingest_log(INGEST_LOG_ERR, "key \"%.*s\" of batch %llu "
                       "of \"%s\"", (int) c->len, c->key,
                       (unsigned long long) batch->seq, batch->producer);
        }

        if (rc != 0) {
            return rc;
        }
    }

    ic->keys += n - nbuckets;
    ic->bucket_rows += nbuckets;

    return 0;
}


/*
 * --retain: at most "limit" buckets of each retained resolution that
 * ended more than its retention ago go (a bucket still filling never
 * does), a statement each (never a long write lock); the number gone.
 */

static int
ingest_sqlite_expire(ingest_consumer_t *ic, int64_t now_s, long limit,
    long *expired)
{
    int            rc;
    size_t         i;
    sqlite3_stmt  *s;

    *expired = 0;
    s = ic->stmt_expire;

    for (i = 0; i < ic->nretain; i++) {
        sqlite3_bind_int64(s, 1, ic->retain[i].resolution);
        /* a bucket goes once it ended more than its time ago */
        sqlite3_bind_int64(s, 2, now_s - ic->retain[i].seconds
                                 - ic->retain[i].resolution + 1);
        sqlite3_bind_int64(s, 3, limit);

        rc = ingest_sqlite_done(ic, s, "expiring buckets");
        if (rc != 0) {
            return rc;
        }

        *expired += sqlite3_changes(ic->db);
    }

    return 0;
}


/* forget producers idle for prune_days: far beyond any possible replay */

static int
ingest_sqlite_prune(ingest_consumer_t *ic)
{
    int            rc;
    int64_t        before;
    sqlite3_stmt  *s;

    before = ingest_now_ms() - ic->prune_days * 86400 * 1000;

    s = ic->stmt_prune;
    sqlite3_bind_int64(s, 1, before);

    rc = ingest_sqlite_done(ic, s, "pruning applied");
    if (rc != 0) {
        return rc;
    }

    if (sqlite3_changes(ic->db)) {
        ingest_log(INGEST_LOG_INFO, "forgot %d idle producers",
                   sqlite3_changes(ic->db));
    }

    /*
     * A dead batch is remembered while its producer is: a requeued copy
     * of a forgotten producer's batch is applied anyway (last_seq 0).
     */

    s = ic->stmt_dead_prune;
    sqlite3_bind_int64(s, 1, before);

    rc = ingest_sqlite_done(ic, s, "pruning dead_batches");
    if (rc != 0) {
        return rc;
    }

    s = ic->stmt_idem_prune;
    sqlite3_bind_int64(s, 1, ingest_now_ms() - ic->idem_window * 1000);

    return ingest_sqlite_done(ic, s, "pruning idempotency");
}


static int
ingest_sqlite_prepare(ingest_consumer_t *ic, sqlite3_stmt **stmt,
    const char *sql)
{
    if (sqlite3_prepare_v3(ic->db, sql, -1, SQLITE_PREPARE_PERSISTENT, stmt,
                           NULL)
        != SQLITE_OK)
    {
        ingest_log(INGEST_LOG_ERR, "cannot prepare \"%s\": %s", sql,
                   sqlite3_errmsg(ic->db));
        return -1;
    }

    return 0;
}


/* step a statement that returns no rows, then reset it */

static int
ingest_sqlite_done(ingest_consumer_t *ic, sqlite3_stmt *stmt,
    const char *what)
{
    int  rc;

    ic->sqlite_overflow = 0;

    rc = sqlite3_step(stmt);

    if (rc == SQLITE_DONE) {
        sqlite3_reset(stmt);
        sqlite3_clear_bindings(stmt);
        return 0;
    }

    /* the statement's own error code, and errmsg, before the reset */
    rc = sqlite3_reset(stmt);
    rc = ingest_sqlite_failed(ic, rc, what);
    sqlite3_clear_bindings(stmt);

    return rc;
}


/*
 * What an error of a statement means (see the top of this file):
 * INGEST_STORE_AGAIN, INGEST_STORE_REFUSED (ic->refusal says why) or -1.
 */

static int
ingest_sqlite_failed(ingest_consumer_t *ic, int rc, const char *what)
{
    switch (rc & 0xff) {

    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        ingest_log(INGEST_LOG_WARN, "%s: %s (the round is read again)", what,
                   sqlite3_errmsg(ic->db));
        return INGEST_STORE_AGAIN;

    case SQLITE_CONSTRAINT:
    case SQLITE_TOOBIG:
    case SQLITE_MISMATCH:
        return ingest_refuse(ic, "%s: %s", what, sqlite3_errmsg(ic->db));

    case SQLITE_ERROR:
        if (ic->sqlite_overflow) {
            return ingest_refuse(ic, "%s: %s", what,
                                 sqlite3_errmsg(ic->db));
        }

        /* fall through */

    default:
        ingest_log(INGEST_LOG_ERR, "%s: %s", what, sqlite3_errmsg(ic->db));
        return -1;
    }
}


static void
ingest_sqlite_checked_add(sqlite3_context *ctx, int argc,
    sqlite3_value **argv)
{
    sqlite3_int64       a, b, sum;
    ingest_consumer_t  *ic;

    (void) argc;

    a = sqlite3_value_int64(argv[0]);
    b = sqlite3_value_int64(argv[1]);

    if (__builtin_add_overflow(a, b, &sum)) {
        /* the batch's fault, not the database's: it is refused */
        ic = sqlite3_user_data(ctx);
        ic->sqlite_overflow = 1;

        sqlite3_result_error(ctx, "total overflows a signed 64-bit integer",
                             -1);
        return;
    }

    sqlite3_result_int64(ctx, sum);
}


const ingest_store_t  ingest_sqlite_store = {
    "SQLite",
    ingest_sqlite_open,
    ingest_sqlite_close,
    ingest_sqlite_begin,
    ingest_sqlite_commit,
    ingest_sqlite_rollback,
    ingest_sqlite_apply,
    ingest_sqlite_prune,
    ingest_sqlite_dead,
    ingest_sqlite_expire
};
