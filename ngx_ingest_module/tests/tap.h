
/*
 * Copyright (C) ngx_ingest developers
 * SPDX-License-Identifier: BSD-2-Clause
 *
 * The smallest TAP producer that prove understands: ok() per check and
 * the plan at the end ("1..N"), so a test may count its checks as it goes.
 */

#ifndef _INGEST_TAP_H_INCLUDED_
#define _INGEST_TAP_H_INCLUDED_


#include <stdarg.h>
#include <stdio.h>


static int  tap_count;
static int  tap_failed;


static int
tap_ok(int cond, const char *fmt, ...)
{
    va_list  args;

    tap_count++;

    printf("%s %d - ", cond ? "ok" : "not ok", tap_count);

    va_start(args, fmt);
    vprintf(fmt, args);
    va_end(args);

    printf("\n");

    if (!cond) {
        tap_failed++;
    }

    return cond;
}


static void
tap_diag(const char *fmt, ...)
{
    va_list  args;

    printf("# ");

    va_start(args, fmt);
    vprintf(fmt, args);
    va_end(args);

    printf("\n");
}


static int
tap_done(void)
{
    printf("1..%d\n", tap_count);

    return tap_failed ? 1 : 0;
}


#endif /* _INGEST_TAP_H_INCLUDED_ */
