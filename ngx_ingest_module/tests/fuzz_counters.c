
/*
 * Copyright (C) ngx_ingest developers
 * SPDX-License-Identifier: BSD-2-Clause
 *
 * libFuzzer target for the counters parsers.  The first byte picks the
 * format and a split point; the rest is the body.  Checks:
 *   - parsing in two pieces gives what parsing whole gives;
 *   - JSON: whatever we accept, cJSON (the oracle) parses too, as an
 *     object with the same keys and the same values (compared where a
 *     double is exact).
 */


#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "../ngx_http_ingest_parse.h"


typedef struct {
    ngx_http_ingest_parser_t  *parser;   /* for pair_at */
    size_t      n;
    char       *keys[64];
    size_t      lens[64];
    int64_t     values[64];
    uint64_t    digest;
} pairs_t;


static int
pair(void *data, u_char *key, size_t len, int64_t value)
{
    size_t    i;
    pairs_t  *p = data;

    for (i = 0; i < len; i++) {
        p->digest = (p->digest ^ key[i]) * 0x100000001b3ULL;
    }

    p->digest = (p->digest ^ (uint64_t) value) * 0x100000001b3ULL;
    p->digest = (p->digest ^ (uint64_t) p->parser->pair_at)
                * 0x100000001b3ULL;

    if (p->n < 64) {
        p->keys[p->n] = malloc(len + 1);
        memcpy(p->keys[p->n], key, len);
        p->keys[p->n][len] = '\0';
        p->lens[p->n] = len;
        p->values[p->n] = value;
    }

    p->n++;

    return 0;
}


static void
pairs_free(pairs_t *p)
{
    size_t  i;

    for (i = 0; i < p->n && i < 64; i++) {
        free(p->keys[i]);
    }
}


static const char *
parse(unsigned kind, const uint8_t *data, size_t size, size_t split,
    pairs_t *out, off_t *at)
{
    u_char                    key[64];
    ngx_http_ingest_parser_t  p;

    memset(out, 0, sizeof(pairs_t));

    ngx_http_ingest_parse_init(&p, kind, key, sizeof(key), pair, out);
    out->parser = &p;
    ngx_http_ingest_parse(&p, (u_char *) data, (u_char *) data + split);
    ngx_http_ingest_parse(&p, (u_char *) data + split,
                          (u_char *) data + size);
    ngx_http_ingest_parse_finish(&p);

    *at = p.error_at;

    return p.error;
}


/* one byte per call: the parsers' fast paths never see a whole pair */

static const char *
parse_bytes(unsigned kind, const uint8_t *data, size_t size, pairs_t *out,
    off_t *at)
{
    size_t                    i;
    u_char                    key[64];
    ngx_http_ingest_parser_t  p;

    memset(out, 0, sizeof(pairs_t));

    ngx_http_ingest_parse_init(&p, kind, key, sizeof(key), pair, out);
    out->parser = &p;

    for (i = 0; i < size; i++) {
        ngx_http_ingest_parse(&p, (u_char *) data + i,
                              (u_char *) data + i + 1);
    }

    ngx_http_ingest_parse_finish(&p);

    *at = p.error_at;

    return p.error;
}


static void
oracle(const uint8_t *data, size_t size, pairs_t *ours)
{
    size_t   i;
    cJSON   *root, *item;

    root = cJSON_ParseWithLength((const char *) data, size);

    if (root == NULL || !cJSON_IsObject(root)) {
        abort();                     /* we accepted what is not an object */
    }

    i = 0;

    cJSON_ArrayForEach(item, root) {
        if (!cJSON_IsNumber(item)) {
            abort();
        }

        if (i < ours->n && i < 64) {
            /* cJSON keys stop at a NUL; ours never hold one */
            if (strcmp(item->string, ours->keys[i]) != 0) {
                abort();
            }

            if (fabs((double) ours->values[i]) < 9007199254740992.0
                && item->valuedouble != (double) ours->values[i])
            {
                abort();
            }
        }

        i++;
    }

    if (i != ours->n) {
        abort();
    }

    cJSON_Delete(root);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    off_t        at1, at2, at3;
    size_t       split;
    unsigned     kind;
    pairs_t      whole, halves, bytes;
    const char  *e1, *e2, *e3;

    if (size < 1) {
        return 0;
    }

    kind = data[0] % 3;
    data++;
    size--;

    split = size ? (size_t) (data[0] * 7) % (size + 1) : 0;

    e1 = parse(kind, data, size, size, &whole, &at1);
    e2 = parse(kind, data, size, split, &halves, &at2);

    if (e1 != e2 || at1 != at2 || whole.n != halves.n
        || whole.digest != halves.digest)
    {
        abort();
    }

    e3 = parse_bytes(kind, data, size, &bytes, &at3);

    if (e1 != e3 || at1 != at3 || whole.n != bytes.n
        || whole.digest != bytes.digest)
    {
        abort();
    }

    if (kind == NGX_HTTP_INGEST_JSON && e1 == NULL) {
        oracle(data, size, &whole);
    }

    pairs_free(&whole);
    pairs_free(&halves);
    pairs_free(&bytes);

    return 0;
}
