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
-- A key's weight. A queue with few weights set has them all read at once (one HGETALL per
-- call; none set: one HLEN), else each key's is read when first needed.
local function fair_weight(st, base, key)
  local w = st.w[key]
  if w then return w end
  if st.wall == nil then
    st.wall = false
    local n = redis.pcall('HLEN', base .. 'fair:weights')
    if type(n) == 'number' and n <= 256 then
      local all = n > 0 and redis.call('HGETALL', base .. 'fair:weights') or {}
      for i = 1, #all, 2 do
        local v = tonumber(all[i + 1])
        if not (v and v >= 0.001 and v <= 1000) then v = 1 end
        st.w[all[i]] = v
      end
      st.wall = true
    end
  end
  if st.wall then
    w = st.w[key] or 1
  else
    local v = redis.pcall('HGET', base .. 'fair:weights', key)
    w = type(v) == 'string' and tonumber(v) or 1
    if not (w >= 0.001 and w <= 1000) then w = 1 end
  end
  st.w[key] = w
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
-- A binary min-heap of flows by (tag of their next turn, place): the turns of one round.
local function heap_less(fl, a, b)
  local ta, tb = fl[a].next, fl[b].next
  return ta < tb or (ta == tb and a < b)
end
local function heap_down(fl, h, i)
  local n = #h
  while true do
    local l, m = 2 * i, i
    if l <= n and heap_less(fl, h[l], h[m]) then m = l end
    if l + 1 <= n and heap_less(fl, h[l + 1], h[m]) then m = l + 1 end
    if m == i then return end
    h[i], h[m] = h[m], h[i]
    i = m
  end
