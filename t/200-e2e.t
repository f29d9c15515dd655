# The pipeline end to end under load (ci/e2e): two nginx workers reloaded
# twice during the load, 16 connections, the three body styles, thousands
# of keys; SQLite must end with exactly the increments answered 2xx.

use strict;
use warnings;

use Test::More;

my $requests = $ENV{INGEST_E2E_REQUESTS} || 20000;

# the default, and batches cut by count many times a second: a delivery
# must retire exactly the batch that was delivered
for my $keys (10000, 5) {
    my $out = `FLUSH_KEYS=$keys ci/e2e $requests 2>&1`;
    my $status = $? >> 8;
    my $tag = "ingest_flush_keys $keys";

    is($status, 0, "$tag: ci/e2e $requests exits 0") or diag $out;
    like($out, qr/^requests $requests \(form \d+, json \d+, key_value \d+\).* unknown outcome \(504 or no answer\) \d+$/m,
         "$tag: every request was sent");
    like($out, qr/^ci\/e2e: SQLite totals: (\d+) keys: \1 exact, 0 explained by requests of unknown outcome, 0 lost, 0 counted twice/m,
         "$tag: SQLite totals exact, key for key");
    note $out;
}

done_testing();
