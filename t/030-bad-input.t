# Bad input: a 400 with {"error":...,"at":<byte>}, an INFO line, and
# nothing counted: each bad body holds a good pair before the bad one,
# and a sentinel request after it proves the flush has happened.

use lib 't/lib';
use Ingest::Test;
use Test::Nginx::Socket 'no_plan';

# the bad request's log line is checked after the sentinel that follows it
check_accum_error_log();

add_block_preprocessor(sub {
    my $block = shift;

    $block->set_value("http_config", <<'_EOC_') unless defined $block->http_config;
    ingest_redis $TEST_NGINX_REDIS;
    ingest_flush_interval 10ms;
_EOC_

    $block->set_value("config", <<'_EOC_') unless defined $block->config;
    location = /c { ingest_counters; }
    location = /kv { ingest_counters form=key_value; }
    location = /short { ingest_counters; ingest_max_key_length 8; }
    location = /sentinel { ingest_counters; }
_EOC_
});

run_tests();

__DATA__

=== TEST 1: empty body is refused and changes nothing
--- more_headers
Content-Type: application/x-www-form-urlencoded
--- request eval
["POST /c\n",
 "POST /sentinel\nsentinel:1=1"]
--- error_code eval
[400, 204]
--- response_body eval
["{\"error\":\"empty body\",\"at\":0}\n", ""]
--- totals eval
{ "b1:ok" => undef, "sentinel:1" => 1 }
--- error_log eval
["client sent invalid ingest body: empty body at byte 0"]
--- no_error_log
[error]
[alert]

=== TEST 2: a key without a value is refused and changes nothing
--- more_headers
Content-Type: application/x-www-form-urlencoded
--- request eval
["POST /c\nb2:ok=1&=1",
 "POST /sentinel\nsentinel:2=1"]
--- error_code eval
[400, 204]
--- response_body eval
["{\"error\":\"empty key\",\"at\":8}\n", ""]
--- totals eval
{ "b2:ok" => undef, "sentinel:2" => 1 }
--- error_log eval
["client sent invalid ingest body: empty key at byte 8"]
--- no_error_log
[error]
[alert]

=== TEST 3: an empty value is refused and changes nothing
--- more_headers
Content-Type: application/x-www-form-urlencoded
--- request eval
["POST /c\nb3:ok=1&b3:x=",
 "POST /sentinel\nsentinel:3=1"]
--- error_code eval
[400, 204]
--- response_body eval
["{\"error\":\"empty value\",\"at\":13}\n", ""]
--- totals eval
{ "b3:ok" => undef, "sentinel:3" => 1 }
--- error_log eval
["client sent invalid ingest body: empty value at byte 13"]
--- no_error_log
[error]
[alert]

=== TEST 4: an empty pair is refused and changes nothing
--- more_headers
Content-Type: application/x-www-form-urlencoded
--- request eval
["POST /c\nb4:ok=1&&b4:y=2",
 "POST /sentinel\nsentinel:4=1"]
--- error_code eval
[400, 204]
--- response_body eval
["{\"error\":\"empty pair\",\"at\":8}\n", ""]
--- totals eval
{ "b4:ok" => undef, "sentinel:4" => 1 }
--- error_log eval
["client sent invalid ingest body: empty pair at byte 8"]
--- no_error_log
[error]
[alert]

=== TEST 5: a trailing ampersand is refused and changes nothing
--- more_headers
Content-Type: application/x-www-form-urlencoded
--- request eval
["POST /c\nb5:ok=1&",
 "POST /sentinel\nsentinel:5=1"]
--- error_code eval
[400, 204]
--- response_body eval
["{\"error\":\"empty pair\",\"at\":8}\n", ""]
--- totals eval
{ "b5:ok" => undef, "sentinel:5" => 1 }
--- error_log eval
["client sent invalid ingest body: empty pair at byte 8"]
--- no_error_log
[error]
[alert]

=== TEST 6: a bad percent escape is refused and changes nothing
--- more_headers
Content-Type: application/x-www-form-urlencoded
--- request eval
["POST /c\nb6:ok=1&b6%zz=1",
 "POST /sentinel\nsentinel:6=1"]
