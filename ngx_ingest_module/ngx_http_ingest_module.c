
/*
 * Copyright (C) ngx_ingest developers
 * SPDX-License-Identifier: BSD-2-Clause
 *
 * Directives, configuration and the worker's life: init_module names
 * the version in the log; init_process picks the transport (one Redis
 * server or a cluster) and starts the flush layer, the spool's replay
 * and the status poll; exit_process hands whatever is left to Redis
 * before the worker goes.
 */


#include "ngx_http_ingest_module.h"
#include "ngx_http_ingest_handler.h"
#include "ngx_http_ingest_redis_conf.h"
#include "ngx_http_ingest_records.h"
#include "ngx_http_ingest_totals.h"
#include "ngx_http_ingest_status.h"
#include "ngx_http_ingest_metrics.h"
#include "ngx_http_ingest_flush.h"
#include "ngx_http_ingest_replay.h"
#include "ngx_http_ingest_poll.h"
#include "ngx_http_ingest_table.h"


static void *ngx_http_ingest_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_ingest_init_main_conf(ngx_conf_t *cf, void *conf);
static ngx_int_t ngx_http_ingest_shard_lists(ngx_conf_t *cf,
    ngx_http_ingest_main_conf_t *imcf);
static void *ngx_http_ingest_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_ingest_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static char *ngx_http_ingest_conf_buckets(ngx_conf_t *cf,
    ngx_http_ingest_loc_conf_t *ilcf, ngx_str_t *list);
static char *ngx_http_ingest_conf_bucket_set(ngx_conf_t *cf,
    ngx_http_ingest_loc_conf_t *ilcf);
