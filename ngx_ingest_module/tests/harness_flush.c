
/*
 * Copyright (C) ngx_ingest developers
 * SPDX-License-Identifier: BSD-2-Clause
 *
 * Unit tests of the flush layer and its contract with the transport,
 * driven through the table of operations by a scripted transport: what
 * is handed over, in which order, what a delivery, a refusal or a lost
 * connection does, the drain at a graceful shutdown, and the exit path.
 *
 * The flush layer lives on nginx's timers, posted events and
 * connections, so this runs inside nginx: a dynamic module whose
 * init_process (in a single process, master_process off) plays each
 * scenario with nginx's own primitives, moving the clock by hand and
 * running posted events and expired timers itself, prints TAP and
 * exits.  No Redis is involved: the scripted transport says what Redis
 * did.  tests/test_flush.sh runs it.
 */


#include "../ngx_http_ingest_flush.h"
#include "../ngx_http_ingest_metrics.h"

#include <dirent.h>
#include <sys/resource.h>
#include <signal.h>

#include "tap.h"


#define HARNESS_MAX_SENDS   64
#define HARNESS_LOG_SIZE    65536


typedef struct {
    u_char                    list[64];
    uint64_t                  seq;            /* of the first batch */
    ngx_uint_t                nbatches;       /* in the one RPUSH */
    size_t                    len;            /* of them all */
    uint32_t                  sum;            /* of their bytes */
    uint32_t                  first_sum;      /* of the first's bytes */
    ngx_uint_t                result;         /* send_sync's outcome */
} harness_send_t;


/* what the scripted transport was asked, and what it is to answer */

typedef struct {
    harness_send_t            sends[HARNESS_MAX_SENDS];
    ngx_uint_t                nsends;
    harness_send_t            syncs[HARNESS_MAX_SENDS];
    ngx_uint_t                nsyncs;
    ngx_uint_t                sync_results[HARNESS_MAX_SENDS];
    ngx_uint_t                nresults;        /* scripted; then LOST */
    ngx_uint_t                connects;
    ngx_uint_t                closes;
    ngx_uint_t                graceful;        /* of the last close */
    ngx_uint_t                sync_ends;
    ngx_msec_t                sync_delay;      /* each send_sync takes it */
} harness_script_t;


static harness_script_t             script;
static char                         logbuf[HARNESS_LOG_SIZE];
static size_t                       loglen;
static ngx_log_t                    harness_log;
static ngx_cycle_t                  harness_cycle;
static ngx_http_ingest_main_conf_t  harness_conf;
static ngx_path_t                   harness_spool;
static ngx_uint_t                   woken[8];
static ngx_uint_t                   nwoken;


/* the metrics leaf, which the flush layer and the transport count into */

ngx_http_ingest_stats_t  *ngx_http_ingest_stats;

void ngx_http_ingest_metrics_pending(ngx_uint_t keys, size_t bytes) { }
void ngx_http_ingest_metrics_connected(ngx_uint_t connected) { }
void ngx_http_ingest_metrics_denied(ngx_uint_t denied) { }
void ngx_http_ingest_metrics_flushed(ngx_msec_t ms, ngx_uint_t n) { }
void ngx_http_ingest_metrics_spool(ngx_uint_t files, ngx_uint_t aside) { }


/* the scripted transport */

static ngx_int_t
harness_init(ngx_http_ingest_transport_t *t, ngx_pool_t *pool)
{
    t->state = &script;
    return NGX_OK;
}


static void
harness_connect(ngx_http_ingest_transport_t *t)
{
    script.connects++;
    ngx_http_ingest_transport_resend(t);
}


static void
harness_note(harness_send_t *s, ngx_str_t *list, ngx_str_t *batches,
    ngx_uint_t n)
{
    u_char      *p;
    size_t       i;
    ngx_uint_t   k;

    ngx_memzero(s, sizeof(harness_send_t));
    ngx_cpystrn(s->list, list->data, ngx_min(list->len + 1, sizeof(s->list)));

    p = ngx_strnstr(batches[0].data, "\"seq\":", batches[0].len);
    s->seq = p ? (uint64_t) ngx_atoi(p + 6,
                                     ngx_strlchr(p, batches[0].data
                                                    + batches[0].len, ',')
                                     - (p + 6))
               : 0;
    s->nbatches = n;

    for (k = 0; k < n; k++) {
        s->len += batches[k].len;

        for (i = 0; i < batches[k].len; i++) {
            s->sum = s->sum * 31 + batches[k].data[i];
        }

        if (k == 0) {
            s->first_sum = s->sum;
        }
    }
}


/* the batch is "on its way" until the test says what Redis did */

static void
harness_send(ngx_http_ingest_transport_t *t, ngx_http_ingest_channel_t *ch)
{
    if (ngx_http_ingest_transport_hand(t, ch) != NGX_OK
        || script.nsends == HARNESS_MAX_SENDS)
    {
        return;
    }

    harness_note(&script.sends[script.nsends++], &ch->name, ch->batches,
                 ch->nbatches);

    ch->in_flight = 1;
    ch->sent_at = ngx_current_msec;
}


static redisAsyncContext *
harness_route(ngx_http_ingest_transport_t *t, const u_char *key, size_t len)
{
    return NULL;
}


