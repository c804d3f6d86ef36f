-- GET WRK_PATH with a token (the list-depth scale check: one fixed cursor).
local report = dofile(os.getenv("WRK_LIB") .. "/report.lua")
local auth = report.auth()
local path = assert(os.getenv("WRK_PATH"), "WRK_PATH is not set")
request = function()
    return wrk.format("GET", path, {["Authorization"] = auth})
end
done = report.done
