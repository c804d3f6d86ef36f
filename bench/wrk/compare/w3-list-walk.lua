-- W3: GET /v1/users?limit=LIST_LIMIT, following the server's own nextCursor:
-- each thread walks the whole list page by page (real, signed cursors, every
-- depth) and starts again from the first page after the last one.
local report = dofile(os.getenv("WRK_LIB") .. "/report.lua")
local auth = report.auth()
local limit = os.getenv("LIST_LIMIT") or "20"
local cursor = nil
request = function()
    local path = "/v1/users?limit=" .. limit
    if cursor then path = path .. "&cursor=" .. cursor end
    return wrk.format("GET", path, {["Authorization"] = auth})
end
response = function(status, headers, body)
    if status == 200 then
        cursor = body:match('"nextCursor":"([^"]+)"')
    end
end
done = report.done
