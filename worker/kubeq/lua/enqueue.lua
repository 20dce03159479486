-- Enqueue n jobs into one queue in one round trip.
-- KEYS: the queue's 8 keys. ARGV: base, n, then per job:
--   id, payload, priority, due ("0" now, "+ms" after a delay on the server's clock,
--   or "ms" since the epoch), max_deliveries, result_ttl, control (JSON of the job's
--   execution-control fields, or "": rl_key rl_n rl_ms rl_b, cl_key cl_n, expires "+ms"/"ms";
--   on_success / on_failure (a callback's JSON, stored as is, with the marker cb = 's', 'f'
--   or 'sf' that ack.lua reads); once (true: an id that exists in any state, even ended, is
--   a duplicate: a callback's hand-off redone after a crash); deps (N > 0: the job waits,
--   status 'deferred', until N parents resolved it, resolve.lua); allow_failure; laid out by
--   kubeq/enqueue.py, control_fields)
-- Returns one flag per job: 1 = enqueued, 0 = a live job with that id exists (de-duplicated;
-- so is an ended one whose hand-off, handoff.py, is still under way),
-- -1 = its control fields are malformed (nothing written for it).
local q = queue_keys(0)
local base = ARGV[1]
local n = tonumber(ARGV[2])
check_enqueue(q, base)
local out = {}
local woken = 0
for i = 0, n - 1 do
  local o = 3 + i * 7
  local id = ARGV[o]
  local jk = base .. 'job:' .. id
  local control = {}
  local once, cb, deps = false, '', 0
  if ARGV[o + 6] ~= '' then
    local ok, c = pcall(cjson.decode, ARGV[o + 6])
    if not ok or type(c) ~= 'table' then control = nil
    else
      for k, v in pairs(c) do
        if k == 'expires' then
          local okd, at = pcall(due_at, tostring(v))
          if not okd or not at then control = nil; break end
          control[#control + 1] = 'expires_at'
          control[#control + 1] = math.floor(at)
        elseif (k == 'rl_key' or k == 'cl_key') and type(v) == 'string' then
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
        elseif k == 'allow_failure' and v == true then
          control[#control + 1] = 'allow_failure'
          control[#control + 1] = '1'
        else
          control = nil
          break
        end
      end
    end
  end
  local f = control and job_fields(jk, 'status')
  if control and not f then
    -- garbage under this id's key (written by hand?): keep it aside, enqueue the new job
    redis.call('RENAME', jk, base .. 'garbage:' .. id)
    f = {false}
  end
  local status = f and f[1]
  if not control then
    out[#out + 1] = -1
  elseif status == 'queued' or status == 'scheduled' or status == 'active' or
      status == 'waiting' or status == 'deferred' or (once and status) or
      (status and handing_off(base, id)) then
    out[#out + 1] = 0
  else
    if status then
      -- a finished, failed or cancelled job of the same id is replaced by the new one
      redis.call('DEL', jk, base .. 'done:' .. id)
      redis.call('ZREM', q.dead, id)
    end
    local run_at = due_at(ARGV[o + 3])
    local st = 'queued'
    if deps > 0 then st = 'deferred'
    elseif run_at > NOW then st = 'scheduled' end
    redis.call('HSET', jk, 'payload', ARGV[o + 1], 'priority', ARGV[o + 2], 'status', st,
      'enqueued_at', NOW, 'deliveries', 0, 'attempts', 0, 'lease', 0,
      'max_deliveries', ARGV[o + 4], 'result_ttl', ARGV[o + 5])
    if cb ~= '' then
      control[#control + 1] = 'cb'
      control[#control + 1] = cb
    end
    if #control > 0 then redis.call('HSET', jk, 'ctl', '1', unpack(control)) end
    if st == 'deferred' then
      -- waits for its parents (depend.lua, resolve.lua); not backlog until then
      redis.call('ZADD', base .. 'deferred', NOW, id)
    elseif st == 'scheduled' then
      redis.call('ZADD', q.delayed, run_at, id)
    else
      redis.call('ZADD', q.ready, ready_score(ARGV[o + 2], NOW), id)
      woken = woken + 1
    end
    out[#out + 1] = 1
  end
end
wake(q.wake, woken)
return out
