-- The fairness keys of one queue for people and the operator (`kubeq stats --by-key`,
-- metrics, the autoscaler's worst-key wait): read only, one round trip.
-- KEYS: the queue's 8 keys. ARGV: base, top (rows wanted), scan (keys looked at at most).
-- The keys with ready jobs are looked at in the order the fetch will serve them, at most
-- `scan` of them; the `top` with the oldest next job come back, oldest first.
-- Returns: now_ms, active keys, keys scanned, unkeyed backlog, unkeyed oldest ready ms (-1:
-- none), then per row: key, backlog, ready ms of its next job, weight (a string).
local q = queue_keys(0)
local base, top, scan = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local idx = base .. 'fair'
local t = redis.call('TYPE', idx)['ok']
local active = 0
if t == 'zset' then active = redis.call('ZCARD', idx) end
local unkeyed = redis.call('ZCOUNT', q.ready, '-inf', '(' .. string.format('%d', FOFF))
local uoldest = -1
for band = 0, PMAX do
  local first = redis.call('ZRANGEBYSCORE', q.ready, string.format('%d', band * BAND),
    string.format('%d', (band + 1) * BAND - 1), 'WITHSCORES', 'LIMIT', 0, 1)
  if #first > 0 then
    local at = tonumber(first[2]) % BAND
    if uoldest < 0 or at < uoldest then uoldest = at end
  end
end
local rows = {}
if active > 0 then
  local keys = redis.call('ZRANGE', idx, 0, scan - 1)
  for _, key in ipairs(keys) do
    local fq = base .. 'fair:q:' .. key
    local head = redis.pcall('ZRANGE', fq, 0, 0, 'WITHSCORES')
    if type(head) == 'table' and not head.err and #head > 0 then
      rows[#rows + 1] = {key, redis.call('ZCARD', fq), tonumber(head[2]) % BAND}
    end
  end
end
table.sort(rows, function(a, b) return a[3] < b[3] end)
local out = {NOW, active, math.min(active, scan), unkeyed, uoldest}
for i = 1, math.min(top, #rows) do
  local w = redis.pcall('HGET', base .. 'fair:weights', rows[i][1])
  out[#out + 1] = rows[i][1]
  out[#out + 1] = rows[i][2]
  out[#out + 1] = rows[i][3]
  out[#out + 1] = type(w) == 'string' and w or '1'
end
return out
