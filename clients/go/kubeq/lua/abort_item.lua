-- Shared by every kubeq script (prepended by scripts.py).
-- Time comes from the Redis server, so workers with skewed clocks agree on leases.
local _t = redis.call('TIME')
local NOW = tonumber(_t[1]) * 1000 + math.floor(tonumber(_t[2]) / 1000)
local BAND = 10000000000000
-- NOW as the string redis.call stores: converting a number costs as much as a field write
local NOWS = string.format('%d', NOW)
local PMAX = 9
-- Wake up to n idle workers blocked on the queue's wake list; the list never exceeds 64.
-- The list is presence data: one of another type is dropped here and written again.
local function wake(key, n)
  if n <= 0 then return end
  local len = redis.pcall('LLEN', key)
  if type(len) ~= 'number' then
    redis.call('DEL', key)
    len = 0
  end
  local room = 64 - len
  if n > room then n = room end
  if n > 0 then
    local tokens = {}
    for i = 1, n do tokens[i] = '1' end
    redis.call('RPUSH', key, unpack(tokens))
  end
end
-- Validation before mutation: a script checks what it is about to change and settles a bad
-- item on its own (dead-lettered with its reason), so one malformed entry written by hand or by
-- a bug never leaves the other items of the same call half-done.
local MAX_TTL = 315360000 -- ten years in seconds
-- The fields of a job hash, or nil when the key holds another type.
-- A one-job enqueue call within the resend window stores its send token on its job (field
-- 'sent'; enqueue.lua). When that job's record is deleted (replaced by a new job of its id,
-- or purged), the token becomes a receipt answering 1 (created), so the call's resend finds
-- its answer and writes nothing: a resend never brings back a job that was replaced or purged.
local RESEND_WINDOW = 300
local function keep_receipt(base, token, enqueued_at)
  if token and (tonumber(enqueued_at) or 0) > NOW - RESEND_WINDOW * 1000 then
    redis.call('SET', base .. 'sent:' .. token, '1', 'EX', tostring(RESEND_WINDOW), 'NX')
  end
end

local function job_fields(jk, ...)
  local f = redis.pcall('HMGET', jk, ...)
  if type(f) == 'table' and f.err then return nil end
  return f
end
-- A job id as kubeq makes them (keys.py: letters, digits, _ . : -, at most 200).
local function valid_id(id)
  return type(id) == 'string' and #id <= 200 and string.match(id, '^[%w_.:-]+$') ~= nil
end
-- A whole number, or nil.
local function int(v)
  local n = tonumber(v)
  if n and n == math.floor(n) and n > -1e15 and n < 1e15 then return n end
  return nil
end
-- The ready-set score: priority band (a bad priority counts as the default, 5) + ready time.
local function ready_score(priority, ready_ms)
  local p = int(priority)
  if not p or p < 0 or p > PMAX then p = 5 end
  return (PMAX - p) * BAND + (int(ready_ms) or NOW)
end
-- A TTL in whole seconds within 1 s .. 10 years, or nil for none.
local function ttl_of(v)
  local n = tonumber(v)
  if not n or n ~= n or n < 1 then return nil end
  return math.min(math.floor(n), MAX_TTL)
end
-- Tell result() waiters that a job has ended. Only a job a caller waits for has a done-list:
-- a waiter sets <base>watch:<id> before it reads the status (docs/protocol.md), so a job
-- nobody waits for costs no key more when it ends.
local function notify_done(base, id, ttl)
  if redis.call('EXISTS', base .. 'watch:' .. id) == 0 then return end
  local key = base .. 'done:' .. id
  redis.call('DEL', key)
  redis.call('RPUSH', key, '1')
  local t = ttl_of(ttl)
  if t then redis.call('EXPIRE', key, t) end
end
-- Add workflow edges ("<queue>/<id>") to a job's 'parents' or 'children' field, for people
-- (edge.lua, depend.lua): each entry once, at most max kept (more are counted in
-- <field>_more). A job key that does not exist is not created, one of another type is left
-- alone. Returns how many entries were added.
local function add_edges(jk, field, max, entries)
  if redis.call('EXISTS', jk) == 0 then return 0 end
  local f = job_fields(jk, field, field .. '_more')
  if not f then return 0 end
  local text = f[1] or ''
  local n, more, added = 0, 0, 0
  if text ~= '' then n = select(2, string.gsub(text, '\n', '')) + 1 end
  for _, e in ipairs(entries) do
    if not string.find('\n' .. text .. '\n', '\n' .. e .. '\n', 1, true) then
      if n < max then
        text = (text == '' and e) or (text .. '\n' .. e)
        n, added = n + 1, added + 1
      else
        more = more + 1
      end
    end
  end
  if added > 0 then redis.call('HSET', jk, field, text) end
  if more > 0 then redis.call('HINCRBY', jk, field .. '_more', more) end
  return added