static char *ngx_http_ingest_counters(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_ingest_init_module(ngx_cycle_t *cycle);
static ngx_int_t ngx_http_ingest_init_process(ngx_cycle_t *cycle);
#if !(NGX_THREADS)
static char *ngx_http_ingest_no_threads(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
#endif
static void ngx_http_ingest_exit_process(ngx_cycle_t *cycle);


static ngx_conf_enum_t  ngx_http_ingest_ack[] = {
    { ngx_string("memory"), NGX_HTTP_INGEST_ACK_MEMORY },
    { ngx_string("redis"), NGX_HTTP_INGEST_ACK_REDIS },
    { ngx_null_string, 0 }
};


static ngx_conf_num_bounds_t  ngx_http_ingest_shards_bounds = {
    ngx_conf_check_num_bounds, 1, NGX_HTTP_INGEST_MAX_SHARDS
};


static ngx_conf_num_bounds_t  ngx_http_ingest_key_length_bounds = {
    ngx_conf_check_num_bounds, 1, NGX_HTTP_INGEST_MAX_KEY_LENGTH
};


static ngx_command_t  ngx_http_ingest_commands[] = {

    { ngx_string("ingest_redis"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_ingest_redis_conf,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("ingest_flush_interval"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_ingest_main_conf_t, flush_interval),
      NULL },

    { ngx_string("ingest_flush_keys"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_ingest_main_conf_t, flush_keys),
      NULL },

    { ngx_string("ingest_redis_connect_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_ingest_main_conf_t, connect_timeout),
      NULL },

    { ngx_string("ingest_redis_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_ingest_main_conf_t, ack_timeout),
      NULL },

    { ngx_string("ingest_drain_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_ingest_main_conf_t, drain_timeout),
      NULL },

    { ngx_string("ingest_max_pending"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_ingest_main_conf_t, max_pending),
      NULL },

    { ngx_string("ingest_spool"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_path_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_ingest_main_conf_t, spool),
      NULL },

    { ngx_string("ingest_shards"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_ingest_main_conf_t, shards),
      &ngx_http_ingest_shards_bounds },

    { ngx_string("ingest_counters"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS|NGX_CONF_TAKE12,
      ngx_http_ingest_counters,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("ingest_max_key_length"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_ingest_loc_conf_t, max_key_length),
      &ngx_http_ingest_key_length_bounds },

    { ngx_string("ingest_totals"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
#if (NGX_THREADS)
      ngx_http_ingest_totals,
#else
      ngx_http_ingest_no_threads,
#endif
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("ingest_status"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_ingest_status,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("ingest_records"),
      NGX_HTTP_LOC_CONF|NGX_CONF_2MORE,
      ngx_http_ingest_records,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("ingest_max_line_length"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_ingest_loc_conf_t, max_line),
      NULL },

    { ngx_string("ingest_ack"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_ingest_loc_conf_t, ack),
      &ngx_http_ingest_ack },

    { ngx_string("ingest_ack_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_ingest_loc_conf_t, ack_timeout),
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_ingest_module_ctx = {
    NULL,                                  /* preconfiguration */
    ngx_http_ingest_metrics_postconf,      /* postconfiguration */

    ngx_http_ingest_create_main_conf,      /* create main configuration */
    ngx_http_ingest_init_main_conf,        /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_ingest_create_loc_conf,       /* create location configuration */
    ngx_http_ingest_merge_loc_conf         /* merge location configuration */
};


ngx_module_t  ngx_http_ingest_module = {
    NGX_MODULE_V1,
    &ngx_http_ingest_module_ctx,           /* module context */
    ngx_http_ingest_commands,              /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    ngx_http_ingest_init_module,           /* init module */
    ngx_http_ingest_init_process,          /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_ingest_exit_process,          /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static void *
ngx_http_ingest_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_ingest_main_conf_t  *imcf;

    imcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_ingest_main_conf_t));
    if (imcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     imcf->redis = { 0, NULL };
     *     imcf->redis_host = NULL;
     *     imcf->redis_port = 0;
     *     imcf->endpoints = 0;
     *     imcf->spool = NULL;        (ngx_conf_set_path_slot wants NULL)
     */

    imcf->flush_interval = NGX_CONF_UNSET_MSEC;
    imcf->flush_keys = NGX_CONF_UNSET_UINT;
    imcf->connect_timeout = NGX_CONF_UNSET_MSEC;
    imcf->ack_timeout = NGX_CONF_UNSET_MSEC;
    imcf->drain_timeout = NGX_CONF_UNSET_MSEC;
    imcf->max_pending = NGX_CONF_UNSET_SIZE;

    imcf->shards = NGX_CONF_UNSET_UINT;

    if (ngx_array_init(&imcf->lists, cf->pool, 2,
                       sizeof(ngx_http_ingest_list_t))
        != NGX_OK
        || ngx_array_init(&imcf->queues, cf->pool, 2, sizeof(ngx_str_t))
           != NGX_OK
        || ngx_array_init(&imcf->endpoint_names, cf->pool, 4,
                          sizeof(ngx_str_t))
           != NGX_OK
        || ngx_array_init(&imcf->bucket_sets, cf->pool, 1,
                          sizeof(ngx_http_ingest_bucket_set_t))
           != NGX_OK
        || ngx_array_init(&imcf->tables, cf->pool, 2,
                          sizeof(ngx_http_ingest_records_conf_t *))
           != NGX_OK)
    {
        return NULL;
    }

    return imcf;
}


static char *
ngx_http_ingest_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_ingest_main_conf_t  *imcf = conf;

    size_t  table;

    ngx_conf_init_msec_value(imcf->flush_interval, 100);
    ngx_conf_init_uint_value(imcf->flush_keys, 10000);
    ngx_conf_init_msec_value(imcf->connect_timeout, 1000);
    ngx_conf_init_msec_value(imcf->ack_timeout, 5000);
    ngx_conf_init_msec_value(imcf->drain_timeout, 3000);
    ngx_conf_init_size_value(imcf->max_pending, 64 * 1024 * 1024);
    ngx_conf_init_uint_value(imcf->shards, 1);

    if (imcf->flush_interval == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"ingest_flush_interval\" must be more than 0");
        return NGX_CONF_ERROR;
    }

    if (imcf->flush_keys == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"ingest_flush_keys\" must be more than 0");
        return NGX_CONF_ERROR;
    }

    if (ngx_http_ingest_shard_lists(cf, imcf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (imcf->endpoint_names.nelts
        && ngx_http_ingest_metrics_zone(cf) != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    if (imcf->endpoints && imcf->redis_host == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"ingest_counters\" or \"ingest_records\" "
                           "is used but \"ingest_redis\" is not set");
        return NGX_CONF_ERROR;
    }

#if (NGX_THREADS)

    /* the spool's replay reads its files there, off the event loop */

    if (imcf->endpoints && imcf->spool != NULL) {
        imcf->spool_threads = ngx_thread_pool_add(cf, NULL);
        if (imcf->spool_threads == NULL) {
            return NGX_CONF_ERROR;
        }
    }

#endif

    /*
     * Each Redis list's sums are sized for ingest_flush_keys up front: a
     * worker holds that whatever it takes, and a limit below it could not
     * be kept.
     */

    table = ngx_http_ingest_table_size(imcf->flush_keys);

    if (imcf->endpoints && imcf->max_pending < imcf->queues.nelts * table) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"ingest_max_pending\" %uzk is below the %uzk "
                           "that the sums of %ui Redis lists take up front "
                           "(%uzk each at \"ingest_flush_keys\" %ui): raise "
                           "it, or lower \"ingest_flush_keys\"",
                           imcf->max_pending / 1024,
                           imcf->queues.nelts * table / 1024,
                           imcf->queues.nelts, table / 1024,
                           imcf->flush_keys);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static void *
ngx_http_ingest_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_ingest_loc_conf_t  *ilcf;

    ilcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_ingest_loc_conf_t));
    if (ilcf == NULL) {
        return NULL;
    }

    ilcf->format = NGX_CONF_UNSET_UINT;
    ilcf->queue = NGX_CONF_UNSET_UINT;
    ilcf->max_key_length = NGX_CONF_UNSET_SIZE;
    ilcf->ack = NGX_CONF_UNSET_UINT;
    ilcf->ack_timeout = NGX_CONF_UNSET_MSEC;
    ilcf->max_line = NGX_CONF_UNSET_SIZE;

    return ilcf;
}


static char *
ngx_http_ingest_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_ingest_loc_conf_t  *prev = parent;
    ngx_http_ingest_loc_conf_t  *conf = child;

    /* an endpoint is not inherited: nested locations have their own */

    ngx_conf_merge_size_value(conf->max_key_length, prev->max_key_length,
                              255);
    ngx_conf_merge_uint_value(conf->ack, prev->ack,
                              NGX_HTTP_INGEST_ACK_MEMORY);
    ngx_conf_merge_msec_value(conf->ack_timeout, prev->ack_timeout, 5000);
    ngx_conf_merge_size_value(conf->max_line, prev->max_line, 64 * 1024);

    /* a row travels whole, in one batch: it must fit half of one */

    if (conf->max_line > NGX_HTTP_INGEST_MAX_BATCH / 2) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"ingest_max_line_length\" must be at most 512k");
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/*
 * buckets=1m,1h,1d: resolutions from 1s to 1d, each dividing a day (so
 * that buckets line up with days), in any order, no two alike
 */

static char *
ngx_http_ingest_conf_buckets(ngx_conf_t *cf, ngx_http_ingest_loc_conf_t *ilcf,
    ngx_str_t *list)
{
    u_char      *p, *end, *last;
    int64_t      n;
    ngx_uint_t   i;

    p = list->data;
    last = list->data + list->len;

    for ( ;; ) {
        end = ngx_strlchr(p, last, ',');
        if (end == NULL) {
            end = last;
        }

        n = ingest_wire_duration((const char *) p, end - p);

        if (!ingest_wire_valid_resolution(n)) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid resolution \"%*s\" in \"buckets=\": "
                               "give a time from 1s to 1d that divides a "
                               "day, units s, m, h or d (e.g. "
                               "buckets=1m,1h,1d)", end - p, p);
            return NGX_CONF_ERROR;
        }

        for (i = 0; i < ilcf->nresolutions; i++) {
            if (ilcf->resolutions[i] == (uint32_t) n) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "\"buckets=\" names the resolution "
                                   "\"%*s\" twice", end - p, p);
                return NGX_CONF_ERROR;
            }
        }

        if (ilcf->nresolutions == NGX_HTTP_INGEST_MAX_RESOLUTIONS) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"buckets=\" takes at most %d resolutions",
                               NGX_HTTP_INGEST_MAX_RESOLUTIONS);
            return NGX_CONF_ERROR;
        }

        ilcf->resolutions[ilcf->nresolutions++] = (uint32_t) n;

        if (end == last) {
            return ngx_http_ingest_conf_bucket_set(cf, ilcf);
        }

        p = end + 1;
    }
}


