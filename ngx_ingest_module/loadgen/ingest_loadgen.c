
/*
 * Copyright (C) ngx_ingest developers
 * SPDX-License-Identifier: BSD-2-Clause
 *
 * ingest-loadgen: a load of counters requests that keeps the books.
 *
 * N keep-alive connections on one epoll loop, each sending one request at
 * a time, in turn: a form body of 1-5 pairs, a JSON object of 1-5 keys,
 * and the original incrementor's key=<k>&value=<v>; values from -10000 to
 * 10000 over a pool of keys; about 1% of requests malformed on purpose.
 * Only the increments of requests answered 2xx are added to the expected
 * totals, which are written as "key<TAB>value" lines for a comparison
 * with what lands in SQLite.  A request whose connection closed before
 * any answer (an exiting or killed worker) has an unknown outcome: its
 * increments are listed in FILE.unknown, "key<TAB>value" each, so that a
 * checker can tell a total they explain from a wrong one.
 *
 *   ingest-loadgen --port P [--host 127.0.0.1] [--connections 16]
 *                  [--requests 50000] [--keys 5000] [--prefix load]
 *                  [--counters /counters] [--increment /increment]
 *                  [--seed 1] [--expect FILE] [--duration S]
 *   ingest-loadgen --version
 *
 * --get PATH reads instead: GET PATH<prefix>:<key> over the same keys
 * (ingest_totals), counting 200 and 404 as answers and anything else as
 * an error, and prints latency percentiles.
 *
 * --duration runs for S seconds instead of a number of requests;
 * --positive draws values from 1 to 10000 only, so that a lost increment
 * can never pass for one counted twice.  A refused
 * connection (nginx restarting) is tried again for up to 10 s.
 *
 * A run longer than two seconds says how it goes on stderr, a line each
 * second: "ingest-loadgen: 3 s: 61234 requests, 20411/s, 0 errors"
 * (answered or given up on so far, the last second's rate, answers that
 * are neither 2xx nor the 400s it asks for, plus requests never
 * answered).  With --duration over 2 from the first second; without
 * --duration from the second second, the first moment the run is known
 * to be long; never on shorter runs.  stdout has the summary only, as
 * ci/e2e, ci/demo, ci/chaos and ci/bench read it.
 */


#define _GNU_SOURCE                             /* strcasestr() */

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>


#define LOADGEN_MAX_PAIRS   5
#define LOADGEN_BUF         8192
#define LOADGEN_SILENCE     5.0         /* seconds without an answer */


static const char  loadgen_usage[] =
    "usage: ingest-loadgen --port P [--host ADDR] [--connections N]\n"
    "                      [--requests N | --duration S] [--keys N]\n"
    "                      [--prefix P] [--counters PATH] [--increment PATH]\n"
    "                      [--seed N] [--expect FILE] [--positive]\n"
    "                      [--get PATH | --body FILE]\n"
    "       ingest-loadgen --help | --version\n"
    "\n"
    "A load of counters requests (form, JSON and key=<k>&value=<v> in\n"
    "turn, about 1% malformed on purpose) that keeps the books.\n"
    "\n"
    "  --port P          nginx's port (required)\n"
    "  --host ADDR       its IPv4 address (default 127.0.0.1)\n"
    "  --connections N   keep-alive connections, one request each at a time\n"
    "                    (default 16)\n"
    "  --requests N      requests to send (default 50000)\n"
    "  --duration S      send for S seconds instead\n"
    "  --keys N          keys drawn from (default 5000)\n"
    "  --prefix P        keys are P:<n> (default load)\n"
    "  --counters PATH   the form and JSON location (default /counters)\n"
    "  --increment PATH  the key_value location (default /increment)\n"
    "  --seed N          the random sequence (default 1)\n"
    "  --expect FILE     write the totals answered 2xx, \"key<TAB>value\",\n"
    "                    and those of unknown outcome to FILE.unknown\n"
    "  --positive        values 1 to 10000 only (default -10000 to 10000)\n"
    "  --get PATH        read instead: GET PATH<prefix>:<key>, 200 and 404\n"
    "                    are answers; latency percentiles\n"
    "  --body FILE       post FILE to --counters as text/plain instead\n"
    "  --help            print this text\n"
    "  --version         print the version\n"
    "\n"
    "The summary goes to stdout.  A run longer than two seconds reports its\n"
    "progress on stderr, a line each second: requests done, the last\n"
    "second's rate, errors.\n"
    "\n"
    "Exit status: 0 done, 1 usage or a failure to start, 2 with --get or\n"
    "--body, some requests were not answered as expected.\n";


