
/*
 * Copyright (C) ngx_ingest developers
 * SPDX-License-Identifier: BSD-2-Clause
 *
 *   ingest_redis <address> [password_file=<path>]
 *   ingest_redis cluster <address> ... [replicas=<n>] [password_file=<path>]
 *
 * An address is one of
 *
 *   host:port, [v6]:port, unix:/path            (no login)
 *   redis://[user[:password]@]host[:port][/db]  (the Redis URL)
 *   unix://[user[:password]@]/path[?db=<n>]
 *
 * A URL without a port means 6379, as redis-cli -u reads it; a bare host
 * without one is refused: it used to mean 6379 silently, and whoever
 * wrote "ingest_redis 10.0.0.5;" may have had another port in mind.
 *
 * with user and password percent-encoded in a URL.  The password may sit
 * in a file instead (password_file=, read here, once, like
 * ssl_password_file), so that it is in neither nginx.conf nor nginx -T.
 * A cluster's addresses share one login, and have only database 0.
 *
 * A host name is resolved here, once: hiredis would call a blocking
 * getaddrinfo() in the worker on every reconnect.  What the logs call
 * the server is the address without its password.
 */


#include "ngx_http_ingest_redis_conf.h"

#include <sys/un.h>


#define NGX_HTTP_INGEST_MAX_PASSWORD   4096


typedef struct {
    u_char                   *host;            /* numeric, or a path */
    int                       port;            /* 0: a unix socket */
    ngx_str_t                 name;            /* for logs */
    ngx_http_ingest_auth_t    auth;
    unsigned                  login:1;         /* a user or a password */
    unsigned                  db:1;            /* a database was given */
} ngx_http_ingest_address_t;


static char *ngx_http_ingest_redis_cluster(ngx_conf_t *cf,
    ngx_http_ingest_main_conf_t *imcf, ngx_str_t *password_file);
static char *ngx_http_ingest_redis_address(ngx_conf_t *cf, ngx_str_t *addr,
    ngx_http_ingest_address_t *a);
static char *ngx_http_ingest_redis_url(ngx_conf_t *cf, ngx_str_t *addr,
    ngx_http_ingest_address_t *a);
static char *ngx_http_ingest_redis_userinfo(ngx_conf_t *cf, ngx_str_t *addr,
    u_char *p, u_char *last, ngx_http_ingest_address_t *a);
static ngx_int_t ngx_http_ingest_redis_decode(ngx_pool_t *pool,
    u_char *p, u_char *last, ngx_str_t *out);
static char *ngx_http_ingest_redis_db(ngx_conf_t *cf, ngx_str_t *addr,
    u_char *p, u_char *last, ngx_http_ingest_address_t *a);
static void ngx_http_ingest_redis_shown(ngx_str_t *text, ngx_str_t *shown);
static char *ngx_http_ingest_redis_host(ngx_conf_t *cf, ngx_str_t *addr,
    ngx_str_t *hostport, ngx_uint_t url, ngx_http_ingest_address_t *a);
static char *ngx_http_ingest_redis_unix(ngx_conf_t *cf, ngx_str_t *addr,
    u_char *p, u_char *last, ngx_http_ingest_address_t *a);
static char *ngx_http_ingest_redis_password_file(ngx_conf_t *cf,
    ngx_str_t *path, ngx_str_t *password);


char *
ngx_http_ingest_redis_conf(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_ingest_main_conf_t  *imcf = conf;

    char                       *rv;
    ngx_str_t                  *value, password_file;
    ngx_uint_t                  i, n;
    ngx_http_ingest_address_t   a;

    if (imcf->redis_host != NULL) {
        return "is duplicate";
    }

    value = cf->args->elts;

    /* password_file= may come last on either form */

    ngx_str_null(&password_file);
    n = cf->args->nelts;

    for (i = 1; i < n; i++) {
        if (value[i].len > 14
            && ngx_strncmp(value[i].data, "password_file=", 14) == 0)
        {
            if (i != n - 1) {
                return "takes \"password_file=\" last";
            }

            password_file.data = value[i].data + 14;
            password_file.len = value[i].len - 14;
            n--;
        }
    }

    if (ngx_strcmp(value[1].data, "cluster") == 0) {
        imcf->redis = value[1];
        return ngx_http_ingest_redis_cluster(cf, imcf, &password_file);
    }

    if (n != 2) {
        return "takes one address, or \"cluster\" and addresses";
    }

    ngx_memzero(&a, sizeof(ngx_http_ingest_address_t));

    rv = ngx_http_ingest_redis_address(cf, &value[1], &a);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    if (password_file.len) {
        if (a.auth.password.len) {
            return "has a password in the address and \"password_file=\": "
                   "give one";
        }

        rv = ngx_http_ingest_redis_password_file(cf, &password_file,
                                                 &a.auth.password);
        if (rv != NGX_CONF_OK) {
            return rv;
        }
    }

    imcf->redis = a.name;
    imcf->redis_host = a.host;
    imcf->redis_port = a.port;
    imcf->auth = a.auth;

    return NGX_CONF_OK;
}


