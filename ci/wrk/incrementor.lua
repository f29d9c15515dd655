-- Copyright (C) ngx_ingest developers
-- SPDX-License-Identifier: BSD-2-Clause
--
-- The original incrementor's load: key=<uuid4>&value=<-10000..9999>, a
-- fresh random key per request (its "insane" profile).  The value is the
-- uuid's last four hex digits mod 20000, less 10000, so ci/bench can
-- check every row in SQLite: a row holding anything else was lost from
-- or counted twice.
wrk.method = "POST"

-- LuaJIT starts every run from the same seed: each round its own keys
math.randomseed(os.time() + math.floor(os.clock() * 1e6))
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"

local hex = "0123456789abcdef"

local function uuid()
    local t = {}
    for i = 1, 32 do
        local n = math.random(1, 16)
        t[i] = hex:sub(n, n)
    end
    local s = table.concat(t)
    return s:sub(1, 8) .. "-" .. s:sub(9, 12) .. "-4" .. s:sub(14, 16)
        .. "-" .. s:sub(17, 20) .. "-" .. s:sub(21, 32)
end

request = function()
    local key = uuid()
    local value = tonumber(key:sub(-4), 16) % 20000 - 10000
    return wrk.format(nil, nil, nil, "key=" .. key .. "&value=" .. value)
end

dofile((os.getenv("INGEST_WRK_DIR") or "ci/wrk") .. "/report.lua")
