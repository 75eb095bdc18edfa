"""The `analytics` command line: operators' way in (see the README for every command).

Each command is an async function of (arguments, settings) that returns an `Output`; `main`
opens nothing itself and turns every failure into one line on stderr: a `CommandError`, an
unknown tenant, or a store that does not answer.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import getpass
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import asyncpg

from app.clients import STORE_ERRORS, opened
from app.settings import ConfigError, Settings


class CommandError(Exception):
    """A failure the operator can act on: printed as one line, exit status 1."""


@dataclass(frozen=True)
class Output:
    data: dict
    text: str


Handler = Callable[[argparse.Namespace, Settings], Awaitable[Output]]


@contextlib.asynccontextmanager
async def database(settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    """One Postgres connection for a command that needs nothing else."""
    try:
        conn = await asyncpg.connect(settings.database_url, timeout=settings.jobs_connect_timeout)
    except (OSError, TimeoutError, asyncpg.PostgresError) as error:
        raise CommandError(f"cannot reach Postgres at DATABASE_URL: {error}") from None
    try:
        yield conn
    finally:
        await conn.close()


def _iso(moment: dt.datetime | None) -> str | None:
    return moment.isoformat() if moment else None


# -- commands ---------------------------------------------------------------------------


async def cmd_migrate(args: argparse.Namespace, settings: Settings) -> Output:
    from app.ops.migrate import migrate

    try:
        applied = await migrate(settings.database_url)
    except (OSError, asyncpg.PostgresError) as error:
        raise CommandError(f"migration failed: {error}") from None
    text = f"applied {', '.join(applied)}" if applied else "schema is up to date"
    return Output({"applied": applied}, text)


async def cmd_tenant_create(args: argparse.Namespace, settings: Settings) -> Output:
    from app.accounts.tenants import InvalidTimezone, create_tenant

    async with database(settings) as conn:
        try:
            tenant = await create_tenant(conn, args.name, args.timezone)
        except InvalidTimezone as error:
            raise CommandError(str(error)) from None
        except asyncpg.CheckViolationError:
            raise CommandError("the name must have 1 to 200 characters") from None
    data = {"id": tenant.id, "name": tenant.name, "timezone": tenant.timezone}
    return Output(data, f"tenant {tenant.id} {tenant.name!r} ({tenant.timezone})")


async def cmd_tenant_list(args: argparse.Namespace, settings: Settings) -> Output:
    from app.accounts.tenants import list_tenants

    async with database(settings) as conn:
        tenants = await list_tenants(conn)
    rows = [{"id": t.id, "name": t.name, "timezone": t.timezone} for t in tenants]
    text = "\n".join(f"{t.id}\t{t.name}\t{t.timezone}" for t in tenants) or "no tenants"
    return Output({"tenants": rows}, text)


def read_password() -> str:
    password = os.environ.get("ANALYTICS_PASSWORD")
    if password:
        return password
    if not sys.stdin.isatty():
        raise CommandError("set ANALYTICS_PASSWORD or run in a terminal to be asked")
    password = getpass.getpass("Password: ")
    if getpass.getpass("Password again: ") != password:
        raise CommandError("the passwords differ")
    return password


async def cmd_user_create(args: argparse.Namespace, settings: Settings) -> Output:
    from app.accounts.tenants import require_tenant
    from app.accounts.users import (
        AccountError,
        add_membership,
        check_email,
        check_password,
        create_user,
    )

    try:
        check_email(args.email)
        password = check_password(read_password())
    except AccountError as error:
        raise CommandError(str(error)) from None
    async with database(settings) as conn, conn.transaction():
        await require_tenant(conn, args.tenant)
        try:
            user = await create_user(conn, args.email, password)
        except AccountError as error:
            raise CommandError(str(error)) from None
        await add_membership(conn, user.id, args.tenant)
    data = {"id": user.id, "email": user.email, "tenant_ids": [args.tenant]}
    return Output(data, f"user {user.id} {user.email} owns tenant {args.tenant}")


async def cmd_user_add_tenant(args: argparse.Namespace, settings: Settings) -> Output:
    from app.accounts.tenants import require_tenant
    from app.accounts.users import add_membership, get_user_by_email, user_tenants

    async with database(settings) as conn:
        user = await get_user_by_email(conn, args.email)
        if user is None:
            raise CommandError(f"no user has the email {args.email!r}")
        await require_tenant(conn, args.tenant)
        await add_membership(conn, user.id, args.tenant)
        tenant_ids = await user_tenants(conn, user.id)
    data = {"id": user.id, "email": user.email, "tenant_ids": tenant_ids}
    owned = ", ".join(map(str, tenant_ids))
    return Output(data, f"user {user.id} {user.email} owns tenants {owned}")


async def cmd_token_create(args: argparse.Namespace, settings: Settings) -> Output:
    from app.accounts.tenants import require_tenant
    from app.accounts.tokens import create_token, expiry
    from app.accounts.users import AccountError

    try:
        expires_at = expiry(dt.datetime.now(dt.UTC), args.expires_in_days)
    except AccountError as error:
        raise CommandError(f"--expires-in-days: {error}") from None
    if args.platform == (args.tenant is not None):
        raise CommandError("give either --tenant ID (reads that tenant) or --platform "
                           "(provisions tenants over /api/platform)")
    async with database(settings) as conn:
        if args.tenant is not None:
            await require_tenant(conn, args.tenant)
        token, plaintext = await create_token(conn, args.tenant, args.label, expires_at)
    data = {"id": token.id, "token": plaintext, "tenant_id": token.tenant_id, "label": token.label,
            "kind": token.kind, "expires_at": _iso(token.expires_at)}
    owner = "the platform" if args.platform else f"tenant {token.tenant_id}"
    return Output(data, f"token {token.id} for {owner} (shown once):\n{plaintext}")


async def cmd_token_list(args: argparse.Namespace, settings: Settings) -> Output:
    from app.accounts.tenants import require_tenant
    from app.accounts.tokens import list_tokens

    if args.platform == (args.tenant is not None):
        raise CommandError("give either --tenant ID or --platform")
    async with database(settings) as conn:
        if args.tenant is not None:
            await require_tenant(conn, args.tenant)
        tokens = await list_tokens(conn, args.tenant)
    rows = [
        {"id": t.id, "tenant_id": t.tenant_id, "kind": t.kind, "label": t.label,
         "created_at": _iso(t.created_at), "last_used_at": _iso(t.last_used_at),
         "expires_at": _iso(t.expires_at), "revoked_at": _iso(t.revoked_at)}
        for t in tokens
    ]
    text = "\n".join(_token_line(t) for t in tokens)
    owner = "the platform" if args.platform else f"tenant {args.tenant}"
    return Output({"tokens": rows}, text or f"{owner} has no tokens")


def _token_line(token) -> str:
    used = f"{token.last_used_at:%Y-%m-%d %H:%M}" if token.last_used_at else "never"
    state = "revoked" if token.revoked_at else "active"
    return (f"{token.id}\t{token.label or '-'}\tcreated {token.created_at:%Y-%m-%d %H:%M}\t"
            f"last used {used}\t{state}")


async def cmd_token_revoke(args: argparse.Namespace, settings: Settings) -> Output:
    from app.accounts.revocation import revoke_token_everywhere

    async with opened(settings) as clients:
        if not await revoke_token_everywhere(clients.pool, clients.redis, clients.keys, args.id):
            raise CommandError(f"token {args.id} does not exist or is already revoked")
    return Output({"id": args.id, "revoked": True}, f"token {args.id} revoked")


async def cmd_flush(args: argparse.Namespace, settings: Settings) -> Output:
    from app.ops.scheduler import Worker
    from rollups.locks import Locking

    async with opened(settings) as clients:
        events, rollups = await Worker(clients).flush(Locking.WAIT)
    return Output({"events": events, "rollups": rollups},
                  f"stored {events} events, flushed {rollups} tenant-days")


async def cmd_rebuild(args: argparse.Namespace, settings: Settings) -> Output:
    from app.accounts.tenants import require_tenant
    from realtime.days import utc_day
    from rollups.drain import consumer_name
    from rollups.rebuild import rebuild

    try:
        since = dt.date.fromisoformat(args.since) if args.since else (
            utc_day(time.time()) - dt.timedelta(days=settings.retention_days))
    except ValueError:
        raise CommandError(f"--since takes a day as YYYY-MM-DD, got {args.since!r}") from None
    async with opened(settings) as clients:
        tenant = await require_tenant(clients.pool, args.tenant)
        days = await rebuild(clients.redis, clients.pool, clients.keys, clients.scripts,
                             tenant.id, tenant.timezone, since, consumer_name())
    return Output({"tenant_id": args.tenant, "since": since.isoformat(), "days": days},
                  f"rebuilt {days} days of tenant {args.tenant} since {since}")


async def cmd_demo(args: argparse.Namespace, settings: Settings) -> Output:
    from app.ops.demo import seed_demo

    demo = await seed_demo(settings)
    base = settings.public_url or f"http://127.0.0.1:{settings.port}"
    tenant = demo.tenant
    data = {"tenant_id": tenant.id, "token": demo.token, "email": demo.email,
            "password": demo.password, "events": demo.events, "created": demo.created,
            "login": f"{base}/login", "demo_page": f"{base}/demo/{tenant.id}"}
    seeded = (f"seeded a week of traffic ({demo.events} events)" if demo.created
              else "already seeded")
    text = f"""Demo tenant {tenant.id} {tenant.name!r} ({tenant.timezone}): {seeded}.
