# A Redis Cluster whose nodes each check the nginx role's password: two
# masters refuse it, then one is fixed.  The worker stays "denied" in the
# status until every node takes the login (one node logging in again
# does not clear another's refusal), the fixed node's list flows at
# once, and the other's batch waits, kept, until its node is fixed too.

use strict;
use warnings;

use lib 't/lib';
use Ingest::Test nginx => 0, consumer => 0;
use Ingest::Cluster;
use Ingest::Nginx;
use Test::More;
use Time::HiRes qw(sleep time);


my @ports = Ingest::Cluster::start();
my $rules = Ingest::Test::role_rules('ingest-nginx');
my ($k1, $k3) = ('ingest:t146a', 'ingest:t146c');
my ($n1, $n3) = map { Ingest::Cluster::owner($_) } $k1, $k3;
isnt($n1, $n3, "the two lists live on two masters ($n1, $n3)");

# every node knows ingest-nginx; the two lists' masters with another
# password than nginx's
for my $p (@ports) {
    my $pw = ($p == $n1 || $p == $n3) ? 't146-other' : 't146-right';
    Ingest::Cluster::cli($p, 'ACL', 'SETUSER', 'ingest-nginx', 'reset',
                         'on', ">$pw", split / /, $rules);
}

my $file = "$Ingest::Test::Dir/t146.password";
open my $out, '>', $file or die $!;
print $out "t146-right\n";
close $out;

my $n = Ingest::Nginx->start(
    http => "ingest_redis cluster redis://ingest-nginx\@127.0.0.1:$ports[0]"
            . " 127.0.0.1:$ports[1] 127.0.0.1:$ports[2] replicas=0"
            . " password_file=$file; ingest_flush_interval 10ms;",
    server => "location = /a { ingest_counters queue=$k1; }"
              . " location = /c { ingest_counters queue=$k3; }"
              . ' location = /s { ingest_status; }');

sub denied {
    my (undef, $body) = $n->get('/s');
    return ($body // '') =~ /"denied_workers":(\d+)/ ? $1 : -1;
}

is(($n->post('/a', 't146:a=1'))[0], 204, "a: accepted");
is(($n->post('/c', 't146:c=1'))[0], 204, "c: accepted");
ok(wait_for(sub { denied() == 1 }, 10), "both masters refuse: denied");

# one fixed
Ingest::Cluster::cli($n3, 'ACL', 'SETUSER', 'ingest-nginx', '>t146-right');
ok(wait_for(sub { (Ingest::Cluster::cli($n3, 'LLEN', $k3) // 0) == 1 }, 15),
   "the fixed master's list gets its batch")
    or diag $n->log;
$n->post('/a', 't146:a=1');
sleep 1;
is(denied(), 1, "the other still refuses: the worker is still denied");
is(Ingest::Cluster::cli($n1, 'LLEN', $k1), 0,
   "and its list's batch is kept, not sent");

# the other fixed
Ingest::Cluster::cli($n1, 'ACL', 'SETUSER', 'ingest-nginx', '>t146-right');
ok(wait_for(sub { denied() == 0 }, 15), "both fixed: not denied")
    or diag $n->log;
ok(wait_for(sub { (Ingest::Cluster::cli($n1, 'LLEN', $k1) // 0) >= 1 }, 15),
   "and the kept batch arrives");
unlike($n->log, qr/t146-right|t146-other/, "no password in the log");

$n->stop;

done_testing();
