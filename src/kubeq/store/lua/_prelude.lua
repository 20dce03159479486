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
-- A finished job's result as HSET arguments, to end an argument list: none for JSON null,
-- which a finished job without 'result' returned for every reader (docs/protocol.md), so the
-- most common result costs no bytes.
local function result_field(value)
  if value == 'null' then return end
  return 'result', value
end
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
