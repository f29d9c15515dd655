
/*
 * Copyright (C) ngx_ingest developers
 * SPDX-License-Identifier: BSD-2-Clause
 *
 * The consumer's side of PostgreSQL (--db postgresql://...): the same
 * tables and the same exactly-once transaction as ingest_sqlite.c, so
 * that consumers of many lists (one per shard), on any hosts, write into
 * one database.
 *
 * A batch's counts go in as one statement (two arrays unnested, in key
 * order, so that consumers whose keys meet take row locks in the same
 * order); bigint addition raises "bigint out of range" rather than wrap,
 * which is the checked addition.  The connection is synchronous: the
 * consumer is a loop of its own, outside nginx.
 *
 * What an error's SQLSTATE means:
 *
 *   passing, INGEST_STORE_AGAIN: the round is rolled back and read again
 *     class 08 (a lost connection), 40001 (serialization), 40P01
 *     (deadlock), class 57P (a server shutting down): at once, or once
 *     the connection is back; 55P03 (lock_not_available, lock_timeout)
 *     and 57014 (query_canceled, statement_timeout or a person's
 *     pg_cancel_backend): after a backoff, 100 ms doubling to 5 s (at
 *     most a third of the lock's TTL, which stays renewed), since
 *     whatever held the lock or slowed the statement may hold it a while;
 *   the batch's fault, INGEST_STORE_REFUSED: to the dead-letter list
 *     class 22 (data: a bigint out of range, a text the encoding
 *     refuses, ...), class 23 (integrity: a constraint, checked at once
 *     or at COMMIT), class P0 (a PL/pgSQL trigger's RAISE EXCEPTION);
 *   anything else stops the consumer (exit 2): a permission, a missing
 *     or altered table, a full disk, ...
 *
 * A COMMIT whose answer was lost may have committed; reading the round
 * again is still exact, since its batches are then skipped by last_seq.
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest_consumer.h"


/* one lock for creating tables, whoever creates them */
#define INGEST_PG_DDL_LOCK   "SELECT pg_advisory_xact_lock(7316229001)"

/* the backoff after a lock or statement timeout: from 100 ms to this */
#define INGEST_PG_BUSY_MAX_MS   5000


static const char  ingest_pg_schema[] =
    "BEGIN;"
    INGEST_PG_DDL_LOCK ";"
    "CREATE TABLE IF NOT EXISTS totals ("
    "  key TEXT PRIMARY KEY,"
    "  value BIGINT NOT NULL,"
    "  updated_at BIGINT NOT NULL"
    ");"
    "CREATE TABLE IF NOT EXISTS applied ("
    "  producer TEXT NOT NULL,"
    "  queue TEXT NOT NULL,"
    "  last_seq BIGINT NOT NULL,"
    "  updated_at BIGINT NOT NULL,"
    "  PRIMARY KEY (producer, queue)"
    ");"
    "CREATE TABLE IF NOT EXISTS idempotency ("
    "  id TEXT NOT NULL,"
    "  queue TEXT NOT NULL,"
    "  applied_at BIGINT NOT NULL,"
    "  PRIMARY KEY (id, queue)"
    ");"
    "CREATE TABLE IF NOT EXISTS dead_batches ("
    "  producer TEXT NOT NULL,"
    "  queue TEXT NOT NULL,"
    "  seq BIGINT NOT NULL,"
    "  dead_at BIGINT NOT NULL,"
    "  PRIMARY KEY (producer, queue, seq)"
    ");"
    "CREATE TABLE IF NOT EXISTS buckets ("
    "  key TEXT NOT NULL,"
    "  resolution INTEGER NOT NULL,"
    "  start BIGINT NOT NULL,"
    "  value BIGINT NOT NULL,"
    "  PRIMARY KEY (key, resolution, start)"
    ");"
    /* what --retain expires, oldest first, without a scan */
    "CREATE INDEX IF NOT EXISTS buckets_by_start"
    "  ON buckets (resolution, start);"
    "COMMIT;";


/* the session's prepared statements: name, text, number of parameters */

