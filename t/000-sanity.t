# The module loads, counts a request, and the total reaches SQLite.

use lib 't/lib';
use Ingest::Test;
use Test::Nginx::Socket 'no_plan';

no_shuffle();
run_tests();

__DATA__

=== TEST 1: form body is counted end to end
--- http_config
    ingest_redis $TEST_NGINX_REDIS;
    ingest_flush_interval 10ms;
--- config
    location = /counters { ingest_counters; }
--- more_headers
Content-Type: application/x-www-form-urlencoded
--- request eval
"POST /counters\nsanity:a=1&sanity:b=2&sanity:a=5"
--- error_code: 204
--- response_body eval
""
--- totals eval
{ "sanity:a" => 6, "sanity:b" => 2 }
--- no_error_log
[error]
[alert]
[crit]



=== TEST 2: GET is refused
--- http_config
    ingest_redis $TEST_NGINX_REDIS;
--- config
    location = /counters { ingest_counters; }
--- request
GET /counters
--- error_code: 405
--- response_headers
Allow: POST
Content-Type: application/json
--- response_body
{"error":"method not allowed"}
--- no_error_log
[error]
