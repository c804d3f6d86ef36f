-- GET a fixed path (WRK_PATH) with a token.
local token = os.getenv("BENCH_TOKEN")
local path = os.getenv("WRK_PATH")
request = function()
    return wrk.format("GET", path, {["Authorization"] = "Bearer " .. token})
end
