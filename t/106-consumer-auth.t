# ingest-consumer logging in to Redis.  a) requirepass, the password from
# --password-file; b) an ACL user with exactly the consumer's role of
# conf/redis-users.conf, under a real workload (batches, a refused
# batch to :dead, --requeue-dead, the heartbeat, the lock), so that a
# command missing from the role fails; c) a wrong password, logged once
# and not per retry, recovered from once Redis has it, and a NOPERM that
# names the user; d) redis://.../3: list, lock and heartbeat in db 3;
# e) REDISCLI_AUTH, and which password wins; f) a password in the URL,
# kept out of ps and of the log; g) a cluster whose nodes all require a
# password (requirepass, masterauth), across a failover.  First, the
# options that are refused.

use strict;
use warnings;

use lib 't/lib';
use Ingest::Test nginx => 0, consumer => 0;
use Ingest::Cluster;
use Test::More;
use DBI ();
use POSIX qw(SIGTERM SIGKILL);
use Time::HiRes qw(sleep);

delete $ENV{REDISCLI_AUTH};

my $bin = $Ingest::Test::Consumer;
my $port = $Ingest::Test::RedisPort;
my $dir = $Ingest::Test::Dir;
my $auth;               # redis-cli's password, if Redis wants one
my @spawned;

# passwords holding what a URL must escape, and the ACL user's escaped
my $pw_default = 'de:fa@ult/p%ss';
my $pw = 'c0n:sum@er/p%ss';
my $enc = 'c0n%3Asum%40er%2Fp%25ss';
my $user = 'ingest-consumer';

END { kill SIGTERM, $_ for grep { kill 0, $_ } @spawned; }

