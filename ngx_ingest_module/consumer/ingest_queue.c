
/*
 * Copyright (C) ngx_ingest developers
 *
 * The consumer's side of Redis: the list it drains and the lock that makes
 * it the list's only consumer.  The lock is a key, "<list>:consumer",
 * holding this process's identity with a TTL renewed every round; the
 * trim runs in a Lua script that first checks the lock is still ours, so
 * a consumer that stalled past its TTL never trims another's batches.
 *
 * Every write is a script flagged allow-oom (Redis 7): under maxmemory
 * with noeviction Redis refuses SET, and a consumer that could not take
 * its lock would never drain the list whose draining frees the memory.
 * What the scripts add is a lock and a heartbeat of a few bytes each;
 * the trim takes far more away.
 *
 * An error reply (LOADING, NOAUTH, MISCONF, READONLY, ...) is logged once
 * per state, when the error changes and when the command it refused is
 * taken again; the loop backs off meanwhile (ic->redis_refused).
 *
 * Blocking hiredis calls with a timeout, so that a stuck Redis never
 * holds the loop past a signal for long.
 */


#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/time.h>

#include "ingest_consumer.h"
#include "ingest_cluster.h"


#define INGEST_REDIS_TIMEOUT_MS   5000


/* what a command is for, in the log: "redis ... refuses the lock of ..." */
static const char  ingest_for_lock[] = "the lock";
static const char  ingest_for_read[] = "the read";
static const char  ingest_for_trim[] = "the trim";
static const char  ingest_for_heartbeat[] = "the heartbeat";


/* 1: taken; 2: it was ours already (kept across a Redis restart); 0 */

static const char  ingest_lock_script[] =
    "#!lua flags=allow-oom\n"
    "local owner = redis.call('GET', KEYS[1]) "
    "if owner == false then "
    "redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end "
    "if owner == ARGV[1] then "
    "redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 2 end "
    "return 0";

static const char  ingest_renew_script[] =
    "#!lua flags=allow-oom\n"
    "if redis.call('GET', KEYS[1]) == ARGV[1] then "
    "return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end "
    "return 0";

static const char  ingest_trim_script[] =
    "#!lua flags=allow-oom\n"
    "if redis.call('GET', KEYS[1]) == ARGV[1] then "
    "redis.call('LTRIM', KEYS[2], ARGV[2], -1) return 1 end "
    "return 0";

static const char  ingest_unlock_script[] =
    "#!lua flags=allow-oom\n"
    "if redis.call('GET', KEYS[1]) == ARGV[1] then "
    "return redis.call('DEL', KEYS[1]) end "
    "return 0";

static const char  ingest_heartbeat_script[] =
    "#!lua flags=allow-oom\n"
    "redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1";


static redisReply *ingest_queue_command(ingest_consumer_t *ic,
    const char *what, int argc, const char **argv);
static void ingest_queue_refused(ingest_consumer_t *ic, const char *what,
    const char *error);
static int ingest_queue_script(ingest_consumer_t *ic, const char *what,
    const char *script, const char *key2, const char *arg2);


/* HOST:PORT or [V6]:PORT into host and port; 0, or -1 if malformed */

int
ingest_queue_address(const char *text, char *host, size_t size, int *port)
{
    long         n;
    char        *end;
    const char  *colon;

    colon = strrchr(text, ':');

    if (colon == NULL || colon == text || (size_t) (colon - text) >= size) {
        return -1;
    }

    errno = 0;
    n = strtol(colon + 1, &end, 10);

    if (errno || end == colon + 1 || *end != '\0' || n < 1 || n > 65535) {
        return -1;
    }

    if (*text == '[' && colon[-1] == ']') {
        memcpy(host, text + 1, colon - text - 2);
        host[colon - text - 2] = '\0';

    } else {
        memcpy(host, text, colon - text);
        host[colon - text] = '\0';
    }

    *port = (int) n;

    return 0;
}


/*
 * In a cluster: the master of the list's slot, by CLUSTER SLOTS of the
 * first seed that answers (starting after the last that did); 0 and
 * ic->redis_host/port set, or -1.
 */

