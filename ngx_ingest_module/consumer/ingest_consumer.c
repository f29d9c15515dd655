
/*
 * Copyright (C) ngx_ingest developers
 * SPDX-License-Identifier: BSD-2-Clause
 *
 * NAME
 *     ingest-consumer - drain one ngx_ingest Redis list into SQLite or
 *     PostgreSQL, exactly once
 *
 * SYNOPSIS
 *     ingest-consumer --db FILE|URI [--redis ADDR] [--password-file PATH]
 *                     [--queue LIST] [--window N] [--poll MS] [--lock-ttl MS]
 *                     [--prune-days N] [--idempotency-window S]
 *                     [--verbose] [--help] [--version]
 *     ingest-consumer --requeue-dead [--redis ADDR] [--password-file PATH]
 *                     [--queue LIST]
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
 *     Every connection it opens to Redis (in a cluster, to any node) is
 *     logged in first: AUTH [user] password when it has a password, then
 *     SELECT when the db is not 0.
 *
 *     Redis answering with an error (LOADING, NOAUTH, WRONGPASS, NOPERM,
 *     MISCONF, ...) is logged once per state and tried again with a
 *     backoff (100 ms doubling to 5 s).  Its writes are Lua scripts
 *     flagged allow-oom, so that a Redis full under maxmemory noeviction
 *     is drained.
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
 *     A batch the database refuses (it cannot be read, names a producer
 *     that is not UTF-8, is of an unknown version or kind, would overflow
 *     a total, has columns that conflict with its table, a value the
 *     database rejects, or breaks a constraint or a trigger) is moved,
 *     unchanged, to the tail of "LIST:dead" behind a header line that
 *     says why, in one script under the lock, and logged at alert; the
 *     batches before and after it are applied.  A batch moved there does
 *     not count as applied: its producer and seq are recorded in the
 *     table "dead_batches" first, and a copy of it that comes back
 *     (requeued) is applied once, whatever its producer's last_seq.  A
 *     record the database refuses does not keep the batch in the list:
 *     it is moved unrecorded, logged at error.  A refusal at COMMIT (a
 *     deferred constraint) names no batch: the round is then applied one
 *     batch per transaction, which commits the others once and finds the
 *     one refused.
 *
 *     A lost connection, a deadlock, a busy database, or PostgreSQL's
 *     lock_timeout or statement_timeout (read again after a backoff) is
 *     never a refusal: the round is read again.
 *
 *     --requeue-dead moves the batches in "LIST:dead" when it starts back
 *     to the tail of LIST, unchanged, and exits; the consumer, running or
 *     not, applies them once the cause of their refusal is fixed (or
 *     refuses them again).
 *
 *     SIGTERM and SIGINT finish the round in progress, give the lock back
 *     and exit.
 *
 *     It logs to stderr, a line each: "TIME [LEVEL] ingest-consumer: ...".
 *     When stderr is the journal (systemd's JOURNAL_STREAM names its
 *     device and inode), each line starts with its sd-daemon(3) priority
 *     instead of the time: <1> alert, <3> error, <4> warn, <5> notice,
 *     <6> info; a usage error is <3>, the usage after it <6>.
 *
 * OPTIONS
 *     --db FILE|URI     the SQLite database, created if missing, or a
 *                       PostgreSQL URI, postgresql://... (required)
 *     --redis ADDR      redis://[USER[:PASSWORD]@]HOST[:PORT][/DB]
 *                       (HOST may be [V6]; USER and PASSWORD
 *                       percent-decoded), unix://[USER[:PASSWORD]@]/PATH
 *                       [?db=N], HOST:PORT, [V6]:PORT, unix:PATH, or
 *                       cluster:SEED,SEED,... (HOST:PORT or redis://,
 *                       db 0); default 127.0.0.1:6379.  A password typed
 *                       here is overwritten in argv once read.
 *     --password-file PATH
 *                       the Redis password: the file's first line, as
 *                       nginx reads password_file=, without its "\n" or
 *                       "\r\n"; the user, if any, is the URL's.
 *                       Without a password in the URL or this, the
 *                       password is REDISCLI_AUTH's, as for redis-cli.
 *     --queue LIST      the list to drain (default ingest:counters)
 *     --window N        batches read and applied per round (default 100)
 *     --poll MS         wait when the list is empty (default 100)
 *     --lock-ttl MS     TTL of the consumer lock (default 10000)
 *     --prune-days N    forget producers idle for N days (default 30)
 *     --idempotency-window S
 *                       remember Idempotency-Keys S seconds (default 86400)
 *     --retain RES=TIME[,RES=TIME...]
 *                       keep the buckets of resolution RES (1s to 1d) for
 *                       TIME (1s to 36500d; units s, m, h, d) after they
 *                       end; older ones go, 1000 per resolution a second
 *                       at most, each step a short statement of its own.
 *                       Without it, buckets are kept for ever.
 *     --verbose         log every round
 *     --requeue-dead    move LIST:dead back to LIST, then exit
 *     --help            print this text
 *     --version         print "ingest-consumer VERSION" (the file VERSION
 *                       of the source tree, the module's too)
 *
 * EXIT STATUS
 *     0  stopped by SIGTERM or SIGINT; --requeue-dead done
 *     1  bad options, or the database cannot be opened
 *     2  the database failed in a way that is neither passing nor a
 *        batch's fault (I/O error, disk full, corrupt or read-only file,
 *        permission denied, a table gone, ...; see ingest_pg.c for
 *        PostgreSQL's SQLSTATEs), or out of memory: the round stays in
 *        Redis.  --requeue-dead: Redis failed, or an element of LIST:dead
 *        is no dead batch (it stays there, with what is behind it)
 */


