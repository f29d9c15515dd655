
/*
 * Copyright (C) ngx_ingest developers
 * SPDX-License-Identifier: BSD-2-Clause
 *
 * The cluster transport (ingest_redis cluster): one connection per node
 * a worker needs, each as the standalone one (ngx_http_ingest_conn.c).
 *
 * - The slot map comes from CLUSTER SLOTS, asked of any node that
 *   answers (the seeds first), at start, every 5 s under traffic, and
 *   whenever it is stale: a MOVED, a lost connection, CLUSTERDOWN or
 *   READONLY.
 * - Each list lives in one slot (its hash tag, or its whole name) and
 *   its batch goes to that slot's master.  MOVED points the slot at the
 *   new owner and the batch is sent again; ASK sends it once to the node
 *   named, after ASKING.
 * - With replicas=N (default 1), RPUSH is followed by WAIT: a batch
 *   counts as delivered only once min(N, the replicas its master has)
 *   replicas hold it, so that a master that dies before replicating
 *   cannot take an acknowledged batch with it.  A master without a
 *   replica has no failover to lose a batch to (and with appendfsync
 *   always, its own disk keeps it).
 * - Replies (and so redirections) arrive inside hiredis: the map is
 *   changed there, but asking for a new one and sending again happen
 *   from a posted event.
 */


#include "ngx_http_ingest_transport.h"
#include "ngx_http_ingest_metrics.h"
#include "ingest_cluster.h"


#define NGX_HTTP_INGEST_MAP_PERIOD   5000          /* ms */


typedef struct {
    ngx_http_ingest_conn_t      conn;
    u_char                      host[NGX_SOCKADDR_STRLEN + 1];
    u_char                      addr[NGX_SOCKADDR_STRLEN + NGX_INT_T_LEN];
    ngx_uint_t                  index;         /* 1-based */
    ngx_uint_t                  replicas;      /* as the map last said */
    ngx_http_ingest_transport_t *transport;
} ngx_http_ingest_node_t;


typedef struct {
    ngx_http_ingest_node_t      nodes[NGX_HTTP_INGEST_MAX_NODES];
    ngx_uint_t                  nnodes;
    ngx_uint_t                  next;          /* the next to try */
    uint8_t                    *owner;         /* slot -> node index */
    ngx_uint_t                  refreshing;    /* asked of this node */
    ngx_msec_t                  refreshed_at;
    ngx_event_t                 resume;        /* posted: connect() */
    unsigned                    stale:1;       /* ask for the map */
} ngx_http_ingest_cluster_t;


static ngx_http_ingest_node_t *ngx_http_ingest_cluster_node(
    ngx_http_ingest_transport_t *t, u_char *host, size_t len, int port);
static ngx_http_ingest_node_t *ngx_http_ingest_cluster_reach(
    ngx_http_ingest_transport_t *t, ngx_uint_t index);
static void ngx_http_ingest_cluster_changed(ngx_event_t *ev);
static void ngx_http_ingest_cluster_refresh(ngx_http_ingest_transport_t *t);
static void ngx_http_ingest_cluster_slots(redisAsyncContext *ac, void *r,
    void *privdata);
static void ngx_http_ingest_cluster_pushed(ngx_http_ingest_push_t *p);
static ngx_int_t ngx_http_ingest_cluster_redirect(
    ngx_http_ingest_transport_t *t, ngx_http_ingest_channel_t *ch,
    u_char *err, size_t len);
static void ngx_http_ingest_cluster_resume(ngx_event_t *ev);


static ngx_int_t
ngx_http_ingest_cluster_init(ngx_http_ingest_transport_t *t,
    ngx_pool_t *pool)
{
    ngx_uint_t                  i;
    ngx_http_ingest_seed_t     *seed;
    ngx_http_ingest_cluster_t  *cl;

    cl = ngx_pcalloc(pool, sizeof(ngx_http_ingest_cluster_t));
    if (cl == NULL) {
        return NGX_ERROR;
    }

    cl->owner = ngx_pcalloc(pool, INGEST_CLUSTER_SLOTS * sizeof(uint8_t));
    if (cl->owner == NULL) {
        return NGX_ERROR;
    }

    cl->resume.handler = ngx_http_ingest_cluster_resume;
    cl->resume.data = t;
    cl->resume.log = t->log;

    t->state = cl;

    seed = t->imcf->seeds.elts;

    for (i = 0; i < t->imcf->seeds.nelts; i++) {
        if (ngx_http_ingest_cluster_node(t, seed[i].host,
                                         ngx_strlen(seed[i].host),
                                         seed[i].port)
            == NULL)
        {
            return NGX_ERROR;
        }
    }

    cl->stale = 1;

    return NGX_OK;
}


