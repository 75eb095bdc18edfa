-- Unions the durable copies of day visitor sketches into the live ones and returns the
-- results, so a sketch Redis lost is rebuilt and Postgres only ever receives supersets.
-- KEYS: 1 scratch key, 2.. day sketches
-- ARGV: 1 ttl seconds, 2.. durable sketch per day sketch ('' if none)
-- Returns, per day sketch, {sketch, count}, or {} when there is none.
local results = {}
for i = 2, #KEYS do
  local durable = ARGV[i]
  if durable ~= '' then
    redis.call('SET', KEYS[1], durable)
    redis.call('PFMERGE', KEYS[i], KEYS[i], KEYS[1])
    redis.call('DEL', KEYS[1])
    redis.call('EXPIRE', KEYS[i], ARGV[1])
  end
  local sketch = redis.call('GET', KEYS[i])
  if sketch then
    results[i - 1] = {sketch, redis.call('PFCOUNT', KEYS[i])}
  else
    results[i - 1] = {}
  end
end
return results