end
-- Note a job whose end must enqueue a callback (docs/architecture.md, Workflows): a worker
-- hands it off in a second, idempotent step (handoff.py), and any worker of the queue redoes
-- it if that one died first. A key of another type is kept aside, not lost. Each end gets a
-- score above the last one's, so the hand-off forgets only the end it read (handed.lua); the
-- job's record is kept (no TTL) until then, and handed.lua gives it back its result_ttl.
local function note_handoff(base, id)
  local key = base .. 'handoff'
  local score = NOW
  local prev = redis.pcall('ZSCORE', key, id)
  if type(prev) == 'string' and tonumber(prev) >= NOW then score = tonumber(prev) + 1 end
  score = string.format('%d', score)
  local ok = redis.pcall('ZADD', key, score, id)
  if type(ok) == 'table' and ok.err then
    redis.call('RENAME', key, base .. 'garbage:handoff')
    redis.call('ZADD', key, score, id)
  end
  redis.pcall('PERSIST', base .. 'job:' .. id)
end
-- Whether a job's end still waits for its hand-off (its callbacks, its dependents): until then
-- its id is not free for a new job (enqueue.lua), whose fields would replace what the
-- hand-off reads.
local function handing_off(base, id)
  return type(redis.pcall('ZSCORE', base .. 'handoff', id)) == 'string'
end
-- A job just ended with this status: note a hand-off when something follows it (its
-- on_success when finished, its on_failure when failed, its dependents whatever the end),
-- free its debounce or singleton key, and end a batch's items still in it.
-- A job of a debounced or singleton key (marker 'o', flow.lua) frees the key at its end,
-- if the key still names it.
local function release_flow(base, id, jk)
  local k = redis.pcall('HGET', jk, 'flow')
  if type(k) ~= 'string' then return end
  local key = base .. 'flow:' .. k
  if redis.pcall('GET', key) == id then redis.call('DEL', key) end
end
-- A batch (marker 'b', batch.lua) that ends takes along its items not settled yet: failed,
-- they are dead-lettered; cancelled, aborted or purged, they end so. Its item list then
-- expires with its record (kubeq job shows the batch of an item meanwhile).
local function end_batch(base, id, jk, status)
  local items = base .. 'items:' .. id
  local ids = redis.pcall('LRANGE', items, 0, -1)
  if type(ids) ~= 'table' or ids.err then return end
  for _, item in ipairs(ids) do
    local ik = base .. 'job:' .. item
    local f = job_fields(ik, 'status', 'batch', 'result_ttl')
    if f and f[1] == 'batched' and f[2] == id then
      local st = status == 'finished' and 'failed' or status
      redis.call('HSET', ik, 'status', st, 'finished_at', NOWS,
        'reason', 'its batch ' .. id .. ' ended ' .. status .. ' before settling it')
      local t = nil
      if st == 'failed' then
        redis.call('ZADD', base .. 'dead', NOWS, item)
      else
        t = ttl_of(f[3])
        if t then redis.call('EXPIRE', ik, t) end
      end
      notify_done(base, item, t)
      local icb = redis.pcall('HGET', ik, 'cb') -- an item's dependents are handed off too
      if type(icb) == 'string' and string.find(icb, 'd', 1, true) then note_handoff(base, item) end
    end
  end
  local t = ttl_of(redis.pcall('HGET', jk, 'result_ttl'))
  if t then redis.call('EXPIRE', items, t) else redis.call('DEL', items) end
  local open = redis.pcall('HGET', jk, 'batch_key')
  if type(open) == 'string' and redis.pcall('GET', base .. 'batch:' .. open) == id then
    redis.call('DEL', base .. 'batch:' .. open)
  end
end
local function note_end(base, id, jk, status)
  local cb = redis.pcall('HGET', jk, 'cb')
  if type(cb) ~= 'string' then return false end
  if string.find(cb, 'o', 1, true) then release_flow(base, id, jk) end
  if string.find(cb, 'b', 1, true) then end_batch(base, id, jk, status) end
  local d = string.find(cb, 'd', 1, true)
  local s = status == 'finished' and string.find(cb, 's', 1, true)
  local fl = status == 'failed' and string.find(cb, 'f', 1, true)
  if d or s or fl then
    note_handoff(base, id)
    return true
  end
  return false