typedef struct {
    int        fd;
    struct timespec  sent_at;
    char      *big;                    /* --body: the request, not req */
    char       req[LOADGEN_BUF];
    size_t     req_len;
    size_t     sent;
    char       resp[LOADGEN_BUF];
    size_t     resp_len;
    int        nkeys;                   /* increments of the request */
    int        keys[LOADGEN_MAX_PAIRS];
    int64_t    values[LOADGEN_MAX_PAIRS];
    int        busy;
} loadgen_conn_t;


static const char   *host = "127.0.0.1";
static int           port;
static int           nconns = 16;
static long          total = 50000;
static int           nkeys = 5000;
static const char   *prefix = "load";
static const char   *counters_path = "/counters";
static const char   *increment_path = "/increment";
static const char   *expect_path;
static unsigned      seed = 1;
static double        duration;         /* seconds; 0: --requests counts */
static int           positive;         /* values 1..10000 only */
static const char   *get_path;         /* --get: read totals instead */
static char         *post_body;        /* --body: post this file */
static size_t        post_len;
static long          errors5xx;
static uint32_t     *latencies;        /* microseconds, one per answer */
static size_t        nlatencies, latencies_cap;
static long          increments;        /* in requests answered 2xx */
static FILE         *unknown_out;      /* increments of unknown outcome */

static int64_t      *expected;
static char         *touched;
static long          started, done, ok2xx, bad400, other, errors;
static long          kind_count[3];


static uint64_t
loadgen_rand(void)
{
    static uint64_t  s;

    if (s == 0) {
        s = 0x9e3779b97f4a7c15ULL ^ seed;
    }

    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;

    return s;
}


static int
loadgen_connect(void)
{
    int                 fd, one, tries;
    struct sockaddr_in  sin;
    struct timespec     pause = { 0, 50 * 1000000 };

    for (tries = 0; tries < 200; tries++) {

    fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd == -1) {
        return -1;
    }

    one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons(port);
    inet_pton(AF_INET, host, &sin.sin_addr);

    if (connect(fd, (struct sockaddr *) &sin, sizeof(sin)) == 0) {
        return fd;
    }

    close(fd);

    /* refused or reset: nginx is restarting, wait for it */
    nanosleep(&pause, NULL);

    }

    return -1;
}


static void loadgen_start(loadgen_conn_t *c);


/* the next request of c, with its increments remembered */

