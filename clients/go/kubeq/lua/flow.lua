-- Shared by kubeq's scripts (scripts.py prepends to each what it uses: luatext.py).
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
-- A job's result_ttl when its record has none: the default (kubeq.defaults.RESULT_TTL) is
-- not stored (enqueue.lua), as no field at its default is.
local RESULT_TTL = '86400'
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
-- check_queue for a script that only adds jobs (flow.lua, batch.lua): the sets it writes
-- before any change (the sets a job goes to, the dead letters a replaced job leaves); the
-- worker-side keys it never touches are checked by the worker's scripts. enqueue.lua narrows
-- it further to the sets one call may write (its own pre-scan of the call).
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
-- <base>ix:task:<task> and, per tag, <base>ix:tag:<tag> (LISTs, oldest first: an RPUSH costs far
-- less time and memory than a ZADD; an entry is "<enqueue ms>:<id>", or the bare id when the id
-- says when it was made, kubeq.store.ids, and that is within IX_SKEW_MS of now: 21 bytes where the
-- two cost 35), and its task joins <base>ix:tasks (ZSET task -> when its index was last looked
-- after, ms). An index is looked after at most once every IX_CARE_MS, by the first write after that
-- (its PTTL says when the last one was): its entries older than IX_KEEP_MS go from its old end, it
-- keeps at most IX_CAP (plus what a second of writes adds meanwhile), and it expires IX_KEEP_MS
-- after that write (so IX_CARE_MS early at most); between two, a write is its RPUSH and that PTTL.
-- A reader drops the entries at the old end whose job record is gone. The task is read from the
-- payload ("task":"..."; a name with '"' or '\\' is not indexed).
local IX_KEEP_MS, IX_CAP = 7 * 86400000, 2000000
local IX_CARE_MS = 1000
local IX_SKEW_MS = 60000
local ix = {}  -- index key -> entries of this call
local ix_tasks = {}  -- task -> true, for <base>ix:tasks
-- When an id in kubeq.store.ids' format was made (ms; its first 9 of 19 characters, 6 bits
-- each, in the ASCII order of - 0-9 A-Z _ a-z), or nil for any other id.
local function id_ms(id)
  if #id ~= 19 or string.find(id, '[^%w_%-]') then return nil end
  local us = 0
  for i = 1, 9 do
    local b = string.byte(id, i)
    if b == 45 then b = 0 elseif b <= 57 then b = b - 47 elseif b <= 90 then b = b - 54
    elseif b == 95 then b = 37 else b = b - 59 end
    us = us * 64 + b
  end
  return math.floor(us / 1000)
end
-- An entry's time: its "<ms>:" or its bare id's; 0 when neither (written by hand).
local function ix_ms(entry)
  local ms = string.match(entry, '^(%d+):')
  if ms then return tonumber(ms) end
  return id_ms(entry) or 0
