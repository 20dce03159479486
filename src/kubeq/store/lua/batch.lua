-- Add one item to the open batch of its key (docs/patterns.md), in one step on the queue's
-- slot. A batch is a job of its own (the carrier: id <first item>.batch, status scheduled in
-- the delayed set, due max_wait after its first item) whose items are listed in
-- <base>items:<carrier>; <base>batch:<key> names the open one. The batch closes, its
-- membership fixed, when it leaves 'scheduled': full (moved to the ready set here) or due
-- (promoted by fetch.lua). The next item then opens a new batch. Each item is a job of its
-- own, status 'batched', field batch = its carrier, until the carrier's run settles it
-- (batch_done.lua), or the carrier ends otherwise (marker 'b': end_batch in _prelude.lua).
-- KEYS: the queue's 8 keys.
-- ARGV: base, 'batch', key, max_wait_ms, max_size, token, then the item as enqueue.lua lays
--   it out (id, payload, priority, due, max_deliveries, result_ttl, control: "" or only
--   {"expires": ...}),
--   then the carrier's payload.
-- Returns {created, id}: 1 when this call wrote the item, 0 when a job of that id exists,
-- -1 when the control fields hold more than an expiry.
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
local id, payload, priority = ARGV[7], ARGV[8], ARGV[9]
local max_deliveries, result_ttl, raw, carrier_payload = ARGV[11], ARGV[12], ARGV[13], ARGV[14]
local expires = nil -- an item's one control field: its expiry time
if raw ~= '' then
  local ok, c = pcall(cjson.decode, raw)
  if not ok or type(c) ~= 'table' then return {-1, id} end
  for k, v in pairs(c) do
    if k ~= 'expires' then return {-1, id} end
    local okd, at = pcall(due_at, tostring(v))
    if not okd or not at then return {-1, id} end
    expires = string.format('%d', math.floor(at))
  end
end
check_enqueue(q, base)
local jk = base .. 'job:' .. id
local old = job_fields(jk, 'status', 'sent')
if not old then
  redis.call('RENAME', jk, base .. 'garbage:' .. id)
elseif old[1] then
  if old[2] == token then return {1, id} end  -- an earlier send of this call wrote it
  return {0, id}
end
local open = base .. 'batch:' .. fkey
local carrier = redis.pcall('GET', open)
local cf = type(carrier) == 'string' and job_fields(base .. 'job:' .. carrier, 'status', 'deliveries')
local opened = false
if not (cf and cf[1] == 'scheduled' and (int(cf[2]) or 0) == 0) then
  carrier = id .. '.batch'
  opened = true
  local ck = base .. 'job:' .. carrier
  if redis.call('EXISTS', ck) == 1 then redis.call('RENAME', ck, base .. 'garbage:' .. carrier) end
  redis.call('HSET', ck, 'payload', carrier_payload, 'priority', priority, 'status', 'scheduled',
    'enqueued_at', NOWS, 'deliveries', '0', 'attempts', '0', 'lease', '0',
    'max_deliveries', max_deliveries, 'result_ttl', result_ttl, 'batch_key', fkey, 'cb', 'b')
  redis.call('ZADD', q.delayed, string.format('%d', NOW + wait_ms), carrier)
  redis.call('SET', open, carrier)
  index(base .. 'batches', NOWS, carrier)  -- counted by stats.lua
end
redis.call('HSET', jk, 'payload', payload, 'priority', priority, 'status', 'batched',
  'enqueued_at', NOWS, 'deliveries', '0', 'attempts', '0', 'lease', '0',
  'max_deliveries', max_deliveries, 'result_ttl', result_ttl, 'sent', token, 'batch', carrier)
if expires then redis.call('HSET', jk, 'expires_at', expires) end
local items = base .. 'items:' .. carrier
local n = redis.call('RPUSH', items, id)
local ck = base .. 'job:' .. carrier
redis.call('HSET', ck, 'batch_size', tostring(n))
if n >= max_size then
  -- full: it runs now, and the next item opens a new batch
  redis.call('DEL', open)
  redis.call('ZREM', q.delayed, carrier)
  redis.call('HSET', ck, 'status', 'queued', 'closed_at', NOWS)
  redis.call('ZADD', q.ready, string.format('%d', ready_score(priority, NOW)), carrier)
  wake(q.wake, 1)
elseif opened then
  wake(q.wake, 1)  -- an idle worker learns when the batch falls due
end
return {1, id}
