-- W2: GET /v1/users/{id} for ids picked at random from HOT_IDS (a set small
-- enough to stay in each server's Redis cache once warmed).
local report = dofile(os.getenv("WRK_LIB") .. "/report.lua")
local ids = report.lines(os.getenv("HOT_IDS"))
local auth = report.auth()
math.randomseed(os.time())
request = function()
    return wrk.format("GET", "/v1/users/" .. ids[math.random(#ids)], {["Authorization"] = auth})
end
done = report.done
