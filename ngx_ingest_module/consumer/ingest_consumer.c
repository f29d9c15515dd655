
/*
 * Copyright (C) ngx_ingest developers
 *
 * NAME
 *     ingest-consumer - drain one ngx_ingest Redis list into SQLite or
 *     PostgreSQL, exactly once
 *
 * SYNOPSIS
 *     ingest-consumer --db FILE|URI [--redis ADDR] [--queue LIST]
 *                     [--window N] [--poll MS] [--lock-ttl MS]
 *                     [--prune-days N] [--idempotency-window S]
 *                     [--verbose] [--help]
 *
 * DESCRIPTION
 *     Each round reads up to N batches from the head of LIST (LRANGE),
 *     applies in ONE database transaction every batch whose seq is above the
 *     last_seq recorded for its producer (totals upserted with checked
 *     addition; the new last_seq recorded in the table "applied"), commits,
 *     and only then trims what it read.  A crash at any point re-reads at
 *     most one window and skips what was already applied.
 *
 *     Only one consumer drains a list: it holds the Redis key
 *     "LIST:consumer" with a TTL it renews every round, and trims only
 *     while it still holds it.  A second consumer waits, saying who holds
 *     the list.
 *
 *     Redis answering with an error (LOADING, NOAUTH, MISCONF, ...) is
 *     logged once per state and tried again with a backoff (100 ms
 *     doubling to 5 s).  Its writes are Lua scripts flagged allow-oom, so
 *     that a Redis full under maxmemory noeviction is drained.
 *
 *     Every second it sets "LIST:heartbeat" (a 10 s TTL) to what it has
 *     applied, its last commit and its lag (commit time minus the oldest
 *     batch's ts in the round), for nginx's status endpoint.
 *
 *     Requests that came with an Idempotency-Key travel apart in a batch
 *     (version 2); each is applied only if its key was not applied on
 *     this list within the window, recorded in the table "idempotency"
 *     in the same transaction.
 *
 *     A batch it cannot read, of an unknown version or kind, or whose sum
 *     would overflow a total, stops it with an error; the batch is left in
 *     Redis, never dropped.  SIGTERM and SIGINT finish the round in
 *     progress, give the lock back and exit.
 *
 * OPTIONS
 *     --db FILE|URI     the SQLite database, created if missing, or a
 *                       PostgreSQL URI, postgresql://... (required)
 *     --redis ADDR      HOST:PORT or unix:PATH (default 127.0.0.1:6379)
 *     --queue LIST      the list to drain (default ingest:counters)
 *     --window N        batches read and applied per round (default 100)
 *     --poll MS         wait when the list is empty (default 100)
 *     --lock-ttl MS     TTL of the consumer lock (default 10000)
 *     --prune-days N    forget producers idle for N days (default 30)
 *     --idempotency-window S
 *                       remember Idempotency-Keys S seconds (default 86400)
 *     --verbose         log every round
 *     --help            print this text
 *
 * EXIT STATUS
 *     0  stopped by SIGTERM or SIGINT
 *     1  bad options, or the database cannot be opened
 *     2  stopped by a batch it cannot apply, or by a database error
 */


#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ingest_consumer.h"
#include "ingest_cluster.h"


volatile sig_atomic_t  ingest_quit;


static const char  ingest_usage[] =
    "usage: ingest-consumer --db FILE|URI [--redis ADDR] [--queue LIST]\n"
    "                       [--window N] [--poll MS] [--lock-ttl MS]\n"
    "                       [--prune-days N] [--idempotency-window S]\n"
    "                       [--verbose] [--help]\n"
    "\n"
    "Drains one ngx_ingest Redis list into SQLite or PostgreSQL, exactly "
    "once.\n"
    "\n"
    "  --db FILE|URI     the SQLite database, created if missing, or a\n"
    "                    PostgreSQL URI, postgresql://... (required)\n"
    "  --redis ADDR      HOST:PORT or unix:PATH (default 127.0.0.1:6379)\n"
    "  --queue LIST      the list to drain (default ingest:counters)\n"
    "  --window N        batches read and applied per round (default 100)\n"
    "  --poll MS         wait when the list is empty (default 100)\n"
    "  --lock-ttl MS     TTL of the consumer lock (default 10000)\n"
    "  --prune-days N    forget producers idle for N days (default 30)\n"
    "  --idempotency-window S\n"
    "                    remember Idempotency-Keys S seconds (default 86400)\n"
    "  --verbose         log every round\n"
    "  --help            print this text\n"
    "\n"
    "Exit status: 0 stopped by SIGTERM/SIGINT, 1 usage or configuration,\n"
    "2 a batch or the database stopped it (the batch stays in Redis).\n";


