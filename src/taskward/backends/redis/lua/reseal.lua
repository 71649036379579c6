-- Key rotation: sealed values of jobs written again. From ARGV[2], eight arguments per job:
-- id, state, attempt, number of errors, the arguments' envelope ("" for none: what the job
-- had when it was read), then kwargs, result and errors as JSON text ("" keeps the stored
-- value). A job is written only if it still has that state, attempt, number of errors and
-- envelope. Returns 1 (written) or 0 per job.
local function envelope_of(kwargs)
  if not kwargs then return nil end
  local ok, decoded = pcall(cjson.decode, kwargs)
  if not ok or type(decoded) ~= 'table' then return nil end
  return decoded['taskward.sealed']
end

local written = {}
for i = 2, #ARGV, 8 do
  local key = jkey(ARGV[i])
  local state, attempt, errors, kwargs =
    unpack(redis.call('HMGET', key, 'state', 'attempt', 'errors', 'kwargs'))
  local count = 0
  if errors then count = #cjson.decode(errors) end
  local same = state == ARGV[i + 1] and attempt == ARGV[i + 2] and count == tonumber(ARGV[i + 3])
  if same and ARGV[i + 4] ~= '' then same = envelope_of(kwargs) == ARGV[i + 4] end
  if same then
    if ARGV[i + 5] ~= '' then redis.call('HSET', key, 'kwargs', ARGV[i + 5]) end
    if ARGV[i + 6] ~= '' then redis.call('HSET', key, 'result', ARGV[i + 6]) end
    if ARGV[i + 7] ~= '' then redis.call('HSET', key, 'errors', ARGV[i + 7]) end
    written[#written + 1] = 1
  else
    written[#written + 1] = 0
  end
end
return written
