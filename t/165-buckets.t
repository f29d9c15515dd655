# ingest_counters buckets=: increments summed per time bucket of each
# resolution, from nginx to SQLite.  With a 1 s resolution, so that
# nothing waits long: an increment lands in the bucket of the second it
# arrived in; a load that crosses many boundaries gives, key for key,
# 1 s buckets (and 1 m, 1 d ones) that sum exactly to the total; an
# Idempotency-Key request repeated across a boundary counts once, in the
# bucket of its first arrival; the batches carry version 3 only with
# buckets; nginx -t refuses bad resolutions with file:line.

use strict;
use warnings;

use lib 't/lib';
use Ingest::Test nginx => 0, consumer => 0;
use Ingest::Nginx;
use Test::More;
use Time::HiRes qw(time sleep);

my $list = 't165:c';

sub cli { Ingest::Test::redis_cli(@_) }

# the workers read the consumer's SQLite file in the test's own directory
my $n = Ingest::Nginx->start(
    main => 'user root;',
    http => "ingest_redis $Ingest::Test::RedisAddr;"
            . " ingest_flush_interval 50ms;",
    server => "location = /c { ingest_counters queue=$list"
              . " buckets=1s,1m,1d; }"
              . " location = /plain { ingest_counters queue=t165:plain; }"
              . " location = /big { ingest_counters queue=t165:big"
              . " buckets=1s,1h; client_max_body_size 8m;"
              . " client_body_buffer_size 8m; }"
              . " location = /s { ingest_status; }"
              . " location /totals/ { ingest_totals $Ingest::Test::Db; }");

consumer_start(args => ['--queue', $list]);

sub rows {
    my ($sql) = @_;
    return Ingest::Test::sql_rows($sql) // [];
}

# 1. one increment, its second known: sent again until the request
#    starts and ends within one second

my ($sec, $code);
for (1 .. 20) {
    my $t0 = time;
    ($code) = $n->post('/c', 't165:one=5');
    my $t1 = time;
    if (int($t0) == int($t1)) {
        $sec = int($t0);
        last;
    }
    sleep 0.05;
}
ok(defined $sec, 'a request within one second');

ok(wait_for(sub {
       my $r = rows("SELECT resolution, start, value FROM buckets"
                    . " WHERE key = 't165:one' ORDER BY resolution");
       @$r == 3 }, 10),
   'its three buckets reach SQLite');
my $r = rows("SELECT resolution, start, sum(value) FROM buckets"
             . " WHERE key = 't165:one' GROUP BY resolution, start"
             . " ORDER BY resolution, start");
my $ones = join ' ', map { join ':', @$_ } @$r;
like($ones, qr/^1:$sec:5 60:@{[ $sec - $sec % 60 ]}:\d+ 86400:@{[ $sec - $sec % 86400 ]}:\d+$/,
     "the 1 s bucket is the second it arrived in ($sec), the minute's "
     . "and the day's hold it");

# 2. a load over about three seconds: for every key, each resolution's
#    buckets sum to the total, exactly

my %want;
my $end = time + 3;
my $i = 0;
while (time < $end) {
    $i++;
    my $k = 't165:k' . ($i % 7);
    my $v = ($i % 5) - 2;
    my ($c) = $n->post('/c', "$k=$v&t165:all=1");
    if (defined $c && $c == 204) {
        $want{$k} += $v;
        $want{'t165:all'}++;
    }
}
cmp_ok($i, '>', 50, "$i requests over 3 s");

