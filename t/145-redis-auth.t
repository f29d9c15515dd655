# Redis with a login: passwords (from a file or a URL), ACL users with
# exactly the nginx role's rules, a wrong password (nothing accepted is
# lost), SELECT, the exit path's own login, what nginx -t refuses, and no
# password in a log line or in ps.

use strict;
use warnings;

use lib 't/lib';
use Ingest::Test nginx => 0;
use Ingest::Nginx;
use Test::More;
use Time::HiRes qw(sleep time);
use POSIX ();

my $port = $Ingest::Test::RedisPort;
my $dir = $Ingest::Test::Dir;
my @secrets = values %Ingest::Test::Password;

sub cli {
    my @args = map { quotemeta } @_;
    my $out = `redis-cli -p $port @args 2>/dev/null`;
    chomp $out;
    return $out;
}

sub count { my ($log, $re) = @_; my @m = ($log =~ /$re/g); scalar @m }


sub file {
    my ($name, $text) = @_;
    open my $out, '>', "$dir/$name" or die $!;
    print $out $text;
    close $out;
    chmod 0600, "$dir/$name";
    return "$dir/$name";
}

# nginx -t on a configuration with this in http{}: (exit status, output)
sub nginx_t {
    my ($http) = @_;
    my $conf = file('t.conf', "load_module $ENV{TEST_NGINX_LOAD_MODULES};\n"
                    . "events {}\nhttp { $http\n"
                    . " server { listen 127.0.0.1:1; location = /c"
                    . " { ingest_counters; } } }\n");
    my $out = `/usr/sbin/nginx -t -p $dir/ -c $conf -e $dir/t.log 2>&1`;
    return ($? >> 8, $out);
}

sub status {
    my ($n) = @_;
    my (undef, $body) = $n->get('/s');
    return $body // '';
}

my $list = 't145:c';
my $logs = '';          # every nginx's error log, for the last check
my $ps = '';            # what ps showed while they ran

sub done_with {
    my ($n) = @_;
    $logs .= $n->log;
    $ps .= `ps -eo args`;
}


# 1. requirepass alone (the default user), the password from a file
{
    my $rport = Ingest::Nginx::free_port();
    my $pid = fork // die;
    if ($pid == 0) {
        exec 'redis-server', '--port', $rport, '--bind', '127.0.0.1',
             '--save', '', '--requirepass', 't145-default-pw',
             '--logfile', "$dir/redis-$rport.log"
            or POSIX::_exit(127);
    }
    push @secrets, 't145-default-pw';
    local $ENV{REDISCLI_AUTH} = 't145-default-pw';
    wait_for(sub { `redis-cli -p $rport ping 2>/dev/null` =~ /PONG/ }, 5);

    my $pw = file('default.password', "t145-default-pw\n");

    my $n = Ingest::Nginx->start(
        http => "ingest_redis 127.0.0.1:$rport password_file=$pw;"
                . " ingest_flush_interval 10ms;",
        server => "location = /c { ingest_counters queue=$list:1; }");

    is(($n->post('/c', 'a=1'))[0], 204, "password: accepted");
    ok(wait_for(sub { `redis-cli -p $rport llen $list:1` == 1 }, 5),
       "password: the batch is in Redis");
    unlike($n->log, qr/\[(error|alert|crit)\]/, "password: no error");

    done_with($n);
    kill 'TERM', $pid;
    waitpid $pid, 0;
}


