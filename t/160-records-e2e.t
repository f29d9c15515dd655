# Records end to end: a 1600-line taxi body with a known set of invalid
# lines (t/lib/Ingest/Taxi.pm), posted several times; the answer's counts
# and every row in SQLite are checked.

use lib 't/lib';
use Ingest::Test;
use Ingest::Taxi;
use Test::Nginx::Socket 'no_plan';

our $F = Ingest::Taxi::generate(lines => 1600, invalid => 40, seed => 7);

add_block_preprocessor(sub {
    my $block = shift;

    $block->set_value("http_config", <<'_EOC_');
    ingest_redis $TEST_NGINX_REDIS;
    ingest_flush_interval 10ms;
_EOC_

    $block->set_value("config", <<'_EOC_');
    location = /trips {
        client_max_body_size 8m;
        client_body_buffer_size 1m;
        ingest_records trips queue=ingest:counters vendorid:int!
            tpep_pickup_datetime:text trip_distance:real total_amount:real;
    }
_EOC_
});

run_tests();

__DATA__

=== TEST 1: three posts of 1600 lines: counts, then every row
--- more_headers
Content-Type: text/plain
--- request eval
[("POST /trips\n$main::F->{body}") x 3]
--- error_code eval
[200, 200, 200]
--- response_body eval
[("{\"result\":{\"status\":\"ok\",\"stats\":{\"bytes\":"
  . length($main::F->{body} =~ s/\s+$//r)
  . ",\"records\":{\"valid\":1560,\"invalid\":40,\"total\":1600}},"
  . "\"errors\":[{\"line\":40,\"error\":\"blank line\"},"
  . "{\"line\":80,\"error\":\"invalid JSON\"},"
  . "{\"line\":120,\"error\":\"not an object\"},"
  . "{\"line\":160,\"error\":\"required field \\\"vendorid\\\" is missing\"},"
  . "{\"line\":200,\"error\":\"field \\\"vendorid\\\" is not an integer\"},"
  . "{\"line\":240,\"error\":\"field \\\"trip_distance\\\" is not a number\"},"
  . "{\"line\":280,\"error\":\"invalid UTF-8\"},"
  . "{\"line\":320,\"error\":\"field \\\"vendorid\\\" is not an integer\"},"
  . "{\"line\":360,\"error\":\"blank line\"},"
  . "{\"line\":400,\"error\":\"invalid JSON\"}]}}\n") x 3]
--- sql eval
["SELECT vendorid, tpep_pickup_datetime, trip_distance, total_amount"
 . " FROM trips ORDER BY rowid", [ (@{ $main::F->{rows} }) x 3 ]]
--- no_error_log
[error]
[alert]