/* the location's resolutions as one of imcf->bucket_sets, and its step */

static char *
ngx_http_ingest_conf_bucket_set(ngx_conf_t *cf,
    ngx_http_ingest_loc_conf_t *ilcf)
{
    uint32_t                       a, b, t;
    ngx_uint_t                     i, j;
    ngx_http_ingest_main_conf_t   *imcf;
    ngx_http_ingest_bucket_set_t  *set;

    a = ilcf->resolutions[0];

    for (i = 1; i < ilcf->nresolutions; i++) {
        for (b = ilcf->resolutions[i]; b; a = t) {
            t = b;
            b = a % b;
        }
    }

    ilcf->step = a;

    imcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_ingest_module);
    set = imcf->bucket_sets.elts;

    for (i = 0; i < imcf->bucket_sets.nelts; i++) {
        if (set[i].n != ilcf->nresolutions) {
            continue;
        }

        for (j = 0; j < set[i].n; j++) {
            if (set[i].resolutions[j] != ilcf->resolutions[j]) {
                break;
            }
        }

        if (j == set[i].n) {
            ilcf->bucket_set = i;
            return NGX_CONF_OK;
        }
    }

    if (imcf->bucket_sets.nelts == NGX_HTTP_INGEST_MAX_BUCKET_SETS) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "more than %d different \"buckets=\" lists",
                           NGX_HTTP_INGEST_MAX_BUCKET_SETS);
        return NGX_CONF_ERROR;
    }

    set = ngx_array_push(&imcf->bucket_sets);
    if (set == NULL) {
        return NGX_CONF_ERROR;
    }

    set->n = ilcf->nresolutions;
    ngx_memcpy(set->resolutions, ilcf->resolutions,
               sizeof(set->resolutions));
    set->step = ilcf->step;

    ilcf->bucket_set = imcf->bucket_sets.nelts - 1;

    return NGX_CONF_OK;
}


