-- Shared by every kubeq script (prepended by scripts.py).
-- Time comes from the Redis server, so workers with skewed clocks agree on leases.
local _t = redis.call('TIME')
local NOW = tonumber(_t[1]) * 1000 + math.floor(tonumber(_t[2]) / 1000)
local BAND = 10000000000000
local PMAX = 9
local function ready_score(priority, ready_ms)
  return (PMAX - tonumber(priority)) * BAND + tonumber(ready_ms)
end
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
-- Tell result() waiters that a job has ended.
local function notify_done(base, id, ttl)
  local key = base .. 'done:' .. id
  redis.call('DEL', key)
  redis.call('RPUSH', key, '1')
  if ttl and tonumber(ttl) and tonumber(ttl) > 0 then
    redis.call('EXPIRE', key, tonumber(ttl))
  end
end
local function bury(q, base, id, jk, reason)
  redis.call('HINCRBY', jk, 'lease', 1)
  redis.call('HSET', jk, 'status', 'failed', 'reason', reason, 'finished_at', NOW)
  redis.call('PERSIST', jk)
  redis.call('ZADD', q.dead, NOW, id)
  notify_done(base, id, 0)
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
