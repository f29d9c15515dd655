
/*
 * Copyright (C) ngx_ingest developers
 * SPDX-License-Identifier: BSD-2-Clause
 *
 * The consumer's --redis: URLs (redis://, unix://) with credentials and
 * a db, the forms it always took, cluster seeds that share credentials,
 * and what is refused.  Errors and the address the log shows must never
 * hold a password.
 */


#include <string.h>

#include "tap.h"
#include "../consumer/ingest_redis_url.h"


static const struct {
    const char  *text;
    const char  *host;
    int          port;
    long         db;
    const char  *user;
    const char  *password;
    const char  *shown;
    const char  *secret;        /* the password as typed, or NULL */
} good[] = {
    { "127.0.0.1:6379", "127.0.0.1", 6379, 0, "", "", "127.0.0.1:6379",
      NULL },
    { "[::1]:6380", "::1", 6380, 0, "", "", "[::1]:6380", NULL },
    { "::1:6379", "::1", 6379, 0, "", "", "::1:6379", NULL },
    { "redis:6379", "redis", 6379, 0, "", "", "redis:6379", NULL },
    { "unix:/tmp/r.sock", "/tmp/r.sock", 0, 0, "", "", "unix:/tmp/r.sock",
      NULL },
    { "redis://h", "h", 6379, 0, "", "", "redis://h", NULL },
    { "REDIS://h:7000/3", "h", 7000, 3, "", "", "REDIS://h:7000/3", NULL },
    { "redis://h/", "h", 6379, 0, "", "", "redis://h/", NULL },
    { "redis://", "127.0.0.1", 6379, 0, "", "", "redis://", NULL },
    { "redis://[::1]:7000/2", "::1", 7000, 2, "", "",
      "redis://[::1]:7000/2", NULL },
    { "redis://[fe80::1]", "fe80::1", 6379, 0, "", "", "redis://[fe80::1]",
      NULL },
    { "redis://alice:s%3Ac%40r%2Fe%25t@h:1/4", "h", 1, 4, "alice",
      "s:c@r/e%t", "redis://alice@h:1/4", "s%3Ac%40r%2Fe%25t" },
    { "redis://:pw@h", "h", 6379, 0, "", "pw", "redis://h", "pw" },
    { "redis://bob@h:6380", "h", 6380, 0, "bob", "", "redis://bob@h:6380",
      NULL },
    { "redis://u%40x:p@h", "h", 6379, 0, "u@x", "p", "redis://u%40x@h",
      "p" },
    { "redis://u:p:q@x/y@[::1]:9/1", "::1", 9, 1, "u", "p:q@x/y",
      "redis://u@[::1]:9/1", "p:q@x/y" },
    { "redis://u:@h", "h", 6379, 0, "u", "", "redis://u@h", NULL },
    { "unix://" "/run/r.sock", "/run/r.sock", 0, 0, "", "",
      "unix://" "/run/r.sock", NULL },
    { "unix://" "/run/r.sock?db=2", "/run/r.sock", 0, 2, "", "",
      "unix://" "/run/r.sock?db=2", NULL },
    { "unix://" "/a%3Fb", "/a?b", 0, 0, "", "", "unix://" "/a%3Fb", NULL },
    { "redis://h/2147483647", "h", 6379, 2147483647, "", "",
      "redis://h/2147483647", NULL },
    { "unix://" "/s?db=1000001", "/s", 0, 1000001, "", "",
      "unix://" "/s?db=1000001", NULL },
    { "unix://u:pw@/run/r.sock?db=15", "/run/r.sock", 0, 15, "u", "pw",
      "unix://u@/run/r.sock?db=15", "pw" },
    { "unix://:pw@/s", "/s", 0, 0, "", "pw", "unix://" "/s", "pw" },
};


