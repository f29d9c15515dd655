-- Multi-key bodies, form and JSON in turn, over 5000 keys.
wrk.method = "POST"

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