end
-- The turns of one round: up to n, in fair order, among `flows` (each {tag, w}, in the
-- order of their tags), none at a tag past `bound` (the tag of the first key not read; nil:
-- every key of the band was read). Returns the flow of each turn; sets each flow's k (its
-- turns in the round).
local function fair_turns(flows, n, bound)
  local h = {}
  for i, f in ipairs(flows) do
    f.k, f.next = 0, f.tag
    h[i] = i
  end
  for i = math.floor(#h / 2), 1, -1 do heap_down(flows, h, i) end
  local order = {}
  while #order < n do
    local fi = h[1]
    local f = flows[fi]
    if bound and f.next > bound then break end
    order[#order + 1] = fi
    f.k = f.k + 1
    f.next = f.tag + f.k * FUNIT / f.w
    heap_down(flows, h, 1)
  end
  return order
end
-- Pop up to n ready jobs in fair order: {id, ready score, ...} as ZPOPMIN answers. Each step
-- serves one round: the n + 1 keys of least tag are read at once (one ZRANGE), the turns
-- among them (and the jobs without a key) are worked out here, then each key served gives
-- its jobs in one ZRANGE + ZREMRANGEBYRANK, every job leaves the ready set in one ZREM and
-- the keys' new tags go back in one ZADD.
local function fair_pop(q, base, n)
  local idx = base .. 'fair'
  if redis.call('EXISTS', idx) == 0 then return redis.call('ZPOPMIN', q.ready, n) end
  local st = fair_state(base)
  local out = {}
  local got, steps = 0, 0
  local u = nil -- the unkeyed jobs' head: only this call's own pops change it, so it is read
  -- again only after it served some
  while got < n and steps < n + 1000 do
    steps = steps + 1
    local want = n - got
    local heads = redis.call('ZRANGE', idx, 0, want, 'WITHSCORES')
    if #heads == 0 then
      -- no key has ready jobs left: the rest in the ready set's own order
      local rest = redis.call('ZPOPMIN', q.ready, want)
      for i = 1, #rest, 2 do
        out[#out + 1] = rest[i]
        out[#out + 1] = tonumber(rest[i + 1]) % FOFF
      end
      break
    end
    local kb = math.floor(tonumber(heads[2]) / BAND)
    if not u then
      u = redis.call('ZRANGEBYSCORE', q.ready, '-inf', '(' .. string.format('%d', FOFF),
        'WITHSCORES', 'LIMIT', 0, 1)
    end
    local ub = nil
    if #u == 0 then
      if st.u then st.ue = true end
    else
      ub = math.floor(tonumber(u[2]) / BAND)
      if not st.u then st.u = st.v
      elseif st.ue and st.u < st.v then st.u = st.v end
      st.ue = false
    end
    local flows = {}
    if ub and ub <= kb then flows[1] = {tag = st.u, w = fair_weight(st, base, '')} end
    local bound = nil
    if not (ub and ub < kb) then
      local nh = #heads / 2
      if nh == want + 1 then
        -- the last key read bounds the round: keys not read have tags from its on
        local s = tonumber(heads[2 * nh])
        if math.floor(s / BAND) == kb then bound = s - kb * BAND end
        nh = nh - 1
      end
      for i = 1, nh do
        local s = tonumber(heads[2 * i])
        if math.floor(s / BAND) ~= kb then break end
        local key = heads[2 * i - 1]
        flows[#flows + 1] = {key = key, tag = s - kb * BAND, w = fair_weight(st, base, key)}
      end
    end
    -- (ub < kb: the jobs without a key have a higher priority than every key: they alone)
    if #flows == 0 then break end
    local order = fair_turns(flows, want, bound)
    local band_end = (math.min(kb, ub or kb) + 1) * BAND
    for _, f in ipairs(flows) do
      f.jobs = {}
      if f.k > 0 and not f.key then
        local ids = redis.call('ZRANGEBYSCORE', q.ready, '-inf', '(' .. string.format('%d',
          band_end), 'WITHSCORES', 'LIMIT', 0, f.k)
        local rem = {}
        for i = 1, #ids, 2 do
          f.jobs[#f.jobs + 1] = i
          rem[#rem + 1] = ids[i]
        end
        if #rem > 0 then redis.call('ZREM', q.ready, unpack(rem)) end
        f.ids, u = ids, nil
      elseif f.k > 0 then
        -- its turns' jobs and the one after them (its new head: band, or none left)
        local fq = base .. 'fair:q:' .. f.key
        local ids = redis.pcall('ZRANGE', fq, 0, f.k, 'WITHSCORES')
        if type(ids) ~= 'table' or ids.err then
          redis.call('RENAME', fq, base .. 'garbage:fair:' .. f.key)
          ids = {}
        end
        local take = 0
        while take < f.k and 2 * take < #ids and tonumber(ids[2 * take + 2]) < band_end do
          take = take + 1
          -- still ready? (another path may have taken it: skipped, not charged)
          if redis.call('ZREM', q.ready, ids[2 * take - 1]) == 1 then
            f.jobs[#f.jobs + 1] = 2 * take - 1
          end
        end
        if take > 0 then redis.call('ZREMRANGEBYRANK', fq, 0, take - 1) end
        f.ids, f.take = ids, take
      end
    end
    -- the jobs in the order of the turns
    for _, fi in ipairs(order) do
      local f = flows[fi]
      f.at = (f.at or 0) + 1
      local i = f.jobs[f.at]
      if i then
        out[#out + 1] = f.ids[i]
        out[#out + 1] = f.ids[i + 1]
        got = got + 1
      end
    end
    local tags, gone = {}, {}
    for _, f in ipairs(flows) do
      if f.k > 0 then
        local c = #f.jobs
        if c > 0 and f.tag + (c - 1) * FUNIT / f.w > st.v then
          st.v = f.tag + (c - 1) * FUNIT / f.w
        end
        local tag = f.tag + c * FUNIT / f.w
        if not f.key then
          st.u = tag
        elseif 2 * f.take < #f.ids then
          -- its next job's band and its new tag
          local hb = math.floor(tonumber(f.ids[2 * f.take + 2]) / BAND)
          tags[#tags + 1] = tagstr(hb * BAND + tag)
          tags[#tags + 1] = f.key
        else
          gone[#gone + 1] = f.key
          gone[#gone + 1] = tag
        end
      end
    end
    if #tags > 0 then redis.call('ZADD', idx, unpack(tags)) end
    for i = 1, #gone, 2 do
      redis.call('ZREM', idx, gone[i])
      if gone[i + 1] > st.v then redis.call('ZADD', base .. 'fair:idle', tagstr(gone[i + 1]), gone[i]) end
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
