-- Shared by the compare workloads: done() prints one machine-readable line
-- that bench/compare.sh reads (latencies in microseconds).
local M = {}

function M.done(summary, latency, requests)
    local e = summary.errors
    io.write(string.format(
        "REPORT requests=%d duration_us=%d p50=%d p75=%d p90=%d p99=%d p999=%d max=%d " ..
        "connect=%d read=%d write=%d timeout=%d status=%d\n",
        summary.requests, summary.duration,
        latency:percentile(50), latency:percentile(75), latency:percentile(90),
        latency:percentile(99), latency:percentile(99.9), latency.max,
        e.connect, e.read, e.write, e.timeout, e.status))
end

-- Lines of a file (ids), at least one.
function M.lines(path)
    local t = {}
    for line in io.lines(path) do t[#t + 1] = line end
    assert(#t > 0, path .. " is empty")
    return t
end

function M.auth()
    return "Bearer " .. assert(os.getenv("BENCH_TOKEN"), "BENCH_TOKEN is not set")
end

return M
