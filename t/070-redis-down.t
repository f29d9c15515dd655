# Redis unreachable: requests are still accepted, the loss of the
# connection is logged once, and what cannot be delivered at exit is
# reported with its size.

use lib 't/lib';
use Ingest::Test consumer => 0;
use Test::Nginx::Socket 'no_plan';

# the connection is lost at startup, before the first request
check_accum_error_log();
run_tests();

__DATA__

=== TEST 1: accepted while Redis is down, logged once, lost at exit
--- http_config
    ingest_redis 127.0.0.1:1;
    ingest_flush_interval 1h;
--- config
    location = /c { ingest_counters; }
--- more_headers
Content-Type: application/x-www-form-urlencoded
--- request eval
["POST /c\nd1:a=1", "POST /c\nd1:b=2", "POST /c\nd1:a=3"]
--- error_code eval
[204, 204, 204]
--- error_log
ingest redis "127.0.0.1:1" connection lost: Connection refused
--- no_error_log
[error]
--- shutdown_error_log
ingest lost 2 keys of "ingest:counters" at exit (batches up to seq 1)



=== TEST 2: a missing unix socket
--- http_config
    ingest_redis unix:/nonexistent/redis.sock;
    ingest_flush_interval 10ms;
--- config
    location = /c { ingest_counters; }
--- more_headers
Content-Type: application/x-www-form-urlencoded
--- request eval
"POST /c\nd2:a=1"
--- error_code: 204
--- error_log
ingest redis "unix:/nonexistent/redis.sock" connection lost: No such file or directory
--- shutdown_error_log
ingest lost 1 keys of "ingest:counters" at exit (batches up to seq 1)
