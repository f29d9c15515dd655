
/*
 * Copyright (C) ngx_ingest developers
 * SPDX-License-Identifier: BSD-2-Clause
 *
 * The spool's replay (the files are described in ngx_http_ingest_spool.c).
 * Worker 0 of the next nginx hands a file's batches, one at a time and
 * in order, to the transport on a channel of its own, and removes the
 * file once Redis has them all.  A replay cut short sends the file again
 * whole: the consumer skips what it has.
 *
 * - A file is read 8 MB at a time, in whole lines, however big it is.
 * - One scan of the directory yields its 64 oldest names, replayed in
 *   turn, so a spool of many files is not read once per file.
 * - A file that is not batches (cut short, damaged, not a regular file,
 *   unreadable) is renamed "<name>.malformed", and one whose batch Redis
 *   refuses for what it is (its list holds another type, say)
 *   "<name>.refused": logged once, kept for the operator, and the files
 *   behind it go on.  A refusal about the server's state (OOM, LOADING
 *   ...) refuses every file alike: the transport sends the same batch
 *   again after its backoff.
 * - A file that can be neither removed nor renamed is passed over for a
 *   minute, with an alert, so that it is neither sent again and again nor
 *   in the way of the others; past 64 such files (a read-only directory)
 *   the replay pauses for that minute instead, so a file goes at most
 *   once a minute.
 *
 * Scans, reads, checks, renames and unlinks run in nginx's thread pool
 * "default"; the event loop only hands the batches over.  Each scan
 * leaves its counts in the shared zone, which status reports.
 */


#include "ngx_http_ingest_replay.h"
#include "ngx_http_ingest_metrics.h"

#include <dirent.h>


#define NGX_HTTP_INGEST_REPLAY_PERIOD  1000        /* ms between scans */

#define NGX_HTTP_INGEST_REPLAY_NAME    256         /* NAME_MAX + 1 */

/* read a file this much at a time (a batch is at most 1 MB) */
#define NGX_HTTP_INGEST_REPLAY_CHUNK   (8 * 1024 * 1024)

/* names a scan yields, oldest first */
#define NGX_HTTP_INGEST_REPLAY_NAMES   64

/* malformed files moved aside in one run, before the loop hears */
#define NGX_HTTP_INGEST_REPLAY_ASIDE   8

/*
 * Files that stay where they are, passed over for a while; past that
 * many (a read-only directory), the whole replay pauses as long.
 */
#define NGX_HTTP_INGEST_REPLAY_SKIP    64
#define NGX_HTTP_INGEST_REPLAY_SKIP_S  60

#define NGX_HTTP_INGEST_REPLAY_WHY     128


typedef enum {
    NGX_HTTP_INGEST_REPLAY_KEEP = 0,
    NGX_HTTP_INGEST_REPLAY_REMOVE,             /* Redis has it all */
    NGX_HTTP_INGEST_REPLAY_REFUSED             /* Redis will not take it */
} ngx_http_ingest_replay_finish_e;


typedef struct {
    u_char                       name[NGX_HTTP_INGEST_REPLAY_NAME];
    time_t                       until;
} ngx_http_ingest_replay_skip_t;


/*
 * One run of the thread's work: first what becomes of the file the
 * replay has (finish), then its next piece (more) or the next file
 * (scan).  The loop writes "in" before a run, the thread writes "out"
 * and reads the rest; they never touch it at the same time.
 */