static u_char *
harness_companion(ngx_http_ingest_transport_t *t, u_char *buf, size_t size,
    ngx_str_t *list, const char *suffix)
{
    return ngx_snprintf(buf, size, "%V:%s", list, suffix);
}


static void
harness_send_sync(ngx_http_ingest_transport_t *t, ngx_http_ingest_sync_t *s,
    ngx_http_ingest_push_t *p)
{
    harness_send_t  *hs;

    if (script.sync_delay) {
        ngx_msleep(script.sync_delay);
    }

    p->result = (script.nsyncs < script.nresults)
                ? script.sync_results[script.nsyncs]
                : NGX_HTTP_INGEST_PUSH_LOST;

    if (p->result == NGX_HTTP_INGEST_PUSH_REFUSED) {
        p->error_len = ngx_cpymem(p->error, "OOM scripted", 12) - p->error;
    }

    if (p->result == NGX_HTTP_INGEST_PUSH_LOST) {
        ngx_cpystrn(s->why, (u_char *) "scripted: unreachable",
                    sizeof(s->why));
    }

    if (script.nsyncs < HARNESS_MAX_SENDS) {
        hs = &script.syncs[script.nsyncs++];
        harness_note(hs, &p->list, p->batches, p->nbatches);
        hs->result = p->result;
    }
}


static void
harness_sync_end(ngx_http_ingest_transport_t *t, ngx_http_ingest_sync_t *s)
{
    script.sync_ends++;
}


static void
harness_close(ngx_http_ingest_transport_t *t, ngx_uint_t graceful)
{
    script.closes++;
    script.graceful = graceful;
    t->closing = 1;
}


static const ngx_http_ingest_transport_ops_t  harness_ops = {
    "scripted",
    harness_init,
    harness_connect,
    harness_send,
    harness_route,
    harness_companion,
    harness_send_sync,
    harness_sync_end,
    harness_close
};


/* the log, captured */

static void
harness_log_writer(ngx_log_t *log, ngx_uint_t level, u_char *buf, size_t len)
{
    if (loglen + len + 1 < sizeof(logbuf)) {
        ngx_memcpy(logbuf + loglen, buf, len);
        loglen += len;
        logbuf[loglen++] = '\n';
        logbuf[loglen] = '\0';
    }
}


static int
harness_logged(const char *s)
{
    return strstr(logbuf, s) != NULL;
}


/* driving the worker */

static void
harness_run_posted(void)
{
    ngx_event_process_posted((ngx_cycle_t *) ngx_cycle, &ngx_posted_events);
}


static void
harness_advance(ngx_msec_t ms)
{
    ngx_current_msec += ms;
    ngx_event_expire_timers();
    harness_run_posted();
}


static ngx_http_ingest_worker_t *
harness_start(ngx_uint_t flush_keys, size_t max_pending, ngx_uint_t spool)
{
    ngx_memzero(&script, sizeof(harness_script_t));
    loglen = 0;
    logbuf[0] = '\0';
    nwoken = 0;

    harness_conf.flush_keys = flush_keys;
    harness_conf.max_pending = max_pending;
    harness_conf.spool = spool ? &harness_spool : NULL;

    if (ngx_http_ingest_flush_init(&harness_cycle, &harness_conf,
                                   &harness_ops)
        != NGX_OK)
    {
        tap_diag("flush_init failed");
        exit(2);
    }

    return ngx_http_ingest_worker;
}


static void
harness_add(ngx_http_ingest_worker_t *w, ngx_http_ingest_queue_t *q,
    const char *key, int64_t value)
{
    int  created;

    (void) ngx_http_ingest_table_add(&q->sums, (u_char *) key,
                                     ngx_strlen(key), value, &created);
    ngx_http_ingest_flush_added(w, q);
}


/* the keys of the batch on its way (the list's oldest) */

static ngx_uint_t
harness_oldest_keys(ngx_http_ingest_queue_t *q)
{
    ngx_http_ingest_batch_t  *b;

    if (ngx_queue_empty(&q->backlog)) {
        return 0;
    }

    b = ngx_queue_data(ngx_queue_head(&q->backlog), ngx_http_ingest_batch_t,
                       link);

    return b->keys;
}


/* Redis took the batch on its way */

static void
harness_deliver(ngx_http_ingest_worker_t *w, ngx_http_ingest_queue_t *q)
{
    ngx_http_ingest_transport_delivered(w->transport, &q->channel);
    harness_run_posted();
}


/*
 * nginx closes idle connections: a graceful shutdown begins (or, with an
 * error, worker_shutdown_timeout has come)
 */

static void
harness_shutdown(ngx_http_ingest_worker_t *w, ngx_uint_t error)
{
    ngx_connection_t  *c;

    c = w->watcher;
    c->close = 1;
    c->error = error;
    c->read->handler(c->read);
}


static void
harness_woken(ngx_http_ingest_waiter_t *wt)
{
    if (nwoken < 8) {
        woken[nwoken++] = wt->seq;
    }
}


static ngx_uint_t
harness_spooled(void)
{
    DIR            *d;
    ngx_uint_t      n;
    struct dirent  *de;

    n = 0;
    d = opendir((char *) harness_spool.name.data);

    while (d != NULL && (de = readdir(d)) != NULL) {
        n += (ngx_strstr(de->d_name, ".batch") != NULL);
    }

    if (d != NULL) {
        (void) closedir(d);
    }

    return n;
}


