-- wrk script: every request carries one key, `Authorization: Bearer $TOKEN`.
-- (scripts/bench.sh passes the key with -H instead; this is for running wrk by hand.)
--
--   TOKEN=kw_live_... wrk -t1 -c16 -d10s -s scripts/wrk/valid.lua http://127.0.0.1:18080/v1/whoami

local token = os.getenv("TOKEN")
assert(token and #token > 0, "TOKEN is not set")
wrk.headers["Authorization"] = "Bearer " .. token
