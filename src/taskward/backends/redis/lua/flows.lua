-- Workflow steps (taskward.graph), prepended after common.lua to the scripts that end, retry,
-- delete or release steps. The rules are those of taskward.backends.memory.flows, run in the
-- script of the write that causes them: a fan-in is released by exactly one script.
--
-- A step's fields live in its job hash, prefixed wf_ (gone with the job when it is deleted or
-- pruned): wf_id (its workflow), wf_name, wf_label (Python's repr of the name, for messages),
-- wf_on_failure ('cancel' or 'continue'), wf_finalizer ('1' or absent), wf_waiting (how many
-- dependencies still hold it back), wf_propagated ('1' when a dependency's end cancelled it)
-- and wf_children (the ids of the steps that depend on it, comma-separated, absent if none).
-- Its dependencies are its depends_on (JSON array of job ids).

local STEP_FIELDS = {'state', 'queue', 'task', 'priority', 'scheduled_at', 'partition_key',
                     'attempt', 'errors', 'depends_on', 'wf_id', 'wf_on_failure',
                     'wf_waiting', 'wf_propagated', 'wf_finalizer'}

-- taskward.graph.counts_as_done
local function counts_as_done(state, on_failure)
  if on_failure == 'continue' then return FINISHED[state] == true end
  return state == 'completed'
end

-- taskward.graph.waiting_for: the dependencies (a JSON array of ids) that hold a step back;
-- a deleted one counts as ended.
local function waiting_for(depends_on, on_failure)
  local n = 0
  if depends_on == nil or depends_on == '' then return 0 end
  for dep in string.gmatch(depends_on, '%d+') do
    local state = redis.call('HGET', jkey(dep), 'state')
    if state and not counts_as_done(state, on_failure) then n = n + 1 end
  end
  return n
end

-- Move job `id` (fields h, state and index fields loaded) to `state`, writing `fields` too.
local function move(id, h, state, fields)
  check_sets(h.queue, h.task, state)
  check_key_sets(h.queue, state, h.partition_key)
  unindex(id, h)
  h.state = state
  fields[#fields + 1] = 'state'
  fields[#fields + 1] = state
  redis.call('HSET', jkey(id), unpack(fields))
  index(id, h)
end

-- Release a blocked step at `now`: pending, or scheduled when its own time is later
-- (taskward.graph.released_state); a queue that gets a pending job is noted in `woken`.
local function release(id, h, now, woken)
  local state = 'pending'
  if tonumber(h.scheduled_at) > tonumber(now) then state = 'scheduled' end
  move(id, h, state, {'wf_waiting', '0'})
  if state == 'pending' then woken[h.queue] = true end
end

-- Cancel the waiting job `id` at `now` (ISO JSON text `at_json`), recording an error of
-- `kind` with `message` (JSON text).
local function cancel_waiting(id, h, now, at_json, kind, message, propagated)
  local record = '{"attempt":' .. h.attempt .. ',"at":' .. at_json .. ',"kind":"' .. kind ..
    '","message":' .. message .. ',"traceback":null}'
  h.cancelled_at = now
  local fields = {'cancelled_at', now, 'errors', with_error(h.errors, record)}
  if propagated then
    fields[#fields + 1] = 'wf_propagated'
    fields[#fields + 1] = '1'
  end
  move(id, h, 'cancelled', fields)
end

-- Step `id` ended in `state` (false: deleted, its hash still there): release or cancel its
-- blocked dependents, and so on down the graph (a dependent cancelled here ends in turn).
local function step_ended(id, state, now, at_json, woken)
  local ended = {{id, state}}
  while #ended > 0 do
    local top = table.remove(ended)
    local parent, pend = top[1], top[2]
    local children, label = unpack(redis.call('HMGET', jkey(parent), 'wf_children', 'wf_label'))
    if children then
      for child in string.gmatch(children, '%d+') do
        local h = load_fields(child, STEP_FIELDS)
        if h and h.state == 'blocked' and h.wf_id then
          if pend == 'completed' or h.wf_on_failure == 'continue' then
            local waiting = tonumber(h.wf_waiting or '1') - 1
            if waiting <= 0 then
              release(child, h, now, woken)
            else
              redis.call('HSET', jkey(child), 'wf_waiting', string.format('%d', waiting))
            end
          else
            local how = 'was deleted'
            if pend then how = 'ended ' .. pend end
            local message = 'dependency ' .. (label or ("'" .. parent .. "'")) .. ' (job ' ..
              parent .. ') ' .. how
            cancel_waiting(child, h, now, at_json, 'DependencyFailed', cjson.encode(message), true)
            ended[#ended + 1] = {child, 'cancelled'}
          end
        end
      end
    end
  end
end

-- The retried step `id` (h: its fields, not yet indexed in their new state) waits while a
-- dependency holds it back: its state is `blocked` then, else `state`. Answers the state.
local function retried_state(id, h, state)
  local waiting = waiting_for(h.depends_on, h.wf_on_failure)
  redis.call('HSET', jkey(id), 'wf_waiting', string.format('%d', waiting))
  redis.call('HDEL', jkey(id), 'wf_propagated')
  if waiting > 0 then return 'blocked' end
  return state
end

-- After a retry of step `id`: its dependents cancelled by its end wait again (and theirs,
-- down the graph); its blocked dependents are recounted.
local function step_retried(id)
  local parents = {id}
  while #parents > 0 do
    local parent = table.remove(parents)
    local children = redis.call('HGET', jkey(parent), 'wf_children')
    if children then
      for child in string.gmatch(children, '%d+') do
        local h = load_fields(child, STEP_FIELDS)
        if h and h.wf_id then
          local again = h.state == 'cancelled' and h.wf_propagated == '1'
          if h.state == 'blocked' or again then
            local waiting = waiting_for(h.depends_on, h.wf_on_failure)
            redis.call('HSET', jkey(child), 'wf_waiting', string.format('%d', waiting))
            if again then
              redis.call('HDEL', jkey(child), 'cancelled_at', 'wf_propagated')
              move(child, h, 'blocked', {})
              parents[#parents + 1] = child
            end
          end
        end
      end
    end
  end
end

-- A workflow as get_workflow answers it: {'=' .. name or '', inserted_at, {step hashes}} in
-- insert order, or {} when there is no such workflow.
local function read_workflow(wid)
  local name, inserted = unpack(redis.call('HMGET', wkey(wid), 'name', 'inserted_at'))
  if not inserted then return {} end
  local steps = {}
  for _, id in ipairs(redis.call('ZRANGE', wstepskey(wid), 0, -1)) do
    local flat = redis.call('HGETALL', jkey(id))
    if #flat > 0 then steps[#steps + 1] = flat end
  end
  local shown = ''
  if name then shown = '=' .. name end
  return {shown, inserted, steps}
end

local function publish(woken)
  for queue in pairs(woken) do redis.call('PUBLISH', WAKE, queue) end
end
