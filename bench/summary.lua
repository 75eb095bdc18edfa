-- wrk: GET /api/analytics/{id} of one tenant with its bearer token (the bare route ignores it).
local tenant = os.getenv("BENCH_TENANT")
local token = os.getenv("BENCH_TOKEN")

request = function()
  return wrk.format("GET", "/api/analytics/" .. tenant, {["Authorization"] = "Bearer " .. token})
end
