# Copyright (C) ngx_ingest developers
# SPDX-License-Identifier: BSD-2-Clause

package Ingest::Taxi;

# Realistic New York taxi NDJSON with a known set of invalid lines: the
# fixture generator of the records tests and benchmarks.
#
#   my $f = Ingest::Taxi::generate(lines => 1600, seed => 1, invalid => 37);
#   $f->{body}        the NDJSON text ("\n" after every line, the last too)
#   $f->{valid}       how many lines are valid
#   $f->{invalid}     how many are not, each of a known kind
#   $f->{rows}        [vendorid, tpep_pickup_datetime, trip_distance,
#                      total_amount] of the valid lines, in order (undef
#                      for a missing optional field)
#
# As a script: perl t/lib/Ingest/Taxi.pm [lines] [invalid] > body.ndjson

use strict;
use warnings;

my @bad = (
    sub { "" },                                            # blank line
    sub { '{"vendorid":2,"trip_distance":1.5' },            # not JSON
    sub { '[2,"2017-01-01 00:00:00"]' },                   # not an object
    sub { '{"tpep_pickup_datetime":"2017-01-01 00:00:00"}' },  # no vendorid
    sub { '{"vendorid":"2","total_amount":5}' },           # string, not int
    sub { '{"vendorid":2,"trip_distance":"1.5"}' },        # string, not real
    sub { qq({"vendorid":2,"store_and_fwd_flag":"\xff"}) }, # bad UTF-8
    sub { '{"vendorid":1.5}' },                            # not an int
);

sub generate {
    my (%opt) = @_;
    my $lines = $opt{lines} // 1600;
    my $invalid = $opt{invalid} // int($lines / 40);
    my $seed = $opt{seed} // 1;

    my $x = $seed;
    my $rand = sub { $x = ($x * 1103515245 + 12345) % 2147483648; $x / 2147483648 };

    my %bad_at;
    my $step = $invalid ? int($lines / $invalid) : 0;
    for my $i (1 .. $invalid) { $bad_at{$i * $step - 1} = ($i - 1) % @bad }

    my (@out, @rows);
    for my $n (0 .. $lines - 1) {
        if (exists $bad_at{$n}) {
            push @out, $bad[$bad_at{$n}]->();
            next;
        }

        my $vendor = 1 + int($rand->() * 2);
        my $sec = int($rand->() * 86400 * 31);
        my ($d, $h, $m, $s) = (1 + int($sec / 86400), int($sec / 3600) % 24,
                               int($sec / 60) % 60, $sec % 60);
        my $pickup = sprintf "2017-01-%02d %02d:%02d:%02d", $d, $h, $m, $s;
        my $dist = sprintf "%.2f", $rand->() * 20;
        my $fare = sprintf "%.1f", 2.5 + $dist * 2.5;
        my $total = sprintf "%.2f", $fare + 0.8 + ($n % 3 ? 0 : 2.5);
        my $pass = 1 + int($rand->() * 4);

        # some lines lack the optional distance, some carry it as an int
        my $has_dist = $n % 17 != 5;
        $dist = int($dist) if $n % 13 == 7;

        push @out, '{"vendorid":' . $vendor
            . ',"tpep_pickup_datetime":"' . $pickup . '"'
            . ',"tpep_dropoff_datetime":"' . $pickup . '"'
            . ',"passenger_count":' . $pass
            . ($has_dist ? ',"trip_distance":' . $dist : '')
            . ',"ratecodeid":1,"store_and_fwd_flag":"N","pulocationid":'
            . (1 + int($rand->() * 265)) . ',"dolocationid":'
            . (1 + int($rand->() * 265))
            . ',"payment_type":1,"fare_amount":' . ($fare + 0)
            . ',"extra":0.5,"mta_tax":0.5,"tip_amount":0,"tolls_amount":0'
            . ',"improvement_surcharge":0.3,"total_amount":' . ($total + 0)
            . '}';

        push @rows, [$vendor, $pickup, $has_dist ? $dist + 0 : undef,
                     $total + 0];
    }

    return {
        body => join('', map { "$_\n" } @out),
        valid => scalar @rows,
        invalid => $invalid,
        rows => \@rows,
    };
}

if (!caller) {
    my $f = generate(lines => $ARGV[0] // 1600, invalid => $ARGV[1]);
    print $f->{body};
}

1;