typedef struct {
    ngx_str_t                    dir;

    /* in */
    ngx_http_ingest_replay_finish_e  finish;
    ngx_uint_t                   more;
    ngx_uint_t                   scan;

    /* the thread's own, kept from run to run */
    u_char                       names[NGX_HTTP_INGEST_REPLAY_NAMES]
                                      [NGX_HTTP_INGEST_REPLAY_NAME];
    ngx_uint_t                   nnames;
    ngx_uint_t                   cursor;
    ngx_http_ingest_replay_skip_t  skip[NGX_HTTP_INGEST_REPLAY_SKIP];
    time_t                       paused_until;

    /* out: what became of the file finished */
    u_char                       done[NGX_HTTP_INGEST_REPLAY_NAME];
    ngx_err_t                    finish_err;   /* of unlink or rename */
    ngx_uint_t                   paused;       /* the replay, just now */

    /* out: the directory, when scanned */
    ngx_uint_t                   scanned;
    ngx_err_t                    dir_err;
    ngx_uint_t                   files;        /* *.batch */
    ngx_uint_t                   aside;        /* *.malformed, *.refused */

    /* out: a piece of a file, its batches a line each */
    ngx_uint_t                   found;
    ngx_uint_t                   first;        /* the file's first piece */
    ngx_uint_t                   again;        /* look again at once */
    u_char                       name[NGX_HTTP_INGEST_REPLAY_NAME];
    off_t                        off;          /* of its next piece */
    ngx_uint_t                   eof;
    ngx_uint_t                   line;         /* of the next batch */
    u_char                       list_name[NGX_HTTP_INGEST_MAX_QUEUE];
    ngx_str_t                    list;
    u_char                      *data;         /* malloc'd */
    ngx_str_t                   *batches;      /* malloc'd, in data */
    ngx_uint_t                   nbatches;

    /* out: files moved aside (or not) in this run */
    ngx_uint_t                   nmalformed;
    u_char                       malformed[NGX_HTTP_INGEST_REPLAY_ASIDE]
                                          [NGX_HTTP_INGEST_REPLAY_NAME];
    u_char                       why[NGX_HTTP_INGEST_REPLAY_ASIDE]
                                    [NGX_HTTP_INGEST_REPLAY_WHY];
    ngx_err_t                    aside_err[NGX_HTTP_INGEST_REPLAY_ASIDE];
} ngx_http_ingest_replay_work_t;


typedef struct {
    ngx_str_t                    dir;
    ngx_http_ingest_transport_t *transport;
    ngx_log_t                   *log;
    ngx_event_t                  timer;
    ngx_http_ingest_channel_t    channel;      /* the batch on its way */
    ngx_http_ingest_replay_work_t  *work;
    ngx_uint_t                   next;         /* of work->batches */
    ngx_uint_t                   sent;         /* of the file, so far */
#if (NGX_THREADS)
    ngx_thread_pool_t           *threads;
    ngx_thread_task_t           *task;
#endif
    unsigned                     busy:1;       /* the work is running */
    unsigned                     error:1;      /* logged once */
    unsigned                     stopped:1;
} ngx_http_ingest_replay_t;


static ngx_http_ingest_replay_t  *ngx_http_ingest_replay;


static void ngx_http_ingest_replay_release(ngx_http_ingest_replay_work_t *w);
static void ngx_http_ingest_replay_handler(ngx_event_t *ev);
static void ngx_http_ingest_replay_post(ngx_http_ingest_replay_t *rp,
    ngx_http_ingest_replay_finish_e finish, ngx_uint_t more);
static void ngx_http_ingest_replay_work(void *data, ngx_log_t *log);
static void ngx_http_ingest_replay_finish(ngx_http_ingest_replay_work_t *w);
static void ngx_http_ingest_replay_scan(ngx_http_ingest_replay_work_t *w);
static ngx_int_t ngx_http_ingest_replay_read(ngx_http_ingest_replay_work_t *w,
    u_char *why);
static ngx_uint_t ngx_http_ingest_replay_set_aside(
    ngx_http_ingest_replay_work_t *w, u_char *why);
static ngx_uint_t ngx_http_ingest_replay_whole(u_char *p, u_char *last);
static ngx_uint_t ngx_http_ingest_replay_skipped(
    ngx_http_ingest_replay_work_t *w, u_char *name);
static void ngx_http_ingest_replay_skip(ngx_http_ingest_replay_work_t *w,
    u_char *name);
static void ngx_http_ingest_replay_why(u_char *why, const char *what,
    ngx_err_t err);
static u_char *ngx_http_ingest_replay_printable(u_char *buf, u_char *name);
static void ngx_http_ingest_replay_worked(ngx_event_t *ev);
static void ngx_http_ingest_replay_send(ngx_http_ingest_replay_t *rp);
static void ngx_http_ingest_replay_delivered(ngx_http_ingest_channel_t *ch);
static void ngx_http_ingest_replay_refused(ngx_http_ingest_channel_t *ch);


