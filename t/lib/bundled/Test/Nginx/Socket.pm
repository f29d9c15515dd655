package Test::Nginx::Socket;

# The project's own runner for the subset of openresty's Test::Nginx::Socket
# that t/*.t uses, for machines without the real one (it is not packaged by
# Debian).  Test code, not product: kept small.  With the real Test::Nginx
# first on PERL5LIB (TEST_NGINX_LIB=/path/to/test-nginx/lib ci/test), the
# same suites run under it unchanged.
#
# Per block: a fresh server root, nginx.conf written as the real runner
# writes it (load_module lines from TEST_NGINX_LOAD_MODULES, single process,
# daemon, debug error log, one server on 127.0.0.1), nginx started with
# -e logs/error.log, each request sent over a fresh socket and its answer
# parsed with HTTP::Response, then nginx stopped with QUIT (KILL after 5 s).
#
# Sections: main_config http_config config request(eval) more_headers
# error_code(eval) response_body(eval) response_body_like(eval)
# response_headers error_log no_error_log shutdown_error_log timeout
# raw_request (an array: one request sent in those packets, as the real
# runner does) raw_request_middle_delay grep_error_log grep_error_log_out
# (checked after each request, as the real runner does) must_die;
# functions: run_tests repeat_each no_shuffle
# no_long_string add_block_preprocessor add_response_body_check
# add_cleanup_handler.

use strict;
use warnings;

use Test::More ();

# Test::Base reads the blocks from the test file ($0); importing it sets up
# its default object, as the real runner's "use Test::Base -Base" does.
BEGIN { require Test::Base; Test::Base->import(); }
use HTTP::Response ();
use IO::Socket::INET ();
use IO::Select ();
use POSIX qw(:sys_wait_h SIGQUIT SIGKILL);
use Time::HiRes qw(sleep time);
use Cwd qw(cwd);
use File::Path qw(make_path remove_tree);
use List::Util qw(shuffle);

our $VERSION = '0.33-ingest';

our @EXPORT = qw(run_tests repeat_each no_shuffle no_long_string
                 add_block_preprocessor add_response_body_check
                 add_cleanup_handler server_port server_root
                 check_accum_error_log plan);

our $ServRoot = $ENV{TEST_NGINX_SERVROOT} || cwd() . '/t/servroot';
our $NginxBinary = $ENV{TEST_NGINX_BINARY} || 'nginx';
our $ServerPort;
our $RepeatEach = 1;
our $NoShuffle = 0;
our $Timeout = 3;
our (@BlockPreprocessors, @ResponseBodyChecks, @CleanupHandlers);

sub import {
    my ($class, @args) = @_;
    my $caller = caller;

    no strict 'refs';
    for my $f (@EXPORT) {
        next if $f eq 'plan';
        *{"${caller}::$f"} = \&{"${class}::$f"};
    }

    # the real runner is built on Test::Base, which exports Test::More's
    for my $f (qw(is isnt ok like unlike is_deeply diag note pass fail
                  plan done_testing skip)) {
        *{"${caller}::$f"} = \&{"Test::More::$f"};
    }

    *{"${caller}::blocks"} = \&Test::Base::blocks;

    # a plan also keeps Test::Base's END from comparing sections itself
    if (@args && $args[0] eq 'no_plan') {
        Test::More::plan('no_plan');
    } elsif (@args && $args[0] eq 'tests') {
        Test::More::plan(tests => $args[1]);
    }
}

sub repeat_each (@) { $RepeatEach = shift if @_; return $RepeatEach }
sub no_shuffle () { $NoShuffle = 1 }
sub no_long_string () { }
sub add_block_preprocessor (&) { push @BlockPreprocessors, shift }
sub add_response_body_check ($) { push @ResponseBodyChecks, shift }
sub add_cleanup_handler ($) { push @CleanupHandlers, shift }
sub server_root () { $ServRoot }

# the log checks here always see every line the block wrote
sub check_accum_error_log () { }

