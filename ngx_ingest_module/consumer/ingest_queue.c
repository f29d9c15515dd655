
/*
 * Copyright (C) ngx_ingest developers
 * SPDX-License-Identifier: BSD-2-Clause
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
 * A batch the store refuses leaves the head of the list for the tail of
 * "<list>:dead" in one script, under the lock, behind a header line that
 * says why; --requeue-dead moves such batches back to the tail of the
 * list, the header line cut off, again in one script.  In a cluster the
 * dead-letter list is in the list's slot, named as the lock is.
 *
 * Every connection, to a standalone Redis or to any node of a cluster
 * (a seed asked for the slot map, the list's master, after a MOVED or a
 * failover), is logged in before it is used: AUTH when a password is
 * given, then SELECT when the db is not 0.
 *
 * An error reply (LOADING, NOAUTH, MISCONF, READONLY, WRONGPASS, ...) is
 * logged once per state, when the error changes and when the command it
 * refused is taken again; the loop backs off meanwhile (ic->redis_refused).
 * The login's errors name the user, never the password.
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
static const char  ingest_for_bury[] = "the dead-letter move";
static const char  ingest_for_requeue[] = "the requeue";
static const char  ingest_for_login[] = "the login";
static const char  ingest_for_select[] = "the db";
static const char  ingest_for_slots[] = "the slot map";


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

/*
 * The batch at the head of the list, if it is still the one refused
 * (ARGV[3]), to the tail of the dead-letter list behind its header line:
 * 1; 0 when the lock is not ours; -1 when the head is another batch.
 */

static const char  ingest_bury_script[] =
    "#!lua flags=allow-oom\n"
    "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end "
    "if redis.call('LINDEX', KEYS[2], 0) ~= ARGV[3] then return -1 end "
    "redis.call('RPUSH', KEYS[3], ARGV[2] .. '\\n' .. ARGV[3]) "
    "redis.call('LPOP', KEYS[2]) "
    "return 1";

/*
 * Up to ARGV[1] dead batches, oldest first, back to the tail of the list
 * without their header line: { moved, 1 if the next one has no header
 * line (it stays) }.
 */

static const char  ingest_requeue_script[] =
    "#!lua flags=allow-oom\n"
    "local moved = 0 "
    "while moved < tonumber(ARGV[1]) do "
    "local entry = redis.call('LINDEX', KEYS[1], 0) "
    "if not entry then break end "
    "local eol = string.find(entry, '\\n', 1, true) "
    "if not eol then return { moved, 1 } end "
    "redis.call('RPUSH', KEYS[2], string.sub(entry, eol + 1)) "
    "redis.call('LPOP', KEYS[1]) "
    "moved = moved + 1 "
    "end "
    "return { moved, 0 }";

static const char  ingest_heartbeat_script[] =
    "#!lua flags=allow-oom\n"
    "redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1";


static redisReply *ingest_queue_command(ingest_consumer_t *ic,
    const char *what, int argc, const char **argv);
static redisReply *ingest_queue_command_len(ingest_consumer_t *ic,
    const char *what, int argc, const char **argv, const size_t *argvlen);
static int ingest_queue_open(ingest_consumer_t *ic, const char *host,
    int port, struct timeval tv, redisContext **ctx, char *err, size_t size);
static void ingest_queue_refused(ingest_consumer_t *ic, const char *what,
    const char *error);
static const char *ingest_queue_safe(ingest_consumer_t *ic,
    const char *error, char *buf, size_t size);
static int ingest_queue_memmem(const char *p, size_t len, const char *s,
    size_t n);
static void ingest_queue_accepted(ingest_consumer_t *ic, const char *what);
static void ingest_queue_node_refused(ingest_consumer_t *ic,
    const char *host, int port, const char *error);
static void ingest_queue_node_accepted(ingest_consumer_t *ic,
    const char *host, int port);
static size_t ingest_queue_node_find(ingest_consumer_t *ic,
    const char *host, int port);
static const char *ingest_queue_who(ingest_consumer_t *ic, char *buf,
    size_t size);
static int ingest_queue_script(ingest_consumer_t *ic, const char *what,
    const char *script, const char *key2, const char *arg2);


/*
 * In a cluster: the master of the list's slot, by CLUSTER SLOTS of the
 * first seed that answers (starting after the last that did); 0 and
 * ic->redis_host/port set; -2 when a seed refused us (logged), -1 when
 * none answered.
 */

