
/*
 * Copyright (C) ngx_ingest developers
 *
 * ingest_redis cluster: one async connection per master a worker needs,
 * on nginx's loop like the standalone one (ngx_http_ingest_redis.c).
 *
 * - The slot map comes from CLUSTER SLOTS, asked of any node that
 *   answers (the seeds first), at start and whenever it is stale: a
 *   MOVED, a lost connection, CLUSTERDOWN or READONLY.
 * - Each list lives in one slot (its hash tag, or its whole name) and
 *   its oldest batch goes to that slot's master.  MOVED points the slot
 *   at the new owner and the batch is sent again; ASK sends it once to
 *   the node named, after ASKING.
 * - With replicas=N (default 1), RPUSH is followed by WAIT N: a batch
 *   counts as delivered only once N replicas have it, so that a master
 *   that dies before replicating cannot take an acknowledged batch with
 *   it.  A batch whose fate is unknown is sent again with its identity;
 *   the consumer skips the duplicate.
 */


#include "ngx_http_ingest_module.h"


static ngx_http_ingest_node_t *ngx_http_ingest_cluster_node(
    ngx_http_ingest_worker_t *w, u_char *host, size_t len, int port);
static void ngx_http_ingest_cluster_connect(ngx_http_ingest_worker_t *w,
    ngx_http_ingest_node_t *node);
static void ngx_http_ingest_cluster_cleanup(void *data);
static void ngx_http_ingest_cluster_connected(const redisAsyncContext *ac,
    int status);
static void ngx_http_ingest_cluster_disconnected(
    const redisAsyncContext *ac, int status);
static void ngx_http_ingest_cluster_lost(ngx_http_ingest_worker_t *w,
    ngx_http_ingest_node_t *node, const char *why);
static void ngx_http_ingest_cluster_refresh(ngx_http_ingest_worker_t *w);
static redisAsyncContext *ngx_http_ingest_cluster_reach(
    ngx_http_ingest_worker_t *w, ngx_uint_t index);
static void ngx_http_ingest_cluster_slots(redisAsyncContext *ac, void *r,
    void *privdata);
static void ngx_http_ingest_cluster_pushed(redisAsyncContext *ac, void *r,
    void *privdata);
static void ngx_http_ingest_cluster_waited(redisAsyncContext *ac, void *r,
    void *privdata);
static ngx_int_t ngx_http_ingest_cluster_redirect(
    ngx_http_ingest_worker_t *w, ngx_http_ingest_queue_t *q,
    redisReply *reply);
static void ngx_http_ingest_cluster_resend(ngx_event_t *ev);
static void ngx_http_ingest_cluster_update(ngx_http_ingest_worker_t *w);


ngx_int_t
ngx_http_ingest_cluster_init(ngx_http_ingest_worker_t *w)
{
    ngx_uint_t                    i;
    ngx_http_ingest_seed_t       *seed;
    ngx_http_ingest_cluster_t    *cl;

    cl = ngx_pcalloc(ngx_cycle->pool, sizeof(ngx_http_ingest_cluster_t));
    if (cl == NULL) {
        return NGX_ERROR;
    }

    w->cluster = cl;

    cl->owner = ngx_pcalloc(ngx_cycle->pool,
                            INGEST_CLUSTER_SLOTS * sizeof(uint8_t));
    if (cl->owner == NULL) {
        return NGX_ERROR;
    }

    cl->resend.handler = ngx_http_ingest_cluster_resend;
    cl->resend.data = &w->timer_conn;
    cl->resend.log = w->log;

    seed = w->imcf->seeds.elts;

    for (i = 0; i < w->imcf->seeds.nelts; i++) {
        if (ngx_http_ingest_cluster_node(w, seed[i].host,
                                         ngx_strlen(seed[i].host),
                                         seed[i].port)
            == NULL)
        {
            return NGX_ERROR;
        }
    }

    for (i = 0; i < w->nqueues; i++) {
        w->queues[i].slot = ingest_cluster_slot(w->queues[i].name.data,
                                                w->queues[i].name.len);
    }

    cl->stale = 1;

    return NGX_OK;
}


/* the node at host:port, added (not connected) if new */

