
/*
 * Copyright (C) ngx_ingest developers
 *
 * The status endpoint and the numbers behind it.
 *
 *   location = /ingest/status { ingest_status; }
 *
 * JSON by default; the Prometheus text format with ?format=prometheus or
 * an "Accept: text/plain" scrape.  Requests are counted by endpoint and
 * status in the log phase, where nginx's own 413 is seen too.  Each
 * worker keeps its pending keys and bytes and its Redis state in a slot
 * of its own; worker 0 asks Redis every second, asynchronously, for each
 * list's length and its consumer's heartbeat, and keeps them in the zone.
 */


#include "ngx_http_ingest_module.h"

#include <dirent.h>


#define NGX_HTTP_INGEST_POLL_PERIOD      1000     /* ms */
#define NGX_HTTP_INGEST_CONSUMER_STALE   5000     /* ms without heartbeat */


ngx_http_ingest_stats_t  *ngx_http_ingest_stats;


/* the status codes counted; the last one stands for all others */

static ngx_uint_t  ngx_http_ingest_codes[NGX_HTTP_INGEST_CODES] = {
    200, 204, 400, 404, 405, 413, 415, 500, 503, 504, 0
};


/* upper bounds of the flush duration buckets, in milliseconds */

static ngx_msec_t  ngx_http_ingest_buckets[NGX_HTTP_INGEST_BUCKETS] = {
    1, 2, 5, 10, 25, 50, 100, 500, 1000
};


/* a status request waiting for a fresh poll */

typedef struct {
    ngx_queue_t                 link;          /* in w->status_waiting */
    ngx_http_request_t         *request;
    ngx_event_t                 timer;
    ngx_uint_t                  prometheus;
    unsigned                    waiting:1;
} ngx_http_ingest_status_wait_t;


static ngx_int_t ngx_http_ingest_status_init_zone(ngx_shm_zone_t *zone,
    void *data);
static ngx_int_t ngx_http_ingest_status_poll(ngx_http_ingest_worker_t *w);
static void ngx_http_ingest_poll_send(ngx_http_ingest_worker_t *w,
    const char *command, u_char *key, size_t len, ngx_uint_t n);
static void ngx_http_ingest_poll_done(ngx_http_ingest_worker_t *w);
static void ngx_http_ingest_status_wake(ngx_event_t *ev);
static void ngx_http_ingest_status_timeout(ngx_event_t *ev);
static void ngx_http_ingest_status_cleanup(void *data);
static void ngx_http_ingest_status_answer(ngx_http_ingest_status_wait_t *sw);
static ngx_uint_t ngx_http_ingest_status_stale(
    ngx_http_ingest_main_conf_t *imcf);
static ngx_int_t ngx_http_ingest_status_send(ngx_http_request_t *r,
    ngx_uint_t prometheus);
static ngx_int_t ngx_http_ingest_status_log(ngx_http_request_t *r);
static ngx_int_t ngx_http_ingest_status_handler(ngx_http_request_t *r);
static void ngx_http_ingest_poll_handler(ngx_event_t *ev);
static void ngx_http_ingest_poll_reply(redisAsyncContext *ac, void *r,
    void *privdata);
static ngx_uint_t ngx_http_ingest_status_spool(ngx_http_ingest_main_conf_t
    *imcf);
static ngx_buf_t *ngx_http_ingest_status_json(ngx_http_request_t *r,
    ngx_http_ingest_main_conf_t *imcf);
static ngx_buf_t *ngx_http_ingest_status_prometheus(ngx_http_request_t *r,
    ngx_http_ingest_main_conf_t *imcf);
static ngx_int_t ngx_http_ingest_heartbeat_field(u_char *p, u_char *last,
    const char *name, int64_t *value);


/* the zone, when any ingest endpoint is configured */

ngx_int_t
ngx_http_ingest_status_conf(ngx_conf_t *cf, ngx_http_ingest_main_conf_t *imcf)
{
    ngx_str_t        name;
    ngx_shm_zone_t  *zone;

    ngx_str_set(&name, "ngx_http_ingest_status");

    zone = ngx_shared_memory_add(cf, &name,
                                 sizeof(ngx_http_ingest_stats_t)
                                 + 8 * ngx_pagesize,
                                 &ngx_http_ingest_module);
    if (zone == NULL) {
        return NGX_ERROR;
    }

    zone->init = ngx_http_ingest_status_init_zone;
    zone->data = imcf;

    return NGX_OK;
}


