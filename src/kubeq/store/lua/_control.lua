-- Shared by the scripts that move jobs between states (prepended by scripts.py after
-- _prelude.lua): execution control (rate limits, concurrency slots), lease semantics, expiry
-- and durable waits.
-- Execution control (docs/architecture.md, Execution control): rate limits, concurrency
-- slots, expiry.
-- A number stored at key (a float string), or nil when absent or not a number.
local function num_at(key)
  local v = redis.pcall('GET', key)
  if type(v) == 'string' then return tonumber(v) end
  return nil
end
local function set_num(key, value)
  redis.call('SET', key, string.format('%.3f', value), 'PX', math.ceil(value - NOW) + 60000)
end
-- A GCRA limiter of n starts per per_ms with a burst of b, on this server's clock. The key
-- holds the theoretical arrival time of the next start (TAT); a start conforms when
-- TAT - tau <= NOW. Returns 0 when a start is allowed now (it is counted), else the time it
-- may start: a job seen for the first time (reserved false) gets its own slot from the
-- cursor key..':next', so deferred jobs come back one per slot, not all at once.
-- State is read once per key and script call and written back by flush_rates(), so a
-- limit costs arithmetic per job, not round trips inside Redis.
local RATES = {}
local function rate_check(key, n, per_ms, b, reserved, delayed)
  local st = RATES[key]
  if not st then
    st = {tat = num_at(key)}
    RATES[key] = st
  end
  local T = per_ms / n
  local tau = (b - 1) * T
  local tat = st.tat or NOW
  if tat < NOW then tat = NOW end
  if tat - tau <= NOW then
    st.tat = tat + T
    st.dirty = true
    return 0
  end
  local due = math.ceil(tat - tau)
  if not reserved then
    if not st.nxt_read then
      -- the cursor never runs further ahead than the jobs parked can fill, so jobs that were
      -- cancelled, aborted or purged while parked leave no gap in the schedule
      st.nxt = num_at(key .. ':next')
      local cap = due + T * redis.call('ZCARD', delayed)
      if st.nxt and st.nxt > cap then st.nxt = cap end
      st.nxt_read = true
    end
    if st.nxt and st.nxt > due then due = math.ceil(st.nxt) end
    st.nxt = due + T
    st.nxt_dirty = true
  end
  return due
end
local function flush_rates()
  for key, st in pairs(RATES) do
    if st.dirty then set_num(key, st.tat) end
    if st.nxt_dirty then set_num(key .. ':next', st.nxt) end
  end
end
-- How many starts a limiter allows now (0 .. b), the TAT to count them from, and, when it
-- allows none, the ms until the next one.
local function rate_allowance(key, n, per_ms, b)
  local T = per_ms / n
  local tau = (b - 1) * T
  local tat = num_at(key) or NOW
  if tat < NOW then tat = NOW end
  if tat - tau > NOW then return 0, tat, math.ceil(tat - tau - NOW) end
  return math.floor((NOW + tau - tat) / T) + 1, tat, 0
end
-- The queue-wide rate limit (base..'ratelimit', a hash n, ms, b), or nil. A malformed one
-- stops the script before any change, naming the key and the fix.
local function queue_rate(base)
  local key = base .. 'ratelimit'
  local f = redis.pcall('HMGET', key, 'n', 'ms', 'b')
  if type(f) == 'table' and f.err then f = {'x'} end
  if not f[1] and not f[2] then return nil end
  local n, ms, b = int(f[1]), int(f[2]), int(f[3] or '1')
  if not n or not ms or not b or n < 1 or ms < 1 or b < 1 then
    error('kubeq: ' .. key .. ' is malformed; set it again with ' ..
      '`kubeq limit QUEUE RATE` or remove it with `kubeq limit QUEUE --clear`')
  end
  return {n, ms, b}
end
-- Remember for a while that a queue is held back by a rate limit (stats and the operator).
local function note_throttled(base, ms)
  redis.call('SET', base .. 'throttled', '1', 'PX', math.max(1000, math.min(ms, 60000)))
