# The spool's files: one per list and exit, named so that no two lists
# share one; the replay moves aside (and names) a file that is not a
# batch or that Redis refuses, and goes on with the files behind it; it
# reads off the event loop; status counts files without reading the
# directory.

use strict;
use warnings;

use lib 't/lib';
use Ingest::Test nginx => 0, consumer => 0;
use Ingest::Nginx;
use POSIX qw(mkfifo);
use Test::More;
use Time::HiRes qw(sleep time);

my $redis = $Ingest::Test::RedisPort;

sub cli { my $out = `redis-cli -p $redis @_ 2>/dev/null`; chomp $out; $out }

sub count { my ($log, $re) = @_; my @m = ($log =~ /$re/g); scalar @m }

# a spool directory both nginx of a test use, writable by their workers
sub spool_dir {
    my ($name) = @_;
    my $dir = "$Ingest::Test::Dir/$name";
    mkdir $dir;
    chmod 0777, $Ingest::Test::Dir, $dir;
    return $dir;
}

sub files { my ($dir, $glob) = @_; [ sort map { s{.*/}{}r } glob("$dir/$glob") ] }

# a file as the exit path writes it: the list, then a batch a line
sub spool_file {
    my ($path, $list, @batches) = @_;
    open my $out, '>', $path or die "$path: $!";
    print $out "$list\n", join("\n", @batches);
    close $out;
    chmod 0644, $path;
}

sub spool_batch {
    my ($producer, $seq, %counts) = @_;
    my $counts = join(',', map { "\"$_\":$counts{$_}" } sort keys %counts);
    return "{\"v\":1,\"kind\":\"counters\",\"producer\":\"$producer\","
           . "\"seq\":$seq,\"ts\":1,\"counts\":{$counts}}";
}

sub until_true {
    my ($secs, $cond) = @_;
    my $end = time + $secs;
    while (time < $end) { return 1 if $cond->(); sleep 0.05 }
    return $cond->();
}


# 1. Lists "a:b" and "a_b" once shared a file name, and one batch was
#    overwritten.  Each now has its own file, and both reach Redis.
{
    my $dir = spool_dir('spool1');
    cli('del', 's1:a:b', 's1:a_b');

    my $n = Ingest::Nginx->start(
        http => "ingest_redis 127.0.0.1:1; ingest_flush_interval 1h;"
                . " ingest_spool $dir;",
        server => 'location = /ab { ingest_counters queue=s1:a:b; }'
                  . ' location = /a_b { ingest_counters queue=s1:a_b; }');

    is(($n->post('/ab', 'k=1'))[0], 204, "collision: accepted for s1:a:b");
    is(($n->post('/a_b', 'k=2'))[0], 204, "collision: accepted for s1:a_b");

    $n->signal('TERM');
    ok(defined $n->wait_exit(10), "collision: nginx left");

    my $names = files($dir, '*.batch');
    is(scalar @$names, 2, "collision: two files, one per list");
    like(join(' ', @$names),
         qr/~s1%3Aa%3Ab~0{19}1\.batch .*~s1%3Aa_b~0{19}1\.batch/,
         "collision: each named by its list, percent-encoded");

    my $m = Ingest::Nginx->start(
        http => "ingest_redis $Ingest::Test::RedisAddr; ingest_spool $dir;",
        server => 'location = /ab { ingest_counters queue=s1:a:b; }'
                  . ' location = /a_b { ingest_counters queue=s1:a_b; }');

    ok(until_true(5, sub { cli('llen', 's1:a:b') == 1
                         && cli('llen', 's1:a_b') == 1 }),
       "collision: each list's batch is in Redis");
    like(cli('lindex', 's1:a:b', 0), qr/"counts":\{"k":1\}/,
         "collision: s1:a:b has its own count");
    like(cli('lindex', 's1:a_b', 0), qr/"counts":\{"k":2\}/,
         "collision: s1:a_b has its own count");
    ok(until_true(3, sub { @{ files($dir, '*.batch') } == 0 }),
       "collision: the files are gone once replayed");
    is(count($m->log, qr/ingest replayed spool file "[^"]+" \(1 batches\)/),
       2, "collision: two files replayed, logged");
}


