# ci/setup, the first step of the installation, must be safe on a machine
# that serves traffic: it names no service command at all, installs only
# what the purpose asks for and is missing, keeps daemons from starting
# while apt-get runs (a policy-rc.d answering 101, the one there before
# put back), and a second run installs nothing.  apt-get, dpkg-query and
# the service commands are stand-ins on PATH here: nothing is installed
# and no network is needed.

use strict;
use warnings;

use Cwd qw(abs_path);
use File::Temp qw(tempdir);
use POSIX ();
use Test::More;

my $top = abs_path(__FILE__) =~ s{/t/005-setup\.t$}{}r;
my $setup = "$top/ci/setup";

open my $in, '<', $setup or die "$setup: $!";
my @lines = <$in>;
close $in;

# 1. not one service command, in code or comment

my @bad = grep {
    /systemctl|invoke-rc\.d|update-rc\.d|deb-systemd-invoke/i
    || /\bservice\b.*\b(stop|start|restart|reload|enable|disable)\b/i
} @lines;
is(scalar @bad, 0, "ci/setup names no systemctl, service ... stop|start|"
                   . "restart, invoke-rc.d") or diag @bad;

# 2. a purpose is required; each has its list, build's in every other

is(system("$setup >/dev/null 2>&1") >> 8, 2, "no purpose: usage, exit 2");
is(system("$setup everything >/dev/null 2>&1") >> 8, 2,
   "an unknown purpose: usage, exit 2");

my %list;
for my $p (qw(build test bench demo)) {
    my @pk = split /\n/, `$setup --list $p`;
    is($? >> 8, 0, "--list $p");
    $list{$p} = { map { $_ => 1 } @pk };
}
for my $p (qw(test bench demo)) {
    my @lacking = grep { !$list{$p}{$_} } sort keys %{ $list{build} };
    is("@lacking", '', "$p has every package of build");
}
ok(!$list{build}{$_}, "build does not install $_")
    for qw(redis-server postgresql prometheus nginx wrk valgrind);
ok(!$list{test}{$_}, "test does not install $_")
    for qw(wrk gnuplot-nox valgrind);
ok(!$list{demo}{$_}, "demo does not install $_")
    for qw(postgresql prometheus wrk valgrind clang-14);

# 3. this machine: everything ci/test needs is installed (ci/test ran
# ci/setup test first), so another run has nothing to install

my $out = `$setup --dry-run test 2>&1`;
like($out, qr/^ci\/setup: test: all \d+ packages present, nothing to install$/m,
     "--dry-run test: nothing to install") or diag $out;

SKIP: {
    skip "stand-ins for apt-get on PATH: root only (sudo resets PATH)", 22
        if $> != 0;

    my $dir = tempdir("ingest-setup-XXXXXX", TMPDIR => 1, CLEANUP => 1);
    my $bin = "$dir/bin";
    my $calls = "$dir/calls";
    my $policy = "$dir/policy-rc.d";
    mkdir $bin or die $!;

    sub stub {
        my ($path, $body) = @_;
        open my $f, '>', $path or die "$path: $!";
        print $f "#!/bin/sh\n$body";
        close $f;
        chmod 0755, $path;
    }

    # dpkg-query: installed, except what FAKE_MISSING names
    stub("$bin/dpkg-query", <<'_EOS_');
for p; do :; done
case " $FAKE_MISSING " in *" $p "*) exit 1 ;; esac
echo 'install ok installed'
_EOS_

    # apt-get: logs its arguments and, on install, what the policy says
    # of starting a daemon; FAKE_APT_FAIL makes install fail
    stub("$bin/apt-get", <<'_EOS_');
echo "apt-get $*" >> "$CALLS"
case "$*" in *install*)
    if [ -x "$INGEST_POLICY_RC_D" ]; then
        "$INGEST_POLICY_RC_D" redis-server start
        echo "policy redis-server start: $?" >> "$CALLS"
    else
        echo "policy: none" >> "$CALLS"
    fi
    echo "DEBIAN_FRONTEND=$DEBIAN_FRONTEND" >> "$CALLS"
    [ -z "$FAKE_APT_SLOW" ] || sleep 0.6
    [ -z "$FAKE_APT_FAIL" ] || exit 100 ;;
