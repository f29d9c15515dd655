# A backlog leaves in groups: while one RPUSH is held (Redis paused by
# CLIENT PAUSE, not by a clock), every request is cut into a batch of its
# own (ingest_flush_keys 1); once Redis answers, the oldest batches go up
# to 64 in one RPUSH, in order.  The same at a reload: the old worker
# drains its backlog in a few round trips, not one per batch, so a slow
# Redis does not run the drain out of time.  And a group that Redis
# refuses for its size (maxmemory counts the command's arguments) is
# sent again in halves, down to one batch: grouping never stalls a list
# that its batches one by one would not.

use strict;
use warnings;

use lib 't/lib';
use Ingest::Test nginx => 0, consumer => 0;
use Ingest::Nginx;
use Test::More;

my $list = 't093:c';

sub cli { Ingest::Test::redis_cli(@_) }

sub rpushes {
    my $info = cli('INFO', 'commandstats') // '';
    return $info =~ /^cmdstat_rpush:calls=(\d+)/m ? $1 : 0;
}

# the seqs of the list's batches, in the list's order
sub seqs {
    my $all = cli('LRANGE', $list, 0, -1) // '';
    return join ',', map { /"seq":(\d+)/ ? $1 : '?' } split /\n/, $all;
}

my $n = Ingest::Nginx->start(
    http => "ingest_redis $Ingest::Test::RedisAddr;"
            . " ingest_flush_interval 60s; ingest_flush_keys 1;",
    server => "location = /c { ingest_counters queue=$list; }"
              . " location = /big { ingest_counters queue=t093:big;"
              . " client_max_body_size 1m; client_body_buffer_size 1m; }"
              . " location = /s { ingest_status; }");

wait_for(sub { `redis-cli -p $Ingest::Test::RedisPort client list`
               =~ /user=ingest-nginx/ }, 10);


# 1. 100 batches behind a held RPUSH: three RPUSHes in all (1, 64, 35)

cli('CONFIG', 'RESETSTAT');
cli('CLIENT', 'PAUSE', 30000, 'WRITE');

my $ok = 0;
for my $i (1 .. 100) {
    my ($code) = $n->post('/c', "t093:k$i=$i");
    $ok++ if defined $code && $code == 204;
}
is($ok, 100, '100 requests answered 204 while Redis is paused');

cli('CLIENT', 'UNPAUSE');

ok(wait_for(sub { (cli('LLEN', $list) // 0) == 100 }, 10),
   'once Redis answers, the 100 batches are in the list');
is(seqs(), join(',', 1 .. 100), 'in order, seq 1 to 100');
is(rpushes(), 3, 'in three RPUSHes: the held one, then 64, then 35');

my ($code, $status) = $n->get('/s');
like($status, qr/"batches":\{"flushed":100,/,
     'the status counts batches, not RPUSHes');


# 2. the same backlog at a reload: the old worker drains it in a few
#    round trips, and says it drained

cli('CONFIG', 'RESETSTAT');
cli('CLIENT', 'PAUSE', 30000, 'WRITE');

$ok = 0;
for my $i (101 .. 200) {
    my ($c) = $n->post('/c', "t093:k$i=$i");
    $ok++ if defined $c && $c == 204;
}
is($ok, 100, '100 more answered 204 while Redis is paused');

my ($old) = $n->workers;
$n->signal('HUP');
ok(wait_for(sub { $n->log =~ /\[info\] $old#\d+: ingest draining pending batches before exit/ },
            10),
   'reload: the old worker drains');

cli('CLIENT', 'UNPAUSE');

ok(wait_for(sub { !kill 0, $old }, 10), 'the old worker exits');
is(seqs(), join(',', 1 .. 200), 'all 200 batches are in the list, in order');
is(rpushes(), 3, 'drained in three RPUSHes');
unlike($n->log, qr/drain timed out|ingest lost|ingest spooled/,
       'nothing timed out, lost or spooled');



# 3. Redis near maxmemory: 40 batches of 100 KB, 768 KB of headroom, a
#    consumer popping: a group of 1 MB is refused (OOM), its halves go

cli('CLIENT', 'PAUSE', 30000, 'WRITE');

$ok = 0;
for my $i (1 .. 40) {
    my $body = join '&', map { sprintf("k%02d_%03d_%s=1", $i, $_, 'x' x 190) }
                         1 .. 500;
    my ($c) = $n->post('/big', $body);
    $ok++ if defined $c && $c == 204;
}
is($ok, 40, '40 requests of 100 KB answered 204 while Redis is paused');

my ($used) = (cli('INFO', 'memory') // '') =~ /^used_memory:(\d+)/m;
cli('CONFIG', 'SET', 'maxmemory', $used + 768 * 1024);
cli('CLIENT', 'UNPAUSE');

my @got;
wait_for(sub {
    my $out = cli('LPOP', 't093:big', 100) // '';
    push @got, map { /"seq":(\d+)/ ? $1 : () } split /\n/, $out;
    return @got >= 40;
}, 20);
cli('CONFIG', 'SET', 'maxmemory', 0);

is(join(',', @got), join(',', 1 .. 40),
   'a consumer gets all 40, in order, though Redis refused a group');
like($n->log, qr/ingest redis RPUSH to "t093:big" failed: OOM /,
     'Redis did refuse one (else this proves nothing)');

done_testing();
