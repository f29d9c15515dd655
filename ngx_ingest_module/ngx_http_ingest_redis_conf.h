
/*
 * Copyright (C) ngx_ingest developers
 * SPDX-License-Identifier: BSD-2-Clause
 *
 * The ingest_redis directive: where Redis is (an address or a Redis URL,
 * one server or the seeds of a cluster) and how to log in (a user, a
 * password, from the URL or a file read at configuration time, and a
 * database number).
 */

#ifndef _NGX_HTTP_INGEST_REDIS_CONF_H_INCLUDED_
#define _NGX_HTTP_INGEST_REDIS_CONF_H_INCLUDED_


#include "ngx_http_ingest_module.h"


char *ngx_http_ingest_redis_conf(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);


#endif /* _NGX_HTTP_INGEST_REDIS_CONF_H_INCLUDED_ */
