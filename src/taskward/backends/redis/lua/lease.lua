-- Take or renew lease ARGV[2] for holder ARGV[3] at ARGV[4] until ARGV[5], unless another
-- holder has it past now: 1 taken, 0 refused.
local name, holder, now, untill = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local leases = B .. ':leases'
local current = redis.call('HGET', leases, name)
if current then
  local sep = string.find(current, '|', 1, true)
  local who, till = string.sub(current, sep + 1), string.sub(current, 1, sep - 1)
  if who ~= holder and tonumber(till) > tonumber(now) then return 0 end
end
redis.call('HSET', leases, name, untill .. '|' .. holder)
return 1
