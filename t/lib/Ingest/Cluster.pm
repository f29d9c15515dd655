# Copyright (C) ngx_ingest developers
# SPDX-License-Identifier: BSD-2-Clause

package Ingest::Cluster;

# A private Redis Cluster for a test file: six redis-server processes on
# loopback (three masters, a replica each), made a cluster with
# "redis-cli --cluster create", stopped at the end.
#
#   my @ports = Ingest::Cluster::start();     # masters first
#   Ingest::Cluster::start(password => $pw);  # requirepass + masterauth
#   Ingest::Cluster::cli($port, 'CLUSTER', 'INFO');
#   Ingest::Cluster::owner($key);             # the port of key's master
#   Ingest::Cluster::replica_of($port);       # a replica's port
#   Ingest::Cluster::kill_node($port); Ingest::Cluster::wait_ok();

use strict;
use warnings;

use File::Temp qw(tempdir);
use IO::Socket::INET ();
use POSIX qw(SIGTERM SIGKILL);
use Time::HiRes qw(sleep time);
use Ingest::Test ();

our ($Dir, @Ports, %Pid, $Password);

# redis-cli takes the password from REDISCLI_AUTH, --cluster create too
sub cli {
    my ($port, @args) = @_;
    my $args = join ' ', map { quotemeta } @args;
    local $ENV{REDISCLI_AUTH} = $Password if defined $Password;
    my $out = `redis-cli -p $port $args 2>/dev/null`;
    return undef if $? != 0;
    chomp $out;
    return $out;
}

# a node also listens on its port + 10000 (the cluster bus), which must
# stay below 65536: a free pair
sub cluster_port {
    for (1 .. 1000) {
        my $p = 20000 + int(rand(35000));
        my @s = map { IO::Socket::INET->new(Listen => 1, LocalAddr => '0.0.0.0',
                                            LocalPort => $_) }
                ($p, $p + 10000);
        return $p if $s[0] && $s[1];
    }
    die "no free port pair for a cluster node";
}

sub node_start {
    my ($port) = @_;
    my $dir = "$Dir/$port";
    mkdir $dir;
    # a replica logs in to its master with the password all nodes share
    my @auth = defined $Password
               ? ('--requirepass', $Password, '--masterauth', $Password) : ();
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        chdir $dir;
        exec 'redis-server', '--port', $port, '--bind', '127.0.0.1',
             '--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf',
             '--cluster-node-timeout', '1000', '--appendonly', 'yes',
             '--appendfsync', 'always', '--save', '', '--dir', $dir,
             '--logfile', "$dir/redis.log", @auth
            or POSIX::_exit(127);
    }
    $Pid{$port} = $pid;
    for (1 .. 500) {
        return if (cli($port, 'PING') // '') eq 'PONG';
        sleep 0.01;
    }
    die "redis-server did not start on $port";
}

sub start {
    my (%opt) = @_;
    $Password = $opt{password};
    $Dir = tempdir("ingest-cluster-XXXXXX", TMPDIR => 1, CLEANUP => 1);
    @Ports = map { cluster_port() } 1 .. 6;
    node_start($_) for @Ports;

    my $nodes = join ' ', map { "127.0.0.1:$_" } @Ports;
    local $ENV{REDISCLI_AUTH} = $Password if defined $Password;
    my $out = `redis-cli --cluster create $nodes --cluster-replicas 1 --cluster-yes 2>&1`;
    die "cluster create failed:\n$out" unless $out =~ /All 16384 slots covered/;
    wait_ok() or die "the cluster did not become ok";
    return @Ports;
}

# every live node says cluster_state:ok and knows 3 masters with a
# replica each (a replica may take a moment to be seen)
sub wait_ok {
    my ($timeout) = @_;
    my $deadline = time + ($timeout // 20);
    while (time < $deadline) {
        my $ok = 1;
        for my $port (grep { $Pid{$_} } @Ports) {
            my $info = cli($port, 'CLUSTER', 'INFO') // '';
            $ok = 0 unless $info =~ /cluster_state:ok/;
        }
        return 1 if $ok;
        sleep 0.1;
    }
    return 0;
}

# CLUSTER NODES of a live node: { port => { role, master_port, slots } }
sub nodes {
    my ($via) = grep { $Pid{$_} } @Ports;
    my $out = cli($via, 'CLUSTER', 'NODES') // return {};
    my (%by_id, %nodes);
    for my $line (split /\n/, $out) {
        my ($id, $addr, $flags, $master) = split / /, $line;
        my ($port) = $addr =~ /:(\d+)/;
        $by_id{$id} = $port;
        $nodes{$port} = { id => $id, flags => $flags, master => $master };
    }
    for my $n (values %nodes) {
        $n->{master_port} = $by_id{ $n->{master} } if $n->{master} ne '-';
    }
    return \%nodes;
}

sub owner {
    my ($key) = @_;
    my ($via) = grep { $Pid{$_} } @Ports;
    my $slot = cli($via, 'CLUSTER', 'KEYSLOT', $key);
    my $out = cli($via, 'CLUSTER', 'SLOTS') // return undef;
    # redis-cli prints the nested reply flat: start, end, ip, port, id, ...
    my @l = split /\n/, $out;
    for (my $i = 0; $i < @l; $i++) {
        next unless $l[$i] =~ /^\d+$/ && $i + 3 < @l
            && $l[$i + 1] =~ /^\d+$/ && $l[$i + 2] =~ /^127\./;
        return $l[$i + 3] if $slot >= $l[$i] && $slot <= $l[$i + 1];
    }
    return undef;
}

sub replica_of {
    my ($port) = @_;
    my $nodes = nodes();
    for my $p (sort keys %$nodes) {
        return $p if ($nodes->{$p}{master_port} // 0) == $port
                     && $nodes->{$p}{flags} !~ /fail/;
    }
    return undef;
}

sub kill_node {
    my ($port, $sig) = @_;
    my $pid = delete $Pid{$port} or return;
    Ingest::Test::stop_pid($pid, $sig // SIGKILL);
}

END {
    local $?;    # the test's exit status, not the nodes'
    # SIGKILL: nothing in a test cluster is kept, and a node still
    # writing its first AOF would ignore SIGTERM
    for my $port (keys %Pid) {
        Ingest::Test::stop_pid($Pid{$port}, SIGKILL);
    }
}

1;
