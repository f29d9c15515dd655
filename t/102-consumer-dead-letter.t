# The dead-letter list and --requeue-dead.  A batch refused for a column
# conflict or an overflow goes to <list>:dead while the later batches of
# its producer are applied; once the cause is fixed, --requeue-dead puts
# it back, unchanged, at the tail of the list, and it is applied exactly
# once although its producer's last_seq has passed it.  A refused batch
# whose record in dead_batches the database refuses in turn is moved all
# the same.  A database that stays busy is waited for, never a refusal.

use strict;
use warnings;

use lib 't/lib';
use Ingest::Test nginx => 0, consumer => 0;
use Test::More;
use DBI ();
use POSIX qw(SIGTERM);
use Time::HiRes qw(sleep time);

my $bin = $Ingest::Test::Consumer;
my $port = $Ingest::Test::RedisPort;
my $list = 'dl:q';
my $dead = 'dl:q:dead';
my $log = "$Ingest::Test::Dir/dead.log";

sub sql {
    my ($query) = @_;
    return Ingest::Test::sql_rows($query);
}

# a change to the database by hand, as a person fixing it would
sub fix {
    my (@statements) = @_;
    my $dbh = DBI->connect("dbi:SQLite:dbname=$Ingest::Test::Db", '', '',
                           { RaiseError => 1, PrintError => 0,
                             AutoCommit => 1 });
    $dbh->sqlite_busy_timeout(5000);
    $dbh->do($_) for @statements;
    $dbh->disconnect;
}

sub requeue {
    my $out = `$bin --redis 127.0.0.1:$port --queue $list --requeue-dead 2>&1`;
    return ($? >> 8, $out);
}

sub alerts {
    return scalar(() = consumer_log($log) =~ /\[alert\]/g);
}

sub rec {
    my ($seq, $types, $rows) = @_;
    return qq({"v":1,"kind":"records","producer":"t102/r","seq":$seq,)
         . qq("ts":1,"table":"dlt","columns":["a","b"],)
         . qq("types":$types,"rows":$rows});
}

my $pid = consumer_spawn(log => $log, args => ['--queue', $list]);


# records: the table is made from seq 1 (int, text); seq 2 (text, text)
# conflicts with it; seq 3 fits

my $conflict = rec(2, '["text","text"]', '[["2","r2"]]');
redis_cli('RPUSH', $list, rec(1, '["int","text"]', '[[1,"r1"]]'), $conflict,
          rec(3, '["int","text"]', '[[3,"r3"]]'));

ok(wait_for(sub { alerts() == 1 && redis_cli('LLEN', $list) eq '0' }),
   'the conflicting batch is refused and the list drained');
is(redis_cli('LLEN', $dead), 1, "it is the one batch in $dead");
is_deeply(sql('SELECT a, b FROM dlt ORDER BY rowid'), [[1, 'r1'], [3, 'r3']],
          'the batches before and after it are applied');
is_deeply(sql("SELECT last_seq FROM applied WHERE producer = 't102/r'"),
          [[3]], "its producer's last_seq went past it");
is_deeply(sql('SELECT producer, queue, seq FROM dead_batches'),
          [['t102/r', $list, 2]],
          'the database remembers it as dead, not applied');

# requeued before the fix: refused again, back in the dead-letter list

my ($status, $out) = requeue();
is($status, 0, '--requeue-dead exits 0');
like($out, qr/\[notice\] ingest-consumer: requeued 1 batches from "dl:q:dead" to the tail of "dl:q"$/m,
     'and says what it moved');
ok(wait_for(sub { alerts() == 2 }), 'unfixed, the batch is refused again');
ok(wait_for(sub { redis_cli('LLEN', $dead) eq '1' }), "and is in $dead again");
my (undef, $original) = split /\n/, redis_cli('LINDEX', $dead, 0), 2;
is($original, $conflict, 'still byte for byte the batch it was');

# the table fixed (column a becomes text), requeued: applied once

fix('CREATE TABLE dlt_new (received_at INTEGER NOT NULL, a TEXT, b TEXT)',
    'INSERT INTO dlt_new SELECT * FROM dlt', 'DROP TABLE dlt',
    'ALTER TABLE dlt_new RENAME TO dlt');