static ngx_int_t
ngx_http_ingest_status_init_zone(ngx_shm_zone_t *zone, void *data)
{
    ngx_slab_pool_t          *shpool;
    ngx_http_ingest_stats_t  *stats;

    if (data != NULL) {
        /* a reload: the numbers go on (same size, same layout) */
        zone->data = data;
        ngx_http_ingest_stats = data;
        return NGX_OK;
    }

    shpool = (ngx_slab_pool_t *) zone->shm.addr;

    if (zone->shm.exists) {
        zone->data = shpool->data;
        ngx_http_ingest_stats = shpool->data;
        return NGX_OK;
    }

    stats = ngx_slab_calloc(shpool, sizeof(ngx_http_ingest_stats_t));
    if (stats == NULL) {
        return NGX_ERROR;
    }

    shpool->data = stats;
    zone->data = stats;
    ngx_http_ingest_stats = stats;

    return NGX_OK;
}


/* a location that counts its requests: 1-based index of its name */

ngx_int_t
ngx_http_ingest_status_endpoint(ngx_conf_t *cf,
    ngx_http_ingest_loc_conf_t *ilcf)
{
    ngx_str_t                    *name;
    ngx_uint_t                    i;
    ngx_http_core_loc_conf_t     *clcf;
    ngx_http_ingest_main_conf_t  *imcf;

    if (ilcf->endpoint) {
        return NGX_OK;
    }

    imcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_ingest_module);
    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    name = imcf->endpoint_names.elts;

    for (i = 0; i < imcf->endpoint_names.nelts; i++) {
        if (name[i].len == clcf->name.len
            && ngx_strncmp(name[i].data, clcf->name.data, name[i].len) == 0)
        {
            ilcf->endpoint = i + 1;
            return NGX_OK;
        }
    }

    if (i == NGX_HTTP_INGEST_MAX_ENDPOINTS) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "more than %d ingest locations",
                           NGX_HTTP_INGEST_MAX_ENDPOINTS);
        return NGX_ERROR;
    }

    name = ngx_array_push(&imcf->endpoint_names);
    if (name == NULL) {
        return NGX_ERROR;
    }

    *name = clcf->name;
    ilcf->endpoint = i + 1;

    return NGX_OK;
}


ngx_int_t
ngx_http_ingest_status_postconf(ngx_conf_t *cf)
{
    ngx_http_handler_pt        *h;
    ngx_http_core_main_conf_t  *cmcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_LOG_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_ingest_status_log;

    return NGX_OK;
}


static ngx_int_t
ngx_http_ingest_status_log(ngx_http_request_t *r)
{
    ngx_uint_t                   i, status;
    ngx_http_ingest_loc_conf_t  *ilcf;

    if (ngx_http_ingest_stats == NULL || r != r->main) {
        return NGX_OK;
    }

    ilcf = ngx_http_get_module_loc_conf(r, ngx_http_ingest_module);

    if (ilcf->endpoint == 0) {
        return NGX_OK;
    }

    status = r->headers_out.status ? r->headers_out.status
                                   : (r->err_status ? r->err_status : 0);

    for (i = 0; i < NGX_HTTP_INGEST_CODES - 1; i++) {
        if (ngx_http_ingest_codes[i] == status) {
            break;
        }
    }

    (void) ngx_atomic_fetch_add(
               &ngx_http_ingest_stats->requests[ilcf->endpoint - 1][i], 1);

    return NGX_OK;
}


/* a worker's slot: claimed in init_process, given back in exit_process */

void
ngx_http_ingest_status_claim(ngx_http_ingest_worker_t *w)
{
    ngx_uint_t                      i;
    ngx_atomic_uint_t               pid;
    ngx_http_ingest_worker_slot_t  *slot;

    if (ngx_http_ingest_stats == NULL) {
        return;
    }

    for (i = 0; i < NGX_HTTP_INGEST_MAX_WORKERS; i++) {
        slot = &ngx_http_ingest_stats->workers[i];
        pid = slot->pid;

        /* free, or left by a worker that died without giving it back */

        if ((pid == 0 || (kill((pid_t) pid, 0) == -1 && ngx_errno == ESRCH))
            && ngx_atomic_cmp_set(&slot->pid, pid, (ngx_atomic_uint_t) ngx_pid))
        {
            slot->keys = 0;
            slot->bytes = 0;
            slot->connected = 0;
            w->slot = slot;
            return;
        }
    }

    ngx_log_error(NGX_LOG_WARN, w->log, 0,
                  "ingest: no status slot left for this worker");
}


void
ngx_http_ingest_status_release(ngx_http_ingest_worker_t *w)
{
    if (w->slot != NULL) {
        w->slot->keys = 0;
        w->slot->bytes = 0;
        w->slot->connected = 0;
        (void) ngx_atomic_cmp_set(&w->slot->pid,
                                  (ngx_atomic_uint_t) ngx_pid, 0);
        w->slot = NULL;
    }
}


/* the worker's pending keys and bytes, after they changed */