/* a cluster: seeds, of which any one is enough to learn the map */

static char *
ngx_http_ingest_redis_cluster(ngx_conf_t *cf,
    ngx_http_ingest_main_conf_t *imcf, ngx_str_t *password_file)
{
    char                       *rv;
    ngx_int_t                   n;
    ngx_str_t                  *value;
    ngx_uint_t                  i, login;
    ngx_http_ingest_seed_t     *seed;
    ngx_http_ingest_address_t   a;

    value = cf->args->elts;

    imcf->cluster = 1;
    imcf->replicas = 1;
    login = 0;

    if (ngx_array_init(&imcf->seeds, cf->pool, 4,
                       sizeof(ngx_http_ingest_seed_t))
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    for (i = 2; i < cf->args->nelts; i++) {

        if (value[i].len > 14
            && ngx_strncmp(value[i].data, "password_file=", 14) == 0)
        {
            continue;
        }

        if (value[i].len > 9
            && ngx_strncmp(value[i].data, "replicas=", 9) == 0)
        {
            n = ngx_atoi(value[i].data + 9, value[i].len - 9);
            if (n == NGX_ERROR || n > 16) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid \"%V\": 0 to 16", &value[i]);
                return NGX_CONF_ERROR;
            }

            imcf->replicas = (ngx_uint_t) n;
            continue;
        }

        ngx_memzero(&a, sizeof(ngx_http_ingest_address_t));

        rv = ngx_http_ingest_redis_address(cf, &value[i], &a);
        if (rv != NGX_CONF_OK) {
            return rv;
        }

        if (a.db && a.auth.db != 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "a cluster has only database 0, not %ui "
                               "(\"%V\")", a.auth.db, &a.name);
            return NGX_CONF_ERROR;
        }

        if (a.port == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "a cluster's nodes are reached over TCP, "
                               "not \"%V\"", &a.name);
            return NGX_CONF_ERROR;
        }

        /* one login for every node: given once, or the same each time */

        if (a.login) {
            if (login
                && (a.auth.user.len != imcf->auth.user.len
                    || ngx_strncmp(a.auth.user.data, imcf->auth.user.data,
                                   a.auth.user.len) != 0
                    || a.auth.password.len != imcf->auth.password.len
                    || ngx_strncmp(a.auth.password.data,
                                   imcf->auth.password.data,
                                   a.auth.password.len) != 0))
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "the nodes of a cluster share one "
                                   "login: \"%V\" has another", &a.name);
                return NGX_CONF_ERROR;
            }

            login = 1;
            imcf->auth = a.auth;
        }

        seed = ngx_array_push(&imcf->seeds);
        if (seed == NULL) {
            return NGX_CONF_ERROR;
        }

        seed->host = a.host;
        seed->port = a.port;
    }

    if (imcf->seeds.nelts == 0) {
        return "needs at least one address after \"cluster\"";
    }

    if (password_file->len) {
        if (imcf->auth.password.len) {
            return "has a password in an address and \"password_file=\": "
                   "give one";
        }

        rv = ngx_http_ingest_redis_password_file(cf, password_file,
                                                 &imcf->auth.password);
        if (rv != NGX_CONF_OK) {
            return rv;
        }
    }

    seed = imcf->seeds.elts;
    imcf->redis_host = seed[0].host;
    imcf->redis_port = seed[0].port;

    return NGX_CONF_OK;
}


