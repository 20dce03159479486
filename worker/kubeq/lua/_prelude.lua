-- Shared by every kubeq script (prepended by scripts.py).
-- Time comes from the Redis server, so workers with skewed clocks agree on leases.
local _t = redis.call('TIME')
local NOW = tonumber(_t[1]) * 1000 + math.floor(tonumber(_t[2]) / 1000)
local BAND = 10000000000000
local PMAX = 9
-- Wake up to n idle workers blocked on the queue's wake list; the list never exceeds 64.
local function wake(key, n)
  local room = 64 - redis.call('LLEN', key)
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
-- Tell result() waiters that a job has ended.
local function notify_done(base, id, ttl)
  local key = base .. 'done:' .. id
  redis.call('DEL', key)
  redis.call('RPUSH', key, '1')
  local t = ttl_of(ttl)
  if t then redis.call('EXPIRE', key, t) end
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
  redis.call('PERSIST', jk)
  -- dead is a terminal state: the id leaves every other state set (one set per job, always)
  redis.call('ZREM', q.ready, id)
  redis.call('ZREM', q.delayed, id)
  redis.call('ZREM', q.active, id)
  redis.call('ZADD', q.dead, NOW, id)
  notify_done(base, id, 0)
end
-- Refuse to start when a queue's own keys hold the wrong type (nothing has changed yet), and
-- repair what is only presence data (workers, busy) or a counter that no longer counts.
local function check_queue(q, base)
  for _, k in ipairs({q.ready, q.delayed, q.active, q.dead}) do
    local t = redis.call('TYPE', k)['ok']
    if t ~= 'zset' and t ~= 'none' then
      error('kubeq: ' .. k .. ' holds a ' .. t .. ', not a sorted set; ' ..
        'inspect it and delete it (its jobs are in the ' .. base .. 'job:<id> hashes)')
    end
  end
  local tw = redis.call('TYPE', q.workers)['ok']
  if tw ~= 'zset' and tw ~= 'none' then redis.call('DEL', q.workers) end
  local tb = redis.call('TYPE', q.busy)['ok']
  if tb ~= 'hash' and tb ~= 'none' then redis.call('DEL', q.busy) end
  local tk = redis.call('TYPE', q.wake)['ok']
  if tk ~= 'list' and tk ~= 'none' then redis.call('DEL', q.wake) end
  local leases = base .. 'leases'
  local tl = redis.call('TYPE', leases)['ok']
  if tl ~= 'none' and (tl ~= 'string' or not int(redis.call('GET', leases))) then
    -- restart the counter above any token it can have issued (tokens stay unique)
    redis.call('DEL', leases)
    redis.call('SET', leases, NOW * 1000)
  end
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
