
/*
 * Copyright (C) ngx_ingest developers
 */

#ifndef _NGX_HTTP_INGEST_MODULE_H_INCLUDED_
#define _NGX_HTTP_INGEST_MODULE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#include "ngx_http_ingest_parse.h"
#include "ngx_http_ingest_table.h"
#include "ingest_wire.h"
#include "ingest_cluster.h"
#include "ngx_http_ingest_status.h"
#include "ngx_http_ingest_ndjson.h"


/* an address of ingest_redis cluster */

typedef struct {
    u_char                   *host;            /* numeric, NUL-terminated */
    int                       port;
} ngx_http_ingest_seed_t;


typedef struct {
    ngx_str_t                 redis;           /* as written, for logs */
    u_char                   *redis_host;      /* numeric address or path */
    int                       redis_port;      /* 0: a unix socket */
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
    ngx_uint_t                shards;          /* per counters list */
    ngx_array_t               lists;           /* ngx_http_ingest_list_t */
    ngx_array_t               queues;          /* ngx_str_t, Redis lists */
    ngx_uint_t                endpoints;       /* ingest_counters seen */
    ngx_array_t               endpoint_names;  /* counted locations */
    ngx_array_t               tables;      /* ngx_http_ingest_records_conf_t* */
    ngx_uint_t                status_used;     /* ingest_status seen */
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
    ngx_uint_t                     slot;       /* index in q->tables */
} ngx_http_ingest_records_conf_t;


#define NGX_HTTP_INGEST_ACK_MEMORY   0   /* 204 once in the worker's table */
#define NGX_HTTP_INGEST_ACK_REDIS    1   /* 204 once Redis has the batch */


typedef struct {
    ngx_uint_t                format;          /* NGX_CONF_UNSET_UINT: off */
    ngx_uint_t                queue;           /* index in imcf->queues */
    size_t                    max_key_length;
    ngx_uint_t                ack;
    ngx_msec_t                ack_timeout;
    ngx_str_t                 totals_db;       /* ingest_totals, C string */
    ngx_http_ingest_records_conf_t  *records;  /* ingest_records */
    size_t                    max_line;        /* longest NDJSON line */
    ngx_uint_t                endpoint;        /* 1-based; 0: not counted */
    ngx_uint_t                status;          /* ingest_status here */
#if (NGX_THREADS)
    ngx_thread_pool_t        *thread_pool;
#endif
} ngx_http_ingest_loc_conf_t;


/* a batch cut from a table, waiting for Redis's acknowledgement */

typedef struct {
    ngx_queue_t               link;            /* in its list's backlog */
    ingest_wire_buf_t         buf;
    uint64_t                  seq;
    ngx_uint_t                keys;
    ngx_uint_t                attempts;        /* RPUSHes sent */
} ngx_http_ingest_batch_t;


/* rows of one table waiting to be cut into a records batch */

typedef struct {
    ngx_http_ingest_records_conf_t  *conf;
    ingest_wire_buf_t         rows;            /* "[..],[..]" */
    ngx_uint_t                nrows;
} ngx_http_ingest_rows_t;


/*
 * One Redis list as a worker sees it: the table still adding up, and the
 * batches cut from it, oldest first.  Only the oldest is ever sent, so
 * they enter the list in seq order.
 */

typedef struct {
    ngx_str_t                 name;
    ngx_http_ingest_table_t   table;           /* pending increments */
    ngx_queue_t               backlog;         /* ngx_http_ingest_batch_t */
    ngx_uint_t                nbatches;
    size_t                    backlog_bytes;
    uint64_t                  seq;             /* of the last batch cut */
    ngx_queue_t               waiting;         /* requests awaiting acks */
    ingest_wire_buf_t         keyed;           /* Idempotency-Key requests */
    ngx_uint_t                nkeyed;
    ngx_http_ingest_rows_t   *tables;          /* records, per table */
    ngx_uint_t                ntables;
    ngx_uint_t                nrows;           /* in all of them */
    size_t                    rows_bytes;
    ngx_msec_t                sent_at;
    ngx_uint_t                slot;            /* cluster: the list's slot */
    ngx_uint_t                sent_node;       /* cluster: 1-based, or 0 */
    ngx_uint_t                ask;             /* cluster: ASK to this node */
    ngx_uint_t                wait_for;        /* cluster: replicas to WAIT */
    unsigned                  sent:1;          /* the oldest is on its way */
    unsigned                  due:1;           /* cut as soon as allowed */
    unsigned                  pushed:1;        /* cluster: RPUSH took it */
} ngx_http_ingest_queue_t;