end
-- Take a concurrency slot for job id under cl_key (at most cl_n holders); false when full.
-- A job that holds its slot already keeps it. When the slots are full, holders whose attempt
-- can no longer be running (not active, not lapsed, not an aborted attempt still leased) are
-- dropped first, so a slot some path forgot to free heals here. The number of holders is
-- read once per call and key (SLOTS, its set's type checked then) and kept as this call adds
-- to it: a burst of one key's jobs costs one SADD each while slots are free.
local SLOTS = {}
local function take_slot(base, id, cl_key, cl_n, active)
  local slots = base .. 'slots:' .. cl_key
  local limit = int(cl_n) or 1
  local held = SLOTS[slots]
  if not held then
    local t = redis.call('TYPE', slots)['ok']
    if t ~= 'set' and t ~= 'none' then redis.call('DEL', slots) end
    held = redis.call('SCARD', slots)
  end
  if held < limit then  -- (a holder already: SADD adds nothing, and it keeps its slot)
    SLOTS[slots] = held + redis.call('SADD', slots, id)
    return true
  end
  if redis.call('SISMEMBER', slots, id) == 1 then
    SLOTS[slots] = held
    return true
  end
  for _, m in ipairs(redis.call('SMEMBERS', slots)) do
    local mf = job_fields(base .. 'job:' .. m, 'status', 'lapsed')
    local runs = mf and (mf[1] == 'active' or (mf[1] == 'queued' and mf[2]) or
      (mf[1] == 'aborted' and redis.call('ZSCORE', active, m)))
    if not runs then redis.call('SREM', slots, m) end
  end
  held = redis.call('SCARD', slots)
  if held >= limit then
    SLOTS[slots] = held
    return false
  end
  redis.call('SADD', slots, id)
  SLOTS[slots] = held + 1
  return true
end
-- Make one job ready (score = its ready score): a job with a fairness key joins its key's
-- flow (defined in _fair.lua, which scripts.py appends to this file).
local make_ready
-- The waiting sets this call found empty: a burst of one key's releases pops its waiting
-- set once (park_waiting, the only path that adds to one, takes its set off).
local DRY = {}
-- Park a job whose key's slots are full until a slot is free (score: its ready score).
local function park_waiting(base, cl_key, score, id)
  local waiting = base .. 'waiting:' .. cl_key
  DRY[waiting] = nil
  redis.call('ZADD', waiting, score, id)
end
-- Free the slot a job held (it left 'active' by any path) and move waiting jobs of the same
-- key back to the ready set, as many as there is room for. cl_n is the job's limit; a caller
-- that has not read it passes the job's key instead (jk), read only when jobs wait.
local function release_slot(q, base, id, cl_key, cl_n, jk)
  if not cl_key or cl_key == '' then return end
  local slots = base .. 'slots:' .. cl_key
  SLOTS[slots] = nil  -- take_slot reads its holders again
  redis.pcall('SREM', slots, id)
  local waiting = base .. 'waiting:' .. cl_key
  if DRY[waiting] then return end
  if jk then cl_n = redis.call('HGET', jk, 'cl_n') or nil end
  local held = redis.pcall('SCARD', slots)
  if type(held) ~= 'number' then held = 0 end
  local room = (int(cl_n) or 1) - held
  local moved = 0
  while moved < room do
    local w = redis.pcall('ZPOPMIN', waiting, 1)
    if type(w) ~= 'table' or w.err or #w == 0 then
      if type(w) == 'table' and not w.err then DRY[waiting] = true end
      break
    end
    local wk = base .. 'job:' .. w[1]
    local wf = job_fields(wk, 'status', 'fk')
    if wf and wf[1] == 'waiting' then
      redis.call('HSET', wk, 'status', 'queued')
      make_ready(q, base, w[1], w[2], wf[2])
      moved = moved + 1
    end
  end
  wake(q.wake, moved)
end
-- Lease semantics (docs/architecture.md, Guarantees): a lease token holds its job until the
-- job is delivered again or ends. A lease that expired only makes the job 'lapsed' (back in
-- the ready set, status queued, field lapsed = the token): its holder's late heartbeat or
-- outcome is still its own until a fetch delivers the job again.
-- Whether `token` holds the job whose status, lease and lapsed fields are f1, f2, f3.
local function holds(token, status, lease, lapsed)
  return (status == 'active' and lease == token) or (status == 'queued' and lapsed == token)
end
-- A lapsed job taken back by the holder of its lease (nothing else changes about it).
local function take_back(q, jk, id, lease_until)
  redis.call('ZREM', q.ready, id)
  redis.call('HSET', jk, 'status', 'active')
  redis.call('HDEL', jk, 'lapsed')
  if lease_until then redis.call('ZADD', q.active, lease_until, id) end
end
-- An aborted attempt has stopped (its worker said so, or stopped renewing its lease): its
-- concurrency slot is free and the job's data expires after its result TTL from now (ttl: the
-- job's result_ttl field, missing for the default).
local function aborted_stopped(q, base, id, jk, cl_key, cl_n, ttl)
  redis.call('ZREM', q.active, id)
  release_slot(q, base, id, cl_key, cl_n)
  local t = job_ttl(ttl)
  -- a hand-off still to come keeps the record (handed.lua gives it its TTL then)
  if t and not handing_off(base, id) then redis.call('EXPIRE', jk, t) end
end
-- End a job that did not start before its expiry time (ttl: as for aborted_stopped).
local function expire_job(base, id, jk, ttl)
  redis.call('HSET', jk, 'status', 'expired', 'finished_at', NOW,
    'reason', 'expired: it had not started by its expiry time')
  local t = job_ttl(ttl)
  if t then redis.call('EXPIRE', jk, t) end
  notify_done(base, id, t)
  note_end(base, id, jk, 'expired')
  local c = redis.pcall('INCR', base .. 'expired')
  if type(c) ~= 'number' then redis.call('SET', base .. 'expired', 1) end
end
-- Durable waits (docs/durable.md): a job that slept or waited leaves the sleeping index
-- and the waiters of its signal key when it wakes or ends by any path (fetch, signal,
-- cancel, abort, purge).
local function unsleep(base, id, jk)
  local s = redis.pcall('HGET', jk, 'signal')
  if type(s) == 'string' and s ~= '' then redis.pcall('ZREM', base .. 'waiters:' .. s, id) end
  redis.pcall('ZREM', base .. 'sleeping', id)
  redis.pcall('HDEL', jk, 'signal', 'sleep_until')
end
