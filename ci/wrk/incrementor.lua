-- The original incrementor's load: key=<uuid4>&value=<-10000..10000>
-- over many random keys (its "insane" profile).
wrk.method = "POST"
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
    return wrk.format(nil, nil, nil,
        "key=" .. uuid() .. "&value=" .. math.random(-10000, 10000))
end
