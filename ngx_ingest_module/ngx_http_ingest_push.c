
/*
 * Copyright (C) ngx_ingest developers
 * SPDX-License-Identifier: BSD-2-Clause
 *
 * The durable push, async on a worker's loop and blocking at exit.
 * Async: the commands are pipelined; the RPUSH's reply is only noted,
 * and the last reply (WAIT's, or RPUSH's without one) decides, so that
 * the outcome is known exactly once whatever happens in between.
 */


#include "ngx_http_ingest_push.h"


static void ngx_http_ingest_push_rpushed(redisAsyncContext *ac, void *r,
    void *privdata);
static void ngx_http_ingest_push_waited(redisAsyncContext *ac, void *r,
    void *privdata);
static void ngx_http_ingest_push_rpush_reply(ngx_http_ingest_push_t *p,
    redisReply *reply);
static void ngx_http_ingest_push_wait_reply(ngx_http_ingest_push_t *p,
    redisReply *reply);
static int ngx_http_ingest_push_argv(ngx_http_ingest_push_t *p,
    const char **argv, size_t *argvlen);
static void ngx_http_ingest_push_wait_argv(ngx_http_ingest_push_t *p,
    u_char *buf, const char **argv, size_t *argvlen);


ngx_int_t
ngx_http_ingest_push(redisAsyncContext *ac, ngx_http_ingest_push_t *p)
{
    int          argc;
    u_char       buf[2 * NGX_INT_T_LEN];
    const char  *argv[2 + NGX_HTTP_INGEST_PUSH_MAX_BATCHES];
    size_t       argvlen[2 + NGX_HTTP_INGEST_PUSH_MAX_BATCHES];

    p->pushed = 0;
    p->result = NGX_HTTP_INGEST_PUSH_LOST;
    p->error_len = 0;
    p->replicated = 0;

    if (p->asking
        && redisAsyncCommand(ac, NULL, NULL, "ASKING") != REDIS_OK)
    {
        return NGX_ERROR;
    }

    p->waits = (p->replicas > 0);

    argc = ngx_http_ingest_push_argv(p, argv, argvlen);

    if (redisAsyncCommandArgv(ac, ngx_http_ingest_push_rpushed, p, argc,
                              argv, argvlen)
        != REDIS_OK)
    {
        return NGX_ERROR;
    }

    if (!p->waits) {
        return NGX_OK;
    }

    ngx_http_ingest_push_wait_argv(p, buf, argv, argvlen);

    if (redisAsyncCommandArgv(ac, ngx_http_ingest_push_waited, p, 3, argv,
                              argvlen)
        != REDIS_OK)
    {
        /*
         * Only a context going away refuses a command: the RPUSH's NULL
         * reply, which comes all the same, decides (lost).
         */
        p->waits = 0;
    }

    return NGX_OK;
}


static void
ngx_http_ingest_push_rpushed(redisAsyncContext *ac, void *r, void *privdata)
{
    ngx_http_ingest_push_t  *p = privdata;

    ngx_http_ingest_push_rpush_reply(p, r);

    if (!p->waits) {
        p->done(p);
    }
}


static void
ngx_http_ingest_push_waited(redisAsyncContext *ac, void *r, void *privdata)
{
    ngx_http_ingest_push_t  *p = privdata;

    ngx_http_ingest_push_wait_reply(p, r);

    p->done(p);
}


static void
ngx_http_ingest_push_rpush_reply(ngx_http_ingest_push_t *p,
    redisReply *reply)
{
    if (reply == NULL) {
        p->result = NGX_HTTP_INGEST_PUSH_LOST;
        return;
    }

    if (reply->type == REDIS_REPLY_INTEGER) {
        p->pushed = 1;
        p->result = NGX_HTTP_INGEST_PUSH_DELIVERED;
        return;
    }

    /* OOM, LOADING, READONLY, MISCONF, MOVED, ASK ...: not taken */

    p->result = NGX_HTTP_INGEST_PUSH_REFUSED;

    if (reply->type == REDIS_REPLY_ERROR || reply->type == REDIS_REPLY_STATUS)
    {
        p->error_len = ngx_min((size_t) reply->len, sizeof(p->error));
        ngx_memcpy(p->error, reply->str, p->error_len);

    } else {
        p->error_len = ngx_sprintf(p->error, "reply of type %d",
                                   reply->type)
                       - p->error;
    }
}


