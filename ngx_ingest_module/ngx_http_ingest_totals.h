
/*
 * Copyright (C) ngx_ingest developers
 * SPDX-License-Identifier: BSD-2-Clause
 *
 * Reading totals back (ingest_totals): SQLite in nginx's thread pool.
 */

#ifndef _NGX_HTTP_INGEST_TOTALS_H_INCLUDED_
#define _NGX_HTTP_INGEST_TOTALS_H_INCLUDED_


#include "ngx_http_ingest_module.h"


char *ngx_http_ingest_totals(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);


#endif /* _NGX_HTTP_INGEST_TOTALS_H_INCLUDED_ */
