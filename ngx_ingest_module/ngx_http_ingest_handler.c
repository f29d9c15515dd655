
/*
 * Copyright (C) ngx_ingest developers
 * SPDX-License-Identifier: BSD-2-Clause
 *
 * The counters endpoint: check the method and the type, read the body,
 * parse all of it into a list of pairs on r->pool, and only then add the
 * pairs to the worker's pending table, so that a bad body changes
 * nothing.  A body may be in several buffers or in a temp file.
 *
 * Memory: a pair takes 24 bytes, in chunks that never move (nothing is
 * copied as they grow), and a key repeated pair after pair adds to one
 * pair; a form pair takes 4 bytes of body at least, so a request holds
 * at most about 7 times its body.  A request that waits for Redis gives
 * its pairs and its body back first.
 */


#include "ngx_http_ingest_handler.h"
#include "ngx_http_ingest_ack.h"
#include "ngx_http_ingest_reply.h"
#include "ngx_http_ingest_metrics.h"


#define NGX_HTTP_INGEST_FILE_CHUNK   16384


static u_char  ngx_http_ingest_key_scratch[NGX_HTTP_INGEST_MAX_KEY_LENGTH];

/* a bucket key being made (ngx_http_ingest_bucket_key) */
static u_char  ngx_http_ingest_bucket_scratch[NGX_HTTP_INGEST_BUCKET_PREFIX
                                              + NGX_HTTP_INGEST_MAX_KEY_LENGTH];


/* pairs held in the request's state itself, and the largest chunk */
#define NGX_HTTP_INGEST_FIRST_PAIRS  8
#define NGX_HTTP_INGEST_CHUNK_PAIRS  8192


typedef struct {
    u_char                     *key;
    int64_t                     value;
    uint32_t                    at;          /* where it began (capped) */
    uint16_t                    len;
    uint8_t                     shard;       /* in its list's shards */
    uint8_t                     created;     /* apply() made its key (bit
                                                0), its step's (bit 1) */
} ngx_http_ingest_pair_t;


typedef struct ngx_http_ingest_chunk_s  ngx_http_ingest_chunk_t;

struct ngx_http_ingest_chunk_s {
    ngx_http_ingest_chunk_t    *next;
    ngx_http_ingest_chunk_t    *prev;
    ngx_uint_t                  n;
    ngx_uint_t                  size;
    ngx_http_ingest_pair_t     *pairs;
};


/* a counters request's state */

typedef struct {
    ngx_http_request_t         *request;
    ngx_http_ingest_parser_t    parser;
    ngx_http_ingest_chunk_t     first;       /* the pairs, in chunks */
    ngx_http_ingest_chunk_t    *last;
    ngx_uint_t                  npairs;
    ngx_http_ingest_pair_t      first_pairs[NGX_HTTP_INGEST_FIRST_PAIRS];
    const char                 *error;       /* why the body is refused */
    off_t                       error_at;
    ngx_http_ingest_await_t     await;       /* ingest_ack redis */
    unsigned                    nomem:1;
    unsigned                    from_file:1; /* body read from its file */
} ngx_http_ingest_ctx_t;


static ngx_int_t ngx_http_ingest_check_type(ngx_http_request_t *r,
    ngx_http_ingest_loc_conf_t *ilcf, unsigned *kind);
static void ngx_http_ingest_body_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_ingest_preread(ngx_http_request_t *r,
    ngx_http_ingest_ctx_t *ctx);
static ngx_int_t ngx_http_ingest_parsed(ngx_http_request_t *r,
    ngx_http_ingest_ctx_t *ctx, ngx_int_t rc);
static ngx_int_t ngx_http_ingest_parse_end(ngx_http_ingest_ctx_t *ctx);
static ngx_int_t ngx_http_ingest_parse_body(ngx_http_request_t *r,
    ngx_http_ingest_ctx_t *ctx);
static int ngx_http_ingest_stage_pair(void *data, u_char *key, size_t len,
    int64_t value);
static ngx_int_t ngx_http_ingest_admit(ngx_http_ingest_ctx_t *ctx);
static ngx_http_ingest_chunk_t *ngx_http_ingest_chunk(
    ngx_http_ingest_ctx_t *ctx);
static void ngx_http_ingest_release(ngx_http_request_t *r,
    ngx_http_ingest_ctx_t *ctx);
static ngx_int_t ngx_http_ingest_apply(ngx_http_request_t *r,
    ngx_http_ingest_ctx_t *ctx, ngx_http_ingest_list_t *list);
static size_t ngx_http_ingest_step_key(ngx_http_ingest_pair_t *pair);
static ngx_int_t ngx_http_ingest_add(ngx_http_ingest_queue_t *q,
    ngx_http_ingest_pair_t *pair, ngx_http_ingest_loc_conf_t *ilcf);
static void ngx_http_ingest_unadd(ngx_http_ingest_queue_t *q,
    ngx_http_ingest_pair_t *pair, ngx_http_ingest_loc_conf_t *ilcf);