/* the node at host:port, added (not connected) if new */

static ngx_http_ingest_node_t *
ngx_http_ingest_cluster_node(ngx_http_ingest_transport_t *t, u_char *host,
    size_t len, int port)
{
    ngx_uint_t                  i;
    ngx_http_ingest_node_t     *node;
    ngx_http_ingest_cluster_t  *cl = t->state;

    for (i = 0; i < cl->nnodes; i++) {
        node = &cl->nodes[i];

        if (node->conn.port == port && ngx_strlen(node->host) == len
            && ngx_strncmp(node->host, host, len) == 0)
        {
            return node;
        }
    }

    if (cl->nnodes == NGX_HTTP_INGEST_MAX_NODES
        || len >= sizeof(cl->nodes[0].host))
    {
        ngx_log_error(NGX_LOG_ALERT, t->log, 0,
                      "ingest redis cluster: more than %d nodes, or a "
                      "host name too long", NGX_HTTP_INGEST_MAX_NODES);
        return NULL;
    }

    node = &cl->nodes[cl->nnodes];
    ngx_memzero(node, sizeof(ngx_http_ingest_node_t));

    ngx_memcpy(node->host, host, len);
    node->host[len] = '\0';
    node->index = ++cl->nnodes;       /* 1-based: 0 is "no owner" */
    node->transport = t;

    node->conn.kind = "redis cluster node";
    node->conn.name.data = node->addr;
    node->conn.name.len = ngx_sprintf(node->addr, "%s:%d", node->host, port)
                          - node->addr;
    node->conn.host = node->host;
    node->conn.port = port;
    node->conn.connect_timeout = t->imcf->connect_timeout;
    node->conn.auth = &t->imcf->auth;
    node->conn.log = t->log;
    node->conn.changed.handler = ngx_http_ingest_cluster_changed;
    node->conn.changed.data = node;

    ngx_http_ingest_conn_init(&node->conn, t->timer_data);

    return node;
}


/*
 * Node index (1-based), its connection opened if need be; NULL while it
 * is connecting or cannot be had, or no node is known (index 0: the map
 * is asked for).
 */

static ngx_http_ingest_node_t *
ngx_http_ingest_cluster_reach(ngx_http_ingest_transport_t *t,
    ngx_uint_t index)
{
    ngx_http_ingest_node_t     *node;
    ngx_http_ingest_cluster_t  *cl = t->state;

    if (index == 0) {
        ngx_http_ingest_cluster_refresh(t);
        return NULL;
    }

    node = &cl->nodes[index - 1];

    if (ngx_http_ingest_conn_open(&node->conn) != NGX_OK
        || !node->conn.connected)
    {
        /* connecting: its "changed" sends what waits */
        return NULL;
    }

    return node;
}


/* the retry timer and the posted resume: the map if stale, then send */

static void
ngx_http_ingest_cluster_connect(ngx_http_ingest_transport_t *t)
{
    ngx_http_ingest_cluster_t  *cl = t->state;

    if (t->closing) {
        return;
    }

    if (cl->stale) {
        ngx_http_ingest_cluster_refresh(t);
    }

    ngx_http_ingest_transport_resend(t);
}


static void
ngx_http_ingest_cluster_resume(ngx_event_t *ev)
{
    ngx_http_ingest_cluster_connect(ev->data);
}


/* a node's connection came or went (a posted event) */

static void
ngx_http_ingest_cluster_changed(ngx_event_t *ev)
{
    ngx_uint_t                    i, connected;
    ngx_http_ingest_node_t       *node = ev->data;
    ngx_http_ingest_cluster_t    *cl;
    ngx_http_ingest_transport_t  *t;

    t = node->transport;
    cl = t->state;

    connected = 0;

    for (i = 0; i < cl->nnodes; i++) {
        connected |= cl->nodes[i].conn.connected;
    }

    ngx_http_ingest_transport_connected(t, connected);

    if (node->conn.connected) {
        if (cl->stale) {
            ngx_http_ingest_cluster_refresh(t);
        }

        /* what waited for this node goes now */
        ngx_http_ingest_transport_resend(t);
        return;
    }

    /* a failover may be under way: the map is asked again, later */

    cl->stale = 1;
    ngx_http_ingest_transport_schedule(t);
}


