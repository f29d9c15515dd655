
/*
 * Copyright (C) ngx_ingest developers
 * SPDX-License-Identifier: BSD-2-Clause
 *
 * The records endpoint: NDJSON in, the configured fields of each valid
 * line kept as a row, rows batched to Redis like counters (same lists,
 * same flush, ack modes and spool), and an answer that counts valid and
 * invalid lines with the first reasons:
 *
 *   {"result":{"status":"ok","stats":{"bytes":B,"records":{"valid":V,
 *    "invalid":I,"total":T}},"errors":[{"line":17,"error":"..."}]}}
 *
 * Lines are cut as buffers come, a partial line carried into the next
 * (bounded by ingest_max_line_length); the body is never copied whole.
 */


#include "ngx_http_ingest_records.h"
#include "ngx_http_ingest_ack.h"
#include "ngx_http_ingest_reply.h"
#include "ngx_http_ingest_metrics.h"


#define NGX_HTTP_INGEST_MAX_ERRORS   10          /* reasons in an answer */
#define NGX_HTTP_INGEST_FILE_READ    65536


typedef struct {
    ngx_uint_t                line;
    u_char                   *error;              /* a copy */
    size_t                    len;
} ngx_http_ingest_line_error_t;


typedef struct {
    ngx_http_request_t             *r;
    ngx_http_ingest_records_conf_t *rc;
    ngx_http_ingest_value_t         values[NGX_HTTP_INGEST_MAX_FIELDS];
    ingest_wire_buf_t               rows;         /* this request's */
    ngx_uint_t                      valid;
    ngx_uint_t                      invalid;
    off_t                           bytes;
    u_char                         *carry;        /* a line across buffers */
    size_t                          carry_len;
    size_t                          max_line;
    unsigned                        too_long:1;
    unsigned                        started:1;    /* past a BOM */
    unsigned                        bom:2;        /* its bytes seen yet */
    unsigned                        nomem:1;
    ngx_http_ingest_line_error_t    errors[NGX_HTTP_INGEST_MAX_ERRORS];
    ngx_uint_t                      nerrors;
} ngx_http_ingest_lines_t;


static ngx_int_t ngx_http_ingest_records_handler(ngx_http_request_t *r);
static void ngx_http_ingest_records_body(ngx_http_request_t *r);
static u_char *ngx_http_ingest_records_bom(ngx_http_ingest_lines_t *lx,
    u_char *p, u_char *last);
static void ngx_http_ingest_records_not_bom(ngx_http_ingest_lines_t *lx);
static void ngx_http_ingest_records_chunk(ngx_http_ingest_lines_t *lx,
    u_char *p, u_char *last);
static void ngx_http_ingest_records_line(ngx_http_ingest_lines_t *lx,
    u_char *p, u_char *last);
static void ngx_http_ingest_records_free(void *data);
static ngx_buf_t *ngx_http_ingest_records_answer(ngx_http_ingest_lines_t *lx);


/* ingest_records <table> [queue=<list>] [ignore_case] <field>:<type>[!] ... */

