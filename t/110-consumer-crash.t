# kill -9 the consumer mid-round, again and again, while batches stream
# in (with duplicates, as a producer's retry sends them); the totals in
# SQLite must come out exact.

use strict;
use warnings;

use lib 't/lib';
use Ingest::Test nginx => 0, consumer => 0;
use Test::More;
use POSIX qw(SIGKILL SIGTERM);
use Time::HiRes qw(sleep time);

srand(110);

my $producers = 4;
my $batches = 150;          # per producer
my $keys = 3000;
my %expected;
my @stream;

for my $seq (1 .. $batches) {
    for my $p (1 .. $producers) {
        my %counts;
        for (1 .. 300) {
            $counts{"crash:k" . int(rand $keys)} += int(rand 20001) - 10000;
        }
        $expected{$_} += $counts{$_} for keys %counts;
        my $c = join ',', map { "\"$_\":$counts{$_}" } sort keys %counts;
        my $b = qq({"v":1,"kind":"counters","producer":"crash/$p","seq":$seq,)
              . qq("ts":1763769600123,"counts":{$c}});
        push @stream, $b;
        push @stream, $b if rand() < 0.05;      # a retried batch
    }
}

# a window of 20 batches of 300 keys is a round long enough to be hit

my $args = ['--window', '20', '--lock-ttl', '1000'];
my $pid = consumer_spawn(args => $args);
my $kills = 0;
my $chunks = 0;

while (@stream) {
    my @chunk = splice @stream, 0, 25;
    system('redis-cli', '-p', $Ingest::Test::RedisPort, 'RPUSH',
           'ingest:counters', @chunk) == 0 or die "redis-cli failed";

    if (++$chunks % 3 == 0) {
        # the consumer got the lock back (its TTL ran out) and is busy
        wait_for(sub { consumer_log() =~ /consuming .* as \S+\/$pid\// }, 5);
        sleep rand 0.05;
        kill SIGKILL, $pid;
        waitpid $pid, 0;
        $kills++;
        $pid = consumer_spawn(args => $args);
    }

    sleep 0.02;
}

ok(wait_for(sub { (redis_cli('LLEN', 'ingest:counters') // 1) == 0 }, 60),
   "the list is drained after $kills kill -9");
cmp_ok($kills, '>=', 5, "the consumer was killed at least 5 times");

my $got = wait_totals(\%expected, 30);
my @wrong = grep { ($got->{$_} // 'none') ne $expected{$_} } sort keys %expected;

is(scalar @wrong, 0, "all " . scalar(keys %expected) . " totals exact")
    or diag "first wrong: $wrong[0]: got " . ($got->{$wrong[0]} // 'none')
            . ", expected $expected{$wrong[0]}";

is(consumer_kill($pid, SIGTERM) >> 8, 0, "the last consumer stops cleanly");

like(consumer_log(), qr/skipped \d+ already applied/,
     "replayed batches were skipped");

done_testing();
