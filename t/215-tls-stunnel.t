# TLS to Redis through stunnel, as README "Redis users and TLS" sets it up: a
# redis-server started from conf/redis-tls.conf.example (a TLS port only,
# client certificates required), stunnel clients made from
# conf/stunnel-redis.conf (a client certificate; Redis's checked against
# the CA and by name), nginx with the module and the real consumer each
# on a stunnel of its own, certificates from ci/tls-certs.  Counters
# posted to nginx must land in SQLite exactly; and the TLS must be real
# and required: no plaintext port, a plaintext client gets nothing, a
# stunnel without a client certificate (or with one of another CA) is
# refused by Redis, and a stunnel refuses a Redis whose certificate it
# cannot verify.

use strict;
use warnings;

use lib 't/lib';
use Test::More;

BEGIN {
    plan skip_all => 'stunnel4 is not installed (ci/setup installs it)'
        unless grep { -x "$_/stunnel4" } split /:/, $ENV{PATH} // '';
}

use Ingest::Test nginx => 0, consumer => 0, redis => 0;
use Ingest::Nginx;
use POSIX qw(SIGTERM);
use IO::Socket::INET ();
use IO::Select ();
use Time::HiRes qw(sleep time);

my $top = $Ingest::Test::Top;
my $dir = $Ingest::Test::Dir;
my $tls = "$dir/tls";
my $other = "$dir/other";
my $host = 'redis.ingest.test';
my $admin_pw = "admin-pw";    # redis-cli's user, admin
my $tls_port = free_port();
my @pids;

# a command's output (stdout and stderr) and exit status
sub run {
    my (@cmd) = @_;
    my $pid = open(my $out, '-|') // die "fork: $!";
    if ($pid == 0) {
        open STDERR, '>&', \*STDOUT or POSIX::_exit(127);
        exec @cmd or POSIX::_exit(127);
    }
    my $text = do { local $/; <$out> } // '';
    close $out;
    return ($text =~ s/\n+\z//r, $? >> 8);
}

# a process of the test's own, its output in $log, stopped at the end
sub spawn {
    my ($log, @cmd) = @_;
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDOUT, '>>', $log or POSIX::_exit(127);
        open STDERR, '>&', \*STDOUT or POSIX::_exit(127);
        exec @cmd or POSIX::_exit(127);
    }
    push @pids, $pid;
    return $pid;
}

sub lines {
    my ($file, $re) = @_;
    open my $in, '<', $file or return 0;
    return scalar grep { /$re/ } <$in>;
}

sub slurp {
    my ($file) = @_;
    open my $in, '<', $file or return '';
    local $/;
    return scalar <$in>;
}

# the addresses a process listens on: TCP as "ip:port", Unix as "unix:path"
sub listening {
    my ($pid) = @_;
    my @socks;
    for (split /\n/, `ss -Hltnp 2>/dev/null`) {
        push @socks, (split ' ')[3] if /\bpid=$pid,/;
    }
    for (split /\n/, `ss -Hlxp 2>/dev/null`) {
        push @socks, 'unix:' . (split ' ')[4] if /\bpid=$pid,/;
    }
    return [sort @socks];
}

sub port_listens {
    my ($port) = @_;
    return `ss -Hltn 'sport = :$port' 2>/dev/null` =~ /\S/;
}

# redis-cli over TLS with the client certificate, straight to Redis
sub cli {
    local $ENV{REDISCLI_AUTH} = $admin_pw;
    my ($out) = run('redis-cli', '--user', 'admin',
                    '--tls', '--cacert', "$tls/ca.crt",
                    '--cert', "$tls/client.crt", '--key', "$tls/client.key",
                    '-p', $tls_port, @_);
    return $out;
}

my $redis_log = "$dir/redis.log";

# Redis's log line for a refused handshake, with OpenSSL's reason
sub refused {
    my ($why) = @_;
    return qr/Error accepting a client connection: error:[0-9A-F]+:SSL routines::\Q$why\E/;
}