# 2. A file that is not a batch, a FIFO, and a good file behind them: the
#    first two are moved aside, logged once each, and the third goes on.
#    The FIFO would hold a reader that blocks; the worker keeps serving.
{
    my $dir = spool_dir('spool2');
    cli('del', 's2:good', 's2:bad');

    spool_file("$dir/0~s2%3Abad~00000000000000000001.batch", 's2:bad',
               '{"v":1,"kind":"counters","producer":"x/1/1","seq":1,'
               . '"ts":1,"counts":{"k":');
    mkfifo("$dir/1~s2%3Afifo~00000000000000000001.batch", 0644) or die $!;
    spool_file("$dir/2~s2%3Agood~00000000000000000001.batch", 's2:good',
               spool_batch('t2/1/1', 1, k => 5), spool_batch('t2/1/1', 2, k => 6),
               spool_batch('t2/1/1', 3, j => 7));

    my $n = Ingest::Nginx->start(
        http => "ingest_redis $Ingest::Test::RedisAddr; ingest_spool $dir;",
        server => 'location = /c { ingest_counters queue=s2:good; }'
                  . ' location = /s { ingest_status; }');

    ok(until_true(5, sub { cli('llen', 's2:good') == 3 }),
       "aside: the good file's three batches are in Redis");
    is(join(',', map { /"seq":(\d+)/; $1 } split /\n/,
                 cli('lrange', 's2:good', 0, -1)),
       '1,2,3', "aside: in their order");

    my ($code, $body) = $n->get('/s', timeout => 3);
    is($code, 200, "aside: the worker that replays answers at once");
    like($body // '', qr/"spool_files":0,"spool_aside":2,/,
         "aside: status counts the files moved aside");

    is_deeply(files($dir, '*'),
              ['0~s2%3Abad~00000000000000000001.batch.malformed',
               '1~s2%3Afifo~00000000000000000001.batch.malformed'],
              "aside: both renamed, the good one removed");

    my $log = $n->log;
    is(count($log, qr/ingest spool file "[^"]+\/0~s2%3Abad~0+1\.batch" is malformed \(line 2 is not a whole batch\): moved aside as "0~s2%3Abad~0+1\.batch\.malformed"/),
       1, "aside: the malformed file logged once, with what is wrong");
    is(count($log, qr/ingest spool file "[^"]+\/1~s2%3Afifo~0+1\.batch" is malformed \(not a regular file\)/),
       1, "aside: the FIFO logged once");
    is(cli('llen', 's2:bad'), 0, "aside: nothing of the bad file sent");
}


# 3. A file Redis refuses for what it is (its list is a string): moved
#    aside as refused, and the file behind it goes on.
{
    my $dir = spool_dir('spool3');
    cli('del', 's3:ok');
    cli('set', 's3:str', 'notalist');

    spool_file("$dir/0~s3%3Astr~00000000000000000001.batch", 's3:str',
               spool_batch('t3/1/1', 1, k => 1));
    spool_file("$dir/1~s3%3Aok~00000000000000000001.batch", 's3:ok',
               spool_batch('t3/1/1', 1, k => 2) . "\n");

    my $n = Ingest::Nginx->start(
        http => "ingest_redis $Ingest::Test::RedisAddr; ingest_spool $dir;",
        server => 'location = /c { ingest_counters queue=s3:ok; }'
                  . ' location = /s { ingest_status; }');

    ok(until_true(5, sub { cli('llen', 's3:ok') == 1 }),
       "refused: the file behind it reached Redis");
    ok(until_true(3, sub { -e "$dir/0~s3%3Astr~00000000000000000001.batch.refused" }),
       "refused: the refused file is moved aside");
    is(cli('get', 's3:str'), 'notalist', "refused: the key is as it was");
    like($n->log, qr/ingest redis refused batch 1 of spool file "0~s3%3Astr~0+1\.batch" for "s3:str": WRONGTYPE [^;]+; moved aside as "0~s3%3Astr~0+1\.batch\.refused"/,
         "refused: logged with Redis's reason");
    unlike($n->log, qr/batch kept for retry/, "refused: not retried");
    cli('del', 's3:str');
}


