-- Deliver a signal (app.signal, kubeq signal; docs/durable.md) on one queue: each job of
-- the queue waiting on the key (kubeq.wait_for) gets the payload recorded as its wait's step
-- and goes back to the ready set. mode 'all': every waiter wakes, and the payload is kept
-- for ttl seconds (0: not kept), so a job that waits on the key later gets it at once.
-- mode 'one': the oldest waiter wakes; with none, the payload is kept for ttl seconds in a
-- list and taken by the first job that waits (one job per signal).
-- KEYS: the queue's 8 keys. ARGV: base, key, payload JSON, ttl seconds, mode.
-- Returns the number of jobs woken.
local q = queue_keys(0)
local base, key, payload, ttl, mode = ARGV[1], ARGV[2], ARGV[3], int(ARGV[4]), ARGV[5]
if mode ~= 'all' and mode ~= 'one' then
  error('kubeq: a signal mode is all or one, not ' .. tostring(mode))
end
check_queue(q, base)
local waiters = base .. 'waiters:' .. key
repair(waiters, 'zset')
local rec = '{"signal":' .. payload .. '}'
local woken = 0
for _, id in ipairs(redis.call('ZRANGE', waiters, 0, -1)) do
  local jk = base .. 'job:' .. id
  local f = job_fields(jk, 'status', 'signal', 'wait_step', 'priority', 'steps_bytes', 'fk')
  if f and f[1] == 'sleeping' and f[2] == key and f[3] then
    redis.call('HSET', jk, 'step:' .. f[3], rec, 'steps_bytes', (int(f[5]) or 0) + #rec,
      'status', 'queued')
    redis.call('ZREM', q.delayed, id)
    unsleep(base, id, jk)
    make_ready(q, base, id, ready_score(f[4], NOW), f[6]) -- a fair key's job takes its turn
    woken = woken + 1
    if mode == 'one' then break end
  else
    redis.call('ZREM', waiters, id) -- it no longer waits on this key
  end
end
local kept = base .. 'signal:' .. key
if mode == 'all' then
  if ttl and ttl > 0 then redis.call('SET', kept, payload, 'EX', ttl) end
elseif woken == 0 and ttl and ttl > 0 then
  repair(kept .. ':one', 'list')
  redis.call('RPUSH', kept .. ':one', payload)
  redis.call('EXPIRE', kept .. ':one', ttl)
end
wake(q.wake, woken)
return woken