static int ingest_options(ingest_consumer_t *ic, int argc, char **argv);
static int ingest_options_cluster(ingest_consumer_t *ic);
static int ingest_number(const char *name, const char *text, long min,
    long max, long *out);
static int ingest_run(ingest_consumer_t *ic);
static int ingest_round(ingest_consumer_t *ic);
static void ingest_signal(int signo);


int
main(int argc, char **argv)
{
    int                 rc, tagged;
    char                host[200];
    ingest_consumer_t   ic;
    struct sigaction    sa;
    struct timespec     ts;

    memset(&ic, 0, sizeof(ingest_consumer_t));

    rc = ingest_options(&ic, argc, argv);
    if (rc >= 0) {
        return rc;
    }

    /* no SA_RESTART: a signal cuts a sleep short */

    memset(&sa, 0, sizeof(struct sigaction));
    sa.sa_handler = ingest_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);

    if (gethostname(host, sizeof(host)) != 0) {
        strcpy(host, "localhost");
    }

    host[sizeof(host) - 1] = '\0';

    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(ic.owner, sizeof(ic.owner), "%s/%ld/%lld", host, (long) getpid(),
             (long long) ts.tv_sec * 1000000000 + ts.tv_nsec);

    /*
     * The lock and the heartbeat beside the list; in a cluster, in the
     * list's slot (the trim script uses list and lock together, and nginx
     * reads the heartbeat there).
     */

    tagged = ingest_cluster_tagged((const unsigned char *) ic.queue,
                                   strlen(ic.queue));
    snprintf(ic.lock_key, sizeof(ic.lock_key),
             ic.cluster && !tagged ? "{%s}:consumer" : "%s:consumer",
             ic.queue);
    snprintf(ic.heartbeat_key, sizeof(ic.heartbeat_key),
             ic.cluster && !tagged ? "{%s}:heartbeat" : "%s:heartbeat",
             ic.queue);

    ic.store = (strncmp(ic.db_path, "postgresql://", 13) == 0
                || strncmp(ic.db_path, "postgres://", 11) == 0)
               ? &ingest_pg_store : &ingest_sqlite_store;

    if (ic.store->open(&ic) != 0) {
        ic.store->close(&ic);
        return INGEST_EXIT_USAGE;
    }

    rc = ingest_run(&ic);

    ingest_queue_unlock(&ic);
    ingest_queue_disconnect(&ic);
    ic.store->close(&ic);

    ingest_log(INGEST_LOG_NOTICE, "stopped: %llu batches applied, "
               "%llu skipped as already applied, %llu keys, "
               "%llu repeated requests skipped",
               (unsigned long long) ic.batches,
               (unsigned long long) ic.skipped,
               (unsigned long long) ic.keys,
               (unsigned long long) ic.repeats);

    return rc;
}


/* -1: go on; otherwise the exit status */

