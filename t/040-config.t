# Configuration errors stop nginx -t with a clear message.

use lib 't/lib';
use Ingest::Test consumer => 0;
use Test::Nginx::Socket 'no_plan';

run_tests();

__DATA__

=== TEST 1: ingest_counters without ingest_redis
--- config
    location = /c { ingest_counters; }
--- request
GET /c
--- must_die
--- error_log
"ingest_counters" or "ingest_records" is used but "ingest_redis" is not set



=== TEST 2: an unknown parameter of ingest_counters
--- http_config
    ingest_redis $TEST_NGINX_REDIS;
--- config
    location = /c { ingest_counters form=xml; }
--- request
GET /c
--- must_die
--- error_log
invalid parameter "form=xml"



=== TEST 3: ingest_counters twice in one location
--- http_config
    ingest_redis $TEST_NGINX_REDIS;
--- config
    location = /c { ingest_counters; ingest_counters form=key_value; }
--- request
GET /c
--- must_die
--- error_log
"ingest_counters" directive is duplicate



=== TEST 4: a bad Redis port
--- http_config
    ingest_redis 127.0.0.1:99999;
--- config
    location = /c { ingest_counters; }
--- request
GET /c
--- must_die
--- error_log
invalid port in "ingest_redis" "127.0.0.1:99999"



=== TEST 5: ingest_redis twice
--- http_config
    ingest_redis 127.0.0.1:1;
    ingest_redis 127.0.0.1:2;
--- config
    location = /c { ingest_counters; }
--- request
GET /c
--- must_die
--- error_log
"ingest_redis" directive is duplicate



=== TEST 6: a zero flush interval
--- http_config
    ingest_redis $TEST_NGINX_REDIS;
    ingest_flush_interval 0;
--- config
    location = /c { ingest_counters; }
--- request
GET /c
--- must_die
--- error_log
"ingest_flush_interval" must be more than 0



=== TEST 7: a key length limit out of range
--- http_config
    ingest_redis $TEST_NGINX_REDIS;
--- config
    location = /c { ingest_counters; ingest_max_key_length 0; }
--- request
GET /c
--- must_die
--- error_log
value must be between 1 and 65535



=== TEST 8: ingest_redis in a server block is not allowed
--- config
    ingest_redis 127.0.0.1:1;
--- request
GET /
--- must_die
--- error_log
"ingest_redis" directive is not allowed here



=== TEST 9: ingest_redis cluster needs an address
--- http_config
    ingest_redis cluster;
--- config
    location = /c { ingest_counters; }
--- request
GET /c
--- must_die
--- error_log
"ingest_redis" directive needs at least one address after "cluster"



=== TEST 10: ingest_redis cluster: replicas= is 0 to 16
--- http_config
    ingest_redis cluster 127.0.0.1:7000 replicas=17;
--- config
    location = /c { ingest_counters; }
--- request
GET /c
--- must_die
--- error_log
invalid "replicas=17": 0 to 16



=== TEST 11: one address, or "cluster" and addresses
--- http_config
    ingest_redis 127.0.0.1:7000 127.0.0.1:7001;
--- config
    location = /c { ingest_counters; }
--- request
GET /c
--- must_die
--- error_log
"ingest_redis" directive takes one address, or "cluster" and addresses



=== TEST 12: a bad seed address
--- http_config
    ingest_redis cluster 127.0.0.1:7000 127.0.0.1:99999;
--- config
    location = /c { ingest_counters; }
--- request
GET /c
--- must_die
--- error_log
invalid port in "ingest_redis" "127.0.0.1:99999"



=== TEST 13: a list name must be visible ASCII: no space, no control character
--- http_config
    ingest_redis 127.0.0.1:6379;
--- config
    location = /c { ingest_counters "queue=a b"; }
--- must_die
--- error_log
invalid list name "a b": visible ASCII only (no space, no control character), 1 to 200 bytes



=== TEST 14: ... nor a newline, in records' lists too
--- http_config
    ingest_redis 127.0.0.1:6379;
--- config
    location = /r { ingest_records t "queue=a\nb" id:int; }
--- must_die
--- error_log
invalid list name



=== TEST 15: ingest_max_pending below what the lists' sums take up front
--- http_config
    ingest_redis 127.0.0.1:6379;
    ingest_max_pending 200k;
--- config
    location = /c { ingest_counters; }
    location = /d { ingest_counters queue=other; }
--- must_die
--- error_log
"ingest_max_pending" 200k is below the 1024k that the sums of 2 Redis lists take up front (512k each at "ingest_flush_keys" 10000): raise it, or lower "ingest_flush_keys"



=== TEST 16: a row must fit half a batch: ingest_max_line_length at most 512k
--- http_config
    ingest_redis 127.0.0.1:6379;
--- config
    location = /r { ingest_records t16 id:int; ingest_max_line_length 1m; }
--- must_die
--- error_log
"ingest_max_line_length" must be at most 512k



=== TEST 17: a host without a port is an error: which port was meant is not said
--- http_config
    ingest_redis 127.0.0.1;
--- config
    location = /c { ingest_counters; }
--- must_die
--- error_log eval
[qr{\[emerg\] .*"ingest_redis" "127\.0\.0\.1" has no port: write "127\.0\.0\.1:6379", or "redis://127\.0\.0\.1" for Redis's default port 6379 in \S+/nginx\.conf:\d+$}]



=== TEST 18: ... a name and an IPv6 address too
--- http_config
    ingest_redis [::1];
--- config
    location = /c { ingest_counters; }
--- must_die
--- error_log eval
[qr{"ingest_redis" "\[::1\]" has no port: write "\[::1\]:6379", or "redis://\[::1\]" for Redis's default port 6379 in \S+/nginx\.conf:\d+$}]



=== TEST 19: ... and a cluster's seed
--- http_config
    ingest_redis cluster 127.0.0.1:7000 localhost;
--- config
    location = /c { ingest_counters; }
--- must_die
--- error_log eval
[qr{"ingest_redis" "localhost" has no port: write "localhost:6379", or "redis://localhost" for Redis's default port 6379 in \S+/nginx\.conf:\d+$}]



=== TEST 20: a Redis URL may leave the port out: 6379, as redis-cli -u reads it
--- http_config
    ingest_redis redis://127.0.0.1;
--- config
    location = /c { ingest_counters; }
    location = /t { return 200 "up\n"; }
--- request
GET /t
--- response_body
up
