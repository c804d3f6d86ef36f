-- W4: POST /v1/users, each with a new email and a new Idempotency-Key: the
-- keyed create (lookup, write and record in one transaction).
local report = dofile(os.getenv("WRK_LIB") .. "/report.lua")
local auth = report.auth()
local counter = 0
-- tag is a per-thread global, set by setup() (thread:set writes globals)
setup = function(thread)
    thread:set("tag", tostring(os.time()) .. "-" .. tostring(math.random(1, 1e9)))
end
request = function()
    counter = counter + 1
    local key = tag .. "-" .. counter
    local body = '{"email":"w4-' .. key .. '@bench.example","name":"Bench ' .. counter .. '"}'
    return wrk.format("POST", "/v1/users", {
        ["Authorization"] = auth,
        ["Content-Type"] = "application/json",
        ["Idempotency-Key"] = "w4-" .. key,
    }, body)
end
done = report.done