static const struct {
    const char  *text;
    const char  *why;           /* a part of the error */
} bad[] = {
    { "", "expected redis://" },
    { "h", "expected redis://" },
    { "h:0", "expected" },
    { "h:65536", "expected" },
    { "h:x", "expected" },
    { ":6379", "expected" },
    { "[]:6379", "expected" },
    { "unix:", "expected unix:PATH" },
    { "redis://h:", "the port must be a number from 1 to 65535" },
    { "redis://h:99999", "the port" },
    { "redis://h/x", "the db" },
    { "redis://h/3?x", "the db" },
    { "redis://h/-1", "the db" },
    { "redis://h/2147483648", "the db" },
    { "redis://h/99999999999999999999", "the db" },
    { "redis://h:0000000000065536", "the port" },
    { "unix://" "/s?db=", "only ?db=N" },
    { "redis://::1:6379", "an IPv6 address is written [ADDRESS]:PORT" },
    { "redis://[::1", "an IPv6 address is [ADDRESS]" },
    { "redis://[::1]x", "after [ADDRESS], only :PORT" },
    { "redis://u%zz:pw@h", "in the user, a '%' is not followed" },
    { "redis://u:Secret%2@h", "in the password, a '%' is not followed" },
    { "redis://u:Secret%00@h", "the password holds %00" },
    { "rediss://h", "rediss:// (TLS) is not supported" },
    { "unix://", "expected unix://" "/path" },
    { "unix://" "/", "expected unix://" "/path" },
    { "unix://u:Secret/s", "expected unix://" "/path or" },
    { "unix://" "/s?db=x", "only ?db=N" },
    { "unix://" "/s?user=u", "only ?db=N" },
    { "u:LegacySecret@127.0.0.1:1", "a '@' at byte 15, which no HOST" },
    { "u:Secret@[::1]:1", "a '@' at byte 9" },
    { "valkey://u:Secret@h:1", "a scheme other than redis:// or unix://" },
    { "h/Secret:1", "a '/' at byte 2" },
    { "h?Secret:1", "a '?' at byte 2" },
    { "cluster:a:1,u:Secret@h:2", "seed 2: a '@' at byte 21" },
    { "cluster:valkey://u:Secret@h:2", "seed 1: a scheme other than" },
    { "redis://127.0.0.1?db=1", "a '?' in the host" },
    { "redis://h:1?db=1", "a '?' in the host" },
    { "cluster:", "cluster: needs seeds" },
    { "cluster:a:1,", "seed 2: an empty seed" },
    { "cluster:a:1,,b:2", "seed 2: an empty seed" },
    { "cluster:a:1,unix:/s", "seed 2: a cluster's seed is HOST:PORT" },
    { "cluster:unix://" "/s", "seed 1: a cluster's seed" },
    { "cluster:a", "seed 1: expected HOST:PORT, [V6]:PORT or redis://" },
    { "cluster:redis://h/1", "seed 1: db 1, but a cluster has only db 0" },
    { "cluster:a:1,redis://u:Secret@h:2/3", "seed 2: db 3, but a cluster" },
    { "cluster:redis://u:Secret1@h:1,redis://u:Secret2@h:2",
      "seed 2: the seeds give different passwords" },
    { "cluster:redis://x:Secret@h:1,b:2,redis://y@h:3",
      "seed 3: the seeds name different users (\"x\" and \"y\")" },
    { "cluster:a:1,a:2,a:3,a:4,a:5,a:6,a:7,a:8,a:9,a:10,a:11,a:12,a:13,"
      "a:14,a:15,a:16,a:17", "more than 16 seeds" },
};


