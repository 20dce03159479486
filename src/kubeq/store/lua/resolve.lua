-- One parent of a deferred child has ended: the second per-slot step of a dependency edge,
-- run on the child's queue (docs/architecture.md, Workflows). Idempotent: each parent counts
-- once (HSETNX of 'p:<parent>'), so two parents ending at once, or a hand-off redone after
-- a crash, never release the child twice or early.
-- KEYS: the child's queue's 8 keys. ARGV: base, child id, parent "<queue>/<id>", parent's
-- end status, and for a chord's callback the parent's result, kept in the child's own hash
-- as 'r:<queue>/<id>' (the callback reads it there, however long the member's own record
-- lives: chords.py). Returns 1 when the child became ready, 2 when it was cancelled (a parent did
-- not finish and the child does not allow_failure), 0 when nothing changed.
local q = queue_keys(0)
local base, id, parent, pst = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local jk = base .. 'job:' .. id
local f = job_fields(jk, 'status', 'pending', 'allow_failure', 'priority', 'result_ttl', 'fk')
if not f or f[1] ~= 'deferred' then return 0 end
if redis.call('HSETNX', jk, 'p:' .. parent, pst) == 0 then return 0 end
if ARGV[5] and pst == 'finished' then redis.call('HSET', jk, 'r:' .. parent, ARGV[5]) end
if pst ~= 'finished' and f[3] ~= '1' then
  redis.call('ZREM', base .. 'deferred', id)
  redis.call('HSET', jk, 'status', 'cancelled', 'finished_at', NOW,
    'reason', 'its parent ' .. parent .. ' ended ' .. pst .. ' (allow_failure is off)')
  local ttl = job_ttl(f[5])
  if ttl then redis.call('EXPIRE', jk, ttl) end
  notify_done(base, id, ttl)
  note_end(base, id, jk, 'cancelled')
  return 2
end
local left = (int(f[2]) or 1) - 1
redis.call('HSET', jk, 'pending', left)
if left > 0 then return 0 end
redis.call('ZREM', base .. 'deferred', id)
redis.call('HSET', jk, 'status', 'queued')
make_ready(q, base, id, ready_score(f[4], NOW), f[6])
wake(q.wake, 1)
return 1