static ngx_http_ingest_node_t *
ngx_http_ingest_cluster_node(ngx_http_ingest_worker_t *w, u_char *host,
    size_t len, int port)
{
    ngx_uint_t                  i;
    ngx_http_ingest_node_t     *node;
    ngx_http_ingest_cluster_t  *cl;

    cl = w->cluster;

    for (i = 0; i < cl->nnodes; i++) {
        node = &cl->nodes[i];

        if (node->port == port && ngx_strlen(node->host) == len
            && ngx_strncmp(node->host, host, len) == 0)
        {
            return node;
        }
    }

    if (cl->nnodes == NGX_HTTP_INGEST_MAX_NODES
        || len >= sizeof(cl->nodes[0].host))
    {
        ngx_log_error(NGX_LOG_ALERT, w->log, 0,
                      "ingest redis cluster: more than %d nodes, or a "
                      "host name too long", NGX_HTTP_INGEST_MAX_NODES);
        return NULL;
    }

    node = &cl->nodes[cl->nnodes];
    ngx_memzero(node, sizeof(ngx_http_ingest_node_t));

    ngx_memcpy(node->host, host, len);
    node->host[len] = '\0';
    node->port = port;
    node->index = ++cl->nnodes;       /* 1-based: 0 is "no owner" */

    node->connect_timer.handler = ngx_http_ingest_cluster_timeout;
    node->connect_timer.data = &w->timer_conn;
    node->connect_timer.log = w->log;
    node->connect_timer.cancelable = 1;

    return node;
}


static void
ngx_http_ingest_cluster_connect(ngx_http_ingest_worker_t *w,
    ngx_http_ingest_node_t *node)
{
    redisAsyncContext  *ac;

    if (node->ac != NULL || w->exiting) {
        return;
    }

    ac = redisAsyncConnect((char *) node->host, node->port);

    if (ac == NULL) {
        ngx_http_ingest_cluster_lost(w, node, "out of memory");
        return;
    }

    if (ac->err) {
        ngx_http_ingest_cluster_lost(w, node, ac->errstr);
        redisAsyncFree(ac);
        return;
    }

    node->conn = ngx_http_ingest_redis_wrap(w, ac, node,
                                            ngx_http_ingest_cluster_cleanup);
    if (node->conn == NULL) {
        redisAsyncFree(ac);
        ngx_http_ingest_cluster_lost(w, node, "no free connection");
        return;
    }

    node->ac = ac;

    redisAsyncSetConnectCallback(ac, ngx_http_ingest_cluster_connected);
    redisAsyncSetDisconnectCallback(ac,
                                    ngx_http_ingest_cluster_disconnected);

    ngx_add_timer(&node->connect_timer, w->imcf->connect_timeout);
}


static void
ngx_http_ingest_cluster_cleanup(void *data)
{
    ngx_connection_t        *c = data;
    ngx_http_ingest_node_t  *node;

    node = ((redisAsyncContext *) c->data)->data;

    ngx_http_ingest_redis_release(c);

    node->ac = NULL;
    node->conn = NULL;
    node->connected = 0;

    if (node->connect_timer.timer_set) {
        ngx_del_timer(&node->connect_timer);
    }
}


static void
ngx_http_ingest_cluster_connected(const redisAsyncContext *ac, int status)
{
    ngx_http_ingest_node_t    *node = ac->data;
    ngx_http_ingest_worker_t  *w;

    w = ngx_http_ingest_worker;

    if (status != REDIS_OK) {
        ngx_http_ingest_cluster_lost(w, node, ac->errstr);
        return;
    }

    if (node->connect_timer.timer_set) {
        ngx_del_timer(&node->connect_timer);
    }

    node->connected = 1;

    if (node->down) {
        node->down = 0;
        ngx_http_ingest_stat_add(reconnects, 1);
        ngx_log_error(NGX_LOG_NOTICE, w->log, 0,
                      "ingest redis cluster node %s:%d connection restored",
                      node->host, node->port);
    }

    ngx_http_ingest_cluster_update(w);

    if (w->cluster->stale) {
        ngx_http_ingest_cluster_refresh(w);
    }
}


static void
ngx_http_ingest_cluster_disconnected(const redisAsyncContext *ac,
    int status)
{
    ngx_http_ingest_worker_t  *w;

    w = ngx_http_ingest_worker;

    if (w->exiting) {
        return;
    }

    ngx_http_ingest_cluster_lost(w, ac->data,
                                 status == REDIS_OK ? "closed" : ac->errstr);
}