void
ngx_http_ingest_status_pending(ngx_http_ingest_worker_t *w)
{
    ngx_uint_t  i, keys;

    if (w->slot == NULL) {
        return;
    }

    keys = 0;

    for (i = 0; i < w->nqueues; i++) {
        keys += ngx_http_ingest_queue_pending(&w->queues[i]);
    }

    w->slot->keys = keys;
    w->slot->bytes = ngx_http_ingest_flush_pending(w);
}


void
ngx_http_ingest_status_flushed(ngx_msec_t ms)
{
    ngx_uint_t  i;

    if (ngx_http_ingest_stats == NULL) {
        return;
    }

    for (i = 0; i < NGX_HTTP_INGEST_BUCKETS; i++) {
        if (ms <= ngx_http_ingest_buckets[i]) {
            (void) ngx_atomic_fetch_add(
                       &ngx_http_ingest_stats->flush_buckets[i], 1);
            break;
        }
    }

    (void) ngx_atomic_fetch_add(&ngx_http_ingest_stats->flush_count, 1);
    (void) ngx_atomic_fetch_add(&ngx_http_ingest_stats->flush_sum_ms, ms);
    (void) ngx_atomic_fetch_add(&ngx_http_ingest_stats->batches_flushed, 1);
}


/*
 * Worker 0 asks Redis every second for the lists' lengths and the
 * consumers' heartbeats; a status request that finds them older than
 * that has its own worker ask, and waits (briefly) for the answer.
 */

void
ngx_http_ingest_status_poll_init(ngx_http_ingest_worker_t *w)
{
    ngx_queue_init(&w->status_waiting);

    w->poll_timer.handler = ngx_http_ingest_poll_handler;
    w->poll_timer.data = &w->timer_conn;
    w->poll_timer.log = w->log;
    w->poll_timer.cancelable = 1;

    if (ngx_http_ingest_stats == NULL
        || (ngx_process == NGX_PROCESS_WORKER && ngx_worker != 0))
    {
        return;
    }

    ngx_add_timer(&w->poll_timer, 10);
}


static void
ngx_http_ingest_poll_handler(ngx_event_t *ev)
{
    ngx_http_ingest_worker_t  *w;

    w = ngx_http_ingest_worker;

    if (w->exiting || w->draining) {
        return;
    }

    (void) ngx_http_ingest_status_poll(w);

    ngx_add_timer(&w->poll_timer, NGX_HTTP_INGEST_POLL_PERIOD);
}


/*
 * LLEN and GET <list>:heartbeat for each list, each where its key lives
 * (in a cluster, on that key's master); the poll ends with the last
 * reply.
 */

static ngx_int_t
ngx_http_ingest_status_poll(ngx_http_ingest_worker_t *w)
{
    ngx_uint_t   i;
    u_char       key[512], *p;
    ngx_str_t   *name;

    if (!w->connected || w->polling) {
        return w->polling ? NGX_OK : NGX_DECLINED;
    }

    w->poll_pending = 0;

    for (i = 0; i < w->nqueues && i < NGX_HTTP_INGEST_MAX_QUEUES; i++) {
        name = &w->queues[i].name;

        ngx_http_ingest_poll_send(w, "LLEN", name->data, name->len, 2 * i);

        if (w->cluster != NULL
            && !ingest_cluster_tagged(name->data, name->len))
        {
            /* in the list's slot, as the consumer writes it */
            p = ngx_snprintf(key, sizeof(key), "{%V}:heartbeat", name);

        } else {
            p = ngx_snprintf(key, sizeof(key), "%V:heartbeat", name);
        }

        ngx_http_ingest_poll_send(w, "GET", key, p - key, 2 * i + 1);
    }

    if (w->poll_pending == 0) {
        return NGX_DECLINED;
    }

    w->polling = 1;

    return NGX_OK;
}


/* one command of the poll, where key lives; n says what its reply is */

static void
ngx_http_ingest_poll_send(ngx_http_ingest_worker_t *w, const char *command,
    u_char *key, size_t len, ngx_uint_t n)
{
    const char         *argv[2];
    size_t              argvlen[2];
    redisAsyncContext  *ac;

    ac = ngx_http_ingest_redis_ctx(w, key, len);

    argv[0] = command;
    argvlen[0] = ngx_strlen(command);
    argv[1] = (const char *) key;
    argvlen[1] = len;

    if (ac != NULL
        && redisAsyncCommandArgv(ac, ngx_http_ingest_poll_reply,
                                 (void *) (uintptr_t) n, 2, argv, argvlen)
           == REDIS_OK)
    {
        w->poll_pending++;
    }
}


/* the poll's last reply: answer the status requests that waited for it */

static void
ngx_http_ingest_poll_done(ngx_http_ingest_worker_t *w)
{
    if (w->poll_pending == 0 || --w->poll_pending) {
        return;
    }

    w->polling = 0;

    if (!ngx_queue_empty(&w->status_waiting)) {
        /* not from inside hiredis: answering may take time and memory */
        ngx_post_event(&w->status_event, &ngx_posted_events);
    }
}