static int
ingest_queue_owner(ingest_consumer_t *ic, struct timeval tv)
{
    size_t                   i, n, s;
    unsigned                 slot;
    redisReply              *reply;
    redisContext            *c;
    ingest_cluster_range_t   r;

    slot = ingest_cluster_slot((const unsigned char *) ic->queue,
                               strlen(ic->queue));

    for (n = 0; n < ic->nseeds; n++) {
        s = (ic->next_seed + n) % ic->nseeds;

        c = redisConnectWithTimeout(ic->seeds[s], ic->seed_ports[s], tv);

        if (c == NULL || c->err || redisSetTimeout(c, tv) != REDIS_OK) {
            if (c != NULL) {
                redisFree(c);
            }

            continue;
        }

        reply = redisCommand(c, "CLUSTER SLOTS");
        redisFree(c);

        if (reply == NULL || reply->type != REDIS_REPLY_ARRAY) {
            if (reply != NULL) {
                freeReplyObject(reply);
            }

            continue;
        }

        for (i = 0; i < reply->elements; i++) {
            if (ingest_cluster_range(reply->element[i], &r) != 0
                || slot < r.start || slot > r.end
                || r.host_len >= sizeof(ic->redis_host))
            {
                continue;
            }

            memcpy(ic->redis_host, r.host, r.host_len);
            ic->redis_host[r.host_len] = '\0';
            ic->redis_port = r.port;

            freeReplyObject(reply);
            ic->next_seed = s;

            return 0;
        }

        /* no master for the slot (a failover under way): the next seed */
        freeReplyObject(reply);
    }

    ic->next_seed++;

    return -1;
}


int
ingest_queue_connect(ingest_consumer_t *ic)
{
    redisContext    *c;
    struct timeval   tv;

    tv.tv_sec = INGEST_REDIS_TIMEOUT_MS / 1000;
    tv.tv_usec = (INGEST_REDIS_TIMEOUT_MS % 1000) * 1000;

    if (ic->cluster && ingest_queue_owner(ic, tv) != 0) {
        if (!ic->redis_down) {
            ic->redis_down = 1;
            ingest_log(INGEST_LOG_WARN, "redis cluster \"%s\": no seed "
                       "names a master for \"%s\"", ic->redis, ic->queue);
        }

        return -1;
    }

    if (ic->redis_port) {
        c = redisConnectWithTimeout(ic->redis_host, ic->redis_port, tv);

    } else {
        c = redisConnectUnixWithTimeout(ic->redis_host, tv);
    }

    if (c == NULL || c->err || redisSetTimeout(c, tv) != REDIS_OK) {
        if (!ic->redis_down) {
            ic->redis_down = 1;
            ingest_log(INGEST_LOG_WARN, "redis \"%s\" unreachable: %s",
                       ic->redis, c ? c->errstr : "out of memory");
        }

        if (c != NULL) {
            redisFree(c);
        }

        return -1;
    }

    if (ic->redis_down) {
        ic->redis_down = 0;
        ingest_log(INGEST_LOG_NOTICE, "redis \"%s\" connection restored",
                   ic->redis);
    }

    ic->redis_ctx = c;

    return 0;
}


void
ingest_queue_disconnect(ingest_consumer_t *ic)
{
    if (ic->redis_ctx != NULL) {
        redisFree(ic->redis_ctx);
        ic->redis_ctx = NULL;
    }

    ic->locked = 0;
}


/*
 * One command; NULL when the connection failed, which drops it: the
 * caller reconnects (and takes the lock again) on the next round.
 */

