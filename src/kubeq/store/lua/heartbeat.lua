-- A worker's heartbeat on one queue: it is alive, holds `busy` jobs, and extends the lease
-- of each job it still holds (docs/architecture.md, Guarantees: a lease token holds its job
-- until the job is delivered again or ends, so a heartbeat that comes after the lease
-- expired takes a lapsed job back). It also extends the leases of the jobs its fetches
-- leased whose reply it has not read yet (the transit log, fetch.lua), so a reply slower
-- than the lease is not taken over on the way.
-- Returns the ids of the jobs it no longer holds: delivered to another worker, ended, or,
-- written '!' .. id, aborted (job.abort(): the worker stops the attempt, and renews the
-- aborted attempt's lease until it has stopped, so its concurrency slot stays taken).
-- The most frequent script of a busy fleet, so it checks only the keys it writes, and only
-- when Redis refuses a write (a refused write changes nothing): presence keys of the wrong
-- type are rebuilt, and the job sets are checked before a lapsed job is taken back (a
-- change of two sets) or when a renewal is refused (the check says what to fix). The
-- queue's other keys are the fetch's to check (check_queue).
-- KEYS: the queue's 8 keys.
-- ARGV: base, worker, busy, lease_ms, answered, then id, lease pairs. answered: the last
-- fetch whose reply the worker has read (or given up on); '-1' skips the transit log (the
-- worker sends it when no fetch of its is unanswered: the log holds nothing to renew).
local q = queue_keys(0)
local base, worker, busy, lease_ms = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local answered = ARGV[5]
local lease_until = string.format('%d', NOW + lease_ms)
local function refused(reply)
  return type(reply) == 'table' and reply.err ~= nil
end
present('ZADD', q.workers, NOW, worker)
present('HSET', q.busy, worker, busy)
local checked = false
local function check_sets()
  if not checked then
    require_zsets({q.ready, q.active}, base)
    checked = true
  end
end
local function renew(id)
  local reply = redis.pcall('ZADD', q.active, 'XX', lease_until, id)
  if refused(reply) then
    check_sets() -- raises what to fix when the active set holds another type
    error(reply)
  end
end
local function back(jk, id)
  check_sets()
  take_back(q, jk, id, lease_until)
end
local gone = {}
for i = 6, #ARGV, 2 do
  local id, token = ARGV[i], ARGV[i + 1]
  local jk = base .. 'job:' .. id
  local f = job_fields(jk, 'status', 'lease', 'lapsed')
  if f and holds(token, f[1], f[2], f[3]) then
    if f[1] == 'queued' then
      back(jk, id)
    else
      renew(id)
    end
  elseif f and f[1] == 'aborted' and f[2] == token then
    -- an aborted attempt still running: its slot stays taken until it stops
    renew(id)
    gone[#gone + 1] = '!' .. id
  else
    -- an aborted job's id comes back as '!' .. id ('!' is never in a job id)
    gone[#gone + 1] = (f and f[1] == 'aborted') and ('!' .. id) or id
  end
end
if answered ~= '-1' then
  local transit = base .. 'transit:' .. worker
  if refused(redis.pcall('ZREMRANGEBYSCORE', transit, '-inf', answered)) then
    redis.call('DEL', transit) -- not a log: nothing in it can be renewed
  end
  -- one member per fetch: the ids it leased, space-separated (fetch.lua)
  for _, leased in ipairs(redis.call('ZRANGE', transit, 0, -1)) do
    for id in string.gmatch(leased, '[^ ]+') do
      local jk = base .. 'job:' .. id
      local f = job_fields(jk, 'status', 'lease', 'lapsed', 'worker')
      if f and f[4] == worker then
        if f[1] == 'active' then
          renew(id)
        elseif f[1] == 'queued' and f[3] and f[3] == f[2] then
          back(jk, id)
        end
      end
    end
  end
end
return gone
