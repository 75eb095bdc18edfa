-- Accepts each event of a batch atomically, or refuses it without a trace; the events are
-- taken in order, each seeing the ones before it (realtime/batching.py coalesces them).
-- KEYS: 10 an event: 1 rate zset (the tenant's accepted events in the window), 2 pending
--       counters, 3 live totals, 4 day sketch, 5 minute sketch, 6 event stream, 7 dirty
--       set, 8 day leads sketch, 9 the client's rate zset (its accepted events for this
--       tenant in the window), 10 the tenant's ingest health hash for this minute
-- ARGV: 1 limits, space-separated: rate limit per tenant, rate limit per client (0: none),
--         window ms, stream bound, day ttl, totals ttl, minute ttl, health ttl (the same
--         for every call)
--       then 8 an event: 1 now_ms, 2 counter field, 3 time-on-page ms ('' if none),
--         4 visitor hash, 5 dirty member, 6 channel, 7 the raw event (realtime/stream.py),
--         stored in the stream as `e` and published to live dashboards, 8 '1' when the
--         event type is a lead (the visitor hash then goes into the day's leads sketch
--         too), else ''
-- Returns a reply an event: {1} accepted, {0, retry_ms} over the tenant's rate limit,
-- {3, retry_ms} over the client's, {2} buffer full. A refused event is in neither rate
-- zset, so the events one client is refused do not use up the tenant's budget. Accepted
-- and rate-limited events are counted in the ingest health hash (its other outcomes never
-- reach this script: realtime/ingest_health.py).
local limit, client_limit, window, bound, day_ttl, totals_ttl, minute_ttl, health_ttl =
  string.match(ARGV[1], '^(%d+) (%d+) (%d+) (%d+) (%d+) (%d+) (%d+) (%d+)$')
limit, client_limit, window, bound =
  tonumber(limit), tonumber(client_limit), tonumber(window), tonumber(bound)

-- How long until the oldest event in a full window leaves it.
local function retry_ms(rate, now)
  local oldest = redis.call('ZRANGE', rate, 0, 0, 'WITHSCORES')
  return tonumber(oldest[2]) + window - now
end

local function count(health, outcome)
  if redis.call('HINCRBY', health, outcome, 1) == 1 then
    redis.call('EXPIRE', health, health_ttl)
  end
end

local function track(k, a)
  local rate, pending, totals, day_sketch, minute_sketch, events, dirty, leads, client_rate,
        health = KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[k + 4], KEYS[k + 5],
    KEYS[k + 6], KEYS[k + 7], KEYS[k + 8], KEYS[k + 9], KEYS[k + 10]
  local now, field, time_ms, visitor, dirty_member, channel, entry, lead =
    tonumber(ARGV[a + 1]), ARGV[a + 2], ARGV[a + 3], ARGV[a + 4], ARGV[a + 5], ARGV[a + 6],
    ARGV[a + 7], ARGV[a + 8]

  if client_limit > 0 then
    redis.call('ZREMRANGEBYSCORE', client_rate, '-inf', now - window)
    if redis.call('ZCARD', client_rate) >= client_limit then
      count(health, 'rate_limited')
      return {3, retry_ms(client_rate, now)}
    end
  end
  redis.call('ZREMRANGEBYSCORE', rate, '-inf', now - window)
  if redis.call('ZCARD', rate) >= limit then
    count(health, 'rate_limited')
    return {0, retry_ms(rate, now)}
  end
  if redis.call('XLEN', events) >= bound then
    return {2}
  end

  local id = redis.call('XADD', events, '*', 'e', entry)
  redis.call('ZADD', rate, now, id)
  redis.call('PEXPIRE', rate, window)
  if client_limit > 0 then
    redis.call('ZADD', client_rate, now, id)
    redis.call('PEXPIRE', client_rate, window)
  end

  for _, counters in ipairs({pending, totals}) do
    redis.call('HINCRBY', counters, 'events', 1)
    redis.call('HINCRBY', counters, field, 1)
    if time_ms ~= '' then
      redis.call('HINCRBY', counters, 'time_on_page_ms', time_ms)
    end
  end
  redis.call('EXPIRE', totals, totals_ttl)

  redis.call('PFADD', day_sketch, visitor)
  redis.call('EXPIRE', day_sketch, day_ttl)
  if lead == '1' then
    redis.call('PFADD', leads, visitor)
    redis.call('EXPIRE', leads, day_ttl)
  end
  redis.call('PFADD', minute_sketch, visitor)
  redis.call('EXPIRE', minute_sketch, minute_ttl)

  redis.call('SADD', dirty, dirty_member)
  redis.call('SPUBLISH', channel, entry)
  count(health, 'accepted')
  return {1}
end

local replies = {}
for i = 0, #KEYS / 10 - 1 do
  replies[i + 1] = track(10 * i, 1 + 8 * i)
end
return replies