static void
loadgen_build(loadgen_conn_t *c)
{
    int          i, kind, n, bad;
    char         body[LOADGEN_BUF / 2];
    size_t       len;
    const char  *path, *type;

    if (post_body != NULL) {
        c->nkeys = 0;

        if (c->big == NULL) {
            c->big = malloc(post_len + 512);
            if (c->big == NULL) {
                exit(1);
            }

            c->req_len = snprintf(c->big, 512,
                                  "POST %s HTTP/1.1\r\nHost: %s\r\n"
                                  "Content-Type: text/plain\r\n"
                                  "Content-Length: %zu\r\n\r\n",
                                  counters_path, host, post_len);
            memcpy(c->big + c->req_len, post_body, post_len);
            c->req_len += post_len;
        }

        loadgen_start(c);
        return;
    }

    if (get_path != NULL) {
        c->nkeys = 0;
        c->req_len = snprintf(c->req, sizeof(c->req),
                              "GET %s%s:%d HTTP/1.1\r\nHost: %s\r\n\r\n",
                              get_path, prefix,
                              (int) (loadgen_rand() % nkeys), host);
        loadgen_start(c);
        return;
    }

    kind = (int) (loadgen_rand() % 3);
    bad = (loadgen_rand() % 100) == 0;
    n = (kind == 2) ? 1 : 1 + (int) (loadgen_rand() % LOADGEN_MAX_PAIRS);

    kind_count[kind]++;
    len = 0;
    c->nkeys = n;

    for (i = 0; i < n; i++) {
        c->keys[i] = (int) (loadgen_rand() % nkeys);
        c->values[i] = positive ? (int64_t) (loadgen_rand() % 10000) + 1
                                : (int64_t) (loadgen_rand() % 20001) - 10000;
    }

    switch (kind) {

    case 0:
        for (i = 0; i < n; i++) {
            /* ':' percent-encoded, as a browser would */
            len += snprintf(body + len, sizeof(body) - len, "%s%s%%3A%d=%lld",
                            i ? "&" : "", prefix, c->keys[i],
                            (long long) c->values[i]);
        }

        if (bad) {
            len += snprintf(body + len, sizeof(body) - len, "&&x=1");
        }

        path = counters_path;
        type = "application/x-www-form-urlencoded";
        break;

    case 1:
        len += snprintf(body + len, sizeof(body) - len, "{");

        for (i = 0; i < n; i++) {
            len += snprintf(body + len, sizeof(body) - len,
                            "%s\"%s:%d\": %lld", i ? ", " : "", prefix,
                            c->keys[i], (long long) c->values[i]);
        }

        len += snprintf(body + len, sizeof(body) - len, bad ? ",}" : "}");
        path = counters_path;
        type = "application/json";
        break;

    default:
        len += snprintf(body + len, sizeof(body) - len,
                        "key=%s%%3A%d&value=%lld%s", prefix, c->keys[0],
                        (long long) c->values[0], bad ? "x" : "");
        path = increment_path;
        type = "application/x-www-form-urlencoded";
        break;
    }

    c->req_len = snprintf(c->req, sizeof(c->req),
                          "POST %s HTTP/1.1\r\nHost: %s\r\n"
                          "Content-Type: %s\r\nContent-Length: %zu\r\n\r\n"
                          "%.*s", path, host, type, len, (int) len, body);
    loadgen_start(c);
}


/* c's request is built: it goes out, and its clock starts */

static void
loadgen_start(loadgen_conn_t *c)
{
    c->sent = 0;
    c->resp_len = 0;
    c->busy = 1;
    started++;
    clock_gettime(CLOCK_MONOTONIC, &c->sent_at);
}


/* a whole response in c->resp? its status, or 0 while incomplete */

static int
loadgen_response(loadgen_conn_t *c, int *close_after)
{
    int     status;
    long    clen;
    char   *end, *h;

    c->resp[c->resp_len] = '\0';

    end = strstr(c->resp, "\r\n\r\n");
    if (end == NULL) {
        return 0;
    }

    clen = 0;
    h = strcasestr(c->resp, "\r\nContent-Length:");

    if (h != NULL && h < end) {
        clen = strtol(h + 17, NULL, 10);
    }

    if ((size_t) (end + 4 - c->resp) + clen > c->resp_len) {
        return 0;
    }

    h = strcasestr(c->resp, "\r\nConnection: close");
    *close_after = (h != NULL && h < end);

    if (sscanf(c->resp, "HTTP/1.%*d %d", &status) != 1) {
        return -1;
    }

    return status;
}


/* the request in flight on c will never be answered */

static void
loadgen_unknown(loadgen_conn_t *c)
{
    int  k;

    errors++;
    c->busy = 0;

    for (k = 0; k < c->nkeys; k++) {
        if (unknown_out != NULL) {
            fprintf(unknown_out, "%s:%d\t%lld\n", prefix, c->keys[k],
                    (long long) c->values[k]);
        }
    }
}


static void
loadgen_account(loadgen_conn_t *c, int status)
{
    int              i;
    uint32_t        *l;
    struct timespec  now;

    done++;
    c->busy = 0;

    clock_gettime(CLOCK_MONOTONIC, &now);

    if (nlatencies == latencies_cap) {
        latencies_cap = latencies_cap ? 2 * latencies_cap : 65536;
        l = realloc(latencies, latencies_cap * sizeof(uint32_t));
        if (l != NULL) {
            latencies = l;
        }
    }

    if (nlatencies < latencies_cap) {
        latencies[nlatencies++] = (uint32_t)
            ((now.tv_sec - c->sent_at.tv_sec) * 1000000
             + (now.tv_nsec - c->sent_at.tv_nsec) / 1000);
    }

    if (get_path != NULL || post_body != NULL) {
        if (status == 200 || status == 204
            || (status == 404 && get_path != NULL))
        {
            ok2xx++;

        } else if (errors5xx++ < 5) {
            c->resp[c->resp_len < 300 ? c->resp_len : 300] = '\0';
            fprintf(stderr, "ingest-loadgen: unexpected answer: %s\n",
                    c->resp);
        }

        return;
    }

    if (status >= 200 && status < 300) {
        ok2xx++;
        increments += c->nkeys;

        for (i = 0; i < c->nkeys; i++) {
            expected[c->keys[i]] += c->values[i];
            touched[c->keys[i]] = 1;
        }

    } else if (status == 400) {
        bad400++;

    } else if (status == 504) {
        /* ingest_ack redis: not acknowledged in time, may be counted */
        done--;
        loadgen_unknown(c);

    } else {
        other++;
    }
}


