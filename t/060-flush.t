# When a batch is cut, and what it holds, byte for byte.

use lib 't/lib';
use Ingest::Test;
use Test::Nginx::Socket 'no_plan';
use JSON::PP ();

our $Producer = qr{"producer":"[^"/]+/\d+/\d+"};

no_shuffle();
run_tests();

__DATA__

=== TEST 1: ingest_flush_keys cuts a batch at once
--- http_config
    ingest_redis $TEST_NGINX_REDIS;
    ingest_flush_interval 1h;
    ingest_flush_keys 3;
--- config
    location = /c { ingest_counters queue=t:flush1; }
--- more_headers
Content-Type: application/x-www-form-urlencoded
--- request eval
"POST /c\nf1:a=1&f1:b=2&f1:a=2&f1:%22q%22=-5"
--- error_code: 204
--- list eval
["t:flush1",
 qr/^\{"v":1,"kind":"counters",$main::Producer,"seq":1,"ts":\d{13},"counts":\{(?=.*"f1:a":3)(?=.*"f1:b":2)(?=.*"f1:\\"q\\"":-5)"[^}]*\}\}$/]
--- no_error_log
[error]
[alert]



=== TEST 2: batches of one producer rise by one, one in flight at a time
A request that comes while a batch waits for Redis's reply goes into the
next batch: two or three batches, seq 1, 2 (, 3), holding a, b, c once.
--- http_config
    ingest_redis $TEST_NGINX_REDIS;
    ingest_flush_interval 1h;
    ingest_flush_keys 1;
--- config
    location = /c { ingest_counters queue=t:flush2; }
--- more_headers
Content-Type: application/x-www-form-urlencoded
--- request eval
["POST /c\nf2:a=1", "POST /c\nf2:b=2", "POST /c\nf2:c=3"]
--- error_code eval
[204, 204, 204]
--- list eval
["t:flush2", sub {
    my @items = @_;
    my (%counts, $producer);
    for my $i (0 .. $#items) {
        $items[$i] =~ /^\{"v":1,"kind":"counters","producer":"([^"]+)","seq":(\d+),"ts":\d+,"counts":\{(.*)\}\}$/
            or return (0, "element $i malformed: $items[$i]");
        return (0, "seq $2 at element $i") unless $2 == $i + 1;
        return (0, "two producers") if defined $producer && $producer ne $1;
        $producer = $1;
        for my $pair (split /,/, $3) {
            my ($k, $v) = $pair =~ /^"([^"]+)":(-?\d+)$/
                or return (0, "bad count $pair");
            return (0, "$k twice") if exists $counts{$k};
            $counts{$k} = $v;
        }
    }
    my $got = join ",", map { "$_=$counts{$_}" } sort keys %counts;
    return $got eq "f2:a=1,f2:b=2,f2:c=3"
        ? (1, scalar(@items) . " batches, seq 1.." . scalar(@items))
        : (0, "counts $got");
}]
--- no_error_log
[error]



=== TEST 3: the interval flushes a table below ingest_flush_keys
--- http_config
    ingest_redis $TEST_NGINX_REDIS;
    ingest_flush_interval 50ms;
--- config
    location = /c { ingest_counters queue=t:flush3; }
--- more_headers
Content-Type: application/json
--- request eval
"POST /c\n{\"f3:x\":7}"
--- error_code: 204
--- list eval
["t:flush3", qr/"seq":1,"ts":\d+,"counts":\{"f3:x":7\}\}$/]
--- error_log
ingest batch seq:1 keys:1 acked by "t:flush3"



=== TEST 4: exit_process hands what is pending to Redis
--- http_config
    ingest_redis $TEST_NGINX_REDIS;
    ingest_flush_interval 1h;
--- config
    location = /c { ingest_counters queue=t:flush4; }
--- more_headers
Content-Type: application/x-www-form-urlencoded
--- request eval
"POST /c\nf4:pending=1&f4:other=2"
--- error_code: 204
--- no_error_log
ingest batch seq:1
[error]
--- shutdown_error_log
ingest flushed 2 keys to "t:flush4" at exit (batch seq 1)



=== TEST 5: the same at exit through the default list reaches SQLite
--- http_config
    ingest_redis $TEST_NGINX_REDIS;
    ingest_flush_interval 1h;
--- config
    location = /c { ingest_counters; }
--- more_headers
Content-Type: application/x-www-form-urlencoded
--- request eval
"POST /c\nf5:exit=1"
--- error_code: 204
--- shutdown_error_log
ingest flushed 1 keys to "ingest:counters" at exit (batch seq 1)



=== TEST 6: ... and the key of TEST 5 is in SQLite now
--- http_config
    ingest_redis $TEST_NGINX_REDIS;
    ingest_flush_interval 10ms;
--- config
    location = /c { ingest_counters; }
--- more_headers
Content-Type: application/x-www-form-urlencoded
--- request eval
"POST /c\nf6:after=1"
--- error_code: 204
--- totals eval
{ "f5:exit" => 1, "f6:after" => 1 }



=== TEST 7: a batch stays under 1 MB: one large request is cut into several
--- http_config
    ingest_redis $TEST_NGINX_REDIS;
    ingest_flush_interval 10ms;
--- config
    location = /c {
        ingest_counters queue=t:f7;
        client_max_body_size 8m;
        client_body_buffer_size 8m;
    }
