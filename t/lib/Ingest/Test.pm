# Copyright (C) ngx_ingest developers
# SPDX-License-Identifier: BSD-2-Clause

package Ingest::Test;

# Shared test helpers, usable under the bundled and the real Test::Nginx:
# a private redis-server and ingest-consumer per test file, SQLite reads,
# and a "--- totals" section checked after a block's last request.
#
#   use Ingest::Test;                 # starts redis (and the consumer)
#   use Ingest::Test consumer => 0;   # redis only
#   use Ingest::Test nginx => 0;      # no Test::Nginx (consumer tests)
#   use Ingest::Test redis => 0, consumer => 0;
#                                     # a Redis of the file's own (TLS)
#   use Test::Nginx::Socket 'no_plan';
#
# Ingest::Test comes first: the real runner reads TEST_NGINX_LOAD_MODULES
# when it is loaded.
#
# Exports to nginx.conf: $TEST_NGINX_REDIS (the address and login of the
# nginx role: "ingest_redis $TEST_NGINX_REDIS;"), $TEST_NGINX_REDIS_UNIX
# (the same over the unix socket), $TEST_NGINX_REDIS_PORT,
# $TEST_NGINX_REDIS_SOCKET, $TEST_NGINX_INGEST_DIR.  The module comes from
# build/ unless TEST_NGINX_LOAD_MODULES says otherwise.
#
# Redis runs with the roles of conf/redis-users.conf: nginx logs in as
# ingest-nginx and the consumer as ingest-consumer, each with exactly the
# commands the shipped configuration gives it (their keys widened to all,
# as the suites' lists have many names), so a command a role lacks fails
# a test.  The default user (no password, everything) is the tests' own,
# for redis-cli.
#
#   --- totals eval
#   { "a" => 6, "gone" => undef }    # undef: the key must not exist
#
# waits (bounded) until SQLite holds exactly these values, then asserts.
#
#   --- eventually eval
#   ["/ingest/status", qr/.../]          # GET it until the body matches
#
#   --- list eval
#   ["t:raw", qr/^\{"v":1,.*\}$/, ...]   # one pattern per element
#
# waits until the Redis list (one no consumer drains) has that many
# elements, then matches each against its pattern; or with a sub in place
# of the patterns, polls it with the elements until it returns true.

use strict;
use warnings;

use Cwd qw(abs_path);
use DBI ();
use File::Temp qw(tempdir);
use IO::Socket::INET ();
use POSIX qw(:sys_wait_h SIGTERM SIGKILL);
use Time::HiRes qw(sleep time);
use Test::More ();

our @EXPORT_OK = qw(redis_cli totals wait_totals batch consumer_start
                    consumer_redis role_rules
                    consumer_stop consumer_log consumer_spawn consumer_kill
                    consumer_wait wait_for redis_start redis_stop
                    free_port $Dir $RedisPort $Db);

our ($Dir, $RedisPort, $RedisSocket, $Db, $RedisPid, $ConsumerPid);
our ($RedisAddr, %Password, %PasswordFile);
our $Top = abs_path(__FILE__) =~ s{/t/lib/Ingest/Test\.pm$}{}r;
our $Consumer = $ENV{INGEST_CONSUMER} || "$Top/build/ingest-consumer";
our $Owner = $$;

sub import {
    my ($class, %opt) = @_;
    my $caller = caller;

    no strict 'refs';
    for my $f (grep { !/^\$/ } @EXPORT_OK) {
        *{"${caller}::$f"} = \&{"${class}::$f"};
    }

    $ENV{TEST_NGINX_LOAD_MODULES} //= "$Top/build/ngx_http_ingest_module.so";
    require Test::Nginx::Socket if $opt{nginx} // 1;

    $Dir = tempdir("ingest-test-XXXXXX", TMPDIR => 1, CLEANUP => 1);
    $Db = "$Dir/ingest.db";
    $ENV{TEST_NGINX_INGEST_DIR} = $Dir;

    roles();

    redis_start() if $opt{redis} // 1;
    consumer_start() if $opt{consumer} // 1;

    if ($opt{nginx} // 1) {
        Test::Nginx::Socket::add_response_body_check(\&check_totals);
        Test::Nginx::Socket::add_response_body_check(\&check_list);
        Test::Nginx::Socket::add_response_body_check(\&check_eventually);
        Test::Nginx::Socket::add_response_body_check(\&check_sql);
    }
}

