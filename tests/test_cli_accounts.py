"""`analytics user ...` and `analytics token ...`, run as the installed command."""

from __future__ import annotations

import json

from app.tenants import create_tenant
from app.tokens import verify_token
from tests.conftest import RUN, cli, login, process_env

PASSWORD = "a sturdy passphrase"


async def test_user_create_then_login(settings, app, client, tenant, pool):
    email = f"cli.{RUN}@example.com"
    env = process_env(settings, ANALYTICS_PASSWORD=PASSWORD)
    status, out, err = await cli(settings, "user", "create", email, "--tenant", str(tenant.id),
                                 "--json", env=env)
    assert status == 0, err
    created = json.loads(out)
    assert created["email"] == email and isinstance(created["id"], int)
    assert PASSWORD not in out + err
    row = await pool.fetchrow("SELECT password_hash FROM users WHERE id = $1", created["id"])
    assert row["password_hash"].startswith("$argon2id$") and PASSWORD not in row["password_hash"]

    response = await login(client, email, PASSWORD)
    assert response.status_code == 200
    assert (await client.get("/dashboard")).status_code == 200


async def test_add_tenant_lets_an_owner_see_one_more(settings, tenant, pool):
    email = f"multi.{RUN}@example.com"
    env = process_env(settings, ANALYTICS_PASSWORD=PASSWORD)
    status, _, err = await cli(settings, "user", "create", email, "--tenant", str(tenant.id),
                               env=env)
    assert status == 0, err
    second = await create_tenant(pool, "Second shop")
    status, out, err = await cli(settings, "user", "add-tenant", email.upper(),
                                 "--tenant", str(second.id), "--json")
    assert status == 0, err
    assert json.loads(out)["tenant_ids"] == [tenant.id, second.id]


async def test_user_commands_fail_with_one_line(settings, tenant, owner):
    with_password = process_env(settings, ANALYTICS_PASSWORD=PASSWORD)
    failures = [
        (["user", "create", owner.email, "--tenant", str(tenant.id)], with_password),
        (["user", "create", f"new.{RUN}@example.com", "--tenant", "987654321"], with_password),
        (["user", "create", "not-an-email", "--tenant", str(tenant.id)], with_password),
        (["user", "create", f"short.{RUN}@example.com", "--tenant", str(tenant.id)],
         process_env(settings, ANALYTICS_PASSWORD="short")),
        # No ANALYTICS_PASSWORD and no terminal to ask on.
        (["user", "create", f"nopw.{RUN}@example.com", "--tenant", str(tenant.id)],
         process_env(settings)),
        (["user", "add-tenant", f"ghost.{RUN}@example.com", "--tenant", str(tenant.id)], None),
        (["user", "add-tenant", owner.email, "--tenant", "987654321"], None),
        (["token", "list", "--tenant", "987654321"], None),
    ]
    for args, env in failures:
        status, out, err = await cli(settings, *args, "--json", env=env)
        assert status != 0, args
        assert out == "" and err.count("\n") == 1 and err.startswith("analytics: "), (args, err)


async def test_token_list_shows_use_and_revocation_never_the_token(settings, pool, tenant):
    status, out, err = await cli(settings, "token", "create", "--tenant", str(tenant.id),
                                 "--label", "reporting", "--json")
    assert status == 0, err
    created = json.loads(out)

    async def listed() -> dict:
        status, out, err = await cli(settings, "token", "list", "--tenant", str(tenant.id),
                                     "--json")
        assert status == 0, err
        assert created["token"] not in out
        [row] = json.loads(out)["tokens"]
        return row

    row = await listed()
    assert row["id"] == created["id"] and row["label"] == "reporting"
    assert row["created_at"] and row["last_used_at"] is None and row["revoked_at"] is None

    await verify_token(pool, created["token"])  # what every authenticated request does
    assert (await listed())["last_used_at"] is not None

    assert (await cli(settings, "token", "revoke", str(created["id"]), "--json"))[0] == 0
    assert (await listed())["revoked_at"] is not None
    status, _, err = await cli(settings, "token", "revoke", str(created["id"]))
    assert status == 1 and "already revoked" in err


async def test_expiring_token(settings, tenant, pool):
    status, out, err = await cli(settings, "token", "create", "--tenant", str(tenant.id),
                                 "--expires-in-days", "0", "--json")
    assert status == 0, err
    created = json.loads(out)
    assert created["expires_at"]
    assert await verify_token(pool, created["token"]) is None
