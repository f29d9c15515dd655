
/*
 * Copyright (C) ngx_ingest developers
 *
 * The spool: batches a worker could not hand to Redis at exit, one file
 * each, written and fsynced before the worker goes, and sent to Redis
 * later by worker 0 of whatever nginx runs next, unchanged.  A batch
 * keeps its producer and seq, so if it had reached Redis after all, the
 * consumer skips the copy.
 *
 *   <dir>/<producer>~<list>~<seq, 20 digits>.batch    "<list>\n<batch>"
 *
 * Names sort by producer, list and seq, so a producer's batches of a list
 * are replayed in seq order.  A file is written under a temporary name
 * and renamed, so the replay never sees half of one.  The dead producer
 * sends nothing newer, so the replay keeps DESIGN.md's order.
 *
 * The replay reads small local files with blocking calls, at most one
 * per Redis round trip, only in worker 0 and only while files are there.
 */


#include "ngx_http_ingest_module.h"

#include <dirent.h>


#define NGX_HTTP_INGEST_SPOOL_PERIOD   1000        /* ms between scans */


static u_char *ngx_http_ingest_spool_sanitize(u_char *p, u_char *last,
    u_char *s, size_t len);
static void ngx_http_ingest_spool_handler(ngx_event_t *ev);
static ngx_int_t ngx_http_ingest_spool_next(ngx_http_ingest_worker_t *w);
static void ngx_http_ingest_spool_pushed(redisAsyncContext *ac, void *r,
    void *privdata);
static void ngx_http_ingest_spool_reply(redisAsyncContext *ac, void *r,
    void *privdata);


ngx_int_t
ngx_http_ingest_spool_write(ngx_http_ingest_worker_t *w,
    ngx_http_ingest_queue_t *q, ngx_http_ingest_batch_t *b)
{
    int          fd, dfd;
    u_char       name[NGX_MAX_PATH], tmp[NGX_MAX_PATH], *p, *last;
    ssize_t      n;
    ngx_str_t   *dir;
    struct iovec iov[3];

    dir = &w->imcf->spool->name;

    p = ngx_snprintf(name, sizeof(name) - 1, "%V/", dir);
    last = name + sizeof(name) - 64;
    p = ngx_http_ingest_spool_sanitize(p, last, (u_char *) w->producer,
                                       ngx_strlen(w->producer));
    *p++ = '~';
    p = ngx_http_ingest_spool_sanitize(p, last, q->name.data, q->name.len);
    p = ngx_snprintf(p, 40, "~%020uL.batch%Z", b->seq);

    ngx_snprintf(tmp, sizeof(tmp) - 1, "%V/.tmp-%P-%uL%Z", dir, ngx_pid,
                 b->seq);

    fd = open((char *) tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd == -1) {
        ngx_log_error(NGX_LOG_ERR, w->log, ngx_errno,
                      "ingest cannot create spool file \"%s\"", tmp);
        return NGX_ERROR;
    }

    iov[0].iov_base = q->name.data;
    iov[0].iov_len = q->name.len;
    iov[1].iov_base = "\n";
    iov[1].iov_len = 1;
    iov[2].iov_base = b->buf.data;
    iov[2].iov_len = b->buf.len;

    n = writev(fd, iov, 3);

    if (n != (ssize_t) (q->name.len + 1 + b->buf.len) || fsync(fd) == -1) {
        ngx_log_error(NGX_LOG_ERR, w->log, ngx_errno,
                      "ingest cannot write spool file \"%s\"", tmp);
        (void) close(fd);
        (void) unlink((char *) tmp);
        return NGX_ERROR;
    }

    (void) close(fd);

    if (rename((char *) tmp, (char *) name) == -1) {
        ngx_log_error(NGX_LOG_ERR, w->log, ngx_errno,
                      "ingest cannot rename spool file \"%s\"", tmp);
        (void) unlink((char *) tmp);
        return NGX_ERROR;
    }

    /* the new name must survive a crash of the machine too */

    ngx_snprintf(tmp, sizeof(tmp) - 1, "%V%Z", dir);

    dfd = open((char *) tmp, O_RDONLY | O_DIRECTORY);
    if (dfd != -1) {
        (void) fsync(dfd);
        (void) close(dfd);
    }

    ngx_log_error(NGX_LOG_INFO, w->log, 0, "ingest spooled \"%s\"", name);

    return NGX_OK;
}