--- more_headers
Content-Type: application/x-www-form-urlencoded
--- request eval
"POST /c\n" . CORE::join("&", map { "f7:key$_=$_" } 1 .. 100000)
--- error_code: 204
--- list eval
["t:f7", sub {
    my ($keys, $sum, $seq, $big) = (0, 0, 0, 0);
    for my $b (@_) {
        $big++ if length($b) > 1024 * 1024;
        my $doc = JSON::PP->new->decode($b);
        return (0, "seq $doc->{seq} after $seq") if $doc->{seq} != ++$seq;
        $keys += keys %{ $doc->{counts} };
        $sum += $_ for values %{ $doc->{counts} };
    }
    return (@_ >= 2 && !$big && $keys == 100000 && $sum == 5000050000,
            scalar(@_) . " batches, $big over 1 MB, $keys keys, sum $sum");
}]



=== TEST 8: ... and the same for rows
--- http_config
    ingest_redis $TEST_NGINX_REDIS;
    ingest_flush_interval 10ms;
--- config
    location = /r {
        ingest_records f8 queue=t:f8 id:int! t:text;
        client_max_body_size 8m;
        client_body_buffer_size 8m;
    }
--- request eval
"POST /r\n" . CORE::join("", map { "{\"id\":$_,\"t\":\"" . ("x" x 100) . "\"}\n" } 1 .. 20000)
--- error_code: 200
--- list eval
["t:f8", sub {
    my ($rows, $ids, $seq, $big) = (0, 0, 0, 0);
    for my $b (@_) {
        $big++ if length($b) > 1024 * 1024;
        my $doc = JSON::PP->new->decode($b);
        return (0, "seq $doc->{seq} after $seq") if $doc->{seq} != ++$seq;
        $rows += @{ $doc->{rows} };
        $ids += $_->[0] for @{ $doc->{rows} };
    }
    return (@_ >= 2 && !$big && $rows == 20000 && $ids == 200010000,
            scalar(@_) . " batches, $big over 1 MB, $rows rows, ids $ids");
}]



=== TEST 9: an Idempotency-Key request over half a batch is refused (it travels whole)
--- http_config
    ingest_redis $TEST_NGINX_REDIS;
    ingest_flush_interval 10ms;
--- config
    location = /c {
        ingest_counters queue=t:f9;
        client_max_body_size 8m;
        client_body_buffer_size 8m;
    }
--- more_headers
Content-Type: application/x-www-form-urlencoded
Idempotency-Key: f9-big
--- request eval
"POST /c\n" . CORE::join("&", map { "f9:key$_=1" } 1 .. 40000)
--- error_code: 413
--- response_body
{"error":"an Idempotency-Key request may hold at most 512k of counts per list"}



=== TEST 10: Idempotency-Key requests that would make a batch over half of 1 MB together go in batches of their own
--- http_config
    ingest_redis $TEST_NGINX_REDIS;
    ingest_flush_interval 1s;
--- config
    location = /c {
        ingest_counters queue=t:f10;
        client_max_body_size 8m;
        client_body_buffer_size 8m;
    }
--- more_headers
Content-Type: application/x-www-form-urlencoded
Idempotency-Key: f10
--- request eval
["POST /c\n" . CORE::join("&", map { "f10:" . ("a" x 40) . "$_=1" } 1 .. 8000),
 "POST /c\n" . CORE::join("&", map { "f10:" . ("b" x 40) . "$_=2" } 1 .. 8000)]
--- error_code eval
[204, 204]
--- list eval
["t:f10", sub {
    my ($ids, $sum, $seq, $big) = ("", 0, 0, 0);
    for my $b (@_) {
        $big++ if length($b) > 512 * 1024 + 4096;
        my $doc = JSON::PP->new->decode($b);
        return (0, "seq $doc->{seq} after $seq") if $doc->{seq} != ++$seq;
        for my $r (@{ $doc->{requests} // [] }) {
            $ids .= "$r->{id} ";
            $sum += $_ for values %{ $r->{counts} };
        }
    }
    return (@_ == 2 && !$big && $ids eq "f10 f10 " && $sum == 24000,
            scalar(@_) . " batches, $big over half, ids $ids, sum $sum");
}]



=== TEST 11: a records batch stays under 1 MB with its header (64 long column names)
--- http_config
    ingest_redis $TEST_NGINX_REDIS;
    ingest_flush_interval 10ms;
--- config eval
"location = /r {
    ingest_records f11 queue=t:f11 "
    . CORE::join(" ", map { sprintf("c%063d:int", $_) } 1 .. 64) . ";
    client_max_body_size 64m;
    client_body_buffer_size 64m;
}"
--- request eval
"POST /r\n" . CORE::join("", map { my $r = $_; "{" . CORE::join(",", map { sprintf("\"c%063d\":%d", $_, $r) } 1 .. 64) . "}\n" } 1 .. 6000)
--- error_code: 200
--- list eval
["t:f11", sub {
    my ($rows, $seq, $big, $max) = (0, 0, 0, 0);
    for my $b (@_) {
        $big++ if length($b) > 1024 * 1024;
        $max = length($b) if length($b) > $max;
        my $doc = JSON::PP->new->decode($b);
        return (0, "seq $doc->{seq} after $seq") if $doc->{seq} != ++$seq;
        $rows += @{ $doc->{rows} };
    }
    return (@_ >= 2 && !$big && $rows == 6000,
            scalar(@_) . " batches, $big over 1 MB (the longest $max), $rows rows");
}]
