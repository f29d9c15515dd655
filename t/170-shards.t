# ingest_shards: a counters list becomes n Redis lists, "<name>:{s}"; a
# key's shard is FNV-1a 32 of its bytes mod n (computed here again, as
# the README documents it); one consumer per shard, all into one SQLite
# file, make exact totals.

use lib 't/lib';
use Ingest::Test consumer => 0;
use Test::Nginx::Socket 'no_plan';

# the documented hash
sub shard_of {
    my ($key, $n) = @_;
    my $h = 2166136261;
    for my $byte (unpack 'C*', $key) {
        $h = (($h ^ $byte) * 16777619) & 0xffffffff;
    }
    return $h % $n;
}

# the counts of every batch of each shard of LIST: { shard => { k => v } },
# with the keys of Idempotency-Key requests under "id:<id>"
sub shard_counts {
    my ($list, $n) = @_;
    my %got;
    for my $s (0 .. $n - 1) {
        # --raw: one batch a line, its bytes as they are
        my $all = `redis-cli -p $Ingest::Test::RedisPort --raw LRANGE \Q$list:{$s}\E 0 -1`;
        for my $item (grep { length } split /\n/, $all) {
            my ($counts) = $item =~ /"counts":\{([^}]*)\}/;
            for my $pair (split /,/, $counts // '') {
                my ($k, $v) = $pair =~ /^"(.*)":(-?\d+)$/;
                $got{$s}{$k} += $v;
            }
            while ($item =~ /\{"id":"([^"]+)","counts":\{([^}]*)\}\}/g) {
                my $id = $1;
                for my $pair (split /,/, $2) {
                    my ($k, $v) = $pair =~ /^"(.*)":(-?\d+)$/;
                    $got{$s}{"id:$id"}{$k} += $v;
                }
            }
        }
    }
    return \%got;
}

# one consumer per shard of "s:e2e", one SQLite file
my @consumers = map {
    consumer_spawn(args => ['--queue', "s:e2e:{$_}"],
                   log => "$Ingest::Test::Dir/consumer$_.log")
} 0 .. 2;

END { consumer_kill($_) for @consumers }

add_block_preprocessor(sub {
    my $block = shift;
    Ingest::Test::redis_cli('SET', 's:ack2:{1}', 'not a list')
        if $block->name =~ /504 when one shard/;
});

no_shuffle();
run_tests();

__DATA__

=== TEST 1: ingest_shards takes 1 to 64
--- http_config
    ingest_redis $TEST_NGINX_REDIS;
    ingest_shards 65;
--- config
    location = /c { ingest_counters; }
--- request
GET /c
--- must_die
--- error_log
value must be between 1 and 64



=== TEST 2: a sharded list name must not hold a hash tag of its own
--- http_config
    ingest_redis $TEST_NGINX_REDIS;
    ingest_shards 2;
--- config
    location = /c { ingest_counters "queue={app}:counters"; }
--- request
GET /c
--- must_die
--- error_log
sharded list "{app}:counters" must not hold a "{": each shard's name ends in a hash tag of its own



=== TEST 3: counters and records cannot share a sharded list
--- http_config
    ingest_redis $TEST_NGINX_REDIS;
    ingest_shards 2;
--- config
    location = /c { ingest_counters queue=both; }
    location = /r { ingest_records trips queue=both id:int; }
--- request
GET /c
--- must_die
--- error_log
list "both" is used by "ingest_counters" and by "ingest_records": with "ingest_shards" a counters list is sharded and a records list is not, give them different names



=== TEST 4: ingest_ack redis with shards: 204 once every shard's batch is in Redis
With two shards, "a" and "e" fall in shard 0 and "b" in shard 1.
--- http_config
    ingest_redis $TEST_NGINX_REDIS;
    ingest_shards 2;
    ingest_flush_interval 20ms;
--- config
    location = /c { ingest_counters queue=s:ack; ingest_ack redis; }
--- more_headers
Content-Type: application/x-www-form-urlencoded
--- request
POST /c
a=1&b=2&e=5
--- error_code: 204
--- list eval
["s:ack:{0}", sub {
    my $one = Ingest::Test::redis_cli('LRANGE', 's:ack:{1}', 0, -1) // '';
    return (0, "shard 1: $one") unless $one =~ /"counts":\{"b":2\}/;
    return $_[0] =~ /"counts":\{(?=[^}]*"a":1)(?=[^}]*"e":5)[^}]*\}/
        ? (1, "each shard's batch in Redis when 204 came")
        : (0, "shard 0: @_");
}]
--- no_error_log
[error]



=== TEST 5: ... and 504 when one shard's batch is not taken in time
Shard 1's list is a string, so Redis refuses its RPUSH (WRONGTYPE):
shard 0's batch alone is not enough for an answer.
--- http_config
    ingest_redis $TEST_NGINX_REDIS;
    ingest_shards 2;
    ingest_flush_interval 20ms;
--- config
    location = /c {
        ingest_counters queue=s:ack2;
        ingest_ack redis;
        ingest_ack_timeout 300ms;
    }
--- more_headers
Content-Type: application/x-www-form-urlencoded
--- request
POST /c
a=1&b=2
--- error_code: 504
--- response_body
{"error":"not acknowledged by Redis in time; the increments may or may not be counted"}
--- error_log
ingest batch seq 1 of "s:ack2:{1}" not acknowledged by Redis within ingest_ack_timeout: answering 504
ingest redis RPUSH to "s:ack2:{1}" failed: WRONGTYPE



=== TEST 6: more than 64 Redis lists
--- http_config
    ingest_redis $TEST_NGINX_REDIS;
    ingest_shards 40;
--- config
    location = /a { ingest_counters queue=a; }
    location = /b { ingest_counters queue=b; }