#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ingest_consumer.h"
#include "ingest_cluster.h"


volatile sig_atomic_t  ingest_quit;


/*
 * stderr is the journal's stream: each line gets its sd-daemon priority
 * ("<3>"), which journald takes off and keeps as the entry's priority, so
 * that journalctl -p err shows the errors; the journal has the time.
 */

static int  ingest_journal;

/* by INGEST_LOG_*: error, warn, notice, info, alert */
static const char  *ingest_levels[] = { "error", "warn", "notice", "info",
                                        "alert" };
static const int    ingest_priorities[] = { 3, 4, 5, 6, 1 };

/* buckets --retain removes per resolution and statement */
#define INGEST_EXPIRE_STEP    1000

#define INGEST_PRIORITY_ERR   3
#define INGEST_PRIORITY_INFO  6


static const char  ingest_usage[] =
    "usage: ingest-consumer --db FILE|URI [--redis ADDR] [--queue LIST]\n"
    "                       [--password-file PATH] [--window N] [--poll MS]\n"
    "                       [--lock-ttl MS] [--prune-days N]\n"
    "                       [--idempotency-window S] [--retain RES=TIME,...]\n"
    "                       [--verbose] [--help] [--version]\n"
    "       ingest-consumer --requeue-dead [--redis ADDR] [--queue LIST]\n"
    "                       [--password-file PATH]\n"
    "\n"
    "Drains one ngx_ingest Redis list into SQLite or PostgreSQL, exactly "
    "once.\n"
    "\n"
    "  --db FILE|URI     the SQLite database, created if missing, or a\n"
    "                    PostgreSQL URI, postgresql://... (required)\n"
    "  --redis ADDR      redis://[USER[:PASSWORD]@]HOST[:PORT][/DB],\n"
    "                    unix://[USER[:PASSWORD]@]/PATH[?db=N], HOST:PORT,\n"
    "                    [V6]:PORT, unix:PATH or cluster:SEED,SEED,...\n"
    "                    (default 127.0.0.1:6379)\n"
    "  --password-file PATH\n"
    "                    the Redis password (the file's first line),\n"
    "                    if --redis has none; with neither,\n"
    "                    REDISCLI_AUTH\n"
    "  --queue LIST      the list to drain (default ingest:counters)\n"
    "  --window N        batches read and applied per round (default 100)\n"
    "  --poll MS         wait when the list is empty (default 100)\n"
    "  --lock-ttl MS     TTL of the consumer lock (default 10000)\n"
    "  --prune-days N    forget producers idle for N days (default 30)\n"
    "  --idempotency-window S\n"
    "                    remember Idempotency-Keys S seconds (default 86400)\n"
    "  --retain RES=TIME,...\n"
    "                    keep buckets of resolution RES (1s to 1d) for TIME\n"
    "                    after they end (units s, m, h, d), e.g.\n"
    "                    1m=2d,1h=90d; without it they are kept for ever\n"
    "  --verbose         log every round\n"
    "  --requeue-dead    move the batches of LIST:dead back to the tail of\n"
    "                    LIST, then exit\n"
    "  --help            print this text\n"
    "  --version         print the version\n"
    "\n"
    "A batch the database refuses goes to LIST:dead, with the reason.\n"
    "\n"
    "Exit status: 0 stopped by SIGTERM/SIGINT, 1 usage or configuration,\n"
    "2 the database failed (the round stays in Redis), or out of memory.\n";


static int ingest_options(ingest_consumer_t *ic, int argc, char **argv);
static int ingest_options_redis(ingest_consumer_t *ic, char *text);
static void ingest_redis_scrub(char *text);
static int ingest_options_password(ingest_consumer_t *ic, const char *file);
static int ingest_password_file(const char *path, char *out, size_t size);
static int ingest_retain(ingest_consumer_t *ic, const char *text);
static int ingest_number(const char *name, const char *text, long min,
    long max, long *out);
static int ingest_run(ingest_consumer_t *ic);
static int ingest_round(ingest_consumer_t *ic);
static int ingest_round_apply(ingest_consumer_t *ic, redisReply *reply,
    size_t first, size_t n, size_t *refused);
static int ingest_round_single(ingest_consumer_t *ic, redisReply *reply,
    size_t n);
static int ingest_round_bury(ingest_consumer_t *ic, redisReply *element);
static int ingest_requeue(ingest_consumer_t *ic);
static char *ingest_append(char *p, char *end, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static char *ingest_json_string(char *p, char *end, const char *s,
    size_t len);
static void ingest_signal(int signo);
static int ingest_journal_stderr(void);
static void ingest_journal_write(int priority, const char *head,
    const char *text);
static void ingest_option_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
static void ingest_usage_error(void);


int
main(int argc, char **argv)
{
    int                 rc, tagged;
    char                host[200];
    ingest_consumer_t   ic;
    struct sigaction    sa;
    struct timespec     ts;

    memset(&ic, 0, sizeof(ingest_consumer_t));

    ingest_journal = ingest_journal_stderr();

    rc = ingest_options(&ic, argc, argv);
    if (rc >= 0) {
        return rc;
    }

    /* which build wrote what follows, for whoever reads the log later */
    ingest_log(INGEST_LOG_NOTICE, "version %s", INGEST_VERSION);

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
    snprintf(ic.dead_key, sizeof(ic.dead_key),
             ic.cluster && !tagged ? "{%s}:dead" : "%s:dead", ic.queue);

    if (ic.requeue_dead) {
        rc = ingest_requeue(&ic);
        ingest_queue_disconnect(&ic);
        return rc;
    }

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
               "%llu repeated requests skipped, %llu refused (moved to "
               "\"%s\")",
               (unsigned long long) ic.batches,
               (unsigned long long) ic.skipped,
               (unsigned long long) ic.keys,
               (unsigned long long) ic.repeats,
               (unsigned long long) ic.refused, ic.dead_key);

    return rc;
}


