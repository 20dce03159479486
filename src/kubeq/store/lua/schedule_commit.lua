-- Record claimed schedules' firings and put each back in the due index, many per call.
-- KEYS: due, warm. ARGV[1]: definition key prefix, ARGV[2]: claim token; then per schedule 11
-- values: id, rev at claim, next due ('' = ended), last run's due time ('' = none ran), its
-- job id, fired, missed, skipped (counts to add), prewarm (s), buffered due time ('' = none
-- waits), wake-up time ('' = none: the next due time decides).
-- A schedule whose claim was taken over (its lease lapsed) is left alone. A definition
-- changed while claimed keeps the next due time its upsert computed. Each definition is read
-- once and written with one HSET and one HDEL. Returns how many were committed.
local token, done = ARGV[2], 0
local function pair(t, k, v)
  t[#t + 1] = k
  t[#t + 1] = v
end
for i = 3, #ARGV, 11 do
  local id, rev, nxt_arg, last, job = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
  local def = ARGV[1] .. id
  local f = redis.call('HMGET', def, 'claim', 'rev', 'next', 'paused')
  if f[1] == token then
    done = done + 1
    local set, del = {}, {'claim'}
    if last ~= '' then
      pair(set, 'last', last)
      pair(set, 'last_job', job)
      pair(set, 'fired_at', NOWS)
    end
    local buffered, wake = ARGV[i + 9], ARGV[i + 10]
    if buffered == '' then
      del[#del + 1] = 'buffered'
    else
      pair(set, 'buffered', buffered)
    end
    local nxt = f[3]
    if f[2] == rev then
      if nxt_arg == '' then
        del[#del + 1] = 'next'
        nxt = false
      else
        pair(set, 'next', nxt_arg)
        nxt = nxt_arg
      end
    end
    if #set > 0 then redis.call('HSET', def, unpack(set)) end
    redis.call('HDEL', def, unpack(del))
    for k, name in ipairs({'fired', 'missed', 'skipped'}) do
      local n = tonumber(ARGV[i + 4 + k])
      if n > 0 then redis.call('HINCRBY', def, name, n) end
    end
    local score = nxt
    if wake ~= '' and (not score or tonumber(wake) < tonumber(score)) then score = wake end
    if f[4] or not score then
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
