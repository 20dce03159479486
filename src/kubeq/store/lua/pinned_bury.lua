-- Dead-letter the jobs of a queue pinned to a worker version that no longer runs (the
-- operator calls it: kubeq_operator.pinned): its waiting jobs (ready, delayed, sleeping) and
-- those whose lease lapsed (their worker is gone), each with `reason`, up to `limit` entries;
-- call until it returns 0. Nothing is lost silently: each stays readable in the dead set.
-- KEYS: the queue's 8 keys. ARGV: base, reason, limit.
-- Returns {entries removed (stale ones too), jobs dead-lettered}.
local q = queue_keys(0)
local base, reason, limit = ARGV[1], ARGV[2], tonumber(ARGV[3])
local lapsed = zset_read(q.active, base, 'ZRANGEBYSCORE', '-inf', NOW, 'LIMIT', 0, limit)
require_zsets({q.ready, q.delayed, q.dead}, base)
local removed, buried = 0, 0
for _, id in ipairs(lapsed) do
  local jk = base .. 'job:' .. id
  local f = job_fields(jk, 'status', 'cl_key', 'cl_n')
  removed = removed + 1
  if f and (f[1] == 'active' or f[1] == 'aborted') then
    release_slot(q, base, id, f[2], f[3])
    bury(q, base, id, jk, reason)
    buried = buried + 1
  else
    redis.call('ZREM', q.active, id)
  end
end
for _, key in ipairs({q.ready, q.delayed, base .. 'sleeping'}) do
  if removed >= limit then break end
  local ids = redis.call('ZRANGE', key, 0, limit - removed - 1)
  for _, id in ipairs(ids) do
    local jk = base .. 'job:' .. id
    local f = job_fields(jk, 'status', 'fk')
    redis.call('ZREM', key, id)
    removed = removed + 1
    if f and key == q.ready then fair_forget(base, id, f[2]) end
    if f and f[1] == 'sleeping' then unsleep(base, id, jk) end
    if f and (f[1] == 'queued' or f[1] == 'scheduled' or f[1] == 'sleeping') then
      bury(q, base, id, jk, reason)
      buried = buried + 1
    end
  end
end
return {removed, buried}