/*
 * A node is gone or going: its batches' fate is unknown and they are
 * sent again; the map is stale (a failover may be under way) and is
 * asked again, after the backoff.
 */

static void
ngx_http_ingest_cluster_lost(ngx_http_ingest_worker_t *w,
    ngx_http_ingest_node_t *node, const char *why)
{
    ngx_uint_t  i;

    node->connected = 0;

    for (i = 0; i < w->nqueues; i++) {
        if (w->queues[i].sent_node == node->index) {
            w->queues[i].sent = 0;
            w->queues[i].sent_node = 0;
        }
    }

    if (w->cluster->refreshing == node->index) {
        w->cluster->refreshing = 0;
    }

    if (!node->down && !w->exiting) {
        node->down = 1;
        ngx_log_error(NGX_LOG_WARN, w->log, 0,
                      "ingest redis cluster node %s:%d connection lost: %s",
                      node->host, node->port, why);
    }

    w->cluster->stale = 1;

    ngx_http_ingest_cluster_update(w);
    ngx_http_ingest_redis_schedule(w);
}


/* w->connected and the status slot: any node connected */

static void
ngx_http_ingest_cluster_update(ngx_http_ingest_worker_t *w)
{
    ngx_uint_t  i;

    w->connected = 0;

    for (i = 0; i < w->cluster->nnodes; i++) {
        if (w->cluster->nodes[i].connected) {
            w->connected = 1;
            break;
        }
    }

    if (w->slot != NULL) {
        w->slot->connected = w->connected;
    }
}


/* the retry timer: ask for the map if it is stale, then send */

void
ngx_http_ingest_cluster_retry(ngx_http_ingest_worker_t *w)
{
    if (w->cluster->stale) {
        ngx_http_ingest_cluster_refresh(w);
    }

    ngx_http_ingest_redis_send_all(w);
}


/*
 * CLUSTER SLOTS of a connected node, or a connection to the next node in
 * turn (its connect callback asks then).
 */

static void
ngx_http_ingest_cluster_refresh(ngx_http_ingest_worker_t *w)
{
    ngx_uint_t                  i, n;
    ngx_http_ingest_node_t     *node;
    ngx_http_ingest_cluster_t  *cl;

    cl = w->cluster;

    if (cl->refreshing || w->exiting) {
        return;
    }

    for (i = 0; i < cl->nnodes; i++) {
        node = &cl->nodes[i];

        if (node->connected
            && redisAsyncCommand(node->ac, ngx_http_ingest_cluster_slots,
                                 node, "CLUSTER SLOTS")
               == REDIS_OK)
        {
            cl->refreshing = node->index;
            return;
        }
    }

    /* none connected: try the next one that is not trying already */

    for (n = 0; n < cl->nnodes; n++) {
        node = &cl->nodes[cl->next++ % cl->nnodes];

        if (node->ac == NULL) {
            ngx_http_ingest_cluster_connect(w, node);
            return;
        }
    }
}


/*
 * [[start, end, [host, port, id], [replica...]...], ...]: each range's
 * master owns its slots.
 */

static void
ngx_http_ingest_cluster_slots(redisAsyncContext *ac, void *r, void *privdata)
{
    redisReply                 *reply = r;
    ngx_uint_t                  i, s, covered;
    ingest_cluster_range_t      range;
    ngx_http_ingest_node_t     *node;
    ngx_http_ingest_worker_t   *w;
    ngx_http_ingest_cluster_t  *cl;

    w = ngx_http_ingest_worker;
    cl = w->cluster;

    if (cl->refreshing == ((ngx_http_ingest_node_t *) privdata)->index) {
        cl->refreshing = 0;
    }

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY) {
        ngx_log_error(NGX_LOG_WARN, w->log, 0,
                      "ingest redis cluster: CLUSTER SLOTS failed: %*s",
                      (size_t) (reply && reply->type == REDIS_REPLY_ERROR
                                ? reply->len : 0),
                      reply ? reply->str : NULL);
        ngx_http_ingest_redis_schedule(w);
        return;
    }

    covered = 0;
    cl->refreshed_at = ngx_current_msec;

    for (i = 0; i < cl->nnodes; i++) {
        cl->nodes[i].replicas = 0;
    }

    for (i = 0; i < reply->elements; i++) {
        if (ingest_cluster_range(reply->element[i], &range) != 0) {
            continue;
        }

        node = ngx_http_ingest_cluster_node(w, (u_char *) range.host,
                                            range.host_len, range.port);
        if (node == NULL) {
            continue;
        }

        node->replicas = ngx_max(node->replicas, range.replicas);

        for (s = range.start; s <= range.end; s++) {
            cl->owner[s] = (uint8_t) node->index;
        }

        covered += range.end - range.start + 1;
    }

    if (covered < INGEST_CLUSTER_SLOTS) {
        /* a map in the middle of a failover: ask again soon */
        cl->stale = 1;
        ngx_http_ingest_redis_schedule(w);

    } else {
        cl->stale = 0;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, w->log, 0,
                   "ingest redis cluster: %ui slots mapped on %ui nodes",
                   covered, cl->nnodes);

    /* not from inside hiredis: sending may connect and free */
    ngx_post_event(&cl->resend, &ngx_posted_events);
}


