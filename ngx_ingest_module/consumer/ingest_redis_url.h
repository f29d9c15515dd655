
/*
 * Copyright (C) ngx_ingest developers
 * SPDX-License-Identifier: BSD-2-Clause
 *
 * The consumer's --redis, parsed: where Redis is (one address, or the
 * seeds of a cluster), which db, and who to log in as.  Apart from the
 * rest of the consumer (no hiredis), so that the unit tests reach it.
 */

#ifndef _INGEST_REDIS_URL_H_INCLUDED_
#define _INGEST_REDIS_URL_H_INCLUDED_


#include <stddef.h>


#define INGEST_REDIS_MAX_SEEDS    16
#define INGEST_REDIS_HOST_LEN     256
#define INGEST_REDIS_USER_LEN     256
#define INGEST_REDIS_PASSWORD_LEN 512
#define INGEST_REDIS_TEXT_LEN     4096
#define INGEST_REDIS_DB_MAX       2147483647  /* as nginx: 2^31 - 1 */


typedef struct {
    char                   host[INGEST_REDIS_HOST_LEN];  /* or a path */
    int                    port;         /* 0: a unix socket */
} ingest_redis_node_t;


typedef struct {
    int                    cluster;
    size_t                 nnodes;       /* 1, or the cluster's seeds */
    ingest_redis_node_t    nodes[INGEST_REDIS_MAX_SEEDS];
    long                   db;
    char                   user[INGEST_REDIS_USER_LEN];       /* "": none */
    char                   password[INGEST_REDIS_PASSWORD_LEN];  /* "" */

    /* the text for the log, with the passwords cut out */
    char                   shown[INGEST_REDIS_TEXT_LEN];

    /* where the passwords are in the text, as typed: [start, end) */
    size_t                 nsecrets;
    size_t                 secrets[INGEST_REDIS_MAX_SEEDS][2];
} ingest_redis_conf_t;


/*
 * text is one of
 *
 *     redis://[user[:password]@]host[:port][/db]   host may be [v6]
 *     unix://[user[:password]@]/path[?db=N]
 *     HOST:PORT, [V6]:PORT, unix:PATH
 *     cluster:SEED,SEED,...   each HOST:PORT, [V6]:PORT or redis://...
 *
 * 0, or -1 with err saying why; err never holds a password.
 */
int ingest_redis_parse(const char *text, ingest_redis_conf_t *conf,
    char *err, size_t size);


#endif /* _INGEST_REDIS_URL_H_INCLUDED_ */
