-- Accepts one event atomically, or refuses it without a trace.
-- KEYS: 1 rate zset (the tenant's accepted events in the window), 2 pending counters,
--       3 live totals, 4 day sketch, 5 minute sketch, 6 event stream, 7 dirty set,
--       8 day leads sketch, 9 the client's rate zset (its accepted events for this tenant
--       in the window)
-- ARGV: 1 now_ms,
--       2 limits, space-separated: rate limit per tenant, rate limit per client (0: none),
--         window ms, stream bound, day ttl, totals ttl, minute ttl (one argument, as they
--         are the same for every call)
--       3 counter field, 4 time-on-page ms ('' if none), 5 visitor hash, 6 dirty member,
--       7 channel, 8 the raw event (realtime/stream.py), stored in the stream as `e` and
--       published to live dashboards, 9 '1' when the event type is a lead (the visitor
--       hash then goes into the day's leads sketch too), else ''
-- Returns {1} accepted, {0, retry_ms} over the tenant's rate limit, {3, retry_ms} over the
-- client's, {2} buffer full. A refused event is in neither rate zset, so the events one
-- client is refused do not use up the tenant's budget.
local now = tonumber(ARGV[1])
local limit, client_limit, window, bound, day_ttl, totals_ttl, minute_ttl =
  string.match(ARGV[2], '^(%d+) (%d+) (%d+) (%d+) (%d+) (%d+) (%d+)$')
limit, client_limit, window = tonumber(limit), tonumber(client_limit), tonumber(window)

-- How long until the oldest event in a full window leaves it.
local function retry_ms(rate)
  local oldest = redis.call('ZRANGE', rate, 0, 0, 'WITHSCORES')
  return tonumber(oldest[2]) + window - now
end

if client_limit > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[9], '-inf', now - window)
  if redis.call('ZCARD', KEYS[9]) >= client_limit then
    return {3, retry_ms(KEYS[9])}
  end
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) >= limit then
  return {0, retry_ms(KEYS[1])}
end
if redis.call('XLEN', KEYS[6]) >= tonumber(bound) then
  return {2}
end

local id = redis.call('XADD', KEYS[6], '*', 'e', ARGV[8])
redis.call('ZADD', KEYS[1], now, id)
redis.call('PEXPIRE', KEYS[1], window)
if client_limit > 0 then
  redis.call('ZADD', KEYS[9], now, id)
  redis.call('PEXPIRE', KEYS[9], window)
end

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
