-- W5: PATCH /v1/users/{id} with If-Match. PATCH_IDS holds users whose
-- version is 1 when the run starts (compare.sh resets them); thread i of
-- WRK_THREADS patches its own share of them in turn, so the n-th pass over
-- that share sends If-Match: "n" - the current version - and every PATCH is a
-- real conditional update (a 412 would show up as a non-2xx answer).
local report = dofile(os.getenv("WRK_LIB") .. "/report.lua")
local auth = report.auth()
local all = report.lines(os.getenv("PATCH_IDS"))
local nthreads = tonumber(os.getenv("WRK_THREADS") or "2")
local started = 0
setup = function(thread)
    thread:set("part", started)
    started = started + 1
end
local mine, i, pass = nil, 0, 1
request = function()
    if mine == nil then
        mine = {}
        for k = 1 + part, #all, nthreads do mine[#mine + 1] = all[k] end
    end
    i = i + 1
    if i > #mine then i, pass = 1, pass + 1 end
    return wrk.format("PATCH", "/v1/users/" .. mine[i], {
        ["Authorization"] = auth,
        ["Content-Type"] = "application/json",
        ["If-Match"] = '"' .. pass .. '"',
    }, '{"name":"Patched ' .. pass .. '"}')
end
done = report.done
