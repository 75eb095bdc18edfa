"""GET /{id}/stats: periods of the tenant's days, totals and the period before, leads and
conversion, the series by hour, day and month, CSV, and 400s for queries that mean nothing."""

from __future__ import annotations

import csv
import datetime as dt
import io
from zoneinfo import ZoneInfo

import pytest

from app.accounts.tenants import create_tenant
from app.accounts.tokens import create_token
from rollups.periods import Period, PeriodError, local_hours, resolve
from tests.support.apps import flush
from tests.support.http import track, visitor

DAY = 86_400


def at(zone: str, *args) -> float:
    return dt.datetime(*args, tzinfo=ZoneInfo(zone)).timestamp()


async def zoned_tenant(pool, zone: str):
    tenant = await create_tenant(pool, f"Stats {zone}", zone)
    _, token = await create_token(pool, tenant.id)
    return tenant, {"Authorization": f"Bearer {token}"}


async def get_stats(client, tenant_id, headers, **query):
    response = await client.get(f"/api/analytics/{tenant_id}/stats", headers=headers,
                                query_string=query)
    assert response.status_code == 200, await response.get_data()
    document = await response.get_json()
    assert document["success"] is True
    return document["data"]


async def send(client, tenant_id, n, *types, metadata=None):
    for event_type in types:
        response = await track(client, tenant_id, event_type, metadata, headers=visitor(n))
        assert response.status_code == 200, await response.get_data()


D = dt.date


@pytest.mark.parametrize(("name", "today", "period", "previous"), [
    ("today", D(2026, 3, 1), Period(D(2026, 3, 1), D(2026, 3, 1), "hour"),
     Period(D(2026, 2, 28), D(2026, 2, 28), "hour")),
    ("yesterday", D(2026, 3, 1), Period(D(2026, 2, 28), D(2026, 2, 28), "hour"),
     Period(D(2026, 2, 27), D(2026, 2, 27), "hour")),
    ("7d", D(2026, 11, 29), Period(D(2026, 11, 23), D(2026, 11, 29), "day"),
     Period(D(2026, 11, 16), D(2026, 11, 22), "day")),
    ("30d", D(2026, 3, 1), Period(D(2026, 1, 31), D(2026, 3, 1), "day"),
     Period(D(2026, 1, 1), D(2026, 1, 30), "day")),
    ("month", D(2026, 3, 10), Period(D(2026, 3, 1), D(2026, 3, 10), "day"),
     Period(D(2026, 2, 19), D(2026, 2, 28), "day")),
    ("last_month", D(2026, 3, 10), Period(D(2026, 2, 1), D(2026, 2, 28), "day"),
     Period(D(2026, 1, 4), D(2026, 1, 31), "day")),
    ("last_month", D(2026, 1, 31), Period(D(2025, 12, 1), D(2025, 12, 31), "day"),
     Period(D(2025, 10, 31), D(2025, 11, 30), "day")),
    ("12mo", D(2026, 3, 10), Period(D(2025, 4, 1), D(2026, 3, 10), "month"),
     Period(D(2024, 4, 1), D(2025, 3, 31), "month")),
])
def test_named_periods_and_the_period_before(name, today, period, previous):
    assert resolve(name, None, None, today) == (period, previous)


def test_custom_period_and_its_limits():
    today = D(2026, 11, 29)
    assert resolve("custom", "2026-01-01", "2026-01-10", today) == (
        Period(D(2026, 1, 1), D(2026, 1, 10), "day"),
        Period(D(2025, 12, 22), D(2025, 12, 31), "day"))
    assert resolve("custom", "2025-01-01", "2026-02-04", today)[0].days == 400
    with pytest.raises(PeriodError, match="at most 400 days"):
        resolve("custom", "2025-01-01", "2026-02-05", today)
    assert resolve(None, None, None, today)[0] == Period(D(2026, 11, 23), today, "day")


def test_local_hours_on_dst_days():
    madrid = ZoneInfo("Europe/Madrid")
    spring = local_hours(D(2026, 3, 29), madrid)
    assert len(spring) == 23 and "2026-03-29T02:00" not in spring
    autumn = local_hours(D(2026, 10, 25), madrid)
    assert len(autumn) == 24 and autumn.count("2026-10-25T02:00") == 1
    assert autumn == sorted(autumn)
    assert len(local_hours(D(2026, 10, 25), ZoneInfo("UTC"))) == 24


