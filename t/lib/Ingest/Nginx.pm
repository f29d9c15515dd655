# Copyright (C) ngx_ingest developers
# SPDX-License-Identifier: BSD-2-Clause

package Ingest::Nginx;

# An nginx of a test's own, for what Test::Nginx's blocks cannot do: send
# requests while something else happens (Redis frozen, stopped, started),
# send it signals, time its exit, and read its error log as a whole.
#
#   my $n = Ingest::Nginx->start(http => "ingest_spool %DIR%/spool; ...",
#                                server => "location = /c { ... }",
#                                main => "worker_shutdown_timeout 1s;",
#                                workers => 1);
#   my ($code, $body) = $n->post('/c', 'a=1');
#   $n->signal('QUIT');
#   my $secs = $n->wait_exit(10);       # undef: still running
#   like($n->log, qr/.../);
#
#   my $n = Ingest::Nginx->start(conf => "...");
#
# Each runs in a directory of its own, with Debian's nginx (or
# TEST_NGINX_BINARY) and the built module (TEST_NGINX_LOAD_MODULES).
# conf => a whole nginx.conf instead (%DIR% and %PORT% replaced; its pid
# file must be %DIR%/nginx.pid): no module is loaded for it, and it
# listens where it says (on %PORT%, for the requests).  prefix => nginx's
# -p (the directory by default; /usr/share/nginx/ is Debian's, where
# "load_module modules/..." of /etc/nginx/modules-enabled resolves).

use strict;
use warnings;

use File::Temp qw(tempdir);
use IO::Socket::INET ();
use IO::Select ();
use Time::HiRes qw(sleep time);

our $Top = (__FILE__ =~ s{/t/lib/Ingest/Nginx\.pm$}{}r);
$Top = '.' if $Top eq __FILE__;

sub free_port {
    my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1',
                                  LocalPort => 0, ReuseAddr => 1)
        or die "no free port: $!";
    my $port = $s->sockport;
    close $s;
    return $port;
}

sub start {
    my ($class, %o) = @_;

    my $self = bless { %o }, $class;
    $self->{dir} = tempdir("ingest-nginx-XXXXXX", TMPDIR => 1, CLEANUP => 1);
    chmod 0755, $self->{dir};
    $self->{port} = free_port();
    $self->{binary} = $ENV{TEST_NGINX_BINARY} || '/usr/sbin/nginx';

    # %DIR% in the configuration: this nginx's directory, which its
    # workers (another user) may write
    s/%DIR%/$self->{dir}/g for grep { defined } @o{qw(main http server conf)};
    s/%PORT%/$self->{port}/g for grep { defined } $o{conf};

    my $module = $ENV{TEST_NGINX_LOAD_MODULES}
                 || "$Top/build/ngx_http_ingest_module.so";
    my $workers = $o{workers} // 1;
    my $dir = $self->{dir};

    mkdir "$dir/logs";

    open my $conf, '>', "$dir/nginx.conf" or die $!;
    print $conf $o{conf} // <<"_EOC_";
load_module $module;
worker_processes $workers;
error_log $dir/logs/error.log ${\ ($o{log_level} // 'info')};
pid $dir/nginx.pid;
${\ ($o{main} // '')}
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $dir/body;
    $o{http}
    server {
        listen 127.0.0.1:$self->{port};
        $o{server}
    }
}
_EOC_
    close $conf;

    system($self->{binary}, '-p', $o{prefix} // "$dir/",
           '-c', "$dir/nginx.conf",
           '-e', "$dir/logs/error.log") == 0
        or die "nginx did not start:\n" . $self->log;

    for (1 .. 200) {
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                      PeerPort => $self->{port});
        if ($s) {
            close $s;
            last;
        }
        sleep 0.02;
    }

    open my $pid, '<', "$dir/nginx.pid" or die "no pid file";
    chomp($self->{pid} = <$pid>);
    close $pid;

    return $self;
}

sub port { $_[0]{port} }
sub dir { $_[0]{dir} }
sub pid { $_[0]{pid} }

# the worker processes' pids
sub workers {
    my ($self) = @_;
    my @pids = `pgrep -P $self->{pid}`;
    chomp @pids;
    return @pids;
}

# a request; (status, body), or (undef, why) after $timeout seconds
sub request {
    my ($self, $method, $path, $body, %o) = @_;

    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => $self->{port}, Timeout => 5)
        or return (undef, "connect: $!");

    my $type = $o{type} // 'application/x-www-form-urlencoded';
    my $headers = "$method $path HTTP/1.1\r\nHost: localhost\r\n"
                  . "Connection: close\r\n";
    $headers .= "Content-Type: $type\r\nContent-Length: " . length($body)
                . "\r\n" if defined $body;
    $headers .= "$_: $o{headers}{$_}\r\n" for keys %{ $o{headers} // {} };

    print $s $headers, "\r\n", $body // '';

    my $resp = '';
    my $sel = IO::Select->new($s);
    my $deadline = time + ($o{timeout} // 10);

    while (time < $deadline && $sel->can_read($deadline - time)) {
        my $n = sysread($s, my $buf, 65536);
        last unless $n;
        $resp .= $buf;
    }

    close $s;

    return (undef, 'no answer') unless $resp =~ m{^HTTP/1\.\d (\d+)};
    my $code = $1;
    $resp =~ s/^.*?\r\n\r\n//s;

    return ($code, $resp);
}

sub post { my ($self, $path, $body, %o) = @_; $self->request('POST', $path, $body, %o) }
sub get { my ($self, $path, %o) = @_; $self->request('GET', $path, undef, %o) }

sub signal {
    my ($self, $sig) = @_;
    kill $sig, $self->{pid};
}

# seconds until the master is gone (undef after $timeout)
sub wait_exit {
    my ($self, $timeout) = @_;
    my $start = time;
    while (time - $start < $timeout) {
        return time - $start unless kill 0, $self->{pid};
        sleep 0.02;
    }
    return undef;
}

sub log {
    my ($self) = @_;
    open my $in, '<', "$self->{dir}/logs/error.log" or return '';
    local $/;
    my $log = <$in>;
    close $in;
    return $log;
}

sub stop {
    my ($self) = @_;
    return unless $self->{pid} && kill 0, $self->{pid};
    kill 'QUIT', $self->{pid};
    $self->wait_exit(10) // kill 'KILL', $self->{pid};
}

sub DESTROY { $_[0]->stop }

1;