sub server_port () {
    return $ServerPort if defined $ServerPort;
    if ($ENV{TEST_NGINX_PORT}) {
        return $ServerPort = $ENV{TEST_NGINX_PORT};
    }
    # a free port: bind 0, read it, give it back
    my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1',
                                  LocalPort => 0, ReuseAddr => 1)
        or die "cannot find a free port: $!";
    $ServerPort = $s->sockport;
    close $s;
    return $ServerPort;
}

sub run_tests () {
    server_port();
    $ENV{TEST_NGINX_SERVER_PORT} //= $ServerPort;

    my @blocks = Test::Base::blocks();
    @blocks = shuffle @blocks unless $NoShuffle;

    for my $block (@blocks) {
        $_->($block) for @BlockPreprocessors;

        # a block that dies is a failure, never a silent stop
        if (!eval { run_block($block); 1 }) {
            Test::More::fail("$0 " . $block->name . " - died: $@");
            stop_nginx();
        }
    }

    $_->() for @CleanupHandlers;

    # no plan: Test::Base's END block closes the TAP stream
}

sub expand_env {
    my ($text, $name) = @_;
    return '' unless defined $text;
    $text =~ s{\$(TEST_NGINX_[_A-Z0-9]+)}{
        defined $ENV{$1} ? $ENV{$1}
                         : Test::More::BAIL_OUT("$name - \$$1 is not set")
    }ge;
    return $text;
}

sub write_config {
    my ($block) = @_;
    my $name = $block->name;

    remove_tree($ServRoot);
    make_path("$ServRoot/conf", "$ServRoot/logs", "$ServRoot/html");

    open my $html, '>', "$ServRoot/html/index.html" or die $!;
    print $html "<html><body>It works!</body></html>";
    close $html;

    my $modules = '';
    for my $m (split ' ', $ENV{TEST_NGINX_LOAD_MODULES} // '') {
        $modules .= "load_module $m;\n";
    }

    my $main = expand_env(sec($block, 'main_config'), $name);
    my $http = expand_env(sec($block, 'http_config'), $name);
    my $config = expand_env(sec($block, 'config'), $name);

    my $root_location = $config =~ /location\s+\/\s*\{/ ? '' :
        "        location / { root $ServRoot/html; index index.html; }\n";

    my $temp = '';
    for my $t (qw(client_body proxy fastcgi uwsgi scgi)) {
        next if $http =~ /\b${t}_temp_path\b/;
        $temp .= " ${t}_temp_path $ServRoot/${t}_temp;";
    }

    open my $out, '>', "$ServRoot/conf/nginx.conf" or die $!;
    print $out <<"_EOC_";
$modules
worker_processes  1;
daemon on;
master_process off;
error_log $ServRoot/logs/error.log debug;
pid       $ServRoot/logs/nginx.pid;

$main

http {
    access_log $ServRoot/logs/access.log;$temp

    default_type text/plain;
    keepalive_timeout  68000ms;

$http
    server {
        listen          127.0.0.1:$ServerPort;
        server_name     'localhost';
        client_max_body_size 30M;

$config

$root_location    }
}

events {
    accept_mutex off;
    worker_connections  64;
}
_EOC_
    close $out;
}

sub read_pid {
    open my $in, '<', "$ServRoot/logs/nginx.pid" or return undef;
    my $pid = <$in>;
    close $in;
    return undef unless defined $pid && $pid =~ /^(\d+)/;
    return $1;
}

sub log_size { return -s "$ServRoot/logs/error.log" // 0 }

sub log_lines_since {
    my ($pos) = @_;
    open my $in, '<', "$ServRoot/logs/error.log" or return [];
    seek $in, $pos, 0;
    my @lines = <$in>;
    close $in;
    return \@lines;
}

sub start_nginx {
    my $cmd = "$NginxBinary -e $ServRoot/logs/error.log -p $ServRoot/ "
              . "-c $ServRoot/conf/nginx.conf > /dev/null";
    system($cmd);
    return $?;
}

# gone, or a zombie waiting for an init that reaps slowly
sub is_gone {
    my ($pid) = @_;
    return 1 unless kill 0, $pid;
    open my $in, '<', "/proc/$pid/stat" or return 1;
    my $stat = <$in> // '';
    close $in;
    return $stat =~ /^\d+ \(.*\) Z/ ? 1 : 0;
}

sub stop_nginx {
    my $pid = read_pid();
    return unless $pid;
    kill SIGQUIT, $pid;
    for (1 .. 500) {
        return if is_gone($pid);
        sleep 0.01;
    }
    kill SIGKILL, $pid;
    sleep 0.01 until is_gone($pid);
}

sub wait_for_port {
    for (1 .. 300) {
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                      PeerPort => $ServerPort);
        if ($s) { close $s; return 1 }
        sleep 0.01;
    }
    return 0;
}

# a section's value; Test::Base returns an empty list for a missing one
sub sec {
    my ($block, $section) = @_;
    my $value = $block->$section;
    return $value;
}

sub as_list {
    my ($v, $n) = @_;
    return [ ($v) x $n ] unless ref $v eq 'ARRAY';
    return $v;
}

sub build_request {
    my ($block, $req) = @_;

    my ($first, $body) = split /\n/, $req, 2;
    $body //= '';
    my ($method, $uri, $ver) = split ' ', $first;
    $uri //= '/';
    $ver //= 'HTTP/1.1';

    my $headers = '';
    my %have;
    for my $line (split /\n/, expand_env(sec($block, 'more_headers'), '')) {
        next unless $line =~ /\S/;
        $headers .= "$line\r\n";
        $have{lc $1} = 1 if $line =~ /^\s*([^:]+):/;
    }
    $headers = "Host: localhost\r\n$headers" unless $have{host};
    $headers .= "Connection: close\r\n" unless $have{connection};
    # as the real runner: a body is sent trimmed of surrounding whitespace
    # unless the block gives its own Content-Length
    if (length $body && !$have{'content-length'}
        && !$have{'transfer-encoding'})
    {
        $body =~ s/^\s+|\s+$//gs;
    }

    if (length $body || $method =~ /^(POST|PUT|PATCH)$/) {
        $headers .= "Content-Length: " . length($body) . "\r\n"
            unless $have{'content-length'} || $have{'transfer-encoding'};
    }

    return "$method $uri $ver\r\n$headers\r\n$body";
}

sub send_request {
    my ($raw, $timeout, $delay) = @_;

    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => $ServerPort,
                                  Timeout => $timeout)
        or return (undef, "connect failed: $!");

    $s->autoflush(1);

    my @packets = ref $raw eq 'ARRAY' ? @$raw : ($raw);
    for my $i (0 .. $#packets) {
        sleep($delay) if $i && $delay;
        print $s $packets[$i];
    }

    my $sel = IO::Select->new($s);
    my $resp = '';
    my $deadline = time + $timeout;

    while (1) {
        my $left = $deadline - time;
        return ($resp, "timeout") if $left <= 0;
        last unless $sel->can_read($left);
        my $n = sysread($s, my $buf, 65536);
        last unless $n;
        $resp .= $buf;
    }

    close $s;
    return ($resp, undef);
}

