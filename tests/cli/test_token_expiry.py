"""`analytics token create --expires-in-days N`: a whole number of days from 1 to 3650, or a
clear one-line refusal (security review, second pass, finding 12)."""

from __future__ import annotations

import datetime as dt

import orjson
import pytest

from app.accounts.tokens import MAX_EXPIRY_DAYS, expiry
from app.accounts.users import AccountError
from tests.support.servers import run_cli

NOW = dt.datetime(2026, 11, 29, 12, tzinfo=dt.UTC)


@pytest.mark.parametrize("days", ["-5", "0", str(MAX_EXPIRY_DAYS + 1), "999999999999"])
async def test_a_token_that_would_expire_at_once_or_never_is_refused(settings, tenant, days):
    result = run_cli(settings, "token", "create", "--tenant", str(tenant.id),
                     "--expires-in-days", days)
    assert result.returncode == 1
    assert result.stderr == (f"analytics: --expires-in-days: a token expires 1 to "
                             f"{MAX_EXPIRY_DAYS} days from now, got {days}\n")
    listed = run_cli(settings, "token", "list", "--tenant", str(tenant.id), "--json")
    assert orjson.loads(listed.stdout)["tokens"] == []  # nothing was created


@pytest.mark.parametrize("days", [-5, 0, True, 1.5, MAX_EXPIRY_DAYS + 1])
def test_expiry_takes_whole_days_from_1(days):
    with pytest.raises(AccountError):
        expiry(NOW, days)


def test_expiry():
    assert expiry(NOW, None) is None
    assert expiry(NOW, 1) == NOW + dt.timedelta(days=1)
    assert expiry(NOW, MAX_EXPIRY_DAYS) == NOW + dt.timedelta(days=MAX_EXPIRY_DAYS)