my $check = sub {
    my $totals = { map { $_->[0] => $_->[1] }
                   @{ rows("SELECT key, value FROM totals"
                           . " WHERE key GLOB 't165:[ak]*'") } };
    return 0 unless join(',', map { "$_=" . ($totals->{$_} // 'none') }
                               sort keys %want)
                    eq join(',', map { "$_=$want{$_}" } sort keys %want);
    for my $res (1, 60, 86400) {
        my $sums = { map { $_->[0] => $_->[1] }
                     @{ rows("SELECT key, sum(value) FROM buckets"
                             . " WHERE resolution = $res"
                             . " AND key GLOB 't165:[ak]*' GROUP BY key") } };
        for my $k (keys %want) {
            return 0 unless ($sums->{$k} // 0) == $want{$k};
        }
    }
    return 1;
};
ok(wait_for($check, 15),
   'every key: its 1 s, 1 m and 1 d buckets each sum to its total');
my $secs = rows("SELECT count(DISTINCT start) FROM buckets"
                . " WHERE key = 't165:all' AND resolution = 1");
cmp_ok($secs->[0][0], '>=', 3, 'in 3 or more one-second buckets');

# 2b. range reads: the buckets of [from, to) in order and their sum,
#     from and to in Unix seconds or RFC 3339; bad values are 400s

{
    require POSIX;
    my $iso = sub { POSIX::strftime('%Y-%m-%dT%H:%M:%SZ', gmtime $_[0]) };

    my ($c, $body) = $n->get("/totals/t165:one?resolution=1s&from=$sec"
                          . '&to=' . ($sec + 1));
    is($c, 200, 'GET a one-second range: 200')
        or diag(join "\n", grep { /totals/ } split /\n/, $n->log);
    is($body, qq({"key":"t165:one","resolution":1,"from":$sec,"to":)
           . ($sec + 1) . qq(,"buckets":[{"start":$sec,"value":5}],"sum":5}\n),
       'its one bucket and the sum, exactly');

    ($c, $body) = $n->get('/totals/t165:one?resolution=1m&from='
                       . $iso->($sec - 3600) . '&to=' . $iso->($sec + 3600));
    like($body, qr/"resolution":60,"from":@{[ $sec - 3600 ]},"to":@{[ $sec + 3600 ]},"buckets":\[\{"start":@{[ $sec - $sec % 60 ]},"value":5\}\],"sum":5\}/,
         'RFC 3339 times, Z');

    my $off = POSIX::strftime('%Y-%m-%dT%H:%M:%S', gmtime($sec + 3600))
              . '%2B01:00';
    ($c, $body) = $n->get("/totals/t165:one?resolution=1s&from=$off&to="
                       . ($sec + 1));
    like($body, qr/"from":$sec,.*"sum":5\}/,
         'an RFC 3339 offset (+01:00) is the same instant');

    my $from = $sec - 5;
    my $to = int(time) + 5;
    ($c, $body) = $n->get("/totals/t165:all?resolution=1s&from=$from&to=$to");
    my @starts = $body =~ /"start":(\d+)/g;
    my ($sum) = $body =~ /"sum":(-?\d+)/;
    is($sum, $want{'t165:all'}, "the sum of t165:all's seconds is its total");
    is(join(',', @starts), join(',', sort { $a <=> $b } @starts),
       'the buckets in order of their start');

    ($c, $body) = $n->get('/totals/t165:none?resolution=1d'
                          . '&from=2024-02-29T00:00:00Z'
                          . '&to=2024-03-01T00:00:00.5Z');
    is($c, 200, 'a leap day and a fraction are times');

    ($c, $body) = $n->get("/totals/t165:none?resolution=1s&from=$from&to=$to");
    is("$c $body", qq(200 {"key":"t165:none","resolution":1,"from":$from,)
                . qq("to":$to,"buckets":[],"sum":0}\n),
       'a key without buckets: none, sum 0 (absent buckets are omitted)');

    # sums over 64 bits on the way, or at the end: written by hand
    {
        require DBI;
        my $dbh = DBI->connect("dbi:SQLite:dbname=$Ingest::Test::Db", '', '',
                               { RaiseError => 1 });
        $dbh->sqlite_busy_timeout(5000);
        my $max = '9223372036854775807';
        my $ins = $dbh->prepare('INSERT INTO buckets'
                                . ' (key, resolution, start, value)'
                                . ' VALUES (?, 1, ?, ?)');
        $ins->execute('t165:fits', 1000000, $max);
        $ins->execute('t165:fits', 1000001, $max);
        $ins->execute('t165:fits', 1000002, "-$max");
        $ins->execute('t165:over', 1000000, $max);
        $ins->execute('t165:over', 1000001, 1);
        $dbh->disconnect;
    }
    ($c, $body) = $n->get('/totals/t165:fits?resolution=1s&from=1000000'
                          . '&to=1000003');
    like($body, qr/,"sum":9223372036854775807\}\n\z/,
         'partial sums past 64 bits, the sum within: the sum, exactly');
    ($c, $body) = $n->get('/totals/t165:over?resolution=1s&from=1000000'
                          . '&to=1000003');
    like($body, qr/\{"start":1000001,"value":1\}\],"sum":null\}\n\z/,
         'a sum beyond 64 bits: null, and the body ends there (no NUL)');

    my %bad = (
        'resolution=1d&from=2026-02-29T00:00:00Z&to=9999999999' =>
            'from must be a time: Unix seconds or RFC 3339',
        'resolution=1d&from=2026-04-31T00:00:00Z&to=9999999999' =>
            'from must be a time: Unix seconds or RFC 3339',
        'resolution=1d&from=2026-01-01T00:00:00.Z&to=9999999999' =>
            'from must be a time: Unix seconds or RFC 3339',
        'resolution=7s&from=0&to=60' =>
            'resolution must be 1s to 1d and divide a day (e.g. 1m, 1h, 1d)',
        'resolution=1h&from=x&to=60' =>
            'from must be a time: Unix seconds or RFC 3339',
        'resolution=1h&from=0' =>
            'to must be a time: Unix seconds or RFC 3339',
        'resolution=1h&from=2026-13-01T00:00:00Z&to=9999999999' =>
            'from must be a time: Unix seconds or RFC 3339',
        'resolution=1h&from=60&to=60' => 'from must be before to',
        'resolution=1s&from=0&to=10000' =>
            'the range holds more than 10000 buckets of that resolution: '
            . 'narrow it',
        'from=0&to=60' => 'from and to need a resolution',
    );
    for my $q (sort keys %bad) {
        ($c, $body) = $n->get("/totals/t165:one?$q");
        is("$c $body", qq(400 {"error":"$bad{$q}"}\n), "?$q: 400, saying why");
    }
}

