-- Moves pending counters aside into one flush batch per shard, atomically per call; a batch
-- is claimed in several calls (a bounded number of tenant-days each, so no call holds Redis
-- long), all carrying the same new batch id.
-- KEYS: 1 dirty set, 2 batch hash, 3 batch id, 4.. pending counter hashes (one per member)
-- ARGV: 1 new batch id, 2 'new' (the first call) or 'more' (adds to the batch the first
--       call opened, only while it is still open), 3.. dirty members, in the order of KEYS[4..]
-- Returns the id of the batch to apply, or false when there is nothing to flush: an
-- unfinished earlier batch comes first, so a flush killed halfway is finished by the next
-- one before anything new is moved.
local current = redis.call('GET', KEYS[3])
if ARGV[2] == 'more' then
  if current ~= ARGV[1] then
    return current or false  -- another flusher finished this batch: stop adding to it
  end
elseif current then
  return current
end
local moved = 0
for i = 4, #KEYS do
  local member = ARGV[i - 1]
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
if moved > 0 and not current then
  redis.call('SET', KEYS[3], ARGV[1])
  current = ARGV[1]
end
return current or false
