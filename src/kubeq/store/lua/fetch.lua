-- Fetch up to `want` jobs for one worker from its queues, in priority order, in one round trip.
-- Before popping, each queue promotes due delayed jobs, reclaims expired leases (a worker
-- died or hung: the job is delivered again, or dead-lettered after max_deliveries) and
-- forgets workers whose heartbeat stopped.
-- KEYS: 8 keys per queue, queue after queue.
-- ARGV: worker, want, lease_ms, busy_before, worker_ttl_ms, nq, base_1 .. base_nq, then
--   seq: this fetch's number among the worker's fetches ('0': none), its jobs are logged in
--     <base>transit:<worker> until the worker has its reply (heartbeat.lua renews them);
--   order: the token of this round trip's acks ('' when none), then the 0-based indexes of
--     the queues acked before this fetch in the same pipeline: unless each ack ran (it set
--     <base>order:<worker> to the token) the fetch changes nothing and fails KUBEQORDER, so
--     a resend after NOSCRIPT keeps the acks before the fetch.
-- Returns a flat list (parsed by kubeq/protocol.py): first the jobs still ready in the
-- unpaused queues after this fetch (not counting a queue its rate limit holds back), then
-- the ms until something held back may run (the next delayed job falls due or the queue's
-- rate allows a start; -1: nothing waits for a time), then 7 items per job:
--   queue_index (0-based), id, lease token, payload, attempts, ready_at_ms, deliveries
local worker = ARGV[1]
local want = tonumber(ARGV[2])
local lease_ms = tonumber(ARGV[3])
local lease_until = string.format('%d', NOW + lease_ms) -- one string for every lease
local busy = tonumber(ARGV[4])
local worker_ttl = tonumber(ARGV[5])
local nq = tonumber(ARGV[6])
local seq = ARGV[7 + nq] or '0'
local order = ARGV[8 + nq] or ''
for i = 9 + nq, #ARGV do
  local acked = redis.pcall('GET', ARGV[7 + tonumber(ARGV[i])] .. 'order:' .. worker)
  if acked ~= order then
    return redis.error_reply('KUBEQORDER an ack sent before this fetch has not run; ' ..
      'send both again in order')
  end
end
-- Before anything changes, each queue's sets are checked: the delayed and active sets by the
-- reads of due jobs and expired leases (made here, for every queue, before the first write),
-- the others by their type (_prelude.lua).
-- A popped job's fields: the 8 every delivery reads, then (a job with execution control,
-- 'ctl') its limits and expiry, 9 more. A field that is not there costs HMGET a scan of the
-- whole record, so the 9 are read only for a controlled job: in a second HMGET, or in the
-- first when the job popped before it was controlled too (a burst of one limited task).
-- The names are written out in each call (constants of the script, no table built per call).
local function fields_of(jk, all)
  if all then
    return job_fields(jk, 'status', 'payload', 'attempts', 'deliveries', 'ctl', 'lapsed',
      'worker', 'lease', 'expires_at', 'rl_key', 'rl_n', 'rl_ms', 'rl_b', 'rl_ok', 'cl_key',
      'cl_n', 'result_ttl')
  end
  return job_fields(jk, 'status', 'payload', 'attempts', 'deliveries', 'ctl', 'lapsed',
    'worker', 'lease')
end
local function limits_of(jk, f)
  local c = job_fields(jk, 'expires_at', 'rl_key', 'rl_n', 'rl_ms', 'rl_b', 'rl_ok', 'cl_key',
    'cl_n', 'result_ttl')
  for k = 1, 9 do f[8 + k] = c[k] end
end
-- The first of n lease tokens from the queue's counter. A counter that no longer counts (of
-- another type, or not a number) restarts above any token it can have issued, so tokens stay
-- unique.
local function lease_tokens(key, n)
  local last = redis.pcall('INCRBY', key, n)
  if type(last) ~= 'number' then
    redis.call('DEL', key)
    redis.call('SET', key, NOW * 1000)
    last = redis.call('INCRBY', key, n)
  end
  return last - n + 1
