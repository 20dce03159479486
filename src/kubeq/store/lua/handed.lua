-- Forget the hand-offs just done (handoff.py, the last of its three round trips), each only
-- as far as it was read: the children it told leave the parent's dependents set (a child
-- registered since, on a parent requeued and running again, stays), and the entry goes only
-- if its score is still the one read (a parent that ended again meanwhile keeps its entry,
-- for that end's hand-off). A forgotten ended job gets its result_ttl back (note_handoff
-- kept its record until now; a dead letter keeps none), unless an aborted attempt still
-- holds it: then the attempt's end gives it (aborted_stopped).
-- KEYS: the queue's handoff set. ARGV: base, n, then per entry: id, the score read ('' when
-- none was), the number m of children told, then those m dependents members.
-- Returns how many entries were forgotten.
local base, n = ARGV[1], tonumber(ARGV[2])
local key = KEYS[1]
local o, gone = 3, 0
local ENDED = {finished = true, cancelled = true, aborted = true, expired = true}
for _ = 1, n do
  local id, score, m = ARGV[o], ARGV[o + 1], tonumber(ARGV[o + 2])
  local told = {}
  for i = 1, m do
    told[#told + 1] = ARGV[o + 2 + i]
    if #told == 1000 or i == m then  -- unpack takes a few thousand values at most
      redis.pcall('SREM', base .. 'dependents:' .. id, unpack(told))
      told = {}
    end
  end
  o = o + 3 + m
  local cur = redis.pcall('ZSCORE', key, id)
  if type(cur) == 'string' and (score == '' or tonumber(cur) == tonumber(score)) then
    redis.call('ZREM', key, id)
    gone = gone + 1
    local jk = base .. 'job:' .. id
    local f = job_fields(jk, 'status', 'result_ttl', 'purged')
    if f and f[3] == '1' then  -- a dead letter purged while its hand-off was pending
      redis.call('DEL', jk, base .. 'done:' .. id)
      f = nil
    end
    -- an aborted attempt still running keeps the record too (aborted_stopped expires it)
    if f and ENDED[f[1]] and redis.call('TTL', jk) == -1 and
        type(redis.call('ZSCORE', base .. 'active', id)) ~= 'string' then
      local ttl = job_ttl(f[2])
      if ttl then redis.call('EXPIRE', jk, ttl) end
    end
  end
end
return gone
