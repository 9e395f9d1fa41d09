-- wrk script for scripts/bench.sh's floods: every request carries the next token of the file
-- named by the environment variable TOKENS_FILE (one token per line, e.g. from the example
-- flood_tokens), cycling through the file, as `Authorization: Bearer <token>`. With
-- FLOOD_DELAY_MS set, each connection waits that long before each request (a paced flood:
-- about connections x 1000 / (delay + latency) requests per second).
--
--   TOKENS_FILE=artifacts/bench/unknown.txt wrk -t1 -c48 -d10s -s scripts/wrk/tokens.lua \
--       http://127.0.0.1:18080/v1/whoami

local tokens = {}
local pause = tonumber(os.getenv("FLOOD_DELAY_MS") or "")
local i = 0
local headers = {}

-- Runs once in each wrk thread: load the tokens.
function init(args)
   local path = os.getenv("TOKENS_FILE")
   assert(path and #path > 0, "TOKENS_FILE is not set")
   for line in io.lines(path) do
      if #line > 0 then
         tokens[#tokens + 1] = line
      end
   end
   assert(#tokens > 0, "no tokens in " .. path)
end

-- Builds each request: the target URL's method and path with the next token.
function request()
   i = i % #tokens + 1
   headers["Authorization"] = "Bearer " .. tokens[i]
   return wrk.format(nil, nil, headers)
end

-- wrk waits this many milliseconds before sending each request (nil: no pacing).
if pause then
   function delay()
      return pause
   end
end
