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
-- Add items to the open batch of their key (docs/patterns.md), in one step on the queue's
-- slot: one call carries one item or many (a bulk enqueue sends up to BATCH_SEND of a key at
-- once), each added in order as if sent alone. A batch is a job of its own (the carrier: id
-- <first item>.batch, status scheduled in the delayed set, due max_wait after its first
-- item) whose items are listed in <base>items:<carrier>; <base>batch:<key> names the open
-- one. The batch closes, its membership fixed, when it leaves 'scheduled': full (moved to the
-- ready set here) or due (promoted by fetch.lua). The next item then opens a new batch. Each
-- item is a job of its own, status 'batched', field batch = its carrier, until the carrier's
-- run settles it (batch_done.lua), or the carrier ends otherwise (marker 'b': end_batch in
-- _prelude.lua).
-- KEYS: the queue's 8 keys.
-- ARGV: base, 'batch', key, max_wait_ms, max_size, token, the carriers' payload, then per
--   item the 7 fields enqueue.lua lays out for a job (id, payload, priority, due,
--   max_deliveries, result_ttl, control: "" or only {"expires": ...}).
-- Returns per item, in order, {created, id}: 1 when this call wrote the item (or an earlier
-- send of this call did), 0 when a job of that id exists, -1 when its control fields hold
-- more than an expiry.
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
local base, fkey = ARGV[1], ARGV[3]
local wait_ms, max_size, token = tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6]
local carrier_payload = ARGV[7]
check_enqueue(q, base)
local open = base .. 'batch:' .. fkey
local carrier = nil -- the open batch, once known to be open (scheduled, never delivered)
local woken = 0 -- batches opened or made ready: an idle worker each

-- An item's expiry time: false when it has none, nil when its control fields are refused.
local function expiry(raw)
  if raw == '' then return false end
  local ok, c = pcall(cjson.decode, raw)
  if not ok or type(c) ~= 'table' then return nil end
  local expires = false
  for k, v in pairs(c) do
    if k ~= 'expires' then return nil end
    local okd, at = pcall(due_at, tostring(v))
    if not okd or not at then return nil end
    expires = string.format('%d', math.floor(at))
  end
  return expires
end

-- The open batch of the key, opened by item ``id`` when there is none.
local function open_batch(id, priority, max_deliveries, result_ttl)
  if carrier then return carrier end
  local cur = redis.pcall('GET', open)
  local cf = type(cur) == 'string' and job_fields(base .. 'job:' .. cur, 'status', 'deliveries')
  if cf and cf[1] == 'scheduled' and (int(cf[2]) or 0) == 0 then
    carrier = cur
    return carrier
  end
  carrier = id .. '.batch'
  local ck = base .. 'job:' .. carrier
  if redis.call('EXISTS', ck) == 1 then redis.call('RENAME', ck, base .. 'garbage:' .. carrier) end
  redis.call('HSET', ck, 'payload', carrier_payload, 'priority', priority, 'status', 'scheduled',
    'enqueued_at', NOWS, 'deliveries', '0', 'attempts', '0', 'lease', '0',
    'max_deliveries', max_deliveries, 'result_ttl', result_ttl, 'batch_key', fkey, 'cb', 'b')
  redis.call('ZADD', q.delayed, string.format('%d', NOW + wait_ms), carrier)
  redis.call('SET', open, carrier)
  index(base .. 'batches', NOWS, carrier)  -- counted by stats.lua
  woken = woken + 1  -- an idle worker learns when the batch falls due
  return carrier
end

local out = {}
for i = 8, #ARGV, 7 do
  local id, payload, priority = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local max_deliveries, result_ttl = ARGV[i + 4], ARGV[i + 5]
  local expires = expiry(ARGV[i + 6])
  local jk = base .. 'job:' .. id
  local old = expires ~= nil and job_fields(jk, 'status', 'sent')
  if expires == nil then
    out[#out + 1] = {-1, id}
  elseif old and old[1] then
    out[#out + 1] = {old[2] == token and 1 or 0, id}  -- 1: an earlier send of this call
  else
    if not old then redis.call('RENAME', jk, base .. 'garbage:' .. id) end
    local c = open_batch(id, priority, max_deliveries, result_ttl)
    redis.call('HSET', jk, 'payload', payload, 'priority', priority, 'status', 'batched',
      'enqueued_at', NOWS, 'deliveries', '0', 'attempts', '0', 'lease', '0',
      'max_deliveries', max_deliveries, 'result_ttl', result_ttl, 'sent', token, 'batch', c)
    if expires then redis.call('HSET', jk, 'expires_at', expires) end
    ix_add(base, payload, id, nil)  -- [search index]
    local n = redis.call('RPUSH', base .. 'items:' .. c, id)
    local ck = base .. 'job:' .. c
    redis.call('HSET', ck, 'batch_size', tostring(n))
    if n >= max_size then
      -- full: it runs now, and the next item opens a new batch
      redis.call('DEL', open)
      redis.call('ZREM', q.delayed, c)
      redis.call('HSET', ck, 'status', 'queued', 'closed_at', NOWS)
      redis.call('ZADD', q.ready, string.format('%d', ready_score(priority, NOW)), c)
      woken = woken + 1
      carrier = nil
    end
    out[#out + 1] = {1, id}
  end
end
ix_flush(base)
if woken > 0 then wake(q.wake, woken) end
return out
