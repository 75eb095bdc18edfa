-- New generations (realtime/generations.py): each key set to its fresh value, all in one call
-- rather than a command a key. The keys share one hash tag (a shard's).
-- KEYS: the generations
-- ARGV: 1 seconds each lives, then a fresh value per key, in KEYS' order
for i = 1, #KEYS do
  redis.call('SET', KEYS[i], ARGV[i + 1], 'EX', ARGV[1])
end