static const struct {
    const char  *name;
    const char  *sql;
    int          nparams;
} ingest_pg_statements[] = {
    { "last_seq",
      "SELECT (SELECT last_seq FROM applied"
      " WHERE producer = $1 AND queue = $2),"
      " EXISTS (SELECT 1 FROM dead_batches"
      " WHERE producer = $1 AND queue = $2 AND seq = $3::bigint)", 3 },
    { "applied",
      "INSERT INTO applied (producer, queue, last_seq, updated_at)"
      " VALUES ($1, $2, $3, $4)"
      " ON CONFLICT (producer, queue) DO UPDATE"
      " SET last_seq = GREATEST(applied.last_seq, excluded.last_seq),"
      " updated_at = excluded.updated_at",
      4 },
    { "dead",
      "INSERT INTO dead_batches (producer, queue, seq, dead_at)"
      " VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING", 4 },
    { "dead_forget",
      "DELETE FROM dead_batches"
      " WHERE producer = $1 AND queue = $2 AND seq = $3", 3 },
    { "dead_gap",
      "SELECT count(*) FROM dead_batches WHERE producer = $1 AND queue = $2"
      " AND seq > $3 AND seq < $4", 4 },
    { "dead_prune",
      "DELETE FROM dead_batches d WHERE dead_at < $1"
      " AND NOT EXISTS (SELECT 1 FROM applied a"
      " WHERE a.producer = d.producer AND a.queue = d.queue)", 1 },
    { "totals",
      "INSERT INTO totals (key, value, updated_at)"
      " SELECT k, v, $3 FROM unnest($1::text[], $2::bigint[]) AS u (k, v)"
      " ORDER BY k"
      " ON CONFLICT (key) DO UPDATE"
      " SET value = totals.value + excluded.value,"
      " updated_at = excluded.updated_at", 3 },
    /* two steps of one batch may share a coarser bucket: summed first */
    { "buckets",
      "INSERT INTO buckets (key, resolution, start, value)"
      " SELECT k, r, s, sum(v) FROM unnest($1::text[], $2::integer[],"
      " $3::bigint[], $4::bigint[]) AS u (k, r, s, v)"
      " GROUP BY k, r, s ORDER BY k, r, s"
      " ON CONFLICT (key, resolution, start) DO UPDATE"
      " SET value = buckets.value + excluded.value", 4 },
    { "expire",
      "DELETE FROM buckets WHERE (key, resolution, start) IN"
      " (SELECT key, resolution, start FROM buckets"
      " WHERE resolution = $1 AND start < $2 LIMIT $3)", 3 },
    { "idem",
      "INSERT INTO idempotency (id, queue, applied_at) VALUES ($1, $2, $3)"
      " ON CONFLICT DO NOTHING", 3 },
    { "prune",
      "DELETE FROM applied WHERE updated_at < $1", 1 },
    { "idem_prune",
      "DELETE FROM idempotency WHERE applied_at < $1", 1 }
};


/* a growing text, for array literals and statements */

typedef struct {
    char    *data;
    size_t   len;
    size_t   cap;
    int      nomem;
} ingest_pg_text_t;


static int ingest_pg_open(ingest_consumer_t *ic);
static void ingest_pg_close(ingest_consumer_t *ic);
static int ingest_pg_ready(ingest_consumer_t *ic);
static int ingest_pg_simple(ingest_consumer_t *ic, const char *sql);
static int ingest_pg_begin(ingest_consumer_t *ic);
static int ingest_pg_commit(ingest_consumer_t *ic);
static void ingest_pg_rollback(ingest_consumer_t *ic);
static int ingest_pg_apply(ingest_consumer_t *ic, ingest_wire_batch_t *batch,
    int *skipped);
static int ingest_pg_counts(ingest_consumer_t *ic,
    ingest_wire_batch_t *batch, size_t first, size_t n, const char *now);
static ingest_table_t *ingest_pg_table(ingest_consumer_t *ic,
    ingest_wire_batch_t *batch, int *rc);
static int ingest_pg_records(ingest_consumer_t *ic,
    ingest_wire_batch_t *batch, const char *now);
static int ingest_pg_prune(ingest_consumer_t *ic);
static int ingest_pg_expire(ingest_consumer_t *ic, int64_t now_s,
    long limit, long *expired);
static int ingest_pg_dead(ingest_consumer_t *ic, ingest_wire_batch_t *batch);
static void ingest_pg_jumped(ingest_consumer_t *ic,
    ingest_wire_batch_t *batch, int64_t last);
static int ingest_pg_exec(ingest_consumer_t *ic, const char *name,
    int nparams, const char *const *params, const char *what,
    PGresult **out);
static int ingest_pg_failed(ingest_consumer_t *ic, PGresult *res,
    const char *what);
static const char *ingest_pg_line(const char *message, char *buf,
    size_t size);
static void ingest_pg_put(ingest_pg_text_t *t, const char *s, size_t len);
static void ingest_pg_element(ingest_pg_text_t *t, const char *s,
    size_t len);


static const char  *ingest_pg_types[4] = {
    "bigint", "double precision", "text", "boolean"
};


/* the server's notices ("already exists, skipping") are not for the log */

static void
ingest_pg_notice(void *arg, const char *message)
{
    (void) arg;
    (void) message;
}


static int
ingest_pg_open(ingest_consumer_t *ic)
{
    int  rc;

    ic->pg = PQconnectdb(ic->db_path);

    if (ic->pg == NULL || PQstatus(ic->pg) != CONNECTION_OK) {
        ingest_log(INGEST_LOG_ERR, "cannot connect to PostgreSQL: %s",
                   ic->pg ? PQerrorMessage(ic->pg) : "out of memory");
        return -1;
    }

    PQsetNoticeProcessor(ic->pg, ingest_pg_notice, NULL);

    /*
     * Connected, the tables may still wait for a lock another session
     * holds (lock_timeout): passing, tried again after the backoff.  A
     * connection lost here is a configuration to check: exit 1.
     */

    do {
        rc = ingest_pg_ready(ic);
    } while (rc == INGEST_STORE_AGAIN && PQstatus(ic->pg) == CONNECTION_OK
             && !ingest_quit);

    return rc == 0 ? 0 : -1;
}


