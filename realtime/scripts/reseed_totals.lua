-- Raises the live totals of days to what Postgres holds plus what is still pending, so the
-- live numbers recover after Redis lost them and never go down.
-- KEYS: pairs of (totals hash, pending counters hash), one pair per day
-- ARGV: 1 ttl, 2 number of fields F, 3..2+F field names (the first is `events`),
--       then F durable values per day
-- Every event increments all of a day's counters together, so totals that hold at least
-- the durable plus pending `events` lost nothing and are left alone.
local fields = tonumber(ARGV[2])
for day = 0, #KEYS / 2 - 1 do
  local totals, pending = KEYS[2 * day + 1], KEYS[2 * day + 2]
  local base = 2 + fields + day * fields
  local function target(f)
    return tonumber(ARGV[base + f]) + tonumber(redis.call('HGET', pending, ARGV[2 + f]) or '0')
  end
  if tonumber(redis.call('HGET', totals, ARGV[3]) or '0') < target(1) then
    for f = 1, fields do
      local wanted = target(f)
      if tonumber(redis.call('HGET', totals, ARGV[2 + f]) or '0') < wanted then
        redis.call('HSET', totals, ARGV[2 + f], wanted)
      end
    end
    redis.call('EXPIRE', totals, ARGV[1])
  end
end
return 1