end
-- A controlled job's rate limit (fields 10 to 13: rl_key, rl_n, rl_ms, rl_b) as its limiter's
-- key and numbers, or false when malformed. Checked and parsed once per call and key (`seen`,
-- one per queue): the jobs of a burst of one task carry the same fields, and the next one is
-- only compared with them.
local function rate_of(seen, base, f)
  local c = seen[f[10]]
  if c and c[1] == f[11] and c[2] == f[12] and c[3] == f[13] then return c[4] end
  local n, ms, b = int(f[11]), int(f[12]), int(f[13])
  local lim = (n and ms and b and n > 0 and ms > 0 and b > 0) and
    {base .. 'rate:' .. f[10], n, ms, b} or false
  seen[f[10]] = {f[11], f[12], f[13], lim}
  return lim
end
local due_of, expired_of = {}, {}
for qi = 0, nq - 1 do
  local q, base = queue_keys(qi * 8), ARGV[7 + qi]
  due_of[qi] = zset_read(q.delayed, base, 'ZRANGEBYSCORE', '-inf', NOW, 'WITHSCORES',
    'LIMIT', 0, 1000)
  expired_of[qi] = zset_read(q.active, base, 'ZRANGEBYSCORE', '-inf', NOW, 'LIMIT', 0, 100)
  require_zsets({q.ready, q.dead}, base)
  require_fair(base)
