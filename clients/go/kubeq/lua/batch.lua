-- Add items to the open batch of their key (docs/patterns.md), in one step on the queue's
-- slot: one call carries one item or many (a bulk enqueue sends up to BATCH_SEND of a key at
-- once), each added in order as if sent alone. A batch is a job of its own (the carrier: id
-- <first item>.batch, status scheduled in the delayed set, due max_wait after its first
-- item) whose items are listed in <base>items:<carrier>; <base>batch:<key> names the open
-- one. The batch closes, its membership fixed, when it leaves 'scheduled': full (moved to the
-- ready set here) or due (promoted by fetch.lua). The next item then opens a new batch. Each
-- item is a job of its own, status 'batched', field batch = its carrier, until the carrier's
-- run settles it (batch_done.lua), or the carrier ends otherwise (marker 'b': end_batch in
-- _prelude.lua).
-- KEYS: the queue's 8 keys.
-- ARGV: base, 'batch', key, max_wait_ms, max_size, token, the carriers' payload, then per
--   item the 7 fields enqueue.lua lays out for a job (id, payload, priority, due,
--   max_deliveries, result_ttl, control: "" or only {"expires": ...}).
-- Returns per item, in order, {created, id}: 1 when this call wrote the item (or an earlier
-- send of this call did), 0 when a job of that id exists, -1 when its control fields hold
-- more than an expiry.
local q = queue_keys(0)
-- Note a member in an index stats.lua reads (one of another type is dropped: an index
-- is rebuilt by its writers).
local function index(k, score, member)
  local ok = redis.pcall('ZADD', k, score, member)
  if type(ok) == 'table' and ok.err then
    redis.call('DEL', k)
    redis.call('ZADD', k, score, member)
  end
end
local base, fkey = ARGV[1], ARGV[3]
local wait_ms, max_size, token = tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6]
local carrier_payload = ARGV[7]
check_enqueue(q, base)
local open = base .. 'batch:' .. fkey
local carrier = nil -- the open batch, once known to be open (scheduled, never delivered)
local woken = 0 -- batches opened or made ready: an idle worker each

-- An item's expiry time: false when it has none, nil when its control fields are refused.
local function expiry(raw)
  if raw == '' then return false end
  local ok, c = pcall(cjson.decode, raw)
  if not ok or type(c) ~= 'table' then return nil end
  local expires = false
  for k, v in pairs(c) do
    if k ~= 'expires' then return nil end
    local okd, at = pcall(due_at, tostring(v))
    if not okd or not at then return nil end
    expires = string.format('%d', math.floor(at))
  end
  return expires
end

-- The open batch of the key, opened by item ``id`` when there is none.
local function open_batch(id, priority, max_deliveries, result_ttl)
  if carrier then return carrier end
  local cur = redis.pcall('GET', open)
  local cf = type(cur) == 'string' and job_fields(base .. 'job:' .. cur, 'status', 'deliveries')
  if cf and cf[1] == 'scheduled' and (int(cf[2]) or 0) == 0 then
    carrier = cur
    return carrier
  end
  carrier = id .. '.batch'
  local ck = base .. 'job:' .. carrier
  if redis.call('EXISTS', ck) == 1 then redis.call('RENAME', ck, base .. 'garbage:' .. carrier) end
  redis.call('HSET', ck, 'payload', carrier_payload, 'priority', priority, 'status', 'scheduled',
    'enqueued_at', NOWS, 'deliveries', '0', 'attempts', '0', 'lease', '0',
    'max_deliveries', max_deliveries, 'result_ttl', result_ttl, 'batch_key', fkey, 'cb', 'b')
  redis.call('ZADD', q.delayed, string.format('%d', NOW + wait_ms), carrier)
  redis.call('SET', open, carrier)
  index(base .. 'batches', NOWS, carrier)  -- counted by stats.lua
  woken = woken + 1  -- an idle worker learns when the batch falls due
  return carrier
end

local out = {}
for i = 8, #ARGV, 7 do
  local id, payload, priority = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local max_deliveries, result_ttl = ARGV[i + 4], ARGV[i + 5]
  local expires = expiry(ARGV[i + 6])
  local jk = base .. 'job:' .. id
  local old = expires ~= nil and job_fields(jk, 'status', 'sent')
  if expires == nil then
    out[#out + 1] = {-1, id}
  elseif old and old[1] then
    out[#out + 1] = {old[2] == token and 1 or 0, id}  -- 1: an earlier send of this call
  else
    if not old then redis.call('RENAME', jk, base .. 'garbage:' .. id) end
    local c = open_batch(id, priority, max_deliveries, result_ttl)
    redis.call('HSET', jk, 'payload', payload, 'priority', priority, 'status', 'batched',
      'enqueued_at', NOWS, 'deliveries', '0', 'attempts', '0', 'lease', '0',
      'max_deliveries', max_deliveries, 'result_ttl', result_ttl, 'sent', token, 'batch', c)
    if expires then redis.call('HSET', jk, 'expires_at', expires) end
    ix_add(base, payload, id, nil)  -- [search index]
    local n = redis.call('RPUSH', base .. 'items:' .. c, id)
    local ck = base .. 'job:' .. c
    redis.call('HSET', ck, 'batch_size', tostring(n))
    if n >= max_size then
      -- full: it runs now, and the next item opens a new batch
      redis.call('DEL', open)
      redis.call('ZREM', q.delayed, c)
      redis.call('HSET', ck, 'status', 'queued', 'closed_at', NOWS)
      redis.call('ZADD', q.ready, string.format('%d', ready_score(priority, NOW)), c)
      woken = woken + 1
      carrier = nil
    end
    out[#out + 1] = {1, id}
  end
end
ix_flush(base)
if woken > 0 then wake(q.wake, woken) end
return out