static void
ingest_pg_close(ingest_consumer_t *ic)
{
    if (ic->pg != NULL) {
        PQfinish(ic->pg);
        ic->pg = NULL;
    }

    ic->pg_prepared = 0;
    ic->ntables = 0;
}


/*
 * The connection, the tables and this session's statements, made again
 * after a lost connection.  0, or INGEST_STORE_AGAIN after a backoff.
 */

static int
ingest_pg_ready(ingest_consumer_t *ic)
{
    int        rc;
    char       line[512];
    size_t     i;
    PGresult  *res;

    if (ic->pg_busy) {
        /* out of any transaction, so that no lock is held meanwhile */
        ic->pg_busy = 0;
        ingest_sleep_ms(ic->pg_busy_ms);
    }

    if (PQstatus(ic->pg) != CONNECTION_OK) {
        ic->pg_prepared = 0;
        ic->ntables = 0;

        PQreset(ic->pg);

        if (PQstatus(ic->pg) != CONNECTION_OK) {
            if (!ic->pg_down) {
                ic->pg_down = 1;
                ingest_log(INGEST_LOG_ERR, "PostgreSQL is unreachable: %s; "
                           "retrying",
                           ingest_pg_line(PQerrorMessage(ic->pg), line,
                                          sizeof(line)));
            }

            ic->pg_retry_ms = ic->pg_retry_ms ? ic->pg_retry_ms * 2 : 100;
            if (ic->pg_retry_ms > 5000) {
                ic->pg_retry_ms = 5000;
            }

            ingest_sleep_ms(ic->pg_retry_ms);

            return INGEST_STORE_AGAIN;
        }

        ic->pg_down = 0;
        ingest_log(INGEST_LOG_NOTICE, "PostgreSQL is back");
    }

    ic->pg_retry_ms = 0;

    if (ic->pg_prepared) {
        return 0;
    }

    res = PQexec(ic->pg, ingest_pg_schema);

    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        rc = ingest_pg_failed(ic, res, "creating the tables");

        /*
         * The script stopped inside its transaction: end it, or the
         * next BEGIN would find it aborted.
         */
        ingest_pg_rollback(ic);

        return rc;
    }

    PQclear(res);

    for (i = 0; i < sizeof(ingest_pg_statements)
                    / sizeof(ingest_pg_statements[0]); i++)
    {
        res = PQprepare(ic->pg, ingest_pg_statements[i].name,
                        ingest_pg_statements[i].sql,
                        ingest_pg_statements[i].nparams, NULL);

        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            return ingest_pg_failed(ic, res, ingest_pg_statements[i].sql);
        }

        PQclear(res);
    }

    ic->pg_prepared = 1;

    return 0;
}


static int
ingest_pg_simple(ingest_consumer_t *ic, const char *sql)
{
    PGresult  *res;

    res = PQexec(ic->pg, sql);

    if (PQresultStatus(res) != PGRES_COMMAND_OK
        && PQresultStatus(res) != PGRES_TUPLES_OK)
    {
        return ingest_pg_failed(ic, res, sql);
    }

    PQclear(res);

    return 0;
}


static int
ingest_pg_begin(ingest_consumer_t *ic)
{
    int  rc;

    rc = ingest_pg_ready(ic);
    if (rc != 0) {
        return rc;
    }

    return ingest_pg_simple(ic, "BEGIN");
}


static int
ingest_pg_commit(ingest_consumer_t *ic)
{
    int  rc;

    rc = ingest_pg_simple(ic, "COMMIT");

    if (rc == 0) {
        /* whatever held us up is gone */
        ic->pg_busy_ms = 0;
    }

    return rc;
}


static void
ingest_pg_rollback(ingest_consumer_t *ic)
{
    PGresult  *res;

    /* a table created in the transaction is gone with it */
    ic->ntables = 0;

    if (PQstatus(ic->pg) != CONNECTION_OK
        || PQtransactionStatus(ic->pg) == PQTRANS_IDLE)
    {
        return;
    }

    res = PQexec(ic->pg, "ROLLBACK");
    PQclear(res);
}


/*
 * Inside the round's transaction: apply batch unless its producer's
 * last_seq on this list already covers it and it is not a dead batch
 * come back.
 */

