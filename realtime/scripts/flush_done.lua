-- Forgets a flush batch once Postgres holds it, unless another flush already did.
-- KEYS: 1 batch hash, 2 batch id   ARGV: 1 batch id
if redis.call('GET', KEYS[2]) == ARGV[1] then
  redis.call('DEL', KEYS[1], KEYS[2])
  return 1
end
return 0
