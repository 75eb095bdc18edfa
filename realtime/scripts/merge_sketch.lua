-- Unions the durable copy of a day's visitor sketch into the live one and returns the result,
-- so a sketch Redis lost is rebuilt and Postgres only ever receives supersets.
-- KEYS: 1 day sketch, 2 scratch key   ARGV: 1 durable sketch ('' if none), 2 ttl seconds
if ARGV[1] ~= '' then
  redis.call('SET', KEYS[2], ARGV[1])
  redis.call('PFMERGE', KEYS[1], KEYS[1], KEYS[2])
  redis.call('DEL', KEYS[2])
  redis.call('EXPIRE', KEYS[1], ARGV[2])
end
local sketch = redis.call('GET', KEYS[1])
if not sketch then
  return false
end
return {sketch, redis.call('PFCOUNT', KEYS[1])}