static int
ingest_pg_apply(ingest_consumer_t *ic, ingest_wire_batch_t *batch,
    int *skipped)
{
    int                     rc, dead;
    char                    now[24], seq[24], id[INGEST_WIRE_MAX_ID + 1];
    size_t                  i;
    int64_t                 last;
    PGresult               *res;
    const char             *params[4];
    ingest_wire_request_t  *r;

    *skipped = 0;
    snprintf(now, sizeof(now), "%lld", (long long) ingest_now_ms());
    snprintf(seq, sizeof(seq), "%llu", (unsigned long long) batch->seq);

    params[0] = batch->producer;
    params[1] = ic->queue;
    params[2] = seq;

    rc = ingest_pg_exec(ic, "last_seq", 3, params, "reading applied", &res);
    if (rc != 0) {
        return rc;
    }

    last = 0;
    dead = 0;

    if (PQntuples(res) == 1) {
        if (!PQgetisnull(res, 0, 0)) {
            last = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        }

        dead = (PQgetvalue(res, 0, 1)[0] == 't');
    }

    PQclear(res);

    if ((uint64_t) last >= batch->seq && !dead) {
        *skipped = 1;
        return 0;
    }

    if (last != 0 && batch->seq > (uint64_t) last + 1) {
        ingest_pg_jumped(ic, batch, last);
    }

    if (batch->kind == INGEST_WIRE_KIND_RECORDS) {
        rc = ingest_pg_records(ic, batch, now);

    } else {
        rc = ingest_pg_counts(ic, batch, 0, batch->ncounts, now);
    }

    if (rc != 0) {
        return rc;
    }

    /* each Idempotency-Key request only if its key is new on this list */

    for (i = 0; i < batch->nrequests; i++) {
        r = &batch->requests[i];

        if (r->id_len > INGEST_WIRE_MAX_ID) {
            return ingest_refuse(ic, "an Idempotency-Key of %zu bytes",
                                 r->id_len);
        }

        /* text parameters end with a NUL; the decoder's do not */
        memcpy(id, r->id, r->id_len);
        id[r->id_len] = '\0';

        params[0] = id;
        params[1] = ic->queue;
        params[2] = now;

        rc = ingest_pg_exec(ic, "idem", 3, params,
                            "recording an Idempotency-Key", &res);
        if (rc != 0) {
            return rc;
        }

        if (strcmp(PQcmdTuples(res), "0") == 0) {
            PQclear(res);
            ic->repeats++;
            continue;
        }

        PQclear(res);

        rc = ingest_pg_counts(ic, batch, r->first, r->n, now);
        if (rc != 0) {
            return rc;
        }
    }

    /* last_seq never goes back: a requeued batch may be older */

    params[0] = batch->producer;
    params[1] = ic->queue;
    params[2] = seq;
    params[3] = now;

    rc = ingest_pg_exec(ic, "applied", 4, params, "updating applied", &res);
    if (rc != 0) {
        return rc;
    }

    PQclear(res);

    if (!dead) {
        return 0;
    }

    rc = ingest_pg_exec(ic, "dead_forget", 3, params,
                        "forgetting a dead batch", &res);
    if (rc == 0) {
        PQclear(res);
    }

    return rc;
}


/*
 * A producer never skips a seq: a jump means something upstream lost a
 * batch, unless the batches in between went to the dead-letter list.
 */

static void
ingest_pg_jumped(ingest_consumer_t *ic, ingest_wire_batch_t *batch,
    int64_t last)
{
    char         from[24], to[24];
    int64_t      dead;
    PGresult    *res;
    const char  *params[4];

    snprintf(from, sizeof(from), "%lld", (long long) last);
    snprintf(to, sizeof(to), "%llu", (unsigned long long) batch->seq);

    params[0] = batch->producer;
    params[1] = ic->queue;
    params[2] = from;
    params[3] = to;

    dead = 0;

    if (ingest_pg_exec(ic, "dead_gap", 4, params, "counting dead batches",
                       &res)
        == 0)
    {
        dead = PQntuples(res) ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : 0;
        PQclear(res);
    }

    if ((uint64_t) dead == batch->seq - (uint64_t) last - 1) {
        return;
    }

    ingest_log(INGEST_LOG_WARN, "producer \"%s\" jumped from seq %lld "
               "to %llu on \"%s\"", batch->producer, (long long) last,
               (unsigned long long) batch->seq, ic->queue);
}


/* inside a transaction: batch went to the dead-letter list */

static int
ingest_pg_dead(ingest_consumer_t *ic, ingest_wire_batch_t *batch)
{
    int          rc;
    char         seq[24], now[24];
    PGresult    *res;
    const char  *params[4];

    snprintf(seq, sizeof(seq), "%llu", (unsigned long long) batch->seq);
    snprintf(now, sizeof(now), "%lld", (long long) ingest_now_ms());

    params[0] = batch->producer;
    params[1] = ic->queue;
    params[2] = seq;
    params[3] = now;

    rc = ingest_pg_exec(ic, "dead", 4, params, "recording a dead batch",
                        &res);
    if (rc == 0) {
        PQclear(res);
    }

    return rc;
}


/*
 * upsert counts[first, first + n) into totals in one statement, and
 * those of buckets into buckets in another
 */