static void ngx_http_ingest_undo(ngx_http_ingest_queue_t *q,
    ngx_http_ingest_chunk_t *c, ngx_uint_t i,
    ngx_http_ingest_loc_conf_t *ilcf);
static ngx_int_t ngx_http_ingest_idempotency_key(ngx_http_request_t *r,
    ngx_str_t *id);
static ngx_int_t ngx_http_ingest_keyed_begin(ngx_http_ingest_queue_t *q,
    ngx_str_t *id, size_t *mark, u_char *begun);
static ngx_int_t ngx_http_ingest_apply_keyed(ngx_http_request_t *r,
    ngx_http_ingest_ctx_t *ctx, ngx_http_ingest_list_t *list, ngx_str_t *id);
static ngx_int_t ngx_http_ingest_keyed_buckets(ngx_http_ingest_table_t *t,
    ngx_http_ingest_list_t *list, ngx_uint_t s,
    ngx_http_ingest_loc_conf_t *ilcf, time_t now, ingest_wire_buf_t *bk);
static void ngx_http_ingest_route(ngx_http_ingest_ctx_t *ctx,
    ngx_http_ingest_list_t *list);
static void ngx_http_ingest_added(ngx_http_ingest_ctx_t *ctx,
    ngx_http_ingest_list_t *list);
static ngx_int_t ngx_http_ingest_await_lists(ngx_http_request_t *r,
    ngx_http_ingest_ctx_t *ctx, ngx_http_ingest_list_t *list,
    ngx_http_ingest_loc_conf_t *ilcf);


