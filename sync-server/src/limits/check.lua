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
local HEAD, PER_REQUEST, PER_RULE, PER_ANSWER = 1, 3, 9, 6
--   ARGV[1]                     number of requests
--   per request, PER_REQUEST:   now_ms, cost, number of rules
--   per rule, PER_RULE:         kind, quota, window_ms, period, reset_ms, seed,
--                               emission_ns, tolerance_ns, want
--     kind         gcra | fixed_window | sliding_window | daily | monthly
--     quota        what the rule answers as its limit (gcra: the burst)
--     window_ms    the window length (sliding windows weigh the previous window with it)
--     period       the window's index (windows and quotas); its counter is KEYS[i]:period
--     reset_ms     milliseconds from now_ms to the end of that window (windows and quotas)
--     seed         quotas: units already counted, used while Redis has no counter for the period
--     emission_ns  gcra: nanoseconds per unit
--     tolerance_ns gcra: how far past now the theoretical arrival time (TAT) may run
--     want         units to take at once when the request passes (a lease; the cost itself
--                  for an exact check): halved until the rule allows them, never below cost
--   KEYS: one base key per rule, in the same order.
-- Answer: PER_ANSWER integers per rule: allowed (0/1), limit, remaining, reset_ms,
-- retry_after_ms (-1: never), granted (units taken: 0 when the request was refused). A batch that does not match the layout is refused whole with an
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
      if not count(ARGV[a + 8]) then
        return layout_error('rule ' .. i .. ' of request ' .. r .. ' has no want')
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

-- A rule of a request, with the counter state it reads (each rule's keys are its own).
local function load(a, k)
  local r = {
    kind = ARGV[a], limit = tonumber(ARGV[a + 1]), window = tonumber(ARGV[a + 2]),
    period = ARGV[a + 3], reset = tonumber(ARGV[a + 4]), seed = tonumber(ARGV[a + 5]),
    want = tonumber(ARGV[a + 8]), base = KEYS[k],
  }
  if r.kind == 'gcra' then
    r.em, r.en = split(ARGV[a + 6])
    r.tm, r.tn = split(ARGV[a + 7])
    r.key = r.base .. ':tat'
    r.bm, r.bn = 0, 0 -- b = max(TAT - now, 0)
    r.tat = redis.call('GET', r.key)
  elseif r.kind == 'sliding_window' then
    r.key = r.base .. ':' .. r.period
    r.cur = tonumber(redis.call('GET', r.key) or '0')
    local before = r.base .. ':' .. string.format('%.0f', tonumber(r.period) - 1)
    r.prev = tonumber(redis.call('GET', before) or '0')
  else -- fixed_window, daily, monthly
    r.key = r.base .. ':' .. r.period
    local v = redis.call('GET', r.key)
    r.used = r.seed
    if v then r.used = tonumber(v) end
  end
  return r
end

-- The rule's answer for taking q units at now (allowed, remaining, reset, retry, and the
-- write that takes them), from the state `load` read; no counter is touched.
local function judge(r, now, q)
  local ok, remaining, reset, retry, write
  local limit = r.limit
  if r.kind == 'gcra' then
    -- Everything relative to now, in (ms, ns): b = max(TAT - now, 0), x = b + emission * q
    -- (the next TAT); allowed when x <= tolerance.
    local bm, bn = 0, 0
    if r.tat then
      local sm, sn = split(r.tat)
      if not le(sm, sn, now, 0) then bm, bn = sub(sm, sn, now, 0) end
    end
    local em, en, tm, tn = r.em, r.en, r.tm, r.tn
    local wm, wn = mul(em, en, q)
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
        local function fits(n)
          local qm, qn = mul(em, en, n)
          return le(qm, qn, rm, rn)
        end
        local n = math.floor((rm * NS + rn) / (em * NS + en))
        while n > 0 and not fits(n) do n = n - 1 end
        while fits(n + 1) do n = n + 1 end
        remaining = n
      end
    end
    reset = ceil_ms(am, an)
    if ok then
      retry = 0
    elseif q > limit then
      retry = -1
    else
      retry = ceil_ms(sub(xm, xn, tm, tn))
    end
    if ok then write = { r.key, join(now + xm, xn), ceil_ms(xm, xn) + GRACE_MS } end
  elseif r.kind == 'sliding_window' then
    -- In units x milliseconds: current * window + previous * (window - elapsed), and
    -- window - elapsed is reset_ms.
    local window = r.window
    reset = r.reset
    local used = r.cur * window + r.prev * reset
    local capacity, want = limit * window, q * window
    ok = used + want <= capacity
    local left = math.max(0, capacity - used)
    if ok then
      remaining = math.floor((left - want) / window)
    else
      remaining = math.floor(left / window)
    end
    if ok then retry = 0 elseif q > limit then retry = -1 else retry = math.min(reset, window) end
    if ok then write = { r.key, r.cur + q, reset + window + GRACE_MS } end
  else -- fixed_window, daily, monthly
    reset = r.reset
    ok = r.used + q <= limit
    if ok then remaining = limit - r.used - q else remaining = math.max(0, limit - r.used) end
    if ok then retry = 0 elseif q > limit then retry = -1 else retry = reset end
    if ok then write = { r.key, r.used + q, reset + GRACE_MS } end
  end
  return { ok = ok, remaining = remaining, reset = reset, retry = retry, write = write }
end

-- Pass 2: the checks. A request passes when every rule allows its cost; then each rule gives
-- up to its `want` units at once (halving down to the cost: a lease), and all are taken.
local out = {}
local a, k = HEAD + 1, 1
for _ = 1, nreq do
  local now, cost, nrules = tonumber(ARGV[a]), tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  a = a + PER_REQUEST
  local rules, answers, all = {}, {}, true
  for i = 1, nrules do
    rules[i] = load(a, k)
    answers[i] = judge(rules[i], now, cost)
    if not answers[i].ok then all = false end
    a = a + PER_RULE
    k = k + 1
  end
  local granted = {}
  for i = 1, nrules do
    granted[i] = 0
    if all then
      local r, take = rules[i], cost
      if r.want > cost then
        take = r.want
        while take > cost and not judge(r, now, take).ok do
          take = math.max(cost, math.floor(take / 2))
        end
        if take ~= cost then answers[i] = judge(r, now, take) end
      end
      granted[i] = take
      local w = answers[i].write
      redis.call('SET', w[1], w[2], 'PX', w[3])
    end
    local j, b = answers[i], #out
    if j.ok then out[b + 1] = 1 else out[b + 1] = 0 end
    out[b + 2], out[b + 3], out[b + 4], out[b + 5], out[b + 6] =
      rules[i].limit, j.remaining, j.reset, j.retry, granted[i]
  end
end
return out