ngx_int_t
ngx_http_ingest_replay_init(ngx_cycle_t *cycle,
    ngx_http_ingest_main_conf_t *imcf, ngx_http_ingest_transport_t *t)
{
    ngx_http_ingest_replay_t  *rp;

    if (ngx_process == NGX_PROCESS_WORKER && ngx_worker != 0) {
        return NGX_OK;
    }

    rp = ngx_pcalloc(cycle->pool, sizeof(ngx_http_ingest_replay_t));
    if (rp == NULL) {
        return NGX_ERROR;
    }

#if (NGX_THREADS)
    rp->threads = imcf->spool_threads;

    rp->task = ngx_thread_task_alloc(cycle->pool,
                                     sizeof(ngx_http_ingest_replay_work_t));
    if (rp->task == NULL) {
        return NGX_ERROR;
    }

    rp->work = rp->task->ctx;

    rp->task->handler = ngx_http_ingest_replay_work;
    rp->task->event.handler = ngx_http_ingest_replay_worked;
    rp->task->event.data = rp;
    rp->task->event.log = cycle->log;
#else
    rp->work = ngx_pcalloc(cycle->pool,
                           sizeof(ngx_http_ingest_replay_work_t));
    if (rp->work == NULL) {
        return NGX_ERROR;
    }
#endif

    rp->dir = imcf->spool->name;
    rp->transport = t;
    rp->log = cycle->log;

    rp->work->dir = rp->dir;

    rp->timer.handler = ngx_http_ingest_replay_handler;
    rp->timer.data = t->timer_data;
    rp->timer.log = rp->log;
    rp->timer.cancelable = 1;

    rp->channel.delivered = ngx_http_ingest_replay_delivered;
    rp->channel.refused = ngx_http_ingest_replay_refused;
    rp->channel.data = rp;

    ngx_http_ingest_channel_init(t, &rp->channel);

    ngx_http_ingest_replay = rp;

    ngx_add_timer(&rp->timer, 100);

    return NGX_OK;
}


void
ngx_http_ingest_replay_exit(void)
{
    ngx_http_ingest_replay_t  *rp;

    rp = ngx_http_ingest_replay;

    if (rp == NULL) {
        return;
    }

    /*
     * The transport is closed, and nginx's thread pools are gone (they
     * leave first and finish what they run): what was on its way stays
     * in its file.
     */

    if (rp->timer.timer_set) {
        ngx_del_timer(&rp->timer);
    }

    /* delivered but not handled: the file goes again, a copy skipped */
    (void) ngx_http_ingest_channel_cancel(&rp->channel);

    ngx_http_ingest_replay_release(rp->work);

    ngx_http_ingest_replay = NULL;
}


void
ngx_http_ingest_replay_stop(void)
{
    ngx_http_ingest_replay_t  *rp;

    rp = ngx_http_ingest_replay;

    if (rp == NULL) {
        return;
    }

    rp->stopped = 1;

    if (rp->timer.timer_set) {
        ngx_del_timer(&rp->timer);
    }
}


static void
ngx_http_ingest_replay_release(ngx_http_ingest_replay_work_t *w)
{
    free(w->batches);
    free(w->data);

    w->batches = NULL;
    w->data = NULL;
    w->nbatches = 0;
}


static void
ngx_http_ingest_replay_handler(ngx_event_t *ev)
{
    ngx_http_ingest_replay_t  *rp;

    rp = ngx_http_ingest_replay;

    if (rp->busy || rp->channel.handed || rp->stopped
        || rp->transport->closing)
    {
        return;
    }

    ngx_http_ingest_replay_post(rp, NGX_HTTP_INGEST_REPLAY_KEEP, 0);
}


/* the thread's run on its way */

static void
ngx_http_ingest_replay_post(ngx_http_ingest_replay_t *rp,
    ngx_http_ingest_replay_finish_e finish, ngx_uint_t more)
{
    ngx_http_ingest_replay_work_t  *w = rp->work;

    w->finish = finish;
    w->more = more;
    w->scan = !rp->stopped && !rp->transport->closing;

    rp->busy = 1;

#if (NGX_THREADS)

    if (ngx_thread_task_post(rp->threads, rp->task) == NGX_OK) {
        return;
    }

    /*
     * The pool's queue is full: the same again at the next scan (what
     * was to be finished is finished then, or the file sent again).
     */

    rp->busy = 0;

    if (!rp->timer.timer_set && !rp->stopped) {
        ngx_add_timer(&rp->timer, NGX_HTTP_INGEST_REPLAY_PERIOD);
    }

#else

    ngx_http_ingest_replay_work(w, rp->log);

    {
        ngx_event_t  ev;

        ngx_memzero(&ev, sizeof(ngx_event_t));
        ev.data = rp;
        ngx_http_ingest_replay_worked(&ev);
    }

#endif
}


