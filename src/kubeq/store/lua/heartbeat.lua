-- A worker's heartbeat on one queue: it is alive, holds `busy` jobs, and extends the lease
-- of each job it still owns. Returns the ids of the jobs it no longer owns: taken over, or,
-- written '!' .. id, aborted (job.abort(): the worker stops the attempt).
-- KEYS: the queue's 8 keys. ARGV: base, worker, busy, lease_ms, then id, lease pairs.
local q = queue_keys(0)
check_queue(q, ARGV[1])
local base, worker, busy, lease_ms = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
redis.call('ZADD', q.workers, NOW, worker)
redis.call('HSET', q.busy, worker, busy)
local gone = {}
for i = 5, #ARGV, 2 do
  local id = ARGV[i]
  local f = job_fields(base .. 'job:' .. id, 'status', 'lease')
  if f and f[1] == 'active' and f[2] == ARGV[i + 1] then
    redis.call('ZADD', q.active, 'XX', NOW + lease_ms, id)
  else
    -- an aborted job's id comes back as '!' .. id ('!' is never in a job id)
    gone[#gone + 1] = (f and f[1] == 'aborted') and ('!' .. id) or id
  end
end
return gone