# 3. an Idempotency-Key request repeated in a later second: once, in the
#    first arrival's bucket

my ($first, $c1);
for (1 .. 20) {
    my $t0 = time;
    ($c1) = $n->post('/c', 't165:idem=7',
                     headers => { 'Idempotency-Key' => "t165-$_" });
    my $t1 = time;
    if (int($t0) == int($t1)) {
        $first = [int($t0), "t165-$_"];
        last;
    }
}
ok(defined $first, 'a keyed request within one second');
sleep 1.1;
my ($c2) = $n->post('/c', 't165:idem=7',
                    headers => { 'Idempotency-Key' => $first->[1] });
is("$c1 $c2", '204 204', 'both arrivals answered 204');
ok(wait_for(sub {
       my $x = rows("SELECT start, value FROM buckets"
                    . " WHERE key = 't165:idem' AND resolution = 1");
       @$x == 1 && $x->[0][0] == $first->[0] && $x->[0][1] == 7 }, 10),
   'the repeat counts once, in the first arrival\'s second');
is_deeply(rows("SELECT value FROM totals WHERE key = 't165:idem'"), [[7]],
          'and once in the total');

# 3b. the status counts the bucket rows the consumer wrote, from its
#     heartbeat (worker 0 polls it)

ok(wait_for(sub {
       my (undef, $st) = $n->get('/s');
       ($st // '') =~ /"t165:c":\{"depth":\d+,"dead":0,"consumer":\{"up":true,[^}]*"bucket_rows_written":(\d+),/
           && $1 >= 3 }, 10),
   'the status shows the bucket rows written');
ok(wait_for(sub {
       my (undef, $st) = $n->get('/s?format=prometheus');
       ($st // '') =~ /^ingest_consumer_bucket_rows_written_total\{queue="t165:c"\} (\d+)$/m
           && $1 >= 3 }, 10),
   'and so does Prometheus');

# 4. version 3 only with buckets

my ($cp) = $n->post('/plain', 't165:p=1');
is($cp, 204, 'a location without buckets');
ok(wait_for(sub { (cli('LLEN', 't165:plain') // 0) >= 1 }, 10),
   'its batch is in Redis');
like(cli('LINDEX', 't165:plain', 0), qr/^\{"v":1,/,
     'as version 1: an older consumer still reads it');

# 5. one request of 60000 keys: its sums and buckets cut into batches
#    under 1 MB each, every key once in the sums and once per resolution

{
    require JSON::PP;
    my $body = join '&', map { "t165:big$_=$_" } 1 .. 60000;
    my ($cb) = $n->post('/big', $body);
    is($cb, 204, '60000 keys answered 204');
    my (@b, %sums, %bk);
    ok(wait_for(sub {
           @b = split /\n/, (cli('LRANGE', 't165:big', 0, -1) // '');
           %sums = ();
           %bk = ();
           for my $x (@b) {
               my $j = JSON::PP::decode_json($x);
               $sums{$_} += $j->{counts}{$_} for keys %{ $j->{counts} };
               for my $bucket (@{ $j->{buckets} // [] }) {
                   my ($res, undef, $c) = @$bucket;
                   for my $r (@$res) {
                       $bk{$r}{$_} += $c->{$_} for keys %$c;
                   }
               }
           }
           keys(%sums) == 60000 && keys(%{ $bk{1} // {} }) == 60000
               && keys(%{ $bk{3600} // {} }) == 60000 }, 10),
       'every key in the sums and in both resolutions\' buckets');
    cmp_ok(scalar @b, '>', 2, scalar(@b) . ' batches');
    is(scalar(grep { length > 1024 * 1024 } @b), 0, 'none over 1 MB');
    my $sum = 0;
    $sum += $_ for values %sums;
    my ($s1, $s3600) = (0, 0);
    $s1 += $_ for values %{ $bk{1} };
    $s3600 += $_ for values %{ $bk{3600} };
    is("$sum $s1 $s3600", join(' ', (1800030000) x 3),
       'the sums and each resolution\'s buckets add up to the same');
    is(scalar(grep { !/^\{"v":3,/ } @b), 0, 'all of version 3');
}

# 5b. ingest_max_pending counts a request's buckets (a second sum of
#     each key, for its step): 30000 keys with buckets need more than 2m
#     and are refused alone (413); the same without buckets fit

{
    my $n2 = Ingest::Nginx->start(
        http => "ingest_redis $Ingest::Test::RedisAddr;"
                . " ingest_max_pending 2m;",
        server => "client_max_body_size 8m; client_body_buffer_size 8m;"
                  . " location = /p { ingest_counters queue=t165:mp; }"
                  . " location = /b { ingest_counters queue=t165:mp"
                  . " buckets=1s,2s,3s,4s,5s,6s,8s; }");
    my $body = join '&', map { "t165:mp$_=1" } 1 .. 30000;
    my ($cb, $bb) = $n2->post('/b', $body);
    is("$cb $bb", qq(413 {"error":"request needs more than ingest_max_pending"}\n),
       '30000 keys with buckets need more than 2m: 413');
    my ($cp) = $n2->post('/p', $body);
    is($cp, 204, 'the same keys without buckets: 204');
}

# 5c. more (set, step) pairs in one cut than the cut groups (32): 17
#     locations of one list, each its own buckets=, posted to in two
#     seconds before the cut: 34 pairs, the last two by the last pass;
#     every key once per step, every resolution's sum exact

{
    # each location 1s and one more: its own set, a step of 1 s
    my @res = map { "${_}s" } (2, 3, 4, 5, 6, 8, 9, 10, 12, 15, 16, 18,
                               20, 24, 25, 30, 36);
    my $locs = join ' ', map {
        "location = /g$_ { ingest_counters queue=t165:g"
        . " buckets=1s,$res[$_]; }" } 0 .. $#res;
    my $n3 = Ingest::Nginx->start(
        http => "ingest_redis $Ingest::Test::RedisAddr;"
                . " ingest_flush_interval 4s;",
        server => $locs);
    my %sent;
    # two whole seconds: all 17 in one, all 17 in the next
    my $t0 = int(time) + 1;
    sleep($t0 - time);
    for my $round (0, 1) {
        for my $i (0 .. $#res) {
            my ($c) = $n3->post("/g$i", "t165:g$i=" . ($round + 1));
            $sent{"t165:g$i"} += $round + 1 if defined $c && $c == 204;
        }
        sleep(($t0 + 1) - time) if $round == 0 && time < $t0 + 1;
    }
    is(scalar(keys %sent), 17, '34 requests answered 204');

    require JSON::PP;
    my (%sums, %bk, $elements);
    ok(wait_for(sub {
           my @b = split /\n/, (cli('LRANGE', 't165:g', 0, -1) // '');
           %sums = ();
           %bk = ();
           $elements = 0;
           for my $x (@b) {
               my $j = JSON::PP::decode_json($x);
               $sums{$_} += $j->{counts}{$_} for keys %{ $j->{counts} };
               for my $e (@{ $j->{buckets} // [] }) {
                   $elements++;
                   for my $r (@{ $e->[0] }) {
                       $bk{"$_ $r"} += $e->[2]{$_} for keys %{ $e->[2] };
                   }
               }
           }
           keys(%sums) == 17 }, 15),
       'all 17 keys cut');
    cmp_ok($elements, '>=', 34, "$elements bucket elements: more than 32");
    my @off;
    for my $i (0 .. $#res) {
        my $k = "t165:g$i";
        (my $r = $res[$i]) =~ s/s$//;
        push @off, $k unless ($sums{$k} // 0) == $sent{$k}
                             && ($bk{"$k $r"} // 0) == $sent{$k}
                             && ($bk{"$k 1"} // 0) == $sent{$k};
    }
    is("@off", '', 'every key: its sum and each resolution\'s buckets exact');
}

# 6. nginx -t refuses what is not a resolution

my %bad = (
    'buckets=7s'       => 'invalid resolution "7s" in "buckets=": give a time from 1s to 1d that divides a day',
    'buckets=2d'       => 'invalid resolution "2d"',
    'buckets=0s'       => 'invalid resolution "0s"',
    'buckets=1x'       => 'invalid resolution "1x"',
    'buckets=1m,'      => 'invalid resolution ""',
    'buckets=1m,60s'   => '"buckets=" names the resolution "60s" twice',
    'buckets=1s,2s,3s,4s,5s,6s,8s,10s' => '"buckets=" takes at most 7 resolutions',
);
my $module = $ENV{TEST_NGINX_LOAD_MODULES};
my $dir = $Ingest::Test::Dir;
for my $p (sort keys %bad) {
    open my $fh, '>', "$dir/t165.conf" or die $!;
    print $fh "load_module $module;\nerror_log stderr;\n"
              . "events {}\nhttp {\n"
              . "    ingest_redis $Ingest::Test::RedisAddr;\n"
              . "    server {\n        listen 127.0.0.1:1;\n"
              . "        location = /x { ingest_counters $p; }\n    }\n}\n";
    close $fh;
    my $out = `$ENV{TEST_NGINX_BINARY} -t -p $dir/ -c $dir/t165.conf 2>&1`;
    isnt($?, 0, "nginx -t refuses $p");
    like($out, qr/\Q$bad{$p}\E.* in \Q$dir\E\/t165\.conf:8$/m,
         "saying why, with file:line ($p)");
}

done_testing();