static int
loadgen_slurp(const char *path)
{
    FILE  *f;
    long   n;

    f = fopen(path, "rb");
    if (f == NULL) {
        perror(path);
        return -1;
    }

    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);

    post_body = malloc(n + 1);
    if (post_body == NULL || fread(post_body, 1, n, f) != (size_t) n) {
        fclose(f);
        return -1;
    }

    fclose(f);
    post_len = n;

    return 0;
}


/* seconds since t0 */

static double
loadgen_since(const struct timespec *t0)
{
    struct timespec  now;

    clock_gettime(CLOCK_MONOTONIC, &now);

    return (now.tv_sec - t0->tv_sec) + (now.tv_nsec - t0->tv_nsec) / 1e9;
}


/*
 * The progress report: at each whole second of the run, the count and
 * the rate since the one before; printed from second "first" on (0:
 * never), a short run staying silent.
 */

typedef struct {
    long      first;
    long      next;                     /* the next whole second */
    long      count;                    /* done + errors at the last one */
    double    at;
} loadgen_progress_t;


static void
loadgen_progress(loadgen_progress_t *pr, double now)
{
    long  second, count;

    if (now < pr->next) {
        return;
    }

    second = (long) now;
    count = done + errors;

    if (pr->first && second >= pr->first) {
        /* answers neither 2xx nor the 400s asked for, and no answers */
        fprintf(stderr, "ingest-loadgen: %ld s: %ld requests, %.0f/s, "
                "%ld errors\n", second, count,
                now > pr->at ? (count - pr->count) / (now - pr->at) : 0.0,
                other + errors5xx + errors);
    }

    pr->count = count;
    pr->at = now;
    pr->next = second + 1;
}


static int
loadgen_cmp(const void *a, const void *b)
{
    uint32_t  x = *(const uint32_t *) a, y = *(const uint32_t *) b;

    return x < y ? -1 : x > y;
}


/* the p-th percentile of the sorted latencies, in milliseconds */

static double
loadgen_pct(int p)
{
    size_t  i;

    if (nlatencies == 0) {
        return 0;
    }

    i = (size_t) ((double) p / 100 * (nlatencies - 1) + 0.5);

    return latencies[i] / 1000.0;
}


/* 0: run; 1: --version; 2: --help; -1: a usage error */

static int
loadgen_options(int argc, char **argv)
{
    int  ch;

    static const struct option  options[] = {
        { "host", required_argument, NULL, 'h' },
        { "port", required_argument, NULL, 'p' },
        { "connections", required_argument, NULL, 'c' },
        { "requests", required_argument, NULL, 'n' },
        { "keys", required_argument, NULL, 'k' },
        { "prefix", required_argument, NULL, 'x' },
        { "counters", required_argument, NULL, 'C' },
        { "increment", required_argument, NULL, 'I' },
        { "seed", required_argument, NULL, 's' },
        { "expect", required_argument, NULL, 'e' },
        { "duration", required_argument, NULL, 'd' },
        { "positive", no_argument, NULL, 'P' },
        { "get", required_argument, NULL, 'g' },
        { "body", required_argument, NULL, 'b' },
        { "version", no_argument, NULL, 'V' },
        { "help", no_argument, NULL, 'H' },
        { NULL, 0, NULL, 0 }
    };

    while ((ch = getopt_long(argc, argv, "", options, NULL)) != -1) {
        switch (ch) {
        case 'h': host = optarg; break;
        case 'p': port = atoi(optarg); break;
        case 'c': nconns = atoi(optarg); break;
        case 'n': total = atol(optarg); break;
        case 'k': nkeys = atoi(optarg); break;
        case 'x': prefix = optarg; break;
        case 'C': counters_path = optarg; break;
        case 'I': increment_path = optarg; break;
        case 's': seed = (unsigned) atol(optarg); break;
        case 'e': expect_path = optarg; break;
        case 'd': duration = atof(optarg); break;
        case 'P': positive = 1; break;
        case 'g': get_path = optarg; break;
        case 'b':
            if (loadgen_slurp(optarg) != 0) {
                return -1;
            }
            break;
        case 'V': return 1;
        case 'H': return 2;
        default: return -1;
        }
    }

    if (port <= 0 || nconns <= 0 || total <= 0 || nkeys <= 0) {
        return -1;
    }

    return 0;
}