static void
ngx_http_ingest_cluster_resend(ngx_event_t *ev)
{
    ngx_http_ingest_redis_send_all(ngx_http_ingest_worker);
}


/*
 * The connection to node index (1-based), opened if need be; NULL while
 * there is none, or no node is known (index 0: the map is asked for).
 */

static redisAsyncContext *
ngx_http_ingest_cluster_reach(ngx_http_ingest_worker_t *w, ngx_uint_t index)
{
    ngx_http_ingest_node_t  *node;

    if (index == 0) {
        ngx_http_ingest_cluster_refresh(w);
        return NULL;
    }

    node = &w->cluster->nodes[index - 1];

    if (node->ac == NULL) {
        ngx_http_ingest_cluster_connect(w, node);
    }

    return node->ac;
}


/* the async context of the master of key's slot */

redisAsyncContext *
ngx_http_ingest_cluster_ctx(ngx_http_ingest_worker_t *w, const u_char *key,
    size_t len)
{
    return ngx_http_ingest_cluster_reach(w,
               w->cluster->owner[ingest_cluster_slot(key, len)]);
}


/* RPUSH q's oldest batch to its slot's master (or where ASK said) */

void
ngx_http_ingest_cluster_send(ngx_http_ingest_worker_t *w,
    ngx_http_ingest_queue_t *q)
{
    const char               *argv[3];
    size_t                    argvlen[3];
    ngx_uint_t                index;
    ngx_http_ingest_node_t   *node;
    ngx_http_ingest_batch_t  *b;

    b = ngx_http_ingest_flush_oldest(q);

    if (b == NULL || q->sent || w->exiting) {
        return;
    }

    if (ngx_current_msec - w->cluster->refreshed_at > 5000) {
        /* now and then: replicas come back, masters move */
        ngx_http_ingest_cluster_refresh(w);
    }

    index = q->ask ? q->ask : w->cluster->owner[q->slot];

    if (ngx_http_ingest_cluster_reach(w, index) == NULL) {
        return;
    }

    node = &w->cluster->nodes[index - 1];

    if (q->ask
        && redisAsyncCommand(node->ac, NULL, NULL, "ASKING") != REDIS_OK)
    {
        return;
    }

    q->ask = 0;

    ngx_http_ingest_redis_rpush(&q->name, &b->buf, argv, argvlen);

    if (redisAsyncCommandArgv(node->ac, ngx_http_ingest_cluster_pushed, q,
                              3, argv, argvlen)
        != REDIS_OK)
    {
        return;
    }

    q->pushed = 0;

    /*
     * A master without a replica has no failover to lose a batch to
     * (and with appendfsync always, its own disk keeps it): WAIT for the
     * replicas it has, up to replicas=.
     */

    q->wait_for = ngx_min(w->imcf->replicas, node->replicas);

    if (q->wait_for) {
        (void) redisAsyncCommand(node->ac, ngx_http_ingest_cluster_waited, q,
                                 "WAIT %u %u", (unsigned) q->wait_for,
                                 (unsigned) (w->imcf->ack_timeout / 2));
    }

    q->sent_node = node->index;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, w->log, 0,
                   "ingest batch of \"%V\" to %s", &q->name, node->host);

    ngx_http_ingest_redis_sent(w, q, b);
}


