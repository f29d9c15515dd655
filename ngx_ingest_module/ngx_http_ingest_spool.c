
/*
 * Copyright (C) ngx_ingest developers
 *
 * The spool: batches a worker could not hand to Redis at exit, one file
 * per list, written and fsynced before the worker goes, and sent to
 * Redis later by worker 0 of whatever nginx runs next, unchanged.  A
 * batch keeps its producer and seq, so if it had reached Redis after
 * all, the consumer skips the copy.
 *
 *   <dir>/<producer>~<list>~<first seq, 20 digits>.batch
 *
 *   <list>\n<batch>\n<batch>\n...      (each batch one line, oldest first)
 *
 * One file holds all that a producer leaves of a list, and appears
 * whole (written under a temporary name, then renamed): a scan of the
 * directory can miss a file that arrives meanwhile, and with a file per
 * batch it could see a batch and miss the one before it, which the
 * consumer would then skip as old.
 *
 * Producer and list are percent-encoded (all but letters, digits, "-",
 * "_" and a "." that does not lead), so two lists never share a file
 * and a name reads back to its list; one whose encoding is too long for
 * a file name is "#" and the MD5 of its bytes instead (the list is in
 * the file anyway).  Names sort by producer, list and seq, so a
 * producer's batches of a list are replayed in seq order.  A file is
 * The dead producer sends nothing newer, so the replay keeps the order
 * the consumer relies on.
 *
 * The replay hands a file's batches, one at a time and in order, to the
 * transport on a channel of its own; the file goes once Redis has them
 * all (a replay cut short sends it again whole: the consumer skips what
 * it has).  A
 * file that is not a batch (cut short, not a regular file, unreadable)
 * is renamed "<name>.malformed", and one that Redis refuses for what it
 * is (its list holds another type, say) "<name>.refused": logged once,
 * kept for the operator, and the files behind it go on.  A refusal
 * about the server's state (OOM, LOADING ...) refuses every file alike:
 * the transport sends the same one again after its backoff.
 *
 * Directory scans, reads, checks, renames and unlinks run in nginx's thread
 * pool "default" (the event loop only hands over what they found), and
 * each scan leaves the number of files in the shared zone, for status.
 */


#include "ngx_http_ingest_spool.h"
#include "ngx_http_ingest_metrics.h"

#include <ngx_md5.h>
#include <dirent.h>


#define NGX_HTTP_INGEST_SPOOL_PERIOD   1000        /* ms between scans */

/* a file name's parts, encoded, before one is hashed instead */
#define NGX_HTTP_INGEST_SPOOL_PART     96

#define NGX_HTTP_INGEST_SPOOL_NAME     256         /* NAME_MAX + 1 */

/* bigger is not what a worker leaves (ingest_max_pending bounds it) */
#define NGX_HTTP_INGEST_SPOOL_MAX_FILE (1024 * 1024 * 1024)

/* malformed files moved aside in one scan, before the loop hears */
#define NGX_HTTP_INGEST_SPOOL_ASIDE    8

/* files that cannot be removed or moved aside, passed over */
#define NGX_HTTP_INGEST_SPOOL_SKIP     8

#define NGX_HTTP_INGEST_SPOOL_WHY      128


typedef enum {
    NGX_HTTP_INGEST_SPOOL_KEEP = 0,
    NGX_HTTP_INGEST_SPOOL_REMOVE,              /* Redis has it */
    NGX_HTTP_INGEST_SPOOL_REFUSED              /* Redis will not take it */
} ngx_http_ingest_spool_finish_e;


/*
 * One run of the thread's work: first what becomes of the file the
 * replay had (finish), then, if scan, the next file.  Written by the
 * thread, read by the loop once the task is done.
 */

