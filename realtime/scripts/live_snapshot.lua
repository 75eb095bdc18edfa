-- A tenant's live numbers in one call (one hash slot: every key carries the tenant's tag).
-- KEYS: 1 live totals (hash), 2 the day's visitor sketch, 3.. the minute sketches of the
--       active-visitors window
-- ARGV: the totals fields to read, in order
-- Returns {visitors_today, active_visitors, value of each field (nil when absent)}.
local totals = redis.call('HMGET', KEYS[1], unpack(ARGV))
local today = redis.call('PFCOUNT', KEYS[2])
local active = redis.call('PFCOUNT', unpack(KEYS, 3))
return {today, active, unpack(totals)}