/*
 * In a thread: no nginx event, timer, pool or log here; what the loop
 * must say is left in w.
 */

static void
ngx_http_ingest_replay_work(void *data, ngx_log_t *log)
{
    ngx_http_ingest_replay_work_t  *w = data;

    u_char      why[NGX_HTTP_INGEST_REPLAY_WHY];
    ngx_int_t   rc;
    ngx_uint_t  tries;

    w->finish_err = 0;
    w->paused = 0;
    w->scanned = 0;
    w->dir_err = 0;
    w->found = 0;
    w->again = 0;
    w->nmalformed = 0;

    if (w->finish != NGX_HTTP_INGEST_REPLAY_KEEP) {
        ngx_http_ingest_replay_finish(w);
    }

    if (!w->scan || time(NULL) < w->paused_until) {
        return;
    }

    if (w->more) {
        rc = ngx_http_ingest_replay_read(w, why);

        if (rc == NGX_OK) {
            w->found = 1;
            return;
        }

        if (rc == NGX_DECLINED
            && !ngx_http_ingest_replay_set_aside(w, why))
        {
            return;
        }

        /* gone, or moved aside: the next file */
    }

    for (tries = 0; tries < 2 * NGX_HTTP_INGEST_REPLAY_NAMES; tries++) {

        if (w->cursor == w->nnames) {
            if (w->scanned) {
                /* scanned in this run already: nothing left */
                return;
            }

            ngx_http_ingest_replay_scan(w);

            if (w->dir_err || w->nnames == 0) {
                return;
            }
        }

        ngx_cpystrn(w->name, w->names[w->cursor++],
                    NGX_HTTP_INGEST_REPLAY_NAME);

        w->off = 0;
        w->line = 1;

        rc = ngx_http_ingest_replay_read(w, why);

        if (rc == NGX_OK) {
            w->found = 1;
            return;
        }

        if (rc == NGX_DECLINED
            && !ngx_http_ingest_replay_set_aside(w, why))
        {
            return;
        }
    }

    w->again = 1;
}


/* what becomes of w->name: removed, or moved aside as refused */

