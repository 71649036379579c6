-- Hold queue ARGV[2] until ARGV[3] (us since the epoch), kept in its B:limits field (see
-- parse_flow): the later of it and the stored hold wins, so two jobs that hit an upstream limit
-- at once keep the longer wait. ARGV[3] = '' releases the hold and publishes the queue, so
-- waiters held back on every node claim now. Its limits are left alone. ARGV[4]: '' for the
-- whole queue, or '=' and one key of the (partitioned) queue, held alone: its hold is kept
-- with its rate window in B:kstate:<queue>. A script because a hold only grows: compare and
-- write in one step.
local queue, until_us, which = ARGV[2], ARGV[3], ARGV[4]

-- The hold of `st` (a parsed flow or key state) as the call asks; false when unchanged.
local function held(st)
  if until_us == '' then
    if not st.held then return false end
    st.held = nil
  elseif st.held and tonumber(st.held) >= tonumber(until_us) then
    return false
  else
    st.held = until_us
  end
  return true
end

local changed
if which ~= '' then
  local key, states = string.sub(which, 2), kstatekey(queue)
  local st = parse_key_state(redis.call('HGET', states, key))  -- fails first on a foreign key
  changed = held(st)
  if changed then
    local text = key_state_text(st)
    if text then redis.call('HSET', states, key, text) else redis.call('HDEL', states, key) end
  end
else
  local stored = redis.call('HGET', LIMITS, queue)  -- fails first on a foreign B:limits
  local flow = {}
  if stored then
    flow = parse_flow(stored)
    if flow == nil then
      error('the limits of queue ' .. queue .. ' in ' .. LIMITS .. ' are not '
            .. 'global|count:period_ms|held_until|window:used[|rule]: ' .. stored
            .. ' (set the queue\'s limits again)')
    end
  end
  changed = held(flow)
  if changed then
    local text = flow_text(flow)
    if text then
      redis.call('HSET', LIMITS, queue, text)
    else
      redis.call('HDEL', LIMITS, queue)
      drop_waits(queue)  -- the waits live with the queue's limits
    end
  end
end
if changed and until_us == '' then redis.call('PUBLISH', WAKE, queue) end
return 0
