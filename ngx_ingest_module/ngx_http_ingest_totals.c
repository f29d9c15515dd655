
/*
 * Copyright (C) ngx_ingest developers
 * SPDX-License-Identifier: BSD-2-Clause
 *
 * Reading totals back: GET /totals/<key> and GET /totals/?prefix=&after=
 * &limit=, answered from the consumer's SQLite file through nginx's
 * thread pool, so the event loop never waits on disk.  Each pool thread
 * keeps its own read-only connection; the file is in WAL mode, so readers
 * and the consumer's writes never block each other.  A missing or busy
 * database is a 503, never a crash; a missing file at startup is fine (the
 * consumer creates it).
 */


#include "ngx_http_ingest_totals.h"
#include "ngx_http_ingest_reply.h"
#include "ngx_http_ingest_metrics.h"
#include "ingest_wire.h"

#if (NGX_THREADS)

#include <sqlite3.h>


#define NGX_HTTP_INGEST_TOTALS_LIMIT     100     /* keys per page */
#define NGX_HTTP_INGEST_TOTALS_MAX       1000
#define NGX_HTTP_INGEST_TOTALS_DBS       8       /* per thread */
#define NGX_HTTP_INGEST_TOTALS_CAUSE     256
#define NGX_HTTP_INGEST_TOTALS_BUCKETS   10000   /* a range read's most */


struct ngx_http_ingest_totals_conf_s {
    u_char                     *db;          /* NUL-terminated path */
    ngx_thread_pool_t          *thread_pool;

    /* a worker's own: why its database was last not available */
    u_char                      cause[NGX_HTTP_INGEST_TOTALS_CAUSE];
    unsigned                    down:1;
};


typedef struct {
    /* in: set in the event loop before the task is posted */
    const char                 *db;          /* NUL-terminated path */
    u_char                     *key;         /* single key, or NULL */
    size_t                      key_len;
    u_char                     *prefix;
    size_t                      prefix_len;
    u_char                     *after;
    size_t                      after_len;
    ngx_uint_t                  limit;
    uint32_t                    resolution;  /* a range read, 0: none */
    int64_t                     from;        /* [from, to), Unix s */
    int64_t                     to;
    ngx_http_request_t         *request;

    /* out: set by the thread */
    ngx_uint_t                  status;
    u_char                     *body;        /* malloc()ed by the thread */
    size_t                      body_len;
    const char                 *error;
    u_char                      cause[NGX_HTTP_INGEST_TOTALS_CAUSE];
} ngx_http_ingest_totals_ctx_t;


/* a pool thread's connections, one per database path */

typedef struct {
    char                       *path;
    sqlite3                    *db;
    sqlite3_stmt               *one;
    sqlite3_stmt               *page;
    sqlite3_stmt               *range;       /* prepared when first used */
} ngx_http_ingest_totals_conn_t;


static __thread ngx_http_ingest_totals_conn_t
    ngx_http_ingest_totals_conns[NGX_HTTP_INGEST_TOTALS_DBS];


static ngx_int_t ngx_http_ingest_totals_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_ingest_totals_parse(ngx_http_request_t *r,
    ngx_http_ingest_totals_ctx_t *tc);
static ngx_int_t ngx_http_ingest_totals_decode(ngx_http_request_t *r,
    u_char *src, size_t len, u_char **out, size_t *out_len);
static void ngx_http_ingest_totals_thread(void *data, ngx_log_t *log);
static void ngx_http_ingest_totals_done(ngx_event_t *ev);
static ngx_http_ingest_totals_conn_t *ngx_http_ingest_totals_open(
    ngx_http_ingest_totals_ctx_t *tc);
static void ngx_http_ingest_totals_cause(ngx_http_ingest_totals_ctx_t *tc,
    sqlite3 *db);
static void ngx_http_ingest_totals_state(ngx_http_request_t *r,
    ngx_http_ingest_totals_ctx_t *tc);
static void ngx_http_ingest_totals_query(ngx_http_ingest_totals_ctx_t *tc,
    ngx_http_ingest_totals_conn_t *tconn);
static ngx_int_t ngx_http_ingest_totals_range_args(ngx_http_request_t *r,
    ngx_http_ingest_totals_ctx_t *tc);
