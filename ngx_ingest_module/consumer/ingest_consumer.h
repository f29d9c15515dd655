
/*
 * Copyright (C) ngx_ingest developers
 * SPDX-License-Identifier: BSD-2-Clause
 *
 * ingest-consumer's state and the interfaces between its files:
 * ingest_consumer.c (options, the round), ingest_queue.c (Redis: the
 * list and the lock), and the two stores of totals, records and what was
 * applied: ingest_sqlite.c and ingest_pg.c.
 */

#ifndef _INGEST_CONSUMER_H_INCLUDED_
#define _INGEST_CONSUMER_H_INCLUDED_


#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>
#include <libpq-fe.h>
#include <sqlite3.h>

#include "ingest_wire_decode.h"
#include "ingest_redis_url.h"


#define INGEST_EXIT_OK        0      /* stopped by SIGTERM/SIGINT */
#define INGEST_EXIT_USAGE     1      /* bad options or configuration */
#define INGEST_EXIT_RUNTIME   2      /* the store failed, out of memory */

/* after a lost connection or an error reply: 100 ms, doubling, to this */
#define INGEST_REDIS_BACKOFF_MAX_MS   5000
#define INGEST_LOGIN_REFUSED_MAX      32     /* cluster nodes, remembered */

#define INGEST_LOG_ERR        0
#define INGEST_LOG_WARN       1
#define INGEST_LOG_NOTICE     2
#define INGEST_LOG_INFO       3
#define INGEST_LOG_ALERT      4


/* a records table the store has checked and can insert into */

typedef struct {
    char                      name[INGEST_WIRE_MAX_NAME + 1];
    size_t                    ncolumns;
    char                      columns[INGEST_WIRE_MAX_COLUMNS]
                                     [INGEST_WIRE_MAX_NAME + 1];
    int                       types[INGEST_WIRE_MAX_COLUMNS];
    sqlite3_stmt             *insert;      /* SQLite */
    char                      statement[24];  /* PostgreSQL: its name */
} ingest_table_t;


#define INGEST_MAX_TABLES     64


typedef struct ingest_consumer_s  ingest_consumer_t;


/*
 * Where totals and records go: SQLite (a file) or PostgreSQL (a
 * postgresql:// URI).  Each function returns 0, -1 (an error of the
 * database that retrying will not mend: the round's batches stay in
 * Redis and the consumer stops), INGEST_STORE_AGAIN (the connection was
 * lost, the database was busy, timed a statement out or chose this
 * transaction to abort: the round is rolled back and read again) or
 * INGEST_STORE_REFUSED (this batch can never be applied to the database
 * as it stands: a column conflict, a value or total it rejects, a
 * constraint or a trigger; the reason is in ic->refusal, and the batch
 * goes to the dead-letter list).  From commit, a refusal names no batch
 * when the transaction held several.
 *
 * A batch that went to the dead-letter list is recorded by dead() in the
 * table dead_batches: apply() applies a batch so recorded even though
 * its producer's last_seq is past it (a requeued batch), once, and
 * forgets the record in the same transaction.
 */

#define INGEST_STORE_AGAIN    -2
#define INGEST_STORE_REFUSED  -3

typedef struct {
    const char               *name;
    int                     (*open)(ingest_consumer_t *ic);
    void                    (*close)(ingest_consumer_t *ic);
    int                     (*begin)(ingest_consumer_t *ic);
    int                     (*commit)(ingest_consumer_t *ic);
    void                    (*rollback)(ingest_consumer_t *ic);
    int                     (*apply)(ingest_consumer_t *ic,
                                     ingest_wire_batch_t *batch,
                                     int *skipped);
    int                     (*prune)(ingest_consumer_t *ic);
    int                     (*dead)(ingest_consumer_t *ic,
                                    ingest_wire_batch_t *batch);
    /* --retain: up to limit expired buckets per resolution go */
    int                     (*expire)(ingest_consumer_t *ic, int64_t now_s,
                                      long limit, long *expired);
} ingest_store_t;


/* --retain <resolution>=<time>: buckets of it older than that go */

#define INGEST_MAX_RETAIN     16

typedef struct {
    long                      resolution;  /* seconds */
    long                      seconds;
} ingest_retain_t;


struct ingest_consumer_s {
    /* options */
    const char               *redis;       /* --redis for the log */
    ingest_redis_conf_t       redis_conf;  /* what it says, credentials */
    char                      redis_host[256];
    int                       redis_port;  /* 0: a unix socket */
    const char               *queue;       /* the list drained */
    const char               *db_path;
    long                      window;      /* batches per round */
    long                      poll_ms;     /* sleep when the list is empty */
    long                      lock_ttl_ms;
    long                      prune_days;  /* forget idle producers */
    long                      idem_window; /* seconds keys are remembered */
    ingest_retain_t           retain[INGEST_MAX_RETAIN];
    size_t                    nretain;
    int64_t                   expired_ms;  /* when buckets last expired */
    int                       verbose;
    int                       requeue_dead;  /* --requeue-dead, then exit */

