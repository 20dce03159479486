-- Delete up to `limit` waiting jobs (ready, delayed and sleeping) of a queue; call until it
-- returns 0.
-- A purged job with dependents (marker 'd') is not deleted at once: it ends 'cancelled'
-- (reason "purged") and notes its hand-off, which resolves its children as a cancelled
-- parent's (each cancelled, or run with allow_failure; docs/workflows.md), then its record
-- expires after its result_ttl. Its on_success / on_failure never run, as for cancel. A
-- deleted job's send token becomes a receipt (keep_receipt), so a resend of the enqueue call
-- that wrote it does not bring it back.
-- KEYS: the queue's 8 keys. ARGV: base, limit. Returns the number purged.
local q = queue_keys(0)
local base, limit = ARGV[1], tonumber(ARGV[2])
local n = 0
for _, key in ipairs({q.ready, q.delayed, base .. 'sleeping'}) do
  local ids = redis.call('ZRANGE', key, 0, limit - n - 1)
  for _, id in ipairs(ids) do
    redis.call('ZREM', key, id)
    local jk = base .. 'job:' .. id
    redis.call('ZREM', q.delayed, id)
    unsleep(base, id, jk) -- a durable sleep or wait ends too
    local f = job_fields(jk, 'cb', 'result_ttl', 'sent', 'enqueued_at', 'fk')
    if f and key == q.ready then fair_forget(base, id, f[5]) end
    if f and f[1] and string.find(f[1], 'd', 1, true) then
      redis.call('HSET', jk, 'status', 'cancelled', 'finished_at', NOWS,
        'reason', 'purged from its queue before it started')
      local ttl = job_ttl(f[2])
      notify_done(base, id, ttl)
      note_end(base, id, jk, 'cancelled')
    else
      if f then keep_receipt(base, f[3], f[4]) end  -- its enqueue's resend must not bring it back
      release_flow(base, id, jk)  -- a debounced or singleton job frees its key
      end_batch(base, id, jk, 'cancelled')  -- a batch's items end with it
      redis.call('DEL', jk, base .. 'done:' .. id)
    end
    n = n + 1
  end
  if n >= limit then break end
end
return n
