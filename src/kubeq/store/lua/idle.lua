-- An idle worker's beat over its queues of one hash slot, instead of a fetch every second:
-- it is alive (the presence a fetch or heartbeat also records), and how long it may sleep
-- before it must fetch: the ms until the earliest delayed job falls due or the earliest lease
-- expires (0: one already has, or jobs are ready in an unpaused queue; -1: nothing waits for
-- a time). A key of the wrong type is left to the next fetch, which reports or repairs it.
-- Its presence is dated `ahead_ms` into the future (its next beat): a worker counts as live
-- until its score is `worker_ttl` old (fetch.lua, stats.lua), so an idle one stays live
-- between beats and one that dies idle is forgotten `ahead_ms` later than a busy one.
-- KEYS: 8 keys per queue, queue after queue. ARGV: worker, nq, ahead_ms.
local worker = ARGV[1]
local nq = tonumber(ARGV[2])
local ahead = tonumber(ARGV[3])
local due = -1
local function first_score(key)
  local first = redis.pcall('ZRANGE', key, 0, 0, 'WITHSCORES')
  if type(first) == 'table' and not first.err and #first > 0 then return tonumber(first[2]) end
  return nil
end
for qi = 0, nq - 1 do
  local q = queue_keys(qi * 8)
  local ready = redis.pcall('ZCARD', q.ready)
  if type(ready) == 'number' and ready > 0 and redis.call('EXISTS', q.paused) == 0 then
    due = 0 -- woken by nobody (a rate limit held them back): fetch, which says how long
  end
  for _, key in ipairs({q.delayed, q.active}) do
    local at = first_score(key)
    if at then
      local w = math.max(0, math.ceil(at - NOW))
      if due < 0 or w < due then due = w end
    end
  end
  redis.pcall('ZADD', q.workers, NOW + ahead, worker)
end
return due
