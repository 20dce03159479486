-- A worker leaves its queue (clean shutdown): it is no longer counted as live or busy.
-- KEYS: the queue's 8 keys. ARGV: worker.
local q = queue_keys(0)
redis.call('ZREM', q.workers, ARGV[1])
redis.call('HDEL', q.busy, ARGV[1])
return 1
