"""The tenant a route names: its timezone through the in-process directory, or 404."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from app.accounts.tenants import UnknownTenant, require_tenant, zone
from app.http.errors import STORE_FAILURES, store_failure
from app.services import Services


async def tenant_zone(svc: Services, tenant_id: int, *, public: bool = False) -> ZoneInfo:
    """The tenant's timezone; UnknownTenant (404) when there is none, 503 when the store
    cannot tell. The directory throttles look-ups of ids it does not know, which guards the
    public /track (`public=True`); an authenticated caller gets one indexed read instead."""
    try:
        timezone = await svc.tenants.timezone(tenant_id)
        if timezone is None and not public:
            timezone = zone((await require_tenant(svc.pool, tenant_id)).timezone)
    except STORE_FAILURES as error:
        raise store_failure(error) from None
    if timezone is None:
        raise UnknownTenant(tenant_id)
    return timezone
