# The pipeline end to end under load (ci/e2e): two nginx workers reloaded
# twice during the load, 16 connections, the three body styles, thousands
# of keys; SQLite must end with exactly the increments answered 2xx.

use strict;
use warnings;

use Test::More;

my $requests = $ENV{INGEST_E2E_REQUESTS} || 20000;

# the default; batches cut by count many times a second (a delivery must
# retire exactly the batch that was delivered); and four shards with a
# short ingest_redis_timeout, every batch in flight with a deadline of
# its own (a shared one fired under a healthy Redis)
for my $env ("FLUSH_KEYS=10000", "FLUSH_KEYS=5",
             "FLUSH_KEYS=20 SHARDS=4 REDIS_TIMEOUT=200ms")
{
    my $out = `$env ci/e2e $requests 2>&1`;
    my $status = $? >> 8;
    my $tag = $env;

    is($status, 0, "$tag: ci/e2e $requests exits 0") or diag $out;
    like($out, qr/^requests $requests \(form \d+, json \d+, key_value \d+\).* unknown outcome \(504 or no answer\) \d+$/m,
         "$tag: every request was sent");
    like($out, qr/^ci\/e2e: SQLite totals: (\d+) keys: \1 exact, 0 explained by requests of unknown outcome, 0 lost, 0 counted twice/m,
         "$tag: SQLite totals exact, key for key");
    like($out, qr/^ci\/e2e: reply timeouts logged: 0$/m,
         "$tag: no reply timed out");
    note $out;
}

done_testing();
