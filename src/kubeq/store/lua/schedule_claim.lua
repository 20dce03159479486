-- Claim the schedules whose due time has come, for one firer (kubeq.store.schedulefire).
-- KEYS: due. ARGV: definition key prefix, lease (s), limit, claim token.
-- A claimed schedule's score becomes now + lease, so no other firer sees it until this one
-- commits (or the lease lapses and another takes it over with a new token): each due time is
-- handed to one firer at a time. Returns {now (s), id, spec, next, rev, last_job, buffered, ...}.
local now = math.floor(NOW / 1000)
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[3]))
local out = {tostring(now)}
for _, id in ipairs(ids) do
  local def = ARGV[1] .. id
  local f = redis.call('HMGET', def, 'spec', 'next', 'rev', 'last_job', 'buffered', 'paused')
  if not f[1] or f[6] then
    redis.call('ZREM', KEYS[1], id) -- deleted or paused while its entry lingered
  else
    redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), id)
    redis.call('HSET', def, 'claim', ARGV[4])
    for _, v in ipairs({id, f[1], f[2] or '', f[3] or '0', f[4] or '', f[5] or ''}) do
      out[#out + 1] = v
    end
  end
end
return out