static int
ingest_pg_counts(ingest_consumer_t *ic, ingest_wire_batch_t *batch,
    size_t first, size_t n, const char *now)
{
    int                    rc;
    char                   num[24];
    size_t                 i, ntotals, nbuckets;
    PGresult              *res;
    const char            *params[4];
    ingest_pg_text_t       keys, values, bkeys, bres, bstarts, bvalues;
    ingest_wire_count_t   *c;

    if (n == 0) {
        return 0;
    }

    memset(&keys, 0, sizeof(ingest_pg_text_t));
    memset(&values, 0, sizeof(ingest_pg_text_t));
    memset(&bkeys, 0, sizeof(ingest_pg_text_t));
    memset(&bres, 0, sizeof(ingest_pg_text_t));
    memset(&bstarts, 0, sizeof(ingest_pg_text_t));
    memset(&bvalues, 0, sizeof(ingest_pg_text_t));

    ingest_pg_put(&keys, "{", 1);
    ingest_pg_put(&values, "{", 1);
    ingest_pg_put(&bkeys, "{", 1);
    ingest_pg_put(&bres, "{", 1);
    ingest_pg_put(&bstarts, "{", 1);
    ingest_pg_put(&bvalues, "{", 1);

    ntotals = 0;
    nbuckets = 0;

    for (i = first; i < first + n; i++) {
        c = &batch->counts[i];

        if (c->resolution == 0) {
            if (ntotals++) {
                ingest_pg_put(&keys, ",", 1);
                ingest_pg_put(&values, ",", 1);
            }

            ingest_pg_element(&keys, c->key, c->len);
            ingest_pg_put(&values, num,
                          snprintf(num, sizeof(num), "%lld",
                                   (long long) c->value));
            continue;
        }

        if (nbuckets++) {
            ingest_pg_put(&bkeys, ",", 1);
            ingest_pg_put(&bres, ",", 1);
            ingest_pg_put(&bstarts, ",", 1);
            ingest_pg_put(&bvalues, ",", 1);
        }

        ingest_pg_element(&bkeys, c->key, c->len);
        ingest_pg_put(&bres, num,
                      snprintf(num, sizeof(num), "%u",
                               (unsigned) c->resolution));
        ingest_pg_put(&bstarts, num,
                      snprintf(num, sizeof(num), "%lld",
                               (long long) c->start));
        ingest_pg_put(&bvalues, num,
                      snprintf(num, sizeof(num), "%lld",
                               (long long) c->value));
    }

    ingest_pg_put(&keys, "}", 2);       /* and the NUL */
    ingest_pg_put(&values, "}", 2);
    ingest_pg_put(&bkeys, "}", 2);
    ingest_pg_put(&bres, "}", 2);
    ingest_pg_put(&bstarts, "}", 2);
    ingest_pg_put(&bvalues, "}", 2);

    rc = 0;

    if (keys.nomem || values.nomem || bkeys.nomem || bres.nomem
        || bstarts.nomem || bvalues.nomem)
    {
        ingest_log(INGEST_LOG_ERR, "out of memory");
        rc = -1;
        goto done;
    }

    if (ntotals) {
        params[0] = keys.data;
        params[1] = values.data;
        params[2] = now;

        rc = ingest_pg_exec(ic, "totals", 3, params, "updating totals",
                            &res);
        if (rc != 0) {
            goto failed;
        }

        PQclear(res);
    }

    if (nbuckets) {
        params[0] = bkeys.data;
        params[1] = bres.data;
        params[2] = bstarts.data;
        params[3] = bvalues.data;

        rc = ingest_pg_exec(ic, "buckets", 4, params, "updating buckets",
                            &res);
        if (rc != 0) {
            goto failed;
        }

        PQclear(res);
        ic->bucket_rows += nbuckets;
    }

    ic->keys += ntotals;

    goto done;

failed:

    if (rc == -1) {
        ingest_log(INGEST_LOG_ERR, "in batch %llu of \"%s\"",
                   (unsigned long long) batch->seq, batch->producer);
    }

done:

    free(keys.data);
    free(values.data);
    free(bkeys.data);
    free(bres.data);
    free(bstarts.data);
    free(bvalues.data);

    return rc;
}


/*
 * The table of a records batch: created on first sight from the batch's
 * columns (plus received_at), or checked against them; a batch whose
 * columns conflict with the table is refused.  Names were checked by the
 * decoder ([A-Za-z_][A-Za-z0-9_]*): quoting them is safe.
 */

