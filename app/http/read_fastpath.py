"""GET /api/analytics/{id} and /today answered straight from ASGI, ahead of Quart, when the
answer is in the process's caches under the tenant's current generations (app/http/reads.py):
one Redis round trip, no Postgres, none of Quart's request machinery.

Only a request with bearer credentials of a tenant the process knows is looked at; whatever
cannot be answered from the caches (a miss, a cookie, Redis down) goes to Quart unchanged,
with the generations already read, so the request still makes one round trip.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

from quart import Quart

from app.http.auth import bearer_credentials
from app.http.fastpath import ASGIApp, Scope, send_answer
from app.http.ids import MAX_ID
from app.http.reads import GENERATIONS_READ, cached_rollups_answer, tenant_generations
from app.routes.summary import CACHED_READS

log = logging.getLogger(__name__)

# Ids as Werkzeug's converter reads them back: no sign, no leading zero; the rest is Quart's.
_PATH = re.compile(r"/api/analytics/([1-9][0-9]{0,18})(" +
                   "|".join(re.escape(suffix) for suffix in CACHED_READS) + ")")


class ReadFastPath:
    def __init__(self, app: Quart, inner: ASGIApp, headers: dict[str, str]) -> None:
        self.app = app
        self.inner = inner
        fixed = {**headers, "Content-Type": "application/json"}
        self.fixed = [(k.lower().encode(), v.encode()) for k, v in fixed.items()]

    async def __call__(self, scope: Scope, receive: Callable, send: Callable) -> None:
        body = None
        if scope["type"] == "http" and scope["method"] == "GET":
            matched = _PATH.fullmatch(scope["path"])
            if matched is not None and int(matched[1]) <= MAX_ID:
                body = await self._cached(scope, int(matched[1]), CACHED_READS[matched[2]])
        if body is None:
            await self.inner(scope, receive, send)
            return
        await send_answer(send, 200, self.fixed, body)

    async def _cached(self, scope: Scope, tenant_id: int, name: str) -> bytes | None:
        svc = self.app.extensions.get("analytics")
        header = next((value for key, value in scope["headers"] if key == b"authorization"),
                      None)
        if svc is None or header is None or not svc.tenants.knows(tenant_id):
            return None
        credentials = bearer_credentials(header.decode("latin-1"))
        if credentials is None:
            return None
        generations = await tenant_generations(svc, tenant_id)
        scope[GENERATIONS_READ] = generations
        try:
            return cached_rollups_answer(svc, tenant_id, name, credentials, generations)
        except Exception:
            log.exception("the read fast path failed; Quart answers")
            return None
