# ingest-consumer --db postgresql://... on its own, batches written by
# hand: duplicates skipped, PostgreSQL stopped and started under it (no
# refusal), a consumer killed mid-window, a total that would overflow and
# records whose columns conflict with their table (refused, moved to the
# dead-letter list, requeued once fixed and applied once), consumers
# of two lists adding to the same keys at once, a constraint checked at
# COMMIT (the window applied again one batch per transaction), a
# producer that is not UTF-8 (unreadable), a dead batch PostgreSQL will
# not record (moved all the same), a trigger's RAISE EXCEPTION (refused),
# and lock_timeout and statement_timeout (read again after a backoff,
# never refused).  Plain and ASan builds.

use strict;
use warnings;

use lib 't/lib';
use Ingest::Test nginx => 0, consumer => 0;
use Ingest::Pg;
use Test::More;
use POSIX qw(SIGKILL);

my $uri = Ingest::Pg::start();
$Ingest::Test::Totals = \&Ingest::Pg::totals;

my @bins = grep { -x } map { "$Ingest::Test::Top/build/$_" }
           qw(ingest-consumer asan/ingest-consumer);

sub drained {
    my ($list) = @_;
    return wait_for(sub { (redis_cli('LLEN', $list) // 1) == 0 }, 20);
}

my $round = 0;

for my $bin (@bins) {
    $Ingest::Test::Consumer = $bin;
    my $tag = $bin =~ /asan/ ? 'asan' : 'plain';
    $round++;
    my $p = "t185/$round";
    my $list = "pgc:$round";
    my $log = "$Ingest::Test::Dir/pg-$round.log";

    # duplicates of a batch are applied once

    my $b1 = batch($p, 1, { "$p:a" => 5, "$p:b" => -1 });
    my $b2 = batch($p, 2, { "$p:a" => 1 });
    redis_cli('RPUSH', $list, $b1, $b1, $b2, $b1, $b2);

    my $pid = consumer_spawn(db => $uri, log => $log,
                             args => ['--queue', $list]);

    ok(drained($list), "$tag: the list is drained");
    is_deeply(wait_totals({ "$p:a" => 6, "$p:b" => -1 }),
              { "$p:a" => 6, "$p:b" => -1 },
              "$tag: each batch counted once, duplicates skipped");

    # PostgreSQL goes away and comes back: the consumer waits, then goes on

    Ingest::Pg::stop();
    redis_cli('RPUSH', $list, batch($p, 3, { "$p:a" => 100 }));

    ok(wait_for(sub { consumer_log($log) =~ /PostgreSQL is unreachable: .*; retrying/ }),
       "$tag: a lost PostgreSQL is logged");
    is(consumer_wait($pid, 0.5), undef, "$tag: and the consumer waits");

    ok(Ingest::Pg::start_again(), "$tag: PostgreSQL starts again");
    ok(drained($list), "$tag: the batch that waited is drained");
    is_deeply(wait_totals({ "$p:a" => 106 }), { "$p:a" => 106 },
              "$tag: and counted once");
    like(consumer_log($log), qr/PostgreSQL is back/,
         "$tag: the return is logged");
    is(redis_cli('LLEN', "$list:dead"), 0,
       "$tag: a lost PostgreSQL refuses no batch");
    is(scalar(() = consumer_log($log) =~ /is unreachable/g), 1,
       "$tag: the loss is logged once, not at every retry");

    # killed mid-window: the next consumer re-reads and skips what was done

    consumer_kill($pid, SIGKILL);
    redis_cli('RPUSH', $list,
              map { batch($p, 3 + $_, { "$p:k" => $_, "$p:n" => 1 }) }
              1 .. 300);
    $pid = consumer_spawn(db => $uri, log => $log,
                          args => ['--queue', $list, '--window', '7']);
    sleep 0.3;
    consumer_kill($pid, SIGKILL);
    $pid = consumer_spawn(db => $uri, log => $log,
                          args => ['--queue', $list, '--window', '7']);
    ok(drained($list), "$tag: 300 batches drained across a SIGKILL");
    my $want = { "$p:k" => 300 * 301 / 2, "$p:n" => 300 };
    is_deeply(wait_totals($want), $want, "$tag: each counted once");

    # a total that would overflow: that batch alone goes to the
    # dead-letter list; fixed by hand and requeued, it is applied once

    my $requeue = sub {
        my $out = `$bin --redis 127.0.0.1:$Ingest::Test::RedisPort --queue $list --requeue-dead 2>&1`;
        return $? >> 8;
    };
    my $alerts = sub {
        return scalar(() = consumer_log($log) =~ /\[alert\]/g);
    };

    redis_cli('RPUSH', $list,
              batch($p, 304, { "$p:big" => '9223372036854775807' }),
              batch($p, 305, { "$p:big" => 1, "$p:g" => 2 }),
              batch($p, 306, { "$p:g" => 3 }));
    ok(drained($list), "$tag: a window with an overflow is drained");
    is_deeply(wait_totals({ "$p:big" => '9223372036854775807',
                            "$p:g" => 3 }),
              { "$p:big" => '9223372036854775807', "$p:g" => 3 },
              "$tag: all of it but the overflowing batch applied");
    ok(wait_for(sub { $alerts->() == 1 }), "$tag: which is refused");
    like(consumer_log($log),
         qr/\[alert\] ingest-consumer: a batch of "\Q$list\E" \(producer "\Q$p\E", seq 305\) is refused: updating totals: ERROR: bigint out of range; moved to "\Q$list\E:dead"$/m,
         "$tag: saying why");
    is(redis_cli('LLEN', "$list:dead"), 1, "$tag: it is in $list:dead");
    is(consumer_wait($pid, 0.1), undef, "$tag: and the consumer goes on");

    Ingest::Pg::rows("UPDATE totals SET value = 0 WHERE key = '$p:big'");
    is($requeue->(), 0, "$tag: --requeue-dead after the fix exits 0");
    is_deeply(wait_totals({ "$p:big" => 1, "$p:g" => 5 }),
              { "$p:big" => 1, "$p:g" => 5 },
              "$tag: the requeued batch is applied once");
    ok(drained($list), "$tag: and the list drained");
    is(redis_cli('LLEN', "$list:dead"), 0, "$tag: $list:dead is empty");

    # records whose columns conflict with their table, the table fixed

    my $rec = sub {
        my ($seq, $types, $a) = @_;
        return qq({"v":1,"kind":"records","producer":"$p-r","seq":$seq,)
             . qq("ts":1,"table":"pgt$round","columns":["a","b"],)
             . qq("types":$types,"rows":[[$a,"r$seq"]]});
    };
    redis_cli('RPUSH', $list, $rec->(1, '["int","text"]', 1),
              $rec->(2, '["text","text"]', '"2"'),
              $rec->(3, '["int","text"]', 3));
    ok(wait_for(sub { $alerts->() == 2 }),
       "$tag: a batch whose columns conflict is refused");
    ok(drained($list), "$tag: the others applied");
    is_deeply(Ingest::Pg::rows("SELECT a, b FROM pgt$round ORDER BY b"),
              [[1, 'r1'], [3, 'r3']], "$tag: their rows are in the table");

    Ingest::Pg::rows("ALTER TABLE pgt$round ALTER COLUMN a TYPE text");
    is($requeue->(), 0, "$tag: --requeue-dead after the fix exits 0");
    ok(wait_for(sub { @{ Ingest::Pg::rows("SELECT a FROM pgt$round"
                                          . " WHERE b = 'r2'") // [] } }),
       "$tag: the requeued batch is applied");
    is_deeply(Ingest::Pg::rows("SELECT a, b FROM pgt$round ORDER BY b"),
              [[1, 'r1'], [2, 'r2'], [3, 'r3']], "$tag: once");
    is_deeply(Ingest::Pg::rows("SELECT last_seq FROM applied"
                               . " WHERE producer = '$p-r'"),
              [[3]], "$tag: its producer's last_seq stays 3");
    is_deeply(Ingest::Pg::rows('SELECT count(*) FROM dead_batches'), [[0]],
              "$tag: nothing is remembered as dead");
    is($alerts->(), 2, "$tag: nothing refused after the fix");
    consumer_kill($pid);
    redis_cli('DEL', $list);

    # two lists add to the same keys at once, in opposite orders: the row
    # locks are taken in key order, and a deadlock would be read again

    my @keys = map { "$p:shared$_" } 1 .. 50;
    for my $l ("$list:x", "$list:y") {
        my $q = "$p/$l";
        for my $from (map { $_ * 20 + 1 } 0 .. 9) {     # a command line each
            redis_cli('RPUSH', $l, map {
                batch($q, $_, { map { ($_ => 1) } @keys })
            } $from .. $from + 19);
        }
    }
    my @pair = map {
        consumer_spawn(db => $uri, log => "$log.$_",
                       args => ['--queue', "$list:$_", '--window', '3'])
    } qw(x y);
    ok(drained("$list:x") && drained("$list:y"),
       "$tag: two lists on the same keys drain");
    $want = { map { ($_ => 400) } @keys };
    is_deeply(wait_totals($want), $want,
              "$tag: 50 shared keys hold both lists' 400 each");
    consumer_kill($_) for @pair;
    unlike(consumer_log("$log.x") . consumer_log("$log.y"), qr/\[error\]/,
           "$tag: with no error");

    # a constraint checked at COMMIT (a DEFERRABLE INITIALLY DEFERRED
    # unique one an operator put on a records table): the window is
    # applied again one batch per transaction, so that the batches the
    # database takes are committed once and the one it refuses goes to
    # the dead-letter list

    my $dl = "$list:deferred";
    my $dlog = "$log.deferred";
    my $dt = "pgd$round";
    Ingest::Pg::rows("CREATE TABLE $dt (received_at bigint NOT NULL,"
                     . " a bigint, b text, CONSTRAINT ${dt}_a UNIQUE (a)"
                     . " DEFERRABLE INITIALLY DEFERRED)");
    my $drec = sub {
        my ($seq, $a) = @_;
        return qq({"v":1,"kind":"records","producer":"$p-d","seq":$seq,)
             . qq("ts":1,"table":"$dt","columns":["a","b"],)
             . qq("types":["int","text"],"rows":[[$a,"d$seq"]]});
    };
    my $dup = $drec->(3, 1);
    redis_cli('RPUSH', $dl, $drec->(1, 1), batch("$p-dc", 1, { "$p:dc" => 1 }),
              $drec->(2, 2), $dup, batch("$p-dc", 2, { "$p:dc" => 10 }),
              $drec->(4, 4));
    $pid = consumer_spawn(db => $uri, log => $dlog, args => ['--queue', $dl]);

    ok(drained($dl), "$tag: a window refused at COMMIT is drained");
    is_deeply(Ingest::Pg::rows("SELECT a, b FROM $dt ORDER BY a"),
              [[1, 'd1'], [2, 'd2'], [4, 'd4']],
              "$tag: the rows the database takes are in, once");
    is_deeply(wait_totals({ "$p:dc" => 11 }), { "$p:dc" => 11 },
              "$tag: and the counts of the window, once");
    is(redis_cli('LLEN', "$dl:dead"), 1, "$tag: one batch is refused");
    my ($dhead, $dbody) = split /\n/, redis_cli('LINDEX', "$dl:dead", 0), 2;
    is($dbody, $dup, "$tag: the one that breaks the constraint, unchanged");
    like($dhead, qr/^\{"reason":"COMMIT: ERROR: duplicate key value violates unique constraint \\"${dt}_a\\" DETAIL: Key \(a\)=\(1\) already exists\.","at":\d+,"consumer":"[^"]+","producer":"\Q$p\E-d","seq":3\}$/,
         "$tag: with the reason, said once");
    like(consumer_log($dlog), qr/\[warn\] ingest-consumer: the COMMIT of 6 batches of "\Q$dl\E" is refused \(COMMIT: ERROR: duplicate key value violates unique constraint "${dt}_a" DETAIL: Key \(a\)=\(1\) already exists\.\); applying them one per transaction$/m,
         "$tag: the split is logged");
    like(consumer_log($dlog), qr/\[alert\] ingest-consumer: a batch of "\Q$dl\E" \(producer "\Q$p\E-d", seq 3\) is refused: COMMIT: ERROR: duplicate key/,
         "$tag: the refusal is logged at alert");
    unlike(consumer_log($dlog), qr/COMMIT: COMMIT:|\[error\]/,
           "$tag: with no error and no doubled prefix");
    is_deeply(Ingest::Pg::rows("SELECT producer, queue, seq FROM dead_batches"),
              [["$p-d", $dl, 3]], "$tag: it is recorded as dead");
    is(consumer_wait($pid, 0.1), undef, "$tag: and the consumer goes on");

    # fixed and requeued: applied once
    Ingest::Pg::rows("UPDATE $dt SET a = 100 WHERE b = 'd1'");
    is(system("$bin --redis 127.0.0.1:$Ingest::Test::RedisPort --queue $dl"
              . " --requeue-dead >/dev/null 2>&1") >> 8, 0,
       "$tag: --requeue-dead after the fix exits 0");
    ok(wait_for(sub { @{ Ingest::Pg::rows("SELECT a FROM $dt"
                                          . " WHERE b = 'd3'") // [] } }),
       "$tag: the requeued batch is applied");
    ok(drained($dl), "$tag: and the list drained");
    is_deeply(Ingest::Pg::rows("SELECT a, b FROM $dt ORDER BY b"),
              [[100, 'd1'], [2, 'd2'], [1, 'd3'], [4, 'd4']], "$tag: once");
    is_deeply(Ingest::Pg::rows('SELECT count(*) FROM dead_batches'), [[0]],
              "$tag: nothing is remembered as dead");
    is_deeply(Ingest::Pg::totals()->{"$p:dc"}, 11, "$tag: the counts stay");
    is(consumer_kill($pid) >> 8, 0, "$tag: SIGTERM exits 0");
    like(consumer_log($dlog), qr/stopped: 6 batches applied, .* 1 refused/,
         "$tag: it counts each batch once");

    # a producer name that is not UTF-8, which PostgreSQL refuses in any
    # table, dead_batches too: the batch cannot be read, and goes to the
    # dead-letter list as such, recorded nowhere

    my $ul = "$list:utf8";
    my $ulog = "$log.utf8";
    my $notutf8 = qq({"v":1,"kind":"counters","producer":"$p/\xff","seq":1,)
                . qq("ts":1,"counts":{"$p:u":100}});
    my $at = index($notutf8, qq("$p/));
    # (redis_cli goes through a shell)
    system('redis-cli', '-p', $Ingest::Test::RedisPort, 'RPUSH', $ul,
           batch("$p-u", 1, { "$p:u" => 1 }), $notutf8,
           batch("$p-u", 2, { "$p:u" => 2 })) == 0 or die 'redis-cli failed';
    $pid = consumer_spawn(db => $uri, log => $ulog, args => ['--queue', $ul]);

    ok(drained($ul), "$tag: a list with a producer not in UTF-8 is drained");
    is_deeply(wait_totals({ "$p:u" => 3 }), { "$p:u" => 3 },
              "$tag: the batches around it are applied, once");
    is(redis_cli('LLEN', "$ul:dead"), 1, "$tag: it is refused");
    my ($uhead, $ubody) = split /\n/, redis_cli('LINDEX', "$ul:dead", 0), 2;
    is($ubody, $notutf8, "$tag: unchanged");
    like($uhead, qr/^\{"reason":"cannot be read: producer is not UTF-8 at byte $at","at":\d+,"consumer":"[^"]+"\}$/,
         "$tag: as a batch that cannot be read");
    is_deeply(Ingest::Pg::rows('SELECT count(*) FROM dead_batches'), [[0]],
              "$tag: recorded nowhere");
    is(consumer_wait($pid, 0.1), undef, "$tag: and the consumer goes on");
    unlike(consumer_log($ulog), qr/\[error\]/, "$tag: with no error");
    is(consumer_kill($pid) >> 8, 0, "$tag: SIGTERM exits 0");

    # recording a dead batch fails with a data error (here a CHECK an
    # operator put on dead_batches): the batch goes to the dead-letter
    # list all the same, with the reason it was refused, and the consumer
    # goes on

    my $xl = "$list:unrecorded";
    my $xlog = "$log.unrecorded";
    Ingest::Pg::rows("ALTER TABLE dead_batches ADD CONSTRAINT t185_x"
                     . " CHECK (producer <> '$p-x')");
    my $over = batch("$p-x", 2, { "$p:xmax" => 1, "$p:x" => 100 });
    redis_cli('RPUSH', $xl,
              batch("$p-x", 1, { "$p:xmax" => '9223372036854775807' }),
              $over, batch("$p-x", 3, { "$p:x" => 1 }));
    $pid = consumer_spawn(db => $uri, log => $xlog, args => ['--queue', $xl]);

    ok(drained($xl), "$tag: a refusal that cannot be recorded is drained");
    is_deeply(wait_totals({ "$p:xmax" => '9223372036854775807',
                            "$p:x" => 1 }),
              { "$p:xmax" => '9223372036854775807', "$p:x" => 1 },
              "$tag: the others applied once, nothing of it");
    is(redis_cli('LLEN', "$xl:dead"), 1, "$tag: it is in the dead-letter list");
    my ($xhead, $xbody) = split /\n/, redis_cli('LINDEX', "$xl:dead", 0), 2;
    is($xbody, $over, "$tag: unchanged");
    like($xhead, qr/^\{"reason":"updating totals: ERROR: bigint out of range","at":\d+,"consumer":"[^"]+","producer":"\Q$p\E-x","seq":2\}$/,
         "$tag: with the reason it was refused");
    like(consumer_log($xlog), qr/\[error\] ingest-consumer: recording a dead batch: ERROR: new row for relation "dead_batches" violates check constraint "t185_x" .*; seq 2 of producer "\Q$p\E-x" goes to "\Q$xl\E:dead" unrecorded \(requeued, it is skipped if its producer's last_seq is past it\)$/m,
         "$tag: the failure to record it is logged at error");
    like(consumer_log($xlog), qr/\[alert\] ingest-consumer: a batch of "\Q$xl\E" \(producer "\Q$p\E-x", seq 2\) is refused: updating totals: ERROR: bigint out of range; moved to "\Q$xl\E:dead"$/m,
         "$tag: the refusal at alert");
    is(consumer_wait($pid, 0.1), undef, "$tag: and the consumer goes on");
    Ingest::Pg::rows('ALTER TABLE dead_batches DROP CONSTRAINT t185_x');
    is(consumer_kill($pid) >> 8, 0, "$tag: SIGTERM exits 0");
    like(consumer_log($xlog), qr/stopped: 2 batches applied, .* 1 refused/,
         "$tag: having counted it once");

    # a trigger that raises an exception (SQLSTATE class P0) refuses
    # that batch: to the dead-letter list, the others applied

    my $rl = "$list:raise";
    my $rlog = "$log.raise";
    my $rt = "pgr$round";
    Ingest::Pg::rows("CREATE TABLE $rt (received_at bigint NOT NULL,"
                     . " a bigint, b text);"
                     . " CREATE FUNCTION ${rt}_f() RETURNS trigger"
                     . " LANGUAGE plpgsql AS \$\$BEGIN IF NEW.a < 0 THEN"
                     . " RAISE EXCEPTION 'negative a'; END IF;"
                     . " RETURN NEW; END\$\$;"
                     . " CREATE TRIGGER ${rt}_t BEFORE INSERT ON $rt"
                     . " FOR EACH ROW EXECUTE FUNCTION ${rt}_f()");
    my $rrec = sub {
        my ($seq, $a) = @_;
        return qq({"v":1,"kind":"records","producer":"$p-t","seq":$seq,)
             . qq("ts":1,"table":"$rt","columns":["a","b"],)
             . qq("types":["int","text"],"rows":[[$a,"t$seq"]]});
    };
    my $negative = $rrec->(2, -5);
    redis_cli('RPUSH', $rl, $rrec->(1, 1), $negative,
              batch("$p-tc", 1, { "$p:t" => 1 }), $rrec->(3, 3));
    $pid = consumer_spawn(db => $uri, log => $rlog, args => ['--queue', $rl]);

    ok(drained($rl), "$tag: a window with a RAISE EXCEPTION is drained");
    is_deeply(Ingest::Pg::rows("SELECT a, b FROM $rt ORDER BY a"),
              [[1, 't1'], [3, 't3']], "$tag: the other rows are in, once");
    is_deeply(wait_totals({ "$p:t" => 1 }), { "$p:t" => 1 },
              "$tag: and the counts, once");
    is(redis_cli('LLEN', "$rl:dead"), 1, "$tag: one batch is refused");
    my ($rhead, $rbody) = split /\n/, redis_cli('LINDEX', "$rl:dead", 0), 2;
    is($rbody, $negative, "$tag: the one the trigger raised for");
    like($rhead, qr/^\{"reason":"inserting rows: ERROR: negative a CONTEXT: PL\/pgSQL function ${rt}_f\(\) line 1 at RAISE","at":\d+,"consumer":"[^"]+","producer":"\Q$p\E-t","seq":2\}$/,
         "$tag: with the exception's message");
    is_deeply(Ingest::Pg::rows("SELECT producer, seq FROM dead_batches"),
              [["$p-t", 2]], "$tag: recorded as dead");
    is(consumer_wait($pid, 0.1), undef, "$tag: and the consumer goes on");
    unlike(consumer_log($rlog), qr/\[error\]/, "$tag: with no error");
    is(consumer_kill($pid) >> 8, 0, "$tag: SIGTERM exits 0");
    Ingest::Pg::rows("DELETE FROM dead_batches");

    # a lock held past lock_timeout, or a statement past
    # statement_timeout, is passing: the round is rolled back and read
    # again after a backoff that doubles, never refused, never an exit

    for my $guc (qw(lock_timeout statement_timeout)) {
        my $gl = "$list:$guc";
        my $glog = "$log.$guc";
        my $gp = "$p-$guc";
        $pid = consumer_spawn(db => "$uri?options=-c%20$guc%3D300",
                              log => $glog, args => ['--queue', $gl]);
        redis_cli('RPUSH', $gl, batch($gp, 1, { "$gp:n" => 1 }));
        is_deeply(wait_totals({ "$gp:n" => 1 }), { "$gp:n" => 1 },
                  "$tag: $guc 300 ms: a batch is applied");

        # a person holds totals for 2.5 s
        my $holder = fork // die "fork: $!";
        if ($holder == 0) {
            open STDOUT, '>', '/dev/null' or die $!;
            exec 'psql', $uri, '-X', '-qc',
                 'BEGIN; LOCK TABLE totals IN ACCESS EXCLUSIVE MODE;'
                 . ' SELECT pg_sleep(2.5); COMMIT;'
                or POSIX::_exit(127);
        }
        ok(wait_for(sub {
               (Ingest::Pg::rows("SELECT count(*) FROM pg_locks l"
                                 . " JOIN pg_class c ON c.oid = l.relation"
                                 . " WHERE c.relname = 'totals'"
                                 . " AND l.mode = 'AccessExclusiveLock'"
                                 . " AND l.granted") // [[0]])->[0][0] == 1
           }), "$tag: $guc: totals are locked");

        redis_cli('RPUSH', $gl, batch($gp, 2, { "$gp:n" => 10 }));
        my $cancel = $guc eq 'lock_timeout' ? 'lock timeout'
                                            : 'statement timeout';
        ok(wait_for(sub { consumer_log($glog) =~ /\Q$cancel\E/ }),
           "$tag: $guc: the statement is cancelled");
        is(consumer_wait($pid, 0.1), undef, "$tag: $guc: the consumer waits");
        waitpid $holder, 0;

        is_deeply(wait_totals({ "$gp:n" => 11 }), { "$gp:n" => 11 },
                  "$tag: $guc: once the lock is gone, the batch is applied once");
        ok(drained($gl), "$tag: $guc: the list is drained");
        is(redis_cli('LLEN', "$gl:dead"), 0, "$tag: $guc: nothing refused");
        my @waits = consumer_log($glog) =~ /^\S+ \[warn\] ingest-consumer: updating totals: ERROR: canceling statement due to \Q$cancel\E \(the round is read again in (\d+) ms\)$/mg;
        ok(@waits >= 2, "$tag: $guc: read again " . scalar(@waits)
                        . " times, logged at warn");
        is_deeply([ @waits[0, 1] ], [100, 200],
                  "$tag: $guc: after a backoff that doubles");
        unlike(consumer_log($glog), qr/\[(error|alert)\]/,
               "$tag: $guc: with no error");
        is(consumer_kill($pid) >> 8, 0, "$tag: $guc: SIGTERM exits 0");
        like(consumer_log($glog), qr/stopped: 2 batches applied, .* 0 refused/,
             "$tag: $guc: each batch counted once");
    }
    is_deeply(Ingest::Pg::rows('SELECT count(*) FROM dead_batches'), [[0]],
              "$tag: nothing is remembered as dead");
}

# a bad URI is a configuration error, exit 1

my $err = `$bins[0] --db postgresql://nobody\@127.0.0.1:1/none 2>&1`;
is($? >> 8, 1, 'an unreachable PostgreSQL at start exits 1');
like($err, qr/cannot connect to PostgreSQL: /, 'and says why');

done_testing();
