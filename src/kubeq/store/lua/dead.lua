-- Dead-letter maintenance. KEYS: the queue's 8 keys. ARGV: base, action, ids...
--   action 'requeue': put each dead job back in the ready set with fresh attempt counters;
--     a job of a debounced or singleton key (flow.lua) takes its key back, or is refused
--     (it stays a dead letter) when a newer job of the key holds the key and wins by the
--     mode's rule: one waiting to run (its call is newer), or one running under skip or
--     cancel_running (a requeue neither runs beside it nor aborts it)
--   action 'purge':   delete each dead job (one whose hand-off is pending: once it is done)
-- Returns {n, then per refused job: id, why}: n, the number of jobs acted on.
local q = queue_keys(0)
-- Note a member in an index stats.lua reads (one of another type is dropped: an index
-- is rebuilt by its writers).
local function index(k, score, member)
  local ok = redis.pcall('ZADD', k, score, member)
  if type(ok) == 'table' and ok.err then
    redis.call('DEL', k)
    redis.call('ZADD', k, score, member)
  end
end
local base, action = ARGV[1], ARGV[2]
if action ~= 'requeue' and action ~= 'purge' then
  return redis.error_reply('unknown dead-letter action ' .. tostring(action))
end
local LIVE = {queued = true, scheduled = true, active = true, waiting = true, sleeping = true,
  batched = true}
-- Why a requeue of this flow job is refused, or nil (its key, if any, is free for it).
local function held_by_newer(id, fkey, mode)
  local cur = redis.pcall('GET', base .. 'flow:' .. fkey)
  if type(cur) ~= 'string' or cur == id then return nil end
  local cf = job_fields(base .. 'job:' .. cur, 'status', 'deliveries', 'lapsed', 'flow')
  if not (cf and cf[4] == fkey and LIVE[cf[1]]) then return nil end  -- ended or not the key's
  local why = 'its ' .. mode .. ' key ' .. fkey .. ' is held by the newer job ' .. cur
  if not cf[3] and (int(cf[2]) or 0) == 0 and cf[1] ~= 'active' then
    return why .. ', waiting to run with the newer call (cancel that job to run this one)'
  end
  if mode == 'skip' or mode == 'cancel_running' then
    return why .. ', running (requeue this one after that run)'
  end
  return nil -- replace, keep_latest, debounce: a newer call would make a job now as well
end
local n = 0
local refused = {}
for i = 3, #ARGV do
  local id = ARGV[i]
  local jk = base .. 'job:' .. id
  local f = job_fields(jk, 'status', 'flow', 'flow_mode')
  local why = nil
  if f and f[2] and action == 'requeue' and redis.call('ZSCORE', q.dead, id) then
    why = held_by_newer(id, f[2], f[3] or 'singleton')
  end
  if why then
    refused[#refused + 1] = id
    refused[#refused + 1] = why
  elseif not f and action == 'requeue' then
    -- its key holds garbage: nothing to run; it stays a dead letter for a person to look at
  elseif redis.call('ZREM', q.dead, id) == 1 then
    if action == 'requeue' and redis.call('EXISTS', jk) == 1 then
      local pf = redis.call('HMGET', jk, 'priority', 'fk')
      -- its counts start again: absent is 0 to every reader (docs/protocol.md)
      redis.call('HSET', jk, 'status', 'queued', 'enqueued_at', NOW, 'requeued_at', NOW)
      redis.call('HDEL', jk, 'reason', 'finished_at', 'error', 'traceback', 'worker',
        'started_at', 'attempts', 'deliveries')
      redis.call('DEL', base .. 'done:' .. id)
      if f[2] then  -- its key, back
        redis.call('SET', base .. 'flow:' .. f[2], id)
        index(base .. 'flows', NOWS, f[2])
      end
      make_ready(q, base, id, ready_score(pf[1] or '5', NOW), pf[2])
      wake(q.wake, 1)
      n = n + 1
    elseif action == 'purge' and handing_off(base, id) then
      -- its end is not handed off yet (on_failure, its children): the hand-off still reads
      -- the record, and deletes it once done (handed.lua)
      redis.call('HSET', jk, 'purged', '1')
      n = n + 1
    else
      -- purged, or a dead letter whose data is gone (nothing left to run): deleted; its send
      -- token becomes a receipt, so a late resend of its enqueue (a parent's hand-off of a
      -- callback, a client's resend) does not bring it back
      if action == 'purge' then
        local rf = job_fields(jk, 'sent', 'enqueued_at')
        if rf then keep_receipt(base, rf[1], rf[2]) end
      end
      redis.call('DEL', jk, base .. 'done:' .. id)
      if action == 'purge' then n = n + 1 end
    end
  end
end
return {n, unpack(refused)}
