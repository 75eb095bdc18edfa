-- Accepts one event atomically, or refuses it without a trace.
-- KEYS: 1 rate zset, 2 pending counters, 3 live totals, 4 day sketch, 5 minute sketch,
--       6 event stream, 7 dirty set
-- ARGV: 1 now_ms, 2 limit, 3 window_ms, 4 stream bound, 5 counter field,
--       6 time-on-page ms ('' if none), 7 visitor hash, 8 dirty member,
--       9 day ttl, 10 totals ttl, 11 minute ttl, 12 channel, 13 live message,
--       14 the raw event (JSON), stored in the stream as field `e`
-- Returns {1} accepted, {0, retry_ms} over the rate limit, {2} buffer full.
local now = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local window = tonumber(ARGV[3])

redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) >= limit then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {0, tonumber(oldest[2]) + window - now}
end
if redis.call('XLEN', KEYS[6]) >= tonumber(ARGV[4]) then
  return {2}
end

local id = redis.call('XADD', KEYS[6], '*', 'e', ARGV[14])
redis.call('ZADD', KEYS[1], now, id)
redis.call('PEXPIRE', KEYS[1], window)

local field = ARGV[5]
for _, counters in ipairs({KEYS[2], KEYS[3]}) do
  redis.call('HINCRBY', counters, 'events', 1)
  redis.call('HINCRBY', counters, field, 1)
  if ARGV[6] ~= '' then
    redis.call('HINCRBY', counters, 'time_on_page_ms', ARGV[6])
  end
end
redis.call('EXPIRE', KEYS[3], ARGV[10])

redis.call('PFADD', KEYS[4], ARGV[7])
redis.call('EXPIRE', KEYS[4], ARGV[9])
redis.call('PFADD', KEYS[5], ARGV[7])
redis.call('EXPIRE', KEYS[5], ARGV[11])

redis.call('SADD', KEYS[7], ARGV[8])
redis.call('PUBLISH', ARGV[12], ARGV[13])
return {1}
