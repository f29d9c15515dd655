
/*
 * Copyright (C) ngx_ingest developers
 * SPDX-License-Identifier: BSD-2-Clause
 *
 * The NDJSON line scanner, fed lines directly: validity, projection, types.
 */


#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "../ngx_http_ingest_ndjson.h"


static ngx_http_ingest_field_t  fields[] = {
    { (u_char *) "vendorid", 8, NGX_HTTP_INGEST_INT, 1 },
    { (u_char *) "pickup", 6, NGX_HTTP_INGEST_TEXT, 0 },
    { (u_char *) "distance", 8, NGX_HTTP_INGEST_REAL, 0 },
    { (u_char *) "paid", 4, NGX_HTTP_INGEST_BOOL, 0 },
};


typedef struct {
    const char  *line;
    const char  *expect;      /* "v1|v2|v3|v4" with - for absent, or ERR:.. */
    int          ignore_case;
} ndjson_case_t;


static const ndjson_case_t  cases[] = {
    { "{\"vendorid\":2,\"pickup\":\"2019-01-01 00:46:40\",\"distance\":1.5,"
      "\"paid\":true}", "2|2019-01-01 00:46:40|1.5|true", 0 },
    { "{\"vendorid\":1}", "1|-|-|-", 0 },
    { " {\"x\":[1,{\"y\":null}],\"vendorid\":-7,\"distance\":3} \r",
      "-7|-|3|-", 0 },
    { "{\"vendorid\":1,\"vendorid\":2}", "1|-|-|-", 0 },
    { "{\"vendorid\":1,\"pickup\":null}", "1|-|-|-", 0 },
    { "{\"vendorid\":1,\"pickup\":null,\"pickup\":\"x\"}", "1|-|-|-", 0 },
    { "{\"vendorid\":1,\"pickup\":5,\"pickup\":\"x\"}",
      "ERR:field \"pickup\" is not a string", 0 },
    { "{\"vendorid\":null}", "ERR:required field \"vendorid\" is missing",
      0 },
    { "{\"vendorid\":1,\"pickup\":\"a\\\"b\\u00e9\"}",
      "1|a\\\"b\\u00e9|-|-", 0 },
    { "{\"VendorID\":3}", "ERR:required field \"vendorid\" is missing", 0 },
    { "{\"VendorID\":3}", "3|-|-|-", 1 },
    { "", "ERR:blank line", 0 },
    { "   \r", "ERR:blank line", 0 },
    { "[1,2]", "ERR:not an object", 0 },
    { "42", "ERR:not an object", 0 },
    { "{\"vendorid\":1", "ERR:invalid JSON", 0 },
    { "{\"vendorid\":1}}", "ERR:invalid JSON", 0 },
    { "{\"vendorid\":01}", "ERR:invalid JSON", 0 },
    { "{\"vendorid\":1.}", "ERR:invalid JSON", 0 },
    { "{\"vendorid\":+1}", "ERR:invalid JSON", 0 },
    { "{\"vendorid\":1,}", "ERR:invalid JSON", 0 },
    { "{'vendorid':1}", "ERR:invalid JSON", 0 },
    { "{\"vendorid\":1.5}", "ERR:field \"vendorid\" is not an integer", 0 },
    { "{\"vendorid\":1e3}", "ERR:field \"vendorid\" is not an integer", 0 },
    { "{\"vendorid\":9223372036854775808}",
      "ERR:field \"vendorid\" is not an integer", 0 },
    { "{\"vendorid\":\"1\"}", "ERR:field \"vendorid\" is not an integer", 0 },
    { "{\"vendorid\":1,\"distance\":\"1.5\"}",
      "ERR:field \"distance\" is not a number", 0 },
    { "{\"vendorid\":1,\"pickup\":5}", "ERR:field \"pickup\" is not a string",
      0 },
    { "{\"vendorid\":1,\"paid\":1}", "ERR:field \"paid\" is not a boolean", 0 },
    { "{\"vendorid\":1,\"pickup\":\"\xff\"}", "ERR:invalid UTF-8", 0 },
    { "{\"vendorid\":1,\"pickup\":\"\xc3\"}", "ERR:invalid UTF-8", 0 },
    { "{\"vendorid\":1,\"pickup\":\"\xed\xa0\x80\"}", "ERR:invalid UTF-8", 0 },
    { "{\"vendorid\":1,\"pickup\":\"\\ud800\"}", "ERR:invalid UTF-8", 0 },
    { "{\"vendorid\":1,\"pickup\":\"a\tb\"}", "ERR:invalid JSON", 0 },
    { "{\"vendorid\":1,\"pickup\":\"\\x\"}", "ERR:invalid JSON", 0 },
    { "{\"vendorid\":1,\"z\":tru}", "ERR:invalid JSON", 0 },
    { "{\"vendorid\":1.5,\"z\":[}", "ERR:invalid JSON", 0 },

    /* only what every store keeps exactly: no infinity, no NUL */
    { "{\"vendorid\":1,\"distance\":1e999}",
      "ERR:field \"distance\" is out of range", 0 },
    { "{\"vendorid\":1,\"distance\":-1e309}",
      "ERR:field \"distance\" is out of range", 0 },
    { "{\"vendorid\":1,\"distance\":1e-999}",
      "ERR:field \"distance\" is out of range", 0 },
    { "{\"vendorid\":1,\"distance\":1.7976931348623157e308}",
      "1|-|1.7976931348623157e308|-", 0 },
    { "{\"vendorid\":1,\"distance\":1.7976931348623159e308}",
      "ERR:field \"distance\" is out of range", 0 },
    { "{\"vendorid\":1,\"distance\":5e-324}", "1|-|5e-324|-", 0 },
    { "{\"vendorid\":1,\"distance\":0e-999}", "1|-|0e-999|-", 0 },
    { "{\"vendorid\":1,\"distance\":123456789012345678901234567890}",
      "1|-|123456789012345678901234567890|-", 0 },
    { "{\"vendorid\":1,\"pickup\":\"a\\u0000b\"}",
      "ERR:field \"pickup\" holds a NUL character", 0 },
    { "{\"vendorid\":1,\"pickup\":\"a\\u0001b\"}", "1|a\\u0001b|-|-", 0 },
    { "{\"vendorid\":1,\"z\":\"\\u0000\",\"zz\":1e999}", "1|-|-|-", 0 },
};


