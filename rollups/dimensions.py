"""The one table of breakdown dimensions: each one's name, which events it reads and how it
takes its value from a stored event. The drain (rollups/breakdowns.py) counts with it, and so
do `analytics rebuild` and the dashboard's feed labels.

Which event types a dimension reads comes from the event-type table (`EventType.dimensions`);
the dimensions here with `every=True` read every event. A metadata key no dimension names
becomes the dimension `meta.<key>`. User agents are parsed by ua-parser with its precompiled
rules (`ua-parser-builtins`), cached since a site sees few distinct ones.

Referrer domains become named sites from the table SITES below: the maintained lists for
Python (`referer-parser` on PyPI, last released in 2016) are stale, so it is a short table of
the sites these landing pages get visits from, by domain; any other domain is its own source.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson
from ua_parser import parse

from realtime.event_types import EVENT_TYPES
from realtime.geo import UNKNOWN

NONE = "(none)"
OTHER = "(other)"
MAX_VALUE = 200  # characters of a value kept
MAX_META_KEYS = 10  # `meta.<key>` dimensions one event may feed
MAX_META_KEY = 40
META = "meta."
DIRECT, QR = "Direct", "QR code"


@dataclass(frozen=True)
class Event:
    """What a dimension may read of a stored event."""

    event_type: str
    metadata: dict[str, Any]
    user_agent: str
    page: str  # the address of the page that sent it (the request's Referer)
    country: str


def text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value[:MAX_VALUE]
    return orjson.dumps(value).decode()[:MAX_VALUE]


def host(url: Any) -> str | None:
    if not isinstance(url, str) or not url:
        return None
    return _host(url)


@functools.lru_cache(maxsize=4096)  # a site sees few distinct referrers and pages
def _host(url: str) -> str | None:
    try:
        name = urlsplit(url if "//" in url else f"//{url}").hostname
    except ValueError:
        return None
    if not name:
        return None
    return name.removeprefix("www.")[:MAX_VALUE]


# Named sites by domain (or a parent domain); a `google` label anywhere before the public
# suffix also means Google (google.com.br, google.co.uk, ...).
SITES: dict[str, str] = {
    "mail.google.com": "Email", "outlook.live.com": "Email", "outlook.office.com": "Email",
    "mail.yahoo.com": "Email", "mail.proton.me": "Email", "mail.zoho.com": "Email",
    "bing.com": "Bing", "duckduckgo.com": "DuckDuckGo", "search.yahoo.com": "Yahoo",
    "yahoo.com": "Yahoo", "yandex.ru": "Yandex", "yandex.com": "Yandex", "baidu.com": "Baidu",
    "ecosia.org": "Ecosia", "search.brave.com": "Brave Search",
    "facebook.com": "Facebook", "fb.com": "Facebook", "fb.me": "Facebook",
    "messenger.com": "Facebook",
    "instagram.com": "Instagram",
    "whatsapp.com": "WhatsApp", "wa.me": "WhatsApp",
    "t.co": "X", "twitter.com": "X", "x.com": "X",
    "linkedin.com": "LinkedIn", "lnkd.in": "LinkedIn",
    "tiktok.com": "TikTok", "youtube.com": "YouTube", "youtu.be": "YouTube",
    "pinterest.com": "Pinterest", "reddit.com": "Reddit", "t.me": "Telegram",
    "telegram.org": "Telegram", "threads.net": "Threads", "snapchat.com": "Snapchat",
    "chatgpt.com": "ChatGPT",
}


def site(domain: str) -> str:
    labels = domain.split(".")
    for i in range(len(labels) - 1):
        named = SITES.get(".".join(labels[i:]))
        if named:
            return named
    if "google" in labels[:-1]:
        return "Google"
    return domain


def referrer_domain(event: Event) -> str | None:
    """The referring domain, unless the visitor came from the same site (a page to another)."""
    domain = host(event.metadata.get("referrer"))
    if domain is None or domain == host(event.page):
        return None
    return domain


def source(event: Event) -> str:
    meta = event.metadata
    if meta.get("src") == "qr" or meta.get("utm_medium") == "qr":
        return QR
    domain = referrer_domain(event)
    return DIRECT if domain is None else site(domain)


@dataclass(frozen=True)
class Agent:
    device: str
    browser: str
    os: str


# Families ua-parser names with a form factor in them: the browser is the same one.
_BROWSER_NAMES = {"Mobile Safari": "Safari", "Mobile Safari UI/WKWebView": "Safari",
                  "Chrome Mobile": "Chrome", "Chrome Mobile iOS": "Chrome",
                  "Chrome Mobile WebView": "Chrome", "Firefox Mobile": "Firefox",
                  "Firefox iOS": "Firefox", "Edge Mobile": "Edge", "Opera Mobile": "Opera"}
_OS_NAMES = {"Mac OS X": "macOS"}
_MOBILE_OS = {"iOS", "Android", "Windows Phone", "KaiOS", "BlackBerry OS"}


@functools.lru_cache(maxsize=4096)
def agent(user_agent: str) -> Agent | None:
    if not user_agent:
        return None
    parsed = parse(user_agent)
    browser = parsed.user_agent.family if parsed.user_agent else "Other"
    os = parsed.os.family if parsed.os else "Other"
    model = parsed.device.family if parsed.device else "Other"
    if model == "iPad" or "Tablet" in user_agent or (os == "Android"
                                                       and "Mobile" not in user_agent):
        device = "Tablet"
    elif os in _MOBILE_OS or "Mobile" in user_agent:
        device = "Mobile"
    else:
        device = "Desktop"
    return Agent(device, _BROWSER_NAMES.get(browser, browser), _OS_NAMES.get(os, os))


def _agent_part(part: str) -> Callable[[Event], str | None]:
    def read(event: Event) -> str | None:
        parsed = agent(event.user_agent)
        return getattr(parsed, part) if parsed else None
    return read


def _meta(*keys: str) -> Callable[[Event], str | None]:
    def read(event: Event) -> str | None:
        for key in keys:
            value = text(event.metadata.get(key))
            if value is not None:
                return value
        return None
    return read


@dataclass(frozen=True)
class Dimension:
    name: str
    label: str  # the dashboard's title of its card
    value: Callable[[Event], str | None]
    keys: tuple[str, ...] = ()  # metadata keys it reads (no `meta.<key>` of its own then)
    every: bool = False  # reads every event, not only the types that name it


DIMENSIONS: tuple[Dimension, ...] = (
    Dimension("source", "Sources", source, ("referrer", "src", "utm_medium")),
    Dimension("page", "Pages", _meta("path"), ("path",)),
    Dimension("referrer", "Referrers", referrer_domain, ("referrer",)),
    Dimension("utm_source", "UTM sources", _meta("utm_source"), ("utm_source",)),
    Dimension("utm_medium", "UTM mediums", _meta("utm_medium"), ("utm_medium",)),
    Dimension("utm_campaign", "UTM campaigns", _meta("utm_campaign"), ("utm_campaign",)),
    Dimension("product", "Products", _meta("product", "product_id"), ("product", "product_id")),
    Dimension("button_location", "Button locations", _meta("button_location"),
              ("button_location",)),
    Dimension("currency", "Currencies", _meta("currency"), ("currency",)),
    Dimension("device", "Devices", _agent_part("device"), every=True),
    Dimension("browser", "Browsers", _agent_part("browser"), every=True),
    Dimension("os", "Operating systems", _agent_part("os"), every=True),
    Dimension("country", "Countries", lambda event: event.country or UNKNOWN, every=True),
)
BY_NAME: dict[str, Dimension] = {d.name: d for d in DIMENSIONS}
# Metadata keys that are not a dimension of their own: read by a named one, or a number.
NAMED_KEYS = frozenset({key for d in DIMENSIONS for key in d.keys} | {"seconds"})
READ_BY: dict[str, tuple[Dimension, ...]] = {
    t.name: tuple(d for d in DIMENSIONS if d.every or d.name in t.dimensions)
    for t in EVENT_TYPES
}


def known(name: str) -> bool:
    """A dimension a breakdown may be asked for."""
    return name in BY_NAME or (name.startswith(META) and 0 < len(name) - len(META)
                               <= MAX_META_KEY)


def values(event: Event) -> list[tuple[str, str]]:
    """(dimension, value) for every dimension the event is read for; NONE when it has none."""
    found = [(d.name, d.value(event) or NONE) for d in READ_BY.get(event.event_type, ())]
    extra = [key for key in event.metadata
             if key not in NAMED_KEYS and 0 < len(key) <= MAX_META_KEY][:MAX_META_KEYS]
    found.extend((META + key, text(event.metadata[key]) or NONE) for key in extra)
    return found


def describe(user_agent: str, referrer: Any, page: str) -> str:
    """The feed's line about who sent an event: "iPhone · Safari · from Instagram"."""
    parsed = agent(user_agent)
    parts = []
    if parsed:
        model = parse(user_agent).device
        name = model.family if model and model.family not in ("Other", "") else parsed.device
        parts += [name, parsed.browser]
    domain = referrer_domain(Event("", {"referrer": referrer}, "", page, ""))
    if domain:
        parts.append(f"from {site(domain)}")
    return " · ".join(parts)