static ingest_table_t *
ingest_pg_table(ingest_consumer_t *ic, ingest_wire_batch_t *batch, int *rc)
{
    int               n, rows;
    char              name[24];
    size_t            i;
    PGresult         *res;
    const char       *params[1];
    ingest_table_t   *t;
    ingest_pg_text_t  sql;

    *rc = 0;

    if (ingest_table_entry(ic, batch, ingest_pg_types, &t) == 1) {
        return t;
    }

    /* one creator at a time, until this transaction ends */

    *rc = ingest_pg_simple(ic, INGEST_PG_DDL_LOCK);
    if (*rc != 0) {
        return NULL;
    }

    *rc = -1;

    params[0] = t->name;
    res = PQexecParams(ic->pg,
                       "SELECT column_name, data_type"
                       " FROM information_schema.columns"
                       " WHERE table_schema = current_schema()"
                       " AND table_name = $1 ORDER BY ordinal_position",
                       1, NULL, params, NULL, NULL, 0);

    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        *rc = ingest_pg_failed(ic, res, "reading a table's columns");
        return NULL;
    }

    rows = PQntuples(res);

    for (n = 0; n < rows; n++) {
        const char  *col = PQgetvalue(res, n, 0);
        const char  *type = PQgetvalue(res, n, 1);

        if (n == 0 ? strcmp(col, "received_at") != 0
                     || strcmp(type, "bigint") != 0
                   : n > (int) t->ncolumns
                     || strcmp(col, t->columns[n - 1]) != 0
                     || strcmp(type, ingest_pg_types[t->types[n - 1]]) != 0)
        {
            PQclear(res);
            goto conflict;
        }
    }

    PQclear(res);

    if (rows != 0 && rows != (int) t->ncolumns + 1) {
        goto conflict;
    }

    memset(&sql, 0, sizeof(ingest_pg_text_t));

    if (rows == 0) {
        ingest_pg_put(&sql, "CREATE TABLE \"", 14);
        ingest_pg_put(&sql, t->name, strlen(t->name));
        ingest_pg_put(&sql, "\" (received_at bigint NOT NULL", 30);

        for (i = 0; i < t->ncolumns; i++) {
            ingest_pg_put(&sql, ", \"", 3);
            ingest_pg_put(&sql, t->columns[i], strlen(t->columns[i]));
            ingest_pg_put(&sql, "\" ", 2);
            ingest_pg_put(&sql, ingest_pg_types[t->types[i]],
                          strlen(ingest_pg_types[t->types[i]]));
        }

        ingest_pg_put(&sql, ")", 2);

        if (sql.nomem) {
            free(sql.data);
            return NULL;
        }

        *rc = ingest_pg_simple(ic, sql.data);
        if (*rc != 0) {
            free(sql.data);
            return NULL;
        }

        ingest_log(INGEST_LOG_NOTICE, "created table \"%s\"", t->name);
        sql.len = 0;
    }

    /* INSERT ... SELECT $1, * FROM unnest($2::type[], ...) */

    ingest_pg_put(&sql, "INSERT INTO \"", 13);
    ingest_pg_put(&sql, t->name, strlen(t->name));
    ingest_pg_put(&sql, "\" (received_at", 14);

    for (i = 0; i < t->ncolumns; i++) {
        ingest_pg_put(&sql, ", \"", 3);
        ingest_pg_put(&sql, t->columns[i], strlen(t->columns[i]));
        ingest_pg_put(&sql, "\"", 1);
    }

    ingest_pg_put(&sql, ") SELECT $1, * FROM unnest(", 27);

    for (i = 0; i < t->ncolumns; i++) {
        n = snprintf(name, sizeof(name), "%s$%zu::", i ? ", " : "", i + 2);
        ingest_pg_put(&sql, name, n);
        ingest_pg_put(&sql, ingest_pg_types[t->types[i]],
                      strlen(ingest_pg_types[t->types[i]]));
        ingest_pg_put(&sql, "[]", 2);
    }

    ingest_pg_put(&sql, ")", 2);

    if (sql.nomem) {
        free(sql.data);
        return NULL;
    }

    /*
     * A session's statements outlive a rollback, which forgets the
     * table: each statement gets a name of its own.
     */

    snprintf(t->statement, sizeof(t->statement), "insert_%llu",
             (unsigned long long) ++ic->pg_statements);

    res = PQprepare(ic->pg, t->statement, sql.data, (int) t->ncolumns + 1,
                    NULL);
    free(sql.data);

    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        *rc = ingest_pg_failed(ic, res, "preparing an insert");
        return NULL;
    }

    PQclear(res);

    ic->ntables++;
    *rc = 0;

    return t;

conflict:

    *rc = ingest_table_conflict(ic, batch);
    return NULL;
}


/* insert a records batch's rows, one array per column */

