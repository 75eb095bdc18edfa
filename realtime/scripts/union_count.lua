-- Counts the union of visitor sketches given as values (from Postgres).
-- KEYS: scratch keys, one per sketch   ARGV: the sketches
for i = 1, #KEYS do
  redis.call('SET', KEYS[i], ARGV[i])
end
local count = redis.call('PFCOUNT', unpack(KEYS))
redis.call('DEL', unpack(KEYS))
return count