ngx_int_t
ngx_http_ingest_handler(ngx_http_request_t *r)
{
    unsigned                     kind;
    ngx_int_t                    rc;
    ngx_http_ingest_ctx_t       *ctx;
    ngx_http_ingest_loc_conf_t  *ilcf;

    ilcf = ngx_http_get_module_loc_conf(r, ngx_http_ingest_module);

    if (r->method != NGX_HTTP_POST) {
        return ngx_http_ingest_not_allowed(r, "POST");
    }

    if (ngx_http_ingest_check_type(r, ilcf, &kind) != NGX_OK) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "client sent unsupported ingest content type");

        rc = ngx_http_discard_request_body(r);
        if (rc != NGX_OK) {
            return rc;
        }

        return ngx_http_ingest_send_json(r, NGX_HTTP_UNSUPPORTED_MEDIA_TYPE,
                                          "unsupported content type", -1);
    }

    if (ngx_http_ingest_worker == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_ingest_worker->full
        && ngx_http_ingest_flush_admit(ngx_http_ingest_worker, 0,
                                       r->connection->log)
           != NGX_OK)
    {
        return ngx_http_ingest_send_full(r);
    }

    /*
     * Not ngx_pcalloc(): the parser is set up below, and the wait for
     * Redis is set up only if the request waits.
     */

    ctx = ngx_palloc(r->pool, sizeof(ngx_http_ingest_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->request = r;
    ctx->error = NULL;
    ctx->error_at = -1;
    ctx->await.answer = NULL;
    ctx->nomem = 0;
    ctx->from_file = 0;

    ctx->first.next = NULL;
    ctx->first.prev = NULL;
    ctx->first.n = 0;
    ctx->first.size = NGX_HTTP_INGEST_FIRST_PAIRS;
    ctx->first.pairs = ctx->first_pairs;
    ctx->last = &ctx->first;
    ctx->npairs = 0;

    /* the key buffer is given at parse time: see parse_body() */

    ngx_http_ingest_parse_init(&ctx->parser, kind, NULL,
                               ilcf->max_key_length,
                               ngx_http_ingest_stage_pair, ctx);

    ngx_http_set_ctx(r, ctx, ngx_http_ingest_module);

    if (r == r->main
        && ilcf->ack != NGX_HTTP_INGEST_ACK_REDIS
        && !r->headers_in.chunked
#if (NGX_HTTP_V2)
        && r->stream == NULL
#endif
        && r->headers_in.content_length_n > 0
        && r->header_in->last - r->header_in->pos
           >= r->headers_in.content_length_n)
    {
        return ngx_http_ingest_preread(r, ctx);
    }

    rc = ngx_http_read_client_request_body(r, ngx_http_ingest_body_handler);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


/*
 * application/x-www-form-urlencoded or application/json, with any
 * parameters (charset=utf-8); key_value takes the form type only.
 */

static const char  ngx_http_ingest_form_type[] =
    "application/x-www-form-urlencoded";


static ngx_int_t
ngx_http_ingest_check_type(ngx_http_request_t *r,
    ngx_http_ingest_loc_conf_t *ilcf, unsigned *kind)
{
    u_char     *p, *last;
    ngx_str_t  *type;

    if (r->headers_in.content_type == NULL) {
        return NGX_DECLINED;
    }

    type = &r->headers_in.content_type->value;

    /*
     * Clients send the types in lower case and mostly bare: one compare
     * of the whole value first, the scan for parameters after.
     */

    if (type->len == sizeof(ngx_http_ingest_form_type) - 1
        && ngx_memcmp(type->data, ngx_http_ingest_form_type,
                      sizeof(ngx_http_ingest_form_type) - 1)
           == 0)
    {
        *kind = ilcf->format;
        return NGX_OK;
    }

    if (type->len == 16
        && ngx_memcmp(type->data, "application/json", 16) == 0
        && ilcf->format != NGX_HTTP_INGEST_KEY_VALUE)
    {
        *kind = NGX_HTTP_INGEST_JSON;
        return NGX_OK;
    }

    p = type->data;
    last = type->data + type->len;

    while (p < last && *p != ';' && *p != ' ' && *p != '\t') {
        p++;
    }

    if ((size_t) (p - type->data) == sizeof(ngx_http_ingest_form_type) - 1
        && ngx_strncasecmp(type->data, (u_char *) ngx_http_ingest_form_type,
                           sizeof(ngx_http_ingest_form_type) - 1)
           == 0)
    {
        *kind = ilcf->format;
        return NGX_OK;
    }

    if ((size_t) (p - type->data) == 16
        && ngx_strncasecmp(type->data, (u_char *) "application/json", 16)
           == 0
        && ilcf->format != NGX_HTTP_INGEST_KEY_VALUE)
    {
        *kind = NGX_HTTP_INGEST_JSON;
        return NGX_OK;
    }

    return NGX_DECLINED;
}


static void
ngx_http_ingest_body_handler(ngx_http_request_t *r)
{
    ngx_int_t               rc;
    ngx_http_ingest_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_ingest_module);

    if (r->request_body == NULL || ctx == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    rc = ngx_http_ingest_parse_body(r, ctx);
    rc = ngx_http_ingest_parsed(r, ctx, rc);

    if (rc != NGX_DONE) {
        ngx_http_finalize_request(r, rc);
    }
}


/*
 * A body that came whole with the header, in r->header_in: the common
 * small POST.  It is parsed where it lies, then nginx's own discard
 * steps over it (the next request of the connection may follow it in
 * the same buffer), and the answer goes out from the content handler:
 * no request body structure, no buffer chain, no second finalization.
 * Not for HTTP/2, chunked bodies, subrequests, nor ingest_ack redis,
 * whose requests wait, and take ngx_http_read_client_request_body().
 */

static ngx_int_t
ngx_http_ingest_preread(ngx_http_request_t *r, ngx_http_ingest_ctx_t *ctx)
{
    off_t                      len;
    u_char                    *body;
    ngx_int_t                  rc;
    ngx_http_ingest_parser_t  *p;

    body = r->header_in->pos;
    len = r->headers_in.content_length_n;

    p = &ctx->parser;
    p->key = ngx_http_ingest_key_scratch;

    ngx_http_ingest_parse(p, body, body + len);
    rc = ngx_http_ingest_parse_end(ctx);

    if (ngx_http_discard_request_body(r) != NGX_OK
        || r->header_in->pos != body + len)
    {
        /* nginx did not step over exactly what was parsed */
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_ingest_parsed(r, ctx, rc);
}


/*
 * After the body is parsed (rc: NGX_OK, 400 with ctx->error, or 500):
 * the pairs applied whole or not at all, and the answer, or NGX_DONE
 * when the request waits for Redis.
 */

static ngx_int_t
ngx_http_ingest_parsed(ngx_http_request_t *r, ngx_http_ingest_ctx_t *ctx,
    ngx_int_t rc)
{
    ngx_str_t                    id;
    ngx_http_ingest_list_t      *list;
    ngx_http_ingest_loc_conf_t  *ilcf;

    ilcf = ngx_http_get_module_loc_conf(r, ngx_http_ingest_module);
    list = ngx_http_ingest_list(ngx_http_ingest_worker->imcf, ilcf->queue);

    if (rc == NGX_OK) {
        rc = ngx_http_ingest_admit(ctx);

        if (rc == NGX_BUSY) {
            return ngx_http_ingest_send_full(r);
        }

        if (rc == NGX_DECLINED) {
            return ngx_http_ingest_send_too_large(r);
        }
    }

    if (rc == NGX_OK) {
        ngx_http_ingest_route(ctx, list);

        rc = ngx_http_ingest_idempotency_key(r, &id);

        if (rc == NGX_HTTP_BAD_REQUEST) {
            ctx->error = "invalid Idempotency-Key";
            ctx->error_at = -1;

        } else if (id.len) {
            rc = ngx_http_ingest_apply_keyed(r, ctx, list, &id);

        } else {
            rc = ngx_http_ingest_apply(r, ctx, list);
        }
    }

    if (rc == NGX_HTTP_REQUEST_ENTITY_TOO_LARGE) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "client sent %s", ctx->error);

        return ngx_http_ingest_send_json(r, rc, ctx->error, -1);
    }

    if (rc == NGX_HTTP_BAD_REQUEST) {
        if (ctx->error_at >= 0) {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "client sent invalid ingest body: %s at byte %O",
                          ctx->error, ctx->error_at);

        } else {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "client sent %s", ctx->error);
        }

        return ngx_http_ingest_send_json(r, NGX_HTTP_BAD_REQUEST, ctx->error,
                                         ctx->error_at);
    }

    if (rc != NGX_OK) {
        return rc;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "ingest form: %ui pairs", ctx->npairs);

    ngx_http_ingest_stat_add(increments, ctx->npairs);

    /*
     * Nothing was added ({}; with an Idempotency-Key, an entry is kept
     * for an empty body only without shards): there is no batch to wait
     * for, and none will be cut.
     */

    if (ctx->npairs == 0 && !(id.len && list->shards == 1)) {
        return ngx_http_ingest_send_no_content(r);
    }

    if (ilcf->ack == NGX_HTTP_INGEST_ACK_REDIS) {
        /* each touched shard's sums become its next batch */
        if (ngx_http_ingest_await_lists(r, ctx, list, ilcf) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ngx_http_ingest_added(ctx, list);

        /* it only waits now: what it held goes back */
        ngx_http_ingest_release(r, ctx);

        return NGX_DONE;
    }

    ngx_http_ingest_added(ctx, list);

    return ngx_http_ingest_send_no_content(r);
}


