
/*
 * Copyright (C) ngx_ingest developers
 * SPDX-License-Identifier: BSD-2-Clause
 *
 * The records endpoint (ingest_records): NDJSON lines as rows.
 */

#ifndef _NGX_HTTP_INGEST_RECORDS_H_INCLUDED_
#define _NGX_HTTP_INGEST_RECORDS_H_INCLUDED_


#include "ngx_http_ingest_module.h"


char *ngx_http_ingest_records(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);


#endif /* _NGX_HTTP_INGEST_RECORDS_H_INCLUDED_ */
