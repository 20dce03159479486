-- Record a finished step's JSON result under its job (kubeq.step), fenced by the attempt's
-- lease token: an attempt that no longer holds the job (its lease was taken over, it was
-- aborted or has ended) records nothing. A step already recorded keeps its first result.
-- The record is a field of the job hash ('step:<name>'), so it lives in the job's slot and
-- expires with the job's record. Each value is capped, and so is their total per job.
-- KEYS: the job's hash. ARGV: lease token, step name, JSON value, max bytes per step, max
-- bytes per job.
-- Returns 1 when recorded, 2 when it was recorded already, 0 when refused (lease lost),
-- -1 when the job's steps would pass the total cap.
local name, value = ARGV[2], ARGV[3]
local max, total = int(ARGV[4]), int(ARGV[5])
if not max or not total or #value > max then
  error('kubeq: step ' .. name .. ' is ' .. #value .. ' bytes, over the limit of ' ..
    tostring(ARGV[4]) .. ' (defaults.MAX_STEP_BYTES)')
end
local f = job_fields(KEYS[1], 'status', 'lease', 'lapsed', 'steps_bytes')
if not f or not holds(ARGV[1], f[1], f[2], f[3]) then return 0 end
local field = 'step:' .. name
if redis.call('HEXISTS', KEYS[1], field) == 1 then return 2 end
local used = (int(f[4]) or 0) + #value
if used > total then return -1 end
redis.call('HSET', KEYS[1], field, value, 'steps_bytes', used)
return 1
