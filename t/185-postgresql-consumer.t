# ingest-consumer --db postgresql://... on its own, batches written by
# hand: duplicates skipped, PostgreSQL stopped and started under it, a
# total that would overflow, a consumer killed mid-window, and consumers
# of two lists adding to the same keys at once.  Plain and ASan builds.

use strict;
use warnings;

use lib 't/lib';
use Ingest::Test nginx => 0, consumer => 0;
use Ingest::Pg;
use Test::More;
use POSIX qw(SIGKILL);

my $uri = Ingest::Pg::start();
$Ingest::Test::Totals = \&Ingest::Pg::totals;

my @bins = grep { -x } map { "$Ingest::Test::Top/build/$_" }
           qw(ingest-consumer asan/ingest-consumer);

sub drained {
    my ($list) = @_;
    return wait_for(sub { (redis_cli('LLEN', $list) // 1) == 0 }, 20);
}

my $round = 0;

for my $bin (@bins) {
    $Ingest::Test::Consumer = $bin;
    my $tag = $bin =~ /asan/ ? 'asan' : 'plain';
    $round++;
    my $p = "t185/$round";
    my $list = "pgc:$round";
    my $log = "$Ingest::Test::Dir/pg-$round.log";

    # duplicates of a batch are applied once

    my $b1 = batch($p, 1, { "$p:a" => 5, "$p:b" => -1 });
    my $b2 = batch($p, 2, { "$p:a" => 1 });
    redis_cli('RPUSH', $list, $b1, $b1, $b2, $b1, $b2);

    my $pid = consumer_spawn(db => $uri, log => $log,
                             args => ['--queue', $list]);

    ok(drained($list), "$tag: the list is drained");
    is_deeply(wait_totals({ "$p:a" => 6, "$p:b" => -1 }),
              { "$p:a" => 6, "$p:b" => -1 },
              "$tag: each batch counted once, duplicates skipped");

    # PostgreSQL goes away and comes back: the consumer waits, then goes on

    Ingest::Pg::stop();
    redis_cli('RPUSH', $list, batch($p, 3, { "$p:a" => 100 }));

    ok(wait_for(sub { consumer_log($log) =~ /PostgreSQL is unreachable: .*; retrying/ }),
       "$tag: a lost PostgreSQL is logged");
    is(consumer_wait($pid, 0.5), undef, "$tag: and the consumer waits");

    ok(Ingest::Pg::start_again(), "$tag: PostgreSQL starts again");
    ok(drained($list), "$tag: the batch that waited is drained");
    is_deeply(wait_totals({ "$p:a" => 106 }), { "$p:a" => 106 },
              "$tag: and counted once");
    like(consumer_log($log), qr/PostgreSQL is back/,
         "$tag: the return is logged");
    is(scalar(() = consumer_log($log) =~ /is unreachable/g), 1,
       "$tag: the loss is logged once, not at every retry");

    # killed mid-window: the next consumer re-reads and skips what was done

    consumer_kill($pid, SIGKILL);
    redis_cli('RPUSH', $list,
              map { batch($p, 3 + $_, { "$p:k" => $_, "$p:n" => 1 }) }
              1 .. 300);
    $pid = consumer_spawn(db => $uri, log => $log,
                          args => ['--queue', $list, '--window', '7']);
    sleep 0.3;
    consumer_kill($pid, SIGKILL);
    $pid = consumer_spawn(db => $uri, log => $log,
                          args => ['--queue', $list, '--window', '7']);
    ok(drained($list), "$tag: 300 batches drained across a SIGKILL");
    my $want = { "$p:k" => 300 * 301 / 2, "$p:n" => 300 };
    is_deeply(wait_totals($want), $want, "$tag: each counted once");

    # a total that would overflow stops the consumer; the batch stays

    redis_cli('RPUSH', $list,
              batch($p, 304, { "$p:big" => '9223372036854775807' }),
              batch($p, 305, { "$p:big" => 1 }));
    is(consumer_wait($pid, 10), 2 << 8, "$tag: an overflow exits 2");
    like(consumer_log($log), qr/bigint out of range/,
         "$tag: and says why");
    is(redis_cli('LLEN', $list), 2,
       "$tag: the window that held it stays in Redis");
    is_deeply(wait_totals({ "$p:big" => undef }), { "$p:big" => undef },
              "$tag: and nothing of it was applied");
    redis_cli('DEL', $list);

    # two lists add to the same keys at once, in opposite orders: the row
    # locks are taken in key order, and a deadlock would be read again

    my @keys = map { "$p:shared$_" } 1 .. 50;
    for my $l ("$list:x", "$list:y") {
        my $q = "$p/$l";
        for my $from (map { $_ * 20 + 1 } 0 .. 9) {     # a command line each
            redis_cli('RPUSH', $l, map {
                batch($q, $_, { map { ($_ => 1) } @keys })
            } $from .. $from + 19);
        }
    }
    my @pair = map {
        consumer_spawn(db => $uri, log => "$log.$_",
                       args => ['--queue', "$list:$_", '--window', '3'])
    } qw(x y);
    ok(drained("$list:x") && drained("$list:y"),
       "$tag: two lists on the same keys drain");
    $want = { map { ($_ => 400) } @keys };
    is_deeply(wait_totals($want), $want,
              "$tag: 50 shared keys hold both lists' 400 each");
    consumer_kill($_) for @pair;
    unlike(consumer_log("$log.x") . consumer_log("$log.y"), qr/\[error\]/,
           "$tag: with no error");
}

# a bad URI is a configuration error, exit 1

my $err = `$bins[0] --db postgresql://nobody\@127.0.0.1:1/none 2>&1`;
is($? >> 8, 1, 'an unreachable PostgreSQL at start exits 1');
like($err, qr/cannot connect to PostgreSQL: /, 'and says why');

done_testing();
