# ingest_status: whole-server numbers, JSON and Prometheus; the consumer's
# heartbeat and lag; each list's dead-letter depth; the Prometheus output
# passes promtool.  Both name the module's version (VERSION) first.

use lib 't/lib';
use Ingest::Test;
use Test::Nginx::Socket 'no_plan';
use JSON::PP ();

no_shuffle();

# VERSION, as a regex, for the blocks' evals
our $Version;
BEGIN {
    open my $v, '<', 'VERSION' or die "VERSION: $!";
    chomp($Version = <$v>);
    close $v;
    $Version = quotemeta $Version;
}

add_block_preprocessor(sub {
    my $block = shift;

    $block->set_value("http_config", <<'_EOC_') unless defined $block->http_config;
    ingest_redis $TEST_NGINX_REDIS;
    ingest_flush_interval 10ms;
_EOC_

    $block->set_value("config", <<'_EOC_') unless defined $block->config;
    location = /c { ingest_counters; }
    location = /ingest/status { ingest_status; }
_EOC_

    if (defined $block->dead_letters) {
        # elements in the dead-letter list: only their number shows
        Ingest::Test::redis_cli('RPUSH', 'ingest:counters:dead',
            map { qq({"reason":"test $_","at":1000,"consumer":"t130"} x) }
            1 .. $block->dead_letters);
    }

    if (defined $block->stale_heartbeat) {
        # the consumer stops; its last heartbeat is an old one
        Ingest::Test::consumer_stop();
        Ingest::Test::redis_cli('SET', 'ingest:counters:heartbeat',
            '{"ts":1000,"batches":7,"rows":9,"last_commit":1000,"lag_ms":0}');
    }
});

add_response_body_check(sub {
    my ($block, $body, $req_idx) = @_;
    return unless defined $block->json_valid;
    my $reqs = $block->request;
    return unless $req_idx == (ref $reqs eq 'ARRAY' ? @$reqs : 1) - 1;

    my $doc = eval { JSON::PP->new->decode($body) };
    ok(defined $doc, $block->name . " - the body is valid JSON") or diag $@;
});

add_response_body_check(sub {
    my ($block, $body, $req_idx) = @_;
    return unless defined $block->promtool;
    my $reqs = $block->request;
    return unless $req_idx == (ref $reqs eq 'ARRAY' ? @$reqs : 1) - 1;

    my $file = "$Ingest::Test::Dir/metrics.txt";
    open my $out, '>', $file or die $!;
    print $out $body;
    close $out;

    my $report = `promtool check metrics < $file 2>&1`;
    is($? >> 8, 0, $block->name . " - promtool check metrics")
        or diag $report;
});

run_tests();

__DATA__

