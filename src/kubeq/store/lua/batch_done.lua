-- Settle the items of a batch its run has ended (docs/patterns.md), fenced by the batch's
-- lease: only the worker whose attempt holds the batch (active under its token, or lapsed
-- under it and not delivered again) settles its items. An item already settled (a batch run
-- again after a crash between this call and the batch's ack) is left as it is.
-- KEYS: the queue's 8 keys.
-- ARGV: base, batch (carrier) id, lease, then per item: id, outcome ('finished', 'retry',
--   'failed' or 'expired'), value (result JSON, or the error), then the reason ('failed') or the retry's
--   due time ('retry': "+ms" on this server's clock).
-- Returns the number of items settled, or -1 when the lease no longer holds the batch.
local q = queue_keys(0)
local base, carrier, lease = ARGV[1], ARGV[2], ARGV[3]
check_queue(q, base)
local cf = job_fields(base .. 'job:' .. carrier, 'status', 'lease', 'lapsed')
if not cf or not holds(lease, cf[1], cf[2], cf[3]) then return -1 end
local n = 0
for i = 4, #ARGV, 4 do
  local id, outcome, value, reason = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local jk = base .. 'job:' .. id
  local f = job_fields(jk, 'status', 'batch', 'result_ttl')
  if f and f[1] == 'batched' and f[2] == carrier then
    if outcome == 'finished' then
      redis.call('HSET', jk, 'status', 'finished', 'finished_at', NOWS, 'attempts', '1',
        'started_at', NOWS, result_field(value))
      local ttl = job_ttl(f[3])
      if ttl then redis.call('EXPIRE', jk, ttl) end
      notify_done(base, id, ttl)
      note_end(base, id, jk, 'finished') -- its dependents (depends_on) are handed off
    elseif outcome == 'retry' then
      -- its own retry, after its backoff: an ordinary job now, run as a batch of one
      redis.call('HSET', jk, 'status', 'scheduled', 'error', value, 'attempts', '1',
        'started_at', NOWS)
      redis.call('ZADD', q.delayed, string.format('%d', due_at(reason)), id)
      wake(q.wake, 1)
    elseif outcome == 'expired' then  -- its expiry time passed before its batch started
      expire_job(base, id, jk, f[3])
    else
      redis.call('HSET', jk, 'error', value, 'attempts', '1')
      bury(q, base, id, jk, reason)
    end
    n = n + 1
  end
end
return n