esac
exit 0
_EOS_

    for my $cmd (qw(systemctl service invoke-rc.d deb-systemd-invoke)) {
        stub("$bin/$cmd", "echo \"$cmd \$*\" >> \"\$CALLS\"\n");
    }

    my $run = sub {
        my ($env, $args) = @_;
        unlink $calls;
        my $o = `env PATH=$bin:\$PATH CALLS=$calls INGEST_POLICY_RC_D=$policy $env $setup $args 2>&1`;
        my $status = $? >> 8;
        my $c = '';
        if (open my $f, '<', $calls) { local $/; $c = <$f>; close $f }
        return ($status, $o, $c);
    };

    # nothing missing: no apt-get at all
    my ($st, $o, $c) = $run->('FAKE_MISSING=', 'test');
    is($st, 0, "all present: exit 0");
    like($o, qr/^ci\/setup: test: all \d+ packages present, nothing to install$/m,
         "all present: says so");
    is($c, '', "all present: no apt-get, no service command");

    # two missing, one of them not a test package: only the other
    # installed, with a policy that forbids starting daemons in place,
    # and the policy there before (a site's own) put back unchanged
    my $site = "#!/bin/sh\n# the site's own\nexit 0\n";
    stub($policy, "# the site's own\nexit 0\n");
    chmod 0750, $policy;
    my $ino = (stat $policy)[1];

    ($st, $o, $c) = $run->('FAKE_MISSING="redis-server gnuplot-nox"', 'test');
    is($st, 0, "redis-server missing: exit 0") or diag $o;
    like($c, qr/^apt-get update -q$/m, "apt-get update");
    like($c, qr/^apt-get install -y -q --no-install-recommends redis-server$/m,
         "apt-get install -y --no-install-recommends of what is missing "
         . "of test, and only that");
    like($c, qr/^policy redis-server start: 101$/m,
         "while apt-get installs, policy-rc.d forbids starting a daemon");
    like($c, qr/^DEBIAN_FRONTEND=noninteractive$/m, "noninteractive");
    unlike($c, qr/^(systemctl|service|invoke-rc\.d|deb-systemd-invoke) /m,
           "no service command");
    my $now = do { local $/; open my $f, '<', $policy; <$f> };
    is($now, $site, "the site's policy-rc.d is back");
    is((stat $policy)[1], $ino, "... the same file");
    is((stat $policy)[2] & 07777, 0750, "... with its mode");
    is(scalar(() = glob("$dir/policy-rc.d.*")), 0, "no file left beside it");

    # no policy before: none after
    unlink $policy;
    ($st, $o, $c) = $run->('FAKE_MISSING=wrk', 'bench');
    like($c, qr/^apt-get install -y -q --no-install-recommends wrk$/m,
         "bench: wrk installed");
    like($c, qr/^policy redis-server start: 101$/m, "... daemons held");
    ok(!-e $policy, "no policy-rc.d before, none after");

    # apt-get fails: exit 1, the policy put back all the same
    stub($policy, "exit 0\n");
    ($st, $o, $c) = $run->('FAKE_MISSING=nginx-dev FAKE_APT_FAIL=1', 'build');
    is($st, 1, "apt-get failing: exit 1");
    like($o, qr/apt-get failed/, "... says so");
    is(do { local $/; open my $f, '<', $policy; <$f> }, "#!/bin/sh\nexit 0\n",
       "... and the policy there before is back");

    # two runs at once (apt-get slow): each installs with the policy in
    # place, and the one there before (none) is what is left
    unlink $policy, $calls;
    my $lock = "$dir/setup.lock";
    my @pids;
    for my $p ('wrk', 'gnuplot-nox') {
        my $pid = fork // die;
        if ($pid == 0) {
            exec("env PATH=$bin:\$PATH CALLS=$calls INGEST_POLICY_RC_D=$policy"
                 . " INGEST_SETUP_LOCK=$lock FAKE_MISSING=$p FAKE_APT_SLOW=1"
                 . " $setup bench >/dev/null 2>&1");
            POSIX::_exit(127);
        }
        push @pids, $pid;
        select undef, undef, undef, 0.2;
    }
    waitpid $_, 0 for @pids;
    $c = do { local $/; open my $f, '<', $calls; <$f> } // '';
    is(scalar(() = $c =~ /^policy redis-server start: 101$/mg), 2,
       "two runs at once: both install with daemons held") or diag $c;
    unlike($c, qr/^policy: none$/m, "... neither without the policy");
    ok(!-e $policy, "... and none is left, as there was none before");
}

done_testing();
