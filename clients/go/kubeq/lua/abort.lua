-- Abort a job. One that has not started never will; a running one ends 'aborted' at once,
-- and the worker running it learns it from its next heartbeat reply, which stops the attempt
-- (docs/architecture.md, Execution control). Until that attempt has stopped (its worker's
-- ack says so, or its lease expires) it keeps its lease and its concurrency slot, and the
-- job's data does not expire: a thread that runs on holds the slot, and a short result TTL
-- cannot hide the abort from the heartbeat. Its late outcome is refused (ack.lua answers 2).
-- KEYS: the queue's 8 keys. ARGV: base, id.
-- Returns 1 if it was running, 2 if it had not started, 0 if it had already ended,
-- -1 if there is no such job.
local q = queue_keys(0)
local base, id = ARGV[1], ARGV[2]
local jk = base .. 'job:' .. id
check_queue(q, base)
local f = job_fields(jk, 'status', 'result_ttl', 'cl_key', 'cl_n', 'lapsed', 'fk')
if not f then
  -- garbage under the job's key: dead-letter it with the reason rather than fail the call
  for _, k in ipairs({q.ready, q.delayed, q.active}) do redis.call('ZREM', k, id) end
  bury(q, base, id, jk, 'its job key is not a hash (written by hand?); found by abort')
  return 0
end
local status = f[1]
if not status then return -1 end
local out = 2
if status == 'active' then
  out = 1
elseif status == 'queued' and f[5] then
  -- lapsed: its worker may still run it; it holds its slot until its lease is reclaimed
  redis.call('ZREM', q.ready, id)
  redis.call('ZADD', q.active, NOW, id)
  redis.call('HDEL', jk, 'lapsed')
  out = 1
elseif status == 'queued' then
  redis.call('ZREM', q.ready, id)
  fair_forget(base, id, f[6])
elseif status == 'scheduled' then
  redis.call('ZREM', q.delayed, id)
elseif status == 'waiting' and f[3] then
  redis.call('ZREM', base .. 'waiting:' .. f[3], id)
elseif status == 'deferred' then
  redis.call('ZREM', base .. 'deferred', id)
elseif status == 'sleeping' then -- durable sleep or wait: no attempt runs
  redis.call('ZREM', q.delayed, id)
  unsleep(base, id, jk)
else
  return 0
end
redis.call('HSET', jk, 'status', 'aborted', 'finished_at', NOW, 'reason', 'aborted by request')
local ttl = job_ttl(f[2])
if ttl and out ~= 1 then redis.call('EXPIRE', jk, ttl) end
notify_done(base, id, ttl)
note_end(base, id, jk, 'aborted')
return out
