# The Debian packages, as an operator gets them: ci/package in a fresh
# clone builds libnginx-mod-http-ingest and ingest-consumer; dpkg -i
# installs them, and the module is enabled the way Debian's
# libnginx-mod-* are (nginx -t with Debian's own nginx.conf loads it); the
# consumer's unit passes systemd-analyze verify and is sandboxed to an
# exposure of 2.0 or less; then the packaged pieces run together:
# Debian's nginx with the packaged conf.d snippet and site (a master of
# the test's own, on a free port, workers as www-data), the consumer as
# the packaged user ingest with the settings of the packaged
# /etc/ingest/counters.conf as the unit would pass them, and counters
# posted to nginx come back through /totals/, read by the workers from
# /var/lib/ingest through group ingest, also once the consumer stopped.
# dpkg --purge then leaves nginx -t passing and nothing of the packages
# behind (the user ingest stays: Debian leaves system users).
#
# Needs root (dpkg, a system user) and dpkg-buildpackage with dh_nginx
# (nginx-dev); skips where the packages, /var/lib/ingest or /etc/ingest
# are there already (not the test's to purge).  It never starts, stops or
# reloads a service itself: with no systemd as PID 1 (a container), and
# with one, it runs its own processes only (dpkg's nginx-reload trigger
# reloads a system nginx that runs, as any module package's install does).

use strict;
use warnings;

use lib 't/lib';
use Test::More;
use Cwd qw(abs_path);

my @pkgs;
my $top;

BEGIN {
    $top = abs_path(__FILE__) =~ s{/t/220-package\.t$}{}r;
    @pkgs = ('libnginx-mod-http-ingest', 'ingest-consumer');

    my $have = sub {
        my ($tool) = @_;
        return grep { -x "$_/$tool" } split /:/, $ENV{PATH} // '';
    };

    plan skip_all => 'needs root (dpkg -i, the system user ingest)'
        if $> != 0;
    plan skip_all => 'needs dpkg-buildpackage and dh_nginx (dpkg-dev, '
                     . 'nginx-dev)'
        unless $have->('dpkg-buildpackage') && $have->('dh_nginx');
    plan skip_all => "needs a git clone of the project"
        unless -d "$top/.git" || -f "$top/.git";
    for my $pkg (@pkgs) {
        my $status = `dpkg-query -W -f='\${Status}' $pkg 2>/dev/null`;
        plan skip_all => "$pkg is installed already: not the test's to purge"
            if $status =~ /installed|config-files|half/;
    }
    for my $path ('/var/lib/ingest', '/etc/ingest') {
        plan skip_all => "$path exists already: not the test's to remove"
            if -e $path;
    }
}

use Ingest::Test nginx => 0, consumer => 0;
use Ingest::Nginx;
use File::Temp qw(tempdir);
use POSIX qw(SIGTERM);
use Time::HiRes qw(sleep time);

my $dir = tempdir("ingest-package-XXXXXX", TMPDIR => 1, CLEANUP => 1);
my $version = do { open my $v, '<', "$top/VERSION" or die $!; <$v> };
chomp $version;
my $arch = `dpkg --print-architecture`;
chomp $arch;

my $installed = 0;
my ($nginx, $consumer_pid);

# a command's output (stdout and stderr together) and exit status
sub run {
    my (@cmd) = @_;
    my $pid = open(my $out, '-|') // die "fork: $!";
    if ($pid == 0) {
        open STDERR, '>&', \*STDOUT or POSIX::_exit(127);
        exec @cmd or POSIX::_exit(127);
    }
    my $text = do { local $/; <$out> } // '';
    close $out;
    return ($text, $? >> 8);
}

sub slurp {
    my ($file) = @_;
    open my $in, '<', $file or return undef;
    local $/;
    return scalar <$in>;
}

sub purge {
    return unless $installed;
    my ($out, $rc) = run('dpkg', '--purge', @pkgs);
    $installed = 0 if $rc == 0;
    return ($out, $rc);
}