static void
ngx_http_ingest_status_wake(ngx_event_t *ev)
{
    ngx_queue_t                     *link;
    ngx_http_ingest_worker_t        *w;
    ngx_http_ingest_status_wait_t   *sw;

    w = ngx_http_ingest_worker;

    while (!ngx_queue_empty(&w->status_waiting)) {
        link = ngx_queue_head(&w->status_waiting);
        sw = ngx_queue_data(link, ngx_http_ingest_status_wait_t, link);
        ngx_http_ingest_status_answer(sw);
    }
}


static void
ngx_http_ingest_status_timeout(ngx_event_t *ev)
{
    ngx_http_ingest_status_wait_t  *sw;

    sw = (ngx_http_ingest_status_wait_t *)
             ((u_char *) ev - offsetof(ngx_http_ingest_status_wait_t, timer));

    /* Redis is slow: answer with what there is */
    ngx_http_ingest_status_answer(sw);
}


static void
ngx_http_ingest_status_cleanup(void *data)
{
    ngx_http_ingest_status_wait_t  *sw = data;

    if (sw->waiting) {
        ngx_queue_remove(&sw->link);
        sw->waiting = 0;
    }

    if (sw->timer.timer_set) {
        ngx_del_timer(&sw->timer);
    }
}


static void
ngx_http_ingest_status_answer(ngx_http_ingest_status_wait_t *sw)
{
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = sw->request;
    c = r->connection;

    ngx_http_ingest_status_cleanup(sw);

    ngx_http_finalize_request(r, ngx_http_ingest_status_send(r,
                                                             sw->prometheus));
    ngx_http_run_posted_requests(c);
}


static void
ngx_http_ingest_poll_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    int64_t                        v;
    u_char                        *p, *last;
    ngx_uint_t                     n;
    redisReply                    *reply = r;
    ngx_http_ingest_queue_slot_t  *qs;

    n = (uintptr_t) privdata;

    ngx_http_ingest_poll_done(ngx_http_ingest_worker);

    if (reply == NULL || ngx_http_ingest_stats == NULL) {
        return;
    }

    qs = &ngx_http_ingest_stats->queues[n / 2];

    if (n % 2 == 0) {
        if (reply->type == REDIS_REPLY_INTEGER) {
            qs->depth = (ngx_atomic_uint_t) reply->integer;
            qs->polled_at = ngx_current_msec;
        }

        return;
    }

    if (reply->type != REDIS_REPLY_STRING) {
        return;
    }

    /* {"ts":..,"batches":..,"rows":..,"last_commit":..,"lag_ms":..} */

    p = (u_char *) reply->str;
    last = p + reply->len;

    if (ngx_http_ingest_heartbeat_field(p, last, "ts", &v) == NGX_OK) {
        qs->hb_ts = (ngx_atomic_uint_t) v;
    }

    if (ngx_http_ingest_heartbeat_field(p, last, "batches", &v) == NGX_OK) {
        qs->hb_batches = (ngx_atomic_uint_t) v;
    }

    if (ngx_http_ingest_heartbeat_field(p, last, "rows", &v) == NGX_OK) {
        qs->hb_rows = (ngx_atomic_uint_t) v;
    }

    if (ngx_http_ingest_heartbeat_field(p, last, "last_commit", &v)
        == NGX_OK)
    {
        qs->hb_commit = (ngx_atomic_uint_t) v;
    }

    if (ngx_http_ingest_heartbeat_field(p, last, "lag_ms", &v) == NGX_OK) {
        qs->hb_lag_ms = (ngx_atomic_uint_t) v;
    }
}


static ngx_int_t
ngx_http_ingest_heartbeat_field(u_char *p, u_char *last, const char *name,
    int64_t *value)
{
    size_t   len;
    int64_t  v;

    len = ngx_strlen(name);

    for ( /* void */ ; p + len + 3 < last; p++) {
        if (p[0] == '"' && ngx_strncmp(p + 1, name, len) == 0
            && p[len + 1] == '"' && p[len + 2] == ':')
        {
            p += len + 3;
            v = 0;

            if (p == last || *p < '0' || *p > '9') {
                return NGX_ERROR;
            }

            while (p < last && *p >= '0' && *p <= '9' && v < INT64_MAX / 10)
            {
                v = v * 10 + (*p++ - '0');
            }

            *value = v;
            return NGX_OK;
        }
    }

    return NGX_ERROR;
}


/* ingest_status */

