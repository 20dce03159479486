-- Settle the deliveries of one queue that ended since the worker's last round trip (one
-- call for all of them), each fenced by its lease token: a worker whose lease was taken
-- over (it was killed, paused or partitioned past the lease) cannot overwrite the new owner.
-- KEYS: the queue's 8 keys.
-- ARGV: base, n, then per delivery (laid out by kubeq/outcomes.py, Settlement.ack_fields)
--   id, lease, outcome, value, and for any outcome but 'finished' traceback, reason and
--   retry due ("+ms" after a delay) too; then optionally worker and order token:
--   <base>order:<worker> is set to the token, which the fetch sent after these acks in the
--   same pipeline checks (fetch.lua: resends keep order).
--   outcome 'finished': value = result JSON (4 arguments)
--   outcome 'retry':    value = error, run again at the due time (counts an attempt)
--   outcome 'failed':   value = error, reason; the job goes to the dead letters
--   outcome 'requeue':  handed back unfinished (worker shutting down): no attempt counted
--   outcome 'release':  its process died under it (a pool child crashed): back to the ready
--                       set without an attempt, but the delivery counts as lost, so a job
--                       that kills its process every time is buried after max_deliveries
-- Every applied outcome frees the job's concurrency slot (docs/architecture.md,
-- Execution control). A lapsed job (its lease expired, not delivered again) is still held by
-- its token: the outcome applies (docs/architecture.md, Guarantees).
-- Returns one flag per delivery: 1 when applied, 0 when its lease was stale (nothing
-- changed), -1 for an outcome this script does not know (nothing changed), -2 when the job's
-- data in Redis was malformed (the job is dead-lettered with the reason), 2 when the job was
-- aborted meanwhile (the aborted attempt's outcome is refused; the attempt has stopped, so
-- its concurrency slot is freed and its data expires after its result TTL), 3 when
-- applied and a callback waits to be handed off (base..'handoff', handoff.py), 4 when this
-- lease's outcome was recorded already (a resend after a lost reply: the job still carries
-- this token and is no longer active; nothing changed).
-- Each delivery is validated before anything about it changes, so one bad item never stops
-- the others.
local q = queue_keys(0)
local base, n = ARGV[1], tonumber(ARGV[2])
-- where each delivery's arguments start: a finished one takes 4, any other 7
local FINISHED_FIELDS, OTHER_FIELDS = 4, 7
local at, o = {}, 3
for i = 0, n - 1 do
  at[i] = o
  o = o + (ARGV[o + 2] == 'finished' and FINISHED_FIELDS or OTHER_FIELDS)
end
-- first, so that only a call that did not run at all (NOSCRIPT) holds the fetch back
local token = ARGV[o + 1]
if token then redis.call('SET', base .. 'order:' .. ARGV[o], token, 'PX', 60000) end
-- Every delivery's fields are read first, so the sets checked are those this call may write:
-- a finished job of no concurrency limit and no follow-up (the usual ack) writes only the
-- active set; any other delivery may write any job set, and then all of them are checked.
-- The first read takes only the first 7: what tells a usual ack and what it writes with (a
-- field that is not there costs HMGET a scan of the whole record). A call whose deliveries
-- all finished as a usual ack does, a concurrency limit allowed, is a batch: its jobs are
-- not read again (a limited job's cl_n is read when its slot's release needs it); any other
-- call's deliveries are read again, all their fields, before each changes anything.
local FIELDS = {'status', 'lease', 'result_ttl', 'deliveries', 'attempts', 'cl_key', 'cb',
  'priority', 'enqueued_at', 'max_deliveries', 'cl_n', 'lapsed', 'fk'}
local FIRST = {unpack(FIELDS, 1, 7)}
-- Whether a deliveries field is absent or a whole number ('1', a first delivery's, is read
-- without parsing it: most acks have it).
local function counted(v)
  return not v or v == '1' or int(v) ~= nil
end
local read, seen, dup, only_active, simple = {}, {}, false, true, true
local jks = {}  -- each delivery's job key, made once
for i = 0, n - 1 do
  local o = at[i]
  local id = ARGV[o]
  if seen[id] then dup = true end -- a later delivery of it reads what the earlier one wrote
  seen[id] = true
  local jk = base .. 'job:' .. id
  jks[i] = jk
  local f = job_fields(jk, unpack(FIRST))
  read[i] = f or false
  if not (f and ARGV[o + 2] == 'finished' and f[1] == 'active' and f[2] == ARGV[o + 1] and
    not f[7] and (not f[5] or int(f[5])) and counted(f[4])) then
    simple = false
  elseif f[6] then
    only_active = false  -- its slot's release may make waiting jobs ready
  end
end
local batch = simple and not dup
if batch and only_active then require_zsets({q.active}, base) else check_queue(q, base) end
-- A batch leaves the active set in one ZREM, and one EXISTS over its watch keys says whether
-- anybody waits for any of its jobs (result(): usually nobody, so no done-list is pushed):
-- two calls for the whole batch instead of two per job.
local watched = true
if batch then
  local ids, watch = {}, {}
  for i = 0, n - 1 do
    ids[i + 1] = ARGV[at[i]]
    watch[i + 1] = base .. 'watch:' .. ids[i + 1]
  end
  local seen_watch = 0
  for i = 1, n, 1000 do
    local j = math.min(i + 999, n)
    redis.call('ZREM', q.active, unpack(ids, i, j))
    seen_watch = seen_watch + redis.call('EXISTS', unpack(watch, i, j))
  end
  watched = seen_watch > 0
