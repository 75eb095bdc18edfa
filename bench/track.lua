-- wrk: valid /track bodies spread over TENANTS tenants and VISITORS visitors.
-- bench/soak/peak.lua loads this file for the same mix (`pick` and `track_request`).
local tenants = tonumber(os.getenv("BENCH_TENANTS") or "10000")
local first = tonumber(os.getenv("BENCH_FIRST_TENANT") or "1")
local visitors = tonumber(os.getenv("BENCH_VISITORS") or "100000")
local types = {"pageview", "pageview", "pageview", "click_whatsapp", "click_call",
               "click_toggle_currency", "qr_scan", "product_click"}

-- A tenant, an event type and a visitor of the mix.
pick = function()
  return first + math.random(tenants) - 1, types[math.random(#types)], math.random(visitors)
end

track_request = function(tenant, kind, visitor)
  local body = string.format(
    '{"tenant_id": %d, "event_type": "%s", "metadata": {"button_location": "hero"}}',
    tenant, kind)
  return wrk.format("POST", "/api/analytics/track", {
    ["Content-Type"] = "application/json",
    ["User-Agent"] = "Mozilla/5.0 (X11; Linux x86_64) Firefox/140." .. (visitor % 97),
    ["X-Forwarded-For"] = string.format("198.%d.%d.%d", 18 + math.floor(visitor / 65536) % 2,
                                        math.floor(visitor / 256) % 256, visitor % 256),
  }, body)
end

request = function()
  return track_request(pick())
end
