-- Delete up to `limit` waiting jobs (ready and delayed) of a queue; call until it returns 0.
-- KEYS: the queue's 8 keys. ARGV: base, limit. Returns the number deleted.
local q = queue_keys(0)
local base, limit = ARGV[1], tonumber(ARGV[2])
local n = 0
for _, key in ipairs({q.ready, q.delayed}) do
  local ids = redis.call('ZRANGE', key, 0, limit - n - 1)
  for _, id in ipairs(ids) do
    redis.call('ZREM', key, id)
    redis.call('DEL', base .. 'job:' .. id, base .. 'done:' .. id)
    n = n + 1
  end
  if n >= limit then break end
end
return n
