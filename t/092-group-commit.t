# ingest_ack redis as a group commit: a request that waits for Redis
# never waits for the flush timer (ingest_flush_interval 60s here), and
# the requests that come while a batch is in flight leave together, in
# the next batch, the moment it is acknowledged.  Nothing here is timed:
# a 60 s interval would show as a timeout, and Redis is held by CLIENT
# PAUSE, not by a clock.

use strict;
use warnings;

use lib 't/lib';
use Ingest::Test nginx => 0, consumer => 0;
use Ingest::Nginx;
use Test::More;
use IO::Select ();
use IO::Socket::INET ();
use Time::HiRes qw(sleep time);

my $list = 't092:c';

sub cli { Ingest::Test::redis_cli(@_) }


# a request sent, its answer not read yet
sub send_post {
    my ($n, $body) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => $n->port, Timeout => 5)
        or die "connect: $!";
    print $s "POST /c HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
             . "Content-Type: application/x-www-form-urlencoded\r\n"
             . "Content-Length: " . length($body) . "\r\n\r\n$body";
    return $s;
}

# its status, or undef if none came within $secs
sub status_of {
    my ($s, $secs) = @_;
    my ($resp, $sel, $end) = ('', IO::Select->new($s), time + $secs);
    while (time < $end && $sel->can_read($end - time)) {
        last unless sysread($s, my $buf, 4096);
        $resp .= $buf;
    }
    close $s;
    return $resp =~ m{^HTTP/1\.\d (\d+)} ? $1 : undef;
}

# a request still waiting: nothing to read on its socket yet
sub waiting {
    my ($s) = @_;
    return !IO::Select->new($s)->can_read(0);
}

sub batches { [ split /\n/, cli('LRANGE', $list, 0, -1) // '' ] }

my $n = Ingest::Nginx->start(
    http => "ingest_redis $Ingest::Test::RedisAddr;"
            . " ingest_flush_interval 60s;",
    server => "location = /c { ingest_counters queue=$list;"
              . " ingest_ack redis; ingest_ack_timeout 30s; }");

# the worker's connection is up before anything is timed below
wait_for(sub { `redis-cli -p $Ingest::Test::RedisPort client list`
               =~ /user=ingest-nginx/ }, 10);


# 1. one request: answered once its batch is in Redis, not in 60 s

my $s = send_post($n, 't092:a=1');
is(status_of($s, 10), 204,
   'one request, flush interval 60 s: answered 204 (not after the interval)');
my $b = batches();
is(scalar @$b, 1, 'its batch is in Redis');
like($b->[0], qr/"counts":\{"t092:a":1\}/, 'with its sum');


# 2. a batch in flight (Redis paused): the requests that come meanwhile
#    wait, and leave together as the next batch once it is acknowledged

cli('CLIENT', 'PAUSE', 30000, 'WRITE');

my $first = send_post($n, 't092:b=1');
ok(wait_for(sub { cli('CLIENT', 'LIST') =~ /cmd=rpush/ }, 5),
   'the first request\'s batch is in flight, held by the pause');

my @more = map { send_post($n, "t092:c$_=$_") } 1 .. 3;
sleep 0.3;
ok((grep { waiting($_) } $first, @more) == 4,
   'all four wait while Redis is paused');
is(scalar @{ batches() }, 1, 'nothing more in Redis yet');

cli('CLIENT', 'UNPAUSE');

is(status_of($first, 10), 204, 'the first is answered once Redis has it');
is_deeply([ map { status_of($_, 10) } @more ], [204, 204, 204],
          'the three that came while it was in flight are answered');

$b = batches();
is(scalar @$b, 3, 'three batches in all: one more per in-flight wait');
like($b->[1], qr/"counts":\{"t092:b":1\}/, 'batch 2: the first request');
like($b->[2], qr/"counts":\{(?=.*"t092:c1":1)(?=.*"t092:c2":2)(?=.*"t092:c3":3)/,
     'batch 3: the three that gathered while it was in flight');
unlike($n->log, qr/\[(error|alert|crit)\]/, 'no error logged');

$n->stop;

done_testing();