/* what a list holds that is not cut yet */
#define ngx_http_ingest_queue_pending(q)                                      \
    ((q)->table.nkeys + (q)->nkeyed + (q)->nrows)


typedef struct ngx_http_ingest_ctx_s  ngx_http_ingest_ctx_t;


/* ingest_ack redis: a request waits for one batch of one list */

typedef struct {
    ngx_queue_t                 link;        /* in q->waiting */
    ngx_http_ingest_ctx_t      *ctx;
    ngx_http_ingest_queue_t    *q;
    uint64_t                    seq;         /* of the batch awaited */
    unsigned                    waiting:1;
} ngx_http_ingest_ack_t;


/* a request's state, counters and records alike */

struct ngx_http_ingest_ctx_s {
    ngx_http_request_t         *request;
    ngx_http_ingest_ack_t      *acks;        /* one per list it waits on */
    ngx_uint_t                  nacks;
    ngx_uint_t                  pending;     /* acks still awaited */
    ngx_http_ingest_ack_t       ack;         /* the one of one list */
    ngx_event_t                 ack_timer;
    ngx_http_ingest_parser_t    parser;
    ngx_array_t                 pairs;       /* ngx_http_ingest_pair_t */
    const char                 *error;       /* why the body is refused */
    off_t                       error_at;
    ngx_buf_t                  *answer;      /* 200 body, else a 204 */
    unsigned                    nomem:1;
    unsigned                    from_file:1; /* body read from its file */
};


/* ingest_redis cluster: a master or a seed, and its connection */

#define NGX_HTTP_INGEST_MAX_NODES   64

typedef struct {
    u_char                    host[NGX_SOCKADDR_STRLEN + 1];
    int                       port;
    ngx_uint_t                index;           /* 1-based */
    ngx_uint_t                replicas;        /* as the map last said */
    redisAsyncContext        *ac;
    ngx_connection_t         *conn;
    ngx_event_t               connect_timer;
    unsigned                  connected:1;
    unsigned                  down:1;          /* "lost" was logged */
} ngx_http_ingest_node_t;


typedef struct {
    ngx_http_ingest_node_t    nodes[NGX_HTTP_INGEST_MAX_NODES];
    ngx_uint_t                nnodes;
    ngx_uint_t                next;            /* the next to try */
    uint8_t                  *owner;           /* slot -> node index */
    ngx_uint_t                refreshing;      /* asked of this node */
    ngx_msec_t                refreshed_at;
    ngx_event_t               resend;          /* posted: send_all */
    unsigned                  stale:1;         /* ask for the map */
} ngx_http_ingest_cluster_t;


/*
 * Everything a worker keeps between requests.  There is exactly one,
 * created in init_process and destroyed in exit_process.
 */

