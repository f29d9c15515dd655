-- Copyright (C) ngx_ingest developers
-- SPDX-License-Identifier: BSD-2-Clause
--
-- One hot key: key=test1&value=1.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.body = "key=test1&value=1"

dofile((os.getenv("INGEST_WRK_DIR") or "ci/wrk") .. "/report.lua")
