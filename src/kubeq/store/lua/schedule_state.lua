-- Delete, pause or resume one schedule (kubeq.store.schedules).
-- KEYS: due, warm, all, def. ARGV: id, action ('delete' | 'pause' | 'resume'), next due on
-- resume ('' = ended), prewarm (s). Returns 1, or -1 when there is no such schedule.
local id, def = ARGV[1], KEYS[4]
if redis.call('EXISTS', def) == 0 then return -1 end
if ARGV[2] == 'delete' then
  redis.call('DEL', def)
  redis.call('ZREM', KEYS[3], id)
elseif ARGV[2] == 'pause' then
  redis.call('HSET', def, 'paused', '1', 'updated', NOWS)
elseif ARGV[2] == 'resume' then
  redis.call('HDEL', def, 'paused')
  redis.call('HSET', def, 'updated', NOWS)
  if ARGV[3] == '' then redis.call('HDEL', def, 'next') else redis.call('HSET', def, 'next', ARGV[3]) end
  if ARGV[3] ~= '' and redis.call('HEXISTS', def, 'claim') == 0 then
    redis.call('ZADD', KEYS[1], ARGV[3], id)
    if tonumber(ARGV[4]) > 0 then
      redis.call('ZADD', KEYS[2], tonumber(ARGV[3]) - tonumber(ARGV[4]), id)
    end
  end
  return 1
end
redis.call('ZREM', KEYS[1], id)
redis.call('ZREM', KEYS[2], id)
return 1