/* the address space this process uses now, in bytes */

static size_t
harness_vm(void)
{
    FILE    *f;
    size_t   pages;

    f = fopen("/proc/self/statm", "r");

    if (f == NULL || fscanf(f, "%zu", &pages) != 1) {
        pages = 0;
    }

    if (f != NULL) {
        fclose(f);
    }

    return pages * (size_t) getpagesize();
}


/* the scenarios */

static void
test_order(void)
{
    ngx_http_ingest_queue_t   *q;
    ngx_http_ingest_worker_t  *w;
    ngx_http_ingest_waiter_t   two;

    w = harness_start(3, 1024 * 1024, 0);
    q = &w->queues[0];

    tap_ok(script.connects == 1, "start: the transport is asked to connect");

    harness_add(w, q, "a", 1);

    tap_ok(script.nsends == 0 && w->flush_timer.timer_set,
           "a key no one waits for waits for the flush interval");

    harness_advance(harness_conf.flush_interval);

    tap_ok(script.nsends == 1 && script.sends[0].seq == 1
           && ngx_strcmp(script.sends[0].list, "h:a") == 0,
           "the interval cuts batch 1 and hands it over");

    /* a request adds its sums, then waits (as the handler does) */

    harness_add(w, q, "b", 1);
    harness_add(w, q, "c", 1);
    two.handler = harness_woken;
    ngx_http_ingest_flush_wait(q, &two);
    harness_run_posted();

    tap_ok(script.nsends == 1 && q->nbatches == 1,
           "below flush_keys, the sums wait while batch 1 is on its way");

    harness_add(w, q, "d", 1);

    tap_ok(script.nsends == 1 && q->nbatches == 2,
           "at flush_keys batch 2 is cut, but not handed over yet");

    harness_deliver(w, q);

    tap_ok(nwoken == 0,
           "batch 1 delivered: no one waited for it");
    tap_ok(script.nsends == 2 && script.sends[1].seq == 2,
           "then batch 2 is handed over");

    harness_deliver(w, q);

    tap_ok(nwoken == 1 && woken[0] == 2 && q->nbatches == 0,
           "batch 2 delivered: its waiter is answered, the backlog empty");

    ngx_http_ingest_flush_exit();

    tap_ok(script.nsyncs == 0 && script.closes == 1 && !script.graceful,
           "exit with nothing pending: no blocking send, a hard close");
}


/*
 * Redis has the batch, and until the "delivered" event runs (after the
 * rest of the event loop's batch) a request may make the list due: the
 * delivered batch must not be handed over again, nor the next freed.
 */

static void
test_delivered_window(void)
{
    ngx_http_ingest_queue_t   *q;
    ngx_http_ingest_worker_t  *w;
    ngx_http_ingest_waiter_t   one, two;

    w = harness_start(2, 1024 * 1024, 0);
    q = &w->queues[0];

    harness_add(w, q, "a", 1);
    harness_add(w, q, "b", 1);
    one.handler = harness_woken;
    ngx_http_ingest_flush_wait(q, &one);

    tap_ok(script.nsends == 1 && script.sends[0].seq == 1
           && one.seq == 1,
           "batch 1 is on its way, cut at flush_keys: its waiter waits for it");

    /* its reply is in: the event is posted, not run yet */
    ngx_http_ingest_transport_delivered(w->transport, &q->channel);

    harness_add(w, q, "c", 1);
    harness_add(w, q, "d", 1);
    two.handler = harness_woken;
    ngx_http_ingest_flush_wait(q, &two);

    tap_ok(script.nsends == 1 && q->nbatches == 2,
           "before the delivery is handled, nothing is handed over again");

    harness_run_posted();

    tap_ok(nwoken == 1 && woken[0] == 1 && q->nbatches == 1
           && script.nsends == 2 && script.sends[1].seq == 2,
           "then batch 1 goes, its waiter is answered, batch 2 leaves");

    harness_deliver(w, q);

    tap_ok(nwoken == 2 && woken[1] == 2 && q->nbatches == 0,
           "and batch 2, delivered, answers its own waiter");

    ngx_http_ingest_flush_exit();

    tap_ok(script.nsyncs == 0, "nothing was lost or left at exit");
}


/*
 * Group commit: a request that waits never waits for the flush timer;
 * the requests of one turn of the event loop leave in one batch, and
 * those that come while it is in flight leave together the moment it is
 * acknowledged.
 */

