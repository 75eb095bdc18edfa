"""GET /api/analytics/{tenantId}/events: the latest events, the dashboard's feed."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from quart import Blueprint
from quart_schema import document_response, security_scheme

from app.http.auth import authorize
from app.http.errors import document_errors, store_call
from app.services import services
from rollups.dimensions import describe
from rollups.feed import recent_events

blueprint = Blueprint("events", __name__)

RECENT_LIMIT = 20


@dataclass
class RecentEventOut:
    event_type: str
    ts: int
    metadata: dict[str, Any]
    page: str
    user_agent: str
    # Who sent it, from the user agent and the referrer: "iPhone · Safari · from Instagram".
    visitor: str


@dataclass
class RecentEvents:
    success: bool
    events: list[RecentEventOut]


@blueprint.get("/api/analytics/<int:tenant_id>/events")
@security_scheme([{"bearer": []}])
@document_response(RecentEvents)
@document_errors(401, 403, 404, 503)
async def recent(tenant_id: int) -> dict:
    """The tenant's latest 20 events, newest first: the dashboard's feed.

    `page` is the Referer of the request that sent the event. Every field except `ts` came
    from a visitor: render it as text.
    """
    await authorize(tenant_id)
    svc = services()
    async with store_call(svc.settings.read_deadline):
        events = await recent_events(svc.pool, svc.redis, svc.keys, tenant_id, RECENT_LIMIT)
    return {
        "success": True,
        "events": [{**{k: v for k, v in asdict(event).items() if k != "id"},
                    "visitor": describe(event.user_agent, event.metadata.get("referrer"),
                                        event.page)}
                   for event in events],
    }