int
main(void)
{
    int                   ok;
    char                  err[512];
    size_t                i;
    ingest_redis_conf_t   conf;

    tap_diag("addresses read, and shown without their passwords");

    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        err[0] = '\0';

        if (!tap_ok(ingest_redis_parse(good[i].text, &conf, err, sizeof(err))
                    == 0, "\"%s\" is read", good[i].text))
        {
            tap_diag("error: %s", err);
            continue;
        }

        tap_ok(!conf.cluster && conf.nnodes == 1
               && strcmp(conf.nodes[0].host, good[i].host) == 0
               && conf.nodes[0].port == good[i].port
               && conf.db == good[i].db,
               "\"%s\": host \"%s\", port %d, db %ld", good[i].text,
               good[i].host, good[i].port, good[i].db);

        tap_ok(strcmp(conf.user, good[i].user) == 0
               && strcmp(conf.password, good[i].password) == 0,
               "\"%s\": user \"%s\", its password decoded", good[i].text,
               good[i].user);

        tap_ok(strcmp(conf.shown, good[i].shown) == 0,
               "\"%s\" is shown \"%s\" (got \"%s\")", good[i].text,
               good[i].shown, conf.shown);

        if (good[i].secret == NULL) {
            tap_ok(conf.nsecrets == 0, "\"%s\": nothing to wipe",
                   good[i].text);
            continue;
        }

        tap_ok(conf.nsecrets == 1
               && conf.secrets[0][1] - conf.secrets[0][0]
                  == strlen(good[i].secret)
               && memcmp(good[i].text + conf.secrets[0][0], good[i].secret,
                         strlen(good[i].secret)) == 0,
               "\"%s\": the password as typed is where it says",
               good[i].text);
    }

    tap_diag("cluster seeds");

    ok = ingest_redis_parse("cluster:10.0.0.1:6379,[::1]:7000", &conf, err,
                            sizeof(err)) == 0
         && conf.cluster && conf.nnodes == 2
         && strcmp(conf.nodes[0].host, "10.0.0.1") == 0
         && conf.nodes[0].port == 6379
         && strcmp(conf.nodes[1].host, "::1") == 0
         && conf.nodes[1].port == 7000
         && conf.user[0] == '\0' && conf.password[0] == '\0';
    tap_ok(ok, "cluster:HOST:PORT,[V6]:PORT as always");

    ok = ingest_redis_parse("cluster:redis://u:p%2Cw@a:1,b:2,redis://c/0",
                            &conf, err, sizeof(err)) == 0
         && conf.nnodes == 3 && strcmp(conf.user, "u") == 0
         && strcmp(conf.password, "p,w") == 0
         && strcmp(conf.nodes[2].host, "c") == 0
         && conf.nodes[2].port == 6379 && conf.db == 0
         && strcmp(conf.shown, "cluster:redis://u@a:1,b:2,redis://c/0") == 0
         && conf.nsecrets == 1 && conf.secrets[0][0] == 18
         && conf.secrets[0][1] == 23;
    tap_ok(ok, "credentials on one seed serve them all; a URL's db 0");

    ok = ingest_redis_parse("cluster:redis://u:pw@a:1,redis://u:pw@b:2",
                            &conf, err, sizeof(err)) == 0
         && conf.nnodes == 2 && strcmp(conf.password, "pw") == 0
         && conf.nsecrets == 2
         && strcmp(conf.shown, "cluster:redis://u@a:1,redis://u@b:2") == 0;
    tap_ok(ok, "the same credentials on two seeds, both to wipe");

    ok = ingest_redis_parse("cluster:redis://u@a:1,redis://:pw@b:2",
                            &conf, err, sizeof(err)) == 0
         && strcmp(conf.user, "u") == 0 && strcmp(conf.password, "pw") == 0
         && strcmp(conf.shown, "cluster:redis://u@a:1,redis://b:2") == 0;
    tap_ok(ok, "a user on one seed, a password on another");

    tap_diag("refused, saying why, and never with the password");

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        ok = ingest_redis_parse(bad[i].text, &conf, err, sizeof(err)) == -1;

        tap_ok(ok && strstr(err, bad[i].why) != NULL
               && strstr(err, "Secret") == NULL,
               "\"%s\" is refused: %s", bad[i].text, err);
    }

    return tap_done();
}
