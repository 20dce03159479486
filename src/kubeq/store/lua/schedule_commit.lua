-- Record one claimed schedule's firing and put it back in the due index.
-- KEYS: due, warm, def. ARGV: id, claim token, rev at claim, next due ('' = ended), last run's
-- due time ('' = none ran), its job id, fired, missed, skipped (counts to add), prewarm (s),
-- buffered due time ('' = none waits), wake-up time ('' = none: the next due time decides).
-- A commit whose claim was taken over (its lease lapsed) changes nothing and returns 0. A
-- definition changed while claimed keeps the next due time its upsert computed.
local id, def = ARGV[1], KEYS[3]
if redis.call('HGET', def, 'claim') ~= ARGV[2] then return 0 end
redis.call('HDEL', def, 'claim')
if ARGV[5] ~= '' then
  redis.call('HSET', def, 'last', ARGV[5], 'last_job', ARGV[6], 'fired_at', NOWS)
end
for i, name in ipairs({'fired', 'missed', 'skipped'}) do
  local n = tonumber(ARGV[6 + i])
  if n > 0 then redis.call('HINCRBY', def, name, n) end
end
if ARGV[11] == '' then redis.call('HDEL', def, 'buffered') else redis.call('HSET', def, 'buffered', ARGV[11]) end
if redis.call('HGET', def, 'rev') == ARGV[3] then
  if ARGV[4] == '' then redis.call('HDEL', def, 'next') else redis.call('HSET', def, 'next', ARGV[4]) end
end
local nxt = redis.call('HGET', def, 'next')
local score = nxt
if ARGV[12] ~= '' and (not score or tonumber(ARGV[12]) < tonumber(score)) then score = ARGV[12] end
if redis.call('HEXISTS', def, 'paused') == 1 or not score then
  redis.call('ZREM', KEYS[1], id)
  redis.call('ZREM', KEYS[2], id)
  return 1
end
redis.call('ZADD', KEYS[1], score, id)
if nxt and tonumber(ARGV[10]) > 0 then
  redis.call('ZADD', KEYS[2], tonumber(nxt) - tonumber(ARGV[10]), id)
else
  redis.call('ZREM', KEYS[2], id)
end
return 1