end
local function ix_add(base, payload, id, tags)
  local task = string.match(payload, '"task":"([^"\\]*)"')
  local made = id_ms(id)
  local entry = (made and math.abs(made - NOW) <= IX_SKEW_MS) and id or NOWS .. ':' .. id
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
  local cared = {}  -- index keys looked after by this call
  for k, l in pairs(ix) do
    for i = 1, #l, 4000 do redis.call('RPUSH', k, unpack(l, i, math.min(i + 3999, #l))) end
    if redis.call('PTTL', k) <= IX_KEEP_MS - IX_CARE_MS then  -- -1: a new key
      cared[k] = true
      for _ = 1, 10 do  -- aged entries, from the old end (100 a look)
        local oldest = redis.call('LINDEX', k, 0)
        if not oldest or ix_ms(oldest) >= floor then break end
        local old = redis.call('LRANGE', k, 0, 99)
        local n = 0
        for _, e in ipairs(old) do
          if ix_ms(e) >= floor then break end
          n = n + 1
        end
        redis.call('LTRIM', k, n, -1)
        if n < 100 then break end
      end
      redis.call('LTRIM', k, -IX_CAP, -1)
      redis.call('PEXPIRE', k, IX_KEEP_MS)
    end
  end
  local tasks = {}
  for task in pairs(ix_tasks) do
    if cared[base .. 'ix:task:' .. task] then
      tasks[#tasks + 1] = NOWS
      tasks[#tasks + 1] = task
    end
  end
  if #tasks > 0 then
    local k = base .. 'ix:tasks'
    redis.call('ZADD', k, unpack(tasks))
    redis.call('ZREMRANGEBYSCORE', k, '-inf', '(' .. string.format('%d', floor))
    redis.call('PEXPIRE', k, IX_KEEP_MS)
  end
end
-- [end search index]
-- Make one job ready (score = its ready score): a job with a fairness key joins its key's
-- flow (defined in _fair.lua, which scripts.py appends to this file).
local make_ready
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
-- One call of a debounced or singleton task (docs/patterns.md), decided and written in one
-- step on the queue's slot. <base>flow:<key> holds the id of the newest job of the key; a
-- job made here carries flow = <key> and the marker 'o' in cb, so its end, by any path
-- (ack, dead letter, cancel, abort, expiry: note_end in _prelude.lua; purge.lua), deletes the
-- key if it still names that job. A key whose job ended or vanished otherwise counts as free.
-- KEYS: the queue's 8 keys.
-- ARGV: base, mode, key, window_ms, max_ms, token, then the job as enqueue.lua lays it out:
--   id, payload, priority, due, max_deliveries, result_ttl, control (JSON or "").
-- mode: debounce (start window_ms after the last call, at most max_ms after the first: 0 =
--   no bound), skip, replace, keep_latest, cancel_running.
-- Returns {created, id}: created 1 when this call wrote a new job (id is the call's own), 0
-- when it joined the key's job (id is that job: its arguments are now this call's, except
-- for skip, which changes nothing), -1 when the control fields are malformed.
local q = queue_keys(0)
-- Note a member in an index stats.lua reads (one of another type is dropped: an index
-- is rebuilt by its writers).
local function index(k, score, member)
  local ok = redis.pcall('ZADD', k, score, member)
  if type(ok) == 'table' and ok.err then
    redis.call('DEL', k)
    redis.call('ZADD', k, score, member)
  end
end
local base, mode, fkey = ARGV[1], ARGV[2], ARGV[3]
local window, max_ms, token = tonumber(ARGV[4]) or 0, tonumber(ARGV[5]) or 0, ARGV[6]
local id, payload, priority, due = ARGV[7], ARGV[8], ARGV[9], ARGV[10]
local max_deliveries, result_ttl, raw = ARGV[11], ARGV[12], ARGV[13]
check_enqueue(q, base)
local key = base .. 'flow:' .. fkey
local LIVE = {queued = true, scheduled = true, active = true, waiting = true, sleeping = true,
  batched = true}
local cur = redis.pcall('GET', key)
if type(cur) ~= 'string' then cur = nil end
local cf = cur and job_fields(base .. 'job:' .. cur, 'status', 'deliveries', 'lapsed', 'sent',
  'flow_first', 'cl_key', 'flow', 'result_ttl', 'fk')
if cf and cf[7] ~= fkey then cf = nil end  -- not a job of this key (written by hand?)
local status = cf and cf[1]
if cf and cf[4] == token then return {1, cur} end  -- an earlier send of this call wrote it
local live = status and LIVE[status] and true or false
-- not started: waiting for its time, its turn or a slot, never delivered
local waiting = live and not cf[3] and (int(cf[2]) or 0) == 0 and status ~= 'active'

-- The key's waiting job takes this call's arguments (and, debounced, its start moves).
local function join()
  local jk = base .. 'job:' .. cur
  redis.call('HSET', jk, 'payload', payload)
  redis.call('HINCRBY', jk, 'flow_joined', 1)
  if mode == 'debounce' then
    local at = NOW + window
    local first = int(cf[5]) or NOW
    if max_ms > 0 and at > first + max_ms then at = first + max_ms end
    if status == 'queued' then
      redis.call('ZREM', q.ready, cur)
      fair_forget(base, cur, cf[9])
    end
    if status == 'waiting' and cf[6] then redis.call('ZREM', base .. 'waiting:' .. cf[6], cur) end
    redis.call('HSET', jk, 'status', 'scheduled')
    redis.call('ZADD', q.delayed, string.format('%d', at), cur)
  end
  return {0, cur}
end

-- A running job of the key is aborted as abort.lua aborts one: it ends 'aborted' at once and
-- its worker stops the attempt at its next heartbeat; the attempt keeps its lease and its
-- slot (the new job waits for that slot) until it has stopped.
local function abort_running(jk)
  if status == 'queued' then  -- lapsed: its worker may still run it
    redis.call('ZREM', q.ready, cur)
    fair_forget(base, cur, cf[9])
    redis.call('ZADD', q.active, NOWS, cur)
    redis.call('HDEL', jk, 'lapsed')
  end
  redis.call('HSET', jk, 'status', 'aborted', 'finished_at', NOWS,
    'reason', 'aborted by a newer call of its singleton key (cancel_running): ' .. id)
  notify_done(base, cur, cf[8] or RESULT_TTL)
  note_end(base, cur, jk, 'aborted')
end

if mode == 'skip' and live then return {0, cur} end
if mode ~= 'skip' and waiting and (mode ~= 'debounce' or status ~= 'waiting' or cf[6]) then
  return join()
end
if mode == 'cancel_running' and live then abort_running(base .. 'job:' .. cur) end

-- A new job, as enqueue.lua writes one, with its control fields.
local control = {}
local cb = 'o'
local fair = nil -- the job's fairness key: a ready job takes its key's turn (_fair.lua)
if raw ~= '' then
  local ok, c = pcall(cjson.decode, raw)
  if not ok or type(c) ~= 'table' then return {-1, id} end
  for k, v in pairs(c) do
    if k == 'expires' then
      local okd, at = pcall(due_at, tostring(v))
      if not okd or not at then return {-1, id} end
      control[#control + 1] = 'expires_at'
      control[#control + 1] = string.format('%d', math.floor(at))
    elseif (k == 'rl_key' or k == 'cl_key' or k == 'on_success' or k == 'on_failure') and
        type(v) == 'string' then
      control[#control + 1] = k
      control[#control + 1] = v
      if k == 'on_success' then cb = cb .. 's' elseif k == 'on_failure' then cb = cb .. 'f' end
    elseif k == 'fk' and type(v) == 'string' and #v >= 1 and #v <= 200 then  -- fair key
      control[#control + 1] = k
      control[#control + 1] = v
      fair = v
    elseif (k == 'rl_n' or k == 'rl_ms' or k == 'rl_b' or k == 'cl_n') and int(v) then
      control[#control + 1] = k
      control[#control + 1] = v
    else
      return {-1, id}
    end
  end
end
if mode == 'keep_latest' or mode == 'cancel_running' then
  -- one run at a time per key: a concurrency slot of its own (the client refuses a task's
  -- concurrency_limit with these modes)
  control[#control + 1] = 'cl_key'
  control[#control + 1] = 'flow:' .. fkey
  control[#control + 1] = 'cl_n'
  control[#control + 1] = '1'
end
local jk = base .. 'job:' .. id
local old = job_fields(jk, 'status', 'sent', 'enqueued_at')
if not old then
  redis.call('RENAME', jk, base .. 'garbage:' .. id)
elseif old[1] then
  if LIVE[old[1]] or old[1] == 'deferred' or handing_off(base, id) then return {0, id} end
  redis.call('DEL', jk, base .. 'done:' .. id)
  redis.call('ZREM', q.dead, id)
  keep_receipt(base, old[2], old[3])
end
local st, zkey, score = 'queued', q.ready, ready_score(priority, NOW)
local run_at = due_at(due)
if mode == 'debounce' then run_at = NOW + window end
if run_at > NOW then st, zkey, score = 'scheduled', q.delayed, run_at end
redis.call('HSET', jk, 'payload', payload, 'priority', priority, 'status', st,
  'enqueued_at', NOWS, 'deliveries', '0', 'attempts', '0', 'lease', '0',
  'max_deliveries', max_deliveries, 'result_ttl', result_ttl, 'sent', token,
  'flow', fkey, 'flow_mode', mode, 'flow_first', NOWS, 'ctl', '1', 'cb', cb, unpack(control))
if zkey == q.ready then
  make_ready(q, base, id, string.format('%d', score), fair)
else
  redis.call('ZADD', zkey, string.format('%d', score), id)
end
redis.call('SET', key, id)
index(base .. 'flows', NOWS, fkey)  -- counted by stats.lua
ix_add(base, payload, id, nil)  -- [search index]
ix_flush(base)
wake(q.wake, 1)
return {1, id}
