-- Accepts one event atomically, or refuses it without a trace.
-- KEYS: 1 rate zset, 2 pending counters, 3 live totals, 4 day sketch, 5 minute sketch,
--       6 event stream, 7 dirty set, 8 day leads sketch
-- ARGV: 1 now_ms,
--       2 limits, space-separated: rate limit, window ms, stream bound, day ttl,
--         totals ttl, minute ttl (one argument, as they are the same for every call)
--       3 counter field, 4 time-on-page ms ('' if none), 5 visitor hash, 6 dirty member,
--       7 channel, 8 the raw event (realtime/stream.py), stored in the stream as `e` and
--       published to live dashboards, 9 '1' when the event type is a lead (the visitor
--       hash then goes into the day's leads sketch too), else ''
-- Returns {1} accepted, {0, retry_ms} over the rate limit, {2} buffer full.
local now = tonumber(ARGV[1])
local limit, window, bound, day_ttl, totals_ttl, minute_ttl =
  string.match(ARGV[2], '^(%d+) (%d+) (%d+) (%d+) (%d+) (%d+)$')
limit, window = tonumber(limit), tonumber(window)

redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) >= limit then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {0, tonumber(oldest[2]) + window - now}
end
if redis.call('XLEN', KEYS[6]) >= tonumber(bound) then
  return {2}
end

local id = redis.call('XADD', KEYS[6], '*', 'e', ARGV[8])
redis.call('ZADD', KEYS[1], now, id)
redis.call('PEXPIRE', KEYS[1], window)

local field = ARGV[3]
for _, counters in ipairs({KEYS[2], KEYS[3]}) do
  redis.call('HINCRBY', counters, 'events', 1)
  redis.call('HINCRBY', counters, field, 1)
  if ARGV[4] ~= '' then
    redis.call('HINCRBY', counters, 'time_on_page_ms', ARGV[4])
  end
end
redis.call('EXPIRE', KEYS[3], totals_ttl)

redis.call('PFADD', KEYS[4], ARGV[5])
redis.call('EXPIRE', KEYS[4], day_ttl)
if ARGV[9] == '1' then
  redis.call('PFADD', KEYS[8], ARGV[5])
  redis.call('EXPIRE', KEYS[8], day_ttl)
end
redis.call('PFADD', KEYS[5], ARGV[5])
redis.call('EXPIRE', KEYS[5], minute_ttl)

redis.call('SADD', KEYS[7], ARGV[6])
redis.call('SPUBLISH', ARGV[7], ARGV[8])
return {1}
