-- Checks a batch of requests, each against every rule of its key, and consumes `cost` from all
-- of a request's rules only when all of them allow it: one round trip for the whole batch,
-- atomic because Redis runs a script alone; requests apply in order, so two requests of one
-- key in a batch see each other. The arithmetic mirrors keyward_core::limit.
--
-- ARGV[1]: number of requests. Per request: cost, number of rules, then 7 values per rule:
--   kind (gcra|fixed_window|sliding_window|daily|monthly), limit, window_ms, burst,
--   period index (quotas), reset_ms (quotas), seed (quotas: units already counted in Postgres).
-- KEYS: one base key per rule, in the same order.
-- Returns 5 integers per rule: allowed (0/1), limit, remaining, reset_ms, retry_after_ms (-1: never).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {}
local a, k = 2, 1

for _ = 1, tonumber(ARGV[1]) do
  local cost, nrules = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
  a = a + 2
  local writes, all = {}, true
  for _ = 1, nrules do
    local kind, limit, window, burst = ARGV[a], tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
    local base = KEYS[k]
    local ok, quota, remaining, reset, retry
    if kind == 'gcra' then
      local tat = tonumber(redis.call('GET', base) or '0')
      local e = window / limit
      local tol = e * burst
      local basis = math.max(tat, now)
      local nxt = basis + e * cost
      local allow_at = nxt - tol
      ok = allow_at <= now
      local after = basis
      if ok then after = nxt end
      quota = burst
      remaining = math.min(burst, math.max(0, math.floor((now + tol - after) / e)))
      reset = math.ceil(math.max(0, after - now))
      if ok then retry = 0 elseif cost > burst then retry = -1 else retry = math.ceil(allow_at - now) end
      if ok then writes[#writes + 1] = {'gcra', base, nxt, math.ceil(nxt - now) + 1000} end
    elseif kind == 'fixed_window' or kind == 'daily' or kind == 'monthly' then
      local key, used
      if kind == 'fixed_window' then
        local idx = math.floor(now / window)
        key = base .. ':' .. idx
        used = tonumber(redis.call('GET', key) or '0')
        reset = (idx + 1) * window - now
      else
        key = base .. ':' .. ARGV[a + 4]
        reset = tonumber(ARGV[a + 5])
        local v = redis.call('GET', key)
        if v then used = tonumber(v) else used = tonumber(ARGV[a + 6]) end
      end
      ok = used + cost <= limit
      quota = limit
      if ok then remaining = limit - used - cost else remaining = math.max(0, limit - used) end
      if ok then retry = 0 elseif cost > limit then retry = -1 else retry = reset end
      if ok then writes[#writes + 1] = {'count', key, used + cost, reset + 1000} end
    else -- sliding_window
      local idx = math.floor(now / window)
      local key = base .. ':' .. idx
      local cur = tonumber(redis.call('GET', key) or '0')
      local prev = tonumber(redis.call('GET', base .. ':' .. (idx - 1)) or '0')
      local est = cur + prev * (1 - (now % window) / window)
      ok = est + cost <= limit
      quota = limit
      local left = math.max(0, limit - est)
      if ok then remaining = math.floor(left - cost) else remaining = math.floor(left) end
      reset = window - now % window
      if ok then retry = 0 elseif cost > limit then retry = -1 else retry = math.min(reset, window) end
      if ok then writes[#writes + 1] = {'count', key, cur + cost, reset + window + 1000} end
    end
    if not ok then all = false end
    local b = #out
    if ok then out[b + 1] = 1 else out[b + 1] = 0 end
    out[b + 2], out[b + 3], out[b + 4], out[b + 5] = quota, remaining, reset, retry
    a = a + 7
    k = k + 1
  end
  if all then
    for _, w in ipairs(writes) do
      if w[1] == 'gcra' then
        redis.call('SET', w[2], string.format('%.3f', w[3]), 'PX', w[4])
      else
        redis.call('SET', w[2], w[3], 'PX', w[4])
      end
    end
  end
end
return out
