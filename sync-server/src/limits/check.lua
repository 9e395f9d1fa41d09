-- Checks a batch of requests, each against every rule of its key, and consumes `cost` from all
-- of a request's rules only when all of them allow it: one round trip for the whole batch,
-- atomic because Redis runs a script alone; requests apply in order, so two requests of one
-- key in a batch see each other. The arithmetic is keyward_core::limit's, exactly (integers
-- only; a differential test in limits/differential.rs holds the two to the same answers).
--
-- Time is the caller's: every request carries the node's clock (now_ms), and for windows and
-- quotas the window's index and the milliseconds to its end as keyward_core::limit computed
-- them from that clock. The script reads no clock and does no calendar arithmetic, so an
-- answer is a function of the stored counters and the arguments alone, as in core.
--
-- Layout (sync-server/src/limits/wire.rs encodes it; its tests hold the next line to the Rust
-- constants):
local HEAD, PER_REQUEST, PER_RULE, PER_ANSWER = 1, 3, 8, 5
--   ARGV[1]                     number of requests
--   per request, PER_REQUEST:   now_ms, cost, number of rules
--   per rule, PER_RULE:         kind, quota, window_ms, period, reset_ms, seed,
--                               emission_ns, tolerance_ns
--     kind         gcra | fixed_window | sliding_window | daily | monthly
--     quota        what the rule answers as its limit (gcra: the burst)
--     window_ms    the window length (sliding windows weigh the previous window with it)
--     period       the window's index (windows and quotas); its counter is KEYS[i]:period
--     reset_ms     milliseconds from now_ms to the end of that window (windows and quotas)
--     seed         quotas: units already counted, used while Redis has no counter for the period
--     emission_ns  gcra: nanoseconds per unit
--     tolerance_ns gcra: how far past now the theoretical arrival time (TAT) may run
--   KEYS: one base key per rule, in the same order.
-- Answer: PER_ANSWER integers per rule: allowed (0/1), limit, remaining, reset_ms,
-- retry_after_ms (-1: never). A batch that does not match the layout is refused whole with an
-- error, before anything is read or written.
--
-- Numbers: Lua's are doubles, exact up to 2^53. Counts, windows and indexes stay far below
-- that; GCRA's nanosecond times do not (now is ~1.8e18 ns), so they are kept as pairs
-- (milliseconds, nanoseconds 0..999999), parsed from and written as decimal strings: the stored
-- TAT is core's state, nanoseconds since the epoch.