--- error_code eval
[400, 204]
--- response_body eval
["{\"error\":\"invalid percent escape\",\"at\":10}\n", ""]
--- totals eval
{ "b6:ok" => undef, "sentinel:6" => 1 }
--- error_log eval
["client sent invalid ingest body: invalid percent escape at byte 10"]
--- no_error_log
[error]
[alert]

=== TEST 7: a lone plus is refused and changes nothing
--- more_headers
Content-Type: application/x-www-form-urlencoded
--- request eval
["POST /c\nb7:ok=1&+",
 "POST /sentinel\nsentinel:7=1"]
--- error_code eval
[400, 204]
--- response_body eval
["{\"error\":\"missing '='\",\"at\":9}\n", ""]
--- totals eval
{ "b7:ok" => undef, "sentinel:7" => 1 }
--- error_log eval
["client sent invalid ingest body: missing '=' at byte 9"]
--- no_error_log
[error]
[alert]

=== TEST 8: int64 max + 1 is refused and changes nothing
--- more_headers
Content-Type: application/x-www-form-urlencoded
--- request eval
["POST /c\nb8:ok=1&b8:big=9223372036854775808",
 "POST /sentinel\nsentinel:8=1"]
--- error_code eval
[400, 204]
--- response_body eval
["{\"error\":\"integer out of range\",\"at\":33}\n", ""]
--- totals eval
{ "b8:ok" => undef, "sentinel:8" => 1 }
--- error_log eval
["client sent invalid ingest body: integer out of range at byte 33"]
--- no_error_log
[error]
[alert]

=== TEST 9: int64 min - 1 is refused and changes nothing
--- more_headers
Content-Type: application/x-www-form-urlencoded
--- request eval
["POST /c\nb9:ok=1&b9:small=-9223372036854775809",
 "POST /sentinel\nsentinel:9=1"]
--- error_code eval
[400, 204]
--- response_body eval
["{\"error\":\"integer out of range\",\"at\":36}\n", ""]
--- totals eval
{ "b9:ok" => undef, "sentinel:9" => 1 }
--- error_log eval
["client sent invalid ingest body: integer out of range at byte 36"]
--- no_error_log
[error]
[alert]

=== TEST 10: a sum that overflows in one body is refused and changes nothing
--- more_headers
Content-Type: application/x-www-form-urlencoded
--- request eval
["POST /c\nb10:ok=1&b10:s=9223372036854775807&b10:s=1",
 "POST /sentinel\nsentinel:10=1"]
--- error_code eval
[400, 204]
--- response_body eval
["{\"error\":\"sum overflows\",\"at\":35}\n", ""]
--- totals eval
{ "b10:ok" => undef, "sentinel:10" => 1 }
--- error_log eval
["client sent invalid ingest body: sum overflows at byte 35"]
--- no_error_log
[error]
[alert]

=== TEST 11: a key past the length limit is refused and changes nothing
--- more_headers
Content-Type: application/x-www-form-urlencoded
--- request eval
["POST /short\nb11:ok=1&b11:123456789=1",
 "POST /sentinel\nsentinel:11=1"]
--- error_code eval
[400, 204]
--- response_body eval
["{\"error\":\"key too long\",\"at\":17}\n", ""]
--- totals eval
{ "b11:ok" => undef, "sentinel:11" => 1 }
--- error_log eval
["client sent invalid ingest body: key too long at byte 17"]
--- no_error_log
[error]
[alert]

=== TEST 12: invalid UTF-8 is refused and changes nothing
--- more_headers
Content-Type: application/x-www-form-urlencoded
--- request eval
["POST /c\nb12:ok=1&b12%ff=1",
 "POST /sentinel\nsentinel:12=1"]
--- error_code eval
[400, 204]
--- response_body eval
["{\"error\":\"invalid UTF-8 in key\",\"at\":12}\n", ""]
--- totals eval
{ "b12:ok" => undef, "sentinel:12" => 1 }
--- error_log eval
["client sent invalid ingest body: invalid UTF-8 in key at byte 12"]
--- no_error_log
[error]
[alert]

