-- End a running attempt to sleep or wait durably (kubeq.sleep, kubeq.wait_for;
-- docs/durable.md), fenced by its lease token. The job leaves 'active' and frees its
-- concurrency slot without counting an attempt or a delivery, and becomes 'sleeping': in
-- the sleeping index (score: when it wakes, FOREVER for a wait without timeout), with its
-- timer in the delayed set (fetch.lua promotes it when due, like a retry), and for a wait
-- in the waiters of its signal key. A job that started in time never expires, so its
-- expires_at is dropped. A wait whose signal is already there (sent before it waited, kept
-- for its TTL) does not suspend: its step is recorded and the payload returned at once; a
-- wait resumed by its timeout records that and returns it.
-- KEYS: the queue's 8 keys. ARGV: base, id, lease, kind ('sleep' or 'wait'), step name,
-- due ('+ms' after a delay, '' for none), signal key (for a wait), max bytes per job.
-- Returns {1} suspended, {2, record} the wait's record (it returns now), {0} refused (the
-- attempt no longer holds the job), {-1} the job's steps would pass the total cap.
local q = queue_keys(0)
local base, id, lease, kind, name = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local due, key, total = ARGV[6], ARGV[7], int(ARGV[8]) or 0
if kind ~= 'sleep' and kind ~= 'wait' then
  error('kubeq: suspend.lua suspends for a sleep or a wait, not ' .. tostring(kind))
end
check_queue(q, base)
local jk = base .. 'job:' .. id
local f = job_fields(jk, 'status', 'lease', 'lapsed', 'cl_key', 'cl_n', 'steps_bytes',
  'wait_step', 'fk')
if not f or not holds(lease, f[1], f[2], f[3]) then return {0} end
local field = 'step:' .. name
local used = int(f[6]) or 0
local function record(value)
  if used + #value > total then return false end
  redis.call('HSET', jk, field, value, 'steps_bytes', used + #value)
  return true
end
if kind == 'wait' then
  local sig = base .. 'signal:' .. key
  local payload = redis.pcall('GET', sig)
  if type(payload) ~= 'string' then
    payload = redis.pcall('LPOP', sig .. ':one')
    if type(payload) ~= 'string' then payload = nil end
  end
  local rec = nil
  if payload then rec = '{"signal":' .. payload .. '}'
  elseif f[7] == name then rec = '{"timeout":true}' end -- resumed by its timeout
  if rec then
    if not record(rec) then return {-1} end
    return {2, rec}
  end
end
local FOREVER = '9000000000000000'
local score = FOREVER
if due ~= '' then score = string.format('%d', due_at(due)) end
if kind == 'sleep' then
  -- recorded now: a sleeping job runs again only once it is due
  if not record('{"until":' .. score .. '}') then return {-1} end
end
if f[1] == 'queued' then -- lapsed under this token: out of the ready set and its key's turn
  redis.call('ZREM', q.ready, id)
  fair_forget(base, id, f[8])
end
redis.call('ZREM', q.active, id)
release_slot(q, base, id, f[4], f[5])
redis.call('HINCRBY', jk, 'deliveries', -1)
redis.call('HSET', jk, 'status', 'sleeping', 'wait_step', name, 'slept_at', NOWS)
redis.call('HDEL', jk, 'lapsed', 'expires_at', 'signal', 'sleep_until')
if score ~= FOREVER then
  redis.call('HSET', jk, 'sleep_until', score)
  redis.call('ZADD', q.delayed, score, id)
  wake(q.wake, 1) -- an idle worker learns when it falls due
end
redis.call('ZADD', base .. 'sleeping', score, id)
if kind == 'wait' then
  redis.call('HSET', jk, 'signal', key)
  redis.call('ZADD', base .. 'waiters:' .. key, NOWS, id)
end
return {1}