# one more line matching $re in $log, and only one
sub one_more {
    my ($log, $re, $before, $what) = @_;
    wait_for(sub { lines($log, $re) > $before }, 5);
    sleep 0.2;
    is(lines($log, $re), $before + 1, $what);
}


# certificates: ours, and another CA's with the same names

for ([$tls, 'ours'], [$other, 'another CA']) {
    my ($out, $status) = run("$top/ci/tls-certs", $_->[0], $host);
    is($status, 0, "ci/tls-certs: $_->[1]") or diag $out;
}


# Redis: conf/redis.conf, its users from conf/redis-users.conf, with
# conf/redis-tls.conf.example included at the end, as an
# operator sets it up, with this test's paths, port and passwords, an
# administrator for redis-cli, and no Unix socket

my $users = slurp("$top/conf/redis-users.conf");
for my $role ('nginx', 'consumer') {
    $users =~ s/^(user ingest-$role on) >CHANGE-ME-$role /$1 >$Ingest::Test::Password{$role} /m
        or die "conf/redis-users.conf: no ingest-$role user with a CHANGE-ME password";
}
open my $fh, '>', "$dir/redis-users.conf" or die $!;
print $fh $users, "user admin on >$admin_pw ~* &* +\@all\n";
close $fh;
my $conf = slurp("$top/conf/redis.conf");
$conf =~ s{^include /etc/redis/redis-users\.conf$}{include $dir/redis-users.conf}m
    or die "conf/redis.conf: no include of /etc/redis/redis-users.conf";
open $fh, '>', "$dir/redis.conf" or die $!;
print $fh $conf, "include $top/conf/redis-tls.conf.example\n";
close $fh;

my $redis = spawn("$dir/redis.out", 'redis-server', "$dir/redis.conf",
                  '--bind', '127.0.0.1', '--tls-port', $tls_port,
                  '--tls-cert-file', "$tls/redis.crt",
                  '--tls-key-file', "$tls/redis.key",
                  '--tls-ca-cert-file', "$tls/ca.crt",
                  '--unixsocket', '', '--dir', $dir,
                  '--logfile', $redis_log);

ok(wait_for(sub { cli('PING') eq 'PONG' }, 10),
   'Redis answers over TLS with a client certificate')
    or do {
        diag(slurp("$dir/redis.out") . slurp($redis_log));
        BAIL_OUT('redis-server did not start');
    };

is(cli('CONFIG', 'GET', 'port'), "port\n0", 'Redis: port 0');
is(cli('CONFIG', 'GET', 'tls-auth-clients'), "tls-auth-clients\nyes",
   'Redis: tls-auth-clients yes');
is(cli('CONFIG', 'GET', 'maxmemory-policy'), "maxmemory-policy\nnoeviction",
   'Redis: the rest of conf/redis.conf kept (noeviction)');
is_deeply(listening($redis), ["127.0.0.1:$tls_port"],
          'Redis listens on its TLS port and nowhere else');


# a plaintext client on the TLS port gets no answer, and Redis says why

my $plain = refused('wrong version number');
my $before = lines($redis_log, $plain);
{
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => $tls_port, Timeout => 5)
        or die "connect: $!";
    print $s "PING\r\n";
    my ($answer, $sel) = ('', IO::Select->new($s));
    my $deadline = time + 5;
    while ($sel->can_read($deadline - time)) {
        last unless sysread($s, my $buf, 4096);
        $answer .= $buf;
    }
    close $s;
    is($answer, '', 'plaintext PING on the TLS port: not a byte back');
}
one_more($redis_log, $plain, $before,
         'plaintext PING: Redis logs a failed handshake');

$before = lines($redis_log, $plain);
my ($out, $status) = run('redis-cli', '-p', $tls_port, 'PING');
unlike($out, qr/PONG/, "redis-cli without --tls: no PONG ($out)");
isnt($status, 0, 'redis-cli without --tls: fails');
one_more($redis_log, $plain, $before,
         'redis-cli without --tls: Redis logs a failed handshake');