# 2. the ACL user with exactly the role's rules as conf/redis.conf ships
#    them, keys and all, with the default list names; the status page's
#    LLEN and GET too
{
    my $rules = Ingest::Test::role_rules('ingest-nginx', exact => 1);
    cli('ACL', 'SETUSER', 't145-exact', 'reset', 'on', '>t145-exact-pw',
        split / /, $rules);
    push @secrets, 't145-exact-pw';
    my $pw = file('exact.password', "t145-exact-pw\n");

    my $n = Ingest::Nginx->start(
        http => "ingest_redis redis://t145-exact\@127.0.0.1:$port"
                . " password_file=$pw; ingest_flush_interval 10ms;",
        server => 'location = /c { ingest_counters queue=ingest:t145; }'
                  . ' location = /s { ingest_status; }');

    is(($n->post('/c', 't145:exact=5'))[0], 204, "role: accepted");
    ok(wait_for(sub { cli('llen', 'ingest:t145') == 1 }, 5),
       "role: RPUSH is allowed");
    cli('SET', 'ingest:t145:heartbeat',
        '{"ts":1000,"batches":3,"rows":4,"last_commit":1000,"lag_ms":0}');
    ok(wait_for(sub { status($n) =~ /"ingest:t145":\{"depth":1,"dead":0,"consumer":\{"up":false,[^}]*"batches_applied":3/ }, 5),
       "role: the status page's LLEN and GET are allowed");
    unlike($n->log, qr/NOPERM|refuses the login/, "role: nothing refused");
    done_with($n);

    # a key outside the role's patterns is refused: the rules are real
    my $m = Ingest::Nginx->start(
        http => "ingest_redis redis://t145-exact\@127.0.0.1:$port"
                . " password_file=$pw; ingest_flush_interval 10ms;",
        server => 'location = /c { ingest_counters queue=other:t145; }');
    is(($m->post('/c', 'x=1'))[0], 204, "role: accepted for another list");
    ok(wait_for(sub { $m->log =~ /RPUSH to "other:t145" failed: NOPERM/ }, 3),
       "role: but Redis refuses a list outside the patterns");

    # said once, not at every retry, however busy the other lists are
    my $m2 = Ingest::Nginx->start(
        http => "ingest_redis redis://t145-exact\@127.0.0.1:$port"
                . " password_file=$pw; ingest_flush_interval 10ms;",
        server => 'location = /c { ingest_counters queue=other:t145b; }'
                  . ' location = /ok { ingest_counters queue=ingest:t145b; }');
    is(($m2->post('/c', 'x=1'))[0], 204, "NOPERM: accepted");
    for (1 .. 40) { $m2->post('/ok', 'y=1'); sleep 0.05 }
    my @said = $m2->log =~ /RPUSH to "other:t145b" failed: NOPERM/g;
    is(scalar @said, 1, "NOPERM: said once while the other list flows");
    like($m2->log, qr/failed: NOPERM[^\n]*, batch kept for retry \(said once until it goes through\)/,
         "NOPERM: saying it is kept and retried");
    cli('ACL', 'SETUSER', 't145-exact', '~other:*');
    ok(wait_for(sub { $m2->log =~ /RPUSH to "other:t145b" goes through again, after \d+ failures/ }, 10),
       "NOPERM: the rule fixed, its end is said")
        or diag $m2->log;
    is(cli('LLEN', 'other:t145b'), 1, "NOPERM: and the kept batch is in Redis");
    done_with($m2);
    $m2->stop;
    cli('ACL', 'SETUSER', 't145-exact', 'resetkeys', '~ingest:*', '~{ingest:*');
    cli('DEL', 'ingest:t145', 'ingest:t145:heartbeat', 'ingest:t145b',
        'other:t145b', 'other:t145');
}


# 3. a wrong password: logged once at error, "denied" in the status;
#    requests are taken until ingest_max_pending, then 503; the password
#    fixed and nginx reloaded, the old workers' batches come through the
#    spool, and the totals are exact
{
    cli('ACL', 'SETUSER', 't145-user', 'reset', 'on', '>t145-right-pw',
        split / /, Ingest::Test::role_rules('ingest-nginx'));
    push @secrets, 't145-right-pw', 't145-wrong-pw';
    my $pw = file('user.password', "t145-wrong-pw\n");

    my $n = Ingest::Nginx->start(
        http => "ingest_redis redis://t145-user\@127.0.0.1:$port"
                . " password_file=$pw; ingest_flush_interval 10ms;"
                . " ingest_flush_keys 1; ingest_max_pending 40k;"
                . " ingest_drain_timeout 1s; ingest_spool %DIR%/spool;",
        server => 'location = /c { ingest_counters; }'
                  . ' location = /s { ingest_status; }');

    my ($ok, $refused, $sum) = (0, 0, 0);
    for my $i (1 .. 400) {
        my ($code) = $n->post('/c', "t145:w$i=$i&t145:all=1");
        if ($code == 204) { $ok++; $sum += $i }
        elsif ($code == 503) { $refused++ }
    }

    ok($ok > 10 && $refused > 0,
       "wrong password: taken until the bound ($ok), then 503 ($refused)");
    sleep 1.5;
    is(count($n->log, qr/\[error\] .*ingest redis "redis:\/\/t145-user\@127\.0\.0\.1:$port" refuses the login of user "t145-user": WRONGPASS/),
       1, "wrong password: logged once, naming the user");
    like(status($n), qr/"connected_workers":0,"denied_workers":1,/,
         "wrong password: the status says denied");

    file('user.password', "t145-right-pw\n");
    $n->signal('HUP');

    ok(wait_for(sub {
           my $t = Ingest::Test::totals();
           ($t->{'t145:all'} // 0) == $ok
       }, 20), "fixed and reloaded: every accepted request counted");
    my $t = Ingest::Test::totals();
    is(join(',', grep { defined $t->{"t145:w$_"} && $t->{"t145:w$_"} != $_ }
                 1 .. 400), "", "fixed and reloaded: each exactly once");
    like($n->log, qr/ingest replayed spool file/,
         "fixed and reloaded: the old workers' batches came through the spool");
    ok(wait_for(sub { status($n) =~ /"connected_workers":1,"denied_workers":0,/ }, 5),
       "fixed and reloaded: the status says connected");
    done_with($n);
}


# 4. SELECT: the lists go to database 3, and nowhere else
{
    my $n = Ingest::Nginx->start(
        http => "ingest_redis redis://ingest-nginx\@127.0.0.1:$port/3"
                . " password_file=$Ingest::Test::PasswordFile{nginx};"
                . " ingest_flush_interval 10ms;",
        server => "location = /c { ingest_counters queue=$list:db; }");

    is(($n->post('/c', 'a=1'))[0], 204, "select: accepted");
    ok(wait_for(sub { `redis-cli -p $port -n 3 llen $list:db` + 0 == 1 }, 5),
       "select: the batch is in database 3");
    is(cli('llen', "$list:db"), 0, "select: and not in database 0");
    like($n->log, qr/"redis:\/\/ingest-nginx\@127\.0\.0\.1:$port\/3"|^(?!.*redis:\/\/)/s,
         "select: logs name the database");

    # the exit path logs in and selects as well
    my $m = Ingest::Nginx->start(
        http => "ingest_redis redis://ingest-nginx\@127.0.0.1:$port/3"
                . " password_file=$Ingest::Test::PasswordFile{nginx};"
                . " ingest_flush_interval 1h;",
        server => "location = /c { ingest_counters queue=$list:exit; }");
    is(($m->post('/c', 'a=1'))[0], 204, "exit: accepted");
    $m->signal('TERM');
    ok(defined $m->wait_exit(10), "exit: nginx left");
    is(`redis-cli -p $port -n 3 llen $list:exit` + 0, 1,
       "exit: the blocking connection logged in and selected database 3");
    like($m->log, qr/ingest flushed 1 keys to "$list:exit" at exit/,
         "exit: logged as flushed");
    done_with($n);
    done_with($m);
}


# 5. a password in the URL, percent-encoded; the logs name the server
#    without it
{
    cli('ACL', 'SETUSER', 't145-url', 'reset', 'on', '>p@ss:w/rd%',
        split / /, Ingest::Test::role_rules('ingest-nginx'));
    push @secrets, 'p@ss:w/rd%', 'p%40ss%3Aw%2Frd%25';

    my $n = Ingest::Nginx->start(
        http => "ingest_redis redis://t145-url:p%40ss%3Aw%2Frd%25\@127.0.0.1:"
                . "$port; ingest_flush_interval 10ms;"
                . " ingest_redis_connect_timeout 1s;",
        server => "location = /c { ingest_counters queue=$list:url; }",
        log_level => 'debug');

    is(($n->post('/c', 'a=1'))[0], 204, "url password: accepted");
    ok(wait_for(sub { cli('llen', "$list:url") == 1 }, 5),
       "url password: decoded, and Redis takes it");

    cli('ACL', 'SETUSER', 't145-url', 'resetpass', '>other');
    cli('CLIENT', 'KILL', 'USER', 't145-url');
    ok(wait_for(sub { $n->log =~ /refuses the login of user "t145-url"/ }, 5),
       "url password: a refusal once it changes");
    like($n->log, qr/ingest redis "redis:\/\/t145-url\@127\.0\.0\.1:$port" /,
         "url password: the logs name the server without it");
    done_with($n);
}


# 6. what nginx -t refuses, with file and line
{
    my @cases = (
        ["ingest_redis cluster redis://127.0.0.1:7000/2;",
         qr/a cluster has only database 0, not 2/],
        ["ingest_redis redis://u:p\@127.0.0.1:6379 password_file=$dir/user.password;",
         qr/has a password in the address and "password_file=": give one/],
        ["ingest_redis rediss://127.0.0.1:6379;",
         qr/this hiredis has no TLS; reach Redis through a local TLS tunnel/],
        ["ingest_redis redis://u:p%4\@127.0.0.1:6379;",
         qr/invalid user or password in a Redis URL/],
        ["ingest_redis redis://127.0.0.1:6379/x;",
         qr/invalid database number/],
        ["ingest_redis 127.0.0.1:6379 password_file=$dir/none;",
         qr/open\(\) ".*\/none" failed/],
        ["ingest_redis cluster redis://a:b\@127.0.0.1:7000 redis://a:c\@127.0.0.1:7001;",
         qr/the nodes of a cluster share one login/],
        ["ingest_redis cluster unix:///tmp/x.sock;",
         qr/a cluster's nodes are reached over TCP/],
        ["ingest_redis unix:///tmp/x.sock?db=;",
         qr/only "\?db=<n>" may follow the path/],
    );

    for my $c (@cases) {
        my ($status, $out) = nginx_t($c->[0]);
        ok($status != 0 && $out =~ $c->[1] && $out =~ /t\.conf:\d+/,
           "nginx -t refuses: $c->[0]") or diag $out;
    }

    my ($status, $out) = nginx_t("ingest_redis unix://u:p\@/tmp/x.sock?db=2;");
    is($status, 0, "nginx -t takes unix://user:password\@/path?db=n")
        or diag $out;

    # a password file that is not a regular file is refused at once: a
    # FIFO would hold nginx -t (and a reload, and "nginx -s quit")
    system('mkfifo', "$dir/fifo.password") == 0 or die "mkfifo: $!";
    mkdir "$dir/dir.password";
    for my $f ('fifo', 'dir') {
        my $t0 = time;
        ($status, $out) = nginx_t("ingest_redis 127.0.0.1:6379"
                                  . " password_file=$dir/$f.password;");
        ok($status != 0 && $out =~ /"\Q$dir\E\/$f\.password" is not a regular file in .*t\.conf:\d+/
           && time - $t0 < 5,
           "nginx -t refuses a $f as the password file, at once") or diag $out;
    }

    # no message shows a password: a raw '/' in it, a scheme nginx does
    # not know, the scheme forgotten, rediss://
    my @leaks = (
        ["ingest_redis redis://u:base64+/Sec=\@127.0.0.1:1;", 1],
        ["ingest_redis REDIS://u:t145leak1\@127.0.0.1:6379;", 1],
        ["ingest_redis valkey://u:t145leak2\@127.0.0.1:6379;", 1],
        ["ingest_redis ingest-nginx:t145leak3\@127.0.0.1:6379;", 1],
        ["ingest_redis rediss://u:t145leak4\@127.0.0.1:6379;", 1],
        ["ingest_redis redis://u:t145leak5/\@127.0.0.1:99999;", 1],
    );
    for my $l (@leaks) {
        ($status, $out) = nginx_t($l->[0]);
        is($status != 0 ? 1 : 0, $l->[1],
           "nginx -t " . ($l->[1] ? 'refuses' : 'takes') . ": $l->[0]")
            or diag $out;
        unlike($out, qr/base64|Sec=|t145leak/,
               "and shows no part of its password");
    }
}


# 6b. a server that does not know AUTH (renamed, or a proxy) echoes the
#     command's arguments in its error: the log shows no password; and a
#     long user name is cut cleanly in the refusal's log line
{
    my $rport = Ingest::Nginx::free_port();
    my $pid = fork // die;
    if ($pid == 0) {
        exec('redis-server', '--port', $rport, '--bind', '127.0.0.1',
             '--save', '', '--rename-command', 'AUTH', '',
             '--logfile', "$dir/redis-$rport.log")
            or POSIX::_exit(127);
    }
    wait_for(sub { `redis-cli -p $rport ping 2>/dev/null` =~ /PONG/ }, 5);
    push @secrets, 't145-echoed-pw';

    my $n = Ingest::Nginx->start(
        http => "ingest_redis redis://t145-user:t145-echoed-pw\@127.0.0.1:$rport;"
                . " ingest_flush_interval 10ms;",
        server => "location = /c { ingest_counters queue=$list:e; }");
    is(($n->post('/c', 'a=1'))[0], 204, "AUTH unknown: accepted");
    ok(wait_for(sub { $n->log =~ /ERR unknown command 'AUTH'/ }, 5),
       "AUTH unknown: the error is logged")
        or diag $n->log;
    unlike($n->log, qr/with args|t145-echoed-pw/,
           "without the arguments Redis echoed");
    done_with($n);
    $n->stop;

    my $long = 'x' x 300;
    cli('ACL', 'SETUSER', $long, 'on', '>right-pw', '~*', '+@all');
    $n = Ingest::Nginx->start(
        http => "ingest_redis redis://$long:wrong-pw\@127.0.0.1:$port;"
                . " ingest_flush_interval 10ms;",
        server => "location = /c { ingest_counters queue=$list:l; }");
    ok(wait_for(sub { $n->log =~ /refuses the login/ }, 5),
       "a 300-byte user: refused, logged");
    like($n->log, qr/refuses the login of user "x{100,}: WRONGPASS/,
         "its name cut cleanly before the reason");
    done_with($n);
    $n->stop;
    cli('ACL', 'DELUSER', $long);
    push @secrets, 'wrong-pw';

    Ingest::Test::stop_pid($pid);
}


# 7. no password anywhere: neither in a log line nor in ps
{
    open my $in, '<', "$dir/t.log";
    $logs .= do { local $/; <$in> // '' } if $in;
    $logs .= Ingest::Test::consumer_log();

    for my $s (@secrets) {
        unlike($logs, qr/\Q$s\E/, "no password in the logs ($s)");
        unlike($ps, qr/\Q$s\E/, "no password in ps ($s)");
    }
}

done_testing();
