-- Shared by kubeq's scripts (scripts.py prepends to each what it uses: luatext.py).
-- Time comes from the Redis server, so workers with skewed clocks agree on leases.
local _t = redis.call('TIME')
local NOW = tonumber(_t[1]) * 1000 + math.floor(tonumber(_t[2]) / 1000)
local BAND = 10000000000000
-- NOW as the string redis.call stores: converting a number costs as much as a field write
local NOWS = string.format('%d', NOW)
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
-- A job's result_ttl when its record has none: the default (kubeq.defaults.RESULT_TTL) is
-- not stored (enqueue.lua), as no field at its default is.
local RESULT_TTL = '86400'
local function job_fields(jk, ...)
  local f = redis.pcall('HMGET', jk, ...)
  if type(f) == 'table' and f.err then return nil end
  return f
end
-- A whole number, or nil.
local function int(v)
  local n = tonumber(v)
  if n and n == math.floor(n) and n > -1e15 and n < 1e15 then return n end
  return nil
end
-- A TTL in whole seconds within 1 s .. 10 years, or nil for none.
local function ttl_of(v)
  local n = tonumber(v)
  if not n or n ~= n or n < 1 then return nil end
  return math.min(math.floor(n), MAX_TTL)
end
-- A job's result TTL from its record's result_ttl field (missing: the default).
local function job_ttl(v)
  return ttl_of(v or RESULT_TTL)
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
        t = job_ttl(f[3])
        if t then redis.call('EXPIRE', ik, t) end
      end
      notify_done(base, item, t)
      local icb = redis.pcall('HGET', ik, 'cb') -- an item's dependents are handed off too
      if type(icb) == 'string' and string.find(icb, 'd', 1, true) then note_handoff(base, item) end
    end
  end
  local t = job_ttl(redis.pcall('HGET', jk, 'result_ttl'))
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
local function queue_keys(offset)
  return {
    ready = KEYS[offset + 1], delayed = KEYS[offset + 2], active = KEYS[offset + 3],
    dead = KEYS[offset + 4], workers = KEYS[offset + 5], busy = KEYS[offset + 6],
    paused = KEYS[offset + 7], wake = KEYS[offset + 8],
  }
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
-- Abort a job. One that has not started never will; a running one ends 'aborted' at once,
-- and the worker running it learns it from its next heartbeat reply, which stops the attempt
-- (docs/architecture.md, Execution control). Until that attempt has stopped (its worker's
-- ack says so, or its lease expires) it keeps its lease and its concurrency slot, and the
-- job's data does not expire: a thread that runs on holds the slot, and a short result TTL
-- cannot hide the abort from the heartbeat. Its late outcome is refused (ack.lua answers 2).
-- KEYS: the queue's 8 keys. ARGV: base, id.
-- Returns 1 if it was running, 2 if it had not started, 0 if it had already ended,
-- -1 if there is no such job.
local q = queue_keys(0)
local base, id = ARGV[1], ARGV[2]
local jk = base .. 'job:' .. id
check_queue(q, base)
local f = job_fields(jk, 'status', 'result_ttl', 'cl_key', 'cl_n', 'lapsed', 'fk')
if not f then
  -- garbage under the job's key: dead-letter it with the reason rather than fail the call
  for _, k in ipairs({q.ready, q.delayed, q.active}) do redis.call('ZREM', k, id) end
  bury(q, base, id, jk, 'its job key is not a hash (written by hand?); found by abort')
  return 0
end
local status = f[1]
if not status then return -1 end
local out = 2
if status == 'active' then
  out = 1
elseif status == 'queued' and f[5] then
  -- lapsed: its worker may still run it; it holds its slot until its lease is reclaimed
  redis.call('ZREM', q.ready, id)
  redis.call('ZADD', q.active, NOW, id)
  redis.call('HDEL', jk, 'lapsed')
  out = 1
elseif status == 'queued' then
  redis.call('ZREM', q.ready, id)
  fair_forget(base, id, f[6])
elseif status == 'scheduled' then
  redis.call('ZREM', q.delayed, id)
elseif status == 'waiting' and f[3] then
  redis.call('ZREM', base .. 'waiting:' .. f[3], id)
elseif status == 'deferred' then
  redis.call('ZREM', base .. 'deferred', id)
elseif status == 'sleeping' then -- durable sleep or wait: no attempt runs
  redis.call('ZREM', q.delayed, id)
  unsleep(base, id, jk)
else
  return 0
end
redis.call('HSET', jk, 'status', 'aborted', 'finished_at', NOW, 'reason', 'aborted by request')
local ttl = job_ttl(f[2])
if ttl and out ~= 1 then redis.call('EXPIRE', jk, ttl) end
notify_done(base, id, ttl)
note_end(base, id, jk, 'aborted')
return out