# 4. A list whose name is too long for a file name once encoded: "#" and
#    its MD5, and the batch still reaches the list (named in the file).
{
    my $dir = spool_dir('spool4');
    my $list = 's4:' . ('/' x 120);
    cli('del', $list);

    my $n = Ingest::Nginx->start(
        http => "ingest_redis 127.0.0.1:1; ingest_flush_interval 1h;"
                . " ingest_spool $dir;",
        server => "location = /c { ingest_counters queue=$list; }");

    is(($n->post('/c', 'k=4'))[0], 204, "long name: accepted");
    $n->signal('TERM');
    ok(defined $n->wait_exit(10), "long name: nginx left");
    like(join(' ', @{ files($dir, '*.batch') }),
         qr/^[^~]+~#[0-9a-f]{32}~0{19}1\.batch$/,
         "long name: the list's part of the name is its hash");

    my $m = Ingest::Nginx->start(
        http => "ingest_redis $Ingest::Test::RedisAddr; ingest_spool $dir;",
        server => "location = /c { ingest_counters queue=$list; }");

    ok(until_true(5, sub { cli('llen', "'$list'") == 1 }),
       "long name: replayed into its list");
}

# 5. A malformed file that cannot be moved aside (a directory holds its
#    ".malformed" name): one alert, passed over from then on, and the file
#    behind it goes on.
{
    my $dir = spool_dir('spool5');
    cli('del', 's5:ok');

    spool_file("$dir/0~s5%3Abad~00000000000000000001.batch", 's5:bad',
               'not a batch');
    mkdir "$dir/0~s5%3Abad~00000000000000000001.batch.malformed";
    open my $in, '>', "$dir/0~s5%3Abad~00000000000000000001.batch.malformed/x";
    close $in;
    spool_file("$dir/1~s5%3Aok~00000000000000000001.batch", 's5:ok',
               spool_batch('t5/1/1', 1, k => 1));

    my $n = Ingest::Nginx->start(
        http => "ingest_redis $Ingest::Test::RedisAddr; ingest_spool $dir;",
        server => 'location = /c { ingest_counters queue=s5:ok; }'
                  . ' location = /s { ingest_status; }');

    ok(until_true(5, sub { cli('llen', 's5:ok') == 1 }),
       "stuck: the file behind it reached Redis");
    sleep 2.5;
    is(count($n->log, qr/ingest spool file "[^"]+\/0~s5%3Abad~0+1\.batch" is malformed \(line 2 is not a whole batch\) and cannot be moved aside; passed over for 60 s/),
       1, "stuck: one alert, not one a scan");
    my (undef, $body) = $n->get('/s');
    like($body // '', qr/"spool_files":1,"spool_aside":1,/,
         "stuck: status counts it as waiting");
}

# 6. A sharded list with the longest name nginx -t allows: its shards'
#    names are longer still, and their files are replayed all the same.
{
    my $dir = spool_dir('spool6');
    my $list = 's6' . ('x' x 198);
    cli('del', "'$list:{0}'", "'$list:{1}'");

    my $n = Ingest::Nginx->start(
        http => "ingest_redis 127.0.0.1:1; ingest_flush_interval 1h;"
                . " ingest_shards 2; ingest_spool $dir;",
        server => "location = /c { ingest_counters queue=$list; }");

    is(($n->post('/c', CORE::join('&', map { "k$_=1" } 1 .. 20)))[0], 204,
       "long shards: accepted");
    $n->signal('TERM');
    ok(defined $n->wait_exit(10), "long shards: nginx left");
    is(scalar @{ files($dir, '*.batch') }, 2, "long shards: a file each");

    my $m = Ingest::Nginx->start(
        http => "ingest_redis $Ingest::Test::RedisAddr; ingest_shards 2;"
                . " ingest_spool $dir;",
        server => "location = /c { ingest_counters queue=$list; }");

    ok(until_true(5, sub { cli('llen', "'$list:{0}'") == 1
                           && cli('llen', "'$list:{1}'") == 1 }),
       "long shards: each shard's batch replayed");
    unlike($m->log, qr/malformed/, "long shards: nothing moved aside");
}


