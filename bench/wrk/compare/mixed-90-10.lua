-- Mixed: 90 % GET /v1/users/{id} and 10 % PATCH /v1/users/{id} (a new name,
-- no precondition) on the same HOT_IDS, so writes invalidate cached entries
-- and some reads miss, as in a real read-mostly service.
local report = dofile(os.getenv("WRK_LIB") .. "/report.lua")
local ids = report.lines(os.getenv("HOT_IDS"))
local auth = report.auth()
math.randomseed(os.time())
local n = 0
request = function()
    n = n + 1
    local id = ids[math.random(#ids)]
    if n % 10 == 0 then
        return wrk.format("PATCH", "/v1/users/" .. id, {
            ["Authorization"] = auth,
            ["Content-Type"] = "application/json",
        }, '{"name":"Mixed ' .. n .. '"}')
    end
    return wrk.format("GET", "/v1/users/" .. id, {["Authorization"] = auth})
end
done = report.done
