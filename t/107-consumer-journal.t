# ingest-consumer's log under systemd: when stderr is the journal's stream
# (JOURNAL_STREAM names stderr's device and inode, as systemd.exec(5) and
# sd_journal_stream_fd(3) describe), every line starts with the
# sd-daemon(3) priority, <1> alert, <3> error, <4> warn, <5> notice,
# <6> info, and has no timestamp (the journal keeps its own), so that
# journalctl -p err finds the errors.  Otherwise (no JOURNAL_STREAM, a
# malformed one, or one that names another file: stderr redirected by
# hand) the lines are as they always were.  Plain and ASan builds.

use strict;
use warnings;

use lib 't/lib';
use Ingest::Test nginx => 0, consumer => 0;
use Test::More;
use POSIX qw(SIGTERM WNOHANG);
use Time::HiRes qw(sleep);

my $top = $Ingest::Test::Top;
my $dir = $Ingest::Test::Dir;
my @bins = grep { -x } map { "$top/build/$_" }
           qw(ingest-consumer asan/ingest-consumer);

open my $vf, '<', "$top/VERSION" or die $!;
chomp(my $version = <$vf>);
close $vf;

my %prio = (alert => 1, error => 3, warn => 4, notice => 5, info => 6);

# the consumer with stderr (and stdout) on FILE, created first; $journal:
# a JOURNAL_STREAM value, or a code ref that makes one of FILE's
# device:inode, or undef for none.  Returns the pid.
sub spawn {
    my ($bin, $file, $journal, @args) = @_;
    open my $f, '>', $file or die "$file: $!";
    close $f;
    my ($dev, $ino) = (stat $file)[0, 1];
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDOUT, '>>', $file or die $!;
        open STDERR, '>&', \*STDOUT or die $!;
        delete $ENV{JOURNAL_STREAM};
        if (ref $journal) {
            $ENV{JOURNAL_STREAM} = $journal->($dev, $ino);
        } elsif (defined $journal) {
            $ENV{JOURNAL_STREAM} = $journal;
        }
        exec $bin, @args or POSIX::_exit(127);
    }
    return $pid;
}

sub slurp {
    my ($file) = @_;
    open my $in, '<', $file or return '';
    local $/;
    return scalar <$in>;
}

# run to its end (or SIGTERM after $secs): (exit status, output)
sub run {
    my ($bin, $file, $journal, @args) = @_;
    my $pid = spawn($bin, $file, $journal, @args);
    return (Ingest::Test::consumer_wait($pid, 20), slurp($file));
}

my $same = sub { "$_[0]:$_[1]" };

my $round = 0;

