-- The flow patterns' numbers of one queue (docs/patterns.md), for `kubeq stats`, the
-- dashboard and the operator's metrics. It reads the indexes flow.lua and batch.lua write
-- ({q}:flows: keys that named a job; {q}:batches: batch jobs opened) and drops each member
-- that is no longer live, so an index holds the live ones and those ended since the last
-- read. At most ARGV[1] members of each are read per call (the oldest first).
-- KEYS: the queue's 8 keys. ARGV: the most members to read of each index.
-- Returns: debounced (jobs of a debounce key not started yet), debounce_running (started),
--   singleton_keys (singleton keys held by a live job), batches_forming (open, not full nor
--   due), batches_closed (full or due: waiting for a worker, or running), batched_items
--   (items of those batches not settled yet), capped (1 when an index held more members
--   than were read: the numbers are then a lower bound).
local q = queue_keys(0)
local base = string.sub(q.ready, 1, #q.ready - 5)
local most = tonumber(ARGV[1]) or 5000
local LIVE = {queued = true, scheduled = true, active = true, waiting = true, sleeping = true,
  batched = true}
local out = {0, 0, 0, 0, 0, 0, 0}
local function members(k)
  local t = redis.call('TYPE', k)['ok']
  if t ~= 'zset' then
    if t ~= 'none' then redis.call('DEL', k) end
    return {}
  end
  if redis.call('ZCARD', k) > most then out[7] = 1 end
  return redis.call('ZRANGE', k, 0, most - 1)
end
local stale = {}
for _, fkey in ipairs(members(base .. 'flows')) do
  local id = redis.pcall('GET', base .. 'flow:' .. fkey)
  local f = type(id) == 'string' and job_fields(base .. 'job:' .. id, 'status', 'deliveries',
    'lapsed', 'flow', 'flow_mode')
  if f and LIVE[f[1]] and f[4] == fkey then
    if f[5] ~= 'debounce' then
      out[3] = out[3] + 1
    elseif f[1] ~= 'active' and not f[3] and (int(f[2]) or 0) == 0 then
      out[1] = out[1] + 1
    else
      out[2] = out[2] + 1
    end
  else
    stale[#stale + 1] = fkey
  end
end
for i = 1, #stale, 1000 do
  redis.call('ZREM', base .. 'flows', unpack(stale, i, math.min(i + 999, #stale)))
end
stale = {}
for _, carrier in ipairs(members(base .. 'batches')) do
  local f = job_fields(base .. 'job:' .. carrier, 'status')
  if f and LIVE[f[1]] then
    if f[1] == 'scheduled' then out[4] = out[4] + 1 else out[5] = out[5] + 1 end
    local ids = redis.pcall('LRANGE', base .. 'items:' .. carrier, 0, -1)
    if type(ids) == 'table' and not ids.err then
      for _, item in ipairs(ids) do
        local s = job_fields(base .. 'job:' .. item, 'status', 'batch')
        if s and s[1] == 'batched' and s[2] == carrier then out[6] = out[6] + 1 end
      end
    end
  else
    stale[#stale + 1] = carrier
  end
end
for i = 1, #stale, 1000 do
  redis.call('ZREM', base .. 'batches', unpack(stale, i, math.min(i + 999, #stale)))
end
return out
