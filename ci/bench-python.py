# Copyright (C) ngx_ingest developers
# SPDX-License-Identifier: BSD-2-Clause
#
# The original "tiny data server" loop, for ci/bench ndjson: json.loads per
# line, the fields picked and type-checked, rows kept; CPU ms per body.
import json, sys, time
body = open(sys.argv[1], encoding='utf-8').read()
fields = [("vendorid", int), ("tpep_pickup_datetime", str), ("trip_distance", float), ("total_amount", float)]
def run():
    valid = invalid = 0
    rows = []
    for line in body.split("\n"):
        if not line.strip():
            if line: invalid += 1
            continue
        try:
            d = json.loads(line)
        except ValueError:
            invalid += 1; continue
        if not isinstance(d, dict):
            invalid += 1; continue
        row = []
        ok = True
        for name, typ in fields:
            v = d.get(name)
            if v is not None and not (isinstance(v, typ) or (typ is float and isinstance(v, int))):
                ok = False; break
            row.append(v)
        if ok:
            valid += 1; rows.append(row)
        else:
            invalid += 1
    return valid
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 20
t0 = time.process_time()
for _ in range(rounds): v = run()
t1 = time.process_time()
print("lines_valid=%d python_ms=%.3f" % (v, (t1 - t0) * 1000 / rounds))