static int
ingest_pg_records(ingest_consumer_t *ic, ingest_wire_batch_t *batch,
    const char *now)
{
    int                   rc, ok;
    size_t                row, col;
    PGresult             *res;
    const char           *params[INGEST_WIRE_MAX_COLUMNS + 1];
    ingest_table_t       *t;
    ingest_pg_text_t      arrays[INGEST_WIRE_MAX_COLUMNS];
    ingest_wire_value_t  *v;

    t = ingest_pg_table(ic, batch, &rc);
    if (t == NULL) {
        return rc;
    }

    memset(arrays, 0, sizeof(arrays));
    rc = -1;

    for (col = 0; col < t->ncolumns; col++) {
        ingest_pg_put(&arrays[col], "{", 1);

        for (row = 0; row < batch->nrows; row++) {
            v = &batch->values[row * batch->ncolumns + col];

            if (row) {
                ingest_pg_put(&arrays[col], ",", 1);
            }

            /* the same types as the SQLite store takes */

            ok = v->type == INGEST_WIRE_NULL
                 || v->type == t->types[col]
                 || (t->types[col] == INGEST_WIRE_REAL
                     && v->type == INGEST_WIRE_INT);

            if (!ok) {
                rc = ingest_refuse(ic, "row %zu of a batch for \"%s\": "
                                   "column \"%s\" holds a value of another "
                                   "type", row, t->name, t->columns[col]);
                goto done;
            }

            if (v->type == INGEST_WIRE_NULL) {
                ingest_pg_put(&arrays[col], "NULL", 4);

            } else if (v->type == INGEST_WIRE_BOOL) {
                ingest_pg_put(&arrays[col], v->s[0] == 't' ? "t" : "f", 1);

            } else {
                ingest_pg_element(&arrays[col], v->s, v->len);
            }
        }

        ingest_pg_put(&arrays[col], "}", 2);

        if (arrays[col].nomem) {
            ingest_log(INGEST_LOG_ERR, "out of memory");
            goto done;
        }

        params[col + 1] = arrays[col].data;
    }

    params[0] = now;

    rc = ingest_pg_exec(ic, t->statement, (int) t->ncolumns + 1, params,
                        "inserting rows", &res);
    if (rc == 0) {
        PQclear(res);
        ic->keys += batch->nrows;
    }

done:

    for (col = 0; col < t->ncolumns; col++) {
        free(arrays[col].data);
    }

    return rc;
}


/* --retain: see ingest_sqlite_expire(); outside any transaction */

static int
ingest_pg_expire(ingest_consumer_t *ic, int64_t now_s, long limit,
    long *expired)
{
    int          rc;
    char         res_text[24], before[24], limit_text[24];
    size_t       i;
    PGresult    *res;
    const char  *params[3];

    *expired = 0;

    rc = ingest_pg_ready(ic);
    if (rc != 0) {
        return rc;
    }

    params[0] = res_text;
    params[1] = before;
    params[2] = limit_text;

    snprintf(limit_text, sizeof(limit_text), "%ld", limit);

    for (i = 0; i < ic->nretain; i++) {
        snprintf(res_text, sizeof(res_text), "%ld", ic->retain[i].resolution);
        /* a bucket goes once it ended more than its time ago */
        snprintf(before, sizeof(before), "%lld",
                 (long long) (now_s - ic->retain[i].seconds
                              - ic->retain[i].resolution + 1));

        rc = ingest_pg_exec(ic, "expire", 3, params, "expiring buckets",
                            &res);
        if (rc != 0) {
            return rc;
        }

        *expired += atol(PQcmdTuples(res));
        PQclear(res);
    }

    return 0;
}


/* forget producers idle for prune_days, and old Idempotency-Keys */

static int
ingest_pg_prune(ingest_consumer_t *ic)
{
    int          rc;
    char         before[24];
    PGresult    *res;
    const char  *params[1];

    rc = ingest_pg_ready(ic);
    if (rc != 0) {
        return rc;
    }

    snprintf(before, sizeof(before), "%lld", (long long)
             (ingest_now_ms() - ic->prune_days * 86400 * 1000));
    params[0] = before;

    rc = ingest_pg_exec(ic, "prune", 1, params, "pruning applied", &res);
    if (rc != 0) {
        return rc;
    }

    if (strcmp(PQcmdTuples(res), "0") != 0) {
        ingest_log(INGEST_LOG_INFO, "forgot %s idle producers",
                   PQcmdTuples(res));
    }

    PQclear(res);

    /*
     * A dead batch is remembered while its producer is: a requeued copy
     * of a forgotten producer's batch is applied anyway (last_seq 0).
     */

    rc = ingest_pg_exec(ic, "dead_prune", 1, params, "pruning dead_batches",
                        &res);
    if (rc != 0) {
        return rc;
    }

    PQclear(res);

    snprintf(before, sizeof(before), "%lld",
             (long long) (ingest_now_ms() - ic->idem_window * 1000));

    rc = ingest_pg_exec(ic, "idem_prune", 1, params, "pruning idempotency",
                        &res);
    if (rc == 0) {
        PQclear(res);
    }

    return rc;
}


/* run a prepared statement; *out is the result to clear on success */

static int
ingest_pg_exec(ingest_consumer_t *ic, const char *name, int nparams,
    const char *const *params, const char *what, PGresult **out)
{
    PGresult  *res;

    res = PQexecPrepared(ic->pg, name, nparams, params, NULL, NULL, 0);

    switch (PQresultStatus(res)) {
    case PGRES_COMMAND_OK:
    case PGRES_TUPLES_OK:
        *out = res;
        return 0;

    default:
        *out = NULL;
        return ingest_pg_failed(ic, res, what);
    }
}


