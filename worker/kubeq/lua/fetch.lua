-- Fetch up to `want` jobs for one worker from its queues, in priority order, in one round trip.
-- Before popping, each queue promotes due delayed jobs, reclaims expired leases (a worker
-- died or hung: the job is delivered again, or dead-lettered after max_deliveries) and
-- forgets workers whose heartbeat stopped.
-- KEYS: 8 keys per queue, queue after queue.
-- ARGV: worker, want, lease_ms, busy_before, worker_ttl_ms, nq, base_1 .. base_nq
-- Returns a flat list (parsed by kubeq/protocol.py): first the jobs still ready in the
-- unpaused queues after this fetch,
-- then 7 items per job:
--   queue_index (0-based), id, lease token, payload, attempts, ready_at_ms, deliveries
local worker = ARGV[1]
local want = tonumber(ARGV[2])
local lease_ms = tonumber(ARGV[3])
local busy = tonumber(ARGV[4])
local worker_ttl = tonumber(ARGV[5])
local nq = tonumber(ARGV[6])
for qi = 0, nq - 1 do check_queue(queue_keys(qi * 8), ARGV[7 + qi]) end
local out = {0}
local got = 0
local remaining = 0
for qi = 0, nq - 1 do
  local q = queue_keys(qi * 8)
  local base = ARGV[7 + qi]
  -- 1. promote delayed jobs that are due
  local due = redis.call('ZRANGEBYSCORE', q.delayed, '-inf', NOW, 'WITHSCORES', 'LIMIT', 0, 1000)
  for i = 1, #due, 2 do
    local id = due[i]
    local jk = base .. 'job:' .. id
    redis.call('ZREM', q.delayed, id)
    local f = job_fields(jk, 'status', 'priority')
    if not f or not valid_id(id) then
      bury(q, base, id, jk, 'malformed delayed entry: ' .. (f and 'invalid job id' or
        'its job key is not a hash'))
    elseif f[1] == 'scheduled' then
      redis.call('HSET', jk, 'status', 'queued')
      redis.call('ZADD', q.ready, ready_score(f[2], due[i + 1]), id)
    end
  end
  -- 2. reclaim expired leases
  local expired = redis.call('ZRANGEBYSCORE', q.active, '-inf', NOW, 'LIMIT', 0, 100)
  for _, id in ipairs(expired) do
    local jk = base .. 'job:' .. id
    redis.call('ZREM', q.active, id)
    local f = job_fields(jk, 'status', 'deliveries', 'max_deliveries', 'priority',
      'enqueued_at', 'worker', 'attempts')
    if not f or not valid_id(id) then
      bury(q, base, id, jk, 'malformed active entry: ' .. (f and 'invalid job id' or
        'its job key is not a hash'))
    elseif f[1] == 'active' then
      -- only deliveries that never came back count: acknowledged retries are attempts
      local lost = (int(f[2]) or 0) - (int(f[7]) or 0)
      if lost >= (int(f[3]) or 1) then
        bury(q, base, id, jk, 'delivered ' .. lost .. ' times without an acknowledgement ' ..
          '(the worker running it died or hung each time; last worker ' .. tostring(f[6]) ..
          '): a poison job?')
      else
        redis.call('HSET', jk, 'lease', (int(redis.call('HGET', jk, 'lease')) or 0) + 1,
          'status', 'queued', 'redelivered_from', tostring(f[6]))
        redis.call('ZADD', q.ready, ready_score(f[4], f[5]), id)
      end
    end
  end
  -- 3. forget workers whose heartbeat stopped
  local gone = redis.call('ZRANGEBYSCORE', q.workers, '-inf', NOW - worker_ttl)
  for _, w in ipairs(gone) do
    redis.call('ZREM', q.workers, w)
    redis.call('HDEL', q.busy, w)
  end
  -- 4. pop, highest priority first, oldest first within a priority
  if redis.call('EXISTS', q.paused) == 0 then
    local popped = {}
    if want > got then popped = redis.call('ZPOPMIN', q.ready, want - got) end
    for i = 1, #popped, 2 do
      local id = popped[i]
      local jk = base .. 'job:' .. id
      local f = job_fields(jk, 'status', 'payload', 'attempts', 'deliveries')
      -- validate everything this delivery needs before changing anything about it
      local bad = nil
      if not valid_id(id) then bad = 'invalid job id (not made by kubeq, written by hand?)'
      elseif not f then bad = 'its job key is not a hash (written by hand?)'
      elseif not f[1] then bad = 'no job data for this id in the ready set (written by hand?)'
      elseif f[1] == 'queued' then
        if not int(f[3] or '0') then bad = 'malformed job: attempts is not a number'
        elseif not int(f[4] or '0') then bad = 'malformed job: deliveries is not a number'
        end
      end
      if bad then
        bury(q, base, id, jk, bad)
      elseif f[1] == 'queued' then
        -- a token unique in the queue, for ever: a job id reused after its hash was replaced
        -- or expired can never hand a zombie's old token to a new owner
        local lease = redis.call('INCR', base .. 'leases')
        local deliveries = (int(f[4] or '0') or 0) + 1
        redis.call('HSET', jk, 'status', 'active', 'worker', worker, 'started_at', NOW,
          'lease', lease, 'deliveries', deliveries)
        redis.call('ZADD', q.active, NOW + lease_ms, id)
        local ready_at = tonumber(popped[i + 1]) % BAND
        out[#out + 1] = qi
        out[#out + 1] = id
        out[#out + 1] = lease
        out[#out + 1] = f[2] or ''
        out[#out + 1] = int(f[3] or '0')
        out[#out + 1] = ready_at
        out[#out + 1] = deliveries
        got = got + 1
      end
      -- any other status (cancelled, finished) is a stale entry: dropped
    end
    remaining = remaining + redis.call('ZCARD', q.ready)
  end
end
out[1] = remaining
for qi = 0, nq - 1 do
  local q = queue_keys(qi * 8)
  redis.call('ZADD', q.workers, NOW, worker)
  redis.call('HSET', q.busy, worker, busy + got)
end
return out
