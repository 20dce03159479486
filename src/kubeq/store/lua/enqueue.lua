-- Enqueue jobs into one queue in one round trip.
-- KEYS: the queue's 8 keys. ARGV: base, the number of groups, the call's send token (unique to
-- this call: the client sends the same token again when it resends the call after losing its
-- reply), then per group (jobs that share their options: a bulk enqueue of one task is one
-- group, so its options are sent, parsed and converted once) its 6 fields:
--   count, priority, due ("0" now, "+ms" after a delay on the server's clock, or "ms" since the
--   epoch), max_deliveries, result_ttl, control (JSON of the jobs' execution-control fields, or
--   "": rl_key rl_n rl_ms rl_b, cl_key cl_n, fk (fairness key: _fair.lua), expires
--   "+ms"/"ms"; on_success / on_failure (a callback's JSON, stored as is, with the marker cb = 's', 'f' or 'sf' that ack.lua reads);
--   once (true: an id that exists in any state, even ended, is a duplicate: a callback's
--   hand-off redone after a crash); deps (N > 0: the job waits, status 'deferred', until N
--   parents resolved it, resolve.lua); allow_failure; laid out by kubeq/enqueue.py,
--   control_fields)
-- then count x (id, payload).
-- Returns one flag per job, in ARGV order: 1 = enqueued by this call, 0 = a live job with that
-- id exists (de-duplicated; so is an ended one whose hand-off, handoff.py, is still under way,
-- and an id given twice in the call), -1 = its group's control fields are malformed (nothing
-- written for it).
-- A resend writes nothing twice. A call of several jobs, or of a job whose result may expire
-- before a resend comes, leaves a receipt, <base>sent:<token> holding its reply (one character
-- per job) for RESEND_WINDOW seconds: a resend within that time gets the first reply back and
-- writes nothing. Any other call (one job, a long result TTL: one delay()) keeps its token on
-- its job instead (field 'sent', no key more per job): a job that carries this call's token was
-- written by an earlier send of it, so it is neither replaced (even ended) nor counted again,
-- and is reported as enqueued. When another call replaces such a job (ended) within the
-- window, the token moves to a receipt, so that call's resend still finds its answer.
-- Every value handed to redis.call is a string: Redis formats a Lua number with sprintf on
-- each call, which cost more than the rest of a job's HSET.
local q = queue_keys(0)
local base = ARGV[1]
local groups = tonumber(ARGV[2])
local token = ARGV[3]
-- RESEND_WINDOW (_prelude.lua) is longer than any resend comes after the first send: the
-- client's socket timeout (15 s) and its reconnection attempts (enqueue.py's RESEND_WINDOW
-- says the same; tests/unit checks it).
local FLAGS = {['1'] = 1, ['0'] = 0, ['-'] = -1}
-- The control fields of a group as HSET arguments (with the callback marker), the once and
-- deps flags, or nil when malformed.
local function parse_control(raw)
  local control = {}
  local once, cb, deps = false, '', 0
  if raw == '' then return control, once, deps end
  local ok, c = pcall(cjson.decode, raw)
  if not ok or type(c) ~= 'table' then return nil end
  for k, v in pairs(c) do
    if k == 'expires' then
      local okd, at = pcall(due_at, tostring(v))
      if not okd or not at then return nil end
      control[#control + 1] = 'expires_at'
      control[#control + 1] = string.format('%d', math.floor(at))
    elseif (k == 'rl_key' or k == 'cl_key') and type(v) == 'string' then
      control[#control + 1] = k
      control[#control + 1] = v
    elseif k == 'fk' and type(v) == 'string' and #v >= 1 and #v <= 800 then
      -- a fair key: 1..200 characters (checks.py), so at most 800 bytes of UTF-8
      control[#control + 1] = k
      control[#control + 1] = v
    elseif (k == 'rl_n' or k == 'rl_ms' or k == 'rl_b' or k == 'cl_n') and int(v) then
      control[#control + 1] = k
      control[#control + 1] = v
    elseif (k == 'on_success' or k == 'on_failure') and type(v) == 'string' then
      control[#control + 1] = k
      control[#control + 1] = v
      cb = cb .. (k == 'on_success' and 's' or 'f')
    elseif k == 'once' and v == true then
      once = true
    elseif k == 'deps' and int(v) and int(v) > 0 then
      deps = int(v)
      control[#control + 1] = 'pending'
      control[#control + 1] = deps
    elseif k == 'tags' and type(v) == 'table' and #v > 0 and #v <= 16 then  -- [search index]
      for _, t in ipairs(v) do
        if type(t) ~= 'string' or #t > 64 or not string.match(t, '^[%w_.:=/-]+$') then return nil end
      end
      control[#control + 1] = 'tags'
      control[#control + 1] = cjson.encode(v)
      control.tags = v
    elseif k == 'allow_failure' and v == true then
      control[#control + 1] = 'allow_failure'
      control[#control + 1] = '1'
    else
      return nil
    end
  end
  if cb ~= '' then
    control[#control + 1] = 'cb'
    control[#control + 1] = cb
  end
  return control, once, deps
end
-- One look at the call's groups before anything is read: each group's control fields
-- parsed, whether the call leaves a receipt (more than one job, or a result TTL under the
-- window), whether a job is for later (the delayed set), whether a group has a fairness key
-- (the fair index), and its jobs' keys.
local parsed = {}  -- per group: {control, once, deps, run_at, fk} (control nil: malformed)
local receipt, later, fair, job_keys = false, false, false, {}
do
  local o = 4
  for g = 1, groups do
    local count = tonumber(ARGV[o]) or 0
    local control, once, deps = parse_control(ARGV[o + 5])
    local run_at, fk = due_at(ARGV[o + 2]), control and fair_key_of(control)
    parsed[g] = {control, once, deps, run_at, fk}
    if (tonumber(ARGV[o + 4]) or 0) < RESEND_WINDOW then receipt = true end
    if (run_at or 0) > NOW then later = true end
    if fk then fair = true end
    o = o + 6
    for i = 1, count do job_keys[#job_keys + 1] = base .. 'job:' .. ARGV[o + 2 * i - 2] end
    o = o + 2 * count
  end
  if #job_keys > 1 then receipt = true end
end
local receipt_key = base .. 'sent:' .. token
local kept = redis.pcall('GET', receipt_key)
if type(kept) == 'string' then  -- an earlier send of this call ran: its reply, again
  local out = {}
  for i = 1, #kept do out[i] = FLAGS[string.sub(kept, i, i)] end
  return out
end
-- Whether any of the call's ids has a key: one job's fields are read here (and used below),
-- more jobs' keys are counted in one EXISTS instead of one HMGET each (new ids, the common
-- case, have none; when one does, every job is looked at). Only a job that exists can be
-- replaced, and only a replaced one is taken from the dead letters.
local single, fresh = nil, false
if #job_keys == 1 then
  single = job_fields(job_keys[1], 'status', 'sent', 'enqueued_at')
elseif #job_keys > 1 then
  local found = 0
  for i = 1, #job_keys, 1000 do
    found = found + redis.call('EXISTS', unpack(job_keys, i, math.min(i + 999, #job_keys)))
  end
  fresh = found == 0
end
-- the sets this call may write, typed before it writes (check_queue, _prelude.lua)
local sets = {q.ready}
if later then sets[#sets + 1] = q.delayed end
if (single and single[1]) or (#job_keys > 1 and not fresh) then sets[#sets + 1] = q.dead end
require_zsets(sets, base)
if fair then require_fair(base) end
-- Ready (or delayed) ids are added with one ZADD per 1,000 instead of one per job.
local adds = {}
local group_fk = nil  -- the group's fairness key: its ready jobs join the key's flow (_fair.lua)
local function flush(key)
  if #adds > 0 and group_fk and key == q.ready then
    fair_add(q, base, group_fk, adds)
    adds = {}
  elseif #adds > 0 then
    redis.call('ZADD', key, unpack(adds))
    adds = {}
  end
end
local out = {}
local jobs_seen = 0  -- the call's jobs so far: the index of the next one's key in job_keys
local mine = {}  -- ids this call has enqueued (or an earlier send of it had)
local woken = 0
local scheduled = 0
local o = 4
for g = 1, groups do
  local count, priority = tonumber(ARGV[o]), ARGV[o + 1]
  local max_deliveries, result_ttl = ARGV[o + 3], ARGV[o + 4]
  local control, once, deps, run_at = parsed[g][1], parsed[g][2], parsed[g][3], parsed[g][4]
  group_fk = parsed[g][5]
  -- 'ctl' makes the fetch read the job's expiry and limits: only a job that has some
  local ctl = false
  for i = 1, control and #control or 0, 2 do
    local k = control[i]
    if k == 'expires_at' or k == 'rl_key' or k == 'cl_key' then ctl = true end
  end
  o = o + 6
  -- a field at its default is not written (deliveries, attempts and lease 0, priority 5,
  -- max_deliveries 5, result_ttl RESULT_TTL: every reader takes a missing one as its default;
  -- bench/README.md, "Where a job's bytes go"); without a receipt, the call's token goes on
  -- each job
  local extra = {}
  if priority ~= '5' then extra[#extra + 1] = 'priority'; extra[#extra + 1] = priority end
  if result_ttl ~= RESULT_TTL then
    extra[#extra + 1] = 'result_ttl'; extra[#extra + 1] = result_ttl
  end
  if max_deliveries ~= '5' then
    extra[#extra + 1] = 'max_deliveries'; extra[#extra + 1] = max_deliveries
  end
  if not receipt then extra[#extra + 1] = 'sent'; extra[#extra + 1] = token end
  local st, zkey, score = 'queued', q.ready, ready_score(priority, NOW)
  if (deps or 0) > 0 then st = 'deferred'  -- (nil: malformed control, refused below)
  elseif run_at > NOW then st, zkey, score = 'scheduled', q.delayed, run_at end
  score = string.format('%d', score)
  for _ = 1, count do
    local id, payload = ARGV[o], ARGV[o + 1]
    jobs_seen = jobs_seen + 1
    o = o + 2
    local jk = job_keys[jobs_seen]
    local f
    if fresh then  -- no key existed; an id given twice in the call is its own duplicate
      f = {mine[id] and 'queued' or false}
    elseif #job_keys == 1 then  -- read above
      f = control and single
    else
      f = control and job_fields(jk, 'status', 'sent', 'enqueued_at')
    end
    if control and not f then
      -- garbage under this id's key (written by hand?): keep it aside, enqueue the new job
      redis.call('RENAME', jk, base .. 'garbage:' .. id)
      f = {false}
    end
    local status = f and f[1]
    if not control then
      out[#out + 1] = -1
    elseif mine[id] then
      out[#out + 1] = 0
    elseif status and f[2] == token then
      -- an earlier send of this very call wrote it: it stays as it is, whatever its state
      mine[id] = true
      out[#out + 1] = 1
    elseif status == 'queued' or status == 'scheduled' or status == 'active' or
        status == 'waiting' or status == 'deferred' or status == 'sleeping' or
        (once and status) or
        (status and handing_off(base, id)) then
      out[#out + 1] = 0
    else
      if status then
        -- a finished, failed or cancelled job of the same id is replaced by the new one
        redis.call('DEL', jk, base .. 'done:' .. id)
        redis.call('ZREM', q.dead, id)
        keep_receipt(base, f[2], f[3])  -- the call that wrote it may still be resent
      end
      redis.call('HSET', jk, 'payload', payload, 'status', st, 'enqueued_at', NOWS,
        unpack(extra))
      if ctl then redis.call('HSET', jk, 'ctl', '1', unpack(control))
      elseif #control > 0 then redis.call('HSET', jk, unpack(control)) end
      if st == 'deferred' then
        -- waits for its parents (depend.lua, resolve.lua); not backlog until then
        redis.call('ZADD', base .. 'deferred', NOWS, id)
      else
        adds[#adds + 1] = score
        adds[#adds + 1] = id
        if #adds >= 2000 then flush(zkey) end
        if st == 'queued' then woken = woken + 1 elseif st == 'scheduled' then scheduled = 1 end
      end
      mine[id] = true
      out[#out + 1] = 1
      ix_add(base, payload, id, control.tags)  -- [search index]
    end
  end
  flush(zkey)
end
ix_flush(base)  -- [search index]
-- a job for later wakes one idle worker, whose fetch learns when it falls due (idle
-- workers no longer poll: worker/idle.py); it wakes the others then, if they are needed
wake(q.wake, woken > 0 and woken or scheduled)
if receipt then
  local flags = {}
  for i = 1, #out do flags[i] = out[i] == 1 and '1' or (out[i] == 0 and '0' or '-') end
  redis.call('SET', receipt_key, table.concat(flags), 'EX', tostring(RESEND_WINDOW))
end
return out