END {
    local $?;
    kill SIGTERM, $consumer_pid if $consumer_pid;
    waitpid $consumer_pid, 0 if $consumer_pid;
    $nginx->stop if $nginx;
    # a test that died half-way leaves the system as it found it
    purge();
}

diag('systemd is ' . (-d '/run/systemd/system' ? '' : 'not ')
     . 'PID 1 here; nothing of this test goes through it');

# --- build, from a fresh clone ---------------------------------------------

my ($out, $rc) = run('git', 'clone', '-q', $top, "$dir/src");
is($rc, 0, 'git clone of the project') or diag($out);

my $debs = "$dir/deb";
my $pid = open(my $pkg_out, '-|') // die "fork: $!";
if ($pid == 0) {
    open STDERR, '>', "$dir/package.log" or POSIX::_exit(127);
    exec "$dir/src/ci/package", $debs or POSIX::_exit(127);
}
my @printed = map { chomp; $_ } <$pkg_out>;
close $pkg_out;
is($? >> 8, 0, 'ci/package succeeds') or diag(slurp("$dir/package.log"));

my %deb = map { $_ => "$debs/${_}_${version}_$arch.deb" } @pkgs;
is_deeply(\@printed, [ @deb{@pkgs} ],
          'ci/package prints the paths of the two .debs, VERSION\'s version')
    or BAIL_OUT('no packages');
is_deeply([ sort glob("$debs/*.deb") ], [ sort values %deb ],
          'only the two .debs in its directory (debug symbols apart)');

my $abi = slurp('/usr/share/nginx/src/debian/libnginx-mod.abisubstvars')
          =~ /^nginx:abi=(\S+)$/m ? $1 : 'no abi';