/* feed the parser every buffer of the body, reading in-file parts */

static ngx_int_t
ngx_http_ingest_parse_body(ngx_http_request_t *r, ngx_http_ingest_ctx_t *ctx)
{
    off_t                      pos;
    u_char                    *chunk;
    ssize_t                    n;
    ngx_buf_t                 *b;
    ngx_chain_t               *cl;
    ngx_http_ingest_parser_t  *p;

    p = &ctx->parser;
    chunk = NULL;

    /*
     * A body is parsed whole, in this one call, so one worker-wide key
     * buffer serves every request: none is allocated per request.
     */

    p->key = ngx_http_ingest_key_scratch;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        b = cl->buf;

        if (ngx_buf_in_memory(b)) {
            ngx_http_ingest_parse(p, b->pos, b->last);

        } else if (b->in_file) {

            if (chunk == NULL) {
                chunk = ngx_pnalloc(r->pool, NGX_HTTP_INGEST_FILE_CHUNK);
                if (chunk == NULL) {
                    return NGX_HTTP_INTERNAL_SERVER_ERROR;
                }
            }

            /*
             * A blocking read, but of a file nginx has just written:
             * it comes from the page cache.
             */

            for (pos = b->file_pos; pos < b->file_last; pos += n) {
                n = ngx_read_file(b->file, chunk,
                                  ngx_min(NGX_HTTP_INGEST_FILE_CHUNK,
                                          b->file_last - pos),
                                  pos);

                if (n == NGX_ERROR || n == 0) {
                    return NGX_HTTP_INTERNAL_SERVER_ERROR;
                }

                ctx->from_file = 1;

                if (ngx_http_ingest_parse(p, chunk, chunk + n)
                    != NGX_HTTP_INGEST_PARSE_OK)
                {
                    break;
                }
            }
        }

        if (p->error != NULL) {
            break;
        }
    }

    return ngx_http_ingest_parse_end(ctx);
}


/* the body's end: NGX_OK, 400 (ctx->error says why) or 500 */

static ngx_int_t
ngx_http_ingest_parse_end(ngx_http_ingest_ctx_t *ctx)
{
    ngx_http_ingest_parser_t  *p;

    p = &ctx->parser;

    ngx_http_ingest_parse_finish(p);

    if (ctx->nomem) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (p->error != NULL) {
        ctx->error = p->error;
        ctx->error_at = p->error_at;
        return NGX_HTTP_BAD_REQUEST;
    }

    return NGX_OK;
}


static int
ngx_http_ingest_stage_pair(void *data, u_char *key, size_t len,
    int64_t value)
{
    ngx_http_ingest_ctx_t   *ctx = data;

    int64_t                   sum;
    ngx_http_ingest_pair_t   *pair;
    ngx_http_ingest_chunk_t  *c;

    c = ctx->last;

    /* "z=1&z=1&..." holds one pair, unless its sum overflows */

    if (c->n) {
        pair = &c->pairs[c->n - 1];

        if (pair->len == len && ngx_memcmp(pair->key, key, len) == 0
            && !__builtin_add_overflow(pair->value, value, &sum))
        {
            pair->value = sum;
            return 0;
        }
    }

    if (c->n == c->size) {
        c = ngx_http_ingest_chunk(ctx);
        if (c == NULL) {
            ctx->nomem = 1;
            return -1;
        }
    }

    pair = &c->pairs[c->n];

    /*
     * The parsers hand over a key in the worker's scratch buffer or, from
     * their fast paths, in the body's own buffer.  Those stay as they are
     * until the body handler is done with the pairs; the scratch buffer
     * and a temp-file chunk do not, so their keys are copied.
     */

    if (key == ngx_http_ingest_key_scratch || ctx->from_file) {
        pair->key = ngx_pnalloc(ctx->request->pool, len);
        if (pair->key == NULL) {
            ctx->nomem = 1;
            return -1;
        }

        ngx_memcpy(pair->key, key, len);

    } else {
        pair->key = key;
    }

    pair->len = (uint16_t) len;
    pair->value = value;
    pair->at = (ctx->parser.pair_at > (off_t) UINT32_MAX)
               ? UINT32_MAX : (uint32_t) ctx->parser.pair_at;
    pair->shard = 0;
    pair->created = 0;

    c->n++;
    ctx->npairs++;

    return 0;
}


