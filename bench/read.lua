-- wrk: the two GET endpoints of one tenant, alternately, with its bearer token.
local tenant = os.getenv("BENCH_TENANT")
local token = os.getenv("BENCH_TOKEN")
local n = 0

request = function()
  n = n + 1
  local path = "/api/analytics/" .. tenant
  if n % 2 == 0 then path = path .. "/today" end
  return wrk.format("GET", path, {["Authorization"] = "Bearer " .. token})
end
