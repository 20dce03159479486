-- Everything the operator and `kubeq stats` need about one queue, read in one round trip.
-- KEYS: the queue's 8 keys. ARGV: worker_ttl_ms.
-- Returns: now_ms, backlog, in_flight, delayed, dead, oldest_ready_ms (-1 if none),
--          paused (0/1), then worker id / busy pairs of the live workers.
local q = queue_keys(0)
local worker_ttl = tonumber(ARGV[1])
local due = redis.call('ZCOUNT', q.delayed, '-inf', NOW)
local ready = redis.call('ZCARD', q.ready)
local oldest = -1
if ready > 0 then
  for band = 0, PMAX do
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
local out = {
  NOW, ready + due, redis.call('ZCARD', q.active), redis.call('ZCARD', q.delayed) - due,
  redis.call('ZCARD', q.dead), oldest, redis.call('EXISTS', q.paused),
}
local live = redis.call('ZRANGEBYSCORE', q.workers, NOW - worker_ttl, '+inf')
for _, w in ipairs(live) do
  out[#out + 1] = w
  out[#out + 1] = tonumber(redis.call('HGET', q.busy, w) or '0')
end
return out
