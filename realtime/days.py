"""The tenant's local day: the one place an instant becomes a calendar day."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo


def local_day(now: float, timezone: ZoneInfo) -> dt.date:
    """The day `now` (seconds since the epoch) falls on in `timezone`."""
    return dt.datetime.fromtimestamp(now, timezone).date()


def utc_day(now: float) -> dt.date:
    return dt.datetime.fromtimestamp(now, dt.UTC).date()
