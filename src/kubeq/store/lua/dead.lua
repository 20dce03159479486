-- Dead-letter maintenance. KEYS: the queue's 8 keys. ARGV: base, action, ids...
--   action 'requeue': put each dead job back in the ready set with fresh attempt counters
--   action 'purge':   delete each dead job (one whose hand-off is pending: once it is done)
-- Returns the number of jobs acted on.
local q = queue_keys(0)
local base, action = ARGV[1], ARGV[2]
if action ~= 'requeue' and action ~= 'purge' then
  return redis.error_reply('unknown dead-letter action ' .. tostring(action))
end
local n = 0
for i = 3, #ARGV do
  local id = ARGV[i]
  local jk = base .. 'job:' .. id
  local f = job_fields(jk, 'status')
  if not f and action == 'requeue' then
    -- its key holds garbage: nothing to run; it stays a dead letter for a person to look at
  elseif redis.call('ZREM', q.dead, id) == 1 then
    if action == 'requeue' and redis.call('EXISTS', jk) == 1 then
      local pf = redis.call('HMGET', jk, 'priority', 'fk')
      redis.call('HSET', jk, 'status', 'queued', 'attempts', 0, 'deliveries', 0,
        'enqueued_at', NOW, 'requeued_at', NOW)
      redis.call('HDEL', jk, 'reason', 'finished_at', 'error', 'traceback', 'worker',
        'started_at')
      redis.call('DEL', base .. 'done:' .. id)
      make_ready(q, base, id, ready_score(pf[1] or '5', NOW), pf[2])
      wake(q.wake, 1)
      n = n + 1
    elseif action == 'purge' and handing_off(base, id) then
      -- its end is not handed off yet (on_failure, its children): the hand-off still reads
      -- the record, and deletes it once done (handed.lua)
      redis.call('HSET', jk, 'purged', '1')
      n = n + 1
    else
      -- purged, or a dead letter whose data is gone (nothing left to run): deleted
      redis.call('DEL', jk, base .. 'done:' .. id)
      if action == 'purge' then n = n + 1 end
    end
  end
end
return n
