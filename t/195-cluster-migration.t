# ingest_redis cluster while a list's slot moves between masters: ASK
# (the batch goes to the importing master after ASKING) during the
# migration, MOVED after it; a consumer of the list (--redis cluster:)
# finds it on its new master.  Totals in SQLite are exact.  A batch the
# consumer refuses goes to "{mig:list}:dead", in the list's slot, and the
# status endpoint finds it there.

use lib 't/lib';
use Ingest::Test consumer => 0;
use Ingest::Cluster;
use Test::Nginx::Socket 'no_plan';

my @ports = Ingest::Cluster::start();
$ENV{TEST_NGINX_CLUSTER_PORT} = $ports[0];

our $List = 'mig:list';
our $From = Ingest::Cluster::owner($List);
our ($To) = grep { $_ != $From } @ports[0 .. 2];
our $Slot = Ingest::Cluster::cli($From, 'CLUSTER', 'KEYSLOT', $List);

sub id_of { Ingest::Cluster::cli($_[0], 'CLUSTER', 'MYID') }

# the list's length on a node, asking as a client in the middle of a
# migration must
sub llen_on {
    my ($port) = @_;
    my $out = `printf 'ASKING\\nLLEN $List\\n' | redis-cli -p $port 2>/dev/null`;
    my @l = split /\n/, $out;
    return $l[-1];
}

my $consumer = consumer_spawn(
    args => ['--redis', "cluster:127.0.0.1:$ports[0],127.0.0.1:$ports[1]",
             '--queue', $List]);
END { consumer_kill($consumer) if $consumer }

add_block_preprocessor(sub {
    my $block = shift;

    $block->set_value("http_config", <<'_EOC_');
    ingest_redis cluster 127.0.0.1:$TEST_NGINX_CLUSTER_PORT;
    ingest_flush_interval 10ms;
_EOC_
    $block->set_value("config", <<'_EOC_');
    location = /c { ingest_counters queue=mig:list; }
    location = /ingest/status { ingest_status; }
_EOC_

    if ($block->name =~ /TEST 2:/) {
        # the migration starts: new keys of the slot go to $To, by ASK
        Ingest::Cluster::cli($To, 'CLUSTER', 'SETSLOT', $Slot, 'IMPORTING',
                             id_of($From));
        Ingest::Cluster::cli($From, 'CLUSTER', 'SETSLOT', $Slot, 'MIGRATING',
                             id_of($To));
        # the consumer has drained the list on $From: it is gone there
        Test::More::ok(wait_for(sub {
            (Ingest::Cluster::cli($From, 'EXISTS', $List) // 1) == 0 }),
            "the list is empty on $From when the migration starts");
    }

    if ($block->name =~ /TEST 4:/) {
        Ingest::Cluster::cli($To, 'RPUSH', $List, 'not json');
        Test::More::ok(wait_for(sub {
            (Ingest::Cluster::cli($To, 'LLEN', "{$List}:dead") // 0) == 1 }),
            "a batch the consumer refuses is in {$List}:dead on $To");
        Test::More::is(Ingest::Cluster::cli($To, 'CLUSTER', 'KEYSLOT',
                                            "{$List}:dead"), $Slot,
                       "in the list's slot");
        Test::More::is(Ingest::Cluster::cli($To, 'LLEN', $List), 0,
                       'and the list is drained');
    }

    if ($block->name =~ /TEST 3:/) {
        # the migration ends: the slot is $To's, everywhere
        for my $p (@ports[0 .. 2]) {
            Ingest::Cluster::cli($p, 'CLUSTER', 'SETSLOT', $Slot, 'NODE',
                                 id_of($To));
        }
    }
});

no_shuffle();
run_tests();

__DATA__

=== TEST 1: before: the list lives on its master
--- more_headers
Content-Type: application/x-www-form-urlencoded
--- request
POST /c
mig:a=1&mig:b=2
--- error_code: 204
--- totals eval
{ "mig:a" => 1, "mig:b" => 2 }



=== TEST 2: during the migration: ASK, and the batch lands on the importing master
The consumer cannot read the list there yet (its LRANGE on the old
master answers ASK); it waits and looks again.
--- more_headers
Content-Type: application/x-www-form-urlencoded
--- request
POST /c
mig:a=10&mig:c=30
--- error_code: 204
--- list eval
["mig:list", sub {
    my $n = main::llen_on($main::To) // '';
    return $n eq '1' ? (1, "one batch on the importing master")
                     : (0, "LLEN on $main::To: $n");
}]
--- error_log eval
[qr/ingest redis cluster: asked to send slot \d+ of "mig:list" to 127\.0\.0\.1:\d+/]
--- no_error_log
[error]



=== TEST 3: after: MOVED, and everything is counted once
--- more_headers
Content-Type: application/x-www-form-urlencoded
--- request
POST /c
mig:a=100
--- error_code: 204
--- totals eval
{ "mig:a" => 111, "mig:b" => 2, "mig:c" => 30 }
--- no_error_log
[error]



=== TEST 4: a refused batch, in the list's slot, shows in the status
--- request
GET /ingest/status
--- error_code: 200
--- eventually eval
["/ingest/status", qr/"queues":\{"mig:list":\{"depth":0,"dead":1,"consumer":\{"up":true,/]
