# PostgreSQL as the shared store: nginx with two shards, one consumer per
# shard and one for records, all writing into one private PostgreSQL
# (initdb + pg_ctl in a temp directory); totals read back from it.

use lib 't/lib';
use Ingest::Test consumer => 0;
use Ingest::Pg;
use Test::Nginx::Socket 'no_plan';

my $uri = Ingest::Pg::start();
$Ingest::Test::Totals = \&Ingest::Pg::totals;

my %logs = map { $_ => "$Ingest::Test::Dir/consumer-" . ($_ =~ s/\W//gr)
                       . ".log" } 'pg:c:{0}', 'pg:c:{1}', 'pg:r';
my %consumers = map {
    ($_ => consumer_spawn(db => $uri, args => ['--queue', $_],
                          log => $logs{$_}))
} sort keys %logs;

add_block_preprocessor(sub {
    my $block = shift;

    $block->set_value("http_config", <<'_EOC_');
    ingest_redis $TEST_NGINX_REDIS;
    ingest_flush_interval 10ms;
    ingest_shards 2;
_EOC_

    $block->set_value("config", <<'_EOC_');
    location = /c { ingest_counters queue=pg:c; }
    location = /r {
        ingest_records rec queue=pg:r id:int! name:text score:real ok:bool;
    }
_EOC_

    $block->set_value("no_error_log", "[error]\n[alert]\n")
        unless defined $block->no_error_log;
});

no_shuffle();
run_tests();

# the records of TEST 4, as PostgreSQL typed them
ok(wait_for(sub { (Ingest::Pg::rows('SELECT count(*) FROM rec') // [[0]])
                  ->[0][0] == 3 }),
   'records: 3 rows in PostgreSQL');
is_deeply(Ingest::Pg::rows(
              'SELECT id, coalesce(name, \'-\'), coalesce(score::text, \'-\'),'
              . ' coalesce(ok::text, \'-\') FROM rec ORDER BY id'),
          [[-3, "caf\x{c3}\x{a9} \"x\\", '-25', 'false'],
           [1, 'a', '1.5', 'true'],
           [2, '-', '3', '-']],
          'records: each value in its column, NULL where absent');
is_deeply(Ingest::Pg::rows(
              "SELECT column_name, data_type FROM information_schema.columns"
              . " WHERE table_name = 'rec' ORDER BY ordinal_position"),
          [['received_at', 'bigint'], ['id', 'bigint'], ['name', 'text'],
           ['score', 'double precision'], ['ok', 'boolean']],
          'records: the table the consumer made');

# every consumer still running, none said more than its start
for my $list (sort keys %consumers) {
    is(consumer_wait($consumers{$list}, 0.1), undef,
       "the consumer of $list still runs");
    consumer_kill($consumers{$list});
    unlike(consumer_log($logs{$list}), qr/\[(?:error|warn)\]/,
           "the consumer of $list logged no error")
        or diag(consumer_log($logs{$list}));
}

__DATA__

=== TEST 1: form and JSON bodies over two shards add up in PostgreSQL
Keys with a quote, a backslash and a non-ASCII letter travel through the
array literals unchanged.
--- more_headers
Content-Type: application/x-www-form-urlencoded
--- request eval
["POST /c\n" . CORE::join("&", map { "pg$_=$_" } 1 .. 20)
     . "&q%22uote=1&back%5Cslash=2&caf%C3%A9=3",
 "POST /c\n" . CORE::join("&", map { "pg$_=-1" } 1 .. 20)
     . "&q%22uote=10&back%5Cslash=20&caf%C3%A9=30"]
--- error_code eval
[204, 204]
--- totals eval
+{ (map { ("pg$_" => $_ - 1) } 1 .. 20), "q\"uote" => 11,
   "back\\slash" => 22, "caf\x{c3}\x{a9}" => 33 }



=== TEST 2: JSON, and a key brought back to zero
--- more_headers
Content-Type: application/json
--- request eval
["POST /c\n{\"pgj:a\":5,\"pgj:b\":-7}", "POST /c\n{\"pgj:a\":-5}"]
--- error_code eval
[204, 204]
--- totals eval
{ "pgj:a" => 0, "pgj:b" => -7 }



=== TEST 3: an Idempotency-Key request sent twice counts once
--- more_headers
Content-Type: application/x-www-form-urlencoded
Idempotency-Key: pg-order-1
--- request eval
["POST /c\n" . CORE::join("&", map { "pgi$_=$_" } 1 .. 8),
 "POST /c\n" . CORE::join("&", map { "pgi$_=$_" } 1 .. 8)]
--- error_code eval
[204, 204]
--- totals eval
+{ map { ("pgi$_" => $_) } 1 .. 8 }



=== TEST 4: records reach a table the consumer creates in PostgreSQL
--- more_headers
Content-Type: application/x-ndjson
--- request eval
"POST /r\n" . qq({"id":1,"name":"a","score":1.5,"ok":true}\n)
. qq({"id":2,"score":3}\n)
. qq({"name":"caf\\u00e9 \\"x\\\\","id":-3,"ok":false,"score":-2.5e1}\n)
--- error_code: 200
--- response_body
{"result":{"status":"ok","stats":{"bytes":121,"records":{"valid":3,"invalid":0,"total":3}},"errors":[]}}