static ngx_int_t ngx_http_ingest_totals_time(ngx_str_t *arg, int64_t *t);
static void ngx_http_ingest_totals_range(ngx_http_ingest_totals_ctx_t *tc,
    ngx_http_ingest_totals_conn_t *tconn);


/* ingest_totals <file> */

char *
ngx_http_ingest_totals(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_ingest_loc_conf_t  *ilcf = conf;

    ngx_str_t                      *value, path;
    ngx_http_core_loc_conf_t       *clcf;
    ngx_http_ingest_totals_conf_t  *tcf;

    if (ilcf->totals != NULL) {
        return "is duplicate";
    }

    value = cf->args->elts;
    path = value[1];

    if (ngx_conf_full_name(cf->cycle, &path, 0) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    tcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_ingest_totals_conf_t));
    if (tcf == NULL) {
        return NGX_CONF_ERROR;
    }

    /* sqlite3_open_v2() wants a C string */

    tcf->db = ngx_pnalloc(cf->pool, path.len + 1);
    if (tcf->db == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_cpystrn(tcf->db, path.data, path.len + 1);

    /* the "default" pool: created by nginx when no thread_pool names it */

    tcf->thread_pool = ngx_thread_pool_add(cf, NULL);
    if (tcf->thread_pool == NULL) {
        return NGX_CONF_ERROR;
    }

    ilcf->totals = tcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_ingest_totals_handler;

    if (ngx_http_ingest_metrics_endpoint(cf, ilcf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_ingest_totals_handler(ngx_http_request_t *r)
{
    ngx_int_t                      rc;
    ngx_thread_task_t             *task;
    ngx_http_ingest_loc_conf_t    *ilcf;
    ngx_http_ingest_totals_ctx_t  *tc;

    if (!(r->method & (NGX_HTTP_GET | NGX_HTTP_HEAD))) {
        return ngx_http_ingest_not_allowed(r, "GET, HEAD");
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    ilcf = ngx_http_get_module_loc_conf(r, ngx_http_ingest_module);

    task = ngx_thread_task_alloc(r->pool,
                                 sizeof(ngx_http_ingest_totals_ctx_t));
    if (task == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    tc = task->ctx;
    tc->db = (const char *) ilcf->totals->db;
    tc->request = r;

    rc = ngx_http_ingest_totals_parse(r, tc);

    if (rc == NGX_HTTP_BAD_REQUEST) {
        /* answered here, once: nothing is queried */
        return ngx_http_ingest_send_json(r, NGX_HTTP_BAD_REQUEST, tc->error,
                                         -1);
    }

    if (rc != NGX_OK) {
        return rc;
    }

    task->handler = ngx_http_ingest_totals_thread;
    task->event.handler = ngx_http_ingest_totals_done;
    task->event.data = task;
    task->event.log = r->connection->log;

    if (ngx_thread_task_post(ilcf->totals->thread_pool, task) != NGX_OK) {
        /* the queue is full: say so rather than wait */
        return ngx_http_ingest_send_json(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                         "too many reads queued", -1);
    }

    /* the request's pool must outlive the thread's use of tc */
    r->main->blocked++;
    r->aio = 1;
    r->main->count++;

    return NGX_DONE;
}


/*
 * The key comes from the raw URI, percent-decoded whole here: nginx's
 * decoded r->uri merges slashes and resolves dot segments, which are
 * legitimate in a key.  It is what follows the location's prefix in the
 * decoded path, however the path was encoded; a regex location takes the
 * last path segment.  The list mode reads prefix, after and limit from
 * the args, decoded whole too ("?" may be in a key).  NGX_OK, 500, or
 * 400 with tc->error saying why.
 */

static ngx_int_t
ngx_http_ingest_totals_parse(ngx_http_request_t *r,
    ngx_http_ingest_totals_ctx_t *tc)
{
    u_char                    *p, *last, *path;
    size_t                     len;
    ngx_str_t                  arg;
    ngx_int_t                  n;
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    p = r->unparsed_uri.data;
    last = ngx_strlchr(p, p + r->unparsed_uri.len, '?');

    if (last == NULL) {
        last = p + r->unparsed_uri.len;
    }

    if (ngx_http_ingest_totals_decode(r, p, last - p, &path, &len) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (clcf->regex == NULL) {
        if (len < clcf->name.len
            || ngx_strncmp(path, clcf->name.data, clcf->name.len) != 0)
        {
            tc->error = "invalid key";
            return NGX_HTTP_BAD_REQUEST;
        }

        p = path + clcf->name.len;

    } else {
        for (p = path + len; p > path && p[-1] != '/'; p--) { /* void */ }
    }

    if (p < path + len) {
        tc->key = p;
        tc->key_len = path + len - p;
        return ngx_http_ingest_totals_range_args(r, tc);
    }

    tc->limit = NGX_HTTP_INGEST_TOTALS_LIMIT;

    if (ngx_http_arg(r, (u_char *) "limit", 5, &arg) == NGX_OK) {
        n = ngx_atoi(arg.data, arg.len);

        if (n <= 0 || n > NGX_HTTP_INGEST_TOTALS_MAX) {
            tc->error = "limit must be 1 to 1000";
            return NGX_HTTP_BAD_REQUEST;
        }

        tc->limit = n;
    }

    if (ngx_http_arg(r, (u_char *) "prefix", 6, &arg) == NGX_OK
        && ngx_http_ingest_totals_decode(r, arg.data, arg.len, &tc->prefix,
                                         &tc->prefix_len)
           != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_arg(r, (u_char *) "after", 5, &arg) == NGX_OK
        && ngx_http_ingest_totals_decode(r, arg.data, arg.len, &tc->after,
                                         &tc->after_len)
           != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return NGX_OK;
}


/*
 * A key's buckets: ?resolution=1h&from=<t>&to=<t>, the buckets of that
 * resolution that start in [from, to), a time in Unix seconds or RFC 3339
 * (2026-12-02T14:00:00Z, an offset or fractions allowed).  Without
 * resolution, the total.  NGX_OK, or 400 with tc->error.
 */

static ngx_int_t
ngx_http_ingest_totals_range_args(ngx_http_request_t *r,
    ngx_http_ingest_totals_ctx_t *tc)
{
    int64_t    n;
    ngx_str_t  arg;

    if (ngx_http_arg(r, (u_char *) "resolution", 10, &arg) != NGX_OK) {
        if (ngx_http_arg(r, (u_char *) "from", 4, &arg) == NGX_OK
            || ngx_http_arg(r, (u_char *) "to", 2, &arg) == NGX_OK)
        {
            tc->error = "from and to need a resolution";
            return NGX_HTTP_BAD_REQUEST;
        }

        return NGX_OK;
    }

    n = ingest_wire_duration((const char *) arg.data, arg.len);

    if (!ingest_wire_valid_resolution(n)) {
        tc->error = "resolution must be 1s to 1d and divide a day "
                    "(e.g. 1m, 1h, 1d)";
        return NGX_HTTP_BAD_REQUEST;
    }

    tc->resolution = (uint32_t) n;

    if (ngx_http_arg(r, (u_char *) "from", 4, &arg) != NGX_OK
        || ngx_http_ingest_totals_time(&arg, &tc->from) != NGX_OK)
    {
        tc->error = "from must be a time: Unix seconds or RFC 3339";
        return NGX_HTTP_BAD_REQUEST;
    }

    if (ngx_http_arg(r, (u_char *) "to", 2, &arg) != NGX_OK
        || ngx_http_ingest_totals_time(&arg, &tc->to) != NGX_OK)
    {
        tc->error = "to must be a time: Unix seconds or RFC 3339";
        return NGX_HTTP_BAD_REQUEST;
    }

    if (tc->from >= tc->to) {
        tc->error = "from must be before to";
        return NGX_HTTP_BAD_REQUEST;
    }

    if ((tc->to - tc->from) / tc->resolution
        >= NGX_HTTP_INGEST_TOTALS_BUCKETS)
    {
        tc->error = "the range holds more than 10000 buckets of that "
                    "resolution: narrow it";
        return NGX_HTTP_BAD_REQUEST;
    }

    return NGX_OK;
}


/* days of the months of a common year */
static const int64_t  ngx_http_ingest_totals_mdays[12] = {
    31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31
};


/*
 * Unix seconds (digits), or RFC 3339: YYYY-MM-DDTHH:MM:SS, fractions
 * dropped, then Z or +HH:MM / -HH:MM ("+" may come as %2B); a day the
 * month does not have is no time
 */

static ngx_int_t
ngx_http_ingest_totals_time(ngx_str_t *arg, int64_t *t)
{
    u_char     *p, *last, buf[64];
    int64_t     y, mo, d, h, mi, sec, days, off, era, yoe, doy, doe;
    ngx_int_t   n;
    ngx_uint_t  i;

    if (arg->len == 0 || arg->len >= sizeof(buf)) {
        return NGX_ERROR;
    }

    p = buf;
    last = arg->data;
    ngx_unescape_uri(&p, &last, arg->len, 0);
    last = p;
    p = buf;

    for (i = 0; p + i < last && p[i] >= '0' && p[i] <= '9'; i++) {
        /* void */
    }

    if (p + i == last) {
        if (i > 12) {
            return NGX_ERROR;
        }

        n = ngx_atoi(p, i);
        if (n == NGX_ERROR) {
            return NGX_ERROR;
        }

        *t = n;
        return NGX_OK;
    }

    /* YYYY-MM-DDTHH:MM:SS */

    if (last - p < 20 || p[4] != '-' || p[7] != '-'
        || (p[10] != 'T' && p[10] != 't' && p[10] != ' ')
        || p[13] != ':' || p[16] != ':')
    {
        return NGX_ERROR;
    }

    y = ngx_atoi(p, 4);
    mo = ngx_atoi(p + 5, 2);
    d = ngx_atoi(p + 8, 2);
    h = ngx_atoi(p + 11, 2);
    mi = ngx_atoi(p + 14, 2);
    sec = ngx_atoi(p + 17, 2);

    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || h < 0 || h > 23
        || mi < 0 || mi > 59 || sec < 0 || sec > 60
        || d > ngx_http_ingest_totals_mdays[mo - 1]
               + (mo == 2 && y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)))
    {
        return NGX_ERROR;
    }

    p += 19;

    if (p < last && *p == '.') {
        /* a fraction has a digit at least; it is dropped */
        if (p + 1 == last || p[1] < '0' || p[1] > '9') {
            return NGX_ERROR;
        }

        for (p++; p < last && *p >= '0' && *p <= '9'; p++) { /* void */ }
    }

    if (last - p == 1 && (*p == 'Z' || *p == 'z')) {
        off = 0;

    } else if (last - p == 6 && (*p == '+' || *p == '-') && p[3] == ':') {
        n = ngx_atoi(p + 1, 2);
        i = (ngx_uint_t) ngx_atoi(p + 4, 2);

        if (n == NGX_ERROR || n > 23 || (ngx_int_t) i == NGX_ERROR
            || i > 59)
        {
            return NGX_ERROR;
        }

        off = (n * 60 + (int64_t) i) * 60 * (*p == '-' ? -1 : 1);

    } else {
        return NGX_ERROR;
    }

    /* days from 1970-01-01 (proleptic Gregorian, H. Hinnant's method) */

    y -= (mo <= 2);
    era = y / 400;
    yoe = y - era * 400;
    doy = (153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    days = era * 146097 + doe - 719468;

    *t = days * 86400 + h * 3600 + mi * 60 + sec - off;

    return NGX_OK;
}


/* every %XX of src decoded, "?" and "%3F" included, into the pool */

static ngx_int_t
ngx_http_ingest_totals_decode(ngx_http_request_t *r, u_char *src, size_t len,
    u_char **out, size_t *out_len)
{
    u_char  *dst;

    *out = ngx_pnalloc(r->pool, len + 1);
    if (*out == NULL) {
        return NGX_ERROR;
    }

    dst = *out;
    ngx_unescape_uri(&dst, &src, len, 0);
    *out_len = dst - *out;

    return NGX_OK;
}


/* in a pool thread: no nginx pools, events or timers here */

static void
ngx_http_ingest_totals_thread(void *data, ngx_log_t *log)
{
    ngx_http_ingest_totals_ctx_t  *tc = data;

    ngx_http_ingest_totals_conn_t  *tconn;

    tconn = ngx_http_ingest_totals_open(tc);

    if (tconn == NULL) {
        tc->status = NGX_HTTP_SERVICE_UNAVAILABLE;
        return;
    }

    ngx_http_ingest_totals_query(tc, tconn);
}


static ngx_http_ingest_totals_conn_t *
ngx_http_ingest_totals_open(ngx_http_ingest_totals_ctx_t *tc)
{
    int                             rc;
    const char                     *path;
    ngx_uint_t                      i, tries;
    ngx_http_ingest_totals_conn_t  *tconn;

    path = tc->db;

    for (i = 0; i < NGX_HTTP_INGEST_TOTALS_DBS; i++) {
        tconn = &ngx_http_ingest_totals_conns[i];

        if (tconn->path != NULL && strcmp(tconn->path, path) == 0) {
            return tconn;
        }

        if (tconn->path == NULL) {
            break;
        }
    }

    if (i == NGX_HTTP_INGEST_TOTALS_DBS) {
        tc->error = "too many databases";
        return NULL;
    }

    /* read-only, this thread only; no file yet is a 503, not a crash */

    if (sqlite3_open_v2(path, &tconn->db,
                        SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL)
        != SQLITE_OK)
    {
        ngx_http_ingest_totals_cause(tc, tconn->db);
        sqlite3_close(tconn->db);
        tconn->db = NULL;
        tc->error = "database not available";
        return NULL;
    }

    sqlite3_busy_timeout(tconn->db, 1000);

    /*
     * Reading the schema may meet a transient lock (the consumer's WAL
     * checkpoint): try a few times, a pool thread may sleep.
     */

    for (tries = 0; /* void */ ; tries++) {
        rc = sqlite3_prepare_v2(tconn->db,
                                "SELECT value, updated_at FROM totals"
                                " WHERE key = ?1", -1, &tconn->one, NULL);

        if (rc == SQLITE_OK) {
            rc = sqlite3_prepare_v2(tconn->db,
                                    "SELECT key, value, updated_at"
                                    " FROM totals"
                                    " WHERE key > ?1 AND key >= ?2"
                                    " AND (?3 IS NULL OR key < ?3)"
                                    " ORDER BY key LIMIT ?4", -1,
                                    &tconn->page, NULL);
        }

        if (rc == SQLITE_OK) {
            break;
        }

        sqlite3_finalize(tconn->one);
        sqlite3_finalize(tconn->page);
        tconn->one = NULL;
        tconn->page = NULL;

        if ((rc & 0xff) != SQLITE_BUSY && (rc & 0xff) != SQLITE_LOCKED) {
            break;
        }

        if (tries == 10) {
            break;
        }

        ngx_msleep(10);
    }

    if (rc != SQLITE_OK) {
        /* no table yet (the consumer has not run), or still locked */
        ngx_http_ingest_totals_cause(tc, tconn->db);
        sqlite3_close(tconn->db);
        tconn->db = NULL;
        tc->error = ((rc & 0xff) == SQLITE_BUSY
                     || (rc & 0xff) == SQLITE_LOCKED)
                    ? "database busy" : "database not available";
        return NULL;
    }

    tconn->path = strdup(path);
    if (tconn->path == NULL) {
        sqlite3_finalize(tconn->one);
        sqlite3_finalize(tconn->page);
        sqlite3_close(tconn->db);
        tconn->db = NULL;
        tc->error = "out of memory";
        return NULL;
    }

    return tconn;
}


static void
ngx_http_ingest_totals_query(ngx_http_ingest_totals_ctx_t *tc,
    ngx_http_ingest_totals_conn_t *tconn)
{
    int              rc;
    u_char          *p, *upper, *last;
    size_t           size, len, need, upper_len, last_len, last_size, key_len;
    ngx_uint_t       rows, more;
    sqlite3_stmt    *s;
    const u_char    *key;

    if (tc->key != NULL && tc->resolution) {
        ngx_http_ingest_totals_range(tc, tconn);
        return;
    }

    if (tc->key != NULL) {
        s = tconn->one;
        sqlite3_bind_text(s, 1, (char *) tc->key, (int) tc->key_len,
                          SQLITE_STATIC);

        rc = sqlite3_step(s);

        if (rc == SQLITE_DONE) {
            sqlite3_reset(s);
            tc->status = NGX_HTTP_NOT_FOUND;
            tc->error = "no such key";
            return;
        }

        if (rc != SQLITE_ROW) {
            sqlite3_reset(s);
            tc->status = NGX_HTTP_SERVICE_UNAVAILABLE;
            tc->error = (rc == SQLITE_BUSY) ? "database busy"
                                            : "database error";
            return;
        }

        size = sizeof("{\"key\":\"\",\"value\":,\"updated_at\":}\n")
               + ngx_http_ingest_json_escaped(tc->key, tc->key_len)
               + 2 * NGX_INT64_LEN;

        tc->body = malloc(size);
        if (tc->body == NULL) {
            sqlite3_reset(s);
            tc->status = NGX_HTTP_INTERNAL_SERVER_ERROR;
            return;
        }

        p = ngx_cpymem(tc->body, "{\"key\":\"", 8);
        p = ngx_http_ingest_json_escape(p, tc->key, tc->key_len);
        p = ngx_sprintf(p, "\",\"value\":%L,\"updated_at\":%L}\n",
                        (int64_t) sqlite3_column_int64(s, 0),
                        (int64_t) sqlite3_column_int64(s, 1));

        tc->body_len = p - tc->body;
        tc->status = NGX_HTTP_OK;
        sqlite3_reset(s);
        return;
    }

    /* a page: keys above "after" that start with "prefix" */

    tc->status = NGX_HTTP_INTERNAL_SERVER_ERROR;

    upper = NULL;
    upper_len = tc->prefix_len;

    if (tc->prefix_len) {
        /* the first string above every key that has the prefix */
        upper = malloc(tc->prefix_len);
        if (upper == NULL) {
            return;
        }

        ngx_memcpy(upper, tc->prefix, tc->prefix_len);

        while (upper_len && upper[upper_len - 1] == 0xff) {
            upper_len--;
        }

        if (upper_len) {
            upper[upper_len - 1]++;
        }
    }

    s = tconn->page;
    sqlite3_bind_text(s, 1, tc->after ? (char *) tc->after : "",
                      (int) tc->after_len, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, tc->prefix ? (char *) tc->prefix : "",
                      (int) tc->prefix_len, SQLITE_STATIC);

    if (upper_len) {
        sqlite3_bind_text(s, 3, (char *) upper, (int) upper_len,
                          SQLITE_STATIC);

    } else {
        sqlite3_bind_null(s, 3);
    }

    /* one row more than asked tells whether there is a next page */
    sqlite3_bind_int64(s, 4, (sqlite3_int64) tc->limit + 1);

    size = 256;
    len = 0;
    rows = 0;
    more = 0;
    last = NULL;
    last_len = 0;
    last_size = 0;

    tc->body = malloc(size);
    if (tc->body == NULL) {
        goto failed;
    }

    len = ngx_cpymem(tc->body, "{\"totals\":[", 11) - tc->body;

    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {

        if (rows == tc->limit) {
            more = 1;
            break;
        }

        key = sqlite3_column_text(s, 0);
        key_len = sqlite3_column_bytes(s, 0);
        need = ngx_http_ingest_json_escaped(key, key_len)
               + 2 * NGX_INT64_LEN + 64;

        if (len + need > size) {
            size = 2 * size + need;

            p = realloc(tc->body, size);
            if (p == NULL) {
                goto failed;
            }

            tc->body = p;
        }

        p = ngx_cpymem(tc->body + len, rows ? ",{\"key\":\"" : "{\"key\":\"",
                       rows ? 9 : 8);
        p = ngx_http_ingest_json_escape(p, key, key_len);
        p = ngx_sprintf(p, "\",\"value\":%L,\"updated_at\":%L}",
                        (int64_t) sqlite3_column_int64(s, 1),
                        (int64_t) sqlite3_column_int64(s, 2));

        len = p - tc->body;
        rows++;

        /* the cursor of the next page is the last key of this one */

        if (key_len > last_size) {
            last_size = key_len * 2;

            p = realloc(last, last_size);
            if (p == NULL) {
                goto failed;
            }

            last = p;
        }

        ngx_memcpy(last, key, key_len);
        last_len = key_len;
    }

    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        tc->status = NGX_HTTP_SERVICE_UNAVAILABLE;
        tc->error = (rc == SQLITE_BUSY) ? "database busy" : "database error";
        goto failed;
    }

    need = (more ? ngx_http_ingest_json_escaped(last, last_len) : 0) + 32;

    if (len + need > size) {
        p = realloc(tc->body, len + need);
        if (p == NULL) {
            goto failed;
        }

        tc->body = p;
    }

    p = tc->body + len;

    if (more) {
        p = ngx_cpymem(p, "],\"next\":\"", 10);
        p = ngx_http_ingest_json_escape(p, last, last_len);
        p = ngx_cpymem(p, "\"}\n", 3);

    } else {
        p = ngx_cpymem(p, "],\"next\":null}\n", 15);
    }

    tc->body_len = p - tc->body;
    tc->status = NGX_HTTP_OK;

    sqlite3_reset(s);
    free(upper);
    free(last);
    return;

failed:

    sqlite3_reset(s);
    free(upper);
    free(last);
    free(tc->body);
    tc->body = NULL;
}


/*
 * In the thread: the key's buckets of a resolution in [from, to), in
 * order, and their sum; buckets with nothing in them are not listed.
 */

static void
ngx_http_ingest_totals_range(ngx_http_ingest_totals_ctx_t *tc,
    ngx_http_ingest_totals_conn_t *tconn)
{
    int            rc;
    u_char        *p;
    size_t         size, len;
    int64_t        v;
    ngx_uint_t     rows;
    __int128       sum;
    sqlite3_stmt  *s;

    if (tconn->range == NULL
        && sqlite3_prepare_v2(tconn->db,
                              "SELECT start, value FROM buckets"
                              " WHERE key = ?1 AND resolution = ?2"
                              " AND start >= ?3 AND start < ?4"
                              " ORDER BY start", -1, &tconn->range, NULL)
           != SQLITE_OK)
    {
        /* no buckets table: a consumer older than buckets made the file */
        ngx_http_ingest_totals_cause(tc, tconn->db);
        sqlite3_finalize(tconn->range);
        tconn->range = NULL;
        tc->status = NGX_HTTP_SERVICE_UNAVAILABLE;
        tc->error = "database has no buckets";
        return;
    }

    s = tconn->range;
    sqlite3_bind_text(s, 1, (char *) tc->key, (int) tc->key_len,
                      SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, tc->resolution);
    sqlite3_bind_int64(s, 3, tc->from);
    sqlite3_bind_int64(s, 4, tc->to);

    tc->status = NGX_HTTP_INTERNAL_SERVER_ERROR;

    /* at most 10000 rows of two numbers: sized once */

    size = 128 + ngx_http_ingest_json_escaped(tc->key, tc->key_len)
           + (NGX_HTTP_INGEST_TOTALS_BUCKETS + 1) * (2 * NGX_INT64_LEN + 24);

    tc->body = malloc(size);
    if (tc->body == NULL) {
        sqlite3_reset(s);
        return;
    }

    p = ngx_cpymem(tc->body, "{\"key\":\"", 8);
    p = ngx_http_ingest_json_escape(p, tc->key, tc->key_len);
    p = ngx_sprintf(p, "\",\"resolution\":%uD,\"from\":%L,\"to\":%L,"
                    "\"buckets\":[", tc->resolution, tc->from, tc->to);

    sum = 0;
    rows = 0;

    while ((rc = sqlite3_step(s)) == SQLITE_ROW
           && rows < NGX_HTTP_INGEST_TOTALS_BUCKETS)
    {
        v = sqlite3_column_int64(s, 1);

        /* exact: 10000 64-bit values cannot overflow 128 bits */
        sum += v;

        p = ngx_sprintf(p, "%s{\"start\":%L,\"value\":%L}", rows ? "," : "",
                        (int64_t) sqlite3_column_int64(s, 0), v);
        rows++;
    }

    sqlite3_reset(s);

    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        free(tc->body);
        tc->body = NULL;
        tc->status = NGX_HTTP_SERVICE_UNAVAILABLE;
        tc->error = (rc == SQLITE_BUSY) ? "database busy" : "database error";
        return;
    }

    if (sum > INT64_MAX || sum < INT64_MIN) {
        /* each bucket is exact; their sum is beyond 64 bits */
        p = ngx_cpymem(p, "],\"sum\":null}\n",
                       sizeof("],\"sum\":null}\n") - 1);

    } else {
        p = ngx_sprintf(p, "],\"sum\":%L}\n", (int64_t) sum);
    }

    len = p - tc->body;

    tc->body_len = len;
    tc->status = NGX_HTTP_OK;
}


/*
 * In the thread: SQLite's words for why the database could not be had,
 * and the system's, for the log ("unable to open database file (2: No
 * such file or directory)").
 */

static void
ngx_http_ingest_totals_cause(ngx_http_ingest_totals_ctx_t *tc, sqlite3 *db)
{
    int      err;
    u_char  *p, *last;

    p = tc->cause;
    last = tc->cause + sizeof(tc->cause) - 1;

    p = ngx_slprintf(p, last, "%s",
                     db ? sqlite3_errmsg(db) : "out of memory");

    err = db ? sqlite3_system_errno(db) : 0;

    if (err) {
        p = ngx_slprintf(p, last, " (%d: ", err);
        p = ngx_strerror(err, p, last - p);
        p = ngx_slprintf(p, last, ")");
    }

    *p = '\0';
}


/*
 * Back in the event loop: a database that is not available is logged
 * with its cause once, until it is available again or the cause changes.
 */

static void
ngx_http_ingest_totals_state(ngx_http_request_t *r,
    ngx_http_ingest_totals_ctx_t *tc)
{
    ngx_http_ingest_loc_conf_t     *ilcf;
    ngx_http_ingest_totals_conf_t  *tcf;

    ilcf = ngx_http_get_module_loc_conf(r, ngx_http_ingest_module);
    tcf = ilcf->totals;

    if (tc->status != NGX_HTTP_SERVICE_UNAVAILABLE) {
        if (tcf->down && tc->status != NGX_HTTP_INTERNAL_SERVER_ERROR) {
            tcf->down = 0;
            tcf->cause[0] = '\0';
            ngx_log_error(NGX_LOG_NOTICE, r->connection->log, 0,
                          "ingest totals \"%s\": database available again",
                          tc->db);
        }

        return;
    }

    if (tcf->down && ngx_strcmp(tcf->cause, tc->cause) == 0) {
        return;
    }

    tcf->down = 1;
    ngx_cpystrn(tcf->cause, tc->cause, sizeof(tcf->cause));

    ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                  "ingest totals \"%s\": %s%s%s", tc->db, tc->error,
                  tc->cause[0] ? ": " : "", tc->cause);
}


/* back in the event loop: answer with what the thread found */

static void
ngx_http_ingest_totals_done(ngx_event_t *ev)
{
    ngx_int_t                      rc;
    ngx_buf_t                     *b;
    ngx_connection_t              *c;
    ngx_thread_task_t             *task;
    ngx_http_request_t            *r;
    ngx_http_ingest_totals_ctx_t  *tc;

    task = ev->data;
    tc = task->ctx;
    r = tc->request;
    c = r->connection;

    r->main->blocked--;
    r->aio = 0;

    ngx_http_ingest_totals_state(r, tc);

    if (tc->status != NGX_HTTP_OK) {
        rc = ngx_http_ingest_send_json(r, tc->status,
                                       tc->error ? tc->error
                                                 : "internal error", -1);
        goto done;
    }

    b = ngx_create_temp_buf(r->pool, tc->body_len);
    if (b == NULL) {
        rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
        goto done;
    }

    b->last = ngx_cpymem(b->last, tc->body, tc->body_len);

    rc = ngx_http_ingest_send(r, NGX_HTTP_OK, "application/json", b);

done:

    free(tc->body);
    tc->body = NULL;

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}


#endif
