-- Raises the live totals of a day to what Postgres holds plus what is still pending, so the
-- live numbers recover after Redis lost them and never go down.
-- KEYS: 1 totals hash, 2 pending counters   ARGV: 1 ttl, 2.. field, durable value pairs
for i = 2, #ARGV, 2 do
  local field = ARGV[i]
  local target = tonumber(ARGV[i + 1]) + tonumber(redis.call('HGET', KEYS[2], field) or '0')
  if tonumber(redis.call('HGET', KEYS[1], field) or '0') < target then
    redis.call('HSET', KEYS[1], field, target)
  end
end
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1