static void
ngx_http_ingest_push_wait_reply(ngx_http_ingest_push_t *p,
    redisReply *reply)
{
    if (reply == NULL) {
        p->result = NGX_HTTP_INGEST_PUSH_LOST;
        return;
    }

    if (!p->pushed) {
        /* the RPUSH before it was refused: its outcome stands */
        return;
    }

    p->replicated = (reply->type == REDIS_REPLY_INTEGER) ? reply->integer
                                                         : -1;

    p->result = (p->replicated >= (long long) p->replicas)
                ? NGX_HTTP_INGEST_PUSH_DELIVERED
                : NGX_HTTP_INGEST_PUSH_UNSAFE;
}


void
ngx_http_ingest_push_sync(redisContext *rc, ngx_http_ingest_push_t *p)
{
    int          argc;
    u_char       buf[2 * NGX_INT_T_LEN];
    const char  *argv[2 + NGX_HTTP_INGEST_PUSH_MAX_BATCHES];
    size_t       argvlen[2 + NGX_HTTP_INGEST_PUSH_MAX_BATCHES];
    redisReply  *reply;

    p->pushed = 0;
    p->error_len = 0;
    p->replicated = 0;

    if (p->asking) {
        reply = redisCommand(rc, "ASKING");

        if (reply == NULL) {
            p->result = NGX_HTTP_INGEST_PUSH_LOST;
            return;
        }

        freeReplyObject(reply);
    }

    argc = ngx_http_ingest_push_argv(p, argv, argvlen);

    reply = redisCommandArgv(rc, argc, argv, argvlen);
    ngx_http_ingest_push_rpush_reply(p, reply);

    if (reply != NULL) {
        freeReplyObject(reply);
    }

    if (p->result != NGX_HTTP_INGEST_PUSH_DELIVERED || p->replicas == 0) {
        return;
    }

    ngx_http_ingest_push_wait_argv(p, buf, argv, argvlen);

    reply = redisCommandArgv(rc, 3, argv, argvlen);
    ngx_http_ingest_push_wait_reply(p, reply);

    if (reply != NULL) {
        freeReplyObject(reply);
    }
}


/* RPUSH <list> <batch>...: the number of arguments */

static int
ngx_http_ingest_push_argv(ngx_http_ingest_push_t *p, const char **argv,
    size_t *argvlen)
{
    ngx_uint_t  i;

    argv[0] = "RPUSH";
    argvlen[0] = 5;
    argv[1] = (const char *) p->list.data;
    argvlen[1] = p->list.len;

    for (i = 0; i < p->nbatches; i++) {
        argv[2 + i] = (const char *) p->batches[i].data;
        argvlen[2 + i] = p->batches[i].len;
    }

    return (int) (2 + p->nbatches);
}


/* WAIT <replicas> <ms>, its numbers written into buf */

static void
ngx_http_ingest_push_wait_argv(ngx_http_ingest_push_t *p, u_char *buf,
    const char **argv, size_t *argvlen)
{
    u_char  *ms;

    argv[0] = "WAIT";
    argvlen[0] = 4;

    ms = ngx_sprintf(buf, "%ui", p->replicas);
    argv[1] = (const char *) buf;
    argvlen[1] = ms - buf;

    argv[2] = (const char *) ms;
    argvlen[2] = ngx_sprintf(ms, "%M", p->wait) - ms;
}


ngx_uint_t
ngx_http_ingest_push_refused_batch(ngx_http_ingest_push_t *p)
{
    size_t            len;
    ngx_uint_t        i;
    static ngx_str_t  server[] = {
        ngx_string("OOM"),
        ngx_string("LOADING"),
        ngx_string("READONLY"),
        ngx_string("MISCONF"),
        ngx_string("BUSY"),
        ngx_string("MASTERDOWN"),
        ngx_string("NOREPLICAS"),
        ngx_string("CLUSTERDOWN"),
        ngx_string("TRYAGAIN"),
        ngx_string("MOVED"),
        ngx_string("ASK"),
        ngx_string("NOAUTH"),
        ngx_string("NOPERM"),
        ngx_string("WRONGPASS")
    };

    if (p->result != NGX_HTTP_INGEST_PUSH_REFUSED) {
        return 0;
    }

    /* the error code is the reply's first word */

    for (len = 0; len < p->error_len && p->error[len] != ' '; len++) {
        /* void */
    }

    for (i = 0; i < sizeof(server) / sizeof(server[0]); i++) {
        if (len == server[i].len
            && ngx_strncmp(p->error, server[i].data, len) == 0)
        {
            return 0;
        }
    }

    return 1;
}