sub free_port {
    my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1',
                                  LocalPort => 0, ReuseAddr => 1)
        or die "no free port: $!";
    my $port = $s->sockport;
    close $s;
    return $port;
}

# the roles' passwords (new for each test file: a test greps for them)
# and their files, as nginx and the consumer read them
sub roles {
    for my $role ('nginx', 'consumer') {
        $Password{$role} = sprintf("%s-%08x%08x", $role, int(rand(2**32)),
                                   int(rand(2**32)));
        $PasswordFile{$role} = "$Dir/$role.password";
        open my $out, '>', $PasswordFile{$role} or die $!;
        print $out "$Password{$role}\n";
        close $out;
        chmod 0600, $PasswordFile{$role};
    }
}

# a role's rules as conf/redis-users.conf has them; keys: all (undef: no such
# user there)
sub role_rules {
    my ($user, %opt) = @_;
    open my $in, '<', "$Top/conf/redis-users.conf" or die "conf/redis-users.conf: $!";
    while (my $line = <$in>) {
        next unless $line =~ /^user \Q$user\E on >\S+ (.*)$/;
        my $rules = $1;
        $rules =~ s/resetkeys (?:~\S+ )+/resetkeys ~* / unless $opt{exact};
        return $rules;
    }
    return undef;
}

# the ACL file: the tests' default user, and the two roles
sub acl_file {
    my $file = "$Dir/users.acl";
    open my $out, '>', $file or die $!;
    print $out "user default on nopass ~* &* +\@all\n";
    for my $role ('nginx', 'consumer') {
        my $rules = role_rules("ingest-$role") // next;
        print $out "user ingest-$role on >$Password{$role} $rules\n";
    }
    close $out;
    return $file;
}