typedef struct {
    ngx_http_ingest_main_conf_t  *imcf;
    ngx_log_t                    *log;
    ngx_http_ingest_queue_t      *queues;
    ngx_uint_t                    nqueues;

    ngx_http_ingest_cluster_t    *cluster;     /* ingest_redis cluster */
    redisAsyncContext            *ac;          /* NULL when disconnected */
    ngx_connection_t             *conn;        /* ac's fd in nginx's loop */
    unsigned                      connected:1;
    unsigned                      down:1;      /* "lost" was logged */
    unsigned                      draining:1;  /* graceful exit started */
    unsigned                      exiting:1;   /* exit_process runs */
    unsigned                      full:1;      /* max_pending was hit */
    unsigned                      spool_busy:1;    /* a replay in flight */
    unsigned                      polling:1;       /* LLENs on their way */
    unsigned                      spool_error:1;   /* logged once */
    unsigned                      spool_pushed:1;  /* RPUSH took it */

    ngx_msec_t                    backoff;     /* next reconnect delay */

    ngx_event_t                   flush_timer;     /* cancelable */
    ngx_event_t                   retry_timer;     /* reconnect, resend */
    ngx_event_t                   connect_timer;   /* connect deadline */
    ngx_event_t                   ack_timer;       /* reply deadline */
    ngx_event_t                   drain_timer;     /* non-cancelable */
    ngx_event_t                   disconnect_event;
    ngx_event_t                   spool_timer;     /* replay, worker 0 */
    ngx_event_t                   poll_timer;      /* LLEN, heartbeat */
    ngx_event_t                   status_event;    /* the poll came back */
    ngx_queue_t                   status_waiting;  /* requests for it */
    ngx_uint_t                    poll_pending;    /* replies to come */
    ngx_http_ingest_worker_slot_t  *slot;      /* its numbers in the zone */
    ngx_msec_t                      status_msec; /* slot's last refresh */
    u_char                        spool_name[NGX_MAX_PATH]; /* replayed */
    ngx_uint_t                    spool_replicas;  /* its WAIT, cluster */
    ngx_connection_t              timer_conn;  /* data of the timers */

    char                          producer[INGEST_WIRE_MAX_PRODUCER];
} ngx_http_ingest_worker_t;


/* list i of the directives, and the Redis list of its first shard */

#define ngx_http_ingest_list(imcf, i)                                         \
    (&((ngx_http_ingest_list_t *) (imcf)->lists.elts)[i])

#define ngx_http_ingest_list_queue(w, i)                                      \
    (&(w)->queues[ngx_http_ingest_list((w)->imcf, i)->first])


/* the worker state: set in init_process, cleared in exit_process */
extern ngx_http_ingest_worker_t  *ngx_http_ingest_worker;

extern ngx_module_t  ngx_http_ingest_module;


ngx_int_t ngx_http_ingest_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_ingest_send_json(ngx_http_request_t *r, ngx_uint_t status,
    const char *error, off_t at);
ngx_int_t ngx_http_ingest_send(ngx_http_request_t *r, ngx_uint_t status,
    const char *type, ngx_buf_t *b);
ngx_int_t ngx_http_ingest_not_allowed(ngx_http_request_t *r, char *allowed);
ngx_int_t ngx_http_ingest_send_full(ngx_http_request_t *r);
size_t ngx_http_ingest_json_escaped(const u_char *s, size_t len);
u_char *ngx_http_ingest_json_escape(u_char *p, const u_char *s, size_t len);
void ngx_http_ingest_wait(ngx_http_request_t *r, ngx_http_ingest_ctx_t *ctx,
    ngx_http_ingest_loc_conf_t *ilcf);
void ngx_http_ingest_wait_one(ngx_http_request_t *r,
    ngx_http_ingest_ctx_t *ctx, ngx_http_ingest_queue_t *q,
    ngx_http_ingest_loc_conf_t *ilcf);
