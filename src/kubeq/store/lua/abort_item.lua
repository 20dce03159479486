-- Abort one item of a batch (docs/patterns.md, Batches: one item on its own), called by
-- job.abort() when abort.lua answers that the job is not one it stops (an item is
-- 'batched'). While its batch has not started, the item leaves it (as cancel.lua takes it
-- out) and ends 'aborted'; a batch left with no item ends cancelled. While its batch runs
-- (or waits to run again: lapsed, or retried with the same items), the item ends 'aborted'
-- at once and stays listed: the batch's run goes on, its answer for the item is not
-- recorded (batch_done.lua settles 'batched' items only), a rerun of the batch skips it, and
-- the task can see it (current_job().aborted_items()).
-- KEYS: the queue's 8 keys. ARGV: base, id.
-- Returns 1 if its batch was running, 2 if its batch had not started, 0 if the job is not
-- a batched item (ended, or another kind of job), -1 if there is no such job.
local q = queue_keys(0)
local base, id = ARGV[1], ARGV[2]
local jk = base .. 'job:' .. id
check_queue(q, base)
local f = job_fields(jk, 'status', 'batch', 'result_ttl')
if not f then return 0 end
if not f[1] then return -1 end
if f[1] ~= 'batched' or not f[2] then return 0 end
local c = f[2]
local ck = base .. 'job:' .. c
local cf = job_fields(ck, 'status', 'deliveries', 'lapsed')
local out = 1
if cf and (cf[1] == 'scheduled' or cf[1] == 'queued') and not cf[3] and
    (int(cf[2]) or 0) == 0 then
  out = 2 -- not started: the item leaves its batch
  redis.call('LREM', base .. 'items:' .. c, 0, id)
  local left = redis.call('LLEN', base .. 'items:' .. c)
  redis.call('HSET', ck, 'batch_size', tostring(left))
  if left == 0 then
    redis.call('ZREM', q.ready, c)
    redis.call('ZREM', q.delayed, c)
    redis.call('HSET', ck, 'status', 'cancelled', 'finished_at', NOW,
      'reason', 'each of its items was cancelled or aborted')
    local ct = job_ttl(redis.call('HGET', ck, 'result_ttl'))
    if ct then redis.call('EXPIRE', ck, ct) end
    notify_done(base, c, ct)
    note_end(base, c, ck, 'cancelled')
  end
end
local reason = 'aborted by request'
if out == 1 then reason = 'aborted by request while its batch ' .. c .. ' ran' end
redis.call('HSET', jk, 'status', 'aborted', 'finished_at', NOW, 'reason', reason)
local ttl = job_ttl(f[3])
if ttl then redis.call('EXPIRE', jk, ttl) end
notify_done(base, id, ttl)
note_end(base, id, jk, 'aborted')
return out
