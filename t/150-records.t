# NDJSON records: valid lines become rows in SQLite, invalid ones are
# counted with their reasons, and the answer keeps the original shape.

use lib 't/lib';
use Ingest::Test;
use Test::Nginx::Socket 'no_plan';

# 100 New York taxi trips of January 2017 (public TLC data).  Test::Nginx
# sends a body trimmed of its last newline: the last line has none.
our $Taxi = do {
    open my $in, '<', "$Ingest::Test::Top/t/fixtures/taxi-100.ndjson"
        or die "no taxi sample: $!";
    local $/;
    <$in>;
};

add_block_preprocessor(sub {
    my $block = shift;

    $block->set_value("http_config", <<'_EOC_') unless defined $block->http_config;
    ingest_redis $TEST_NGINX_REDIS;
    ingest_flush_interval 10ms;
_EOC_

    $block->set_value("no_error_log", "[error]\n[alert]\n")
        unless defined $block->no_error_log;
});

run_tests();

__DATA__

=== TEST 1: valid lines become rows; a missing optional field is NULL
--- config
    location = /r {
        ingest_records rec1 queue=ingest:counters
            id:int! name:text score:real ok:bool;
    }
--- request eval
"POST /r\n" . qq({"id":1,"name":"a","score":1.5,"ok":true}\n)
. qq({"id":2,"score":3,"extra":[1,{"x":null}]}\n)
. qq({"name":"caf\\u00e9 \\"x\\"","id":-3,"ok":false,"score":-2.5e1}\n)
--- error_code: 200
--- response_headers
Content-Type: application/json
--- response_body
{"result":{"status":"ok","stats":{"bytes":144,"records":{"valid":3,"invalid":0,"total":3}},"errors":[]}}
--- sql eval
["SELECT id, name, score, ok FROM rec1 ORDER BY rowid",
 [[1, "a", 1.5, 1], [2, undef, 3, undef], [-3, "caf\x{c3}\x{a9} \"x\"", -25, 0]]]



=== TEST 2: every kind of invalid line is counted, with its line number
--- config
    location = /r {
        ingest_records rec2 queue=ingest:counters id:int! name:text score:real;
    }
