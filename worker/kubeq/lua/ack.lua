-- Settle one delivery of a job, fenced by its lease token: a worker whose lease was taken
-- over (it was killed, paused or partitioned past the lease) cannot overwrite the new owner.
-- KEYS: the queue's 8 keys.
-- ARGV: base, id, lease, outcome, value, traceback, reason, retry due ("+ms" after a delay)
--   outcome 'finished': value = result JSON
--   outcome 'retry':    value = error, retried at retry_at_ms (counts an attempt)
--   outcome 'failed':   value = error, reason; the job goes to the dead letters
--   outcome 'requeue':  handed back unfinished (worker shutting down): no attempt counted
--   outcome 'release':  its process died under it (a pool child crashed): back to the ready
--                       set without an attempt, but the delivery counts as lost, so a job
--                       that kills its process every time is buried after max_deliveries
-- Returns 1 when applied, 0 when the lease was stale (nothing changed).
local q = queue_keys(0)
local base, id, lease, outcome = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local jk = base .. 'job:' .. id
local f = redis.call('HMGET', jk, 'status', 'lease', 'result_ttl', 'priority', 'enqueued_at',
  'deliveries', 'attempts', 'max_deliveries')
if f[1] ~= 'active' or f[2] ~= lease then
  return 0
end
redis.call('ZREM', q.active, id)
if outcome == 'finished' then
  redis.call('HINCRBY', jk, 'attempts', 1)
  redis.call('HSET', jk, 'status', 'finished', 'result', ARGV[5], 'finished_at', NOW)
  local ttl = tonumber(f[3])
  if ttl and ttl > 0 then redis.call('EXPIRE', jk, ttl) end
  notify_done(base, id, ttl)
elseif outcome == 'retry' then
  redis.call('HINCRBY', jk, 'attempts', 1)
  redis.call('HSET', jk, 'status', 'scheduled', 'error', ARGV[5], 'traceback', ARGV[6])
  redis.call('ZADD', q.delayed, due_at(ARGV[8]), id)
elseif outcome == 'failed' then
  redis.call('HINCRBY', jk, 'attempts', 1)
  redis.call('HSET', jk, 'error', ARGV[5], 'traceback', ARGV[6])
  bury(q, base, id, jk, ARGV[7])
elseif outcome == 'release' then
  local lost = tonumber(f[6]) - tonumber(f[7] or '0')
  if lost >= tonumber(f[8]) then
    redis.call('HSET', jk, 'error', ARGV[5])
    bury(q, base, id, jk, 'its process died ' .. lost .. ' times while running it: ' ..
      ARGV[5] .. ' (a poison job?)')
  else
    redis.call('HINCRBY', jk, 'lease', 1)
    redis.call('HSET', jk, 'status', 'queued')
    redis.call('ZADD', q.ready, ready_score(f[4], f[5]), id)
    wake(q.wake, 1)
  end
elseif outcome == 'requeue' then
  redis.call('HINCRBY', jk, 'deliveries', -1)
  redis.call('HSET', jk, 'status', 'queued')
  redis.call('ZADD', q.ready, ready_score(f[4], f[5]), id)
  wake(q.wake, 1)
else
  return redis.error_reply('unknown outcome ' .. tostring(outcome))
end
return 1