static void
test_group_commit(void)
{
    ngx_http_ingest_queue_t   *q;
    ngx_http_ingest_worker_t  *w;
    ngx_http_ingest_waiter_t   one, two, three, four;

    w = harness_start(10000, 1024 * 1024, 0);
    q = &w->queues[0];

    harness_add(w, q, "a", 1);
    one.handler = harness_woken;
    ngx_http_ingest_flush_wait(q, &one);
    harness_add(w, q, "b", 1);
    two.handler = harness_woken;
    ngx_http_ingest_flush_wait(q, &two);

    tap_ok(script.nsends == 0 && w->commit.posted,
           "group commit: waiting requests post one commit");

    harness_run_posted();

    tap_ok(script.nsends == 1 && script.sends[0].seq == 1
           && harness_oldest_keys(q) == 2 && one.seq == 1 && two.seq == 1,
           "it cuts at once, not at the flush interval: one batch for "
           "the requests of one turn of the loop");

    harness_add(w, q, "c", 1);
    three.handler = harness_woken;
    ngx_http_ingest_flush_wait(q, &three);
    harness_add(w, q, "d", 1);
    harness_add(w, q, "e", 1);
    four.handler = harness_woken;
    ngx_http_ingest_flush_wait(q, &four);
    harness_run_posted();

    tap_ok(script.nsends == 1 && q->nbatches == 1,
           "while batch 1 is in flight, arrivals gather");

    harness_deliver(w, q);

    tap_ok(nwoken == 2 && woken[0] == 1 && woken[1] == 1,
           "batch 1 acknowledged: its two waiters are answered");
    tap_ok(script.nsends == 2 && script.sends[1].seq == 2
           && harness_oldest_keys(q) == 3,
           "and the gathered sums leave at once, as batch 2");

    harness_deliver(w, q);

    tap_ok(nwoken == 4 && woken[2] == 2 && woken[3] == 2
           && q->nbatches == 0,
           "batch 2 acknowledged: its waiters answered, nothing left");

    ngx_http_ingest_flush_exit();

    tap_ok(script.nsyncs == 0, "group commit: nothing left at exit");
}


/*
 * Two requests whose sums are cut together into two batches: both wait
 * for the second, since either's keys may be in it.
 */

static void
test_wait_whole_cut(void)
{
    u_char                     key[64001];
    ngx_uint_t                 i;
    ngx_http_ingest_queue_t   *q;
    ngx_http_ingest_worker_t  *w;
    ngx_http_ingest_waiter_t   one, two;

    w = harness_start(10000, 16 * 1024 * 1024, 0);
    q = &w->queues[0];

    /* 20 keys of 64k (1.25 MB): cut together, they make two batches */

    ngx_memset(key, 'k', sizeof(key) - 1);
    key[sizeof(key) - 1] = '\0';

    for (i = 0; i < 20; i++) {
        int  created;

        key[0] = (u_char) ('a' + i);
        (void) ngx_http_ingest_table_add(&q->sums, key, sizeof(key) - 1, 1,
                                         &created);

        if (i == 9) {
            one.handler = harness_woken;
            ngx_http_ingest_flush_wait(q, &one);
        }
    }

    two.handler = harness_woken;
    ngx_http_ingest_flush_wait(q, &two);
    harness_run_posted();

    tap_ok(q->nbatches == 2 && one.seq == 2 && two.seq == 2,
           "a cut of two batches: both requests wait for the second");
    tap_ok(script.nsends == 1 && script.sends[0].nbatches == 1,
           "over 1 MB together: each goes in an RPUSH of its own");

    harness_deliver(w, q);

    tap_ok(nwoken == 0, "the first acknowledged: no one is answered yet");

    harness_deliver(w, q);

    tap_ok(nwoken == 2 && woken[0] == 2 && woken[1] == 2,
           "the second acknowledged: both are");

    ngx_http_ingest_flush_exit();
}


static void
test_refused(void)
{
    ngx_uint_t                 sends;
    ngx_http_ingest_queue_t   *q;
    ngx_http_ingest_worker_t  *w;

    w = harness_start(1, 1024 * 1024, 0);
    q = &w->queues[1];

    harness_add(w, q, "x", 5);

    tap_ok(script.nsends == 1 && script.sends[0].seq == 1,
           "flush_keys 1: the key is cut and handed over at once");

    /* Redis refused it (OOM, say): the transport keeps it, retries */

    ngx_http_ingest_transport_returned(w->transport, &q->channel);
    ngx_http_ingest_transport_schedule(w->transport);

    tap_ok(w->transport->retry.timer_set && q->nbatches == 1,
           "refused: the batch stays, a retry is scheduled");

    harness_add(w, q, "y", 1);

    tap_ok(script.nsends == 1 && q->nbatches == 2,
           "a new batch is cut behind it, not sent before it");

    sends = script.nsends;
    harness_advance(10000);

    tap_ok(script.nsends == sends + 1
           && script.sends[sends].seq == 1
           && script.sends[sends].sum == script.sends[0].sum,
           "after the backoff batch 1 goes again, byte for byte");

    /* the connection is lost with the batch on its way */

    ngx_http_ingest_transport_returned(w->transport, &q->channel);
    harness_connect(w->transport);

    tap_ok(script.nsends == sends + 2 && script.sends[sends + 1].seq == 1,
           "after a lost connection batch 1 goes again, not batch 2");

    harness_deliver(w, q);
    harness_deliver(w, q);

    tap_ok(script.nsends == sends + 3 && script.sends[sends + 2].seq == 2
           && q->nbatches == 0,
           "then batch 2, once 1 is delivered");

    ngx_http_ingest_flush_exit();
}


