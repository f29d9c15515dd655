
/*
 * Copyright (C) ngx_ingest developers
 * SPDX-License-Identifier: BSD-2-Clause
 *
 * The status endpoint:
 *
 *   location = /ingest/status { ingest_status; }
 *
 * JSON by default; the Prometheus text format with ?format=prometheus or
 * an "Accept: text/plain" scrape.  The numbers are the zone's
 * (ngx_http_ingest_metrics.c); the lists' lengths and heartbeats come
 * from the poll (ngx_http_ingest_poll.c), which a request that finds
 * them stale asks for, and waits for (briefly).
 */


#include "ngx_http_ingest_status.h"
#include "ngx_http_ingest_metrics.h"
#include "ngx_http_ingest_poll.h"
#include "ngx_http_ingest_reply.h"



#define NGX_HTTP_INGEST_CONSUMER_STALE   5000     /* ms without heartbeat */


/* a status request waiting for a fresh poll */

typedef struct {
    ngx_queue_t                 link;          /* in the waiting queue */
    ngx_http_request_t         *request;
    ngx_event_t                 timer;
    ngx_uint_t                  prometheus;
    unsigned                    waiting:1;
} ngx_http_ingest_status_wait_t;


static void ngx_http_ingest_status_wake(ngx_event_t *ev);
static void ngx_http_ingest_status_timeout(ngx_event_t *ev);
static void ngx_http_ingest_status_cleanup(void *data);
static void ngx_http_ingest_status_answer(ngx_http_ingest_status_wait_t *sw);
static ngx_uint_t ngx_http_ingest_status_stale(
    ngx_http_ingest_main_conf_t *imcf);
static ngx_int_t ngx_http_ingest_status_send(ngx_http_request_t *r,
    ngx_uint_t prometheus);
static ngx_int_t ngx_http_ingest_status_handler(ngx_http_request_t *r);
static ngx_str_t *ngx_http_ingest_status_names(ngx_http_request_t *r,
    ngx_array_t *names, ngx_uint_t prometheus);
static ngx_buf_t *ngx_http_ingest_status_json(ngx_http_request_t *r,
    ngx_http_ingest_main_conf_t *imcf);
static ngx_buf_t *ngx_http_ingest_status_prometheus(ngx_http_request_t *r,
    ngx_http_ingest_main_conf_t *imcf);


/* status requests waiting for the poll, and the event that wakes them */
static ngx_queue_t  ngx_http_ingest_status_waiting;
static ngx_event_t  ngx_http_ingest_status_event;


/* the poll is over (a posted event): answer those who waited */