/*
 * CLUSTER SLOTS of a connected node, or a connection to the next node in
 * turn (its "changed" event asks then).
 */

static void
ngx_http_ingest_cluster_refresh(ngx_http_ingest_transport_t *t)
{
    ngx_uint_t                  i, n;
    ngx_http_ingest_node_t     *node;
    ngx_http_ingest_cluster_t  *cl = t->state;

    if (cl->refreshing || t->closing) {
        return;
    }

    for (i = 0; i < cl->nnodes; i++) {
        node = &cl->nodes[i];

        if (node->conn.connected
            && redisAsyncCommand(node->conn.ac, ngx_http_ingest_cluster_slots,
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

        if (node->conn.ac == NULL) {
            (void) ngx_http_ingest_conn_open(&node->conn);
            return;
        }
    }
}


/*
 * [[start, end, [host, port, id], [replica...]...], ...]: each range's
 * master owns its slots.  Inside hiredis: the map changes here, the
 * sends wait for the posted "resume".
 */

static void
ngx_http_ingest_cluster_slots(redisAsyncContext *ac, void *r, void *privdata)
{
    redisReply                   *reply = r;
    ngx_uint_t                    i, s, covered;
    ingest_cluster_range_t        range;
    ngx_http_ingest_node_t       *node = privdata;
    ngx_http_ingest_cluster_t    *cl;
    ngx_http_ingest_transport_t  *t;

    t = node->transport;
    cl = t->state;

    if (cl->refreshing == node->index) {
        cl->refreshing = 0;
    }

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY) {
        ngx_log_error(NGX_LOG_WARN, t->log, 0,
                      "ingest redis cluster: CLUSTER SLOTS failed: %*s",
                      (size_t) (reply && reply->type == REDIS_REPLY_ERROR
                                ? reply->len : 0),
                      reply ? reply->str : NULL);
        ngx_http_ingest_transport_schedule(t);
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

        node = ngx_http_ingest_cluster_node(t, (u_char *) range.host,
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
        ngx_http_ingest_transport_schedule(t);

    } else {
        cl->stale = 0;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, t->log, 0,
                   "ingest redis cluster: %ui slots mapped on %ui nodes",
                   covered, cl->nnodes);

    ngx_post_event(&cl->resume, &ngx_posted_events);
}


/* RPUSH ch's batch to its slot's master (or where ASK said) */

static void
ngx_http_ingest_cluster_send(ngx_http_ingest_transport_t *t,
    ngx_http_ingest_channel_t *ch)
{
    ngx_uint_t                  index;
    ngx_http_ingest_node_t     *node;
    ngx_http_ingest_cluster_t  *cl = t->state;

    if (ngx_http_ingest_transport_hand(t, ch) != NGX_OK) {
        return;
    }

    if (ngx_current_msec - cl->refreshed_at > NGX_HTTP_INGEST_MAP_PERIOD) {
        /* now and then: replicas come back, masters move */
        ngx_http_ingest_cluster_refresh(t);
    }

    index = ch->ask ? ch->ask
                    : cl->owner[ingest_cluster_slot(ch->name.data,
                                                    ch->name.len)];

    node = ngx_http_ingest_cluster_reach(t, index);
    if (node == NULL) {
        return;
    }

    if (ngx_http_ingest_transport_push(t, ch, &node->conn, ch->ask != 0,
                                       ngx_min(t->imcf->replicas,
                                               node->replicas),
                                       ngx_http_ingest_cluster_pushed)
        != NGX_OK)
    {
        return;
    }

    ch->ask = 0;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, t->log, 0,
                   "ingest batch of \"%V\" to %s", &ch->name, node->host);
}


/* the outcome of a push, inside hiredis */

static void
ngx_http_ingest_cluster_pushed(ngx_http_ingest_push_t *p)
{
    ngx_uint_t                    transient, level;
    ngx_http_ingest_channel_t    *ch = p->data;
    ngx_http_ingest_cluster_t    *cl;
    ngx_http_ingest_transport_t  *t;

    t = ch->transport;
    cl = t->state;

    switch (p->result) {

    case NGX_HTTP_INGEST_PUSH_DELIVERED:
        ngx_http_ingest_transport_delivered(t, ch);
        return;

    case NGX_HTTP_INGEST_PUSH_LOST:
        /* the node's connection is going: its loss brings the retry */
        ngx_http_ingest_transport_returned(t, ch);
        return;

    case NGX_HTTP_INGEST_PUSH_UNSAFE:
        /* in the master alone: a failover now would lose it */
        ngx_http_ingest_transport_returned(t, ch);
        ngx_http_ingest_stat_add(batches_failed, ch->nbatches);

        ngx_log_error(NGX_LOG_WARN, t->log, 0,
                      "ingest redis batch of \"%V\" reached %L of %ui "
                      "replicas in time; sent again", &ch->name,
                      p->replicated, p->replicas);

        /* a replica may be gone: the map says how many are left */
        cl->stale = 1;
        ngx_http_ingest_transport_schedule(t);
        return;
    }

    ngx_http_ingest_transport_returned(t, ch);

    if (ngx_http_ingest_cluster_redirect(t, ch, p->error, p->error_len)
        == NGX_OK)
    {
        return;
    }

    ngx_http_ingest_stat_add(batches_failed, ch->nbatches);

    if (ngx_http_ingest_transport_refused(t, ch) == NGX_OK) {
        /* the channel takes it back and says so */
        return;
    }

    /* a failover under way says so for a second or two: not an error */

    transient = (p->error_len >= 11
                 && ngx_strncmp(p->error, "CLUSTERDOWN", 11) == 0)
                || (p->error_len >= 8
                    && (ngx_strncmp(p->error, "READONLY", 8) == 0
                        || ngx_strncmp(p->error, "TRYAGAIN", 8) == 0));

    level = transient ? NGX_LOG_WARN : NGX_LOG_ERR;

    ngx_http_ingest_transport_failed(t, ch, level);

    if (transient) {
        cl->stale = 1;
    }

    ngx_http_ingest_transport_schedule(t);
}


/*
 * MOVED <slot> <host:port> and ASK <slot> <host:port>: the map or the
 * channel changes here (inside hiredis), the resend waits for "resume".
 */

static ngx_int_t
ngx_http_ingest_cluster_redirect(ngx_http_ingest_transport_t *t,
    ngx_http_ingest_channel_t *ch, u_char *err, size_t len)
{
    u_char                     *p, *last, *colon;
    ngx_int_t                   port, ask;
    ngx_uint_t                  slot;
    ngx_http_ingest_node_t     *node;
    ngx_http_ingest_cluster_t  *cl = t->state;

    p = err;
    last = err + len;

    if (len > 6 && ngx_strncmp(p, "MOVED ", 6) == 0) {
        ask = 0;
        p += 6;

    } else if (len > 4 && ngx_strncmp(p, "ASK ", 4) == 0) {
        ask = 1;
        p += 4;

    } else {
        return NGX_DECLINED;
    }

    slot = 0;

    while (p < last && *p >= '0' && *p <= '9' && slot < INGEST_CLUSTER_SLOTS)
    {
        slot = slot * 10 + (*p++ - '0');
    }

    if (p == last || *p++ != ' ' || slot >= INGEST_CLUSTER_SLOTS) {
        return NGX_DECLINED;
    }

    colon = NULL;

    for (last = p; last < err + len; last++) {
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

    node = ngx_http_ingest_cluster_node(t, p, colon - p, (int) port);
    if (node == NULL) {
        return NGX_DECLINED;
    }

    ngx_log_error(NGX_LOG_INFO, t->log, 0,
                  "ingest redis cluster: %s slot %ui of \"%V\" to %V",
                  ask ? "asked to send" : "moved", slot, &ch->name,
                  &node->conn.name);

    if (ask) {
        ch->ask = node->index;

    } else {
        cl->owner[slot] = (uint8_t) node->index;
        cl->stale = 1;
    }

    ngx_post_event(&cl->resume, &ngx_posted_events);

    return NGX_OK;
}


/* the connection of the master of key's slot (it may still be opening) */

static redisAsyncContext *
ngx_http_ingest_cluster_route(ngx_http_ingest_transport_t *t,
    const u_char *key, size_t len)
{
    ngx_http_ingest_node_t     *node;
    ngx_http_ingest_cluster_t  *cl = t->state;

    node = ngx_http_ingest_cluster_reach(t,
                                         cl->owner[ingest_cluster_slot(key,
                                                                      len)]);

    return node ? node->conn.ac : NULL;
}


/* an untagged list's companion goes in the list's slot: "{list}:..." */

static u_char *
ngx_http_ingest_cluster_companion(ngx_http_ingest_transport_t *t,
    u_char *buf, size_t size, ngx_str_t *list, const char *suffix)
{
    if (ingest_cluster_tagged(list->data, list->len)) {
        return ngx_snprintf(buf, size, "%V:%s", list, suffix);
    }

    return ngx_snprintf(buf, size, "{%V}:%s", list, suffix);
}


/*
 * The exit path: a blocking connection to the master of the list's slot,
 * as the worker last knew it, one per node; a node that could not be
 * reached is not tried again.
 */

static void
ngx_http_ingest_cluster_send_sync(ngx_http_ingest_transport_t *t,
    ngx_http_ingest_sync_t *s, ngx_http_ingest_push_t *p)
{
    ngx_uint_t                  index;
    redisContext               *rc;
    struct timeval              tv;
    ngx_http_ingest_node_t     *node;
    ngx_http_ingest_cluster_t  *cl = t->state;

    p->result = NGX_HTTP_INGEST_PUSH_LOST;
    p->asking = 0;

    index = cl->owner[ingest_cluster_slot(p->list.data, p->list.len)];

    if (index == 0) {
        ngx_cpystrn(s->why, (u_char *) "the list's master is unknown",
                    sizeof(s->why));
        return;
    }

    node = &cl->nodes[index - 1];

    if (s->failed[index - 1]) {
        return;
    }

    rc = s->conns[index - 1];

    if (rc == NULL) {
        tv.tv_sec = s->timeout / 1000;
        tv.tv_usec = (s->timeout % 1000) * 1000;

        rc = redisConnectWithTimeout((char *) node->host, node->conn.port,
                                     tv);

        if (rc == NULL || rc->err || redisSetTimeout(rc, tv) != REDIS_OK) {
            ngx_snprintf(s->why, sizeof(s->why) - 1,
                         "the list's master %V is unreachable: %s%Z",
                         &node->conn.name,
                         rc == NULL ? "out of memory"
                         : rc->err ? rc->errstr : "cannot set timeout");
            s->failed[index - 1] = 1;

            if (rc != NULL) {
                redisFree(rc);
            }

            return;
        }

        if (ngx_http_ingest_conn_sync_login(rc, &t->imcf->auth, s->why,
                                            sizeof(s->why))
            != NGX_OK)
        {
            s->failed[index - 1] = 1;
            redisFree(rc);
            return;
        }

        s->conns[index - 1] = rc;
    }

    p->replicas = ngx_min(t->imcf->replicas, node->replicas);
    p->wait = s->timeout;

    ngx_http_ingest_push_sync(rc, p);

    if (p->result == NGX_HTTP_INGEST_PUSH_LOST) {
        ngx_cpystrn(s->why, (u_char *) rc->errstr, sizeof(s->why));
        s->failed[index - 1] = 1;
        redisFree(rc);
        s->conns[index - 1] = NULL;
    }
}


static void
ngx_http_ingest_cluster_sync_end(ngx_http_ingest_transport_t *t,
    ngx_http_ingest_sync_t *s)
{
    ngx_uint_t  i;

    for (i = 0; i < NGX_HTTP_INGEST_MAX_NODES; i++) {
        if (s->conns[i] != NULL) {
            redisFree(s->conns[i]);
            s->conns[i] = NULL;
        }
    }
}


static void
ngx_http_ingest_cluster_close(ngx_http_ingest_transport_t *t,
    ngx_uint_t graceful)
{
    ngx_uint_t                  i;
    ngx_http_ingest_node_t     *node;
    ngx_http_ingest_cluster_t  *cl = t->state;

    t->closing = 1;

    if (t->retry.timer_set) {
        ngx_del_timer(&t->retry);
    }

    if (cl->resume.posted) {
        ngx_delete_posted_event(&cl->resume);
    }

    for (i = 0; i < cl->nnodes; i++) {
        node = &cl->nodes[i];

        if (graceful) {
            ngx_http_ingest_conn_disconnect(&node->conn);

        } else {
            ngx_http_ingest_conn_close(&node->conn, NULL);
        }

        if (node->conn.changed.posted) {
            ngx_delete_posted_event(&node->conn.changed);
        }
    }

    ngx_http_ingest_transport_connected(t, 0);
}


/* the operations; each is defined above */

const ngx_http_ingest_transport_ops_t  ngx_http_ingest_cluster_transport = {
    "cluster",
    ngx_http_ingest_cluster_init,
    ngx_http_ingest_cluster_connect,
    ngx_http_ingest_cluster_send,
    ngx_http_ingest_cluster_route,
    ngx_http_ingest_cluster_companion,
    ngx_http_ingest_cluster_send_sync,
    ngx_http_ingest_cluster_sync_end,
    ngx_http_ingest_cluster_close
};
