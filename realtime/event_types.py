"""The one table of event types: the name a landing page sends, the counter it feeds, and
what the APIs and the dashboard call that counter. Every list of types, counters, SQL
columns, snapshot fields, response models and dashboard labels derives from this table;
adding an event type is one entry here plus a migration adding its rollup column.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EventType:
    name: str  # `event_type` in a /track body
    counter: str  # Redis counter field, `daily_rollups` column, key of /stats totals
    label: str  # the dashboard's label of the counter
    event_label: str  # the dashboard's label of one event in the feed
    live: str | None = None  # key in the live snapshot's `data`
    today: str | None = None  # key in GET /{id}/today
    week: bool = False  # summed over the 7 days of GET /{id}
    lead: bool = False  # a visitor who sends one is a lead
    timed: bool = False  # carries `metadata.seconds`
    series: bool = False  # counted per step in the /stats series, beside visitors and leads
    # Breakdowns (rollups/dimensions.py) that read this type's events, besides those that
    # read every event (device, browser, os, country) and `meta.<key>`.
    dimensions: tuple[str, ...] = ()


EVENT_TYPES: tuple[EventType, ...] = (
    EventType("pageview", "pageviews", "Page views", "Page view", live="pageviews_today",
              series=True, dimensions=("page", "source", "referrer", "utm_source",
                                       "utm_medium", "utm_campaign")),
    EventType("click_whatsapp", "whatsapp_clicks", "WhatsApp clicks", "WhatsApp click",
              live="whatsapp_clicks", today="whatsapp_clicks", week=True, lead=True,
              dimensions=("button_location",)),
    EventType("click_call", "call_clicks", "Calls", "Call click",
              live="call_clicks", week=True, lead=True, dimensions=("button_location",)),
    EventType("click_toggle_currency", "currency_toggles", "Currency toggles", "Currency toggle",
              live="currency_toggles", week=True, dimensions=("currency",)),
    EventType("time_on_page", "time_on_page_count", "Timed visits", "Time on page", timed=True),
    EventType("qr_scan", "qr_scans", "QR scans", "QR scan",
              live="qr_scans", today="qr_scans", week=True),
    EventType("product_click", "product_clicks", "Products viewed", "Product click",
              live="products_viewed", today="products_viewed", dimensions=("product",)),
)

BY_NAME: dict[str, EventType] = {t.name: t for t in EVENT_TYPES}
# The two types other code singles out: what the tracker sends on every page load, and what a
# printed QR code brings (the benchmarks' probe, as no background load sends it).
PAGEVIEW: EventType = BY_NAME["pageview"]
QR_SCAN: EventType = BY_NAME["qr_scan"]
NAMES: tuple[str, ...] = tuple(BY_NAME)
TIMED: EventType = next(t for t in EVENT_TYPES if t.timed)
LIVE: tuple[EventType, ...] = tuple(t for t in EVENT_TYPES if t.live)
TODAY: tuple[EventType, ...] = tuple(t for t in EVENT_TYPES if t.today)
# (live name, label) of today's live numbers, as the dashboard and shared pages show them.
LIVE_LABELS: tuple[tuple[str, str], ...] = tuple((t.live, t.label) for t in LIVE)
WEEK: tuple[EventType, ...] = tuple(t for t in EVENT_TYPES if t.week)
LEADS: tuple[EventType, ...] = tuple(t for t in EVENT_TYPES if t.lead)
SERIES: tuple[EventType, ...] = tuple(t for t in EVENT_TYPES if t.series)

# Every accepted event adds one to EVENTS and to its type's counter; a timed one also adds
# its milliseconds to TIME_MS (realtime/scripts/track.lua names these two as well).
EVENTS = "events"
TIME_MS = "time_on_page_ms"
COUNTERS: tuple[str, ...] = (EVENTS, *(t.counter for t in EVENT_TYPES), TIME_MS)
COUNTER_OF: dict[str, str] = {t.name: t.counter for t in EVENT_TYPES}