=== TEST 1: counts by endpoint and status, increments, JSON by default
--- more_headers
Content-Type: application/x-www-form-urlencoded
--- request eval
["POST /c\nst:a=1&st:b=2", "POST /c\nst:a=1&&", "GET /c", "GET /ingest/status"]
--- error_code eval
[204, 400, 405, 200]
--- response_body_like eval
["", qr/empty pair/, qr/method not allowed/,
 qr/^\{"version":"$::Version","workers":1,"requests":\{"\/c":\{"204":1,"400":1,"405":1\}\},"increments_accepted":2,"records_accepted":0,"pending":\{"keys":\d+,"bytes":\d+\},"batches":\{"flushed":\d+,"failed":0,"retried":0\},"flush_seconds":\{"count":\d+,"sum":[\d.]+\},"redis":\{"connected_workers":1,"denied_workers":0,"reconnects":0\},"spool_files":0,"spool_aside":0,"queues":\{"ingest:counters":\{"depth":\d+,"dead":0,"consumer":/]
--- no_error_log
[error]
[alert]



=== TEST 2: the consumer's heartbeat and lag show, and the list is drained
--- more_headers
Content-Type: application/x-www-form-urlencoded
--- request eval
"POST /c\nst2:a=1"
--- error_code: 204
--- totals eval
{ "st2:a" => 1 }



=== TEST 2b: ... once the consumer has applied it
--- request
GET /ingest/status
--- error_code: 200
--- response_body_like eval
qr/"queues":\{"ingest:counters":\{"depth":0,"dead":0,"consumer":\{"up":true,"heartbeat_age_seconds":[\d.]+,"lag_seconds":[\d.]+,"batches_applied":\d+,"rows_applied":\d+,"bucket_rows_written":\d+,"last_commit":\d+\}\}\}\}$/



=== TEST 3: Prometheus text, by argument; promtool accepts it
--- more_headers
Content-Type: application/x-www-form-urlencoded
--- request eval
["POST /c\nst3:a=1", "GET /ingest/status?format=prometheus"]
--- error_code eval
[204, 200]
--- response_headers eval
["", "Content-Type: text/plain; version=0.0.4; charset=utf-8"]
--- response_body_like eval
["", qr/^# HELP ingest_build_info .*\n# TYPE ingest_build_info gauge\ningest_build_info\{version="$::Version"\} 1\n# HELP ingest_requests_total .*\ningest_requests_total\{endpoint="\/c",code="204"\} 1\n.*\ningest_increments_total 1\n.*\ningest_flush_duration_seconds_bucket\{le="\+Inf"\} \d+\n.*\ningest_queue_depth\{queue="ingest:counters"\} \d+\n.*\ningest_queue_dead\{queue="ingest:counters"\} 0\n.*\ningest_consumer_up\{queue="ingest:counters"\} 1\n/s]
--- promtool



=== TEST 4: ... or by a scraper's Accept: text/plain
--- more_headers
Accept: text/plain;version=0.0.4;q=1,*/*;q=0.1
--- request
GET /ingest/status
--- error_code: 200
--- response_body_like eval
qr/^\# HELP ingest_build_info /
--- promtool



=== TEST 5: POST to the status is not allowed
--- request eval
"POST /ingest/status\nx"
--- error_code: 405
--- response_headers
Allow: GET, HEAD



=== TEST 6: a stopped consumer is flagged (once the worker is connected: it polls then)
--- stale_heartbeat
--- request
GET /ingest/status
--- eventually eval
["/ingest/status", qr/"queues":\{"ingest:counters":\{"depth":0,"dead":0,"consumer":\{"up":false,"heartbeat_age_seconds":\d+\.\d+,"lag_seconds":0\.000,"batches_applied":7,"rows_applied":9,"bucket_rows_written":0,"last_commit":1000\}\}\}\}$/]



=== TEST 7: names with quotes and backslashes are escaped in the JSON
--- config
    location = "/c\"x\\y" { ingest_counters "queue=st7\"q\\r"; }
    location = /ingest/status { ingest_status; }
--- more_headers
Content-Type: application/x-www-form-urlencoded
--- request eval
["POST /c%22x%5Cy\nst7:a=1", "GET /ingest/status"]
--- error_code eval
[204, 200]
--- response_body_like eval
["", qr/^\{"version":"$::Version","workers":1,"requests":\{"\/c\\"x\\\\y":\{"204":1\}\},.*"queues":\{"st7\\"q\\\\r":\{"depth":\d+,"dead":0,"consumer":null\}\}\}$/]
--- json_valid



=== TEST 8: ... and in the Prometheus labels
--- config
    location = "/c\"x\\y" { ingest_counters "queue=st8\"q\\r"; }
    location = /ingest/status { ingest_status; }
--- more_headers
Content-Type: application/x-www-form-urlencoded
--- request eval
["POST /c%22x%5Cy\nst8:a=1", "GET /ingest/status?format=prometheus"]
--- error_code eval
[204, 200]
--- response_body_like eval
["", qr/\ningest_requests_total\{endpoint="\/c\\"x\\\\y",code="204"\} 1\n.*\ningest_queue_depth\{queue="st8\\"q\\\\r"\} \d+\n/s]
--- promtool



=== TEST 9: the dead-letter list's depth, per list
--- dead_letters: 2
--- request
GET /ingest/status
--- error_code: 200
--- eventually eval
["/ingest/status", qr/"queues":\{"ingest:counters":\{"depth":\d+,"dead":2,"consumer":/]
--- json_valid



=== TEST 10: ... and in Prometheus's text (once the new worker has polled)
--- request
GET /ingest/status?format=prometheus
--- error_code: 200
--- eventually eval
["/ingest/status?format=prometheus", qr/\n# HELP ingest_queue_dead Batches the consumer refused, in the list's dead-letter list\.\n# TYPE ingest_queue_dead gauge\ningest_queue_dead\{queue="ingest:counters"\} 2\n/]
--- promtool