Log in at {base}/login as {demo.email} with password {demo.password}
API token (shown once): {demo.token}

Send an event:
  curl -s -A 'Mozilla/5.0 (demo)' -H 'Content-Type: application/json' \\
    -d '{{"tenant_id": {tenant.id}, "event_type": "pageview"}}' {base}/api/analytics/track
Read the numbers:
  curl -s -H 'Authorization: Bearer {demo.token}' {base}/api/analytics/{tenant.id}
Demo landing page: {base}/demo/{tenant.id}"""
    return Output(data, text)


async def cmd_scheduler(args: argparse.Namespace, settings: Settings) -> Output:
    from app.logs import configure
    from app.ops.scheduler import serve

    configure()
    await serve(settings)
    return Output({"stopped": True}, "scheduler stopped")


def serve(args: argparse.Namespace, settings: Settings) -> None:
    """The web process: uvicorn runs its own event loop, so this one is not async."""
    from app.http import serving

    serving.run(settings, serving.PRODUCT, host=args.host)


# -- wiring -----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="analytics", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    def command(sub, name: str, handler: Callable, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help)
        p.add_argument("--json", action="store_true", help="print one JSON object")
        p.set_defaults(handler=handler)
        return p

    command(commands, "migrate", cmd_migrate, "create or upgrade the schema")

    tenant = commands.add_parser("tenant", help="tenants").add_subparsers(dest="action",
                                                                      required=True)
    p = command(tenant, "create", cmd_tenant_create, "create a tenant")
    p.add_argument("name")
    p.add_argument("--timezone", default="UTC", help="IANA name, e.g. Europe/Madrid")
    command(tenant, "list", cmd_tenant_list, "list tenants")

    user = commands.add_parser("user", help="tenant owners").add_subparsers(dest="action",
                                                                      required=True)
    p = command(user, "create", cmd_user_create,
                "create an owner (password from ANALYTICS_PASSWORD or a prompt)")
    p.add_argument("email")
    p.add_argument("--tenant", type=int, required=True)
    p = command(user, "add-tenant", cmd_user_add_tenant, "let an owner see one more tenant")
    p.add_argument("email")
    p.add_argument("--tenant", type=int, required=True)

    token = commands.add_parser("token", help="API tokens").add_subparsers(dest="action",
                                                                      required=True)
    p = command(token, "create", cmd_token_create, "create a token (shown once)")
    p.add_argument("--tenant", type=int)
    p.add_argument("--platform", action="store_true",
                   help="a platform token: provisions tenants, users and tenant tokens")
    p.add_argument("--label", default="")
    p.add_argument("--expires-in-days", type=int, default=None, metavar="DAYS",
                   help="the token stops working after this many days (default: never)")
    p = command(token, "list", cmd_token_list,
                "list a tenant's or the platform's tokens (never their values)")
    p.add_argument("--tenant", type=int)
    p.add_argument("--platform", action="store_true")
    p = command(token, "revoke", cmd_token_revoke, "revoke a token at once")
    p.add_argument("id", type=int)

    command(commands, "flush", cmd_flush, "drain buffered events and flush counters now")
    p = command(commands, "rebuild", cmd_rebuild, "recompute a tenant's rollups from raw events")
    p.add_argument("--tenant", type=int, required=True)
    p.add_argument("--since", help="first local day to recompute, YYYY-MM-DD")
    command(commands, "demo", cmd_demo, "seed a demo tenant with a week of traffic")
    p = command(commands, "serve", serve, "run the web process (the Procfile's web)")
    # Behind a proxy that writes X-Forwarded-For (TRUSTED_PROXY_HOPS=1), only the proxy may
    # reach the process: deploy/'s units bind it to 127.0.0.1.
    p.add_argument("--host", default="0.0.0.0", help="address to listen on (default 0.0.0.0)")
    command(commands, "scheduler", cmd_scheduler,
            "run the scheduler process (the Procfile's scheduler)")
    return parser


async def _run(handler: Handler, args: argparse.Namespace, settings: Settings) -> Output:
    from app.accounts.tenants import UnknownTenant

    try:
        return await handler(args, settings)
    except UnknownTenant as error:
        raise CommandError(str(error)) from None
    except STORE_ERRORS as error:
        raise CommandError(f"{args.command} failed, nothing was lost: "
                           f"{type(error).__name__}: {error}") from None


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except ConfigError as error:
        print(f"analytics: {error}", file=sys.stderr)
        sys.exit(2)
    if not asyncio.iscoroutinefunction(args.handler):
        args.handler(args, settings)
        return
    try:
        output = asyncio.run(_run(args.handler, args, settings))
    except CommandError as error:
        print(f"analytics: {error}", file=sys.stderr)
        sys.exit(1)
    print(json.dumps(output.data) if args.json else output.text)