static u_char *
ngx_http_ingest_spool_sanitize(u_char *p, u_char *last, u_char *s,
    size_t len)
{
    size_t  i;

    for (i = 0; i < len && p < last; i++) {
        *p++ = ((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z')
                || (s[i] >= '0' && s[i] <= '9') || s[i] == '.'
                || s[i] == '-')
               ? s[i] : '_';
    }

    return p;
}


/* worker 0 (or the single process) replays the spool */

void
ngx_http_ingest_spool_init(ngx_http_ingest_worker_t *w)
{
    if (w->imcf->spool == NULL) {
        return;
    }

    if (ngx_process == NGX_PROCESS_WORKER && ngx_worker != 0) {
        return;
    }

    w->spool_timer.handler = ngx_http_ingest_spool_handler;
    w->spool_timer.data = &w->timer_conn;
    w->spool_timer.log = w->log;
    w->spool_timer.cancelable = 1;

    ngx_add_timer(&w->spool_timer, 100);
}


static void
ngx_http_ingest_spool_handler(ngx_event_t *ev)
{
    ngx_http_ingest_spool_replay(ngx_http_ingest_worker);
}


void
ngx_http_ingest_spool_replay(ngx_http_ingest_worker_t *w)
{
    if (w->exiting || w->draining || w->spool_busy) {
        return;
    }

    if (!w->connected || ngx_http_ingest_spool_next(w) != NGX_OK) {
        ngx_add_timer(&w->spool_timer, NGX_HTTP_INGEST_SPOOL_PERIOD);
    }
}


/* send the first spooled batch; NGX_OK when one is on its way */

static ngx_int_t
ngx_http_ingest_spool_next(ngx_http_ingest_worker_t *w)
{
    int                 fd;
    DIR                *d;
    u_char              path[NGX_MAX_PATH], *data, *nl;
    size_t              len;
    ssize_t             n;
    ngx_str_t          *dir;
    const char         *argv[3];
    size_t              argvlen[3];
    ngx_uint_t          replicas;
    struct stat         st;
    struct dirent      *de;
    redisAsyncContext  *ac;

    dir = &w->imcf->spool->name;

    ngx_snprintf(path, sizeof(path) - 1, "%V%Z", dir);

    d = opendir((char *) path);
    if (d == NULL) {
        /* once, not at every scan */
        if (!w->spool_error) {
            w->spool_error = 1;
            ngx_log_error(NGX_LOG_ERR, w->log, ngx_errno,
                          "ingest cannot open spool \"%s\"", path);
        }

        return NGX_ERROR;
    }

    w->spool_error = 0;

    w->spool_name[0] = '\0';

    while ((de = readdir(d)) != NULL) {
        len = ngx_strlen(de->d_name);

        if (de->d_name[0] == '.' || len < 6 || len >= NGX_MAX_PATH - 1
            || ngx_strcmp(de->d_name + len - 6, ".batch") != 0)
        {
            continue;
        }

        if (w->spool_name[0] == '\0'
            || ngx_strcmp(de->d_name, w->spool_name) < 0)
        {
            ngx_cpystrn(w->spool_name, (u_char *) de->d_name, len + 1);
        }
    }

    (void) closedir(d);

    if (w->spool_name[0] == '\0') {
        return NGX_DECLINED;
    }

    ngx_snprintf(path, sizeof(path) - 1, "%V/%s%Z", dir, w->spool_name);

    fd = open((char *) path, O_RDONLY);
    if (fd == -1 || fstat(fd, &st) == -1) {
        ngx_log_error(NGX_LOG_ERR, w->log, ngx_errno,
                      "ingest cannot open spool file \"%s\"", path);
        if (fd != -1) {
            (void) close(fd);
        }
        return NGX_ERROR;
    }

    data = ngx_alloc(st.st_size + 1, w->log);
    if (data == NULL) {
        (void) close(fd);
        return NGX_ERROR;
    }

    n = read(fd, data, st.st_size);
    (void) close(fd);

    nl = (n == st.st_size) ? ngx_strlchr(data, data + n, '\n') : NULL;

    if (nl == NULL || nl == data) {
        ngx_log_error(NGX_LOG_ALERT, w->log, 0,
                      "ingest spool file \"%s\" is malformed; left as it is",
                      path);
        ngx_free(data);
        return NGX_ERROR;
    }

    argv[0] = "RPUSH";
    argvlen[0] = 5;
    argv[1] = (const char *) data;
    argvlen[1] = nl - data;
    argv[2] = (const char *) nl + 1;
    argvlen[2] = data + n - (nl + 1);

    /* hiredis copies the command into its buffer */

    ac = ngx_http_ingest_redis_ctx(w, (u_char *) argv[1], argvlen[1]);

    /* in a cluster, on a replica too, as any batch (see cluster.c) */

    replicas = (w->cluster != NULL)
               ? ngx_http_ingest_cluster_wait_for(w,
                     ingest_cluster_slot((u_char *) argv[1], argvlen[1]))
               : 0;

    if (ac == NULL
        || redisAsyncCommandArgv(ac, replicas ? ngx_http_ingest_spool_pushed
                                              : ngx_http_ingest_spool_reply,
                                 w, 3, argv, argvlen)
           != REDIS_OK
        || (replicas
            && redisAsyncCommand(ac, ngx_http_ingest_spool_reply, w,
                                 "WAIT %u %u", (unsigned) replicas,
                                 (unsigned) w->imcf->ack_timeout / 2)
               != REDIS_OK))
    {
        ngx_free(data);
        return NGX_ERROR;
    }

    w->spool_pushed = 0;
    w->spool_replicas = replicas;

    ngx_free(data);
    w->spool_busy = 1;

    return NGX_OK;
}


/* a cluster's RPUSH of a spooled batch; the WAIT after it decides */

static void
ngx_http_ingest_spool_pushed(redisAsyncContext *ac, void *r, void *privdata)
{
    redisReply                *reply = r;
    ngx_http_ingest_worker_t  *w = privdata;

    w->spool_pushed = (reply != NULL && reply->type == REDIS_REPLY_INTEGER);
}


/* the RPUSH's reply, or in a cluster the WAIT's: the file goes, or stays */

static void
ngx_http_ingest_spool_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    u_char                     path[NGX_MAX_PATH];
    redisReply                *reply = r;
    ngx_http_ingest_worker_t  *w = privdata;

    w->spool_busy = 0;

    if (reply == NULL || reply->type != REDIS_REPLY_INTEGER
        || (w->spool_replicas
            && (!w->spool_pushed
                || (ngx_uint_t) reply->integer < w->spool_replicas)))
    {
        /* kept: the next scan sends it again */
        if (!w->exiting && !w->spool_timer.timer_set) {
            ngx_add_timer(&w->spool_timer, NGX_HTTP_INGEST_SPOOL_PERIOD);
        }
        return;
    }

    ngx_snprintf(path, sizeof(path) - 1, "%V/%s%Z", &w->imcf->spool->name,
                 w->spool_name);

    if (unlink((char *) path) == -1) {
        ngx_log_error(NGX_LOG_ALERT, w->log, ngx_errno,
                      "ingest cannot remove replayed spool file \"%s\"",
                      path);
    }

    ngx_log_error(NGX_LOG_NOTICE, w->log, 0,
                  "ingest replayed spooled batch \"%s\"", w->spool_name);

    /* the next file at once: a timer, not from inside this callback */

    if (!w->exiting && !w->spool_timer.timer_set) {
        ngx_add_timer(&w->spool_timer, 1);
    }
}