async def test_totals_previous_leads_and_conversion(app, client, pool, clock):
    tenant, headers = await zoned_tenant(pool, "America/Sao_Paulo")
    zone = "America/Sao_Paulo"
    # The period before (Nov 16-22): visitor 9 only, a lead.
    clock.now = at(zone, 2026, 11, 20, 10)
    await send(client, tenant.id, 9, "pageview", "click_call")
    # This week (Nov 23-29): visitors 0-3 come on two days; 0 and 1 become leads.
    clock.now = at(zone, 2026, 11, 23, 9)
    await send(client, tenant.id, 0, "pageview", "click_whatsapp", "click_whatsapp")
    await send(client, tenant.id, 1, "pageview")
    await send(client, tenant.id, 2, "pageview", "time_on_page", metadata={"seconds": 30})
    clock.now = at(zone, 2026, 11, 29, 8)
    await send(client, tenant.id, 0, "pageview", "click_call")
    await send(client, tenant.id, 1, "pageview", "click_whatsapp", "qr_scan")
    await send(client, tenant.id, 3, "pageview", "product_click", "click_toggle_currency")
    await send(client, tenant.id, 3, "time_on_page", metadata={"seconds": 61})
    await flush(app)

    data = await get_stats(client, tenant.id, headers)
    assert data["period"] == {"from": "2026-11-23", "to": "2026-11-29", "timezone": zone}
    assert data["totals"] == {
        "visitors": 4, "pageviews": 6, "whatsapp_clicks": 3, "call_clicks": 1,
        "currency_toggles": 1, "qr_scans": 1, "product_clicks": 1, "avg_time_on_page": 46,
        "leads": 2, "conversion_rate": 0.5,
    }
    assert data["previous"] == {
        "visitors": 1, "pageviews": 1, "whatsapp_clicks": 0, "call_clicks": 1,
        "currency_toggles": 0, "qr_scans": 0, "product_clicks": 0, "avg_time_on_page": 0,
        "leads": 1, "conversion_rate": 1.0,
    }
    assert data["series"][0] == {"date": "2026-11-23", "visitors": 3, "pageviews": 3, "leads": 1}
    assert data["series"][-1] == {"date": "2026-11-29", "visitors": 3, "pageviews": 3,
                                  "leads": 2}
    assert [s["date"] for s in data["series"]] == [f"2026-11-{d}" for d in range(23, 30)]
    assert all(s["visitors"] == 0 for s in data["series"][1:-1])

    # Over the last 30 days visitor 9 counts too: 3 leads of 5 visitors.
    data = await get_stats(client, tenant.id, headers, period="30d")
    assert data["totals"]["visitors"] == 5 and data["totals"]["leads"] == 3
    assert data["totals"]["conversion_rate"] == 0.6

    # No visitors: conversion 0, not an error.
    data = await get_stats(client, tenant.id, headers, period="custom", **{
        "from": "2026-01-01", "to": "2026-01-03"})
    assert data["totals"]["visitors"] == 0 and data["totals"]["conversion_rate"] == 0
    assert len(data["series"]) == 3


async def test_conversion_rate_has_four_decimals(app, client, pool, clock):
    tenant, headers = await zoned_tenant(pool, "UTC")
    clock.now = at("UTC", 2026, 6, 1, 12)
    for n in range(3):
        await send(client, tenant.id, n, "pageview")
    await send(client, tenant.id, 0, "click_whatsapp")
    await flush(app)
    data = await get_stats(client, tenant.id, headers, period="today")
    assert data["totals"]["leads"] == 1
    assert data["totals"]["conversion_rate"] == 0.3333