--- request
GET /a
--- must_die
--- error_log
more than 64 Redis lists with list "b" and its shards



=== TEST 7: each key goes to the shard its hash names, and only there
The keys are hashed as received: "%C3%A9t%C3%A9" is the 5 bytes of "été".
--- http_config
    ingest_redis $TEST_NGINX_REDIS;
    ingest_flush_interval 20ms;
    ingest_shards 4;
--- config
    location = /c { ingest_counters queue=s:route; }
--- more_headers
Content-Type: application/x-www-form-urlencoded
--- request eval
"POST /c\n" . CORE::join("&", map { "r$_=$_" } 1 .. 40) . "&%C3%A9t%C3%A9=7&r1=100"
--- error_code: 204
--- list eval
["s:route:{0}", sub {
    my $got = main::shard_counts("s:route", 4);
    my %want;
    $want{main::shard_of("r$_", 4)}{"r$_"} = $_ for 1 .. 40;
    $want{main::shard_of("r1", 4)}{r1} += 100;
    $want{main::shard_of("\xc3\xa9t\xc3\xa9", 4)}{"\xc3\xa9t\xc3\xa9"} = 7;
    my $shards = keys %$got;
    return Test::More::eq_hash($got, \%want)
        ? (1, "41 keys in $shards shards, each in its own")
        : (0, "shards hold " . CORE::join(" ", map { my $s = $_;
              "$s:{" . CORE::join(",", map { "$_=$got->{$s}{$_}" }
                                 sort keys %{ $got->{$s} }) . "}" }
              sort keys %$got));
}]
--- no_error_log
[error]



=== TEST 8: a refused request changes no shard
The first request takes "a" (shard 0) to the top; the second adds "b",
"c", "d", "e" (shards 1, 2, 3, 0) and then overflows "a": 400.  At exit,
shard 0 holds "a" alone and shard 1 "f" alone; without the undo they
would hold two keys each.
--- http_config
    ingest_redis $TEST_NGINX_REDIS;
    ingest_flush_interval 1h;
    ingest_shards 4;
--- config
    location = /c { ingest_counters queue=s:undo; }
--- more_headers
Content-Type: application/x-www-form-urlencoded
--- request eval
["POST /c\na=9223372036854775807",
 "POST /c\nb=1&c=2&d=3&e=4&a=1",
 "POST /c\nf=5"]
--- error_code eval
[204, 400, 204]
--- response_body eval
["", "{\"error\":\"sum overflows\",\"at\":16}\n", ""]
--- shutdown_error_log
ingest flushed 1 keys to "s:undo:{0}" at exit (batch seq 1)
ingest flushed 1 keys to "s:undo:{1}" at exit (batch seq 1)



=== TEST 9: an Idempotency-Key request splits over the shards, same id
--- http_config
    ingest_redis $TEST_NGINX_REDIS;
    ingest_flush_interval 20ms;
    ingest_shards 3;
--- config
    location = /c { ingest_counters queue=s:idem; }
--- more_headers
Content-Type: application/x-www-form-urlencoded
Idempotency-Key: order-17
--- request eval
"POST /c\n" . CORE::join("&", map { "i$_=$_" } 1 .. 12)
--- error_code: 204
--- list eval
["s:idem:{0}", sub {
    my $got = main::shard_counts("s:idem", 3);
    my %want;
    $want{main::shard_of("i$_", 3)}{"id:order-17"}{"i$_"} = $_ for 1 .. 12;
    return Test::More::eq_hash($got, \%want)
        ? (1, "order-17 in " . keys(%$got) . " shards")
        : (0, "not split by shard");
}]



=== TEST 10: three shards, three consumers, one SQLite file: exact totals
--- http_config
    ingest_redis $TEST_NGINX_REDIS;
    ingest_flush_interval 20ms;
    ingest_shards 3;
--- config
    location = /c { ingest_counters queue=s:e2e; }
--- more_headers
Content-Type: application/x-www-form-urlencoded
--- request eval
["POST /c\n" . CORE::join("&", map { "e$_=$_" } 1 .. 30),
 "POST /c\n" . CORE::join("&", map { "e$_=-1" } 1 .. 30) . "&e1=1000"]
--- error_code eval
[204, 204]
--- totals eval
+{ (map { ("e$_" => $_ - 1) } 2 .. 30), e1 => 1000 }



=== TEST 11: an Idempotency-Key request sent twice counts once in every shard
--- http_config
    ingest_redis $TEST_NGINX_REDIS;
    ingest_flush_interval 20ms;
    ingest_shards 3;
--- config
    location = /c { ingest_counters queue=s:e2e; }
--- more_headers
Content-Type: application/x-www-form-urlencoded
Idempotency-Key: twice-1
--- request eval
["POST /c\n" . CORE::join("&", map { "d$_=$_" } 1 .. 12),
 "POST /c\n" . CORE::join("&", map { "d$_=$_" } 1 .. 12)]
--- error_code eval
[204, 204]
--- totals eval
+{ map { ("d$_" => $_) } 1 .. 12 }



=== TEST 12: the status endpoint shows each shard's list and its consumer
--- http_config
    ingest_redis $TEST_NGINX_REDIS;
    ingest_shards 3;
--- config
    location = /c { ingest_counters queue=s:e2e; }
    location = /s { ingest_status; }
--- request
GET /s?format=prometheus
--- error_code: 200
--- response_body_like eval
qr/ingest_queue_depth\{queue="s:e2e:\{0\}"\} \d+\n.*ingest_queue_depth\{queue="s:e2e:\{1\}"\} \d+\n.*ingest_queue_depth\{queue="s:e2e:\{2\}"\} \d+\n/s
