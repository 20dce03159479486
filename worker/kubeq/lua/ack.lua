-- Settle the deliveries of one queue that ended since the worker's last round trip (one
-- call for all of them), each fenced by its lease token: a worker whose lease was taken
-- over (it was killed, paused or partitioned past the lease) cannot overwrite the new owner.
-- KEYS: the queue's 8 keys.
-- ARGV: base, n, then 7 per delivery (laid out by kubeq/outcomes.py, Settlement.ack_fields):
--   id, lease, outcome, value, traceback, reason, retry due ("+ms" after a delay)
--   outcome 'finished': value = result JSON
--   outcome 'retry':    value = error, run again at the due time (counts an attempt)
--   outcome 'failed':   value = error, reason; the job goes to the dead letters
--   outcome 'requeue':  handed back unfinished (worker shutting down): no attempt counted
--   outcome 'release':  its process died under it (a pool child crashed): back to the ready
--                       set without an attempt, but the delivery counts as lost, so a job
--                       that kills its process every time is buried after max_deliveries
-- Returns one flag per delivery: 1 when applied, 0 when its lease was stale (nothing
-- changed), -1 for an outcome this script does not know (nothing changed).
local q = queue_keys(0)
local base, n = ARGV[1], tonumber(ARGV[2])
local out = {}
local woken = 0
for i = 0, n - 1 do
  local o = 3 + i * 7
  local id, lease, outcome = ARGV[o], ARGV[o + 1], ARGV[o + 2]
  local value, tb, reason = ARGV[o + 3], ARGV[o + 4], ARGV[o + 5]
  local jk = base .. 'job:' .. id
  local f = redis.call('HMGET', jk, 'status', 'lease', 'result_ttl', 'priority', 'enqueued_at',
    'deliveries', 'attempts', 'max_deliveries')
  local known = outcome == 'finished' or outcome == 'retry' or outcome == 'failed' or
    outcome == 'requeue' or outcome == 'release'
  if not known then
    out[#out + 1] = -1
  elseif f[1] ~= 'active' or f[2] ~= lease then
    out[#out + 1] = 0
  else
    redis.call('ZREM', q.active, id)
    if outcome == 'finished' then
      redis.call('HINCRBY', jk, 'attempts', 1)
      redis.call('HSET', jk, 'status', 'finished', 'result', value, 'finished_at', NOW)
      local ttl = tonumber(f[3])
      if ttl and ttl > 0 then redis.call('EXPIRE', jk, ttl) end
      notify_done(base, id, ttl)
    elseif outcome == 'retry' then
      redis.call('HINCRBY', jk, 'attempts', 1)
      redis.call('HSET', jk, 'status', 'scheduled', 'error', value, 'traceback', tb)
      redis.call('ZADD', q.delayed, due_at(ARGV[o + 6]), id)
    elseif outcome == 'failed' then
      redis.call('HINCRBY', jk, 'attempts', 1)
      redis.call('HSET', jk, 'error', value, 'traceback', tb)
      bury(q, base, id, jk, reason)
    elseif outcome == 'release' then
      local lost = tonumber(f[6]) - tonumber(f[7] or '0')
      if lost >= tonumber(f[8]) then
        redis.call('HSET', jk, 'error', value)
        bury(q, base, id, jk, 'its process died ' .. lost .. ' times while running it: ' ..
          value .. ' (a poison job?)')
      else
        redis.call('HINCRBY', jk, 'lease', 1)
        redis.call('HSET', jk, 'status', 'queued')
        redis.call('ZADD', q.ready, ready_score(f[4], f[5]), id)
        woken = woken + 1
      end
    else -- requeue
      redis.call('HINCRBY', jk, 'deliveries', -1)
      redis.call('HSET', jk, 'status', 'queued')
      redis.call('ZADD', q.ready, ready_score(f[4], f[5]), id)
      woken = woken + 1
    end
    out[#out + 1] = 1
  end
end
wake(q.wake, woken)
return out
