-- Create or replace one schedule's definition (kubeq.store.schedules.upsert).
-- KEYS: due, warm, all, def. ARGV: id, spec JSON, next due (s, '' = ended), prewarm (s),
-- reset ('1': the timing changed or it is new, so ARGV[3] is the next due time; '0': keep the
-- stored one), paused ('1' pause, '0' resume, '' keep).
-- Returns {next due or '', paused 0/1}.
local id = ARGV[1]
local def = KEYS[4]
local new = redis.call('EXISTS', def) == 0
redis.call('HSET', def, 'spec', ARGV[2], 'updated', NOWS)
redis.call('HINCRBY', def, 'rev', 1)
redis.call('ZADD', KEYS[3], 0, id)
if ARGV[6] == '1' then
  redis.call('HSET', def, 'paused', '1')
elseif ARGV[6] == '0' then
  redis.call('HDEL', def, 'paused')
end
local nxt = ARGV[3]
if ARGV[5] == '1' or new then
  if nxt == '' then redis.call('HDEL', def, 'next') else redis.call('HSET', def, 'next', nxt) end
else
  nxt = redis.call('HGET', def, 'next') or ''
end
local paused = redis.call('HEXISTS', def, 'paused')
if paused == 1 or nxt == '' then
  redis.call('ZREM', KEYS[1], id)
  redis.call('ZREM', KEYS[2], id)
elseif redis.call('HEXISTS', def, 'claim') == 0 then
  redis.call('ZADD', KEYS[1], nxt, id)
end
if paused == 0 and nxt ~= '' and tonumber(ARGV[4]) > 0 then
  redis.call('ZADD', KEYS[2], tonumber(nxt) - tonumber(ARGV[4]), id)
else
  redis.call('ZREM', KEYS[2], id)
end
return {nxt, paused}
