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
        http => "ingest_redis 127.0.0.1:$redis; ingest_spool $dir;",
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
        http => "ingest_redis 127.0.0.1:$redis; ingest_spool $dir;",
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
        http => "ingest_redis 127.0.0.1:$redis; ingest_spool $dir;",
        server => 'location = /c { ingest_counters queue=s3:ok; }'
                  . ' location = /s { ingest_status; }');

    ok(until_true(5, sub { cli('llen', 's3:ok') == 1 }),
       "refused: the file behind it reached Redis");
    ok(until_true(3, sub { -e "$dir/0~s3%3Astr~00000000000000000001.batch.refused" }),
       "refused: the refused file is moved aside");
    is(cli('get', 's3:str'), 'notalist', "refused: the key is as it was");
    like($n->log, qr/ingest redis refused batch 1 of 1 of spool file "0~s3%3Astr~0+1\.batch" for "s3:str": WRONGTYPE [^;]+; moved aside as "0~s3%3Astr~0+1\.batch\.refused"/,
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
        http => "ingest_redis 127.0.0.1:$redis; ingest_spool $dir;",
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
        http => "ingest_redis 127.0.0.1:$redis; ingest_spool $dir;",
        server => 'location = /c { ingest_counters queue=s5:ok; }'
                  . ' location = /s { ingest_status; }');

    ok(until_true(5, sub { cli('llen', 's5:ok') == 1 }),
       "stuck: the file behind it reached Redis");
    sleep 2.5;
    is(count($n->log, qr/ingest spool file "[^"]+\/0~s5%3Abad~0+1\.batch" is malformed \(line 2 is not a whole batch\) and cannot be moved aside; passed over from now on/),
       1, "stuck: one alert, not one a scan");
    my (undef, $body) = $n->get('/s');
    like($body // '', qr/"spool_files":1,"spool_aside":1,/,
         "stuck: status counts it as waiting");
}

done_testing();
