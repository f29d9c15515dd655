
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
 * sends nothing newer, so the replay keeps the order the consumer
 * relies on.
 *
 * The replay hands one file at a time to the transport, as a list's
 * batch, on a channel of its own; the file goes once Redis has it.  It
 * reads small local files with blocking calls, one per delivery, only in
 * worker 0 and only while files are there.
 */


#include "ngx_http_ingest_spool.h"

#include <dirent.h>


#define NGX_HTTP_INGEST_SPOOL_PERIOD   1000        /* ms between scans */


typedef struct {
    ngx_str_t                    dir;
    ngx_http_ingest_transport_t *transport;
    ngx_log_t                   *log;
    ngx_event_t                  timer;
    ngx_http_ingest_channel_t    channel;      /* the file on its way */
    u_char                      *data;         /* its contents */
    u_char                       name[NGX_MAX_PATH];
    unsigned                     error:1;      /* logged once */
    unsigned                     stopped:1;
} ngx_http_ingest_spool_t;


static ngx_http_ingest_spool_t  *ngx_http_ingest_spool;


static u_char *ngx_http_ingest_spool_sanitize(u_char *p, u_char *last,
    u_char *s, size_t len);
static void ngx_http_ingest_spool_handler(ngx_event_t *ev);
static ngx_int_t ngx_http_ingest_spool_next(ngx_http_ingest_spool_t *sp);
static void ngx_http_ingest_spool_delivered(ngx_http_ingest_channel_t *ch);