sub cli {
    my (@args) = @_;
    local $ENV{REDISCLI_AUTH} = $auth if defined $auth;
    open my $saved, '>&', \*STDERR or die $!;
    open STDERR, '>', '/dev/null' or die $!;
    open my $out, '-|', 'redis-cli', '-p', $port, @args
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

sub secret_file {
    my ($name, $text) = @_;
    my $file = "$dir/$name";
    open my $fh, '>', $file or die $!;
    print $fh $text;
    close $fh;
    chmod 0600, $file;
    return $file;
}

sub spawn {
    my $pid = consumer_spawn(@_);
    push @spawned, $pid;
    return $pid;
}

# the consumer run to its end, with more environment: (status, output);
# one that has not ended in 15 s is killed, status -1
sub run {
    my ($env, @args) = @_;
    my $pid = open(my $out, '-|') // die "fork: $!";
    if ($pid == 0) {
        @ENV{ keys %$env } = values %$env;
        open STDERR, '>&', \*STDOUT or die $!;
        exec $bin, '--db', $Ingest::Test::Db, @args or POSIX::_exit(127);
    }
    my $text = eval {
        local $SIG{ALRM} = sub { die "timeout\n" };
        alarm 15;
        my $t = do { local $/; <$out> } // '';
        alarm 0;
        $t;
    };
    if (!defined $text) {
        kill SIGKILL, $pid;
        close $out;
        return (-1, 'still running after 15 s');
    }
    close $out;
    return ($? >> 8, $text);
}

sub holds_no_password {
    my ($text, @secrets) = @_;
    return !grep { index($text, $_) >= 0 } @secrets;
}

sub fix {
    my ($sql) = @_;
    my $dbh = DBI->connect("dbi:SQLite:dbname=$Ingest::Test::Db", '', '',
                           { RaiseError => 1, PrintError => 0,
                             AutoCommit => 1 });
    $dbh->sqlite_busy_timeout(5000);
    $dbh->do($sql);
    $dbh->disconnect;
}

my $file = secret_file('consumer.pw', "$pw\n");
my $addr = qr/redis "127\.0\.0\.1:$port"/;
my $url = qr/redis "redis:\/\/\Q$user\E\@127\.0\.0\.1:$port"/;
my $backoff = qr/; trying again with a backoff \(up to 5 s\)$/;
my ($pid, $log, $status, $out, $before, $tries);


# options: what cannot be meant is refused (exit 1), never echoing a
# password

($status, $out) = run({}, '--redis', "redis://$user:$enc\@127.0.0.1:$port",
                      '--password-file', $file);
is($status, 1, 'a password in the URL and --password-file: exit 1');
like($out, qr/a password in --redis and --password-file: give one of them/,
     'saying so');

($status, $out) = run({}, '--redis', "redis://$user\@127.0.0.1:$port");
is($status, 1, 'a user and no password: exit 1');
like($out, qr/--redis names user "ingest-consumer" but no password is given \(in the URL, --password-file or REDISCLI_AUTH\)/,
     'saying so');

($status, $out) = run({}, '--password-file', "$dir/none");
is($status, 1, 'a --password-file that is not there: exit 1');
like($out, qr/--password-file "\Q$dir\E\/none": No such file or directory/,
     'saying so');

($status, $out) = run({}, '--password-file', secret_file('empty.pw', "\n"));
is($status, 1, 'an empty --password-file: exit 1');

system('mkfifo', "$dir/fifo.pw") == 0 or die "mkfifo: $?";
($status, $out) = run({}, '--password-file', "$dir/fifo.pw");
is($status, 1, 'a FIFO as --password-file: exit 1, not a hang');
like($out, qr/--password-file "\Q$dir\E\/fifo\.pw": not a regular file/,
     'saying so');

($status, $out) = run({}, '--password-file', $dir);
is($status, 1, 'a directory as --password-file: exit 1');
like($out, qr/--password-file "\Q$dir\E": not a regular file/, 'saying so');

($status, $out) = run({}, '--redis',
                      "cluster:redis://$user:$enc\@127.0.0.1:7000,"
                      . "redis://127.0.0.1:7001/3");
is($status, 1, 'a cluster with a db: exit 1');
like($out, qr/seed 2: db 3, but a cluster has only db 0/, 'saying so');
ok(holds_no_password($out, $pw, $enc), 'without the password');

($status, $out) = run({}, '--redis',
                      "cluster:redis://$user:$enc\@127.0.0.1:7000,"
                      . "redis://$user:other\@127.0.0.1:7001");
is($status, 1, 'a cluster with two passwords: exit 1');
like($out, qr/seed 2: the seeds give different passwords/, 'saying so');
ok(holds_no_password($out, $pw, $enc, 'other'), 'without either');

($status, $out) = run({}, '--redis',
                      "cluster:redis://a:$enc\@127.0.0.1:7000,"
                      . "redis://b\@127.0.0.1:7001");
is($status, 1, 'a cluster with two users: exit 1');
like($out, qr/seed 2: the seeds name different users \("a" and "b"\)/,
     'saying so');

($status, $out) = run({}, '--redis', "redis://$user:$enc\@127.0.0.1:$port/x");
is($status, 1, 'an invalid URL with a password: exit 1');
like($out, qr/invalid --redis \(not shown, it may hold a password\): the db/,
     'not shown');
ok(holds_no_password($out, $pw, $enc), 'nor its password');

# credentials in a text that is not a redis:// URL are no host: refused,
# the text not shown

for my $text ("u:LegacySecret\@127.0.0.1:$port",
              "valkey://u:LegacySecret\@127.0.0.1:$port",
              "cluster:127.0.0.1:7000,u:LegacySecret\@127.0.0.1:7001",
              "127.0.0.1/LegacySecret:$port") {
    ($status, $out) = run({}, '--redis', $text);
    is($status, 1, "--redis $text: exit 1");
    like($out, qr/invalid --redis \(not shown, it may hold a password\): /,
         'not shown');
    ok(holds_no_password($out, 'LegacySecret'), 'nor its password');
}

($status, $out) = run({}, '--redis', "redis://127.0.0.1:$port?db=1");
is($status, 1, 'redis://HOST:PORT?db=1: exit 1');
like($out, qr/a '\?' in the host: redis:\/\/ takes the db as \/N/,
     'saying so');

# a Redis that does not know AUTH (renamed away, or a proxy) echoes the
# arguments in its error: the log shows the error, never the password

{
    my $p = free_port();
    $log = "$dir/noauth.log";
    $pid = spawn(log => $log,
                 args => ['--redis', "redis://u:AuthSecret\@127.0.0.1:$p",
                          '--queue', 'ingest:t106noauth']);
    ok(wait_for(sub { log_lines($log, qr/unreachable/) == 1 }),
       'AUTH unknown: Redis not there yet');
    my $rpid = fork // die "fork: $!";
    if ($rpid == 0) {
        open STDOUT, '>', '/dev/null' or die $!;
        exec 'redis-server', '--port', $p, '--bind', '127.0.0.1',
             '--save', '', '--appendonly', 'no', '--dir', $dir,
             '--rename-command', 'AUTH', ''
            or POSIX::_exit(127);
    }
    push @spawned, $rpid;
    ok(wait_for(sub { log_lines($log, qr/refuses the login/) == 1 }),
       'AUTH unknown: the login refused');
    my $text = consumer_log($log);
    ok(holds_no_password($text, 'AuthSecret'), 'the log holds no password')
        or diag($text);
    unlike($text, qr/with args beginning with/, 'nor the echoed arguments');
    unlike($text, qr/connection restored/,
           'not "restored" while the login is refused');
    is(consumer_kill($pid) >> 8, 0, 'AUTH unknown: stops with 0');
    kill SIGTERM, $rpid;
    waitpid $rpid, 0;
}


# --redis twice: the last is read, and every one's password is wiped from
# argv, not only the last's

$log = "$dir/twice.log";
$pid = spawn(log => $log,
             args => ['--redis', "redis://u:FirstSecret\@127.0.0.1:1",
                      '--redis', "cluster:redis://u:ClusterSecret\@h:1,"
                                 . "redis://u:ClusterSecret\@h:2",
                      '--redis', "redis://u:LastSecret\@127.0.0.1:$port",
                      '--queue', 'ingest:t106twice']);
ok(wait_for(sub { consumer_log($log) =~ /redis:\/\/u\@127\.0\.0\.1:$port/ }),
   '--redis twice: the last is read');
my $args = `ps -ww -o args= -p $pid`;
ok($args =~ /--redis/ && holds_no_password($args, 'FirstSecret',
                                            'ClusterSecret', 'LastSecret'),
   '--redis twice: no password in ps') or diag($args);
is(consumer_kill($pid) >> 8, 0, '--redis twice: stops with 0');

# a) requirepass; the password from --password-file: its first line, as
# nginx reads it, without its CRLF, the next line not read

cli('CONFIG', 'SET', 'requirepass', $pw_default);
$auth = $pw_default;
my $file_default = secret_file('default.pw',
                               "$pw_default\r\nnot the password\n");

cli('RPUSH', 'ingest:t106a', batch('t106/a', 1, { 't106:a' => 2 }),
    batch('t106/a', 1, { 't106:a' => 2 }),
    batch('t106/a', 2, { 't106:a' => 3, 't106:a2' => -1 }));

$log = "$dir/a.log";
$pid = spawn(log => $log, args => ['--redis', "127.0.0.1:$port",
                                   '--queue', 'ingest:t106a',
                                   '--password-file', $file_default]);
is_deeply(wait_totals({ 't106:a' => 5, 't106:a2' => -1 }),
          { 't106:a' => 5, 't106:a2' => -1 },
          'a) requirepass, --password-file: totals exact');
ok(wait_for(sub { cli('LLEN', 'ingest:t106a') eq '0' }), 'a) drained');
is(log_lines($log, qr/\[error\]|\[warn\]/), 0, 'a) nothing refused');
is(consumer_kill($pid) >> 8, 0, 'a) stops with 0');


# c) a wrong password for the default user: logged once, not per retry;
# the list drains once Redis has the consumer's password

my $pw_new = "new-$pw_default";
cli('RPUSH', 'ingest:t106c', batch('t106/c', 1, { 't106:c' => 7 }));

$log = "$dir/c.log";
$before = errorstat('WRONGPASS');
$pid = spawn(log => $log,
             args => ['--redis', "127.0.0.1:$port",
                      '--queue', 'ingest:t106c', '--password-file',
                      secret_file('new.pw', "$pw_new\n")]);
sleep 2;

$tries = errorstat('WRONGPASS') - $before;
cmp_ok($tries, '>=', 3, "c) the consumer tried again ($tries times)");
cmp_ok($tries, '<=', 8, 'c) with a backoff, not in a loop');
is(log_lines($log, qr/./), 1, 'c) one log line in 2 s');
like(consumer_log($log),
     qr/\[error\] ingest-consumer: ${addr} refuses the login of the default user: WRONGPASS invalid username-password pair or user is disabled\.$backoff/m,
     'c) naming the default user');

cli('CONFIG', 'SET', 'requirepass', $pw_new);
$auth = $pw_new;
is_deeply(wait_totals({ 't106:c' => 7 }, 10), { 't106:c' => 7 },
          'c) the password fixed in Redis, the list drains');
ok(wait_for(sub { log_lines($log, qr/\[notice\] ingest-consumer: ${addr} accepts the login of the default user again$/) == 1 }),
   'c) the end of the refusals is logged');
is(log_lines($log, qr/refuses/), 1, 'c) the refusal was logged once');
ok(holds_no_password(consumer_log($log), $pw_new, $pw_default),
   'c) no password in the log');
is(consumer_kill($pid) >> 8, 0, 'c) stops with 0');


# b) the ACL user of conf/redis-users.conf, its line as it is there
# but for the password; a default user for redis-cli

open my $in, '<', "$Ingest::Test::Top/conf/redis-users.conf" or die $!;
my ($role) = grep { /^user ingest-consumer / } <$in>;
close $in;
ok(defined $role && $role =~ s/ >CHANGE-ME-consumer / >$pw /,
   'b) the role is in conf/redis-users.conf');
my $acl = secret_file('users.acl', "user default on nopass ~* &* +\@all\n"
                                   . ($role // ''));

redis_stop();
redis_start(args => ['--aclfile', $acl]);
undef $auth;
like(cli('ACL', 'GETUSER', $user), qr/^flags\n/, 'b) Redis has the user');

my @as = ('--redis', "redis://$user\@127.0.0.1:$port", '--password-file',
          $file);
my $list = 'ingest:t106b';
my $max = '9223372036854775807';

cli('RPUSH', $list, batch('t106/b', 1, { 't106:b' => 1 }),
    batch('t106/b', 1, { 't106:b' => 1 }),
    batch('t106/b', 2, { 't106:b' => 2 }));

$log = "$dir/b.log";
$pid = spawn(log => $log, args => [@as, '--queue', $list]);
is_deeply(wait_totals({ 't106:b' => 3 }), { 't106:b' => 3 },
          'b) batches applied once, the duplicate skipped');

# a batch it cannot read and one that would overflow go to :dead, the
# others are applied

cli('RPUSH', $list, batch('t106/b', 3, { 't106:max' => $max }), 'not json',
    batch('t106/b', 4, { 't106:max' => 1, 't106:e' => 5 }),
    batch('t106/b', 5, { 't106:f' => 1 }));
is_deeply(wait_totals({ 't106:max' => $max, 't106:f' => 1,
                        't106:e' => undef }),
          { 't106:max' => $max, 't106:f' => 1, 't106:e' => undef },
          'b) the batches around the refused ones are applied');
ok(wait_for(sub { cli('LLEN', "$list:dead") eq '2' }),
   "b) the two refused batches are in $list:dead");
is(log_lines($log, qr/\[alert\]/), 2, 'b) each refusal logged at alert');

# fixed, requeued: the overflowing one is applied, the other refused again

fix("UPDATE totals SET value = 0 WHERE key = 't106:max'");
($status, $out) = run({}, @as, '--queue', $list, '--requeue-dead');
is($status, 0, 'b) --requeue-dead as the user exits 0');
like($out, qr/requeued 2 batches from "ingest:t106b:dead" to the tail of "ingest:t106b"/,
     'b) and moved both');
is_deeply(wait_totals({ 't106:max' => 1, 't106:e' => 5 }),
          { 't106:max' => 1, 't106:e' => 5 }, 'b) the requeued one applied');
ok(wait_for(sub { log_lines($log, qr/\[alert\]/) == 3
                  && cli('LLEN', "$list:dead") eq '1' }),
   'b) the unreadable one is refused again');

ok(wait_for(sub { cli('GET', "$list:heartbeat")
                  =~ /^\{"ts":\d+,"batches":5,/ }, 3),
   'b) the heartbeat is set');
like(cli('GET', "$list:consumer"), qr{^[^/]+/$pid/\d+$}, 'b) the lock is held');
sleep 1.5;
cmp_ok(cli('PTTL', "$list:consumer"), '>', 1000,
       'b) and renewed (a 2 s TTL, 1.5 s later)');

is(log_lines($log, qr/\[error\]|\[warn\]/), 0, 'b) Redis refused nothing');
is(errorstat('NOPERM'), 0, 'b) no NOPERM');
is(cli('ACL', 'LOG'), '', 'b) the ACL log is empty');
is(consumer_kill($pid) >> 8, 0, 'b) stops with 0');
is(cli('EXISTS', "$list:consumer"), '0', 'b) giving its lock back');
like(consumer_log($log), qr/stopped: 5 batches applied, 1 skipped as already applied, .* 3 refused/,
     'b) having done it all');


# c) the user's password changed in Redis: logged once, naming the user;
# then a command the role lacks (NOPERM), logged once too

$list = 'ingest:t106c2';
cli('ACL', 'SETUSER', $user, 'resetpass', '>another');
cli('RPUSH', $list, batch('t106/c2', 1, { 't106:c2' => 1 }));

$log = "$dir/c2.log";
$before = errorstat('WRONGPASS');
$pid = spawn(log => $log, args => [@as, '--queue', $list]);
sleep 2;

$tries = errorstat('WRONGPASS') - $before;
cmp_ok($tries, '>=', 3, "c) the user: tried again ($tries times)");
cmp_ok($tries, '<=', 8, 'c) the user: with a backoff');
is(log_lines($log, qr/./), 1, 'c) the user: one log line in 2 s');
like(consumer_log($log),
     qr/\[error\] ingest-consumer: ${url} refuses the login of user "ingest-consumer": WRONGPASS invalid username-password pair or user is disabled\.$backoff/m,
     'c) naming the user');

cli('ACL', 'SETUSER', $user, 'resetpass', ">$pw");
is_deeply(wait_totals({ 't106:c2' => 1 }, 10), { 't106:c2' => 1 },
          'c) ACL SETUSER with its password: the list drains');
is(log_lines($log, qr/accepts the login of user "ingest-consumer" again$/),
   1, 'c) the end of the refusals is logged');

cli('ACL', 'SETUSER', $user, '-lrange');
cli('RPUSH', $list, batch('t106/c2', 2, { 't106:c2' => 2 }));
$before = errorstat('NOPERM');
sleep 2;
cmp_ok(errorstat('NOPERM') - $before, '>=', 3, 'c) NOPERM, tried again');
is(log_lines($log, qr/NOPERM/), 1, 'c) NOPERM logged once');
like(consumer_log($log),
     qr/\[error\] ingest-consumer: ${url} refuses the read of "ingest:t106c2" to user "ingest-consumer": NOPERM this user has no permissions to run the 'lrange' command$backoff/m,
     'c) naming the user');

cli('ACL', 'SETUSER', $user, '+lrange');
is_deeply(wait_totals({ 't106:c2' => 3 }, 10), { 't106:c2' => 3 },
          'c) LRANGE given back, the list drains');
is(log_lines($log, qr/refuses/), 2, 'c) two refusals logged in all');
ok(holds_no_password(consumer_log($log), $pw, $enc, 'another'),
   'c) no password in the log');
is(consumer_kill($pid) >> 8, 0, 'c) stops with 0');


# d) redis://.../3: the list, its lock, heartbeat and dead-letter list in
# db 3; the list of the same name in db 0 untouched

$list = 'ingest:t106d';
cli('-n', '0', 'RPUSH', $list, batch('t106/d0', 1, { 't106:d0' => 1 }));
cli('-n', '3', 'RPUSH', $list, batch('t106/d3', 1, { 't106:d3' => 3 }),
    'not json');

my @as3 = ('--redis', "redis://$user\@127.0.0.1:$port/3", '--password-file',
           $file, '--queue', $list);
$log = "$dir/d.log";
$pid = spawn(log => $log, args => \@as3);
is_deeply(wait_totals({ 't106:d3' => 3 }), { 't106:d3' => 3 },
          'd) the list in db 3 is drained');
ok(wait_for(sub { cli('-n', '3', 'LLEN', "$list:dead") eq '1' }),
   'd) the refused batch is in db 3\'s dead-letter list');
ok(wait_for(sub { cli('-n', '3', 'EXISTS', "$list:heartbeat") eq '1' }, 3),
   'd) the heartbeat is in db 3');
is(cli('-n', '3', 'EXISTS', "$list:consumer"), '1', 'd) so is the lock');
is(cli('-n', '0', 'EXISTS', "$list:consumer", "$list:heartbeat",
       "$list:dead"), '0', 'd) none of them in db 0');
is(cli('-n', '0', 'LLEN', $list), '1', 'd) db 0\'s list is untouched');
is(totals()->{'t106:d0'}, undef, 'd) and nothing of it applied');

($status, $out) = run({}, @as3, '--requeue-dead');
is($status, 0, 'd) --requeue-dead in db 3 exits 0');
like($out, qr/requeued 1 batches/, 'd) having moved the batch');
ok(wait_for(sub { log_lines($log, qr/\[alert\]/) == 2 }),
   'd) back in db 3\'s list, it is refused again');
is(log_lines($log, qr/\[error\]|\[warn\]/), 0, 'd) SELECT was taken');
is(consumer_kill($pid) >> 8, 0, 'd) stops with 0');
is(cli('-n', '3', 'EXISTS', "$list:consumer"), '0',
   'd) its lock given back in db 3');
cli('-n', '0', 'DEL', $list);


# e) REDISCLI_AUTH, as redis-cli takes it; the URL's password, then
# --password-file, come before it

$list = 'ingest:t106e';
cli('RPUSH', $list, batch('t106/e', 1, { 't106:e1' => 11 }));
$log = "$dir/e.log";
{
    local $ENV{REDISCLI_AUTH} = $pw;
    $pid = spawn(log => $log, args => ['--redis',
                                       "redis://$user\@127.0.0.1:$port",
                                       '--queue', $list]);
}
is_deeply(wait_totals({ 't106:e1' => 11 }), { 't106:e1' => 11 },
          'e) REDISCLI_AUTH: the list drains');
is(log_lines($log, qr/\[error\]|\[warn\]/), 0, 'e) nothing refused');
is(consumer_kill($pid) >> 8, 0, 'e) stops with 0');

my @e = ('--queue', $list, '--requeue-dead', '--redis');
($status) = run({ REDISCLI_AUTH => 'wrong' }, @e,
                "redis://$user\@127.0.0.1:$port", '--password-file', $file);
is($status, 0, 'e) --password-file goes before REDISCLI_AUTH');
($status) = run({ REDISCLI_AUTH => 'wrong' }, @e,
                "redis://$user:$enc\@127.0.0.1:$port");
is($status, 0, 'e) the URL\'s password goes before REDISCLI_AUTH');
($status, $out) = run({ REDISCLI_AUTH => $pw }, @e,
                      "redis://$user:wrong\@127.0.0.1:$port");
is($status, 2, 'e) whatever REDISCLI_AUTH says');
like($out, qr/refuses the login of user "ingest-consumer": WRONGPASS/,
     'e) the URL\'s wrong password is refused');


# f) a password in the URL: overwritten in argv, so that ps does not show
# it; never in the log, right or wrong

$list = 'ingest:t106f';
cli('RPUSH', $list, batch('t106/f', 1, { 't106:f1' => 1 }));
$log = "$dir/f.log";
$pid = spawn(log => $log,
             args => ['--redis', "redis://$user:$enc\@127.0.0.1:$port",
                      '--queue', $list]);
is_deeply(wait_totals({ 't106:f1' => 1 }), { 't106:f1' => 1 },
          'f) the password in the URL, percent-decoded, logs in');

my $ps = `ps -ww -o args= -p $pid`;
like($ps, qr{--redis redis://ingest-consumer:x{23}\@127\.0\.0\.1:$port },
     'f) ps shows x in its place');
ok(holds_no_password($ps, $pw, $enc), 'f) not the password');
open my $cmdline, '<', "/proc/$pid/cmdline" or die $!;
ok(holds_no_password(do { local $/; <$cmdline> }, $pw, $enc),
   'f) nor does /proc/PID/cmdline');
close $cmdline;
is(consumer_kill($pid) >> 8, 0, 'f) stops with 0');

my $wrong = 'wr0ng:pa@ss/x';
my $wrong_enc = 'wr0ng%3Apa%40ss%2Fx';
$pid = spawn(log => $log,
             args => ['--redis', "redis://$user:$wrong_enc\@127.0.0.1:$port",
                      '--queue', $list]);
ok(wait_for(sub { log_lines($log, qr/refuses the login/) == 1 }),
   'f) a wrong password in the URL is refused');
$ps = `ps -ww -o args= -p $pid`;
ok(holds_no_password($ps, $wrong, $wrong_enc), 'f) ps does not show it');
is(consumer_kill($pid) >> 8, 0, 'f) stops with 0');
like(consumer_log($log), qr/${url} refuses the login/,
     'f) the log shows the address without the password');
ok(holds_no_password(consumer_log($log), $pw, $enc, $wrong, $wrong_enc),
   'f) and no password, right or wrong, anywhere in the log');


# g) a cluster whose nodes require a password (replicas log in to their
# masters with masterauth).  The credentials on one seed serve every node:
# the other seed, the list's master, and the new master after a failover.

my $cpw = 'clu:st@er/p%ss';
my $cenc = 'clu%3Ast%40er%2Fp%25ss';
my @ports = Ingest::Cluster::start(password => $cpw);
$list = 'ingest:t106g';
$log = "$dir/g.log";
$pid = spawn(log => $log,
             args => ['--redis', "cluster:redis://:$cenc\@127.0.0.1:$ports[0],"
                                 . "127.0.0.1:$ports[1]",
                      '--queue', $list]);

my $master = Ingest::Cluster::owner($list);
Ingest::Cluster::cli($master, 'RPUSH', $list,
                     batch('t106/g', 1, { 't106:g' => 1 }),
                     batch('t106/g', 2, { 't106:g' => 2 }));
is_deeply(wait_totals({ 't106:g' => 3 }), { 't106:g' => 3 },
          'g) the cluster\'s list is drained');
ok(wait_for(sub { (Ingest::Cluster::cli($master, 'GET', "{$list}:heartbeat")
                   // '') =~ /"batches":2,/ }, 3),
   'g) its heartbeat is in the list\'s slot');

my $replica = Ingest::Cluster::replica_of($master);
Ingest::Cluster::cli($replica, 'CLUSTER', 'FAILOVER');
ok(wait_for(sub { (Ingest::Cluster::owner($list) // 0) == $replica }, 20),
   "g) the replica $replica of $master took over");
Ingest::Cluster::cli($replica, 'RPUSH', $list,
                     batch('t106/g', 3, { 't106:g' => 4 }));
is_deeply(wait_totals({ 't106:g' => 7 }, 20), { 't106:g' => 7 },
          'g) after the failover, the new master is drained');
like(consumer_log($log), qr/finding the master of "ingest:t106g" again/,
     'g) found again');
is(log_lines($log, qr/refuses/), 0, 'g) no node refused the login');
ok(holds_no_password(consumer_log($log) . `ps -ww -o args= -p $pid`, $cpw,
                     $cenc), 'g) the password is neither in ps nor the log');
is(consumer_kill($pid) >> 8, 0, 'g) stops with 0');

# the consumer's role on every node (ACL SETUSER: users do not replicate),
# its credentials on the second seed only: the slot map, the companions
# {list}:consumer, :heartbeat and :dead, --requeue-dead

(my $rules = $role // '') =~ s/^user ingest-consumer //;
Ingest::Cluster::cli($_, 'ACL', 'SETUSER', $user, split ' ', $rules)
    for @ports;
is(scalar(grep { (Ingest::Cluster::cli($_, 'ACL', 'GETUSER', $user) // '')
                 =~ /^flags/ } @ports), scalar @ports,
   'g) the role is on every node');

$log = "$dir/g2.log";
$pid = spawn(log => $log,
             args => ['--redis', "cluster:127.0.0.1:$ports[1],"
                                 . "redis://$user:$enc\@127.0.0.1:$ports[2]",
                      '--queue', $list]);
$master = Ingest::Cluster::owner($list);
Ingest::Cluster::cli($master, 'RPUSH', $list,
                     batch('t106/g', 4, { 't106:g' => 8 }), 'not json');
is_deeply(wait_totals({ 't106:g' => 15 }), { 't106:g' => 15 },
          'g) the role: the cluster\'s list is drained');
ok(wait_for(sub { (Ingest::Cluster::cli($master, 'LLEN', "{$list}:dead")
                   // '') eq '1' }),
   "g) the role: the refused batch is in {$list}:dead");
ok(wait_for(sub { (Ingest::Cluster::cli($master, 'GET', "{$list}:heartbeat")
                   // '') =~ /"batches":1,/ }, 3),
   'g) the role: its heartbeat is set');
($status, $out) = run({}, '--redis',
                      "cluster:redis://$user:$enc\@127.0.0.1:$ports[0]",
                      '--queue', $list, '--requeue-dead');
is($status, 0, 'g) the role: --requeue-dead exits 0');
like($out, qr/requeued 1 batches from "\{ingest:t106g\}:dead"/,
     'g) the role: having moved the batch');
ok(wait_for(sub { log_lines($log, qr/\[alert\]/) == 2 }),
   'g) the role: requeued, it is refused again');
is(log_lines($log, qr/\[error\]|\[warn\]/), 0, 'g) the role: nothing refused');
is(consumer_kill($pid) >> 8, 0, 'g) the role: stops with 0');

# one node, the list's master, refuses the login (another password)
# while the seed takes it: logged once, naming the node, not flapping
# with the seed's acceptance every round; accepted again once it agrees

Ingest::Cluster::cli($master, 'ACL', 'SETUSER', $user, 'resetpass',
                     '>not-the-password');
my ($seed) = grep { $_ != $master } @ports;
$log = "$dir/g3.log";
$pid = spawn(log => $log,
             args => ['--redis',
                      "cluster:redis://$user:$enc\@127.0.0.1:$seed",
                      '--queue', $list]);
ok(wait_for(sub { log_lines($log, qr/refuses the login/) >= 1 }),
   'g) one node refuses the login');
sleep 7;
is(log_lines($log, qr/refuses the login/), 1,
   'g) logged once over backoff rounds') or diag(consumer_log($log));
is(log_lines($log, qr/accepts the login/), 0, 'g) not flapping');
like(consumer_log($log), qr/redis node 127\.0\.0\.1:$master of cluster "cluster:redis:\/\/\Q$user\E\@127\.0\.0\.1:$seed" refuses the login of user "\Q$user\E": WRONGPASS/,
     'g) naming the node');
Ingest::Cluster::cli($master, 'ACL', 'SETUSER', $user, 'resetpass',
                     ">$pw");
ok(wait_for(sub { log_lines($log, qr/accepts the login/) == 1 }, 10),
   'g) the node accepts it again');
like(consumer_log($log), qr/redis node 127\.0\.0\.1:$master of cluster "[^"]+" accepts the login of user "\Q$user\E" again/,
     'g) naming the node');
is(consumer_kill($pid) >> 8, 0, 'g) one node refusing: stops with 0');
is(Ingest::Cluster::cli($master, 'EXISTS', "{$list}:consumer"), '0',
   'g) the role: its lock given back');

done_testing();
