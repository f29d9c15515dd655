# ingest-consumer on its own: duplicates skipped, bad batches left in
# Redis with a clear error, one consumer per list, clean stops.  Runs the
# plain build and, when present, the AddressSanitizer build.

use strict;
use warnings;

use lib 't/lib';
use Ingest::Test nginx => 0, consumer => 0;
use Test::More;
use POSIX qw(SIGTERM SIGINT);

my @bins = grep { -x } map { "$Ingest::Test::Top/build/$_" }
           qw(ingest-consumer asan/ingest-consumer);

sub fixture {
    my ($name) = @_;
    open my $in, '<', "$Ingest::Test::Top/t/fixtures/wire/$name" or die $!;
    local $/;
    return scalar <$in>;
}

my $round = 0;

for my $bin (@bins) {
    $Ingest::Test::Consumer = $bin;
    my $tag = $bin =~ /asan/ ? 'asan' : 'plain';
    $round++;
    my $db = "$Ingest::Test::Dir/consumer-$round.db";
    my $log = "$Ingest::Test::Dir/consumer-$round.log";
    my $p = "t100/$round";

    # --help and bad options

    my $help = `$bin --help`;
    is($? >> 8, 0, "$tag: --help exits 0");
    like($help, qr/^usage: ingest-consumer --db FILE/, "$tag: --help usage");

    my $err = `$bin --db x --window 0 2>&1`;
    is($? >> 8, 1, "$tag: a bad option exits 1");
    like($err, qr/--window must be a number from 1 to 100000, not "0"/,
         "$tag: and says why");

    $err = `$bin 2>&1`;
    is($? >> 8, 1, "$tag: --db is required");

    # duplicates of a batch are applied once

    redis_cli('DEL', 'ingest:counters');
    my $b1 = batch($p, 1, { "$p:a" => 5, "$p:b" => -1 });
    my $b2 = batch($p, 2, { "$p:a" => 1 });
    redis_cli('RPUSH', 'ingest:counters', $b1, $b1, $b2, $b1, $b2);

    my $pid = consumer_spawn(db => $db, log => $log);

    ok(wait_for(sub { (redis_cli('LLEN', 'ingest:counters') // 1) == 0 }),
       "$tag: the list is drained");

    $Ingest::Test::Db = $db;
    is_deeply(wait_totals({ "$p:a" => 6, "$p:b" => -1 }),
              { "$p:a" => 6, "$p:b" => -1 },
              "$tag: each batch counted once, duplicates skipped");

    like(consumer_log($log), qr/skipped 3 already applied/,
         "$tag: the skipped duplicates are logged");

    # a second consumer of the same list waits

    my $log2 = "$log.second";
    my $pid2 = consumer_spawn(db => $db, log => $log2);

    ok(wait_for(sub { consumer_log($log2) =~ /drained by another consumer/ }),
       "$tag: a second consumer waits");
    like(consumer_log($log2),
         qr/"ingest:counters" is drained by another consumer \(Redis key "ingest:counters:consumer"\); waiting for it to stop/,
         "$tag: and says so");

    # SIGTERM: exit 0 and the lock is given back; the second takes over

    is(consumer_kill($pid, SIGTERM) >> 8, 0, "$tag: SIGTERM exits 0");
    like(consumer_log($log), qr/stopped: 2 batches applied, 3 skipped/,
         "$tag: and reports what it did");

    ok(wait_for(sub { consumer_log($log2) =~ /consuming "ingest:counters"/ }),
       "$tag: the second consumer takes over");

    redis_cli('RPUSH', 'ingest:counters', batch($p, 3, { "$p:c" => 7 }));
    is_deeply(wait_totals({ "$p:c" => 7 }), { "$p:c" => 7 },
              "$tag: and drains the list");

    # a batch it cannot read stops it, and stays in Redis

    my $bad = fixture('bad-not-json.json');
    redis_cli('RPUSH', 'ingest:counters', batch($p, 4, { "$p:d" => 1 }),
              $bad);

    my $status = consumer_wait($pid2, 10);
    is(defined $status ? $status >> 8 : 'running', 2,
       "$tag: an unreadable batch stops it with exit 2");
    like(consumer_log($log2),
         qr/batch 1 of "ingest:counters" cannot be read: expected '\{' at byte 0; it is left in Redis/,
         "$tag: with a clear error");
    is(redis_cli('LLEN', 'ingest:counters'), 2,
       "$tag: the round is not trimmed");
    is(redis_cli('LINDEX', 'ingest:counters', 1), $bad,
       "$tag: the bad batch is left as it was");
    is(wait_totals({ "$p:d" => undef }, 0.2)->{"$p:d"}, undef,
       "$tag: and its round was rolled back");

    # a newer version, the same

    redis_cli('DEL', 'ingest:counters');
    redis_cli('RPUSH', 'ingest:counters', fixture('bad-version-3.json'));
    my $pid3 = consumer_spawn(db => $db, log => "$log.v3");
    $status = consumer_wait($pid3, 10);
    is(defined $status ? $status >> 8 : 'running', 2,
       "$tag: a version-3 batch stops it");
    like(consumer_log("$log.v3"), qr/unsupported batch version 3/,
         "$tag: naming the version");
    is(redis_cli('LLEN', 'ingest:counters'), 1, "$tag: and it stays");

    # a total that would overflow stops it, nothing of the round applied

    redis_cli('DEL', 'ingest:counters');
    redis_cli('RPUSH', 'ingest:counters',
              batch($p, 5, { "$p:max" => '9223372036854775807' }));
    my $pid4 = consumer_spawn(db => $db, log => "$log.ovf");
    is_deeply(wait_totals({ "$p:max" => '9223372036854775807' }),
              { "$p:max" => '9223372036854775807' }, "$tag: int64 max");
    redis_cli('RPUSH', 'ingest:counters',
              batch($p, 6, { "$p:e" => 1, "$p:max" => 1 }));
    $status = consumer_wait($pid4, 10);
    is(defined $status ? $status >> 8 : 'running', 2,
       "$tag: an overflowing total stops it");
    like(consumer_log("$log.ovf"),
         qr/total overflows a signed 64-bit integer/, "$tag: saying so");
    is_deeply(wait_totals({ "$p:max" => '9223372036854775807',
                            "$p:e" => undef }, 0.2),
              { "$p:max" => '9223372036854775807', "$p:e" => undef },
              "$tag: nothing of the batch applied");
    is(redis_cli('LLEN', 'ingest:counters'), 1, "$tag: the batch stays");
    redis_cli('DEL', 'ingest:counters', 'ingest:counters:consumer');

    # records: the table is made from the first batch; a batch whose
    # columns conflict with it stops the consumer and stays in Redis

    my $rec = sub {
        my ($seq, $types, $rows) = @_;
        return qq({"v":1,"kind":"records","producer":"$p-r","seq":$seq,)
             . qq("ts":1,"table":"rt$round","columns":["a","b"],)
             . qq("types":$types,"rows":$rows});
    };

    redis_cli('RPUSH', 'ingest:counters',
              $rec->(1, '["int","text"]', '[[1,"x"],[null,"y\\u00e9"]]'));
    my $pid5 = consumer_spawn(db => $db, log => "$log.rec");
    ok(wait_for(sub { (redis_cli('LLEN', 'ingest:counters') // 1) == 0 }),
       "$tag: a records batch is applied");
    is_deeply(Ingest::Test::sql_rows("SELECT a, b FROM rt$round ORDER BY rowid"),
              [[1, "x"], [undef, "y\x{c3}\x{a9}"]],
              "$tag: its rows are in the table it made");

    my $bad_rec = $rec->(2, '["text","text"]', '[["1","x"]]');
    redis_cli('RPUSH', 'ingest:counters', $bad_rec);
    $status = consumer_wait($pid5, 10);
    is(defined $status ? $status >> 8 : 'running', 2,
       "$tag: a batch whose columns conflict stops it");
    like(consumer_log("$log.rec"),
         qr/the columns of a batch for table "rt$round" differ from the table's/,
         "$tag: saying so");
    is(redis_cli('LINDEX', 'ingest:counters', 0), $bad_rec,
       "$tag: and the batch stays");
    redis_cli('DEL', 'ingest:counters', 'ingest:counters:consumer');
}

ok(scalar @bins, "a consumer binary was tested");

done_testing();
