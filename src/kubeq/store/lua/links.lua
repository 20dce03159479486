-- The record of a deferred child whose edges its caller is registering (dependencies.py):
-- written in the child's queue before the child is enqueued, forgotten once every edge is
-- registered and every parent already ended has resolved it. A caller that dies in between
-- leaves it, and a worker of the queue redoes the link from it (handoff.py, sweep), so a
-- deferred child never waits for ever for edges no one registered.
-- KEYS: the queue's linking set. ARGV: base, 'add' then child id and its parents (JSON),
-- n times; or 'done' then child ids. Returns the number of records written or forgotten.
local base, action = ARGV[1], ARGV[2]
local key = KEYS[1]
local n = 0
if action == 'add' then
  for i = 3, #ARGV, 2 do
    redis.call('SET', base .. 'links:' .. ARGV[i], ARGV[i + 1])
    redis.call('ZADD', key, NOWS, ARGV[i])
    n = n + 1
  end
elseif action == 'done' then
  for i = 3, #ARGV do
    redis.call('DEL', base .. 'links:' .. ARGV[i])
    n = n + redis.call('ZREM', key, ARGV[i])
  end
else
  error('kubeq: links.lua knows add and done, not ' .. tostring(action))
end
return n