static redisReply *
ingest_queue_command(ingest_consumer_t *ic, const char *what, int argc,
    const char **argv)
{
    redisReply  *reply;

    if (ic->redis_ctx == NULL) {
        return NULL;
    }

    reply = redisCommandArgv(ic->redis_ctx, argc, argv, NULL);

    if (reply == NULL) {
        if (!ic->redis_down) {
            ic->redis_down = 1;
            ingest_log(INGEST_LOG_WARN, "redis \"%s\" connection lost: %s",
                       ic->redis, ic->redis_ctx->errstr);
        }

        ingest_queue_disconnect(ic);
        return NULL;
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        if (ic->cluster
            && (strncmp(reply->str, "MOVED ", 6) == 0
                || strncmp(reply->str, "ASK ", 4) == 0
                || strncmp(reply->str, "CLUSTERDOWN", 11) == 0
                || strncmp(reply->str, "READONLY", 8) == 0
                || strncmp(reply->str, "TRYAGAIN", 8) == 0))
        {
            /*
             * The list is elsewhere, or soon will be: find it again, once
             * a tenth of a second (a migration's ASK lasts until it ends).
             */

            if (!ic->redirected) {
                ic->redirected = 1;
                ingest_log(INGEST_LOG_NOTICE, "redis %s on %s:%d: %s; "
                           "finding the master of \"%s\" again", argv[0],
                           ic->redis_host, ic->redis_port, reply->str,
                           ic->queue);
            }

            freeReplyObject(reply);
            ingest_queue_disconnect(ic);
            ingest_sleep_ms(100);
            return NULL;
        }

        ingest_queue_refused(ic, what, reply->str);

        return reply;
    }

    ic->redirected = 0;

    if (ic->redis_refused_what == what) {
        ingest_log(INGEST_LOG_NOTICE, "redis \"%s\" accepts %s of \"%s\" "
                   "again", ic->redis, what, ic->queue);
        ic->redis_error[0] = '\0';
        ic->redis_refused_what = NULL;
    }

    return reply;
}


/*
 * An error reply: the loop backs off; logged when the error (its first
 * word: LOADING, NOAUTH, OOM, ...) is not the one already logged.  The
 * state ends when the command it refused is taken, so that a Redis that
 * refuses writes but answers reads is not logged as back every round.
 */

static void
ingest_queue_refused(ingest_consumer_t *ic, const char *what,
    const char *error)
{
    size_t  len;

    ic->redis_refused = 1;

    len = strcspn(error, " ");
    if (len == 0) {
        len = strlen(error);
    }

    if (len >= sizeof(ic->redis_error)) {
        len = sizeof(ic->redis_error) - 1;
    }

    if (ic->redis_refused_what != NULL
        && strncmp(ic->redis_error, error, len) == 0
        && ic->redis_error[len] == '\0')
    {
        return;
    }

    memcpy(ic->redis_error, error, len);
    ic->redis_error[len] = '\0';
    ic->redis_refused_what = what;

    ingest_log(INGEST_LOG_ERR, "redis \"%s\" refuses %s of \"%s\": %s; "
               "trying again with a backoff (up to %d s)", ic->redis, what,
               ic->queue, error, INGEST_REDIS_BACKOFF_MAX_MS / 1000);
}


/*
 * 0: the lock is ours; 1: another consumer holds it; -1: Redis failed.
 */

int
ingest_queue_lock(ingest_consumer_t *ic)
{
    char         ttl[32];
    const char  *argv[6];
    redisReply  *reply;
    long long    taken;

    snprintf(ttl, sizeof(ttl), "%ld", ic->lock_ttl_ms);

    argv[0] = "EVAL";
    argv[1] = ingest_lock_script;
    argv[2] = "1";
    argv[3] = ic->lock_key;
    argv[4] = ic->owner;
    argv[5] = ttl;

    reply = ingest_queue_command(ic, ingest_for_lock, 6, argv);
    if (reply == NULL) {
        return -1;
    }

    if (reply->type != REDIS_REPLY_INTEGER) {
        freeReplyObject(reply);
        return -1;
    }

    taken = reply->integer;
    freeReplyObject(reply);

    if (taken == 0) {
        return 1;
    }

    ic->locked = 1;
    ic->lock_renewed_ms = ingest_now_ms();

    /* 2: ours already, the lock outlived our connection (a Redis restart) */

    ingest_log(INGEST_LOG_NOTICE, "consuming \"%s\" as %s%s", ic->queue,
               ic->owner, taken == 2 ? " again" : "");

    return 0;
}


/*
 * Runs one of the lock scripts: KEYS[1] is the lock, ARGV[1] our identity,
 * then an optional second key and second argument.  0 when the script
 * found the lock ours (and did its work); -2 when not, and the lock is
 * no longer held; -1 on failure.
 */

