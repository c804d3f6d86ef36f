-- GET /v1/users/{id} for ids picked at random from IDS_FILE, with a token.
local ids = {}
local token = os.getenv("BENCH_TOKEN")
for line in io.lines(os.getenv("IDS_FILE")) do ids[#ids + 1] = line end
math.randomseed(os.time())
request = function()
    local id = ids[math.random(#ids)]
    return wrk.format("GET", "/v1/users/" .. id, {["Authorization"] = "Bearer " .. token})
end
