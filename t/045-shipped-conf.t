# The shipped conf/nginx.conf, run as an operator would copy it (only its
# paths, port and Redis pointed at this test's): every counters location
# answers without waiting for a flush, so that it answers fast at its
# defaults.  The flush interval is raised to 10 s here: /increment
# (ingest_ack redis) is answered once its own batch is in Redis, sent by
# the group commit, not by the timer; the others at once.  And the
# README, conf/nginx.conf and conf/redis.conf name one Redis socket.

use strict;
use warnings;

use lib 't/lib';
use Ingest::Test nginx => 0, consumer => 0;
use Ingest::Nginx;
use Test::More;

my $top = $Ingest::Test::Top;

sub slurp {
    my ($file) = @_;
    open my $in, '<', $file or die "$file: $!";
    local $/;
    return scalar <$in>;
}

# 1. conf/nginx.conf, running

my $conf = slurp("$top/conf/nginx.conf");
my $dir = File::Temp::tempdir("ingest-shipped-XXXXXX", TMPDIR => 1,
                              CLEANUP => 1);
chmod 0755, $dir;
mkdir "$dir/$_" for qw(logs spool body);
chmod 0777, "$dir/spool", "$dir/body";

my $port = Ingest::Nginx::free_port();
my $module = $ENV{TEST_NGINX_LOAD_MODULES}
             || "$top/build/ngx_http_ingest_module.so";
my $binary = $ENV{TEST_NGINX_BINARY} || '/usr/sbin/nginx';

my %rewrites = (
    'load_module'   => qr/^load_module \S+;$/m,
    'error_log'     => qr/^error_log .*;$/m,
    'pid'           => qr/^pid .*;$/m,
    'worker_processes' => qr/^worker_processes .*;$/m,
    'ingest_redis'  => qr/^(\s*)ingest_redis redis:\/\/\S+\s+password_file=\S+;$/m,
    'ingest_flush_interval' => qr/^(\s*)ingest_flush_interval \S+;/m,
    'ingest_spool'  => qr/^(\s*)ingest_spool \S+;/m,
    'ingest_totals' => qr/ingest_totals \S+;/,
    'listen'        => qr/^(\s*)listen \d+;$/m,
    'http'          => qr/^http \{$/m,
);
for my $what (sort keys %rewrites) {
    ok($conf =~ $rewrites{$what}, "conf/nginx.conf has its $what");
}

$conf =~ s/$rewrites{load_module}/load_module $module;/;
$conf =~ s/$rewrites{error_log}/error_log $dir\/logs\/error.log notice;/;
$conf =~ s/$rewrites{pid}/pid $dir\/nginx.pid;/;
$conf =~ s/$rewrites{worker_processes}/worker_processes 1;/;
$conf =~ s/$rewrites{ingest_redis}/$1ingest_redis $Ingest::Test::RedisAddr;/;
$conf =~ s/$rewrites{ingest_flush_interval}/$1ingest_flush_interval 10s;/;
$conf =~ s/$rewrites{ingest_spool}/$1ingest_spool $dir\/spool;/;
$conf =~ s/$rewrites{ingest_totals}/ingest_totals $dir\/ingest.db;/;
$conf =~ s/$rewrites{listen}/$1listen 127.0.0.1:$port;/;
$conf =~ s/$rewrites{http}/http {\n    client_body_temp_path $dir\/body;/;

open my $out, '>', "$dir/nginx.conf" or die $!;
print $out $conf;
close $out;

is(system($binary, '-p', "$dir/", '-c', "$dir/nginx.conf",
          '-e', "$dir/logs/error.log"), 0, "nginx starts with it");

my $n = bless { dir => $dir, port => $port, binary => $binary },
              'Ingest::Nginx';
ok(Ingest::Test::wait_for(sub { -s "$dir/nginx.pid" }), "its pid file");
$n->{pid} = (slurp("$dir/nginx.pid") =~ /(\d+)/)[0];
ok(Ingest::Test::wait_for(sub {
       IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port) }),
   "it listens");

Ingest::Test::redis_cli('DEL', 'ingest:counters');

my ($code, $body) = $n->post('/increment', 'key=t045%3Ainc&value=3',
                             timeout => 3);
is($code, 204, "/increment answers 204 without waiting for a flush")
    or diag $body;

($code, $body) = $n->post('/counters', 't045:a=1&t045:b=2', timeout => 3);
is($code, 204, "/counters too") or diag $body;

($code, $body) = $n->post('/events', 't045:e=1', timeout => 3);
is($code, 204, "/events too") or diag $body;

is(Ingest::Test::redis_cli('LLEN', 'ingest:counters'), 1,
   "one batch in Redis: /increment's, sent by the group commit");
like(Ingest::Test::redis_cli('LINDEX', 'ingest:counters', 0) // '',
     qr/"counts":\{"t045:inc":3\}/,
     "holding its increment alone: the others wait for the 10 s flush");

$n->stop;
ok(!kill(0, $n->{pid}), "nginx stops");
like(Ingest::Test::redis_cli('LINDEX', 'ingest:counters', 1) // '',
     qr/"t045:a":1/, "and hands the rest to Redis as it goes");

# 2. one Redis socket path everywhere

my ($socket) = slurp("$top/conf/redis.conf") =~ /^unixsocket (\S+)$/m;
is($socket, '/run/redis/redis-server.sock',
   "conf/redis.conf: Debian's socket, /run/redis/redis-server.sock");

for my $file ('README.md', map { s{^\Q$top\E/}{}r }
                           grep { -f } glob("$top/conf/* $top/conf/*/* $top/conf/*/*/*")) {
    my @paths = slurp("$top/$file") =~ m{(/(?:var/)?run/redis/[\w.-]+)}g;
    my @other = grep { $_ ne $socket } @paths;
    is("@other", '', "$file names no other Redis socket than $socket");
}

done_testing();