--- request eval
"POST /r\n" . qq({"id":1}\n)
. qq(\n)
. qq({"id":2\n)
. qq([1,2]\n)
. qq({"name":"no id"}\n)
. qq({"id":"3"}\n)
. qq({"id":4.5}\n)
. qq({"id":5,"score":"high"}\n)
. qq({"id":6,"name":7}\n)
. qq({"id":7,"name":"\xff"}\n)
. qq({"id":8}\n)
--- error_code: 200
--- response_body
{"result":{"status":"ok","stats":{"bytes":133,"records":{"valid":2,"invalid":9,"total":11}},"errors":[{"line":2,"error":"blank line"},{"line":3,"error":"invalid JSON"},{"line":4,"error":"not an object"},{"line":5,"error":"required field \"id\" is missing"},{"line":6,"error":"field \"id\" is not an integer"},{"line":7,"error":"field \"id\" is not an integer"},{"line":8,"error":"field \"score\" is not a number"},{"line":9,"error":"field \"name\" is not a string"},{"line":10,"error":"invalid UTF-8"}]}}
--- sql eval
["SELECT id FROM rec2 ORDER BY rowid", [[1], [8]]]



=== TEST 3: a BOM, CRLF line ends, and a last line without a newline
--- config
    location = /r { ingest_records rec3 queue=ingest:counters id:int!; }
--- request eval
"POST /r\n\xef\xbb\xbf{\"id\":1}\r\n{\"id\":2}\r\n{\"id\":3}"
--- error_code: 200
--- response_body
{"result":{"status":"ok","stats":{"bytes":31,"records":{"valid":3,"invalid":0,"total":3}},"errors":[]}}
--- sql eval
["SELECT id FROM rec3 ORDER BY rowid", [[1], [2], [3]]]



=== TEST 4: a line longer than ingest_max_line_length is invalid, not fatal
--- config
    location = /r {
        ingest_records rec4 queue=ingest:counters id:int! pad:text;
        ingest_max_line_length 64;
        client_body_buffer_size 1k;
    }
--- request eval
"POST /r\n{\"id\":1}\n{\"id\":2,\"pad\":\"" . ("x" x 5000) . "\"}\n{\"id\":3}\n"
--- error_code: 200
--- response_body
{"result":{"status":"ok","stats":{"bytes":5035,"records":{"valid":2,"invalid":1,"total":3}},"errors":[{"line":2,"error":"line too long"}]}}
--- sql eval
["SELECT id FROM rec4 ORDER BY rowid", [[1], [3]]]



=== TEST 5: the taxi sample, spilled to a temp file, any content type
--- config
    location = /trips {
        client_max_body_size 8m;
        client_body_buffer_size 1k;
        ingest_records trips5 queue=ingest:counters vendorid:int!
            tpep_pickup_datetime:text trip_distance:real total_amount:real;
    }
--- more_headers
Content-Type: application/x-ndjson
--- request eval
"POST /trips\n$main::Taxi"
--- error_code: 200
--- response_body eval
"{\"result\":{\"status\":\"ok\",\"stats\":{\"bytes\":"
. length($main::Taxi =~ s/\s+$//r)
. ",\"records\":{\"valid\":100,\"invalid\":0,\"total\":100}},\"errors\":[]}}\n"
--- sql eval
["SELECT count(*), sum(vendorid), round(sum(total_amount), 2), min(tpep_pickup_datetime) FROM trips5",
 [[100, 155, 1669.01, "2017-01-01 00:00:00"]]]



=== TEST 6: ignore_case matches VendorID to vendorid
--- config
    location = /r {
        ingest_records rec6 queue=ingest:counters ignore_case vendorid:int!;
    }
--- request eval
"POST /r\n{\"VendorID\":7}\n"
--- error_code: 200
--- sql eval
["SELECT vendorid FROM rec6", [[7]]]



=== TEST 7: GET is not allowed
--- config
    location = /r { ingest_records rec7 id:int; }
--- request
GET /r
--- error_code: 405
--- response_body
{"error":"method not allowed"}



=== TEST 8: a bad table name stops nginx -t
--- config
    location = /r { ingest_records 9trips id:int; }
--- request
GET /r
--- must_die
--- error_log
invalid table name "9trips"



=== TEST 9: a bad field type
--- config
    location = /r { ingest_records t9 id:integer; }
--- request
GET /r
--- must_die
--- error_log
invalid field "id:integer", expected <name>:<int|real|text|bool>[!]



=== TEST 10: a field given twice
--- config
    location = /r { ingest_records t10 id:int ID:text; }
--- request
GET /r
--- must_die
--- error_log
field "ID" is given twice



=== TEST 11: one table, other columns in another location
--- config
    location = /a { ingest_records t11 id:int; }
    location = /b { ingest_records t11 id:text; }
--- request
GET /a
--- must_die
--- error_log
table "t11" has other columns in another "ingest_records"



=== TEST 12: ingest_ack redis: the answer waits for Redis, then counts
--- config
    location = /r {
        ingest_records rec12 queue=ingest:counters id:int!;
        ingest_ack redis;
    }
--- request eval
"POST /r\n{\"id\":1}\n{\"id\":2}\nbad"
--- error_code: 200
--- response_body
{"result":{"status":"ok","stats":{"bytes":21,"records":{"valid":2,"invalid":1,"total":3}},"errors":[{"line":3,"error":"invalid JSON"}]}}
--- sql eval
["SELECT id FROM rec12 ORDER BY rowid", [[1], [2]]]



=== TEST 13: ingest_ack redis with Redis away: 504, outcome unknown
--- http_config
    ingest_redis 127.0.0.1:1;
    ingest_flush_interval 10ms;
--- config
    location = /r {
        ingest_records rec13 queue=ingest:counters id:int!;
        ingest_ack redis;
        ingest_ack_timeout 200ms;
    }
--- request eval
"POST /r\n{\"id\":1}"
--- error_code: 504
--- response_body
{"error":"not acknowledged by Redis in time; the increments may or may not be counted"}
--- no_error_log
[error]



=== TEST 14: a BOM split across the body's reads is still a BOM
--- config
    location = /r { ingest_records rec14 queue=ingest:counters id:int!; }
--- raw_request eval
["POST /r HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
 . "Content-Length: 21\r\n\r\n\xef",
 "\xbb",
 "\xbf{\"id\":1}\n{\"id\":2}\n"]
--- raw_request_middle_delay: 0.1
--- error_code: 200
--- response_body
{"result":{"status":"ok","stats":{"bytes":21,"records":{"valid":2,"invalid":0,"total":2}},"errors":[]}}
--- sql eval
["SELECT id FROM rec14 ORDER BY rowid", [[1], [2]]]



=== TEST 15: the first bytes of a BOM, then other bytes, are data
--- config
    location = /r { ingest_records rec15 queue=ingest:counters id:int!; }
--- raw_request eval
["POST /r HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
 . "Content-Length: 20\r\n\r\n\xef\xbb",
 "{\"id\":1}\n{\"id\":2}\n"]
--- raw_request_middle_delay: 0.1
--- error_code: 200
--- response_body
{"result":{"status":"ok","stats":{"bytes":20,"records":{"valid":1,"invalid":1,"total":2}},"errors":[{"line":1,"error":"invalid JSON"}]}}
--- sql eval
["SELECT id FROM rec15 ORDER BY rowid", [[2]]]



=== TEST 16: values no store keeps exactly are invalid lines: an infinite real, a NUL in text
--- config
    location = /r { ingest_records rec16 queue=ingest:counters id:int! x:real t:text; }
--- request eval
"POST /r\n{\"id\":1,\"x\":1e999}\n{\"id\":2,\"x\":-1e-999}\n{\"id\":3,\"t\":\"a\\u0000b\"}\n{\"id\":4,\"x\":1e308,\"t\":\"a\\u0001b\"}\n"
--- error_code: 200
--- response_body
{"result":{"status":"ok","stats":{"bytes":97,"records":{"valid":1,"invalid":3,"total":4}},"errors":[{"line":1,"error":"field \"x\" is out of range"},{"line":2,"error":"field \"x\" is out of range"},{"line":3,"error":"field \"t\" holds a NUL character"}]}}
--- sql eval
["SELECT id, x, t FROM rec16 ORDER BY rowid", [[4, 1e308, "a\x01b"]]]
