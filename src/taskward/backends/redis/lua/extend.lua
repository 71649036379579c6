-- Heartbeat of worker ARGV[2]: extend to ARGV[3] the leases of the job ids ARGV[4..] it
-- still holds. Answers {lost ids, ids with a cancel request}.
local worker, lease = ARGV[2], ARGV[3]
local lost, cancel = {}, {}
for i = 4, #ARGV do
  local id = ARGV[i]
  local key = jkey(id)
  local state, by, flag = unpack(redis.call('HMGET', key, 'state', 'attempted_by',
                                            'cancel_requested'))
  if state ~= 'running' or by ~= worker then
    lost[#lost + 1] = id
  else
    redis.call('HSET', key, 'lease_until', lease)
    redis.call('ZADD', RUNNING, lease, id)
    if flag == '1' then cancel[#cancel + 1] = id end
  end
end
return {lost, cancel}