my %depends;
for my $p (@pkgs) {
    my $d = `dpkg-deb -f $deb{$p} Depends`;
    chomp $d;
    # names only: the libraries' versions are the build's
    $depends{$p} = [ map { s/ \([^)]*\)//gr } split /, /, $d ];
}
is_deeply($depends{'libnginx-mod-http-ingest'},
          [ $abi, 'libc6', 'libhiredis0.14', 'libsqlite3-0' ],
          "the module depends on $abi (dh_nginx), then its libraries");
is_deeply($depends{'ingest-consumer'},
          [ 'systemd | systemd-standalone-sysusers | systemd-sysusers',
            'libc6', 'libhiredis0.14', 'libpq5', 'libsqlite3-0' ],
          'the consumer depends on systemd-sysusers, then its libraries');

SKIP: {
    skip 'lintian is not installed', 1 unless -f "$debs/lintian.txt";
    my $lintian = slurp("$debs/lintian.txt");
    my @errors = $lintian =~ /^(E: .*)$/mg;
    is_deeply(\@errors, [], 'lintian: no errors on the two packages');
    diag("lintian: $_") for $lintian =~ /^([WI]: .*)$/mg;
}

# --- install -----------------------------------------------------------------

($out, $rc) = run('dpkg', '-i', @deb{@pkgs});
$installed = 1;
is($rc, 0, 'dpkg -i of both packages') or BAIL_OUT("dpkg -i:\n$out");

my %files;
for my $p (@pkgs) {
    my @list = `dpkg -L $p`;
    chomp @list;
    $files{$p} = \@list;
}

my %expect = (
    'libnginx-mod-http-ingest' => [
        '/usr/lib/nginx/modules/ngx_http_ingest_module.so',
        '/usr/share/doc/libnginx-mod-http-ingest/README.md.gz',
        '/usr/share/doc/libnginx-mod-http-ingest/changelog.gz',
        '/usr/share/doc/libnginx-mod-http-ingest/copyright',
        '/usr/share/doc/libnginx-mod-http-ingest/examples/conf.d/ingest.conf',
        '/usr/share/doc/libnginx-mod-http-ingest/examples/sites-available/ingest',
        '/usr/share/nginx/modules-available/mod-http-ingest.conf',
    ],
    'ingest-consumer' => [
        '/etc/ingest/counters.conf',
        '/lib/systemd/system/ingest-consumer@.service',
        '/usr/bin/ingest-consumer',
        '/usr/lib/sysusers.d/ingest.conf',
        '/usr/lib/tmpfiles.d/ingest.conf',
        '/usr/share/doc/ingest-consumer/README.md.gz',
        '/usr/share/doc/ingest-consumer/changelog.gz',
        '/usr/share/doc/ingest-consumer/copyright',
        '/usr/share/man/man8/ingest-consumer.8.gz',
    ],
);
for my $p (@pkgs) {
    is_deeply([ sort grep { -f $_ } @{ $files{$p} } ], $expect{$p},
              "$p installs exactly its files");
}

is(readlink('/etc/nginx/modules-enabled/50-mod-http-ingest.conf'),
   '/usr/share/nginx/modules-available/mod-http-ingest.conf',
   'the module is enabled: modules-enabled/50-mod-http-ingest.conf');
is(slurp('/usr/share/nginx/modules-available/mod-http-ingest.conf'),
   "load_module modules/ngx_http_ingest_module.so;\n",
   'mod-http-ingest.conf loads the module');

($out, $rc) = run('/usr/sbin/nginx', '-t');
is($rc, 0, 'nginx -t with Debian\'s nginx.conf and the module enabled')
    or diag($out);
($out, $rc) = run('/usr/sbin/nginx', '-T');
like($out, qr/^load_module modules\/ngx_http_ingest_module\.so;$/m,
     'nginx -T: Debian\'s nginx.conf includes the module\'s load_module');

my @pw = getpwnam('ingest');
my @gr = getgrnam('ingest');
is_deeply([ $pw[7], $pw[8] ], [ '/var/lib/ingest', '/usr/sbin/nologin' ],
          'the system user ingest: home /var/lib/ingest, no shell');
cmp_ok($pw[2], '<', 1000, 'ingest is a system user');
is($pw[3], $gr[2], 'its group is ingest');
is_deeply([ split / /, $gr[3] ], [ 'www-data' ],
          'www-data is a member of group ingest');

sub mode_owner {
    my ($path) = @_;
    my @st = stat $path or return "missing";
    return sprintf("%04o %s:%s", $st[2] & 07777, scalar getpwuid($st[4]),
                   scalar getgrgid($st[5]));
}

is(mode_owner('/var/lib/ingest'), '0750 ingest:ingest',
   '/var/lib/ingest: 0750 ingest:ingest (the group reads, others nothing)');

# the packaged settings, read as systemd reads an EnvironmentFile
my %env;
for (split /\n/, slurp('/etc/ingest/counters.conf') // '') {
    next if /^\s*(?:[#;].*)?$/;
    /^\s*(\w+)\s*=\s*(.*?)\s*$/ or die "counters.conf: bad line: $_";
    my ($k, $v) = ($1, $2);
    $v =~ s/^"(.*)"$/$1/ or $v =~ s/^'(.*)'$/$1/;
    $env{$k} = $v;
}
is_deeply(\%env, {
    INGEST_REDIS => 'redis://ingest-consumer@127.0.0.1:6379',
    INGEST_PASSWORD_FILE => '/etc/ingest/redis.password',
    INGEST_QUEUE => 'ingest:counters',
    INGEST_DB => '/var/lib/ingest/counters.db',
    INGEST_OPTIONS => '',
}, '/etc/ingest/counters.conf: the settings of ingest-consumer@counters');

# the unit's ExecStart= with them, as systemd expands it: ${NAME} is one
# word, $NAME is split at whitespace
my $unit_file = '/lib/systemd/system/ingest-consumer@.service';
my $unit = slurp($unit_file) =~ s/\\\n/ /gr;
my ($exec) = $unit =~ /^ExecStart=(.*)$/m;
my @args;
for my $word (split ' ', $exec // '') {
    if ($word =~ /^\$(\w+)$/) {
        push @args, split ' ', $env{$1} // '';
    } else {
        $word =~ s/\$\{(\w+)\}/$env{$1} \/\/ ''/ge;
        push @args, $word;
    }
}
is_deeply(\@args, [ '/usr/bin/ingest-consumer',
                    '--redis', 'redis://ingest-consumer@127.0.0.1:6379',
                    '--password-file', '/etc/ingest/redis.password',
                    '--queue', 'ingest:counters',
                    '--db', '/var/lib/ingest/counters.db' ],
          'ExecStart= with counters.conf: the consumer\'s command');
like($unit, qr/^User=ingest$/m, 'the unit runs as ingest');
like($unit, qr/^Group=ingest$/m, '... group ingest');
like($unit, qr/^EnvironmentFile=\/etc\/ingest\/%i\.conf$/m,
     '... with /etc/ingest/<instance>.conf');
like($unit, qr/^StateDirectory=ingest$/m, '... in /var/lib/ingest');
like($unit, qr/^StateDirectoryMode=0750$/m, '... 0750');
like($unit, qr/^UMask=0027$/m, '... files 0640');
like($unit, qr/^Restart=on-failure$/m, '... restarted on failure');
like($unit, qr/^RestartPreventExitStatus=2$/m,
     '... but not after exit 2 (the database failed for good)');
unlike($unit, qr/^DynamicUser=/m, '... no DynamicUser');

SKIP: {
    skip 'systemd-analyze is not installed', 3
        unless grep { -x "$_/systemd-analyze" } split /:/, $ENV{PATH};

    ($out, $rc) = run('systemd-analyze', 'verify', $unit_file);
    is($rc, 0, 'systemd-analyze verify passes on the unit');
    is($out, '', '... and says nothing');

    ($out, $rc) = run('systemd-analyze', 'security', '--offline=true',
                      $unit_file);
    my ($level) = $out =~ /Overall exposure level for \S+: (\d+\.\d+)/;
    cmp_ok($level // 99, '<=', 2.0,
           'systemd-analyze security --offline=true: exposure 2.0 or less')
        or diag($out);
    diag("systemd-analyze security: $1")
        if $out =~ /^\S*\s*(Overall exposure level.*?)\s*$/m;
}

# --- run: nginx with the packaged snippet and site, the consumer as ingest --

# the consumer's password where counters.conf says, as the README says:
# user ingest's alone; nginx's workers (www-data, in group ingest) must
# not read it
{
    open my $pw_out, '>', '/etc/ingest/redis.password' or die $!;
    print $pw_out "$Ingest::Test::Password{consumer}\n";
    close $pw_out;
    chown scalar(getpwnam('ingest')), $gr[2], '/etc/ingest/redis.password';
    chmod 0600, '/etc/ingest/redis.password';
    system("runuser -u www-data -- cat /etc/ingest/redis.password"
           . " >/dev/null 2>&1");
    isnt($?, 0, "www-data cannot read the consumer's password");
}

# the consumer as the unit runs it: user ingest, umask 0027, its command,
# Redis at the test's own port
my @cmd = map { s{^(redis://ingest-consumer\@127\.0\.0\.1):6379$}
                 {$1:$Ingest::Test::RedisPort}r } @args;
$consumer_pid = fork // die "fork: $!";
if ($consumer_pid == 0) {
    umask 027;
    open STDOUT, '>>', "$dir/consumer.log" or POSIX::_exit(127);
    open STDERR, '>&', \*STDOUT or POSIX::_exit(127);
    exec 'runuser', '-u', 'ingest', '--', @cmd or POSIX::_exit(127);
}

# the packaged examples, at the test's own Redis, port, password and spool
my $examples = '/usr/share/doc/libnginx-mod-http-ingest/examples';
my $snippet = slurp("$examples/conf.d/ingest.conf") // '';
my $site = slurp("$examples/sites-available/ingest") // '';
is($snippet =~ s{redis://ingest-nginx\@127\.0\.0\.1:6379\b}
                {redis://ingest-nginx\@127.0.0.1:$Ingest::Test::RedisPort}g,
   1, 'the snippet names Redis once');
is($snippet =~ s{password_file=/etc/nginx/ingest-redis\.password;}
                {password_file=$Ingest::Test::PasswordFile{nginx};}g,
   2, '... and its password file (the unix:// line is a comment)');
is($snippet =~ s{^ingest_spool /var/lib/nginx/ingest-spool;}
                {ingest_spool %DIR%/spool;}mg, 1, '... and the spool');
is($site =~ s{^    listen 8080;$}{    listen 127.0.0.1:%PORT%;}mg, 1,
   'the site listens on 8080');
is($site =~ s{^    listen \[::\]:8080;\n}{}mg, 1, '... and [::]:8080');
like($site, qr{^\s*ingest_totals /var/lib/ingest/counters\.db;$}m,
     'the site reads the totals of ingest-consumer@counters');

# Debian's nginx.conf, cut to what the test needs: the worker user, the
# modules enabled (load_module modules/... from Debian's prefix), conf.d
# inside http, then the site
$nginx = Ingest::Nginx->start(prefix => '/usr/share/nginx/', conf => <<"_EOC_");
user www-data;
worker_processes 2;
pid %DIR%/nginx.pid;
error_log %DIR%/logs/error.log notice;
include /etc/nginx/modules-enabled/*.conf;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path %DIR%/body;
    proxy_temp_path %DIR%/proxy;
    fastcgi_temp_path %DIR%/fastcgi;
    uwsgi_temp_path %DIR%/uwsgi;
    scgi_temp_path %DIR%/scgi;
    # conf.d/ingest.conf
$snippet
    # sites-enabled/ingest
$site
}
_EOC_

# the workers as Debian's run: www-data, its groups from initgroups()
my $www = (getpwnam('www-data'))[2];
my %ids;
wait_for(sub {
    %ids = ();
    for my $w ($nginx->workers) {
        my $status = slurp("/proc/$w/status") // '';
        my ($uid) = $status =~ /^Uid:\s+(\d+)/m;
        my ($groups) = $status =~ /^Groups:\s*(.*?)\s*$/m;
        $ids{$w} = [ $uid // -1, [ split ' ', $groups // '' ] ];
    }
    return 2 == grep { $_->[0] == $www } values %ids;
});
is(scalar keys %ids, 2, 'nginx: two workers');
for my $w (sort keys %ids) {
    is($ids{$w}[0], $www, "worker $w runs as www-data");
    ok((grep { $_ == $gr[2] } @{ $ids{$w}[1] }),
       "worker $w is in group ingest");
}

my ($code, $body) = $nginx->post('/counters', 'pkg:a=1&pkg:b=2&pkg:a=5');
is($code, 204, 'POST /counters: 204');

my $got = wait_totals_in('/var/lib/ingest/counters.db',
                         { 'pkg:a' => 6, 'pkg:b' => 2 });
is_deeply({ map { $_ => $got->{$_}[0] } keys %$got },
          { 'pkg:a' => 6, 'pkg:b' => 2 },
          'the consumer (user ingest) applied them to counters.db');

is(mode_owner('/var/lib/ingest/counters.db'), '0640 ingest:ingest',
   'counters.db: 0640 ingest:ingest');
is(mode_owner('/var/lib/ingest/counters.db-wal'), '0640 ingest:ingest',
   'counters.db-wal: 0640 ingest:ingest');
is(mode_owner('/var/lib/ingest/counters.db-shm'), '0640 ingest:ingest',
   'counters.db-shm: 0640 ingest:ingest');
($out, $rc) = run('runuser', '-u', 'nobody', '--', 'cat',
                  '/var/lib/ingest/counters.db');
isnt($rc, 0, 'a user outside group ingest cannot read counters.db');

my $a_at = $got->{'pkg:a'}[1];
my $b_at = $got->{'pkg:b'}[1];
my $one = qq({"key":"pkg:a","value":6,"updated_at":$a_at}\n);
my $page = qq({"totals":[{"key":"pkg:a","value":6,"updated_at":$a_at},)
           . qq({"key":"pkg:b","value":2,"updated_at":$b_at}],"next":null}\n);

($code, $body) = $nginx->get('/totals/pkg:a');
is($code, 200, 'GET /totals/pkg:a: 200, read by a www-data worker');
is($body, $one, '... the total, exactly');
($code, $body) = $nginx->get('/totals/?prefix=pkg:');
is($code, 200, 'GET /totals/?prefix=pkg:: 200');
is($body, $page, '... both totals, exactly');

# SIGTERM, the unit's KillSignal, to the consumer (runuser's child:
# runuser would die of the signal itself): exit 0, passed on by runuser
my @child = `pgrep -P $consumer_pid`;
chomp @child;
is(scalar @child, 1, 'runuser runs one process, the consumer');
kill SIGTERM, @child;
my $status = consumer_wait($consumer_pid, 30);
undef $consumer_pid if defined $status;
is($status, 0, 'the consumer stops on SIGTERM with status 0')
    or diag(slurp("$dir/consumer.log"));
ok(-f '/var/lib/ingest/counters.db-wal' && -f '/var/lib/ingest/counters.db-shm',
   'its -wal and -shm files stay');
for my $path ('/totals/pkg:a', '/totals/?prefix=pkg:') {
    ($code, $body) = $nginx->get($path);
    is("$code $body", '200 ' . ($path =~ /prefix/ ? $page : $one),
       "GET $path with the consumer stopped: the same");
}

unlike($nginx->log, qr/\[(?:alert|crit|emerg)\]/,
       'nothing alarming in nginx\'s log');
$nginx->stop;
undef $nginx;

# --- purge -------------------------------------------------------------------

($out, $rc) = purge();
is($rc, 0, 'dpkg --purge of both packages') or diag($out);

ok(!-e '/etc/nginx/modules-enabled/50-mod-http-ingest.conf'
   && !-e '/etc/nginx/modules-enabled/50-mod-http-ingest.conf.removed',
   'the module is no longer enabled');
($out, $rc) = run('/usr/sbin/nginx', '-t');
is($rc, 0, 'nginx -t passes again') or diag($out);
($out, $rc) = run('/usr/sbin/nginx', '-T');
unlike($out, qr/ngx_http_ingest_module/, '... without the module');

# every path dpkg listed is gone, but for directories other packages own
my @left;
for my $path (map { @$_ } values %files) {
    next if $path eq '/.';
    next unless -e $path || -l $path;
    next if -d $path && system("dpkg -S '$path' >/dev/null 2>&1") == 0;
    push @left, $path;
}
is_deeply([ sort @left ], [], 'nothing the packages installed is left');
ok(!-e '/var/lib/ingest', '/var/lib/ingest is gone (purge)');
ok(!-e '/etc/ingest', '/etc/ingest is gone, the password file with it');
ok(defined getpwnam('ingest'),
   'the user ingest stays (Debian leaves system users on purge)');

done_testing();

# bounded wait until SQLite at $db has the expected totals; key => [value,
# updated_at]
sub wait_totals_in {
    my ($db, $expected) = @_;
    my $rows = {};
    my $deadline = time + 10;
    while (time < $deadline) {
        if (-f $db) {
            my $dbh = DBI->connect("dbi:SQLite:dbname=$db", '', '',
                                   { RaiseError => 0, PrintError => 0,
                                     sqlite_open_flags => 1 });
            if ($dbh) {
                my $r = $dbh->selectall_arrayref(
                    'SELECT key, value, updated_at FROM totals') // [];
                $dbh->disconnect;
                $rows = { map { $_->[0] => [ $_->[1], $_->[2] ] } @$r };
                last unless grep { ($rows->{$_}[0] // -1) != $expected->{$_} }
                            keys %$expected;
            }
        }
        sleep 0.05;
    }
    return $rows;
}
