
/*
 * Copyright (C) ngx_ingest developers
 * SPDX-License-Identifier: BSD-2-Clause
 *
 * --redis, as redis-cli -u reads a URL: redis://[user[:password]@]host
 * [:port][/db], unix://[user[:password]@]/path[?db=N], and the forms
 * the consumer always took (HOST:PORT, [V6]:PORT, unix:PATH, cluster:
 * SEED,SEED,...), which mean what they always meant.
 *
 * The user and the password are percent-decoded, so that a password may
 * hold any byte but NUL.  The password's own bytes may be typed raw too,
 * except '%': the userinfo ends at the last '@' (no host holds one) and
 * the user at its first ':'.  In a cluster a ',' ends a seed, so a
 * password there types it %2C.
 *
 * Nothing here copies a password anywhere but conf->password: errors say
 * where the text is wrong, never what it holds past the scheme, and
 * conf->shown, what the log calls the address, has the passwords cut out.
 */


#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ingest_redis_url.h"


#define INGEST_REDIS_DEFAULT_HOST  "127.0.0.1"
#define INGEST_REDIS_DEFAULT_PORT  6379


/* one address of the text, before it joins the others */

typedef struct {
    ingest_redis_node_t   node;
    long                  db;
    char                  user[INGEST_REDIS_USER_LEN];
    char                  password[INGEST_REDIS_PASSWORD_LEN];
    size_t                secret[2];    /* the password as typed */
    size_t                hidden[2];    /* what the log leaves out */
} ingest_redis_one_t;


static int ingest_redis_one(const char *text, size_t start, size_t end,
    int cluster, ingest_redis_one_t *one, char *err, size_t size);
static int ingest_redis_url(const char *text, size_t start, size_t end,
    ingest_redis_one_t *one, char *err, size_t size);
static int ingest_redis_unix_url(const char *text, size_t start, size_t end,
    ingest_redis_one_t *one, char *err, size_t size);
static int ingest_redis_userinfo(const char *text, const char *p,
    const char *at, ingest_redis_one_t *one, char *err, size_t size);
static int ingest_redis_authority(const char *p, const char *end,
    ingest_redis_node_t *node, char *err, size_t size);
static int ingest_redis_plain(const char *text, size_t start, size_t end,
    char *err, size_t size);
static int ingest_redis_legacy(const char *p, size_t len,
    ingest_redis_node_t *node);
static int ingest_redis_decode(const char *p, size_t len, char *out,
    size_t outsize, const char *what, char *err, size_t size);
static int ingest_redis_digits(const char *p, size_t len, long min, long max,
    long *out);
static const char *ingest_redis_find(const char *p, const char *end,
    char ch);
static int ingest_redis_error(char *err, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));


