# ingest-consumer against a Redis that answers with errors: LOADING (a
# restart with a dataset it loads slowly), NOAUTH (a requirepass it has
# no password for) and OOM (maxmemory with noeviction, the list full of
# batches).  An error reply is logged once per state and retried with a
# backoff, never in a loop; the consumer goes on once the cause goes; a
# full Redis is drained, since draining is what frees it.

use strict;
use warnings;

use lib 't/lib';
use Ingest::Test nginx => 0, consumer => 0;
use Test::More;
use POSIX qw(SIGTERM);
use Time::HiRes qw(sleep);

# the consumer logs in as Redis's default user, the one whose password
# (requirepass) the NOAUTH case sets: what is tested here is Redis's error
# replies, not the roles
my @default_user = ('--redis', "127.0.0.1:$Ingest::Test::RedisPort");

my $port = $Ingest::Test::RedisPort;
my @auth;

# redis-cli with a list of arguments (an empty one included), as @auth says
sub cli {
    my (@args) = @_;
    # quiet: "Could not connect" while the restarted Redis is not up yet
    open my $saved, '>&', \*STDERR or die $!;
    open STDERR, '>', '/dev/null' or die $!;
    open my $out, '-|', 'redis-cli', '-p', $port, @auth, @args
        or die "redis-cli: $!";
    open STDERR, '>&', $saved or die $!;
    my $text = do { local $/; <$out> } // '';
    close $out;
    return $text =~ s/\n+\z//r;
}

sub errorstat {
    my ($code) = @_;
    return cli('INFO', 'errorstats') =~ /errorstat_$code:count=(\d+)/ ? $1 : 0;
}

# the log's lines that match $re, less the one naming the version at start
sub log_lines {
    my ($log, $re) = @_;
    return scalar grep { /$re/ && !/\] ingest-consumer: version \S+$/ }
                  split /\n/, consumer_log($log);
}

my $refuses = qr/\[error\] ingest-consumer: redis "127\.0\.0\.1:$port" refuses the lock of "ingest:counters": /;
my $accepts = qr/\[notice\] ingest-consumer: redis "127\.0\.0\.1:$port" accepts the lock of "ingest:counters" again$/;


# LOADING: Redis restarts with 100000 keys to load at 100 us each; the
# consumer starts meanwhile

redis_stop();
redis_start(args => ['--enable-debug-command', 'yes']);
cli('DEBUG', 'POPULATE', '100000', 't104:filler');
cli('RPUSH', 'ingest:counters', batch('t104/load', 1, { 't104:a' => 3 }));
cli('SAVE');
redis_stop();
redis_start(args => ['--key-load-delay', '100',
                     '--loading-process-events-interval-bytes', '1024'],
            wait => 0);
ok(wait_for(sub { cli('PING') =~ /^LOADING/ }), 'Redis is loading');

my $log = "$Ingest::Test::Dir/loading.log";
my $before = errorstat('LOADING');
my $pid = consumer_spawn(log => $log, args => \@default_user);
sleep 2;

like(cli('PING'), qr/^LOADING/, 'Redis is still loading 2 s later');
my $tries = errorstat('LOADING') - $before;
cmp_ok($tries, '>=', 3, "LOADING: the consumer tried again ($tries times)");
cmp_ok($tries, '<=', 8, "LOADING: with a backoff, not in a loop");
is(log_lines($log, qr/./), 1, 'LOADING: one log line in 2 s');
like(consumer_log($log),
     qr/${refuses}LOADING Redis is loading the dataset in memory; trying again with a backoff \(up to 5 s\)$/m,
     'LOADING: saying what Redis refuses and why');

cli('CONFIG', 'SET', 'key-load-delay', '0');
is_deeply(wait_totals({ 't104:a' => 3 }, 10), { 't104:a' => 3 },
          'LOADING: once loaded, the list is drained');
ok(wait_for(sub { log_lines($log, $accepts) == 1 }),
   'LOADING: the end of the refusals is logged');
is(log_lines($log, $refuses), 1, 'LOADING: the refusal was logged once');
is(consumer_kill($pid, SIGTERM) >> 8, 0, 'LOADING: the consumer stops with 0');
cli('FLUSHALL');


# NOAUTH: a password is required; the consumer has none, until the
# password goes

