-- Everything the operator and `kubeq stats` need about one queue, read in one round trip.
-- KEYS: the queue's 8 keys. ARGV: worker_ttl_ms, the most flow index members to read.
-- Returns: now_ms, backlog, in_flight, delayed, dead, oldest_ready_ms (-1 if none),
--          paused (0/1), expired (jobs that expired before they started), rate_limited
--          (0/1: a rate limit held jobs back lately), the queue's rate limit in starts per
--          1000 s (0: none), deferred (jobs waiting for their parents, depends_on: not
--          backlog), sleeping (durable sleeps and waits, kubeq.sleep / kubeq.wait_for: not
--          backlog, nor delayed, until their time is due), fair keys (fairness keys with
--          ready jobs, _fair.lua), debounced (jobs of a debounce key not started),
--          singleton keys held, batches forming, batched items (docs/patterns.md), then
--          worker id / busy pairs of the live workers.
local q = queue_keys(0)
local worker_ttl = tonumber(ARGV[1])
local due = redis.call('ZCOUNT', q.delayed, '-inf', NOW)
local ready = redis.call('ZCARD', q.ready)
local oldest = -1
if ready > 0 then
  -- bands 0 .. PMAX hold jobs without a fairness key, 10 .. 10 + PMAX keyed ones (_fair.lua)
  for b = 0, 2 * PMAX + 1 do
    local band = b <= PMAX and b or b - PMAX - 1 + 10
    local first = redis.call('ZRANGEBYSCORE', q.ready, band * BAND, (band + 1) * BAND - 1,
      'WITHSCORES', 'LIMIT', 0, 1)
    if #first > 0 then
      local t = tonumber(first[2]) % BAND
      if oldest < 0 or t < oldest then oldest = t end
    end
  end
end
if due > 0 then
  local first = redis.call('ZRANGEBYSCORE', q.delayed, '-inf', NOW, 'WITHSCORES', 'LIMIT', 0, 1)
  local t = tonumber(first[2])
  if oldest < 0 or t < oldest then oldest = t end
end
local base = string.sub(q.ready, 1, #q.ready - 5)
-- a sleeper's timer is in the delayed set: due, it is backlog; not due, it counts as sleeping
local sleeping = redis.pcall('ZCOUNT', base .. 'sleeping', '(' .. NOWS, '+inf')
if type(sleeping) ~= 'number' then sleeping = 0 end
local timers = 0
if sleeping > 0 then timers = redis.call('ZCOUNT', base .. 'sleeping', '(' .. NOWS, '8e15') end
local out = {
  NOW, ready + due, redis.call('ZCARD', q.active),
  redis.call('ZCARD', q.delayed) - due - timers,
  redis.call('ZCARD', q.dead), oldest, redis.call('EXISTS', q.paused),
}
local expired = redis.pcall('GET', base .. 'expired')
out[#out + 1] = (type(expired) == 'string' and int(expired)) or 0
out[#out + 1] = redis.call('EXISTS', base .. 'throttled')
local rl = redis.pcall('HMGET', base .. 'ratelimit', 'n', 'ms')
local per_ks = 0
if type(rl) == 'table' and not rl.err and int(rl[1]) and int(rl[2]) and int(rl[2]) > 0 then
  per_ks = math.floor(int(rl[1]) * 1000000 / int(rl[2]))
end
out[#out + 1] = per_ks
local deferred = redis.pcall('ZCARD', base .. 'deferred')
out[#out + 1] = type(deferred) == 'number' and deferred or 0
out[#out + 1] = sleeping
local fair = redis.pcall('ZCARD', base .. 'fair')
out[#out + 1] = type(fair) == 'number' and fair or 0
-- The flow patterns' numbers (docs/patterns.md) from the indexes flow.lua and batch.lua
-- write ({q}:flows: keys that named a job; {q}:batches: batch jobs opened), dropping each
-- member no longer live, so an index holds the live ones and those ended since the last
-- read; at most ARGV[2] members of each are read (the oldest first).
local most = tonumber(ARGV[2]) or 5000
local FLOW_LIVE = {queued = true, scheduled = true, active = true, waiting = true, sleeping = true,
  batched = true}
local flow = {0, 0, 0, 0, 0, 0, 0}
local function members(k)
  local t = redis.call('TYPE', k)['ok']
  if t ~= 'zset' then
    if t ~= 'none' then redis.call('DEL', k) end
    return {}
  end
  if redis.call('ZCARD', k) > most then flow[7] = 1 end
  return redis.call('ZRANGE', k, 0, most - 1)
end
local stale = {}
for _, fkey in ipairs(members(base .. 'flows')) do
  local id = redis.pcall('GET', base .. 'flow:' .. fkey)
  local f = type(id) == 'string' and job_fields(base .. 'job:' .. id, 'status', 'deliveries',
    'lapsed', 'flow', 'flow_mode')
  if f and FLOW_LIVE[f[1]] and f[4] == fkey then
    if f[5] ~= 'debounce' then
      flow[3] = flow[3] + 1
    elseif f[1] ~= 'active' and not f[3] and (int(f[2]) or 0) == 0 then
      flow[1] = flow[1] + 1
    else
      flow[2] = flow[2] + 1
    end
  else
    stale[#stale + 1] = fkey
  end
end
for i = 1, #stale, 1000 do
  redis.call('ZREM', base .. 'flows', unpack(stale, i, math.min(i + 999, #stale)))
end
stale = {}
for _, carrier in ipairs(members(base .. 'batches')) do
  local f = job_fields(base .. 'job:' .. carrier, 'status')
  if f and FLOW_LIVE[f[1]] then
    if f[1] == 'scheduled' then flow[4] = flow[4] + 1 else flow[5] = flow[5] + 1 end
    local ids = redis.pcall('LRANGE', base .. 'items:' .. carrier, 0, -1)
    if type(ids) == 'table' and not ids.err then
      for _, item in ipairs(ids) do
        local s = job_fields(base .. 'job:' .. item, 'status', 'batch')
        if s and s[1] == 'batched' and s[2] == carrier then flow[6] = flow[6] + 1 end
      end
    end
  else
    stale[#stale + 1] = carrier
  end
end
for i = 1, #stale, 1000 do
  redis.call('ZREM', base .. 'batches', unpack(stale, i, math.min(i + 999, #stale)))
end
out[#out + 1] = flow[1] -- debounced: jobs of a debounce key not started
out[#out + 1] = flow[3] -- singleton keys held by a live job
out[#out + 1] = flow[4] -- batches forming
out[#out + 1] = flow[6] -- batched items
local live = redis.call('ZRANGEBYSCORE', q.workers, NOW - worker_ttl, '+inf')
for _, w in ipairs(live) do
  out[#out + 1] = w
  out[#out + 1] = tonumber(redis.call('HGET', q.busy, w) or '0')
end
return out