static char *
ngx_http_ingest_redis_address(ngx_conf_t *cf, ngx_str_t *addr,
    ngx_http_ingest_address_t *a)
{
    ngx_str_t  path;

    if (addr->len > 8 && ngx_strncmp(addr->data, "redis://", 8) == 0) {
        return ngx_http_ingest_redis_url(cf, addr, a);
    }

    if (addr->len >= 9 && ngx_strncmp(addr->data, "rediss://", 9) == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"rediss://\": this hiredis has no TLS; reach "
                           "Redis through a local TLS tunnel (stunnel) "
                           "instead");
        return NGX_CONF_ERROR;
    }

    if (addr->len > 7 && ngx_strncmp(addr->data, "unix://", 7) == 0) {
        return ngx_http_ingest_redis_unix(cf, addr, addr->data + 7,
                                          addr->data + addr->len, a);
    }

    a->name = *addr;

    if (addr->len > 5 && ngx_strncmp(addr->data, "unix:", 5) == 0) {
        path.data = addr->data + 5;
        path.len = addr->len - 5;

        return ngx_http_ingest_redis_unix(cf, addr, path.data,
                                          path.data + path.len, a);
    }

    return ngx_http_ingest_redis_host(cf, addr, addr, 0, a);
}


/* redis://[user[:password]@]host[:port][/db] */

static char *
ngx_http_ingest_redis_url(ngx_conf_t *cf, ngx_str_t *addr,
    ngx_http_ingest_address_t *a)
{
    char       *rv;
    u_char     *p, *last, *at, *slash, *name;
    ngx_str_t   hostport;

    p = addr->data + 8;
    last = addr->data + addr->len;

    /*
     * The login ends at the URL's last '@' (a database number has none):
     * a password with a raw '/' or '@' in it is still read as one, and
     * never shown as a host.
     */

    for (at = last; at > p && at[-1] != '@'; at--) { /* void */ }

    slash = ngx_strlchr(at, last, '/');
    if (slash == NULL) {
        slash = last;
    }

    if (at > p) {
        rv = ngx_http_ingest_redis_userinfo(cf, addr, p, at - 1, a);
        if (rv != NGX_CONF_OK) {
            return rv;
        }

        p = at;
    }

    hostport.data = p;
    hostport.len = slash - p;

    rv = ngx_http_ingest_redis_host(cf, addr, &hostport, 1, a);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    if (slash < last) {
        rv = ngx_http_ingest_redis_db(cf, addr, slash + 1, last, a);
        if (rv != NGX_CONF_OK) {
            return rv;
        }
    }

    /* for logs: the URL without its password */

    name = ngx_pnalloc(cf->pool, addr->len + 8);
    if (name == NULL) {
        return NGX_CONF_ERROR;
    }

    a->name.data = name;
    a->name.len = (a->auth.user.len
                   ? ngx_sprintf(name, "redis://%V@%V%s", &a->auth.user,
                                 &hostport, a->db ? "/" : "")
                   : ngx_sprintf(name, "redis://%V%s", &hostport,
                                 a->db ? "/" : ""))
                  - name;

    if (a->db) {
        a->name.len = ngx_sprintf(name + a->name.len, "%ui", a->auth.db)
                      - name;
    }

    return NGX_CONF_OK;
}


/* user[:password], or :password (the default user), percent-encoded */

static char *
ngx_http_ingest_redis_userinfo(ngx_conf_t *cf, ngx_str_t *addr, u_char *p,
    u_char *last, ngx_http_ingest_address_t *a)
{
    u_char  *colon;

    colon = ngx_strlchr(p, last, ':');

    if (ngx_http_ingest_redis_decode(cf->pool, p, colon ? colon : last,
                                     &a->auth.user)
        != NGX_OK
        || (colon != NULL
            && ngx_http_ingest_redis_decode(cf->pool, colon + 1, last,
                                            &a->auth.password)
               != NGX_OK))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid user or password in a Redis URL of "
                           "\"ingest_redis\" (percent-encode \":\", \"@\", "
                           "\"/\" and \"%%\")");
        return NGX_CONF_ERROR;
    }

    if (colon != NULL && a->auth.password.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "an empty password in a Redis URL of "
                           "\"ingest_redis\"");
        return NGX_CONF_ERROR;
    }

    a->login = 1;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_ingest_redis_decode(ngx_pool_t *pool, u_char *p, u_char *last,
    ngx_str_t *out)
{
    u_char      *d;
    ngx_int_t    hi, lo;

    out->data = ngx_pnalloc(pool, last - p + 1);
    if (out->data == NULL) {
        return NGX_ERROR;
    }

    for (d = out->data; p < last; p++) {
        if (*p != '%') {
            if (*p <= ' ' || *p == 0x7f || *p == '@' || *p == '/') {
                return NGX_ERROR;
            }

            *d++ = *p;
            continue;
        }

        if (last - p < 3) {
            return NGX_ERROR;
        }

        hi = ngx_hextoi(p + 1, 1);
        lo = ngx_hextoi(p + 2, 1);

        if (hi == NGX_ERROR || lo == NGX_ERROR) {
            return NGX_ERROR;
        }

        *d++ = (u_char) (hi * 16 + lo);
        p += 2;
    }

    *d = '\0';
    out->len = d - out->data;

    return NGX_OK;
}


