
/*
 * Copyright (C) ngx_ingest developers
 * SPDX-License-Identifier: BSD-2-Clause
 *
 * What Redis says of each list, kept in the status zone for the status
 * endpoint: its length (LLEN), its consumer's heartbeat and the length of
 * its dead-letter list.  Worker 0
 * asks every second; any worker asks when a status request finds the
 * figures older than that.
 */

#ifndef _NGX_HTTP_INGEST_POLL_H_INCLUDED_
#define _NGX_HTTP_INGEST_POLL_H_INCLUDED_


#include "ngx_http_ingest_transport.h"


ngx_int_t ngx_http_ingest_poll_init(ngx_cycle_t *cycle,
    ngx_http_ingest_transport_t *t);
void ngx_http_ingest_poll_exit(void);

/*
 * Ask now, unless a poll is on its way already: NGX_OK, and done is
 * posted when the last reply is in; NGX_DECLINED when nothing can be
 * asked (no worker state, no connection).
 */
ngx_int_t ngx_http_ingest_poll(ngx_event_t *done);

/* how old the oldest list's figures may be before a status request asks */
#define NGX_HTTP_INGEST_POLL_PERIOD   1000     /* ms */


#endif /* _NGX_HTTP_INGEST_POLL_H_INCLUDED_ */
