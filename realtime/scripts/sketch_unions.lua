-- Unions of visitor sketches given as values (from Postgres), several groups in one call:
-- each group's count, or each group's merged sketch.
-- KEYS: scratch keys, as many as the largest group has sketches
-- ARGV: 1 'count' or 'sketch', 2 the number of groups n, 3..n+2 each group's size, then the
--       sketches of every group, group after group (none empty)
-- Returns, per group: its count (PFCOUNT of the union), or its merged sketch ('' if empty).
local mode, groups = ARGV[1], tonumber(ARGV[2])
local results = {}
local at = groups + 3
for g = 1, groups do
  local size = tonumber(ARGV[g + 2])
  if size == 0 then
    results[g] = mode == 'count' and 0 or ''
  else
    local used = {}
    for i = 1, size do
      redis.call('SET', KEYS[i], ARGV[at])
      used[i] = KEYS[i]
      at = at + 1
    end
    if mode == 'count' then
      results[g] = redis.call('PFCOUNT', unpack(used))
    else
      redis.call('PFMERGE', used[1], unpack(used))
      results[g] = redis.call('GET', used[1])
    end
    redis.call('DEL', unpack(used))
  end
end
return results