static int
ingest_queue_script(ingest_consumer_t *ic, const char *what,
    const char *script, const char *key2, const char *arg2)
{
    int          argc, rc;
    const char  *argv[7];
    redisReply  *reply;

    argc = 0;
    argv[argc++] = "EVAL";
    argv[argc++] = script;
    argv[argc++] = key2 ? "2" : "1";
    argv[argc++] = ic->lock_key;

    if (key2 != NULL) {
        argv[argc++] = key2;
    }

    argv[argc++] = ic->owner;

    if (arg2 != NULL) {
        argv[argc++] = arg2;
    }

    reply = ingest_queue_command(ic, what, argc, argv);
    if (reply == NULL) {
        return -1;
    }

    rc = (reply->type == REDIS_REPLY_INTEGER) ? (reply->integer == 1) : -1;

    freeReplyObject(reply);

    if (rc == 0) {
        ic->locked = 0;
        return -2;
    }

    return (rc == 1) ? 0 : -1;
}


/* 0: still ours; -2: lost; -1: Redis failed */

int
ingest_queue_renew(ingest_consumer_t *ic)
{
    int   rc;
    char  ttl[32];

    snprintf(ttl, sizeof(ttl), "%ld", ic->lock_ttl_ms);

    rc = ingest_queue_script(ic, ingest_for_lock, ingest_renew_script, NULL,
                            ttl);

    if (rc == 0) {
        ic->lock_renewed_ms = ingest_now_ms();
    }

    return rc;
}


void
ingest_queue_unlock(ingest_consumer_t *ic)
{
    if (!ic->locked) {
        return;
    }

    (void) ingest_queue_script(ic, ingest_for_lock, ingest_unlock_script,
                              NULL, NULL);

    ic->locked = 0;
}


/* the first window of batches; an array reply, or NULL */

redisReply *
ingest_queue_read(ingest_consumer_t *ic)
{
    char         stop[32];
    const char  *argv[4];
    redisReply  *reply;

    snprintf(stop, sizeof(stop), "%ld", ic->window - 1);

    argv[0] = "LRANGE";
    argv[1] = ic->queue;
    argv[2] = "0";
    argv[3] = stop;

    reply = ingest_queue_command(ic, ingest_for_read, 4, argv);
    if (reply == NULL) {
        return NULL;
    }

    if (reply->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(reply);
        return NULL;
    }

    return reply;
}


/* drop the n batches just applied; 0, -2 (lock lost) or -1 */

int
ingest_queue_trim(ingest_consumer_t *ic, size_t n)
{
    char  start[32];

    snprintf(start, sizeof(start), "%zu", n);

    return ingest_queue_script(ic, ingest_for_trim, ingest_trim_script,
                               ic->queue, start);
}


/*
 * The heartbeat the status endpoint shows: what this consumer applied,
 * when it last committed, and how far behind the producers it is.  It
 * expires, so a consumer that stopped is seen as such.
 */

void
ingest_queue_heartbeat(ingest_consumer_t *ic)
{
    char         value[512];
    int64_t      now;
    const char  *argv[6];
    redisReply  *reply;

    now = ingest_now_ms();

    if (now - ic->heartbeat_ms < 1000) {
        return;
    }

    ic->heartbeat_ms = now;

    snprintf(value, sizeof(value),
             "{\"ts\":%lld,\"batches\":%llu,\"rows\":%llu,"
             "\"last_commit\":%lld,\"lag_ms\":%lld,\"owner\":\"%s\"}",
             (long long) now, (unsigned long long) ic->batches,
             (unsigned long long) ic->keys, (long long) ic->last_commit_ms,
             (long long) ic->lag_ms, ic->owner);

    argv[0] = "EVAL";
    argv[1] = ingest_heartbeat_script;
    argv[2] = "1";
    argv[3] = ic->heartbeat_key;
    argv[4] = value;
    argv[5] = "10000";

    reply = ingest_queue_command(ic, ingest_for_heartbeat, 6, argv);
    if (reply != NULL) {
        freeReplyObject(reply);
    }
}