@pytest.mark.parametrize("zone", ["Asia/Tokyo", "America/Los_Angeles"])
async def test_period_edges_at_local_midnight(app, client, pool, clock, zone):
    tenant, headers = await zoned_tenant(pool, zone)
    clock.now = at(zone, 2026, 7, 14, 23, 59, 59)
    await send(client, tenant.id, 1, "pageview", "click_whatsapp")
    clock.now = at(zone, 2026, 7, 15, 0, 0, 0)
    await send(client, tenant.id, 2, "pageview")
    await flush(app)

    clock.now = at(zone, 2026, 7, 15, 12)
    today = await get_stats(client, tenant.id, headers, period="today")
    assert today["totals"]["visitors"] == 1 and today["totals"]["leads"] == 0
    assert len(today["series"]) == 24
    assert today["series"][0] == {"hour": "2026-07-15T00:00", "visitors": 1, "pageviews": 1,
                                  "leads": 0}
    assert today["previous"]["visitors"] == 1 and today["previous"]["leads"] == 1
    yesterday = await get_stats(client, tenant.id, headers, period="yesterday")
    assert yesterday["series"][-1] == {"hour": "2026-07-14T23:00", "visitors": 1,
                                       "pageviews": 1, "leads": 1}
    assert sum(s["visitors"] for s in yesterday["series"]) == 1
    custom = await get_stats(client, tenant.id, headers, period="custom",
                             **{"from": "2026-07-14", "to": "2026-07-14"})
    assert custom["totals"]["visitors"] == 1 and custom["totals"]["whatsapp_clicks"] == 1
    # Midnight the next day: the 15th is yesterday now.
    clock.now = at(zone, 2026, 7, 16, 0, 0, 0)
    assert (await get_stats(client, tenant.id, headers, period="yesterday"))["totals"][
        "visitors"] == 1
    assert (await get_stats(client, tenant.id, headers, period="today"))["totals"][
        "visitors"] == 0


async def test_hourly_series_on_a_dst_day(app, client, pool, clock):
    zone = "Europe/Madrid"
    tenant, headers = await zoned_tenant(pool, zone)
    # 2026-03-29: 01:59 CET, then 03:00 CEST; 02:00 never happens.
    clock.now = at(zone, 2026, 3, 29, 1, 30)
    await send(client, tenant.id, 1, "pageview")
    clock.now = dt.datetime(2026, 3, 29, 1, 0, tzinfo=dt.UTC).timestamp()  # 03:00 CEST
    await send(client, tenant.id, 2, "pageview", "click_call")
    await flush(app)
    clock.now = at(zone, 2026, 3, 29, 20)
    data = await get_stats(client, tenant.id, headers, period="today")
    hours = [s["hour"] for s in data["series"]]
    assert len(hours) == 23 and hours[1:3] == ["2026-03-29T01:00", "2026-03-29T03:00"]
    assert data["series"][1]["visitors"] == 1
    assert data["series"][2] == {"hour": "2026-03-29T03:00", "visitors": 1, "pageviews": 1,
                                 "leads": 1}
    assert data["totals"]["visitors"] == 2 and data["totals"]["leads"] == 1


async def test_twelve_months_by_month(app, client, pool, clock):
    tenant, headers = await zoned_tenant(pool, "UTC")
    # Visitor 1 in two months, visitor 2 twice in one month (two days): unions per month.
    for day, n in [((2026, 1, 5), 1), ((2026, 3, 2), 1), ((2026, 3, 3), 2), ((2026, 3, 9), 2)]:
        clock.now = at("UTC", *day, 10)
        await send(client, tenant.id, n, "pageview")
    clock.now = at("UTC", 2026, 3, 9, 11)
    await send(client, tenant.id, 2, "click_whatsapp")
    clock.now = at("UTC", 2025, 3, 31, 11)  # the last day of the 12 months before
    await send(client, tenant.id, 3, "pageview")
    await flush(app)
    clock.now = at("UTC", 2026, 3, 10, 12)
    data = await get_stats(client, tenant.id, headers, period="12mo")
    assert data["period"]["from"] == "2025-04-01"
    assert [s["month"] for s in data["series"]] == [
        "2025-04", "2025-05", "2025-06", "2025-07", "2025-08", "2025-09", "2025-10",
        "2025-11", "2025-12", "2026-01", "2026-02", "2026-03"]
    assert data["series"][9] == {"month": "2026-01", "visitors": 1, "pageviews": 1, "leads": 0}
    assert data["series"][11] == {"month": "2026-03", "visitors": 2, "pageviews": 3, "leads": 1}
    assert data["totals"]["visitors"] == 2 and data["totals"]["pageviews"] == 4
    assert data["previous"]["visitors"] == 1