static int
ingest_options(ingest_consumer_t *ic, int argc, char **argv)
{
    int          ch;
    const char  *p;

    static const struct option  options[] = {
        { "redis",      required_argument, NULL, 'r' },
        { "queue",      required_argument, NULL, 'q' },
        { "db",         required_argument, NULL, 'd' },
        { "window",     required_argument, NULL, 'w' },
        { "poll",       required_argument, NULL, 'p' },
        { "lock-ttl",   required_argument, NULL, 'l' },
        { "prune-days", required_argument, NULL, 'P' },
        { "idempotency-window", required_argument, NULL, 'I' },
        { "verbose",    no_argument,       NULL, 'v' },
        { "help",       no_argument,       NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };

    ic->redis = "127.0.0.1:6379";
    ic->queue = INGEST_WIRE_COUNTERS_QUEUE;
    ic->window = 100;
    ic->poll_ms = 100;
    ic->lock_ttl_ms = 10000;
    ic->prune_days = 30;
    ic->idem_window = 86400;

    while ((ch = getopt_long(argc, argv, "", options, NULL)) != -1) {
        switch (ch) {
        case 'r':
            ic->redis = optarg;
            break;
        case 'q':
            ic->queue = optarg;
            break;
        case 'd':
            ic->db_path = optarg;
            break;
        case 'w':
            if (ingest_number("--window", optarg, 1, 100000, &ic->window)) {
                return INGEST_EXIT_USAGE;
            }
            break;
        case 'p':
            if (ingest_number("--poll", optarg, 1, 60000, &ic->poll_ms)) {
                return INGEST_EXIT_USAGE;
            }
            break;
        case 'l':
            if (ingest_number("--lock-ttl", optarg, 1000, 3600000,
                              &ic->lock_ttl_ms))
            {
                return INGEST_EXIT_USAGE;
            }
            break;
        case 'P':
            if (ingest_number("--prune-days", optarg, 1, 36500,
                              &ic->prune_days))
            {
                return INGEST_EXIT_USAGE;
            }
            break;
        case 'I':
            if (ingest_number("--idempotency-window", optarg, 1,
                              365L * 86400, &ic->idem_window))
            {
                return INGEST_EXIT_USAGE;
            }
            break;
        case 'v':
            ic->verbose = 1;
            break;
        case 'h':
            fputs(ingest_usage, stdout);
            return INGEST_EXIT_OK;
        default:
            fputs(ingest_usage, stderr);
            return INGEST_EXIT_USAGE;
        }
    }

    if (optind < argc) {
        fprintf(stderr, "ingest-consumer: unexpected argument \"%s\"\n",
                argv[optind]);
        return INGEST_EXIT_USAGE;
    }

    if (ic->db_path == NULL) {
        fprintf(stderr, "ingest-consumer: --db is required\n\n%s",
                ingest_usage);
        return INGEST_EXIT_USAGE;
    }

    if (ic->queue[0] == '\0' || strlen(ic->queue) > 400) {
        fprintf(stderr, "ingest-consumer: invalid --queue\n");
        return INGEST_EXIT_USAGE;
    }

    if (strncmp(ic->redis, "cluster:", 8) == 0) {
        return ingest_options_cluster(ic);
    }

    if (strncmp(ic->redis, "unix:", 5) == 0) {
        p = ic->redis + 5;

        if (*p == '\0' || strlen(p) >= sizeof(ic->redis_host)) {
            fprintf(stderr, "ingest-consumer: invalid --redis \"%s\"\n",
                    ic->redis);
            return INGEST_EXIT_USAGE;
        }

        strcpy(ic->redis_host, p);
        ic->redis_port = 0;

        return -1;
    }

    if (ingest_queue_address(ic->redis, ic->redis_host,
                             sizeof(ic->redis_host), &ic->redis_port)
        != 0)
    {
        fprintf(stderr, "ingest-consumer: invalid --redis \"%s\", "
                "expected HOST:PORT, unix:PATH or cluster:HOST:PORT,...\n",
                ic->redis);
        return INGEST_EXIT_USAGE;
    }

    return -1;
}


/* --redis cluster:HOST:PORT,HOST:PORT,...: the seeds */

static int
ingest_options_cluster(ingest_consumer_t *ic)
{
    char         seed[300];
    size_t       len;
    const char  *p, *comma;

    ic->cluster = 1;

    for (p = ic->redis + 8; *p; p = comma + (*comma == ',')) {
        comma = strchr(p, ',');
        if (comma == NULL) {
            comma = p + strlen(p);
        }

        len = comma - p;

        if (len == 0 || len >= sizeof(seed) || ic->nseeds == INGEST_MAX_SEEDS)
        {
            goto invalid;
        }

        memcpy(seed, p, len);
        seed[len] = '\0';

        if (ingest_queue_address(seed, ic->seeds[ic->nseeds],
                                 sizeof(ic->seeds[0]),
                                 &ic->seed_ports[ic->nseeds])
            != 0)
        {
            goto invalid;
        }

        ic->nseeds++;
    }

    if (ic->nseeds == 0) {
        fprintf(stderr, "ingest-consumer: --redis cluster: needs an "
                "address\n");
        return INGEST_EXIT_USAGE;
    }

    return -1;

invalid:

    fprintf(stderr, "ingest-consumer: invalid --redis \"%s\", expected "
            "cluster:HOST:PORT,HOST:PORT,... (up to %d)\n", ic->redis,
            INGEST_MAX_SEEDS);
    return INGEST_EXIT_USAGE;
}


static int
ingest_number(const char *name, const char *text, long min, long max,
    long *out)
{
    char  *end;
    long   n;

    errno = 0;
    n = strtol(text, &end, 10);

    if (errno || end == text || *end != '\0' || n < min || n > max) {
        fprintf(stderr, "ingest-consumer: %s must be a number from %ld "
                "to %ld, not \"%s\"\n", name, min, max, text);
        return -1;
    }

    *out = n;

    return 0;
}


/*
 * Rounds until a signal.  Redis unreachable, or answering with errors
 * (LOADING, NOAUTH, ...), is tried again after a backoff: 100 ms doubling
 * to 5 s, back to 100 ms once a round goes through.
 */

static int
ingest_run(ingest_consumer_t *ic)
{
    int      rc, waiting;
    long     backoff;

    waiting = 0;
    backoff = 100;

    while (!ingest_quit) {

        if (ic->redis_ctx == NULL && ingest_queue_connect(ic) != 0) {
            ingest_sleep_ms(backoff);
            backoff = backoff * 2 > INGEST_REDIS_BACKOFF_MAX_MS
                      ? INGEST_REDIS_BACKOFF_MAX_MS : backoff * 2;
            continue;
        }

        if (!ic->locked) {
            rc = ingest_queue_lock(ic);

            if (rc == 1) {
                if (!waiting) {
                    waiting = 1;
                    ingest_log(INGEST_LOG_WARN, "\"%s\" is drained by another "
                               "consumer (Redis key \"%s\"); waiting for it "
                               "to stop", ic->queue, ic->lock_key);
                }

                ingest_sleep_ms(1000);
                continue;
            }

            if (rc == 0) {
                waiting = 0;
            }

        } else {
            rc = ingest_round(ic);

            if (rc == INGEST_EXIT_RUNTIME) {
                return INGEST_EXIT_RUNTIME;
            }
        }

        if (ic->redis_refused) {
            ic->redis_refused = 0;

            ingest_sleep_ms(backoff);
            backoff = backoff * 2 > INGEST_REDIS_BACKOFF_MAX_MS
                      ? INGEST_REDIS_BACKOFF_MAX_MS : backoff * 2;
            continue;
        }

        if (ic->redis_ctx != NULL) {
            backoff = 100;
        }
    }

    return INGEST_EXIT_OK;
}


/*
 * One round: read a window, apply it in one transaction, commit, trim.
 * 0 on success or a Redis hiccup (retried), INGEST_EXIT_RUNTIME to stop.
 */

static int
ingest_round(ingest_consumer_t *ic)
{
    int                   skipped, rc;
    char                  err[256];
    size_t                i, applied, skips;
    int64_t               now, oldest;
    redisReply           *reply, *e;
    ingest_wire_batch_t   batch;

    now = ingest_now_ms();

    if (now - ic->lock_renewed_ms > ic->lock_ttl_ms / 3) {
        rc = ingest_queue_renew(ic);

        if (rc == -2) {
            ingest_log(INGEST_LOG_ERR, "lost the lock of \"%s\"; taking it "
                       "again", ic->queue);
        }

        if (rc != 0) {
            return 0;
        }
    }

    if (now - ic->pruned_ms > 3600 * 1000) {
        ic->pruned_ms = now;

        rc = ic->store->prune(ic);

        if (rc == INGEST_STORE_AGAIN) {
            ic->pruned_ms = 0;
            return 0;
        }

        if (rc != 0) {
            return INGEST_EXIT_RUNTIME;
        }
    }

    ingest_queue_heartbeat(ic);

    reply = ingest_queue_read(ic);
    if (reply == NULL) {
        return 0;
    }

    if (reply->elements == 0) {
        /* caught up */
        ic->lag_ms = 0;
        freeReplyObject(reply);
        ingest_sleep_ms(ic->poll_ms);
        return 0;
    }

    rc = ic->store->begin(ic);

    if (rc != 0) {
        freeReplyObject(reply);
        return (rc == INGEST_STORE_AGAIN) ? 0 : INGEST_EXIT_RUNTIME;
    }

    applied = 0;
    skips = 0;
    oldest = INT64_MAX;

    for (i = 0; i < reply->elements; i++) {
        e = reply->element[i];

        if (e->type != REDIS_REPLY_STRING) {
            ingest_log(INGEST_LOG_ERR, "element %zu of \"%s\" is not a "
                       "string; left in Redis", i, ic->queue);
            goto failed;
        }

        rc = ingest_wire_decode(e->str, e->len, &batch, err, sizeof(err));

        if (rc != INGEST_WIRE_OK) {
            ingest_log(INGEST_LOG_ERR, "batch %zu of \"%s\" cannot be read: "
                       "%s; it is left in Redis", i, ic->queue,
                       rc == INGEST_WIRE_NOMEM ? "out of memory" : err);
            goto failed;
        }

        rc = ic->store->apply(ic, &batch, &skipped);

        if (rc == INGEST_STORE_AGAIN) {
            ingest_wire_batch_free(&batch);
            goto again;
        }

        if (rc != 0) {
            ingest_log(INGEST_LOG_ERR, "batch %zu of \"%s\" (producer "
                       "\"%s\", seq %llu) cannot be applied; it is left in "
                       "Redis", i, ic->queue, batch.producer,
                       (unsigned long long) batch.seq);
            ingest_wire_batch_free(&batch);
            goto failed;
        }

        if (skipped) {
            skips++;

        } else {
            applied++;

            if (batch.ts < oldest) {
                oldest = batch.ts;
            }
        }

        ingest_wire_batch_free(&batch);
    }

    rc = ic->store->commit(ic);

    if (rc == INGEST_STORE_AGAIN) {
        /* committed or not: read again, what was applied is skipped */
        goto again;
    }

    if (rc != 0) {
        goto failed;
    }

    ic->batches += applied;
    ic->skipped += skips;
    ic->last_commit_ms = ingest_now_ms();

    if (applied) {
        ic->lag_ms = ic->last_commit_ms > oldest
                     ? ic->last_commit_ms - oldest : 0;
    }

    if (ic->verbose || skips) {
        ingest_log(skips ? INGEST_LOG_NOTICE : INGEST_LOG_INFO,
                   "applied %zu batches of \"%s\", skipped %zu already "
                   "applied", applied, ic->queue, skips);
    }

    rc = ingest_queue_trim(ic, reply->elements);

    freeReplyObject(reply);

    if (rc == -2) {
        /* committed, so nothing is lost: the next owner skips them */
        ingest_log(INGEST_LOG_ERR, "lost the lock of \"%s\" before the trim; "
                   "taking it again", ic->queue);
    }

    return 0;

again:

    ic->store->rollback(ic);
    freeReplyObject(reply);

    return 0;

failed:

    ic->store->rollback(ic);
    freeReplyObject(reply);

    return INGEST_EXIT_RUNTIME;
}


/*
 * The records table of batch for this connection: 1 and *found if it
 * was checked already; 0 and *found a fresh entry holding the batch's
 * columns, which the store checks against the database and keeps with
 * ic->ntables++; -1 (logged) if the batch's columns differ from the
 * checked table's, or there are too many tables.  Types compare as the
 * store names them (SQLite stores ints and bools alike).
 */

int
ingest_table_entry(ingest_consumer_t *ic, ingest_wire_batch_t *batch,
    const char *const *types, ingest_table_t **found)
{
    size_t           i, n;
    ingest_table_t  *t;

    for (i = 0; i < ic->ntables; i++) {
        t = &ic->tables[i];

        if (strcmp(t->name, batch->table) != 0) {
            continue;
        }

        if (t->ncolumns != batch->ncolumns) {
            ingest_table_conflict(batch);
            return -1;
        }

        for (n = 0; n < t->ncolumns; n++) {
            if (strcmp(t->columns[n], batch->columns[n]) != 0
                || types[t->types[n]] != types[batch->types[n]])
            {
                ingest_table_conflict(batch);
                return -1;
            }
        }

        *found = t;
        return 1;
    }

    if (ic->ntables == INGEST_MAX_TABLES) {
        ingest_log(INGEST_LOG_ERR, "more than %d record tables",
                   INGEST_MAX_TABLES);
        return -1;
    }

    t = &ic->tables[ic->ntables];
    memset(t, 0, sizeof(ingest_table_t));
    strcpy(t->name, batch->table);
    t->ncolumns = batch->ncolumns;
    memcpy(t->columns, batch->columns, sizeof(t->columns));
    memcpy(t->types, batch->types, sizeof(t->types));

    *found = t;
    return 0;
}


void
ingest_table_conflict(ingest_wire_batch_t *batch)
{
    ingest_log(INGEST_LOG_ERR, "the columns of a batch for table \"%s\" "
               "differ from the table's", batch->table);
}


static void
ingest_signal(int signo)
{
    (void) signo;

    ingest_quit = 1;
}


void
ingest_log(int level, const char *fmt, ...)
{
    char              buf[32];
    va_list           args;
    struct tm         tm;
    struct timespec   ts;

    static const char  *levels[] = { "error", "warn", "notice", "info" };

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);

    fprintf(stderr, "%s.%03ld [%s] ingest-consumer: ", buf,
            ts.tv_nsec / 1000000, levels[level]);

    va_start(args, fmt);
    vfprintf(stderr, fmt, args);
    va_end(args);

    fputc('\n', stderr);
}


int64_t
ingest_now_ms(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_REALTIME, &ts);

    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}


/* returns early on a signal, so that SIGTERM is seen at once */

void
ingest_sleep_ms(long ms)
{
    struct timespec  ts;

    if (ingest_quit) {
        return;
    }

    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (ms % 1000) * 1000000;

    (void) nanosleep(&ts, NULL);
}