/* ingest_counters [form=key_value] [queue=<list>] [buckets=<res>,...] */

static char *
ngx_http_ingest_counters(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_ingest_loc_conf_t  *ilcf = conf;

    ngx_str_t                    *value, name, buckets;
    ngx_uint_t                    i;
    ngx_http_core_loc_conf_t     *clcf;
    ngx_http_ingest_main_conf_t  *imcf;

    if (ilcf->format != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    if (ilcf->records != NULL) {
        return "conflicts with \"ingest_records\"";
    }

    value = cf->args->elts;

    ilcf->format = NGX_HTTP_INGEST_FORM;
    ngx_str_set(&name, INGEST_WIRE_COUNTERS_QUEUE);

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strcmp(value[i].data, "form=key_value") == 0) {
            ilcf->format = NGX_HTTP_INGEST_KEY_VALUE;
            continue;
        }

        if (ngx_strcmp(value[i].data, "form=auto") == 0) {
            continue;
        }

        if (value[i].len > 6 && ngx_strncmp(value[i].data, "queue=", 6) == 0)
        {
            name.data = value[i].data + 6;
            name.len = value[i].len - 6;
            continue;
        }

        if (value[i].len > 8
            && ngx_strncmp(value[i].data, "buckets=", 8) == 0)
        {
            if (ilcf->nresolutions) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "\"buckets=\" is given twice");
                return NGX_CONF_ERROR;
            }

            buckets.data = value[i].data + 8;
            buckets.len = value[i].len - 8;

            if (ngx_http_ingest_conf_buckets(cf, ilcf, &buckets)
                != NGX_CONF_OK)
            {
                return NGX_CONF_ERROR;
            }

            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\"", &value[i]);
        return NGX_CONF_ERROR;
    }

    imcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_ingest_module);

    i = ngx_http_ingest_list_index(cf, &name, 0);
    if (i == NGX_CONF_UNSET_UINT) {
        return NGX_CONF_ERROR;
    }

    ilcf->queue = i;
    imcf->endpoints++;

    if (ngx_http_ingest_metrics_endpoint(cf, ilcf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_ingest_handler;

    return NGX_CONF_OK;
}


#if !(NGX_THREADS)

static char *
ngx_http_ingest_no_threads(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    return "requires nginx built --with-threads";
}

#endif


/* the index of list name in imcf->lists, added if new */

ngx_uint_t
ngx_http_ingest_list_index(ngx_conf_t *cf, ngx_str_t *name,
    ngx_uint_t records)
{
    ngx_uint_t                    i, n;
    ngx_http_ingest_list_t       *list;
    ngx_http_ingest_main_conf_t  *imcf;

    imcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_ingest_module);

    /*
     * It names a Redis key, a spool file, a log line, a JSON member and
     * a Prometheus label: visible ASCII only.
     */

    for (i = 0; i < name->len; i++) {
        if (name->data[i] < 0x21 || name->data[i] > 0x7e) {
            break;
        }
    }

    if (name->len == 0 || name->len > NGX_HTTP_INGEST_MAX_LIST
        || i < name->len)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid list name \"%V\": visible ASCII only "
                           "(no space, no control character), 1 to %d "
                           "bytes", name, NGX_HTTP_INGEST_MAX_LIST);
        return NGX_CONF_UNSET_UINT;
    }

    list = imcf->lists.elts;
    n = imcf->lists.nelts;

    for (i = 0; i < n; i++) {
        if (list[i].name.len == name->len
            && ngx_strncmp(list[i].name.data, name->data, name->len) == 0)
        {
            break;
        }
    }

    if (i == n) {
        list = ngx_array_push(&imcf->lists);
        if (list == NULL) {
            return NGX_CONF_UNSET_UINT;
        }

        ngx_memzero(list, sizeof(ngx_http_ingest_list_t));
        list->name = *name;

    } else {
        list = &list[i];
    }

    if (records) {
        list->records = 1;

    } else {
        list->counters = 1;
    }

    return i;
}


