# Copyright (C) ngx_ingest developers
# SPDX-License-Identifier: BSD-2-Clause

package Ingest::Pg;

# A private PostgreSQL for a test file: initdb and pg_ctl in a temp
# directory of its own, on a free loopback port, stopped at the end.  As
# root, the server runs as the "postgres" user (initdb refuses root).
#
#   use Ingest::Pg;
#   my $uri = Ingest::Pg::start();      # postgresql://ingest@127.0.0.1:P/ingest
#   Ingest::Pg::rows("SELECT ...");      # [[col, ...], ...] or undef
#   Ingest::Pg::stop(); Ingest::Pg::start_again();
#   $Ingest::Test::Totals = \&Ingest::Pg::totals;   # "--- totals" from PG

use strict;
use warnings;

use File::Temp qw(tempdir);
use POSIX ();
use Ingest::Test ();

our ($Uri, $Dir, $Port, $Bin, $User);

sub bin {
    my ($name) = @_;
    my ($dir) = reverse sort glob '/usr/lib/postgresql/*/bin';
    die "no PostgreSQL server under /usr/lib/postgresql\n" unless $dir;
    return "$dir/$name";
}

sub as_owner {
    my (@cmd) = @_;
    return $> == 0 ? ('runuser', '-u', 'postgres', '--', @cmd) : @cmd;
}

sub run_quiet {
    my (@cmd) = @_;
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDOUT, '>>', "$Dir/pg.out" or die $!;
        open STDERR, '>&', \*STDOUT or die $!;
        exec @cmd or POSIX::_exit(127);
    }
    waitpid $pid, 0;
    return $? >> 8;
}

sub pg_ctl_start {
    return run_quiet(as_owner(bin('pg_ctl'), '-D', "$Dir/data", '-l',
                     "$Dir/server.log", '-w', '-o',
                     "-p $Port -k $Dir -c listen_addresses=127.0.0.1 "
                     . "-c fsync=off -c full_page_writes=off",
                     'start')) == 0;
}

sub start {
    $Dir = tempdir("ingest-pg-XXXXXX", TMPDIR => 1, CLEANUP => 1);
    chmod 0755, $Dir;
    if ($> == 0) {
        my $uid = getpwnam('postgres') // die "no postgres user\n";
        chown $uid, -1, $Dir;
    }
    $Port = Ingest::Test::free_port();

    run_quiet(as_owner(bin('initdb'), '-D', "$Dir/data", '-A', 'trust',
                       '-U', 'ingest', '-E', 'UTF8', '--no-sync')) == 0
        or die "initdb failed: see $Dir/pg.out\n";
    pg_ctl_start() or die "pg_ctl start failed\n";
    run_quiet('psql', "postgresql://ingest\@127.0.0.1:$Port/postgres",
              '-qc', 'CREATE DATABASE ingest') == 0
        or die "CREATE DATABASE failed\n";

    $Uri = "postgresql://ingest\@127.0.0.1:$Port/ingest";
    return $Uri;
}

sub stop {
    return unless $Dir && -d "$Dir/data";
    run_quiet(as_owner(bin('pg_ctl'), '-D', "$Dir/data", '-m', 'fast',
                       '-w', 'stop'));
}

sub start_again {
    return pg_ctl_start();
}

# the rows of a query, tab-separated columns; undef if psql failed
sub rows {
    my ($sql) = @_;
    my $out = `psql '$Uri' -X -tA -F '\t' -c \Q$sql\E 2>/dev/null`;
    return undef if $? != 0;
    return [ map { [ split /\t/, $_, -1 ] } split /\n/, $out ];
}

sub totals {
    my $rows = rows('SELECT key, value FROM totals') // return {};
    return { map { $_->[0] => $_->[1] } @$rows };
}

END { local $?; stop() }

1;
