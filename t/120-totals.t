# Reading totals back: ingest_totals answers from SQLite through the
# thread pool.

use lib 't/lib';
use Ingest::Test;
use Test::Nginx::Socket 'no_plan';

no_shuffle();

add_block_preprocessor(sub {
    my $block = shift;

    $block->set_value("http_config", <<'_EOC_') unless defined $block->http_config;
    ingest_redis $TEST_NGINX_REDIS;
    ingest_flush_interval 10ms;
_EOC_

    $block->set_value("config", <<'_EOC_') unless defined $block->config;
    location = /c { ingest_counters; }
    location /totals/ { ingest_totals $TEST_NGINX_INGEST_DIR/ingest.db; }
_EOC_
});

run_tests();

__DATA__

=== TEST 1: seed some totals
--- more_headers
Content-Type: application/x-www-form-urlencoded
--- request eval
"POST /c\ntot:a=5&tot:b+c=7&tot:x%2Fy=1&tot:%C3%A9=2&tot:q%22=-3&tou:z=9"
--- error_code: 204
--- totals eval
{ "tot:a" => 5, "tot:b c" => 7, "tot:x/y" => 1, "tot:\x{c3}\x{a9}" => 2,
  "tot:q\"" => -3, "tou:z" => 9 }



=== TEST 2: one key
--- request
GET /totals/tot:a
--- error_code: 200
--- response_headers
Content-Type: application/json
--- response_body_like
^\{"key":"tot:a","value":5,"updated_at":\d{13}\}$
--- no_error_log
[error]
[warn]



=== TEST 3: a percent-encoded key, a slash in a key, a quote
--- request eval
["GET /totals/tot%3Ab%20c", "GET /totals/tot:x/y", "GET /totals/tot:q%22"]
--- error_code eval
[200, 200, 200]
--- response_body_like eval
[qr/^\{"key":"tot:b c","value":7,"updated_at":\d+\}$/,
 qr/^\{"key":"tot:x\/y","value":1,"updated_at":\d+\}$/,
 qr/^\{"key":"tot:q\\"","value":-3,"updated_at":\d+\}$/]



=== TEST 4: no such key
--- request
GET /totals/tot:none
--- error_code: 404
--- response_body
{"error":"no such key"}



=== TEST 5: a page by prefix, and the next one by its cursor
--- request eval
["GET /totals/?prefix=tot:&limit=2", "GET /totals/?prefix=tot:&limit=2&after=tot:b%20c",
 "GET /totals/?prefix=tot:&limit=2&after=tot:x/y"]
--- error_code eval
[200, 200, 200]
--- response_body_like eval
[qr/^\{"totals":\[\{"key":"tot:a","value":5,"updated_at":\d+\},\{"key":"tot:b c","value":7,"updated_at":\d+\}\],"next":"tot:b c"\}$/,
 qr/^\{"totals":\[\{"key":"tot:q\\"","value":-3,"updated_at":\d+\},\{"key":"tot:x\/y","value":1,"updated_at":\d+\}\],"next":"tot:x\/y"\}$/,
 qr/^\{"totals":\[\{"key":"tot:\x{c3}\x{a9}","value":2,"updated_at":\d+\}\],"next":null\}$/]



=== TEST 6: every key when there is no prefix
--- request
GET /totals/?limit=1000
--- error_code: 200
--- response_body_like
^\{"totals":\[(\{"key":"[^"]*(\\"[^"]*)?","value":-?\d+,"updated_at":\d+\},?){6,}\],"next":null\}$



=== TEST 7: HEAD
--- request
HEAD /totals/tot:a
--- error_code: 200
--- response_body eval
""



=== TEST 8: POST is not allowed
--- request eval
"POST /totals/tot:a\nx"
--- error_code: 405
--- response_headers
Allow: GET, HEAD
--- response_body
{"error":"method not allowed"}



=== TEST 9: a bad limit
--- request
GET /totals/?limit=0
--- error_code: 400
--- response_body
{"error":"limit must be 1 to 1000"}



=== TEST 10: no database file: 503, not a crash
--- config
    location /totals/ { ingest_totals $TEST_NGINX_INGEST_DIR/none.db; }
--- request
GET /totals/tot:a
--- error_code: 503
--- response_body
{"error":"database not available"}
--- error_log
database not available



=== TEST 11: seed keys holding "?"
--- more_headers
Content-Type: application/x-www-form-urlencoded
--- request eval
"POST /c\ntot:w%3F1=1&tot:w%3F2=2&tot:w%3F3=3"
--- error_code: 204
--- totals eval
{ "tot:w?1" => 1, "tot:w?2" => 2, "tot:w?3" => 3 }



=== TEST 12: prefix and after are decoded whole: paging over keys holding "?" ends
--- request eval
["GET /totals/?prefix=tot:w%3F&limit=2",
 "GET /totals/?prefix=tot:w%3F&limit=2&after=tot:w%3F2"]
--- error_code eval
[200, 200]
--- response_body_like eval
[qr/^\{"totals":\[\{"key":"tot:w\?1","value":1,"updated_at":\d+\},\{"key":"tot:w\?2","value":2,"updated_at":\d+\}\],"next":"tot:w\?2"\}$/,
 qr/^\{"totals":\[\{"key":"tot:w\?3","value":3,"updated_at":\d+\}\],"next":null\}$/]



=== TEST 13: a refused request is answered once, and nothing runs after
--- request eval
["GET /totals/?limit=0", "GET /totals/?limit=x"]
--- error_code eval
[400, 400]
--- response_body eval
["{\"error\":\"limit must be 1 to 1000\"}\n",
 "{\"error\":\"limit must be 1 to 1000\"}\n"]
--- no_error_log
[alert]
[error]



=== TEST 14: the key follows the location's prefix however the path is encoded
--- request eval
["GET /%74otals/tot:x/y", "GET /totals/tot:x/y"]
--- error_code eval
[200, 200]
--- response_body_like eval
[qr/^\{"key":"tot:x\/y","value":1,"updated_at":\d+\}$/,
 qr/^\{"key":"tot:x\/y","value":1,"updated_at":\d+\}$/]



=== TEST 15: a database that cannot be opened: why, logged once
--- config
    location /totals/ { ingest_totals $TEST_NGINX_INGEST_DIR/nodir/none.db; }
--- request eval
["GET /totals/tot:a", "GET /totals/tot:a", "GET /totals/tot:b"]
--- error_code eval
[503, 503, 503]
--- response_body eval
["{\"error\":\"database not available\"}\n",
 "{\"error\":\"database not available\"}\n",
 "{\"error\":\"database not available\"}\n"]
--- grep_error_log eval
qr/ingest totals "[^"]+": database not available[^,]*/
--- grep_error_log_out eval
[qr/^ingest totals "[^"]+\/nodir\/none\.db": database not available: unable to open database file \(2: No such file or directory\)\n$/,
 qr/^ingest totals "[^"]+\/nodir\/none\.db": database not available: unable to open database file \(2: No such file or directory\)\n$/,
 qr/^ingest totals "[^"]+\/nodir\/none\.db": database not available: unable to open database file \(2: No such file or directory\)\n$/]