/* the next chunk of pairs, twice the last one's size, up to a bound */

static ngx_http_ingest_chunk_t *
ngx_http_ingest_chunk(ngx_http_ingest_ctx_t *ctx)
{
    ngx_uint_t                size;
    ngx_http_ingest_chunk_t  *c;

    size = ngx_min(ctx->last->size * 2, NGX_HTTP_INGEST_CHUNK_PAIRS);

    c = ngx_palloc(ctx->request->pool, sizeof(ngx_http_ingest_chunk_t)
                                       + size * sizeof(ngx_http_ingest_pair_t));
    if (c == NULL) {
        return NULL;
    }

    c->next = NULL;
    c->prev = ctx->last;
    c->n = 0;
    c->size = size;
    c->pairs = (ngx_http_ingest_pair_t *) (c + 1);

    ctx->last->next = c;
    ctx->last = c;

    return c;
}


/*
 * A request that waits for Redis holds nothing more than its state: the
 * pairs' chunks go back now (the large ones, which nginx can free one by
 * one; the body's buffers went when the wait began).
 */

static void
ngx_http_ingest_release(ngx_http_request_t *r, ngx_http_ingest_ctx_t *ctx)
{
    ngx_http_ingest_chunk_t  *c, *next;

    for (c = ctx->first.next; c; c = next) {
        next = c->next;
        (void) ngx_pfree(r->pool, c);
    }

    ctx->first.next = NULL;
    ctx->first.n = 0;
    ctx->last = &ctx->first;
    ctx->npairs = 0;
}


/*
 * Would this request take the worker past ingest_max_pending?  A new key
 * costs its bytes and an entry; counting every pair as new errs on the
 * safe side.
 */

static ngx_int_t
ngx_http_ingest_admit(ngx_http_ingest_ctx_t *ctx)
{
    size_t                       need, steps;
    ngx_uint_t                   i;
    ngx_http_ingest_chunk_t     *c;
    ngx_http_ingest_loc_conf_t  *ilcf;

    ilcf = ngx_http_get_module_loc_conf(ctx->request, ngx_http_ingest_module);
    steps = (ilcf->nresolutions != 0);

    need = 0;

    /* a pair's sum, and with buckets= its step's (a longer key) */

    for (c = &ctx->first; c; c = c->next) {
        for (i = 0; i < c->n; i++) {
            need += (1 + steps)
                    * (c->pairs[i].len + sizeof(ngx_http_ingest_entry_t))
                    + steps * NGX_HTTP_INGEST_BUCKET_PREFIX;
        }
    }

    return ngx_http_ingest_flush_admit(ngx_http_ingest_worker, need,
                                       ctx->request->connection->log);
}


/*
 * ingest_ack redis: the request waits for the next batch of its list,
 * or with shards for the next batch of each shard its keys fell in.
 */

static ngx_int_t
ngx_http_ingest_await_lists(ngx_http_request_t *r, ngx_http_ingest_ctx_t *ctx,
    ngx_http_ingest_list_t *list, ngx_http_ingest_loc_conf_t *ilcf)
{
    u_char                    touched[NGX_HTTP_INGEST_MAX_SHARDS];
    ngx_uint_t                i, n;
    ngx_http_ingest_chunk_t  *c;
    ngx_http_ingest_queue_t  *q, *qs[NGX_HTTP_INGEST_MAX_SHARDS];

    q = &ngx_http_ingest_worker->queues[list->first];
    qs[0] = q;
    n = 1;

    if (list->shards > 1 && ctx->npairs) {
        ngx_memzero(touched, list->shards);
        n = 0;

        for (c = &ctx->first; c; c = c->next) {
            for (i = 0; i < c->n; i++) {
                if (!touched[c->pairs[i].shard]) {
                    touched[c->pairs[i].shard] = 1;
                    qs[n++] = q + c->pairs[i].shard;
                }
            }
        }
    }

    return ngx_http_ingest_await(r, &ctx->await, qs, n, ilcf->ack_timeout);
}