static void
ngx_http_ingest_cluster_pushed(redisAsyncContext *ac, void *r,
    void *privdata)
{
    ngx_uint_t                 transient, level;
    redisReply                *reply = r;
    ngx_http_ingest_queue_t   *q = privdata;
    ngx_http_ingest_worker_t  *w;

    w = ngx_http_ingest_worker;

    if (reply == NULL) {
        /* the node's connection is going: sent again (lost() did it) */
        return;
    }

    if (reply->type == REDIS_REPLY_INTEGER) {
        if (q->wait_for == 0) {
            w->backoff = 0;
            ngx_http_ingest_redis_acked(w, q);
            return;
        }

        /* in the master: the WAIT that follows says if it is safe */
        q->pushed = 1;
        return;
    }

    q->sent = 0;
    q->sent_node = 0;

    if (ngx_http_ingest_cluster_redirect(w, q, reply) == NGX_OK) {
        return;
    }

    ngx_http_ingest_stat_add(batches_failed, 1);

    /* a failover under way says so for a second or two: not an error */

    transient = reply->type == REDIS_REPLY_ERROR
                && (ngx_strncmp(reply->str, "CLUSTERDOWN", 11) == 0
                    || ngx_strncmp(reply->str, "READONLY", 8) == 0
                    || ngx_strncmp(reply->str, "TRYAGAIN", 8) == 0);

    level = transient ? NGX_LOG_WARN : NGX_LOG_ERR;

    ngx_log_error(level, w->log, 0,
                  "ingest redis RPUSH to \"%V\" failed: %*s, batch kept "
                  "for retry", &q->name,
                  (size_t) (reply->type == REDIS_REPLY_ERROR
                            ? reply->len : 0), reply->str);

    if (transient) {
        w->cluster->stale = 1;
    }

    ngx_http_ingest_redis_schedule(w);
    ngx_http_ingest_redis_arm_ack(w);
}


/* MOVED <slot> <host:port> and ASK <slot> <host:port> */

static ngx_int_t
ngx_http_ingest_cluster_redirect(ngx_http_ingest_worker_t *w,
    ngx_http_ingest_queue_t *q, redisReply *reply)
{
    u_char                  *p, *last, *colon;
    ngx_int_t                port, ask;
    ngx_uint_t               slot;
    ngx_http_ingest_node_t  *node;

    if (reply->type != REDIS_REPLY_ERROR) {
        return NGX_DECLINED;
    }

    p = (u_char *) reply->str;
    last = p + reply->len;

    if (reply->len > 6 && ngx_strncmp(p, "MOVED ", 6) == 0) {
        ask = 0;
        p += 6;

    } else if (reply->len > 4 && ngx_strncmp(p, "ASK ", 4) == 0) {
        ask = 1;
        p += 4;

    } else {
        return NGX_DECLINED;
    }

    slot = 0;

    while (p < last && *p >= '0' && *p <= '9') {
        slot = slot * 10 + (*p++ - '0');
    }

    if (p == last || *p++ != ' ' || slot >= INGEST_CLUSTER_SLOTS) {
        return NGX_DECLINED;
    }

    colon = NULL;

    for (last = p; last < (u_char *) reply->str + reply->len; last++) {
        if (*last == ':') {
            colon = last;
        }
    }

    if (colon == NULL) {
        return NGX_DECLINED;
    }

    port = ngx_atoi(colon + 1, last - colon - 1);
    if (port <= 0 || port > 65535) {
        return NGX_DECLINED;
    }

    node = ngx_http_ingest_cluster_node(w, p, colon - p, (int) port);
    if (node == NULL) {
        return NGX_DECLINED;
    }

    ngx_log_error(NGX_LOG_INFO, w->log, 0,
                  "ingest redis cluster: %s slot %ui of \"%V\" to %s:%d",
                  ask ? "asked to send" : "moved", slot, &q->name,
                  node->host, node->port);

    if (ask) {
        q->ask = node->index;

    } else {
        w->cluster->owner[slot] = (uint8_t) node->index;
        w->cluster->stale = 1;
        ngx_http_ingest_cluster_refresh(w);
    }

    ngx_post_event(&w->cluster->resend, &ngx_posted_events);

    return NGX_OK;
}


