
/*
 * Copyright (C) ngx_ingest developers
 *
 * The consumer's side of Redis: the list it drains and the lock that makes
 * it the list's only consumer.  The lock is a key, "<list>:consumer",
 * holding this process's identity with a TTL renewed every round; the
 * trim runs in a Lua script that first checks the lock is still ours, so
 * a consumer that stalled past its TTL never trims another's batches.
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


static const char  ingest_renew_script[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then "
    "return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end "
    "return 0";

static const char  ingest_trim_script[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then "
    "redis.call('LTRIM', KEYS[2], ARGV[2], -1) return 1 end "
    "return 0";

static const char  ingest_unlock_script[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then "
    "return redis.call('DEL', KEYS[1]) end "
    "return 0";


static redisReply *ingest_queue_command(ingest_consumer_t *ic, int argc,
    const char **argv);
static int ingest_queue_script(ingest_consumer_t *ic, const char *script,
    const char *key2, const char *arg2);


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
ingest_queue_command(ingest_consumer_t *ic, int argc, const char **argv)
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

        ingest_log(INGEST_LOG_ERR, "redis %s failed: %s", argv[0],
                   reply->str);

    } else {
        ic->redirected = 0;
    }

    return reply;
}


/*
 * 0: the lock is ours; 1: another consumer holds it; -1: Redis failed.
 */

int
ingest_queue_lock(ingest_consumer_t *ic)
{
    int          rc;
    char         ttl[32];
    const char  *argv[6];
    redisReply  *reply;

    snprintf(ttl, sizeof(ttl), "%ld", ic->lock_ttl_ms);

    argv[0] = "SET";
    argv[1] = ic->lock_key;
    argv[2] = ic->owner;
    argv[3] = "NX";
    argv[4] = "PX";
    argv[5] = ttl;

    reply = ingest_queue_command(ic, 6, argv);
    if (reply == NULL) {
        return -1;
    }

    if (reply->type == REDIS_REPLY_STATUS) {
        freeReplyObject(reply);

        ic->locked = 1;
        ic->lock_renewed_ms = ingest_now_ms();

        ingest_log(INGEST_LOG_NOTICE, "consuming \"%s\" as %s", ic->queue,
                   ic->owner);
        return 0;
    }

    rc = (reply->type == REDIS_REPLY_NIL) ? 1 : -1;
    freeReplyObject(reply);

    if (rc != 1) {
        return rc;
    }

    /*
     * Held, but perhaps by us: the lock outlived our connection (Redis
     * restarted with its AOF).  Renewing succeeds only if it is ours.
     */

    ic->locked = 1;

    if (ingest_queue_renew(ic) == 0) {
        ingest_log(INGEST_LOG_NOTICE, "consuming \"%s\" as %s again",
                   ic->queue, ic->owner);
        return 0;
    }

    ic->locked = 0;

    return 1;
}


/*
 * Runs one of the lock scripts: KEYS[1] is the lock, ARGV[1] our identity,
 * then an optional second key and second argument.  0 when the script
 * found the lock ours (and did its work); -2 when not, and the lock is
 * no longer held; -1 on failure.
 */

static int
ingest_queue_script(ingest_consumer_t *ic, const char *script,
    const char *key2, const char *arg2)
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

    reply = ingest_queue_command(ic, argc, argv);
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

    rc = ingest_queue_script(ic, ingest_renew_script, NULL, ttl);

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

    (void) ingest_queue_script(ic, ingest_unlock_script, NULL, NULL);

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

    reply = ingest_queue_command(ic, 4, argv);
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

    return ingest_queue_script(ic, ingest_trim_script, ic->queue, start);
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
    const char  *argv[5];
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

    argv[0] = "SET";
    argv[1] = ic->heartbeat_key;
    argv[2] = value;
    argv[3] = "PX";
    argv[4] = "10000";

    reply = ingest_queue_command(ic, 5, argv);
    if (reply != NULL) {
        freeReplyObject(reply);
    }
}