=== TEST 13: a control character is refused and changes nothing
--- more_headers
Content-Type: application/x-www-form-urlencoded
--- request eval
["POST /c\nb13:ok=1&b13%0a=1",
 "POST /sentinel\nsentinel:13=1"]
--- error_code eval
[400, 204]
--- response_body eval
["{\"error\":\"control character in key\",\"at\":12}\n", ""]
--- totals eval
{ "b13:ok" => undef, "sentinel:13" => 1 }
--- error_log eval
["client sent invalid ingest body: control character in key at byte 12"]
--- no_error_log
[error]
[alert]

=== TEST 14: a fraction is refused and changes nothing
--- more_headers
Content-Type: application/x-www-form-urlencoded
--- request eval
["POST /c\nb14:ok=1&b14:f=1.5",
 "POST /sentinel\nsentinel:14=1"]
--- error_code eval
[400, 204]
--- response_body eval
["{\"error\":\"invalid integer\",\"at\":16}\n", ""]
--- totals eval
{ "b14:ok" => undef, "sentinel:14" => 1 }
--- error_log eval
["client sent invalid ingest body: invalid integer at byte 16"]
--- no_error_log
[error]
[alert]

=== TEST 15: JSON not an object is refused and changes nothing
--- more_headers
Content-Type: application/json
--- request eval
["POST /c\n[1,2]",
 "POST /sentinel\n{\"sentinel:15\": 1}"]
--- error_code eval
[400, 204]
--- response_body eval
["{\"error\":\"expected '{'\",\"at\":0}\n", ""]
--- totals eval
{ "b15:ok" => undef, "sentinel:15" => 1 }
--- error_log eval
["client sent invalid ingest body: expected '{' at byte 0"]
--- no_error_log
[error]
[alert]

=== TEST 16: JSON string value is refused and changes nothing
--- more_headers
Content-Type: application/json
--- request eval
["POST /c\n{\"b16:ok\":1,\"b16:s\":\"2\"}",
 "POST /sentinel\n{\"sentinel:16\": 1}"]
--- error_code eval
[400, 204]
--- response_body eval
["{\"error\":\"value is not an integer\",\"at\":20}\n", ""]
--- totals eval
{ "b16:ok" => undef, "sentinel:16" => 1 }
--- error_log eval
["client sent invalid ingest body: value is not an integer at byte 20"]
--- no_error_log
[error]
[alert]

=== TEST 17: JSON float is refused and changes nothing
--- more_headers
Content-Type: application/json
--- request eval
["POST /c\n{\"b17:ok\":1,\"b17:f\":2.0}",
 "POST /sentinel\n{\"sentinel:17\": 1}"]
--- error_code eval
[400, 204]
--- response_body eval
["{\"error\":\"value is not an integer\",\"at\":21}\n", ""]
--- totals eval
{ "b17:ok" => undef, "sentinel:17" => 1 }
--- error_log eval
["client sent invalid ingest body: value is not an integer at byte 21"]
--- no_error_log
[error]
[alert]

=== TEST 18: JSON unterminated is refused and changes nothing
--- more_headers
Content-Type: application/json
--- request eval
["POST /c\n{\"b18:ok\":1",
 "POST /sentinel\n{\"sentinel:18\": 1}"]
--- error_code eval
[400, 204]
--- response_body eval
["{\"error\":\"unterminated object\",\"at\":11}\n", ""]
--- totals eval
{ "b18:ok" => undef, "sentinel:18" => 1 }
--- error_log eval
["client sent invalid ingest body: unterminated object at byte 11"]
--- no_error_log
[error]
[alert]

=== TEST 19: JSON trailing garbage is refused and changes nothing
--- more_headers
Content-Type: application/json
--- request eval
["POST /c\n{\"b19:ok\":1} x",
 "POST /sentinel\n{\"sentinel:19\": 1}"]
