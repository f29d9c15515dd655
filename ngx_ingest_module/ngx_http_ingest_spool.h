
/*
 * Copyright (C) ngx_ingest developers
 *
 * The spool: batches a worker could not hand to Redis at exit, kept on
 * disk, one file each, and sent to Redis later by worker 0 of whatever
 * nginx runs next, unchanged.
 */

#ifndef _NGX_HTTP_INGEST_SPOOL_H_INCLUDED_
#define _NGX_HTTP_INGEST_SPOOL_H_INCLUDED_


#include "ngx_http_ingest_transport.h"


/* one batch of list, written and fsynced under dir; NGX_OK once safe */
ngx_int_t ngx_http_ingest_spool_write(ngx_str_t *dir, const char *producer,
    ngx_str_t *list, uint64_t seq, ngx_str_t *batch, ngx_log_t *log);

/* worker 0 (or the single process) replays dir through t */
ngx_int_t ngx_http_ingest_spool_init(ngx_cycle_t *cycle, ngx_str_t *dir,
    ngx_http_ingest_transport_t *t);
void ngx_http_ingest_spool_exit(void);

/* a graceful shutdown: no new file is replayed (the next nginx's is) */
void ngx_http_ingest_spool_stop(void);


#endif /* _NGX_HTTP_INGEST_SPOOL_H_INCLUDED_ */