static void
ngx_http_ingest_replay_finish(ngx_http_ingest_replay_work_t *w)
{
    u_char  path[NGX_MAX_PATH], aside[NGX_MAX_PATH];

    ngx_cpystrn(w->done, w->name, NGX_HTTP_INGEST_REPLAY_NAME);

    ngx_snprintf(path, sizeof(path) - 1, "%V/%s%Z", &w->dir, w->name);

    if (w->finish == NGX_HTTP_INGEST_REPLAY_REMOVE) {
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

    if (w->finish_err) {
        ngx_http_ingest_replay_skip(w, w->name);
    }
}


/*
 * The directory's oldest names (up to 64, sorted), and its counts.  A
 * file of a producer's list appears whole, and there is one per list
 * and exit, so the oldest names are replayed in order whatever a scan
 * misses of files arriving meanwhile.
 */

static void
ngx_http_ingest_replay_scan(ngx_http_ingest_replay_work_t *w)
{
    DIR            *d;
    u_char          path[NGX_MAX_PATH];
    size_t          len;
    ngx_uint_t      lo, hi, mid;
    struct dirent  *de;

    w->scanned = 1;
    w->nnames = 0;
    w->cursor = 0;
    w->files = 0;
    w->aside = 0;

    ngx_snprintf(path, sizeof(path) - 1, "%V%Z", &w->dir);

    d = opendir((char *) path);
    if (d == NULL) {
        w->dir_err = ngx_errno;
        return;
    }

    while ((de = readdir(d)) != NULL) {
        len = ngx_strlen(de->d_name);

        if (de->d_name[0] == '.' || len >= NGX_HTTP_INGEST_REPLAY_NAME) {
            continue;
        }

        if ((len > 10
             && ngx_strcmp(de->d_name + len - 10, ".malformed") == 0)
            || (len > 8 && ngx_strcmp(de->d_name + len - 8, ".refused") == 0))
        {
            w->aside++;
            continue;
        }

        if (len <= 6 || ngx_strcmp(de->d_name + len - 6, ".batch") != 0) {
            continue;
        }

        w->files++;

        if (ngx_http_ingest_replay_skipped(w, (u_char *) de->d_name)) {
            continue;
        }

        /* where it goes among the oldest so far (binary search) */

        lo = 0;
        hi = w->nnames;

        while (lo < hi) {
            mid = (lo + hi) / 2;

            if (ngx_strcmp(w->names[mid], de->d_name) < 0) {
                lo = mid + 1;

            } else {
                hi = mid;
            }
        }

        if (lo == NGX_HTTP_INGEST_REPLAY_NAMES) {
            continue;
        }

        hi = ngx_min(w->nnames, NGX_HTTP_INGEST_REPLAY_NAMES - 1);

        ngx_memmove(w->names[lo + 1], w->names[lo],
                    (hi - lo) * NGX_HTTP_INGEST_REPLAY_NAME);
        ngx_cpystrn(w->names[lo], (u_char *) de->d_name, len + 1);

        w->nnames = hi + 1;
    }

    (void) closedir(d);
}


/*
 * The next piece of w->name from w->off: whole lines, up to 8 MB, each
 * a batch (the first piece begins with the list's name).  NGX_OK: the
 * batches in w->batches; NGX_DECLINED: not a spool file, or damaged (why
 * says what, as a C string); NGX_AGAIN: it is gone.
 */

static ngx_int_t
ngx_http_ingest_replay_read(ngx_http_ingest_replay_work_t *w, u_char *why)
{
    int          fd;
    u_char       path[NGX_MAX_PATH], *data, *p, *last, *nl, *c;
    size_t       size;
    ssize_t      n;
    ngx_err_t    err;
    ngx_uint_t   nbatches, i;
    struct stat  st;

    ngx_snprintf(path, sizeof(path) - 1, "%V/%s%Z", &w->dir, w->name);

    /* O_NONBLOCK: a FIFO put there must not hold the thread */

    fd = open((char *) path, O_RDONLY | O_NONBLOCK | O_NOFOLLOW);

    if (fd == -1) {
        err = ngx_errno;

        if (err == NGX_ENOENT) {
            return NGX_AGAIN;
        }

        ngx_http_ingest_replay_why(why, "cannot be opened: ", err);
        return NGX_DECLINED;
    }

    if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
        (void) close(fd);
        ngx_cpystrn(why, (u_char *) "not a regular file",
                    NGX_HTTP_INGEST_REPLAY_WHY);
        return NGX_DECLINED;
    }

    if (w->off >= st.st_size) {
        (void) close(fd);

        if (w->off == 0) {
            ngx_cpystrn(why, (u_char *) "empty", NGX_HTTP_INGEST_REPLAY_WHY);
            return NGX_DECLINED;
        }

        /* it ended with the last piece's newline */
        w->eof = 1;
        w->first = 0;
        w->nbatches = 0;
        return NGX_OK;
    }

    size = ngx_min((off_t) NGX_HTTP_INGEST_REPLAY_CHUNK, st.st_size - w->off);

    data = malloc(size);
    if (data == NULL) {
        (void) close(fd);
        ngx_cpystrn(why, (u_char *) "no memory to read it",
                    NGX_HTTP_INGEST_REPLAY_WHY);
        return NGX_DECLINED;
    }

    n = pread(fd, data, size, w->off);
    err = ngx_errno;
    (void) close(fd);

    if (n != (ssize_t) size) {
        free(data);

        if (n == -1) {
            ngx_http_ingest_replay_why(why, "cannot be read: ", err);

        } else {
            ngx_cpystrn(why, (u_char *) "cannot be read: it shrank",
                        NGX_HTTP_INGEST_REPLAY_WHY);
        }

        return NGX_DECLINED;
    }

    w->eof = (w->off + (off_t) n >= st.st_size);
    w->first = (w->off == 0);

    p = data;
    last = data + n;

    if (w->off == 0) {
        nl = ngx_strlchr(data, last, '\n');

        if (nl == NULL || nl == data || nl - data > NGX_HTTP_INGEST_MAX_QUEUE)
        {
            free(data);
            ngx_cpystrn(why, (u_char *) "no Redis list on its first line",
                        NGX_HTTP_INGEST_REPLAY_WHY);
            return NGX_DECLINED;
        }

        for (c = data; c < nl; c++) {
            if (*c <= ' ' || *c >= 0x7f) {
                free(data);
                ngx_cpystrn(why,
                            (u_char *) "its first line is not a list's name",
                            NGX_HTTP_INGEST_REPLAY_WHY);
                return NGX_DECLINED;
            }
        }

        w->list.len = nl - data;
        w->list.data = w->list_name;
        ngx_memcpy(w->list_name, data, w->list.len);

        w->line = 2;
        p = nl + 1;
    }

    /* whole lines: one cut by the piece's end is the next piece's */

    nbatches = 0;

    for (c = p; c < last; c++) {
        nl = ngx_strlchr(c, last, '\n');

        if (nl == NULL) {
            nbatches += w->eof;
            break;
        }

        nbatches++;
        c = nl;
    }

    if (nbatches == 0) {
        free(data);

        if (w->eof && w->off == 0) {
            ngx_cpystrn(why, (u_char *) "no batch in it",
                        NGX_HTTP_INGEST_REPLAY_WHY);

        } else {
            ngx_snprintf(why, NGX_HTTP_INGEST_REPLAY_WHY - 1,
                         "line %ui is longer than a batch can be%Z",
                         w->line);
        }

        return NGX_DECLINED;
    }

    w->batches = malloc(nbatches * sizeof(ngx_str_t));
    if (w->batches == NULL) {
        free(data);
        ngx_cpystrn(why, (u_char *) "no memory to read it",
                    NGX_HTTP_INGEST_REPLAY_WHY);
        return NGX_DECLINED;
    }

    /*
     * A damaged line does not go to Redis.  Whether a whole batch is one
     * the store takes is the consumer's to say (it keeps one it refuses
     * in a dead-letter list).
     */

    for (i = 0; i < nbatches; i++) {
        nl = ngx_strlchr(p, last, '\n');
        nl = (nl == NULL) ? last : nl;

        w->batches[i].data = p;
        w->batches[i].len = nl - p;

        if (!ngx_http_ingest_replay_whole(p, nl)) {
            free(w->batches);
            free(data);
            w->batches = NULL;

            ngx_snprintf(why, NGX_HTTP_INGEST_REPLAY_WHY - 1,
                         "line %ui is not a whole batch%Z", w->line + i);
            return NGX_DECLINED;
        }

        p = nl + 1;
    }

    w->data = data;
    w->nbatches = nbatches;
    w->line += nbatches;
    w->off += (p <= last ? p : last) - data;

    return NGX_OK;
}