/* the database: decimal, 0 to 2^31 - 1 (Redis's own bound is lower) */

static char *
ngx_http_ingest_redis_db(ngx_conf_t *cf, ngx_str_t *addr, u_char *p,
    u_char *last, ngx_http_ingest_address_t *a)
{
    ngx_int_t  n;

    if (p == last) {
        return NGX_CONF_OK;
    }

    n = ngx_atoi(p, last - p);

    if (n == NGX_ERROR || n > 0x7fffffff) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid database number in \"ingest_redis\" "
                           "address (a decimal number)");
        return NGX_CONF_ERROR;
    }

    a->auth.db = (ngx_uint_t) n;
    a->db = 1;

    return NGX_CONF_OK;
}


/*
 * What a message may show of an address: what follows its last '@', since
 * what comes before may be a login (a URL whose scheme nginx does not
 * know, "user:password@host" without one)
 */

static void
ngx_http_ingest_redis_shown(ngx_str_t *text, ngx_str_t *shown)
{
    u_char  *at;

    for (at = text->data + text->len; at > text->data && at[-1] != '@'; at--)
    {
        /* void */
    }

    shown->data = at;
    shown->len = text->data + text->len - at;
}


/*
 * host:port resolved once, as a numeric host and a port; in a URL (url
 * set) the port may be left out and is 6379
 */

static char *
ngx_http_ingest_redis_host(ngx_conf_t *cf, ngx_str_t *addr,
    ngx_str_t *hostport, ngx_uint_t url, ngx_http_ingest_address_t *a)
{
    u_char     *p;
    size_t      len;
    ngx_str_t   shown;
    ngx_url_t   u;

    ngx_memzero(&u, sizeof(ngx_url_t));

    u.url = *hostport;
    u.default_port = 6379;

    ngx_http_ingest_redis_shown(hostport, &shown);

    if (ngx_strlchr(hostport->data, hostport->data + hostport->len, '@')) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid address \"%V\" in \"ingest_redis\": "
                           "a login goes in a URL, redis://user@host",
                           &shown);
        return NGX_CONF_ERROR;
    }

    if (ngx_parse_url(cf->pool, &u) != NGX_OK) {
        if (u.err) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "%s in \"ingest_redis\" \"%V\"", u.err,
                               &shown);
        }

        return NGX_CONF_ERROR;
    }

    if (u.naddrs == 0 || u.uri.len) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid address \"%V\" in \"ingest_redis\"",
                           &shown);
        return NGX_CONF_ERROR;
    }

    if (u.no_port && !url) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"ingest_redis\" \"%V\" has no port: write "
                           "\"%V:6379\", or \"redis://%V\" for Redis's "
                           "default port 6379", hostport, hostport,
                           hostport);
        return NGX_CONF_ERROR;
    }

    p = ngx_pnalloc(cf->pool, NGX_SOCKADDR_STRLEN + 1);
    if (p == NULL) {
        return NGX_CONF_ERROR;
    }

    len = ngx_sock_ntop(u.addrs[0].sockaddr, u.addrs[0].socklen, p,
                        NGX_SOCKADDR_STRLEN, 0);
    p[len] = '\0';

    a->host = p;
    a->port = u.port;

    return NGX_CONF_OK;
}


/* unix:/path, or unix://[user[:password]@]/path[?db=<n>] */

