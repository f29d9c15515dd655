# Scale out (ci/scale-out): a Redis Cluster of three masters with a
# replica each, two nginx nodes (in network namespaces of their own where
# the machine allows) with ingest_shards 3, one consumer per shard into a
# private PostgreSQL; load through both nodes while one master is failed
# over by hand and another is killed.  PostgreSQL must end with exactly
# the increments each node answered 2xx.

use strict;
use warnings;

use Test::More;

my $secs = $ENV{INGEST_SCALE_OUT_SECONDS} || 6;
my $out = `ci/scale-out $secs 2>&1`;
my $status = $? >> 8;

is($status, 0, "ci/scale-out $secs exits 0") or diag $out;
like($out, qr/^ci\/scale-out: Redis Cluster of 3 masters \+ 3 replicas/m,
     "a cluster of six nodes");
like($out, qr/^ci\/scale-out: failover of master \d+ \(shard \{0\}\) to its replica \d+: OK$/m,
     "a master failed over by hand under load");
like($out, qr/^ci\/scale-out: master \d+ killed \(SIGKILL, pid \d+\)$/m,
     "a master killed under load");
for my $node (qw(a b)) {
    like($out, qr/^ci\/scale-out: node $node: requests \d+ .* 2xx [1-9]\d*, /m,
         "node $node answered 2xx");
    like($out, qr/^ci\/scale-out: node $node: PostgreSQL totals: (\d+) keys: \1 exact, 0 explained by requests of unknown outcome, 0 lost, 0 counted twice/m,
         "node $node: PostgreSQL totals exact, key for key");
}
note $out;

done_testing();