static void
ngx_http_ingest_status_wake(ngx_event_t *ev)
{
    ngx_queue_t                     *link;
    ngx_http_ingest_status_wait_t   *sw;

    while (!ngx_queue_empty(&ngx_http_ingest_status_waiting)) {
        link = ngx_queue_head(&ngx_http_ingest_status_waiting);
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

    if (ngx_http_ingest_metrics_endpoint(cf, ilcf) != NGX_OK) {
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

    if (ngx_http_ingest_status_event.handler == NULL) {
        ngx_queue_init(&ngx_http_ingest_status_waiting);
        ngx_http_ingest_status_event.handler = ngx_http_ingest_status_wake;
        ngx_http_ingest_status_event.log = ngx_cycle->log;
    }

    if (ngx_http_ingest_status_stale(imcf)
        && ngx_http_ingest_poll(&ngx_http_ingest_status_event) == NGX_OK)
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

        sw->timer.handler = ngx_http_ingest_status_timeout;
        sw->timer.data = r->connection;
        sw->timer.log = r->connection->log;
        ngx_add_timer(&sw->timer, 300);

        ngx_queue_insert_tail(&ngx_http_ingest_status_waiting, &sw->link);
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


/*
 * Locations' and lists' names as the output quotes them: JSON string
 * escapes, or a Prometheus label value's (backslash, quote, newline).
 */

static ngx_str_t *
ngx_http_ingest_status_names(ngx_http_request_t *r, ngx_array_t *names,
    ngx_uint_t prometheus)
{
    u_char     *p;
    size_t      len;
    ngx_str_t  *in, *out;
    ngx_uint_t  i, j;

    in = names->elts;

    out = ngx_palloc(r->pool, (names->nelts + 1) * sizeof(ngx_str_t));
    if (out == NULL) {
        return NULL;
    }

    for (i = 0; i < names->nelts; i++) {
        len = prometheus ? 2 * in[i].len
                         : ngx_http_ingest_json_escaped(in[i].data,
                                                        in[i].len);

        p = ngx_pnalloc(r->pool, len);
        if (p == NULL) {
            return NULL;
        }

        out[i].data = p;

        if (!prometheus) {
            out[i].len = ngx_http_ingest_json_escape(p, in[i].data,
                                                     in[i].len)
                         - p;
            continue;
        }

        for (j = 0; j < in[i].len; j++) {
            switch (in[i].data[j]) {
            case '\\':
            case '"':
                *p++ = '\\';
                *p++ = in[i].data[j];
                break;
            case '\n':
                *p++ = '\\';
                *p++ = 'n';
                break;
            default:
                *p++ = in[i].data[j];
            }
        }

        out[i].len = p - out[i].data;
    }

    return out;
}


/* what every worker's numbers add up to */

typedef struct {
    ngx_uint_t                workers;
    ngx_uint_t                connected;
    ngx_uint_t                denied;
    ngx_uint_t                keys;
    ngx_uint_t                bytes;
} ngx_http_ingest_sum_t;


static void
ngx_http_ingest_status_sum(ngx_http_ingest_sum_t *sum)
{
    ngx_uint_t                      i;
    ngx_atomic_uint_t               pid;
    ngx_http_ingest_worker_stats_t  *ws;

    ngx_memzero(sum, sizeof(ngx_http_ingest_sum_t));

    for (i = 0; i < NGX_HTTP_INGEST_MAX_WORKERS; i++) {
        ws = &ngx_http_ingest_stats->workers[i];
        pid = ws->pid;

        if (pid == 0 || (kill((pid_t) pid, 0) == -1 && ngx_errno == ESRCH)) {
            continue;
        }

        sum->workers++;
        sum->connected += ws->connected ? 1 : 0;
        sum->denied += ws->denied ? 1 : 0;
        sum->keys += ws->keys;
        sum->bytes += ws->bytes;
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
    ngx_http_ingest_list_stats_t  *qs;

    st = ngx_http_ingest_stats;
    ngx_http_ingest_status_sum(&sum);
    now = (ngx_msec_t) (ngx_time() * 1000);

    name = ngx_http_ingest_status_names(r, &imcf->endpoint_names, 0);
    queue = ngx_http_ingest_status_names(r, &imcf->queues, 0);

    if (name == NULL || queue == NULL) {
        return NULL;
    }

    size = 1024 + NGX_HTTP_INGEST_BUCKETS * 32;

    for (i = 0; i < imcf->endpoint_names.nelts; i++) {
        size += name[i].len + NGX_HTTP_INGEST_CODES * 32 + 16;
    }

    for (i = 0; i < imcf->queues.nelts; i++) {
        size += queue[i].len + 6 * NGX_HTTP_INGEST_LINE;
    }

    b = ngx_create_temp_buf(r->pool, size);
    if (b == NULL) {
        return NULL;
    }

    /* the version first: whoever reads the numbers knows whose they are */

    p = ngx_sprintf(b->last, "{\"version\":\"%s\",\"workers\":%ui,"
                    "\"requests\":{", INGEST_VERSION, sum.workers);

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
                    "\"denied_workers\":%ui,"
                    "\"reconnects\":%uA},\"spool_files\":%uA,"
                    "\"spool_aside\":%uA,\"queues\":{",
                    st->increments, st->records, sum.keys, sum.bytes,
                    st->batches_flushed, st->batches_failed,
                    st->batches_retried, st->flush_count,
                    (double) st->flush_sum_ms / 1000, sum.connected,
                    sum.denied, st->reconnects, st->spool_files,
                    st->spool_aside);

    for (i = 0; i < imcf->queues.nelts && i < NGX_HTTP_INGEST_MAX_QUEUES; i++)
    {
        qs = &st->queues[i];

        p = ngx_sprintf(p, "%s\"%V\":{\"depth\":%uA,\"dead\":%uA,"
                        "\"consumer\":", i ? "," : "", &queue[i], qs->depth,
                        qs->dead);

        if (qs->hb_ts == 0) {
            p = ngx_sprintf(p, "null}");
            continue;
        }

        p = ngx_sprintf(p, "{\"up\":%s,\"heartbeat_age_seconds\":%.3f,"
                        "\"lag_seconds\":%.3f,\"batches_applied\":%uA,"
                        "\"rows_applied\":%uA,\"bucket_rows_written\":%uA,"
                        "\"last_commit\":%uA}}",
                        (now < qs->hb_ts + NGX_HTTP_INGEST_CONSUMER_STALE)
                        ? "true" : "false",
                        now > qs->hb_ts ? (double) (now - qs->hb_ts) / 1000
                                        : 0.0,
                        (double) qs->hb_lag_ms / 1000, qs->hb_batches,
                        qs->hb_rows, qs->hb_bucket_rows, qs->hb_commit);
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
    ngx_http_ingest_list_stats_t  *qs;

    st = ngx_http_ingest_stats;
    ngx_http_ingest_status_sum(&sum);
    now = (ngx_msec_t) (ngx_time() * 1000);

    name = ngx_http_ingest_status_names(r, &imcf->endpoint_names, 1);
    queue = ngx_http_ingest_status_names(r, &imcf->queues, 1);

    if (name == NULL || queue == NULL) {
        return NULL;
    }

    size = 53 * NGX_HTTP_INGEST_LINE;

    for (i = 0; i < imcf->endpoint_names.nelts; i++) {
        size += NGX_HTTP_INGEST_CODES * (name[i].len + NGX_HTTP_INGEST_LINE);
    }

    for (i = 0; i < imcf->queues.nelts; i++) {
        size += 10 * (queue[i].len + NGX_HTTP_INGEST_LINE);
    }

    b = ngx_create_temp_buf(r->pool, size);
    if (b == NULL) {
        return NULL;
    }

    /* the usual *_build_info: a constant 1, the version in a label */

    p = ngx_sprintf(b->last,
        "# HELP ingest_build_info The ingest module's version.\n"
        "# TYPE ingest_build_info gauge\n"
        "ingest_build_info{version=\"%s\"} 1\n"
        "# HELP ingest_requests_total Requests to ingest locations, by "
        "status.\n# TYPE ingest_requests_total counter\n", INGEST_VERSION);

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
        "# HELP ingest_redis_denied_workers Workers whose login Redis "
        "refuses (WRONGPASS, NOAUTH, NOPERM).\n"
        "# TYPE ingest_redis_denied_workers gauge\n"
        "ingest_redis_denied_workers %ui\n"
        "# HELP ingest_redis_reconnects_total Connections to Redis "
        "restored.\n"
        "# TYPE ingest_redis_reconnects_total counter\n"
        "ingest_redis_reconnects_total %uA\n"
        "# HELP ingest_spool_files Spool files waiting for Redis (a "
        "list's batches from one worker's exit).\n"
        "# TYPE ingest_spool_files gauge\n"
        "ingest_spool_files %uA\n"
        "# HELP ingest_spool_aside_files Spool files moved aside, "
        "malformed or refused by Redis: kept for an operator.\n"
        "# TYPE ingest_spool_aside_files gauge\n"
        "ingest_spool_aside_files %uA\n",
        st->flush_count, (double) st->flush_sum_ms / 1000, st->flush_count,
        sum.workers, sum.connected, sum.denied, st->reconnects,
        st->spool_files, st->spool_aside);

    p = ngx_sprintf(p,
        "# HELP ingest_queue_depth Batches in the Redis list.\n"
        "# TYPE ingest_queue_depth gauge\n");

    for (i = 0; i < imcf->queues.nelts && i < NGX_HTTP_INGEST_MAX_QUEUES; i++)
    {
        p = ngx_sprintf(p, "ingest_queue_depth{queue=\"%V\"} %uA\n",
                        &queue[i], st->queues[i].depth);
    }

    p = ngx_sprintf(p,
        "# HELP ingest_queue_dead Batches the consumer refused, in the "
        "list's dead-letter list.\n"
        "# TYPE ingest_queue_dead gauge\n");

    for (i = 0; i < imcf->queues.nelts && i < NGX_HTTP_INGEST_MAX_QUEUES; i++)
    {
        p = ngx_sprintf(p, "ingest_queue_dead{queue=\"%V\"} %uA\n",
                        &queue[i], st->queues[i].dead);
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
        "# HELP ingest_consumer_bucket_rows_written_total Time buckets "
        "(ingest_counters buckets=) the consumer added to.\n"
        "# TYPE ingest_consumer_bucket_rows_written_total counter\n");

    for (i = 0; i < imcf->queues.nelts && i < NGX_HTTP_INGEST_MAX_QUEUES; i++)
    {
        p = ngx_sprintf(p, "ingest_consumer_bucket_rows_written_total"
                        "{queue=\"%V\"} %uA\n", &queue[i],
                        st->queues[i].hb_bucket_rows);
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