char *
ngx_http_ingest_records(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_ingest_loc_conf_t  *ilcf = conf;

    u_char                          *colon;
    ngx_str_t                       *value, queue, type;
    ngx_uint_t                       i, j, t, n;
    ngx_http_ingest_field_t         *f;
    ngx_http_core_loc_conf_t        *clcf;
    ngx_http_ingest_main_conf_t     *imcf;
    ngx_http_ingest_records_conf_t  *rc, **other;

    static const char  *types[] = { "int", "real", "text", "bool" };

    if (ilcf->records != NULL) {
        return "is duplicate";
    }

    if (ilcf->format != NGX_CONF_UNSET_UINT) {
        return "conflicts with \"ingest_counters\"";
    }

    value = cf->args->elts;

    rc = ngx_pcalloc(cf->pool, sizeof(ngx_http_ingest_records_conf_t));
    if (rc == NULL) {
        return NGX_CONF_ERROR;
    }

    rc->record.fields = ngx_pcalloc(cf->pool,
                                    NGX_HTTP_INGEST_MAX_FIELDS
                                    * sizeof(ngx_http_ingest_field_t));
    if (rc->record.fields == NULL) {
        return NGX_CONF_ERROR;
    }

    if (!ingest_wire_valid_name((char *) value[1].data, value[1].len)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid table name \"%V\": letters, digits and "
                           "\"_\", 1 to 64, not starting with a digit",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    rc->table = value[1];
    ngx_str_set(&queue, INGEST_WIRE_RECORDS_QUEUE);

    for (i = 2; i < cf->args->nelts; i++) {

        if (value[i].len > 6 && ngx_strncmp(value[i].data, "queue=", 6) == 0)
        {
            queue.data = value[i].data + 6;
            queue.len = value[i].len - 6;
            continue;
        }

        if (ngx_strcmp(value[i].data, "ignore_case") == 0) {
            rc->record.ignore_case = 1;
            continue;
        }

        colon = ngx_strlchr(value[i].data, value[i].data + value[i].len, ':');

        if (colon == NULL) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid field \"%V\", expected "
                               "<name>:<int|real|text|bool>[!]", &value[i]);
            return NGX_CONF_ERROR;
        }

        n = rc->record.nfields;

        if (n == NGX_HTTP_INGEST_MAX_FIELDS) {
            return "has too many fields";
        }

        f = &rc->record.fields[n];
        f->name = value[i].data;
        f->len = colon - value[i].data;

        type.data = colon + 1;
        type.len = value[i].data + value[i].len - type.data;

        if (type.len && type.data[type.len - 1] == '!') {
            f->required = 1;
            type.len--;
        }

        for (t = 0; t < 4; t++) {
            if (type.len == ngx_strlen(types[t])
                && ngx_strncmp(type.data, types[t], type.len) == 0)
            {
                break;
            }
        }

        if (!ingest_wire_valid_name((char *) f->name, f->len) || t == 4) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid field \"%V\", expected "
                               "<name>:<int|real|text|bool>[!]", &value[i]);
            return NGX_CONF_ERROR;
        }

        for (j = 0; j < n; j++) {
            if (rc->record.fields[j].len == f->len
                && ngx_strncasecmp(rc->record.fields[j].name, f->name,
                                   f->len) == 0)
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "field \"%*s\" is given twice",
                                   f->len, f->name);
                return NGX_CONF_ERROR;
            }
        }

        f->type = t;

        /* the names as the batch writes them: NUL-terminated copies */
        rc->columns[n] = (const char *) ngx_pnalloc(cf->pool, f->len + 1);
        if (rc->columns[n] == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_cpystrn((u_char *) rc->columns[n], f->name, f->len + 1);
        rc->types[n] = t;
        rc->record.nfields++;
    }

    if (rc->record.nfields == 0) {
        return "needs at least one field";
    }

    rc->table.data = ngx_pnalloc(cf->pool, value[1].len + 1);
    if (rc->table.data == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_cpystrn(rc->table.data, value[1].data, value[1].len + 1);

    imcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_ingest_module);

    rc->queue = ngx_http_ingest_list_index(cf, &queue, 1);
    if (rc->queue == NGX_CONF_UNSET_UINT) {
        return NGX_CONF_ERROR;
    }

    /* one table, one set of columns, wherever it is configured */

    other = imcf->tables.elts;
    n = 0;

    for (i = 0; i < imcf->tables.nelts; i++) {
        if (other[i]->queue != rc->queue) {
            continue;
        }

        if (other[i]->table.len == rc->table.len
            && ngx_strcmp(other[i]->table.data, rc->table.data) == 0)
        {
            if (other[i]->record.nfields != rc->record.nfields) {
                goto conflict;
            }

            for (j = 0; j < rc->record.nfields; j++) {
                if (ngx_strcmp(other[i]->columns[j], rc->columns[j]) != 0
                    || other[i]->types[j] != rc->types[j])
                {
                    goto conflict;
                }
            }

            rc->rows_index = other[i]->rows_index;
            goto registered;
        }

        n++;
    }

    rc->rows_index = n;

    other = ngx_array_push(&imcf->tables);
    if (other == NULL) {
        return NGX_CONF_ERROR;
    }

    *other = rc;

