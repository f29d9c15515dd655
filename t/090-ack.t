# ingest_ack: memory (204 once in the worker's table) or redis (204 once
# Redis has acknowledged the batch holding the request, 504 when it does
# not in time: the outcome is unknown, never a 2xx).

use lib 't/lib';
use Ingest::Test;
use Test::Nginx::Socket 'no_plan';

check_accum_error_log();
run_tests();

__DATA__

=== TEST 1: ingest_ack redis: 204 after Redis acknowledged the batch
--- http_config
    ingest_redis $TEST_NGINX_REDIS;
    ingest_flush_interval 5ms;
--- config
    location = /c { ingest_counters; ingest_ack redis; }
--- more_headers
Content-Type: application/x-www-form-urlencoded
--- request eval
["POST /c\nack1:a=1", "POST /c\nack1:a=2&ack1:b=3"]
--- error_code eval
[204, 204]
--- totals eval
{ "ack1:a" => 3, "ack1:b" => 3 }
--- error_log
ingest batch seq:1 keys:1 acked by "ingest:counters"
--- no_error_log
[error]
[warn]



=== TEST 2: ingest_ack redis with Redis away: 504 after ingest_ack_timeout
--- http_config
    ingest_redis 127.0.0.1:1;
    ingest_flush_interval 5ms;
--- config
    location = /c { ingest_counters; ingest_ack redis; ingest_ack_timeout 200ms; }
--- more_headers
Content-Type: application/x-www-form-urlencoded
--- request eval
"POST /c\nack2:a=1"
--- error_code: 504
--- response_headers
Content-Type: application/json
--- response_body
{"error":"not acknowledged by Redis in time; the increments may or may not be counted"}
--- error_log
ingest batch seq 1 of "ingest:counters" not acknowledged by Redis within ingest_ack_timeout: answering 504



=== TEST 3: ingest_ack memory (the default) with Redis away: 204 at once
--- http_config
    ingest_redis 127.0.0.1:1;
    ingest_flush_interval 5ms;
--- config
    location = /c { ingest_counters; }
--- more_headers
Content-Type: application/x-www-form-urlencoded
--- request eval
"POST /c\nack3:a=1"
--- error_code: 204
--- no_error_log
answering 504



=== TEST 4: a bad ingest_ack value
--- http_config
    ingest_redis 127.0.0.1:1;
--- config
    location = /c { ingest_counters; ingest_ack disk; }
--- request
GET /c
--- must_die
--- error_log
invalid value "disk"



=== TEST 5: ingest_ack redis, nothing to add ({}): 204 at once, nothing waits
--- http_config
    ingest_redis $TEST_NGINX_REDIS;
    ingest_flush_interval 5ms;
    ingest_shards 2;
--- config
    location = /c { ingest_counters; ingest_ack redis; ingest_ack_timeout 5s; }
--- more_headers
Content-Type: application/json
--- request eval
["POST /c\n{}", "POST /c\n{ }"]
--- error_code eval
[204, 204]
--- timeout: 2
--- no_error_log
[warn]
[error]



=== TEST 6: ... with an Idempotency-Key and shards too
--- http_config
    ingest_redis $TEST_NGINX_REDIS;
    ingest_flush_interval 5ms;
    ingest_shards 2;
--- config
    location = /c { ingest_counters; ingest_ack redis; ingest_ack_timeout 5s; }
--- more_headers
Content-Type: application/json
Idempotency-Key: empty-6
--- request eval
"POST /c\n{}"
--- error_code: 204
--- timeout: 2
--- no_error_log
[warn]
[error]
