# Good bodies of every style reach SQLite with exact totals.

use lib 't/lib';
use Ingest::Test;
use Test::Nginx::Socket 'no_plan';

add_block_preprocessor(sub {
    my $block = shift;

    $block->set_value("http_config", <<'_EOC_') unless defined $block->http_config;
    ingest_redis $TEST_NGINX_REDIS;
    ingest_flush_interval 10ms;
_EOC_

    $block->set_value("config", <<'_EOC_') unless defined $block->config;
    location = /c { ingest_counters; }
    location = /kv { ingest_counters form=key_value; }
_EOC_

    $block->set_value("no_error_log", "[error]\n[alert]\n[crit]\n")
        unless defined $block->no_error_log;
});

run_tests();

__DATA__

=== TEST 1: form: keys add up, repeated keys sum, + and %XX decode
--- more_headers
Content-Type: application/x-www-form-urlencoded
--- request eval
"POST /c\nc1%3Apage=1&c1:stock=-2&c1:page=5&c1+a%20b=7&c1:%C3%A9=3"
--- error_code: 204
--- response_body eval
""
--- totals eval
{ "c1:page" => 6, "c1:stock" => -2, "c1 a b" => 7, "c1:\x{c3}\x{a9}" => 3 }



=== TEST 2: form: int64 edges are exact
--- more_headers
Content-Type: application/x-www-form-urlencoded; charset=UTF-8
--- request eval
"POST /c\nc2:max=9223372036854775807&c2:min=-9223372036854775808&c2:zero=0"
--- error_code: 204
--- totals eval
{ "c2:max" => "9223372036854775807", "c2:min" => "-9223372036854775808",
  "c2:zero" => 0 }



=== TEST 3: JSON object of integers
--- more_headers
Content-Type: application/json
--- request eval
"POST /c\n{\"c3:a\": 10, \"c3:b\": -3, \"c3:a\": 1, \"c3:\\u00e9\\ud83d\\ude00\": 9007199254740993}"
--- error_code: 204
--- totals eval
{ "c3:a" => 11, "c3:b" => -3, "c3:\x{c3}\x{a9}\x{f0}\x{9f}\x{98}\x{80}" => "9007199254740993" }



=== TEST 4: the original incrementor's key=<k>&value=<v>
--- more_headers
Content-Type: application/x-www-form-urlencoded
--- request eval
["POST /kv\nkey=c4:test1&value=1", "POST /kv\nvalue=-10000&key=c4:test1",
 "POST /kv\nkey=c4%3Auuid&value=42"]
--- error_code eval
[204, 204, 204]
--- totals eval
{ "c4:test1" => -9999, "c4:uuid" => 42 }



=== TEST 5: a key exactly at ingest_max_key_length
--- config
    location = /c { ingest_counters; ingest_max_key_length 8; }
--- more_headers
Content-Type: application/x-www-form-urlencoded
--- request eval
"POST /c\nc5:45678=1"
--- error_code: 204
--- totals eval
{ "c5:45678" => 1 }



=== TEST 6: many requests, many keys, one total each
--- more_headers
Content-Type: application/x-www-form-urlencoded
--- request eval
[map { "POST /c\n" . CORE::join("&", map { "c6:k$_=$_" } 1 .. 50) } 1 .. 20]
--- error_code eval
[(204) x 20]
--- totals eval
+{ map { ("c6:k$_" => 20 * $_) } 1 .. 50 }



=== TEST 7: Redis over a unix socket
--- http_config
    ingest_redis $TEST_NGINX_REDIS_UNIX;
    ingest_flush_interval 10ms;
--- more_headers
Content-Type: application/x-www-form-urlencoded
--- request eval
"POST /c\nc7:unix=3"
--- error_code: 204
--- totals eval
{ "c7:unix" => 3 }



=== TEST 8: the body of an empty JSON object counts nothing
--- more_headers
Content-Type: application/json
--- request eval
["POST /c\n {} ", "POST /c\n{\"c8:after\":1}"]
--- error_code eval
[204, 204]
--- totals eval
{ "c8:after" => 1 }



=== TEST 9: a name in ingest_redis is resolved when the conf is read
--- http_config
    ingest_redis localhost:$TEST_NGINX_REDIS_PORT;
    ingest_flush_interval 10ms;
--- more_headers
Content-Type: application/x-www-form-urlencoded
--- request eval
"POST /c\nc9:byname=1"
--- error_code: 204
--- totals eval
{ "c9:byname" => 1 }



=== TEST 10: pipelined: two bodies in one write, both counted, both answered
The first body is parsed where it lies in nginx's header buffer; the
second request follows it in the same buffer and must start exactly
where the first body ends.
--- raw_request eval
"POST /c HTTP/1.1\r
Host: localhost\r
Content-Type: application/x-www-form-urlencoded\r
Content-Length: 7\r
\r
c10:a=1POST /kv HTTP/1.1\r
Host: localhost\r
Content-Type: application/x-www-form-urlencoded\r
Content-Length: 19\r
Connection: close\r
\r
key=c10:b&value=-40"
--- error_code: 204
--- response_body_like: ^HTTP/1\.1 204 No Content\r\n
--- totals eval
{ "c10:a" => 1, "c10:b" => -40 }



=== TEST 11: pipelined: a bad body is refused, the next request still parses
--- raw_request eval
"POST /c HTTP/1.1\r
Host: localhost\r
Content-Type: application/x-www-form-urlencoded\r
Content-Length: 8\r
\r
c11:a=1&POST /c HTTP/1.1\r
Host: localhost\r
Content-Type: application/x-www-form-urlencoded\r
Content-Length: 7\r
Connection: close\r
\r
c11:b=2"
--- error_code: 400
--- response_body_like: ^\{"error":"empty pair","at":8\}\n
--- totals eval
{ "c11:b" => 2 }
--- no_error_log
[error]



=== TEST 12: Expect: 100-continue: the body is not there yet, and still counts
--- raw_request eval
"POST /c HTTP/1.1\r
Host: localhost\r
Content-Type: application/x-www-form-urlencoded\r
Content-Length: 7\r
Expect: 100-continue\r
Connection: close\r
\r
c12:a=5"
--- error_code: 100
--- response_body_like: HTTP/1\.1 204 No Content\r\n
--- totals eval
{ "c12:a" => 5 }