static int
ingest_queue_owner(ingest_consumer_t *ic, struct timeval tv)
{
    int                      rc, refused;
    char                     err[128];
    size_t                   i, n, s;
    unsigned                 slot;
    redisReply              *reply;
    redisContext            *c;
    ingest_redis_node_t     *seed;
    ingest_cluster_range_t   r;

    slot = ingest_cluster_slot((const unsigned char *) ic->queue,
                               strlen(ic->queue));
    refused = 0;

    for (n = 0; n < ic->redis_conf.nnodes; n++) {
        s = (ic->next_seed + n) % ic->redis_conf.nnodes;
        seed = &ic->redis_conf.nodes[s];

        rc = ingest_queue_open(ic, seed->host, seed->port, tv, &c, err,
                               sizeof(err));

        if (rc != 0) {
            refused |= (rc == -2);
            continue;
        }

        reply = redisCommand(c, "CLUSTER SLOTS");
        redisFree(c);

        if (reply != NULL && reply->type == REDIS_REPLY_ERROR) {
            /* NOPERM: a role without cluster|slots */
            ingest_queue_refused(ic, ingest_for_slots, reply->str);
            refused = 1;
            freeReplyObject(reply);
            continue;
        }

        if (reply == NULL || reply->type != REDIS_REPLY_ARRAY) {
            if (reply != NULL) {
                freeReplyObject(reply);
            }

            continue;
        }

        ingest_queue_accepted(ic, ingest_for_slots);

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

    return refused ? -2 : -1;
}


int
ingest_queue_connect(ingest_consumer_t *ic)
{
    int              rc;
    char             err[128];
    redisContext    *c;
    struct timeval   tv;

    tv.tv_sec = INGEST_REDIS_TIMEOUT_MS / 1000;
    tv.tv_usec = (INGEST_REDIS_TIMEOUT_MS % 1000) * 1000;

    if (ic->cluster) {
        rc = ingest_queue_owner(ic, tv);

        if (rc == -1 && !ic->redis_down) {
            ic->redis_down = 1;
            ingest_log(INGEST_LOG_WARN, "redis cluster \"%s\": no seed "
                       "names a master for \"%s\"", ic->redis, ic->queue);
        }

        if (rc != 0) {
            return -1;
        }
    }

    rc = ingest_queue_open(ic, ic->redis_host, ic->redis_port, tv, &c, err,
                           sizeof(err));

    if (rc == -1) {
        if (!ic->redis_down) {
            ic->redis_down = 1;
            ingest_log(INGEST_LOG_WARN, "redis \"%s\" unreachable: %s",
                       ic->redis, err);
        }

        return -1;
    }

    if (rc != 0) {
        /* reached, but it refused the login or the db: logged */
        return -1;
    }

    /* restored once logged in, not when a refusal was just logged */

    if (ic->redis_down) {
        ic->redis_down = 0;
        ingest_log(INGEST_LOG_NOTICE, "redis \"%s\" connection restored",
                   ic->redis);
    }

    ic->redis_ctx = c;

    return 0;
}


/*
 * A connection to host:port (port 0: host is a unix socket's path),
 * usable: logged in with AUTH [user] password when there is a password,
 * then SELECT db when the db is not 0.  0 and *ctx; -1 when Redis cannot
 * be reached or the connection is lost (err says why); -2 when Redis
 * refuses the login or the db (logged, once per state).
 */

static int
ingest_queue_open(ingest_consumer_t *ic, const char *host, int port,
    struct timeval tv, redisContext **ctx, char *err, size_t size)
{
    int                   argc, step;
    char                  db[32];
    const char           *argv[3], *what;
    redisReply           *reply;
    redisContext         *c;
    ingest_redis_conf_t  *conf;

    conf = &ic->redis_conf;

    if (port) {
        c = redisConnectWithTimeout(host, port, tv);

    } else {
        c = redisConnectUnixWithTimeout(host, tv);
    }

    if (c == NULL || c->err || redisSetTimeout(c, tv) != REDIS_OK) {
        snprintf(err, size, "%s", c ? c->errstr : "out of memory");

        if (c != NULL) {
            redisFree(c);
        }

        return -1;
    }

    for (step = 0; step < 2; step++) {
        argc = 0;

        if (step == 0) {
            if (conf->password[0] == '\0') {
                continue;
            }

            what = ingest_for_login;
            argv[argc++] = "AUTH";

            if (conf->user[0] != '\0') {
                argv[argc++] = conf->user;
            }

            argv[argc++] = conf->password;

        } else {
            if (conf->db == 0) {
                continue;
            }

            what = ingest_for_select;
            snprintf(db, sizeof(db), "%ld", conf->db);
            argv[argc++] = "SELECT";
            argv[argc++] = db;
        }

        reply = redisCommandArgv(c, argc, argv, NULL);

        if (reply == NULL) {
            snprintf(err, size, "%s", c->errstr);
            redisFree(c);
            return -1;
        }

        if (reply->type == REDIS_REPLY_ERROR) {
            if (ic->cluster && what == ingest_for_login) {
                ingest_queue_node_refused(ic, host, port, reply->str);

            } else {
                ingest_queue_refused(ic, what, reply->str);
            }

            freeReplyObject(reply);
            redisFree(c);
            return -2;
        }

        freeReplyObject(reply);

        if (ic->cluster && what == ingest_for_login) {
            ingest_queue_node_accepted(ic, host, port);

        } else {
            ingest_queue_accepted(ic, what);
        }
    }

    *ctx = c;

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
    return ingest_queue_command_len(ic, what, argc, argv, NULL);
}


/* the same, with the arguments' lengths (binary batches), or NULL */

static redisReply *
ingest_queue_command_len(ingest_consumer_t *ic, const char *what, int argc,
    const char **argv, const size_t *argvlen)
{
    redisReply  *reply;

    if (ic->redis_ctx == NULL) {
        return NULL;
    }

    reply = redisCommandArgv(ic->redis_ctx, argc, argv, argvlen);

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

    ingest_queue_accepted(ic, what);

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
    char         buf[INGEST_REDIS_USER_LEN + 16], safe[512];
    size_t       len;
    const char  *who;

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

    who = ingest_queue_who(ic, buf, sizeof(buf));
    error = ingest_queue_safe(ic, error, safe, sizeof(safe));

    if (what == ingest_for_login) {
        ingest_log(INGEST_LOG_ERR, "redis \"%s\" refuses the login of %s: "
                   "%s; trying again with a backoff (up to %d s)",
                   ic->redis, who, error, INGEST_REDIS_BACKOFF_MAX_MS / 1000);

    } else if (what == ingest_for_select) {
        ingest_log(INGEST_LOG_ERR, "redis \"%s\" refuses db %ld to %s: %s; "
                   "trying again with a backoff (up to %d s)", ic->redis,
                   ic->redis_conf.db, who, error,
                   INGEST_REDIS_BACKOFF_MAX_MS / 1000);

    } else if (strcmp(ic->redis_error, "NOPERM") == 0
               || (ic->redis_conf.password[0] != '\0'
                   && (strcmp(ic->redis_error, "WRONGPASS") == 0
                       || strcmp(ic->redis_error, "NOAUTH") == 0)))
    {
        /* what ACL refuses, it refuses to a user: which one */
        ingest_log(INGEST_LOG_ERR, "redis \"%s\" refuses %s of \"%s\" to "
                   "%s: %s; trying again with a backoff (up to %d s)",
                   ic->redis, what, ic->queue, who, error,
                   INGEST_REDIS_BACKOFF_MAX_MS / 1000);

    } else {
        ingest_log(INGEST_LOG_ERR, "redis \"%s\" refuses %s of \"%s\": %s; "
                   "trying again with a backoff (up to %d s)", ic->redis,
                   what, ic->queue, error,
                   INGEST_REDIS_BACKOFF_MAX_MS / 1000);
    }
}


/*
 * An error reply as the log may show it.  Redis echoes the arguments of
 * a command it does not know ("ERR unknown command 'AUTH', with args
 * beginning with: 'user' 'password'": AUTH renamed, or a proxy), so the
 * text is cut there; and when it still holds the password, only its
 * first word is left.
 */

static const char *
ingest_queue_safe(ingest_consumer_t *ic, const char *error, char *buf,
    size_t size)
{
    size_t       len;
    const char  *args, *password;

    password = ic->redis_conf.password;

    args = strstr(error, ", with args beginning with");
    len = args ? (size_t) (args - error) : strlen(error);

    if (password[0] != '\0'
        && ingest_queue_memmem(error, len, password, strlen(password)))
    {
        len = strcspn(error, " ");
    }

    if (len >= size) {
        len = size - 1;
    }

    memcpy(buf, error, len);
    buf[len] = '\0';

    return buf;
}


/* s[0, n) is in p[0, len) */

static int
ingest_queue_memmem(const char *p, size_t len, const char *s, size_t n)
{
    size_t  i;

    for (i = 0; n <= len && i <= len - n; i++) {
        if (memcmp(p + i, s, n) == 0) {
            return 1;
        }
    }

    return 0;
}


/* what was refused is taken: the end of the refusals, logged */

static void
ingest_queue_accepted(ingest_consumer_t *ic, const char *what)
{
    char         buf[INGEST_REDIS_USER_LEN + 16];
    const char  *who;

    if (ic->redis_refused_what != what) {
        return;
    }

    who = ingest_queue_who(ic, buf, sizeof(buf));

    if (what == ingest_for_login) {
        ingest_log(INGEST_LOG_NOTICE, "redis \"%s\" accepts the login of %s "
                   "again", ic->redis, who);

    } else if (what == ingest_for_select) {
        ingest_log(INGEST_LOG_NOTICE, "redis \"%s\" accepts db %ld for %s "
                   "again", ic->redis, ic->redis_conf.db, who);

    } else {
        ingest_log(INGEST_LOG_NOTICE, "redis \"%s\" accepts %s of \"%s\" "
                   "again", ic->redis, what, ic->queue);
    }

    ic->redis_error[0] = '\0';
    ic->redis_refused_what = NULL;
}


/*
 * In a cluster, a node refuses the login: logged with the node's address
 * when it did not already refuse it so; the refusal is the node's, ended
 * only by the node's own acceptance, not by another node's (the seed that
 * names the master accepts it while the master refuses: no flapping).
 */

static void
ingest_queue_node_refused(ingest_consumer_t *ic, const char *host, int port,
    const char *error)
{
    char         buf[INGEST_REDIS_USER_LEN + 16], safe[512], *logged;
    size_t       i, len;
    const char  *who;

    ic->redis_refused = 1;

    len = strcspn(error, " ");
    if (len == 0) {
        len = strlen(error);
    }

    if (len >= sizeof(ic->login_refused[0].error)) {
        len = sizeof(ic->login_refused[0].error) - 1;
    }

    i = ingest_queue_node_find(ic, host, port);

    if (i < ic->nlogin_refused) {
        logged = ic->login_refused[i].error;

        if (strncmp(logged, error, len) == 0 && logged[len] == '\0') {
            return;
        }

    } else {
        if (ic->nlogin_refused == INGEST_LOGIN_REFUSED_MAX) {
            /* forget the oldest: at worst, it is logged again */
            memmove(&ic->login_refused[0], &ic->login_refused[1],
                    (INGEST_LOGIN_REFUSED_MAX - 1)
                    * sizeof(ic->login_refused[0]));
            ic->nlogin_refused--;
        }

        i = ic->nlogin_refused++;
        snprintf(ic->login_refused[i].host, sizeof(ic->login_refused[i].host),
                 "%s", host);
        ic->login_refused[i].port = port;
    }

    memcpy(ic->login_refused[i].error, error, len);
    ic->login_refused[i].error[len] = '\0';

    who = ingest_queue_who(ic, buf, sizeof(buf));
    error = ingest_queue_safe(ic, error, safe, sizeof(safe));

    ingest_log(INGEST_LOG_ERR, "redis node %s%s%s:%d of cluster \"%s\" "
               "refuses the login of %s: %s; trying again with a backoff "
               "(up to %d s)", strchr(host, ':') ? "[" : "", host,
               strchr(host, ':') ? "]" : "", port, ic->redis, who, error,
               INGEST_REDIS_BACKOFF_MAX_MS / 1000);
}


/* the node that refused the login takes it: logged, its refusal ends */

static void
ingest_queue_node_accepted(ingest_consumer_t *ic, const char *host,
    int port)
{
    char         buf[INGEST_REDIS_USER_LEN + 16];
    size_t       i;
    const char  *who;

    i = ingest_queue_node_find(ic, host, port);

    if (i == ic->nlogin_refused) {
        return;
    }

    memmove(&ic->login_refused[i], &ic->login_refused[i + 1],
            (ic->nlogin_refused - i - 1) * sizeof(ic->login_refused[0]));
    ic->nlogin_refused--;

    who = ingest_queue_who(ic, buf, sizeof(buf));

    ingest_log(INGEST_LOG_NOTICE, "redis node %s%s%s:%d of cluster \"%s\" "
               "accepts the login of %s again", strchr(host, ':') ? "[" : "",
               host, strchr(host, ':') ? "]" : "", port, ic->redis, who);
}


/* the node's index in ic->login_refused, or nlogin_refused */

static size_t
ingest_queue_node_find(ingest_consumer_t *ic, const char *host, int port)
{
    size_t  i;

    for (i = 0; i < ic->nlogin_refused; i++) {
        if (ic->login_refused[i].port == port
            && strcmp(ic->login_refused[i].host, host) == 0)
        {
            break;
        }
    }

    return i;
}


/* who Redis sees us as, for the log: a user's name, never a password */

static const char *
ingest_queue_who(ingest_consumer_t *ic, char *buf, size_t size)
{
    if (ic->redis_conf.user[0] == '\0') {
        return "the default user";
    }

    snprintf(buf, size, "user \"%s\"", ic->redis_conf.user);

    return buf;
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
 * The refused batch at the head of the list to the dead-letter list,
 * header line first: 0; -2 when the lock is lost (nothing moved); -1 when
 * Redis failed, or the head is no longer that batch.
 */

int
ingest_queue_bury(ingest_consumer_t *ic, redisReply *element,
    const char *header)
{
    int          rc;
    size_t       argvlen[9];
    const char  *argv[9];
    redisReply  *reply;

    argv[0] = "EVAL";
    argv[1] = ingest_bury_script;
    argv[2] = "3";
    argv[3] = ic->lock_key;
    argv[4] = ic->queue;
    argv[5] = ic->dead_key;
    argv[6] = ic->owner;
    argv[7] = header;
    argv[8] = element->str;

    argvlen[0] = 4;
    argvlen[1] = sizeof(ingest_bury_script) - 1;
    argvlen[2] = 1;
    argvlen[3] = strlen(ic->lock_key);
    argvlen[4] = strlen(ic->queue);
    argvlen[5] = strlen(ic->dead_key);
    argvlen[6] = strlen(ic->owner);
    argvlen[7] = strlen(header);
    argvlen[8] = element->len;

    reply = ingest_queue_command_len(ic, ingest_for_bury, 9, argv, argvlen);
    if (reply == NULL) {
        return -1;
    }

    rc = (reply->type == REDIS_REPLY_INTEGER) ? (int) reply->integer : -2;

    freeReplyObject(reply);

    switch (rc) {
    case 1:
        return 0;

    case 0:
        ic->locked = 0;
        return -2;

    case -1:
        ingest_log(INGEST_LOG_ERR, "the head of \"%s\" is no longer the "
                   "batch refused; reading it again", ic->queue);
        return -1;

    default:
        return -1;
    }
}


/*
 * Up to max dead batches back to the tail of the list: 0 and *moved;
 * 1 when the next element of the dead-letter list is no dead batch (it
 * stays); -1 when Redis failed.
 */

int
ingest_queue_requeue(ingest_consumer_t *ic, size_t max, size_t *moved)
{
    int          rc;
    char         count[32];
    const char  *argv[6];
    redisReply  *reply;

    snprintf(count, sizeof(count), "%zu", max);

    argv[0] = "EVAL";
    argv[1] = ingest_requeue_script;
    argv[2] = "2";
    argv[3] = ic->dead_key;
    argv[4] = ic->queue;
    argv[5] = count;

    *moved = 0;

    reply = ingest_queue_command(ic, ingest_for_requeue, 6, argv);
    if (reply == NULL) {
        return -1;
    }

    rc = -1;

    if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 2
        && reply->element[0]->type == REDIS_REPLY_INTEGER
        && reply->element[1]->type == REDIS_REPLY_INTEGER)
    {
        *moved = (size_t) reply->element[0]->integer;
        rc = reply->element[1]->integer ? 1 : 0;
    }

    freeReplyObject(reply);

    return rc;
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
             "\"bucket_rows\":%llu,"
             "\"last_commit\":%lld,\"lag_ms\":%lld,\"owner\":\"%s\"}",
             (long long) now, (unsigned long long) ic->batches,
             (unsigned long long) ic->keys,
             (unsigned long long) ic->bucket_rows,
             (long long) ic->last_commit_ms,
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
