
/*
 * Copyright (C) ngx_ingest developers
 * SPDX-License-Identifier: BSD-2-Clause
 *
 * libFuzzer target: the NDJSON line scanner against cJSON as its oracle.
 *   - a line cJSON cannot parse must be invalid for the scanner too;
 *   - a line the scanner accepts must be a JSON object for cJSON, and
 *     every projected value must be what cJSON reads for that field
 *     (numbers compared through strtod, strings through cJSON itself).
 * The first input byte picks the field types; the rest is the line.
 */


#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "../ngx_http_ingest_ndjson.h"


static ngx_http_ingest_field_t  fields[3] = {
    { (u_char *) "a", 1, 0, 0 },
    { (u_char *) "b", 1, 0, 0 },
    { (u_char *) "c", 1, 0, 0 },
};


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                             rc, i;
    char                           *text, *quoted;
    cJSON                          *root, *item, *s;
    size_t                          len;
    const char                     *error;
    ngx_http_ingest_value_t         values[3];
    ngx_http_ingest_record_conf_t   conf;

    if (size < 1) {
        return 0;
    }

    for (i = 0; i < 3; i++) {
        fields[i].type = (data[0] >> (2 * i)) & 3;
        fields[i].required = (data[0] >> 6) & 1;
    }

    data++;
    size--;

    /* cJSON stops at a NUL; so would a line of ours be odd: skip them */
    if (memchr(data, '\0', size) != NULL || memchr(data, '\n', size)) {
        return 0;
    }

    conf.fields = fields;
    conf.nfields = 3;
    conf.ignore_case = 0;

    rc = ngx_http_ingest_ndjson_line(&conf, (u_char *) data,
                                     (u_char *) data + size, values, &error);

    text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';

    root = cJSON_Parse(text);

    if (root == NULL) {
        if (rc == 0) {
            abort();             /* we accepted what is not JSON */
        }

        free(text);
        return 0;
    }

    if (rc != 0) {
        /* cJSON is laxer (UTF-8, surrogates): a refusal is allowed */
        cJSON_Delete(root);
        free(text);
        return 0;
    }

    if (!cJSON_IsObject(root)) {
        abort();
    }

    for (i = 0; i < 3; i++) {
        item = cJSON_GetObjectItemCaseSensitive(root,
                                                (char *) fields[i].name);

        if (values[i].data == NULL) {
            if (item != NULL && !cJSON_IsNull(item)) {
                abort();
            }
            continue;
        }

        if (item == NULL) {
            abort();
        }

        switch (fields[i].type) {

        case NGX_HTTP_INGEST_INT:
        case NGX_HTTP_INGEST_REAL:
            if (!cJSON_IsNumber(item)) {
                abort();
            }

            quoted = strndup((char *) values[i].data, values[i].len);

            if (strtod(quoted, NULL) != item->valuedouble
                && !(isnan(item->valuedouble)))
            {
                abort();
            }

            /* a real the stores could not keep is refused */

            if (fields[i].type == NGX_HTTP_INGEST_REAL
                && isinf(strtod(quoted, NULL)))
            {
                abort();
            }

            free(quoted);
            break;

        case NGX_HTTP_INGEST_TEXT:
            if (!cJSON_IsString(item)) {
                abort();
            }

            len = values[i].len;
            quoted = malloc(len + 3);
            quoted[0] = '"';
            memcpy(quoted + 1, values[i].data, len);
            quoted[len + 1] = '"';
            quoted[len + 2] = '\0';

            s = cJSON_Parse(quoted);

            if (s == NULL || !cJSON_IsString(s)
                || strcmp(s->valuestring, item->valuestring) != 0)
            {
                abort();
            }

            cJSON_Delete(s);
            free(quoted);
            break;

        default:
            if (!cJSON_IsBool(item)
                || (values[i].data[0] == 't') != cJSON_IsTrue(item))
            {
                abort();
            }
        }
    }

    cJSON_Delete(root);
    free(text);

    return 0;
}