static void
test_full(void)
{
    char                       key[32];
    ngx_uint_t                 i;
    ngx_http_ingest_queue_t   *q;
    ngx_http_ingest_worker_t  *w;

    w = harness_start(1000, 3250, 0);
    q = &w->queues[0];

    tap_ok(ngx_http_ingest_flush_pending(w) == 0,
           "an idle worker holds nothing for Redis, whatever it keeps "
           "allocated");

    tap_ok(ngx_http_ingest_flush_admit(w, 3251, w->log) == NGX_DECLINED
           && !w->full,
           "a request that needs more than all of ingest_max_pending is "
           "refused alone (413), and nothing else is");

    for (i = 0; i < 80; i++) {
        ngx_sprintf((u_char *) key, "fk:%05ui%Z", i);
        harness_add(w, q, key, 1);
    }

    tap_ok(ngx_http_ingest_flush_pending(w)
           == 80 * (sizeof(ngx_http_ingest_entry_t) + 8),
           "what waits is the keys and their entries");

    tap_ok(ngx_http_ingest_flush_admit(w, 100, w->log) == NGX_BUSY
           && w->full
           && ngx_http_ingest_flush_admit(w, 1, w->log) == NGX_BUSY,
           "past ingest_max_pending requests are refused (503), and while "
           "more than half of it waits, even small ones");
    tap_ok(harness_logged("reached ingest_max_pending"),
           "and that is logged");

    /* the cut makes it smaller (a batch is denser than the table) */

    harness_advance(harness_conf.flush_interval);

    tap_ok(q->nbatches == 1
           && ngx_http_ingest_flush_pending(w) < 3250 / 2
           && ngx_http_ingest_flush_admit(w, 1, w->log) == NGX_OK
           && !w->full
           && harness_logged("below half of ingest_max_pending"),
           "under half of it, whatever made it fall, requests are taken "
           "again");

    harness_deliver(w, q);

    tap_ok(ngx_http_ingest_flush_pending(w) == 0,
           "delivered: nothing waits");

    ngx_http_ingest_flush_exit();
}


static void
test_drain(void)
{
    ngx_http_ingest_worker_t  *w;

    w = harness_start(100, 1024 * 1024, 0);

    harness_add(w, &w->queues[0], "a", 1);
    harness_add(w, &w->queues[1], "b", 2);

    tap_ok(script.nsends == 0, "before the shutdown nothing is sent");

    harness_shutdown(w, 0);

    tap_ok(w->draining && script.nsends == 2
           && w->drain_timer.timer_set && !w->drain_timer.cancelable,
           "a graceful shutdown cuts and hands over everything at once, "
           "held by a non-cancelable timer");

    harness_deliver(w, &w->queues[0]);

    tap_ok(script.closes == 0, "one list delivered: still draining");

    harness_deliver(w, &w->queues[1]);

    tap_ok(script.closes == 1 && script.graceful
           && !w->drain_timer.timer_set && harness_logged("ingest drained"),
           "all delivered: the transport closes gracefully, the timer goes");

    ngx_http_ingest_flush_exit();

    tap_ok(script.nsyncs == 0, "and the exit path has nothing to do");
}


static void
test_drain_timeout(void)
{
    ngx_http_ingest_worker_t  *w;

    w = harness_start(100, 1024 * 1024, 1);

    harness_add(w, &w->queues[0], "a", 1);
    harness_add(w, &w->queues[0], "b", 1);

    harness_shutdown(w, 0);

    /* Redis is stuck: batch 1 is on its way, never delivered */

    harness_add(w, &w->queues[0], "c", 1);

    tap_ok(w->queues[0].nbatches == 2,
           "while draining, what arrives is cut at once");

    harness_advance(harness_conf.drain_timeout);

    tap_ok(w->exiting && script.closes == 1 && !script.graceful
           && harness_logged("ingest drain timed out"),
           "ingest_drain_timeout: a hard close, the rest for exit_process");

    script.sync_results[0] = NGX_HTTP_INGEST_PUSH_DELIVERED;
    script.nresults = 1;

    ngx_http_ingest_flush_exit();

    tap_ok(script.nsyncs == 1 && script.syncs[0].seq == 1
           && script.syncs[0].nbatches == 2,
           "the exit path sends the backlog oldest first, in one RPUSH");
    tap_ok(script.syncs[0].len > script.sends[0].len
           && script.syncs[0].first_sum == script.sends[0].sum,
           "the batch that was on its way goes again, byte for byte");
    tap_ok(harness_logged("ingest flushed 3 keys to \"h:a\" at exit "
                          "(batches seq 1 to 2)"),
           "what Redis took is logged");
    tap_ok(script.sync_ends == 1, "the blocking connections are closed");
}


/*
 * The exit path cannot reach Redis: the batch on its way and the rest
 * are spooled, in order, with the reason.
 */

static void
test_exit_unreachable(void)
{
    ngx_http_ingest_worker_t  *w;

    w = harness_start(1, 1024 * 1024, 1);

    harness_add(w, &w->queues[0], "a", 1);
    harness_add(w, &w->queues[0], "b", 1);

    ngx_http_ingest_flush_exit();

    tap_ok(script.nsyncs == 2 && script.syncs[0].nbatches == 2
           && script.syncs[1].nbatches == 1 && script.syncs[1].seq == 1,
           "Redis unreachable at exit: both batches, then the oldest alone");
    tap_ok(harness_spooled() == 1
           && harness_logged("ingest spooled 2 keys of \"h:a\" at exit "
                             "(batches up to seq 2): scripted: "
                             "unreachable"),
           "what it could not take is spooled, with the reason");
}