/* -1: go on; otherwise the exit status */

static int
ingest_options(ingest_consumer_t *ic, int argc, char **argv)
{
    int          ch, rc;
    char        *redis;
    const char  *password_file;

    static const struct option  options[] = {
        { "redis",      required_argument, NULL, 'r' },
        { "queue",      required_argument, NULL, 'q' },
        { "db",         required_argument, NULL, 'd' },
        { "window",     required_argument, NULL, 'w' },
        { "poll",       required_argument, NULL, 'p' },
        { "lock-ttl",   required_argument, NULL, 'l' },
        { "prune-days", required_argument, NULL, 'P' },
        { "idempotency-window", required_argument, NULL, 'I' },
        { "retain",     required_argument, NULL, 'T' },
        { "verbose",    no_argument,       NULL, 'v' },
        { "requeue-dead", no_argument,     NULL, 'R' },
        { "password-file", required_argument, NULL, 'W' },
        { "help",       no_argument,       NULL, 'h' },
        { "version",    no_argument,       NULL, 'V' },
        { NULL, 0, NULL, 0 }
    };

    redis = NULL;
    password_file = NULL;
    ic->queue = INGEST_WIRE_COUNTERS_QUEUE;
    ic->window = 100;
    ic->poll_ms = 100;
    ic->lock_ttl_ms = 10000;
    ic->prune_days = 30;
    ic->idem_window = 86400;

    /*
     * For the journal, the option errors are ours, with a priority;
     * otherwise getopt's own, as they always were (a leading ':' in the
     * option string silences getopt and tells a missing argument apart).
     */

    opterr = !ingest_journal;

    while ((ch = getopt_long(argc, argv, ingest_journal ? ":" : "", options,
                             NULL))
           != -1)
    {
        switch (ch) {
        case 'r':
            if (redis != NULL) {
                /* the last --redis is read; an earlier one, only wiped */
                ingest_redis_scrub(redis);
            }

            redis = optarg;
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
        case 'T':
            if (ingest_retain(ic, optarg) != 0) {
                return INGEST_EXIT_USAGE;
            }
            break;
        case 'v':
            ic->verbose = 1;
            break;
        case 'R':
            ic->requeue_dead = 1;
            break;
        case 'W':
            password_file = optarg;
            break;
        case 'h':
        case 'V':
            /* a full disk or a closed pipe is no success */
            if ((ch == 'h' ? fputs(ingest_usage, stdout)
                           : printf("ingest-consumer %s\n", INGEST_VERSION))
                < 0
                || fflush(stdout) != 0)
            {
                return INGEST_EXIT_USAGE;
            }
            return INGEST_EXIT_OK;
        case ':':
            ingest_option_error("option \"%s\" needs an argument",
                                argv[optind - 1]);
            ingest_usage_error();
            return INGEST_EXIT_USAGE;
        default:
            if (ingest_journal) {
                ingest_option_error("unrecognized option \"%s\"",
                                    argv[optind - 1]);
            }
            ingest_usage_error();
            return INGEST_EXIT_USAGE;
        }
    }

    if (optind < argc) {
        ingest_option_error("unexpected argument \"%s\"", argv[optind]);
        return INGEST_EXIT_USAGE;
    }

    if (ic->db_path == NULL && !ic->requeue_dead) {
        ingest_option_error("--db is required");
        if (!ingest_journal) {
            (void) fputc('\n', stderr);
        }
        ingest_usage_error();
        return INGEST_EXIT_USAGE;
    }

    if (ic->queue[0] == '\0' || strlen(ic->queue) > 400) {
        ingest_option_error("invalid --queue");
        return INGEST_EXIT_USAGE;
    }

    rc = ingest_options_redis(ic, redis);
    if (rc >= 0) {
        return rc;
    }

    return ingest_options_password(ic, password_file);
}


/*
 * --redis (text, in argv; NULL: the default): where Redis is, which db,
 * who to log in as.  -1: go on; otherwise the exit status.
 */

static int
ingest_options_redis(ingest_consumer_t *ic, char *text)
{
    char                  err[256];
    size_t                i;
    ingest_redis_conf_t  *conf;

    conf = &ic->redis_conf;

    if (text == NULL) {
        (void) ingest_redis_parse("127.0.0.1:6379", conf, err, sizeof(err));

    } else if (ingest_redis_parse(text, conf, err, sizeof(err)) != 0) {
        /*
         * only a text with an '@' can hold a password, or one the error
         * says is not shown: no other is hidden
         */

        if (strchr(text, '@') == NULL && strstr(err, "not shown") == NULL) {
            ingest_option_error("invalid --redis \"%s\": %s", text, err);

        } else {
            ingest_option_error("invalid --redis (not shown, it may hold a "
                                "password): %s", err);
        }

        return INGEST_EXIT_USAGE;
    }

    /*
     * A password typed into the URL is overwritten in argv now that it is
     * read: /proc/PID/cmdline, which ps shows to every local user, is
     * argv's memory as it is, not as it was at exec.  (Until now it could
     * be seen: --password-file keeps it out of argv altogether.)
     */

    for (i = 0; i < conf->nsecrets; i++) {
        memset(text + conf->secrets[i][0], 'x',
               conf->secrets[i][1] - conf->secrets[i][0]);
    }

    ic->redis = conf->shown;
    ic->cluster = conf->cluster;

    if (!conf->cluster) {
        strcpy(ic->redis_host, conf->nodes[0].host);
        ic->redis_port = conf->nodes[0].port;
    }

    return -1;
}


