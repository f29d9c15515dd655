# ingest-consumer on its own: duplicates skipped, one consumer per list,
# batches it cannot apply moved to the dead-letter list with the reason
# while the others are applied, clean stops.  Runs the plain build and,
# when present, the AddressSanitizer build.

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
    # every form --redis takes, the cluster's included
    for my $form ('redis://[USER[:PASSWORD]@]HOST[:PORT][/DB]',
                  'unix://[USER[:PASSWORD]@]/PATH[?db=N]', 'HOST:PORT',
                  '[V6]:PORT', 'unix:PATH', 'cluster:SEED,SEED,...') {
        like($help, qr/\Q$form\E/, "$tag: --help names --redis $form");
    }
    like($help, qr/--version/, "$tag: --help names --version");

    my $err = `$bin --db x --window 0 2>&1`;
    is($? >> 8, 1, "$tag: a bad option exits 1");
    like($err, qr/--window must be a number from 1 to 100000, not "0"/,
         "$tag: and says why");

    $err = `$bin 2>&1`;
    is($? >> 8, 1, "$tag: --db is required");

    # --redis: URLs read as redis-cli -u reads them, what is wrong said

    $err = `$bin --db x --redis redis://h:0/1 2>&1`;
    is($? >> 8, 1, "$tag: a bad --redis URL exits 1");
    like($err, qr{invalid --redis "redis://h:0/1": the port must be a number from 1 to 65535},
         "$tag: and says why");

    $err = `$bin --db x --redis cluster:127.0.0.1:7000,redis://h:7001/2 2>&1`;
    is($? >> 8, 1, "$tag: a cluster seed with a db exits 1");
    like($err, qr/seed 2: db 2, but a cluster has only db 0/,
         "$tag: a cluster has only db 0");

    $err = `$bin --db x --redis redis://u:Pa55\@h --password-file /dev/null 2>&1`;
    is($? >> 8, 1, "$tag: a password in the URL and a file exits 1");
    like($err, qr/a password in --redis and --password-file: give one of them/,
         "$tag: saying so");
    unlike($err, qr/Pa55/, "$tag: without the password");

    $err = `REDISCLI_AUTH= $bin --db x --redis redis://u\@h --requeue-dead 2>&1`;
    is($? >> 8, 1, "$tag: a user without a password exits 1");
    like($err, qr/--redis names user "u" but no password is given/,
         "$tag: saying so");

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

    # a batch it cannot read is moved to the dead-letter list with the
    # reason, atomically with the trim; the batches around it are applied

    my $dead = 'ingest:counters:dead';
    my $bad = fixture('bad-not-json.json');
    redis_cli('RPUSH', 'ingest:counters', batch($p, 4, { "$p:d" => 1 }),
              $bad, batch($p, 5, { "$p:d" => 2 }));

    is_deeply(wait_totals({ "$p:d" => 3 }), { "$p:d" => 3 },
              "$tag: the batches around an unreadable one are applied");
    ok(wait_for(sub { (redis_cli('LLEN', 'ingest:counters') // 1) == 0 }),
       "$tag: and the list is drained");
    is(redis_cli('LLEN', $dead), 1, "$tag: the bad batch is in $dead");
    my ($header, $original) = split /\n/, redis_cli('LINDEX', $dead, 0), 2;
    is($original, $bad, "$tag: after a header line, byte for byte");
    like($header,
         qr/^\{"reason":"cannot be read: expected '\{' at byte 0","at":\d{13},"consumer":"[^"]+\/\d+\/\d+"\}$/,
         "$tag: the header says why, when and who");
    like(consumer_log($log2),
         qr/\[alert\] ingest-consumer: a batch of "ingest:counters" is refused: cannot be read: expected '\{' at byte 0; moved to "ingest:counters:dead"$/m,
         "$tag: logged at alert");
    is(consumer_wait($pid2, 0.2), undef, "$tag: and the consumer goes on");

    # a newer version, the same; its producer and seq are not read

    my $v4 = fixture('bad-version-4.json');
    redis_cli('RPUSH', 'ingest:counters', $v4);
    ok(wait_for(sub { (redis_cli('LLEN', $dead) // 0) == 2 }),
       "$tag: a version-4 batch is moved to $dead");
    ($header, $original) = split /\n/, redis_cli('LINDEX', $dead, 1), 2;
    is($original, $v4, "$tag: unchanged");
    like($header,
         qr/^\{"reason":"cannot be read: unsupported batch version 4","at":\d+,"consumer":"[^"]+"\}$/,
         "$tag: naming the version");

    # a total that would overflow: that batch alone is refused, and the
    # batches of its window before and after it are applied once

    redis_cli('RPUSH', 'ingest:counters',
              batch($p, 6, { "$p:max" => '9223372036854775807' }));
    is_deeply(wait_totals({ "$p:max" => '9223372036854775807' }),
              { "$p:max" => '9223372036854775807' }, "$tag: int64 max");
    my $ovf = batch($p, 8, { "$p:e" => 1, "$p:max" => 1 });
    redis_cli('RPUSH', 'ingest:counters', batch($p, 7, { "$p:f" => 1 }),
              $ovf, batch($p, 9, { "$p:f" => 2 }));
    is_deeply(wait_totals({ "$p:max" => '9223372036854775807',
                            "$p:f" => 3, "$p:e" => undef }),
              { "$p:max" => '9223372036854775807', "$p:f" => 3,
                "$p:e" => undef },
              "$tag: nothing of the overflowing batch, all of the others");
    ok(wait_for(sub { (redis_cli('LLEN', $dead) // 0) == 3 }),
       "$tag: the overflowing batch is moved to $dead");
    ($header, $original) = split /\n/, redis_cli('LINDEX', $dead, 2), 2;
    is($original, $ovf, "$tag: unchanged");
    like($header,
         qr/^\{"reason":"updating totals: total overflows a signed 64-bit integer \(key \\"\Q$p\E:max\\"\)","at":\d+,"consumer":"[^"]+","producer":"\Q$p\E","seq":8\}$/,
         "$tag: with the key, its producer and seq");
    like(consumer_log($log2),
         qr/\[alert\] ingest-consumer: a batch of "ingest:counters" \(producer "\Q$p\E", seq 8\) is refused: updating totals: total overflows a signed 64-bit integer \(key "\Q$p\E:max"\); moved to "ingest:counters:dead"$/m,
         "$tag: logged at alert");
    unlike(consumer_log($log2), qr/jumped/,
           "$tag: seq 9 after a dead seq 8 is no jump");

    # records: the table is made from the first batch; a batch whose
    # columns conflict with it is refused the same way

    my $rec = sub {
        my ($seq, $types, $rows) = @_;
        return qq({"v":1,"kind":"records","producer":"$p-r","seq":$seq,)
             . qq("ts":1,"table":"rt$round","columns":["a","b"],)
             . qq("types":$types,"rows":$rows});
    };

    redis_cli('RPUSH', 'ingest:counters',
              $rec->(1, '["int","text"]', '[[1,"x"],[null,"y\\u00e9"]]'));
    ok(wait_for(sub { (redis_cli('LLEN', 'ingest:counters') // 1) == 0 }),
       "$tag: a records batch is applied");
    is_deeply(Ingest::Test::sql_rows("SELECT a, b FROM rt$round ORDER BY rowid"),
              [[1, "x"], [undef, "y\x{c3}\x{a9}"]],
              "$tag: its rows are in the table it made");

    my $bad_rec = $rec->(2, '["text","text"]', '[["1","x"]]');
    redis_cli('RPUSH', 'ingest:counters', $bad_rec);
    ok(wait_for(sub { (redis_cli('LLEN', $dead) // 0) == 4 }),
       "$tag: a batch whose columns conflict is moved to $dead");
    ($header, $original) = split /\n/, redis_cli('LINDEX', $dead, 3), 2;
    is($original, $bad_rec, "$tag: unchanged");
    like($header,
         qr/^\{"reason":"the columns of a batch for table \\"rt$round\\" differ from the table's","at":\d+,"consumer":"[^"]+","producer":"\Q$p\E-r","seq":2\}$/,
         "$tag: saying so");

    # SIGTERM: what it did, refusals included

    is(consumer_kill($pid2, SIGTERM) >> 8, 0, "$tag: SIGTERM exits 0");
    like(consumer_log($log2),
         qr/stopped: 7 batches applied, 0 skipped as already applied, \d+ keys, 0 repeated requests skipped, 4 refused \(moved to "ingest:counters:dead"\)$/m,
         "$tag: and reports what it did, refusals included");
    redis_cli('DEL', 'ingest:counters', 'ingest:counters:consumer', $dead);
}

ok(scalar @bins, "a consumer binary was tested");

done_testing();