static char *
ngx_http_ingest_redis_unix(ngx_conf_t *cf, ngx_str_t *addr, u_char *p,
    u_char *last, ngx_http_ingest_address_t *a)
{
    char    *rv;
    u_char  *path, *q, *name;
    size_t   len;

    if (addr->len > 7 && ngx_strncmp(addr->data, "unix://", 7) == 0) {

        path = ngx_strlchr(p, last, '/');

        if (path == NULL) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "no socket path in \"ingest_redis\" "
                               "address (unix://user@/run/redis.sock)");
            return NGX_CONF_ERROR;
        }

        if (path > p) {
            if (path[-1] != '@') {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid \"ingest_redis\" address: "
                                   "unix://[user[:password]@]/path");
                return NGX_CONF_ERROR;
            }

            rv = ngx_http_ingest_redis_userinfo(cf, addr, p, path - 1, a);
            if (rv != NGX_CONF_OK) {
                return rv;
            }
        }

        q = ngx_strlchr(path, last, '?');

        if (q != NULL) {
            if (last - q < 5 || ngx_strncmp(q, "?db=", 4) != 0) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid \"ingest_redis\" address: "
                                   "only \"?db=<n>\" may follow the path");
                return NGX_CONF_ERROR;
            }

            rv = ngx_http_ingest_redis_db(cf, addr, q + 4, last, a);
            if (rv != NGX_CONF_OK) {
                return rv;
            }

            last = q;
        }

        p = path;

        name = ngx_pnalloc(cf->pool, addr->len + 32);
        if (name == NULL) {
            return NGX_CONF_ERROR;
        }

        a->name.data = name;
        a->name.len = ngx_sprintf(name, "unix://%V%s%*s", &a->auth.user,
                                  a->auth.user.len ? "@" : "",
                                  last - p, p)
                      - name;

        if (a->db) {
            a->name.len = ngx_sprintf(name + a->name.len, "?db=%ui",
                                      a->auth.db)
                          - name;
        }
    }

    len = last - p;

    if (len == 0 || len >= sizeof(((struct sockaddr_un *) 0)->sun_path)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "unix socket path empty or too long in \"%V\"",
                           &a->name);
        return NGX_CONF_ERROR;
    }

    a->host = ngx_pnalloc(cf->pool, len + 1);
    if (a->host == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_cpystrn(a->host, p, len + 1);
    a->port = 0;

    return NGX_CONF_OK;
}


/* the file's first line, read once, here; it may hold any byte but NUL */

static char *
ngx_http_ingest_redis_password_file(ngx_conf_t *cf, ngx_str_t *path,
    ngx_str_t *password)
{
    u_char           *p, buf[NGX_HTTP_INGEST_MAX_PASSWORD + 2];
    size_t            len;
    ssize_t           n;
    ngx_str_t         name;
    ngx_file_t        file;
    ngx_file_info_t   fi;

    name = *path;

    if (ngx_conf_full_name(cf->cycle, &name, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&file, sizeof(ngx_file_t));
    file.name = name;
    file.log = cf->log;

    /*
     * Non-blocking, and a regular file only: a FIFO would hold nginx -t,
     * a reload and "nginx -s quit" until someone writes to it.
     */

    file.fd = ngx_open_file(name.data, NGX_FILE_RDONLY|NGX_FILE_NONBLOCK,
                            NGX_FILE_OPEN, 0);

    if (file.fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_open_file_n " \"%s\" failed", name.data);
        return NGX_CONF_ERROR;
    }

    if (ngx_fd_info(file.fd, &fi) == NGX_FILE_ERROR || !ngx_is_file(&fi)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%s\" is not a regular file", name.data);
        (void) ngx_close_file(file.fd);
        return NGX_CONF_ERROR;
    }

    n = ngx_read_file(&file, buf, sizeof(buf), 0);

    if (ngx_close_file(file.fd) == NGX_FILE_ERROR) {
        ngx_conf_log_error(NGX_LOG_ALERT, cf, ngx_errno,
                           ngx_close_file_n " \"%s\" failed", name.data);
    }

    if (n == NGX_ERROR) {
        return NGX_CONF_ERROR;
    }

    /* one line: its newline (and a CR before it) is not the password's */

    p = ngx_strlchr(buf, buf + n, '\n');
    len = (p ? p : buf + n) - buf;

    if (len && buf[len - 1] == '\r') {
        len--;
    }

    if (len == 0 || len > NGX_HTTP_INGEST_MAX_PASSWORD
        || ngx_strlchr(buf, buf + len, '\0') != NULL)
    {
        ngx_explicit_memzero(buf, sizeof(buf));
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%s\" must hold a password of 1 to %d bytes on "
                           "its first line", name.data,
                           NGX_HTTP_INGEST_MAX_PASSWORD);
        return NGX_CONF_ERROR;
    }

    password->data = ngx_pnalloc(cf->pool, len);
    if (password->data == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memcpy(password->data, buf, len);
    password->len = len;

    ngx_explicit_memzero(buf, sizeof(buf));

    return NGX_CONF_OK;
}