static void
ngx_http_ingest_cluster_waited(redisAsyncContext *ac, void *r,
    void *privdata)
{
    redisReply                *reply = r;
    ngx_http_ingest_queue_t   *q = privdata;
    ngx_http_ingest_worker_t  *w;

    w = ngx_http_ingest_worker;

    if (reply == NULL || !q->sent || !q->pushed) {
        /* lost, or the RPUSH before it failed and was dealt with */
        return;
    }

    q->pushed = 0;

    if (reply->type == REDIS_REPLY_INTEGER
        && (ngx_uint_t) reply->integer >= q->wait_for)
    {
        w->backoff = 0;
        ngx_http_ingest_redis_acked(w, q);
        return;
    }

    /* in the master alone: a failover now would lose it; sent again */

    q->sent = 0;
    q->sent_node = 0;

    ngx_http_ingest_stat_add(batches_failed, 1);

    ngx_log_error(NGX_LOG_WARN, w->log, 0,
                  "ingest redis batch of \"%V\" reached %i of %ui replicas "
                  "in time; sent again", &q->name,
                  reply->type == REDIS_REPLY_INTEGER ? reply->integer : -1,
                  q->wait_for);

    /* a replica may be gone: the map says how many are left */
    w->cluster->stale = 1;

    ngx_http_ingest_redis_schedule(w);
    ngx_http_ingest_redis_arm_ack(w);
}


/* a connect or a reply took too long: drop the node, ask for the map */

void
ngx_http_ingest_cluster_timeout(ngx_event_t *ev)
{
    ngx_uint_t                  i, j;
    ngx_http_ingest_node_t     *node;
    ngx_http_ingest_worker_t   *w;

    w = ngx_http_ingest_worker;

    for (i = 0; i < w->cluster->nnodes; i++) {
        node = &w->cluster->nodes[i];

        if (node->ac == NULL) {
            continue;
        }

        if (ev == &node->connect_timer) {
            goto close;
        }

        if (ev != &w->ack_timer) {
            continue;
        }

        for (j = 0; j < w->nqueues; j++) {
            if (w->queues[j].sent_node == node->index
                && ngx_current_msec - w->queues[j].sent_at
                   >= w->imcf->ack_timeout)
            {
                goto close;
            }
        }

        continue;

    close:

        ngx_log_error(NGX_LOG_WARN, w->log, 0,
                      "ingest redis cluster node %s:%d %s timed out",
                      node->host, node->port,
                      ev == &w->ack_timer ? "reply" : "connect");

        /* not a hiredis callback: freeing here is safe */
        redisAsyncFree(node->ac);
        ngx_http_ingest_cluster_lost(w, node, "timed out");
    }

    ngx_http_ingest_redis_arm_ack(w);
}


void
ngx_http_ingest_cluster_close(ngx_http_ingest_worker_t *w, ngx_uint_t how)
{
    ngx_uint_t  i;

    for (i = 0; i < w->cluster->nnodes; i++) {
        if (w->cluster->nodes[i].ac == NULL) {
            continue;
        }

        if (how) {
            redisAsyncDisconnect(w->cluster->nodes[i].ac);

        } else {
            redisAsyncFree(w->cluster->nodes[i].ac);
        }
    }
}


/*
 * The exit path's blocking connection to the master of q's list, as the
 * worker last knew it (one per node, kept in conns); NULL if it cannot
 * be had.
 */

redisContext *
ngx_http_ingest_cluster_sync(ngx_http_ingest_worker_t *w,
    ngx_http_ingest_queue_t *q, redisContext **conns, struct timeval tv)
{
    ngx_uint_t               index;
    redisContext            *rc;
    ngx_http_ingest_node_t  *node;

    index = w->cluster->owner[q->slot];

    if (index == 0) {
        return NULL;
    }

    if (conns[index - 1] != NULL) {
        return conns[index - 1];
    }

    node = &w->cluster->nodes[index - 1];

    rc = redisConnectWithTimeout((char *) node->host, node->port, tv);

    if (rc == NULL || rc->err || redisSetTimeout(rc, tv) != REDIS_OK) {
        if (rc != NULL) {
            redisFree(rc);
        }

        return NULL;
    }

    conns[index - 1] = rc;

    return rc;
}


/* the replicas a batch for slot waits for, as its master stands now */

ngx_uint_t
ngx_http_ingest_cluster_wait_for(ngx_http_ingest_worker_t *w,
    ngx_uint_t slot)
{
    ngx_uint_t  index;

    index = w->cluster->owner[slot];

    if (index == 0) {
        return w->imcf->replicas;
    }

    return ngx_min(w->imcf->replicas, w->cluster->nodes[index - 1].replicas);
}
