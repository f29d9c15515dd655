
/*
 * Copyright (C) ngx_ingest developers
 * SPDX-License-Identifier: BSD-2-Clause
 *
 * One NDJSON line: validated against the whole JSON grammar (UTF-8,
 * escapes, numbers, nesting) in one pass, without building a tree, while
 * the configured top-level fields are picked out.  Numbers and strings
 * are not converted: a field's value is a pointer to its JSON text in the
 * line, which the records batch (JSON too) copies as it is.
 */

#ifndef _NGX_HTTP_INGEST_NDJSON_H_INCLUDED_
#define _NGX_HTTP_INGEST_NDJSON_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>


#define NGX_HTTP_INGEST_INT          0
#define NGX_HTTP_INGEST_REAL         1
#define NGX_HTTP_INGEST_TEXT         2
#define NGX_HTTP_INGEST_BOOL         3

#define NGX_HTTP_INGEST_MAX_FIELDS   64
#define NGX_HTTP_INGEST_MAX_DEPTH    64


typedef struct {
    u_char                   *name;
    size_t                    len;
    unsigned                  type;        /* NGX_HTTP_INGEST_INT ... */
    unsigned                  required:1;
} ngx_http_ingest_field_t;


typedef struct {
    ngx_http_ingest_field_t  *fields;
    size_t                    nfields;
    unsigned                  ignore_case:1;   /* VendorID == vendorid */
} ngx_http_ingest_record_conf_t;


/* a field's value: its JSON text in the line (a string without quotes) */

typedef struct {
    u_char                   *data;        /* NULL: absent or null */
    size_t                    len;
} ngx_http_ingest_value_t;


/*
 * 0 when the line is a valid record (values[] filled, one per field), or
 * -1 with *error saying why it is not.
 */
int ngx_http_ingest_ndjson_line(const ngx_http_ingest_record_conf_t *conf,
    u_char *p, u_char *last, ngx_http_ingest_value_t *values,
    const char **error);


#endif /* _NGX_HTTP_INGEST_NDJSON_H_INCLUDED_ */