end
local out = {}
local woken = 0
local default_ttl = job_ttl(nil)  -- a job without result_ttl: read once per call
for i = 0, n - 1 do
  local o = at[i]
  local id, lease, outcome = ARGV[o], ARGV[o + 1], ARGV[o + 2]
  local value, tb, reason = ARGV[o + 3], nil, nil
  if outcome ~= 'finished' then tb, reason = ARGV[o + 4], ARGV[o + 5] end
  local jk = jks[i]
  local f = read[i] or nil
  -- (read again unless this is a batch: what an earlier delivery wrote counts)
  if not batch then f = job_fields(jk, unpack(FIELDS)) end
  local known = outcome == 'finished' or outcome == 'retry' or outcome == 'failed' or
    outcome == 'requeue' or outcome == 'release'
  if known and f and f[1] == 'queued' and f[12] and f[12] == lease then
    take_back(q, jk, id, nil) -- a lapsed job: its holder's outcome still counts
    f[1] = 'active'
  end
  local bad = nil
  if f and f[1] == 'active' and f[2] == lease then
    if f[5] and not int(f[5]) then bad = 'malformed job: attempts is not a number'
    elseif not counted(f[4]) then bad = 'malformed job: deliveries is not a number'
    end
  end
  if not known then
    out[#out + 1] = -1
  elseif not f then
    redis.call('ZREM', q.active, id)
    bury(q, base, id, jk, 'its job key is not a hash (written by hand?)')
    out[#out + 1] = -2
  elseif f[1] == 'aborted' then
    if f[2] == lease and redis.call('ZSCORE', q.active, id) then
      aborted_stopped(q, base, id, jk, f[6], f[11], f[3])
    end
    out[#out + 1] = 2
  elseif f[1] ~= 'active' and f[2] == lease then
    -- its delivery ended and no other began: this token's outcome was recorded, and this
    -- is a resend whose first reply was lost (nothing changes)
    out[#out + 1] = 4
  elseif f[1] ~= 'active' or f[2] ~= lease then
    out[#out + 1] = 0
  elseif bad then
    redis.call('ZREM', q.active, id)
    release_slot(q, base, id, f[6], f[11])
    bury(q, base, id, jk, bad .. ' (its outcome was ' .. outcome .. ')')
    out[#out + 1] = -2
  else
    if not batch then redis.call('ZREM', q.active, id) end
    release_slot(q, base, id, f[6], f[11], batch and jk or nil)
    local handoff = false
    if outcome == 'finished' then
      local attempts = (f[5] and int(f[5]) or 0) + 1
      if attempts == 1 and f[4] == '1' then
        -- the usual end, one attempt on the first delivery: neither count is kept (a
        -- finished job without them ran once on its first delivery, docs/protocol.md)
        redis.call('HDEL', jk, 'deliveries', 'attempts')
        redis.call('HSET', jk, 'status', 'finished', 'finished_at', NOWS, result_field(value))
      else
        redis.call('HSET', jk, 'status', 'finished', 'finished_at', NOWS,
          'attempts', string.format('%d', attempts), result_field(value))
      end
      local ttl = default_ttl  -- (a result_ttl of 0 or less is none: no expiry)
      if f[3] then ttl = job_ttl(f[3]) end
      if ttl then redis.call('EXPIRE', jk, f[3] and string.format('%d', ttl) or RESULT_TTL) end
      if watched then notify_done(base, id, ttl) end
      if f[7] then handoff = note_end(base, id, jk, 'finished') end
    elseif outcome == 'retry' then
      redis.call('HINCRBY', jk, 'attempts', 1)
      redis.call('HSET', jk, 'status', 'scheduled', 'error', value, 'traceback', tb)
      redis.call('ZADD', q.delayed, due_at(ARGV[o + 6]), id)
    elseif outcome == 'failed' then
      redis.call('HINCRBY', jk, 'attempts', 1)
      redis.call('HSET', jk, 'error', value, 'traceback', tb)
      handoff = bury(q, base, id, jk, reason)
    elseif outcome == 'release' then
      local lost = (int(f[4] or '0') or 0) - (int(f[5] or '0') or 0)
      if lost >= (int(f[10]) or 5) then -- no field: the default, 5
        redis.call('HSET', jk, 'error', value)
        handoff = bury(q, base, id, jk, 'its process died ' .. lost ..
          ' times while running it: ' .. value .. ' (a poison job?)')
      else
        redis.call('HSET', jk, 'lease', (int(f[2]) or 0) + 1, 'status', 'queued')
        make_ready(q, base, id, ready_score(f[8], f[9]), f[13])
        woken = woken + 1
      end
    else -- requeue
      redis.call('HINCRBY', jk, 'deliveries', -1)
      redis.call('HSET', jk, 'status', 'queued')
      make_ready(q, base, id, ready_score(f[8], f[9]), f[13])
      woken = woken + 1
    end
    out[#out + 1] = handoff and 3 or 1
  end
end
wake(q.wake, woken)
return out
