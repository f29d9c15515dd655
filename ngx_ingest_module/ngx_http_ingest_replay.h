
/*
 * Copyright (C) ngx_ingest developers
 * SPDX-License-Identifier: BSD-2-Clause
 *
 * The spool's replay: worker 0 (or the single process) sends the files
 * that exiting workers left in ingest_spool to Redis, in order and
 * unchanged, through the transport.
 */

#ifndef _NGX_HTTP_INGEST_REPLAY_H_INCLUDED_
#define _NGX_HTTP_INGEST_REPLAY_H_INCLUDED_


#include "ngx_http_ingest_transport.h"


ngx_int_t ngx_http_ingest_replay_init(ngx_cycle_t *cycle,
    ngx_http_ingest_main_conf_t *imcf, ngx_http_ingest_transport_t *t);
void ngx_http_ingest_replay_exit(void);

/* a graceful shutdown: no new file is replayed (the next nginx's is) */
void ngx_http_ingest_replay_stop(void);


#endif /* _NGX_HTTP_INGEST_REPLAY_H_INCLUDED_ */