int
ingest_redis_parse(const char *text, ingest_redis_conf_t *conf, char *err,
    size_t size)
{
    char                 prefix[32];
    size_t               len, start, end, i, n, nhidden;
    size_t               hidden[INGEST_REDIS_MAX_SEEDS][2];
    const char          *comma;
    ingest_redis_one_t   one;

    memset(conf, 0, sizeof(ingest_redis_conf_t));

    len = strlen(text);

    if (len >= sizeof(conf->shown)) {
        return ingest_redis_error(err, size, "longer than %zu bytes",
                                  sizeof(conf->shown) - 1);
    }

    nhidden = 0;

    if (strncmp(text, "cluster:", 8) != 0) {
        if (ingest_redis_one(text, 0, len, 0, &one, err, size) != 0) {
            return -1;
        }

        conf->nnodes = 1;
        conf->nodes[0] = one.node;
        conf->db = one.db;
        strcpy(conf->user, one.user);
        strcpy(conf->password, one.password);

        if (one.secret[1] > one.secret[0]) {
            conf->secrets[conf->nsecrets][0] = one.secret[0];
            conf->secrets[conf->nsecrets][1] = one.secret[1];
            conf->nsecrets++;
        }

        hidden[nhidden][0] = one.hidden[0];
        hidden[nhidden][1] = one.hidden[1];
        nhidden++;

        goto shown;
    }

    conf->cluster = 1;

    for (start = 8; start < len; start = end + 1) {
        comma = strchr(text + start, ',');
        end = comma ? (size_t) (comma - text) : len;

        snprintf(prefix, sizeof(prefix), "seed %zu: ", conf->nnodes + 1);

        if (end == start) {
            return ingest_redis_error(err, size, "%san empty seed", prefix);
        }

        if (conf->nnodes == INGEST_REDIS_MAX_SEEDS) {
            return ingest_redis_error(err, size, "more than %d seeds",
                                      INGEST_REDIS_MAX_SEEDS);
        }

        n = strlen(prefix);

        if (size > n) {
            memcpy(err, prefix, n + 1);
        }

        if (ingest_redis_one(text, start, end, 1, &one,
                             size > n ? err + n : err,
                             size > n ? size - n : size)
            != 0)
        {
            return -1;
        }

        if (one.db != 0) {
            return ingest_redis_error(err, size, "%sdb %ld, but a cluster "
                                      "has only db 0", prefix, one.db);
        }

        /* credentials given once serve every node; twice, they agree */

        if (one.user[0] != '\0') {
            if (conf->user[0] != '\0' && strcmp(conf->user, one.user) != 0) {
                return ingest_redis_error(err, size, "%sthe seeds name "
                                          "different users (\"%s\" and "
                                          "\"%s\")", prefix, conf->user,
                                          one.user);
            }

            strcpy(conf->user, one.user);
        }

        if (one.password[0] != '\0') {
            if (conf->password[0] != '\0'
                && strcmp(conf->password, one.password) != 0)
            {
                return ingest_redis_error(err, size, "%sthe seeds give "
                                          "different passwords", prefix);
            }

            strcpy(conf->password, one.password);
        }

        if (one.secret[1] > one.secret[0]) {
            conf->secrets[conf->nsecrets][0] = one.secret[0];
            conf->secrets[conf->nsecrets][1] = one.secret[1];
            conf->nsecrets++;
        }

        hidden[nhidden][0] = one.hidden[0];
        hidden[nhidden][1] = one.hidden[1];
        nhidden++;

        conf->nodes[conf->nnodes++] = one.node;

        if (comma == NULL) {
            break;
        }
    }

    if (conf->nnodes == 0) {
        return ingest_redis_error(err, size, "cluster: needs seeds, "
                                  "cluster:HOST:PORT,HOST:PORT,...");
    }

    if (text[len - 1] == ',') {
        return ingest_redis_error(err, size, "seed %zu: an empty seed",
                                  conf->nnodes + 1);
    }

shown:

    /* the spans are in order and apart: seeds do not overlap */

    n = 0;
    start = 0;

    for (i = 0; i < nhidden; i++) {
        memcpy(conf->shown + n, text + start, hidden[i][0] - start);
        n += hidden[i][0] - start;
        start = hidden[i][1];
    }

    memcpy(conf->shown + n, text + start, len - start);
    conf->shown[n + len - start] = '\0';

    return 0;
}


/* text[start, end): one address; a cluster's seed if cluster */

