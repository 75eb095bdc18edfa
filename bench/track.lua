-- wrk: valid /track bodies spread over TENANTS tenants and VISITORS visitors.
local tenants = tonumber(os.getenv("BENCH_TENANTS") or "10000")
local first = tonumber(os.getenv("BENCH_FIRST_TENANT") or "1")
local visitors = tonumber(os.getenv("BENCH_VISITORS") or "100000")
local types = {"pageview", "pageview", "pageview", "click_whatsapp", "click_call",
               "click_toggle_currency", "qr_scan", "product_click"}

request = function()
  local visitor = math.random(visitors)
  local body = string.format(
    '{"tenant_id": %d, "event_type": "%s", "metadata": {"button_location": "hero"}}',
    first + math.random(tenants) - 1, types[math.random(#types)])
  return wrk.format("POST", "/api/analytics/track", {
    ["Content-Type"] = "application/json",
    ["User-Agent"] = "Mozilla/5.0 (X11; Linux x86_64) Firefox/140." .. (visitor % 97),
    ["X-Forwarded-For"] = string.format("198.%d.%d.%d", 18 + math.floor(visitor / 65536) % 2,
                                        math.floor(visitor / 256) % 256, visitor % 256),
  }, body)
end
