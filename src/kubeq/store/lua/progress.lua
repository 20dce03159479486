-- A running task's progress or meta (kubeq.current_job().set_progress / update_meta), fenced
-- by its lease token: a write from an attempt that has ended, or whose lease was taken over
-- by another worker (a zombie), is refused; a lapsed lease not delivered again still holds
-- the job (docs/architecture.md, Guarantees). Returns 1 when written, 0 when refused.
-- KEYS: the job's hash. ARGV: lease token, field ('progress' or 'meta'), JSON value, max bytes.
local field, value, max = ARGV[2], ARGV[3], int(ARGV[4])
if field ~= 'progress' and field ~= 'meta' then
  error('kubeq: progress.lua writes the field progress or meta, not ' .. tostring(field))
end
if not max or #value > max then
  error('kubeq: the ' .. field .. ' value is ' .. #value .. ' bytes, over the limit of ' ..
    tostring(ARGV[4]) .. ' (defaults.MAX_PROGRESS_BYTES)')
end
local f = job_fields(KEYS[1], 'status', 'lease', 'lapsed')
if not f or not holds(ARGV[1], f[1], f[2], f[3]) then return 0 end
redis.call('HSET', KEYS[1], field, value)
return 1