/* w->name becomes "<name>.malformed"; 0: enough for this run */

static ngx_uint_t
ngx_http_ingest_replay_set_aside(ngx_http_ingest_replay_work_t *w,
    u_char *why)
{
    u_char      path[NGX_MAX_PATH], aside[NGX_MAX_PATH];
    ngx_uint_t  i;

    i = w->nmalformed++;

    ngx_cpystrn(w->malformed[i], w->name, NGX_HTTP_INGEST_REPLAY_NAME);
    ngx_cpystrn(w->why[i], why, NGX_HTTP_INGEST_REPLAY_WHY);

    ngx_snprintf(path, sizeof(path) - 1, "%V/%s%Z", &w->dir, w->name);
    ngx_snprintf(aside, sizeof(aside) - 1, "%s.malformed%Z", path);

    w->aside_err[i] = 0;

    if (rename((char *) path, (char *) aside) == -1) {
        w->aside_err[i] = ngx_errno;
        ngx_http_ingest_replay_skip(w, w->name);
    }

    if (w->nmalformed == NGX_HTTP_INGEST_REPLAY_ASIDE) {
        w->again = 1;
        return 0;
    }

    return 1;
}


/*
 * A batch's line is one whole JSON object of the wire format: it starts
 * with {"v":, and its braces, brackets and strings close exactly at its
 * last byte, with no control character (the encoder escapes them).
 */