typedef struct {
    ngx_str_t                    dir;
    ngx_log_t                   *log;

    /* in */
    ngx_http_ingest_spool_finish_e  finish;
    u_char                       done[NGX_HTTP_INGEST_SPOOL_NAME];
    ngx_uint_t                   done_batches;
    ngx_uint_t                   scan;
    ngx_uint_t                   nskip;        /* the loop's, read here */
    u_char                       skip[NGX_HTTP_INGEST_SPOOL_SKIP]
                                     [NGX_HTTP_INGEST_SPOOL_NAME];

    /* out */
    ngx_err_t                    finish_err;   /* of unlink or rename */
    ngx_err_t                    dir_err;      /* of opendir */
    ngx_uint_t                   files;        /* *.batch */
    ngx_uint_t                   aside;        /* *.malformed, *.refused */

    ngx_uint_t                   found;
    u_char                       name[NGX_HTTP_INGEST_SPOOL_NAME];
    u_char                      *data;         /* malloc'd: the file */
    ngx_str_t                    list;         /* in data */
    ngx_str_t                   *batches;      /* malloc'd, in data */
    ngx_uint_t                   nbatches;

    ngx_uint_t                   nmalformed;
    u_char                       malformed[NGX_HTTP_INGEST_SPOOL_ASIDE]
                                          [NGX_HTTP_INGEST_SPOOL_NAME];
    u_char                       why[NGX_HTTP_INGEST_SPOOL_ASIDE]
                                    [NGX_HTTP_INGEST_SPOOL_WHY];
    ngx_err_t                    aside_err[NGX_HTTP_INGEST_SPOOL_ASIDE];
} ngx_http_ingest_spool_work_t;


typedef struct {
    ngx_str_t                    dir;
    ngx_http_ingest_transport_t *transport;
    ngx_log_t                   *log;
    ngx_event_t                  timer;
    ngx_http_ingest_channel_t    channel;      /* the file on its way */
    ngx_http_ingest_spool_work_t *work;
    ngx_uint_t                   next;         /* of work->batches */
#if (NGX_THREADS)
    ngx_thread_pool_t           *threads;
    ngx_thread_task_t           *task;
#endif
    unsigned                     busy:1;       /* the work is running */
    unsigned                     error:1;      /* logged once */
    unsigned                     stopped:1;
} ngx_http_ingest_spool_t;


static ngx_http_ingest_spool_t  *ngx_http_ingest_spool;


static u_char *ngx_http_ingest_spool_encode(u_char *p, u_char *s,
    size_t len);
static void ngx_http_ingest_spool_handler(ngx_event_t *ev);
static void ngx_http_ingest_spool_post(ngx_http_ingest_spool_t *sp,
    ngx_http_ingest_spool_finish_e finish);
static void ngx_http_ingest_spool_work(void *data, ngx_log_t *log);
static void ngx_http_ingest_spool_worked(ngx_event_t *ev);
static ngx_uint_t ngx_http_ingest_spool_skipped(
    ngx_http_ingest_spool_work_t *w, u_char *name);
static void ngx_http_ingest_spool_why(u_char *why, const char *what,
    ngx_err_t err);
static ngx_int_t ngx_http_ingest_spool_read(ngx_http_ingest_spool_work_t *w,
    u_char *path, u_char *why);
static ngx_uint_t ngx_http_ingest_spool_whole(u_char *p, u_char *last);
static void ngx_http_ingest_spool_skip(ngx_http_ingest_spool_t *sp,
    u_char *name);
static void ngx_http_ingest_spool_release(ngx_http_ingest_spool_work_t *w);
static void ngx_http_ingest_spool_delivered(ngx_http_ingest_channel_t *ch);
static void ngx_http_ingest_spool_refused(ngx_http_ingest_channel_t *ch);


