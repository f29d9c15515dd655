
/*
 * Copyright (C) ngx_ingest developers
 * SPDX-License-Identifier: BSD-2-Clause
 *
 * The counters endpoint (ingest_counters): its content handler.
 */

#ifndef _NGX_HTTP_INGEST_HANDLER_H_INCLUDED_
#define _NGX_HTTP_INGEST_HANDLER_H_INCLUDED_


#include "ngx_http_ingest_module.h"


ngx_int_t ngx_http_ingest_handler(ngx_http_request_t *r);


#endif /* _NGX_HTTP_INGEST_HANDLER_H_INCLUDED_ */
