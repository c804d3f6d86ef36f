-- GET WRK_PATH with a token (BENCH_TOKEN) and count the answers by status:
-- at the end, one line per status, "status <code> <count>", on stdout.
local token = os.getenv("BENCH_TOKEN")
local path = os.getenv("WRK_PATH")
local threads = {}

function setup(thread)
    table.insert(threads, thread)
end

function init(args)
    counts = {}
end

request = function()
    return wrk.format("GET", path, {["Authorization"] = "Bearer " .. token})
end

response = function(status, headers, body)
    counts[status] = (counts[status] or 0) + 1
end

function done(summary, latency, requests)
    local total = {}
    for _, t in ipairs(threads) do
        for status, n in pairs(t:get("counts")) do
            total[status] = (total[status] or 0) + n
        end
    end
    for status, n in pairs(total) do
        io.write(string.format("status %d %d\n", status, n))
    end
end
