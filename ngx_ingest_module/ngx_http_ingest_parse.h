
/*
 * Copyright (C) ngx_ingest developers
 * SPDX-License-Identifier: BSD-2-Clause
 *
 * The state shared by the counters body parsers (form, key_value, JSON).
 *
 * The parsers never call request APIs: they are fed bytes, chunk by chunk,
 * as nginx hands over the body's buffers (or reads of its temp file), so a
 * key or a number may be split anywhere.  Each complete pair is handed to
 * a callback; the caller stages the pairs and applies them only when the
 * whole body parsed, so a bad body changes nothing.
 */

#ifndef _NGX_HTTP_INGEST_PARSE_H_INCLUDED_
#define _NGX_HTTP_INGEST_PARSE_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>


#define NGX_HTTP_INGEST_PARSE_OK        0
#define NGX_HTTP_INGEST_PARSE_ERROR    -1

#define NGX_HTTP_INGEST_FORM            0   /* k1=v1&k2=v2 */
#define NGX_HTTP_INGEST_KEY_VALUE       1   /* key=<k>&value=<v> */
#define NGX_HTTP_INGEST_JSON            2   /* {"k1":v1,"k2":v2} */

#define NGX_HTTP_INGEST_MAX_KEY_LENGTH  65535


typedef int (*ngx_http_ingest_pair_pt)(void *data, u_char *key, size_t len,
    int64_t value);


typedef struct {
    /* set by ngx_http_ingest_parse_init() from the caller's arguments */
    ngx_http_ingest_pair_pt   pair;        /* called once per complete pair */
    void                     *data;        /* passed to pair() */
    u_char                   *key;         /* caller's buffer, max_key_len */
    size_t                    max_key_len;
    unsigned                  kind;        /* NGX_HTTP_INGEST_FORM, ... */

    /* the result */
    off_t                     offset;      /* bytes of the body consumed */
    off_t                     error_at;    /* where the error was seen */
    const char               *error;       /* NULL while the body is good */
    uintptr_t                 pairs;       /* pairs handed to pair() */

    /* internal state, kept across chunks */
    unsigned                  state;
    off_t                     pair_at;     /* where the pair began */
    unsigned                  target;      /* where decoded bytes go */
    size_t                    key_len;
    uint64_t                  magnitude;   /* of the number being read */
    unsigned                  negative:1;
    unsigned                  digits:1;    /* a digit was seen */
    unsigned                  leading_zero:1;
    unsigned                  have_key:1;  /* key_value: "key" was seen */
    unsigned                  have_value:1;
    unsigned                  utf8_need;   /* continuation bytes owed */
    u_char                    utf8_lo;     /* bounds of the next one */
    u_char                    utf8_hi;
    u_char                    hex;         /* %XX or \uXXXX digits so far */
    unsigned                  hex_count;
    uint32_t                  code_point;  /* \uXXXX being read */
    uint32_t                  high_surrogate;
    u_char                    name[8];     /* key_value: field name */
    size_t                    name_len;
    int64_t                   kv_value;    /* key_value: value seen */
} ngx_http_ingest_parser_t;


void ngx_http_ingest_parse_init(ngx_http_ingest_parser_t *p, unsigned kind,
    u_char *key_buf, size_t max_key_len, ngx_http_ingest_pair_pt pair,
    void *data);
int ngx_http_ingest_parse(ngx_http_ingest_parser_t *p, u_char *pos,
    u_char *last);
int ngx_http_ingest_parse_finish(ngx_http_ingest_parser_t *p);


/* used by the per-format state machines */

int ngx_http_ingest_parse_fail(ngx_http_ingest_parser_t *p, const char *what,
    off_t at);
int ngx_http_ingest_key_byte(ngx_http_ingest_parser_t *p, u_char ch,
    off_t at);
int ngx_http_ingest_key_end(ngx_http_ingest_parser_t *p, off_t at);
int ngx_http_ingest_number_byte(ngx_http_ingest_parser_t *p, u_char ch,
    off_t at);
int ngx_http_ingest_number_end(ngx_http_ingest_parser_t *p, int64_t *value,
    off_t at);
int ngx_http_ingest_hex_value(u_char ch);

/*
 * The fast paths' integer: an optional '-' and at most 18 digits (too few
 * to overflow), from q.  Returns where they end; *digits is where the
 * digits began (the end too when there are none).
 */

static inline u_char *
ngx_http_ingest_short_number(u_char *q, u_char *last, unsigned *negative,
    u_char **digits, uint64_t *magnitude)
{
    uint64_t  m;

    *negative = (q < last && *q == '-');
    q += *negative;
    *digits = q;
    m = 0;

    while (q < last && *q >= '0' && *q <= '9' && q - *digits < 18) {
        m = m * 10 + (*q++ - '0');
    }

    *magnitude = m;

    return q;
}


int ngx_http_ingest_form_parse(ngx_http_ingest_parser_t *p, u_char *pos,
    u_char *last);
int ngx_http_ingest_form_finish(ngx_http_ingest_parser_t *p);
int ngx_http_ingest_json_parse(ngx_http_ingest_parser_t *p, u_char *pos,
    u_char *last);
int ngx_http_ingest_json_finish(ngx_http_ingest_parser_t *p);


#endif /* _NGX_HTTP_INGEST_PARSE_H_INCLUDED_ */