/*
 * A backlog (Redis slow, or back from an outage) leaves in groups: the
 * oldest batches in one RPUSH, at most NGX_HTTP_INGEST_PUSH_MAX_BATCHES,
 * and what was handed is what is retired, whatever was cut meanwhile.
 */

static void
test_backlog_groups(void)
{
    u_char                     key[16];
    ngx_uint_t                 i;
    ngx_http_ingest_queue_t   *q;
    ngx_http_ingest_worker_t  *w;

    w = harness_start(1, 16 * 1024 * 1024, 0);
    q = &w->queues[0];

    /* batch 1 on its way; 99 more cut behind it, one key each */

    for (i = 0; i < 100; i++) {
        ngx_sprintf(key, "k%03ui%Z", i);
        harness_add(w, q, (char *) key, 1);
    }

    tap_ok(script.nsends == 1 && script.sends[0].nbatches == 1
           && q->nbatches == 100,
           "batch 1 on its way alone, 99 cut behind it");

    harness_deliver(w, q);

    tap_ok(script.nsends == 2 && script.sends[1].seq == 2
           && script.sends[1].nbatches == NGX_HTTP_INGEST_PUSH_MAX_BATCHES
           && q->nbatches == 99,
           "then the oldest 64 of the backlog in one RPUSH");

    harness_add(w, q, "late", 1);

    ngx_http_ingest_transport_returned(w->transport, &q->channel);
    harness_connect(w->transport);

    tap_ok(script.nsends == 3 && script.sends[2].seq == 2
           && script.sends[2].nbatches == 32
           && script.sends[2].first_sum == script.sends[1].first_sum,
           "a lost connection: the oldest half of the group goes again, "
           "the same bytes");

    ngx_http_ingest_transport_returned(w->transport, &q->channel);
    harness_connect(w->transport);

    tap_ok(script.nsends == 4 && script.sends[3].seq == 2
           && script.sends[3].nbatches == 16,
           "another failure: half of that");

    harness_deliver(w, q);

    tap_ok(script.nsends == 5 && script.sends[4].seq == 18
           && script.sends[4].nbatches == 32 && q->nbatches == 84,
           "delivered: the 16 are retired, and the next group is twice "
           "as long");

    harness_deliver(w, q);

    tap_ok(script.nsends == 6 && script.sends[5].seq == 50
           && script.sends[5].nbatches == 52 && q->nbatches == 52,
           "and then back to 64 at most: the 52 left, the late one too");

    harness_deliver(w, q);

    tap_ok(q->nbatches == 0 && script.nsends == 6,
           "and the backlog is empty");

    ngx_http_ingest_flush_exit();
}


/*
 * Redis refuses a group at exit that it takes batch by batch (maxmemory
 * counts the command's arguments): the oldest alone, then the next.
 */

static void
test_exit_group_refused(void)
{
    ngx_http_ingest_worker_t  *w;

    w = harness_start(1, 1024 * 1024, 0);

    harness_add(w, &w->queues[0], "a", 1);
    harness_add(w, &w->queues[0], "b", 1);
    harness_add(w, &w->queues[0], "c", 1);

    script.sync_results[0] = NGX_HTTP_INGEST_PUSH_REFUSED;
    script.sync_results[1] = NGX_HTTP_INGEST_PUSH_DELIVERED;
    script.sync_results[2] = NGX_HTTP_INGEST_PUSH_DELIVERED;
    script.sync_results[3] = NGX_HTTP_INGEST_PUSH_DELIVERED;
    script.nresults = 4;

    ngx_http_ingest_flush_exit();

    tap_ok(script.nsyncs == 4 && script.syncs[0].nbatches == 3
           && script.syncs[1].nbatches == 1 && script.syncs[1].seq == 1
           && script.syncs[2].nbatches == 1 && script.syncs[2].seq == 2
           && script.syncs[3].nbatches == 1 && script.syncs[3].seq == 3,
           "a group refused at exit: then one at a time, oldest first");
    tap_ok(!harness_logged("ingest lost")
           && harness_logged("ingest flushed 1 keys to \"h:a\" at exit "
                             "(batch seq 3)"),
           "and nothing is lost");
}


static void
test_exit_refused(void)
{
    ngx_http_ingest_worker_t  *w;

    w = harness_start(1, 1024 * 1024, 0);

    harness_add(w, &w->queues[0], "a", 1);
    harness_add(w, &w->queues[0], "b", 1);
    harness_add(w, &w->queues[1], "c", 1);

    script.sync_results[0] = NGX_HTTP_INGEST_PUSH_REFUSED;
    script.sync_results[1] = NGX_HTTP_INGEST_PUSH_REFUSED;
    script.sync_results[2] = NGX_HTTP_INGEST_PUSH_DELIVERED;
    script.nresults = 3;

    ngx_http_ingest_flush_exit();

    tap_ok(script.nsyncs == 3
           && ngx_strcmp(script.syncs[0].list, "h:a") == 0
           && script.syncs[0].nbatches == 2
           && ngx_strcmp(script.syncs[1].list, "h:a") == 0
           && script.syncs[1].nbatches == 1
           && ngx_strcmp(script.syncs[2].list, "h:b") == 0,
           "a refusal at exit, of the group and of its oldest alone, stops "
           "that list's batches, not the others'");
    tap_ok(harness_logged("ingest redis RPUSH to \"h:a\" failed at exit: "
                          "OOM scripted")
           && harness_logged("ingest lost 2 keys of \"h:a\" at exit "
                             "(batches up to seq 2): redis refused the "
                             "batch")
           && harness_logged("ingest flushed 1 keys to \"h:b\" at exit "
                             "(batch seq 1)"),
           "without a spool, what is not in Redis is logged as lost");
}


