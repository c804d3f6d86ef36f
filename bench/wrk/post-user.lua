-- POST /v1/users with a unique email per request; IDEMPOTENCY=1 adds a
-- unique Idempotency-Key too. Emails carry the thread id and a counter.
local token = os.getenv("BENCH_TOKEN")
local idem = os.getenv("IDEMPOTENCY") == "1"
math.randomseed(os.time())
local counter = 0
-- tag is a per-thread global, set by setup() below (no "local": thread:set
-- writes globals)

setup = function(thread)
    thread:set("tag", tostring(os.time()) .. "-" .. tostring(math.random(1, 1e9)))
end
init = function() tag = tag or tostring(math.random(1, 1e9)) .. tostring(os.time()) end
request = function()
    counter = counter + 1
    local key = tag .. "-" .. counter
    local body = '{"email":"b' .. key .. '@bench.example","name":"Bench ' .. counter .. '"}'
    local headers = {["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json"}
    if idem then headers["Idempotency-Key"] = "k-" .. key end
    return wrk.format("POST", "/v1/users", headers, body)
end