# the substrings of the block's log lines that match grep_error_log, one
# per line, against grep_error_log_out (an array: one per request)
sub check_grep {
    my ($block, $tag, $i) = @_;
    my $pat = sec($block, 'grep_error_log');
    return unless defined $pat;

    $pat = $pat->[$i] if ref $pat eq 'ARRAY';
    $pat =~ s/\n\z// unless ref $pat;

    my $expected = sec($block, 'grep_error_log_out');
    $expected = $expected->[$i] if ref $expected eq 'ARRAY';

    sleep 0.05;     # the log phase writes after the response
    my $got = '';
    for my $line (@{ log_lines_since(0) }) {
        if (ref $pat ? $line =~ $pat : $line =~ /\Q$pat\E/) {
            $got .= "$&\n" unless $& =~ /\n/;
        }
    }

    if (ref $expected eq 'Regexp') {
        Test::More::like($got, $expected, "$tag - grep_error_log_out");
    } else {
        Test::More::is($got, $expected, "$tag - grep_error_log_out");
    }
}

sub check_log {
    my ($name, $lines, $section, $pats, $must) = @_;
    return unless defined $pats;
    my @pats = ref $pats eq 'ARRAY' ? @$pats
             : grep { length } split /\n/, $pats;
    for my $pat (@pats) {
        my $found = grep { ref $pat ? $_ =~ $pat : index($_, $pat) >= 0 }
                    @$lines;
        if ($must) {
            Test::More::ok($found, "$name - $section: \"$pat\"");
        } else {
            Test::More::ok(!$found, "$name - $section: \"$pat\"");
        }
    }
}