end
local out = {0, -1}
local got = 0
local remaining = 0
local wait = -1
for qi = 0, nq - 1 do
  local q = queue_keys(qi * 8)
  local base = ARGV[7 + qi]
  local moved = 0 -- made ready here (promoted, reclaimed): idle workers are woken for them
  -- 1. promote delayed jobs that are due
  local due = due_of[qi]
  for i = 1, #due, 2 do
    local id = due[i]
    local jk = base .. 'job:' .. id
    redis.call('ZREM', q.delayed, id)
    local f = job_fields(jk, 'status', 'priority', 'fk')
    if not f or not valid_id(id) then
      bury(q, base, id, jk, 'malformed delayed entry: ' .. (f and 'invalid job id' or
        'its job key is not a hash'))
    elseif f[1] == 'scheduled' or f[1] == 'sleeping' then
      if f[1] == 'sleeping' then unsleep(base, id, jk) end -- its sleep or wait timed out
      redis.call('HSET', jk, 'status', 'queued')
      make_ready(q, base, id, ready_score(f[2], due[i + 1]), f[3])
      moved = moved + 1
    end
  end
  -- 2. expired leases lapse: the job goes back to the ready set and keeps its lease token
  -- and concurrency slot, so its holder's late heartbeat or outcome still counts until a
  -- fetch delivers it again (or it is buried as poison: max_deliveries lost)
  local expired = expired_of[qi]
  for _, id in ipairs(expired) do
    local jk = base .. 'job:' .. id
    redis.call('ZREM', q.active, id)
    local f = job_fields(jk, 'status', 'deliveries', 'max_deliveries', 'priority',
      'enqueued_at', 'worker', 'attempts', 'cl_key', 'cl_n', 'lease', 'result_ttl', 'fk')
    if not f or not valid_id(id) then
      bury(q, base, id, jk, 'malformed active entry: ' .. (f and 'invalid job id' or
        'its job key is not a hash'))
    elseif f[1] == 'aborted' then
      -- an aborted attempt whose worker stopped renewing it: it no longer runs
      aborted_stopped(q, base, id, jk, f[8], f[9], f[11])
    elseif f[1] == 'active' then
      -- only deliveries that never came back count: acknowledged retries are attempts
      local lost = (int(f[2]) or 0) - (int(f[7]) or 0)
      if lost >= (int(f[3]) or 5) then -- no field: the default, 5
        release_slot(q, base, id, f[8], f[9])
        bury(q, base, id, jk, 'delivered ' .. lost .. ' times without an acknowledgement ' ..
          '(the worker running it died or hung each time; last worker ' .. tostring(f[6]) ..
          '): a poison job?')
      else
        redis.call('HSET', jk, 'status', 'queued', 'lapsed', f[10] or '',
          'redelivered_from', tostring(f[6]))
        make_ready(q, base, id, ready_score(f[4], f[5]), f[12])
        moved = moved + 1
      end
    end
  end
  -- 3. forget workers whose heartbeat stopped
  -- (presence data: a key of another type is dropped, written again at the end of the call)
  local gone = redis.pcall('ZRANGEBYSCORE', q.workers, '-inf', NOW - worker_ttl)
  if gone.err then
    redis.call('DEL', q.workers)
    gone = {}
  end
  for _, w in ipairs(gone) do
    redis.call('ZREM', q.workers, w)
    present('HDEL', q.busy, w)
  end
  -- 4. pop, highest priority first, oldest first within a priority; a job its limits hold
  -- back is parked where it waits without polling (docs/architecture.md, Execution
  -- control): a rate-limited one in the delayed set at the time it may start, a
  -- concurrency-limited one in its key's waiting set until a slot frees; an expired one ends
  if redis.call('EXISTS', q.paused) == 0 then
    local qrl = queue_rate(base)
    local allow, qtat, qwait = want, NOW, 0
    if qrl then allow, qtat, qwait = rate_allowance(base .. 'rate', qrl[1], qrl[2], qrl[3]) end
    local taken, scanned = 0, 0
    local tokens, next_token = 0, 0
    local leased = {}
    local wide = false  -- the job popped before was controlled: read all of the next one's
    local rates = {}  -- rate_of's
    -- a budget of pops per call: jobs parked by their limits do not count against `want`,
    -- so one call moves a large backlog of rate-limited jobs to their slots at once
    while got < want and taken < allow and scanned < want + 1000 do
      local n = math.min(want - got, allow - taken)
      local popped = fair_pop(q, base, n) -- ZPOPMIN, fair among keys (_fair.lua)
      if #popped == 0 then break end
      for i = 1, #popped, 2 do
        scanned = scanned + 1
        local id = popped[i]
        local jk = base .. 'job:' .. id
        -- a job with execution control ('ctl') has its limits read (fields_of, above); a
        -- lapsed job started in time and holds its slot: its limits were applied then, and
        -- are not read (nor those of a job without control, when read with the first HMGET)
        local f = fields_of(jk, wide)
        local lapsed = f and f[1] == 'queued' and f[6]
        if f and f[5] and not lapsed then
          if not wide then limits_of(jk, f) end
        elseif f and wide then
          for k = 9, 17 do f[k] = nil end
        end
        wide = (f and f[5]) and true or false
        -- validate everything this delivery needs before changing anything about it
        local bad = nil
        if not valid_id(id) then bad = 'invalid job id (not made by kubeq, written by hand?)'
        elseif not f then bad = 'its job key is not a hash (written by hand?)'
        elseif not f[1] then bad = 'no job data for this id in the ready set (written by hand?)'
        elseif f[1] == 'queued' then
          if f[3] and not int(f[3]) then bad = 'malformed job: attempts is not a number'
          elseif f[4] and not int(f[4]) then bad = 'malformed job: deliveries is not a number'
          elseif f[10] and not rate_of(rates, base, f) then bad = 'malformed job: bad rate limit'
          elseif f[15] and not ((int(f[16]) or 0) > 0) then
            bad = 'malformed job: bad concurrency limit'
          end
        end
        local ready_at = tonumber(popped[i + 1]) % BAND
        local due = 0
        if bad then
          bury(q, base, id, jk, bad)
        elseif f[1] ~= 'queued' then
          -- any other status (cancelled, finished, aborted) is a stale entry: dropped
        elseif lapsed then
          due = 0 -- delivered again below, whatever its limits and expiry
        elseif int(f[9]) and NOW > int(f[9]) then
          expire_job(base, id, jk, f[17])
          due = -1
        else
          if f[10] then
            local lim = rate_of(rates, base, f)
            due = rate_check(lim[1], lim[2], lim[3], lim[4], f[14], q.delayed)
          end
          if due > 0 then
            redis.call('HSET', jk, 'status', 'scheduled', 'rl_ok', '1')
            redis.call('ZADD', q.delayed, due, id)
            note_throttled(base, due - NOW)
          elseif f[15] and not take_slot(base, id, f[15], f[16], q.active) then
            redis.call('HSET', jk, 'status', 'waiting')
            if f[14] then redis.call('HDEL', jk, 'rl_ok') end
            park_waiting(base, f[15], popped[i + 1], id)
            due = -1
          end
        end
        if not bad and f[1] == 'queued' and due == 0 then
          local lease, deliveries
          if lapsed and f[7] == worker and int(f[8]) then
            -- back to the worker that holds its lease (its heartbeat came late): the same
            -- lease and delivery, so the run in progress there goes on as it was
            lease, deliveries = f[8], f[4] and int(f[4]) or 0
            redis.call('HSET', jk, 'status', 'active')
          else
            -- a token unique in the queue, for ever: a job id reused after its hash was
            -- replaced or expired can never hand a zombie's old token to a new owner
            -- (tokens are reserved for the whole call at once: one INCRBY, not one per job)
            if tokens == 0 then
              tokens = want - got
              next_token = lease_tokens(base .. 'leases', tokens)
            end
            lease = string.format('%d', next_token)
            next_token, tokens = next_token + 1, tokens - 1
            deliveries = (f[4] and int(f[4]) or 0) + 1
            redis.call('HSET', jk, 'status', 'active', 'worker', worker, 'started_at', NOWS,
              'lease', lease, 'deliveries', deliveries == 1 and '1' or string.format('%d', deliveries))
            if f[14] then redis.call('HDEL', jk, 'rl_ok') end
          end
          if lapsed then redis.call('HDEL', jk, 'lapsed') end
          leased[#leased + 1] = lease_until
          leased[#leased + 1] = id
          out[#out + 1] = qi
          out[#out + 1] = id
          out[#out + 1] = lease
          out[#out + 1] = f[2] or ''
          out[#out + 1] = f[3] and int(f[3]) or 0
          out[#out + 1] = ready_at
          out[#out + 1] = deliveries
          got = got + 1
          taken = taken + 1
        end
      end
    end
    -- every lease of this queue in one ZADD (the list stays far below Lua's unpack limit)
    if #leased > 0 then redis.call('ZADD', q.active, unpack(leased)) end
    if seq ~= '0' then
      -- the transit log: what this fetch leased, until the worker has read the reply
      local transit = base .. 'transit:' .. worker
      present('ZREMRANGEBYSCORE', transit, '-inf', '(' .. seq)
      if #leased > 0 then
        -- one member per fetch, its ids space-separated (valid_id: no id has a space): a
        -- member per job made each ZADD scan the log's listpack, a fifth of a drain's work
        local ids = {}
        for k = 2, #leased, 2 do ids[k / 2] = leased[k] end
        redis.call('ZADD', transit, seq, table.concat(ids, ' '))
        redis.call('PEXPIRE', transit, worker_ttl)
      end
    end
    local ready = redis.call('ZCARD', q.ready)
    if moved > 0 and ready > 0 then wake(q.wake, math.min(moved, ready)) end
    if qrl and taken > 0 then
      local T = qrl[2] / qrl[1]
      qtat = qtat + taken * T
      set_num(base .. 'rate', qtat)
      qwait = math.ceil(qtat - (qrl[3] - 1) * T - NOW)
    end
    if qrl and taken >= allow and ready > 0 then
      -- held back by the queue's rate: not "remaining" (that would make workers spin)
      if qwait < 1 then qwait = 1 end
      if wait < 0 or qwait < wait then wait = qwait end
      note_throttled(base, qwait)
    else
      remaining = remaining + ready
    end
  end
  -- when the next delayed job of this queue falls due (the worker sleeps until then)
  local nxt = redis.call('ZRANGE', q.delayed, 0, 0, 'WITHSCORES')
  if #nxt > 0 then
    local w = math.max(1, math.ceil(tonumber(nxt[2]) - NOW))
    if wait < 0 or w < wait then wait = w end
  end
end
flush_rates()
out[1] = remaining
out[2] = wait
for qi = 0, nq - 1 do
  local q = queue_keys(qi * 8)
  present('ZADD', q.workers, NOW, worker)
  present('HSET', q.busy, worker, busy + got)
  -- a worker that got nothing blocks on the wake lists next: one of another type is dropped
  if got == 0 then repair(q.wake, 'list') end
end
return out