ngx_int_t
ngx_http_ingest_spool_write(ngx_str_t *dir, const char *producer,
    ngx_str_t *list, uint64_t seq, ngx_str_t *batch, ngx_log_t *log)
{
    int          fd, dfd;
    u_char       name[NGX_MAX_PATH], tmp[NGX_MAX_PATH], *p, *last;
    ssize_t      n;
    struct iovec iov[3];

    p = ngx_snprintf(name, sizeof(name) - 1, "%V/", dir);
    last = name + sizeof(name) - 64;
    p = ngx_http_ingest_spool_sanitize(p, last, (u_char *) producer,
                                       ngx_strlen(producer));
    *p++ = '~';
    p = ngx_http_ingest_spool_sanitize(p, last, list->data, list->len);
    p = ngx_snprintf(p, 40, "~%020uL.batch%Z", seq);

    ngx_snprintf(tmp, sizeof(tmp) - 1, "%V/.tmp-%P-%uL%Z", dir, ngx_pid,
                 seq);

    fd = open((char *) tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd == -1) {
        ngx_log_error(NGX_LOG_ERR, log, ngx_errno,
                      "ingest cannot create spool file \"%s\"", tmp);
        return NGX_ERROR;
    }

    iov[0].iov_base = list->data;
    iov[0].iov_len = list->len;
    iov[1].iov_base = "\n";
    iov[1].iov_len = 1;
    iov[2].iov_base = batch->data;
    iov[2].iov_len = batch->len;

    n = writev(fd, iov, 3);

    if (n != (ssize_t) (list->len + 1 + batch->len) || fsync(fd) == -1) {
        ngx_log_error(NGX_LOG_ERR, log, ngx_errno,
                      "ingest cannot write spool file \"%s\"", tmp);
        (void) close(fd);
        (void) unlink((char *) tmp);
        return NGX_ERROR;
    }

    (void) close(fd);

    if (rename((char *) tmp, (char *) name) == -1) {
        ngx_log_error(NGX_LOG_ERR, log, ngx_errno,
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

    ngx_log_error(NGX_LOG_INFO, log, 0, "ingest spooled \"%s\"", name);

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


ngx_int_t
ngx_http_ingest_spool_init(ngx_cycle_t *cycle, ngx_str_t *dir,
    ngx_http_ingest_transport_t *t)
{
    ngx_http_ingest_spool_t  *sp;

    if (ngx_process == NGX_PROCESS_WORKER && ngx_worker != 0) {
        return NGX_OK;
    }

    sp = ngx_pcalloc(cycle->pool, sizeof(ngx_http_ingest_spool_t));
    if (sp == NULL) {
        return NGX_ERROR;
    }

    sp->dir = *dir;
    sp->transport = t;
    sp->log = cycle->log;

    sp->timer.handler = ngx_http_ingest_spool_handler;
    sp->timer.data = t->timer_data;
    sp->timer.log = sp->log;
    sp->timer.cancelable = 1;

    sp->channel.delivered = ngx_http_ingest_spool_delivered;
    sp->channel.data = sp;

    ngx_http_ingest_channel_init(t, &sp->channel);

    ngx_http_ingest_spool = sp;

    ngx_add_timer(&sp->timer, 100);

    return NGX_OK;
}


void
ngx_http_ingest_spool_exit(void)
{
    ngx_http_ingest_spool_t  *sp;

    sp = ngx_http_ingest_spool;

    if (sp == NULL) {
        return;
    }

    /* the transport is closed: what was on its way stays in its file */

    if (sp->timer.timer_set) {
        ngx_del_timer(&sp->timer);
    }

    /* delivered but not handled: the file goes again, a copy skipped */
    (void) ngx_http_ingest_channel_cancel(&sp->channel);

    if (sp->data != NULL) {
        ngx_free(sp->data);
        sp->data = NULL;
    }

    ngx_http_ingest_spool = NULL;
}


void
ngx_http_ingest_spool_stop(void)
{
    ngx_http_ingest_spool_t  *sp;

    sp = ngx_http_ingest_spool;

    if (sp == NULL) {
        return;
    }

    sp->stopped = 1;

    if (sp->timer.timer_set) {
        ngx_del_timer(&sp->timer);
    }
}


static void
ngx_http_ingest_spool_handler(ngx_event_t *ev)
{
    ngx_http_ingest_spool_t  *sp;

    sp = ngx_http_ingest_spool;

    if (sp->channel.handed || sp->stopped || sp->transport->closing) {
        return;
    }

    if (ngx_http_ingest_spool_next(sp) != NGX_OK) {
        ngx_add_timer(&sp->timer, NGX_HTTP_INGEST_SPOOL_PERIOD);
    }
}


/* hand the first spooled batch over; NGX_OK when one is on its way */

static ngx_int_t
ngx_http_ingest_spool_next(ngx_http_ingest_spool_t *sp)
{
    int             fd;
    DIR            *d;
    u_char          path[NGX_MAX_PATH], *data, *nl;
    size_t          len;
    ssize_t         n;
    struct stat     st;
    struct dirent  *de;

    ngx_snprintf(path, sizeof(path) - 1, "%V%Z", &sp->dir);

    d = opendir((char *) path);
    if (d == NULL) {
        /* once, not at every scan */
        if (!sp->error) {
            sp->error = 1;
            ngx_log_error(NGX_LOG_ERR, sp->log, ngx_errno,
                          "ingest cannot open spool \"%s\"", path);
        }

        return NGX_ERROR;
    }

    sp->error = 0;
    sp->name[0] = '\0';

    while ((de = readdir(d)) != NULL) {
        len = ngx_strlen(de->d_name);

        if (de->d_name[0] == '.' || len < 6 || len >= NGX_MAX_PATH - 1
            || ngx_strcmp(de->d_name + len - 6, ".batch") != 0)
        {
            continue;
        }

        if (sp->name[0] == '\0'
            || ngx_strcmp(de->d_name, sp->name) < 0)
        {
            ngx_cpystrn(sp->name, (u_char *) de->d_name, len + 1);
        }
    }

    (void) closedir(d);

    if (sp->name[0] == '\0') {
        return NGX_DECLINED;
    }

    ngx_snprintf(path, sizeof(path) - 1, "%V/%s%Z", &sp->dir, sp->name);

    fd = open((char *) path, O_RDONLY);
    if (fd == -1 || fstat(fd, &st) == -1) {
        ngx_log_error(NGX_LOG_ERR, sp->log, ngx_errno,
                      "ingest cannot open spool file \"%s\"", path);
        if (fd != -1) {
            (void) close(fd);
        }
        return NGX_ERROR;
    }

    data = ngx_alloc(st.st_size + 1, sp->log);
    if (data == NULL) {
        (void) close(fd);
        return NGX_ERROR;
    }

    n = read(fd, data, st.st_size);
    (void) close(fd);

    nl = (n == st.st_size) ? ngx_strlchr(data, data + n, '\n') : NULL;

    if (nl == NULL || nl == data) {
        ngx_log_error(NGX_LOG_ALERT, sp->log, 0,
                      "ingest spool file \"%s\" is malformed; left as it is",
                      path);
        ngx_free(data);
        return NGX_ERROR;
    }

    sp->data = data;

    sp->channel.name.data = data;
    sp->channel.name.len = nl - data;
    sp->channel.batch.data = nl + 1;
    sp->channel.batch.len = data + n - (nl + 1);

    sp->transport->ops->send(sp->transport, &sp->channel);

    return NGX_OK;
}


/* Redis has the file's batch (from a posted event): the file goes */

static void
ngx_http_ingest_spool_delivered(ngx_http_ingest_channel_t *ch)
{
    u_char                    path[NGX_MAX_PATH];
    ngx_http_ingest_spool_t  *sp = ch->data;

    ngx_free(sp->data);
    sp->data = NULL;

    ngx_snprintf(path, sizeof(path) - 1, "%V/%s%Z", &sp->dir, sp->name);

    if (unlink((char *) path) == -1 && ngx_errno != NGX_ENOENT) {
        ngx_log_error(NGX_LOG_ALERT, sp->log, ngx_errno,
                      "ingest cannot remove replayed spool file \"%s\"",
                      path);
    }

    /*
     * ENOENT: the worker 0 of an nginx reloading beside this one replayed
     * it too; the consumer skips the copy.
     */

    ngx_log_error(NGX_LOG_NOTICE, sp->log, 0,
                  "ingest replayed spooled batch \"%s\"", sp->name);

    /* the next file at once */

    if (!sp->timer.timer_set && !sp->stopped) {
        ngx_add_timer(&sp->timer, 1);
    }
}