char *ngx_http_ingest_records(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_uint_t ngx_http_ingest_list_index(ngx_conf_t *cf, ngx_str_t *name,
    ngx_uint_t records);
ngx_int_t ngx_http_ingest_records_init(ngx_http_ingest_worker_t *w);
ngx_int_t ngx_http_ingest_records_cut(ngx_http_ingest_worker_t *w,
    ngx_http_ingest_queue_t *q, ngx_http_ingest_rows_t *t);
char *ngx_http_ingest_totals(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_ingest_status(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);

ngx_int_t ngx_http_ingest_status_conf(ngx_conf_t *cf,
    ngx_http_ingest_main_conf_t *imcf);
ngx_int_t ngx_http_ingest_status_endpoint(ngx_conf_t *cf,
    ngx_http_ingest_loc_conf_t *ilcf);
ngx_int_t ngx_http_ingest_status_postconf(ngx_conf_t *cf);
void ngx_http_ingest_status_claim(ngx_http_ingest_worker_t *w);
void ngx_http_ingest_status_release(ngx_http_ingest_worker_t *w);
void ngx_http_ingest_status_pending(ngx_http_ingest_worker_t *w);
void ngx_http_ingest_status_flushed(ngx_msec_t ms);
void ngx_http_ingest_status_poll_init(ngx_http_ingest_worker_t *w);
void ngx_http_ingest_wake(ngx_http_ingest_queue_t *q, uint64_t seq);

ngx_int_t ngx_http_ingest_flush_init(ngx_http_ingest_worker_t *w);
void ngx_http_ingest_flush_added(ngx_http_ingest_worker_t *w,
    ngx_http_ingest_queue_t *q);
void ngx_http_ingest_flush_acked(ngx_http_ingest_worker_t *w,
    ngx_http_ingest_queue_t *q);
void ngx_http_ingest_flush_drain(ngx_http_ingest_worker_t *w);
void ngx_http_ingest_flush_exit(ngx_http_ingest_worker_t *w);
ngx_http_ingest_batch_t *ngx_http_ingest_flush_oldest(
    ngx_http_ingest_queue_t *q);
size_t ngx_http_ingest_flush_pending(ngx_http_ingest_worker_t *w);

ngx_int_t ngx_http_ingest_spool_write(ngx_http_ingest_worker_t *w,
    ngx_http_ingest_queue_t *q, ngx_http_ingest_batch_t *b);
void ngx_http_ingest_spool_init(ngx_http_ingest_worker_t *w);
void ngx_http_ingest_spool_replay(ngx_http_ingest_worker_t *w);

void ngx_http_ingest_redis_connect(ngx_http_ingest_worker_t *w);
void ngx_http_ingest_redis_send(ngx_http_ingest_worker_t *w,
    ngx_http_ingest_queue_t *q);
void ngx_http_ingest_redis_send_all(ngx_http_ingest_worker_t *w);
void ngx_http_ingest_redis_rpush(ngx_str_t *list, ingest_wire_buf_t *buf,
    const char **argv, size_t *argvlen);
void ngx_http_ingest_redis_schedule(ngx_http_ingest_worker_t *w);
void ngx_http_ingest_redis_close(ngx_http_ingest_worker_t *w);
void ngx_http_ingest_redis_acked(ngx_http_ingest_worker_t *w,
    ngx_http_ingest_queue_t *q);
void ngx_http_ingest_redis_arm_ack(ngx_http_ingest_worker_t *w);
void ngx_http_ingest_redis_sent(ngx_http_ingest_worker_t *w,
    ngx_http_ingest_queue_t *q, ngx_http_ingest_batch_t *b);
ngx_connection_t *ngx_http_ingest_redis_wrap(ngx_http_ingest_worker_t *w,
    redisAsyncContext *ac, void *data, void (*cleanup)(void *));
void ngx_http_ingest_redis_release(ngx_connection_t *c);
redisAsyncContext *ngx_http_ingest_redis_ctx(ngx_http_ingest_worker_t *w,
    const u_char *key, size_t len);

ngx_int_t ngx_http_ingest_cluster_init(ngx_http_ingest_worker_t *w);
void ngx_http_ingest_cluster_retry(ngx_http_ingest_worker_t *w);
void ngx_http_ingest_cluster_send(ngx_http_ingest_worker_t *w,
    ngx_http_ingest_queue_t *q);
void ngx_http_ingest_cluster_timeout(ngx_event_t *ev);
void ngx_http_ingest_cluster_close(ngx_http_ingest_worker_t *w,
    ngx_uint_t how);
redisAsyncContext *ngx_http_ingest_cluster_ctx(ngx_http_ingest_worker_t *w,
    const u_char *key, size_t len);
ngx_uint_t ngx_http_ingest_cluster_wait_for(ngx_http_ingest_worker_t *w,
    ngx_uint_t slot);
redisContext *ngx_http_ingest_cluster_sync(ngx_http_ingest_worker_t *w,
    ngx_http_ingest_queue_t *q, redisContext **conns, struct timeval tv);


#endif /* _NGX_HTTP_INGEST_MODULE_H_INCLUDED_ */
