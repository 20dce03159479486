-- Cancel a job that has not started, or sleeps (kubeq.sleep, kubeq.wait_for), or an item of
-- a batch that has not started. KEYS: the queue's 8 keys. ARGV: base, id, and for a
-- workflow's link not enqueued yet, a TTL in seconds: then a missing job becomes a
-- 'cancelled' tombstone that the link's hand-off (enqueued with once) finds, so it never runs.
-- Returns 1 if cancelled, 0 if it is running or has ended, -1 if there is no such job.
local q = queue_keys(0)
local base, id = ARGV[1], ARGV[2]
local jk = base .. 'job:' .. id
check_queue(q, base)
local f = job_fields(jk, 'status', 'result_ttl', 'cl_key', 'lapsed', 'fk')
if not f then
  -- garbage under the job's key: dead-letter it with the reason rather than fail the call
  redis.call('ZREM', q.ready, id)
  redis.call('ZREM', q.delayed, id)
  bury(q, base, id, jk, 'its job key is not a hash (written by hand?); found by cancel')
  return 0
end
local status = f[1]
if not status then
  local tomb = ttl_of(ARGV[3])
  if not tomb then return -1 end
  redis.call('HSET', jk, 'status', 'cancelled', 'finished_at', NOW, 'result_ttl', tomb,
    'reason', 'cancelled with its workflow before it was enqueued')
  redis.call('EXPIRE', jk, tomb)
  notify_done(base, id, tomb)
  return 1
end
if f[4] then return 0 end -- lapsed: its worker may still run it (it has started)
if status == 'batched' then
  -- an item of a batch (batch.lua) leaves it while the batch has not started; a batch left
  -- with no item ends cancelled too
  local c = redis.pcall('HGET', jk, 'batch')
  local ck = type(c) == 'string' and base .. 'job:' .. c
  local cf = ck and job_fields(ck, 'status', 'deliveries', 'lapsed')
  if not (cf and (cf[1] == 'scheduled' or cf[1] == 'queued') and not cf[3] and
      (int(cf[2]) or 0) == 0) then
    return 0
  end
  redis.call('LREM', base .. 'items:' .. c, 0, id)
  local left = redis.call('LLEN', base .. 'items:' .. c)
  redis.call('HSET', ck, 'batch_size', tostring(left))
  if left == 0 then
    redis.call('ZREM', q.ready, c)
    redis.call('ZREM', q.delayed, c)
    redis.call('HSET', ck, 'status', 'cancelled', 'finished_at', NOW,
      'reason', 'each of its items was cancelled')
    local ct = job_ttl(redis.call('HGET', ck, 'result_ttl'))
    if ct then redis.call('EXPIRE', ck, ct) end
    notify_done(base, c, ct)
    note_end(base, c, ck, 'cancelled')
  end
end
if status ~= 'queued' and status ~= 'scheduled' and status ~= 'waiting' and
    status ~= 'deferred' and status ~= 'sleeping' and status ~= 'batched' then
  return 0
end
if status == 'sleeping' then unsleep(base, id, jk) end -- it holds no worker: it just ends
redis.call('ZREM', q.ready, id)
fair_forget(base, id, f[5])
redis.call('ZREM', q.delayed, id)
redis.call('ZREM', base .. 'deferred', id)
if f[3] then redis.call('ZREM', base .. 'waiting:' .. f[3], id) end
redis.call('HSET', jk, 'status', 'cancelled', 'finished_at', NOW)
local ttl = job_ttl(f[2])
if ttl then redis.call('EXPIRE', jk, ttl) end
notify_done(base, id, ttl)
note_end(base, id, jk, 'cancelled')
return 1