    /*
     * Redis; in a cluster, the list's master, found from the seeds
     * (redis_conf.nodes)
     */
    int                       cluster;
    size_t                    next_seed;
    redisContext             *redis_ctx;   /* NULL while disconnected */
    char                      lock_key[512];
    char                      heartbeat_key[512];
    char                      dead_key[512];  /* the dead-letter list */
    char                      owner[256];  /* our value of the lock key */
    int                       locked;
    int64_t                   lock_renewed_ms;
    int                       redis_down;  /* "lost" was logged */
    int                       redirected;  /* "finding it again" was */
    int                       redis_refused;  /* an error reply: back off */
    char                      redis_error[32];  /* the error logged */
    const char               *redis_refused_what;  /* its command, or NULL */

    /*
     * In a cluster, the nodes that refuse the login, each with the error
     * logged: one node's refusal is not ended by another's acceptance
     */
    size_t                    nlogin_refused;
    struct {
        char                  host[256];
        int                   port;
        char                  error[32];
    }                         login_refused[INGEST_LOGIN_REFUSED_MAX];

    const ingest_store_t     *store;

    /* PostgreSQL */
    PGconn                   *pg;
    int                       pg_prepared; /* this session's statements */
    int                       pg_down;     /* "unreachable" was logged */
    int64_t                   pg_retry_ms; /* backoff after a lost link */
    int64_t                   pg_busy_ms;  /* after a lock or statement
                                              timeout; 0 after a commit */
    int                       pg_busy;     /* sleep it before the next
                                              transaction */
    uint64_t                  pg_statements;  /* names given */

    /* SQLite */
    sqlite3                  *db;
    sqlite3_stmt             *stmt_begin;
    sqlite3_stmt             *stmt_commit;
    sqlite3_stmt             *stmt_rollback;
    sqlite3_stmt             *stmt_last_seq;
    sqlite3_stmt             *stmt_applied;
    sqlite3_stmt             *stmt_total;
    sqlite3_stmt             *stmt_bucket;
    sqlite3_stmt             *stmt_expire;
    sqlite3_stmt             *stmt_prune;
    sqlite3_stmt             *stmt_idem;
    sqlite3_stmt             *stmt_idem_prune;
    sqlite3_stmt             *stmt_dead;
    sqlite3_stmt             *stmt_dead_forget;
    sqlite3_stmt             *stmt_dead_gap;
    sqlite3_stmt             *stmt_dead_prune;
    int                       sqlite_overflow;  /* the checked add refused */
    ingest_table_t            tables[INGEST_MAX_TABLES];  /* checked */
    size_t                    ntables;
    int64_t                   pruned_ms;   /* when applied was last pruned */

    /* why the store refused the last batch it refused */
    char                      refusal[512];

    /* what was done, for the log */
    uint64_t                  batches;
    uint64_t                  skipped;
    uint64_t                  keys;
    uint64_t                  bucket_rows; /* bucket upserts */
    uint64_t                  expired;     /* buckets --retain removed */
    uint64_t                  repeats;     /* idempotent requests skipped */
    uint64_t                  refused;     /* moved to the dead-letter list */

    /* the heartbeat, "<list>:heartbeat" in Redis, every second */
    int64_t                   heartbeat_ms;   /* when it was last sent */
    int64_t                   last_commit_ms;
    int64_t                   lag_ms;      /* commit - oldest batch's ts */
};


extern volatile sig_atomic_t  ingest_quit;


void ingest_log(int level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int64_t ingest_now_ms(void);
void ingest_sleep_ms(long ms);
int ingest_refuse(ingest_consumer_t *ic, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int ingest_table_entry(ingest_consumer_t *ic, ingest_wire_batch_t *batch,
    const char *const *types, ingest_table_t **found);
int ingest_table_conflict(ingest_consumer_t *ic, ingest_wire_batch_t *batch);

int ingest_queue_connect(ingest_consumer_t *ic);
void ingest_queue_disconnect(ingest_consumer_t *ic);
int ingest_queue_lock(ingest_consumer_t *ic);
int ingest_queue_renew(ingest_consumer_t *ic);
void ingest_queue_unlock(ingest_consumer_t *ic);
redisReply *ingest_queue_read(ingest_consumer_t *ic);
int ingest_queue_trim(ingest_consumer_t *ic, size_t n);
int ingest_queue_bury(ingest_consumer_t *ic, redisReply *element,
    const char *header);
int ingest_queue_requeue(ingest_consumer_t *ic, size_t max, size_t *moved);
void ingest_queue_heartbeat(ingest_consumer_t *ic);

extern const ingest_store_t  ingest_sqlite_store;
extern const ingest_store_t  ingest_pg_store;


#endif /* _INGEST_CONSUMER_H_INCLUDED_ */