async def test_the_seed_endpoints_agree_with_stats(app, client, pool, clock):
    tenant, headers = await zoned_tenant(pool, "Asia/Tokyo")
    for day in range(7):
        clock.now = at("Asia/Tokyo", 2026, 5, 1 + day, 10)
        await send(client, tenant.id, day % 3, "pageview", "qr_scan")
        await send(client, tenant.id, 5, "click_whatsapp", "click_call", "click_toggle_currency")
        await send(client, tenant.id, 6 + day, "product_click", "time_on_page",
                   metadata={"seconds": 10 + day, "product": "x"})
    await flush(app)
    clock.now = at("Asia/Tokyo", 2026, 5, 7, 23)
    week = await get_stats(client, tenant.id, headers, period="7d")
    response = await client.get(f"/api/analytics/{tenant.id}", headers=headers)
    summary = (await response.get_json())["data"]
    assert summary["visitors_week"] == week["totals"]["visitors"] == 11
    for counter in ("whatsapp_clicks", "call_clicks", "currency_toggles", "qr_scans",
                    "avg_time_on_page"):
        assert summary[counter] == week["totals"][counter], counter
    assert summary["last_7_days"] == [{"date": s["date"], "visitors": s["visitors"]}
                                      for s in week["series"]]
    today = await get_stats(client, tenant.id, headers, period="today")
    response = await client.get(f"/api/analytics/{tenant.id}/today", headers=headers)
    seed_today = await response.get_json()
    assert seed_today["visitors_today"] == today["totals"]["visitors"] == 3
    assert seed_today["whatsapp_clicks"] == today["totals"]["whatsapp_clicks"] == 1
    assert seed_today["qr_scans"] == today["totals"]["qr_scans"] == 1
    assert seed_today["products_viewed"] == today["totals"]["product_clicks"] == 1


async def test_stats_as_csv(app, client, pool, clock):
    tenant, headers = await zoned_tenant(pool, "UTC")
    clock.now = at("UTC", 2026, 4, 2, 10)
    await send(client, tenant.id, 1, "pageview", "click_whatsapp")
    await flush(app)
    response = await client.get(f"/api/analytics/{tenant.id}/stats", headers=headers,
                                query_string={"period": "7d", "format": "csv"})
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO((await response.get_data()).decode())))
    assert rows[0] == ["date", "visitors", "pageviews", "leads"]
    assert rows[1:] == [[f"2026-03-{d}", "0", "0", "0"] for d in (27, 28, 29, 30, 31)] + [
        ["2026-04-01", "0", "0", "0"], ["2026-04-02", "1", "1", "1"]]


@pytest.mark.parametrize(("query", "message"), [
    ({"period": "week"}, "unknown period"),
    ({"period": "custom"}, "needs `from`"),
    ({"period": "custom", "from": "2026-01-01"}, "needs `to`"),
    ({"period": "custom", "from": "2026-02-01", "to": "2026-01-01"}, "`from` is after `to`"),
    ({"period": "custom", "from": "2024-01-01", "to": "2026-01-01"}, "at most 400 days"),
    ({"period": "custom", "from": "2026-13-01", "to": "2026-12-01"}, "YYYY-MM-DD"),
    ({"period": "custom", "from": "yesterday", "to": "2026-12-01"}, "YYYY-MM-DD"),
    ({"period": "7d", "from": "2026-01-01"}, "period=custom only"),
    ({"format": "xml"}, "unknown format"),
])
async def test_bad_queries_get_400_with_a_message(client, tenant, auth_headers, query, message):
    response = await client.get(f"/api/analytics/{tenant.id}/stats", headers=auth_headers,
                                query_string=query)
    assert response.status_code == 400
    document = await response.get_json()
    assert document["success"] is False and message in document["error"]


async def test_stats_needs_credentials_of_the_tenant(client, tenant, pool):
    response = await client.get(f"/api/analytics/{tenant.id}/stats")
    assert response.status_code == 401
    _, headers = await zoned_tenant(pool, "UTC")
    response = await client.get(f"/api/analytics/{tenant.id}/stats", headers=headers)
    assert response.status_code == 403