/* each pair's Redis list: its list's, or with shards its key's shard's */

static void
ngx_http_ingest_route(ngx_http_ingest_ctx_t *ctx,
    ngx_http_ingest_list_t *list)
{
    ngx_uint_t                i;
    ngx_http_ingest_pair_t   *pair;
    ngx_http_ingest_chunk_t  *c;

    if (list->shards == 1) {
        return;
    }

    for (c = &ctx->first; c; c = c->next) {
        for (i = 0; i < c->n; i++) {
            pair = &c->pairs[i];
            pair->shard = (uint8_t) ngx_http_ingest_shard_of(pair->key,
                                                             pair->len,
                                                             list->shards);
        }
    }
}


/*
 * All or nothing: the pairs go in one by one, each to its shard's table,
 * and if one cannot (its sum would overflow, or memory runs out), those
 * already in are taken out, last first.
 */

static ngx_int_t
ngx_http_ingest_apply(ngx_http_request_t *r, ngx_http_ingest_ctx_t *ctx,
    ngx_http_ingest_list_t *list)
{
    int                          rc;
    time_t                       now;
    ngx_uint_t                   i;
    ngx_http_ingest_pair_t      *pair;
    ngx_http_ingest_chunk_t     *c;
    ngx_http_ingest_queue_t     *q;
    ngx_http_ingest_loc_conf_t  *ilcf;

    q = &ngx_http_ingest_worker->queues[list->first];
    ilcf = ngx_http_get_module_loc_conf(r, ngx_http_ingest_module);

    /* the request's arrival at nginx picks its buckets */
    now = r->start_sec;

    if (ilcf->nresolutions) {
        /* every pair's step key starts so: the scratch keeps it */
        ngx_http_ingest_bucket_prefix(ngx_http_ingest_bucket_scratch,
                                      ilcf->bucket_set,
                                      now - now % ilcf->step);
    }

    for (c = &ctx->first; c; c = c->next) {
        for (i = 0; i < c->n; i++) {
            pair = &c->pairs[i];

            rc = ngx_http_ingest_add(&q[pair->shard], pair, ilcf);

            if (rc == NGX_HTTP_INGEST_TABLE_OK) {
                continue;
            }

            ngx_http_ingest_undo(q, c, i, ilcf);

            if (rc == NGX_HTTP_INGEST_TABLE_NOMEM) {
                ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                              "ingest cannot grow the pending table of "
                              "\"%V\"", &q[pair->shard].name);
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            ctx->error = "sum overflows";
            ctx->error_at = pair->at;

            return NGX_HTTP_BAD_REQUEST;
        }
    }

    return NGX_OK;
}


/*
 * The pair's step key in the scratch, after the prefix (set and step)
 * that the request's apply() wrote there once: its length
 */

static size_t
ngx_http_ingest_step_key(ngx_http_ingest_pair_t *pair)
{
    ngx_memcpy(ngx_http_ingest_bucket_scratch + NGX_HTTP_INGEST_BUCKET_PREFIX,
               pair->key, pair->len);

    return NGX_HTTP_INGEST_BUCKET_PREFIX + pair->len;
}


/*
 * A pair into q's sums and, with buckets=, into the sum of its step (its
 * bucket of every resolution): both or, taken back, neither.
 */

static ngx_int_t
ngx_http_ingest_add(ngx_http_ingest_queue_t *q, ngx_http_ingest_pair_t *pair,
    ngx_http_ingest_loc_conf_t *ilcf)
{
    int     rc, created;
    size_t  len;

    rc = ngx_http_ingest_table_add(&q->sums, pair->key, pair->len,
                                   pair->value, &created);

    if (rc != NGX_HTTP_INGEST_TABLE_OK) {
        return rc;
    }

    pair->created = (uint8_t) created;

    if (ilcf->nresolutions == 0) {
        return NGX_HTTP_INGEST_TABLE_OK;
    }

    len = ngx_http_ingest_step_key(pair);

    rc = ngx_http_ingest_table_add(&q->buckets, ngx_http_ingest_bucket_scratch,
                                   len, pair->value, &created);

    if (rc != NGX_HTTP_INGEST_TABLE_OK) {
        ngx_http_ingest_table_undo(&q->sums, pair->key, pair->len,
                                   pair->value, pair->created & 1);
        return rc;
    }

    pair->created |= (uint8_t) (created << 1);

    return NGX_HTTP_INGEST_TABLE_OK;
}


/*
 * A pair taken back: its step's sum, then its own.  Only within apply():
 * the scratch still holds the request's prefix.
 */

static void
ngx_http_ingest_unadd(ngx_http_ingest_queue_t *q,
    ngx_http_ingest_pair_t *pair, ngx_http_ingest_loc_conf_t *ilcf)
{
    size_t  len;

    if (ilcf->nresolutions) {
        len = ngx_http_ingest_step_key(pair);

        ngx_http_ingest_table_undo(&q->buckets,
                                   ngx_http_ingest_bucket_scratch, len,
                                   pair->value, (pair->created >> 1) & 1);
    }

    ngx_http_ingest_table_undo(&q->sums, pair->key, pair->len, pair->value,
                               pair->created & 1);
}