char *
ngx_http_ingest_status(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_ingest_loc_conf_t  *ilcf = conf;

    ngx_http_core_loc_conf_t     *clcf;
    ngx_http_ingest_main_conf_t  *imcf;

    if (ilcf->status) {
        return "is duplicate";
    }

    ilcf->status = 1;

    imcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_ingest_module);
    imcf->status_used = 1;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_ingest_status_handler;

    if (ngx_http_ingest_status_endpoint(cf, ilcf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_ingest_status_handler(ngx_http_request_t *r)
{
    ngx_int_t                       rc;
    ngx_str_t                       arg;
    ngx_table_elt_t                *h;
    ngx_uint_t                      prometheus;
    ngx_pool_cleanup_t             *cln;
    ngx_http_ingest_worker_t       *w;
    ngx_http_ingest_main_conf_t    *imcf;
    ngx_http_ingest_status_wait_t  *sw;

    if (!(r->method & (NGX_HTTP_GET | NGX_HTTP_HEAD))) {
        return ngx_http_ingest_not_allowed(r, "GET, HEAD");
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    if (ngx_http_ingest_stats == NULL) {
        return ngx_http_ingest_send_json(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                         "no status zone", -1);
    }

    imcf = ngx_http_get_module_main_conf(r, ngx_http_ingest_module);

    /* ?format=prometheus, or a scraper asking for text/plain */

    prometheus = 0;

    if (ngx_http_arg(r, (u_char *) "format", 6, &arg) == NGX_OK) {
        prometheus = (arg.len == 10
                      && ngx_strncmp(arg.data, "prometheus", 10) == 0);

    } else {
        h = NULL;

#if (NGX_HTTP_HEADERS)
        h = r->headers_in.accept;
#endif

        prometheus = (h != NULL
                      && ngx_strlcasestrn(h->value.data,
                                          h->value.data + h->value.len,
                                          (u_char *) "text/plain", 10 - 1)
                         != NULL);
    }

    /* the lists' lengths are older than a poll period: ask, then answer */

    w = ngx_http_ingest_worker;

    if (w != NULL && w->poll_timer.handler != NULL
        && ngx_http_ingest_status_stale(imcf)
        && ngx_http_ingest_status_poll(w) == NGX_OK)
    {
        sw = ngx_pcalloc(r->pool, sizeof(ngx_http_ingest_status_wait_t));
        if (sw == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        cln = ngx_pool_cleanup_add(r->pool, 0);
        if (cln == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        sw->request = r;
        sw->prometheus = prometheus;
        cln->handler = ngx_http_ingest_status_cleanup;
        cln->data = sw;

        if (w->status_event.handler == NULL) {
            w->status_event.handler = ngx_http_ingest_status_wake;
            w->status_event.data = &w->timer_conn;
            w->status_event.log = w->log;
        }

        sw->timer.handler = ngx_http_ingest_status_timeout;
        sw->timer.data = r->connection;
        sw->timer.log = r->connection->log;
        ngx_add_timer(&sw->timer, 300);

        ngx_queue_insert_tail(&w->status_waiting, &sw->link);
        sw->waiting = 1;

        r->main->count++;

        return NGX_DONE;
    }

    return ngx_http_ingest_status_send(r, prometheus);
}


static ngx_uint_t
ngx_http_ingest_status_stale(ngx_http_ingest_main_conf_t *imcf)
{
    ngx_uint_t  i;
    ngx_msec_t  polled;

    for (i = 0; i < imcf->queues.nelts && i < NGX_HTTP_INGEST_MAX_QUEUES; i++)
    {
        polled = ngx_http_ingest_stats->queues[i].polled_at;

        if (polled == 0 || ngx_current_msec - polled
                           > NGX_HTTP_INGEST_POLL_PERIOD)
        {
            return 1;
        }
    }

    return 0;
}


static ngx_int_t
ngx_http_ingest_status_send(ngx_http_request_t *r, ngx_uint_t prometheus)
{
    ngx_buf_t                    *b;
    ngx_http_ingest_main_conf_t  *imcf;

    imcf = ngx_http_get_module_main_conf(r, ngx_http_ingest_module);

    b = prometheus ? ngx_http_ingest_status_prometheus(r, imcf)
                   : ngx_http_ingest_status_json(r, imcf);

    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_ingest_send(r, NGX_HTTP_OK,
                                prometheus
                                ? "text/plain; version=0.0.4; charset=utf-8"
                                : "application/json", b);
}


/* files waiting in the spool: a small local directory, read on demand */

static ngx_uint_t
ngx_http_ingest_status_spool(ngx_http_ingest_main_conf_t *imcf)
{
    DIR            *d;
    u_char          path[NGX_MAX_PATH];
    size_t          len;
    ngx_uint_t      n;
    struct dirent  *de;

    if (imcf->spool == NULL) {
        return 0;
    }

    ngx_snprintf(path, sizeof(path) - 1, "%V%Z", &imcf->spool->name);

    d = opendir((char *) path);
    if (d == NULL) {
        return 0;
    }

    n = 0;

    while ((de = readdir(d)) != NULL) {
        len = ngx_strlen(de->d_name);

        if (de->d_name[0] != '.' && len > 6
            && ngx_strcmp(de->d_name + len - 6, ".batch") == 0)
        {
            n++;
        }
    }

    (void) closedir(d);

    return n;
}


/* what every worker slot adds up to */

typedef struct {
    ngx_uint_t                workers;
    ngx_uint_t                connected;
    ngx_uint_t                keys;
    ngx_uint_t                bytes;
} ngx_http_ingest_sum_t;


static void
ngx_http_ingest_status_sum(ngx_http_ingest_sum_t *sum)
{
    ngx_uint_t                      i;
    ngx_atomic_uint_t               pid;
    ngx_http_ingest_worker_slot_t  *slot;

    ngx_memzero(sum, sizeof(ngx_http_ingest_sum_t));

    for (i = 0; i < NGX_HTTP_INGEST_MAX_WORKERS; i++) {
        slot = &ngx_http_ingest_stats->workers[i];
        pid = slot->pid;

        if (pid == 0 || (kill((pid_t) pid, 0) == -1 && ngx_errno == ESRCH)) {
            continue;
        }

        sum->workers++;
        sum->connected += slot->connected ? 1 : 0;
        sum->keys += slot->keys;
        sum->bytes += slot->bytes;
    }
}


#define NGX_HTTP_INGEST_LINE   256     /* enough for one line of output */


static ngx_buf_t *
ngx_http_ingest_status_json(ngx_http_request_t *r,
    ngx_http_ingest_main_conf_t *imcf)
{
    size_t                         size;
    u_char                        *p;
    ngx_str_t                     *name, *queue;
    ngx_buf_t                     *b;
    ngx_uint_t                     i, j, first, listed;
    ngx_msec_t                     now;
    ngx_http_ingest_sum_t          sum;
    ngx_http_ingest_stats_t       *st;
    ngx_http_ingest_queue_slot_t  *qs;

    st = ngx_http_ingest_stats;
    ngx_http_ingest_status_sum(&sum);
    now = (ngx_msec_t) (ngx_time() * 1000);

    name = imcf->endpoint_names.elts;
    queue = imcf->queues.elts;

    size = 1024 + NGX_HTTP_INGEST_BUCKETS * 32;

    for (i = 0; i < imcf->endpoint_names.nelts; i++) {
        size += 2 * name[i].len + NGX_HTTP_INGEST_CODES * 32 + 16;
    }

    for (i = 0; i < imcf->queues.nelts; i++) {
        size += 2 * queue[i].len + 6 * NGX_HTTP_INGEST_LINE;
    }

    b = ngx_create_temp_buf(r->pool, size);
    if (b == NULL) {
        return NULL;
    }

    p = ngx_sprintf(b->last, "{\"workers\":%ui,\"requests\":{", sum.workers);

    listed = 0;

    for (i = 0; i < imcf->endpoint_names.nelts; i++) {
        for (j = 0; j < NGX_HTTP_INGEST_CODES; j++) {
            if (st->requests[i][j]) {
                break;
            }
        }

        if (j == NGX_HTTP_INGEST_CODES) {
            continue;
        }

        p = ngx_sprintf(p, "%s\"%V\":{", listed++ ? "," : "", &name[i]);
        first = 1;

        for (j = 0; j < NGX_HTTP_INGEST_CODES; j++) {
            if (st->requests[i][j] == 0) {
                continue;
            }

            if (ngx_http_ingest_codes[j]) {
                p = ngx_sprintf(p, "%s\"%ui\":%uA", first ? "" : ",",
                                ngx_http_ingest_codes[j], st->requests[i][j]);

            } else {
                p = ngx_sprintf(p, "%s\"other\":%uA", first ? "" : ",",
                                st->requests[i][j]);
            }

            first = 0;
        }

        *p++ = '}';
    }

    p = ngx_sprintf(p, "},\"increments_accepted\":%uA,"
                    "\"records_accepted\":%uA,"
                    "\"pending\":{\"keys\":%ui,\"bytes\":%ui},"
                    "\"batches\":{\"flushed\":%uA,\"failed\":%uA,"
                    "\"retried\":%uA},"
                    "\"flush_seconds\":{\"count\":%uA,\"sum\":%.3f},"
                    "\"redis\":{\"connected_workers\":%ui,"
                    "\"reconnects\":%uA},\"spool_files\":%ui,\"queues\":{",
                    st->increments, st->records, sum.keys, sum.bytes,
                    st->batches_flushed, st->batches_failed,
                    st->batches_retried, st->flush_count,
                    (double) st->flush_sum_ms / 1000, sum.connected,
                    st->reconnects, ngx_http_ingest_status_spool(imcf));

    for (i = 0; i < imcf->queues.nelts && i < NGX_HTTP_INGEST_MAX_QUEUES; i++)
    {
        qs = &st->queues[i];

        p = ngx_sprintf(p, "%s\"%V\":{\"depth\":%uA,\"consumer\":",
                        i ? "," : "", &queue[i], qs->depth);

        if (qs->hb_ts == 0) {
            p = ngx_sprintf(p, "null}");
            continue;
        }

        p = ngx_sprintf(p, "{\"up\":%s,\"heartbeat_age_seconds\":%.3f,"
                        "\"lag_seconds\":%.3f,\"batches_applied\":%uA,"
                        "\"rows_applied\":%uA,\"last_commit\":%uA}}",
                        (now < qs->hb_ts + NGX_HTTP_INGEST_CONSUMER_STALE)
                        ? "true" : "false",
                        now > qs->hb_ts ? (double) (now - qs->hb_ts) / 1000
                                        : 0.0,
                        (double) qs->hb_lag_ms / 1000, qs->hb_batches,
                        qs->hb_rows, qs->hb_commit);
    }

    p = ngx_sprintf(p, "}}\n");

    b->last = p;

    return b;
}


static ngx_buf_t *
ngx_http_ingest_status_prometheus(ngx_http_request_t *r,
    ngx_http_ingest_main_conf_t *imcf)
{
    size_t                         size;
    u_char                        *p;
    ngx_str_t                     *name, *queue;
    ngx_buf_t                     *b;
    ngx_uint_t                     i, j;
    ngx_msec_t                     now;
    ngx_atomic_uint_t              cumulative;
    ngx_http_ingest_sum_t          sum;
    ngx_http_ingest_stats_t       *st;
    ngx_http_ingest_queue_slot_t  *qs;

    st = ngx_http_ingest_stats;
    ngx_http_ingest_status_sum(&sum);
    now = (ngx_msec_t) (ngx_time() * 1000);

    name = imcf->endpoint_names.elts;
    queue = imcf->queues.elts;

    size = 40 * NGX_HTTP_INGEST_LINE;

    for (i = 0; i < imcf->endpoint_names.nelts; i++) {
        size += NGX_HTTP_INGEST_CODES * (2 * name[i].len
                                         + NGX_HTTP_INGEST_LINE);
    }

    for (i = 0; i < imcf->queues.nelts; i++) {
        size += 8 * (2 * queue[i].len + NGX_HTTP_INGEST_LINE);
    }

    b = ngx_create_temp_buf(r->pool, size);
    if (b == NULL) {
        return NULL;
    }

    p = ngx_sprintf(b->last,
        "# HELP ingest_requests_total Requests to ingest locations, by "
        "status.\n# TYPE ingest_requests_total counter\n");

    for (i = 0; i < imcf->endpoint_names.nelts; i++) {
        for (j = 0; j < NGX_HTTP_INGEST_CODES; j++) {
            if (st->requests[i][j] == 0) {
                continue;
            }

            if (ngx_http_ingest_codes[j]) {
                p = ngx_sprintf(p, "ingest_requests_total{endpoint=\"%V\","
                                "code=\"%ui\"} %uA\n", &name[i],
                                ngx_http_ingest_codes[j], st->requests[i][j]);

            } else {
                p = ngx_sprintf(p, "ingest_requests_total{endpoint=\"%V\","
                                "code=\"other\"} %uA\n", &name[i],
                                st->requests[i][j]);
            }
        }
    }

    p = ngx_sprintf(p,
        "# HELP ingest_increments_total Increments accepted.\n"
        "# TYPE ingest_increments_total counter\n"
        "ingest_increments_total %uA\n"
        "# HELP ingest_records_total NDJSON rows accepted.\n"
        "# TYPE ingest_records_total counter\n"
        "ingest_records_total %uA\n"
        "# HELP ingest_pending_keys Keys held by workers, not yet cut.\n"
        "# TYPE ingest_pending_keys gauge\n"
        "ingest_pending_keys %ui\n"
        "# HELP ingest_pending_bytes Memory workers hold for Redis.\n"
        "# TYPE ingest_pending_bytes gauge\n"
        "ingest_pending_bytes %ui\n"
        "# HELP ingest_batches_flushed_total Batches Redis acknowledged.\n"
        "# TYPE ingest_batches_flushed_total counter\n"
        "ingest_batches_flushed_total %uA\n"
        "# HELP ingest_batches_failed_total Batches Redis refused.\n"
        "# TYPE ingest_batches_failed_total counter\n"
        "ingest_batches_failed_total %uA\n"
        "# HELP ingest_batches_retried_total Batches sent again.\n"
        "# TYPE ingest_batches_retried_total counter\n"
        "ingest_batches_retried_total %uA\n",
        st->increments, st->records, sum.keys, sum.bytes,
        st->batches_flushed, st->batches_failed, st->batches_retried);

    p = ngx_sprintf(p,
        "# HELP ingest_flush_duration_seconds From RPUSH to Redis's "
        "acknowledgement.\n"
        "# TYPE ingest_flush_duration_seconds histogram\n");

    cumulative = 0;

    for (i = 0; i < NGX_HTTP_INGEST_BUCKETS; i++) {
        cumulative += st->flush_buckets[i];
        p = ngx_sprintf(p, "ingest_flush_duration_seconds_bucket"
                        "{le=\"%.3f\"} %uA\n",
                        (double) ngx_http_ingest_buckets[i] / 1000,
                        cumulative);
    }

    p = ngx_sprintf(p,
        "ingest_flush_duration_seconds_bucket{le=\"+Inf\"} %uA\n"
        "ingest_flush_duration_seconds_sum %.3f\n"
        "ingest_flush_duration_seconds_count %uA\n"
        "# HELP ingest_workers Worker processes with ingest state.\n"
        "# TYPE ingest_workers gauge\n"
        "ingest_workers %ui\n"
        "# HELP ingest_redis_connected_workers Workers connected to "
        "Redis.\n"
        "# TYPE ingest_redis_connected_workers gauge\n"
        "ingest_redis_connected_workers %ui\n"
        "# HELP ingest_redis_reconnects_total Connections to Redis "
        "restored.\n"
        "# TYPE ingest_redis_reconnects_total counter\n"
        "ingest_redis_reconnects_total %uA\n"
        "# HELP ingest_spool_files Batches waiting in the spool.\n"
        "# TYPE ingest_spool_files gauge\n"
        "ingest_spool_files %ui\n",
        st->flush_count, (double) st->flush_sum_ms / 1000, st->flush_count,
        sum.workers, sum.connected, st->reconnects,
        ngx_http_ingest_status_spool(imcf));

    p = ngx_sprintf(p,
        "# HELP ingest_queue_depth Batches in the Redis list.\n"
        "# TYPE ingest_queue_depth gauge\n");

    for (i = 0; i < imcf->queues.nelts && i < NGX_HTTP_INGEST_MAX_QUEUES; i++)
    {
        p = ngx_sprintf(p, "ingest_queue_depth{queue=\"%V\"} %uA\n",
                        &queue[i], st->queues[i].depth);
    }

    p = ngx_sprintf(p,
        "# HELP ingest_consumer_up 1 while the list's consumer sends its "
        "heartbeat.\n# TYPE ingest_consumer_up gauge\n");

    for (i = 0; i < imcf->queues.nelts && i < NGX_HTTP_INGEST_MAX_QUEUES; i++)
    {
        qs = &st->queues[i];
        p = ngx_sprintf(p, "ingest_consumer_up{queue=\"%V\"} %d\n",
                        &queue[i],
                        (qs->hb_ts
                         && now < qs->hb_ts + NGX_HTTP_INGEST_CONSUMER_STALE)
                        ? 1 : 0);
    }

    p = ngx_sprintf(p,
        "# HELP ingest_consumer_lag_seconds From a batch's cut to its "
        "commit in SQLite.\n# TYPE ingest_consumer_lag_seconds gauge\n");

    for (i = 0; i < imcf->queues.nelts && i < NGX_HTTP_INGEST_MAX_QUEUES; i++)
    {
        p = ngx_sprintf(p, "ingest_consumer_lag_seconds{queue=\"%V\"} %.3f\n",
                        &queue[i], (double) st->queues[i].hb_lag_ms / 1000);
    }

    p = ngx_sprintf(p,
        "# HELP ingest_consumer_batches_applied_total Batches the consumer "
        "applied.\n"
        "# TYPE ingest_consumer_batches_applied_total counter\n");

    for (i = 0; i < imcf->queues.nelts && i < NGX_HTTP_INGEST_MAX_QUEUES; i++)
    {
        p = ngx_sprintf(p, "ingest_consumer_batches_applied_total"
                        "{queue=\"%V\"} %uA\n", &queue[i],
                        st->queues[i].hb_batches);
    }

    p = ngx_sprintf(p,
        "# HELP ingest_consumer_last_commit_timestamp_seconds When the "
        "consumer last committed.\n"
        "# TYPE ingest_consumer_last_commit_timestamp_seconds gauge\n");

    for (i = 0; i < imcf->queues.nelts && i < NGX_HTTP_INGEST_MAX_QUEUES; i++)
    {
        p = ngx_sprintf(p, "ingest_consumer_last_commit_timestamp_seconds"
                        "{queue=\"%V\"} %.3f\n", &queue[i],
                        (double) st->queues[i].hb_commit / 1000);
    }

    b->last = p;

    return b;
}
