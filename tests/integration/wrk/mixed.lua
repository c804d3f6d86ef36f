-- Mixed read/write load through HAProxy for the rolling-restart test
-- (test_cluster.py): 60 % GET /v1/users/{id}, 20 % GET /v1/users?limit=10,
-- 15 % POST /v1/users, 5 % PATCH /v1/users/{id}.
--
-- Environment:
--   TOKENS_FILE   bearer tokens, one a line; each request picks one at
--                 random, so no one token's rate limit is reached
--   IDS_FILE      user ids, one a line
--   WRK_DELAY_MS  pause before each request on a connection (keeps the
--                 rate modest on a shared machine)
--   RESULT_FILE   where done() writes JSON: requests, socket errors,
--                 responses by status, latency percentiles

local tokens = {}
for line in io.lines(os.getenv("TOKENS_FILE")) do
    tokens[#tokens + 1] = line
end
local delay_ms = tonumber(os.getenv("WRK_DELAY_MS") or "0")
local ids = {}
for line in io.lines(os.getenv("IDS_FILE")) do
    ids[#ids + 1] = line
end

local threads = {}

function setup(thread)
    thread:set("tid", #threads + 1)
    table.insert(threads, thread)
end

function init(args)
    -- Globals: done() reads them with thread:get.
    counts = {}
    seq = 0
    math.randomseed(os.time() * 1000 + tid)
end

function delay()
    return delay_ms
end

local function auth(extra)
    local h = {["Authorization"] = "Bearer " .. tokens[math.random(#tokens)]}
    for k, v in pairs(extra or {}) do
        h[k] = v
    end
    return h
end

function request()
    seq = seq + 1
    local r = math.random(100)
    local id = ids[math.random(#ids)]
    if r <= 60 then
        return wrk.format("GET", "/v1/users/" .. id, auth())
    elseif r <= 80 then
        return wrk.format("GET", "/v1/users?limit=10", auth())
    elseif r <= 95 then
        local key = tid .. "-" .. seq .. "-" .. math.random(1, 1e9)
        local body = '{"email":"roll-' .. key .. '@example.com","name":"Rolling ' .. seq .. '"}'
        return wrk.format("POST", "/v1/users", auth({["Content-Type"] = "application/json"}), body)
    else
        local body = '{"name":"Renamed ' .. seq .. '"}'
        return wrk.format("PATCH", "/v1/users/" .. id, auth({["Content-Type"] = "application/json"}), body)
    end
end

function response(status, headers, body)
    counts[status] = (counts[status] or 0) + 1
end

function done(summary, latency, requests)
    local merged = {}
    for _, t in ipairs(threads) do
        for code, n in pairs(t:get("counts") or {}) do
            merged[code] = (merged[code] or 0) + n
        end
    end
    local parts = {}
    for code, n in pairs(merged) do
        parts[#parts + 1] = '"' .. code .. '":' .. n
    end
    local e = summary.errors
    local out = string.format(
        '{"requests":%d,"duration_us":%d,"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
        '"statuses":{%s},"latency_us":{"p50":%d,"p90":%d,"p99":%d,"p999":%d,"max":%d}}\n',
        summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
        table.concat(parts, ","), latency:percentile(50), latency:percentile(90),
        latency:percentile(99), latency:percentile(99.9), latency.max)
    local f = assert(io.open(os.getenv("RESULT_FILE"), "w"))
    f:write(out)
    f:close()
end
