-- One call of a debounced or singleton task (docs/patterns.md), decided and written in one
-- step on the queue's slot. <base>flow:<key> holds the id of the newest job of the key; a
-- job made here carries flow = <key> and the marker 'o' in cb, so its end, by any path
-- (ack, dead letter, cancel, abort, expiry: note_end in _prelude.lua; purge.lua), deletes the
-- key if it still names that job. A key whose job ended or vanished otherwise counts as free.
-- KEYS: the queue's 8 keys.
-- ARGV: base, mode, key, window_ms, max_ms, token, then the job as enqueue.lua lays it out:
--   id, payload, priority, due, max_deliveries, result_ttl, control (JSON or "").
-- mode: debounce (start window_ms after the last call, at most max_ms after the first: 0 =
--   no bound), skip, replace, keep_latest, cancel_running.
-- Returns {created, id}: created 1 when this call wrote a new job (id is the call's own), 0
-- when it joined the key's job (id is that job: its arguments are now this call's, except
-- for skip, which changes nothing), -1 when the control fields are malformed.
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
local base, mode, fkey = ARGV[1], ARGV[2], ARGV[3]
local window, max_ms, token = tonumber(ARGV[4]) or 0, tonumber(ARGV[5]) or 0, ARGV[6]
local id, payload, priority, due = ARGV[7], ARGV[8], ARGV[9], ARGV[10]
local max_deliveries, result_ttl, raw = ARGV[11], ARGV[12], ARGV[13]
check_enqueue(q, base)
local key = base .. 'flow:' .. fkey
local LIVE = {queued = true, scheduled = true, active = true, waiting = true, sleeping = true,
  batched = true}
local cur = redis.pcall('GET', key)
if type(cur) ~= 'string' then cur = nil end
local cf = cur and job_fields(base .. 'job:' .. cur, 'status', 'deliveries', 'lapsed', 'sent',
  'flow_first', 'cl_key', 'flow', 'result_ttl', 'fk')
if cf and cf[7] ~= fkey then cf = nil end  -- not a job of this key (written by hand?)
local status = cf and cf[1]
if cf and cf[4] == token then return {1, cur} end  -- an earlier send of this call wrote it
local live = status and LIVE[status] and true or false
-- not started: waiting for its time, its turn or a slot, never delivered
local waiting = live and not cf[3] and (int(cf[2]) or 0) == 0 and status ~= 'active'

-- The key's waiting job takes this call's arguments (and, debounced, its start moves).
local function join()
  local jk = base .. 'job:' .. cur
  redis.call('HSET', jk, 'payload', payload)
  redis.call('HINCRBY', jk, 'flow_joined', 1)
  if mode == 'debounce' then
    local at = NOW + window
    local first = int(cf[5]) or NOW
    if max_ms > 0 and at > first + max_ms then at = first + max_ms end
    if status == 'queued' then
      redis.call('ZREM', q.ready, cur)
      fair_forget(base, cur, cf[9])
    end
    if status == 'waiting' and cf[6] then redis.call('ZREM', base .. 'waiting:' .. cf[6], cur) end
    redis.call('HSET', jk, 'status', 'scheduled')
    redis.call('ZADD', q.delayed, string.format('%d', at), cur)
  end
  return {0, cur}
end

-- A running job of the key is aborted as abort.lua aborts one: it ends 'aborted' at once and
-- its worker stops the attempt at its next heartbeat; the attempt keeps its lease and its
-- slot (the new job waits for that slot) until it has stopped.
local function abort_running(jk)
  if status == 'queued' then  -- lapsed: its worker may still run it
    redis.call('ZREM', q.ready, cur)
    fair_forget(base, cur, cf[9])
    redis.call('ZADD', q.active, NOWS, cur)
    redis.call('HDEL', jk, 'lapsed')
  end
  redis.call('HSET', jk, 'status', 'aborted', 'finished_at', NOWS,
    'reason', 'aborted by a newer call of its singleton key (cancel_running): ' .. id)
  notify_done(base, cur, cf[8] or RESULT_TTL)
  note_end(base, cur, jk, 'aborted')
end

if mode == 'skip' and live then return {0, cur} end
if mode ~= 'skip' and waiting and (mode ~= 'debounce' or status ~= 'waiting' or cf[6]) then
  return join()
end
if mode == 'cancel_running' and live then abort_running(base .. 'job:' .. cur) end

-- A new job, as enqueue.lua writes one, with its control fields.
local control = {}
local cb = 'o'
local fair = nil -- the job's fairness key: a ready job takes its key's turn (_fair.lua)
if raw ~= '' then
  local ok, c = pcall(cjson.decode, raw)
  if not ok or type(c) ~= 'table' then return {-1, id} end
  for k, v in pairs(c) do
    if k == 'expires' then
      local okd, at = pcall(due_at, tostring(v))
      if not okd or not at then return {-1, id} end
      control[#control + 1] = 'expires_at'
      control[#control + 1] = string.format('%d', math.floor(at))
    elseif (k == 'rl_key' or k == 'cl_key' or k == 'on_success' or k == 'on_failure') and
        type(v) == 'string' then
      control[#control + 1] = k
      control[#control + 1] = v
      if k == 'on_success' then cb = cb .. 's' elseif k == 'on_failure' then cb = cb .. 'f' end
    elseif k == 'fk' and type(v) == 'string' and #v >= 1 and #v <= 200 then  -- fair key
      control[#control + 1] = k
      control[#control + 1] = v
      fair = v
    elseif (k == 'rl_n' or k == 'rl_ms' or k == 'rl_b' or k == 'cl_n') and int(v) then
      control[#control + 1] = k
      control[#control + 1] = v
    else
      return {-1, id}
    end
  end
end
if mode == 'keep_latest' or mode == 'cancel_running' then
  -- one run at a time per key: a concurrency slot of its own (the client refuses a task's
  -- concurrency_limit with these modes)
  control[#control + 1] = 'cl_key'
  control[#control + 1] = 'flow:' .. fkey
  control[#control + 1] = 'cl_n'
  control[#control + 1] = '1'
end
local jk = base .. 'job:' .. id
local old = job_fields(jk, 'status', 'sent', 'enqueued_at')
if not old then
  redis.call('RENAME', jk, base .. 'garbage:' .. id)
elseif old[1] then
  if LIVE[old[1]] or old[1] == 'deferred' or handing_off(base, id) then return {0, id} end
  redis.call('DEL', jk, base .. 'done:' .. id)
  redis.call('ZREM', q.dead, id)
  keep_receipt(base, old[2], old[3])
end
local st, zkey, score = 'queued', q.ready, ready_score(priority, NOW)
local run_at = due_at(due)
if mode == 'debounce' then run_at = NOW + window end
if run_at > NOW then st, zkey, score = 'scheduled', q.delayed, run_at end
redis.call('HSET', jk, 'payload', payload, 'priority', priority, 'status', st,
  'enqueued_at', NOWS, 'deliveries', '0', 'attempts', '0', 'lease', '0',
  'max_deliveries', max_deliveries, 'result_ttl', result_ttl, 'sent', token,
  'flow', fkey, 'flow_mode', mode, 'flow_first', NOWS, 'ctl', '1', 'cb', cb, unpack(control))
if zkey == q.ready then
  make_ready(q, base, id, string.format('%d', score), fair)
else
  redis.call('ZADD', zkey, string.format('%d', score), id)
end
redis.call('SET', key, id)
index(base .. 'flows', NOWS, fkey)  -- counted by stats.lua
ix_add(base, payload, id, nil)  -- [search index]
ix_flush(base)
wake(q.wake, 1)
return {1, id}