sub run_block {
    my ($block) = @_;
    my $name = "$0 " . $block->name;
    my $timeout = sec($block, 'timeout') // $Timeout;

    for my $rep (0 .. $RepeatEach - 1) {
        write_config($block);

        my $status = start_nginx();

        if (defined sec($block, 'must_die')) {
            Test::More::isnt($status, 0, "$name - die as expected");
            my $lines = log_lines_since(0);
            check_log($name, $lines, 'error_log', sec($block, 'error_log'), 1);
            stop_nginx() if $status == 0;
            next;
        }

        if ($status != 0 || !wait_for_port()) {
            Test::More::fail("$name - nginx failed to start");
            my @log = grep { !/\[debug\]/ } @{ log_lines_since(0) };
            Test::More::diag(join '', @log[-(@log < 20 ? @log : 20) .. -1]);
            next;
        }

        my $reqs = sec($block, 'raw_request') // sec($block, 'request');
        my $raw = defined sec($block, 'raw_request');
        # a raw request given as an array is one request in packets
        $reqs = [ $reqs ] unless ref $reqs eq 'ARRAY' && !$raw;
        my $n = @$reqs;

        my $codes = as_list(sec($block, 'error_code'), $n);
        my $bodies = defined sec($block, 'response_body')
                   ? as_list(sec($block, 'response_body'), $n) : undef;
        my $likes = defined sec($block, 'response_body_like')
                  ? as_list(sec($block, 'response_body_like'), $n) : undef;

        my $log_pos = 0;      # as the real runner: startup lines count

        for my $i (0 .. $n - 1) {
            my $req = $raw ? $reqs->[$i] : build_request($block, $reqs->[$i]);
            my ($resp, $err) = send_request($req, $timeout,
                                   sec($block, 'raw_request_middle_delay'));
            my $tag = "$name (req $i)";

            if ($err && !length $resp) {
                Test::More::fail("$tag - $err");
                next;
            }

            my $res = HTTP::Response->parse($resp);
            my $code = defined $codes->[$i] ? $codes->[$i] : 200;
            $code =~ s/\s+$//;
            Test::More::is($res->code, $code, "$tag - status code ok");

            my $headers = sec($block, 'response_headers');
            $headers = $headers->[$i] if ref $headers eq 'ARRAY';
            if (defined $headers) {
                for my $line (split /\n/, $headers) {
                    next unless $line =~ /^\s*(!?)([^:]+?)\s*:\s*(.*?)\s*$/;
                    my ($neg, $h, $v) = ($1, $2, $3);
                    if ($neg) {
                        Test::More::ok(!defined $res->header($h),
                                       "$tag - header $h absent");
                    } else {
                        Test::More::is($res->header($h), $v,
                                       "$tag - header $h ok");
                    }
                }
            }

            my $content = $res->content;

            if ($bodies) {
                Test::More::is($content, $bodies->[$i],
                               "$tag - response_body - response is expected");
            }

            if ($likes) {
                my $re = $likes->[$i];
                $re =~ s/\s+$// unless ref $re;
                Test::More::like($content, ref $re ? $re : qr/$re/s,
                                 "$tag - response_body_like - matched");
            }

            for my $check (@ResponseBodyChecks) {
                $check->($block, $content, $i, $i + $rep * $n, 0);
            }

            check_grep($block, $tag, $i);
        }

        sleep 0.05;     # the log phase writes after the response
        my $lines = log_lines_since($log_pos);
        check_log($name, $lines, 'error_log', sec($block, 'error_log'), 1);
        check_log($name, $lines, 'no_error_log', sec($block, 'no_error_log'), 0);

        my $shutdown_pos = log_size();
        stop_nginx();

        if (defined sec($block, 'shutdown_error_log')) {
            check_log($name, log_lines_since($shutdown_pos),
                      'shutdown_error_log', sec($block, 'shutdown_error_log'), 1);
        }
    }
}

1;