cli('CONFIG', 'SET', 'requirepass', 's3cret');
@auth = ('-a', 's3cret', '--no-auth-warning');
cli('RPUSH', 'ingest:counters', batch('t104/auth', 1, { 't104:b' => 4 }));

$log = "$Ingest::Test::Dir/noauth.log";
$before = errorstat('NOAUTH');
$pid = consumer_spawn(log => $log, args => \@default_user);
sleep 2;

$tries = errorstat('NOAUTH') - $before;
cmp_ok($tries, '>=', 3, "NOAUTH: the consumer tried again ($tries times)");
cmp_ok($tries, '<=', 8, 'NOAUTH: with a backoff, not in a loop');
is(log_lines($log, qr/./), 1, 'NOAUTH: one log line in 2 s');
like(consumer_log($log),
     qr/${refuses}NOAUTH Authentication required\.; trying again with a backoff \(up to 5 s\)$/m,
     'NOAUTH: saying what Redis refuses and why');

cli('CONFIG', 'SET', 'requirepass', '');
@auth = ();
is_deeply(wait_totals({ 't104:b' => 4 }, 10), { 't104:b' => 4 },
          'NOAUTH: once the password goes, the list is drained');
ok(wait_for(sub { log_lines($log, $accepts) == 1 }),
   'NOAUTH: the end of the refusals is logged');
is(log_lines($log, $refuses), 1, 'NOAUTH: the refusal was logged once');
is(consumer_kill($pid, SIGTERM) >> 8, 0, 'NOAUTH: the consumer stops with 0');


# OOM: maxmemory with noeviction, the list filled with batches (one the
# consumer refuses among them) until Redis refuses more; the consumer must
# take its lock, drain the list, move the refused batch to the dead-letter
# list and trim, which is what frees the memory

cli('CONFIG', 'SET', 'maxmemory-policy', 'noeviction');
my ($used) = cli('INFO', 'memory') =~ /^used_memory:(\d+)/m;
cli('CONFIG', 'SET', 'maxmemory', $used + 4 * 1024 * 1024);

my $keys = 200;
my $seq = 0;
my $full = 0;

cli('RPUSH', 'ingest:counters', 'not json');

while (!$full && $seq < 100000) {
    my @batches = map {
        my $s = $seq + $_;
        batch('t104/oom', $s, { map { ("t104:oom:$_" => $s) } 1 .. $keys })
    } 1 .. 20;
    if (cli('RPUSH', 'ingest:counters', @batches) =~ /^OOM/) {
        $full = 1;
    } else {
        $seq += 20;
    }
}

ok($full, "Redis refused more batches (OOM) after $seq");
($used) = cli('INFO', 'memory') =~ /^used_memory:(\d+)/m;
cli('CONFIG', 'SET', 'maxmemory', $used - 65536);
like(cli('SET', 't104:probe', 'x'), qr/^OOM /, 'a plain SET is refused');

$log = "$Ingest::Test::Dir/oom.log";
$pid = consumer_spawn(log => $log, args => \@default_user);
ok(wait_for(sub { cli('LLEN', 'ingest:counters') eq '0' }, 60),
   'the consumer drains a Redis that is out of memory');
my $want = { map { ("t104:oom:$_" => $seq * ($seq + 1) / 2) } 1 .. $keys };
is_deeply(wait_totals($want, 10), $want,
          "OOM: all $keys totals exact over $seq batches");
ok(wait_for(sub { cli('GET', 'ingest:counters:heartbeat')
                  =~ /^\{"ts":\d+,"batches":$seq,/ }, 3),
   'OOM: its heartbeat (every second) is in Redis');
is(cli('LRANGE', 'ingest:counters:dead', 0, -1) =~ /\nnot json\z/ ? 1 : 0, 1,
   'OOM: the refused batch is in the dead-letter list');
is(log_lines($log, qr/\[alert\]/), 1, 'OOM: its move is logged');
is(log_lines($log, qr/\[error\]|\[warn\]/), 0,
   'OOM: and Redis refused nothing');
is(consumer_kill($pid, SIGTERM) >> 8, 0, 'OOM: the consumer stops with 0');
is(cli('EXISTS', 'ingest:counters:consumer'), '0',
   'OOM: and gives its lock back');

done_testing();