/*
 * A batch not taken at exit (too few replicas) stops its list there: the
 * next is not sent, or the consumer would skip the first as old when the
 * spool brings it.  Both go to one spool file, oldest first.
 */

static void
test_exit_unsafe(void)
{
    ngx_uint_t                 files;
    ngx_http_ingest_worker_t  *w;

    w = harness_start(1, 1024 * 1024, 1);
    files = harness_spooled();

    harness_add(w, &w->queues[0], "a", 1);
    harness_add(w, &w->queues[0], "b", 1);

    script.sync_results[0] = NGX_HTTP_INGEST_PUSH_UNSAFE;
    script.sync_results[1] = NGX_HTTP_INGEST_PUSH_UNSAFE;
    script.sync_results[2] = NGX_HTTP_INGEST_PUSH_DELIVERED;
    script.nresults = 3;

    ngx_http_ingest_flush_exit();

    tap_ok(script.nsyncs == 2 && script.syncs[0].seq == 1
           && script.syncs[0].nbatches == 2
           && script.syncs[1].seq == 1 && script.syncs[1].nbatches == 1,
           "a batch on too few replicas at exit (in the group, then "
           "alone): the list's next one is not sent after it");
    tap_ok(harness_spooled() == files + 1
           && harness_logged("ingest spooled 2 keys of \"h:a\" at exit "
                             "(batches up to seq 2)")
           && harness_logged("(2 batches)"),
           "both are in one spool file");
}


/*
 * A slow Redis at exit: the sends stop after the exit's budget, and the
 * rest goes to the spool, before nginx's master would kill the worker
 * (1.5 s after a TERM).
 */

static void
test_exit_budget(void)
{
    ngx_uint_t                 i, files;
    ngx_msec_t                 start;
    ngx_http_ingest_worker_t  *w;
    u_char                     key[16];

    w = harness_start(1, 16 * 1024 * 1024, 1);
    files = harness_spooled();

    /* 200 batches: four RPUSHes of up to 64 */

    for (i = 0; i < 200; i++) {
        ngx_sprintf(key, "k%03ui%Z", i);
        harness_add(w, &w->queues[0], (char *) key, 1);
    }

    for (i = 0; i < 4; i++) {
        script.sync_results[i] = NGX_HTTP_INGEST_PUSH_DELIVERED;
    }

    script.nresults = 4;
    script.sync_delay = 200;

    ngx_time_update();
    start = ngx_current_msec;

    ngx_http_ingest_flush_exit();

    ngx_time_update();
    script.sync_delay = 0;

    tap_ok(ngx_current_msec - start < 1000,
           "a slow Redis at exit: done within the exit's budget");
    tap_ok(script.nsyncs >= 2 && script.nsyncs <= 3,
           "a slow Redis at exit: a few sends, not all 4");
    tap_ok(harness_spooled() == files + 1
           && harness_logged("the exit's 500 ms for Redis ran out"),
           "a slow Redis at exit: the rest is spooled, and why");
}


/*
 * The spool's disk fills up at exit: the file keeps the batches that
 * fit, whole, and the rest is counted and logged as lost.
 */

static void
test_exit_disk_full(void)
{
    size_t                     limit;
    u_char                     key[1001];
    ngx_uint_t                 i, files;
    ngx_queue_t               *l;
    struct rlimit              old, lim;
    ngx_http_ingest_batch_t   *b;
    ngx_http_ingest_worker_t  *w;

    w = harness_start(1, 16 * 1024 * 1024, 1);
    files = harness_spooled();

    for (i = 0; i < 3; i++) {
        ngx_memset(key, 'a' + i, 1000);
        key[1000] = '\0';
        harness_add(w, &w->queues[0], (char *) key, 1);
    }

    /* room for the list's line and two batches, and half the third */

    limit = w->queues[0].name.len + 1;
    i = 0;

    for (l = ngx_queue_head(&w->queues[0].backlog);
         l != ngx_queue_sentinel(&w->queues[0].backlog);
         l = ngx_queue_next(l))
    {
        b = ngx_queue_data(l, ngx_http_ingest_batch_t, link);
        limit += (i++ < 2) ? b->buf.len + 1 : b->buf.len / 2;
    }

    if (i != 3 || getrlimit(RLIMIT_FSIZE, &old) != 0) {
        tap_ok(0, "disk full: three batches to spool");
        return;
    }

    lim = old;
    lim.rlim_cur = limit;

    signal(SIGXFSZ, SIG_IGN);
    (void) setrlimit(RLIMIT_FSIZE, &lim);

    ngx_http_ingest_flush_exit();

    (void) setrlimit(RLIMIT_FSIZE, &old);

    tap_ok(harness_spooled() == files + 1
           && harness_logged("(2 batches)"),
           "disk full: the spool file keeps the two batches that fit");
    tap_ok(harness_logged("ingest lost 1 keys of \"h:a\" at exit (batches "
                          "up to seq 3): the spool could not take them")
           && harness_logged("ingest spooled 2 keys of \"h:a\" at exit"),
           "disk full: the third is logged as lost, the two as spooled");
}