# 7. A file bigger than the replay reads at once (8 MB): read in pieces
#    of whole lines, its batches sent in order, the file removed after.
{
    my $dir = spool_dir('spool7');
    cli('del', 's7:big');

    my @batches = map {
        my $b = $_;
        spool_batch('t7/1/1', $b, map { ("k${b}_$_" . ('x' x 40)) => 1 }
                                      1 .. 15000)
    } 1 .. 12;
    spool_file("$dir/0~s7%3Abig~00000000000000000001.batch", 's7:big',
               @batches);
    ok(-s "$dir/0~s7%3Abig~00000000000000000001.batch" > 8 * 1024 * 1024,
       "big file: over 8 MB");

    my $n = Ingest::Nginx->start(
        http => "ingest_redis $Ingest::Test::RedisAddr; ingest_spool $dir;",
        server => 'location = /c { ingest_counters queue=s7:big; }');

    ok(until_true(10, sub { cli('llen', 's7:big') == 12 }),
       "big file: its 12 batches are in Redis");
    is(join(',', map { /"seq":(\d+)/; $1 }
                 split /\n/, cli('lrange', 's7:big', 0, -1)),
       join(',', 1 .. 12), "big file: in order");
    ok(until_true(3, sub { @{ files($dir, '*') } == 0 }),
       "big file: removed once all are in");
    like($n->log, qr/ingest replayed spool file "0~s7%3Abig~0+1\.batch" \(12 batches\)/,
         "big file: logged once, with its batches");
    cli('del', 's7:big');
}


# 8. A replayed file that cannot be removed (immutable): sent once, one
#    alert, then passed over, not sent again at each scan.
SKIP: {
    my $dir = spool_dir('spool8');
    cli('del', 's8:ro');
    my $path = "$dir/0~s8%3Aro~00000000000000000001.batch";

    spool_file($path, 's8:ro', spool_batch('t8/1/1', 1, k => 1));
    skip "chattr +i does not work here", 3
        if system("chattr +i '$path' 2>/dev/null") != 0;

    my $n = Ingest::Nginx->start(
        http => "ingest_redis $Ingest::Test::RedisAddr; ingest_spool $dir;",
        server => 'location = /c { ingest_counters queue=s8:ro; }');

    ok(until_true(5, sub { cli('llen', 's8:ro') >= 1 }),
       "immutable: the batch reached Redis");
    sleep 2.5;
    is(cli('llen', 's8:ro'), 1, "immutable: once, not again at each scan");
    is(count($n->log, qr/ingest cannot remove replayed spool file "[^"]+"; passed over for 60 s/),
       1, "immutable: one alert");

    system("chattr -i '$path'");
}

# 9. More files that cannot be removed than the replay passes over (a
#    read-only directory, say): the replay pauses, and no file is sent
#    again and again.
SKIP: {
    my $dir = spool_dir('spool9');
    my @paths = map { "$dir/0~s9%3Ak$_~00000000000000000001.batch" } 1 .. 70;

    for my $i (1 .. 70) {
        cli('del', "s9:k$i");
        spool_file($paths[$i - 1], "s9:k$i",
                   spool_batch("t9/$i/1", 1, k => 1));
    }

    skip "chattr +i does not work here", 3
        if system("chattr +i " . join(' ', map { "'$_'" } @paths)
                  . " 2>/dev/null") != 0;

    my $n = Ingest::Nginx->start(
        http => "ingest_redis 127.0.0.1:$redis; ingest_spool $dir;",
        server => 'location = /c { ingest_counters queue=s9:k1; }');

    sleep 4;
    my @sent = map { cli('llen', "s9:k$_") } 1 .. 70;
    is(scalar(grep { $_ > 1 } @sent), 0, "read-only: no file sent twice");
    is(count($n->log, qr/the replay pauses for 60 s/), 1,
       "read-only: the replay pauses, said once");
    ok(count($n->log, qr/ingest cannot remove replayed spool file/) <= 70,
       "read-only: an alert a file at most");

    system("chattr -i " . join(' ', map { "'$_'" } @paths));
}

done_testing();
