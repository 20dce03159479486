-- Everything the operator and `kubeq stats` need about one queue, read in one round trip.
-- KEYS: the queue's 8 keys. ARGV: worker_ttl_ms.
-- Returns: now_ms, backlog, in_flight, delayed, dead, oldest_ready_ms (-1 if none),
--          paused (0/1), expired (jobs that expired before they started), rate_limited
--          (0/1: a rate limit held jobs back lately), the queue's rate limit in starts per
--          1000 s (0: none), deferred (jobs waiting for their parents, depends_on: not
--          backlog), sleeping (durable sleeps and waits, kubeq.sleep / kubeq.wait_for: not
--          backlog, nor delayed, until their time is due), fair keys (fairness keys with
--          ready jobs, _fair.lua), then worker id / busy pairs of the live workers.
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
local live = redis.call('ZRANGEBYSCORE', q.workers, NOW - worker_ttl, '+inf')
for _, w in ipairs(live) do
  out[#out + 1] = w
  out[#out + 1] = tonumber(redis.call('HGET', q.busy, w) or '0')
end
return out
