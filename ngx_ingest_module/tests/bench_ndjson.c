
/*
 * Copyright (C) ngx_ingest developers
 * SPDX-License-Identifier: BSD-2-Clause
 *
 * CPU time per NDJSON body, one core, no HTTP: the module's line scanner
 * against cJSON_Parse per line with the same projection (the approach the
 * scanner replaces), in the same run.
 *
 *   bench_ndjson FILE [rounds]     prints "scanner_ms=.. cjson_ms=.."
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "../ngx_http_ingest_ndjson.h"


static ngx_http_ingest_field_t  fields[] = {
    { (u_char *) "vendorid", 8, NGX_HTTP_INGEST_INT, 1 },
    { (u_char *) "tpep_pickup_datetime", 20, NGX_HTTP_INGEST_TEXT, 0 },
    { (u_char *) "trip_distance", 13, NGX_HTTP_INGEST_REAL, 0 },
    { (u_char *) "total_amount", 12, NGX_HTTP_INGEST_REAL, 0 },
};


static double
cpu_ms(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);

    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}


int
main(int argc, char **argv)
{
    int                             rounds, i, valid;
    char                           *body, *p, *nl, *line, out[256];
    long                            n;
    FILE                           *f;
    double                          t0, t1, t2;
    size_t                          j;
    cJSON                          *root, *item;
    const char                     *error;
    ngx_http_ingest_value_t         values[4];
    ngx_http_ingest_record_conf_t   conf;

    if (argc < 2) {
        fprintf(stderr, "usage: bench_ndjson FILE [rounds]\n");
        return 1;
    }

    rounds = argc > 2 ? atoi(argv[2]) : 50;

    f = fopen(argv[1], "rb");
    if (f == NULL) {
        perror(argv[1]);
        return 1;
    }

    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    body = malloc(n + 1);

    if (body == NULL || fread(body, 1, n, f) != (size_t) n) {
        return 1;
    }

    body[n] = '\0';
    fclose(f);

    conf.fields = fields;
    conf.nfields = 4;
    conf.ignore_case = 0;

    valid = 0;
    t0 = cpu_ms();

    for (i = 0; i < rounds; i++) {
        for (p = body; p < body + n; p = nl + 1) {
            nl = memchr(p, '\n', body + n - p);
            if (nl == NULL) {
                nl = body + n;
            }

            if (ngx_http_ingest_ndjson_line(&conf, (u_char *) p,
                                            (u_char *) nl, values, &error)
                == 0)
            {
                valid++;
            }
        }
    }

    t1 = cpu_ms();

    line = malloc(n + 1);

    for (i = 0; i < rounds; i++) {
        for (p = body; p < body + n; p = nl + 1) {
            nl = memchr(p, '\n', body + n - p);
            if (nl == NULL) {
                nl = body + n;
            }

            memcpy(line, p, nl - p);
            line[nl - p] = '\0';

            root = cJSON_Parse(line);
            if (root == NULL) {
                continue;
            }

            /* the projection: look the fields up and print them once */
            for (j = 0; j < 4; j++) {
                item = cJSON_GetObjectItemCaseSensitive(root,
                                              (char *) fields[j].name);
                if (item != NULL && cJSON_IsNumber(item)) {
                    snprintf(out, sizeof(out), "%.17g", item->valuedouble);

                } else if (item != NULL && cJSON_IsString(item)) {
                    snprintf(out, sizeof(out), "%s", item->valuestring);
                }
            }

            cJSON_Delete(root);
        }
    }

    t2 = cpu_ms();

    printf("lines_valid=%d scanner_ms=%.3f cjson_ms=%.3f\n", valid / rounds,
           (t1 - t0) / rounds, (t2 - t1) / rounds);

    free(line);
    free(body);

    return 0;
}