/*
 * A --redis that a later one overrides: its passwords wiped from argv as
 * the last one's are.  One that cannot be read is wiped up to its last
 * '@', past which no password is.
 */

static void
ingest_redis_scrub(char *text)
{
    char                        err[256], *at;
    size_t                      i;
    static ingest_redis_conf_t  conf;

    if (ingest_redis_parse(text, &conf, err, sizeof(err)) == 0) {
        for (i = 0; i < conf.nsecrets; i++) {
            memset(text + conf.secrets[i][0], 'x',
                   conf.secrets[i][1] - conf.secrets[i][0]);
        }

    } else {
        at = strrchr(text, '@');

        if (at != NULL) {
            memset(text, 'x', at - text);
        }
    }

    explicit_bzero(&conf, sizeof(conf));
}


/*
 * The password, from the first of: the URL in --redis, --password-file,
 * REDISCLI_AUTH (as redis-cli takes it).  A URL's and a file's together
 * are an error: one of them would be ignored, unseen.  -1: go on;
 * otherwise the exit status.
 */

static int
ingest_options_password(ingest_consumer_t *ic, const char *file)
{
    const char           *env;
    ingest_redis_conf_t  *conf;

    conf = &ic->redis_conf;

    if (file != NULL) {
        if (conf->password[0] != '\0') {
            ingest_option_error("a password in --redis and "
                                "--password-file: give one of them");
            return INGEST_EXIT_USAGE;
        }

        if (ingest_password_file(file, conf->password,
                                 sizeof(conf->password))
            != 0)
        {
            return INGEST_EXIT_USAGE;
        }

    } else if (conf->password[0] == '\0') {
        env = getenv("REDISCLI_AUTH");

        if (env != NULL && env[0] != '\0') {
            if (strlen(env) >= sizeof(conf->password)) {
                ingest_option_error("REDISCLI_AUTH is longer than %zu bytes",
                                    sizeof(conf->password) - 1);
                return INGEST_EXIT_USAGE;
            }

            strcpy(conf->password, env);
        }
    }

    if (conf->user[0] != '\0' && conf->password[0] == '\0') {
        ingest_option_error("--redis names user \"%s\" but no password is "
                            "given (in the URL, --password-file or "
                            "REDISCLI_AUTH)", conf->user);
        return INGEST_EXIT_USAGE;
    }

    return -1;
}


/*
 * --password-file: the password is the file's first line, without its
 * "\n" or "\r\n", as nginx reads password_file=.  Only a regular file:
 * a FIFO or a device would hang the consumer or feed it anything.  0, or
 * -1 said on stderr, never with what the file holds.
 */

static int
ingest_password_file(const char *path, char *out, size_t size)
{
    int          fd, failed;
    char         buf[INGEST_REDIS_PASSWORD_LEN + 2];
    char        *nl;
    size_t       n, len;
    ssize_t      got;
    struct stat  st;

    fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);

    if (fd == -1) {
        ingest_option_error("--password-file \"%s\": %s", path,
                            strerror(errno));
        return -1;
    }

    if (fstat(fd, &st) != 0) {
        ingest_option_error("--password-file \"%s\": %s", path,
                            strerror(errno));
        (void) close(fd);
        return -1;
    }

    if (!S_ISREG(st.st_mode)) {
        ingest_option_error("--password-file \"%s\": not a regular file",
                            path);
        (void) close(fd);
        return -1;
    }

    n = 0;
    failed = 0;

    while (n < sizeof(buf)) {
        got = read(fd, buf + n, sizeof(buf) - n);

        if (got == -1 && errno == EINTR) {
            continue;
        }

        if (got == -1) {
            failed = 1;
            break;
        }

        if (got == 0) {
            break;
        }

        n += (size_t) got;
    }

    if (close(fd) != 0) {
        failed = 1;
    }

    if (failed) {
        ingest_option_error("--password-file \"%s\" cannot be read", path);
        goto failed;
    }

    /* one line: its newline (and a CR before it) is not the password's */

    nl = memchr(buf, '\n', n);
    len = nl ? (size_t) (nl - buf) : n;

    if (len > 0 && buf[len - 1] == '\r') {
        len--;
    }

    if (len == 0) {
        ingest_option_error("--password-file \"%s\": its first line is "
                            "empty", path);
        goto failed;
    }

    if (len >= size || (nl == NULL && n == sizeof(buf))) {
        ingest_option_error("--password-file \"%s\": its first line holds "
                            "more than %zu bytes", path, size - 1);
        goto failed;
    }

    if (memchr(buf, '\0', len) != NULL) {
        ingest_option_error("--password-file \"%s\" holds a NUL byte",
                            path);
        goto failed;
    }

    memcpy(out, buf, len);
    out[len] = '\0';
    explicit_bzero(buf, sizeof(buf));

    return 0;

failed:

    explicit_bzero(buf, sizeof(buf));

    return -1;
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
        ingest_option_error("%s must be a number from %ld to %ld, not "
                            "\"%s\"", name, min, max, text);
        return -1;
    }

    *out = n;

    return 0;
}


/* --retain 1m=2d,1h=90d: appended to ic->retain */

