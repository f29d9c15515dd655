-- Copyright (C) ngx_ingest developers
-- SPDX-License-Identifier: BSD-2-Clause
--
-- Loaded by every ci/wrk script: one line ci/bench reads, "bench k=v ...",
-- with the latency percentiles in microseconds.
function done(summary, latency, requests)
    local e = summary.errors
    io.write(string.format("bench requests=%d duration_us=%d non2xx=%d"
        .. " socket_errors=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d\n",
        summary.requests, summary.duration, e.status,
        e.connect + e.read + e.write + e.timeout,
        latency:percentile(50), latency:percentile(90),
        latency:percentile(99), latency.max))
end
