-- Where key ARGV[3] of queue ARGV[2] stands: {the queue's B:limits field ('' if none), the
-- key's state in B:kstate:<queue> ('' if none), the ids of the key's first ARGV[4] running
-- jobs, ascending}. Read-only; a script so that the key names are built in one place.
local queue, key, shown = ARGV[2], ARGV[3], tonumber(ARGV[4])
local stored = redis.call('HGET', LIMITS, queue)
local state = redis.call('HGET', kstatekey(queue), key)
local running = {}
if shown > 0 then running = redis.call('ZRANGE', krkey(queue, key), 0, shown - 1) end
return {stored or '', state or '', running}