# options: aof => 1, args => [more redis-server arguments], wait => 0
# (return at once, without waiting for a PONG: a Redis still loading)
sub redis_start {
    my (%opt) = @_;
    $RedisPort //= free_port();
    $RedisSocket = "$Dir/redis.sock";
    $ENV{TEST_NGINX_REDIS_PORT} = $RedisPort;
    $ENV{TEST_NGINX_REDIS_SOCKET} = $RedisSocket;
    $RedisAddr = "redis://ingest-nginx\@127.0.0.1:$RedisPort"
                 . " password_file=$PasswordFile{nginx}";
    $ENV{TEST_NGINX_REDIS} = $RedisAddr;
    $ENV{TEST_NGINX_REDIS_UNIX} = "unix://ingest-nginx\@$RedisSocket"
                                  . " password_file=$PasswordFile{nginx}";

    my @args = ('redis-server', '--port', $RedisPort, '--bind', '127.0.0.1',
                # args with an --aclfile of their own have only its users
                (grep { $_ eq '--aclfile' } @{ $opt{args} // [] })
                    ? () : ('--aclfile', acl_file()),
                '--unixsocket', $RedisSocket, '--dir', $Dir,
                '--save', '', '--appendonly', $opt{aof} ? 'yes' : 'no',
                '--appendfsync', 'always', '--logfile', "$Dir/redis.log",
                @{ $opt{args} // [] });

    $RedisPid = fork // die "fork: $!";
    if ($RedisPid == 0) {
        exec @args or POSIX::_exit(127);
    }

    return if defined $opt{wait} && !$opt{wait};

    for (1 .. 500) {
        return if (redis_cli('PING') // '') eq 'PONG';
        sleep 0.01;
    }
    die "redis-server did not start on port $RedisPort";
}

# a signal (SIGTERM by default), then wait at most $grace seconds (10)
# before SIGKILL: a process that will not stop must not hang the suite
# (redis-server refuses SIGTERM while it writes its first AOF, for one).
# Returns the status as $? has it.
sub stop_pid {
    my ($pid, $sig, $grace) = @_;
    kill $sig // SIGTERM, $pid;
    my $deadline = time + ($grace // 10);
    while (time < $deadline) {
        return $? if waitpid($pid, WNOHANG) == $pid;
        sleep 0.02;
    }
    warn "pid $pid still running ${\($grace // 10)}s after a signal: SIGKILL\n";
    kill SIGKILL, $pid;
    waitpid $pid, 0;
    return $?;
}

sub redis_stop {
    return unless $RedisPid;
    stop_pid($RedisPid);
    undef $RedisPid;
}

sub redis_cli {
    my @args = map { quotemeta } @_;
    my $out = `redis-cli -p $RedisPort @args 2>/dev/null`;
    return undef if $? != 0;
    chomp $out;
    return $out;
}

# a consumer of our redis; returns its pid.  Options: log => file,
# db => file, args => [...]
sub consumer_spawn {
    my (%opt) = @_;
    my $log = $opt{log} // "$Dir/consumer.log";
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDOUT, '>>', $log or die $!;
        open STDERR, '>&', \*STDOUT or die $!;
        # args with a --redis of their own log in as they say
        my @redis = (grep { $_ eq '--redis' } @{ $opt{args} // [] })
                    ? () : consumer_redis();
        exec $Consumer, @redis,
             '--db', $opt{db} // $Db, '--poll', '10', '--lock-ttl', '2000',
             @{ $opt{args} // [] }
            or POSIX::_exit(127);
    }
    return $pid;
}

# the consumer's --redis: its role when conf/redis-users.conf has one
sub consumer_redis {
    return ('--redis', "127.0.0.1:$RedisPort")
        unless defined role_rules('ingest-consumer');
    return ('--redis', "redis://ingest-consumer\@127.0.0.1:$RedisPort",
            '--password-file', $PasswordFile{consumer});
}

# a signal (SIGTERM by default), then the exit status as $? has it
sub consumer_kill {
    my ($pid, $sig) = @_;
    return stop_pid($pid, $sig, 30);
}

# the exit status of a consumer that stops by itself, or undef
sub consumer_wait {
    my ($pid, $timeout) = @_;
    my $deadline = time + ($timeout // 10);
    while (time < $deadline) {
        return $? if waitpid($pid, WNOHANG) == $pid;
        sleep 0.02;
    }
    return undef;
}

sub consumer_start {
    $ConsumerPid = consumer_spawn(@_);
    return $ConsumerPid;
}

sub consumer_stop {
    my ($sig) = @_;
    return undef unless $ConsumerPid;
    my $status = consumer_kill($ConsumerPid, $sig);
    undef $ConsumerPid;
    return $status;
}

sub consumer_log {
    my ($log) = @_;
    open my $in, '<', $log // "$Dir/consumer.log" or return '';
    local $/;
    return scalar <$in>;
}

# a counters batch as the module writes it: producer, seq, { key => n }
sub batch {
    my ($producer, $seq, $counts) = @_;
    my $c = join ',', map { "\"$_\":$counts->{$_}" } sort keys %$counts;
    return qq({"v":1,"kind":"counters","producer":"$producer","seq":$seq,)
         . qq("ts":1763769600123,"counts":{$c}});
}


# bounded wait for a condition
sub wait_for {
    my ($cond, $timeout) = @_;
    my $deadline = time + ($timeout // 10);
    while (time < $deadline) {
        return 1 if $cond->();
        sleep 0.02;
    }
    return $cond->() ? 1 : 0;
}

# where "--- totals" and wait_totals() read: SQLite ($Db) unless a test
# file points this at another reader (Ingest::Pg::totals)
our $Totals;

sub totals {
    return $Totals->() if $Totals;
    return {} unless -f $Db;
    my $dbh = DBI->connect("dbi:SQLite:dbname=$Db", '', '',
                           { RaiseError => 0, PrintError => 0,
                             sqlite_open_flags => 1,    # SQLITE_OPEN_READONLY
                           })
        or return {};
    $dbh->sqlite_busy_timeout(2000);
    my $rows = $dbh->selectall_arrayref('SELECT key, value FROM totals');
    $dbh->disconnect;
    return {} unless $rows;
    return { map { $_->[0] => $_->[1] } @$rows };
}

# bounded wait until every expected key has its value (undef: absent)
sub wait_totals {
    my ($expected, $timeout) = @_;
    my $deadline = time + ($timeout // 10);
    my $got;
    while (1) {
        $got = totals();
        my %slice = map { $_ => $got->{$_} } keys %$expected;
        return \%slice if Test::More::eq_hash(\%slice, $expected);
        last if time > $deadline;
        sleep 0.02;
    }
    return { map { $_ => $got->{$_} } keys %$expected };
}

sub check_totals {
    my ($block, $body, $req_idx, $repeated_req_idx, $dry_run) = @_;
    my $expected = scalar $block->totals;
    return unless defined $expected;

    my $reqs = scalar $block->request;
    my $n = ref $reqs eq 'ARRAY' ? @$reqs : 1;
    return unless $req_idx == $n - 1;

    if (ref $expected ne 'HASH') {
        Test::More::fail($block->name . " - --- totals must be a hash "
                         . "(--- totals eval, +{ ... })");
        return;
    }

    Test::More::is_deeply(wait_totals($expected), $expected,
                          $block->name . " - totals in SQLite");
}

# --- sql eval
# ["SELECT ... ORDER BY ...", [[row], [row], ...]]
# polls (bounded) until the query returns exactly these rows

sub sql_rows {
    my ($query) = @_;
    return undef unless -f $Db;
    my $dbh = DBI->connect("dbi:SQLite:dbname=$Db", '', '',
                           { RaiseError => 0, PrintError => 0,
                             sqlite_open_flags => 1 })
        or return undef;
    $dbh->sqlite_busy_timeout(2000);
    my $rows = $dbh->selectall_arrayref($query);
    $dbh->disconnect;
    return $rows;
}

sub check_sql {
    my ($block, $body, $req_idx) = @_;
    my $spec = scalar $block->sql;
    return unless defined $spec;

    my $reqs = scalar $block->request;
    my $n = ref $reqs eq 'ARRAY' ? @$reqs : 1;
    return unless $req_idx == $n - 1;

    my ($query, $expected) = @$spec;
    my $deadline = time + 10;
    my $got;
    while (1) {
        $got = sql_rows($query) // [];
        last if Test::More::eq_array($got, $expected) || time > $deadline;
        sleep 0.05;
    }

    Test::More::is_deeply($got, $expected, $block->name . " - SQL: $query");
}

# --- eventually eval
# ["/ingest/status", qr/.../]
# polls (bounded) GET <path> on the test server until the body matches

sub check_eventually {
    my ($block, $body, $req_idx) = @_;
    my $spec = scalar $block->eventually;
    return unless defined $spec;

    my $reqs = scalar $block->request;
    my $n = ref $reqs eq 'ARRAY' ? @$reqs : 1;
    return unless $req_idx == $n - 1;

    my ($path, $like) = @$spec;
    my $port = Test::Nginx::Socket::server_port();
    my $got = '';
    my $deadline = time + 5;

    while (1) {
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                      PeerPort => $port, Timeout => 2);
        if ($s) {
            print $s "GET $path HTTP/1.0\r\nHost: localhost\r\n\r\n";
            local $/;
            $got = <$s> // '';
            close $s;
        }
        last if $got =~ $like || time > $deadline;
        sleep 0.05;
    }

    Test::More::like($got, $like, $block->name . " - GET $path, eventually");
}

sub check_list {
    my ($block, $body, $req_idx) = @_;
    my $spec = scalar $block->list;
    return unless defined $spec;

    my $reqs = scalar $block->request;
    my $n = ref $reqs eq 'ARRAY' ? @$reqs : 1;
    return unless $req_idx == $n - 1;

    my ($list, @patterns) = @$spec;
    my $deadline = time + 5;

    if (ref $patterns[0] eq 'CODE') {
        # a judge of the whole list: (1) or (0, why), polled for 5 s
        my ($ok, $why);
        while (1) {
            my $all = `redis-cli -p $RedisPort --no-raw LRANGE \Q$list\E 0 -1`;
            my @items = map { s/^\d+\) "//r =~ s/"$//r =~ s/\\"/"/gr }
                        grep { /^\d+\) / } split /\n/, $all;
            ($ok, $why) = $patterns[0]->(@items);
            last if $ok || time > $deadline;
            sleep 0.02;
        }
        Test::More::ok($ok, $block->name . " - $list: "
                            . ($why // 'as expected'));
        return;
    }

    my $len;
    while (1) {
        $len = redis_cli('LLEN', $list) // -1;
        last if $len >= @patterns || time > $deadline;
        sleep 0.02;
    }

    Test::More::is($len, scalar @patterns,
                   $block->name . " - $list holds " . @patterns . " batches");

    for my $i (0 .. $#patterns) {
        my $item = redis_cli('LINDEX', $list, $i) // '';
        Test::More::like($item, $patterns[$i],
                         $block->name . " - $list element $i");
    }
}

END {
    return unless defined $Owner && $$ == $Owner;
    local $?;    # the test's exit status, not redis's or the consumer's
    consumer_stop();
    redis_stop();
}

1;
