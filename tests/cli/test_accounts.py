"""`analytics user ...` and `analytics token ...`, run as the installed command."""

from __future__ import annotations

import json

from app.accounts.tenants import create_tenant
from app.accounts.tokens import verify_token
from tests.support.http import login
from tests.support.servers import run_cli
from tests.support.settings import RUN

PASSWORD = "a sturdy passphrase"


def ok(result) -> dict:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


async def test_user_create_then_login(settings, client, tenant, pool):
    email = f"cli.{RUN}@example.com"
    result = run_cli(settings, "user", "create", email, "--tenant", str(tenant.id), "--json",
                     ANALYTICS_PASSWORD=PASSWORD)
    created = ok(result)
    assert created["email"] == email and isinstance(created["id"], int)
    assert PASSWORD not in result.stdout + result.stderr
    row = await pool.fetchrow("SELECT password_hash FROM users WHERE id = $1", created["id"])
    assert row["password_hash"].startswith("$argon2id$") and PASSWORD not in row["password_hash"]

    assert (await login(client, email, PASSWORD)).status_code == 200
    assert (await client.get("/dashboard")).status_code == 200


async def test_add_tenant_lets_an_owner_see_one_more(settings, tenant, pool):
    email = f"multi.{RUN}@example.com"
    ok(run_cli(settings, "user", "create", email, "--tenant", str(tenant.id), "--json",
               ANALYTICS_PASSWORD=PASSWORD))
    second = await create_tenant(pool, "Second shop")
    added = ok(run_cli(settings, "user", "add-tenant", email.upper(), "--tenant", str(second.id),
                       "--json"))
    assert added["tenant_ids"] == [tenant.id, second.id]


async def test_user_commands_fail_with_one_line(settings, tenant, owner):
    failures = [
        (["user", "create", owner.email, "--tenant", str(tenant.id)], PASSWORD),
        (["user", "create", f"new.{RUN}@example.com", "--tenant", "987654321"], PASSWORD),
        (["user", "create", "not-an-email", "--tenant", str(tenant.id)], PASSWORD),
        (["user", "create", f"short.{RUN}@example.com", "--tenant", str(tenant.id)], "short"),
        # No password and no terminal to ask on (stdin is a pipe here).
        (["user", "create", f"nopw.{RUN}@example.com", "--tenant", str(tenant.id)], ""),
        (["user", "add-tenant", f"ghost.{RUN}@example.com", "--tenant", str(tenant.id)], ""),
        (["user", "add-tenant", owner.email, "--tenant", "987654321"], ""),
        (["token", "list", "--tenant", "987654321"], ""),
    ]
    for args, password in failures:
        result = run_cli(settings, *args, "--json", input="", ANALYTICS_PASSWORD=password)
        assert result.returncode != 0, args
        assert result.stdout == "", args
        assert result.stderr.count("\n") == 1 and result.stderr.startswith("analytics: "), (
            args, result.stderr)


async def test_token_list_shows_use_and_revocation_never_the_token(settings, pool, tenant):
    created = ok(run_cli(settings, "token", "create", "--tenant", str(tenant.id),
                         "--label", "reporting", "--json"))

    def listed() -> dict:
        result = run_cli(settings, "token", "list", "--tenant", str(tenant.id), "--json")
        assert created["token"] not in result.stdout
        [row] = ok(result)["tokens"]
        return row

    row = listed()
    assert row["id"] == created["id"] and row["label"] == "reporting"
    assert row["created_at"] and row["last_used_at"] is None and row["revoked_at"] is None

    await verify_token(pool, created["token"])  # what every authenticated request does
    assert listed()["last_used_at"] is not None

    ok(run_cli(settings, "token", "revoke", str(created["id"]), "--json"))
    assert listed()["revoked_at"] is not None
    again = run_cli(settings, "token", "revoke", str(created["id"]))
    assert again.returncode == 1 and "already revoked" in again.stderr


async def test_expiring_token(settings, tenant, pool):
    import datetime as dt

    created = ok(run_cli(settings, "token", "create", "--tenant", str(tenant.id),
                         "--expires-in-days", "1", "--json"))
    expires_at = dt.datetime.fromisoformat(created["expires_at"])
    # (A token that expires at once is refused at creation: tests/test_token_expiry.py.)
    assert await verify_token(pool, created["token"], expires_at - dt.timedelta(seconds=1))
    assert await verify_token(pool, created["token"], expires_at) is None
