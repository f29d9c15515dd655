
/*
 * Copyright (C) ngx_ingest developers
 * SPDX-License-Identifier: BSD-2-Clause
 *
 * The status zone's counters: requests by location and status (counted
 * in the log phase, where nginx's own 413 is seen too), increments and
 * rows accepted, batches delivered, refused and sent again, and each
 * worker's pending keys and bytes and its Redis state in a slot of its
 * own.
 */


#include "ngx_http_ingest_metrics.h"


ngx_http_ingest_stats_t  *ngx_http_ingest_stats;


const ngx_uint_t  ngx_http_ingest_codes[NGX_HTTP_INGEST_CODES] = {
    200, 204, 400, 404, 405, 413, 415, 500, 503, 504, 0
};


const ngx_msec_t  ngx_http_ingest_buckets[NGX_HTTP_INGEST_BUCKETS] = {
    1, 2, 5, 10, 25, 50, 100, 500, 1000
};


/* this worker's slot: claimed in init_process, given back at exit */
static ngx_http_ingest_worker_stats_t  *ngx_http_ingest_worker_stats;


static ngx_int_t ngx_http_ingest_metrics_init_zone(ngx_shm_zone_t *zone,
    void *data);
static ngx_int_t ngx_http_ingest_metrics_log(ngx_http_request_t *r);


ngx_int_t
ngx_http_ingest_metrics_zone(ngx_conf_t *cf)
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

    zone->init = ngx_http_ingest_metrics_init_zone;

    return NGX_OK;
}


static ngx_int_t
ngx_http_ingest_metrics_init_zone(ngx_shm_zone_t *zone, void *data)
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
ngx_http_ingest_metrics_endpoint(ngx_conf_t *cf,
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
ngx_http_ingest_metrics_postconf(ngx_conf_t *cf)
{
    ngx_http_handler_pt        *h;
    ngx_http_core_main_conf_t  *cmcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_LOG_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_ingest_metrics_log;

    return NGX_OK;
}


static ngx_int_t
ngx_http_ingest_metrics_log(ngx_http_request_t *r)
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


void
ngx_http_ingest_metrics_claim(ngx_log_t *log)
{
    ngx_uint_t                       i;
    ngx_atomic_uint_t                pid;
    ngx_http_ingest_worker_stats_t  *ws;

    if (ngx_http_ingest_stats == NULL) {
        return;
    }

    for (i = 0; i < NGX_HTTP_INGEST_MAX_WORKERS; i++) {
        ws = &ngx_http_ingest_stats->workers[i];
        pid = ws->pid;

        /* free, or left by a worker that died without giving it back */

        if ((pid == 0 || (kill((pid_t) pid, 0) == -1 && ngx_errno == ESRCH))
            && ngx_atomic_cmp_set(&ws->pid, pid, (ngx_atomic_uint_t) ngx_pid))
        {
            ws->keys = 0;
            ws->bytes = 0;
            ws->connected = 0;
            ws->denied = 0;
            ngx_http_ingest_worker_stats = ws;
            return;
        }
    }

    ngx_log_error(NGX_LOG_WARN, log, 0,
                  "ingest: no status slot left for this worker");
}


void
ngx_http_ingest_metrics_release(void)
{
    ngx_http_ingest_worker_stats_t  *ws;

    ws = ngx_http_ingest_worker_stats;

    if (ws != NULL) {
        ws->keys = 0;
        ws->bytes = 0;
        ws->connected = 0;
        ws->denied = 0;
        (void) ngx_atomic_cmp_set(&ws->pid, (ngx_atomic_uint_t) ngx_pid, 0);
        ngx_http_ingest_worker_stats = NULL;
    }
}


void
ngx_http_ingest_metrics_pending(ngx_uint_t keys, size_t bytes)
{
    if (ngx_http_ingest_worker_stats != NULL) {
        ngx_http_ingest_worker_stats->keys = keys;
        ngx_http_ingest_worker_stats->bytes = bytes;
    }
}


void
ngx_http_ingest_metrics_connected(ngx_uint_t connected)
{
    if (ngx_http_ingest_worker_stats != NULL) {
        ngx_http_ingest_worker_stats->connected = connected ? 1 : 0;
    }
}


void
ngx_http_ingest_metrics_denied(ngx_uint_t denied)
{
    /*
     * The worker is denied while any of its connections is (a cluster's
     * nodes each have theirs): one that logs in again does not clear
     * another's refusal.
     */

    static ngx_uint_t  ndenied;

    if (denied) {
        ndenied++;

    } else if (ndenied) {
        ndenied--;
    }

    if (ngx_http_ingest_worker_stats != NULL) {
        ngx_http_ingest_worker_stats->denied = ndenied ? 1 : 0;
    }
}


void
ngx_http_ingest_metrics_spool(ngx_uint_t files, ngx_uint_t aside)
{
    if (ngx_http_ingest_stats != NULL) {
        ngx_http_ingest_stats->spool_files = files;
        ngx_http_ingest_stats->spool_aside = aside;
    }
}


void
ngx_http_ingest_metrics_flushed(ngx_msec_t ms, ngx_uint_t n)
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
    (void) ngx_atomic_fetch_add(&ngx_http_ingest_stats->batches_flushed, n);
}