/* the pairs before pair i of chunk c taken back, last first */

static void
ngx_http_ingest_undo(ngx_http_ingest_queue_t *q, ngx_http_ingest_chunk_t *c,
    ngx_uint_t i, ngx_http_ingest_loc_conf_t *ilcf)
{
    ngx_http_ingest_pair_t  *p;

    while (c != NULL) {
        while (i-- > 0) {
            p = &c->pairs[i];
            ngx_http_ingest_unadd(&q[p->shard], p, ilcf);
        }

        c = c->prev;
        i = c ? c->n : 0;
    }
}


/* what the request added may make a shard due, or start the timer */

static void
ngx_http_ingest_added(ngx_http_ingest_ctx_t *ctx,
    ngx_http_ingest_list_t *list)
{
    u_char                    touched[NGX_HTTP_INGEST_MAX_SHARDS];
    ngx_uint_t                i, s;
    ngx_http_ingest_chunk_t  *c;
    ngx_http_ingest_queue_t  *q;

    q = &ngx_http_ingest_worker->queues[list->first];

    if (list->shards == 1 || ctx->npairs == 0) {
        ngx_http_ingest_flush_added(ngx_http_ingest_worker, q);
        return;
    }

    ngx_memzero(touched, list->shards);

    for (c = &ctx->first; c; c = c->next) {
        for (i = 0; i < c->n; i++) {
            touched[c->pairs[i].shard] = 1;
        }
    }

    for (s = 0; s < list->shards; s++) {
        if (touched[s]) {
            ngx_http_ingest_flush_added(ngx_http_ingest_worker, &q[s]);
        }
    }
}


/*
 * The Idempotency-Key header: 1 to 255 visible ASCII characters.  id->len
 * is 0 without one.
 */

static ngx_int_t
ngx_http_ingest_idempotency_key(ngx_http_request_t *r, ngx_str_t *id)
{
    ngx_uint_t        i, n;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    id->len = 0;
    id->data = NULL;

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len != sizeof("Idempotency-Key") - 1
            || ngx_strncasecmp(h[i].key.data, (u_char *) "Idempotency-Key",
                               sizeof("Idempotency-Key") - 1) != 0)
        {
            continue;
        }

        if (id->len || h[i].value.len == 0
            || h[i].value.len > INGEST_WIRE_MAX_ID)
        {
            return NGX_HTTP_BAD_REQUEST;
        }

        for (n = 0; n < h[i].value.len; n++) {
            if (h[i].value.data[n] < 0x21 || h[i].value.data[n] > 0x7e) {
                return NGX_HTTP_BAD_REQUEST;
            }
        }

        *id = h[i].value;
    }

    return NGX_OK;
}


/* a keyed request's entry opened in q's buffer, where it began noted */

static ngx_int_t
ngx_http_ingest_keyed_begin(ngx_http_ingest_queue_t *q, ngx_str_t *id,
    size_t *mark, u_char *begun)
{
    *mark = q->keyed.len;

    if (ingest_wire_request_begin(&q->keyed, id->data, id->len)
        != INGEST_WIRE_OK)
    {
        q->keyed.len = *mark;
        return NGX_ERROR;
    }

    *begun = 1;

    return NGX_OK;
}


/*
 * A request with an Idempotency-Key is not summed into the table: it
 * travels alone in the batch's "requests", so that the consumer applies
 * it at most once, however often the client sends it.  Its own repeated
 * keys are summed first, in a table of its own, to catch an overflow.
 * With shards, each shard's batch carries the request's keys of that
 * shard under the same id; the consumer keeps ids per list.
 */