static int
ingest_redis_one(const char *text, size_t start, size_t end, int cluster,
    ingest_redis_one_t *one, char *err, size_t size)
{
    const char  *p;
    size_t       len;

    memset(one, 0, sizeof(ingest_redis_one_t));

    /* nothing hidden, nothing secret: empty spans where the seed starts */
    one->secret[0] = one->secret[1] = start;
    one->hidden[0] = one->hidden[1] = start;

    p = text + start;
    len = end - start;

    if (len >= 9 && strncasecmp(p, "rediss://", 9) == 0) {
        return ingest_redis_error(err, size, "rediss:// (TLS) is not "
                                  "supported");
    }

    if (len >= 8 && strncasecmp(p, "redis://", 8) == 0) {
        return ingest_redis_url(text, start, end, one, err, size);
    }

    if (len >= 5 && strncasecmp(p, "unix:", 5) == 0) {
        if (cluster) {
            return ingest_redis_error(err, size, "a cluster's seed is "
                                      "HOST:PORT or redis://..., not a "
                                      "unix socket");
        }

        if (len >= 7 && strncasecmp(p, "unix://", 7) == 0) {
            return ingest_redis_unix_url(text, start, end, one, err, size);
        }

        if (len == 5 || len - 5 >= sizeof(one->node.host)) {
            return ingest_redis_error(err, size, "expected unix:PATH");
        }

        memcpy(one->node.host, p + 5, len - 5);
        one->node.host[len - 5] = '\0';
        one->node.port = 0;

        return 0;
    }

    if (ingest_redis_plain(text, start, end, err, size) != 0) {
        return -1;
    }

    if (ingest_redis_legacy(p, len, &one->node) != 0) {
        if (cluster) {
            return ingest_redis_error(err, size, "expected HOST:PORT, "
                                      "[V6]:PORT or redis://...");
        }

        return ingest_redis_error(err, size, "expected redis://..., "
                                  "unix://..., HOST:PORT, [V6]:PORT, "
                                  "unix:PATH or cluster:SEED,...");
    }

    return 0;
}


/* redis://[user[:password]@]host[:port][/db] */

static int
ingest_redis_url(const char *text, size_t start, size_t end,
    ingest_redis_one_t *one, char *err, size_t size)
{
    const char  *p, *e, *at, *slash;

    p = text + start + 8;
    e = text + end;

    /* the last '@': a host holds none, a password may */

    for (at = e; at > p && at[-1] != '@'; at--) { /* void */ }

    if (at > p) {
        if (ingest_redis_userinfo(text, p, at - 1, one, err, size) != 0) {
            return -1;
        }

        p = at;
    }

    for (slash = p; slash < e && *slash != '/'; slash++) { /* void */ }

    if (ingest_redis_authority(p, slash, &one->node, err, size) != 0) {
        return -1;
    }

    if (slash + 1 < e
        && ingest_redis_digits(slash + 1, e - slash - 1, 0,
                               INGEST_REDIS_DB_MAX, &one->db)
           != 0)
    {
        return ingest_redis_error(err, size, "the db (after the host's "
                                  "'/') must be a number from 0 to %d",
                                  INGEST_REDIS_DB_MAX);
    }

    return 0;
}


/* unix://[user[:password]@]/path[?db=N] */

static int
ingest_redis_unix_url(const char *text, size_t start, size_t end,
    ingest_redis_one_t *one, char *err, size_t size)
{
    const char  *p, *e, *at, *query;

    p = text + start + 7;
    e = text + end;

    if (p < e && *p != '/') {
        /* the userinfo ends at the first "@/", where the path starts */

        for (at = p; at + 1 < e && !(at[0] == '@' && at[1] == '/'); at++) {
            /* void */
        }

        if (at + 1 >= e) {
            return ingest_redis_error(err, size, "expected "
                                      "unix://" "/path or "
                                      "unix://user:password@/path");
        }

        if (ingest_redis_userinfo(text, p, at, one, err, size) != 0) {
            return -1;
        }

        p = at + 1;
    }

    query = ingest_redis_find(p, e, '?');

    if (p == e || (query ? query : e) - p < 2) {
        return ingest_redis_error(err, size, "expected unix://" "/path");
    }

    if (ingest_redis_decode(p, (query ? query : e) - p, one->node.host,
                            sizeof(one->node.host), "the path", err, size)
        != 0)
    {
        return -1;
    }

    one->node.port = 0;

    if (query != NULL
        && (e - query < 5 || strncmp(query, "?db=", 4) != 0
            || ingest_redis_digits(query + 4, e - query - 4, 0,
                                   INGEST_REDIS_DB_MAX, &one->db)
               != 0))
    {
        return ingest_redis_error(err, size, "after the path, only ?db=N, "
                                  "N from 0 to %d", INGEST_REDIS_DB_MAX);
    }

    return 0;
}


/*
 * user[:password] in [p, at): decoded into one, the password's span kept
 * (to be wiped from argv) and the span the log leaves out: ":password",
 * and with it the '@' when there is no user ("redis://:pw@h" is shown
 * "redis://h").
 */