int
main(void)
{
    int                             rc;
    char                            got[512];
    size_t                          i, j, n, len;
    u_char                         *copy;
    const char                     *error;
    ngx_http_ingest_value_t         values[4];
    ngx_http_ingest_record_conf_t   conf;

    conf.fields = fields;
    conf.nfields = 4;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        conf.ignore_case = cases[i].ignore_case;
        len = strlen(cases[i].line);

        /* an exact-size heap copy: ASan sees any read past the line */
        copy = malloc(len ? len : 1);
        memcpy(copy, cases[i].line, len);

        rc = ngx_http_ingest_ndjson_line(&conf, copy, copy + len, values,
                                         &error);

        if (rc != 0) {
            snprintf(got, sizeof(got), "ERR:%s", error);

        } else {
            n = 0;

            for (j = 0; j < 4; j++) {
                n += snprintf(got + n, sizeof(got) - n, "%s%.*s",
                              j ? "|" : "",
                              values[j].data ? (int) values[j].len : 1,
                              values[j].data ? (char *) values[j].data
                                             : "-");
            }
        }

        if (!tap_ok(strcmp(got, cases[i].expect) == 0, "line %zu", i)) {
            tap_diag("got      %s", got);
            tap_diag("expected %s", cases[i].expect);
        }

        free(copy);
    }

    return tap_done();
}
