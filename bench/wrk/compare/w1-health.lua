-- W1: GET /health/live (no token, no database): the HTTP stack alone.
local report = dofile(os.getenv("WRK_LIB") .. "/report.lua")
wrk.method = "GET"
wrk.path = "/health/live"
done = report.done
