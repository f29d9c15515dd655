# The short form of ci/chaos: faults under load (reloads, the consumer
# and a worker SIGKILLed, Redis restarted and frozen, nginx TERMed), with
# ingest_ack memory and redis; SQLite checked key by key, totals and
# the locations' 1 s and 1 m buckets.

use strict;
use warnings;

use Test::More;

my $out = `ci/chaos --short 2>&1`;

is($? >> 8, 0, "ci/chaos --short exits 0") or diag $out;

like($out, qr/^ci\/chaos: ingest_ack redis: SQLite totals: (\d+) keys: \d+ exact, \d+ explained by requests of unknown outcome, 0 lost, 0 counted twice/m,
     "ingest_ack redis: every total exact (or explained by a 504)");

like($out, qr/^ci\/chaos: ingest_ack memory: SQLite totals: \d+ keys: .*, 0 counted twice/m,
     "ingest_ack memory: nothing counted twice");

my @buckets = $out =~ /^buckets: (\d+) keys, each of 2 resolutions summing to its total$/mg;
is(scalar @buckets, 2,
   "both modes: every key's 1 s and 1 m buckets sum to its total");

unlike($out, qr/nginx logged alerts/, "no unexpected alerts");

note $out;

done_testing();
