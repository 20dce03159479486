-- Register a dependency edge on the parent's side (queue A): the first of the two per-slot
-- steps that link a deferred child (maybe on another queue) to its parent
-- (docs/architecture.md, Workflows). KEYS: the parent's hash. ARGV: base, parent id, child
-- "<queue>\t<id>" (then "\tr" for a chord's callback, which the hand-off gives the parent's
-- result), the most edges kept for people (defaults.WORKFLOW_EDGES_KEPT; the child is listed
-- in the parent's 'children' field, edges.py, whatever the parent's status). Idempotent.
-- Returns the parent's status: 'pending' when the edge was recorded (the parent's end will
-- hand it off), else the status it has already ended with (the caller resolves the child
-- itself; with ARGV[5] 'r', a chord's, with its result: {status, result}), or 'missing'.
local base, id = ARGV[1], ARGV[2]
local jk = KEYS[1]
local f = job_fields(jk, 'status', 'cb')
if not f or not f[1] then return 'missing' end
local child = string.match(ARGV[3], '^[^\t]*\t[^\t]*')
add_edges(jk, 'children', int(ARGV[4]) or 0, {(string.gsub(child or ARGV[3], '\t', '/', 1))})
local st = f[1]
if st == 'finished' or st == 'failed' or st == 'cancelled' or st == 'aborted' or
    st == 'expired' then
  if ARGV[5] == 'r' then  -- a finished job without a result returned null (result_field)
    return {st, redis.call('HGET', jk, 'result') or (st == 'finished' and 'null' or '')}
  end
  return st
end
redis.call('SADD', base .. 'dependents:' .. id, ARGV[3])
local cb = f[2] or ''
if not string.find(cb, 'd', 1, true) then redis.call('HSET', jk, 'cb', cb .. 'd') end
return 'pending'
