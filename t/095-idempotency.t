# Idempotency-Key: a request sent again with the same key, to the same or
# another worker life, is counted once.  Without the header nothing
# changes.

use lib 't/lib';
use Ingest::Test;
use Test::Nginx::Socket 'no_plan';

no_shuffle();
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
_EOC_
});

run_tests();

__DATA__

=== TEST 1: three sends with one key count once
--- more_headers
Content-Type: application/x-www-form-urlencoded
Idempotency-Key: order-1001
--- request eval
["POST /c\nidem1:a=5&idem1:b=1&idem1:a=2", "POST /c\nidem1:a=5&idem1:b=1&idem1:a=2",
 "POST /c\nidem1:a=5&idem1:b=1&idem1:a=2"]
--- error_code eval
[204, 204, 204]
--- totals eval
{ "idem1:a" => 7, "idem1:b" => 1 }
--- no_error_log
[error]



=== TEST 2: the same key after a restart (another producer) counts nothing
--- more_headers
Content-Type: application/x-www-form-urlencoded
Idempotency-Key: order-1001
--- request eval
["POST /c\nidem1:a=5&idem1:b=1&idem1:a=2", "POST /c\nidem2:sentinel=1"]
--- error_code eval
[204, 204]
--- totals eval
{ "idem1:a" => 7, "idem1:b" => 1, "idem2:sentinel" => undef }



=== TEST 3: ... (the sentinel above shares the key: also not counted)
--- more_headers
Content-Type: application/x-www-form-urlencoded
--- request eval
"POST /c\nidem3:plain=1"
--- error_code: 204
--- totals eval
{ "idem2:sentinel" => undef, "idem3:plain" => 1 }



=== TEST 4: key_value and JSON bodies, and plain requests beside them
--- more_headers
Content-Type: application/x-www-form-urlencoded
Idempotency-Key: kv-7
--- request eval
["POST /kv\nkey=idem4:k&value=-3", "POST /kv\nkey=idem4:k&value=-3"]
--- error_code eval
[204, 204]
--- totals eval
{ "idem4:k" => -3 }



=== TEST 5: a bad Idempotency-Key is refused and changes nothing
--- more_headers
Content-Type: application/x-www-form-urlencoded
Idempotency-Key: has space
--- request eval
"POST /c\nidem5:a=1"
--- error_code: 400
--- response_body
{"error":"invalid Idempotency-Key"}
--- error_log
client sent invalid Idempotency-Key



=== TEST 6: an overflow inside one keyed request is refused
--- more_headers
Content-Type: application/x-www-form-urlencoded
Idempotency-Key: big-1
--- request eval
"POST /c\nidem6:a=9223372036854775807&idem6:a=1"
--- error_code: 400
--- response_body
{"error":"sum overflows","at":28}
