# One version for the module and the programs, from the file VERSION:
# ingest-consumer --version and ingest-loadgen --version print it; nginx
# logs "ingest module <version>" at notice, from the master, once per
# configuration load (at start and at each reload, not once per worker),
# and not for nginx -t.  The status output's "version" and
# ingest_build_info are t/130-status.t's.

use strict;
use warnings;

use lib 't/lib';
use Ingest::Test nginx => 0, consumer => 0;
use Ingest::Nginx;
use Test::More;
use Time::HiRes qw(sleep);

my $top = $Ingest::Test::Top;

open my $in, '<', "$top/VERSION" or die "VERSION: $!";
my @lines = <$in>;
close $in;
is(scalar @lines, 1, "VERSION: one line");
chomp(my $version = $lines[0]);
like($version, qr/^\d+\.\d+\.\d+$/, "VERSION: MAJOR.MINOR.PATCH");

# the programs

for my $bin (qw(ingest-consumer asan/ingest-consumer ingest-loadgen)) {
    my $path = "$top/build/$bin";
    next unless -x $path;
    my $name = $bin =~ s{.*/}{}r;

    my $out = `$path --version 2>&1`;
    is($? >> 8, 0, "$bin --version exits 0");
    is($out, "$name $version\n", "$bin --version: \"$name $version\"");

    next if $name eq 'ingest-loadgen';      # its --help: t/205-loadgen.t
    my $help = `$path --help 2>/dev/null`;
    like($help, qr/--version/, "$bin --help lists --version");
}

# the module: once per configuration load, from the master

my $n = Ingest::Nginx->start(
    http => "ingest_redis 127.0.0.1:$Ingest::Test::RedisPort;",
    server => "location = /c { ingest_counters; }",
    workers => 2, log_level => 'notice');

my $master = $n->pid;
my $re = qr/\[notice\] (\d+)#\d+: ingest module \Q$version\E$/m;

sub seen {
    my @pids = $n->log =~ /$re/g;
    return @pids;
}

ok(Ingest::Test::wait_for(sub { $n->workers == 2 }), "two workers");
my @pids = seen();
is(scalar @pids, 1, "at start: \"ingest module $version\" logged once")
    or diag $n->log;
# at start, by the process that reads the configuration before it
# becomes the daemon (the master): not by a worker
ok(!grep({ $_ == $pids[0] } $n->workers), "... not by a worker");

$n->signal('HUP');
ok(Ingest::Test::wait_for(sub { $n->log =~ /reconfiguring/ }), "a reload");
ok(Ingest::Test::wait_for(sub { seen() >= 2 }), "... logs it again");
sleep 0.5;
@pids = seen();
is(scalar @pids, 2, "... once more, whatever the workers do")
    or diag $n->log;
is($pids[1], $master, "... by the master");

my $conf = $n->dir . "/nginx.conf";
my $test = `$n->{binary} -t -p ${\ $n->dir}/ -c $conf -e ${\ $n->dir}/logs/error.log 2>&1`;
like($test, qr/test is successful/, "nginx -t") or diag $test;
is(scalar(() = seen()), 2, "... does not log it");

$n->stop;

done_testing();
