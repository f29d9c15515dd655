
/*
 * Copyright (C) ngx_ingest developers
 * SPDX-License-Identifier: BSD-2-Clause
 *
 * The spool's files: batches a worker could not hand to Redis at exit,
 * one file per list, written and fsynced before the worker goes, and
 * sent to Redis later by the replay (ngx_http_ingest_replay.c) of
 * whatever nginx runs next, unchanged.  A batch keeps its producer and
 * seq, so if it had reached Redis after all, the consumer skips the copy.
 *
 *   <dir>/<producer>~<list>~<first seq, 20 digits>.batch
 *
 *   <list>\n<batch>\n<batch>\n...      (each batch one line, oldest first)
 *
 * One file holds all that a producer leaves of a list, and appears whole
 * (written under a temporary name, then renamed): a scan of the
 * directory can miss a file that arrives meanwhile, and with a file per
 * batch it could see a batch and miss the one before it, which the
 * consumer would then skip as old.
 *
 * Producer and list are percent-encoded (all but letters, digits, "-",
 * "_" and a "." that does not lead), so two lists never share a file and
 * a name reads back to its list; one whose encoding is too long for a
 * file name is "#" and the MD5 of its bytes instead (the list is in the
 * file anyway).  Names sort by producer, list and seq.
 *
 * Written only at exit, with blocking calls: there is no event loop left.
 */


#include "ngx_http_ingest_spool.h"
#include "ngx_http_ingest_metrics.h"

#include <ngx_md5.h>


/* a file name's parts, encoded, before one is hashed instead */
#define NGX_HTTP_INGEST_SPOOL_PART     96

#define NGX_HTTP_INGEST_SPOOL_NAME     256         /* NAME_MAX + 1 */


static u_char *ngx_http_ingest_spool_encode(u_char *p, u_char *s,
    size_t len);


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
        ngx_log_error(NGX_LOG_ERR, log, (n == -1) ? ngx_errno : NGX_ENOSPC,
                      "ingest cannot write spool file \"%s\"", f->tmp);
        (void) ngx_http_ingest_spool_close(f, 0);
        return NGX_ERROR;
    }

    f->size = n;

    return NGX_OK;
}


/*
 * A batch is one line: its JSON escapes every control character.  One
 * that does not fit (a full disk) is cut off again, so that the file
 * holds whole lines, the batches before it.
 */

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
        ngx_log_error(NGX_LOG_ERR, f->log, (n == -1) ? ngx_errno : NGX_ENOSPC,
                      "ingest cannot write spool file \"%s\"", f->tmp);

        if (n > 0
            && (ftruncate(f->fd, f->size) == -1
                || lseek(f->fd, f->size, SEEK_SET) == -1))
        {
            ngx_log_error(NGX_LOG_ERR, f->log, ngx_errno,
                          "ingest cannot cut spool file \"%s\" back",
                          f->tmp);
            (void) ngx_http_ingest_spool_close(f, 0);
        }

        return NGX_ERROR;
    }

    f->size += n;
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
