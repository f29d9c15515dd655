
/*
 * Copyright (C) ngx_ingest developers
 * SPDX-License-Identifier: BSD-2-Clause
 *
 * ingest_cluster.h: key slots as redis-server 7.0's CLUSTER KEYSLOT gave
 * them (hash tags, empty tags, unclosed braces), and which names hold a
 * hash tag of their own.
 */


#include <string.h>

#include "tap.h"
#include "../ingest_cluster.h"


static const struct {
    const char  *key;
    unsigned     slot;
} slots[] = {
    { "foo", 12182 },
    { "{user1000}.following", 3443 },
    { "ingest:counters", 13928 },
    { "ingest:counters:{0}", 13907 },
    { "{}x", 10595 },            /* an empty tag: the whole key */
    { "a{}b{c}", 7353 },         /* only the first '{' counts */
    { "{", 4092 },
    { "}{x}", 16287 },
    { "", 0 },
};


static const struct {
    const char  *key;
    int          tagged;
} tags[] = {
    { "ingest:counters", 0 },
    { "ingest:counters:{3}", 1 },
    { "{app}:counters", 1 },
    { "a{}b", 0 },
    { "a{b", 0 },
    { "a}b{", 0 },
};


int
main(void)
{
    size_t  i;

    tap_diag("slots as redis-server 7.0.15 computes them");

    for (i = 0; i < sizeof(slots) / sizeof(slots[0]); i++) {
        tap_ok(ingest_cluster_slot((const unsigned char *) slots[i].key,
                                   strlen(slots[i].key))
               == slots[i].slot,
               "slot of \"%s\" is %u", slots[i].key, slots[i].slot);
    }

    for (i = 0; i < sizeof(tags) / sizeof(tags[0]); i++) {
        tap_ok(ingest_cluster_tagged((const unsigned char *) tags[i].key,
                                     strlen(tags[i].key))
               == tags[i].tagged,
               "\"%s\" %s a hash tag", tags[i].key,
               tags[i].tagged ? "holds" : "does not hold");
    }

    return tap_done();
}
