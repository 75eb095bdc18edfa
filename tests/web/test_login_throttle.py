"""Failed logins: nobody can lock an owner out, and one spelling of an email is one account
(security review, second pass, findings 6 and 7).

Five wrong passwords from any address used to make the right one from anywhere else a 429
for 15 minutes; now the clients that failed get 429 and any other client gets in after a
delay that grows with the account's recent failures. And `alİce@...` had its own failure
budget, since the throttle lowercased in Python and the look-up in Postgres.
"""

from __future__ import annotations

import time

import pytest

from app.accounts.throttle import ACCOUNT_LIMIT, LoginThrottle
from app.accounts.users import create_user, find_account
from tests.support.http import PASSWORD, login, new_address
from tests.support.settings import RUN

WRONG = "not the password at all"


async def test_five_wrong_passwords_cannot_lock_the_owner_out(client, owner, clock):
    guesser, owner_address = new_address(), new_address()
    for _ in range(ACCOUNT_LIMIT):
        assert (await login(client, owner.email, WRONG, address=guesser)).status_code == 401
    started = time.monotonic()
    response = await login(client, owner.email, address=owner_address)
    assert response.status_code == 200, await response.get_data()
    assert time.monotonic() - started >= 1.0  # the first delay (a wait is never shorter)
    # The guesser is still refused, with the right password too: a refusal confirms nothing.
    for password in (WRONG, PASSWORD):
        refused = await login(client, owner.email, password, address=guesser)
        assert refused.status_code == 429
        assert 1 <= int(refused.headers["Retry-After"]) <= 15 * 60


async def test_a_client_without_failures_of_its_own_gets_an_answer_not_a_lockout(
        client, owner, clock, settings, database, redis):
    from tests.support.apps import serving_app
    async with serving_app(settings, login_delays=(0.01, 0.05)) as app:
        client = app.test_client()
        for _ in range(ACCOUNT_LIMIT):
            assert (await login(client, owner.email, WRONG, address=new_address())).status_code \
                == 401
        # Each new client gets a real answer, a wrong password included; having failed,
        # it is refused from then on.
        newcomer = new_address()
        assert (await login(client, owner.email, WRONG, address=newcomer)).status_code == 401
        assert (await login(client, owner.email, address=newcomer)).status_code == 429
        assert (await login(client, owner.email, address=new_address())).status_code == 200


async def test_the_delay_doubles_with_each_failure_up_to_its_cap(app, redis, keys):
    svc = app.extensions["analytics"]
    throttle = LoginThrottle(redis, keys, b"test", first_delay=1.0, max_delay=10.0)
    account, now = f"delays.{RUN}.{time.time_ns()}@example.com", svc.clock()
    guesser = new_address()
    for _ in range(ACCOUNT_LIMIT):
        assert (await throttle.begin(account, guesser, now)).delay == 0
    # Each from a client of its own, each a failure (none succeeds).
    delays = [(await throttle.begin(account, new_address(), now)).delay for _ in range(7)]
    assert delays == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]
    assert throttle.delay_after(10_000) == 10.0  # no overflow far past the limit


async def test_the_owners_own_typo_is_forgiven_by_the_right_password(client, owner, clock):
    typist, guesser = new_address(), new_address()
    assert (await login(client, owner.email, WRONG, address=typist)).status_code == 401
    assert (await login(client, owner.email, address=typist)).status_code == 200
    for _ in range(ACCOUNT_LIMIT):
        assert (await login(client, owner.email, WRONG, address=guesser)).status_code == 401
    # Over its limit now, but the typist's failure was forgiven: a delay, not a 429.
    assert (await login(client, owner.email, address=typist)).status_code == 200
    assert (await login(client, owner.email, address=guesser)).status_code == 429


async def test_the_owner_logging_in_does_not_give_a_guesser_a_fresh_budget(client, owner, clock):
    guesser = new_address()
    for _ in range(ACCOUNT_LIMIT):
        assert (await login(client, owner.email, WRONG, address=guesser)).status_code == 401
    assert (await login(client, owner.email, address=new_address())).status_code == 200
    assert (await login(client, owner.email, WRONG, address=guesser)).status_code == 429


# -- one account, one name: finding 6 --------------------------------------------------------


@pytest.fixture
async def alice(pool):
    return await create_user(pool, f"alice.{RUN}.{time.time_ns()}@example.com", PASSWORD)


def variants(email: str) -> list[str]:
    return [email.replace("alice", "al\u0130ce"), email.upper(), "  " + email.title() + " "]


async def test_spellings_postgres_finds_an_account_by_are_one_name(pool, alice):
    name = (await find_account(pool, alice.email)).name
    for spelling in variants(alice.email):
        account = await find_account(pool, spelling)
        # Postgres finds alice by each with lower() (under this server's C.UTF-8 collation).
        assert account.row is not None and account.row["id"] == alice.id, spelling
        assert account.name == name, spelling


async def test_a_unicode_variant_of_the_email_shares_its_failure_budget(client, alice, clock):
    variant, guesser = variants(alice.email)[0], new_address()
    spellings = [variant, variant, alice.email.upper(), variant, alice.email]
    for spelling in spellings:
        assert (await login(client, spelling, WRONG, address=guesser)).status_code == 401
    assert (await login(client, alice.email, WRONG, address=guesser)).status_code == 429
    assert (await login(client, variant, WRONG, address=guesser)).status_code == 429
