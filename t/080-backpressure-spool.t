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
    ingest_max_pending 200k;
--- config
    location = /c { ingest_counters; }
--- more_headers
Content-Type: application/x-www-form-urlencoded
--- request eval
["POST /c\n" . CORE::join("&", map { "bp1:key$_=1" } 1 .. 5000),
 "POST /c\nbp1:small=1"]
--- error_code eval
[503, 503]
--- response_headers eval
["Retry-After: 1\nContent-Type: application/json",
 "Retry-After: 1\nContent-Type: application/json"]
--- response_body eval
["{\"error\":\"pending limit reached, Redis is not taking batches as fast as they come; retry later\"}\n",
 "{\"error\":\"pending limit reached, Redis is not taking batches as fast as they come; retry later\"}\n"]
--- error_log
ingest pending memory reached ingest_max_pending (204800 bytes): Redis is not taking batches as fast as they come; answering 503 until half of it is sent
--- no_error_log
[error]



=== TEST 2: the same body fits a larger bound and is counted
--- http_config
    ingest_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
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



=== TEST 3: Redis down at exit: the batches go to the spool
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
 qr/ingest spooled ".*\/spool\/[^"]+~ingest_counters~00000000000000000001\.batch"/,
 qr/ingest spooled ".*\/spool\/[^"]+~ingest_counters~00000000000000000003\.batch"/]



=== TEST 4: the next nginx replays the spool into Redis, in order
--- http_config
    ingest_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
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
[qr/ingest replayed spooled batch "[^"]+~ingest_counters~00000000000000000001\.batch"/,
 qr/ingest replayed spooled batch "[^"]+~ingest_counters~00000000000000000003\.batch"/]
--- no_error_log
[error]