/* the exit's last cut cannot be allocated: what it held is said lost */

static void
test_exit_nomem(void)
{
    u_char                     key[4001];
    ngx_uint_t                 i;
    struct rlimit              old, lim;
    ngx_http_ingest_worker_t  *w;

    w = harness_start(1000, 64 * 1024 * 1024, 0);

    if (getrlimit(RLIMIT_AS, &old) != 0) {
        tap_ok(0, "exit, no memory: getrlimit");
        return;
    }

    /* 100 keys of 4000 bytes: under the bytes that make a cut */

    for (i = 0; i < 100; i++) {
        ngx_memset(key, 'a' + i % 26, 4000);
        ngx_sprintf(key, "%04ui", i);
        key[4000] = '\0';
        harness_add(w, &w->queues[0], (char *) key, 1);
    }

    lim = old;
    lim.rlim_cur = harness_vm() + 64 * 1024;
    (void) setrlimit(RLIMIT_AS, &lim);

    ngx_http_ingest_flush_exit();

    (void) setrlimit(RLIMIT_AS, &old);

    tap_ok(w->queues[0].nbatches == 0 && script.nsyncs == 0
           && harness_logged("ingest lost 100 keys of \"h:a\" at exit: "
                             "their batch cannot be allocated"),
           "a last cut that cannot be allocated is counted and logged as "
           "lost");
}


static void
test_shutdown_timeout(void)
{
    ngx_http_ingest_worker_t  *w;

    w = harness_start(100, 1024 * 1024, 0);

    harness_add(w, &w->queues[0], "a", 1);

    harness_shutdown(w, 0);

    tap_ok(w->drain_timer.timer_set, "draining, held by the drain timer");

    harness_shutdown(w, 1);

    tap_ok(!w->drain_timer.timer_set && w->exiting && script.closes == 1
           && !script.graceful,
           "worker_shutdown_timeout ends the drain at once");

    ngx_http_ingest_flush_exit();

    tap_ok(script.nsyncs == 1, "exit_process still makes its attempt");
}


static ngx_int_t
harness_init_process(ngx_cycle_t *cycle)
{
    ngx_str_t  *list;
    char        dir[] = "/tmp/ingest-harness-XXXXXX";

    harness_log.log_level = NGX_LOG_INFO;
    harness_log.writer = harness_log_writer;

    harness_cycle = *cycle;
    harness_cycle.log = &harness_log;

    ngx_memzero(&harness_conf, sizeof(ngx_http_ingest_main_conf_t));

    if (ngx_array_init(&harness_conf.queues, cycle->pool, 2,
                       sizeof(ngx_str_t))
        != NGX_OK
        || ngx_array_init(&harness_conf.tables, cycle->pool, 1,
                          sizeof(ngx_http_ingest_records_conf_t *))
           != NGX_OK
        || mkdtemp(dir) == NULL)
    {
        return NGX_ERROR;
    }

    list = ngx_array_push_n(&harness_conf.queues, 2);
    harness_spool.name.len = ngx_strlen(dir);
    harness_spool.name.data = ngx_pnalloc(cycle->pool, sizeof(dir));

    if (list == NULL || harness_spool.name.data == NULL) {
        return NGX_ERROR;
    }

    ngx_str_set(&list[0], "h:a");
    ngx_str_set(&list[1], "h:b");
    ngx_memcpy(harness_spool.name.data, dir, sizeof(dir));

    harness_conf.flush_interval = 100;
    harness_conf.drain_timeout = 3000;
    harness_conf.ack_timeout = 5000;
    harness_conf.connect_timeout = 1000;

    test_order();
    test_delivered_window();
    test_group_commit();
    test_refused();
    test_full();
    test_drain();
    test_drain_timeout();
    test_exit_unreachable();
    test_backlog_groups();
    test_exit_group_refused();
    test_exit_refused();
    test_exit_unsafe();
    test_exit_budget();
    test_exit_disk_full();
    test_exit_nomem();
    test_shutdown_timeout();
    /* last: its megabytes, freed, would let test_exit_nomem allocate */
    test_wait_whole_cut();

    exit(tap_done());
}


static ngx_core_module_t  harness_module_ctx = {
    ngx_string("ingest_flush_harness"),
    NULL,
    NULL
};


ngx_module_t  ngx_ingest_flush_harness_module = {
    NGX_MODULE_V1,
    &harness_module_ctx,                   /* module context */
    NULL,                                  /* module directives */
    NGX_CORE_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    harness_init_process,                  /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    NULL,                                  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


ngx_module_t  *ngx_modules[] = {
    &ngx_ingest_flush_harness_module,
    NULL
};


char  *ngx_module_names[] = {
    "ngx_ingest_flush_harness_module",
    NULL
};


char  *ngx_module_order[] = {
    NULL
};
