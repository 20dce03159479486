-- Record claimed schedules' firings and put each back in the due index, many per call.
-- KEYS: due, warm. ARGV[1]: definition key prefix, ARGV[2]: claim token; then per schedule 11
-- values: id, rev at claim, next due ('' = ended), last run's due time ('' = none ran), its
-- job id, fired, missed, skipped (counts to add), prewarm (s), buffered due time ('' = none
-- waits), wake-up time ('' = none: the next due time decides).
-- A schedule whose claim was taken over (its lease lapsed) is left alone. A definition
-- changed while claimed keeps the next due time its upsert computed. Returns how many were
-- committed.
local token, done = ARGV[2], 0
for i = 3, #ARGV, 11 do
  local id, rev, nxt_arg, last, job = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
  local def = ARGV[1] .. id
  if redis.call('HGET', def, 'claim') == token then
    done = done + 1
    redis.call('HDEL', def, 'claim')
    if last ~= '' then
      redis.call('HSET', def, 'last', last, 'last_job', job, 'fired_at', NOWS)
    end
    for k, name in ipairs({'fired', 'missed', 'skipped'}) do
      local n = tonumber(ARGV[i + 4 + k])
      if n > 0 then redis.call('HINCRBY', def, name, n) end
    end
    local buffered, wake = ARGV[i + 9], ARGV[i + 10]
    if buffered == '' then redis.call('HDEL', def, 'buffered') else redis.call('HSET', def, 'buffered', buffered) end
    if redis.call('HGET', def, 'rev') == rev then
      if nxt_arg == '' then redis.call('HDEL', def, 'next') else redis.call('HSET', def, 'next', nxt_arg) end
    end
    local nxt = redis.call('HGET', def, 'next')
    local score = nxt
    if wake ~= '' and (not score or tonumber(wake) < tonumber(score)) then score = wake end
    if redis.call('HEXISTS', def, 'paused') == 1 or not score then
      redis.call('ZREM', KEYS[1], id)
      redis.call('ZREM', KEYS[2], id)
    else
      redis.call('ZADD', KEYS[1], score, id)
      local warm = tonumber(ARGV[i + 8])
      if nxt and warm > 0 then
        redis.call('ZADD', KEYS[2], tonumber(nxt) - warm, id)
      else
        redis.call('ZREM', KEYS[2], id)
      end
    end
  end
end
return done