end
-- Dead-letter a job with a reason. Robust to garbage: a job key of another type is moved aside
-- (kept for inspection under <base>garbage:<id>) and replaced by a hash that says why, and a
-- non-numeric lease still changes, so a worker holding the old one is fenced off.
local function bury(q, base, id, jk, reason)
  local t = redis.call('TYPE', jk)['ok']
  if t ~= 'hash' and t ~= 'none' then
    local aside = base .. 'garbage:' .. id
    redis.call('RENAME', jk, aside)
    reason = reason .. ' (its key held a ' .. t .. ', not a hash; kept as ' .. aside .. ')'
  end
  local lease = int(redis.call('HGET', jk, 'lease'))
  redis.call('HSET', jk, 'lease', lease and lease + 1 or ('buried-' .. NOW),
    'status', 'failed', 'reason', reason, 'finished_at', NOW)
  redis.call('HDEL', jk, 'lapsed')
  redis.call('PERSIST', jk)
  -- dead is a terminal state: the id leaves every other state set (one set per job, always)
  redis.call('ZREM', q.ready, id)
  redis.call('ZREM', q.delayed, id)
  redis.call('ZREM', q.active, id)
  redis.call('ZADD', q.dead, NOW, id)
  notify_done(base, id, 0)
  return note_end(base, id, jk, 'failed')
end
-- The keys that must hold sorted sets, or nothing: any other type stops the script before
-- it changes anything (a person must look; the jobs are in the job hashes).
local function require_zsets(keys, base)
  for _, k in ipairs(keys) do
    local t = redis.call('TYPE', k)['ok']
    if t ~= 'zset' and t ~= 'none' then
      error('kubeq: ' .. k .. ' holds a ' .. t .. ', not a sorted set; ' ..
        'inspect it and delete it (its jobs are in the ' .. base .. 'job:<id> hashes)')
    end
  end
end
-- A read the script does anyway, of a key that must hold a sorted set, made before it changes
-- anything: Redis refusing it stops the script with require_zsets's message.
local function zset_read(key, base, command, ...)
  local reply = redis.pcall(command, key, ...)
  if type(reply) == 'table' and reply.err then
    require_zsets({key}, base)
    error(reply)
  end
  return reply
end
-- A key of presence data only (wake tokens, workers, busy counts, a transit log): one of the
-- wrong type is dropped, and rebuilt by the next writer.
local function repair(key, want)
  local t = redis.call('TYPE', key)['ok']
  if t ~= want and t ~= 'none' then redis.call('DEL', key) end
end
-- A write to presence data, checked only when Redis refuses it (a refused write changes
-- nothing): a key of the wrong type is dropped and written again.
local function present(command, key, ...)
  local reply = redis.pcall(command, key, ...)
  if type(reply) == 'table' and reply.err then
    redis.call('DEL', key)
    reply = redis.call(command, key, ...)
  end
  return reply
end
-- The fair-queueing index and its idle set exist only while a queue has fairness keys
-- (_fair.lua): one EXISTS for both, their types only when one exists.
local function require_fair(base)
  local fair, idle = base .. 'fair', base .. 'fair:idle'
  if redis.call('EXISTS', fair, idle) > 0 then require_zsets({fair, idle}, base) end
end
-- Refuse to start when a queue's own sets hold the wrong type (nothing has changed yet).
-- Presence data is repaired where it is written: the wake list by wake(), the workers and
-- busy counts and the lease counter by the fetch, fair:state by fair_state (_fair.lua).
local function check_queue(q, base)
  require_zsets({q.ready, q.delayed, q.active, q.dead}, base)
  require_fair(base)
end
-- check_queue for a script that only adds jobs (enqueue.lua): the sets it writes before any
-- change (the sets a job goes to, the dead letters a replaced job leaves); the worker-side
-- keys it never touches are checked by the worker's scripts.
local function check_enqueue(q, base)
  require_zsets({q.ready, q.delayed, q.dead}, base)
  require_fair(base)
end
-- "0" = now, "+ms" = after a delay on this server's clock, "ms" = an absolute time.
local function due_at(spec)
  if string.sub(spec, 1, 1) == '+' then
    return NOW + tonumber(string.sub(spec, 2))
  end
  return tonumber(spec)
