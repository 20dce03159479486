-- Dead-letter maintenance. KEYS: the queue's 8 keys. ARGV: base, action, ids...
--   action 'requeue': put each dead job back in the ready set with fresh attempt counters
--   action 'purge':   delete each dead job
-- Returns the number of jobs acted on.
local q = queue_keys(0)
local base, action = ARGV[1], ARGV[2]
local n = 0
for i = 3, #ARGV do
  local id = ARGV[i]
  local jk = base .. 'job:' .. id
  if redis.call('ZREM', q.dead, id) == 1 then
    n = n + 1
    if action == 'requeue' and redis.call('EXISTS', jk) == 1 then
      local pri = redis.call('HGET', jk, 'priority') or '5'
      redis.call('HSET', jk, 'status', 'queued', 'attempts', 0, 'deliveries', 0,
        'enqueued_at', NOW, 'requeued_at', NOW)
      redis.call('HDEL', jk, 'reason', 'finished_at')
      redis.call('DEL', base .. 'done:' .. id)
      redis.call('ZADD', q.ready, ready_score(pri, NOW), id)
      wake(q.wake, 1)
    else
      redis.call('DEL', jk, base .. 'done:' .. id)
    end
  end
end
return n
