
/*
 * Copyright (C) ngx_ingest developers
 * SPDX-License-Identifier: BSD-2-Clause
 *
 * The module's configuration, as every file reads it: the directives'
 * http and location structures and the lists they name.  The functions
 * of each file are in that file's own header.
 */

#ifndef _NGX_HTTP_INGEST_MODULE_H_INCLUDED_
#define _NGX_HTTP_INGEST_MODULE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#if (NGX_THREADS)
#include <ngx_thread_pool.h>
#endif

#include "ngx_http_ingest_conn.h"
#include "ngx_http_ingest_parse.h"
#include "ngx_http_ingest_ndjson.h"


/* an address of ingest_redis cluster */

typedef struct {
    u_char                   *host;            /* numeric, NUL-terminated */
    int                       port;
} ngx_http_ingest_seed_t;


typedef struct {
    ngx_str_t                 redis;           /* for logs: no password */
    u_char                   *redis_host;      /* numeric address or path */
    int                       redis_port;      /* 0: a unix socket */
    ngx_http_ingest_auth_t    auth;            /* every connection's login */
    ngx_uint_t                cluster;         /* ingest_redis cluster */
    ngx_array_t               seeds;           /* ngx_http_ingest_seed_t */
    ngx_uint_t                replicas;        /* WAIT for this many */
    ngx_msec_t                flush_interval;
    ngx_uint_t                flush_keys;
    ngx_msec_t                connect_timeout;
    ngx_msec_t                ack_timeout;     /* RPUSH sent -> reply */
    ngx_msec_t                drain_timeout;   /* graceful exit bound */
    size_t                    max_pending;     /* bytes held per worker */
    ngx_path_t               *spool;           /* NULL: no spool */
#if (NGX_THREADS)
    ngx_thread_pool_t        *spool_threads;   /* its replay reads there */
#endif
    ngx_uint_t                shards;          /* per counters list */
    ngx_array_t               lists;           /* ngx_http_ingest_list_t */
    ngx_array_t               queues;          /* ngx_str_t, Redis lists */
    ngx_uint_t                endpoints;       /* ingest_counters seen */
    ngx_array_t               endpoint_names;  /* counted locations */
    ngx_array_t               tables;      /* ngx_http_ingest_records_conf_t* */
    ngx_uint_t                status_used;     /* ingest_status seen */
    ngx_array_t               bucket_sets;  /* ngx_http_ingest_bucket_set_t */
} ngx_http_ingest_main_conf_t;


/*
 * A list as the directives name it (queue=).  With ingest_shards n, a
 * list of counters is n Redis lists, "<name>:{0}" .. "<name>:{n-1}", at
 * queues[first] .. queues[first + n - 1]; a key's shard is
 * ngx_http_ingest_shard_of().
 */

typedef struct {
    ngx_str_t                 name;
    ngx_uint_t                first;           /* in imcf->queues */
    ngx_uint_t                shards;          /* 1: not sharded */
    unsigned                  counters:1;
    unsigned                  records:1;
} ngx_http_ingest_list_t;


#define NGX_HTTP_INGEST_MAX_SHARDS   64
#define NGX_HTTP_INGEST_MAX_LIST     200      /* bytes of a list's name */

/* a Redis list's name: a list's, or a shard's, "<list>:{63}" */
#define NGX_HTTP_INGEST_MAX_QUEUE    (NGX_HTTP_INGEST_MAX_LIST + 5)


/*
 * The shard of a key: FNV-1a, 32 bits, over the key's bytes as received
 * (after percent-decoding), modulo the number of shards.  Documented in
 * the README, so that anything outside nginx can tell where a key went;
 * it must never change.
 */

static ngx_inline ngx_uint_t
ngx_http_ingest_shard_of(const u_char *key, size_t len, ngx_uint_t shards)
{
    uint32_t  h;

    h = 2166136261u;

    while (len--) {
        h ^= *key++;
        h *= 16777619u;
    }

    return h % shards;
}


/* what an ingest_records location keeps, and its list and table */

typedef struct {
    ngx_str_t                      table;
    ngx_http_ingest_record_conf_t  record;
    const char                    *columns[NGX_HTTP_INGEST_MAX_FIELDS];
    int                            types[NGX_HTTP_INGEST_MAX_FIELDS];
    ngx_uint_t                     queue;      /* index in imcf->queues */
    ngx_uint_t                     rows_index; /* in its list's row_sets */
} ngx_http_ingest_records_conf_t;


/* ingest_totals: its database and what a worker knows of it */
typedef struct ngx_http_ingest_totals_conf_s  ngx_http_ingest_totals_conf_t;


#define NGX_HTTP_INGEST_ACK_MEMORY   0   /* 204 once in the worker's table */
#define NGX_HTTP_INGEST_ACK_REDIS    1   /* 204 once Redis has the batch */


/* ingest_counters buckets=: the most resolutions a location keeps */
#define NGX_HTTP_INGEST_MAX_RESOLUTIONS  7
#define NGX_HTTP_INGEST_MAX_BUCKET_SETS  256


/*
 * The resolutions a location keeps, as a set the workers' bucket keys
 * name by index (imcf->bucket_sets): each increment is summed once per
 * step, the greatest divisor of them all, and written once with them.
 */

typedef struct {
    ngx_uint_t                n;
    uint32_t                  resolutions[NGX_HTTP_INGEST_MAX_RESOLUTIONS];
    uint32_t                  step;
} ngx_http_ingest_bucket_set_t;


typedef struct {
    ngx_uint_t                format;          /* NGX_CONF_UNSET_UINT: off */
    ngx_uint_t                queue;           /* index in imcf->queues */
    ngx_uint_t                nresolutions;    /* buckets=, 0: none */
    uint32_t                  resolutions[NGX_HTTP_INGEST_MAX_RESOLUTIONS];
    uint32_t                  step;            /* their gcd */
    ngx_uint_t                bucket_set;      /* in imcf->bucket_sets */
    size_t                    max_key_length;
    ngx_uint_t                ack;
    ngx_msec_t                ack_timeout;
    ngx_http_ingest_totals_conf_t  *totals;    /* ingest_totals */
    ngx_http_ingest_records_conf_t  *records;  /* ingest_records */
    size_t                    max_line;        /* longest NDJSON line */
    ngx_uint_t                endpoint;        /* 1-based; 0: not counted */
    ngx_uint_t                status;          /* ingest_status here */
} ngx_http_ingest_loc_conf_t;


/* list i of the directives, and the Redis list of its first shard */

#define ngx_http_ingest_list(imcf, i)                                         \
    (&((ngx_http_ingest_list_t *) (imcf)->lists.elts)[i])

extern ngx_module_t  ngx_http_ingest_module;


/*
 * The index of list name in imcf->lists, added if new; records: 1 for an
 * ingest_records list, 0 for ingest_counters.  NGX_CONF_UNSET_UINT on
 * error.
 */
ngx_uint_t ngx_http_ingest_list_index(ngx_conf_t *cf, ngx_str_t *name,
    ngx_uint_t records);


#endif /* _NGX_HTTP_INGEST_MODULE_H_INCLUDED_ */
