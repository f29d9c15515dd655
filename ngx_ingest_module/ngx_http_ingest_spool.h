
/*
 * Copyright (C) ngx_ingest developers
 * SPDX-License-Identifier: BSD-2-Clause
 *
 * The spool's files: batches a worker could not hand to Redis at exit,
 * kept on disk, one file per list and exit, for the replay
 * (ngx_http_ingest_replay.h) of whatever nginx runs next.
 */

#ifndef _NGX_HTTP_INGEST_SPOOL_H_INCLUDED_
#define _NGX_HTTP_INGEST_SPOOL_H_INCLUDED_


#include "ngx_http_ingest_module.h"


/*
 * One exit's file of a list: opened at its first batch, appended to
 * oldest first, and made visible whole (fsynced and renamed) by close.
 */

typedef struct {
    int                       fd;              /* -1: not open */
    off_t                     size;            /* of its whole lines */
    ngx_uint_t                batches;
    uint64_t                  first;           /* seq */
    unsigned                  failed:1;        /* the caller's: given up */
    ngx_log_t                *log;
    u_char                    tmp[NGX_MAX_PATH];
    u_char                    name[NGX_MAX_PATH];
} ngx_http_ingest_spool_file_t;


ngx_int_t ngx_http_ingest_spool_open(ngx_http_ingest_spool_file_t *f,
    ngx_str_t *dir, const char *producer, ngx_str_t *list, uint64_t seq,
    ngx_log_t *log);
/* NGX_ERROR: the batch is not in it (the file holds what came before) */
ngx_int_t ngx_http_ingest_spool_append(ngx_http_ingest_spool_file_t *f,
    ngx_str_t *batch);
/* commit: fsync and rename (NGX_OK once safe); else remove what it is */
ngx_int_t ngx_http_ingest_spool_close(ngx_http_ingest_spool_file_t *f,
    ngx_uint_t commit);

/* "<producer>~<list>~<seq>.batch" at p (at most 220 bytes); the end */
u_char *ngx_http_ingest_spool_name(u_char *p, const char *producer,
    ngx_str_t *list, uint64_t seq);

#endif /* _NGX_HTTP_INGEST_SPOOL_H_INCLUDED_ */
