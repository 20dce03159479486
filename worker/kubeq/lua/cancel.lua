-- Cancel a job that has not started. KEYS: the queue's 8 keys. ARGV: base, id.
-- Returns 1 if cancelled, 0 if it is running or has ended, -1 if there is no such job.
local q = queue_keys(0)
local base, id = ARGV[1], ARGV[2]
local jk = base .. 'job:' .. id
local status = redis.call('HGET', jk, 'status')
if not status then return -1 end
if status ~= 'queued' and status ~= 'scheduled' then return 0 end
redis.call('ZREM', q.ready, id)
redis.call('ZREM', q.delayed, id)
redis.call('HSET', jk, 'status', 'cancelled', 'finished_at', NOW)
local ttl = tonumber(redis.call('HGET', jk, 'result_ttl') or '0')
if ttl > 0 then redis.call('EXPIRE', jk, ttl) end
notify_done(base, id, ttl)
return 1