registered:

    ilcf->records = rc;
    ilcf->queue = rc->queue;
    imcf->endpoints++;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_ingest_records_handler;

    if (ngx_http_ingest_metrics_endpoint(cf, ilcf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;

conflict:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "table \"%V\" has other columns in another "
                       "\"ingest_records\"", &rc->table);
    return NGX_CONF_ERROR;
}


static ngx_int_t
ngx_http_ingest_records_handler(ngx_http_request_t *r)
{
    ngx_int_t  rc;

    if (r->method != NGX_HTTP_POST) {
        return ngx_http_ingest_not_allowed(r, "POST");
    }

    if (ngx_http_ingest_worker == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_ingest_worker->full
        && ngx_http_ingest_flush_admit(ngx_http_ingest_worker, 0,
                                       r->connection->log)
           != NGX_OK)
    {
        return ngx_http_ingest_send_full(r);
    }

    rc = ngx_http_read_client_request_body(r, ngx_http_ingest_records_body);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


static void
ngx_http_ingest_records_body(ngx_http_request_t *r)
{
    u_char                      *chunk, *p;
    off_t                        pos;
    ngx_int_t                    rc;
    ssize_t                      n;
    ngx_buf_t                   *b, *answer;
    ngx_chain_t                 *cl;
    ngx_pool_cleanup_t          *cln;
    ngx_http_ingest_await_t     *aw;
    ngx_http_ingest_rows_t      *t;
    ngx_http_ingest_queue_t     *q;
    ngx_http_ingest_lines_t     *lx;
    ngx_http_ingest_worker_t    *w;
    ngx_http_ingest_loc_conf_t  *ilcf;

    ilcf = ngx_http_get_module_loc_conf(r, ngx_http_ingest_module);
    w = ngx_http_ingest_worker;

    if (r->request_body == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    lx = ngx_pcalloc(r->pool, sizeof(ngx_http_ingest_lines_t));
    cln = ngx_pool_cleanup_add(r->pool, 0);

    if (lx == NULL || cln == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    lx->r = r;
    lx->rc = ilcf->records;
    lx->max_line = ilcf->max_line;
    cln->handler = ngx_http_ingest_records_free;
    cln->data = lx;

    lx->carry = ngx_pnalloc(r->pool, lx->max_line);
    if (lx->carry == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    chunk = NULL;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        b = cl->buf;

        if (ngx_buf_in_memory(b)) {
            ngx_http_ingest_records_chunk(lx, b->pos, b->last);
            continue;
        }

        if (!b->in_file) {
            continue;
        }

        if (chunk == NULL) {
            chunk = ngx_pnalloc(r->pool, NGX_HTTP_INGEST_FILE_READ);
            if (chunk == NULL) {
                ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
                return;
            }
        }

        /* a file nginx has just written: read from the page cache */

        for (pos = b->file_pos; pos < b->file_last; pos += n) {
            n = ngx_read_file(b->file, chunk,
                              ngx_min(NGX_HTTP_INGEST_FILE_READ,
                                      b->file_last - pos), pos);

            if (n == NGX_ERROR || n == 0) {
                ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
                return;
            }

            ngx_http_ingest_records_chunk(lx, chunk, chunk + n);
        }
    }

    /* a last line without '\n' (or only the first bytes of a BOM) */

    if (!lx->started) {
        ngx_http_ingest_records_not_bom(lx);
    }

    if (lx->carry_len || lx->too_long) {
        ngx_http_ingest_records_line(lx, lx->carry,
                                     lx->carry + lx->carry_len);
    }

    if (lx->nomem) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    q = ngx_http_ingest_list_queue(w, ilcf->queue);
    t = &q->row_sets[lx->rc->rows_index];

    if (lx->valid) {
        rc = ngx_http_ingest_flush_admit(w, lx->rows.len + 1,
                                         r->connection->log);

        if (rc != NGX_OK) {
            ngx_http_finalize_request(r, rc == NGX_BUSY
                                         ? ngx_http_ingest_send_full(r)
                                         : ngx_http_ingest_send_too_large(r));
            return;
        }

        /* all of the request's rows at once: valid lines are accepted */

        p = (u_char *) ingest_wire_buf_reserve(&t->rows, lx->rows.len + 1);
        if (p == NULL) {
            ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }

        q->rows_bytes -= t->rows.len;

        if (t->nrows) {
            t->rows.data[t->rows.len++] = ',';
        }

        ngx_memcpy(t->rows.data + t->rows.len, lx->rows.data, lx->rows.len);
        t->rows.len += lx->rows.len;
        q->rows_bytes += t->rows.len;

        t->nrows += lx->valid;
        q->nrows += lx->valid;

        ngx_http_ingest_stat_add(records, lx->valid);
    }

    answer = ngx_http_ingest_records_answer(lx);
    if (answer == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    if (lx->valid && ilcf->ack == NGX_HTTP_INGEST_ACK_REDIS) {
        /* it only waits now: its rows are in the list's, its lines done */
        ingest_wire_buf_free(&lx->rows);
        (void) ngx_pfree(r->pool, lx->carry);
        lx->carry = NULL;

        aw = ngx_palloc(r->pool, sizeof(ngx_http_ingest_await_t));

        if (aw == NULL
            || ngx_http_ingest_await(r, aw, &q, 1, ilcf->ack_timeout)
               != NGX_OK)
        {
            ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }

        aw->answer = answer;
        ngx_http_ingest_flush_added(w, q);
        return;
    }

    if (lx->valid) {
        ngx_http_ingest_flush_added(w, q);
    }

    ngx_http_finalize_request(r, ngx_http_ingest_send(r, NGX_HTTP_OK,
                                                     "application/json",
                                                     answer));
}


/*
 * A UTF-8 byte order mark at the very start is not data, even split
 * over the body's buffers; the first bytes of one that turn out to be
 * followed by something else are data, and go to the first line.
 */

static u_char *
ngx_http_ingest_records_bom(ngx_http_ingest_lines_t *lx, u_char *p,
    u_char *last)
{
    static u_char  bom[] = { 0xef, 0xbb, 0xbf };

    while (p < last && lx->bom < 3 && *p == bom[lx->bom]) {
        p++;
        lx->bom++;
    }

    if (lx->bom < 3 && p == last) {
        /* undecided until more comes, or the body ends */
        return p;
    }

    lx->started = 1;

    if (lx->bom < 3) {
        ngx_http_ingest_records_not_bom(lx);
    }

    return p;
}


/* the first bytes of a BOM were data after all: the first line's start */

static void
ngx_http_ingest_records_not_bom(ngx_http_ingest_lines_t *lx)
{
    if (lx->bom > lx->max_line) {
        lx->too_long = 1;
        return;
    }

    ngx_memcpy(lx->carry, "\xef\xbb\xbf", lx->bom);
    lx->carry_len = lx->bom;
}


/* a piece of the body: whole lines now, the rest carried over */

static void
ngx_http_ingest_records_chunk(ngx_http_ingest_lines_t *lx, u_char *p,
    u_char *last)
{
    u_char  *nl;
    size_t   n;

    lx->bytes += last - p;

    if (!lx->started) {
        p = ngx_http_ingest_records_bom(lx, p, last);
    }

    while (p < last) {
        /* libc's memchr looks at 32 bytes a step, ngx_strlchr at one */
        nl = memchr(p, '\n', last - p);

        if (nl == NULL) {
            n = last - p;

            if (lx->too_long || lx->carry_len + n > lx->max_line) {
                lx->too_long = 1;

            } else {
                ngx_memcpy(lx->carry + lx->carry_len, p, n);
                lx->carry_len += n;
            }

            return;
        }

        if (lx->carry_len || lx->too_long) {
            n = nl - p;

            if (lx->too_long || lx->carry_len + n > lx->max_line) {
                lx->too_long = 1;

            } else {
                ngx_memcpy(lx->carry + lx->carry_len, p, n);
                lx->carry_len += n;
            }

            ngx_http_ingest_records_line(lx, lx->carry,
                                         lx->carry + lx->carry_len);

        } else if ((size_t) (nl - p) > lx->max_line) {
            lx->too_long = 1;
            ngx_http_ingest_records_line(lx, p, nl);

        } else {
            ngx_http_ingest_records_line(lx, p, nl);
        }

        p = nl + 1;
    }
}


static void
ngx_http_ingest_records_line(ngx_http_ingest_lines_t *lx, u_char *p,
    u_char *last)
{
    size_t                       i, need, len;
    u_char                      *o;
    const char                  *error;
    ngx_uint_t                   line;
    ngx_http_ingest_value_t     *v;
    ngx_http_ingest_line_error_t *e;

    line = lx->valid + lx->invalid + 1;

    if (last > p && last[-1] == '\r') {
        last--;
    }

    if (lx->too_long) {
        error = "line too long";
        lx->too_long = 0;
        goto invalid;
    }

    lx->carry_len = 0;

    if (ngx_http_ingest_ndjson_line(&lx->rc->record, p, last, lx->values,
                                    &error)
        != 0)
    {
        goto invalid;
    }

    /* the row: the fields' JSON text as it is, null when absent */

    need = 3;

    for (i = 0; i < lx->rc->record.nfields; i++) {
        need += (lx->values[i].data ? lx->values[i].len : 4) + 3;
    }

    o = (u_char *) ingest_wire_buf_reserve(&lx->rows, need);
    if (o == NULL) {
        lx->nomem = 1;
        return;
    }

    o = (u_char *) lx->rows.data + lx->rows.len;

    if (lx->valid) {
        *o++ = ',';
    }

    *o++ = '[';

    for (i = 0; i < lx->rc->record.nfields; i++) {
        v = &lx->values[i];

        if (i) {
            *o++ = ',';
        }

        if (v->data == NULL) {
            o = ngx_cpymem(o, "null", 4);

        } else if (lx->rc->types[i] == NGX_HTTP_INGEST_TEXT) {
            *o++ = '"';
            o = ngx_cpymem(o, v->data, v->len);
            *o++ = '"';

        } else {
            o = ngx_cpymem(o, v->data, v->len);
        }
    }

    *o++ = ']';

    lx->rows.len = o - (u_char *) lx->rows.data;
    lx->valid++;

    return;

invalid:

    lx->carry_len = 0;
    lx->invalid++;

    if (lx->nerrors < NGX_HTTP_INGEST_MAX_ERRORS) {
        e = &lx->errors[lx->nerrors];
        len = ngx_strlen(error);

        /* the scanner's message may be reused by the next line: copy */
        e->error = ngx_pnalloc(lx->r->pool, len);
        if (e->error == NULL) {
            lx->nomem = 1;
            return;
        }

        ngx_memcpy(e->error, error, len);
        e->len = len;
        e->line = line;
        lx->nerrors++;
    }
}


static void
ngx_http_ingest_records_free(void *data)
{
    ngx_http_ingest_lines_t  *lx = data;

    ingest_wire_buf_free(&lx->rows);
}


static ngx_buf_t *
ngx_http_ingest_records_answer(ngx_http_ingest_lines_t *lx)
{
    size_t       size;
    u_char      *p;
    ngx_buf_t   *b;
    ngx_uint_t   i;

    size = 200 + 4 * NGX_OFF_T_LEN;

    for (i = 0; i < lx->nerrors; i++) {
        size += 40 + NGX_INT_T_LEN
                + ngx_http_ingest_json_escaped(lx->errors[i].error,
                                               lx->errors[i].len);
    }

    b = ngx_create_temp_buf(lx->r->pool, size);
    if (b == NULL) {
        return NULL;
    }

    p = ngx_sprintf(b->last, "{\"result\":{\"status\":\"ok\",\"stats\":"
                    "{\"bytes\":%O,\"records\":{\"valid\":%ui,"
                    "\"invalid\":%ui,\"total\":%ui}},\"errors\":[",
                    lx->bytes, lx->valid, lx->invalid,
                    lx->valid + lx->invalid);

    for (i = 0; i < lx->nerrors; i++) {
        p = ngx_sprintf(p, "%s{\"line\":%ui,\"error\":\"", i ? "," : "",
                        lx->errors[i].line);
        p = ngx_http_ingest_json_escape(p, lx->errors[i].error,
                                        lx->errors[i].len);
        p = ngx_cpymem(p, "\"}", 2);
    }

    p = ngx_cpymem(p, "]}}\n", 4);
    b->last = p;

    return b;
}