/*
 * Log a failure and clear its result (see the top of this file):
 * INGEST_STORE_AGAIN if it is passing, INGEST_STORE_REFUSED (ic->refusal
 * says why) if it is the batch's fault, -1 otherwise.
 */

static int
ingest_pg_failed(ingest_consumer_t *ic, PGresult *res, const char *what)
{
    int          again, timeout;
    char         line[512];
    int64_t      cap;
    const char  *state;

    state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

    /* whoever holds the lock or slows the statement may go on a while */
    timeout = state != NULL
              && (strcmp(state, "55P03") == 0           /* lock_timeout */
                  || strcmp(state, "57014") == 0);      /* canceled */

    again = PQstatus(ic->pg) != CONNECTION_OK
            || timeout
            || (state != NULL
                && (strncmp(state, "08", 2) == 0          /* connection */
                    || strcmp(state, "40001") == 0        /* serialization */
                    || strcmp(state, "40P01") == 0        /* deadlock */
                    || strncmp(state, "57P", 3) == 0));   /* shutdown */

    if (timeout) {
        /* no longer than a third of the lock's TTL: it stays renewed */
        cap = ic->lock_ttl_ms / 3;
        if (cap > INGEST_PG_BUSY_MAX_MS) {
            cap = INGEST_PG_BUSY_MAX_MS;
        }

        ic->pg_busy_ms = ic->pg_busy_ms ? ic->pg_busy_ms * 2 : 100;
        if (ic->pg_busy_ms > cap) {
            ic->pg_busy_ms = cap;
        }

        ic->pg_busy = 1;

        ingest_log(INGEST_LOG_WARN, "%s: %s (the round is read again in "
                   "%lld ms)", what,
                   ingest_pg_line(PQresultErrorMessage(res), line,
                                  sizeof(line)),
                   (long long) ic->pg_busy_ms);
        PQclear(res);

        return INGEST_STORE_AGAIN;
    }

    if (!again && state != NULL
        && (strncmp(state, "22", 2) == 0                  /* data */
            || strncmp(state, "23", 2) == 0               /* integrity */
            || strncmp(state, "P0", 2) == 0))             /* RAISE */
    {
        /* the batch's fault: refused, logged with the move */
        ingest_refuse(ic, "%s: %s", what,
                      ingest_pg_line(PQresultErrorMessage(res), line,
                                     sizeof(line)));
        PQclear(res);

        return INGEST_STORE_REFUSED;
    }

    ingest_log(again ? INGEST_LOG_WARN : INGEST_LOG_ERR, "%s: %s%s", what,
               ingest_pg_line(res ? PQresultErrorMessage(res)
                                  : PQerrorMessage(ic->pg),
                              line, sizeof(line)),
               again ? " (the round is read again)" : "");

    PQclear(res);

    return again ? INGEST_STORE_AGAIN : -1;
}


/* libpq's messages on one line: runs of white space become one space */

static const char *
ingest_pg_line(const char *message, char *buf, size_t size)
{
    size_t  n;

    n = 0;

    while (*message && n + 1 < size) {
        if (*message == ' ' || *message == '\n' || *message == '\t') {
            while (*message == ' ' || *message == '\n' || *message == '\t') {
                message++;
            }

            if (*message && n) {
                buf[n++] = ' ';
            }

            continue;
        }

        buf[n++] = *message++;
    }

    buf[n] = '\0';

    return buf;
}


static void
ingest_pg_put(ingest_pg_text_t *t, const char *s, size_t len)
{
    char    *p;
    size_t   cap;

    if (t->nomem) {
        return;
    }

    if (t->len + len > t->cap) {
        cap = t->cap ? t->cap * 2 : 256;

        while (cap < t->len + len) {
            cap *= 2;
        }

        p = realloc(t->data, cap);
        if (p == NULL) {
            t->nomem = 1;
            return;
        }

        t->data = p;
        t->cap = cap;
    }

    memcpy(t->data + t->len, s, len);
    t->len += len;
}


/* an array element in double quotes, with '"' and '\\' escaped */

static void
ingest_pg_element(ingest_pg_text_t *t, const char *s, size_t len)
{
    size_t  i, run;

    ingest_pg_put(t, "\"", 1);

    for (i = 0; i < len; i += run) {
        for (run = 0; i + run < len && s[i + run] != '"'
                      && s[i + run] != '\\'; run++)
        {
            /* void */
        }

        ingest_pg_put(t, s + i, run);

        if (i + run < len) {
            ingest_pg_put(t, "\\", 1);
            ingest_pg_put(t, s + i + run, 1);
            run++;
        }
    }

    ingest_pg_put(t, "\"", 1);
}


const ingest_store_t  ingest_pg_store = {
    "PostgreSQL",
    ingest_pg_open,
    ingest_pg_close,
    ingest_pg_begin,
    ingest_pg_commit,
    ingest_pg_rollback,
    ingest_pg_apply,
    ingest_pg_prune,
    ingest_pg_dead,
    ingest_pg_expire
};