for my $bin (@bins) {
    my $tag = $bin =~ /asan/ ? 'asan' : 'plain';
    $round++;
    my $out = "$dir/stderr-$round";

    # usage errors: <3>, and the usage after them a line at a time

    my ($st, $log) = run($bin, $out, $same, '--db', 'x', '--window', '0');
    is($st >> 8, 1, "$tag: a bad option exits 1");
    is($log, "<3>ingest-consumer: --window must be a number from 1 to "
             . "100000, not \"0\"\n",
       "$tag: the journal: <3>, no timestamp");

    ($st, $log) = run($bin, $out, $same, '--db', 'x', '--bogus');
    is($st >> 8, 1, "$tag: an unknown option exits 1");
    my @lines = split /\n/, $log;
    is($lines[0], '<3>ingest-consumer: unrecognized option "--bogus"',
       "$tag: the journal: the unknown option at <3>");
    is(scalar(grep { !/^<6>/ } @lines[1 .. $#lines]), 0,
       "$tag: the usage after it, each line at <6>") or diag $log;

    ($st, $log) = run($bin, $out, $same);
    is($st >> 8, 1, "$tag: --db missing exits 1");
    like($log, qr/\A<3>ingest-consumer: --db is required\n(<6>.*\n)+\z/,
         "$tag: the journal: at <3>, the usage at <6>");

    # a database it cannot open: error

    ($st, $log) = run($bin, $out, $same, Ingest::Test::consumer_redis(),
                      '--db', '/nonexistent/dir/x.db');
    is($st >> 8, 1, "$tag: a database it cannot open exits 1");
    like($log, qr/^<3>\[error\] ingest-consumer: cannot open "\/nonexistent\/dir\/x\.db": /m,
         "$tag: the journal: <3>[error]");

    # Redis unreachable: warn

    my $port = Ingest::Test::free_port();
    my $pid = spawn($bin, $out, $same, '--redis', "127.0.0.1:$port",
                    '--db', "$dir/j-$round.db");
    ok(Ingest::Test::wait_for(sub { slurp($out) =~ /unreachable/ }),
       "$tag: Redis unreachable is logged");
    is(Ingest::Test::consumer_kill($pid, SIGTERM) >> 8, 0,
       "$tag: SIGTERM exits 0");
    like(slurp($out),
         qr/^<4>\[warn\] ingest-consumer: redis "127\.0\.0\.1:$port" unreachable: /m,
         "$tag: the journal: <4>[warn]");

    # a run: notice, info (--verbose), alert (a batch refused)

    my $q = "t107:$round";
    Ingest::Test::redis_cli('DEL', $q, "$q:dead");
    Ingest::Test::redis_cli('RPUSH', $q,
        Ingest::Test::batch("t107/$round", 1, { "t107:a" => 2 }),
        'not a batch');

    $pid = spawn($bin, $out, $same, Ingest::Test::consumer_redis(),
                 '--db', "$dir/j-$round.db", '--queue', $q, '--verbose',
                 '--poll', '10');
    ok(Ingest::Test::wait_for(sub {
           (Ingest::Test::redis_cli('LLEN', "$q:dead") // 0) == 1 }),
       "$tag: the bad batch is moved aside");
    is(Ingest::Test::consumer_kill($pid, SIGTERM) >> 8, 0,
       "$tag: SIGTERM exits 0");
    $log = slurp($out);
    @lines = split /\n/, $log;

    is($lines[0], "<5>[notice] ingest-consumer: version $version",
       "$tag: the journal: the version first, at <5>");
    like($log, qr/^<5>\[notice\] ingest-consumer: consuming "\Q$q\E" as /m,
         "$tag: <5>[notice] consuming");
    like($log, qr/^<1>\[alert\] ingest-consumer: a batch of "\Q$q\E" is refused: /m,
         "$tag: <1>[alert] a refused batch");
    like($log, qr/^<6>\[info\] ingest-consumer: applied 1 batches of "\Q$q\E"/m,
         "$tag: <6>[info] a round (--verbose)");
    like($log, qr/^<5>\[notice\] ingest-consumer: stopped: 1 batches applied, /m,
         "$tag: <5>[notice] stopped");

    my @bad = grep {
        !/^<(\d)>\[(\w+)\] ingest-consumer: / || $prio{$2} != $1
    } @lines;
    is(scalar @bad, 0, "$tag: every line <N>[level], N the level's")
        or diag $log;

    # not the journal: as before

    for my $case (['unset', undef],
                  ['another inode', sub { "$_[0]:" . ($_[1] + 1) }],
                  ['another device', sub { ($_[0] + 1) . ":$_[1]" }],
                  ['malformed', 'journal'],
                  ['trailing text', sub { "$_[0]:$_[1]x" }])
    {
        my ($what, $journal) = @$case;

        ($st, $log) = run($bin, $out, $journal, '--db', 'x', '--window', '0');
        is($log, "ingest-consumer: --window must be a number from 1 to "
                 . "100000, not \"0\"\n",
           "$tag: JOURNAL_STREAM $what: a usage error as before");

        $pid = spawn($bin, $out, $journal, '--redis', "127.0.0.1:$port",
                     '--db', "$dir/j-$round.db");
        ok(Ingest::Test::wait_for(sub { slurp($out) =~ /unreachable/ }),
           "$tag: JOURNAL_STREAM $what: runs");
        Ingest::Test::consumer_kill($pid, SIGTERM);
        $log = slurp($out);
        like($log, qr/\A\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3} \[notice\] ingest-consumer: version \Q$version\E\n/,
             "$tag: JOURNAL_STREAM $what: timestamps, no <N>");
        unlike($log, qr/^</m, "$tag: JOURNAL_STREAM $what: no line with <N>");
    }
}

done_testing();
