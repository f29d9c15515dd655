# ingest-consumer and version 3 batches (time buckets), into SQLite and
# into PostgreSQL, batches written by hand: each bucket lands in
# buckets(key, resolution, start, value), once per resolution of its
# element, in the same transaction as the totals, added up across
# batches and across the steps of one batch (PostgreSQL sums them before
# its upsert); a duplicate batch is skipped for its
# buckets as for its totals; an Idempotency-Key request repeated in a
# later batch (a later bucket) counts once, in the bucket of the batch
# that was applied; a resolution that does not divide a day makes the
# batch refused
# (dead-letter list), nothing of it applied; --retain removes exactly the
# buckets that ended more than its time ago, of its resolution only (a
# bucket still filling never goes); bad --retain
# values are refused at start.  Plain and ASan builds.

use strict;
use warnings;

use lib 't/lib';
use Ingest::Test nginx => 0, consumer => 0;
use Ingest::Pg;
use Test::More;

my $uri = Ingest::Pg::start();

my @bins = grep { -x } map { "$Ingest::Test::Top/build/$_" }
           qw(ingest-consumer asan/ingest-consumer);

sub drained {
    my ($list) = @_;
    return wait_for(sub { (redis_cli('LLEN', $list) // 1) == 0 }, 20);
}

# a version 3 batch: totals, buckets [[res, time, {k => v}]] (one
# resolution an element; a res of [..] for several), requests
# [[id, {k => v}, buckets]]
sub v3 {
    my ($producer, $seq, $counts, $buckets, $requests) = @_;
    my $obj = sub {
        my ($h) = @_;
        return '{' . join(',', map { "\"$_\":$h->{$_}" } sort keys %$h) . '}';
    };
    my $bk = sub {
        my ($list) = @_;
        return '[' . join(',', map {
                   my $r = ref $_->[0] ? join(',', @{ $_->[0] }) : $_->[0];
                   "[[$r],$_->[1]," . $obj->($_->[2]) . ']' } @$list) . ']';
    };
    my $b = qq({"v":3,"kind":"counters","producer":"$producer","seq":$seq,)
            . qq("ts":1763769600123,"counts":) . $obj->($counts)
            . ',"buckets":' . $bk->($buckets);
    if ($requests) {
        $b .= ',"requests":[' . join(',', map {
                  qq({"id":"$_->[0]","counts":) . $obj->($_->[1])
                  . ',"buckets":' . $bk->($_->[2]) . '}' } @$requests) . ']';
    }
    return $b . '}';
}

my $now = time;
my $m = $now - $now % 60;            # this minute
my $h = $now - $now % 3600;          # this hour
my $d = $now - $now % 86400;         # today (UTC)

my %store = (
    sqlite => { db => undef,
                rows => sub { Ingest::Test::sql_rows($_[0]) } },
    pg     => { db => $uri, rows => \&Ingest::Pg::rows },
);

my $round = 0;

for my $bin (@bins) {
    $Ingest::Test::Consumer = $bin;
    my $btag = $bin =~ /asan/ ? 'asan' : 'plain';

    for my $kind (qw(sqlite pg)) {
        $round++;
        my $tag = "$btag $kind";
        my $p = "t108/$round";
        my $list = "bk:$round";
        my $log = "$Ingest::Test::Dir/bk-$round.log";
        my $db = $store{$kind}{db} // "$Ingest::Test::Dir/bk-$round.db";
        my $rows = $kind eq 'sqlite'
            ? sub {
                  local $Ingest::Test::Db = $db;
                  Ingest::Test::sql_rows($_[0]);
              }
            : $store{$kind}{rows};
        my $bsql = "SELECT key, resolution, start, value FROM buckets"
                   . " WHERE key LIKE '$p:%' ORDER BY key, resolution, start";
        my $got = sub {
            my $r = $rows->($bsql) // [];
            return join ' ', map { join ':', @$_[1 .. 3] } @$r;
        };

        # a minute ago and now, in one hour: the hour sums both steps
        my $b1 = v3($p, 1, { "$p:a" => 3 },
                    [[[60, 3600], $m - 60, { "$p:a" => 1 }],
                     [[60, 3600], $m, { "$p:a" => 2 }]]);
        my $b2 = v3($p, 2, { "$p:a" => 5 },
                    [[60, $m, { "$p:a" => 5 }], [3600, $h, { "$p:a" => 5 }]],
                    [["$p-req", { "$p:a" => 7 }, [[60, $m, { "$p:a" => 7 }]]]]);
        # the same request again, arriving a minute later: not applied
        my $b3 = v3($p, 3, {}, [],
                    [["$p-req", { "$p:a" => 7 },
                      [[60, $m + 60, { "$p:a" => 7 }]]]]);

        redis_cli('RPUSH', $list, $b1, $b1, $b2, $b3);

        my $pid = consumer_spawn(db => $db, log => $log,
                                 args => ['--queue', $list]);
        ok(drained($list), "$tag: the list is drained");

        my $hm = $m - 60 - ($m - 60) % 3600;    # the hour of a minute ago
        my $want = $hm == $h
            ? join(' ', (60 . ':' . ($m - 60) . ':1'), (60 . ":$m:14"),
                        (3600 . ":$h:8"))
            : join(' ', (60 . ':' . ($m - 60) . ':1'), (60 . ":$m:14"),
                        (3600 . ":$hm:1"), (3600 . ":$h:7"));
        ok(wait_for(sub { $got->() eq $want }, 10),
           "$tag: buckets added up, the duplicate skipped, the request "
           . "once, in its first bucket")
            or diag $got->();
        my $t = $rows->("SELECT value FROM totals WHERE key = '$p:a'");
        is($t->[0][0], 15, "$tag: the total, 3 + 5 + 7");

        # a resolution that does not divide a day: refused whole

        redis_cli('RPUSH', $list,
                  v3($p, 4, { "$p:b" => 1 }, [[7, $m, { "$p:b" => 1 }]]));
        ok(wait_for(sub { (redis_cli('LLEN', "$list:dead") // 0) == 1 }, 10),
           "$tag: a resolution of 7 s: the batch goes to $list:dead");
        like(redis_cli('LINDEX', "$list:dead", 0),
             qr/^\{"reason":"cannot be read: invalid bucket resolutions: 1 to 7, each of 1 to 86400 s dividing a day, none twice at byte \d+"/,
             "$tag: saying why");
        is_deeply($rows->("SELECT count(*) FROM totals WHERE key = '$p:b'"),
                  [[0]], "$tag: and nothing of it applied");

        consumer_kill($pid);

        # --retain: 60 s buckets older than 2 minutes go, the hour's stay

        redis_cli('RPUSH', $list,
                  v3($p, 5, { "$p:c" => 3 },
                     [[60, $m - 600, { "$p:c" => 1 }],
                      [60, $m - 180, { "$p:c" => 1 }],
                      [60, $m, { "$p:c" => 1 }],
                      [3600, $h - 7200, { "$p:c" => 3 }],
                      [86400, $d - 2 * 86400, { "$p:c" => 3 }],
                      [86400, $d, { "$p:c" => 3 }]]));

        $pid = consumer_spawn(db => $db, log => $log,
                              args => ['--queue', $list,
                                       '--retain', '1m=2m,1d=1s']);
        ok(drained($list), "$tag: --retain: drained");

        my $csql = "SELECT resolution, start FROM buckets"
                   . " WHERE key = '$p:c' ORDER BY resolution, start";
        my $cgot = sub { join ' ', map { join ':', @$_ }
                                   @{ $rows->($csql) // [] } };
        ok(wait_for(sub { $cgot->() eq "60:$m " . 3600 . ':' . ($h - 7200)
                                       . ' ' . 86400 . ":$d" },
                    10),
           "$tag: --retain 1m=2m,1d=1s: the minutes of 10 and 3 minutes "
           . "ago go, and the day of 2 days ago; this minute, the hour "
           . "(not retained) and today stay: a bucket still filling never "
           . "goes")
            or diag $cgot->();
        like(consumer_log($log),
             qr/\[info\] ingest-consumer: expired \d+ buckets \(--retain\)$/m,
             "$tag: and says so");

        consumer_kill($pid);
    }
}

# a list element over 2 MB (no producer writes one): refused unread, to
# the dead-letter list, whatever it holds, and the next one applied

{
    my $list = 'bk:big';
    my $log = "$Ingest::Test::Dir/bk-big.log";
    my $big = v3('t108/big', 1, { 't108:big' => 1 },
                 [[[1, 60, 3600, 86400], $m, { map { ("t108:b$_" => 1) }
                                                   1 .. 150000 }]]);
    open my $cli, '|-', 'redis-cli', '-p', $Ingest::Test::RedisPort, '-x',
        'RPUSH', $list or die "redis-cli: $!";
    print $cli $big;
    close $cli;
    redis_cli('RPUSH', $list, v3('t108/big', 2, { 't108:small' => 1 }, []));

    my $pid = consumer_spawn(log => $log,
                             db => "$Ingest::Test::Dir/bk-big.db",
                             args => ['--queue', $list]);
    ok(drained($list), 'a 2 MB+ element and a small one: drained');
    like(redis_cli('LINDEX', "$list:dead", 0) // '',
         qr/^\{"reason":"cannot be read: a batch of \d+ bytes, over the 2097152 a reader takes"/,
         'the big one went to the dead-letter list, unread, saying why');
    {
        local $Ingest::Test::Db = "$Ingest::Test::Dir/bk-big.db";
        is_deeply(Ingest::Test::sql_rows(
                      "SELECT key, value FROM totals WHERE key LIKE 't108:%'"),
                  [['t108:small', 1]], 'the small one applied, alone');
    }
    consumer_kill($pid);
}

# bad --retain values: refused at start, exit 1, saying what

for my $bad ('1m', '7s=1d', '2d=1d', '1m=0s', '1m=1x', '1m=1d,1m=2d', '=1d') {
    my $log = "$Ingest::Test::Dir/bad-retain.log";
    unlink $log;
    my $pid = consumer_spawn(log => $log, args => ['--retain', $bad]);
    is(consumer_wait($pid, 10), 1 << 8, "--retain $bad: exit 1");
    like(consumer_log($log), qr/--retain/, "--retain $bad: says --retain");
}

done_testing();
