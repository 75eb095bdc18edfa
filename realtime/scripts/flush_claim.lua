-- Moves pending counters aside into one flush batch per shard, atomically, in ONE call: a
-- batch id another flusher can see must name a complete batch (it may apply and forget it
-- at once), so the claim is not split the way sketch merges are.
-- KEYS: 1 dirty set, 2 batch hash, 3 batch id, 4.. pending counter hashes (one per member)
-- ARGV: 1 new batch id, 2.. dirty members, in the order of KEYS[4..]
-- Returns the id of the batch to apply: an unfinished earlier batch comes first, so a
-- flush killed halfway is finished by the next one before anything new is moved.
local current = redis.call('GET', KEYS[3])
if current then
  return current
end
local moved = 0
for i = 4, #KEYS do
  local member = ARGV[i - 2]
  local counters = redis.call('HGETALL', KEYS[i])
  for j = 1, #counters, 2 do
    redis.call('HINCRBY', KEYS[2], member .. '|' .. counters[j], counters[j + 1])
  end
  if #counters > 0 then
    moved = moved + 1
  end
  redis.call('DEL', KEYS[i])
  redis.call('SREM', KEYS[1], member)
end
if moved == 0 then
  return false
end
redis.call('SET', KEYS[3], ARGV[1])
return ARGV[1]
