-- Read the limits (B:limits) and the rates, holds and rate windows (B:flow) of every queue in
-- one step: {limits as HGETALL, flow as HGETALL}. A script rather than MULTI because a full
-- server (maxmemory) refuses every command of a transaction, reads too, and statistics must
-- still be readable then.
return {redis.call('HGETALL', LIMITS), redis.call('HGETALL', FLOW)}
