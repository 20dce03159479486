-- Fair queues (docs/fairness.md; docs/architecture.md, Fair queues). Among the ready jobs of
-- one priority, fairness keys are served in proportion to their weights by start-time fair
-- queuing on a virtual clock (V). Each key with ready jobs has a start tag S; the fetch serves
-- the key of least tag (highest priority band first), V becomes that tag, and the key's tag
-- grows by FUNIT / weight per job served. A key that comes (back) gets max(V, its last finish
-- tag while V has not passed it), so a key that was away gains no credit and a new key waits
-- at most one turn of each key ahead of it.
-- Layout, all under the queue's hash tag (keys.py):
--   ready            every ready job, as today; a keyed job is scored FOFF higher, so the
--                    unkeyed jobs' own order (band + ready time) is untouched and every path
--                    that removes a ready job (cancel, abort, bury, purge, take back) still
--                    finds it there
--   fair             ZSET key -> band of its head * BAND + start tag: the keys with ready jobs
--   fair:q:<key>     ZSET the key's ready ids, score = ready score; an id no longer in ready
--                    (removed by another path) is skipped, free, when the fetch reaches it
--   fair:idle        ZSET key -> finish tag, for a key that emptied, until V passes it
--   fair:state       HASH v = V, u = the unkeyed jobs' start tag, ue = 1 while they were seen
--                    empty; deleted with fair:idle when no key has ready jobs
--   fair:weights     HASH key -> weight (0.001 .. 1000; absent = 1); '' names the unkeyed jobs
-- Jobs without a key are one more flow (named '' in the weights), served in their own order.
-- While no key has ready jobs the fetch pops the ready set exactly as without fairness.
local FOFF = 10 * BAND
local FUNIT = 1000
local FAIRST = {}
local function tagstr(x) return string.format('%.17g', x) end
-- The fairness state of a queue, read once per script call.
local function fair_state(base)
  local st = FAIRST[base]
  if not st then
    local s = redis.pcall('HMGET', base .. 'fair:state', 'v', 'u', 'ue')
    if type(s) ~= 'table' or s.err then
      redis.call('DEL', base .. 'fair:state')  -- presence data only: rebuilt from here
      s = {}
    end
    st = {v = tonumber(s[1]) or 0, u = tonumber(s[2]), ue = s[3] == '1', w = {}}
    FAIRST[base] = st
  end
  return st
end
local function fair_weight(st, base, key)
  local w = st.w[key]
  if not w then
    local v = redis.pcall('HGET', base .. 'fair:weights', key)
    w = type(v) == 'string' and tonumber(v) or 1
    if not (w >= 0.001 and w <= 1000) then w = 1 end
    st.w[key] = w
  end
  return w
end
-- Make ready the jobs of one key: adds = {ready score, id, ...}.
local function fair_add(q, base, key, adds)
  local fq = base .. 'fair:q:' .. key
  local t = redis.call('TYPE', fq)['ok']
  if t ~= 'zset' and t ~= 'none' then redis.call('RENAME', fq, base .. 'garbage:fair:' .. key) end
  local shifted, best = {}, nil
  for i = 1, #adds, 2 do
    local s = tonumber(adds[i])
    shifted[i] = string.format('%d', FOFF + s)
    shifted[i + 1] = adds[i + 1]
    if not best or s < best then best = s end
  end
  redis.call('ZADD', q.ready, unpack(shifted))
  redis.call('ZADD', fq, unpack(adds))
  local band = math.floor(best / BAND)
  local idx = base .. 'fair'
  local cur = redis.call('ZSCORE', idx, key)
  if cur then
    local cb = math.floor(tonumber(cur) / BAND)
    if band < cb then redis.call('ZADD', idx, tagstr(band * BAND + tonumber(cur) - cb * BAND), key) end
    return
  end
  local st = fair_state(base)
  local tag = st.v
  local left = redis.call('ZSCORE', base .. 'fair:idle', key)
  if left then
    if tonumber(left) > tag then tag = tonumber(left) end
    redis.call('ZREM', base .. 'fair:idle', key)
  end
  redis.call('ZADD', idx, tagstr(band * BAND + tag), key)
end
-- The fairness key among a job's control fields (enqueue.lua), or nil.
local function fair_key_of(control)
  for i = 1, #control - 1, 2 do
    if control[i] == 'fk' then return control[i + 1] end
  end
  return nil
end
-- Make one job ready: into its key's flow when it has a fairness key, else as always.
make_ready = function(q, base, id, score, key)
  if key and key ~= '' then
    fair_add(q, base, key, {score, id})
  else
    redis.call('ZADD', q.ready, score, id)
  end
end
-- A ready job left by another path than the fetch (cancel, abort, purge): out of its key's set,
-- and the key out of the index when that was its last job.
local function fair_forget(base, id, key)
  if not key or key == '' then return end
  local fq = base .. 'fair:q:' .. key
  redis.pcall('ZREM', fq, id)
  if redis.pcall('ZCARD', fq) == 0 then
    local cur = redis.pcall('ZSCORE', base .. 'fair', key)
    if type(cur) == 'string' then
      redis.call('ZREM', base .. 'fair', key)
      local st = fair_state(base)
      local tag = tonumber(cur) % BAND
      if tag > st.v then redis.call('ZADD', base .. 'fair:idle', tagstr(tag), key) end
      if redis.call('ZCARD', base .. 'fair') == 0 then
        redis.call('DEL', base .. 'fair:state', base .. 'fair:idle')
        FAIRST[base] = nil
      end
    end
  end