/*
 * The Redis lists behind the directives' lists, once the http block is
 * read (ingest_shards may come after the locations): a list of counters
 * is "<name>:{0}" .. "<name>:{n-1}", a hash tag each, so that in a Redis
 * Cluster each lives in one slot and the shards spread over the masters.
 */

static ngx_int_t
ngx_http_ingest_shard_lists(ngx_conf_t *cf, ngx_http_ingest_main_conf_t *imcf)
{
    ngx_str_t               *q;
    ngx_uint_t               i, s;
    ngx_http_ingest_list_t  *list;

    list = imcf->lists.elts;

    for (i = 0; i < imcf->lists.nelts; i++) {
        list[i].first = imcf->queues.nelts;
        list[i].shards = list[i].counters ? imcf->shards : 1;

        if (list[i].shards > 1 && list[i].records) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "list \"%V\" is used by \"ingest_counters\" "
                               "and by \"ingest_records\": with "
                               "\"ingest_shards\" a counters list is "
                               "sharded and a records list is not, give "
                               "them different names", &list[i].name);
            return NGX_ERROR;
        }

        if (list[i].shards > 1
            && ngx_strlchr(list[i].name.data,
                           list[i].name.data + list[i].name.len, '{')
               != NULL)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "sharded list \"%V\" must not hold a \"{\": "
                               "each shard's name ends in a hash tag of "
                               "its own", &list[i].name);
            return NGX_ERROR;
        }

        if (imcf->queues.nelts + list[i].shards > NGX_HTTP_INGEST_MAX_QUEUES)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "more than %d Redis lists with list \"%V\" "
                               "and its shards",
                               NGX_HTTP_INGEST_MAX_QUEUES, &list[i].name);
            return NGX_ERROR;
        }

        for (s = 0; s < list[i].shards; s++) {
            q = ngx_array_push(&imcf->queues);
            if (q == NULL) {
                return NGX_ERROR;
            }

            if (list[i].shards == 1) {
                *q = list[i].name;
                continue;
            }

            q->data = ngx_pnalloc(cf->pool, list[i].name.len
                                            + sizeof(":{}") - 1
                                            + NGX_INT_T_LEN);
            if (q->data == NULL) {
                return NGX_ERROR;
            }

            q->len = ngx_sprintf(q->data, "%V:{%ui}", &list[i].name, s)
                     - q->data;
        }
    }

    return NGX_OK;
}


/*
 * The master runs this once per configuration it loads (at start and at
 * each reload; workers inherit the cycle and do not), so the log says
 * which build of the module took each configuration.  nginx -t and -T
 * load none: they say nothing.
 */

static ngx_int_t
ngx_http_ingest_init_module(ngx_cycle_t *cycle)
{
    if (!ngx_test_config) {
        ngx_log_error(NGX_LOG_NOTICE, cycle->log, 0, "ingest module %s",
                      INGEST_VERSION);
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_ingest_init_process(ngx_cycle_t *cycle)
{
    ngx_http_ingest_main_conf_t            *imcf;
    const ngx_http_ingest_transport_ops_t  *ops;

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    imcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_ingest_module);

    if (imcf == NULL || imcf->endpoints == 0) {
        return NGX_OK;
    }

    ops = imcf->cluster ? &ngx_http_ingest_cluster_transport
                        : &ngx_http_ingest_redis_transport;

    ngx_http_ingest_metrics_claim(cycle->log);

    if (ngx_http_ingest_flush_init(cycle, imcf, ops) != NGX_OK) {
        return NGX_ERROR;
    }

    if ((imcf->spool != NULL
         && ngx_http_ingest_replay_init(cycle, imcf,
                                       ngx_http_ingest_worker->transport)
            != NGX_OK)
        || ngx_http_ingest_poll_init(cycle, ngx_http_ingest_worker->transport)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static void
ngx_http_ingest_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_ingest_poll_exit();
    ngx_http_ingest_flush_exit();
    ngx_http_ingest_replay_exit();
    ngx_http_ingest_metrics_release();
}