static ngx_int_t
ngx_http_ingest_apply_keyed(ngx_http_request_t *r,
    ngx_http_ingest_ctx_t *ctx, ngx_http_ingest_list_t *list, ngx_str_t *id)
{
    int                       created;
    size_t                    i, mark[NGX_HTTP_INGEST_MAX_SHARDS];
    u_char                    begun[NGX_HTTP_INGEST_MAX_SHARDS];
    ngx_int_t                 rc;
    ngx_uint_t                n, s;
    ngx_http_ingest_pair_t   *pair;
    ngx_http_ingest_chunk_t  *c;
    ngx_http_ingest_entry_t  *e;
    ngx_http_ingest_queue_t  *q;
    ngx_http_ingest_table_t   t;
    ingest_wire_buf_t         bk;

    ngx_http_ingest_loc_conf_t  *ilcf;

    ngx_memzero(&bk, sizeof(ingest_wire_buf_t));

    if (ngx_http_ingest_table_init(&t, 0) != NGX_HTTP_INGEST_TABLE_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = NGX_OK;

    for (c = &ctx->first; c; c = c->next) {
        for (n = 0; n < c->n; n++) {
            pair = &c->pairs[n];

            switch (ngx_http_ingest_table_add(&t, pair->key, pair->len,
                                              pair->value, &created))
            {
            case NGX_HTTP_INGEST_TABLE_OK:
                continue;

            case NGX_HTTP_INGEST_TABLE_OVERFLOW:
                ctx->error = "sum overflows";
                ctx->error_at = pair->at;
                rc = NGX_HTTP_BAD_REQUEST;
                goto done;

            default:
                rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
                goto done;
            }
        }
    }

    /*
     * One entry per shard that has keys (without shards, one in all, an
     * empty body's too), each in its shard's buffer; the counts are
     * known only when every entry is whole.
     */

    q = &ngx_http_ingest_worker->queues[list->first];
    ngx_memzero(begun, list->shards);

    for (i = 0; i <= t.mask; i++) {
        e = &t.slots[i];

        if (e->hash == 0) {
            continue;
        }

        s = (list->shards == 1)
            ? 0 : ngx_http_ingest_shard_of(e->key, e->len, list->shards);

        if (!begun[s]
            && ngx_http_ingest_keyed_begin(&q[s], id, &mark[s], &begun[s])
               != NGX_OK)
        {
            goto nomem;
        }

        if (ingest_wire_counters_add(&q[s].keyed, e->key, e->len, e->value)
            != INGEST_WIRE_OK)
        {
            goto nomem;
        }
    }

    if (list->shards == 1 && !begun[0]
        && ngx_http_ingest_keyed_begin(&q[0], id, &mark[0], &begun[0])
           != NGX_OK)
    {
        goto nomem;
    }

    ilcf = ngx_http_get_module_loc_conf(r, ngx_http_ingest_module);

    for (s = 0; s < list->shards; s++) {
        if (!begun[s]) {
            continue;
        }

        /* its buckets, of its arrival: the same counts, once a resolution */

        if (ilcf->nresolutions && t.nkeys
            && ngx_http_ingest_keyed_buckets(&t, list, s, ilcf, r->start_sec,
                                             &bk)
               != NGX_OK)
        {
            goto nomem;
        }

        if (ingest_wire_request_end_buckets(&q[s].keyed,
                                            bk.len ? &bk : NULL)
            != INGEST_WIRE_OK)
        {
            goto nomem;
        }

        q[s].keyed_buckets |= (bk.len != 0);

        /* an entry travels whole, in one batch: it must fit half of one */

        if (q[s].keyed.len - mark[s] > NGX_HTTP_INGEST_MAX_BATCH / 2) {
            ctx->error = "an Idempotency-Key request may hold at most 512k "
                         "of counts per list";
            ctx->error_at = -1;
            rc = NGX_HTTP_REQUEST_ENTITY_TOO_LARGE;
            goto undo;
        }
    }

    for (s = 0; s < list->shards; s++) {
        q[s].nkeyed += begun[s];
    }

    goto done;

nomem:

    rc = NGX_HTTP_INTERNAL_SERVER_ERROR;

undo:

    /* take back what was written of it: the request changes nothing */

    for (s = 0; s < list->shards; s++) {
        if (begun[s]) {
            q[s].keyed.len = mark[s];
        }
    }

done:

    ngx_http_ingest_table_free(&t);
    ingest_wire_buf_free(&bk);

    return rc;
}


/*
 * The buckets of a keyed request's entry in shard s: the keys of t that
 * go to s, once, with the location's resolutions and the request's
 * arrival (floored to its step)
 */

static ngx_int_t
ngx_http_ingest_keyed_buckets(ngx_http_ingest_table_t *t,
    ngx_http_ingest_list_t *list, ngx_uint_t s,
    ngx_http_ingest_loc_conf_t *ilcf, time_t now, ingest_wire_buf_t *bk)
{
    size_t                    i;
    ngx_uint_t                n;
    ngx_http_ingest_entry_t  *e;

    bk->len = 0;

    if (ingest_wire_bucket_begin(bk, ilcf->resolutions, ilcf->nresolutions,
                                 now - now % ilcf->step)
        != INGEST_WIRE_OK)
    {
        return NGX_ERROR;
    }

    n = 0;

    for (i = 0; i <= t->mask; i++) {
        e = &t->slots[i];

        if (e->hash == 0
            || (list->shards > 1
                && ngx_http_ingest_shard_of(e->key, e->len, list->shards)
                   != s))
        {
            continue;
        }

        if (ingest_wire_counters_add(bk, e->key, e->len, e->value)
            != INGEST_WIRE_OK)
        {
            return NGX_ERROR;
        }

        n++;
    }

    if (ingest_wire_bucket_end(bk) != INGEST_WIRE_OK) {
        return NGX_ERROR;
    }

    if (n == 0) {
        /* no key of this shard: no buckets either */
        bk->len = 0;
    }

    return NGX_OK;
}