end
-- How many jobs a flow of weight w serves in a row while its start tag stays below the next
-- flow's, `gap` ahead (at least one: the flow at the front always serves one).
local function fair_turns(gap, w)
  local k = math.ceil(gap * w / FUNIT - 1e-9)
  if k < 1 then return 1 end
  return k
end
-- Pop up to n ready jobs in fair order: {id, ready score, ...} as ZPOPMIN answers.
local function fair_pop(q, base, n)
  local idx = base .. 'fair'
  if redis.call('EXISTS', idx) == 0 then return redis.call('ZPOPMIN', q.ready, n) end
  local st = fair_state(base)
  local out = {}
  local got, steps = 0, 0
  local ub = nil
  local u = nil -- the unkeyed jobs' head: only this call's own pops change it, so it is read
  -- again only after it served some
  while got < n and steps < n + 1000 do
    steps = steps + 1
    local heads = redis.call('ZRANGE', idx, 0, 1, 'WITHSCORES')
    if #heads == 0 then
      -- no key has ready jobs left: the rest in the ready set's own order
      local rest = redis.call('ZPOPMIN', q.ready, n - got)
      for i = 1, #rest, 2 do
        out[#out + 1] = rest[i]
        out[#out + 1] = tonumber(rest[i + 1]) % FOFF
      end
      break
    end
    local ks = tonumber(heads[2])
    local kb = math.floor(ks / BAND)
    local ktag = ks - kb * BAND
    if not u then
      u = redis.call('ZRANGEBYSCORE', q.ready, '-inf', '(' .. string.format('%d', FOFF),
        'WITHSCORES', 'LIMIT', 0, 1)
    end
    local serve_u = false
    if #u == 0 then
      ub = nil
      if st.u then st.ue = true end
    else
      ub = math.floor(tonumber(u[2]) / BAND)
      if not st.u then st.u = st.v
      elseif st.ue and st.u < st.v then st.u = st.v end
      st.ue = false
      serve_u = ub < kb or (ub == kb and st.u <= ktag)
    end
    if serve_u then
      local wu = fair_weight(st, base, '')
      local m = n - got
      if ub == kb then m = math.min(m, fair_turns(ktag - st.u, wu)) end
      local ids = redis.call('ZRANGEBYSCORE', q.ready, '-inf', '(' .. string.format('%d',
        (ub + 1) * BAND), 'WITHSCORES', 'LIMIT', 0, m)
      local rem = {}
      for i = 1, #ids, 2 do
        rem[#rem + 1] = ids[i]
        out[#out + 1] = ids[i]
        out[#out + 1] = ids[i + 1]
      end
      redis.call('ZREM', q.ready, unpack(rem))
      u = nil
      local c = #rem
      got = got + c
      if st.u + (c - 1) * FUNIT / wu > st.v then st.v = st.u + (c - 1) * FUNIT / wu end
      st.u = st.u + c * FUNIT / wu
    else
      local key = heads[1]
      local w = fair_weight(st, base, key)
      local m = n - got
      local lim = nil
      if #heads >= 4 then
        local s2 = tonumber(heads[4])
        if math.floor(s2 / BAND) == kb then lim = s2 - kb * BAND end
      end
      if ub == kb and (not lim or st.u < lim) then lim = st.u end
      if lim then m = math.min(m, fair_turns(lim - ktag, w)) end
      local fq = base .. 'fair:q:' .. key
      local ids = redis.pcall('ZRANGEBYSCORE', fq, '-inf', '(' .. string.format('%d',
        (kb + 1) * BAND), 'WITHSCORES', 'LIMIT', 0, m)
      if type(ids) ~= 'table' or ids.err then
        redis.call('RENAME', fq, base .. 'garbage:fair:' .. key)
        ids = {}
      end
      local served = 0
      if #ids > 0 then
        local rem = {}
        for i = 1, #ids, 2 do rem[#rem + 1] = ids[i] end
        redis.call('ZREM', fq, unpack(rem))
        for i = 1, #ids, 2 do
          -- still ready? (another path may have taken it: skipped, not charged)
          if redis.call('ZREM', q.ready, ids[i]) == 1 then
            out[#out + 1] = ids[i]
            out[#out + 1] = ids[i + 1]
            served = served + 1
          end
        end
      end
      got = got + served
      local tag = ktag
      if served > 0 then
        local last = ktag + (served - 1) * FUNIT / w
        if last > st.v then st.v = last end
        tag = ktag + served * FUNIT / w
      end
      local head = redis.call('ZRANGE', fq, 0, 0, 'WITHSCORES')
      if #head == 0 then
        redis.call('ZREM', idx, key)
        if tag > st.v then redis.call('ZADD', base .. 'fair:idle', tagstr(tag), key) end
      else
        redis.call('ZADD', idx, tagstr(math.floor(tonumber(head[2]) / BAND) * BAND + tag), key)
      end
    end
  end
  if redis.call('EXISTS', idx) == 0 then
    -- no key has ready jobs: nothing is kept (a key that comes back starts afresh)
    redis.call('DEL', base .. 'fair:state', base .. 'fair:idle')
    FAIRST[base] = nil
  else
    redis.call('ZREMRANGEBYSCORE', base .. 'fair:idle', '-inf', tagstr(st.v))
    redis.call('HSET', base .. 'fair:state', 'v', tagstr(st.v), 'u', tagstr(st.u or st.v),
      'ue', st.ue and '1' or '0')
  end
  return out
end
