
/*
 * Copyright (C) ngx_ingest developers
 * SPDX-License-Identifier: BSD-2-Clause
 *
 * The status endpoint (ingest_status): the zone's numbers as JSON or
 * in the Prometheus text format.
 */

#ifndef _NGX_HTTP_INGEST_STATUS_H_INCLUDED_
#define _NGX_HTTP_INGEST_STATUS_H_INCLUDED_


#include "ngx_http_ingest_module.h"


char *ngx_http_ingest_status(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);


#endif /* _NGX_HTTP_INGEST_STATUS_H_INCLUDED_ */
