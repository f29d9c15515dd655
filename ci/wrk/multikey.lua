-- Copyright (C) ngx_ingest developers
-- SPDX-License-Identifier: BSD-2-Clause
--
-- Multi-key bodies, form and JSON in turn, three of 5000 keys each, with
-- the values 1, -2 and 3: every request adds 2 to the keys' sum.
wrk.method = "POST"

-- LuaJIT starts every run from the same seed: each round its own keys
math.randomseed(os.time() + math.floor(os.clock() * 1e6))

local n = 0

request = function()
    n = n + 1
    local a, b, c = math.random(5000), math.random(5000), math.random(5000)
    if n % 2 == 0 then
        return wrk.format(nil, nil,
            { ["Content-Type"] = "application/x-www-form-urlencoded" },
            "k" .. a .. "=1&k" .. b .. "=-2&k" .. c .. "=3")
    end
    return wrk.format(nil, nil, { ["Content-Type"] = "application/json" },
        '{"k' .. a .. '":1,"k' .. b .. '":-2,"k' .. c .. '":3}')
end

dofile((os.getenv("INGEST_WRK_DIR") or "ci/wrk") .. "/report.lua")