end
local function queue_keys(offset)
  return {
    ready = KEYS[offset + 1], delayed = KEYS[offset + 2], active = KEYS[offset + 3],
    dead = KEYS[offset + 4], workers = KEYS[offset + 5], busy = KEYS[offset + 6],
    paused = KEYS[offset + 7], wake = KEYS[offset + 8],
  }
end
-- [search index] The job search index (kubeq.client.search reads it): every job enqueue.lua,
-- flow.lua or batch.lua writes (ix_add, then ix_flush once per call) is appended to
-- <base>ix:task:<task> and, per tag, <base>ix:tag:<tag> (LISTs of "<enqueue ms>:<id>",
-- oldest first: an RPUSH costs far less time and memory than a ZADD), and its task joins <base>ix:tasks (ZSET task -> last enqueue ms). Each write drops the
-- index's entries older than IX_KEEP_MS from its old end, keeps at most IX_CAP, and makes
-- the key expire IX_KEEP_MS after this write; a reader drops the entries at the old end
-- whose job record is gone. The task is read from the payload ("task":"..."; a name with
-- '"' or '\\' is not indexed).
local IX_KEEP_MS, IX_CAP = 7 * 86400000, 2000000
local ix = {}  -- index key -> entries of this call
local ix_tasks = {}  -- task -> true, for <base>ix:tasks
local function ix_add(base, payload, id, tags)
  local task = string.match(payload, '"task":"([^"\\]*)"')
  local entry = NOWS .. ':' .. id
  local keys = {task and base .. 'ix:task:' .. task or nil}
  for _, t in ipairs(tags or {}) do keys[#keys + 1] = base .. 'ix:tag:' .. t end
  for _, k in ipairs(keys) do
    local l = ix[k] or {}
    ix[k] = l
    l[#l + 1] = entry
  end
  if task then ix_tasks[task] = true end
end
local function ix_flush(base)
  local floor = NOW - IX_KEEP_MS
  for k, l in pairs(ix) do
    for i = 1, #l, 4000 do redis.call('RPUSH', k, unpack(l, i, math.min(i + 3999, #l))) end
    for _ = 1, 10 do  -- aged entries, from the old end (100 a look)
      local old = redis.call('LRANGE', k, 0, 99)
      local n = 0
      for _, e in ipairs(old) do
        if (tonumber(string.match(e, '^(%d+):')) or 0) >= floor then break end
        n = n + 1
      end
      if n > 0 then redis.call('LTRIM', k, n, -1) end
      if n < 100 then break end
    end
    redis.call('LTRIM', k, -IX_CAP, -1)
    redis.call('PEXPIRE', k, IX_KEEP_MS)
  end
  local tasks = {}
  for task in pairs(ix_tasks) do
    tasks[#tasks + 1] = NOWS
    tasks[#tasks + 1] = task
  end
  if #tasks > 0 then
    local k = base .. 'ix:tasks'
    redis.call('ZADD', k, unpack(tasks))
    redis.call('ZREMRANGEBYSCORE', k, '-inf', '(' .. string.format('%d', floor))
    redis.call('PEXPIRE', k, IX_KEEP_MS)
  end
end
-- [end search index]

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
-- A job that holds its slot already keeps it. Holders whose attempt can no longer be running
-- (not active, not lapsed, not an aborted attempt still leased) are dropped first, so a slot
-- some path forgot to free heals here.
local function take_slot(base, id, cl_key, cl_n, active)
  local slots = base .. 'slots:' .. cl_key
  local limit = int(cl_n) or 1
  local t = redis.call('TYPE', slots)['ok']
  if t ~= 'set' and t ~= 'none' then redis.call('DEL', slots) end
  if redis.call('SISMEMBER', slots, id) == 1 then return true end
  if redis.call('SCARD', slots) >= limit then
    for _, m in ipairs(redis.call('SMEMBERS', slots)) do
      local mf = job_fields(base .. 'job:' .. m, 'status', 'lapsed')
      local runs = mf and (mf[1] == 'active' or (mf[1] == 'queued' and mf[2]) or
        (mf[1] == 'aborted' and redis.call('ZSCORE', active, m)))
      if not runs then redis.call('SREM', slots, m) end
    end
    if redis.call('SCARD', slots) >= limit then return false end
  end
  redis.call('SADD', slots, id)
  return true
end
-- Make one job ready (score = its ready score): a job with a fairness key joins its key's
-- flow (defined in _fair.lua, which scripts.py appends to this file).
local make_ready
-- Free the slot a job held (it left 'active' by any path) and move waiting jobs of the same
-- key back to the ready set, as many as there is room for.
local function release_slot(q, base, id, cl_key, cl_n)
  if not cl_key or cl_key == '' then return end
  local slots = base .. 'slots:' .. cl_key
  redis.pcall('SREM', slots, id)
  local held = redis.pcall('SCARD', slots)
  if type(held) ~= 'number' then held = 0 end
  local room = (int(cl_n) or 1) - held
  local waiting = base .. 'waiting:' .. cl_key
  local moved = 0
  while moved < room do
    local w = redis.pcall('ZPOPMIN', waiting, 1)
    if type(w) ~= 'table' or w.err or #w == 0 then break end
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
-- concurrency slot is free and the job's data expires after its result TTL from now.
local function aborted_stopped(q, base, id, jk, cl_key, cl_n, ttl)
  redis.call('ZREM', q.active, id)
  release_slot(q, base, id, cl_key, cl_n)
  local t = ttl_of(ttl)
  -- a hand-off still to come keeps the record (handed.lua gives it its TTL then)
  if t and not handing_off(base, id) then redis.call('EXPIRE', jk, t) end
end
-- End a job that did not start before its expiry time.
local function expire_job(base, id, jk, ttl)
  redis.call('HSET', jk, 'status', 'expired', 'finished_at', NOW,
    'reason', 'expired: it had not started by its expiry time')
  local t = ttl_of(ttl)
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

-- Fair queues (docs/fairness.md; docs/architecture.md, Fair queues). Among the ready jobs of
-- one priority, fairness keys are served in proportion to their weights by start-time fair
-- queuing on a virtual clock (V). Each key with ready jobs has a start tag S; the fetch serves
-- the key of least tag (highest priority band first), V becomes that tag, and the key's tag
-- grows by FUNIT / weight per job served. A key that comes (back) gets max(V, its last finish
-- tag while V has not passed it), so a key that was away gains no credit and a new key waits
-- at most one turn of each key ahead of it.
-- Layout, all under the queue's hash tag (keys.py):
--   ready            every ready job, as today; a keyed job is scored FOFF higher, so the
--                    unkeyed jobs' own order (band + ready time) is untouched and every path
--                    that removes a ready job (cancel, abort, bury, purge, take back) still
--                    finds it there
--   fair             ZSET key -> band of its head * BAND + start tag: the keys with ready jobs
--   fair:q:<key>     ZSET the key's ready ids, score = ready score; an id no longer in ready
--                    (removed by another path) is skipped, free, when the fetch reaches it
--   fair:idle        ZSET key -> finish tag, for a key that emptied, until V passes it
--   fair:state       HASH v = V, u = the unkeyed jobs' start tag, ue = 1 while they were seen
--                    empty; deleted with fair:idle when no key has ready jobs
--   fair:weights     HASH key -> weight (0.001 .. 1000; absent = 1); '' names the unkeyed jobs
-- Jobs without a key are one more flow (named '' in the weights), served in their own order.
-- While no key has ready jobs the fetch pops the ready set exactly as without fairness.
local FOFF = 10 * BAND
local FUNIT = 1000
local FAIRST = {}
local function tagstr(x) return string.format('%.17g', x) end
-- The fairness state of a queue, read once per script call.
local function fair_state(base)
  local st = FAIRST[base]
  if not st then
    local s = redis.pcall('HMGET', base .. 'fair:state', 'v', 'u', 'ue')
    if type(s) ~= 'table' or s.err then
      redis.call('DEL', base .. 'fair:state')  -- presence data only: rebuilt from here
      s = {}
    end
    st = {v = tonumber(s[1]) or 0, u = tonumber(s[2]), ue = s[3] == '1', w = {}}
    FAIRST[base] = st
  end
  return st
end
-- A key's weight. A queue with few weights set has them all read at once (one HGETALL per
-- call; none set: one HLEN), else each key's is read when first needed.
local function fair_weight(st, base, key)
  local w = st.w[key]
  if w then return w end
  if st.wall == nil then
    st.wall = false
    local n = redis.pcall('HLEN', base .. 'fair:weights')
    if type(n) == 'number' and n <= 256 then
      local all = n > 0 and redis.call('HGETALL', base .. 'fair:weights') or {}
      for i = 1, #all, 2 do
        local v = tonumber(all[i + 1])
        if not (v and v >= 0.001 and v <= 1000) then v = 1 end
        st.w[all[i]] = v
      end
      st.wall = true
    end
  end
  if st.wall then
    w = st.w[key] or 1
  else
    local v = redis.pcall('HGET', base .. 'fair:weights', key)
    w = type(v) == 'string' and tonumber(v) or 1
    if not (w >= 0.001 and w <= 1000) then w = 1 end
  end
  st.w[key] = w
  return w
end
-- Make ready the jobs of one key: adds = {ready score, id, ...}.
local function fair_add(q, base, key, adds)
  local fq = base .. 'fair:q:' .. key
  local t = redis.call('TYPE', fq)['ok']
  if t ~= 'zset' and t ~= 'none' then redis.call('RENAME', fq, base .. 'garbage:fair:' .. key) end
  local shifted, best = {}, nil
  for i = 1, #adds, 2 do
    local s = tonumber(adds[i])
    shifted[i] = string.format('%d', FOFF + s)
    shifted[i + 1] = adds[i + 1]
    if not best or s < best then best = s end
  end
  redis.call('ZADD', q.ready, unpack(shifted))
  redis.call('ZADD', fq, unpack(adds))
  local band = math.floor(best / BAND)
  local idx = base .. 'fair'
  local cur = redis.call('ZSCORE', idx, key)
  if cur then
    local cb = math.floor(tonumber(cur) / BAND)
    if band < cb then redis.call('ZADD', idx, tagstr(band * BAND + tonumber(cur) - cb * BAND), key) end
    return
  end
  local st = fair_state(base)
  local tag = st.v
  local left = redis.call('ZSCORE', base .. 'fair:idle', key)
  if left then
    if tonumber(left) > tag then tag = tonumber(left) end
    redis.call('ZREM', base .. 'fair:idle', key)
  end
  redis.call('ZADD', idx, tagstr(band * BAND + tag), key)
end
-- The fairness key among a job's control fields (enqueue.lua), or nil.
local function fair_key_of(control)
  for i = 1, #control - 1, 2 do
    if control[i] == 'fk' then return control[i + 1] end
  end
  return nil
end
-- Make one job ready: into its key's flow when it has a fairness key, else as always.
make_ready = function(q, base, id, score, key)
  if key and key ~= '' then
    fair_add(q, base, key, {score, id})
  else
    redis.call('ZADD', q.ready, score, id)
  end
end
-- A ready job left by another path than the fetch (cancel, abort, purge): out of its key's set,
-- and the key out of the index when that was its last job.
local function fair_forget(base, id, key)
  if not key or key == '' then return end
  local fq = base .. 'fair:q:' .. key
  redis.pcall('ZREM', fq, id)
  if redis.pcall('ZCARD', fq) == 0 then
    local cur = redis.pcall('ZSCORE', base .. 'fair', key)
    if type(cur) == 'string' then
      redis.call('ZREM', base .. 'fair', key)
      local st = fair_state(base)
      local tag = tonumber(cur) % BAND
      if tag > st.v then redis.call('ZADD', base .. 'fair:idle', tagstr(tag), key) end
      if redis.call('ZCARD', base .. 'fair') == 0 then
        redis.call('DEL', base .. 'fair:state', base .. 'fair:idle')
        FAIRST[base] = nil
      end
    end
  end
end
-- A binary min-heap of flows by (tag of their next turn, place): the turns of one round.
local function heap_less(fl, a, b)
  local ta, tb = fl[a].next, fl[b].next
  return ta < tb or (ta == tb and a < b)
end
local function heap_down(fl, h, i)
  local n = #h
  while true do
    local l, m = 2 * i, i
    if l <= n and heap_less(fl, h[l], h[m]) then m = l end
    if l + 1 <= n and heap_less(fl, h[l + 1], h[m]) then m = l + 1 end
    if m == i then return end
    h[i], h[m] = h[m], h[i]
    i = m
  end
end
-- The turns of one round: up to n, in fair order, among `flows` (each {tag, w}, in the
-- order of their tags), none at a tag past `bound` (the tag of the first key not read; nil:
-- every key of the band was read). Returns the flow of each turn; sets each flow's k (its
-- turns in the round).
local function fair_turns(flows, n, bound)
  local h = {}
  for i, f in ipairs(flows) do
    f.k, f.next = 0, f.tag
    h[i] = i
  end
  for i = math.floor(#h / 2), 1, -1 do heap_down(flows, h, i) end
  local order = {}
  while #order < n do
    local fi = h[1]
    local f = flows[fi]
    if bound and f.next > bound then break end
    order[#order + 1] = fi
    f.k = f.k + 1
    f.next = f.tag + f.k * FUNIT / f.w
    heap_down(flows, h, 1)
  end
  return order
end
-- Pop up to n ready jobs in fair order: {id, ready score, ...} as ZPOPMIN answers. Each step
-- serves one round: the n + 1 keys of least tag are read at once (one ZRANGE), the turns
-- among them (and the jobs without a key) are worked out here, then each key served gives
-- its jobs in one ZRANGE + ZREMRANGEBYRANK, every job leaves the ready set in one ZREM and
-- the keys' new tags go back in one ZADD.
local function fair_pop(q, base, n)
  local idx = base .. 'fair'
  if redis.call('EXISTS', idx) == 0 then return redis.call('ZPOPMIN', q.ready, n) end
  local st = fair_state(base)
  local out = {}
  local got, steps = 0, 0
  local u = nil -- the unkeyed jobs' head: only this call's own pops change it, so it is read
  -- again only after it served some
  while got < n and steps < n + 1000 do
    steps = steps + 1
    local want = n - got
    local heads = redis.call('ZRANGE', idx, 0, want, 'WITHSCORES')
    if #heads == 0 then
      -- no key has ready jobs left: the rest in the ready set's own order
      local rest = redis.call('ZPOPMIN', q.ready, want)
      for i = 1, #rest, 2 do
        out[#out + 1] = rest[i]
        out[#out + 1] = tonumber(rest[i + 1]) % FOFF
      end
      break
    end
    local kb = math.floor(tonumber(heads[2]) / BAND)
    if not u then
      u = redis.call('ZRANGEBYSCORE', q.ready, '-inf', '(' .. string.format('%d', FOFF),
        'WITHSCORES', 'LIMIT', 0, 1)
    end
    local ub = nil
    if #u == 0 then
      if st.u then st.ue = true end
    else
      ub = math.floor(tonumber(u[2]) / BAND)
      if not st.u then st.u = st.v
      elseif st.ue and st.u < st.v then st.u = st.v end
      st.ue = false
    end
    local flows = {}
    if ub and ub <= kb then flows[1] = {tag = st.u, w = fair_weight(st, base, '')} end
    local bound = nil
    if not (ub and ub < kb) then
      local nh = #heads / 2
      if nh == want + 1 then
        -- the last key read bounds the round: keys not read have tags from its on
        local s = tonumber(heads[2 * nh])
        if math.floor(s / BAND) == kb then bound = s - kb * BAND end
        nh = nh - 1
      end
      for i = 1, nh do
        local s = tonumber(heads[2 * i])
        if math.floor(s / BAND) ~= kb then break end
        local key = heads[2 * i - 1]
        flows[#flows + 1] = {key = key, tag = s - kb * BAND, w = fair_weight(st, base, key)}
      end
    end
    -- (ub < kb: the jobs without a key have a higher priority than every key: they alone)
    if #flows == 0 then break end
    local order = fair_turns(flows, want, bound)
    local band_end = (math.min(kb, ub or kb) + 1) * BAND
    for _, f in ipairs(flows) do
      f.jobs = {}
      if f.k > 0 and not f.key then
        local ids = redis.call('ZRANGEBYSCORE', q.ready, '-inf', '(' .. string.format('%d',
          band_end), 'WITHSCORES', 'LIMIT', 0, f.k)
        local rem = {}
        for i = 1, #ids, 2 do
          f.jobs[#f.jobs + 1] = i
          rem[#rem + 1] = ids[i]
        end
        if #rem > 0 then redis.call('ZREM', q.ready, unpack(rem)) end
        f.ids, u = ids, nil
      elseif f.k > 0 then
        -- its turns' jobs and the one after them (its new head: band, or none left)
        local fq = base .. 'fair:q:' .. f.key
        local ids = redis.pcall('ZRANGE', fq, 0, f.k, 'WITHSCORES')
        if type(ids) ~= 'table' or ids.err then
          redis.call('RENAME', fq, base .. 'garbage:fair:' .. f.key)
          ids = {}
        end
        local take = 0
        while take < f.k and 2 * take < #ids and tonumber(ids[2 * take + 2]) < band_end do
          take = take + 1
          -- still ready? (another path may have taken it: skipped, not charged)
          if redis.call('ZREM', q.ready, ids[2 * take - 1]) == 1 then
            f.jobs[#f.jobs + 1] = 2 * take - 1
          end
        end
        if take > 0 then redis.call('ZREMRANGEBYRANK', fq, 0, take - 1) end
        f.ids, f.take = ids, take
      end
    end
    -- the jobs in the order of the turns
    for _, fi in ipairs(order) do
      local f = flows[fi]
      f.at = (f.at or 0) + 1
      local i = f.jobs[f.at]
      if i then
        out[#out + 1] = f.ids[i]
        out[#out + 1] = f.ids[i + 1]
        got = got + 1
      end
    end
    local tags, gone = {}, {}
    for _, f in ipairs(flows) do
      if f.k > 0 then
        local c = #f.jobs
        if c > 0 and f.tag + (c - 1) * FUNIT / f.w > st.v then
          st.v = f.tag + (c - 1) * FUNIT / f.w
        end
        local tag = f.tag + c * FUNIT / f.w
        if not f.key then
          st.u = tag
        elseif 2 * f.take < #f.ids then
          -- its next job's band and its new tag
          local hb = math.floor(tonumber(f.ids[2 * f.take + 2]) / BAND)
          tags[#tags + 1] = tagstr(hb * BAND + tag)
          tags[#tags + 1] = f.key
        else
          gone[#gone + 1] = f.key
          gone[#gone + 1] = tag
        end
      end
    end
    if #tags > 0 then redis.call('ZADD', idx, unpack(tags)) end
    for i = 1, #gone, 2 do
      redis.call('ZREM', idx, gone[i])
      if gone[i + 1] > st.v then redis.call('ZADD', base .. 'fair:idle', tagstr(gone[i + 1]), gone[i]) end
    end
  end
  if redis.call('EXISTS', idx) == 0 then
    -- no key has ready jobs: nothing is kept (a key that comes back starts afresh)
    redis.call('DEL', base .. 'fair:state', base .. 'fair:idle')
    FAIRST[base] = nil
  else
    redis.call('ZREMRANGEBYSCORE', base .. 'fair:idle', '-inf', tagstr(st.v))
    redis.call('HSET', base .. 'fair:state', 'v', tagstr(st.v), 'u', tagstr(st.u or st.v),
      'ue', st.ue and '1' or '0')
  end
  return out
end

-- Abort one item of a batch (docs/patterns.md, Batches: one item on its own), called by
-- job.abort() when abort.lua answers that the job is not one it stops (an item is
-- 'batched'). While its batch has not started, the item leaves it (as cancel.lua takes it
-- out) and ends 'aborted'; a batch left with no item ends cancelled. While its batch runs
-- (or waits to run again: lapsed, or retried with the same items), the item ends 'aborted'
-- at once and stays listed: the batch's run goes on, its answer for the item is not
-- recorded (batch_done.lua settles 'batched' items only), a rerun of the batch skips it, and
-- the task can see it (current_job().aborted_items()).
-- KEYS: the queue's 8 keys. ARGV: base, id.
-- Returns 1 if its batch was running, 2 if its batch had not started, 0 if the job is not
-- a batched item (ended, or another kind of job), -1 if there is no such job.
local q = queue_keys(0)
local base, id = ARGV[1], ARGV[2]
local jk = base .. 'job:' .. id
check_queue(q, base)
local f = job_fields(jk, 'status', 'batch', 'result_ttl')
if not f then return 0 end
if not f[1] then return -1 end
if f[1] ~= 'batched' or not f[2] then return 0 end
local c = f[2]
local ck = base .. 'job:' .. c
local cf = job_fields(ck, 'status', 'deliveries', 'lapsed')
local out = 1
if cf and (cf[1] == 'scheduled' or cf[1] == 'queued') and not cf[3] and
    (int(cf[2]) or 0) == 0 then
  out = 2 -- not started: the item leaves its batch
  redis.call('LREM', base .. 'items:' .. c, 0, id)
  local left = redis.call('LLEN', base .. 'items:' .. c)
  redis.call('HSET', ck, 'batch_size', tostring(left))
  if left == 0 then
    redis.call('ZREM', q.ready, c)
    redis.call('ZREM', q.delayed, c)
    redis.call('HSET', ck, 'status', 'cancelled', 'finished_at', NOW,
      'reason', 'each of its items was cancelled or aborted')
    local ct = ttl_of(redis.call('HGET', ck, 'result_ttl'))
    if ct then redis.call('EXPIRE', ck, ct) end
    notify_done(base, c, ct)
    note_end(base, c, ck, 'cancelled')
  end
end
local reason = 'aborted by request'
if out == 1 then reason = 'aborted by request while its batch ' .. c .. ' ran' end
redis.call('HSET', jk, 'status', 'aborted', 'finished_at', NOW, 'reason', reason)
local ttl = ttl_of(f[3])
if ttl then redis.call('EXPIRE', jk, ttl) end
notify_done(base, id, ttl)
note_end(base, id, jk, 'aborted')
return out
