# ingest-loadgen: --help (the usage, on stdout, exit 0); on runs longer
# than two seconds a progress line each second on stderr (requests done,
# the last second's rate, errors), none on shorter runs; and its stdout
# summary exactly as ci/e2e, ci/demo, ci/chaos and ci/bench read it.
# The server is an nginx of its own that answers 204: only the load
# generator is under test.

use strict;
use warnings;

use lib 't/lib';
use Ingest::Test nginx => 0, consumer => 0, redis => 0;
use Ingest::Nginx;
use Test::More;

my $bin = "$Ingest::Test::Top/build/ingest-loadgen";
my $dir = $Ingest::Test::Dir;

# --help

my $help = `$bin --help 2>$dir/help.err`;
is($? >> 8, 0, "--help exits 0");
like($help, qr/\Ausage: ingest-loadgen --port P /, "--help: the usage");
like($help, qr/^\s+--$_\b/m, "--help: --$_")
    for qw(port host connections requests keys prefix counters increment
           seed expect duration positive get body help version);
like($help, qr/progress/, "--help: says when it reports progress");
is(-s "$dir/help.err", 0, "--help: nothing on stderr");

my $err = `$bin 2>&1 >/dev/null`;
is($? >> 8, 1, "no --port: exit 1");
like($err, qr/\Ausage: ingest-loadgen --port P /, "... the usage on stderr");

$err = `$bin --port 1 --bogus 2>&1 >/dev/null`;
is($? >> 8, 1, "an unknown option: exit 1");

# runs against a 204 server; /slow: 1000 requests a second at most
# (limit_req delays them; try_files, as "return" would answer before)

my $n = Ingest::Nginx->start(
    http => "limit_req_zone \$server_port zone=slow:1m rate=1000r/s;",
    server => "location = /counters { return 204; }
               location = /increment { return 204; }
               location = /slow { limit_req zone=slow burst=100000;
                                  try_files /none \@ok; }
               location \@ok { return 204; }",
    workers => 1);
my $port = $n->port;

# (exit status, stdout, stderr)
sub load {
    my (@args) = @_;
    my $out = `$bin --port $port @args 2>$dir/load.err`;
    my $status = $? >> 8;
    open my $in, '<', "$dir/load.err" or die $!;
    my $e = do { local $/; <$in> };
    close $in;
    return ($status, $out, $e);
}

my $progress = qr/^ingest-loadgen: (\d+) s: (\d+) requests, (\d+)\/s, (\d+) errors$/;

sub summary_ok {
    my ($out, $tag) = @_;
    like($out, qr/\Arequests \d+ \(form \d+, json \d+, key_value \d+\) in [\d.]+ s, \d+\/s: 2xx \d+, 400 \d+, other \d+, unknown outcome \(504 or no answer\) \d+\nincrements \d+ answered 2xx, \d+\/s; latency ms p50 [\d.]+ p90 [\d.]+ p99 [\d.]+ max [\d.]+\n\z/,
         "$tag: the two summary lines on stdout, as before");
}

# a short run: no progress

my ($st, $out, $e) = load('--connections 4 --requests 2000');
is($st, 0, "2000 requests: exit 0");
summary_ok($out, "2000 requests");
is($e, '', "2000 requests (well under 2 s): nothing on stderr");

($st, $out, $e) = load('--connections 4 --duration 1');
is($e, '', "--duration 1: nothing on stderr");
summary_ok($out, "--duration 1");

($st, $out, $e) = load('--connections 4 --duration 2');
is($e, '', "--duration 2 (not longer than two seconds): nothing on stderr");

# --duration 3.5: a line at 1, 2 and 3 s

($st, $out, $e) = load('--connections 4 --duration 3.5');
is($st, 0, "--duration 3.5: exit 0");
summary_ok($out, "--duration 3.5");
my @lines = split /\n/, $e;
is(scalar(grep { !/$progress/ } @lines), 0,
   "--duration 3.5: stderr holds progress lines only") or diag $e;
my @secs = map { /$progress/ ? $1 : () } @lines;
ok(@secs >= 2 && @secs <= 3, "--duration 3.5: a line a second (1, 2, 3)")
    or diag $e;
is($secs[0], 1, "--duration 3.5: the first after one second") or diag $e;
is_deeply(\@secs, [ sort { $a <=> $b } keys %{{ map { $_ => 1 } @secs }} ],
          "--duration 3.5: one line per second, in order");
my @done = map { /$progress/ ? $2 : () } @lines;
ok($done[0] > 0 && $done[-1] >= $done[0], "requests done, growing")
    or diag $e;
my ($total) = $out =~ /^requests (\d+) /;
ok($done[-1] <= $total, "... up to the summary's total");
like($lines[0], qr/, 0 errors$/, "no errors against a 204 server");

# a run by --requests that turns out longer than two seconds: lines from
# its second second on (nothing said before it is known to be long)

($st, $out, $e) = load('--connections 1 --requests 2800 --counters /slow',
                       '--increment /slow');
is($st, 0, "2800 requests at 1000/s: exit 0");
summary_ok($out, "2800 requests at 1000/s");
@lines = split /\n/, $e;
@secs = map { /$progress/ ? $1 : () } @lines;
ok(@secs >= 1 && @secs == @lines, "a progress line once past 2 s")
    or diag $e;
is($secs[0], 2, "... the first at 2 s") or diag $e;
my ($rate) = $lines[0] =~ $progress ? ($3) : ();
ok(defined $rate && $rate >= 500 && $rate <= 1500,
   "... the last second's rate (about 1000/s)") or diag $e;

$n->stop;

done_testing();