--- error_code eval
[400, 204]
--- response_body eval
["{\"error\":\"trailing data after object\",\"at\":13}\n", ""]
--- totals eval
{ "b19:ok" => undef, "sentinel:19" => 1 }
--- error_log eval
["client sent invalid ingest body: trailing data after object at byte 13"]
--- no_error_log
[error]
[alert]

=== TEST 20: key_value without value is refused and changes nothing
--- more_headers
Content-Type: application/x-www-form-urlencoded
--- request eval
["POST /kv\nkey=b20:ok",
 "POST /sentinel\nsentinel:20=1"]
--- error_code eval
[400, 204]
--- response_body eval
["{\"error\":\"missing field \\\"value\\\"\",\"at\":10}\n", ""]
--- totals eval
{ "b20:ok" => undef, "sentinel:20" => 1 }
--- error_log eval
["client sent invalid ingest body: missing field \"value\" at byte 10"]
--- no_error_log
[error]
[alert]

=== TEST 21: key_value with another field is refused and changes nothing
--- more_headers
Content-Type: application/x-www-form-urlencoded
--- request eval
["POST /kv\nkey=b21:ok&value=1&x=1",
 "POST /sentinel\nsentinel:21=1"]
--- error_code eval
[400, 204]
--- response_body eval
["{\"error\":\"unknown field\",\"at\":19}\n", ""]
--- totals eval
{ "b21:ok" => undef, "sentinel:21" => 1 }
--- error_log eval
["client sent invalid ingest body: unknown field at byte 19"]
--- no_error_log
[error]
[alert]

=== TEST 22: another content type is 415
--- more_headers
Content-Type: text/plain
--- request eval
"POST /c\nb22:x=1"
--- error_code: 415
--- response_body
{"error":"unsupported content type"}
--- no_error_log
[error]

=== TEST 23: key_value does not take JSON
--- more_headers
Content-Type: application/json
--- request eval
"POST /kv\n{\"b23:x\":1}"
--- error_code: 415
--- response_body
{"error":"unsupported content type"}
--- no_error_log
[error]

=== TEST 24: no content type is 415
--- request eval
"POST /c\nb24:x=1"
--- error_code: 415
--- response_body
{"error":"unsupported content type"}
--- no_error_log
[error]

=== TEST 25: a body over client_max_body_size is 413
--- config
    location = /c { ingest_counters; client_max_body_size 10; }
--- more_headers
Content-Type: application/x-www-form-urlencoded
--- request eval
"POST /c\nb25:long=1&b25:longer=2"
--- error_code: 413
--- error_log
client intended to send too large body

=== TEST 26: a sum that overflows the pending table refuses the request
--- http_config
    ingest_redis $TEST_NGINX_REDIS;
    ingest_flush_interval 1s;
--- more_headers
Content-Type: application/x-www-form-urlencoded
--- request eval
["POST /c\nb26:max=9223372036854775807&b26:other=1",
 "POST /c\nb26:third=5&b26:max=1",
 "POST /c\nb26:max=-7"]
--- error_code eval
[204, 400, 204]
--- response_body eval
["", "{\"error\":\"sum overflows\",\"at\":12}\n", ""]
--- totals eval
{ "b26:max" => 9223372036854775800, "b26:other" => 1, "b26:third" => undef }
--- no_error_log
[error]

=== TEST 27: ... and takes back every pair before it, over many chunks of pairs
--- http_config
    ingest_redis $TEST_NGINX_REDIS;
    ingest_flush_interval 1s;
--- more_headers
Content-Type: application/x-www-form-urlencoded
--- request eval
["POST /c\nb27:max=9223372036854775807",
 "POST /c\n" . CORE::join("&", (map { "b27:k$_=1" } 1 .. 300), "b27:k7=5",
                          "b27:max=1"),
 "POST /c\nb27:k1=2"]
--- error_code eval
[204, 400, 204]
--- response_body eval
["", "{\"error\":\"sum overflows\",\"at\":3201}\n", ""]
--- totals eval
{ "b27:max" => 9223372036854775807, "b27:k1" => 2, "b27:k7" => undef,
  "b27:k300" => undef }
--- no_error_log
[error]