ngx_int_t
ngx_http_ingest_spool_open(ngx_http_ingest_spool_file_t *f, ngx_str_t *dir,
    const char *producer, ngx_str_t *list, uint64_t seq, ngx_log_t *log)
{
    u_char        *p;
    ssize_t        n;
    struct iovec   iov[2];

    f->fd = -1;
    f->batches = 0;
    f->first = seq;
    f->log = log;

    if (dir->len + 1 + NGX_HTTP_INGEST_SPOOL_NAME >= NGX_MAX_PATH) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "ingest spool path \"%V\" is too long", dir);
        return NGX_ERROR;
    }

    p = ngx_sprintf(f->name, "%V/", dir);
    p = ngx_http_ingest_spool_name(p, producer, list, seq);
    *p = '\0';

    ngx_snprintf(f->tmp, sizeof(f->tmp) - 1, "%V/.tmp-%P-%uL%Z", dir,
                 ngx_pid, seq);

    f->fd = open((char *) f->tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (f->fd == -1) {
        ngx_log_error(NGX_LOG_ERR, log, ngx_errno,
                      "ingest cannot create spool file \"%s\"", f->tmp);
        return NGX_ERROR;
    }

    iov[0].iov_base = list->data;
    iov[0].iov_len = list->len;
    iov[1].iov_base = "\n";
    iov[1].iov_len = 1;

    n = writev(f->fd, iov, 2);

    if (n != (ssize_t) (list->len + 1)) {
        ngx_log_error(NGX_LOG_ERR, log, ngx_errno,
                      "ingest cannot write spool file \"%s\"", f->tmp);
        (void) ngx_http_ingest_spool_close(f, 0);
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* a batch is one line: its JSON escapes every control character */

ngx_int_t
ngx_http_ingest_spool_append(ngx_http_ingest_spool_file_t *f,
    ngx_str_t *batch)
{
    ssize_t       n;
    struct iovec  iov[2];

    iov[0].iov_base = batch->data;
    iov[0].iov_len = batch->len;
    iov[1].iov_base = "\n";
    iov[1].iov_len = 1;

    n = writev(f->fd, iov, 2);

    if (n != (ssize_t) (batch->len + 1)) {
        ngx_log_error(NGX_LOG_ERR, f->log, ngx_errno,
                      "ingest cannot write spool file \"%s\"", f->tmp);
        return NGX_ERROR;
    }

    f->batches++;

    return NGX_OK;
}


ngx_int_t
ngx_http_ingest_spool_close(ngx_http_ingest_spool_file_t *f,
    ngx_uint_t commit)
{
    int      dfd;
    u_char  *slash;

    if (f->fd == -1) {
        return NGX_ERROR;
    }

    if (commit && fsync(f->fd) == -1) {
        ngx_log_error(NGX_LOG_ERR, f->log, ngx_errno,
                      "ingest cannot write spool file \"%s\"", f->tmp);
        commit = 0;
    }

    (void) close(f->fd);
    f->fd = -1;

    if (commit && rename((char *) f->tmp, (char *) f->name) == -1) {
        ngx_log_error(NGX_LOG_ERR, f->log, ngx_errno,
                      "ingest cannot rename spool file \"%s\"", f->tmp);
        commit = 0;
    }

    if (!commit) {
        (void) unlink((char *) f->tmp);
        return NGX_ERROR;
    }

    /* the new name must survive a crash of the machine too */

    slash = (u_char *) strrchr((char *) f->tmp, '/');
    *slash = '\0';

    dfd = open((char *) f->tmp, O_RDONLY | O_DIRECTORY);
    if (dfd != -1) {
        (void) fsync(dfd);
        (void) close(dfd);
    }

    *slash = '/';

    ngx_http_ingest_stat_add(spool_files, 1);

    ngx_log_error(NGX_LOG_INFO, f->log, 0,
                  "ingest spooled \"%s\" (%ui batches)", f->name, f->batches);

    return NGX_OK;
}


/* "<producer>~<list>~<seq>.batch" at p, at most 220 bytes; the end */

u_char *
ngx_http_ingest_spool_name(u_char *p, const char *producer, ngx_str_t *list,
    uint64_t seq)
{
    u_char      *start, hash[16];
    ngx_md5_t    md5;
    ngx_uint_t   i;
    size_t       len[2];
    u_char      *part[2];

    part[0] = (u_char *) producer;
    len[0] = ngx_strlen(producer);
    part[1] = list->data;
    len[1] = list->len;

    for (i = 0; i < 2; i++) {
        start = p;

        if (len[i] * 3 <= NGX_HTTP_INGEST_SPOOL_PART) {
            p = ngx_http_ingest_spool_encode(p, part[i], len[i]);
        }

        if (p - start == 0 || p - start > NGX_HTTP_INGEST_SPOOL_PART) {
            /* too long (or empty): "#" and its hash, which no encoding is */
            ngx_md5_init(&md5);
            ngx_md5_update(&md5, part[i], len[i]);
            ngx_md5_final(hash, &md5);

            p = start;
            *p++ = '#';
            p = ngx_hex_dump(p, hash, sizeof(hash));
        }

        *p++ = '~';
    }

    return ngx_sprintf(p - 1, "~%020uL.batch", seq);
}


static u_char *
ngx_http_ingest_spool_encode(u_char *p, u_char *s, size_t len)
{
    size_t         i;
    static u_char  hex[] = "0123456789ABCDEF";

    for (i = 0; i < len; i++) {
        if ((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z')
            || (s[i] >= '0' && s[i] <= '9') || s[i] == '-' || s[i] == '_'
            || (s[i] == '.' && i > 0))
        {
            *p++ = s[i];

        } else {
            *p++ = '%';
            *p++ = hex[s[i] >> 4];
            *p++ = hex[s[i] & 0xf];
        }
    }

    return p;
}


ngx_int_t
ngx_http_ingest_spool_init(ngx_cycle_t *cycle,
    ngx_http_ingest_main_conf_t *imcf, ngx_http_ingest_transport_t *t)
{
    ngx_http_ingest_spool_t  *sp;

    if (ngx_process == NGX_PROCESS_WORKER && ngx_worker != 0) {
        return NGX_OK;
    }

    sp = ngx_pcalloc(cycle->pool, sizeof(ngx_http_ingest_spool_t));
    if (sp == NULL) {
        return NGX_ERROR;
    }

#if (NGX_THREADS)
    sp->threads = imcf->spool_threads;

    sp->task = ngx_thread_task_alloc(cycle->pool,
                                     sizeof(ngx_http_ingest_spool_work_t));
    if (sp->task == NULL) {
        return NGX_ERROR;
    }

    sp->work = sp->task->ctx;

    sp->task->handler = ngx_http_ingest_spool_work;
    sp->task->event.handler = ngx_http_ingest_spool_worked;
    sp->task->event.data = sp;
    sp->task->event.log = cycle->log;
#else
    sp->work = ngx_pcalloc(cycle->pool,
                           sizeof(ngx_http_ingest_spool_work_t));
    if (sp->work == NULL) {
        return NGX_ERROR;
    }
#endif

    sp->dir = imcf->spool->name;
    sp->transport = t;
    sp->log = cycle->log;

    sp->work->dir = sp->dir;
    sp->work->log = cycle->log;

    sp->timer.handler = ngx_http_ingest_spool_handler;
    sp->timer.data = t->timer_data;
    sp->timer.log = sp->log;
    sp->timer.cancelable = 1;

    sp->channel.delivered = ngx_http_ingest_spool_delivered;
    sp->channel.refused = ngx_http_ingest_spool_refused;
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

    /*
     * The transport is closed, and nginx's thread pools are gone (they
     * leave first and finish what they run): what was on its way stays
     * in its file.
     */

    if (sp->timer.timer_set) {
        ngx_del_timer(&sp->timer);
    }

    /* delivered but not handled: the file goes again, a copy skipped */
    (void) ngx_http_ingest_channel_cancel(&sp->channel);

    ngx_http_ingest_spool_release(sp->work);

    ngx_http_ingest_spool = NULL;
}


static void
ngx_http_ingest_spool_release(ngx_http_ingest_spool_work_t *w)
{
    free(w->batches);
    free(w->data);

    w->batches = NULL;
    w->data = NULL;
    w->nbatches = 0;
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

    if (sp->busy || sp->channel.handed || sp->stopped
        || sp->transport->closing)
    {
        return;
    }

    ngx_http_ingest_spool_post(sp, NGX_HTTP_INGEST_SPOOL_KEEP);
}


/* the work on its way: what becomes of the file the replay had, a scan */

static void
ngx_http_ingest_spool_post(ngx_http_ingest_spool_t *sp,
    ngx_http_ingest_spool_finish_e finish)
{
    ngx_http_ingest_spool_work_t  *w = sp->work;

    w->finish = finish;
    w->scan = !sp->stopped && !sp->transport->closing;

    sp->busy = 1;

#if (NGX_THREADS)

    if (ngx_thread_task_post(sp->threads, sp->task) == NGX_OK) {
        return;
    }

    /* the pool's queue is full: again at the next scan */

    sp->busy = 0;

    if (!sp->timer.timer_set && !sp->stopped) {
        ngx_add_timer(&sp->timer, NGX_HTTP_INGEST_SPOOL_PERIOD);
    }

#else

    ngx_http_ingest_spool_work(w, sp->log);

    {
        ngx_event_t  ev;

        ngx_memzero(&ev, sizeof(ngx_event_t));
        ev.data = sp;
        ngx_http_ingest_spool_worked(&ev);
    }

#endif
}


/*
 * In a thread: no nginx event, timer, pool or log here; what the loop
 * must say is left in w.
 */

static void
ngx_http_ingest_spool_work(void *data, ngx_log_t *log)
{
    ngx_http_ingest_spool_work_t  *w = data;

    DIR            *d;
    u_char          path[NGX_MAX_PATH], aside[NGX_MAX_PATH], *why;
    size_t          len;
    ngx_uint_t      tries;
    struct dirent  *de;

    w->finish_err = 0;
    w->dir_err = 0;
    w->found = 0;
    w->nmalformed = 0;

    if (w->finish != NGX_HTTP_INGEST_SPOOL_KEEP) {
        ngx_snprintf(path, sizeof(path) - 1, "%V/%s%Z", &w->dir, w->done);

        if (w->finish == NGX_HTTP_INGEST_SPOOL_REMOVE) {
            /* ENOENT: an nginx reloading beside this one replayed it too */
            if (unlink((char *) path) == -1 && ngx_errno != NGX_ENOENT) {
                w->finish_err = ngx_errno;
            }

        } else {
            ngx_snprintf(aside, sizeof(aside) - 1, "%s.refused%Z", path);

            if (rename((char *) path, (char *) aside) == -1) {
                w->finish_err = ngx_errno;
            }
        }
    }

    if (!w->scan) {
        return;
    }

    /* a malformed file is moved aside and the next one read at once */

    for (tries = 0; tries <= NGX_HTTP_INGEST_SPOOL_ASIDE; tries++) {

        ngx_snprintf(path, sizeof(path) - 1, "%V%Z", &w->dir);

        d = opendir((char *) path);
        if (d == NULL) {
            w->dir_err = ngx_errno;
            return;
        }

        w->files = 0;
        w->aside = 0;
        w->name[0] = '\0';

        while ((de = readdir(d)) != NULL) {
            len = ngx_strlen(de->d_name);

            if (de->d_name[0] == '.' || len >= NGX_HTTP_INGEST_SPOOL_NAME) {
                continue;
            }

            if ((len > 10 && ngx_strcmp(de->d_name + len - 10, ".malformed")
                             == 0)
                || (len > 8 && ngx_strcmp(de->d_name + len - 8, ".refused")
                               == 0))
            {
                w->aside++;
                continue;
            }

            if (len <= 6 || ngx_strcmp(de->d_name + len - 6, ".batch") != 0)
            {
                continue;
            }

            w->files++;

            if (ngx_http_ingest_spool_skipped(w, (u_char *) de->d_name)) {
                continue;
            }

            if (w->name[0] == '\0'
                || ngx_strcmp(de->d_name, w->name) < 0)
            {
                ngx_cpystrn(w->name, (u_char *) de->d_name, len + 1);
            }
        }

        (void) closedir(d);

        if (w->name[0] == '\0') {
            return;
        }

        ngx_snprintf(path, sizeof(path) - 1, "%V/%s%Z", &w->dir, w->name);

        if (w->nmalformed < NGX_HTTP_INGEST_SPOOL_ASIDE) {
            why = w->why[w->nmalformed];

        } else {
            /* the loop hears of these at the next scan */
            return;
        }

        switch (ngx_http_ingest_spool_read(w, path, why)) {

        case NGX_OK:
            w->found = 1;
            return;

        case NGX_AGAIN:
            /* gone meanwhile (the other nginx of a reload): scan again */
            continue;

        default: /* NGX_DECLINED */
            break;
        }

        ngx_cpystrn(w->malformed[w->nmalformed], w->name,
                    NGX_HTTP_INGEST_SPOOL_NAME);
        ngx_snprintf(aside, sizeof(aside) - 1, "%s.malformed%Z", path);

        w->aside_err[w->nmalformed] =
            (rename((char *) path, (char *) aside) == -1) ? ngx_errno : 0;

        w->nmalformed++;

        if (w->aside_err[w->nmalformed - 1]) {
            /* it would come first again: the loop passes over it */
            return;
        }
    }
}


static ngx_uint_t
ngx_http_ingest_spool_skipped(ngx_http_ingest_spool_work_t *w, u_char *name)
{
    ngx_uint_t  i;

    for (i = 0; i < w->nskip; i++) {
        if (ngx_strcmp(w->skip[i], name) == 0) {
            return 1;
        }
    }

    return 0;
}


/* "<what><the error's text>" as a C string (strerror is not thread-safe) */

static void
ngx_http_ingest_spool_why(u_char *why, const char *what, ngx_err_t err)
{
    u_char  *p, *last;

    last = why + NGX_HTTP_INGEST_SPOOL_WHY - 1;

    p = ngx_cpystrn(why, (u_char *) what, NGX_HTTP_INGEST_SPOOL_WHY);
    p = ngx_strerror(err, p, last - p);
    *p = '\0';
}


/*
 * The file at path, read whole into w->data and checked: a list's name,
 * then batches the consumer can read, a line each.  NGX_DECLINED: not
 * that (why says what, as a C string); NGX_AGAIN: it is gone.
 */

static ngx_int_t
ngx_http_ingest_spool_read(ngx_http_ingest_spool_work_t *w, u_char *path,
    u_char *why)
{
    int                  fd;
    u_char              *data, *p, *last, *nl, *c;
    ssize_t              n;
    ngx_str_t           *batches;
    ngx_err_t            err;
    ngx_uint_t           nbatches, i;
    struct stat          st;

    /* O_NONBLOCK: a FIFO put there must not hold the thread */

    fd = open((char *) path, O_RDONLY | O_NONBLOCK | O_NOFOLLOW);

    if (fd == -1) {
        err = ngx_errno;

        if (err == NGX_ENOENT) {
            return NGX_AGAIN;
        }

        ngx_http_ingest_spool_why(why, "cannot be opened: ", err);
        return NGX_DECLINED;
    }

    if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
        (void) close(fd);
        ngx_cpystrn(why, (u_char *) "not a regular file",
                    NGX_HTTP_INGEST_SPOOL_WHY);
        return NGX_DECLINED;
    }

    if (st.st_size > NGX_HTTP_INGEST_SPOOL_MAX_FILE) {
        (void) close(fd);
        ngx_snprintf(why, NGX_HTTP_INGEST_SPOOL_WHY - 1,
                     "%O bytes, more than a worker leaves%Z", st.st_size);
        return NGX_DECLINED;
    }

    data = malloc(st.st_size + 1);
    if (data == NULL) {
        (void) close(fd);
        ngx_cpystrn(why, (u_char *) "no memory to read it",
                    NGX_HTTP_INGEST_SPOOL_WHY);
        return NGX_DECLINED;
    }

    n = read(fd, data, st.st_size);
    err = ngx_errno;
    (void) close(fd);

    if (n != st.st_size) {
        free(data);

        if (n == -1) {
            ngx_http_ingest_spool_why(why, "cannot be read: ", err);

        } else {
            ngx_cpystrn(why, (u_char *) "cannot be read: short read",
                        NGX_HTTP_INGEST_SPOOL_WHY);
        }

        return NGX_DECLINED;
    }

    last = data + n;
    nl = ngx_strlchr(data, last, '\n');

    if (nl == NULL || nl == data || nl - data > NGX_HTTP_INGEST_MAX_LIST) {
        free(data);
        ngx_cpystrn(why, (u_char *) "no Redis list on its first line",
                    NGX_HTTP_INGEST_SPOOL_WHY);
        return NGX_DECLINED;
    }

    for (c = data; c < nl; c++) {
        if (*c <= ' ' || *c >= 0x7f) {
            free(data);
            ngx_cpystrn(why, (u_char *) "its first line is not a list's name",
                        NGX_HTTP_INGEST_SPOOL_WHY);
            return NGX_DECLINED;
        }
    }

    /* the batches: one a line (the last line's newline may be missing) */

    nbatches = 0;

    for (p = nl + 1; p < last; p = c + 1) {
        c = ngx_strlchr(p, last, '\n');
        c = (c == NULL) ? last : c;
        nbatches++;
    }

    batches = (nbatches == 0) ? NULL : malloc(nbatches * sizeof(ngx_str_t));

    if (batches == NULL) {
        free(data);
        ngx_cpystrn(why, (u_char *) (nbatches ? "no memory to read it"
                                              : "no batch in it"),
                    NGX_HTTP_INGEST_SPOOL_WHY);
        return NGX_DECLINED;
    }

    /*
     * A file cut short or damaged does not go to Redis.  Whether a whole
     * batch is one the store takes is the consumer's to say (it keeps
     * one it refuses in a dead-letter list).
     */

    for (i = 0, p = nl + 1; p < last; i++, p = c + 1) {
        c = ngx_strlchr(p, last, '\n');
        c = (c == NULL) ? last : c;

        batches[i].data = p;
        batches[i].len = c - p;

        if (!ngx_http_ingest_spool_whole(p, c)) {
            free(batches);
            free(data);
            ngx_snprintf(why, NGX_HTTP_INGEST_SPOOL_WHY - 1,
                         "line %ui is not a whole batch%Z", i + 2);
            return NGX_DECLINED;
        }
    }

    w->data = data;
    w->list.data = data;
    w->list.len = nl - data;
    w->batches = batches;
    w->nbatches = nbatches;

    return NGX_OK;
}


/*
 * A batch's line is one whole JSON object of the wire format: it starts
 * with {"v":, and its braces, brackets and strings close exactly at its
 * last byte, with no control character (the encoder escapes them).
 */

static ngx_uint_t
ngx_http_ingest_spool_whole(u_char *p, u_char *last)
{
    ngx_uint_t  depth, string;

    if (last - p < 6 || ngx_strncmp(p, "{\"v\":", 5) != 0) {
        return 0;
    }

    depth = 0;
    string = 0;

    for ( /* void */ ; p < last; p++) {

        if (*p < 0x20) {
            return 0;
        }

        if (string) {
            if (*p == '\\') {
                if (++p == last) {
                    return 0;
                }

            } else if (*p == '"') {
                string = 0;
            }

            continue;
        }

        switch (*p) {

        case '"':
            string = 1;
            break;

        case '{':
        case '[':
            depth++;
            break;

        case '}':
        case ']':
            if (depth == 0) {
                return 0;
            }

            if (--depth == 0) {
                return p + 1 == last;
            }

            break;
        }
    }

    return 0;
}


/* back on the loop: say what the thread did, hand its file over */

static void
ngx_http_ingest_spool_worked(ngx_event_t *ev)
{
    ngx_http_ingest_spool_t  *sp = ev->data;

    ngx_uint_t                     i;
    ngx_http_ingest_spool_work_t  *w;

    if (sp != ngx_http_ingest_spool) {
        /* the worker is leaving */
        return;
    }

    w = sp->work;
    sp->busy = 0;

    if (w->finish_err) {
        ngx_log_error(NGX_LOG_ALERT, sp->log, w->finish_err,
                      w->finish == NGX_HTTP_INGEST_SPOOL_REMOVE
                      ? "ingest cannot remove replayed spool file "
                        "\"%V/%s\"; passed over from now on"
                      : "ingest cannot move aside refused spool file "
                        "\"%V/%s\"; passed over from now on",
                      &sp->dir, w->done);

        ngx_http_ingest_spool_skip(sp, w->done);

    } else if (w->finish == NGX_HTTP_INGEST_SPOOL_REMOVE) {
        ngx_log_error(NGX_LOG_NOTICE, sp->log, 0,
                      "ingest replayed spool file \"%s\" (%ui batches)",
                      w->done, w->done_batches);
    }

    for (i = 0; i < w->nmalformed; i++) {
        if (w->aside_err[i]) {
            ngx_log_error(NGX_LOG_ALERT, sp->log, w->aside_err[i],
                          "ingest spool file \"%V/%s\" is malformed (%s) "
                          "and cannot be moved aside; passed over from "
                          "now on", &sp->dir, w->malformed[i], w->why[i]);

            ngx_http_ingest_spool_skip(sp, w->malformed[i]);
            continue;
        }

        ngx_log_error(NGX_LOG_ERR, sp->log, 0,
                      "ingest spool file \"%V/%s\" is malformed (%s): "
                      "moved aside as \"%s.malformed\"", &sp->dir,
                      w->malformed[i], w->why[i], w->malformed[i]);
    }

    if (w->dir_err) {
        /* once, not at every scan */
        if (!sp->error) {
            sp->error = 1;
            ngx_log_error(NGX_LOG_ERR, sp->log, w->dir_err,
                          "ingest cannot open spool \"%V\"", &sp->dir);
        }

    } else if (w->scan) {
        sp->error = 0;
        ngx_http_ingest_metrics_spool(w->files, w->aside);
    }

    if (!w->found) {
        if (!sp->timer.timer_set && !sp->stopped) {
            ngx_add_timer(&sp->timer, w->nmalformed
                                      ? 1 : NGX_HTTP_INGEST_SPOOL_PERIOD);
        }

        return;
    }

    if (sp->stopped || sp->transport->closing) {
        /* the next nginx's replay sends it */
        ngx_http_ingest_spool_release(w);
        return;
    }

    ngx_memcpy(w->done, w->name, NGX_HTTP_INGEST_SPOOL_NAME);

    sp->next = 0;
    sp->channel.name = w->list;
    sp->channel.batch = w->batches[0];

    sp->transport->ops->send(sp->transport, &sp->channel);
}


/* Redis has a batch of the file (from a posted event): the next one */

static void
ngx_http_ingest_spool_delivered(ngx_http_ingest_channel_t *ch)
{
    ngx_http_ingest_spool_t       *sp = ch->data;
    ngx_http_ingest_spool_work_t  *w = sp->work;

    if (++sp->next < w->nbatches) {

        if (sp->stopped || sp->transport->closing) {
            /* the file stays whole; the consumer skips what it has */
            ngx_http_ingest_spool_release(w);
            return;
        }

        sp->channel.batch = w->batches[sp->next];
        sp->transport->ops->send(sp->transport, &sp->channel);
        return;
    }

    w->done_batches = w->nbatches;
    ngx_http_ingest_spool_release(w);

    /* even when stopped: a copy left behind would go again */
    ngx_http_ingest_spool_post(sp, NGX_HTTP_INGEST_SPOOL_REMOVE);
}


/* Redis refused a batch for what it is: the file goes aside */

static void
ngx_http_ingest_spool_refused(ngx_http_ingest_channel_t *ch)
{
    ngx_http_ingest_spool_t  *sp = ch->data;

    ngx_log_error(NGX_LOG_ERR, sp->log, 0,
                  "ingest redis refused batch %ui of %ui of spool file "
                  "\"%s\" for \"%V\": %*s; moved aside as \"%s.refused\"",
                  sp->next + 1, sp->work->nbatches, sp->work->done,
                  &ch->name, ngx_http_ingest_push_error(&ch->push),
                  sp->work->done);

    ngx_http_ingest_spool_release(sp->work);

    ngx_http_ingest_spool_post(sp, NGX_HTTP_INGEST_SPOOL_REFUSED);
}


/*
 * A file that stays where it is though it should not (its directory is
 * read-only, say): the replay passes over it for this worker's life, so
 * that it is neither sent again and again nor in the way of the others.
 */

static void
ngx_http_ingest_spool_skip(ngx_http_ingest_spool_t *sp, u_char *name)
{
    ngx_http_ingest_spool_work_t  *w = sp->work;

    if (w->nskip == NGX_HTTP_INGEST_SPOOL_SKIP) {
        ngx_log_error(NGX_LOG_ALERT, sp->log, 0,
                      "ingest spool \"%V\": more than %d files cannot be "
                      "moved; the replay stops", &sp->dir,
                      NGX_HTTP_INGEST_SPOOL_SKIP);
        sp->stopped = 1;
        return;
    }

    ngx_cpystrn(w->skip[w->nskip++], name, NGX_HTTP_INGEST_SPOOL_NAME);
}
