# What a request costs a worker in memory (ci/memory): one large body at
# most a small multiple of itself; requests waiting for Redis next to
# nothing.

use strict;
use warnings;

use Test::More;

my $out = `ci/memory 2>&1`;

is($? >> 8, 0, "ci/memory exits 0") or diag $out;
like($out, qr/^ci\/memory: one request of \d+ bytes, 450000 pairs: 204; the worker's peak grew by \d+ kB \(([0-7]\.\d|8\.0)x the body\)$/m,
     "one 3.6 MB request: the worker's peak grows by at most 8 times it");
like($out, qr/^ci\/memory: twelve requests of \d+ bytes waiting for Redis: the worker's memory grew by (\d+) kB while they waited; answers: 12 204 $/m,
     "twelve 1.2 MB requests waiting: next to nothing held");
note $out;

done_testing();