static int
ingest_redis_userinfo(const char *text, const char *p, const char *at,
    ingest_redis_one_t *one, char *err, size_t size)
{
    const char  *colon;

    colon = ingest_redis_find(p, at, ':');

    if (ingest_redis_decode(p, (colon ? colon : at) - p, one->user,
                            sizeof(one->user), "the user", err, size)
        != 0)
    {
        return -1;
    }

    if (colon == NULL) {
        return 0;
    }

    if (ingest_redis_decode(colon + 1, at - colon - 1, one->password,
                            sizeof(one->password), "the password", err,
                            size)
        != 0)
    {
        return -1;
    }

    one->secret[0] = colon + 1 - text;
    one->secret[1] = at - text;
    one->hidden[0] = colon - text;
    one->hidden[1] = (colon == p ? at + 1 : at) - text;

    return 0;
}


/* host[:port] or [v6][:port] in [p, end); no host: 127.0.0.1 */

static int
ingest_redis_authority(const char *p, const char *end,
    ingest_redis_node_t *node, char *err, size_t size)
{
    long         port;
    const char  *host, *host_end, *colon;

    port = INGEST_REDIS_DEFAULT_PORT;

    if (p < end && *p == '[') {
        host = p + 1;
        host_end = ingest_redis_find(host, end, ']');

        if (host_end == NULL || host_end == host) {
            return ingest_redis_error(err, size, "an IPv6 address is "
                                      "[ADDRESS]");
        }

        colon = host_end + 1;

        if (colon < end && *colon != ':') {
            return ingest_redis_error(err, size, "after [ADDRESS], only "
                                      ":PORT");
        }

        if (colon == end) {
            colon = NULL;
        }

    } else {
        host = p;
        colon = ingest_redis_find(p, end, ':');
        host_end = colon ? colon : end;

        if (ingest_redis_find(p, end, '?') != NULL) {
            return ingest_redis_error(err, size, "a '?' in the host: "
                                      "redis:// takes the db as /N, not "
                                      "?db=N");
        }

        if (colon != NULL && ingest_redis_find(colon + 1, end, ':')) {
            return ingest_redis_error(err, size, "an IPv6 address is "
                                      "written [ADDRESS]:PORT");
        }
    }

    if (colon != NULL
        && ingest_redis_digits(colon + 1, end - colon - 1, 1, 65535, &port)
           != 0)
    {
        return ingest_redis_error(err, size, "the port must be a number "
                                  "from 1 to 65535");
    }

    if (host_end == host) {
        host = INGEST_REDIS_DEFAULT_HOST;
        host_end = host + sizeof(INGEST_REDIS_DEFAULT_HOST) - 1;
    }

    if ((size_t) (host_end - host) >= sizeof(node->host)) {
        return ingest_redis_error(err, size, "the host is too long");
    }

    memcpy(node->host, host, host_end - host);
    node->host[host_end - host] = '\0';
    node->port = (int) port;

    return 0;
}


/*
 * text[start, end), to be read as HOST:PORT or [V6]:PORT, is no URL of
 * another scheme (valkey://u:pw@h:p) nor credentials without a scheme
 * (u:pw@h:p): no host holds "://", '@', '/' or '?'.  Read as a host, the
 * password would be logged and left in argv, so it is refused, and the
 * error says where, never what the text holds.
 */

static int
ingest_redis_plain(const char *text, size_t start, size_t end, char *err,
    size_t size)
{
    size_t  i;

    for (i = start; i < end; i++) {
        if (text[i] == ':' && end - i >= 3 && text[i + 1] == '/'
            && text[i + 2] == '/')
        {
            return ingest_redis_error(err, size, "a scheme other than "
                                      "redis:// or unix:// (\"://\" at "
                                      "byte %zu; the text is not shown, it "
                                      "may hold a password)", i + 1);
        }

        if (text[i] == '@' || text[i] == '/' || text[i] == '?') {
            return ingest_redis_error(err, size, "a '%c' at byte %zu, which "
                                      "no HOST:PORT holds (the text is not "
                                      "shown, it may hold a password; a "
                                      "password is given as "
                                      "redis://user:password@host:port)",
                                      text[i], i + 1);
        }
    }

    return 0;
}