# stunnel clients, each conf/stunnel-redis.conf with its placeholders
# replaced; options: client (the client certificate's directory, undef
# for none), ca (CAfile's), check (checkHost)

sub stunnel {
    my ($name, %o) = @_;
    my $port = free_port();
    my $conf = slurp("$top/conf/stunnel-redis.conf");

    $conf =~ s/^accept = 127\.0\.0\.1:6380$/accept = 127.0.0.1:$port/m
        and $conf =~ s/^connect = REDIS_HOST:6379$/connect = 127.0.0.1:$tls_port/m
        and $conf =~ s/^checkHost = REDIS_HOST$/checkHost = $o{check}/m
        and $conf =~ s{^CAfile = /etc/stunnel/ingest/}{CAfile = $o{ca}/}m
        and $conf =~ s/^debug = .*$/debug = notice/m
        or die "conf/stunnel-redis.conf: a line the test rewrites changed";
    if (defined $o{client}) {
        $conf =~ s{^(cert|key) = /etc/stunnel/ingest/}{$1 = $o{client}/}mg;
    } else {
        $conf =~ s/^(cert|key) = .*\n//mg;
    }
    # as stunnel@.service runs it (root, then stunnel4) when the test can
    $conf =~ s/^set[ug]id = .*\n//mg if $> != 0;

    my @left = grep { !/^;/ && /REDIS_HOST|\/etc\/stunnel\// }
               split /\n/, $conf;
    die "placeholders left in $name: @left" if @left;

    open my $f, '>', "$dir/stunnel-$name.conf" or die $!;
    print $f $conf;
    close $f;

    my $log = "$dir/stunnel-$name.log";
    spawn($log, 'stunnel4', "$dir/stunnel-$name.conf");
    wait_for(sub { port_listens($port) }, 10)
        or die "stunnel $name did not start:\n" . slurp($log);
    return ($port, $log);
}

my %good = (client => $tls, ca => $tls, check => $host);
my ($nginx_port, $nginx_log) = stunnel('nginx', %good);
my ($consumer_port, $consumer_log) = stunnel('consumer', %good);
my ($nocert_port, $nocert_log) = stunnel('nocert', %good, client => undef);
my ($othercert_port) = stunnel('othercert', %good, client => $other);
my ($wronghost_port, $wronghost_log) =
    stunnel('wronghost', %good, check => 'other.ingest.test');
my ($otherca_port, $otherca_log) = stunnel('otherca', %good, ca => $other);

# as the administrator; a PING that must not get through sends no AUTH
# (redis-cli would open a second connection to send it again)
sub via {
    my ($port, @args) = @_;
    local $ENV{REDISCLI_AUTH} = $admin_pw;
    return run('redis-cli', '--user', 'admin', '-p', $port, @args);
}

sub via_anonymous {
    my ($port, @args) = @_;
    return run('redis-cli', '-p', $port, @args);
}

is((via($nginx_port, 'PING'))[0], 'PONG', "nginx's stunnel: PONG");
is((via($nginx_port, 'CONFIG', 'GET', 'port'))[0], "port\n0",
   "nginx's stunnel: the Redis behind it has port 0");
is((via($consumer_port, 'PING'))[0], 'PONG', "the consumer's stunnel: PONG");
for ([$nginx_log, 'nginx'], [$consumer_log, 'the consumer']) {
    like(slurp($_->[0]), qr/Certificate accepted at depth=0: CN=\Q$host\E$/m,
         "$_->[1]'s stunnel verified Redis's certificate");
}

# refused by Redis: no client certificate, or one of another CA

my $nocert = refused('peer did not return a certificate');
$before = lines($redis_log, $nocert);
($out, $status) = via_anonymous($nocert_port, 'PING');
unlike($out, qr/PONG/, "stunnel without a client certificate: no PONG ($out)");
isnt($status, 0, 'stunnel without a client certificate: redis-cli fails');
one_more($redis_log, $nocert, $before,
         'Redis refused it: "peer did not return a certificate"');
# with TLS 1.3 the server's alert reaches stunnel only if it reads before
# its own write fails ("TLS socket closed (SSL_write)"): a few more tries
for (1 .. 5) {
    last if slurp($nocert_log) =~ /alert certificate required/;
    via_anonymous($nocert_port, 'PING');
    sleep 0.2;
}
like(slurp($nocert_log), qr/alert certificate required/,
     'and stunnel was told: "certificate required"');

my $unknown = refused('certificate verify failed');
$before = lines($redis_log, $unknown);
($out, $status) = via_anonymous($othercert_port, 'PING');
unlike($out, qr/PONG/,
       "stunnel with another CA's client certificate: no PONG ($out)");
one_more($redis_log, $unknown, $before,
         "Redis refused it: \"certificate verify failed\"");

# refused by stunnel: Redis's certificate for another name, or from a CA
# it does not trust; not a byte of the command reaches Redis

my $nothing_sent = qr/Connection (?:closed\/)?reset: 0 byte\(s\) sent to TLS/;

($out, $status) = via_anonymous($wronghost_port, 'PING');
unlike($out, qr/PONG/, "checkHost another name: no PONG ($out)");
like(slurp($wronghost_log), qr/CERT: Subject checks failed/,
     'checkHost another name: stunnel refuses the certificate');
like(slurp($wronghost_log), $nothing_sent,
     'checkHost another name: nothing sent to Redis');

($out, $status) = via_anonymous($otherca_port, 'PING');
unlike($out, qr/PONG/, "CAfile of another CA: no PONG ($out)");
like(slurp($otherca_log), qr/Rejected by CERT at depth=1:/,
     'CAfile of another CA: stunnel refuses the chain');
like(slurp($otherca_log), $nothing_sent,
     'CAfile of another CA: nothing sent to Redis');


# the pipeline: nginx -> its stunnel -> Redis <- the consumer's stunnel
# <- the consumer -> SQLite

$Ingest::Test::RedisPort = $consumer_port;    # the consumer's Redis
my $consumer = consumer_spawn();

my $n = Ingest::Nginx->start(
    workers => 2,
    http => "ingest_redis redis://ingest-nginx\@127.0.0.1:$nginx_port"
            . " password_file=$Ingest::Test::PasswordFile{nginx};"
            . " ingest_flush_interval 10ms;",
    server => 'location = /c { ingest_counters; }'
              . ' location = /i { ingest_counters form=key_value; }');

my (%want, %codes);
for my $i (1 .. 300) {
    my $k = 'tls:' . $i % 7;
    my ($code);
    if ($i % 5 == 0) {
        ($code) = $n->post('/i', "key=tls:kv&value=-$i");
        $want{'tls:kv'} -= $i;
    } elsif ($i % 3 == 0) {
        ($code) = $n->post('/c', qq({"$k":$i,"tls:all":1}),
                           type => 'application/json');
        $want{$k} += $i;
        $want{'tls:all'}++;
    } else {
        ($code) = $n->post('/c', "$k=$i&tls:all=1");
        $want{$k} += $i;
        $want{'tls:all'}++;
    }
    $codes{$code // 'none'}++;
}

is_deeply(\%codes, { 204 => 300 }, '300 requests, all answered 204');
is_deeply(wait_totals(\%want, 20), \%want,
          'SQLite totals exact, through both stunnels and TLS');
is(cli('LLEN', 'ingest:counters'), '0', 'the list is drained');
unlike($n->log, qr/\[(?:alert|crit|emerg)\]|ingest.*lost/,
       'nginx lost nothing and logged no alert');

$n->stop;
is(consumer_kill($consumer, SIGTERM) >> 8, 0, 'the consumer stops with 0');

END {
    local $?;
    for my $pid (reverse @pids) {
        kill SIGTERM, $pid;
        waitpid $pid, 0;
    }
}

done_testing();