($status, $out) = requeue();
is($status, 0, '--requeue-dead after the fix exits 0');
ok(wait_for(sub { (sql("SELECT count(*) FROM dlt WHERE b = 'r2'")
                   // [[0]])->[0][0] == 1 }),
   'the requeued batch is applied');
is_deeply(sql('SELECT a, b FROM dlt ORDER BY rowid'),
          [[1, 'r1'], [3, 'r3'], [2, 'r2']], 'once, after the others');
is(redis_cli('LLEN', $dead), 0, "$dead is empty");
is(redis_cli('LLEN', $list), 0, 'and so is the list');
is_deeply(sql('SELECT count(*) FROM dead_batches'), [[0]],
          'the database no longer holds it as dead');
is_deeply(sql("SELECT last_seq FROM applied WHERE producer = 't102/r'"),
          [[3]], "its producer's last_seq stays 3");
is(alerts(), 2, 'no refusal after the fix');

# the same batch sent again (a producer's resend) is a duplicate now

redis_cli('RPUSH', $list, $conflict);
ok(wait_for(sub { consumer_log($log) =~ /applied 0 batches of "dl:q", skipped 1 already applied/ }),
   'sent again, it is skipped as applied');
is_deeply(sql("SELECT count(*) FROM dlt WHERE b = 'r2'"), [[1]],
          'and its row is there once');


# counters: a total that would overflow; fixed by hand, requeued

my $max = '9223372036854775807';
redis_cli('RPUSH', $list, batch('t102/c', 1, { 't102:max' => $max }),
          batch('t102/c', 2, { 't102:max' => 1, 't102:e' => 5 }),
          batch('t102/c', 3, { 't102:f' => 1 }));

is_deeply(wait_totals({ 't102:max' => $max, 't102:f' => 1,
                        't102:e' => undef }),
          { 't102:max' => $max, 't102:f' => 1, 't102:e' => undef },
          'the overflowing batch is left out, the next applied');
ok(wait_for(sub { alerts() == 3 && redis_cli('LLEN', $dead) eq '1' }),
   "it is in $dead");

fix("UPDATE totals SET value = 0 WHERE key = 't102:max'");
($status, $out) = requeue();
is($status, 0, '--requeue-dead exits 0');
is_deeply(wait_totals({ 't102:max' => 1, 't102:e' => 5, 't102:f' => 1 }),
          { 't102:max' => 1, 't102:e' => 5, 't102:f' => 1 },
          'requeued after the fix, it is applied once');

($status, $out) = requeue();
is($status, 0, '--requeue-dead with nothing dead exits 0');
like($out, qr/requeued 0 batches from "dl:q:dead"/, 'having moved nothing');


# recording a dead batch fails for a reason of the database's (here a
# trigger an operator put on dead_batches): the batch goes to the
# dead-letter list all the same, with the reason it was refused, and
# the consumer goes on

fix(q{CREATE TRIGGER t102_x BEFORE INSERT ON dead_batches
      WHEN NEW.producer = 't102/x' BEGIN SELECT RAISE(ABORT, 'not here'); END});
my $over = batch('t102/x', 2, { 't102:xmax' => 1, 't102:x' => 100 });
redis_cli('RPUSH', $list, batch('t102/x', 1, { 't102:xmax' => $max }),
          $over, batch('t102/x', 3, { 't102:x' => 1 }));

is_deeply(wait_totals({ 't102:xmax' => $max, 't102:x' => 1 }),
          { 't102:xmax' => $max, 't102:x' => 1 },
          'a refusal that cannot be recorded: the others applied once');
ok(wait_for(sub { alerts() == 4 && redis_cli('LLEN', $list) eq '0' }),
   'it is refused and the list drained');
is(redis_cli('LLEN', $dead), 1, "it is in $dead");
my ($xhead, $xbody) = split /\n/, redis_cli('LINDEX', $dead, 0), 2;
is($xbody, $over, 'unchanged');
like($xhead, qr/^\{"reason":"updating totals: total overflows a signed 64-bit integer \(key \\"t102:xmax\\"\)","at":\d+,"consumer":"[^"]+","producer":"t102\/x","seq":2\}$/,
     'with the reason it was refused');
like(consumer_log($log), qr/\[error\] ingest-consumer: recording a dead batch: not here; seq 2 of producer "t102\/x" goes to "dl:q:dead" unrecorded \(requeued, it is skipped if its producer's last_seq is past it\)$/m,
     'the failure to record it is logged at error');
is_deeply(sql("SELECT count(*) FROM dead_batches WHERE producer = 't102/x'"),
          [[0]], 'it is not recorded');
is(consumer_wait($pid, 0.1), undef, 'and the consumer goes on');
fix('DROP TRIGGER t102_x');
redis_cli('DEL', $dead);


# an element of the dead-letter list that is no dead batch stops the
# requeue and stays, with what was before it moved

# (redis_cli goes through a shell, which would eat the newline)
system('redis-cli', '-p', $port, 'RPUSH', $dead,
       "{\"reason\":\"x\"}\n" . batch('t102/m', 1, { 't102:m' => 1 }),
       'no header line') == 0 or die 'redis-cli failed';
($status, $out) = requeue();
is($status, 2, 'a foreign element in the dead-letter list: exit 2');
like($out, qr/\[error\] ingest-consumer: element 0 of "dl:q:dead" is not a dead batch \(no header line\); left there$/m,
     'saying which');
is_deeply(wait_totals({ 't102:m' => 1 }), { 't102:m' => 1 },
          'the dead batch before it was requeued and applied');
is(redis_cli('LINDEX', $dead, 0), 'no header line', 'the foreign one stays');
redis_cli('DEL', $dead);


# a database another process keeps locked past the busy timeout (10 s)
# is waited for: nothing refused, nothing stopped

my $holder = DBI->connect("dbi:SQLite:dbname=$Ingest::Test::Db", '', '',
                          { RaiseError => 1, PrintError => 0,
                            AutoCommit => 1 });
$holder->do('BEGIN IMMEDIATE');
redis_cli('RPUSH', $list, batch('t102/b', 1, { 't102:busy' => 7 }));
sleep 11.5;
is(consumer_wait($pid, 0.1), undef, 'a busy database does not stop it');
$holder->do('ROLLBACK');
$holder->disconnect;

is_deeply(wait_totals({ 't102:busy' => 7 }), { 't102:busy' => 7 },
          'once the database is free, the batch is applied');
is(redis_cli('LLEN', $dead), 0, 'and none was refused');
like(consumer_log($log), qr/\[warn\] ingest-consumer: BEGIN: database is locked \(the round is read again\)$/m,
     'the wait is logged');

is(consumer_kill($pid, SIGTERM) >> 8, 0, 'SIGTERM exits 0');
like(consumer_log($log), qr/, 4 refused \(moved to "dl:q:dead"\)$/m,
     'four refusals in all');

done_testing();