static ngx_uint_t
ngx_http_ingest_replay_whole(u_char *p, u_char *last)
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


static ngx_uint_t
ngx_http_ingest_replay_skipped(ngx_http_ingest_replay_work_t *w,
    u_char *name)
{
    time_t      now;
    ngx_uint_t  i;

    now = time(NULL);

    for (i = 0; i < NGX_HTTP_INGEST_REPLAY_SKIP; i++) {
        if (w->skip[i].until > now
            && ngx_strcmp(w->skip[i].name, name) == 0)
        {
            return 1;
        }
    }

    return 0;
}


/* passed over for a while; when all are taken, the replay pauses */

static void
ngx_http_ingest_replay_skip(ngx_http_ingest_replay_work_t *w, u_char *name)
{
    time_t      now;
    ngx_uint_t  i;

    now = time(NULL);

    for (i = 0; i < NGX_HTTP_INGEST_REPLAY_SKIP; i++) {
        if (w->skip[i].until <= now) {
            ngx_cpystrn(w->skip[i].name, name, NGX_HTTP_INGEST_REPLAY_NAME);
            w->skip[i].until = now + NGX_HTTP_INGEST_REPLAY_SKIP_S;
            return;
        }
    }

    /* not evicting one: it would be sent again at once */

    w->paused_until = now + NGX_HTTP_INGEST_REPLAY_SKIP_S;
    w->paused = 1;
}


/* "<what><the error's text>" as a C string (strerror is not thread-safe) */

static void
ngx_http_ingest_replay_why(u_char *why, const char *what, ngx_err_t err)
{
    u_char  *p, *last;

    last = why + NGX_HTTP_INGEST_REPLAY_WHY - 1;

    p = ngx_cpystrn(why, (u_char *) what, NGX_HTTP_INGEST_REPLAY_WHY);
    p = ngx_strerror(err, p, last - p);
    *p = '\0';
}


/* a name found in the directory, fit for a log line: odd bytes as '?' */

static u_char *
ngx_http_ingest_replay_printable(u_char *buf, u_char *name)
{
    u_char  *p;

    for (p = buf; *name; name++) {
        *p++ = (*name < 0x20 || *name == 0x7f || *name == '"'
                || *name == '\\') ? '?' : *name;
    }

    *p = '\0';

    return buf;
}


/* back on the loop: say what the thread did, hand its batches over */

static void
ngx_http_ingest_replay_worked(ngx_event_t *ev)
{
    ngx_http_ingest_replay_t  *rp = ev->data;

    u_char                          name[NGX_HTTP_INGEST_REPLAY_NAME];
    ngx_uint_t                      i;
    ngx_http_ingest_replay_work_t  *w;

    if (rp != ngx_http_ingest_replay) {
        /* the worker is leaving */
        return;
    }

    w = rp->work;
    rp->busy = 0;

    if (w->finish_err) {
        ngx_log_error(NGX_LOG_ALERT, rp->log, w->finish_err,
                      w->finish == NGX_HTTP_INGEST_REPLAY_REMOVE
                      ? "ingest cannot remove replayed spool file "
                        "\"%V/%s\"; passed over for %d s"
                      : "ingest cannot move aside refused spool file "
                        "\"%V/%s\"; passed over for %d s",
                      &rp->dir,
                      ngx_http_ingest_replay_printable(name, w->done),
                      NGX_HTTP_INGEST_REPLAY_SKIP_S);

    } else if (w->finish == NGX_HTTP_INGEST_REPLAY_REMOVE) {
        ngx_log_error(NGX_LOG_NOTICE, rp->log, 0,
                      "ingest replayed spool file \"%s\" (%ui batches)",
                      ngx_http_ingest_replay_printable(name, w->done),
                      rp->sent);
    }

    for (i = 0; i < w->nmalformed; i++) {
        ngx_http_ingest_replay_printable(name, w->malformed[i]);

        if (w->aside_err[i]) {
            ngx_log_error(NGX_LOG_ALERT, rp->log, w->aside_err[i],
                          "ingest spool file \"%V/%s\" is malformed (%s) "
                          "and cannot be moved aside; passed over for %d s",
                          &rp->dir, name, w->why[i],
                          NGX_HTTP_INGEST_REPLAY_SKIP_S);
            continue;
        }

        ngx_log_error(NGX_LOG_ERR, rp->log, 0,
                      "ingest spool file \"%V/%s\" is malformed (%s): "
                      "moved aside as \"%s.malformed\"", &rp->dir, name,
                      w->why[i], name);
    }

    if (w->paused) {
        ngx_log_error(NGX_LOG_ALERT, rp->log, 0,
                      "ingest spool \"%V\": more than %d files can be "
                      "neither removed nor moved aside; the replay pauses "
                      "for %d s", &rp->dir, NGX_HTTP_INGEST_REPLAY_SKIP,
                      NGX_HTTP_INGEST_REPLAY_SKIP_S);
    }

    if (w->dir_err) {
        /* once, not at every scan */
        if (!rp->error) {
            rp->error = 1;
            ngx_log_error(NGX_LOG_ERR, rp->log, w->dir_err,
                          "ingest cannot open spool \"%V\"", &rp->dir);
        }

    } else if (w->scanned) {
        rp->error = 0;
        ngx_http_ingest_metrics_spool(w->files, w->aside);
    }

    if (!w->found) {
        if (!rp->timer.timer_set && !rp->stopped) {
            ngx_add_timer(&rp->timer, w->again
                                      ? 1 : NGX_HTTP_INGEST_REPLAY_PERIOD);
        }

        return;
    }

    if (rp->stopped || rp->transport->closing) {
        /* the next nginx's replay sends the file, whole */
        ngx_http_ingest_replay_release(w);
        return;
    }

    if (w->first) {
        rp->sent = 0;
    }

    rp->next = 0;
    ngx_http_ingest_replay_send(rp);
}