int
main(int argc, char **argv)
{
    int                  ep, i, n, status, close_after, sent, timeout;
    double               elapsed, now, quiet_since, wait;
    char                 path[4096];
    FILE                *f;
    ssize_t              r;
    loadgen_conn_t      *conns, *c;
    struct timespec      t0, t1;
    struct epoll_event   ev, events[64];
    loadgen_progress_t   progress;

    n = loadgen_options(argc, argv);

    if (n == 1 || n == 2) {
        /* --version, --help; a full disk or a closed pipe is no success */
        if ((n == 1 ? printf("ingest-loadgen %s\n", INGEST_VERSION)
                    : fputs(loadgen_usage, stdout))
            < 0
            || fflush(stdout) != 0)
        {
            return 1;
        }

        return 0;
    }

    if (n != 0) {
        (void) fputs(loadgen_usage, stderr);
        return 1;
    }

    expected = calloc(nkeys, sizeof(int64_t));
    touched = calloc(nkeys, 1);
    conns = calloc(nconns, sizeof(loadgen_conn_t));
    ep = epoll_create1(0);

    if (expected == NULL || touched == NULL || conns == NULL || ep == -1)
    {
        perror("ingest-loadgen");
        return 1;
    }

    if (expect_path != NULL) {
        snprintf(path, sizeof(path), "%s.unknown", expect_path);

        unknown_out = fopen(path, "w");
        if (unknown_out == NULL) {
            perror(path);
            return 1;
        }
    }

    if (duration > 0) {
        total = LONG_MAX;
    }

    clock_gettime(CLOCK_MONOTONIC, &t0);

    /*
     * --duration says up front whether the run is long; a run by
     * --requests is known to be long once it has run for two seconds
     */

    memset(&progress, 0, sizeof(loadgen_progress_t));
    progress.first = (duration > 2) ? 1 : (duration > 0) ? 0 : 2;
    progress.next = 1;
    quiet_since = 0;

    for (i = 0; i < nconns; i++) {
        c = &conns[i];
        c->fd = -1;
    }

    while (done + errors < started || started < total) {

        if (duration > 0 && started < total) {
            clock_gettime(CLOCK_MONOTONIC, &t1);

            if ((t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9
                >= duration)
            {
                total = started;       /* start nothing more */
            }
        }

        if (started >= total && done + errors >= started) {
            break;                     /* nothing in flight: done */
        }

        sent = 0;

        for (i = 0; i < nconns; i++) {
            c = &conns[i];

            if (c->busy || started >= total) {
                continue;
            }

            sent = 1;

            if (c->fd == -1) {
                c->fd = loadgen_connect();
                if (c->fd == -1) {
                    perror("ingest-loadgen: connect");
                    return 1;
                }


                ev.events = EPOLLIN;
                ev.data.ptr = c;
                epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
            }

            loadgen_build(c);

            /* small requests: one blocking-free write nearly always does */
            while (c->sent < c->req_len) {
                r = write(c->fd, (c->big ? c->big : c->req) + c->sent,
                          c->req_len - c->sent);
                if (r == -1 && errno == EAGAIN) {
                    /* a large body: wait until the socket drains */
                    struct timespec  ts = { 0, 100000 };
                    nanosleep(&ts, NULL);
                    continue;
                }
                if (r <= 0) {
                    if (r == -1 && errno == EINTR) {
                        continue;
                    }
                    break;
                }
                c->sent += r;
            }
        }

        /*
         * Wait for answers, but wake for the next progress second; the
         * 5 s without an answer count from the last answer or request.
         */

        now = loadgen_since(&t0);

        if (sent) {
            quiet_since = now;
        }

        wait = LOADGEN_SILENCE - (now - quiet_since);

        if (progress.next - now < wait) {
            wait = progress.next - now;
        }

        timeout = (wait > 0) ? (int) (wait * 1000) + 1 : 0;

        n = epoll_wait(ep, events, 64, timeout);

        if (n == -1) {
            if (errno != EINTR) {
                perror("ingest-loadgen: epoll_wait");
                return 1;
            }

            n = 0;
        }

        now = loadgen_since(&t0);

        if (n > 0) {
            quiet_since = now;
        }

        loadgen_progress(&progress, now);

        if (n == 0 && now - quiet_since < LOADGEN_SILENCE) {
            continue;
        }

        if (n == 0) {
            fprintf(stderr, "ingest-loadgen: no answer for 5 s\n");

            /* what is still in flight has an unknown outcome */
            for (i = 0; i < nconns; i++) {
                if (conns[i].busy) {
                    loadgen_unknown(&conns[i]);
                }
            }

            break;
        }

        for (i = 0; i < n; i++) {
            c = events[i].data.ptr;

            r = read(c->fd, c->resp + c->resp_len,
                     sizeof(c->resp) - 1 - c->resp_len);

            if (r <= 0) {
                /* the outcome of the request in flight is unknown */
                if (c->busy) {
                    loadgen_unknown(c);
                }
                close(c->fd);
                c->fd = -1;
                continue;
            }

            c->resp_len += r;

            status = loadgen_response(c, &close_after);
            if (status == 0) {
                continue;
            }

            loadgen_account(c, status);

            if (close_after || status < 0) {
                close(c->fd);
                c->fd = -1;
            }
        }
    }

    clock_gettime(CLOCK_MONOTONIC, &t1);
    elapsed = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;

    if (post_body != NULL) {
        qsort(latencies, nlatencies, sizeof(uint32_t), loadgen_cmp);

        printf("posts %ld of %zu bytes in %.2f s, %.1f/s, %.1f MB/s: "
               "answered %ld, errors %ld; latency ms p50 %.2f p90 %.2f "
               "p99 %.2f max %.2f\n",
               done + errors, post_len, elapsed, (done + errors) / elapsed,
               (done + errors) * (double) post_len / elapsed / 1e6, ok2xx,
               errors5xx + errors, loadgen_pct(50), loadgen_pct(90),
               loadgen_pct(99), loadgen_pct(100));

        return (errors5xx + errors) ? 2 : 0;
    }

    if (get_path != NULL) {
        qsort(latencies, nlatencies, sizeof(uint32_t), loadgen_cmp);

        printf("reads %ld in %.2f s, %.0f/s: answered %ld, errors %ld "
               "(other status %ld, no answer %ld); latency ms p50 %.2f "
               "p90 %.2f p99 %.2f max %.2f\n",
               done + errors, elapsed, (done + errors) / elapsed, ok2xx,
               errors5xx + errors, errors5xx, errors,
               loadgen_pct(50), loadgen_pct(90), loadgen_pct(99),
               loadgen_pct(100));

        return (errors5xx + errors) ? 2 : 0;
    }

    qsort(latencies, nlatencies, sizeof(uint32_t), loadgen_cmp);

    printf("requests %ld (form %ld, json %ld, key_value %ld) in %.2f s, "
           "%.0f/s: 2xx %ld, 400 %ld, other %ld, unknown outcome "
           "(504 or no answer) %ld\n",
           done + errors, kind_count[0], kind_count[1], kind_count[2],
           elapsed, (done + errors) / elapsed, ok2xx, bad400, other, errors);
    printf("increments %ld answered 2xx, %.0f/s; latency ms p50 %.2f "
           "p90 %.2f p99 %.2f max %.2f\n",
           increments, increments / elapsed, loadgen_pct(50),
           loadgen_pct(90), loadgen_pct(99), loadgen_pct(100));

    if (expect_path != NULL) {
        f = fopen(expect_path, "w");
        if (f == NULL) {
            perror(expect_path);
            return 1;
        }

        for (i = 0; i < nkeys; i++) {
            if (touched[i]) {
                fprintf(f, "%s:%d\t%lld\n", prefix, i,
                        (long long) expected[i]);
            }
        }

        fclose(f);

        fclose(unknown_out);
    }

    return 0;
}
