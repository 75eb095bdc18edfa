-- wrk, closed loop, for `python -m bench.soak --peak`: bench/track.lua's mix, with HOT_SHARE
-- of the events sent to the dashboards' tenants, for DURATION seconds; then no new request,
-- and once every request sent has its answer, a "drained" line (the soak then ends wrk with
-- SIGINT, which interrupts its -d sleep). Every request is counted when sent (by event type,
-- and per hot tenant) and every answer by status, so the soak can check exactly that what
-- was answered 200 was stored.
--
-- Prints one JSON line per second ({"type": "second", ...}, counts so far) and, from done(),
-- one at the end ({"type": "final", ...}). One wrk thread (-t1), as `make bench` runs it.
dofile(os.getenv("BENCH_TRACK_LUA"))

local hot, watched = {}, {}
for id in string.gmatch(os.getenv("BENCH_HOT_TENANTS") or "", "%d+") do
  hot[#hot + 1] = tonumber(id)
  watched[tonumber(id)] = true
end
local hot_share = tonumber(os.getenv("BENCH_HOT_SHARE") or "0")
local duration = tonumber(os.getenv("BENCH_DURATION"))

local function json(value)
  if type(value) == "table" then
    local parts = {}
    for k, v in pairs(value) do
      parts[#parts + 1] = string.format("%q: %s", tostring(k), json(v))
    end
    return "{" .. table.concat(parts, ", ") .. "}"
  elseif type(value) == "string" then
    return string.format("%q", value)
  end
  return tostring(value)
end

local threads = {}
setup = function(thread)
  table.insert(threads, thread)
  thread:set("id", #threads)
end

-- Per thread.
init = function(args)
  started = os.time()
  second = 0
  sent, answered, accepted = 0, 0, 0
  sent_by_type, statuses, answered_by_second = {}, {}, {}
  sent_hot = {}  -- "tenant:type": flat, as thread:get cannot copy nested tables
  drained = false
  -- wrk calls the first thread's request() once before it starts, to look at what it
  -- returns, and never sends that one: it is not counted.
  looked_at = id ~= 1
end

local function count(t, key)
  t[key] = (t[key] or 0) + 1
end

request = function()
  if not looked_at then
    looked_at = true
    return track_request(pick())
  end
  local tenant, kind, visitor = pick()
  if #hot > 0 and math.random() < hot_share then
    tenant = hot[math.random(#hot)]
  end
  if watched[tenant] then  -- drawn for its share, or by the mix like any tenant
    count(sent_hot, tenant .. ":" .. kind)
  end
  sent = sent + 1
  count(sent_by_type, kind)
  return track_request(tenant, kind, visitor)
end

-- Past the duration the next request waits longer than the soak will: none is sent.
delay = function()
  if os.time() - started >= duration then return 3600000 end
  return 0
end

response = function(status, headers, body)
  answered = answered + 1
  count(statuses, tostring(status))
  if status == 200 then accepted = accepted + 1 end
  local now = os.time() - started
  count(answered_by_second, tostring(now))
  if now ~= second then
    second = now
    io.write(json({type = "second", t = now, sent = sent, answered = answered,
                   accepted = accepted}), "\n")
    io.flush()
  end
  if not drained and now >= duration and answered == sent then
    drained = true
    io.write(json({type = "drained", t = now, sent = sent, answered = answered}), "\n")
    io.flush()
  end
end

done = function(summary, latency, requests)
  local final = {type = "final", sent = 0, answered = 0, accepted = 0,
                 sent_by_type = {}, statuses = {}, sent_hot = {}, answered_by_second = {},
                 errors = summary.errors, runtime_us = summary.duration,
                 latency_ms = {p50 = latency:percentile(50) / 1000,
                               p99 = latency:percentile(99) / 1000,
                               p999 = latency:percentile(99.9) / 1000,
                               max = latency.max / 1000}}
  local function add(into, from)
    for k, v in pairs(from) do into[k] = (into[k] or 0) + v end
  end
  for _, thread in ipairs(threads) do
    for _, name in ipairs({"sent", "answered", "accepted"}) do
      final[name] = final[name] + thread:get(name)
    end
    for _, name in ipairs({"sent_by_type", "statuses", "sent_hot", "answered_by_second"}) do
      add(final[name], thread:get(name))
    end
  end
  io.write(json(final), "\n")
  io.flush()
end