/* the piece's next batch, or what comes after the piece */

static void
ngx_http_ingest_replay_send(ngx_http_ingest_replay_t *rp)
{
    ngx_http_ingest_replay_work_t  *w = rp->work;

    if (rp->next < w->nbatches) {
        rp->channel.name = w->list;
        /* one at a time: a refusal names the batch the file stops at */
        rp->channel.batches[0] = w->batches[rp->next];
        rp->channel.nbatches = 1;

        rp->transport->ops->send(rp->transport, &rp->channel);
        return;
    }

    ngx_http_ingest_replay_release(w);

    if (!w->eof) {
        /* stopped: the file stays whole, the consumer skips what it has */
        if (!rp->stopped && !rp->transport->closing) {
            ngx_http_ingest_replay_post(rp, NGX_HTTP_INGEST_REPLAY_KEEP, 1);
        }

        return;
    }

    /* even when stopped: a copy left behind would go again */
    ngx_http_ingest_replay_post(rp, NGX_HTTP_INGEST_REPLAY_REMOVE, 0);
}


/* Redis has a batch (from a posted event): the next one */

static void
ngx_http_ingest_replay_delivered(ngx_http_ingest_channel_t *ch)
{
    ngx_http_ingest_replay_t  *rp = ch->data;

    rp->sent++;
    rp->next++;

    if (rp->next < rp->work->nbatches
        && (rp->stopped || rp->transport->closing))
    {
        /* the file stays whole; the consumer skips what it has */
        ngx_http_ingest_replay_release(rp->work);
        return;
    }

    ngx_http_ingest_replay_send(rp);
}


/* Redis refused a batch for what it is: the file goes aside */

static void
ngx_http_ingest_replay_refused(ngx_http_ingest_channel_t *ch)
{
    u_char                     name[NGX_HTTP_INGEST_REPLAY_NAME];
    ngx_http_ingest_replay_t  *rp = ch->data;

    ngx_http_ingest_replay_printable(name, rp->work->name);

    ngx_log_error(NGX_LOG_ERR, rp->log, 0,
                  "ingest redis refused batch %ui of spool file \"%s\" for "
                  "\"%V\": %*s; moved aside as \"%s.refused\"",
                  rp->sent + 1, name, &ch->name,
                  ngx_http_ingest_push_error(&ch->push), name);

    ngx_http_ingest_replay_release(rp->work);

    ngx_http_ingest_replay_post(rp, NGX_HTTP_INGEST_REPLAY_REFUSED, 0);
}