-- Counters outlive their window by this much (Redis's clock), so a node whose clock lags the
-- writer's by less still finds them.
local GRACE_MS = 5000
local NS = 1000000
local KINDS = { gcra = true, fixed_window = true, sliding_window = true, daily = true, monthly = true }

local function layout_error(detail)
  return redis.error_reply(string.format(
    'ERR keyward check.lua: batch layout mismatch: %s (layout: %d head value, %d per request, '
      .. '%d per rule, one key per rule; %d values and %d keys received)',
    detail, HEAD, PER_REQUEST, PER_RULE, #ARGV, #KEYS))
end

local function count(s)
  local n = tonumber(s)
  if n and n >= 0 and n == math.floor(n) then return n end
  return nil
end

-- Pass 1: the layout, before any counter is touched.
local nreq = count(ARGV[1])
if not nreq then return layout_error('ARGV[1] is not a request count') end
do
  local a, k = HEAD + 1, 1
  for r = 1, nreq do
    if a + PER_REQUEST - 1 > #ARGV then return layout_error('request ' .. r .. ' is cut short') end
    local n = count(ARGV[a + 2])
    if not n then return layout_error('request ' .. r .. ' has no rule count') end
    a = a + PER_REQUEST
    if a + n * PER_RULE - 1 > #ARGV then return layout_error('the rules of request ' .. r .. ' are cut short') end
    for i = 1, n do
      if not KINDS[ARGV[a]] then
        return layout_error('rule ' .. i .. ' of request ' .. r .. ' has unknown kind ' .. tostring(ARGV[a]))
      end
      a = a + PER_RULE
    end
    k = k + n
  end
  if a ~= #ARGV + 1 then return layout_error((#ARGV + 1 - a) .. ' values left over') end
  if k ~= #KEYS + 1 then return layout_error((k - 1) .. ' rules but ' .. #KEYS .. ' keys') end
end

-- (ms, ns) pairs: a u64 decimal string split without rounding, and exact arithmetic on them.
local function split(s)
  s = tostring(s)
  local len = #s
  if len <= 6 then return 0, tonumber(s) end
  return tonumber(string.sub(s, 1, len - 6)), tonumber(string.sub(s, len - 5))
end
local function join(m, n)
  if m == 0 then return string.format('%d', n) end
  return string.format('%.0f%06d', m, n)
end
local function le(am, an, bm, bn) return am < bm or (am == bm and an <= bn) end
local function add(am, an, bm, bn)
  local n = an + bn
  if n >= NS then return am + bm + 1, n - NS end
  return am + bm, n
end
local function sub(am, an, bm, bn) -- a >= b
  local n = an - bn
  if n < 0 then return am - bm - 1, n + NS end
  return am - bm, n
end
local function mul(am, an, q) -- q <= 10^6, a < 10^14 ns
  local n = an * q
  local carry = math.floor(n / NS)
  return am * q + carry, n - carry * NS
end
local function ceil_ms(m, n)
  if n > 0 then return m + 1 end
  return m
end

-- Pass 2: the checks.
local out = {}
local a, k = HEAD + 1, 1
for _ = 1, nreq do
  local now, cost, nrules = tonumber(ARGV[a]), tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  a = a + PER_REQUEST
  local writes, all = {}, true
  for _ = 1, nrules do
    local kind, limit, window = ARGV[a], tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
    local period, reset, seed = ARGV[a + 3], tonumber(ARGV[a + 4]), tonumber(ARGV[a + 5])
    local base = KEYS[k]
    local ok, remaining, retry
    if kind == 'gcra' then
      -- Everything relative to now, in (ms, ns): b = max(TAT - now, 0), x = b + emission * cost
      -- (the next TAT); allowed when x <= tolerance.
      local em, en = split(ARGV[a + 6])
      local tm, tn = split(ARGV[a + 7])
      local key = base .. ':tat'
      local bm, bn = 0, 0
      local v = redis.call('GET', key)
      if v then
        local sm, sn = split(v)
        if not le(sm, sn, now, 0) then bm, bn = sub(sm, sn, now, 0) end
      end
      local wm, wn = mul(em, en, cost)
      local xm, xn = add(bm, bn, wm, wn)
      ok = le(xm, xn, tm, tn)
      local am, an = bm, bn -- the TAT after this request, relative to now
      if ok then am, an = xm, xn end
      if not le(am, an, tm, tn) then
        remaining = 0
      else
        local rm, rn = sub(tm, tn, am, an)
        local fm, fn = mul(em, en, limit)
        if le(fm, fn, rm, rn) then
          remaining = limit
        else
          -- floor(room / emission) < limit <= 10^6: estimate, then settle exactly.
          local function fits(q)
            local qm, qn = mul(em, en, q)
            return le(qm, qn, rm, rn)
          end
          local q = math.floor((rm * NS + rn) / (em * NS + en))
          while q > 0 and not fits(q) do q = q - 1 end
          while fits(q + 1) do q = q + 1 end
          remaining = q
        end
      end
      reset = ceil_ms(am, an)
      if ok then
        retry = 0
      elseif cost > limit then
        retry = -1
      else
        retry = ceil_ms(sub(xm, xn, tm, tn))
      end
      if ok then writes[#writes + 1] = { key, join(now + xm, xn), ceil_ms(xm, xn) + GRACE_MS } end
    elseif kind == 'sliding_window' then
      -- In units x milliseconds: current * window + previous * (window - elapsed), and
      -- window - elapsed is reset_ms.
      local key = base .. ':' .. period
      local cur = tonumber(redis.call('GET', key) or '0')
      local before = base .. ':' .. string.format('%.0f', tonumber(period) - 1)
      local prev = tonumber(redis.call('GET', before) or '0')
      local used = cur * window + prev * reset
      local capacity, want = limit * window, cost * window
      ok = used + want <= capacity
      local left = math.max(0, capacity - used)
      if ok then
        remaining = math.floor((left - want) / window)
      else
        remaining = math.floor(left / window)
      end
      if ok then retry = 0 elseif cost > limit then retry = -1 else retry = math.min(reset, window) end
      if ok then writes[#writes + 1] = { key, cur + cost, reset + window + GRACE_MS } end
    else -- fixed_window, daily, monthly
      local key = base .. ':' .. period
      local v = redis.call('GET', key)
      local used = seed
      if v then used = tonumber(v) end
      ok = used + cost <= limit
      if ok then remaining = limit - used - cost else remaining = math.max(0, limit - used) end
      if ok then retry = 0 elseif cost > limit then retry = -1 else retry = reset end
      if ok then writes[#writes + 1] = { key, used + cost, reset + GRACE_MS } end
    end
    if not ok then all = false end
    local b = #out
    if ok then out[b + 1] = 1 else out[b + 1] = 0 end
    out[b + 2], out[b + 3], out[b + 4], out[b + 5] = limit, remaining, reset, retry
    a = a + PER_RULE
    k = k + 1
  end
  if all then
    for _, w in ipairs(writes) do
      redis.call('SET', w[1], w[2], 'PX', w[3])
    end
  end
end
return out