static int
ingest_retain(ingest_consumer_t *ic, const char *text)
{
    long         res, keep;
    size_t       i;
    const char  *p, *eq, *end;

    for (p = text; ; p = end + 1) {
        end = strchr(p, ',');
        if (end == NULL) {
            end = p + strlen(p);
        }

        eq = memchr(p, '=', end - p);

        res = (eq != NULL) ? ingest_wire_duration(p, eq - p) : -1;
        keep = (eq != NULL) ? ingest_wire_duration(eq + 1, end - eq - 1)
                            : -1;

        if (res < 1 || res > INGEST_WIRE_MAX_RESOLUTION
            || INGEST_WIRE_MAX_RESOLUTION % res != 0
            || keep < 1 || keep > 36500L * 86400)
        {
            ingest_option_error("--retain \"%.*s\": give RESOLUTION=TIME, "
                                "a resolution from 1s to 1d that divides a "
                                "day and a time from 1s to 36500d, units s, "
                                "m, h or d (e.g. 1m=2d)", (int) (end - p), p);
            return -1;
        }

        for (i = 0; i < ic->nretain; i++) {
            if (ic->retain[i].resolution == res) {
                ingest_option_error("--retain names the resolution \"%.*s\" "
                                    "twice", (int) (eq - p), p);
                return -1;
            }
        }

        if (ic->nretain == INGEST_MAX_RETAIN) {
            ingest_option_error("--retain: at most %d resolutions",
                                INGEST_MAX_RETAIN);
            return -1;
        }

        ic->retain[ic->nretain].resolution = res;
        ic->retain[ic->nretain].seconds = keep;
        ic->nretain++;

        if (*end == '\0') {
            return 0;
        }
    }
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
            /* unreachable, or it refused the login: the same backoff */
            ic->redis_refused = 0;
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
 * ingest_round_apply: the COMMIT of more than one batch was refused (a
 * deferred constraint, a constraint trigger): which batch is at fault is
 * not known, nothing was committed.
 */

#define INGEST_ROUND_SPLIT   -4


/*
 * One round: read a window, apply it in one transaction, commit, trim.
 *
 * A batch the store refuses is never applied with the others: the
 * transaction is rolled back and the batches before it are applied alone
 * (committed, trimmed), so that the refused batch heads the next round,
 * where it is refused first thing and moved to the dead-letter list on its
 * own (ingest_round_bury).  No transaction holds good batches and a
 * refused one, and the move is one script: a crash anywhere re-reads, and
 * neither loses nor applies twice.
 *
 * A refusal at COMMIT names no batch: the window is then applied one
 * batch per transaction (ingest_round_single), which finds it.
 *
 * 0 on success or a hiccup (retried), INGEST_EXIT_RUNTIME to stop.
 */

static int
ingest_round(ingest_consumer_t *ic)
{
    int                   rc;
    size_t                n, refused;
    int64_t               now;
    redisReply           *reply;

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

    /* --retain: a bounded step a second, more while a step fills up */

    if (ic->nretain && now - ic->expired_ms >= 1000) {
        long  expired;

        ic->expired_ms = now;

        rc = ic->store->expire(ic, now / 1000, INGEST_EXPIRE_STEP, &expired);

        if (rc == -1) {
            return INGEST_EXIT_RUNTIME;
        }

        if (rc == 0 && expired) {
            ic->expired += expired;
            ingest_log(INGEST_LOG_INFO, "expired %ld buckets (--retain)",
                       expired);

            if (expired >= INGEST_EXPIRE_STEP) {
                ic->expired_ms = 0;
            }
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

    n = reply->elements;

    for ( ;; ) {
        rc = ingest_round_apply(ic, reply, 0, n, &refused);

        if (rc == INGEST_ROUND_SPLIT) {
            ingest_log(INGEST_LOG_WARN, "the COMMIT of %zu batches of \"%s\" "
                       "is refused (%s); applying them one per transaction",
                       n, ic->queue, ic->refusal);

            rc = ingest_round_single(ic, reply, n);
            freeReplyObject(reply);
            return rc;
        }

        if (rc != INGEST_STORE_REFUSED) {
            break;
        }

        if (refused == 0) {
            rc = ingest_round_bury(ic, reply->element[0]);
            freeReplyObject(reply);
            return rc;
        }

        /* those before it; it heads the next round */
        n = refused;
    }

    if (rc != 0) {
        freeReplyObject(reply);
        return (rc == INGEST_STORE_AGAIN) ? 0 : INGEST_EXIT_RUNTIME;
    }

    rc = ingest_queue_trim(ic, n);

    freeReplyObject(reply);

    if (rc == -2) {
        /* committed, so nothing is lost: the next owner skips them */
        ingest_log(INGEST_LOG_ERR, "lost the lock of \"%s\" before the trim; "
                   "taking it again", ic->queue);
    }

    return 0;
}


/*
 * The window's batches one per transaction, after a COMMIT of them all
 * was refused: those before the one refused are committed (each once:
 * read again after a crash, they are skipped by last_seq) and trimmed,
 * then the refused one, now the head of the list, goes to the
 * dead-letter list.  0 or INGEST_EXIT_RUNTIME.
 */

static int
ingest_round_single(ingest_consumer_t *ic, redisReply *reply, size_t n)
{
    int     rc, trc;
    size_t  i, refused;

    rc = 0;

    for (i = 0; i < n; i++) {
        rc = ingest_round_apply(ic, reply, i, 1, &refused);

        if (rc != 0) {
            break;
        }
    }

    /* batches [0, i) are committed */

    trc = (i > 0) ? ingest_queue_trim(ic, i) : 0;

    if (trc == -2) {
        ingest_log(INGEST_LOG_ERR, "lost the lock of \"%s\" before the "
                   "trim; taking it again", ic->queue);
    }

    if (rc == INGEST_STORE_REFUSED) {
        /*
         * Not trimmed: the head is still a committed batch, which the
         * bury script would not move; the next round skips what was
         * committed and finds the refused one again.
         */
        return (trc == 0) ? ingest_round_bury(ic, reply->element[i]) : 0;
    }

    return (rc == 0 || rc == INGEST_STORE_AGAIN) ? 0 : INGEST_EXIT_RUNTIME;
}


/*
 * The batches [first, first + n) of the window in one transaction: 0
 * (committed), INGEST_STORE_AGAIN, -1, INGEST_STORE_REFUSED with
 * *refused the index of the batch refused (ic->refusal says why) and
 * nothing committed, or INGEST_ROUND_SPLIT when the COMMIT of more than
 * one batch was refused (ic->refusal says why).
 */

static int
ingest_round_apply(ingest_consumer_t *ic, redisReply *reply, size_t first,
    size_t n, size_t *refused)
{
    int                   skipped, rc;
    char                  err[256];
    size_t                i, applied, skips;
    int64_t               oldest;
    uint64_t              keys, repeats, bucket_rows;
    redisReply           *e;
    ingest_wire_batch_t   batch;

    /* what a rollback takes back is not counted */
    keys = ic->keys;
    repeats = ic->repeats;
    bucket_rows = ic->bucket_rows;

    rc = ic->store->begin(ic);

    if (rc != 0) {
        if (rc == INGEST_STORE_REFUSED) {
            /* the store's reason names the statement ("BEGIN: ...") */
            ingest_log(INGEST_LOG_ERR, "%s", ic->refusal);
            rc = -1;
        }

        return rc;
    }

    applied = 0;
    skips = 0;
    oldest = INT64_MAX;

    for (i = first; i < first + n; i++) {
        e = reply->element[i];

        if (e->type != REDIS_REPLY_STRING) {
            (void) ingest_refuse(ic, "not a string");
            goto refused;
        }

        rc = ingest_wire_decode(e->str, e->len, &batch, err, sizeof(err));

        if (rc == INGEST_WIRE_NOMEM) {
            ingest_log(INGEST_LOG_ERR, "batch %zu of \"%s\" cannot be read: "
                       "out of memory; it is left in Redis", i, ic->queue);
            goto failed;
        }

        if (rc != INGEST_WIRE_OK) {
            (void) ingest_refuse(ic, "cannot be read: %s", err);
            goto refused;
        }

        rc = ic->store->apply(ic, &batch, &skipped);

        ingest_wire_batch_free(&batch);

        if (rc == INGEST_STORE_AGAIN) {
            goto again;
        }

        if (rc == INGEST_STORE_REFUSED) {
            goto refused;
        }

        if (rc != 0) {
            ingest_log(INGEST_LOG_ERR, "batch %zu of \"%s\" (producer "
                       "\"%s\", seq %llu) cannot be applied; it is left in "
                       "Redis", i, ic->queue, batch.producer,
                       (unsigned long long) batch.seq);
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
    }

    rc = ic->store->commit(ic);

    if (rc == INGEST_STORE_AGAIN) {
        /* committed or not: read again, what was applied is skipped */
        goto again;
    }

    if (rc == INGEST_STORE_REFUSED) {
        /*
         * A constraint checked at COMMIT (deferred): the database rolled
         * back; the refusal ("COMMIT: ...") names no batch, unless there
         * is only one.
         */

        if (n == 1) {
            i = first;
            goto refused;
        }

        rc = INGEST_ROUND_SPLIT;
        goto rollback;
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

    return 0;

refused:

    *refused = i;
    rc = INGEST_STORE_REFUSED;
    goto rollback;

again:

    rc = INGEST_STORE_AGAIN;
    goto rollback;

failed:

    rc = -1;

rollback:

    ic->store->rollback(ic);
    ic->keys = keys;
    ic->repeats = repeats;
    ic->bucket_rows = bucket_rows;

    return rc;
}


/*
 * The batch at the head of the list was refused (ic->refusal says why)
 * with nothing before it: record it as dead in the database (if it can be
 * read, so that a requeued copy is applied whatever its producer's
 * last_seq), then move it to the dead-letter list.  A crash between the
 * two leaves it at the head, to be refused again: recording it twice is
 * recording it once.
 *
 * A record the database refuses in turn (a constraint or a trigger on
 * dead_batches, a producer it cannot store) does not keep the batch at
 * the head, where it would stop the list for good: it is moved all the
 * same, unrecorded, and said at error.  Applying it would be refused for
 * the same cause anyway.  0 or INGEST_EXIT_RUNTIME.
 */

static int
ingest_round_bury(ingest_consumer_t *ic, redisReply *element)
{
    int                   rc, readable;
    char                  header[8192], *p, *end;
    char                  reason[sizeof(ic->refusal)];
    ingest_wire_batch_t   batch;

    readable = element->type == REDIS_REPLY_STRING
               && ingest_wire_decode(element->str, element->len, &batch,
                                     NULL, 0)
                  == INGEST_WIRE_OK;

    if (readable) {
        /* the header's reason: a refused record overwrites ic->refusal */
        memcpy(reason, ic->refusal, sizeof(reason));

        rc = ic->store->begin(ic);

        if (rc == INGEST_STORE_REFUSED) {
            /* no fault of the batch's: BEGIN itself */
            ingest_log(INGEST_LOG_ERR, "%s", ic->refusal);
            rc = -1;
        }

        if (rc == 0) {
            rc = ic->store->dead(ic, &batch);
        }

        if (rc == 0) {
            rc = ic->store->commit(ic);
        }

        if (rc != 0) {
            ic->store->rollback(ic);
        }

        if (rc == INGEST_STORE_REFUSED) {
            /* the store's reason names the statement, once */
            ingest_log(INGEST_LOG_ERR, "%s; seq %llu of producer \"%s\" "
                       "goes to \"%s\" unrecorded (requeued, it is skipped "
                       "if its producer's last_seq is past it)",
                       ic->refusal, (unsigned long long) batch.seq,
                       batch.producer, ic->dead_key);

            memcpy(ic->refusal, reason, sizeof(ic->refusal));

        } else if (rc != 0) {
            ingest_wire_batch_free(&batch);

            return (rc == INGEST_STORE_AGAIN) ? 0 : INGEST_EXIT_RUNTIME;
        }
    }

    /*
     * {"reason":..,"at":..,"consumer":..[,"producer":..,"seq":..]}: one
     * line (JSON escapes every control character), then the batch.
     */

    p = header;
    end = header + sizeof(header);

    p = ingest_append(p, end, "{\"reason\":");
    p = ingest_json_string(p, end, ic->refusal, strlen(ic->refusal));
    p = ingest_append(p, end, ",\"at\":%lld,\"consumer\":",
                      (long long) ingest_now_ms());
    p = ingest_json_string(p, end, ic->owner, strlen(ic->owner));

    if (readable) {
        p = ingest_append(p, end, ",\"producer\":");
        p = ingest_json_string(p, end, batch.producer,
                               strlen(batch.producer));
        p = ingest_append(p, end, ",\"seq\":%llu",
                          (unsigned long long) batch.seq);
    }

    if (p == NULL || end - p < 2) {
        /* cannot be: the reason and the names are bounded, 6 bytes each */
        ingest_log(INGEST_LOG_ERR, "a dead-letter header too long");

        if (readable) {
            ingest_wire_batch_free(&batch);
        }

        return INGEST_EXIT_RUNTIME;
    }

    *p++ = '}';
    *p = '\0';

    rc = (element->type == REDIS_REPLY_STRING)
         ? ingest_queue_bury(ic, element, header) : -1;

    if (rc == 0) {
        ic->refused++;

        if (readable) {
            ingest_log(INGEST_LOG_ALERT, "a batch of \"%s\" (producer "
                       "\"%s\", seq %llu) is refused: %s; moved to \"%s\"",
                       ic->queue, batch.producer,
                       (unsigned long long) batch.seq, ic->refusal,
                       ic->dead_key);

        } else {
            ingest_log(INGEST_LOG_ALERT, "a batch of \"%s\" is refused: %s; "
                       "moved to \"%s\"", ic->queue, ic->refusal,
                       ic->dead_key);
        }

    } else if (rc == -2) {
        ingest_log(INGEST_LOG_ERR, "lost the lock of \"%s\" before moving a "
                   "refused batch; taking it again", ic->queue);
    }

    if (readable) {
        ingest_wire_batch_free(&batch);
    }

    return 0;
}


/*
 * --requeue-dead: the batches in the dead-letter list when it starts,
 * oldest first, back to the tail of the list, a hundred per script.  The
 * tail, not the head: a consumer trims the head by count, and the tail is
 * where producers push too.  Batches refused again meanwhile go to the
 * dead-letter list's tail and are not moved twice.
 */

static int
ingest_requeue(ingest_consumer_t *ic)
{
    int          rc, failed;
    size_t       total, done, moved;
    const char  *argv[2];
    redisReply  *reply;

    if (ingest_queue_connect(ic) != 0) {
        return INGEST_EXIT_RUNTIME;
    }

    argv[0] = "LLEN";
    argv[1] = ic->dead_key;

    reply = redisCommandArgv(ic->redis_ctx, 2, argv, NULL);

    if (reply == NULL || reply->type != REDIS_REPLY_INTEGER) {
        ingest_log(INGEST_LOG_ERR, "redis \"%s\": LLEN \"%s\" failed: %s",
                   ic->redis, ic->dead_key,
                   reply == NULL ? ic->redis_ctx->errstr
                   : reply->type == REDIS_REPLY_ERROR ? reply->str
                   : "not a number");

        if (reply != NULL) {
            freeReplyObject(reply);
        }

        return INGEST_EXIT_RUNTIME;
    }

    total = (size_t) reply->integer;
    freeReplyObject(reply);

    failed = 0;

    for (done = 0; done < total; done += moved) {
        rc = ingest_queue_requeue(ic, total - done < 100 ? total - done : 100,
                                  &moved);

        if (rc == 1) {
            done += moved;
            ingest_log(INGEST_LOG_ERR, "element 0 of \"%s\" is not a dead "
                       "batch (no header line); left there", ic->dead_key);
        }

        if (rc != 0) {
            failed = 1;
            break;
        }

        if (moved == 0) {
            /* emptied meanwhile (another --requeue-dead) */
            break;
        }
    }

    ingest_log(INGEST_LOG_NOTICE, "requeued %zu batches from \"%s\" to the "
               "tail of \"%s\"", done, ic->dead_key, ic->queue);

    return failed ? INGEST_EXIT_RUNTIME : INGEST_EXIT_OK;
}


/* printf at p; the new end, or NULL when out of room (or p is NULL) */

static char *
ingest_append(char *p, char *end, const char *fmt, ...)
{
    int      n;
    va_list  args;

    if (p == NULL) {
        return NULL;
    }

    va_start(args, fmt);
    n = vsnprintf(p, end - p, fmt, args);
    va_end(args);

    if (n < 0 || n >= end - p) {
        return NULL;
    }

    return p + n;
}


/* s as a JSON string, quoted; the new end, or NULL when out of room */

static char *
ingest_json_string(char *p, char *end, const char *s, size_t len)
{
    size_t          i;
    unsigned char   ch;

    if (p == NULL || end - p < 3) {
        return NULL;
    }

    *p++ = '"';

    for (i = 0; i < len; i++) {
        ch = (unsigned char) s[i];

        if (end - p < 8) {
            return NULL;
        }

        if (ch == '"' || ch == '\\') {
            *p++ = '\\';
            *p++ = (char) ch;

        } else if (ch < 0x20 || ch == 0x7f) {
            p += snprintf(p, end - p, "\\u%04x", ch);

        } else {
            *p++ = (char) ch;
        }
    }

    *p++ = '"';

    return p;
}


/* a refusal of the batch being applied: why, for the dead-letter list */

int
ingest_refuse(ingest_consumer_t *ic, const char *fmt, ...)
{
    va_list  args;

    va_start(args, fmt);
    vsnprintf(ic->refusal, sizeof(ic->refusal), fmt, args);
    va_end(args);

    return INGEST_STORE_REFUSED;
}


/*
 * The records table of batch for this connection: 1 and *found if it
 * was checked already with these columns; 0 and *found a fresh entry
 * holding the batch's columns, which the store checks against the
 * database and keeps with ic->ntables++.  A checked table whose columns
 * differ from the batch's is checked again, since a person may have
 * changed the table (and then requeued the batch): its entry is dropped.
 * Types compare as the store names them (SQLite stores ints and bools
 * alike).
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

        if (t->ncolumns == batch->ncolumns) {
            for (n = 0; n < t->ncolumns; n++) {
                if (strcmp(t->columns[n], batch->columns[n]) != 0
                    || types[t->types[n]] != types[batch->types[n]])
                {
                    break;
                }
            }

            if (n == t->ncolumns) {
                *found = t;
                return 1;
            }
        }

        /* the last entry takes this one's place */

        sqlite3_finalize(t->insert);
        ic->tables[i] = ic->tables[--ic->ntables];
        break;
    }

    if (ic->ntables == INGEST_MAX_TABLES) {
        /* full: forget one; it is checked again when next seen */
        sqlite3_finalize(ic->tables[0].insert);
        ic->tables[0] = ic->tables[--ic->ntables];
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


int
ingest_table_conflict(ingest_consumer_t *ic, ingest_wire_batch_t *batch)
{
    return ingest_refuse(ic, "the columns of a batch for table \"%s\" "
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
    int               n;
    char              buf[32], head[32], msg[1024], *text, *big;
    va_list           args;
    struct tm         tm;
    struct timespec   ts;

    if (!ingest_journal) {
        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);

        fprintf(stderr, "%s.%03ld [%s] ingest-consumer: ", buf,
                ts.tv_nsec / 1000000, ingest_levels[level]);

        va_start(args, fmt);
        vfprintf(stderr, fmt, args);
        va_end(args);

        fputc('\n', stderr);
        return;
    }

    /*
     * The journal: the message whole first, so that a line break in it
     * (a database's text) cannot start a line without the priority.
     */

    va_start(args, fmt);
    n = vsnprintf(msg, sizeof(msg), fmt, args);
    va_end(args);

    text = msg;
    big = NULL;

    if (n < 0) {
        text = "(a message that could not be formatted)";

    } else if ((size_t) n >= sizeof(msg)) {
        big = malloc((size_t) n + 1);

        if (big != NULL) {
            va_start(args, fmt);
            n = vsnprintf(big, (size_t) n + 1, fmt, args);
            va_end(args);

            /* out of memory or a failure: the first 1023 bytes will do */
            if (n >= 0) {
                text = big;
            }
        }
    }

    (void) snprintf(head, sizeof(head), "[%s] ingest-consumer: ",
                    ingest_levels[level]);

    ingest_journal_write(ingest_priorities[level], head, text);

    free(big);
}


/*
 * As systemd.exec(5) and sd_journal_stream_fd(3) say: JOURNAL_STREAM is
 * "DEVICE:INODE" of the stream systemd gave the service, and stderr is
 * that stream only if fstat() finds the same two numbers (stderr may have
 * been redirected since, by a shell script in ExecStart, say).
 */

static int
ingest_journal_stderr(void)
{
    char                *end;
    const char          *env;
    struct stat          st;
    unsigned long long   dev, ino;

    env = getenv("JOURNAL_STREAM");

    if (env == NULL || env[0] < '0' || env[0] > '9') {
        return 0;
    }

    errno = 0;
    dev = strtoull(env, &end, 10);

    if (errno != 0 || *end != ':' || end[1] < '0' || end[1] > '9') {
        return 0;
    }

    ino = strtoull(end + 1, &end, 10);

    if (errno != 0 || *end != '\0') {
        return 0;
    }

    if (fstat(STDERR_FILENO, &st) != 0) {
        return 0;
    }

    return (unsigned long long) st.st_dev == dev
           && (unsigned long long) st.st_ino == ino;
}


/* TEXT on stderr, each of its lines as "<PRIORITY>", HEAD on the first */

static void
ingest_journal_write(int priority, const char *head, const char *text)
{
    size_t       len;
    const char  *p, *nl;

    p = text;

    do {
        nl = strchr(p, '\n');
        len = (nl != NULL) ? (size_t) (nl - p) : strlen(p);

        (void) fprintf(stderr, "<%d>%s%.*s\n", priority, head, (int) len, p);

        head = "";
        p = (nl != NULL) ? nl + 1 : NULL;

    } while (p != NULL && *p != '\0');
}


/* a usage or configuration error, before the consumer runs */

static void
ingest_option_error(const char *fmt, ...)
{
    char     msg[4096];
    va_list  args;

    va_start(args, fmt);
    /* longer is cut: the text is the option's own, and the start says it */
    (void) vsnprintf(msg, sizeof(msg), fmt, args);
    va_end(args);

    if (ingest_journal) {
        ingest_journal_write(INGEST_PRIORITY_ERR, "ingest-consumer: ", msg);

    } else {
        (void) fprintf(stderr, "ingest-consumer: %s\n", msg);
    }
}


/* the usage after a usage error: for the journal, a line at info each */

static void
ingest_usage_error(void)
{
    if (ingest_journal) {
        ingest_journal_write(INGEST_PRIORITY_INFO, "", ingest_usage);

    } else {
        (void) fputs(ingest_usage, stderr);
    }
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
