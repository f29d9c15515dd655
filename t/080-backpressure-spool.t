# The memory bound (503 + Retry-After, nothing accepted dropped) and the
# spool: batches Redis could not take at exit are written to disk and
# replayed, unchanged, by the next nginx.

use lib 't/lib';
use Ingest::Test;
use Test::Nginx::Socket 'no_plan';

no_shuffle();
check_accum_error_log();
run_tests();

__DATA__

=== TEST 1: past ingest_max_pending, 503 with Retry-After, logged once
--- http_config
    ingest_redis 127.0.0.1:1;
    ingest_max_pending 400k;
    ingest_flush_keys 1;
    ingest_flush_interval 1h;
--- config
    location = /c { ingest_counters; client_max_body_size 1m; }
--- more_headers
Content-Type: application/x-www-form-urlencoded
--- request eval
[(map { my $r = $_; "POST /c\n" . CORE::join("&", map { "bp1:k${r}_$_=1" } 1 .. 5000) } 1 .. 4),
 "POST /c\nbp1:small=1"]
--- error_code eval
[204, 204, 204, 503, 503]
--- response_headers eval
["", "", "",
 "Retry-After: 1\nContent-Type: application/json",
 "Retry-After: 1\nContent-Type: application/json"]
--- response_body eval
["", "", "",
 "{\"error\":\"pending limit reached, Redis is not taking batches as fast as they come; retry later\"}\n",
 "{\"error\":\"pending limit reached, Redis is not taking batches as fast as they come; retry later\"}\n"]
--- grep_error_log: ingest pending memory reached ingest_max_pending
--- grep_error_log_out eval
["", "", "", "ingest pending memory reached ingest_max_pending\n",
 "ingest pending memory reached ingest_max_pending\n"]
--- no_error_log
[error]



=== TEST 1b: one request that needs more than ingest_max_pending: 413 alone, nothing left behind
--- http_config
    ingest_redis $TEST_NGINX_REDIS;
    ingest_flush_interval 10ms;
    ingest_max_pending 1m;
--- config
    location = /c {
        ingest_counters;
        client_max_body_size 8m;
        client_body_buffer_size 8m;
    }
    location = /ingest/status { ingest_status; }
--- more_headers
Content-Type: application/x-www-form-urlencoded
--- request eval
["POST /c\n" . CORE::join("&", map { "bp1b:z$_=1" } 1 .. 60000),
 "POST /c\nbp1b:a=1", "GET /ingest/status"]
--- error_code eval
[413, 204, 200]
--- response_body_like eval
[qr/^\{"error":"request needs more than ingest_max_pending"\}\n$/, qr/^$/,
 qr/"pending":\{"keys":\d+,"bytes":\d{1,4}\}/]
--- totals eval
{ "bp1b:a" => 1, "bp1b:z1" => undef, "bp1b:z60000" => undef }
--- no_error_log
[error]
ingest pending memory reached



=== TEST 1c: the same for records: a body whose rows need more is 413, the next is taken
--- http_config
    ingest_redis $TEST_NGINX_REDIS;
    ingest_flush_interval 10ms;
    ingest_max_pending 1m;
--- config
    location = /r {
        ingest_records bp1c queue=ingest:counters id:int! t:text;
        client_max_body_size 8m;
        client_body_buffer_size 8m;
    }
--- request eval
["POST /r\n" . ("{\"id\":1,\"t\":\"" . ("x" x 100) . "\"}\n") x 20000,
 "POST /r\n{\"id\":2}\n"]
--- error_code eval
[413, 200]
--- response_body eval
["{\"error\":\"request needs more than ingest_max_pending\"}\n",
 "{\"result\":{\"status\":\"ok\",\"stats\":{\"bytes\":8,\"records\":{\"valid\":1,\"invalid\":0,\"total\":1}},\"errors\":[]}}\n"]
--- sql eval
["SELECT id FROM bp1c ORDER BY rowid", [[2]]]
--- no_error_log
[error]
ingest pending memory reached



=== TEST 1d: 64 shards at the defaults: nothing held for Redis once it has it all
--- http_config
    ingest_redis $TEST_NGINX_REDIS;
    ingest_flush_interval 10ms;
    ingest_shards 64;
--- config
    location = /c { ingest_counters; }
    location = /ingest/status { ingest_status; }
--- more_headers
Content-Type: application/x-www-form-urlencoded
--- request eval
["POST /c\n" . CORE::join("&", map { "bp1d:k$_=1" } 1 .. 500), "GET /ingest/status"]
--- error_code eval
[204, 200]
--- response_body_like eval
["", qr/"pending":\{"keys":\d+,"bytes":\d+\}/]
--- eventually eval
["/ingest/status", qr/"pending":\{"keys":0,"bytes":0\}/]



=== TEST 2: the same body fits a larger bound and is counted
--- http_config
    ingest_redis $TEST_NGINX_REDIS;
    ingest_flush_interval 10ms;
    ingest_max_pending 1m;
--- config
    location = /c { ingest_counters; }
--- more_headers
Content-Type: application/x-www-form-urlencoded
--- request eval
"POST /c\n" . CORE::join("&", map { "bp2:key$_=1" } 1 .. 5000)
--- error_code: 204
--- totals eval
{ "bp2:key1" => 1, "bp2:key5000" => 1 }
--- no_error_log
[error]
ingest pending memory reached



=== TEST 3: Redis down at exit: the batches go to the spool, one file per list
--- http_config
    ingest_redis 127.0.0.1:1;
    ingest_flush_interval 1h;
    ingest_flush_keys 2;
    ingest_spool $TEST_NGINX_INGEST_DIR/spool;
--- config
    location = /c { ingest_counters; }
--- more_headers
Content-Type: application/x-www-form-urlencoded
--- request eval
["POST /c\nsp:a=1&sp:b=2", "POST /c\nsp:a=10&sp:c=3", "POST /c\nsp:d=4"]
--- error_code eval
[204, 204, 204]
--- shutdown_error_log eval
[qr/ingest spooled 5 keys of "ingest:counters" at exit \(batches up to seq 3\): /,
 qr/ingest spooled ".*\/spool\/[^"~]+~ingest%3Acounters~00000000000000000001\.batch" \(3 batches\)/]



=== TEST 4: the next nginx replays the spool into Redis, in order
--- http_config
    ingest_redis $TEST_NGINX_REDIS;
    ingest_flush_interval 10ms;
    ingest_spool $TEST_NGINX_INGEST_DIR/spool;
--- config
    location = /c { ingest_counters; }
--- more_headers
Content-Type: application/x-www-form-urlencoded
--- request eval
"POST /c\nsp:after=1"
--- error_code: 204
--- totals eval
{ "sp:a" => 11, "sp:b" => 2, "sp:c" => 3, "sp:d" => 4, "sp:after" => 1 }
--- error_log eval
[qr/ingest replayed spool file "[^"~]+~ingest%3Acounters~00000000000000000001\.batch" \(3 batches\)/]
--- no_error_log
[error]