/*
 * HOST:PORT or [V6]:PORT, as the consumer always read it: the port after
 * the last ':', so that an unbracketed ::1:6379 is still ::1.  0 or -1.
 */

static int
ingest_redis_legacy(const char *p, size_t len, ingest_redis_node_t *node)
{
    long         port;
    const char  *colon;

    for (colon = p + len; colon > p && colon[-1] != ':'; colon--) {
        /* void */
    }

    if (colon <= p + 1
        || ingest_redis_digits(colon, p + len - colon, 1, 65535, &port)
           != 0)
    {
        return -1;
    }

    colon--;

    if (*p == '[' && colon[-1] == ']') {
        p++;
        len = colon - 1 - p;

    } else {
        len = colon - p;
    }

    if (len == 0 || len >= sizeof(node->host)) {
        return -1;
    }

    memcpy(node->host, p, len);
    node->host[len] = '\0';
    node->port = (int) port;

    return 0;
}


/* %XX-decoded into out (NUL-terminated); what names it in err */

static int
ingest_redis_decode(const char *p, size_t len, char *out, size_t outsize,
    const char *what, char *err, size_t size)
{
    int     hi, lo;
    size_t  i, n;

    n = 0;

    for (i = 0; i < len; i++) {
        if (n + 1 >= outsize) {
            return ingest_redis_error(err, size, "%s is longer than %zu "
                                      "bytes", what, outsize - 1);
        }

        if (p[i] != '%') {
            out[n++] = p[i];
            continue;
        }

        if (len - i < 3) {
            goto bad;
        }

        hi = (p[i + 1] >= '0' && p[i + 1] <= '9') ? p[i + 1] - '0'
             : (p[i + 1] >= 'a' && p[i + 1] <= 'f') ? p[i + 1] - 'a' + 10
             : (p[i + 1] >= 'A' && p[i + 1] <= 'F') ? p[i + 1] - 'A' + 10
             : -1;
        lo = (p[i + 2] >= '0' && p[i + 2] <= '9') ? p[i + 2] - '0'
             : (p[i + 2] >= 'a' && p[i + 2] <= 'f') ? p[i + 2] - 'a' + 10
             : (p[i + 2] >= 'A' && p[i + 2] <= 'F') ? p[i + 2] - 'A' + 10
             : -1;

        if (hi < 0 || lo < 0) {
            goto bad;
        }

        if (hi == 0 && lo == 0) {
            return ingest_redis_error(err, size, "%s holds %%00", what);
        }

        out[n++] = (char) (hi * 16 + lo);
        i += 2;
    }

    out[n] = '\0';

    return 0;

bad:

    return ingest_redis_error(err, size, "in %s, a '%%' is not followed by "
                              "two hex digits (write '%%' as %%25)", what);
}


/* len decimal digits, nothing else, from min to max */

static int
ingest_redis_digits(const char *p, size_t len, long min, long max,
    long *out)
{
    long    n;
    size_t  i;

    if (len == 0) {
        return -1;
    }

    n = 0;

    for (i = 0; i < len; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return -1;
        }

        /* past max already: no overflow, whatever long's width */

        if (n > (max - (p[i] - '0')) / 10) {
            return -1;
        }

        n = n * 10 + (p[i] - '0');
    }

    if (n < min || n > max) {
        return -1;
    }

    *out = n;

    return 0;
}


/*
 * The first ch in [p, end), or NULL.  (Not memchr: with lengths made of
 * pointer differences, gcc -O2 cannot prove them positive and refuses.)
 */

static const char *
ingest_redis_find(const char *p, const char *end, char ch)
{
    for ( /* void */ ; p < end; p++) {
        if (*p == ch) {
            return p;
        }
    }

    return NULL;
}


static int
ingest_redis_error(char *err, size_t size, const char *fmt, ...)
{
    va_list  args;

    if (size > 0) {
        va_start(args, fmt);
        vsnprintf(err, size, fmt, args);
        va_end(args);
    }

    return -1;
}
